//! Apply: the rendered items of a target onto the cluster, with Kluctl's semantics.
//!
//! ```text
//! RenderedTarget.items ─► items in parallel (≤ 8) until a barrier ─► per item:
//!     deleteObjects / kluctl.io/delete ─► pre hooks ─► objects in render order (object.rs)
//!     ─► readiness waits ─► post hooks
//! ─► ApplyOutcome { applied, new, hooks, deleted, errors, warnings } (+ Applied token on success)
//! ```
//!
//! - `object`: server-side apply of one object (field manager `kluctl`), conflicts, replace,
//!   CRDs of the same run, dry-run simulation.
//! - [`conflicts`]: what to do with fields another manager owns.
//! - [`noop`]: skip objects whose apply would change nothing (no request).
//! - [`InSyncVersions`]: in a dry run, skip objects whose live resourceVersion an earlier
//!   deploy or dry run found in sync (Kluctl's drift-detection shortcut; no request).
//! - hooks: `kluctl.io/hook` (and Helm hooks) by weight, delete policies, waits.
//!
//! Errors are recorded per object and never stop other items, unless `abort_on_error`. The
//! [`crate::prune::Applied`] token, the only ticket to a prune, is handed out only when
//! the outcome has no error and nothing was aborted.

pub mod conflicts;
pub mod noop;
mod object;

pub(crate) use object::api_message;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use gitops_api::kluctl::v1beta1::{DeploymentError, ObjectRef};
use serde_json::Value;

use crate::annotation_bool;
use crate::project::config::{ConflictResolutionItem, ObjectRefItem};
use crate::project::inclusion::Inclusion;
use crate::prune::Applied;
use crate::remote::versionless;
use crate::remote::{ApiIndex, SharedApiIndex};
use crate::render::RenderedItem;
use crate::result::push_unique;
use crate::target::RenderedTarget;
use crate::validate::ClusterValidator;
use crate::validate::hooks::HookInfo;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = gitops_api::constants::KLUCTL_FIELD_MANAGER;
/// Items applied at the same time between barriers (Kluctl's).
pub const ITEM_CONCURRENCY: usize = 8;

/// Objects known to be in sync with their rendered form, by reference without version
/// ([`versionless`]), at the live `resourceVersion` where that was seen: what the last deploy
/// applied or the last dry run found unchanged (see [`in_sync_versions`]).
///
/// A dry run that finds an object at exactly that resourceVersion does not send its dry-run
/// apply: nobody wrote the object since, and the rendered object is the same (the caller keeps
/// these only while the rendered objects' hash stays the same). It counts as applied with no
/// change. Real applies never skip on it.
pub type InSyncVersions = BTreeMap<ObjectRef, String>;

/// The objects `result` shows in sync with their rendered form, with the resourceVersion at
/// which they were: for a real apply (`dry_run` false) every object applied without error
/// (the version the apiserver returned); for a dry run every existing object whose dry-run
/// apply changed nothing (the live version). Hooks, orphans, deleted objects and objects with
/// errors are left out.
///
/// ```
/// use kluctl_engine::apply::in_sync_versions;
/// use kluctl_engine::result::{CommandResult, ResultObject};
/// use gitops_api::kluctl::v1beta1::ObjectRef;
/// use serde_json::json;
///
/// let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
///     "metadata": {"name": "c", "namespace": "ns", "resourceVersion": "7"}});
/// let object = ObjectRef { version: "v1".into(), kind: "ConfigMap".into(), name: "c".into(),
///     namespace: "ns".into(), ..ObjectRef::default() };
/// let r = CommandResult {
///     objects: vec![ResultObject { object, remote: Some(cm.clone()), applied: Some(cm),
///         ..ResultObject::default() }],
///     ..CommandResult::default()
/// };
/// let versions = in_sync_versions(&r, true);
/// assert_eq!(versions.values().collect::<Vec<_>>(), ["7"]);
/// ```
pub fn in_sync_versions(result: &crate::result::CommandResult, dry_run: bool) -> InSyncVersions {
    let failed: BTreeSet<ObjectRef> = result.errors.iter().map(|e| versionless(&e.object_ref)).collect();
    let mut versions = InSyncVersions::new();
    for o in &result.objects {
        if o.hook || o.orphan || o.deleted || o.applied.is_none() {
            continue;
        }
        let seen = if dry_run {
            if o.new || !o.changes.is_empty() {
                continue;
            }
            o.remote.as_ref()
        } else {
            o.applied.as_ref()
        };
        let Some(seen) = seen else { continue };
        let (Some(reference), Some(rv)) = (
            crate::object_ref(seen),
            seen.pointer("/metadata/resourceVersion").and_then(Value::as_str),
        ) else {
            continue;
        };
        let key = versionless(&reference);
        if !rv.is_empty() && !failed.contains(&key) {
            versions.insert(key, rv.to_owned());
        }
    }
    versions
}

/// How to apply (the deploy flags).
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// `--force-apply`: take over every conflicting field.
    pub force_apply: bool,
    /// `--replace-on-error`: when a patch fails, replace the object.
    pub replace_on_error: bool,
    /// `--force-replace-on-error`: when that fails too, delete and re-create it.
    pub force_replace_on_error: bool,
    /// `--dry-run`: server-side dry run; nothing is persisted.
    pub dry_run: bool,
    /// `--abort-on-error`: stop starting new work after the first error.
    pub abort_on_error: bool,
    /// `--readiness-timeout`: how long a readiness wait may take.
    pub readiness_timeout: Duration,
    /// `--no-wait`: skip readiness waits (hooks included).
    pub no_wait: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            force_apply: false,
            replace_on_error: false,
            force_replace_on_error: false,
            dry_run: false,
            abort_on_error: false,
            readiness_timeout: Duration::from_secs(300),
            no_wait: false,
        }
    }
}

/// Receives progress while items are applied (the CLI draws it; the controller logs it).
pub trait Progress: Sync {
    /// A status line for one item (`item` is its directory, or `<delete>` / `<wait>`), or for
    /// the whole run when `item` is empty.
    fn update(&self, item: &str, message: &str);
    /// The item finished (`ok`: without errors) with a summary line.
    fn finish(&self, item: &str, ok: bool, summary: &str);
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &str, _: &str) {}
    fn finish(&self, _: &str, _: bool, _: &str) {}
}

/// What applying did.
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    /// Every object applied (hooks included) as the server returned it (dry run: would).
    pub applied: BTreeMap<ObjectRef, Value>,
    /// The applied hooks.
    pub hooks: BTreeSet<ObjectRef>,
    /// Objects that did not exist before (hooks excluded).
    pub new: BTreeSet<ObjectRef>,
    /// Objects deleted by `deleteObjects` / `kluctl.io/delete` / force-replace.
    pub deleted: BTreeSet<ObjectRef>,
    /// Hooks deleted by their delete policies.
    pub deleted_hooks: BTreeSet<ObjectRef>,
    /// Errors per object.
    pub errors: Vec<DeploymentError>,
    /// Warnings per object.
    pub warnings: Vec<DeploymentError>,
    /// Work stopped early (`--abort-on-error`, or a timeout).
    pub aborted: bool,
}

impl ApplyOutcome {
    /// Whether every object applied and nothing was aborted.
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty() && !self.aborted
    }
}

/// A hook object of an item: its hook annotations, reference and rendered object.
type Hook<'o> = (HookInfo, &'o ObjectRef, &'o Value);

/// Mutable run state shared by the items running in parallel.
#[derive(Default)]
struct State {
    outcome: ApplyOutcome,
    /// Namespaces applied in this run (a dry run pretends they exist).
    dry_run_namespaces: BTreeSet<String>,
    /// `(group, kind)` of CRDs applied in this run.
    crds: BTreeSet<(String, String)>,
    /// Whether a namespace exists on the cluster (looked up once).
    namespaces: HashMap<String, bool>,
}

/// Applies the items of one target to one cluster.
pub struct Applier<'a> {
    client: &'a kube::Client,
    /// The cluster's index; the validator holds the same one, so its readiness waits know
    /// the kinds a CRD of this run added as soon as the apply has learned them.
    index: SharedApiIndex,
    validator: ClusterValidator<'a>,
    /// Live objects before the run, by reference without version.
    remote: &'a BTreeMap<ObjectRef, Value>,
    options: ApplyOptions,
    progress: &'a dyn Progress,
    /// Dry runs: objects known to be in sync (see [`InSyncVersions`]).
    in_sync: Option<&'a InSyncVersions>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<'a> Applier<'a> {
    /// An applier on `client` with the cluster's API index (shared: groups the apply reads
    /// again are seen by every holder); `remote` holds the live objects found before the run,
    /// keyed by reference without version.
    pub fn new(
        client: &'a kube::Client,
        index: SharedApiIndex,
        remote: &'a BTreeMap<ObjectRef, Value>,
        options: ApplyOptions,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            client,
            validator: ClusterValidator::new(client, index.clone()),
            index,
            remote,
            options,
            progress,
            in_sync: None,
            state: Mutex::new(State::default()),
        }
    }

    /// In a dry run, objects whose live resourceVersion equals the one in `in_sync` are taken
    /// as applied with no change, without a request (see [`InSyncVersions`]). Ignored by real
    /// applies.
    #[must_use]
    pub fn with_in_sync(mut self, in_sync: &'a InSyncVersions) -> Self {
        self.in_sync = Some(in_sync);
        self
    }

    /// Applies every item of `rendered`; returns the outcome and, when everything applied
    /// without error, the [`Applied`] token a prune needs.
    pub async fn apply_target(
        self,
        rendered: &RenderedTarget,
        inclusion: Inclusion,
    ) -> (ApplyOutcome, Option<Applied>) {
        self.apply_items(&rendered.items).await;
        let outcome = self.into_outcome();
        let token = outcome.succeeded().then(|| Applied::new(rendered, inclusion));
        (outcome, token)
    }

    /// Applies `items`: in parallel up to [`ITEM_CONCURRENCY`], waiting for everything started
    /// before at each barrier.
    pub async fn apply_items(&self, items: &[RenderedItem]) {
        let mut running = FuturesUnordered::new();
        for item in items {
            if self.aborted() {
                break;
            }
            while running.len() >= ITEM_CONCURRENCY {
                running.next().await;
            }
            running.push(self.apply_item(item));
            if item.barrier || item.item.config.barrier {
                let message = item.item.config.message.as_ref().map_or_else(
                    || "Waiting on barrier...".to_owned(),
                    |m| format!("Waiting on barrier: {m}"),
                );
                self.progress.update("", &message);
                while running.next().await.is_some() {}
                self.progress.update("", "Finished waiting");
            }
        }
        while running.next().await.is_some() {}
    }

    /// The outcome so far (consumes the applier).
    pub fn into_outcome(self) -> ApplyOutcome {
        let mut outcome = self
            .state
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .outcome;
        outcome.errors.sort_by(|a, b| a.object_ref.cmp(&b.object_ref));
        outcome.warnings.sort_by(|a, b| a.object_ref.cmp(&b.object_ref));
        outcome
    }

    #[allow(
        clippy::too_many_lines,
        reason = "one item's steps in Kluctl's order, read top to bottom"
    )]
    async fn apply_item(&self, item: &RenderedItem) {
        let config = &item.item.config;
        let name = if !item.item.rel_dir.is_empty() {
            item.item.rel_dir.clone()
        } else if !config.delete_objects.is_empty() {
            "<delete>".to_owned()
        } else if !config.wait_readiness_objects.is_empty() {
            "<wait>".to_owned()
        } else {
            String::new()
        };
        let rules = &item.item.conflict_resolution;

        let mut to_delete: BTreeSet<ObjectRef> = BTreeSet::new();
        let mut to_wait: BTreeSet<ObjectRef> = BTreeSet::new();
        for x in &config.delete_objects {
            to_delete.extend(self.convert_ref(x));
        }
        for x in &config.wait_readiness_objects {
            to_wait.extend(self.convert_ref(x));
        }
        // Each object with its reference, computed once.
        let objects: Vec<(ObjectRef, &Value)> = item
            .objects
            .iter()
            .filter_map(|o| Some((crate::object_ref(o)?, o)))
            .collect();
        let mut hooks: Vec<Hook<'_>> = Vec::new();
        let mut apply: Vec<&(ObjectRef, &Value)> = Vec::new();
        for entry in &objects {
            let (r, o) = entry;
            if annotation_bool(o, "kluctl.io/delete") == Some(true) {
                to_delete.insert(r.clone());
                continue;
            }
            let info = HookInfo::of(o);
            for e in &info.errors {
                self.error(r, e.clone());
            }
            for w in &info.warnings {
                self.warning(r, w.clone());
            }
            if info.is_hook() {
                hooks.push((info, r, o));
                continue;
            }
            if config.wait_readiness
                || item.wait_readiness
                || annotation_bool(o, "kluctl.io/wait-readiness") == Some(true)
            {
                to_wait.insert(r.clone());
            }
            apply.push(entry);
        }
        // Hooks run in ascending weight, ties in render order.
        hooks.sort_by_key(|(h, _, _)| h.weight);
        let initial = !objects.iter().any(|(r, _)| self.remote_object(r).is_some());
        let (pre, post) = if initial {
            (
                ["pre-deploy-initial", "pre-deploy"],
                ["post-deploy-initial", "post-deploy"],
            )
        } else {
            (
                ["pre-deploy-upgrade", "pre-deploy"],
                ["post-deploy-upgrade", "post-deploy"],
            )
        };
        let select = |points: [&str; 2]| -> Vec<&Hook<'_>> {
            hooks
                .iter()
                .filter(|(h, _, _)| h.hooks.iter().any(|p| points.contains(&p.as_str())))
                .collect()
        };

        if !to_delete.is_empty() {
            self.progress
                .update(&name, &format!("Deleting {} objects", to_delete.len()));
            for r in &to_delete {
                self.delete_object(r, false).await;
            }
        }
        self.run_hooks(&name, rules, &select(pre)).await;
        if !apply.is_empty() {
            self.progress
                .update(&name, &format!("Applying {} objects", apply.len()));
        }
        for (i, (r, o)) in apply.iter().copied().enumerate() {
            if self.aborted() {
                break;
            }
            if i > 0 && i % 50 == 0 {
                self.progress
                    .update(&name, &format!("...applied {i} of {} objects", apply.len()));
            }
            self.apply_object(rules, r, o, false, false).await;
        }
        for r in &to_wait {
            if self.aborted() {
                break;
            }
            if !self.options.no_wait {
                self.progress
                    .update(&name, &format!("Waiting for {r} to get ready..."));
                self.wait_readiness(r, None).await;
            }
        }
        if self.aborted() {
            self.progress.finish(&name, false, "Aborted.");
            return;
        }
        self.run_hooks(&name, rules, &select(post)).await;
        let mine: BTreeSet<ObjectRef> = objects
            .iter()
            .map(|(r, _)| r.clone())
            .chain(to_delete.iter().cloned())
            .chain(to_wait.iter().cloned())
            .collect();
        let (ok, summary) = summary(self.counts(&mine));
        if !name.is_empty() {
            self.progress.finish(&name, ok, &summary);
        }
    }

    /// Runs hooks in order: deletes those with `before-hook-creation`, applies each (waiting for
    /// readiness unless `hook-wait: false` or `--no-wait`), then deletes by `hook-succeeded` /
    /// `hook-failed` in reverse order.
    async fn run_hooks(&self, item: &str, rules: &[ConflictResolutionItem], hooks: &[&Hook<'_>]) {
        if hooks.is_empty() || self.aborted() {
            return;
        }
        for (h, r, _) in hooks {
            if h.delete_policies.contains("before-hook-creation") {
                self.progress.update(
                    item,
                    &format!("Deleting hook {r} due to hook-delete-policy before-hook-creation"),
                );
                self.delete_object(r, true).await;
            }
        }
        let mut waited: Vec<(&Hook<'_>, bool)> = Vec::new();
        for (i, hook) in hooks.iter().copied().enumerate() {
            let (h, r, o) = hook;
            self.progress
                .update(item, &format!("Applying hook {r} ({} of {})", i + 1, hooks.len()));
            let replaced = h.delete_policies.contains("before-hook-creation");
            if !self.apply_object(rules, r, o, replaced, true).await {
                continue;
            }
            if !h.wait || self.options.no_wait {
                continue;
            }
            waited.push((hook, self.wait_readiness(r, h.timeout).await));
        }
        for ((h, r, _), ready) in waited.into_iter().rev() {
            let policy = if ready { "hook-succeeded" } else { "hook-failed" };
            if h.delete_policies.contains(policy) {
                self.progress.update(
                    item,
                    &format!("Deleting hook {r} due to hook-delete-policy {policy}"),
                );
                self.delete_object(r, true).await;
            }
        }
    }

    /// Waits until `reference` is ready (a dry run: at once); records what the wait found.
    async fn wait_readiness(&self, reference: &ObjectRef, timeout: Option<Duration>) -> bool {
        if self.options.dry_run {
            return true;
        }
        let outcome = self
            .validator
            .wait_ready(reference, timeout.unwrap_or(self.options.readiness_timeout))
            .await;
        for e in outcome.errors {
            self.error(&e.object_ref, e.message);
        }
        for w in outcome.warnings {
            self.warning(&w.object_ref, w.message);
        }
        outcome.ready
    }

    /// The references a `deleteObjects` / `waitReadinessObjects` entry names: one per served
    /// kind matching its group and kind (preferred versions).
    fn convert_ref(&self, x: &ObjectRefItem) -> Vec<ObjectRef> {
        let refs: Vec<ObjectRef> = self
            .index()
            .preferred()
            .into_iter()
            .filter(|e| x.group.as_ref().is_none_or(|g| g == &e.resource.group))
            .filter(|e| x.kind.as_ref().is_none_or(|k| k == &e.resource.kind))
            .map(|e| ObjectRef {
                group: e.resource.group.clone(),
                version: e.resource.version.clone(),
                kind: e.resource.kind.clone(),
                name: x.name.clone(),
                namespace: x.namespace.clone(),
            })
            .collect();
        if refs.is_empty() {
            let name = if x.namespace.is_empty() {
                x.name.clone()
            } else {
                format!("{}/{}", x.namespace, x.name)
            };
            let gk = match (
                x.group.as_deref().unwrap_or_default(),
                x.kind.as_deref().unwrap_or_default(),
            ) {
                ("", k) => k.to_owned(),
                (g, k) => format!("{k}.{g}"),
            };
            self.error(
                &ObjectRef::default(),
                format!("failed to wait for readiness of {name}. resource with group/kind {gk} not found"),
            );
        }
        refs
    }

    // ---- shared state --------------------------------------------------------------------

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current API index (a snapshot, fine to keep across awaits).
    fn index(&self) -> Arc<ApiIndex> {
        self.index.current()
    }

    /// Reads API group `group` again (the kinds a CRD of this run added), for the validator
    /// too; the core group and failures leave the index as it is.
    async fn refresh_group(&self, group: &str) {
        self.index.refresh_group(self.client, group).await;
    }

    fn remote_object(&self, reference: &ObjectRef) -> Option<&'a Value> {
        self.remote.get(&versionless(reference))
    }

    /// A dry run, and `remote` (the live `reference`) is at the resourceVersion known to be in
    /// sync.
    fn known_in_sync(&self, reference: &ObjectRef, remote: &Value) -> bool {
        let Some(known) = self.in_sync.filter(|_| self.options.dry_run) else {
            return false;
        };
        remote
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty() && known.get(&versionless(reference)).is_some_and(|k| k == rv))
    }

    fn aborted(&self) -> bool {
        self.state().outcome.aborted
    }

    fn error(&self, reference: &ObjectRef, message: String) {
        let mut s = self.state();
        if self.options.abort_on_error {
            s.outcome.aborted = true;
        }
        push_unique(&mut s.outcome.errors, reference, message);
    }

    fn warning(&self, reference: &ObjectRef, message: String) {
        push_unique(&mut self.state().outcome.warnings, reference, message);
    }

    fn record_applied(&self, reference: &ObjectRef, applied: Value, hook: bool) {
        self.observe(reference, &applied);
        let is_new = !hook && self.remote_object(reference).is_none();
        let mut s = self.state();
        if hook {
            s.outcome.hooks.insert(reference.clone());
        }
        if is_new {
            s.outcome.new.insert(reference.clone());
        }
        s.outcome.applied.insert(reference.clone(), applied);
    }

    fn record_deleted(&self, reference: &ObjectRef, hook: bool) {
        let mut s = self.state();
        if hook {
            s.outcome.deleted_hooks.insert(reference.clone());
        } else {
            s.outcome.deleted.insert(reference.clone());
        }
    }

    fn was_applied(&self, reference: &ObjectRef) -> bool {
        self.state().outcome.applied.contains_key(reference)
    }

    fn crd_applied_in_run(&self, group: &str, kind: &str) -> bool {
        self.state().crds.contains(&(group.to_owned(), kind.to_owned()))
    }

    fn namespace_created_in_dry_run(&self, namespace: &str) -> bool {
        self.state().dry_run_namespaces.contains(namespace)
    }

    async fn namespace_exists(&self, namespace: &str) -> bool {
        if let Some(known) = self.state().namespaces.get(namespace) {
            return *known;
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(self.client.clone());
        // A failed lookup counts as existing: the apply then reports the real error.
        let exists = !matches!(api.get_opt(namespace).await, Ok(None));
        self.state().namespaces.insert(namespace.to_owned(), exists);
        exists
    }

    /// What happened to `mine` (the objects one item renders, deletes or waits for).
    fn counts(&self, mine: &BTreeSet<ObjectRef>) -> Counts {
        let s = self.state();
        let o = &s.outcome;
        let count = |set: &BTreeSet<ObjectRef>| mine.iter().filter(|r| set.contains(*r)).count();
        let hooks = count(&o.hooks);
        Counts {
            applied: mine.iter().filter(|r| o.applied.contains_key(*r)).count() - hooks,
            hooks,
            deleted: count(&o.deleted),
            deleted_hooks: count(&o.deleted_hooks),
            errors: o.errors.iter().filter(|e| mine.contains(&e.object_ref)).count(),
            warnings: o.warnings.iter().filter(|e| mine.contains(&e.object_ref)).count(),
        }
    }
}

/// What happened to one item's objects.
#[derive(Clone, Copy, Default)]
struct Counts {
    applied: usize,
    hooks: usize,
    deleted: usize,
    deleted_hooks: usize,
    errors: usize,
    warnings: usize,
}

fn summary(c: Counts) -> (bool, String) {
    let parts = [
        (c.applied, "Applied {} objects."),
        (c.hooks, "Applied {} hooks."),
        (c.deleted, "Deleted {} objects."),
        (c.deleted_hooks, "Deleted {} hooks."),
        (c.errors, "Encountered {} errors."),
        (c.warnings, "Encountered {} warnings."),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, f)| f.replace("{}", &n.to_string()))
        .collect();
    let text = if text.is_empty() {
        "Nothing to apply.".to_owned()
    } else {
        text.join(" ")
    };
    (c.errors == 0, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::resources::test_support::{index, unreachable_client};
    use serde_json::json;

    fn cm_ref() -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "c".into(),
            namespace: "ns".into(),
        }
    }

    /// The live ConfigMap at resourceVersion 5. It has no `kluctl` managed fields, so the
    /// no-op check cannot vouch for it: only the known version can skip its apply.
    fn live_cm() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "resourceVersion": "5", "uid": "u"},
            "data": {"k": "v"}})
    }

    fn rendered_cm() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}})
    }

    /// Applies the rendered ConfigMap once against the live one with `known` as the in-sync
    /// versions; the client cannot connect, so any request ends in an error.
    async fn apply_with_known(dry_run: bool, known: &InSyncVersions) -> ApplyOutcome {
        let client = unreachable_client();
        let remote: BTreeMap<ObjectRef, Value> = [(versionless(&cm_ref()), live_cm())].into();
        let options = ApplyOptions {
            dry_run,
            ..ApplyOptions::default()
        };
        let applier = Applier::new(
            &client,
            SharedApiIndex::new(index()),
            &remote,
            options,
            &NoProgress,
        )
        .with_in_sync(known);
        applier
            .apply_object(&[], &cm_ref(), &rendered_cm(), false, false)
            .await;
        applier.into_outcome()
    }

    #[tokio::test]
    async fn a_dry_run_skips_objects_at_the_version_known_in_sync_without_a_request() {
        let known: InSyncVersions = [(versionless(&cm_ref()), "5".to_owned())].into();
        let outcome = apply_with_known(true, &known).await;
        assert!(
            outcome.errors.is_empty(),
            "no request was sent: {:?}",
            outcome.errors
        );
        // As if the dry-run apply changed nothing: the live object is the applied one.
        assert_eq!(outcome.applied.get(&cm_ref()), Some(&live_cm()));
        assert!(outcome.new.is_empty());
    }

    #[tokio::test]
    async fn another_version_or_a_real_apply_sends_the_request() {
        let moved: InSyncVersions = [(versionless(&cm_ref()), "4".to_owned())].into();
        let outcome = apply_with_known(true, &moved).await;
        assert_eq!(outcome.errors.len(), 1, "the dry-run apply was sent");
        assert!(outcome.applied.is_empty());

        let known: InSyncVersions = [(versionless(&cm_ref()), "5".to_owned())].into();
        let outcome = apply_with_known(false, &known).await;
        assert_eq!(
            outcome.errors.len(),
            1,
            "a real apply never skips on a known version"
        );

        let outcome = apply_with_known(true, &InSyncVersions::new()).await;
        assert_eq!(outcome.errors.len(), 1, "unknown objects are dry-run-applied");
    }

    #[test]
    fn in_sync_versions_take_what_a_result_shows_unchanged() {
        use crate::result::{CommandResult, ResultObject};
        let obj = |name: &str, rv: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}})
        };
        let reference = |name: &str| ObjectRef {
            name: name.into(),
            ..cm_ref()
        };
        let entry = |name: &str, remote: Option<Value>, applied: Option<Value>| ResultObject {
            object: reference(name),
            remote,
            applied,
            ..ResultObject::default()
        };
        let change = crate::result::Change {
            change_type: crate::result::ChangeType::Update,
            json_path: "data".into(),
            old_value: None,
            new_value: None,
            unified_diff: String::new(),
        };
        let r = CommandResult {
            objects: vec![
                entry("same", Some(obj("same", "5")), Some(obj("same", "5"))),
                ResultObject {
                    changes: vec![change.clone()],
                    ..entry("changed", Some(obj("changed", "6")), Some(obj("changed", "9")))
                },
                ResultObject {
                    new: true,
                    ..entry("new", None, Some(obj("new", "10")))
                },
                ResultObject {
                    hook: true,
                    ..entry("hook", Some(obj("hook", "7")), Some(obj("hook", "7")))
                },
                ResultObject {
                    orphan: true,
                    ..entry("orphan", Some(obj("orphan", "8")), None)
                },
                entry("failed", Some(obj("failed", "3")), Some(obj("failed", "3"))),
            ],
            errors: vec![gitops_api::kluctl::v1beta1::DeploymentError {
                object_ref: reference("failed"),
                message: "x".into(),
            }],
            ..CommandResult::default()
        };
        let key = |name: &str| versionless(&reference(name));
        let dry: InSyncVersions = [(key("same"), "5".to_owned())].into();
        assert_eq!(in_sync_versions(&r, true), dry);
        let applied: InSyncVersions = [
            (key("same"), "5".to_owned()),
            (key("changed"), "9".to_owned()),
            (key("new"), "10".to_owned()),
        ]
        .into();
        assert_eq!(in_sync_versions(&r, false), applied);
    }

    #[test]
    fn item_summaries_read_like_kluctl() {
        let c = Counts {
            applied: 3,
            hooks: 1,
            errors: 1,
            ..Counts::default()
        };
        assert_eq!(
            summary(c),
            (
                false,
                "Applied 3 objects. Applied 1 hooks. Encountered 1 errors.".to_owned()
            )
        );
        assert_eq!(summary(Counts::default()), (true, "Nothing to apply.".to_owned()));
    }
}
