//! `kluctl install`, `kluctl check` and `kluctl uninstall` against the real apiserver.
//!
//! The installation goes into the test's namespace (`--namespace`), so its cluster-scoped RBAC
//! carries the namespace as a suffix and is removed by drop guards too. The CRDs are those the
//! environment already serves: in the hybrid environment an aggregated apiextensions-apiserver
//! serves their APIs and `install` must leave them alone (a CRD in kube-apiserver would take the
//! APIs over); in the plain environment they are applied unchanged. No kubelet runs, so the
//! controller Deployments never become available: `check` must say so. The cycle installs the
//! web UI too (`--webui`), so `check` and `uninstall` are shown to cover it.
//!
//! Needs the `kluctl` binary (`cargo build -p kluctl --bin kluctl`) and the cluster of
//! `make e2e-up` (with the CRDs).

use std::path::Path;
use std::process::Output;

use anyhow::{Context as _, ensure};
use e2e::{TestNs, ensure_namespace, installation_guards, run_kluctl};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// The namespace of the command results (shared by every test; never deleted here).
const RESULTS_NS: &str = "kluctl-results";

fn kluctl(args: &[&str]) -> anyhow::Result<(Option<i32>, String, String)> {
    let out: Output = run_kluctl(Path::new("."), args, &[])?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn the_export_passes_a_server_side_dry_run() -> anyhow::Result<()> {
    TestNs::run("install_export", |t| async move {
        ensure_namespace(&t.client, RESULTS_NS).await?;
        // kube-apiserver 1.20 refuses CEL rules under server-side apply: export for its version.
        let version = t.env.get("E2E_KUBE_VERSION")?.to_owned();
        let export = |webui: &[&str]| -> anyhow::Result<String> {
            let mut args = vec![
                "install",
                "--export",
                "--namespace",
                &t.name,
                "--kubernetes-version",
                &version,
            ];
            args.extend(webui);
            let (code, yaml, err) = kluctl(&args)?;
            ensure!(code == Some(0), "install {args:?} failed: {err}");
            Ok(yaml)
        };
        let plain = export(&[])?;
        ensure!(
            !plain.contains("kluctl-webui"),
            "the web UI exported without --webui"
        );
        // The web UI's objects come after the others: one dry run checks both exports.
        let yaml = export(&["--webui"])?;
        ensure!(
            yaml.starts_with(&plain),
            "--webui changed the other objects:\n{yaml}"
        );
        ensure!(
            !yaml.contains("x-kubernetes-validations"),
            "CEL rules left in the manifests for 1.20"
        );
        let objects = yaml.matches("\nkind: ").count();
        let webui_objects = objects - plain.matches("\nkind: ").count();
        ensure!(
            objects >= 20 && webui_objects == 11,
            "{objects} objects exported, {webui_objects} of them the web UI's"
        );
        let out = t
            .env
            // As kluctl install's field manager: the shared kluctl-results Namespace carries the
            // labels of the installations other tests made.
            .kubectl_with_input(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=kluctl-install",
                    "--dry-run=server",
                    "-f",
                    "-",
                ],
                Some(&yaml),
            )
            .context("the server refused the exported manifests")?;
        let accepted = out.lines().filter(|l| l.contains("(server dry run)")).count();
        ensure!(
            accepted == objects,
            "{accepted} of {objects} objects accepted:\n{out}"
        );
        let ns = &t.name;
        for line in [
            "deployment.apps/kluctl-controller serverside-applied".to_owned(),
            "service/webhook-receiver serverside-applied".to_owned(),
            "deployment.apps/kluctl-webui serverside-applied".to_owned(),
            "service/kluctl-webui serverside-applied".to_owned(),
            format!("clusterrolebinding.rbac.authorization.k8s.io/kluctl-gitops:kluctl-webui-{ns} serverside-applied"),
            format!("rolebinding.rbac.authorization.k8s.io/kluctl-webui-results-{ns} serverside-applied"),
            "role.rbac.authorization.k8s.io/kluctl-webui-auth serverside-applied".to_owned(),
            "role.rbac.authorization.k8s.io/kluctl-webui-logs serverside-applied".to_owned(),
            "rolebinding.rbac.authorization.k8s.io/kluctl-webui-logs serverside-applied".to_owned(),
        ] {
            ensure!(out.contains(&line), "missing '{line}' in:\n{out}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn install_check_and_uninstall_in_a_namespace() -> anyhow::Result<()> {
    TestNs::run("install_cycle", |t| async move {
        let _guards = installation_guards(&t.env, &t.name);
        Box::pin(create_app(&t)).await?;
        Box::pin(install_twice(&t)).await?;
        check_reports_unavailable_deployments(&t)?;
        Box::pin(uninstall_keeps_the_app(&t)).await
    })
    .await
}

/// A KluctlDeployment and an object it deployed, there before the installation.
async fn create_app(t: &TestNs) -> anyhow::Result<()> {
    let ns = t.name.clone();
    let kds: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
    let kd: KluctlDeployment = serde_json::from_value(json!({
        "apiVersion": "gitops.kluctl.io/v1beta1",
        "kind": "KluctlDeployment",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {
            "interval": "5m",
            "source": {"git": {"url": "http://127.0.0.1:1/none.git"}},
            "target": "test",
            "prune": true,
        },
    }))?;
    kds.create(&PostParams::default(), &kd)
        .await
        .context("creating the KluctlDeployment")?;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "deployed", "labels": {"kluctl.io/discriminator": "app"}},
        "data": {"a": "b"},
    }))?;
    cms.create(&PostParams::default(), &cm).await?;

    Ok(())
}

async fn install_twice(t: &TestNs) -> anyhow::Result<()> {
    let ns = t.name.clone();
    let hybrid = t.env.get("E2E_CRD_MODE").is_ok_and(|m| m == "hybrid");
    let install = [
        "install",
        "--namespace",
        &ns,
        "--watch-all-namespaces=false",
        "--webui",
    ];
    let (code, out, err) = kluctl(&install)?;
    ensure!(code == Some(0), "install failed: {err}\n{out}");
    for line in [
        format!("Deployment {ns}/kluctl-controller created"),
        format!("Deployment {ns}/source-controller created"),
        format!("Service {ns}/webhook-receiver created"),
        format!("ClusterRole kluctl-gitops:kluctl-controller-{ns} created"),
        format!("RoleBinding {RESULTS_NS}/kluctl-controller-results-{ns} created"),
        format!("Deployment {ns}/kluctl-webui created"),
        format!("Service {ns}/kluctl-webui created"),
        format!("ClusterRoleBinding kluctl-gitops:kluctl-webui-{ns} created"),
        format!("RoleBinding {RESULTS_NS}/kluctl-webui-results-{ns} created"),
        format!("RoleBinding {ns}/kluctl-webui-auth created"),
        format!("Role {ns}/kluctl-webui-logs created"),
        format!("RoleBinding {ns}/kluctl-webui-logs created"),
    ] {
        ensure!(out.contains(&line), "missing '{line}' in:\n{out}");
    }
    if hybrid {
        ensure!(
            out.contains("CustomResourceDefinition kluctldeployments.gitops.kluctl.io skipped: its API is served by APIService v1beta1.gitops.kluctl.io"),
            "{out}"
        );
    }
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &ns);
    let d = deployments.get("kluctl-controller").await?;
    let labels = d.metadata.labels.unwrap_or_default();
    ensure!(labels.get("app.kubernetes.io/part-of").map(String::as_str) == Some("kluctl-gitops"));
    ensure!(labels.get("app.kubernetes.io/instance") == Some(&ns));
    let args = d
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    ensure!(
        args.contains(&"--namespace=$(KLUCTL_CONTROLLER_NAMESPACE)".to_owned()),
        "{args:?}"
    );
    let crb: Api<ClusterRoleBinding> = Api::all(t.client.clone());
    let b = crb.get(&format!("kluctl-gitops:source-controller-{ns}")).await?;
    ensure!(b.subjects.unwrap_or_default()[0].namespace.as_deref() == Some(ns.as_str()));

    let (code, again, err) = kluctl(&install)?;
    ensure!(code == Some(0), "second install failed: {err}");
    ensure!(
        again.contains("nothing changed: the installation is up to date"),
        "{again}"
    );
    ensure!(
        !again.contains(" created") && !again.contains(" configured"),
        "{again}"
    );

    Ok(())
}

/// No kubelet: the Deployments exist but never become available.
fn check_reports_unavailable_deployments(t: &TestNs) -> anyhow::Result<()> {
    let ns = t.name.clone();
    let (code, table, err) = kluctl(&["check", "--namespace", &ns])?;
    ensure!(
        code == Some(1),
        "check passed without running controllers:\n{table}"
    );
    for c in ["kluctl-controller", "source-controller", "kluctl-webui"] {
        let row = table
            .lines()
            .find(|l| l.starts_with("Deployment") && l.contains(&format!("{ns}/{c} ")))
            .with_context(|| format!("no row for {c}:\n{table}"))?;
        ensure!(
            row.contains("FAILED") && row.contains("not available (0/1 replicas available)"),
            "{row}"
        );
        ensure!(
            err.contains(&format!("Deployment {ns}/{c}: not available")),
            "{err}"
        );
    }
    let crd_row = table
        .lines()
        .find(|l| l.contains("kluctldeployments.gitops.kluctl.io"))
        .with_context(|| format!("no CRD row:\n{table}"))?;
    ensure!(crd_row.contains(" ok "), "{crd_row}");
    ensure!(
        table.lines().next().is_some_and(|h| h.starts_with("CHECK")),
        "{table}"
    );
    let (code, pre, err) = kluctl(&["check", "--pre", "--namespace", &ns])?;
    ensure!(code == Some(0), "check --pre failed: {err}\n{pre}");
    ensure!(
        pre.contains("server version") && pre.contains("(>= 1.20)"),
        "{pre}"
    );
    ensure!(pre.contains("may create"), "{pre}");

    Ok(())
}

async fn uninstall_keeps_the_app(t: &TestNs) -> anyhow::Result<()> {
    let ns = t.name.clone();
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &ns);
    let crb: Api<ClusterRoleBinding> = Api::all(t.client.clone());
    let kds: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    // Without --yes and without a terminal nothing is removed.
    let (code, _, err) = kluctl(&["uninstall", "--namespace", &ns, "--keep-namespace"])?;
    ensure!(code == Some(1) && err.contains("without confirmation"), "{err}");
    deployments
        .get("kluctl-controller")
        .await
        .context("removed without confirmation")?;

    let (code, out, err) = kluctl(&["uninstall", "--namespace", &ns, "--keep-namespace", "--yes"])?;
    ensure!(code == Some(0), "uninstall failed: {err}\n{out}");
    ensure!(
        out.contains(&format!("KluctlDeployment {ns}/app suspended")),
        "{out}"
    );
    let gone = |there: bool, name: &str| -> anyhow::Result<()> {
        ensure!(!there, "{name} is still there");
        Ok(())
    };
    gone(
        deployments.get_opt("kluctl-controller").await?.is_some(),
        "Deployment kluctl-controller",
    )?;
    gone(
        deployments.get_opt("source-controller").await?.is_some(),
        "Deployment source-controller",
    )?;
    gone(
        deployments.get_opt("kluctl-webui").await?.is_some(),
        "Deployment kluctl-webui",
    )?;
    let services: Api<Service> = Api::namespaced(t.client.clone(), &ns);
    for s in [
        "kluctl-controller",
        "webhook-receiver",
        "source-controller",
        "kluctl-webui",
    ] {
        gone(services.get_opt(s).await?.is_some(), s)?;
    }
    let sas: Api<ServiceAccount> = Api::namespaced(t.client.clone(), &ns);
    for sa in ["kluctl-controller", "kluctl-webui"] {
        gone(sas.get_opt(sa).await?.is_some(), sa)?;
    }
    let roles: Api<Role> = Api::namespaced(t.client.clone(), &ns);
    for r in [
        "kluctl-controller-leader-election",
        "kluctl-webui-auth",
        "kluctl-webui-logs",
    ] {
        gone(roles.get_opt(r).await?.is_some(), r)?;
    }
    let results: Api<RoleBinding> = Api::namespaced(t.client.clone(), RESULTS_NS);
    let crs: Api<ClusterRole> = Api::all(t.client.clone());
    for c in ["kluctl-controller", "kluctl-webui"] {
        let binding = format!("{c}-results-{ns}");
        gone(results.get_opt(&binding).await?.is_some(), &binding)?;
        let cluster = format!("kluctl-gitops:{c}-{ns}");
        gone(crs.get_opt(&cluster).await?.is_some(), &cluster)?;
        gone(crb.get_opt(&cluster).await?.is_some(), &cluster)?;
    }

    // What the KluctlDeployment deployed, the KluctlDeployment (suspended), its CRD and the
    // namespace stay.
    let kd = kds.get("app").await.context("the KluctlDeployment was deleted")?;
    ensure!(kd.spec.suspend, "the KluctlDeployment was not suspended");
    cms.get("deployed")
        .await
        .context("a deployed object was deleted")?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(t.client.clone());
    namespaces
        .get(&ns)
        .await
        .context("--keep-namespace did not keep it")?;

    // Run again, with no controller left to stop: no KluctlDeployment is suspended, here or in
    // any other namespace of the cluster.
    kds.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await?;
    let (code, again, err) = kluctl(&["uninstall", "--namespace", &ns, "--keep-namespace", "--yes"])?;
    ensure!(code == Some(0), "{err}");
    ensure!(again.contains("nothing to remove"), "{again}");
    ensure!(!again.contains("suspended"), "{again}");
    ensure!(
        !kds.get("app").await?.spec.suspend,
        "an uninstall without a controller suspended a KluctlDeployment"
    );
    Ok(())
}
