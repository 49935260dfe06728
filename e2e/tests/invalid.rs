//! Invalid objects are rejected by the apiserver with an error that names the field.
//!
//! Schema rules (types, patterns, enums, required) hold on every apiserver. CEL rules hold where
//! the CRDs are served by the aggregated v1.36 apiextensions-apiserver (`E2E_CEL=1`); without it
//! the same KluctlDeployment rules are checked by the controller-side validation, which this test
//! then exercises instead, and says so.

use e2e::{TestNs, api_for, parse_manifest};
use kube::api::PostParams;

struct Case {
    what: &'static str,
    kind_yaml: &'static str,
    spec: &'static str,
    /// Substrings the error must contain (the field path, and for CEL rules the message).
    expect: &'static [&'static str],
    cel: bool,
}

const GIT_V1: &str = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository";
const BUCKET_V1: &str = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: Bucket";
const KD: &str = "apiVersion: gitops.kluctl.io/v1beta1\nkind: KluctlDeployment";
const KD_LEGACY: &str = "apiVersion: flux.kluctl.io/v1alpha1\nkind: KluctlDeployment";
const PROVIDER: &str = "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider";
const ALERT: &str = "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert";
const RECEIVER: &str = "apiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver";

const CASES: &[Case] = &[
    Case {
        what: "GitRepository interval not a duration",
        kind_yaml: GIT_V1,
        spec: "{interval: 5 minutes, url: 'https://example.com/r.git'}",
        expect: &["spec.interval"],
        cel: false,
    },
    Case {
        what: "GitRepository without url",
        kind_yaml: GIT_V1,
        spec: "{interval: 5m}",
        expect: &["spec.url"],
        cel: false,
    },
    Case {
        what: "GitRepository with an ftp url",
        kind_yaml: GIT_V1,
        spec: "{interval: 5m, url: 'ftp://example.com/r.git'}",
        expect: &["spec.url"],
        cel: false,
    },
    Case {
        what: "GitRepository timeout in hours",
        kind_yaml: GIT_V1,
        spec: "{interval: 5m, url: 'https://example.com/r.git', timeout: 1h}",
        expect: &["spec.timeout"],
        cel: false,
    },
    Case {
        what: "GitRepository with unknown provider",
        kind_yaml: GIT_V1,
        spec: "{interval: 5m, url: 'https://example.com/r.git', provider: gitea}",
        expect: &["spec.provider"],
        cel: false,
    },
    Case {
        what: "Bucket without bucketName",
        kind_yaml: BUCKET_V1,
        spec: "{interval: 5m, endpoint: 'minio.example.com'}",
        expect: &["spec.bucketName"],
        cel: false,
    },
    Case {
        what: "Bucket with unknown provider",
        kind_yaml: BUCKET_V1,
        spec: "{interval: 5m, bucketName: b, endpoint: e, provider: minio}",
        expect: &["spec.provider"],
        cel: false,
    },
    Case {
        what: "KluctlDeployment without interval",
        kind_yaml: KD,
        spec: "{source: {git: {url: 'https://example.com/p.git'}}}",
        expect: &["spec.interval"],
        cel: false,
    },
    Case {
        what: "KluctlDeployment with unknown deployMode",
        kind_yaml: KD,
        spec: "{interval: 5m, deployMode: sideways, source: {git: {url: 'https://example.com/p.git'}}}",
        expect: &["spec.deployMode"],
        cel: false,
    },
    Case {
        what: "legacy KluctlDeployment interval not a duration",
        kind_yaml: KD_LEGACY,
        spec: "{interval: often, target: t, sourceRef: {kind: GitRepository, name: x}}",
        expect: &["spec.interval"],
        cel: false,
    },
    Case {
        what: "Provider with unknown type",
        kind_yaml: PROVIDER,
        spec: "{type: carrier-pigeon}",
        expect: &["spec.type"],
        cel: false,
    },
    Case {
        what: "Alert with unknown severity",
        kind_yaml: ALERT,
        spec: "{providerRef: {name: p}, eventSeverity: warning, eventSources: [{kind: GitRepository, name: x}]}",
        expect: &["spec.eventSeverity"],
        cel: false,
    },
    Case {
        what: "Alert without eventSources",
        kind_yaml: ALERT,
        spec: "{providerRef: {name: p}}",
        expect: &["spec.eventSources"],
        cel: false,
    },
    Case {
        what: "Receiver with unknown type",
        kind_yaml: RECEIVER,
        spec: "{type: smoke-signal, resources: [{kind: GitRepository, name: x}], secretRef: {name: s}}",
        expect: &["spec.type"],
        cel: false,
    },
    Case {
        what: "KluctlDeployment with both source and sourceRef",
        kind_yaml: KD,
        spec: "{interval: 5m, source: {git: {url: 'https://example.com/p.git'}}, sourceRef: {kind: GitRepository, name: x}}",
        expect: &["spec", "sourceRef"],
        cel: true,
    },
    Case {
        what: "KluctlDeployment with neither source nor sourceRef",
        kind_yaml: KD,
        spec: "{interval: 5m}",
        expect: &["spec", "sourceRef"],
        cel: true,
    },
    Case {
        what: "KluctlDeployment path escaping the artifact",
        kind_yaml: KD,
        spec: "{interval: 5m, sourceRef: {kind: GitRepository, name: x}, path: '../other'}",
        expect: &["spec", "path"],
        cel: true,
    },
    Case {
        what: "KluctlDeployment path without sourceRef",
        kind_yaml: KD,
        spec: "{interval: 5m, source: {git: {url: 'https://example.com/p.git'}}, path: sub}",
        expect: &["spec", "path"],
        cel: true,
    },
    Case {
        what: "GitRepository serviceAccountName with the generic provider",
        kind_yaml: GIT_V1,
        spec: "{interval: 5m, url: 'https://example.com/r.git', serviceAccountName: sa}",
        expect: &["serviceAccountName can only be set when provider is 'azure' or 'aws'"],
        cel: true,
    },
];

#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() -> anyhow::Result<()> {
    TestNs::run("invalid_objects", |t| async move {
        let cel = t.env.cel_enforced();
        let mut rejected_by_apiserver = 0;
        let mut failures = Vec::new();
        for (i, case) in CASES.iter().enumerate() {
            let yaml = format!(
                "{}\nmetadata: {{name: invalid-{i}, namespace: {}}}\nspec: {}\n",
                case.kind_yaml, t.name, case.spec
            );
            let obj = parse_manifest(&yaml)?;
            if case.cel && !cel {
                // Not enforceable by this apiserver; the controller-side check must catch it instead.
                if case.kind_yaml == KD {
                    let spec: gitops_api::kluctl::v1beta1::KluctlDeploymentSpec =
                        serde_json::from_value(obj.data["spec"].clone())?;
                    let errors = spec.validate().err().unwrap_or_default();
                    let text = errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    if !case.expect.iter().all(|e| text.contains(e)) || errors.is_empty() {
                        failures.push(format!("{}: controller-side validation said '{text}'", case.what));
                    }
                    println!(
                        "e2e: CEL not enforced; controller-side validation rejects '{}': {text}",
                        case.what
                    );
                } else {
                    println!(
                        "e2e: CEL not enforced; '{}' is only checked where CEL is",
                        case.what
                    );
                }
                continue;
            }
            let api = api_for(&t.client, &obj).await?;
            match api.create(&PostParams::default(), &obj).await {
                Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
                    if case.expect.iter().all(|x| e.message.contains(x)) {
                        rejected_by_apiserver += 1;
                        println!("e2e: rejected '{}': {}", case.what, e.message);
                    } else {
                        failures.push(format!(
                            "{}: error does not name {:?}: {}",
                            case.what, case.expect, e.message
                        ));
                    }
                }
                other => failures.push(format!("{}: expected a 4xx rejection, got {other:?}", case.what)),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(
            rejected_by_apiserver >= 10,
            "only {rejected_by_apiserver} invalid objects were rejected by the apiserver"
        );
        Ok(())
    })
    .await
}
