//! What every reconcile gets ([`Context`]: client, storage, events, metrics, flag [`Settings`]) and
//! the per-object controller state it keeps between runs: failure counts for the backoff and the
//! last handled run, which recognises triggers caused by our own status patch.

use crate::metrics::Metrics;
use crate::storage::Storage;
use gitops_runtime::Events;
use std::collections::HashMap;
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
    pub(super) failures: Mutex<HashMap<String, u32>>,
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
}

/// `namespace/name` of an object, as messages and the per-object state name it.
pub(crate) fn namespaced_name(obj: &impl kube::ResourceExt) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
