//! Reconciler wiring shared by the kinds: the context every reconcile gets, the reconcile driver
//! (finalizer, suspend, requestedAt handshake, one status patch), the recording of outcomes as
//! conditions and events, requeue timing (jittered intervals, exponential backoff) and the guard
//! that keeps our own status writes from triggering another run.
//!
//! ```text
//!  watch ──► reconcile_kind (finalizer: deleted ⇒ cleanup)
//!        ──► drive: guard (generation / requestedAt unchanged and not due? skip), suspend
//!              ├─ gitrepository: resolve → fetch → package → store ─┐
//!              └─ bucket:        index → fetch → package → store ───┴─► Outcome
//!        ──► record_new_artifact | record_unchanged | record_failure | record_stall
//!        ──► one status patch; Action::requeue(jittered interval | backoff)
//! ```

pub mod bucket;
pub mod gitrepository;

use crate::events::{Events, Severity};
use crate::metrics::Metrics;
use crate::status::{Conditions, FailureKind};
use crate::storage::Storage;
use gitops_api::conditions::{reasons, types};
use gitops_api::constants::{
    EVENT_DIGEST_KEY, EVENT_REVISION_KEY, RECONCILE_REQUESTED_AT_ANNOTATION, SOURCE_FINALIZER,
};
use gitops_api::meta::{Artifact, Condition, Time};
use gitops_api::source::v1::{Bucket, BucketStatus, GitRepository, GitRepositoryStatus};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings from the flags that reconciles use.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--artifact-retention-ttl`.
    pub retention_ttl: Duration,
    /// `--artifact-retention-records`.
    pub retention_records: usize,
    /// `--interval-jitter-percentage`.
    pub jitter_percent: u8,
    /// `--requeue-dependency`.
    pub requeue_dependency: Duration,
    /// `--min-retry-delay`.
    pub min_retry_delay: Duration,
    /// `--max-retry-delay`.
    pub max_retry_delay: Duration,
}

/// What every reconcile gets.
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Artifact storage.
    pub storage: Storage,
    /// Event sink.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// Flag settings.
    pub settings: Settings,
    failures: Mutex<HashMap<String, u32>>,
    handled: Mutex<HashMap<String, Handled>>,
}

/// What the last run of an object saw, to recognise triggers caused by our own status patch.
#[derive(Clone, Debug)]
struct Handled {
    generation: Option<i64>,
    requested_at: Option<String>,
    at: Instant,
    requeue_after: Option<Duration>,
}

impl Context {
    /// A context over the given parts.
    pub fn new(
        client: kube::Client,
        storage: Storage,
        events: Events,
        metrics: Metrics,
        settings: Settings,
    ) -> Self {
        Context {
            client,
            storage,
            events,
            metrics,
            settings,
            failures: Mutex::default(),
            handled: Mutex::default(),
        }
    }

    /// When the object was already handled for this generation and request token and its next run
    /// is not due yet, the time left until it is (`None` = run now).
    pub fn not_due(
        &self,
        key: &str,
        generation: Option<i64>,
        requested_at: Option<&str>,
    ) -> Option<Duration> {
        let handled = self.handled.lock().ok()?;
        let h = handled.get(key)?;
        if h.generation != generation || h.requested_at.as_deref() != requested_at {
            return None;
        }
        match h.requeue_after {
            // Stalled: only a spec change or a new request token runs it again.
            None => Some(Duration::from_secs(3600)),
            Some(after) => after
                .checked_sub(h.at.elapsed())
                .filter(|left| *left > Duration::from_millis(50)),
        }
    }

    /// Records a finished run and when it wants to run again (`None`: only on change).
    pub fn mark_handled(
        &self,
        key: &str,
        generation: Option<i64>,
        requested_at: Option<&str>,
        requeue_after: Option<Duration>,
    ) {
        if let Ok(mut handled) = self.handled.lock() {
            handled.insert(
                key.to_string(),
                Handled {
                    generation,
                    requested_at: requested_at.map(str::to_string),
                    at: Instant::now(),
                    requeue_after,
                },
            );
        }
    }

    /// Forgets an object (deleted).
    pub fn forget(&self, key: &str) {
        if let Ok(mut m) = self.handled.lock() {
            m.remove(key);
        }
        if let Ok(mut m) = self.failures.lock() {
            m.remove(key);
        }
    }

    /// Registers a failure of `key` and returns the backoff before the next attempt.
    pub fn backoff(&self, key: &str) -> Duration {
        let n = self.failures.lock().map_or(0, |mut m| {
            let n = m.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        });
        backoff_delay(n, self.settings.min_retry_delay, self.settings.max_retry_delay)
    }

    /// Clears the failure count of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(key);
        }
    }

    /// `interval` plus up to `--interval-jitter-percentage` percent of random spread.
    pub fn jittered(&self, interval: Duration) -> Duration {
        jitter(interval, self.settings.jitter_percent, rand_fraction())
    }
}

/// Errors that end a reconcile abnormally (API failures); source failures are recorded in status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the Kubernetes API failed.
    #[error("failed to {action} for {kind} '{namespace}/{name}'")]
    Kube {
        /// The object's kind.
        kind: &'static str,
        /// What was attempted.
        action: &'static str,
        /// Object namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The finalizer helper failed.
    #[error("finalizer handling failed")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// The outcome of a kind's source steps, before status is written; `S` is what a new artifact
/// brings (the stored artifact and what its event says).
pub(crate) enum Outcome<S> {
    /// A new artifact was stored.
    Stored(S),
    /// The source still has the stored revision; nothing was fetched.
    Unchanged { revision: String },
    /// Transient failure: retry with backoff.
    Failed {
        kind: FailureKind,
        reason: &'static str,
        message: String,
    },
    /// Configuration error: wait for a spec change.
    Stalled { reason: &'static str, message: String },
}

/// A kind's controller entry: the finalizer around [`drive`] (apply) and [`cleanup`] (deletion);
/// `steps` runs the kind's source steps and records their outcome.
pub(crate) async fn reconcile_kind<K, F>(obj: Arc<K>, ctx: Arc<Context>, steps: F) -> Result<Action, Error>
where
    K: SourceKind,
    F: AsyncFn(&K, &Context, &mut K::Status, &mut Conditions, Duration) -> (Action, Option<Duration>),
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, SOURCE_FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => {
                let o = obj.as_ref();
                drive(o, &ctx, async |status, conds, interval| {
                    steps(o, &ctx, status, conds, interval).await
                })
                .await
                .map_err(|source| Error::Kube {
                    kind: K::KIND,
                    action: "patch status",
                    namespace: o.namespace().unwrap_or_default(),
                    name: o.name_any(),
                    source: Box::new(source),
                })
            }
            FinalizerEvent::Cleanup(obj) => Ok(cleanup(obj.as_ref(), &ctx)),
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

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
    /// Storage directory of the kind (`gitrepository`, `bucket`).
    const DIR: &'static str;
    /// The key of per-object controller state.
    fn state_key(&self) -> String;
    /// The current status (default when there is none yet).
    fn current_status(&self) -> Self::Status;
    /// `spec.suspend`.
    fn suspended(&self) -> bool;
    /// `spec.interval`.
    fn interval(&self) -> &str;
    /// The status fields the driver maintains: conditions, observedGeneration,
    /// lastHandledReconcileAt, and whether an artifact is recorded.
    fn fields(status: &mut Self::Status) -> StatusFields<'_>;
}

/// Mutable views of the status fields every source kind shares.
pub(crate) struct StatusFields<'a> {
    conditions: &'a mut Option<Vec<Condition>>,
    observed_generation: &'a mut Option<i64>,
    last_handled_reconcile_at: &'a mut Option<String>,
    has_artifact: bool,
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
                    has_artifact: s.artifact.is_some(),
                    conditions: &mut s.conditions,
                    observed_generation: &mut s.observed_generation,
                    last_handled_reconcile_at: &mut s.last_handled_reconcile_at,
                }
            }
        }
    };
}
source_kind!(
    GitRepository,
    GitRepositoryStatus,
    "GitRepository",
    gitrepository::KIND_DIR,
    gitrepository::key
);
source_kind!(Bucket, BucketStatus, "Bucket", bucket::KIND_DIR, bucket::key);

/// The reconcile driver shared by the kinds, around the kind's own steps:
///
/// ```text
///  not due yet (own status patch, same generation/token)?  requeue for the time left
///  lastHandledReconcileAt ← requestedAt
///  suspended?                                              patch status, stop
///  steps(status, conditions, interval) → (action, next run)
///  observedGeneration ← generation on success or stall; one status patch; metrics
/// ```
pub(crate) async fn drive<K, F>(obj: &K, ctx: &Context, steps: F) -> Result<Action, kube::Error>
where
    K: SourceKind,
    F: AsyncFnOnce(&mut K::Status, &mut Conditions, Duration) -> (Action, Option<Duration>),
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
        let clear = !K::fields(&mut status).has_artifact;
        patch_status(&ctx.client, obj, &status, clear).await?;
        ctx.mark_handled(&k, generation, requested_at.as_deref(), None);
        tracing::info!(namespace = %ns, name = %name, "reconciliation is suspended for this object");
        return Ok(Action::await_change());
    }

    let interval = gitops_api::duration::parse(obj.interval()).unwrap_or(Duration::from_secs(60));
    let (action, handled_requeue) = steps(&mut status, &mut conds, interval).await;
    let f = K::fields(&mut status);
    // observedGeneration moves on success and on stall (Flux: not on retryable failures).
    if conds.is_ready() || conds.is_stalled() {
        *f.observed_generation = generation;
    }
    *f.conditions = Some(conds.list);
    let clear = !f.has_artifact;
    patch_status(&ctx.client, obj, &status, clear).await?;
    ctx.mark_handled(&k, generation, requested_at.as_deref(), handled_requeue);
    ctx.metrics
        .observe_reconcile(K::KIND, &ns, &name, started.elapsed());
    Ok(action)
}

/// Deletion: remove the object's storage directory and forget its state.
pub(crate) fn cleanup<K: SourceKind>(obj: &K, ctx: &Context) -> Action {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    if let Err(e) = ctx.storage.remove_object_dir(K::DIR, &ns, &name) {
        tracing::error!(error = %e, "failed to remove artifact directory");
    }
    ctx.forget(&obj.state_key());
    ctx.metrics.forget(K::KIND, &ns, &name);
    Action::await_change()
}

/// Records a newly stored artifact: `ArtifactInStorage` with `stored_message`, the `NewArtifact`
/// event (with revision and digest metadata), the next run after the jittered interval.
pub(crate) async fn record_new_artifact<K: SourceKind>(
    obj: &K,
    ctx: &Context,
    conds: &mut Conditions,
    artifact: &Artifact,
    stored_message: &str,
    event_message: &str,
    interval: Duration,
) -> (Action, Option<Duration>) {
    let md = BTreeMap::from([
        (EVENT_REVISION_KEY.to_string(), artifact.revision.clone()),
        (EVENT_DIGEST_KEY.to_string(), artifact.digest.clone()),
    ]);
    conds.succeed_with(stored_message);
    ctx.events
        .emit(
            &obj.object_ref(&()),
            Severity::Info,
            reasons::NEW_ARTIFACT,
            event_message,
            md,
        )
        .await;
    ctx.succeeded(&obj.state_key());
    let after = ctx.jittered(interval);
    (Action::requeue(after), Some(after))
}

/// Records a run that found the stored artifact current: a trace event, and a `Succeeded` event
/// when it recovers from a fetch or storage failure.
pub(crate) async fn record_unchanged<K: SourceKind>(
    obj: &K,
    ctx: &Context,
    conds: &mut Conditions,
    stored_message: &str,
    trace: (&'static str, &str),
    interval: Duration,
) -> (Action, Option<Duration>) {
    let recovered = conds
        .list
        .iter()
        .any(|c| c.type_ == types::FETCH_FAILED || c.type_ == types::STORAGE_OPERATION_FAILED);
    conds.succeed_with(stored_message);
    let obj_ref = obj.object_ref(&());
    let (reason, message) = trace;
    ctx.events
        .emit(&obj_ref, Severity::Trace, reason, message, BTreeMap::new())
        .await;
    if recovered {
        ctx.events
            .emit(
                &obj_ref,
                Severity::Info,
                reasons::SUCCEEDED,
                stored_message,
                BTreeMap::new(),
            )
            .await;
    }
    ctx.succeeded(&obj.state_key());
    let after = ctx.jittered(interval);
    (Action::requeue(after), Some(after))
}

/// Records a transient failure: condition, warning event, backoff.
pub(crate) async fn record_failure<K: SourceKind>(
    obj: &K,
    ctx: &Context,
    conds: &mut Conditions,
    kind: FailureKind,
    reason: &'static str,
    message: &str,
) -> (Action, Option<Duration>) {
    conds.fail(kind, reason, message);
    let obj_ref = obj.object_ref(&());
    log_failure(&obj_ref, reason, message, "reconciliation failed");
    ctx.events
        .emit(&obj_ref, Severity::Error, reason, message, BTreeMap::new())
        .await;
    let after = ctx.backoff(&obj.state_key());
    (Action::requeue(after), Some(after))
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

/// Records a configuration error: Stalled, warning event, no requeue until the spec changes.
pub(crate) async fn record_stall<K: SourceKind>(
    obj: &K,
    ctx: &Context,
    conds: &mut Conditions,
    reason: &'static str,
    message: &str,
) -> (Action, Option<Duration>) {
    conds.stall(reason, message);
    let obj_ref = obj.object_ref(&());
    log_failure(
        &obj_ref,
        reason,
        message,
        "reconciliation stalled until the spec changes",
    );
    ctx.events
        .emit(&obj_ref, Severity::Error, reason, message, BTreeMap::new())
        .await;
    (Action::await_change(), None)
}

/// GC around the recorded artifact, then re-verify it; a missing or altered file is dropped from
/// `artifact` (and reported) so the next steps rebuild it. A still-valid artifact gets the current
/// advertised URL.
pub(crate) async fn check_storage(
    ctx: &Context,
    obj_ref: &ObjectReference,
    kind_dir: &str,
    artifact: &mut Option<Artifact>,
    conds: &mut Conditions,
) {
    let ns = obj_ref.namespace.clone().unwrap_or_default();
    let name = obj_ref.name.clone().unwrap_or_default();
    let current_file = artifact
        .as_ref()
        .and_then(|a| a.path.rsplit('/').next().map(str::to_string));
    let settings = ctx.settings.clone();
    // Like Flux, collect only around a current artifact: without one there is nothing to keep.
    let gc = current_file.as_deref().map(|current| {
        ctx.storage.gc(
            kind_dir,
            &ns,
            &name,
            current,
            settings.retention_ttl,
            settings.retention_records,
        )
    });
    match gc {
        Some(Ok(report)) if !report.deleted.is_empty() => {
            let msg = format!("garbage collected {} artifacts", report.deleted.len());
            ctx.events
                .emit(
                    obj_ref,
                    Severity::Trace,
                    reasons::GARBAGE_COLLECTION_SUCCEEDED,
                    &msg,
                    BTreeMap::new(),
                )
                .await;
        }
        Some(Ok(_)) | None => {}
        Some(Err(e)) => tracing::warn!(error = %e, "garbage collection failed"),
    }
    if let Some(stored) = artifact.clone() {
        let verified = ctx.storage.verify(&stored).is_ok_and(|v| v.is_verified());
        if verified {
            // The advertised address may have changed since the artifact was stored.
            if let Some(a) = artifact.as_mut() {
                a.url = ctx.storage.url(&a.path);
            }
        } else {
            let _ = ctx.storage.remove(&stored.path);
            *artifact = None;
            conds.artifact_lost("building artifact: disappeared from storage");
            ctx.events
                .emit(
                    obj_ref,
                    Severity::Error,
                    reasons::ARTIFACT_VERIFICATION_FAILED,
                    &format!(
                        "stored artifact '{}' is missing or does not match its digest; rebuilding",
                        stored.path
                    ),
                    BTreeMap::new(),
                )
                .await;
        }
    }
}

/// The data of Secret `ns/name`; the error is a status message naming the Secret.
pub(crate) async fn read_secret(
    secrets: &Api<Secret>,
    ns: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    match secrets.get(name).await {
        Ok(s) => Ok(s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()),
        Err(e) => {
            let text = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            Err(format!("failed to get secret '{ns}/{name}': {text}"))
        }
    }
}

/// Writes `status` with one merge patch; `clear_artifact` nulls `status.artifact` explicitly (a
/// merge patch keeps fields it does not mention).
pub(crate) async fn patch_status<K, S>(
    client: &kube::Client,
    obj: &K,
    status: &S,
    clear_artifact: bool,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
    S: serde::Serialize,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let mut body = serde_json::to_value(status).unwrap_or_default();
    if clear_artifact && let Some(m) = body.as_object_mut() {
        m.insert("artifact".into(), serde_json::Value::Null);
    }
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await
    .map(|_| ())
}

/// `min * 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
    min.saturating_mul(factor).min(max)
}

/// `interval ± percent%`, with `fraction` in `[0, 1)` choosing the point in that range.
pub fn jitter(interval: Duration, percent: u8, fraction: f64) -> Duration {
    let spread = interval.as_secs_f64() * f64::from(percent) / 100.0;
    let offset = spread * (2.0 * fraction - 1.0);
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(0.0))
}

fn rand_fraction() -> f64 {
    // Good enough spread for requeue jitter without a random-number crate.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_to_max() {
        let (min, max) = (Duration::from_millis(750), Duration::from_secs(900));
        assert_eq!(backoff_delay(1, min, max), Duration::from_millis(750));
        assert_eq!(backoff_delay(2, min, max), Duration::from_millis(1500));
        assert_eq!(backoff_delay(5, min, max), Duration::from_secs(12));
        assert_eq!(backoff_delay(40, min, max), max);
    }

    #[test]
    fn jitter_stays_within_the_percentage() {
        let i = Duration::from_secs(100);
        assert_eq!(jitter(i, 5, 0.0), Duration::from_secs(95));
        assert_eq!(jitter(i, 5, 0.5), Duration::from_secs(100));
        assert!(jitter(i, 5, 0.999) <= Duration::from_secs(105));
        assert_eq!(jitter(i, 0, 0.9), i);
    }
}
