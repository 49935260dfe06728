//! `kluctl validate` and the readiness wait (issue 7) against the real apiserver and
//! kube-controller-manager: a Deployment is not ready until its pod is, a Service and a ConfigMap
//! are ready as soon as they exist, rendered objects missing from the cluster are "object not
//! found", objects marked for deletion must be gone.
//!
//! The local cluster has no scheduler and no kubelet, so no pod ever becomes ready by itself: the
//! test marks the Deployment's pod Ready by patching the pod's `/status` as the admin identity,
//! and the real ReplicaSet and Deployment controllers then report the Deployment ready. (Patching
//! the Deployment's own status would be overwritten by the Deployment controller.)

use std::time::Duration;

use e2e::{TestNs, api_for, make_deployment_ready};
use k8s_openapi::jiff::Timestamp;
use kluctl_engine::remote::{ApiIndex, SharedApiIndex};
use kluctl_engine::validate::{ClusterValidator, DeploymentError, ValidateResult};
use kube::api::PostParams;
use serde_json::{Value, json};

fn rendered(ns: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns,
                         "annotations": {"validate-result.kluctl.io/smoke": "checked by hand"}},
            "data": {"a": "1"},
        }),
        // Rendered but never created.
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "missing", "namespace": ns},
        }),
        // Marked for deletion but still there.
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "retired", "namespace": ns, "annotations": {"kluctl.io/delete": "true"}},
        }),
    ]
}

fn messages_for<'a>(list: &'a [DeploymentError], object: &str) -> Vec<&'a str> {
    list.iter()
        .filter(|e| e.object_ref.to_string() == object)
        .map(|e| e.message.as_str())
        .collect()
}

async fn create(client: &kube::Client, obj: &Value) -> anyhow::Result<()> {
    let dynamic: kube::api::DynamicObject = serde_json::from_value(obj.clone())?;
    api_for(client, &dynamic)
        .await?
        .create(&PostParams::default(), &dynamic)
        .await?;
    Ok(())
}

/// The cluster's API index, as `Cluster::connect` builds it.
async fn index(client: &kube::Client) -> anyhow::Result<SharedApiIndex> {
    let discovery = kluctl_engine::cluster::discover(client).await?;
    Ok(SharedApiIndex::new(ApiIndex::from_discovery(&discovery)))
}

async fn validate(client: &kube::Client, objects: &[Value]) -> anyhow::Result<ValidateResult> {
    let validator = ClusterValidator::new(client, index(client).await?);
    Ok(validator.validate(objects, Timestamp::now()).await)
}

#[tokio::test]
async fn validate_reports_not_ready_deployment_until_its_pod_is_ready_and_missing_objects()
-> anyhow::Result<()> {
    TestNs::run("engine-validate", |t| async move {
        let ns = t.name.as_str();
        let client = &t.client;
        let objects = rendered(ns);
        for obj in objects.iter().filter(|o| o["metadata"]["name"] != "missing") {
            create(client, obj).await?;
        }

        let first = validate(client, &objects).await?;
        let dep = format!("{ns}/Deployment/web");
        // No pod is ready: a fresh Deployment has no readyReplicas yet.
        assert_eq!(
            messages_for(&first.errors, &dep),
            ["readyReplicas field not in status or empty"],
            "{first:#?}"
        );
        assert!(!first.ready);
        assert_eq!(
            messages_for(&first.errors, &format!("{ns}/ConfigMap/missing")),
            ["object not found"]
        );
        assert_eq!(
            messages_for(&first.errors, &format!("{ns}/ConfigMap/retired")),
            ["object is marked for deletion but still exists on the target cluster"]
        );
        assert!(
            messages_for(&first.errors, &format!("{ns}/Service/web")).is_empty(),
            "{first:#?}"
        );
        assert!(messages_for(&first.errors, &format!("{ns}/ConfigMap/settings")).is_empty());
        assert_eq!(first.results.len(), 1);
        assert_eq!(first.results[0].annotation, "validate-result.kluctl.io/smoke");
        assert_eq!(first.results[0].message, "checked by hand");
        assert!(first.start_time.is_some() && first.end_time.is_some());

        // The JSON written to users and stored results uses Kluctl's field names.
        let json = serde_json::to_value(&first)?;
        assert_eq!(json["errors"][0]["ref"]["kind"], "Deployment", "{json:#}");
        assert_eq!(
            json["results"][0]["annotation"],
            "validate-result.kluctl.io/smoke"
        );

        // No kubelet here: the pod is marked Ready through its /status as admin.
        make_deployment_ready(client, ns, "web", Duration::from_secs(60)).await?;

        let second = validate(client, &objects).await?;
        assert!(messages_for(&second.errors, &dep).is_empty(), "{second:#?}");
        assert!(second.warnings.is_empty(), "{second:#?}");
        // As in Kluctl, missing objects are errors but do not clear `ready`.
        assert!(second.ready);
        assert_eq!(second.errors.len(), 2, "{second:#?}");

        // Only what exists and should: ready, nothing reported.
        let existing: Vec<Value> = objects
            .iter()
            .filter(|o| o["metadata"]["name"] != "missing" && o["metadata"]["name"] != "retired")
            .cloned()
            .collect();
        let third = validate(client, &existing).await?;
        assert!(
            third.ready && third.errors.is_empty() && third.warnings.is_empty(),
            "{third:#?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn wait_ready_returns_ready_objects_and_times_out_on_missing_ones() -> anyhow::Result<()> {
    TestNs::run("engine-validate-wait", |t| async move {
        let ns = t.name.as_str();
        let client = &t.client;
        let objects = rendered(ns);
        create(client, &objects[1]).await?;
        let validator = ClusterValidator::new(client, index(client).await?);

        let service = kluctl_engine::validate::object_ref(&objects[1]).expect("ref");
        let outcome = validator.wait_ready(&service, Duration::from_secs(10)).await;
        assert!(outcome.ready && outcome.errors.is_empty(), "{outcome:?}");

        let missing = kluctl_engine::validate::object_ref(&objects[3]).expect("ref");
        let started = std::time::Instant::now();
        let outcome = validator.wait_ready(&missing, Duration::from_millis(1500)).await;
        assert!(!outcome.ready);
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(
            outcome.errors[0].message,
            format!("timed out while waiting for readiness of {ns}/ConfigMap/missing")
        );
        assert!(started.elapsed() >= Duration::from_millis(1500));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn status_expectation_comes_from_the_cluster() -> anyhow::Result<()> {
    use gitops_api::kluctl::v1beta1::ObjectRef;
    use kluctl_engine::validate::StatusExpectation;
    let env = e2e::Env::load()?;
    let client = env.admin_client().await?;
    let validator = ClusterValidator::new(&client, index(&client).await?);
    let r = |group: &str, version: &str, kind: &str| ObjectRef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        name: "x".into(),
        namespace: "default".into(),
    };
    // Built-in kinds: the status sub-resource decides.
    assert_eq!(
        validator.status_expectation(&r("apps", "v1", "Deployment")).await,
        StatusExpectation::Required
    );
    assert_eq!(
        validator.status_expectation(&r("", "v1", "ConfigMap")).await,
        StatusExpectation::NotRequired
    );
    // A custom resource with a status (CRD schema, or its status sub-resource when the CRD
    // itself is served elsewhere, as with the aggregated apiextensions server here).
    assert_eq!(
        validator
            .status_expectation(&r("gitops.kluctl.io", "v1beta1", "KluctlDeployment"))
            .await,
        StatusExpectation::Required
    );
    // Kinds the cluster does not serve.
    assert_eq!(
        validator
            .status_expectation(&r("example.invalid", "v1", "Nothing"))
            .await,
        StatusExpectation::Unknown
    );
    Ok(())
}
