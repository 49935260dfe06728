//! Kubernetes Events (`events.k8s.io/v1`) about the controllers' objects, with repeats folded into
//! a series.
//!
//! Written here rather than using kube-runtime's `Recorder`, whose cache keeps every event it
//! published for six minutes, keyed by the whole object reference including `resourceVersion`.
//! A controller patches the object's status between two events, so the resourceVersion differs
//! every time: repeats never matched and the cache only grew with the event rate. In the soak
//! (500 GitRepositories, about 600 events a minute) it held about 5 MiB of heap that nothing
//! read (heaptrack: the heap stepped up twice as the map doubled, and stayed), most of
//! source-controller's RSS growth.
//!
//! This recorder keys on the object (uid, else kind/namespace/name), type, reason, action and
//! note, keeps at most [`CAPACITY`] entries, and folds a repeat within [`SERIES_WINDOW`] into the
//! first event's `series` (count, lastObservedTime), as kube-runtime's and client-go's recorders
//! do. When the cache is full the least recently seen entry goes; its next repeat starts a new
//! event, nothing is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// Events remembered for folding repeats.
pub const CAPACITY: usize = 256;

/// A repeat within this time of the first event joins its series (kube-runtime's and client-go's
/// window).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    object: String,
    type_: EventType,
    reason: String,
    action: String,
    note: String,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    namespace: String,
    count: i32,
    first: Instant,
    last: Instant,
}

/// What to do with an event.
#[derive(Debug, PartialEq, Eq)]
enum Observed {
    /// New: create an Event.
    New,
    /// A repeat: patch the series of Event `name` in `namespace` to `count`.
    Repeat {
        name: String,
        namespace: String,
        count: i32,
    },
}

/// The bounded memory of recent events.
#[derive(Default)]
struct Cache {
    entries: HashMap<Key, Entry>,
}

impl Cache {
    /// Looks `key` up at `now`, counting a repeat.
    fn observe(&mut self, key: &Key, now: Instant) -> Observed {
        match self.entries.get_mut(key) {
            Some(e) if now.duration_since(e.first) < SERIES_WINDOW => {
                e.count += 1;
                e.last = now;
                Observed::Repeat {
                    name: e.name.clone(),
                    namespace: e.namespace.clone(),
                    count: e.count,
                }
            }
            _ => Observed::New,
        }
    }

    /// Remembers a created Event, making room first: expired entries go, then the least
    /// recently seen one.
    fn remember(&mut self, key: Key, name: String, namespace: String, now: Instant) {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, e| now.duration_since(e.first) < SERIES_WINDOW);
            if self.entries.len() >= CAPACITY
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            Entry {
                name,
                namespace,
                count: 1,
                first: now,
                last: now,
            },
        );
    }

    /// Forgets `key` (its Event is gone on the server).
    fn forget(&mut self, key: &Key) {
        self.entries.remove(key);
    }
}

/// Publishes Events as one controller instance; clones share the cache.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    controller: String,
    instance: String,
    cache: Arc<Mutex<Cache>>,
}

/// One event to publish.
pub struct Event<'a> {
    /// Normal or Warning.
    pub type_: EventType,
    /// The reason (CamelCase).
    pub reason: &'a str,
    /// The action (what the controller did).
    pub action: &'a str,
    /// The message.
    pub note: &'a str,
}

fn object_key(r: &ObjectReference) -> String {
    match &r.uid {
        Some(uid) if !uid.is_empty() => uid.clone(),
        _ => format!(
            "{}/{}/{}/{}",
            r.api_version.as_deref().unwrap_or_default(),
            r.kind.as_deref().unwrap_or_default(),
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default()
        ),
    }
}

fn micro_now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl Recorder {
    /// A recorder reporting as `controller` from `instance`.
    pub fn new(client: kube::Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.to_owned(),
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes `ev` about `regarding` (in its namespace; cluster-scoped objects in `default`).
    ///
    /// # Errors
    /// The create or patch request failed.
    pub async fn publish(&self, ev: &Event<'_>, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let key = Key {
            object: object_key(regarding),
            type_: ev.type_,
            reason: ev.reason.to_owned(),
            action: ev.action.to_owned(),
            note: ev.note.to_owned(),
        };
        let now = Instant::now();
        let observed = self.cache().observe(&key, now);
        if let Observed::Repeat {
            name,
            namespace,
            count,
        } = observed
        {
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({"series": {"count": count, "lastObservedTime": micro_now()}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Expired or deleted on the server: start a new event.
                Err(kube::Error::Api(s)) if s.code == 404 => self.cache().forget(&key),
                Err(e) => return Err(e),
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let event_time = micro_now();
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            event_time.0.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(event_time),
            action: Some(ev.action.to_owned()),
            reason: Some(ev.reason.to_owned()),
            note: Some(ev.note.to_owned()),
            type_: Some(ev.type_.as_str().to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        self.cache().remember(key, name, namespace, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(note: &str) -> Key {
        Key {
            object: "uid-1".to_owned(),
            type_: EventType::Normal,
            reason: "Stored".to_owned(),
            action: "Stored-1".to_owned(),
            note: note.to_owned(),
        }
    }

    #[test]
    fn repeats_within_the_window_fold_into_a_series_and_later_ones_start_anew() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        assert_eq!(c.observe(&key("a"), t0), Observed::New);
        c.remember(key("a"), "obj.1".to_owned(), "ns".to_owned(), t0);
        let repeat = |count| Observed::Repeat {
            name: "obj.1".to_owned(),
            namespace: "ns".to_owned(),
            count,
        };
        assert_eq!(c.observe(&key("a"), t0 + Duration::from_secs(10)), repeat(2));
        assert_eq!(c.observe(&key("a"), t0 + Duration::from_secs(20)), repeat(3));
        assert_eq!(
            c.observe(&key("b"), t0 + Duration::from_secs(20)),
            Observed::New,
            "another note"
        );
        assert_eq!(
            c.observe(&key("a"), t0 + SERIES_WINDOW),
            Observed::New,
            "window over"
        );
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity_and_drops_the_least_recently_seen() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY * 4 {
            let now = t0 + Duration::from_millis(i as u64);
            let k = key(&format!("stored artifact for revision {i}"));
            assert_eq!(c.observe(&k, now), Observed::New);
            c.remember(k, format!("obj.{i}"), "ns".to_owned(), now);
            assert!(
                c.entries.len() <= CAPACITY,
                "{} entries after {i} events",
                c.entries.len()
            );
        }
        // The first events went, the newest are still folded.
        assert_eq!(
            c.observe(&key("stored artifact for revision 0"), t0),
            Observed::New
        );
        let newest = key(&format!("stored artifact for revision {}", CAPACITY * 4 - 1));
        assert!(matches!(
            c.observe(&newest, t0 + Duration::from_secs(1)),
            Observed::Repeat { count: 2, .. }
        ));
    }

    #[test]
    fn objects_are_told_apart_by_uid_else_by_kind_namespace_and_name() {
        let mut r = ObjectReference {
            api_version: Some("source.toolkit.fluxcd.io/v1".to_owned()),
            kind: Some("GitRepository".to_owned()),
            namespace: Some("ns".to_owned()),
            name: Some("repo".to_owned()),
            resource_version: Some("1".to_owned()),
            ..ObjectReference::default()
        };
        assert_eq!(
            object_key(&r),
            "source.toolkit.fluxcd.io/v1/GitRepository/ns/repo"
        );
        r.resource_version = Some("2".to_owned());
        assert_eq!(
            object_key(&r),
            "source.toolkit.fluxcd.io/v1/GitRepository/ns/repo",
            "resourceVersion ignored"
        );
        r.uid = Some("u-1".to_owned());
        assert_eq!(object_key(&r), "u-1");
    }
}
