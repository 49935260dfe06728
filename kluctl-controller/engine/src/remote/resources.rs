//! The API resources the cluster serves, indexed for the remote-object and delete steps: which
//! resources to list by discriminator, how a reference maps to a REST path, and which kinds are
//! namespaced.
//!
//! ```text
//! kube Discovery ──► ApiIndex::from_discovery ──► listable()   (one version per group/resource)
//!                                              ──► resolve(ref) (ApiResource + scope for GET/DELETE)
//!                                              ──► preferred()  (delete-order filter of prune/)
//!
//! SharedApiIndex (one per connected cluster; apply, readiness waits and later steps read it)
//!     ◄── refresh_group(group): a CRD of the run made a kind appear
//! ```
//!
//! The index is made once, from the discovery at connect, and then only grows per group: the
//! applier re-reads a group when it meets a kind not served yet, and every holder of the
//! [`SharedApiIndex`] (the readiness wait of the same deploy, a validate after it) sees the new
//! kinds from then on.
//!
//! The choice of version follows Kluctl: per group and resource, the group's preferred version
//! when the resource is served there, otherwise the highest version in Kubernetes' version order
//! (stable > beta > alpha). Sub-resources are never listed, nor the deprecated aliases
//! `extensions/ingresses` and `componentstatuses` (the former would report every Ingress twice).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use gitops_api::kluctl::v1beta1::ObjectRef;
use kube::core::{ApiResource, Version};
use kube::discovery::{Discovery, Scope, verbs};

/// Group/resource pairs never listed: aliases of other resources or deprecated APIs.
const SKIPPED_RESOURCES: &[(&str, &str)] = &[("extensions", "ingresses"), ("", "componentstatuses")];

/// One served resource at one version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiEntry {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects of the resource live in namespaces.
    pub namespaced: bool,
    /// Whether the resource supports `list`.
    pub listable: bool,
    /// Whether the resource has a `status` sub-resource (a kind that should carry a status).
    pub status_subresource: bool,
}

/// The served API resources, every version, plus each group's preferred version. Serializable
/// for the CLI's discovery cache on disk (`cluster::disk_cache`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiIndex {
    entries: Vec<ApiEntry>,
    preferred_versions: BTreeMap<String, String>,
}

impl ApiIndex {
    /// Indexes the result of a kube discovery run.
    pub fn from_discovery(discovery: &Discovery) -> Self {
        let mut index = Self::default();
        for group in discovery.groups() {
            index.add_group(group);
        }
        index
    }

    /// Adds (or replaces) one API group, e.g. after a CRD of the run made it appear.
    pub fn add_group(&mut self, group: &kube::discovery::ApiGroup) {
        let entries = group
            .versions()
            .flat_map(|version| group.versioned_resources(version))
            .map(|(resource, caps)| ApiEntry {
                namespaced: caps.scope == Scope::Namespaced,
                listable: caps.supports_operation(verbs::LIST),
                status_subresource: caps.subresources.iter().any(|(sub, _)| sub.plural == "status"),
                resource,
            })
            .collect();
        self.set_group(group.name(), group.preferred_version(), entries);
    }

    /// Adds (or replaces) API group `group` from the resource lists of its versions (the
    /// answers of `/apis/<group>/<version>`, or `/api/v1` for the core group), the way kube's
    /// discovery reads them: a name with a `/` is a sub-resource of the resource before it.
    pub fn add_resource_lists(
        &mut self,
        group: &str,
        preferred_version: Option<&str>,
        lists: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList],
    ) {
        let mut entries = Vec::new();
        for list in lists {
            let version = list
                .group_version
                .rsplit_once('/')
                .map_or(list.group_version.as_str(), |(_, v)| v);
            for r in list.resources.iter().filter(|r| !r.name.contains('/')) {
                let status = format!("{}/status", r.name);
                entries.push(ApiEntry {
                    resource: ApiResource {
                        group: group.to_owned(),
                        version: version.to_owned(),
                        api_version: list.group_version.clone(),
                        kind: r.kind.clone(),
                        plural: r.name.clone(),
                    },
                    namespaced: r.namespaced,
                    listable: r.verbs.iter().any(|v| v == verbs::LIST),
                    status_subresource: list.resources.iter().any(|s| s.name == status),
                });
            }
        }
        self.set_group(group, preferred_version, entries);
    }

    /// Removes API group `group` (no longer served).
    pub fn remove_group(&mut self, group: &str) {
        self.entries.retain(|e| e.resource.group != group);
        self.preferred_versions.remove(group);
    }

    /// Removes the entry of `resource` (its group, version and plural): a listing answered 404.
    pub fn forget(&mut self, resource: &ApiResource) {
        self.entries.retain(|e| {
            !(e.resource.group == resource.group
                && e.resource.version == resource.version
                && e.resource.plural == resource.plural)
        });
    }

    /// The preferred version of API group `group`, when known.
    pub fn preferred_version(&self, group: &str) -> Option<&str> {
        self.preferred_versions.get(group).map(String::as_str)
    }

    /// Every entry (all versions, as discovered).
    pub fn entries(&self) -> &[ApiEntry] {
        &self.entries
    }

    /// Replaces every entry of API group `group` with `entries` (which must belong to it) and
    /// records its preferred version.
    fn set_group(&mut self, group: &str, preferred_version: Option<&str>, entries: Vec<ApiEntry>) {
        self.entries.retain(|e| e.resource.group != group);
        if let Some(v) = preferred_version {
            self.preferred_versions.insert(group.to_owned(), v.to_owned());
        }
        self.entries.extend(entries);
    }

    /// Builds an index from explicit entries (tests, or callers with their own discovery).
    /// `preferred_versions` maps a group name (`""` for core) to its preferred version.
    pub fn from_entries(entries: Vec<ApiEntry>, preferred_versions: BTreeMap<String, String>) -> Self {
        Self {
            entries,
            preferred_versions,
        }
    }

    /// One entry per group and resource (the version Kluctl would pick), sub-resources and the
    /// skipped aliases left out, sorted by group, plural.
    pub fn preferred(&self) -> Vec<&ApiEntry> {
        let mut by_gr: BTreeMap<(&str, &str), &ApiEntry> = BTreeMap::new();
        for e in &self.entries {
            let (group, plural) = (e.resource.group.as_str(), e.resource.plural.as_str());
            if plural.contains('/') || SKIPPED_RESOURCES.contains(&(group, plural)) {
                continue;
            }
            let preferred = self.preferred_versions.get(group).map(String::as_str);
            by_gr
                .entry((group, plural))
                .and_modify(|cur| {
                    let cur_is_preferred = Some(cur.resource.version.as_str()) == preferred;
                    let new_is_preferred = Some(e.resource.version.as_str()) == preferred;
                    if !cur_is_preferred
                        && (new_is_preferred
                            || Version::parse(&e.resource.version).priority()
                                > Version::parse(&cur.resource.version).priority())
                    {
                        *cur = e;
                    }
                })
                .or_insert(e);
        }
        by_gr.into_values().collect()
    }

    /// The resources to list when looking for objects by discriminator: [`Self::preferred`]
    /// entries that support `list`.
    pub fn listable(&self) -> Vec<&ApiEntry> {
        self.preferred().into_iter().filter(|e| e.listable).collect()
    }

    /// The entry serving `reference` at its version (`None`: not served, Kluctl's "no match").
    pub fn resolve(&self, reference: &ObjectRef) -> Option<&ApiEntry> {
        self.entries.iter().find(|e| {
            e.resource.group == reference.group
                && e.resource.version == reference.version
                && e.resource.kind == reference.kind
                && !e.resource.plural.contains('/')
        })
    }

    /// Whether `group`/`kind` is namespaced, from any served version (`None`: unknown kind).
    pub fn is_namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        self.entries
            .iter()
            .find(|e| {
                e.resource.group == group && e.resource.kind == kind && !e.resource.plural.contains('/')
            })
            .map(|e| e.namespaced)
    }
}

/// The API index of one connected cluster, shared by every step that resolves kinds: cloning
/// shares it. A step reads a snapshot ([`Self::current`]); a group read again
/// ([`Self::refresh_group`]) replaces that group for every holder, so a kind that a CRD of the
/// run made appear is known to the apply, its readiness waits and the commands after it.
///
/// ```
/// use kluctl_engine::remote::{ApiIndex, SharedApiIndex};
/// let shared = SharedApiIndex::new(ApiIndex::default());
/// let same = shared.clone();
/// assert!(std::sync::Arc::ptr_eq(&shared.current(), &same.current()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SharedApiIndex(Arc<RwLock<Arc<ApiIndex>>>);

impl SharedApiIndex {
    /// Shares `index`.
    pub fn new(index: ApiIndex) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(index))))
    }

    /// Shares an index already behind an `Arc` (its snapshot stays pointer-equal).
    pub fn from_arc(index: Arc<ApiIndex>) -> Self {
        Self(Arc::new(RwLock::new(index)))
    }

    /// The index as it is now; later refreshes do not change this snapshot, so it may be kept
    /// across awaits.
    pub fn current(&self) -> Arc<ApiIndex> {
        // A poisoned lock only means a writer panicked; the index it holds is still whole.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads API group `group` from the cluster again and replaces it in the index (the kinds a
    /// CRD of this run added); the core group and failures (a group not served yet) leave the
    /// index as it is.
    pub async fn refresh_group(&self, client: &kube::Client, group: &str) {
        if group.is_empty() {
            return;
        }
        match kube::discovery::group(client, group).await {
            Ok(g) => self.update(|index| index.add_group(&g)),
            Err(e) => tracing::debug!(group, error = %e, "API group not served (yet)"),
        }
    }

    /// Forgets `resources` (their listing answered 404: gone since discovery) for every holder,
    /// so a cached discovery written back later no longer has them.
    pub fn forget(&self, resources: &[ApiResource]) {
        if resources.is_empty() {
            return;
        }
        self.update(|index| {
            for r in resources {
                index.forget(r);
            }
        });
    }

    /// Replaces the whole index for every holder.
    pub fn replace(&self, index: ApiIndex) {
        self.update(|current| *current = index);
    }

    /// Changes the index for every holder (snapshots taken before keep the old version).
    pub(crate) fn update(&self, change: impl FnOnce(&mut ApiIndex)) {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        change(Arc::make_mut(&mut guard));
    }
}

impl From<ApiIndex> for SharedApiIndex {
    fn from(index: ApiIndex) -> Self {
        Self::new(index)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Hand-built indexes, and a client that never connects, for unit tests.
    use super::*;

    /// A client whose every request fails to connect: a test that expects no request passes only
    /// if the code under test sends none (create it inside a Tokio runtime).
    pub fn unreachable_client() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("valid URL"));
        kube::Client::try_from(config).expect("client")
    }

    /// An entry for `group/version` `kind` with plural `plural`.
    pub fn entry(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> ApiEntry {
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        ApiEntry {
            resource: ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version,
                kind: kind.to_owned(),
                plural: plural.to_owned(),
            },
            namespaced,
            listable: true,
            status_subresource: false,
        }
    }

    /// Adds `entries` as the whole of API group `group` to `shared`, as a refresh of that group
    /// after a CRD of the run would.
    pub fn learn_group(shared: &SharedApiIndex, group: &str, entries: Vec<ApiEntry>) {
        let preferred = entries.first().map(|e| e.resource.version.clone());
        shared.update(|index| index.set_group(group, preferred.as_deref(), entries));
    }

    /// A small cluster: core, apps, networking, extensions, a CRD group with two versions and
    /// a monitoring CRD.
    pub fn index() -> ApiIndex {
        let entries = vec![
            entry("", "v1", "Namespace", "namespaces", false),
            entry("", "v1", "ConfigMap", "configmaps", true),
            entry("", "v1", "Secret", "secrets", true),
            entry("", "v1", "Service", "services", true),
            entry("", "v1", "Pod", "pods", true),
            entry("", "v1", "Pod", "pods/status", true),
            entry("", "v1", "ComponentStatus", "componentstatuses", false),
            entry("apps", "v1", "Deployment", "deployments", true),
            entry("apps", "v1", "StatefulSet", "statefulsets", true),
            entry("networking.k8s.io", "v1", "Ingress", "ingresses", true),
            entry("extensions", "v1beta1", "Ingress", "ingresses", true),
            entry(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
            ),
            entry("example.com", "v1alpha1", "Widget", "widgets", true),
            entry("example.com", "v1beta2", "Widget", "widgets", true),
            entry("example.com", "v1", "Gadget", "gadgets", true),
            entry(
                "monitoring.coreos.com",
                "v1",
                "ServiceMonitor",
                "servicemonitors",
                true,
            ),
            ApiEntry {
                listable: false,
                ..entry(
                    "authorization.k8s.io",
                    "v1",
                    "SelfSubjectAccessReview",
                    "selfsubjectaccessreviews",
                    false,
                )
            },
        ];
        let preferred = [
            ("", "v1"),
            ("apps", "v1"),
            ("networking.k8s.io", "v1"),
            ("extensions", "v1beta1"),
            ("rbac.authorization.k8s.io", "v1"),
            // The preferred version does not serve `widgets`: the highest other version wins.
            ("example.com", "v1"),
            ("monitoring.coreos.com", "v1"),
            ("authorization.k8s.io", "v1"),
        ];
        ApiIndex::from_entries(
            entries,
            preferred
                .into_iter()
                .map(|(g, v)| (g.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::index;
    use super::*;

    fn ids(entries: &[&ApiEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| format!("{}/{}", e.resource.api_version, e.resource.plural))
            .collect()
    }

    #[test]
    fn listable_picks_one_version_per_resource_and_skips_subresources_aliases_and_unlistable() {
        let index = index();
        let listed = ids(&index.listable());
        assert_eq!(
            listed,
            [
                "v1/configmaps",
                "v1/namespaces",
                "v1/pods",
                "v1/secrets",
                "v1/services",
                "apps/v1/deployments",
                "apps/v1/statefulsets",
                "example.com/v1/gadgets",
                "example.com/v1beta2/widgets",
                "monitoring.coreos.com/v1/servicemonitors",
                "networking.k8s.io/v1/ingresses",
                "rbac.authorization.k8s.io/v1/clusterroles",
            ]
        );
    }

    #[test]
    fn resolve_matches_the_exact_version_and_scope_comes_from_any_version() {
        let index = index();
        let r = ObjectRef {
            group: "example.com".into(),
            version: "v1alpha1".into(),
            kind: "Widget".into(),
            name: "w".into(),
            namespace: "ns".into(),
        };
        assert_eq!(
            index.resolve(&r).map(|e| e.resource.plural.as_str()),
            Some("widgets")
        );
        let unknown = ObjectRef {
            version: "v9".into(),
            ..r
        };
        assert!(index.resolve(&unknown).is_none());
        assert_eq!(index.is_namespaced("", "Namespace"), Some(false));
        assert_eq!(index.is_namespaced("apps", "Deployment"), Some(true));
        assert_eq!(index.is_namespaced("nope", "Thing"), None);
    }

    #[test]
    fn a_group_learned_through_one_handle_is_seen_by_every_clone_but_not_by_older_snapshots() {
        let shared = SharedApiIndex::new(index());
        let other = shared.clone();
        let before = shared.current();
        let new_kind = ObjectRef {
            group: "crd.example.org".into(),
            version: "v1".into(),
            kind: "Thing".into(),
            name: "t".into(),
            namespace: "ns".into(),
        };
        assert!(other.current().resolve(&new_kind).is_none());
        super::test_support::learn_group(
            &shared,
            "crd.example.org",
            vec![super::test_support::entry(
                "crd.example.org",
                "v1",
                "Thing",
                "things",
                true,
            )],
        );
        assert_eq!(
            other
                .current()
                .resolve(&new_kind)
                .map(|e| e.resource.plural.as_str()),
            Some("things")
        );
        assert!(before.resolve(&new_kind).is_none());
        // The other groups are untouched.
        assert_eq!(other.current().is_namespaced("apps", "Deployment"), Some(true));
    }
}
