//! The `kluctl` CLI's discovery cache on disk (issue 18, B6: "69 of the 149 requests of an
//! unchanged redeploy are discovery; kubectl needs 2"), end to end: the built binary deploys a
//! small project three times through an [`AuditProxy`] that records every request, with one
//! `--discovery-cache-dir` for all runs.
//!
//! ```text
//! run 1  empty cache    full discovery (one request per group version on v1.20), cache written
//! run 2  unchanged      /version + /apis only
//!        ── the admin creates a CRD of a new group ──
//! run 3  + a CR of it   /version + /apis + that group's version; the CR is deployed
//! run 4  --no-discovery-cache: full discovery again
//! ```
//!
//! Needs `cargo build -p kluctl --bin kluctl` and the environment of `make e2e-up`.

// The test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use e2e::faults::AuditProxy;
use e2e::{DeleteOnDrop, TestNs, run_kluctl, unique_name, wait_for, write_file};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::conditions;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// Whether `target` (path and query) is a discovery request: `/version`, `/api`, `/api/<v>`,
/// `/apis`, `/apis/<group>`, `/apis/<group>/<version>`.
fn is_discovery(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.first() {
        Some(&"version") => segments.len() == 1,
        Some(&"api") => segments.len() <= 2,
        Some(&"apis") => segments.len() <= 3,
        _ => false,
    }
}

/// Runs `kluctl deploy` with `extra` and requires success; returns every request it made, in
/// order (`METHOD path?query`).
fn deploy(dir: &Path, proxy: &AuditProxy, kubeconfig: &Path, extra: &[&str]) -> anyhow::Result<Vec<String>> {
    let from = proxy.requests().len();
    let kc = kubeconfig.to_string_lossy();
    let mut args = vec![
        "deploy",
        "-y",
        "-t",
        "test",
        "--write-command-result=false",
        "--kubeconfig",
        &kc,
    ];
    args.extend_from_slice(extra);
    let out = run_kluctl(dir, &args, &[])?;
    if !out.status.success() {
        bail!(
            "kluctl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(proxy.requests()[from..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect())
}

/// The discovery requests among `requests`.
fn discovery(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| is_discovery(r.split_once(' ').map_or("", |(_, t)| t)))
        .cloned()
        .collect()
}

#[test]
fn discovery_classification_matches_discovery_paths_only() {
    for p in [
        "/version",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1?timeout=5s",
    ] {
        assert!(is_discovery(p), "{p}");
    }
    for p in [
        "/api/v1/namespaces",
        "/api/v1/namespaces/x/configmaps",
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/namespaces/x/deployments/y",
        "/metrics",
    ] {
        assert!(!is_discovery(p), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_deploy_reads_discovery_from_the_disk_cache() -> anyhow::Result<()> {
    TestNs::run("discovery_cache", |t| async move {
        let ns = t.name.clone();
        let work = tempfile::tempdir()?;
        let cache_dir = work.path().join("discovery");
        let cache = cache_dir.to_string_lossy().into_owned();
        let proxy = AuditProxy::start(t.client.clone(), Duration::ZERO).await?;
        let kubeconfig = proxy.write_kubeconfig(&work.path().join("kubeconfig"))?;
        let project = work.path().join("project");
        write_file(
            &project,
            ".kluctl.yaml",
            &format!("discriminator: e2e-{ns}\ntargets:\n  - name: test\n"),
        )?;
        write_file(&project, "deployment.yaml", "deployments:\n  - path: app\n")?;
        write_file(
            &project,
            "app/configmaps.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  namespace: {ns}\ndata:\n  a: \"1\"\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  namespace: {ns}\ndata:\n  b: \"2\"\n"
            ),
        )?;
        let cached = ["--discovery-cache-dir", cache.as_str()];

        // Run 1: nothing cached, a full discovery.
        let first = discovery(&deploy(&project, &proxy, &kubeconfig, &cached)?);
        eprintln!("run 1: {} discovery requests", first.len());
        // v1.20 has no aggregated discovery: /api, /apis and one request per group version.
        if first.len() < 10 {
            bail!("expected a full discovery (10 requests or more) on an empty cache, got {first:?}");
        }
        let files: Vec<_> = fs_err::read_dir(&cache_dir)?.collect::<Result<_, _>>()?;
        if files.len() != 1 {
            bail!("expected one server directory in {cache}, got {files:?}");
        }
        let file = files[0].path().join("discovery.json");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs_err::metadata(&file)?.permissions().mode() & 0o777;
            if mode != 0o600 {
                bail!("{} has mode {mode:o}, expected 600", file.display());
            }
        }

        // Run 2: unchanged, from the cache.
        let second = discovery(&deploy(&project, &proxy, &kubeconfig, &cached)?);
        eprintln!("run 2: {second:?}");
        if second.len() > 2 || second.len() * 5 > first.len() {
            bail!(
                "the second run made {} discovery requests (first: {}): {second:?}",
                second.len(),
                first.len()
            );
        }

        // A CRD of a new group appears on the cluster (not in the cache).
        let group = format!("{}.e2e.example.com", unique_name("dc"));
        let crd_name = format!("gizmos.{group}");
        let _crd_guard = DeleteOnDrop::object(&t.env, "crd", &crd_name);
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": crd_name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "listKind": "GizmoList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }],
            },
        });
        let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
        crds.create(&PostParams::default(), &serde_json::from_value(crd)?)
            .await
            .with_context(|| format!("creating CRD {crd_name}"))?;
        wait_for(&crds, &crd_name, "Established", WAIT, conditions::is_crd_established()).await?;
        write_file(
            &project,
            "app/gizmo.yaml",
            &format!("apiVersion: {group}/v1\nkind: Gizmo\nmetadata:\n  name: g1\n  namespace: {ns}\nspec:\n  size: 1\n"),
        )?;

        // Run 3: the new group is read alone, at connect (the `/apis` check), not by the apply
        // meeting an unknown kind (which would read it after the listing requests).
        let all = deploy(&project, &proxy, &kubeconfig, &cached)?;
        let third = discovery(&all);
        eprintln!("run 3: {third:?}");
        let group_path = format!("/apis/{group}/v1");
        let group_read = all.iter().position(|r| r.ends_with(&group_path) || r.contains(&format!("{group_path}?")));
        let first_resource = all.iter().position(|r| !third.contains(r));
        match (group_read, first_resource) {
            (Some(g), Some(f)) if g < f && third.len() <= 3 => {}
            _ => bail!("run 3 should read /version, /apis and {group_path} before anything else, got {all:?}"),
        }
        let gvk = GroupVersionKind::gvk(&group, "v1", "Gizmo");
        let (ar, _) = kube::discovery::pinned_kind(&t.client, &gvk).await?;
        // Deployed into `default` if the fix-up had not known the kind: look in the test's.
        let gizmos: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), &ns, &ar);
        if gizmos.get_opt("g1").await?.is_none() {
            bail!("Gizmo g1 was not deployed into namespace {ns}");
        }

        // Run 4: without the cache, a full discovery again.
        let fourth = discovery(&deploy(&project, &proxy, &kubeconfig, &["--no-discovery-cache"])?);
        eprintln!("run 4: {} discovery requests", fourth.len());
        if fourth.len() < first.len() {
            bail!(
                "--no-discovery-cache made {} discovery requests, fewer than the first run's {}",
                fourth.len(),
                first.len()
            );
        }
        // The Gizmo must be deleted before its CRD (the guard) goes, or its namespace hangs.
        gizmos.delete("g1", &DeleteParams::default()).await?;
        Ok(())
    })
    .await
}
