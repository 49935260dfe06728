//! The cluster commands as the CLI and the controller run them: `deploy`, `diff`, `prune`,
//! `delete`, `validate`, `poke-images`. Each takes a rendered target and a connected client and
//! returns Kluctl's result shape; none prints or prompts (callers pass a confirmation hook).
//!
//! ```text
//! RenderedTarget ─► read_remote (discriminator lists, full objects of rendered kinds, GETs of
//!                   the rest) ─► [dry-run apply ─► confirm?] ─► apply ─► diff ─► orphans
//!                   ─► prune (only with the Applied token of this run) ─► CommandResult
//! ```
//!
//! Safety: a failed remote read stops a command before anything is applied or deleted; a
//! prune runs only with the [`Applied`] token that a fully successful apply hands out (or, for
//! the standalone `prune`, [`Applied::for_standalone_prune`] over a successful render).

use std::collections::{BTreeMap, BTreeSet};

use gitops_api::kluctl::v1beta1::ObjectRef;
use serde_json::{Value, json};

use crate::apply::{Applier, ApplyOptions, ApplyOutcome, InSyncVersions, Progress};
use crate::diff::{IgnoreOptions, diff_ref, diff_rendered_objects, ignore_rules, remote_objects_by_diff_ref};
use crate::project::inclusion::Inclusion;
use crate::prune::{self, Applied, DeleteOptions, DeleteOutcome, DeletionPlan, find_orphans};
use crate::remote::{
    self, ApiIndex, Discriminator, ListOptions, RemoteObjects, SharedApiIndex, fetch_objects, versionless,
};
use crate::result::{CommandInfo, CommandResult, ResultBuilder};
use crate::target::RenderedTarget;
use crate::validate::{ClusterValidator, ValidateResult};

/// What every command needs: the cluster, the rendered target and how the command was asked for.
pub struct CommandContext<'a> {
    /// The cluster client.
    pub client: &'a kube::Client,
    /// The served kinds: the cluster's shared index. A deploy that applies a CRD adds the new
    /// kinds to it; its readiness waits and the steps after it see them.
    pub index: &'a SharedApiIndex,
    /// The rendered target.
    pub rendered: &'a RenderedTarget,
    /// The inclusion rules the target was rendered with.
    pub inclusion: &'a Inclusion,
    /// The command as requested (name, flags, args); copied into the result.
    pub info: CommandInfo,
    /// The project's identity (repository key and sub directory).
    pub project_key: gitops_api::kluctl::results::ProjectKey,
    /// Git state of the project.
    pub git_info: gitops_api::kluctl::results::GitInfo,
    /// Diff switches (`--ignore-*`); default for every command but `diff`.
    pub ignore: IgnoreOptions,
}

impl std::fmt::Debug for CommandContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandContext")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Shown the objects about to be deleted; `false` stops the command before any delete.
pub type ConfirmDeletion<'c> = &'c mut dyn FnMut(&[ObjectRef]) -> bool;

/// How long `delete`/`prune` wait for each object to disappear (unless `--no-wait`).
const DELETE_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `deploy` switches beyond the apply options.
#[derive(Clone, Debug, Default)]
pub struct DeployOptions {
    /// How objects are applied.
    pub apply: ApplyOptions,
    /// `--prune`: delete orphans after a successful apply.
    pub prune: bool,
    /// Wait for pruned objects to disappear.
    pub wait_prune: bool,
    /// List only these kinds (with the rendered ones) for orphans, as [`CommandContext::diff_in_sync`]
    /// does; `None` lists every served kind. Narrowing can only hide orphans (they are neither
    /// reported nor pruned until a full listing), never make anything deletable.
    pub only_kinds: Option<BTreeSet<(String, String)>>,
}

/// The live state a command starts from.
struct RemoteState {
    /// Discriminator listing (`None` without a discriminator).
    listed: Option<RemoteObjects>,
    /// Whole live objects: every rendered object that exists and every listed object of a
    /// rendered kind, by reference without version.
    objects: BTreeMap<ObjectRef, Value>,
}

impl CommandContext<'_> {
    fn new_result(&self, command: &str) -> CommandResult {
        let mut info = self.info.clone();
        command.clone_into(&mut info.command);
        if info.start_time.is_none() {
            info.start_time = Some(jiff::Timestamp::now());
        }
        CommandResult {
            id: uuid::Uuid::new_v4().to_string(),
            project_key: self.project_key.clone(),
            target_key: self.target_key(),
            target: self.rendered.target.clone(),
            command: info,
            git_info: self.git_info.clone(),
            seen_images: self.rendered.images.seen(false),
            ..CommandResult::default()
        }
    }

    /// The target's key, without the cluster id (see [`Self::cluster_id`]).
    fn target_key(&self) -> gitops_api::kluctl::results::TargetKey {
        gitops_api::kluctl::results::TargetKey {
            target_name: self.rendered.target.name.clone(),
            cluster_id: String::new(),
            discriminator: self.rendered.target.discriminator.clone(),
        }
    }

    /// The cluster's id, the uid of `kube-system` (empty when it cannot be read).
    async fn cluster_id(&self) -> String {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(self.client.clone());
        api.get("kube-system")
            .await
            .ok()
            .and_then(|ns| ns.metadata.uid)
            .unwrap_or_default()
    }

    async fn finish(&self, mut r: CommandResult) -> CommandResult {
        let id = self.cluster_id().await;
        r.target_key.cluster_id.clone_from(&id);
        r.cluster_info.cluster_id = id;
        r.command.end_time = Some(jiff::Timestamp::now());
        r
    }

    fn rendered_refs(&self) -> Vec<ObjectRef> {
        self.rendered.objects().filter_map(crate::object_ref).collect()
    }

    /// Lists our objects by discriminator (whole objects for the kinds we render) and GETs
    /// rendered objects the listing did not find. `None` (errors recorded) when the view is
    /// incomplete: then nothing may be applied or deleted.
    async fn read_remote(
        &self,
        r: &mut CommandResult,
        only_kinds: Option<&BTreeSet<(String, String)>>,
    ) -> Option<RemoteState> {
        let rendered = self.rendered_refs();
        let mut objects = BTreeMap::new();
        let listed = if self.rendered.target.discriminator.is_empty() {
            None
        } else {
            let discriminator = match Discriminator::new(self.rendered.target.discriminator.clone()) {
                Ok(d) => d,
                Err(e) => {
                    r.errors.push(run_error(e.to_string()));
                    return None;
                }
            };
            let options = ListOptions {
                fallback_namespaces: rendered
                    .iter()
                    .filter(|x| !x.namespace.is_empty())
                    .map(|x| x.namespace.clone())
                    .collect(),
                full_kinds: rendered
                    .iter()
                    .map(|x| (x.group.clone(), x.kind.clone()))
                    .collect(),
                // The rendered kinds are always listed: their objects are read from the list.
                only_kinds: only_kinds.map(|k| {
                    k.iter()
                        .cloned()
                        .chain(rendered.iter().map(|x| (x.group.clone(), x.kind.clone())))
                        .collect()
                }),
                ..ListOptions::default()
            };
            match remote::list_by_discriminator(self.client, &self.index.current(), &discriminator, &options)
                .await
            {
                Ok(mut l) => {
                    self.index.forget(&l.gone);
                    r.warnings.extend(l.warnings.iter().cloned());
                    for (k, v) in std::mem::take(&mut l.full) {
                        objects.insert(versionless(&k), Value::Object(v));
                    }
                    Some(l)
                }
                Err(e) => {
                    r.errors.push(run_error(e.to_string()));
                    return None;
                }
            }
        };
        let missing: Vec<ObjectRef> = rendered
            .iter()
            .filter(|x| !objects.contains_key(&versionless(x)))
            .cloned()
            .collect();
        let fetched = fetch_objects(
            self.client,
            &self.index.current(),
            &missing,
            remote::DEFAULT_CONCURRENCY,
        )
        .await;
        r.warnings.extend(fetched.warnings);
        if !fetched.errors.is_empty() {
            r.errors.extend(fetched.errors);
            return None;
        }
        for (k, v) in fetched.objects {
            objects.insert(versionless(&k), Value::Object(v));
        }
        Some(RemoteState { listed, objects })
    }

    async fn apply(
        &self,
        remote: &RemoteState,
        options: ApplyOptions,
        progress: &dyn Progress,
    ) -> (ApplyOutcome, Option<Applied>) {
        self.apply_in_sync(remote, options, progress, None).await
    }

    async fn apply_in_sync(
        &self,
        remote: &RemoteState,
        options: ApplyOptions,
        progress: &dyn Progress,
        in_sync: Option<&InSyncVersions>,
    ) -> (ApplyOutcome, Option<Applied>) {
        let mut applier = Applier::new(
            self.client,
            self.index.clone(),
            &remote.objects,
            options,
            progress,
        );
        if let Some(in_sync) = in_sync {
            applier = applier.with_in_sync(in_sync);
        }
        applier.apply_target(self.rendered, self.inclusion.clone()).await
    }

    /// Warns about orphans kept because an annotation asks for it, naming the annotation
    /// (otherwise a kept object just silently stays after `--prune`).
    fn warn_kept_orphans(&self, remote: &RemoteState, r: &mut CommandResult) {
        let Some(listed) = &remote.listed else { return };
        let kept = prune::kept_orphans(
            listed,
            &self.index.current(),
            &self.rendered_refs(),
            self.inclusion,
        );
        for (object_ref, reason) in kept {
            r.warnings.push(gitops_api::kluctl::v1beta1::DeploymentError {
                object_ref,
                message: format!("orphan object not deleted: {}", reason.message()),
            });
        }
    }

    fn orphans(&self, remote: &RemoteState) -> Vec<ObjectRef> {
        remote.listed.as_ref().map_or_else(Vec::new, |l| {
            find_orphans(l, &self.index.current(), &self.rendered_refs(), self.inclusion)
        })
    }

    /// The objects of a result, with Kluctl's merge rules (see [`ResultBuilder`]): from the
    /// discriminator listing `listed` and the live `objects` (moved into the result).
    fn collect(
        &self,
        listed: Option<&RemoteObjects>,
        objects: BTreeMap<ObjectRef, Value>,
        outcome: Option<ApplyOutcome>,
        orphans: &[ObjectRef],
        deleted: &[ObjectRef],
        r: &mut CommandResult,
    ) {
        let mut b = ResultBuilder::new();
        for o in self.rendered.objects() {
            if let Some(dr) = diff_ref(o) {
                b.set_rendered(&dr, o.clone());
            }
        }
        let mut remote_diff_refs: BTreeMap<ObjectRef, ObjectRef> = BTreeMap::new();
        for o in objects.values() {
            if let (Some(own), Some(dr)) = (crate::object_ref(o), diff_ref(o)) {
                remote_diff_refs.insert(versionless(&own), dr);
            }
        }
        if let Some(listed) = listed {
            for (reference, meta) in &listed.objects {
                let key = versionless(reference);
                if remote_diff_refs.contains_key(&key) {
                    continue;
                }
                let partial = partial_object(reference, meta);
                let dr = diff_ref(&partial).unwrap_or_else(|| reference.clone());
                remote_diff_refs.insert(key, dr.clone());
                if orphans.contains(reference) || deleted.contains(reference) {
                    b.set_remote(&dr, partial);
                }
            }
        }
        let dr_of = |x: &ObjectRef| {
            remote_diff_refs
                .get(&versionless(x))
                .cloned()
                .unwrap_or_else(|| x.clone())
        };
        if let Some(outcome) = outcome {
            for x in &outcome.deleted {
                b.add_deleted(&dr_of(x));
            }
            let by_diff_ref = remote_objects_by_diff_ref(objects.values());
            let applied_non_hooks: BTreeMap<ObjectRef, &Value> = outcome
                .applied
                .iter()
                .filter(|(k, _)| !outcome.hooks.contains(*k))
                .map(|(k, v)| (k.clone(), v))
                .collect();
            for item in &self.rendered.items {
                diff_rendered_objects(
                    &item.objects,
                    &applied_non_hooks,
                    &by_diff_ref,
                    &ignore_rules(&item.item.ignore_for_diff, self.ignore),
                    &mut b,
                );
            }
            for x in &outcome.new {
                let dr = outcome
                    .applied
                    .get(x)
                    .and_then(diff_ref)
                    .unwrap_or_else(|| x.clone());
                b.add_new(&dr);
            }
            for e in outcome.errors {
                b.add_error(&e.object_ref, e.message);
            }
            for w in outcome.warnings {
                b.add_warning(&w.object_ref, w.message);
            }
            // Last, so the applied objects move into the result instead of being copied.
            for (reference, o) in outcome.applied {
                let dr = diff_ref(&o).unwrap_or_else(|| reference.clone());
                if outcome.hooks.contains(&reference) {
                    b.add_hook(&dr);
                }
                b.set_applied(&dr, o);
            }
        }
        // An orphan that was deleted is reported as deleted only (the builder's rule).
        for x in deleted {
            b.add_deleted(&dr_of(x));
        }
        for x in orphans {
            b.add_orphan(&dr_of(x));
        }
        // Last, so the live objects move into the result instead of being copied.
        for o in objects.into_values() {
            if let Some(dr) = diff_ref(&o) {
                b.set_remote(&dr, o);
            }
        }
        b.finish(r);
    }

    /// `kluctl deploy`: optionally a dry run shown to `confirm` first (Kluctl's diff before the
    /// question), then the apply, the diff against the state before, orphans, and with
    /// `--prune` their deletion when the apply fully succeeded.
    pub async fn deploy(
        &self,
        options: &DeployOptions,
        progress: &dyn Progress,
        confirm: Option<&mut dyn FnMut(CommandResult) -> bool>,
    ) -> CommandResult {
        let mut r = self.new_result("deploy");
        let a = &options.apply;
        r.command.dry_run = a.dry_run;
        r.command.no_wait = a.no_wait;
        r.command.force_apply = a.force_apply;
        r.command.replace_on_error = a.replace_on_error;
        r.command.force_replace_on_error = a.force_replace_on_error;
        r.command.abort_on_error = a.abort_on_error;
        if self.rendered.target.discriminator.is_empty() {
            r.warnings.push(run_error(
                "no discriminator configured. Orphan object detection will not work".to_owned(),
            ));
        }
        let Some(remote) = self.read_remote(&mut r, options.only_kinds.as_ref()).await else {
            return self.finish(r).await;
        };
        // Neither the rendered objects nor the state read change until the result is built.
        let orphans = self.orphans(&remote);
        self.warn_kept_orphans(&remote, &mut r);
        if let Some(confirm) = confirm {
            let mut preview = self.new_result("deploy");
            let dry = ApplyOptions {
                dry_run: true,
                abort_on_error: false,
                ..a.clone()
            };
            let (outcome, _) = self.apply(&remote, dry, &crate::apply::NoProgress).await;
            self.collect(
                remote.listed.as_ref(),
                remote.objects.clone(),
                Some(outcome),
                &orphans,
                &[],
                &mut preview,
            );
            if !confirm(preview) {
                r.errors.push(run_error("aborted by user".to_owned()));
                return self.finish(r).await;
            }
        }
        let (outcome, token) = self.apply(&remote, a.clone(), progress).await;
        let mut deleted = Vec::new();
        if options.prune {
            match (&token, &remote.listed) {
                (_, None) => r.errors.push(run_error(
                    "pruning without a discriminator is not supported".to_owned(),
                )),
                (None, _) => r.errors.push(run_error(
                    "prune skipped: the apply had errors or was aborted, so nothing was deleted".to_owned(),
                )),
                (Some(token), Some(listed)) => {
                    let delete = DeleteOptions {
                        dry_run: a.dry_run,
                        wait: options.wait_prune.then_some(a.readiness_timeout),
                        ..DeleteOptions::default()
                    };
                    match prune::prune(self.client, &self.index.current(), token, listed, &delete).await {
                        Ok((_, outcome)) => deleted = record_deletes(&mut r, outcome),
                        Err(e) => r.errors.push(run_error(e.to_string())),
                    }
                }
            }
        }
        self.collect(
            remote.listed.as_ref(),
            remote.objects,
            Some(outcome),
            &orphans,
            &deleted,
            &mut r,
        );
        self.finish(r).await
    }

    /// `kluctl diff`: a server-side dry-run apply of everything, diffed against the live state.
    pub async fn diff(&self, apply: &ApplyOptions) -> CommandResult {
        self.diff_in_sync(apply, &InSyncVersions::new(), None).await
    }

    /// [`Self::diff`], except that objects whose live resourceVersion (from the listing or GET
    /// this diff starts with) equals the one in `in_sync` are not dry-run-applied: they count as
    /// applied with no change (Kluctl's drift detection; see [`InSyncVersions`]). The caller
    /// vouches that the rendered objects are the ones `in_sync` was recorded for.
    ///
    /// `only_kinds` (with the rendered kinds) limits the discriminator listing to those kinds:
    /// for a caller that knows from an earlier full listing where this target's objects are;
    /// an orphan of another kind is then not seen until the next full listing.
    pub async fn diff_in_sync(
        &self,
        apply: &ApplyOptions,
        in_sync: &InSyncVersions,
        only_kinds: Option<&BTreeSet<(String, String)>>,
    ) -> CommandResult {
        let mut r = self.new_result("diff");
        let Some(remote) = self.read_remote(&mut r, only_kinds).await else {
            return self.finish(r).await;
        };
        let options = ApplyOptions {
            dry_run: true,
            abort_on_error: false,
            ..apply.clone()
        };
        let (outcome, _) = self
            .apply_in_sync(&remote, options, &crate::apply::NoProgress, Some(in_sync))
            .await;
        let orphans = self.orphans(&remote);
        self.warn_kept_orphans(&remote, &mut r);
        self.collect(
            remote.listed.as_ref(),
            remote.objects,
            Some(outcome),
            &orphans,
            &[],
            &mut r,
        );
        self.finish(r).await
    }

    /// `kluctl prune`: deletes the orphans of the rendered target (`confirm` sees the plan first).
    pub async fn prune(&self, dry_run: bool, confirm: Option<ConfirmDeletion<'_>>) -> CommandResult {
        let mut r = self.new_result("prune");
        r.command.dry_run = dry_run;
        let Some(remote) = self.read_remote(&mut r, None).await else {
            return self.finish(r).await;
        };
        let Some(listed) = &remote.listed else {
            r.errors.push(run_error(
                "pruning without a discriminator is not supported".to_owned(),
            ));
            return self.finish(r).await;
        };
        self.warn_kept_orphans(&remote, &mut r);
        let token = Applied::for_standalone_prune(self.rendered, self.inclusion.clone());
        let plan = match prune::plan_prune(&token, listed, &self.index.current()) {
            Ok(p) => p,
            Err(e) => {
                r.errors.push(run_error(e.to_string()));
                return self.finish(r).await;
            }
        };
        let deleted = self.run_plan(&mut r, &plan, dry_run, true, confirm).await;
        let orphans: Vec<ObjectRef> = plan.refs().filter(|x| !deleted.contains(x)).cloned().collect();
        self.collect(
            remote.listed.as_ref(),
            remote.objects,
            None,
            &orphans,
            &deleted,
            &mut r,
        );
        self.finish(r).await
    }

    /// `kluctl delete`: deletes every deletable object of the discriminator inside the
    /// inclusion rules (`confirm` sees the plan first).
    pub async fn delete(
        &self,
        dry_run: bool,
        wait: bool,
        confirm: Option<ConfirmDeletion<'_>>,
    ) -> CommandResult {
        let mut r = self.new_result("delete");
        r.command.dry_run = dry_run;
        if self.rendered.target.discriminator.is_empty() {
            r.errors.push(run_error(
                "deletion without a discriminator is not supported".to_owned(),
            ));
            return self.finish(r).await;
        }
        let Some(remote) = self.read_remote(&mut r, None).await else {
            return self.finish(r).await;
        };
        let Some(listed) = &remote.listed else {
            return self.finish(r).await;
        };
        let plan = prune::plan_delete_all(listed, &self.index.current(), self.inclusion);
        let deleted = self.run_plan(&mut r, &plan, dry_run, wait, confirm).await;
        self.collect(
            remote.listed.as_ref(),
            remote.objects,
            None,
            &[],
            &deleted,
            &mut r,
        );
        self.finish(r).await
    }

    async fn run_plan(
        &self,
        r: &mut CommandResult,
        plan: &DeletionPlan,
        dry_run: bool,
        wait: bool,
        confirm: Option<ConfirmDeletion<'_>>,
    ) -> Vec<ObjectRef> {
        if plan.is_empty() {
            return Vec::new();
        }
        if let Some(confirm) = confirm {
            let refs: Vec<ObjectRef> = plan.refs().cloned().collect();
            if !confirm(&refs) {
                r.errors.push(run_error("aborted by user".to_owned()));
                return Vec::new();
            }
        }
        let options = DeleteOptions {
            dry_run,
            wait: wait.then_some(DELETE_WAIT),
            ..DeleteOptions::default()
        };
        let outcome = prune::execute(self.client, &self.index.current(), plan, &options).await;
        record_deletes(r, outcome)
    }

    /// `kluctl poke-images`: sets only the container images that `images.get_image` resolved
    /// on the live objects (read, change, update; retried on a write conflict), nothing else.
    pub async fn poke_images(&self, dry_run: bool) -> CommandResult {
        let mut r = self.new_result("poke-images");
        r.command.dry_run = dry_run;
        let Some(remote) = self.read_remote(&mut r, None).await else {
            return self.finish(r).await;
        };
        let rendered: BTreeSet<ObjectRef> = self.rendered_refs().iter().map(versionless).collect();
        let mut by_object: BTreeMap<ObjectRef, Vec<(String, String)>> = BTreeMap::new();
        for fi in self.rendered.images.seen(false) {
            let (Some(object), Some(container)) = (fi.object.clone(), fi.container.clone()) else {
                continue;
            };
            if !rendered.contains(&versionless(&object)) {
                r.errors.push(gitops_api::kluctl::v1beta1::DeploymentError {
                    object_ref: object,
                    message: "object not found while trying to associate image with deployed object"
                        .to_owned(),
                });
                continue;
            }
            by_object
                .entry(object)
                .or_default()
                .push((container, fi.result_image.clone()));
        }
        let mut outcome = ApplyOutcome::default();
        for (object, images) in by_object {
            if !remote.objects.contains_key(&versionless(&object)) {
                r.warnings.push(gitops_api::kluctl::v1beta1::DeploymentError {
                    object_ref: object,
                    message: "remote object not found, skipped image replacement".to_owned(),
                });
                continue;
            }
            match poke_one(self.client, &self.index.current(), &object, &images, dry_run).await {
                Ok(applied) => {
                    outcome.applied.insert(object, applied);
                }
                Err(message) => outcome.errors.push(gitops_api::kluctl::v1beta1::DeploymentError {
                    object_ref: object,
                    message,
                }),
            }
        }
        let orphans = self.orphans(&remote);
        self.collect(
            remote.listed.as_ref(),
            remote.objects,
            Some(outcome),
            &orphans,
            &[],
            &mut r,
        );
        self.finish(r).await
    }

    /// `kluctl validate`: validates every rendered object on the cluster.
    pub async fn validate(&self) -> ValidateResult {
        let validator = ClusterValidator::new(self.client, self.index.clone());
        let start = self.info.start_time.unwrap_or_else(jiff::Timestamp::now);
        let mut v = validator.validate(self.rendered.objects(), start).await;
        v.id = uuid::Uuid::new_v4().to_string();
        v.project_key = self.project_key.clone();
        v.target_key = self.target_key();
        v.target_key.cluster_id = self.cluster_id().await;
        v
    }
}

/// Sets `images` (container name → image) in the pod template of one live object with an
/// update carrying the resourceVersion read, retrying when someone wrote in between.
async fn poke_one(
    client: &kube::Client,
    index: &ApiIndex,
    object: &ObjectRef,
    images: &[(String, String)],
    dry_run: bool,
) -> Result<Value, String> {
    let entry = index
        .resolve(object)
        .ok_or_else(|| format!("no matches for kind \"{}\"", object.kind))?;
    let api = remote::api_for(client, entry, &object.namespace);
    for _ in 0..10 {
        let live = api
            .get(&object.name)
            .await
            .map_err(|e| crate::apply::api_message(&e))?;
        let mut v = serde_json::to_value(&live).map_err(|e| e.to_string())?;
        let before = v.clone();
        for path in [
            "/spec/template/spec/containers",
            "/spec/template/spec/initContainers",
        ] {
            for c in v
                .pointer_mut(path)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if let Some((_, image)) = images.iter().find(|(n, _)| *n == name) {
                    c["image"] = Value::String(image.clone());
                }
            }
        }
        if v == before {
            return Ok(v);
        }
        let updated: kube::api::DynamicObject = serde_json::from_value(v).map_err(|e| e.to_string())?;
        let params = kube::api::PostParams {
            dry_run,
            field_manager: Some(crate::apply::FIELD_MANAGER.to_owned()),
        };
        match api.replace(&object.name, &params, &updated).await {
            Ok(o) => return serde_json::to_value(o).map_err(|e| e.to_string()),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(crate::apply::api_message(&e)),
        }
    }
    Err(format!(
        "failed to update images of {object}: kept conflicting with other writers"
    ))
}

/// Records a deletion's errors and warnings; returns the deleted objects (objects inside
/// deleted namespaces count as deleted).
fn record_deletes(r: &mut CommandResult, outcome: DeleteOutcome) -> Vec<ObjectRef> {
    r.errors.extend(outcome.errors);
    r.warnings.extend(outcome.warnings);
    let mut deleted = outcome.deleted;
    deleted.extend(outcome.skipped_in_deleted_namespaces);
    deleted
}

/// An error or warning of the whole run (no object).
fn run_error(message: String) -> gitops_api::kluctl::v1beta1::DeploymentError {
    gitops_api::kluctl::v1beta1::DeploymentError {
        object_ref: ObjectRef::default(),
        message,
    }
}

/// A listed object as Kluctl keeps partial objects: apiVersion, kind and metadata.
fn partial_object(reference: &ObjectRef, meta: &kube::core::ObjectMeta) -> Value {
    let api_version = kube::core::GroupVersion::gv(&reference.group, &reference.version).api_version();
    json!({"apiVersion": api_version, "kind": reference.kind, "metadata": meta})
}
