use serde_json::{Value, json};

use super::kluctldeployment_crd;
use super::v1beta1::*;

fn crd_json() -> Value {
    serde_json::to_value(kluctldeployment_crd()).unwrap()
}

fn spec_schema() -> Value {
    crd_json()
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .unwrap()
        .clone()
}

fn parse(yaml: &str) -> KluctlDeployment {
    serde_saphyr::from_str(yaml).unwrap()
}

#[test]
fn crd_names_versions_and_columns_match_upstream() {
    let crd = kluctldeployment_crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("kluctldeployments.gitops.kluctl.io")
    );
    assert_eq!(crd.spec.group, crate::constants::KLUCTL_GROUP);
    assert_eq!(crd.spec.scope, "Namespaced");
    let names = &crd.spec.names;
    assert_eq!(names.kind, "KluctlDeployment");
    assert_eq!(names.list_kind.as_deref(), Some("KluctlDeploymentList"));
    assert_eq!(names.plural, "kluctldeployments");
    assert_eq!(names.singular.as_deref(), Some("kluctldeployment"));
    assert_eq!(names.short_names, None);
    assert_eq!(names.categories, None);

    assert_eq!(crd.spec.versions.len(), 1);
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1beta1");
    assert!(v.served && v.storage);
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Suspend", "boolean", ".spec.suspend"),
            ("DryRun", "boolean", ".spec.dryRun"),
            ("Deployed", "date", ".status.lastDeployResult.commandInfo.endTime"),
            (
                "Ready",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].status"
            ),
            ("Drift", "string", ".status.lastDriftDetectionResultMessage"),
            (
                "Status",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].message"
            ),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
    let root = crd_json();
    let status = root
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status")
        .unwrap();
    assert!(status.get("default").is_none(), "upstream has no status default");
}

#[test]
fn crd_has_source_ref_cel_rules() {
    let spec = spec_schema();
    let rules = spec["x-kubernetes-validations"].as_array().unwrap();
    assert_eq!(
        rules,
        &[
            json!({
                "rule": "!(has(self.source) && has(self.sourceRef))",
                "message": "spec.source and spec.sourceRef are mutually exclusive: set exactly one of them",
            }),
            json!({
                "rule": "has(self.source) || has(self.sourceRef)",
                "message": "one of spec.source or spec.sourceRef must be set",
            }),
            json!({
                "rule": "!has(self.path) || has(self.sourceRef)",
                "message": "spec.path can only be set together with spec.sourceRef (use spec.source.git.path or spec.source.oci.path otherwise)",
            }),
        ]
    );
    assert_eq!(
        spec["properties"]["path"]["x-kubernetes-validations"],
        json!([
            {
                "rule": "!self.matches('^/')",
                "message": "spec.path must be relative to the artifact root and must not start with '/'",
            },
            {
                "rule": "!self.matches('(^|/)[.][.](/|$)')",
                "message": "spec.path must not contain '..' segments: it must stay inside the artifact",
            },
        ])
    );
    let source_ref = &spec["properties"]["sourceRef"];
    assert_eq!(
        source_ref["properties"]["kind"]["enum"],
        json!(["GitRepository", "Bucket"])
    );
    assert_eq!(source_ref["required"], json!(["kind", "name"]));
    // `source` is optional here (upstream requires it); the CEL rules take over.
    assert_eq!(spec["required"], json!(["interval"]));
}

#[test]
fn crd_defaults_patterns_and_free_form_fields() {
    let spec = spec_schema();
    let p = &spec["properties"];
    assert_eq!(p["validate"]["default"], json!(true));
    assert_eq!(p["deployMode"]["default"], json!("full-deploy"));
    assert_eq!(p["deployMode"]["enum"], json!(["full-deploy", "poke-images"]));
    for field in [
        "dryRun",
        "noWait",
        "forceApply",
        "replaceOnError",
        "forceReplaceOnError",
        "abortOnError",
    ] {
        assert_eq!(p[field]["default"], json!(false), "{field}");
    }
    for field in ["prune", "delete"] {
        assert_eq!(p[field]["default"], json!(false), "{field}");
    }
    for field in ["suspend", "manual", "interval", "timeout", "source"] {
        assert!(
            p[field].get("default").is_none(),
            "{field} has no default upstream"
        );
    }
    assert_eq!(
        p["interval"]["pattern"],
        json!(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
    );
    assert_eq!(
        p["deployInterval"]["pattern"],
        json!(r"^(([0-9]+(\.[0-9]+)?(ms|s|m|h))+)")
    );
    assert_eq!(p["target"]["minLength"], json!(1));
    assert_eq!(p["target"]["maxLength"], json!(63));
    assert_eq!(p["args"]["x-kubernetes-preserve-unknown-fields"], json!(true));
    assert_eq!(p["args"]["type"], json!("object"));

    let root = crd_json();
    let status = root
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status/properties")
        .unwrap();
    for field in [
        "lastDeployResult",
        "lastDiffResult",
        "lastValidateResult",
        "lastDriftDetectionResult",
    ] {
        assert_eq!(
            status[field],
            json!({
                "description": status[field]["description"],
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            }),
            "{field}"
        );
    }
    assert_eq!(status["targetKey"]["required"], json!(["clusterId"]));
    assert_eq!(
        status["conditions"]["items"]["properties"]["reason"]["maxLength"],
        json!(1024)
    );
}

/// The `KluctlDeployments` of the seed docs (000), with the Jinja placeholder substituted.
const SEED_000: &str = r"
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata:
  name: example-deployment
  namespace: kluctl-system
spec:
  interval: 5m
  source:
    git:
      url: https://github.com/kluctl/kluctl-examples.git
      path: simple
  target: simple
  args:
    environment: test
  context: default
---
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata:
  name: app1
  namespace: kluctl-gitops
spec:
  interval: 5m
  source:
    git:
      url: https://github.com/kluctl/kluctl-examples.git
      path: simple
  target: simple
  args:
    environment: test
  context: default
  prune: true
  delete: true
---
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata:
  name: app2
  namespace: kluctl-gitops
spec:
  interval: 5m
  source:
    git:
      url: https://github.com/kluctl/kluctl-examples.git
      path: simple-helm
  target: simple-helm
  args:
    environment: test
  context: default
  prune: true
  delete: true
---
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata:
  name: gitops
  namespace: kluctl-gitops
spec:
  interval: 5m
  source:
    git:
      url: https://github.com/kluctl/kluctl-examples.git
      path: gitops-deployment # You could also use a dedicated repository without a sub-directory
  target: gitops
  args:
    # passes the cluster name on to the KluctlDeployment
    cluster_name: test.example.com
  context: default
  prune: true
  delete: true
";

/// The `KluctlDeployments` of seed 001.
const SEED_001: &str = r#"
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata:
  name: microservices-demo-test
  namespace: kluctl-system
spec:
  interval: 10m
  source:
    git:
      url: https://github.com/kluctl/kluctl-examples.git
      path: "./microservices-demo/3-templating-and-multi-env/"
  timeout: 2m
  target: test
  context: default
  prune: true
---
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata:
  name: microservices-demo-prod
  namespace: kluctl-system
spec:
  interval: 10m
  source:
    git:
      url: https://github.com/kluctl/kluctl-examples.git
      path: "./microservices-demo/3-templating-and-multi-env/"
  timeout: 2m
  target: prod
  context: default
"#;

fn parse_all(yaml: &str) -> Vec<KluctlDeployment> {
    yaml.split("\n---\n").map(parse).collect()
}

#[test]
fn seed_000_manifests_deserialize() {
    let kds = parse_all(SEED_000);
    assert_eq!(kds.len(), 4);
    let names: Vec<_> = kds.iter().map(|k| k.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["example-deployment", "app1", "app2", "gitops"]);
    for kd in &kds {
        let spec = &kd.spec;
        assert_eq!(spec.interval, "5m");
        let git = spec.source.as_ref().unwrap().git.as_ref().unwrap();
        assert_eq!(git.url, "https://github.com/kluctl/kluctl-examples.git");
        assert_eq!(spec.context.as_deref(), Some("default"));
        // CRD defaults are mirrored by serde defaults.
        assert!(spec.validate);
        assert_eq!(spec.deploy_mode, DeployMode::FullDeploy);
        assert!(!spec.dry_run);
        assert_eq!(spec.validate(), Ok(()));
    }
    assert!(!kds[0].spec.prune && kds[1].spec.prune && kds[1].spec.delete);
    assert_eq!(
        kds[2].spec.source.as_ref().unwrap().git.as_ref().unwrap().path,
        "simple-helm"
    );
    assert_eq!(kds[3].spec.target.as_deref(), Some("gitops"));
    assert_eq!(
        kds[3].spec.args.as_ref().unwrap()["cluster_name"],
        json!("test.example.com")
    );
    assert_eq!(kds[0].spec.args.as_ref().unwrap()["environment"], json!("test"));
}

#[test]
fn seed_001_manifests_deserialize() {
    let kds = parse_all(SEED_001);
    assert_eq!(kds.len(), 2);
    for kd in &kds {
        assert_eq!(kd.spec.interval, "10m");
        assert_eq!(kd.spec.timeout.as_deref(), Some("2m"));
        let git = kd.spec.source.as_ref().unwrap().git.as_ref().unwrap();
        assert_eq!(git.path, "./microservices-demo/3-templating-and-multi-env/");
        assert_eq!(kd.spec.validate(), Ok(()));
    }
    assert_eq!(kds[0].spec.target.as_deref(), Some("test"));
    assert!(kds[0].spec.prune);
    assert_eq!(kds[1].spec.target.as_deref(), Some("prod"));
    assert!(!kds[1].spec.prune);
}

#[test]
fn source_ref_manifest_deserializes_and_round_trips() {
    let kd = parse(
        r"
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata:
  name: from-artifact
  namespace: default
spec:
  interval: 1m
  sourceRef:
    kind: Bucket
    name: projects
    namespace: flux-system
  path: teams/a
  deployMode: poke-images
  validate: false
  credentials:
    git:
      - host: github.com
        secretRef:
          name: git-creds
",
    );
    let source_ref = kd.spec.source_ref.as_ref().unwrap();
    assert_eq!(source_ref.kind, SourceKind::Bucket);
    assert_eq!(source_ref.namespace.as_deref(), Some("flux-system"));
    assert_eq!(kd.spec.path.as_deref(), Some("teams/a"));
    assert_eq!(kd.spec.deploy_mode, DeployMode::PokeImages);
    assert!(!kd.spec.validate);
    assert_eq!(
        kd.spec.credentials.as_ref().unwrap().git[0].secret_ref.name,
        "git-creds"
    );
    assert_eq!(kd.spec.validate(), Ok(()));

    let v = serde_json::to_value(&kd).unwrap();
    assert_eq!(
        v["spec"]["sourceRef"],
        json!({"kind": "Bucket", "name": "projects", "namespace": "flux-system"})
    );
    assert!(v["spec"].get("source").is_none());
    assert_eq!(v["spec"]["validate"], json!(false));
    let back: KluctlDeployment = serde_json::from_value(v).unwrap();
    assert_eq!(back, kd);
}

fn spec_with(source: bool, source_ref: bool, path: Option<&str>) -> KluctlDeploymentSpec {
    let mut yaml = String::from("interval: 5m\n");
    if source {
        yaml.push_str("source:\n  git:\n    url: https://example.com/repo.git\n");
    }
    if source_ref {
        yaml.push_str("sourceRef:\n  kind: GitRepository\n  name: repo\n");
    }
    let mut spec: KluctlDeploymentSpec = serde_saphyr::from_str(&yaml).unwrap();
    spec.path = path.map(str::to_string);
    spec
}

fn error_fields(spec: &KluctlDeploymentSpec) -> Vec<(&'static str, &'static str)> {
    spec.validate()
        .unwrap_err()
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect()
}

#[test]
fn validate_rejects_both_sources() {
    let errors = spec_with(true, true, None).validate().unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.sourceRef");
    let text = errors[0].to_string();
    assert!(
        text.contains("spec.source ") && text.contains("spec.sourceRef"),
        "{text}"
    );
}

#[test]
fn validate_rejects_missing_source() {
    assert_eq!(
        error_fields(&spec_with(false, false, None)),
        [("spec.source", MSG_SOURCE_REQUIRED)]
    );
}

#[test]
fn validate_rejects_path_without_source_ref() {
    assert_eq!(
        error_fields(&spec_with(true, false, Some("sub"))),
        [("spec.path", MSG_PATH_NEEDS_SOURCE_REF)]
    );
}

#[test]
fn validate_rejects_escaping_paths() {
    for path in ["../x", "..", "a/../../b", "a/..", "x/../y"] {
        assert_eq!(
            error_fields(&spec_with(false, true, Some(path))),
            [("spec.path", MSG_PATH_NO_PARENT)],
            "{path}"
        );
    }
    assert_eq!(
        error_fields(&spec_with(false, true, Some("/abs"))),
        [("spec.path", MSG_PATH_RELATIVE)]
    );
    assert_eq!(
        error_fields(&spec_with(false, true, Some("/../etc"))),
        [
            ("spec.path", MSG_PATH_RELATIVE),
            ("spec.path", MSG_PATH_NO_PARENT)
        ]
    );
}

#[test]
fn validate_accepts_relative_paths() {
    for path in ["a/b", "./a", ".", "", "a/..b/c", "..a", "a/b../c"] {
        assert_eq!(spec_with(false, true, Some(path)).validate(), Ok(()), "{path}");
    }
    assert_eq!(spec_with(false, true, None).validate(), Ok(()));
}

#[test]
fn validate_reports_every_violation() {
    let errors = spec_with(true, true, Some("/x")).validate().unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
    assert_eq!(fields, ["spec.sourceRef", "spec.path"]);
    let errors = spec_with(false, false, Some("../x")).validate().unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
    assert_eq!(fields, ["spec.source", "spec.path", "spec.path"]);
}

/// A status as upstream's controller writes it: Go `null`s, extra fields, nested results.
const UPSTREAM_STATUS: &str = r#"{
  "observedGeneration": 3,
  "observedCommit": "0123abcd",
  "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                  "message": "deploy succeeded.", "lastTransitionTime": "2024-05-01T10:00:00Z"}],
  "projectKey": {"repoKey": "git://github.com/kluctl/kluctl-examples", "subDir": "simple"},
  "targetKey": {"targetName": "simple", "clusterId": "5f1c7a3e"},
  "lastObjectsHash": "abc",
  "lastDeployResult": {
    "id": "r1", "reconcileId": "rc1",
    "projectKey": {"repoKey": "git://github.com/kluctl/kluctl-examples", "subDir": "simple"},
    "targetKey": {"targetName": "simple", "clusterId": "5f1c7a3e"},
    "target": {"name": "simple", "context": "default", "args": {"environment": "test"}},
    "commandInfo": {"initiator": "KluctlDeployment", "startTime": "2024-05-01T09:59:00Z",
                    "endTime": "2024-05-01T10:00:00Z", "command": "deploy", "target": "simple",
                    "args": {"environment": "test"}, "prune": true},
    "kluctlDeployment": {"name": "app1", "namespace": "kluctl-gitops", "clusterId": "5f1c7a3e"},
    "gitInfo": {"url": "https://github.com/kluctl/kluctl-examples.git", "ref": {"branch": "main"},
                "subDir": "simple", "commit": "0123abcd", "dirty": false},
    "clusterInfo": {"clusterId": "5f1c7a3e"},
    "renderedObjectsHash": "abc",
    "renderedObjects": 5, "remoteObjects": 5, "appliedObjects": 5, "appliedHookObjects": 0,
    "newObjects": 1, "changedObjects": 2, "orphanObjects": 0, "deletedObjects": 0,
    "errors": null,
    "warnings": [{"ref": {"kind": "Deployment", "name": "web", "namespace": "default", "group": "apps", "version": "v1"},
                  "message": "slow"}],
    "totalChanges": 3,
    "someFutureField": {"x": 1}
  },
  "lastValidateResult": {
    "id": "v1", "reconcileId": "rc1",
    "projectKey": {"repoKey": "git://github.com/kluctl/kluctl-examples"},
    "targetKey": {"clusterId": "5f1c7a3e"},
    "startTime": "2024-05-01T10:00:00Z", "endTime": null, "ready": false,
    "errors": [{"ref": {"kind": "Pod", "name": "p"}, "message": "not ready"}],
    "results": [{"ref": {"kind": "Job", "name": "j"}, "annotation": "validate-result.kluctl.io/x", "message": "m"}]
  },
  "lastDriftDetectionResult": {
    "id": "d1", "reconcileId": "rc2", "projectKey": {}, "targetKey": {"clusterId": "5f1c7a3e"},
    "startTime": "2024-05-01T10:05:00Z", "endTime": "2024-05-01T10:05:01Z",
    "objects": [
      {"ref": {"kind": "ConfigMap", "name": "c", "namespace": "default", "version": "v1"},
       "changes": [{"type": "update", "jsonPath": "data.a", "oldValue": "1", "newValue": "2",
                    "unifiedDiff": "-1\n+2"}],
       "lastResourceVersion": "42"},
      {"ref": {"kind": "Secret", "name": "s", "namespace": "default"}, "orphan": true, "lastResourceVersion": "7"}
    ]
  },
  "lastDriftDetectionResultMessage": "1 chg/1 orp",
  "deployRequestResult": {"request": {"requestValue": "2024-05-01T09:58:00Z", "overridesPatch": {"spec": {"dryRun": true}}},
                          "startTime": "2024-05-01T09:58:01Z", "reconcileId": "rc1", "resultId": "r1"}
}"#;

#[test]
fn upstream_status_deserializes_into_typed_results() {
    let status: KluctlDeploymentStatus = serde_json::from_str(UPSTREAM_STATUS).unwrap();
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.conditions[0].reason, "ReconciliationSucceeded");
    assert_eq!(status.target_key.as_ref().unwrap().cluster_id, "5f1c7a3e");

    let deploy = status.last_deploy_result.as_ref().unwrap();
    assert_eq!(deploy.command_info.initiator, "KluctlDeployment");
    assert!(deploy.command_info.end_time.is_some());
    assert_eq!(deploy.target.args.as_ref().unwrap()["environment"], json!("test"));
    assert_eq!(deploy.git_info.git_ref.as_ref().unwrap().branch, "main");
    assert!(deploy.errors.is_empty());
    assert_eq!(
        deploy.warnings[0].object_ref.to_string(),
        "default/Deployment/web"
    );
    assert_eq!(
        (deploy.new_objects, deploy.changed_objects, deploy.total_changes),
        (1, 2, 3)
    );

    let validate = status.last_validate_result.as_ref().unwrap();
    assert!(!validate.ready && validate.end_time.is_none());
    assert_eq!(validate.errors[0].object_ref.to_string(), "Pod/p");
    assert_eq!(validate.results[0].annotation, "validate-result.kluctl.io/x");

    let drift = status.last_drift_detection_result.as_ref().unwrap();
    assert_eq!(drift.objects[0].changes[0].new_value, Some(json!("2")));
    assert_eq!(drift.short_message(), status.last_drift_detection_result_message);

    let request = status.deploy_request_result.as_ref().unwrap();
    assert_eq!(
        request.request.overrides_patch.as_ref().unwrap()["spec"]["dryRun"],
        json!(true)
    );
    assert_eq!(request.result_id, "r1");

    // Writing it back keeps the shape (unknown fields aside) and reads back identically.
    let written = serde_json::to_value(&status).unwrap();
    assert_eq!(
        written["lastDeployResult"]["commandInfo"]["endTime"],
        json!("2024-05-01T10:00:00Z")
    );
    assert_eq!(written["lastDeployResult"]["errors"], json!([]));
    let again: KluctlDeploymentStatus = serde_json::from_value(written).unwrap();
    assert_eq!(again, status);
}

#[test]
fn drift_short_message() {
    assert_eq!(DriftDetectionResult::default().short_message(), "no drift");
    let drifted = |f: fn(&mut DriftedObject)| {
        let mut o = DriftedObject::default();
        f(&mut o);
        o
    };
    let result = DriftDetectionResult {
        objects: vec![
            drifted(|o| o.new = true),
            drifted(|o| o.new = true),
            drifted(|o| o.deleted = true),
            drifted(|o| o.changes = vec![Change::default()]),
        ],
        warnings: vec![DeploymentError::default()],
        ..Default::default()
    };
    assert_eq!(result.short_message(), "2 new/1 chg/1 del/1 wrn");
}
