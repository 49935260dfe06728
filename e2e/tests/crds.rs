//! Every CRD installs and becomes Established; every served version is discoverable through the
//! main endpoint with our short names and categories; `kubectl get` shows the printer columns;
//! an Alert may name KluctlDeployments and Alerts and Providers keep a dispatch status.

use e2e::{Env, TestNs, api_for, parse_manifest, wait_for};
use gitops_api::notification::v1::ReferencedKind;
use gitops_api::notification::v1beta3::{Alert, Provider};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::conditions;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn every_crd_is_established_and_discoverable() -> anyhow::Result<()> {
    let env = Env::load()?;
    let client = env.admin_client().await?;
    for crd in gitops_api::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        if env.cel_enforced() {
            // Served by the aggregated apiextensions-apiserver: each version's APIService must be
            // Available in the main apiserver.
            let services: Api<APIService> = Api::all(client.clone());
            for v in crd.spec.versions.iter().filter(|v| v.served) {
                let svc = format!("{}.{}", v.name, crd.spec.group);
                wait_for(
                    &services,
                    &svc,
                    "APIService Available",
                    Duration::from_secs(60),
                    |s: Option<&APIService>| {
                        s.and_then(|s| s.status.as_ref())
                            .and_then(|st| st.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.type_ == "Available" && c.status == "True"))
                    },
                )
                .await?;
            }
        } else {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            wait_for(
                &crds,
                &name,
                "Established",
                Duration::from_secs(60),
                conditions::is_crd_established(),
            )
            .await?;
        }
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let gv = format!("{}/{}", crd.spec.group, v.name);
            let list = client.list_api_group_resources(&gv).await?;
            let res = list
                .resources
                .iter()
                .find(|r| r.name == crd.spec.names.plural)
                .unwrap_or_else(|| panic!("{gv} does not list {}", crd.spec.names.plural));
            assert_eq!(res.kind, crd.spec.names.kind, "{gv}");
            assert_eq!(
                res.short_names.clone().unwrap_or_default(),
                crd.spec.names.short_names.clone().unwrap_or_default(),
                "{gv} short names"
            );
            assert_eq!(
                res.categories.clone().unwrap_or_default(),
                crd.spec.names.categories.clone().unwrap_or_default(),
                "{gv} categories"
            );
            assert!(
                list.resources
                    .iter()
                    .any(|r| r.name == format!("{}/status", crd.spec.names.plural))
                    || v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_none(),
                "{gv} status subresource"
            );
        }
    }
    Ok(())
}

fn header_of(table: &str, first_col_contains: &str) -> Vec<String> {
    // kubectl prints one table per kind; find the header row of the table whose rows mention the name.
    let mut header = Vec::new();
    for line in table.lines() {
        if line.starts_with("NAMESPACE") {
            header = line.split_whitespace().map(str::to_string).collect();
        } else if line.contains(first_col_contains) && !header.is_empty() {
            return header;
        }
    }
    Vec::new()
}

#[tokio::test]
async fn kubectl_get_shows_printer_columns() -> anyhow::Result<()> {
    TestNs::run("printer_columns", |t| async move {
        let ns = &t.name;
        let manifests = [
            format!("apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: cols-git, namespace: {ns}}}\nspec: {{interval: 1m, url: 'https://example.com/repo.git'}}\n"),
            format!("apiVersion: source.toolkit.fluxcd.io/v1\nkind: Bucket\nmetadata: {{name: cols-bucket, namespace: {ns}}}\nspec: {{interval: 1m, bucketName: b, endpoint: 'minio.example.com'}}\n"),
            format!("apiVersion: gitops.kluctl.io/v1beta1\nkind: KluctlDeployment\nmetadata: {{name: cols-kd, namespace: {ns}}}\nspec: {{interval: 1m, source: {{git: {{url: 'https://example.com/p.git'}}}}}}\n"),
            format!("apiVersion: flux.kluctl.io/v1alpha1\nkind: KluctlDeployment\nmetadata: {{name: cols-legacy, namespace: {ns}}}\nspec: {{interval: 1m, target: t, sourceRef: {{kind: GitRepository, name: x}}}}\n"),
        ];
        for m in &manifests {
            let obj = parse_manifest(m)?;
            let api = api_for(&t.client, &obj).await?;
            api.patch(obj.metadata.name.as_deref().unwrap_or_default(), &PatchParams::apply("e2e"), &Patch::Apply(&obj)).await?;
        }
        let out = t.env.kubectl(&["get", "gitrepo,buckets,kluctldeployments", "-A"])?;
        println!("{out}");
        assert_eq!(header_of(&out, "cols-git"), ["NAMESPACE", "NAME", "URL", "AGE", "READY", "STATUS"]);
        assert_eq!(header_of(&out, "cols-bucket"), ["NAMESPACE", "NAME", "ENDPOINT", "AGE", "READY", "STATUS"]);
        assert!(out.contains("https://example.com/repo.git") && out.contains("minio.example.com"), "column values");

        let out = t.env.kubectl(&["get", "kluctldeployments.gitops.kluctl.io", "-A"])?;
        println!("{out}");
        assert_eq!(header_of(&out, "cols-kd"), ["NAMESPACE", "NAME", "SUSPEND", "DRYRUN", "DEPLOYED", "READY", "DRIFT", "STATUS", "AGE"]);
        let out = t.env.kubectl(&["get", "kluctldeployments.flux.kluctl.io", "-A"])?;
        println!("{out}");
        assert_eq!(header_of(&out, "cols-legacy"), ["NAMESPACE", "NAME", "DRYRUN", "DEPLOYED", "PRUNED", "VALIDATED", "READY", "STATUS", "AGE"]);
        Ok(())
    })
    .await
}

/// The seed 004 pipeline written down: an Alert whose `eventSources` name KluctlDeployments (by
/// name, and `*` with `matchLabels`) is accepted next to Flux's kinds; Alert and Provider take a
/// status through the status subresource only (a write of the main resource leaves it alone),
/// and `kubectl get` shows it in the Ready and Status columns.
#[tokio::test]
#[allow(clippy::too_many_lines)] // one scenario told start to finish
async fn an_alert_on_kluctl_deployments_is_accepted_and_keeps_a_dispatch_status() -> anyhow::Result<()> {
    TestNs::run("alert_status", |t| async move {
        let ns = &t.name;
        let ssa = PatchParams::apply("e2e").force();
        let providers: Api<Provider> = Api::namespaced(t.client.clone(), ns);
        let alerts: Api<Alert> = Api::namespaced(t.client.clone(), ns);
        providers
            .patch(
                "hook",
                &ssa,
                &Patch::Apply(json!({
                    "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
                    "kind": "Provider",
                    "metadata": {"name": "hook", "namespace": ns},
                    "spec": {"type": "generic", "address": "http://127.0.0.1:1/"},
                })),
            )
            .await?;
        let alert = alerts
            .patch(
                "deploys",
                &ssa,
                &Patch::Apply(json!({
                    "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
                    "kind": "Alert",
                    "metadata": {"name": "deploys", "namespace": ns},
                    "spec": {
                        "providerRef": {"name": "hook"},
                        "eventSeverity": "error",
                        "eventSources": [
                            {"kind": "KluctlDeployment", "name": "*", "matchLabels": {"team": "payments"}},
                            {"kind": "KluctlDeployment", "name": "app", "namespace": "apps"},
                            {"kind": "GitRepository", "name": "*"},
                        ],
                    },
                })),
            )
            .await?;
        let kinds: Vec<ReferencedKind> = alert.spec.event_sources.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                ReferencedKind::KluctlDeployment,
                ReferencedKind::KluctlDeployment,
                ReferencedKind::GitRepository
            ]
        );
        assert_eq!(alert.spec.event_sources[0].match_labels["team"], "payments");
        assert!(
            alert.status.is_none(),
            "a new Alert has no status: {:?}",
            alert.status
        );

        // The dispatcher's write after a failed send.
        let failed = json!({"status": {
            "observedGeneration": 1,
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "NotificationDispatchFailed",
                "message": "failed to send to http://127.0.0.1:1/: connection refused",
                "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
            }],
            "lastDispatchTime": "2026-01-01T00:00:00Z",
            "lastDispatchError": "failed to send to http://127.0.0.1:1/: connection refused",
        }});
        alerts
            .patch_status("deploys", &PatchParams::default(), &Patch::Merge(&failed))
            .await?;
        providers
            .patch_status("hook", &PatchParams::default(), &Patch::Merge(&failed))
            .await?;
        let status = alerts.get("deploys").await?.status.unwrap_or_default();
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(status.last_dispatch_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(
            status.last_dispatch_error.contains("connection refused"),
            "{status:?}"
        );
        let ready = status
            .conditions
            .first()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()));
        assert_eq!(ready, Some(("Ready", "False", "NotificationDispatchFailed")));
        let provider_status = providers.get("hook").await?.status.unwrap_or_default();
        assert_eq!(provider_status.last_dispatch_error, status.last_dispatch_error);

        // Status is a subresource: a write of the main resource does not reach it.
        alerts
            .patch(
                "deploys",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"lastDispatchError": "from the main resource"}})),
            )
            .await?;
        let status = alerts.get("deploys").await?.status.unwrap_or_default();
        assert!(
            status.last_dispatch_error.contains("connection refused"),
            "{status:?}"
        );

        for resource in ["alerts", "providers"] {
            let out = t.env.kubectl(&["get", resource, "-A"])?;
            println!("{out}");
            assert_eq!(
                header_of(&out, ns),
                ["NAMESPACE", "NAME", "AGE", "READY", "STATUS"]
            );
            let row = out
                .lines()
                .find(|l| l.starts_with(ns.as_str()))
                .unwrap_or_default();
            assert!(
                row.contains("False") && row.contains("connection refused"),
                "Ready and Status columns: {row}"
            );
        }

        // After a successful send the error is gone.
        alerts
            .patch_status(
                "deploys",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "conditions": [{
                        "type": "Ready", "status": "True", "reason": "Succeeded", "message": "",
                        "lastTransitionTime": "2026-01-01T00:01:00Z",
                    }],
                    "lastDispatchTime": "2026-01-01T00:01:00Z",
                    "lastDispatchError": null,
                }})),
            )
            .await?;
        let status = alerts.get("deploys").await?.status.unwrap_or_default();
        assert_eq!(status.last_dispatch_error, "");
        assert_eq!(status.last_dispatch_time.as_deref(), Some("2026-01-01T00:01:00Z"));
        Ok(())
    })
    .await
}
