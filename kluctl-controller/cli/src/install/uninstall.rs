//! `kluctl uninstall`: removes what `kluctl install` applied, never what the KluctlDeployments
//! deployed.
//!
//! ```text
//! suspend the KluctlDeployments the controller reconciles (so nothing prunes or deletes while
//!   it goes away) ─► delete the Deployments, Services, RBAC, ServiceAccounts (reverse apply order)
//! ─► delete the namespace (unless --keep-namespace, or KluctlDeployments still live in it)
//! ─► delete the CRDs (only with --delete-crds: that deletes every object of those kinds)
//! ```
//!
//! The web UI's objects are always among those deleted (`kluctl install --webui` may have applied
//! them; those absent are skipped), but never the Secret with its passwords, which the user made.
//! The kluctl-results namespace stays: it holds the command results of the local `kluctl` too.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::apply::api_for;
use super::manifests::{Manifests, describe, kind, name};

/// How often the objects are read while waiting for them to be gone.
const POLL: Duration = Duration::from_millis(250);

/// The KluctlDeployment kinds: (group, version).
const KD_GROUPS: &[(&str, &str)] = &[("gitops.kluctl.io", "v1beta1"), ("flux.kluctl.io", "v1alpha1")];

/// What to remove besides the controllers.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// Delete the controllers' namespace (when no KluctlDeployment lives in it).
    pub delete_namespace: bool,
    /// Delete the CRDs.
    pub delete_crds: bool,
}

/// Uninstalls the controllers of `namespace`.
///
/// # Errors
/// The first failed API call, or objects still present after `timeout`.
pub async fn uninstall(
    client: &Client,
    m: &Manifests,
    namespace: &str,
    scope: Scope,
    timeout: Duration,
) -> anyhow::Result<()> {
    match watched_namespace(client, namespace).await? {
        Watched::Nothing => {}
        Watched::All => suspend_all(client, None).await?,
        Watched::Namespace(ns) => suspend_all(client, Some(&ns)).await?,
    }
    let mut removed = 0;
    for o in m.objects.iter().rev().filter(|o| kind(o) != "Namespace") {
        removed += usize::from(delete(client, o).await?);
    }
    for o in m.objects.iter().rev().filter(|o| kind(o) != "Namespace") {
        wait_gone(client, o, timeout).await?;
    }
    if scope.delete_namespace {
        let remaining = kluctl_deployments(client, Some(namespace)).await?;
        if remaining.is_empty() {
            let ns = m
                .objects
                .iter()
                .find(|o| kind(o) == "Namespace" && name(o) == namespace)
                .cloned()
                .unwrap_or_else(
                    || json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
                );
            removed += usize::from(delete(client, &ns).await?);
        } else {
            println!(
                "Namespace {namespace} kept: it holds {} KluctlDeployment(s) ({}); delete them first \
                 to remove it",
                remaining.len(),
                remaining.join(", ")
            );
        }
    }
    if scope.delete_crds {
        for o in &m.crds {
            removed += usize::from(delete(client, o).await?);
        }
    }
    if removed == 0 {
        println!("nothing to remove: kluctl-gitops is not installed in namespace {namespace}");
    }
    Ok(())
}

/// What the kluctl-controller of an installation watches.
enum Watched {
    /// No kluctl-controller is installed there: nothing reconciles, nothing to suspend (a
    /// mistyped `--namespace`, or an uninstall run again, touches no KluctlDeployment).
    Nothing,
    /// Every namespace.
    All,
    /// One namespace (its `--namespace` argument).
    Namespace(String),
}

/// What the kluctl-controller installed in `namespace` watches.
async fn watched_namespace(client: &Client, namespace: &str) -> anyhow::Result<Watched> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), namespace);
    let Some(d) = api
        .get_opt("kluctl-controller")
        .await
        .with_context(|| format!("failed to read Deployment {namespace}/kluctl-controller"))?
    else {
        return Ok(Watched::Nothing);
    };
    let args = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    Ok(watch_arg(&args, namespace).map_or(Watched::All, Watched::Namespace))
}

/// The value of `--namespace=X` in `args` (with `$(KLUCTL_CONTROLLER_NAMESPACE)` resolved to the
/// controller's namespace), `None` when absent or empty.
fn watch_arg(args: &[String], namespace: &str) -> Option<String> {
    let mut it = args.iter();
    let mut value = None;
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--namespace=") {
            value = Some(v.to_owned());
        } else if a == "--namespace" {
            value = it.next().cloned();
        }
    }
    value
        .map(|v| v.replace("$(KLUCTL_CONTROLLER_NAMESPACE)", namespace))
        .filter(|v| !v.is_empty())
}

fn kd_api(client: &Client, group: &str, version: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "KluctlDeployment"),
        "kluctldeployments",
    );
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// `ns/name` of every KluctlDeployment (both groups) in `ns`, or in the cluster.
async fn kluctl_deployments(client: &Client, ns: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (group, version) in KD_GROUPS {
        for kd in list_kds(client, group, version, ns).await? {
            out.push(format!(
                "{}/{}",
                kd.metadata.namespace.unwrap_or_default(),
                kd.metadata.name.unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

/// The KluctlDeployments of one group; none when its CRD is not installed.
async fn list_kds(
    client: &Client,
    group: &str,
    version: &str,
    ns: Option<&str>,
) -> anyhow::Result<Vec<DynamicObject>> {
    match kd_api(client, group, version, ns)
        .list(&ListParams::default())
        .await
    {
        Ok(l) => Ok(l.items),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("failed to list the KluctlDeployments.{group}")),
    }
}

/// Sets `spec.suspend: true` on every KluctlDeployment in `ns` (every namespace when `None`).
async fn suspend_all(client: &Client, ns: Option<&str>) -> anyhow::Result<()> {
    let mut count = 0;
    for (group, version) in KD_GROUPS {
        for kd in list_kds(client, group, version, ns).await? {
            let (kd_ns, kd_name) = (
                kd.metadata.namespace.unwrap_or_default(),
                kd.metadata.name.unwrap_or_default(),
            );
            if kd.data["spec"]["suspend"] == true {
                continue;
            }
            kd_api(client, group, version, Some(&kd_ns))
                .patch(
                    &kd_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"suspend": true}})),
                )
                .await
                .with_context(|| format!("failed to suspend KluctlDeployment.{group} {kd_ns}/{kd_name}"))?;
            println!("KluctlDeployment {kd_ns}/{kd_name} suspended");
            count += 1;
        }
    }
    if count > 0 {
        println!(
            "{count} KluctlDeployment(s) suspended: nothing prunes or deletes while the controller goes away"
        );
    }
    Ok(())
}

/// Deletes `o`; `false` when it did not exist.
async fn delete(client: &Client, o: &Value) -> anyhow::Result<bool> {
    let api = api_for(client, o)?;
    match api.delete(name(o), &DeleteParams::background()).await {
        Ok(_) => {
            println!("{} deleted", describe(o));
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e).with_context(|| format!("failed to delete {}", describe(o))),
    }
}

async fn wait_gone(client: &Client, o: &Value, timeout: Duration) -> anyhow::Result<()> {
    let api = api_for(client, o)?;
    let deadline = Instant::now() + timeout;
    while api
        .get_opt(name(o))
        .await
        .with_context(|| format!("failed to read {}", describe(o)))?
        .is_some()
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} is still present after {}s",
            describe(o),
            timeout.as_secs()
        );
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::watch_arg;

    #[test]
    fn the_watched_namespace_comes_from_the_namespace_argument() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(watch_arg(&args(&["--leader-elect"]), "ns"), None);
        assert_eq!(watch_arg(&args(&["--namespace="]), "ns"), None);
        assert_eq!(
            watch_arg(&args(&["--namespace", "a"]), "ns").as_deref(),
            Some("a")
        );
        assert_eq!(
            watch_arg(&args(&["--namespace=$(KLUCTL_CONTROLLER_NAMESPACE)"]), "ns").as_deref(),
            Some("ns")
        );
    }
}
