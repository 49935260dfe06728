//! What of ours is on the cluster: every object carrying our discriminator label, found with
//! metadata-only lists of every listable resource, plus GETs of explicit references (the
//! rendered objects) to learn which of them exist. Deploy, diff, prune and delete start here.
//!
//! ```text
//! Discriminator (never empty) ─► list_by_discriminator ─► RemoteObjects { ref ─► metadata }
//!        ApiIndex (discovery) ─┘        (parallel, bounded)       │
//! rendered refs ─► fetch_objects ─► Fetched { ref ─► object }     └─► prune/ (orphans, delete)
//! ```
//!
//! Listing failures: a resource answering 404 (gone since discovery) is skipped silently, 405 is
//! skipped with a warning, 401/403 is retried per namespace the caller names (with a warning
//! either way, since orphans elsewhere may be missed; Kluctl does the same), and anything else
//! fails the whole listing: a partial view must not look like a complete one (Kluctl only warns
//! there; we refuse, so a prune never runs on a view an apiserver error left incomplete).

pub mod resources;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use futures::{StreamExt as _, TryStreamExt as _};
use gitops_api::constants::DISCRIMINATOR_LABEL;
use gitops_api::kluctl::v1beta1::{DeploymentError, ObjectRef};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{Expression, ObjectMeta, Selector};
use serde_json::Value;

use crate::Object;
pub use resources::{ApiEntry, ApiIndex, SharedApiIndex};

/// Parallel requests when listing or fetching, unless the caller says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Page size of the discriminator lists.
const PAGE_SIZE: u32 = 500;

/// Why remote objects could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The discriminator cannot be used as a label selector value.
    #[error("failed to use discriminator '{value}': {reason}")]
    InvalidDiscriminator {
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Listing one resource failed with an error that is not a permission or "not served" answer.
    #[error("failed to list '{resource}' with label '{DISCRIMINATOR_LABEL}={discriminator}': {source}")]
    List {
        /// `apiVersion/plural` of the resource.
        resource: String,
        /// The discriminator.
        discriminator: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// A non-empty discriminator that is a valid label value: the only way to ask for objects by
/// discriminator, so an empty label selector (which matches everything) cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Discriminator(String);

impl Discriminator {
    /// Checks `value`: non-empty, at most 63 characters, alphanumerics plus `-`, `_`, `.`,
    /// starting and ending with an alphanumeric (Kubernetes label value rules).
    ///
    /// # Errors
    /// [`RemoteError::InvalidDiscriminator`] naming the value and the rule it breaks.
    pub fn new(value: impl Into<String>) -> Result<Self, RemoteError> {
        let value = value.into();
        let invalid = |reason| RemoteError::InvalidDiscriminator {
            value: value.clone(),
            reason,
        };
        match label_value_problem(&value) {
            Some(reason) => Err(invalid(reason)),
            None => Ok(Self(value)),
        }
    }

    /// The discriminator value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label selector `kluctl.io/discriminator=<value>`.
    pub fn selector(&self) -> Selector {
        Selector::from(Expression::Equal(DISCRIMINATOR_LABEL.to_owned(), self.0.clone()))
    }
}

/// Why `value` is not a non-empty Kubernetes label value (`None` when it is one): at most 63
/// alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric.
pub(crate) fn label_value_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return Some("it is empty, which would select every object");
    }
    if value.len() > 63 {
        return Some("label values are at most 63 characters long");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Some("label values may only contain alphanumerics, '-', '_' and '.'");
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(value.chars().next()) || !alnum(value.chars().last()) {
        return Some("label values must start and end with an alphanumeric character");
    }
    None
}

impl fmt::Display for Discriminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use crate::object_ref;

/// The objects found by discriminator, keyed by reference (at the listed version).
#[derive(Clone, Debug)]
pub struct RemoteObjects {
    discriminator: Discriminator,
    /// Metadata of every object found (labels, annotations, ownerReferences, managedFields, ...).
    pub objects: BTreeMap<ObjectRef, ObjectMeta>,
    /// Whole objects, for the kinds listed in full ([`ListOptions::full_kinds`]).
    pub full: BTreeMap<ObjectRef, Object>,
    /// Resources that could only be read partly or not at all (permissions).
    pub warnings: Vec<DeploymentError>,
    /// Resources whose listing answered 404: no longer served since discovery (a CRD deleted).
    /// The caller forgets them in its shared index, so a discovery cache written back from it
    /// does not list them again.
    pub gone: Vec<kube::core::ApiResource>,
}

impl RemoteObjects {
    /// An empty result for `discriminator` (nothing listed yet).
    pub fn new(discriminator: Discriminator) -> Self {
        Self {
            discriminator,
            objects: BTreeMap::new(),
            full: BTreeMap::new(),
            warnings: Vec::new(),
            gone: Vec::new(),
        }
    }

    /// The discriminator these objects were listed with.
    pub fn discriminator(&self) -> &Discriminator {
        &self.discriminator
    }

    /// The refs of `refs` not found by the listing (compared without the version, so a rendered
    /// object in another version of the same kind counts as found).
    pub fn missing(&self, refs: &[ObjectRef]) -> Vec<ObjectRef> {
        let found: BTreeSet<ObjectRef> = self.objects.keys().map(versionless).collect();
        let mut out: Vec<ObjectRef> = refs
            .iter()
            .filter(|r| !found.contains(&versionless(r)))
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// `reference` without its version (objects are the same whatever version they are read at).
pub(crate) fn versionless(reference: &ObjectRef) -> ObjectRef {
    ObjectRef {
        version: String::new(),
        ..reference.clone()
    }
}

/// How to list.
#[derive(Clone, Debug)]
pub struct ListOptions {
    /// Resources listed at the same time.
    pub concurrency: usize,
    /// Namespaces to list one by one when a cluster-wide list is forbidden (Kluctl uses the
    /// namespaces of the rendered objects).
    pub fallback_namespaces: BTreeSet<String>,
    /// `(group, kind)` of resources listed with whole objects instead of metadata only (deploy
    /// and diff list the kinds they render this way: one list instead of a GET per object).
    pub full_kinds: BTreeSet<(String, String)>,
    /// `(group, kind)` of the only resources to list; `None` lists every listable resource.
    /// A caller that knows where the discriminator's objects are (the controller's drift
    /// detection, from the last full listing) saves one request per other served kind.
    pub only_kinds: Option<BTreeSet<(String, String)>>,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            fallback_namespaces: BTreeSet::new(),
            full_kinds: BTreeSet::new(),
            only_kinds: None,
        }
    }
}

/// What happened to the list of one resource.
enum Listed {
    Objects(Vec<Found>),
    Gone(kube::core::ApiResource),
    Warning(DeploymentError, Vec<Found>),
}

/// Finds every object labelled `kluctl.io/discriminator=<discriminator>` in every listable
/// resource of `index`, reading metadata only.
///
/// # Errors
/// [`RemoteError::List`] when a resource fails with anything but 401/403/404/405 (see the
/// module doc); the first such failure ends the listing.
///
/// # Example
/// ```no_run
/// # async fn run(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use kluctl_engine::remote::{self, ApiIndex, Discriminator, ListOptions};
/// let discovery = kube::discovery::Discovery::new(client.clone()).run().await?;
/// let index = ApiIndex::from_discovery(&discovery);
/// let ours = remote::list_by_discriminator(&client, &index, &Discriminator::new("my-app")?, &ListOptions::default()).await?;
/// for r in ours.objects.keys() {
///     println!("{r}");
/// }
/// # Ok(()) }
/// ```
pub async fn list_by_discriminator(
    client: &kube::Client,
    index: &ApiIndex,
    discriminator: &Discriminator,
    options: &ListOptions,
) -> Result<RemoteObjects, RemoteError> {
    let params = ListParams::default()
        .labels_from(&discriminator.selector())
        .limit(PAGE_SIZE);
    let wanted = |entry: &&ApiEntry| {
        options
            .only_kinds
            .as_ref()
            .is_none_or(|only| only.contains(&(entry.resource.group.clone(), entry.resource.kind.clone())))
    };
    let results: Vec<Listed> = futures::stream::iter(index.listable().into_iter().filter(wanted))
        .map(|entry| list_one(client, entry, discriminator, &params, options))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    let mut remote = RemoteObjects::new(discriminator.clone());
    for listed in results {
        let found = match listed {
            Listed::Objects(found) => found,
            Listed::Gone(resource) => {
                remote.gone.push(resource);
                continue;
            }
            Listed::Warning(warning, found) => {
                remote.warnings.push(warning);
                found
            }
        };
        for (reference, meta, full) in found {
            if let Some(full) = full {
                remote.full.insert(reference.clone(), full);
            }
            remote.objects.insert(reference, meta);
        }
    }
    remote.warnings.sort_by(|a, b| a.object_ref.cmp(&b.object_ref));
    Ok(remote)
}

async fn list_one(
    client: &kube::Client,
    entry: &ApiEntry,
    discriminator: &Discriminator,
    params: &ListParams,
    options: &ListOptions,
) -> Result<Listed, RemoteError> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &entry.resource);
    let kind_ref = ObjectRef {
        group: entry.resource.group.clone(),
        version: entry.resource.version.clone(),
        kind: entry.resource.kind.clone(),
        ..ObjectRef::default()
    };
    let full = options
        .full_kinds
        .contains(&(entry.resource.group.clone(), entry.resource.kind.clone()));
    match list_pages(&all, entry, params, full).await {
        Ok(found) => Ok(Listed::Objects(found)),
        // The resource went away since discovery (a CRD deleted meanwhile): nothing to find.
        Err(kube::Error::Api(s)) if s.code == 404 => {
            tracing::debug!(resource = %entry.resource.api_version, plural = %entry.resource.plural, "resource no longer served, skipped");
            Ok(Listed::Gone(entry.resource.clone()))
        }
        Err(kube::Error::Api(s)) if s.code == 405 => Ok(Listed::Warning(
            DeploymentError {
                object_ref: kind_ref,
                message: format!(
                    "failed to list '{}/{}' by discriminator '{discriminator}' (method not allowed): orphan objects of this kind cannot be detected",
                    entry.resource.api_version, entry.resource.plural
                ),
            },
            Vec::new(),
        )),
        Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403) => {
            let mut found = Vec::new();
            if entry.namespaced {
                for ns in &options.fallback_namespaces {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &entry.resource);
                    // Kluctl ignores failures of the per-namespace fallback as well.
                    if let Ok(objects) = list_pages(&api, entry, params, full).await {
                        found.extend(objects);
                    }
                }
            }
            let message = if found.is_empty() {
                format!(
                    "failed to list '{}/{}' by discriminator '{discriminator}' (permission denied): orphan objects of this kind cannot be detected",
                    entry.resource.api_version, entry.resource.plural
                )
            } else {
                format!(
                    "failed to list '{}/{}' by discriminator '{discriminator}' cluster-wide (permission denied); listed the deployment's namespaces instead, orphan objects in other namespaces may be missed",
                    entry.resource.api_version, entry.resource.plural
                )
            };
            Ok(Listed::Warning(
                DeploymentError {
                    object_ref: kind_ref,
                    message,
                },
                found,
            ))
        }
        Err(source) => Err(RemoteError::List {
            resource: format!("{}/{}", entry.resource.api_version, entry.resource.plural),
            discriminator: discriminator.to_string(),
            source,
        }),
    }
}

/// One listed object: its reference, metadata and (for full lists) the whole object.
type Found = (ObjectRef, ObjectMeta, Option<Object>);

/// All pages of a metadata-only list (`full`: of full objects); falls back to full objects
/// when the server cannot answer with `PartialObjectMetadata` (406, some aggregated APIs).
async fn list_pages(
    api: &Api<DynamicObject>,
    entry: &ApiEntry,
    params: &ListParams,
    full: bool,
) -> Result<Vec<Found>, kube::Error> {
    let mut out = Vec::new();
    let mut params = params.clone();
    let mut metadata_only = !full;
    loop {
        let (items, token): (Vec<(ObjectMeta, Option<Object>)>, _) = if metadata_only {
            match api.list_metadata(&params).await {
                Ok(list) => (
                    list.items.into_iter().map(|o| (o.metadata, None)).collect(),
                    list.metadata.continue_,
                ),
                Err(kube::Error::Api(s)) if s.code == 406 => {
                    metadata_only = false;
                    out.clear();
                    params.continue_token = None;
                    continue;
                }
                Err(e) => return Err(e),
            }
        } else {
            let list = api.list(&params).await?;
            let kind = &entry.resource;
            (
                list.items
                    .into_iter()
                    .map(|o| {
                        // The object is assembled from the parts the list gave (its body is
                        // moved, not serialized again), with the apiVersion/kind lists leave
                        // off their items.
                        let object = full.then(|| {
                            let mut m = match o.data {
                                Value::Object(m) => m,
                                _ => serde_json::Map::new(),
                            };
                            m.insert("apiVersion".into(), Value::String(kind.api_version.clone()));
                            m.insert("kind".into(), Value::String(kind.kind.clone()));
                            m.insert(
                                "metadata".into(),
                                serde_json::to_value(&o.metadata).unwrap_or(Value::Null),
                            );
                            m
                        });
                        // The metadata is moved, not copied; beside a full object it keeps the
                        // manager names of managedFields (the prune rules) but not their field
                        // sets, which whoever needs them reads from the object (for 1,000 listed
                        // ConfigMaps that second copy was several MiB of a deploy's peak).
                        let mut meta = o.metadata;
                        if object.is_some() {
                            for e in meta.managed_fields.iter_mut().flatten() {
                                e.fields_v1 = None;
                            }
                        }
                        (meta, object)
                    })
                    .collect(),
                list.metadata.continue_,
            )
        };
        out.extend(items.into_iter().filter_map(|(meta, object)| {
            Some((
                ObjectRef {
                    group: entry.resource.group.clone(),
                    version: entry.resource.version.clone(),
                    kind: entry.resource.kind.clone(),
                    name: meta.name.clone()?,
                    namespace: meta.namespace.clone().unwrap_or_default(),
                },
                meta,
                object,
            ))
        }));
        match token {
            Some(t) if !t.is_empty() => params.continue_token = Some(t),
            _ => return Ok(out),
        }
    }
}

/// Full objects read by reference.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    /// The objects that exist, keyed by the requested reference.
    pub objects: BTreeMap<ObjectRef, Object>,
    /// References whose GET failed (neither "not found", "not served" nor a permission error).
    pub errors: Vec<DeploymentError>,
    /// References that could not be read for lack of permissions.
    pub warnings: Vec<DeploymentError>,
}

/// Reads every reference in `refs` (full objects), `concurrency` requests at a time. Objects
/// that do not exist, and kinds the cluster does not serve, are simply absent from the result
/// (Kluctl's behaviour: a CRD may be created by the same deploy).
///
/// References are read one GET each, except where [`LIST_THRESHOLD`] or more share a kind and a
/// namespace: those are read with one list of that kind in that namespace (a first deploy of a
/// large project into a new namespace then costs a few lists instead of a GET per object). A
/// list that is not allowed falls back to GETs.
///
/// Per-object failures are collected in [`Fetched::errors`] / [`Fetched::warnings`], never
/// fatal, so one unreadable object does not hide the others.
pub async fn fetch_objects(
    client: &kube::Client,
    index: &ApiIndex,
    refs: &[ObjectRef],
    concurrency: usize,
) -> Fetched {
    let unique: BTreeSet<&ObjectRef> = refs.iter().collect();
    let mut groups: BTreeMap<(String, String, String, String), Vec<&ObjectRef>> = BTreeMap::new();
    for r in unique {
        groups
            .entry((
                r.group.clone(),
                r.version.clone(),
                r.kind.clone(),
                r.namespace.clone(),
            ))
            .or_default()
            .push(r);
    }
    let mut singles: Vec<&ObjectRef> = Vec::new();
    let mut listed: Vec<Vec<&ObjectRef>> = Vec::new();
    for ((_, _, _, namespace), members) in groups {
        if members.len() >= LIST_THRESHOLD && !namespace.is_empty() {
            listed.push(members);
        } else {
            singles.extend(members);
        }
    }
    let mut fetched = Fetched::default();
    let lists: Vec<(Vec<&ObjectRef>, Option<ByName>)> = futures::stream::iter(listed)
        .map(|members| async move {
            let found = list_namespace(client, index, members[0]).await;
            (members, found)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (members, found) in lists {
        match found {
            Some(mut by_name) => {
                for r in members {
                    if let Some(o) = by_name.remove(&r.name) {
                        fetched.objects.insert(r.clone(), o);
                    }
                }
            }
            None => singles.extend(members),
        }
    }
    let results: Vec<(ObjectRef, Result<Option<Object>, String>)> = futures::stream::iter(singles)
        .map(|r| async move { (r.clone(), fetch_one(client, index, r).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (reference, result) in results {
        match result {
            Ok(Some(object)) => {
                fetched.objects.insert(reference, object);
            }
            Ok(None) => {}
            Err(message) if message.starts_with(PERMISSION_PREFIX) => {
                fetched.warnings.push(DeploymentError {
                    object_ref: reference,
                    message,
                });
            }
            Err(message) => fetched.errors.push(DeploymentError {
                object_ref: reference,
                message,
            }),
        }
    }
    fetched.errors.sort_by(|a, b| a.object_ref.cmp(&b.object_ref));
    fetched.warnings.sort_by(|a, b| a.object_ref.cmp(&b.object_ref));
    fetched
}

/// Objects of one kind in one namespace, by name.
type ByName = BTreeMap<String, Object>;

/// From how many references of one kind in one namespace [`fetch_objects`] lists instead of
/// GETting each.
pub const LIST_THRESHOLD: usize = 4;

/// Every object of `like`'s kind in `like`'s namespace by name, or `None` when the kind is
/// not served or the list fails (the caller then GETs one by one and reports errors there).
async fn list_namespace(client: &kube::Client, index: &ApiIndex, like: &ObjectRef) -> Option<ByName> {
    let entry = index.resolve(like)?;
    let api = api_for(client, entry, &like.namespace);
    let params = ListParams::default().limit(PAGE_SIZE);
    let found = list_pages(&api, entry, &params, true).await.ok()?;
    Some(
        found
            .into_iter()
            .filter_map(|(reference, _, object)| Some((reference.name, object?)))
            .collect(),
    )
}

const PERMISSION_PREFIX: &str = "failed to get object (permission denied)";

async fn fetch_one(
    client: &kube::Client,
    index: &ApiIndex,
    reference: &ObjectRef,
) -> Result<Option<Object>, String> {
    let Some(entry) = index.resolve(reference) else {
        return Ok(None);
    };
    let api = api_for(client, entry, &reference.namespace);
    match api.get_opt(&reference.name).await {
        Ok(Some(object)) => match serde_json::to_value(object) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err("failed to get object: the server did not return a JSON object".to_owned()),
            Err(e) => Err(format!("failed to get object: {e}")),
        },
        Ok(None) => Ok(None),
        Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403) => {
            Err(format!("{PERMISSION_PREFIX}: {}", s.message))
        }
        Err(e) => Err(format!("failed to get object: {e}")),
    }
}

/// The API for objects of `entry` in `namespace` (cluster-wide for cluster-scoped kinds or an
/// empty namespace).
pub(crate) fn api_for(client: &kube::Client, entry: &ApiEntry, namespace: &str) -> Api<DynamicObject> {
    if entry.namespaced && !namespace.is_empty() {
        Api::namespaced_with(client.clone(), namespace, &entry.resource)
    } else {
        Api::all_with(client.clone(), &entry.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_malformed_discriminators_are_refused() {
        for bad in ["", "-x", "x-", "a,b", "a=b", "a b", &"x".repeat(64)] {
            let err = Discriminator::new(bad).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("failed to use discriminator '{bad}'")),
                "{err}"
            );
        }
        let d = Discriminator::new("kluctl-demo_1.x").unwrap();
        assert_eq!(
            d.selector().to_string(),
            "kluctl.io/discriminator=kluctl-demo_1.x"
        );
        assert!(
            Discriminator::new("")
                .unwrap_err()
                .to_string()
                .contains("every object")
        );
    }

    #[test]
    fn object_ref_reads_group_version_kind_name_namespace() {
        let r = object_ref(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}})).unwrap();
        assert_eq!(r.to_string(), "prod/Deployment/web");
        assert_eq!((r.group.as_str(), r.version.as_str()), ("apps", "v1"));
        let ns = object_ref(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}))
            .unwrap();
        assert_eq!((ns.group.as_str(), ns.namespace.as_str()), ("", ""));
        assert!(object_ref(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}})).is_none());
    }

    #[test]
    fn missing_compares_without_version() {
        let mut remote = RemoteObjects::new(Discriminator::new("d").unwrap());
        let listed = ObjectRef {
            group: "autoscaling".into(),
            version: "v1".into(),
            kind: "HorizontalPodAutoscaler".into(),
            name: "web".into(),
            namespace: "prod".into(),
        };
        remote.objects.insert(listed.clone(), ObjectMeta::default());
        let rendered_other_version = ObjectRef {
            version: "v2beta2".into(),
            ..listed.clone()
        };
        let absent = ObjectRef {
            name: "db".into(),
            ..listed
        };
        assert_eq!(
            remote.missing(&[rendered_other_version, absent.clone(), absent.clone()]),
            vec![absent]
        );
    }

    #[test]
    fn a_listing_answering_404_is_reported_gone_and_forgotten_by_the_shared_index() {
        use crate::cluster::test_server::FakeServer;
        use crate::remote::resources::test_support::entry;
        // The server knows no path: the CRD of `widgets` was deleted since discovery.
        let server = FakeServer::start(std::collections::HashMap::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = {
            let _entered = runtime.enter();
            kube::Client::try_from(server.config()).expect("client")
        };
        let shared = SharedApiIndex::new(ApiIndex::from_entries(
            vec![entry("example.com", "v1", "Widget", "widgets", true)],
            BTreeMap::new(),
        ));
        let listed = runtime
            .block_on(list_by_discriminator(
                &client,
                &shared.current(),
                &Discriminator::new("d").expect("discriminator"),
                &ListOptions::default(),
            ))
            .expect("a 404 is no error");
        assert!(listed.objects.is_empty());
        assert!(listed.warnings.is_empty());
        assert_eq!(
            listed.gone.iter().map(|r| r.plural.as_str()).collect::<Vec<_>>(),
            ["widgets"]
        );
        assert_eq!(server.take_paths().len(), 1);
        shared.forget(&listed.gone);
        assert!(shared.current().listable().is_empty());
    }
}
