use serde_json::{Value, json};

use super::v1::*;
use super::v1beta3::*;
use super::{alert_crd, provider_crd, receiver_crd};
use crate::constants::{NOTIFICATION_GROUP, SUBSTITUTE_ANNOTATION};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn spec_schema(crd: &CustomResourceDefinition) -> Value {
    let v = serde_json::to_value(crd).unwrap();
    v.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .unwrap()
        .clone()
}

fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String, String)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
        .collect()
}

fn age() -> (String, String, String) {
    ("Age".into(), "date".into(), ".metadata.creationTimestamp".into())
}

/// Age, Ready and Status (the Ready message), as Flux's Receiver has.
fn age_ready_status() -> [(String, String, String); 3] {
    [
        age(),
        (
            "Ready".into(),
            "string".into(),
            ".status.conditions[?(@.type==\"Ready\")].status".into(),
        ),
        (
            "Status".into(),
            "string".into(),
            ".status.conditions[?(@.type==\"Ready\")].message".into(),
        ),
    ]
}

/// Beyond Flux (static objects there): a status subresource with Ready and the last dispatch.
fn assert_dispatch_status(crd: &CustomResourceDefinition) {
    let subresources = crd.spec.versions[0].subresources.as_ref().unwrap();
    assert!(subresources.status.is_some(), "status subresource");
    assert!(subresources.scale.is_none());
    assert_eq!(columns(crd), age_ready_status());
    let v = serde_json::to_value(crd).unwrap();
    let status = v
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status")
        .unwrap();
    let props = status["properties"].as_object().unwrap();
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "conditions",
            "lastDispatchError",
            "lastDispatchTime",
            "observedGeneration"
        ]
    );
    assert_eq!(props["observedGeneration"]["type"], json!("integer"));
    assert_eq!(props["observedGeneration"]["format"], json!("int64"));
    assert_eq!(props["lastDispatchTime"]["type"], json!("string"));
    assert_eq!(props["lastDispatchError"]["type"], json!("string"));
    assert_eq!(props["conditions"]["type"], json!("array"));
    assert_eq!(
        props["conditions"]["items"]["required"],
        json!(["lastTransitionTime", "message", "reason", "status", "type"])
    );
    assert!(status.get("default").is_none(), "no status default");
}

fn assert_common(crd: &CustomResourceDefinition, kind: &str, plural: &str, version: &str) {
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some(format!("{plural}.{NOTIFICATION_GROUP}").as_str())
    );
    assert_eq!(
        crd.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(SUBSTITUTE_ANNOTATION)
            .map(String::as_str),
        Some("disabled")
    );
    let names = &crd.spec.names;
    assert_eq!(names.kind, kind);
    assert_eq!(names.list_kind.as_deref(), Some(format!("{kind}List").as_str()));
    assert_eq!(names.plural, plural);
    assert_eq!(names.short_names, None);
    assert_eq!(
        names.categories.as_deref(),
        Some(
            &[
                "all".to_string(),
                "fluxcd".to_string(),
                "fluxcd-notifications".to_string()
            ][..]
        )
    );
    assert_eq!(crd.spec.versions.len(), 1);
    assert_eq!(crd.spec.versions[0].name, version);
    assert!(crd.spec.versions[0].served && crd.spec.versions[0].storage);
}

#[test]
fn alert_crd_matches_upstream() {
    let crd = alert_crd();
    assert_common(&crd, "Alert", "alerts", "v1beta3");
    assert_dispatch_status(&crd);
    let spec = spec_schema(&crd);
    assert_eq!(spec["required"], json!(["eventSources", "providerRef"]));
    assert_eq!(spec["properties"]["eventSeverity"]["default"], json!("info"));
    assert_eq!(
        spec["properties"]["eventSeverity"]["enum"],
        json!(["info", "error"])
    );
    assert_eq!(spec["properties"]["summary"]["maxLength"], json!(255));
    let source = &spec["properties"]["eventSources"]["items"];
    // Flux's twelve kinds, then ours.
    let kinds = source["properties"]["kind"]["enum"].as_array().unwrap();
    assert_eq!(kinds.len(), 13);
    assert_eq!(kinds[0], json!("Bucket"));
    assert_eq!(kinds[11], json!("ExternalArtifact"));
    assert_eq!(kinds[12], json!("KluctlDeployment"));
    assert_eq!(source["properties"]["name"]["maxLength"], json!(253));
    assert_eq!(crate::crds::cel_rule_count(&crd), 0);
}

#[test]
fn provider_crd_matches_upstream() {
    let crd = provider_crd();
    assert_common(&crd, "Provider", "providers", "v1beta3");
    assert_dispatch_status(&crd);
    let spec = spec_schema(&crd);
    assert_eq!(spec["required"], json!(["type"]));
    let types: Vec<&str> = ProviderType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(spec["properties"]["type"]["enum"], json!(types));
    assert_eq!(types.len(), 34);
    assert_eq!(types.last(), Some(&"incident.io"));
    assert_eq!(
        spec["x-kubernetes-validations"],
        json!([{
            "rule": "self.type == 'github' || self.type == 'gitlab' || self.type == 'gitea' || self.type == 'bitbucketserver' || self.type == 'bitbucket' || self.type == 'azuredevops' || !has(self.commitStatusExpr)",
            "message": "spec.commitStatusExpr is only supported for the 'github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops' provider types",
        }])
    );
    assert_eq!(
        spec["properties"]["timeout"]["pattern"],
        json!(r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$")
    );
    assert!(spec["properties"]["timeout"].get("default").is_none());
    assert_eq!(
        spec["properties"]["proxy"]["pattern"],
        json!("^(http|https)://.*$")
    );
    assert_eq!(spec["properties"]["address"]["maxLength"], json!(2048));
}

#[test]
fn receiver_crd_matches_upstream() {
    let crd = receiver_crd();
    assert_common(&crd, "Receiver", "receivers", "v1");
    assert!(
        crd.spec.versions[0]
            .subresources
            .as_ref()
            .unwrap()
            .status
            .is_some()
    );
    assert_eq!(columns(&crd), age_ready_status());
    let v = serde_json::to_value(&crd).unwrap();
    let status = v
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status")
        .unwrap();
    assert_eq!(status["default"], json!({"observedGeneration": -1}));
    let spec = spec_schema(&crd);
    assert_eq!(spec["required"], json!(["resources", "type"]));
    assert_eq!(spec["properties"]["interval"]["default"], json!("10m"));
    let rules: Vec<Value> = RECEIVER_RULES
        .iter()
        .map(|(rule, message)| json!({"rule": rule, "message": message}))
        .collect();
    assert_eq!(spec["x-kubernetes-validations"], json!(rules));
    assert_eq!(
        rules[0]["rule"],
        json!("self.type != 'generic-oidc' || (has(self.oidcProviders) && size(self.oidcProviders) > 0)")
    );
    let oidc = &spec["properties"]["oidcProviders"];
    assert_eq!(oidc["x-kubernetes-list-type"], json!("map"));
    assert_eq!(oidc["x-kubernetes-list-map-keys"], json!(["issuerURL"]));
    assert_eq!(oidc["items"]["required"], json!(["issuerURL", "validations"]));
    assert_eq!(oidc["items"]["properties"]["validations"]["minItems"], json!(1));
    let resource = &spec["properties"]["resources"]["items"];
    assert_eq!(resource["required"], json!(["kind", "name"]));
    assert!(resource["properties"]["filter"].is_object());
}

#[test]
fn sample_alert_and_provider_deserialize() {
    let alert: Alert = serde_saphyr::from_str(
        r#"
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: on-call
  namespace: flux-system
spec:
  providerRef:
    name: slack
  eventSources:
    - kind: GitRepository
      name: '*'
      matchLabels:
        team: a
    - kind: OCIRepository
      name: app
      namespace: apps
    - kind: KluctlDeployment
      name: '*'
      matchLabels:
        team: a
  exclusionList:
    - ".*no changes.*"
  eventMetadata:
    cluster: prod
"#,
    )
    .unwrap();
    assert_eq!(alert.spec.event_severity, EventSeverity::Info);
    assert_eq!(alert.spec.event_sources[0].kind, ReferencedKind::GitRepository);
    assert_eq!(alert.spec.event_sources[0].match_labels["team"], "a");
    assert_eq!(alert.spec.event_sources[1].kind, ReferencedKind::OciRepository);
    assert_eq!(alert.spec.event_sources[1].namespace, "apps");
    assert_eq!(alert.spec.event_metadata["cluster"], "prod");
    let v = serde_json::to_value(&alert).unwrap();
    assert_eq!(v["spec"]["eventSources"][1]["kind"], json!("OCIRepository"));
    assert_eq!(alert.spec.event_sources[2].kind, ReferencedKind::KluctlDeployment);
    assert_eq!(v["spec"]["eventSources"][2]["kind"], json!("KluctlDeployment"));
    assert!(alert.status.is_none() && v.get("status").is_none());

    let status: AlertStatus = serde_json::from_value(json!({
        "observedGeneration": 2,
        "conditions": [{
            "type": "Ready", "status": "False", "reason": "NotificationDispatchFailed",
            "message": "POST failed", "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
        "lastDispatchTime": "2026-01-01T00:00:00Z",
        "lastDispatchError": "POST failed",
    }))
    .unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.conditions[0].reason, "NotificationDispatchFailed");
    assert_eq!(
        serde_json::to_value(DispatchStatus {
            last_dispatch_time: Some("2026-01-01T00:00:01Z".into()),
            ..DispatchStatus::default()
        })
        .unwrap(),
        json!({"lastDispatchTime": "2026-01-01T00:00:01Z"}),
        "the error is omitted after a success"
    );

    let provider: Provider = serde_saphyr::from_str(
        r#"
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: github
  namespace: flux-system
spec:
  type: github
  address: https://github.com/org/repo
  secretRef:
    name: github-token
  commitStatusExpr: "'flux/' + event.involvedObject.name"
  timeout: 30s
"#,
    )
    .unwrap();
    assert_eq!(provider.spec.provider_type, ProviderType::Github);
    assert!(provider.spec.provider_type.is_commit_status());
    assert_eq!(provider.spec.timeout.as_deref(), Some("30s"));
    let v = serde_json::to_value(&provider).unwrap();
    assert_eq!(v["spec"]["type"], json!("github"));
    assert!(v.get("status").is_none());

    for t in ProviderType::ALL {
        let parsed: ProviderType = serde_json::from_value(json!(t.as_str())).unwrap();
        assert_eq!(parsed, *t);
    }
    let incident: ProviderType = serde_json::from_value(json!("incident.io")).unwrap();
    assert_eq!(incident, ProviderType::Incidentio);
    assert!(!incident.is_commit_status());
}

#[test]
fn sample_receivers_deserialize() {
    let receiver: Receiver = serde_saphyr::from_str(
        r#"
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: github-receiver
  namespace: flux-system
spec:
  type: github
  events:
    - ping
    - push
  secretRef:
    name: webhook-token
  resources:
    - apiVersion: source.toolkit.fluxcd.io/v1
      kind: GitRepository
      name: webapp
      filter: "req.ref == 'refs/heads/main'"
status:
  observedGeneration: 1
  webhookPath: /hook/bed6d00b5555b1603e1f59b94d7fdbca58089cb5663633fb83f2815dc626d92b
  conditions:
    - type: Ready
      status: "True"
      reason: Succeeded
      message: Receiver initialized
      lastTransitionTime: "2024-01-01T00:00:00Z"
"#,
    )
    .unwrap();
    assert_eq!(receiver.spec.receiver_type, ReceiverType::Github);
    assert_eq!(receiver.spec.interval, DEFAULT_RECEIVER_INTERVAL);
    let resource = &receiver.spec.resources[0];
    assert_eq!(resource.reference.kind, ReferencedKind::GitRepository);
    assert_eq!(resource.reference.api_version, "source.toolkit.fluxcd.io/v1");
    assert_eq!(resource.filter, "req.ref == 'refs/heads/main'");
    let status = receiver.status.as_ref().unwrap();
    assert!(status.webhook_path.starts_with(WEBHOOK_PATH_PREFIX));
    assert_eq!(status.conditions[0].status, "True");
    let v = serde_json::to_value(&receiver).unwrap();
    assert_eq!(
        v["spec"]["resources"][0]["filter"],
        json!("req.ref == 'refs/heads/main'")
    );
    assert_eq!(v["spec"]["resources"][0]["kind"], json!("GitRepository"));

    let oidc: Receiver = serde_saphyr::from_str(
        r#"
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: ci
  namespace: flux-system
spec:
  type: generic-oidc
  interval: 1h
  resources:
    - kind: Kustomization
      name: '*'
      matchLabels:
        app: web
  resourceFilter: "claims.repository == 'org/repo'"
  oidcProviders:
    - issuerURL: https://token.actions.githubusercontent.com
      variables:
        - name: repo
          expression: claims.repository
      validations:
        - expression: "variables.repo == 'org/repo'"
          message: wrong repository
"#,
    )
    .unwrap();
    assert_eq!(oidc.spec.receiver_type, ReceiverType::GenericOidc);
    assert_eq!(oidc.spec.secret_ref, None);
    let provider = &oidc.spec.oidc_providers[0];
    assert_eq!(provider.issuer_url, "https://token.actions.githubusercontent.com");
    assert_eq!(provider.audience, "");
    assert_eq!(provider.validations[0].message, "wrong repository");
    let v = serde_json::to_value(&oidc).unwrap();
    assert_eq!(
        v["spec"]["oidcProviders"][0]["issuerURL"],
        json!("https://token.actions.githubusercontent.com")
    );
    let back: Receiver = serde_json::from_value(v).unwrap();
    assert_eq!(back, oidc);
}
