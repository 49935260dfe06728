//! The reconcile driver shared by the kinds, around a kind's steps and its status function:
//!
//! ```text
//!  not due yet (own status patch, same generation/token)?  requeue for the time left
//!  lastHandledReconcileAt ← requestedAt
//!  suspended?                                              patch status, stop
//!  run(status)                → Run        the kind's steps: resolve → fetch → package → store
//!  record(run, status, conds) → Recorded   pure: conditions, status fields, events, next run
//!  log + count the failure; emit the events; requeue (interval | backoff | on change)
//!  observedGeneration ← generation on success or stall; one status patch; metrics
//! ```

use super::record::{Recorded, Run};
use super::{Context, Error};
use crate::status::Conditions;
use gitops_api::constants::RECONCILE_REQUESTED_AT_ANNOTATION;
use gitops_api::meta::{Artifact, Condition, Time};
use gitops_api::source::v1::{Bucket, BucketStatus, GitRepository, GitRepositoryStatus};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::time::{Duration, Instant};

/// What the shared reconcile driver needs to know about a source kind.
pub(crate) trait SourceKind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
{
    /// The kind's status type.
    type Status: Clone + Default + serde::Serialize;
    /// Kind name for metrics (`GitRepository`, `Bucket`).
    const KIND: &'static str;
    /// Storage directory of the kind (`gitrepository`, `bucket`); also the controller label of
    /// the reconcile metrics.
    const DIR: &'static str;
    /// The key of per-object controller state.
    fn state_key(&self) -> String;
    /// The current status (default when there is none yet).
    fn current_status(&self) -> Self::Status;
    /// `spec.suspend`.
    fn suspended(&self) -> bool;
    /// `spec.interval`.
    fn interval(&self) -> &str;
    /// The status fields every source kind shares.
    fn fields(status: &mut Self::Status) -> StatusFields<'_>;
}

/// Mutable views of the status fields every source kind shares.
pub(crate) struct StatusFields<'a> {
    pub conditions: &'a mut Option<Vec<Condition>>,
    pub observed_generation: &'a mut Option<i64>,
    pub last_handled_reconcile_at: &'a mut Option<String>,
    pub artifact: &'a mut Option<Artifact>,
}

macro_rules! source_kind {
    ($kind:ty, $status:ty, $name:literal, $dir:expr, $key:path) => {
        impl SourceKind for $kind {
            type Status = $status;
            const KIND: &'static str = $name;
            const DIR: &'static str = $dir;
            fn state_key(&self) -> String {
                $key(self)
            }
            fn current_status(&self) -> Self::Status {
                self.status.clone().unwrap_or_default()
            }
            fn suspended(&self) -> bool {
                self.spec.suspend
            }
            fn interval(&self) -> &str {
                &self.spec.interval
            }
            fn fields(s: &mut Self::Status) -> StatusFields<'_> {
                StatusFields {
                    conditions: &mut s.conditions,
                    observed_generation: &mut s.observed_generation,
                    last_handled_reconcile_at: &mut s.last_handled_reconcile_at,
                    artifact: &mut s.artifact,
                }
            }
        }
    };
}
source_kind!(
    GitRepository,
    GitRepositoryStatus,
    "GitRepository",
    super::gitrepository::KIND_DIR,
    super::gitrepository::key
);
source_kind!(
    Bucket,
    BucketStatus,
    "Bucket",
    super::bucket::KIND_DIR,
    super::bucket::key
);

/// Runs one reconcile of `obj` (see the module doc): `run` does the kind's steps, `record` is the
/// kind's status function.
pub(crate) async fn drive<K, N>(
    obj: &K,
    ctx: &Context,
    run: impl AsyncFnOnce(&K::Status) -> Run<N>,
    record: impl FnOnce(Run<N>, &mut K::Status, &mut Conditions) -> Recorded,
) -> Result<Action, Error>
where
    K: SourceKind,
{
    let k = obj.state_key();
    let generation = obj.meta().generation;
    let requested_at = obj.annotations().get(RECONCILE_REQUESTED_AT_ANNOTATION).cloned();
    if let Some(left) = ctx.not_due(&k, generation, requested_at.as_deref()) {
        return Ok(Action::requeue(left));
    }
    let started = Instant::now();
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let mut status = obj.current_status();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut conds = {
        let f = K::fields(&mut status);
        if requested_at.is_some() {
            f.last_handled_reconcile_at.clone_from(&requested_at);
        }
        Conditions::new(f.conditions.clone().unwrap_or_default(), generation, now)
    };

    if obj.suspended() {
        patch_status(ctx, obj, &mut status).await?;
        ctx.mark_handled(&k, generation, requested_at.as_deref(), None);
        tracing::info!(namespace = %ns, name = %name, "reconciliation is suspended for this object");
        return Ok(Action::await_change());
    }

    let interval = gitops_api::duration::parse(obj.interval()).unwrap_or(Duration::from_secs(60));
    let outcome = run(&status).await;
    let recorded = record(outcome, &mut status, &mut conds);
    let (action, handled_requeue) = finish::<K>(obj, ctx, recorded, interval).await;
    let f = K::fields(&mut status);
    // observedGeneration moves on success and on stall (Flux: not on retryable failures).
    if conds.is_ready() || conds.is_stalled() {
        *f.observed_generation = generation;
    }
    *f.conditions = Some(conds.list);
    patch_status(ctx, obj, &mut status).await?;
    ctx.mark_handled(&k, generation, requested_at.as_deref(), handled_requeue);
    ctx.metrics
        .observe_reconcile(K::KIND, &ns, &name, started.elapsed());
    Ok(action)
}

/// The one place a run's outcome leaves the process besides the status patch: the failure is
/// logged and counted, the events are emitted in order, and the next run is scheduled.
async fn finish<K: SourceKind>(
    obj: &K,
    ctx: &Context,
    recorded: Recorded,
    interval: Duration,
) -> (Action, Option<Duration>) {
    let Recorded { notes, next, failure } = recorded;
    let obj_ref = obj.object_ref(&());
    if let Some(f) = &failure {
        let what = if f.stalls() {
            "reconciliation stalled until the spec changes"
        } else {
            "reconciliation failed"
        };
        log_failure(&obj_ref, f.reason, &f.message, what);
        ctx.metrics.count_failure(K::DIR, f.category.as_str());
    }
    for note in notes {
        ctx.events
            .emit(obj, note.severity, note.reason, &note.message, note.metadata)
            .await;
    }
    ctx.next_run(&obj.state_key(), next, interval)
}

/// One error line per failed reconcile, as the condition says it (messages are scrubbed of
/// secrets before they get here).
fn log_failure(obj_ref: &ObjectReference, reason: &str, message: &str, what: &str) {
    tracing::error!(
        kind = obj_ref.kind.as_deref().unwrap_or_default(),
        namespace = obj_ref.namespace.as_deref().unwrap_or_default(),
        name = obj_ref.name.as_deref().unwrap_or_default(),
        reason,
        error = message,
        "{what}"
    );
}

/// Writes `status` with one merge patch; a missing artifact is written as an explicit null (a
/// merge patch keeps fields it does not mention).
async fn patch_status<K: SourceKind>(ctx: &Context, obj: &K, status: &mut K::Status) -> Result<(), Error> {
    let clear_artifact = K::fields(status).artifact.is_none();
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let mut body = serde_json::to_value(&*status).unwrap_or_default();
    if clear_artifact && let Some(m) = body.as_object_mut() {
        m.insert("artifact".into(), serde_json::Value::Null);
    }
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Kube {
        kind: K::KIND,
        action: "patch status",
        namespace: ns,
        name,
        source: Box::new(source),
    })
}
