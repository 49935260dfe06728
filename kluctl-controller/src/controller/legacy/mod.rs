//! The legacy KluctlDeployment reconcile (`flux.kluctl.io/v1alpha1`, flux-kluctl-controller's
//! kind), run by the same process beside the `gitops.kluctl.io` one and sharing its steps:
//!
//! ```text
//! finalizer ─► suspend? ─► spec ──────► source ─► context ─► prepare ─► decide ─► deploy ─► validate ─► status
//!  (add, or    (return,    (v1alpha1 →  (fetch:   (rename    (render,  (legacy   (engine,   (engine)   (one patch,
//!   delete by   no work)    v1beta1,     sourceRef Contexts)  target    triggers) prune in             events)
//!   status.                 timing with  or git +                       cluster)            the same
//!   discrim.)               `never`)     secretRef)                                         run)
//! ```
//!
//! What differs from the v1beta1 pipeline ([`super`]): no manual requests, no drift detection,
//! no manual mode; the `deploy.flux.kluctl.io/requestedAt` annotation forces a deploy and
//! `reconcile.fluxcd.io/requestedAt` is acknowledged in `status.lastHandledReconcileAt`;
//! results go to `status.last{Deploy,Prune,Validate}Result` as `LastCommandResult`s with the
//! whole result in `rawResult`; Ready says `Deployed revision: <revision>`. As in the v1beta1
//! pipeline nothing is deployed unless the source and the render of this run succeeded, and the
//! engine prunes only after its own successful apply.

pub mod decide;
pub mod spec;
pub mod status;

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use gitops_api::conditions::{self, reasons, types};
use gitops_api::constants::{
    FLUX_KLUCTL_DEPLOY_REQUESTED_AT_ANNOTATION, FLUX_KLUCTL_FINALIZER, RECONCILE_REQUESTED_AT_ANNOTATION,
};
use gitops_api::flux_kluctl::v1alpha1::{KluctlDeployment, KluctlDeploymentSpec, KluctlDeploymentStatus};
use gitops_api::kluctl::v1beta1::{DeployMode, KluctlDeploymentSpec as EngineSpec, ValidateResult};
use gitops_api::meta::Time;
use gitops_api::source::v1::GitRepository;
use gitops_runtime::events::Severity;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt as _, reflector, watcher};
use kube::{Api, Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use tracing::Instrument as _;

use super::{Context, Error, FIELD_MANAGER, fetch, project, target};
use decide::{DeployReason, Timing};

/// A failed step of the legacy reconcile.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A duration that does not parse.
    #[error(transparent)]
    Timing(#[from] super::decide::TimingError),
    /// A spec the shared steps cannot take.
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    /// The source could not be fetched.
    #[error(transparent)]
    Fetch(Box<fetch::FetchError>),
    /// No kubeconfig context has the name the project asks for.
    #[error(transparent)]
    Context(#[from] spec::ContextError),
    /// The target cluster's configuration could not be built.
    #[error(transparent)]
    Target(Box<target::TargetError>),
    /// Loading or rendering the project failed.
    #[error(transparent)]
    Prepare(#[from] project::PrepareError),
    /// The blocking engine task did not finish.
    #[error("the engine task failed: {0}")]
    Task(String),
}

// Boxed: these carry a `kube::Error` and would make every `Result<_, StepError>` large.
impl From<fetch::FetchError> for StepError {
    fn from(e: fetch::FetchError) -> Self {
        Self::Fetch(Box::new(e))
    }
}

impl From<target::TargetError> for StepError {
    fn from(e: target::TargetError) -> Self {
        Self::Target(Box::new(e))
    }
}

impl StepError {
    /// The Ready reason (flux-kluctl-controller's vocabulary), also the event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Spec(spec::SpecError::SourceKind(_)) => reasons::ARTIFACT_FAILED,
            Self::Fetch(e) if e.reason() == reasons::ARTIFACT_FAILED => reasons::ARTIFACT_FAILED,
            _ => reasons::PREPARE_FAILED,
        }
    }

    /// Whether only a spec change can help (Stalled, no retry).
    pub fn stalled(&self) -> bool {
        match self {
            Self::Timing(_) | Self::Spec(_) => true,
            Self::Fetch(e) => e.stalled(),
            _ => false,
        }
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// Runs the legacy controller until `shutdown` completes or a signal arrives. Returns at once
/// (with a log line) when the API server does not serve `flux.kluctl.io/v1alpha1`.
pub async fn run(
    ctx: Arc<Context>,
    args: &crate::args::ControllerArgs,
    slots: Arc<gitops_runtime::Slots>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (namespace, label_selector, concurrency) =
        (&args.namespace, &args.watch_label_selector, args.concurrency);
    let client = ctx.client.clone();
    if let Err(e) = client.list_api_group_resources("flux.kluctl.io/v1alpha1").await {
        tracing::info!(error = %e, "flux.kluctl.io/v1alpha1 is not served: legacy KluctlDeployments are not reconciled");
        return;
    }
    let api: Api<KluctlDeployment> = if namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    };
    let wc = crate::watch_config(label_selector);
    let (reader, writer) = reflector::store();
    // Reconcile on spec changes, deletion and the two request annotations; not on status writes.
    let deployments = watcher(api, wc)
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, PredicateConfig::default());
    let git_api: Api<GitRepository> = if namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    };
    // A new artifact revision of a GitRepository re-reconciles the objects that reference it.
    let git_repositories = watcher(git_api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(
            |g: &GitRepository| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                g.status
                    .as_ref()
                    .and_then(|s| s.artifact.as_ref())
                    .map(|a| a.digest.clone())
                    .hash(&mut h);
                Some(h.finish())
            },
            PredicateConfig::default(),
        );
    let (store, latest) = (reader.clone(), reader.clone());
    tracing::info!(namespace = %namespace, concurrency, "reconciling legacy flux.kluctl.io KluctlDeployments");
    Controller::for_stream(deployments, reader)
        .with_config(gitops_runtime::slots::unbounded())
        .watches_stream(git_repositories, move |g: GitRepository| {
            referencing(
                &store,
                "GitRepository",
                &g.namespace().unwrap_or_default(),
                &g.name_any(),
            )
        })
        .graceful_shutdown_on(shutdown)
        .shutdown_on_signal()
        .run(
            gitops_runtime::slots::in_slots(slots, latest, reconcile),
            error_policy,
            ctx,
        )
        .for_each(|_| std::future::ready(()))
        .await;
}

/// What makes a legacy KluctlDeployment worth a reconcile: its generation, its deletion and
/// the values of `reconcile.fluxcd.io/requestedAt` and `deploy.flux.kluctl.io/requestedAt`.
pub fn trigger_hash(kd: &KluctlDeployment) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kd.metadata.generation.hash(&mut h);
    kd.metadata.deletion_timestamp.is_some().hash(&mut h);
    for a in [
        RECONCILE_REQUESTED_AT_ANNOTATION,
        FLUX_KLUCTL_DEPLOY_REQUESTED_AT_ANNOTATION,
    ] {
        kd.annotations().get(a).hash(&mut h);
    }
    Some(h.finish())
}

/// The legacy KluctlDeployments whose `sourceRef` names this source.
pub fn referencing(
    store: &Store<KluctlDeployment>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<KluctlDeployment>> {
    store
        .state()
        .iter()
        .filter(|kd| references(kd, kind, namespace, name))
        .map(|kd| ObjectRef::from_obj(kd.as_ref()))
        .collect()
}

fn references(kd: &KluctlDeployment, kind: &str, namespace: &str, name: &str) -> bool {
    kd.spec.source_ref.as_ref().is_some_and(|r| {
        let own = kd.namespace().unwrap_or_default();
        let ns = r.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(&own);
        r.kind == kind && r.name == name && ns == namespace
    })
}

/// Reconciles one legacy KluctlDeployment (kube-runtime entry point).
///
/// # Errors
/// Only when the object cannot be read or written; every other failure is recorded in its
/// status and requeued after `retryInterval`.
pub async fn reconcile(obj: Arc<KluctlDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let reconcile_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "reconcile",
        kind = "KluctlDeployment.flux.kluctl.io",
        name = %name,
        namespace = %namespace,
        reconcileID = %reconcile_id
    );
    async move {
        let api: Api<KluctlDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
        // Always the live object: the cache may lag behind a request annotation just set.
        let Some(kd) = api.get_opt(&name).await? else {
            return Ok(Action::await_change());
        };
        let run = Run {
            ctx: &ctx,
            api,
            kd,
            name,
            namespace,
            reconcile_id,
            started: Instant::now(),
        };
        // Boxed: the pipeline's state is large and kube-runtime keeps one future per object.
        Box::pin(run.reconcile()).await
    }
    .instrument(span)
    .await
}

/// Requeue after an API failure.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime requires
pub fn error_policy(obj: Arc<KluctlDeployment>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        kind = "KluctlDeployment.flux.kluctl.io",
        name = %obj.name_any(),
        namespace = %obj.namespace().unwrap_or_default(),
        error = %kluctl_engine::error_chain(err),
        "reconcile failed"
    );
    Action::requeue(Duration::from_secs(10))
}

/// One legacy KluctlDeployment being reconciled.
struct Run<'a> {
    ctx: &'a Context,
    api: Api<KluctlDeployment>,
    kd: KluctlDeployment,
    name: String,
    namespace: String,
    reconcile_id: String,
    started: Instant,
}

/// What the engine part of a reconcile produced.
struct Outcome {
    revision: String,
    objects_hash: String,
    discriminator: String,
    raw_target: Option<String>,
    deploy: Option<(DeployReason, project::Ran, Option<String>)>,
    validate: Option<(ValidateResult, Option<String>)>,
}

impl Run<'_> {
    fn annotation(&self, key: &str) -> Option<String> {
        self.kd.annotations().get(key).cloned()
    }

    fn status(&self) -> KluctlDeploymentStatus {
        self.kd.status.clone().unwrap_or_default()
    }

    fn who(&self) -> super::Who<'_> {
        super::Who {
            name: &self.name,
            namespace: &self.namespace,
            reconcile_id: &self.reconcile_id,
        }
    }

    /// Writes the given status fields, each replacing its stored value whole (see
    /// [`super::status::replacing_patch`]: a merge patch alone would keep a previous `error`).
    async fn patch_status(&mut self, status: Value) -> Result<(), Error> {
        let current = serde_json::to_value(&self.kd.status).unwrap_or(Value::Null);
        let status = super::status::replacing_patch(&current, status);
        self.kd = self
            .api
            .patch_status(&self.name, &params(), &Patch::Merge(json!({"status": status})))
            .await?;
        Ok(())
    }

    /// Emits an event about the KluctlDeployment with the source `revision` (when known);
    /// `success` marks the end of a successful reconcile (`commit_status: update`).
    async fn emit(&self, severity: Severity, reason: &str, message: &str, revision: &str, success: bool) {
        let metadata = status::event_metadata(revision, success);
        self.ctx
            .events
            .emit(&self.kd, severity, reason, message, metadata)
            .await;
    }

    async fn reconcile(mut self) -> Result<Action, Error> {
        // finalizer
        if self.kd.meta().deletion_timestamp.is_some() {
            return self.finalize().await;
        }
        if !self.kd.finalizers().iter().any(|f| f == FLUX_KLUCTL_FINALIZER) {
            let mut finalizers = self.kd.finalizers().to_vec();
            finalizers.push(FLUX_KLUCTL_FINALIZER.to_owned());
            let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": self.kd.resource_version()}});
            self.kd = self
                .api
                .patch(&self.name, &params(), &Patch::Merge(patch))
                .await?;
        }
        // suspend: flux-kluctl-controller returns before doing anything
        if self.kd.spec.suspend {
            tracing::info!("suspended: nothing done");
            return Ok(Action::await_change());
        }
        let timing = match Timing::from_spec(&self.kd.spec) {
            Ok(t) => t,
            Err(e) => return self.fail(&e.into(), None, "").await,
        };
        let engine_spec = match spec::engine_spec(&self.kd.spec) {
            Ok(s) => s,
            Err(e) => return self.fail(&e.into(), Some(&timing), "").await,
        };
        for field in spec::ignored_fields(&self.kd.spec) {
            tracing::warn!(field, "deprecated field is set and ignored");
        }
        let generation = self.kd.meta().generation;
        let conds = super::status::progressing(
            &self.status().conditions,
            "Reconciliation in progress",
            false,
            generation,
            &now(),
        );
        self.patch_status(json!({"conditions": conds})).await?;

        let outcome = match self.run_engine(engine_spec, &timing).await {
            Ok(o) => o,
            Err((e, revision)) => return self.fail(&e, Some(&timing), &revision).await,
        };
        self.finish(&timing, outcome).await
    }

    /// The source, the kubeconfig context and the job for the engine; the revision (for the
    /// status, also on failure) with the error.
    async fn job(
        &self,
        mut engine_spec: EngineSpec,
    ) -> Result<(project::Job, fetch::Fetched), (StepError, String)> {
        let s = &self.ctx.settings;
        let fetch_cx = fetch::FetchContext {
            client: &self.ctx.client,
            sources: &self.ctx.sources,
            artifact_options: &s.artifact_options,
            no_cross_namespace_refs: s.no_cross_namespace_refs,
        };
        let fetched = fetch::fetch(&fetch_cx, &self.namespace, &engine_spec)
            .await
            .map_err(|e| (e.into(), String::new()))?;
        let revision = fetched.revision.clone();
        let with_revision = |e: StepError| (e, revision.clone());

        // renameContexts: which kubeconfig context, and its name for the project
        let wanted = if let Some(c) = &self.kd.spec.context {
            Some((c.clone(), "spec.context"))
        } else {
            let (dir, t, args) = (
                fetched.project_dir.clone(),
                engine_spec.target.clone(),
                engine_spec.args.clone().map_or_else(|| json!({}), Value::Object),
            );
            tokio::task::spawn_blocking(move || {
                kluctl_engine::target::target_context(&dir, t.as_deref(), &args)
            })
            .await
            .map_err(|e| with_revision(StepError::Task(e.to_string())))?
            .map_err(|e| with_revision(project::PrepareError(kluctl_engine::error_chain(&e)).into()))?
            .map(|c| (c, "the target's context in .kluctl.yaml"))
        };
        let choice = spec::resolve_context(
            &self.kd.spec.rename_contexts,
            wanted.as_ref().map(|(c, o)| (c.as_str(), *o)),
            engine_spec.kube_config.is_none(),
        )
        .map_err(|e| with_revision(e.into()))?;
        let written_context = engine_spec.context.take();
        engine_spec.context.clone_from(&choice.kubeconfig_context);
        let (config, current) = target::target_config(
            &self.ctx.client,
            &self.ctx.base_config,
            &self.namespace,
            &engine_spec,
            &s.default_service_account,
        )
        .await
        .map_err(|e| with_revision(e.into()))?;
        let context = choice
            .project_context
            .unwrap_or_else(|| spec::rename(&self.kd.spec.rename_contexts, &current));
        engine_spec.context = written_context;
        let timeout = Timing::from_spec(&self.kd.spec).map_or(Duration::from_secs(600), |t| t.timeout);
        let job = self.ctx.job(
            &self.who(),
            engine_spec,
            (config, context),
            Some(&fetched),
            self.started + timeout,
        );
        Ok((job, fetched))
    }

    /// Source, context, prepare, decide, deploy (with prune) and validate.
    async fn run_engine(
        &self,
        engine_spec: EngineSpec,
        timing: &Timing,
    ) -> Result<Outcome, (StepError, String)> {
        let (job, fetched) = self.job(engine_spec).await?;
        let revision = fetched.revision.clone();
        let legacy = self.kd.spec.clone();
        let status = self.status();
        let generation = self.kd.meta().generation;
        let requested = self.annotation(FLUX_KLUCTL_DEPLOY_REQUESTED_AT_ANNOTATION);
        let timing = timing.clone();
        let span = tracing::Span::current();
        let rev = revision.clone();
        tokio::task::spawn_blocking(move || -> Result<Outcome, StepError> {
            let _in = span.enter();
            let _fetched = fetched;
            let prepared = project::prepare(&job)?;
            let now = jiff::Timestamp::now();
            let reason = decide::decide_deploy(
                &legacy,
                &status,
                generation,
                &prepared.objects_hash,
                requested.as_deref(),
                &timing,
                now,
            );
            let deploy = reason.map(|why| {
                tracing::info!(reason = why.as_str(), "deploying");
                let (ran, full) = prepared.deploy_full(&job, false);
                let raw = status::raw_result(&full, || full.to_reduced_objects());
                (why, ran, raw)
            });
            let validate = decide::decide_validate(&legacy, &status, deploy.is_some(), &timing, now)
                .then(|| prepared.validate(&job));
            Ok(Outcome {
                revision: rev,
                objects_hash: prepared.objects_hash.clone(),
                discriminator: prepared.discriminator.clone(),
                raw_target: serde_json::to_string(&prepared.rendered.target).ok(),
                deploy,
                validate,
            })
        })
        .await
        .map_err(|e| (StepError::Task(e.to_string()), revision.clone()))?
        .map_err(|e| (e, revision))
    }

    /// Writes the outcome: results, Ready, the handled request values; events; the requeue.
    async fn finish(mut self, timing: &Timing, outcome: Outcome) -> Result<Action, Error> {
        let spec = self.kd.spec.clone();
        let generation = self.kd.meta().generation;
        let time = now();
        let revision = outcome.revision.clone();
        let mut st = self.status();
        st.observed_generation = generation;
        st.last_attempted_revision.clone_from(&revision);
        st.discriminator.clone_from(&outcome.discriminator);
        st.raw_target.clone_from(&outcome.raw_target);
        if let Some(v) = self.annotation(RECONCILE_REQUESTED_AT_ANNOTATION) {
            st.last_handled_reconcile_at = v;
        }
        if let Some((_, ran, raw)) = &outcome.deploy {
            let error = status::command_error(
                if spec.deploy_mode == DeployMode::PokeImages {
                    "poke-images"
                } else {
                    "deploy"
                },
                &ran.summary,
            );
            st.last_deploy_result = Some(status::command_result(
                &time,
                &revision,
                &spec,
                &outcome.objects_hash,
                raw.clone(),
                error,
            ));
            // The engine prunes inside the deploy, after its own successful apply.
            if spec.prune && spec.deploy_mode == DeployMode::FullDeploy {
                st.last_prune_result = Some(status::command_result(
                    &time,
                    &revision,
                    &spec,
                    &outcome.objects_hash,
                    raw.clone(),
                    status::command_error("prune", &ran.summary),
                ));
            }
            if let Some(v) = self.annotation(FLUX_KLUCTL_DEPLOY_REQUESTED_AT_ANNOTATION) {
                st.last_handled_deploy_at = v;
            }
        }
        if !spec.validate {
            st.last_validate_result = None;
        } else if let Some((v, _)) = &outcome.validate {
            st.last_validate_result = Some(status::command_result(
                &time,
                &revision,
                &spec,
                &outcome.objects_hash,
                status::raw_result(v, || v.clone()),
                status::validate_error(v),
            ));
        }
        let ready = status::ready(&spec, &st, &revision);
        st.conditions = super::status::finished(&st.conditions, &ready, generation, &time);
        st.conditions = conditions::remove(&st.conditions, types::STALLED);
        let requeue = if ready.ok {
            decide::requeue_after(&spec, &st, timing, jiff::Timestamp::now())
        } else {
            timing.retry_interval
        };
        let mut patch = serde_json::to_value(&st).unwrap_or_else(|_| json!({}));
        // Merge patches drop nothing by omission: clear what is gone explicitly.
        if st.last_validate_result.is_none() {
            patch["lastValidateResult"] = Value::Null;
        }
        self.patch_status(patch).await?;

        self.emit_results(&spec, &outcome).await;
        let finished = super::status::finished_message(round_ms(self.started.elapsed()), round_ms(requeue));
        tracing::info!(ready = ready.ok, reason = ready.reason, "{finished}");
        // flux-kluctl-controller: "Reconciliation finished ..." with commit_status on success,
        // the Ready message on failure.
        if ready.ok {
            self.emit(Severity::Info, ready.reason, &finished, &revision, true)
                .await;
        } else {
            self.emit(Severity::Error, ready.reason, &ready.message, &revision, false)
                .await;
        }
        Ok(Action::requeue(requeue))
    }

    /// The event of this reconcile's deploy (flux-kluctl-controller has none for validate
    /// results: a failed validate shows in the reconcile's own event).
    async fn emit_results(&self, spec: &KluctlDeploymentSpec, outcome: &Outcome) {
        if let Some((why, ran, _)) = &outcome.deploy {
            let ok = ran.summary.errors.is_empty();
            let command = if spec.deploy_mode == DeployMode::PokeImages {
                "poke-images"
            } else {
                "deploy"
            };
            let message = status::command_event(command, &ran.summary);
            tracing::info!(reason = why.as_str(), ok, "{message}");
            self.emit(
                if ok { Severity::Info } else { Severity::Error },
                if ok {
                    reasons::RECONCILIATION_SUCCEEDED
                } else {
                    reasons::DEPLOY_FAILED
                },
                &message,
                &outcome.revision,
                false,
            )
            .await;
            if let Some(e) = &ran.store_error {
                tracing::warn!(error = %e, "failed to store the deploy result");
            }
        }
        if let Some((_, Some(e))) = &outcome.validate {
            tracing::warn!(error = %e, "failed to store the validate result");
        }
    }

    /// Records a failed step: Ready=False with the step's reason and the error as message (and
    /// Stalled when only a spec change helps), the handled reconcile request, an event; requeues
    /// after `retryInterval`.
    async fn fail(mut self, e: &StepError, timing: Option<&Timing>, revision: &str) -> Result<Action, Error> {
        let reason = e.reason();
        let text = kluctl_engine::error_chain(e);
        tracing::error!(reason, error = %text, "reconcile failed");
        let generation = self.kd.meta().generation;
        let ready = super::status::Ready {
            ok: false,
            reason,
            message: text.clone(),
        };
        let time = now();
        let mut conds = super::status::finished(&self.status().conditions, &ready, generation, &time);
        if e.stalled() {
            conds = conditions::set(
                &conds,
                types::STALLED,
                gitops_api::conditions::status::TRUE,
                reason,
                &super::status::capped(&text),
                generation,
                &time,
            );
        }
        let mut patch = json!({"conditions": conds});
        if !revision.is_empty() {
            patch["lastAttemptedRevision"] = Value::String(revision.to_owned());
        }
        if let Some(v) = self.annotation(RECONCILE_REQUESTED_AT_ANNOTATION) {
            patch["lastHandledReconcileAt"] = Value::String(v);
        }
        self.patch_status(patch).await?;
        self.emit(Severity::Error, reason, &text, revision, false).await;
        if e.stalled() {
            return Ok(Action::await_change());
        }
        Ok(Action::requeue(
            timing.map_or(Duration::from_secs(60), |t| t.retry_interval),
        ))
    }

    /// Deletion: with `spec.delete` (and not suspended) delete the objects of the discriminator
    /// recorded in `status.discriminator`; then release the finalizer. Failures are logged, never
    /// block the deletion.
    async fn finalize(mut self) -> Result<Action, Error> {
        if !self.kd.finalizers().iter().any(|f| f == FLUX_KLUCTL_FINALIZER) {
            return Ok(Action::await_change());
        }
        let discriminator = self.status().discriminator;
        if self.kd.spec.delete && !self.kd.spec.suspend {
            if discriminator.is_empty() {
                tracing::warn!(
                    "spec.delete is set but no discriminator was recorded in status.discriminator: nothing deleted"
                );
            } else if let Err(e) = self.delete_target(&discriminator).await {
                tracing::error!(error = %kluctl_engine::error_chain(&e), "deleting the target's objects failed");
            }
        }
        let finalizers: Vec<String> = self
            .kd
            .finalizers()
            .iter()
            .filter(|f| *f != FLUX_KLUCTL_FINALIZER)
            .cloned()
            .collect();
        let patch =
            json!({"metadata": {"finalizers": finalizers, "resourceVersion": self.kd.resource_version()}});
        match self.api.patch(&self.name, &params(), &Patch::Merge(patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::await_change())
    }

    async fn delete_target(&mut self, discriminator: &str) -> Result<(), StepError> {
        let s = &self.ctx.settings;
        let mut engine_spec = spec::engine_spec(&self.kd.spec)?;
        // Nothing is rendered: only spec.context can name a context.
        let choice = spec::resolve_context(
            &self.kd.spec.rename_contexts,
            self.kd.spec.context.as_deref().map(|c| (c, "spec.context")),
            engine_spec.kube_config.is_none(),
        )?;
        engine_spec.context.clone_from(&choice.kubeconfig_context);
        let (config, current) = target::target_config(
            &self.ctx.client,
            &self.ctx.base_config,
            &self.namespace,
            &engine_spec,
            &s.default_service_account,
        )
        .await?;
        let context = choice
            .project_context
            .unwrap_or_else(|| spec::rename(&self.kd.spec.rename_contexts, &current));
        let target_name = self.kd.spec.target.clone().unwrap_or_default();
        let job = self.ctx.job(
            &self.who(),
            engine_spec,
            (config, context),
            None,
            self.started + Duration::from_secs(600),
        );
        let ran = self
            .ctx
            .delete_target(job, target_name, discriminator.to_owned())
            .await?;
        let message = status::command_event("delete", &ran.summary);
        let ok = ran.summary.errors.is_empty();
        self.emit(
            if ok { Severity::Info } else { Severity::Error },
            if ok {
                reasons::RECONCILIATION_SUCCEEDED
            } else {
                reasons::DEPLOY_FAILED
            },
            &message,
            "",
            false,
        )
        .await;
        Ok(())
    }
}

/// Durations in messages: milliseconds are precise enough.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kd(annotations: &serde_json::Value, source_ref: &serde_json::Value) -> KluctlDeployment {
        serde_json::from_value(json!({
            "apiVersion": "flux.kluctl.io/v1alpha1",
            "kind": "KluctlDeployment",
            "metadata": {"name": "app", "namespace": "apps", "generation": 1, "annotations": annotations},
            "spec": {"interval": "5m", "sourceRef": source_ref},
        }))
        .unwrap()
    }

    #[test]
    fn the_watch_triggers_on_the_request_annotations_only() {
        let git = json!({"kind": "GitRepository", "name": "repo"});
        let base = trigger_hash(&kd(&json!({}), &git));
        assert_eq!(base, trigger_hash(&kd(&json!({"unrelated": "x"}), &git)));
        assert_ne!(
            base,
            trigger_hash(&kd(&json!({"deploy.flux.kluctl.io/requestedAt": "1"}), &git))
        );
        assert_ne!(
            base,
            trigger_hash(&kd(&json!({"reconcile.fluxcd.io/requestedAt": "1"}), &git))
        );
    }

    #[test]
    fn a_source_ref_matches_its_repository_in_its_namespace() {
        let own = kd(&json!({}), &json!({"kind": "GitRepository", "name": "repo"}));
        assert!(references(&own, "GitRepository", "apps", "repo"));
        assert!(!references(&own, "GitRepository", "other", "repo"));
        assert!(!references(&own, "Bucket", "apps", "repo"));
        let cross = kd(
            &json!({}),
            &json!({"kind": "GitRepository", "name": "repo", "namespace": "flux-system"}),
        );
        assert!(references(&cross, "GitRepository", "flux-system", "repo"));
        assert!(!references(&cross, "GitRepository", "apps", "repo"));
    }

    #[test]
    fn failures_map_to_the_legacy_reasons() {
        let e: StepError = spec::SpecError::SourceKind("OCIRepository".into()).into();
        assert_eq!((e.reason(), e.stalled()), ("ArtifactFailed", true));
        let e: StepError = fetch::FetchError::SourceNotFound {
            kind: "GitRepository",
            namespace: "apps".into(),
            name: "repo".into(),
        }
        .into();
        assert_eq!((e.reason(), e.stalled()), ("ArtifactFailed", false));
        assert_eq!(e.to_string(), "Source 'GitRepository/apps/repo' not found");
        let e: StepError = project::PrepareError("boom".into()).into();
        assert_eq!((e.reason(), e.stalled()), ("PrepareFailed", false));
    }
}
