use serde_json::{Value, json};

use super::kluctldeployment_crd;
use super::v1alpha1::*;

fn schema() -> Value {
    let crd = serde_json::to_value(kluctldeployment_crd()).unwrap();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .unwrap()
        .clone()
}

#[test]
fn crd_names_versions_and_columns_match_upstream() {
    let crd = kluctldeployment_crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("kluctldeployments.flux.kluctl.io")
    );
    assert_eq!(crd.spec.group, crate::constants::FLUX_KLUCTL_GROUP);
    assert_eq!(crd.spec.names.kind, "KluctlDeployment");
    assert_eq!(crd.spec.names.list_kind.as_deref(), Some("KluctlDeploymentList"));
    assert_eq!(crd.spec.names.short_names, None);
    assert_eq!(crd.spec.names.categories, None);
    assert_eq!(crd.spec.versions.len(), 1);
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
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
            ("DryRun", "boolean", ".spec.dryRun"),
            ("Deployed", "date", ".status.lastDeployResult.time"),
            ("Pruned", "date", ".status.lastPruneResult.time"),
            ("Validated", "date", ".status.lastValidateResult.time"),
            (
                "Ready",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].status"
            ),
            (
                "Status",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].message"
            ),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
    assert_eq!(crate::crds::cel_rule_count(&crd), 0, "upstream has no CEL rules");
}

#[test]
fn crd_defaults_and_patterns() {
    let s = schema();
    let p = &s["properties"]["spec"]["properties"];
    assert_eq!(s["properties"]["spec"]["required"], json!(["interval"]));
    assert_eq!(p["deployOnChanges"]["default"], json!(true));
    assert_eq!(p["validate"]["default"], json!(true));
    assert_eq!(p["deployMode"]["default"], json!("full-deploy"));
    assert_eq!(p["updateImages"]["default"], json!(false));
    assert!(p["suspend"].get("default").is_none());
    for field in ["deployInterval", "validateInterval"] {
        assert_eq!(
            p[field]["pattern"],
            json!(r"^(([0-9]+(\.[0-9]+)?(ms|s|m|h))+)|never$"),
            "{field}"
        );
    }
    assert_eq!(
        p["interval"]["pattern"],
        json!(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
    );
    assert_eq!(p["sourceRef"]["required"], json!(["kind", "name"]));
    assert!(p["sourceRef"]["properties"]["kind"].get("enum").is_none());
    assert_eq!(
        p["renameContexts"]["items"]["required"],
        json!(["newContext", "oldContext"])
    );
    assert_eq!(p["images"]["items"]["required"], json!(["image", "resultImage"]));
    assert_eq!(
        p["images"]["items"]["properties"]["object"]["required"],
        json!(["group", "kind", "name", "namespace", "version"])
    );
    assert_eq!(p["args"]["x-kubernetes-preserve-unknown-fields"], json!(true));
    let status = &s["properties"]["status"];
    assert!(status.get("default").is_none());
    assert_eq!(
        status["properties"]["lastDeployResult"]["required"],
        json!(["time"])
    );
    assert_eq!(
        status["properties"]["lastValidateResult"]["properties"]["rawResult"]["type"],
        json!("string")
    );
}

/// The two `flux.kluctl.io/v1alpha1` manifests of seed 004.
const SEED_004: [&str; 2] = [
    r#"
apiVersion: flux.kluctl.io/v1alpha1
kind: KluctlDeployment
metadata:
  name: microservices-demo-test
  namespace: flux-system
spec:
  interval: 10m
  path: "./microservices-demo/3-templating-and-multi-env/"
  sourceRef:
    kind: GitRepository
    name: microservices-demo
  timeout: 2m
  target: test
  prune: true
  # kluctl cluster configs specify the expected context name, which does not necessarely match the context name
  # found while it is deployed via the controller.
  renameContexts:
    - oldContext: default
      newContext: kind-kind
"#,
    r#"
apiVersion: flux.kluctl.io/v1alpha1
kind: KluctlDeployment
metadata:
  name: microservices-demo-prod
  namespace: flux-system
spec:
  interval: 10m
  path: "./microservices-demo/3-templating-and-multi-env/"
  sourceRef:
    kind: GitRepository
    name: microservices-demo
  timeout: 2m
  target: prod
  prune: true
  renameContexts:
    - oldContext: default
      newContext: kind-kind
"#,
];

#[test]
fn seed_004_manifests_deserialize() {
    for (yaml, target) in SEED_004.iter().zip(["test", "prod"]) {
        let kd: KluctlDeployment = serde_saphyr::from_str(yaml).unwrap();
        let spec = &kd.spec;
        assert_eq!(spec.interval, "10m");
        assert_eq!(spec.path, "./microservices-demo/3-templating-and-multi-env/");
        let source_ref = spec.source_ref.as_ref().unwrap();
        assert_eq!(
            (source_ref.kind.as_str(), source_ref.name.as_str()),
            ("GitRepository", "microservices-demo")
        );
        assert_eq!(source_ref.namespace, None);
        assert_eq!(spec.timeout.as_deref(), Some("2m"));
        assert_eq!(spec.target.as_deref(), Some(target));
        assert!(spec.prune);
        assert_eq!(
            spec.rename_contexts,
            [RenameContext {
                old_context: "default".into(),
                new_context: "kind-kind".into()
            }]
        );
        // Defaults as the CRD would fill them in.
        assert!(spec.deploy_on_changes && spec.validate);
        assert_eq!(spec.deploy_mode, DeployMode::FullDeploy);
        assert!(spec.source.is_none());
    }
}

#[test]
fn never_intervals_and_status_round_trip() {
    let kd: KluctlDeployment = serde_saphyr::from_str(
        r#"
apiVersion: flux.kluctl.io/v1alpha1
kind: KluctlDeployment
metadata:
  name: legacy
  namespace: flux-system
spec:
  interval: 5m
  deployInterval: never
  validateInterval: 1h
  deployOnChanges: false
  source:
    url: https://github.com/org/repo.git
    ref:
      tag: v1.2.3
    secretRef:
      name: git
  args:
    nested:
      a: 1
status:
  observedGeneration: 2
  lastHandledDeployAt: "2023-06-01T00:00:00Z"
  lastDeployResult:
    time: "2023-06-01T00:01:00Z"
    revision: main/0123abcd
    target: test
    objectsHash: abc
    rawResult: '{"id":"x"}'
  lastValidateResult:
    time: "2023-06-01T00:02:00Z"
    error: ""
  readyForMigration: true
"#,
    )
    .unwrap();
    assert_eq!(kd.spec.deploy_interval.as_deref(), Some(NEVER));
    assert!(!kd.spec.deploy_on_changes);
    assert_eq!(
        kd.spec.source.as_ref().unwrap().git_ref.as_ref().unwrap().tag,
        "v1.2.3"
    );
    assert_eq!(kd.spec.args.as_ref().unwrap()["nested"]["a"], json!(1));
    let status = kd.status.as_ref().unwrap();
    let deploy = status.last_deploy_result.as_ref().unwrap();
    assert_eq!(deploy.raw_result.as_deref(), Some(r#"{"id":"x"}"#));
    assert_eq!(deploy.revision, "main/0123abcd");
    assert_eq!(status.ready_for_migration, Some(true));
    let back: KluctlDeployment = serde_json::from_value(serde_json::to_value(&kd).unwrap()).unwrap();
    assert_eq!(back, kd);
}
