//! `kluctl install` without `--export`: server-side apply (field manager `kluctl-install`,
//! forced) of the CRDs, a wait until each is Established, then the rest, one object at a time.
//! Each object is reported as created, configured or unchanged, so a second run says that
//! nothing changed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

use super::manifests::{Manifests, describe, kind, name, namespace};

/// The field manager of everything `kluctl install` applies.
pub const FIELD_MANAGER: &str = "kluctl-install";

/// How often the CRDs are read while waiting for them to be Established.
const POLL: Duration = Duration::from_millis(250);

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed and nothing changed.
    Unchanged,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        }
    }
}

/// The API of the kind of `o` (every kind the installation contains, without discovery).
///
/// # Errors
/// A kind the manifests are not expected to contain.
pub(crate) fn api_for(client: &Client, o: &Value) -> anyhow::Result<Api<DynamicObject>> {
    let (group, version, plural, namespaced) = match kind(o) {
        "CustomResourceDefinition" => ("apiextensions.k8s.io", "v1", "customresourcedefinitions", false),
        "Namespace" => ("", "v1", "namespaces", false),
        "ServiceAccount" => ("", "v1", "serviceaccounts", true),
        "Service" => ("", "v1", "services", true),
        "Deployment" => ("apps", "v1", "deployments", true),
        "ClusterRole" => ("rbac.authorization.k8s.io", "v1", "clusterroles", false),
        "ClusterRoleBinding" => ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", false),
        "Role" => ("rbac.authorization.k8s.io", "v1", "roles", true),
        "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings", true),
        other => anyhow::bail!("{}: kind '{other}' is not part of an installation", describe(o)),
    };
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind(o)), plural);
    Ok(match (namespaced, namespace(o)) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (true, None) => anyhow::bail!("{}: metadata.namespace is missing", describe(o)),
        (false, _) => Api::all_with(client.clone(), &ar),
    })
}

/// Applies the manifests and prints one line per object; the last line says whether anything
/// changed.
///
/// # Errors
/// The first object the server refuses, or a CRD that is not Established within `timeout`.
pub async fn apply(client: &Client, m: &Manifests, timeout: Duration) -> anyhow::Result<()> {
    apply_as(client, m, timeout, FIELD_MANAGER).await
}

/// [`apply`] with another field manager (bootstrap applies as the Kluctl engine does, so the
/// sync's later deploys own the same fields).
///
/// # Errors
/// As [`apply`].
pub async fn apply_as(
    client: &Client,
    m: &Manifests,
    timeout: Duration,
    manager: &str,
) -> anyhow::Result<()> {
    let mut changed = 0;
    let aggregated = aggregated_apis(client).await?;
    let mut applied = Vec::new();
    for o in &m.crds {
        if let Some(service) = served_elsewhere(o, &aggregated) {
            println!("{} skipped: its API is served by {service}", describe(o));
            continue;
        }
        changed += usize::from(apply_one(client, o, manager).await? != Outcome::Unchanged);
        applied.push(o);
    }
    for o in applied {
        wait_established(client, o, timeout).await?;
    }
    for o in &m.objects {
        changed += usize::from(apply_one(client, o, manager).await? != Outcome::Unchanged);
    }
    if changed == 0 {
        println!("nothing changed: the installation is up to date");
    } else {
        println!("{changed} of {} objects changed", m.crds.len() + m.objects.len());
    }
    Ok(())
}

/// `version.group` ─► `APIService name (service ns/name)` of every API an aggregated server
/// (not kube-apiserver itself) serves. A CRD for such a group/version would have kube-apiserver
/// register a local APIService over it and take the API away from that server.
pub(crate) async fn aggregated_apis(client: &Client) -> anyhow::Result<BTreeMap<String, String>> {
    let api: Api<APIService> = Api::all(client.clone());
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        // Without the right to list them, nothing can be told apart: apply as usual.
        Err(kube::Error::Api(e)) if e.code == 403 => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).context("failed to list the APIServices"),
    };
    Ok(list
        .items
        .into_iter()
        .filter_map(|s| {
            let name = s.metadata.name?;
            let svc = s.spec?.service?;
            let desc = format!(
                "APIService {name} (Service {}/{})",
                svc.namespace.unwrap_or_default(),
                svc.name.unwrap_or_default()
            );
            Some((name, desc))
        })
        .collect())
}

/// The aggregated server that serves one of the CRD's versions, if any.
pub(crate) fn served_elsewhere(crd: &Value, aggregated: &BTreeMap<String, String>) -> Option<String> {
    let group = crd["spec"]["group"].as_str()?;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .filter_map(|v| v["name"].as_str())
        .find_map(|v| aggregated.get(&format!("{v}.{group}")).cloned())
}

async fn apply_one(client: &Client, o: &Value, manager: &str) -> anyhow::Result<Outcome> {
    let api = api_for(client, o)?;
    let what = describe(o);
    let before = api
        .get_opt(name(o))
        .await
        .with_context(|| format!("failed to read {what}"))?;
    let params = PatchParams::apply(manager).force();
    let after = api
        .patch(name(o), &params, &Patch::Apply(o))
        .await
        .with_context(|| format!("failed to apply {what}"))?;
    let outcome = match before {
        None => Outcome::Created,
        Some(b) if comparable(&b, manager) == comparable(&after, manager) => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    };
    println!("{what} {}", outcome.word());
    Ok(outcome)
}

/// What an apply by [`FIELD_MANAGER`] can change: the object without its status and without
/// what every write changes (resourceVersion, the managedFields' times), with only our own
/// managedFields entry. So a no-op apply compares equal even where the server records it as a
/// write or a controller updates the status meanwhile, and taking fields over from another
/// manager still counts as a change.
fn comparable(o: &DynamicObject, manager: &str) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        if let Some(fields) = meta.get_mut("managedFields").and_then(Value::as_array_mut) {
            fields.retain(|f| f["manager"] == manager && f["subresource"].is_null());
            for f in fields.iter_mut().filter_map(Value::as_object_mut) {
                f.remove("time");
            }
        }
    }
    v
}

/// Waits until the CRD `o` has the condition Established=True.
async fn wait_established(client: &Client, o: &Value, timeout: Duration) -> anyhow::Result<()> {
    let api = api_for(client, o)?;
    let deadline = Instant::now() + timeout;
    loop {
        let crd = api
            .get(name(o))
            .await
            .with_context(|| format!("failed to read CustomResourceDefinition {}", name(o)))?;
        if established(&crd.data) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "CustomResourceDefinition {} is not Established after {}s (its conditions: {})",
                name(o),
                timeout.as_secs(),
                crd.data["status"]["conditions"]
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a CRD's `status.conditions` hold Established=True.
pub(crate) fn established(crd: &Value) -> bool {
    condition_true(crd, "Established")
}

/// Whether `status.conditions` hold `type`=True.
pub(crate) fn condition_true(o: &Value, type_: &str) -> bool {
    o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crd_is_served_elsewhere_when_an_aggregated_api_serves_one_of_its_versions() {
        let crd = json!({"spec": {"group": "gitops.kluctl.io", "versions": [{"name": "v1alpha1"}, {"name": "v1beta1"}]}});
        let mut aggregated = BTreeMap::new();
        assert_eq!(served_elsewhere(&crd, &aggregated), None);
        aggregated.insert("v1beta1.other.io".to_owned(), "APIService x".to_owned());
        assert_eq!(served_elsewhere(&crd, &aggregated), None);
        aggregated.insert("v1beta1.gitops.kluctl.io".to_owned(), "APIService y".to_owned());
        assert_eq!(
            served_elsewhere(&crd, &aggregated).as_deref(),
            Some("APIService y")
        );
    }

    #[test]
    fn established_reads_the_condition() {
        assert!(established(
            &json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}})
        ));
        assert!(!established(
            &json!({"status": {"conditions": [{"type": "Established", "status": "False"}]}})
        ));
        assert!(!established(&json!({})));
    }
}
