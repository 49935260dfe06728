//! Every CRD installs and becomes Established; every served version is discoverable through the
//! main endpoint with our short names and categories; `kubectl get` shows the printer columns.

use e2e::{Env, TestNs, api_for, parse_manifest, wait_for};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::conditions;
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
