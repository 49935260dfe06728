//! The KluctlDeployment reconcile (`gitops.kluctl.io/v1beta1`), as a pipeline whose steps read
//! top to bottom:
//!
//! ```text
//! finalizer ─► requests ─► source ─► prepare ─► decide ─► deploy/prune ─► validate ─► drift ─► status
//!   (add, or    (one of     (fetch)   (render,   (hash     (engine, with   (engine)    (dry-run  (one patch,
//!    delete by   diff/deploy/          target     gate,     the Applied                 diff)     events,
//!    discrim.)   prune/valid.)         cluster)   manual)   token)                                metrics)
//! ```
//!
//! The engine runs on a blocking thread ([`project`]); everything else is async. Nothing is
//! deployed, pruned or deleted unless the source step and the render of this run succeeded:
//! a failed step returns before the engine is called, and the engine's prune needs its own
//! successful apply (the `Applied` token). Each step's error maps, in [`StepError::reason`], to
//! the Ready reason, the event reason and the metric label.

pub mod decide;
pub mod fetch;
pub mod legacy;
pub mod project;
pub mod requests;
pub mod status;
pub mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitops_api::conditions::{self, reasons, types};
use gitops_api::constants::KLUCTL_FINALIZER;
use gitops_api::kluctl::v1beta1::{
    KluctlDeployment, KluctlDeploymentSpec, KluctlDeploymentStatus, ManualRequestResult,
};
use gitops_api::meta::Time;
use gitops_runtime::events::{Events, Severity};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::metrics::{LastResults, Metrics};
use crate::source::artifact::FetchOptions;
use decide::{DeployDecision, Timing};
use requests::RequestKind;

/// Field manager of the controller's own patches (status, finalizer, annotations).
pub const FIELD_MANAGER: &str = gitops_api::constants::KLUCTL_CONTROLLER_FIELD_MANAGER;

/// What every reconcile shares.
pub struct Context {
    /// The controller's client.
    pub client: kube::Client,
    /// The controller's client configuration (the base of every target connection).
    pub base_config: kube::Config,
    /// Events (Kubernetes and, with `--events-addr`, Flux's wire format).
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings from the flags.
    pub settings: Settings,
    /// Discovery results shared between reconciles.
    pub discovery: Arc<project::DiscoveryCache>,
    /// Checkouts and artifacts shared between reconciles, size-capped.
    pub sources: crate::source::cache::SourceCache,
    /// When the source cache was last cleaned.
    pub last_gc: std::sync::Mutex<Instant>,
    /// Objects known to be in sync per KluctlDeployment, for drift detection.
    pub in_sync: Arc<project::InSyncCache>,
}

/// How often the source cache is cleaned at most.
const GC_EVERY: Duration = Duration::from_secs(60);

/// Which object a job is for.
pub struct Who<'a> {
    /// The object's name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// This reconcile's id.
    pub reconcile_id: &'a str,
}

impl Context {
    /// The engine job for `who`: `spec` rendered from `source` (`None`: nothing rendered, for a
    /// delete by discriminator) on the target `config`/`context`, done by `deadline`.
    pub fn job(
        &self,
        who: &Who<'_>,
        spec: KluctlDeploymentSpec,
        target: (kube::Config, String),
        source: Option<&fetch::Fetched>,
        deadline: Instant,
    ) -> project::Job {
        let s = &self.settings;
        let (config, context) = target;
        project::Job {
            name: who.name.to_owned(),
            namespace: who.namespace.to_owned(),
            spec,
            overrides_patch: None,
            project_dir: source.map(|f| f.project_dir.clone()).unwrap_or_default(),
            project_key: source.map(|f| f.project_key.clone()).unwrap_or_default(),
            git_info: source.map(|f| f.git_info.clone()).unwrap_or_default(),
            config,
            context,
            controller_dry_run: s.dry_run,
            reconcile_id: who.reconcile_id.to_owned(),
            work_dir: s.cache_dir.join("work"),
            git_cache_dir: self.sources.git_dir(),
            git: source.map_or_else(kluctl_engine::source::GitSourceOptions::default, |f| {
                self.sources.git_options(f.rules.clone())
            }),
            results: s.results.clone(),
            deadline,
            discovery: self.discovery.clone(),
            in_sync: self.in_sync.clone(),
        }
    }

    /// Deletes every object of `discriminator` (the target named `target_name`) with `job`,
    /// on the engine thread; the result is stored.
    ///
    /// # Errors
    /// When the cluster cannot be reached or the engine task fails.
    pub async fn delete_target(
        &self,
        job: project::Job,
        target_name: String,
        discriminator: String,
    ) -> Result<project::Ran, project::PrepareError> {
        let span = tracing::Span::current();
        let ran = tokio::task::spawn_blocking(move || -> Result<project::Ran, project::PrepareError> {
            let _in = span.enter();
            let prepared = project::prepare_delete(&job, &target_name, &discriminator)?;
            Ok(prepared.delete(&job))
        })
        .await
        .map_err(|e| project::PrepareError(format!("the engine task failed: {e}")))??;
        tracing::info!(
            deleted = ran.summary.deleted_objects,
            "{}",
            status::command_message("delete", &ran.summary)
        );
        Ok(ran)
    }

    /// Cleans the source cache unless that happened within [`GC_EVERY`].
    async fn maybe_gc(&self) {
        {
            let Ok(mut last) = self.last_gc.lock() else { return };
            if last.elapsed() < GC_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let sources = self.sources.clone();
        if let Ok(stats) = tokio::task::spawn_blocking(move || sources.gc()).await
            && stats.removed > 0
        {
            tracing::info!(
                removed = stats.removed,
                freed_bytes = stats.freed_bytes,
                kept_bytes = stats.kept_bytes,
                "cleaned the source cache"
            );
        }
    }
}

/// The flags a reconcile reads.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--default-service-account`.
    pub default_service_account: String,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--no-cross-namespace-refs`.
    pub no_cross_namespace_refs: bool,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// The result store.
    pub results: project::ResultStore,
    /// How artifacts are fetched.
    pub artifact_options: FetchOptions,
}

/// A failed reconcile step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A spec value that cannot work until it is changed.
    #[error(transparent)]
    Timing(#[from] decide::TimingError),
    /// The source could not be fetched.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    /// The target cluster's configuration could not be built.
    #[error(transparent)]
    Target(#[from] target::TargetError),
    /// Loading or rendering the project failed.
    #[error(transparent)]
    Prepare(#[from] project::PrepareError),
    /// A manual request could not be used.
    #[error(transparent)]
    Request(#[from] requests::RequestError),
    /// The API server refused a read or a status write.
    #[error("failed to update the KluctlDeployment: {0}")]
    Kube(Box<kube::Error>),
    /// The blocking engine task did not finish.
    #[error("the engine task failed: {0}")]
    Task(String),
}

impl StepError {
    /// The Ready reason, also the event reason and the failure metric's label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timing(_) => reasons::UNSUPPORTED_CONFIGURATION,
            Self::Fetch(e) => e.reason(),
            Self::Target(_) | Self::Prepare(_) | Self::Request(_) | Self::Task(_) => reasons::PREPARE_FAILED,
            Self::Kube(_) => reasons::PATCH_OPERATION_FAILED,
        }
    }

    /// Whether only a spec change can help (Stalled, no retry).
    pub fn stalled(&self) -> bool {
        match self {
            Self::Timing(_) => true,
            Self::Fetch(e) => e.stalled(),
            _ => false,
        }
    }

    /// A state that ends by itself rather than a failure: the source has no artifact yet (a
    /// KluctlDeployment created together with its GitRepository), and the source watch triggers
    /// the next reconcile once it has one. Logged at info, as Flux's kustomize-controller does, so
    /// error lines stay real errors (the soak counts them).
    pub fn is_waiting(&self) -> bool {
        matches!(self, Self::Fetch(fetch::FetchError::NoArtifact { .. }))
    }

    /// The Ready message: Kluctl's fixed text for prepare failures (the full text goes to
    /// `status.lastPrepareError`), the error with its causes otherwise.
    fn ready_message(&self) -> String {
        if self.reason() == reasons::PREPARE_FAILED && !matches!(self, Self::Kube(_)) {
            status::prepare_failed_message()
        } else {
            // The whole chain: the cause (an artifact entry's rule, a truncated stream) is what
            // names the place.
            status::capped(&kluctl_engine::error_chain(self))
        }
    }
}

impl From<kube::Error> for StepError {
    fn from(e: kube::Error) -> Self {
        Self::Kube(Box::new(e))
    }
}

/// The error kube-runtime sees (only API failures; step failures are written to status and
/// requeued by the reconcile itself).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] kube::Error);

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// One KluctlDeployment being reconciled.
struct Run<'a> {
    ctx: &'a Context,
    api: Api<KluctlDeployment>,
    kd: KluctlDeployment,
    name: String,
    namespace: String,
    reconcile_id: String,
    started: Instant,
    /// The source revision this run fetched (Flux's form), for the events' `revision`; empty
    /// until the source is fetched.
    revision: std::sync::Mutex<String>,
}

/// Reconciles one KluctlDeployment (kube-runtime entry point).
///
/// # Errors
/// Only when the object cannot be read or written; every other failure is recorded in its
/// status and requeued after `retryInterval`.
pub async fn reconcile(obj: Arc<KluctlDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let reconcile_id = uuid::Uuid::new_v4().to_string();
    let span =
        tracing::info_span!("reconcile", name = %name, namespace = %namespace, reconcileID = %reconcile_id);
    async move {
        let api: Api<KluctlDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
        // Always the live object: the cache may lag behind a request annotation just set.
        let Some(kd) = api.get_opt(&name).await? else {
            ctx.metrics.forget(&namespace, &name);
            return Ok(Action::await_change());
        };
        ctx.maybe_gc().await;
        let run = Run {
            ctx: &ctx,
            api,
            kd,
            name,
            namespace,
            reconcile_id,
            started: Instant::now(),
            revision: std::sync::Mutex::default(),
        };
        Box::pin(run.reconcile()).await
    }
    .instrument(span)
    .await
}

/// Requeue after an API failure.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime requires
pub fn error_policy(obj: Arc<KluctlDeployment>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        name = %obj.name_any(),
        namespace = %obj.namespace().unwrap_or_default(),
        error = %kluctl_engine::error_chain(err),
        "reconcile failed"
    );
    Action::requeue(Duration::from_secs(10))
}

impl Run<'_> {
    async fn reconcile(mut self) -> Result<Action, Error> {
        // finalizer
        if self.kd.meta().deletion_timestamp.is_some() {
            return Box::pin(self.finalize()).await;
        }
        if !self.kd.finalizers().iter().any(|f| f == KLUCTL_FINALIZER) {
            self.add_finalizer().await?;
        }
        let timing = match Timing::from_spec(&self.kd.spec) {
            Ok(t) => t,
            Err(e) => return Box::pin(self.fail(&StepError::from(e), None)).await,
        };
        // requests: the first command request found, then come back for the next
        for kind in RequestKind::COMMANDS {
            if let Some(found) = requests::find(&self.kd, kind) {
                Box::pin(self.handle_request(kind, found, &timing)).await?;
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
        }
        let reconcile_request = requests::find(&self.kd, RequestKind::Reconcile);
        if self.kd.spec.suspend && reconcile_request.is_none() {
            return Box::pin(self.suspended()).await;
        }
        Box::pin(self.full_reconcile(&timing, reconcile_request)).await
    }

    async fn add_finalizer(&mut self) -> Result<(), Error> {
        let mut finalizers = self.kd.finalizers().to_vec();
        finalizers.push(KLUCTL_FINALIZER.to_owned());
        let patch =
            json!({"metadata": {"finalizers": finalizers, "resourceVersion": self.kd.resource_version()}});
        self.kd = self
            .api
            .patch(&self.name, &params(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// Writes the given status fields, each replacing its stored value whole
    /// ([`status::replacing_patch`]); fields not given stay.
    async fn patch_status(&mut self, status: Value) -> Result<(), Error> {
        let current = serde_json::to_value(&self.kd.status).unwrap_or(Value::Null);
        let status = status::replacing_patch(&current, status);
        self.kd = self
            .api
            .patch_status(&self.name, &params(), &Patch::Merge(json!({"status": status})))
            .await?;
        Ok(())
    }

    fn status(&self) -> KluctlDeploymentStatus {
        self.kd.status.clone().unwrap_or_default()
    }

    fn who(&self) -> Who<'_> {
        Who {
            name: &self.name,
            namespace: &self.namespace,
            reconcile_id: &self.reconcile_id,
        }
    }

    /// Emits an event about the KluctlDeployment with the fetched source revision; `success`
    /// marks the end of a successful reconcile (`commit_status: update`, as Kluctl sends it).
    async fn emit(&self, severity: Severity, reason: &str, message: &str, success: bool) {
        let revision = self.revision.lock().map(|r| r.clone()).unwrap_or_default();
        let metadata = status::event_metadata(&revision, success);
        self.ctx
            .events
            .emit(&self.kd, severity, reason, message, metadata)
            .await;
    }

    /// Suspended: record that the spec was seen (kstatus and `kluctl gitops suspend` wait on
    /// `observedGeneration`), do nothing else.
    async fn suspended(mut self) -> Result<Action, Error> {
        let generation = self.kd.meta().generation;
        if self.status().observed_generation != generation {
            self.patch_status(json!({"observedGeneration": generation}))
                .await?;
        }
        tracing::info!("suspended: nothing deployed");
        Ok(Action::await_change())
    }

    /// Records a failed step: Ready=False with the step's reason (and Stalled when only a spec
    /// change helps), the full text in `lastPrepareError` for prepare failures, an event and
    /// the metric; requeues after `retryInterval`.
    async fn fail(mut self, e: &StepError, timing: Option<&Timing>) -> Result<Action, Error> {
        let reason = e.reason();
        let text = kluctl_engine::error_chain(e);
        if e.is_waiting() {
            tracing::info!(reason, error = %text, "reconcile waiting for the source");
        } else {
            tracing::error!(reason, error = %text, "reconcile failed");
        }
        let generation = self.kd.meta().generation;
        let ready = status::Ready {
            ok: false,
            reason,
            message: e.ready_message(),
        };
        let now = now();
        let mut conds = status::finished(&self.status().conditions, &ready, generation, &now);
        if e.stalled() {
            conds = conditions::set(
                &conds,
                types::STALLED,
                gitops_api::conditions::status::TRUE,
                reason,
                &status::capped(&text),
                generation,
                &now,
            );
        } else {
            // A stall of an earlier generation is over: this failure is retried.
            conds = conditions::remove(&conds, types::STALLED);
        }
        let mut patch = json!({"conditions": conds, "observedGeneration": generation});
        if reason == reasons::PREPARE_FAILED {
            patch["lastPrepareError"] = Value::String(text.clone());
        }
        self.patch_status(patch).await?;
        self.emit(Severity::Error, reason, &text, false).await;
        self.ctx
            .metrics
            .observe(&self.namespace, &self.name, self.started.elapsed(), Some(reason));
        if e.stalled() {
            return Ok(Action::await_change());
        }
        Ok(Action::requeue(
            timing.map_or(Duration::from_secs(60), |t| t.retry_interval),
        ))
    }

    /// The source, the target connection and the job for the engine.
    async fn job(
        &self,
        spec: KluctlDeploymentSpec,
        overrides: Option<Value>,
        timing: &Timing,
    ) -> Result<(project::Job, fetch::Fetched), StepError> {
        let s = &self.ctx.settings;
        let fetch_cx = fetch::FetchContext {
            client: &self.ctx.client,
            sources: &self.ctx.sources,
            artifact_options: &s.artifact_options,
            no_cross_namespace_refs: s.no_cross_namespace_refs,
        };
        let fetched = fetch::fetch(&fetch_cx, &self.namespace, &spec).await?;
        if let Ok(mut r) = self.revision.lock() {
            r.clone_from(&fetched.source_revision);
        }
        let (config, context) = target::target_config(
            &self.ctx.client,
            &self.ctx.base_config,
            &self.namespace,
            &spec,
            &s.default_service_account,
        )
        .await?;
        let mut job = self.ctx.job(
            &self.who(),
            spec,
            (config, context),
            Some(&fetched),
            self.started + timing.timeout,
        );
        job.overrides_patch = overrides;
        Ok((job, fetched))
    }

    #[allow(clippy::too_many_lines)] // the steps of the full reconcile in order; split, the order hides
    async fn full_reconcile(
        mut self,
        timing: &Timing,
        request: Option<Result<requests::Pending, (String, requests::RequestError)>>,
    ) -> Result<Action, Error> {
        let request = match request {
            Some(found) => Some(self.start_request(RequestKind::Reconcile, found).await?),
            None => None,
        };
        let generation = self.kd.meta().generation;
        let mut early = json!({
            "conditions": status::progressing(&self.status().conditions, "Performing kluctl full-deploy", false, generation, &now()),
        });
        if let Some(key) = fetch::early_project_key(&self.kd.spec) {
            early["projectKey"] = serde_json::to_value(key).unwrap_or(Value::Null);
        }
        self.patch_status(early).await?;

        let outcome = Box::pin(self.run_full(timing)).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if let Some(r) = request {
                    self.finish_request(
                        RequestKind::Reconcile,
                        r,
                        String::new(),
                        Some(kluctl_engine::error_chain(&e)),
                    )
                    .await?;
                }
                return Box::pin(self.fail(&e, Some(timing))).await;
            }
        };
        let spec = &self.kd.spec;
        let mut st = self.status();
        st.observed_generation = generation;
        st.observed_commit.clone_from(&outcome.commit);
        st.project_key = Some(outcome.project_key.clone());
        st.target_key = Some(outcome.target_key.clone());
        st.last_objects_hash.clone_from(&outcome.objects_hash);
        st.last_manual_objects_hash.clone_from(&spec.manual_objects_hash);
        st.last_prepare_error.clear();
        if let Some(d) = &outcome.deploy {
            st.last_deploy_result = Some(d.summary.clone());
        }
        if !spec.validate {
            st.last_validate_result = None;
        } else if let Some((v, _)) = &outcome.validate {
            st.last_validate_result = Some(v.clone());
        }
        st.last_drift_detection_result_message = outcome.drift.short_message();
        st.last_drift_detection_result = Some(outcome.drift.clone());
        let ready = status::ready_from_results(spec, &st);
        let now = now();
        st.conditions = status::finished(&st.conditions, &ready, generation, &now);
        st.conditions = conditions::remove(&st.conditions, types::STALLED);
        let requeue = decide::requeue_after(spec, &st, timing, jiff::Timestamp::now());
        let mut patch = serde_json::to_value(&st).unwrap_or_else(|_| json!({}));
        // Merge patches drop nothing by omission: clear what is gone explicitly.
        for (field, gone) in [
            ("lastValidateResult", st.last_validate_result.is_none()),
            ("lastPrepareError", true),
        ] {
            if gone {
                patch[field] = Value::Null;
            }
        }
        self.patch_status(patch).await?;

        // Events as Kluctl sends them: one per command result (a scheduled deploy is named by
        // its deployMode; validate results have none of their own), then one per reconcile: on
        // success "Reconciliation finished ..." with commit_status, else the Ready message.
        if let Some(d) = &outcome.deploy {
            let command = status::scheduled_deploy_command(self.kd.spec.deploy_mode);
            let message = status::command_event(command, &d.summary);
            let ok = d.summary.errors.is_empty();
            self.emit(
                if ok { Severity::Info } else { Severity::Error },
                if ok {
                    reasons::RECONCILIATION_SUCCEEDED
                } else {
                    reasons::DEPLOY_FAILED
                },
                &message,
                false,
            )
            .await;
            if let Some(e) = &d.store_error {
                tracing::warn!(error = %e, "failed to store the deploy result");
            }
            if let Some(note) = &d.store_note {
                tracing::warn!(note = %note, "the deploy result was reduced to fit the result store");
            }
        }
        if let Some((_, Some(e))) = &outcome.validate {
            tracing::warn!(error = %e, "failed to store the validate result");
        }
        if let DeployDecision::AwaitingApproval(why) = outcome.decision {
            tracing::info!(reason = why.as_str(), objects_hash = %outcome.objects_hash, "deploy awaits manual approval");
        }
        let finished = status::finished_message(round_ms(self.started.elapsed()), round_ms(requeue));
        tracing::info!(decision = ?outcome.decision, ready = ready.ok, "{finished}");
        if ready.ok {
            self.emit(Severity::Info, ready.reason, &finished, true).await;
        } else {
            self.emit(Severity::Error, ready.reason, &ready.message, false)
                .await;
        }
        self.ctx.metrics.observe(
            &self.namespace,
            &self.name,
            self.started.elapsed(),
            (!ready.ok).then_some(ready.reason),
        );
        self.ctx.metrics.set_results(
            &self.namespace,
            &self.name,
            &LastResults {
                deploy_errors: st.last_deploy_result.as_ref().map(|d| d.errors.len()),
                deploy_warnings: st.last_deploy_result.as_ref().map(|d| d.warnings.len()),
                changed: st
                    .last_deploy_result
                    .as_ref()
                    .map(|d| count(d.new_objects + d.changed_objects)),
                orphans: st.last_deploy_result.as_ref().map(|d| count(d.orphan_objects)),
                validate_ready: st.last_validate_result.as_ref().map(|v| v.ready),
                drifted: Some(outcome.drift.objects.len()),
            },
        );
        if let Some(r) = request {
            let id = outcome
                .deploy
                .as_ref()
                .map(|d| d.stored_id.clone())
                .unwrap_or_default();
            self.finish_request(RequestKind::Reconcile, r, id, None).await?;
        }
        Ok(Action::requeue(requeue))
    }

    /// Source, prepare, decide, deploy, validate and drift of a full reconcile.
    async fn run_full(&self, timing: &Timing) -> Result<FullOutcome, StepError> {
        let (job, fetched) = self.job(self.kd.spec.clone(), None, timing).await?;
        let status = self.status();
        let generation = self.kd.meta().generation;
        let timing = timing.clone();
        let commit = fetched.commit.clone();
        let project_key = fetched.project_key.clone();
        let span = tracing::Span::current();
        let outcome = tokio::task::spawn_blocking(move || -> Result<_, StepError> {
            let _in = span.enter();
            let _fetched = fetched;
            let prepared = project::prepare(&job)?;
            let now = jiff::Timestamp::now();
            let decision = decide::decide_deploy(
                &job.spec,
                &status,
                generation,
                &prepared.objects_hash,
                &timing,
                now,
            );
            let deploy = match decision {
                DeployDecision::Deploy(why) => {
                    tracing::info!(reason = why.as_str(), "deploying");
                    Some(prepared.deploy(&job, false))
                }
                _ => None,
            };
            let validate = decide::decide_validate(&job.spec, &status, deploy.is_some(), &timing, now)
                .then(|| prepared.validate(&job));
            let drift = prepared.drift(&job);
            Ok(FullOutcome {
                objects_hash: prepared.objects_hash.clone(),
                // The drift run read the cluster id already: no second read of kube-system.
                target_key: prepared.target_key(&drift.target_key),
                decision,
                deploy,
                validate,
                drift,
                commit: String::new(),
                project_key: gitops_api::kluctl::results::ProjectKey::default(),
            })
        })
        .await
        .map_err(|e| StepError::Task(e.to_string()))??;
        Ok(FullOutcome {
            commit,
            project_key,
            ..outcome
        })
    }

    /// Removes a request's annotation (if unchanged) and records its start.
    async fn start_request(
        &mut self,
        kind: RequestKind,
        found: Result<requests::Pending, (String, requests::RequestError)>,
    ) -> Result<Result<requests::Pending, (String, requests::RequestError)>, Error> {
        let raw = match &found {
            Ok(p) => p.raw.clone(),
            Err((raw, _)) => raw.clone(),
        };
        match self
            .api
            .patch(
                &self.name,
                &params(),
                &Patch::<Value>::Json(
                    serde_json::from_value(requests::removal_patch(kind, &raw)).unwrap_or_default(),
                ),
            )
            .await
        {
            Ok(kd) => self.kd = kd,
            // The value changed meanwhile: that newer request stays for the next reconcile.
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => {
                tracing::info!(
                    request = kind.as_str(),
                    "request annotation changed while handling it"
                );
            }
            Err(e) => return Err(e.into()),
        }
        if let Ok(p) = &found {
            let result = ManualRequestResult {
                request: p.request.clone(),
                start_time: now(),
                end_time: None,
                reconcile_id: self.reconcile_id.clone(),
                result_id: String::new(),
                command_error: String::new(),
            };
            let mut value = serde_json::to_value(&result).unwrap_or(Value::Null);
            // A merge patch keeps what it does not name: without explicit nulls the previous
            // request's end time, result and error would stay beside this request's start.
            if let Some(o) = value.as_object_mut() {
                for field in ["endTime", "resultId", "commandError"] {
                    o.entry(field).or_insert(Value::Null);
                }
                if let Some(r) = o.get_mut("request").and_then(Value::as_object_mut) {
                    r.entry("overridesPatch").or_insert(Value::Null);
                }
            }
            self.patch_status(json!({ kind.status_field(): value })).await?;
        }
        Ok(found)
    }

    /// Records a request's end: end time, result id, error.
    async fn finish_request(
        &mut self,
        kind: RequestKind,
        found: Result<requests::Pending, (String, requests::RequestError)>,
        result_id: String,
        error: Option<String>,
    ) -> Result<(), Error> {
        let (request, error) = match found {
            Ok(p) => (p.request, error),
            Err((raw, e)) => (
                gitops_api::kluctl::v1beta1::ManualRequest {
                    request_value: raw,
                    overrides_patch: None,
                },
                Some(e.to_string()),
            ),
        };
        let start = self
            .status()
            .request_result(kind)
            .filter(|r| r.request.request_value == request.request_value)
            .map_or_else(now, |r| r.start_time.clone());
        let result = ManualRequestResult {
            request,
            start_time: start,
            end_time: Some(now()),
            reconcile_id: self.reconcile_id.clone(),
            result_id,
            command_error: error.unwrap_or_default(),
        };
        self.patch_status(json!({ kind.status_field(): result })).await
    }

    /// A diff, deploy, prune or validate request.
    #[allow(clippy::too_many_lines)] // one request from annotation to result, in order
    async fn handle_request(
        &mut self,
        kind: RequestKind,
        found: Result<requests::Pending, (String, requests::RequestError)>,
        timing: &Timing,
    ) -> Result<(), Error> {
        let found = self.start_request(kind, found).await?;
        let pending = match &found {
            Ok(p) => p.clone(),
            Err(_) => return self.finish_request(kind, found, String::new(), None).await,
        };
        tracing::info!(request = kind.as_str(), value = %pending.request.request_value, "handling request");
        let spec = match requests::apply_overrides(&self.kd.spec, pending.request.overrides_patch.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .finish_request(kind, found, String::new(), Some(e.to_string()))
                    .await;
            }
        };
        let overrides = pending.request.overrides_patch.clone().map(Value::Object);
        let span = tracing::Span::current();
        let outcome = match Box::pin(self.job(spec, overrides, timing)).await {
            Ok((job, fetched)) => {
                tokio::task::spawn_blocking(move || -> Result<RequestOutcome, StepError> {
                    let _in = span.enter();
                    let _fetched = fetched;
                    let prepared = project::prepare(&job)?;
                    Ok(match kind {
                        RequestKind::Diff => RequestOutcome::Command(Box::new(prepared.diff(&job))),
                        RequestKind::Deploy => RequestOutcome::Command(Box::new(prepared.deploy(&job, true))),
                        RequestKind::Prune => RequestOutcome::Command(Box::new(prepared.prune(&job))),
                        RequestKind::Validate | RequestKind::Reconcile => {
                            let (v, e) = prepared.validate(&job);
                            RequestOutcome::Validate(Box::new(v), e)
                        }
                    })
                })
                .await
                .map_err(|e| StepError::Task(e.to_string()))
                .and_then(|r| r)
            }
            Err(e) => Err(e),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                let text = kluctl_engine::error_chain(&e);
                self.emit(Severity::Error, e.reason(), &text, false).await;
                if e.reason() == reasons::PREPARE_FAILED {
                    self.patch_status(json!({"lastPrepareError": text})).await?;
                }
                return self.finish_request(kind, found, String::new(), Some(text)).await;
            }
        };
        let (field, result_id, message, ok, store_error) = match &outcome {
            RequestOutcome::Command(ran) => (
                if kind == RequestKind::Diff {
                    "lastDiffResult"
                } else {
                    "lastDeployResult"
                },
                ran.stored_id.clone(),
                status::command_event(kind.as_str(), &ran.summary),
                ran.summary.errors.is_empty(),
                ran.store_error.clone(),
            ),
            RequestOutcome::Validate(v, e) => (
                "lastValidateResult",
                v.id.clone(),
                status::validate_message(v),
                v.ready && v.errors.is_empty(),
                e.clone(),
            ),
        };
        let value = match &outcome {
            RequestOutcome::Command(ran) => serde_json::to_value(&ran.summary),
            RequestOutcome::Validate(v, _) => serde_json::to_value(v),
        }
        .unwrap_or(Value::Null);
        let mut st = self.status();
        match &outcome {
            RequestOutcome::Command(ran) if kind != RequestKind::Diff => {
                st.last_deploy_result = Some(ran.summary.clone());
            }
            RequestOutcome::Validate(v, _) => st.last_validate_result = Some((**v).clone()),
            RequestOutcome::Command(_) => {}
        }
        let mut patch = json!({ field: value });
        if kind != RequestKind::Diff {
            let ready = status::ready_from_results(&self.kd.spec, &st);
            patch["conditions"] = serde_json::to_value(status::finished(
                &st.conditions,
                &ready,
                self.kd.meta().generation,
                &now(),
            ))
            .unwrap_or(Value::Null);
        }
        self.patch_status(patch).await?;
        let reason = match (kind, ok) {
            (_, true) => reasons::RECONCILIATION_SUCCEEDED,
            (RequestKind::Diff, false) => reasons::DIFF_FAILED,
            (RequestKind::Prune, false) => reasons::PRUNE_FAILED,
            (RequestKind::Validate, false) => reasons::VALIDATE_FAILED,
            (_, false) => reasons::DEPLOY_FAILED,
        };
        self.emit(
            if ok { Severity::Info } else { Severity::Error },
            reason,
            &message,
            false,
        )
        .await;
        if let Some(e) = &store_error {
            tracing::warn!(error = %e, "failed to store the result");
        }
        self.finish_request(
            kind,
            found,
            result_id,
            store_error.map(|e| format!("failed to store the result: {e}")),
        )
        .await
    }

    /// Deletion: with `spec.delete` (and not suspended) delete the target's objects by the
    /// discriminator recorded in status; then release the finalizer. Failures are logged, never
    /// block the deletion (Kluctl's behaviour).
    async fn finalize(mut self) -> Result<Action, Error> {
        if !self.kd.finalizers().iter().any(|f| f == KLUCTL_FINALIZER) {
            return Ok(Action::await_change());
        }
        let st = self.status();
        let target_key = st.target_key.clone().filter(|k| !k.discriminator.is_empty());
        if self.kd.spec.delete && !self.kd.spec.suspend {
            match target_key {
                None => tracing::warn!(
                    "spec.delete is set but no discriminator was recorded in status.targetKey: nothing deleted"
                ),
                Some(key) => {
                    if let Err(e) = self.delete_target(&key).await {
                        tracing::error!(error = %kluctl_engine::error_chain(&e), "deleting the target's objects failed");
                    }
                }
            }
        }
        let finalizers: Vec<String> = self
            .kd
            .finalizers()
            .iter()
            .filter(|f| *f != KLUCTL_FINALIZER)
            .cloned()
            .collect();
        let patch =
            json!({"metadata": {"finalizers": finalizers, "resourceVersion": self.kd.resource_version()}});
        match self.api.patch(&self.name, &params(), &Patch::Merge(patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        self.ctx.metrics.forget(&self.namespace, &self.name);
        self.ctx.in_sync.forget(&self.namespace, &self.name);
        Ok(Action::await_change())
    }

    async fn delete_target(&mut self, key: &gitops_api::kluctl::results::TargetKey) -> Result<(), StepError> {
        let s = &self.ctx.settings;
        let (config, context) = target::target_config(
            &self.ctx.client,
            &self.ctx.base_config,
            &self.namespace,
            &self.kd.spec,
            &s.default_service_account,
        )
        .await?;
        let mut job = self.ctx.job(
            &self.who(),
            self.kd.spec.clone(),
            (config, context),
            None,
            self.started + Duration::from_secs(600),
        );
        job.project_key = self.status().project_key.unwrap_or_default();
        let ran = self
            .ctx
            .delete_target(job, key.target_name.clone(), key.discriminator.clone())
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

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// What the engine part of a full reconcile produced.
struct FullOutcome {
    objects_hash: String,
    target_key: gitops_api::kluctl::results::TargetKey,
    decision: DeployDecision,
    deploy: Option<project::Ran>,
    validate: Option<(gitops_api::kluctl::results::ValidateResult, Option<String>)>,
    drift: gitops_api::kluctl::results::DriftDetectionResult,
    commit: String,
    project_key: gitops_api::kluctl::results::ProjectKey,
}

/// What a command request produced.
enum RequestOutcome {
    Command(Box<project::Ran>),
    Validate(Box<gitops_api::kluctl::results::ValidateResult>, Option<String>),
}

/// `status.<kind>RequestResult` by kind.
trait RequestResults {
    fn request_result(&self, kind: RequestKind) -> Option<&ManualRequestResult>;
}

impl RequestResults for KluctlDeploymentStatus {
    fn request_result(&self, kind: RequestKind) -> Option<&ManualRequestResult> {
        match kind {
            RequestKind::Reconcile => self.reconcile_request_result.as_ref(),
            RequestKind::Diff => self.diff_request_result.as_ref(),
            RequestKind::Deploy => self.deploy_request_result.as_ref(),
            RequestKind::Prune => self.prune_request_result.as_ref(),
            RequestKind::Validate => self.validate_request_result.as_ref(),
        }
    }
}
