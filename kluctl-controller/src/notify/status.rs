//! Alert and Provider status (beyond Flux, whose Alerts and Providers have none): `Ready`,
//! `lastDispatchTime`, `lastDispatchError`, so a broken webhook shows in `kubectl get alerts`.
//!
//! ```text
//!  Alert/Provider reconcile ──► Recorder::configured(key, generation, Ok | Err(reason, msg))
//!  dispatch of one event    ──► Recorder::dispatched(key, Ok | Err(msg))
//!                                  │ state per object, Ready computed by `ready()`
//!                                  ▼
//!                 writer task: status merge patch when Ready or the error changed (woken at
//!                 once); a change of `lastDispatchTime` alone is written on the writer's next
//!                 tick (every REFRESH, 30 s), so thousands of events per second cost a handful
//!                 of status writes and no wake-ups.
//! ```
//!
//! One writer per process owns these fields, so two paths never race on the same condition.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitops_api::conditions::{self, reasons, status, types};
use gitops_api::meta::{Condition, Time};
use gitops_api::notification::v1beta3::{Alert, Provider};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// Ready reason after a failed send.
pub const DISPATCH_FAILED: &str = "NotificationDispatchFailed";
/// Ready reason of an Alert whose spec cannot work (bad regex, cross-namespace source).
pub const INVALID_CONFIG: &str = "InvalidConfig";
/// Ready reason of an Alert whose `providerRef` names no Provider.
pub const PROVIDER_NOT_FOUND: &str = "ProviderNotFound";

/// How often a `lastDispatchTime` that is the only change is written.
pub const REFRESH: Duration = Duration::from_secs(30);

/// Which object a status belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// `Alert` or `Provider`.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The two kinds with a dispatch status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// notification.toolkit.fluxcd.io/v1beta3 Alert.
    Alert,
    /// notification.toolkit.fluxcd.io/v1beta3 Provider.
    Provider,
}

/// A reason and message for Ready=False.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Stable CamelCase reason.
    pub reason: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// What is known of one object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// `metadata.generation` the configuration check saw.
    pub generation: Option<i64>,
    /// The configuration check; `None` until the reconciler ran.
    pub config: Option<Result<(), Problem>>,
    /// Time of the last dispatch and its error, if it failed.
    pub last_dispatch: Option<(String, Option<String>)>,
    /// The conditions last written (or read from the object), for transition times.
    pub conditions: Vec<Condition>,
}

/// `(status, reason, message)` of Ready: a configuration problem first, then the last dispatch.
pub fn ready(state: &State) -> (&'static str, String, String) {
    match (&state.config, &state.last_dispatch) {
        (Some(Err(p)), _) => (status::FALSE, p.reason.clone(), p.message.clone()),
        (_, Some((_, Some(error)))) => (status::FALSE, DISPATCH_FAILED.to_owned(), error.clone()),
        (_, Some((_, None))) => (
            status::TRUE,
            reasons::SUCCEEDED.to_owned(),
            "Last dispatch succeeded".to_owned(),
        ),
        (Some(Ok(())), None) => (
            status::TRUE,
            reasons::SUCCEEDED.to_owned(),
            "Initialized".to_owned(),
        ),
        (None, None) => (
            status::UNKNOWN,
            reasons::PROGRESSING.to_owned(),
            "Initializing".to_owned(),
        ),
    }
}

/// The status merge patch of `state` (conditions computed against the previous ones at `now`).
pub fn status_patch(state: &State, now: &Time) -> (serde_json::Value, Vec<Condition>) {
    let (st, reason, message) = ready(state);
    let conditions = conditions::set(
        &state.conditions,
        types::READY,
        st,
        &reason,
        &message,
        state.generation,
        now,
    );
    let mut status = json!({ "conditions": conditions });
    if let Some(g) = state.generation {
        status["observedGeneration"] = json!(g);
    }
    if let Some((at, error)) = &state.last_dispatch {
        status["lastDispatchTime"] = json!(at);
        // null removes the key in a merge patch: no stale error after a success.
        status["lastDispatchError"] = error.as_ref().map_or(serde_json::Value::Null, |e| json!(e));
    }
    (json!({ "status": status }), conditions)
}

/// Everything of a state but the dispatch time.
type Fingerprint = (
    Option<i64>,
    (&'static str, String, String),
    Option<Option<String>>,
);

/// What decides whether a write is due: everything but the dispatch time.
fn fingerprint(state: &State) -> Fingerprint {
    (
        state.generation,
        ready(state),
        state.last_dispatch.as_ref().map(|(_, e)| e.clone()),
    )
}

#[derive(Default)]
struct Entry {
    state: State,
    written: Option<(State, Instant)>,
}

/// Keeps every object's state and writes it.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    entries: Mutex<HashMap<Key, Entry>>,
    dirty: Mutex<HashSet<Key>>,
    wake: tokio::sync::Notify,
}

impl Recorder {
    /// A recorder writing through `client`; spawns its writer task.
    pub fn start(client: kube::Client) -> Self {
        let recorder = Recorder {
            inner: Arc::new(Inner {
                client,
                entries: Mutex::default(),
                dirty: Mutex::default(),
                wake: tokio::sync::Notify::new(),
            }),
        };
        let writer = recorder.clone();
        tokio::spawn(async move { writer.write_loop().await });
        recorder
    }

    /// Records the configuration check of the object at `generation`; `existing` are the
    /// conditions on the object (kept for transition times when this process first sees it).
    pub fn configured(
        &self,
        key: Key,
        generation: Option<i64>,
        existing: &[Condition],
        check: Result<(), Problem>,
    ) {
        self.update(key, |s| {
            if s.conditions.is_empty() {
                s.conditions = existing.to_vec();
            }
            // A changed spec is a fresh start: the last failure was about the old one.
            if s.generation.is_some()
                && s.generation != generation
                && let Some((_, error)) = &mut s.last_dispatch
            {
                *error = None;
            }
            s.generation = generation;
            s.config = Some(check);
        });
    }

    /// Records one dispatch through the object.
    pub fn dispatched(&self, key: Key, result: Result<(), String>) {
        let at = gitops_runtime::events::timestamp_now();
        self.update(key, |s| s.last_dispatch = Some((at, result.err())));
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &Key) {
        if let Ok(mut e) = self.inner.entries.lock() {
            e.remove(key);
        }
    }

    /// The current state of an object (for tests and the dispatcher's checks).
    pub fn state(&self, key: &Key) -> Option<State> {
        self.inner.entries.lock().ok()?.get(key).map(|e| e.state.clone())
    }

    fn update(&self, key: Key, f: impl FnOnce(&mut State)) {
        let Ok(mut entries) = self.inner.entries.lock() else {
            return;
        };
        let entry = entries.entry(key.clone()).or_default();
        f(&mut entry.state);
        // Only a change beyond the dispatch time wakes the writer; the time alone waits for the
        // writer's next refresh tick (at 5,000 events/s, waking per event costs more than the
        // sends).
        let urgent = entry
            .written
            .as_ref()
            .is_none_or(|(written, _)| fingerprint(written) != fingerprint(&entry.state));
        drop(entries);
        if let Ok(mut d) = self.inner.dirty.lock() {
            d.insert(key);
        }
        if urgent {
            self.inner.wake.notify_one();
        }
    }

    async fn write_loop(self) {
        loop {
            tokio::select! {
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(REFRESH) => {}
            }
            let keys: Vec<Key> = self
                .inner
                .dirty
                .lock()
                .map(|mut d| d.drain().collect())
                .unwrap_or_default();
            for key in keys {
                match self.due(&key) {
                    Due::Now(state) => self.write(&key, state).await,
                    // Written recently: the next tick takes it.
                    Due::Later => {
                        if let Ok(mut d) = self.inner.dirty.lock() {
                            d.insert(key);
                        }
                    }
                    Due::Never => {}
                }
            }
        }
    }

    fn due(&self, key: &Key) -> Due {
        let Ok(entries) = self.inner.entries.lock() else {
            return Due::Never;
        };
        let Some(entry) = entries.get(key) else {
            return Due::Never;
        };
        if entry.state.config.is_none() && entry.state.last_dispatch.is_none() {
            return Due::Never;
        }
        match &entry.written {
            None => Due::Now(entry.state.clone()),
            Some((written, _)) if written == &entry.state => Due::Never,
            Some((written, _)) if fingerprint(written) != fingerprint(&entry.state) => {
                Due::Now(entry.state.clone())
            }
            Some((_, at)) if at.elapsed() >= REFRESH => Due::Now(entry.state.clone()),
            Some(_) => Due::Later,
        }
    }

    async fn write(&self, key: &Key, state: State) {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let (patch, conditions) = status_patch(&state, &now);
        let params = PatchParams::default();
        let result = match key.kind {
            Kind::Alert => Api::<Alert>::namespaced(self.inner.client.clone(), &key.namespace)
                .patch_status(&key.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
            Kind::Provider => Api::<Provider>::namespaced(self.inner.client.clone(), &key.namespace)
                .patch_status(&key.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => {
                if let Ok(mut entries) = self.inner.entries.lock()
                    && let Some(e) = entries.get_mut(key)
                {
                    e.state.conditions.clone_from(&conditions);
                    let mut written = state;
                    written.conditions = conditions;
                    e.written = Some((written, Instant::now()));
                }
            }
            // Gone: nothing to record on. Otherwise retried with the next change.
            Err(kube::Error::Api(e)) if e.code == 404 => self.forget(key),
            Err(e) => tracing::warn!(
                kind = ?key.kind, namespace = %key.namespace, name = %key.name, error = %e,
                "failed to write the dispatch status"
            ),
        }
    }
}

enum Due {
    Now(State),
    Later,
    Never,
}

/// The status key of an Alert or Provider object.
pub fn key_of<K: kube::Resource<DynamicType = ()>>(kind: Kind, obj: &K) -> Key {
    Key {
        kind,
        namespace: obj.meta().namespace.clone().unwrap_or_default(),
        name: obj.meta().name.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("ts"))
    }

    #[test]
    fn ready_prefers_configuration_problems_over_dispatch_results() {
        let mut s = State::default();
        assert_eq!(ready(&s).0, status::UNKNOWN);
        s.config = Some(Ok(()));
        assert_eq!(
            ready(&s),
            (status::TRUE, "Succeeded".into(), "Initialized".into())
        );
        s.last_dispatch = Some(("t".into(), Some("POST failed: 500".into())));
        assert_eq!(
            ready(&s),
            (status::FALSE, DISPATCH_FAILED.into(), "POST failed: 500".into())
        );
        s.config = Some(Err(Problem {
            reason: INVALID_CONFIG.into(),
            message: "spec.inclusionList[0] ...".into(),
        }));
        assert_eq!(ready(&s).1, INVALID_CONFIG);
        s.config = Some(Ok(()));
        s.last_dispatch = Some(("t2".into(), None));
        assert_eq!(ready(&s).0, status::TRUE);
    }

    #[test]
    fn patch_carries_time_and_clears_the_error_after_a_success() {
        let mut s = State {
            generation: Some(3),
            config: Some(Ok(())),
            last_dispatch: Some(("2026-12-07T03:00:00Z".into(), Some("boom".into()))),
            conditions: vec![],
        };
        let (p, conditions) = status_patch(&s, &now());
        assert_eq!(p["status"]["lastDispatchError"], "boom");
        assert_eq!(p["status"]["observedGeneration"], 3);
        assert_eq!(p["status"]["conditions"][0]["reason"], DISPATCH_FAILED);
        s.conditions = conditions;
        s.last_dispatch = Some(("2026-12-07T03:01:00Z".into(), None));
        let (p, _) = status_patch(&s, &now());
        assert!(p["status"]["lastDispatchError"].is_null());
        assert_eq!(p["status"]["lastDispatchTime"], "2026-12-07T03:01:00Z");
        assert_eq!(p["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn only_a_new_time_does_not_change_the_fingerprint() {
        let a = State {
            config: Some(Ok(())),
            last_dispatch: Some(("t1".into(), None)),
            ..State::default()
        };
        let mut b = a.clone();
        b.last_dispatch = Some(("t2".into(), None));
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.last_dispatch = Some(("t2".into(), Some("e".into())));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
