//! Events: a Kubernetes Event for every notable outcome, and — when `--events-addr` is set — the
//! same event as Flux's event JSON POSTed to a notification receiver.
//!
//! ```text
//!  reconciler ──► Events::emit(obj, Severity, reason, message, metadata)
//!                    ├─► events.k8s.io Event (Normal / Warning)            always
//!                    ├─► EventSink::accept (in-process dispatcher)         Info/Error, with_sink
//!                    └─► bounded queue ──► delivery task ──► POST          Info/Error, --events-addr
//! ```
//!
//! `Trace` events reach only Kubernetes (Flux never forwards them). The HTTP body follows Flux's
//! wire format so Flux's notification-controller and our own dispatcher accept it.
//!
//! The POST never slows a reconcile: `emit` puts the event on a bounded queue ([`QUEUE_CAPACITY`])
//! that one background task drains in order. When the queue is full (the receiver is down and
//! retries pile up) the event is **dropped with a warning** — Flux's recorder would block the
//! reconcile instead. The task retries like Flux's recorder: connection errors and 5xx (not 501)
//! up to [`MAX_RETRIES`] times, backoff 1 s doubling to 30 s, 5 s per attempt; a 429 reply means
//! "duplicate" and is neither retried nor warned about. Failures to deliver are logged, never
//! fatal.
//!
//! `metadata` carries the controller's keys, prefixed with the involved object's API group
//! (`source.toolkit.fluxcd.io/revision`, `gitops.kluctl.io/commit_status`, ...), plus the object's
//! own `event.toolkit.fluxcd.io/*` annotations (copied as Flux's recorder does) into the HTTP body
//! and the sink; Kubernetes events have no place for it.

use crate::recorder::{Event, EventType, Recorder};
use k8s_openapi::api::core::v1::ObjectReference;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Annotation prefix of the object metadata that goes into every event about it (Flux's
/// `event.toolkit.fluxcd.io` group).
pub const EVENT_ANNOTATION_PREFIX: &str = "event.toolkit.fluxcd.io/";

/// Events waiting for the delivery task; more are dropped (with a warning).
pub const QUEUE_CAPACITY: usize = 1024;

/// Retries of one POST after the first attempt (Flux's recorder: retryablehttp's default).
pub const MAX_RETRIES: u32 = 4;

/// Time limit of one POST attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Event severity in Flux's terms (`info`, `error`, `trace` on the wire).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Normal event, forwarded to notification receivers.
    Info,
    /// Warning event, forwarded to notification receivers.
    Error,
    /// Normal event, Kubernetes only.
    Trace,
}

impl Severity {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Error => "error",
            Severity::Trace => "trace",
        }
    }
}

/// One event in Flux's wire format (`event.toolkit.fluxcd.io`), as controllers POST it to a
/// notification receiver and as the dispatcher hands it to providers.
///
/// Field order is Flux's; `timestamp` is RFC 3339 at second precision; `metadata` is omitted when
/// empty.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxEvent {
    /// The object the event is about (kind, namespace, name, uid, apiVersion, resourceVersion).
    pub involved_object: ObjectReference,
    /// `info` or `error` (`trace` never leaves the emitting controller).
    pub severity: Severity,
    /// When it happened, e.g. `2026-12-07T03:00:00Z`.
    pub timestamp: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
    /// Machine-readable reason, e.g. `ReconciliationSucceeded`.
    #[serde(default)]
    pub reason: String,
    /// Controller keys (prefixed with the involved object's API group) and copied
    /// `event.toolkit.fluxcd.io/*` annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The emitting controller, e.g. `source-controller`.
    #[serde(default)]
    pub reporting_controller: String,
    /// The emitting instance (pod name or host name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// Receives events in-process (the notification dispatcher inside kluctl-controller), so a
/// controller's own events need no HTTP round trip. Must not block: queue and return.
pub trait EventSink: Send + Sync {
    /// Takes one event (never `trace`).
    fn accept(&self, event: FluxEvent);
}

/// Now as Flux writes event timestamps: RFC 3339, whole seconds, UTC.
pub fn timestamp_now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Where events go.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    controller: String,
    instance: String,
    http: Option<mpsc::Sender<FluxEvent>>,
    sink: Option<Arc<dyn EventSink>>,
}

/// Wait before retry `n` (0-based): `min · 2ⁿ`, at most `max`. Shared with kluctl-controller's
/// notification delivery, which retries the same way with other bounds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry.
    pub min: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Backoff {
    /// Flux's recorder (retryablehttp defaults): 1 s, 2 s, 4 s, 8 s, ... capped at 30 s.
    const FLUX: Backoff = Backoff {
        min: Duration::from_secs(1),
        max: Duration::from_secs(30),
    };

    /// The wait before retry number `retry` (0 for the first).
    pub fn wait(self, retry: u32) -> Duration {
        self.min
            .checked_mul(2u32.saturating_pow(retry))
            .map_or(self.max, |d| d.min(self.max))
    }
}

impl Events {
    /// Events reported as `controller` from `instance` (usually the pod name); `events_addr` empty
    /// disables the HTTP path.
    ///
    /// # Caveats
    /// With an `events_addr` this spawns the delivery task, so call it inside a Tokio runtime;
    /// outside one the HTTP path is disabled (with a warning).
    pub fn new(client: kube::Client, controller: &str, instance: &str, events_addr: &str) -> Self {
        Self::with_backoff(client, controller, instance, events_addr, Backoff::FLUX)
    }

    fn with_backoff(
        client: kube::Client,
        controller: &str,
        instance: &str,
        events_addr: &str,
        backoff: Backoff,
    ) -> Self {
        let http = (!events_addr.is_empty())
            .then(|| Delivery::spawn(events_addr, backoff))
            .flatten();
        Events {
            recorder: Recorder::new(client, controller, instance),
            controller: controller.to_string(),
            instance: instance.to_string(),
            http,
            sink: None,
        }
    }

    /// Also hands every `info` and `error` event to `sink`, synchronously inside `emit` (the sink
    /// queues): the in-process path of kluctl-controller's notification dispatcher.
    #[must_use]
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Emits one event about `obj`. `metadata` (keys prefixed with the object's API group) and
    /// the object's `event.toolkit.fluxcd.io/*` annotations go into the Flux event only; the
    /// controller's keys win over annotations of the same name.
    ///
    /// Returns once the Kubernetes Event is recorded and the Flux event is queued: the HTTP
    /// delivery happens in the background.
    ///
    /// ```no_run
    /// # async fn run(client: kube::Client, obj: k8s_openapi::api::core::v1::ConfigMap) {
    /// use gitops_runtime::{Events, Severity};
    /// use std::collections::BTreeMap;
    /// let events = Events::new(client, "kluctl-controller", "pod-1", "http://notification-controller/");
    /// let metadata = BTreeMap::from([
    ///     ("gitops.kluctl.io/commit_status".to_string(), "update".to_string()),
    /// ]);
    /// events.emit(&obj, Severity::Info, "ReconciliationSucceeded", "deployed", metadata).await;
    /// # }
    /// ```
    pub async fn emit<K>(
        &self,
        obj: &K,
        severity: Severity,
        reason: &str,
        message: &str,
        metadata: BTreeMap<String, String>,
    ) where
        K: kube::Resource<DynamicType = ()>,
    {
        let obj_ref = obj.object_ref(&());
        let type_ = if severity == Severity::Error {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let note = truncate(message, 1024);
        let action = action_for(reason, message);
        let ev = Event {
            type_,
            reason,
            action: &action,
            note: &note,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj_ref).await {
            tracing::warn!(error = %e, reason, "failed to record Kubernetes event");
        }
        if severity == Severity::Trace || (self.http.is_none() && self.sink.is_none()) {
            return;
        }
        let metadata = event_metadata(kube::ResourceExt::annotations(obj), metadata);
        let event = flux_event(
            &obj_ref,
            severity,
            reason,
            message,
            &metadata,
            &self.controller,
            &self.instance,
        );
        if let Some(sink) = &self.sink {
            sink.accept(event.clone());
        }
        if let Some(queue) = &self.http {
            match queue.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => tracing::warn!(
                    reason,
                    capacity = QUEUE_CAPACITY,
                    "event queue full (the event receiver is slow or down): event dropped"
                ),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::warn!(reason, "event delivery task ended: event dropped");
                }
            }
        }
    }
}

/// The Flux event metadata of an object: its `event.toolkit.fluxcd.io/*` annotations, then the
/// controller's `metadata` (which wins on equal keys).
pub fn event_metadata(
    annotations: &BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = annotations
        .iter()
        .filter(|(k, _)| k.starts_with(EVENT_ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(metadata);
    out
}

/// The background task POSTing queued events to `--events-addr`, one at a time and in order.
struct Delivery {
    client: reqwest::Client,
    url: String,
    backoff: Backoff,
}

/// What to do after one POST attempt.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Accepted, or 429 (a duplicate the receiver already has).
    Done,
    /// Connection error or a server error worth another try.
    Retry,
    /// Refused for good (4xx, 501): logged, not retried.
    Rejected,
}

impl Verdict {
    /// Flux's recorder policy; `None` = no response (connection error, timeout).
    fn of(status: Option<reqwest::StatusCode>) -> Verdict {
        match status {
            None => Verdict::Retry,
            Some(s) if s.is_success() || s == reqwest::StatusCode::TOO_MANY_REQUESTS => Verdict::Done,
            Some(s) if s.is_server_error() && s != reqwest::StatusCode::NOT_IMPLEMENTED => Verdict::Retry,
            Some(_) => Verdict::Rejected,
        }
    }
}

impl Delivery {
    /// The queue of a new delivery task; `None` (with a warning) outside a Tokio runtime.
    fn spawn(url: &str, backoff: Backoff) -> Option<mpsc::Sender<FluxEvent>> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(url, "no async runtime: Flux events are not sent to --events-addr");
            return None;
        };
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        let delivery = Delivery {
            client,
            url: url.to_owned(),
            backoff,
        };
        let (tx, mut rx) = mpsc::channel::<FluxEvent>(QUEUE_CAPACITY);
        runtime.spawn(async move {
            while let Some(event) = rx.recv().await {
                delivery.deliver(&event).await;
            }
        });
        Some(tx)
    }

    async fn deliver(&self, event: &FluxEvent) {
        let body = match serde_json::to_vec(event) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, reason = event.reason, "failed to encode event");
                return;
            }
        };
        let mut retry = 0;
        loop {
            let sent = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let (status, error) = match &sent {
                Ok(r) => (Some(r.status()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            match Verdict::of(status) {
                Verdict::Done => return,
                Verdict::Rejected => {
                    tracing::warn!(status = ?status, reason = event.reason, "event receiver rejected the event");
                    return;
                }
                Verdict::Retry if retry >= MAX_RETRIES => {
                    tracing::warn!(
                        status = ?status,
                        error = error.as_deref().unwrap_or_default(),
                        reason = event.reason,
                        attempts = retry + 1,
                        "failed to send event: giving up"
                    );
                    return;
                }
                Verdict::Retry => {
                    tracing::debug!(status = ?status, error = error.as_deref().unwrap_or_default(), retry, "event not delivered, retrying");
                    tokio::time::sleep(self.backoff.wait(retry)).await;
                    retry += 1;
                }
            }
        }
    }
}

/// The Flux event (`event.toolkit.fluxcd.io` wire format) of one emit, stamped now.
pub fn flux_event(
    obj: &ObjectReference,
    severity: Severity,
    reason: &str,
    message: &str,
    metadata: &BTreeMap<String, String>,
    controller: &str,
    instance: &str,
) -> FluxEvent {
    FluxEvent {
        involved_object: obj.clone(),
        severity,
        timestamp: timestamp_now(),
        message: message.to_owned(),
        reason: reason.to_owned(),
        metadata: metadata.clone(),
        reporting_controller: controller.to_owned(),
        reporting_instance: instance.to_owned(),
    }
}

/// The event's `action`: the reason plus a short hash of the message.
///
/// Events API consumers group events by (type, reason, action, object); making the action depend on
/// the message keeps "stored artifact for commit 'b'" apart from 'a', while repeats of the same
/// message still fold into a series (see [`crate::recorder`]).
fn action_for(reason: &str, message: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message.hash(&mut h);
    format!("{reason}-{:08x}", h.finish() & 0xffff_ffff)
}

/// At most `max` bytes of `s`, cut on a character boundary, `...` marking a cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn flux_event_has_the_wire_fields() {
        let obj = ObjectReference {
            api_version: Some("source.toolkit.fluxcd.io/v1".into()),
            kind: Some("GitRepository".into()),
            name: Some("podinfo".into()),
            namespace: Some("flux-system".into()),
            ..ObjectReference::default()
        };
        let md = BTreeMap::from([(
            "source.toolkit.fluxcd.io/revision".to_string(),
            "main@sha1:abc".to_string(),
        )]);
        let ev = flux_event(
            &obj,
            Severity::Info,
            "NewArtifact",
            "stored artifact",
            &md,
            "source-controller",
            "pod-1",
        );
        let ev = serde_json::to_value(&ev).expect("json");
        assert_eq!(ev["severity"], "info");
        assert_eq!(ev["involvedObject"]["kind"], "GitRepository");
        assert_eq!(
            ev["metadata"]["source.toolkit.fluxcd.io/revision"],
            "main@sha1:abc"
        );
        assert_eq!(ev["reportingController"], "source-controller");
        let ts = ev["timestamp"].as_str().expect("timestamp");
        assert!(ts.ends_with('Z') && !ts.contains('.'), "{ts}");
        let err = flux_event(&obj, Severity::Error, "GitOperationFailed", "x", &md, "c", "i");
        assert_eq!(serde_json::to_value(&err).expect("json")["severity"], "error");
    }

    #[test]
    fn distinct_messages_get_distinct_actions_and_repeats_share_one() {
        let a = action_for("NewArtifact", "stored artifact for commit 'a'");
        assert_eq!(a, action_for("NewArtifact", "stored artifact for commit 'a'"));
        assert_ne!(a, action_for("NewArtifact", "stored artifact for commit 'b'"));
        assert!(a.starts_with("NewArtifact-") && a.len() <= 128);
    }

    /// One HTTP request from a client, answered with `status` (e.g. `202 Accepted`) and a closed
    /// connection: the body, after the blank line.
    async fn receive_one(listener: &tokio::net::TcpListener, status: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.expect("read");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    let reply =
                        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    conn.write_all(reply.as_bytes()).await.expect("reply");
                    return body.to_string();
                }
            }
            assert!(n > 0, "connection closed before the body arrived: {text}");
        }
    }

    /// A client for an apiserver that is not there: recording Kubernetes events fails (logged),
    /// which must not keep the Flux event from going out.
    fn no_apiserver() -> kube::Client {
        let kube_url = "http://127.0.0.1:1".parse().expect("url");
        kube::Client::try_from(kube::Config::new(kube_url)).expect("client")
    }

    fn object(annotations: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("app".into()),
                namespace: Some("default".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    async fn listener() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = format!("http://{}/", listener.local_addr().expect("addr"));
        (listener, addr)
    }

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).expect("json")
    }

    #[tokio::test]
    async fn emit_forwards_info_and_error_with_metadata_and_keeps_trace_in_kubernetes() {
        let (listener, addr) = listener().await;
        let events = Events::new(no_apiserver(), "kluctl-controller", "pod-1", &addr);
        let obj = object(&[
            ("event.toolkit.fluxcd.io/deploy-env", "prod"),
            ("event.toolkit.fluxcd.io/revision", "from-annotation"),
            ("team", "not copied"),
        ]);
        let md = BTreeMap::from([
            ("gitops.kluctl.io/commit_status".to_string(), "update".to_string()),
            (
                "event.toolkit.fluxcd.io/revision".to_string(),
                "main@sha1:abc".to_string(),
            ),
        ]);
        let server = tokio::spawn(async move {
            let first = receive_one(&listener, "202 Accepted").await;
            let second = receive_one(&listener, "202 Accepted").await;
            (first, second)
        });
        events
            .emit(
                &obj,
                Severity::Trace,
                "Progressing",
                "not forwarded",
                BTreeMap::new(),
            )
            .await;
        events
            .emit(&obj, Severity::Info, "ReconciliationSucceeded", "deployed", md)
            .await;
        events
            .emit(
                &obj,
                Severity::Error,
                "ReconciliationFailed",
                "boom",
                BTreeMap::new(),
            )
            .await;
        let (first, second) = server.await.expect("server");
        let (first, second) = (json(&first), json(&second));
        assert_eq!(first["reason"], "ReconciliationSucceeded", "{first}");
        assert_eq!(first["severity"], "info");
        assert_eq!(
            first["metadata"],
            serde_json::json!({
                "gitops.kluctl.io/commit_status": "update",
                "event.toolkit.fluxcd.io/deploy-env": "prod",
                "event.toolkit.fluxcd.io/revision": "main@sha1:abc",
            }),
            "annotations copied, the controller's key wins"
        );
        assert_eq!(first["reportingController"], "kluctl-controller");
        assert_eq!(first["reportingInstance"], "pod-1");
        assert_eq!(first["involvedObject"]["kind"], "ConfigMap");
        assert_eq!(first["involvedObject"]["name"], "app");
        assert_eq!(second["reason"], "ReconciliationFailed", "{second}");
        assert_eq!(second["severity"], "error");
        assert_eq!(
            second["metadata"],
            serde_json::json!({
                "event.toolkit.fluxcd.io/deploy-env": "prod",
                "event.toolkit.fluxcd.io/revision": "from-annotation",
            })
        );
    }

    #[test]
    fn only_event_annotations_are_copied_and_controller_keys_win() {
        let annotations = BTreeMap::from([
            ("event.toolkit.fluxcd.io/env".to_string(), "prod".to_string()),
            ("event.toolkit.fluxcd.io/commit".to_string(), "a".to_string()),
            ("kluctl.io/request-reconcile".to_string(), "1".to_string()),
        ]);
        let md = event_metadata(
            &annotations,
            BTreeMap::from([("event.toolkit.fluxcd.io/commit".to_string(), "b".to_string())]),
        );
        assert_eq!(
            md,
            BTreeMap::from([
                ("event.toolkit.fluxcd.io/commit".to_string(), "b".to_string()),
                ("event.toolkit.fluxcd.io/env".to_string(), "prod".to_string()),
            ])
        );
    }

    /// Events whose delivery retries after 10, 20, 40, 40 ms (tests wait for no real backoff).
    /// The one delivery task handles events in order, so the request a server sees after a
    /// reply tells whether that reply caused a retry.
    fn short_backoff_events(addr: &str) -> Events {
        let backoff = Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(40),
        };
        Events::with_backoff(no_apiserver(), "source-controller", "pod-1", addr, backoff)
    }

    #[tokio::test]
    async fn a_server_error_is_retried_and_the_event_delivered_once() {
        let (listener, addr) = listener().await;
        let events = short_backoff_events(&addr);
        let obj = object(&[]);
        events
            .emit(&obj, Severity::Info, "NewArtifact", "first", BTreeMap::new())
            .await;
        let a = receive_one(&listener, "503 Service Unavailable").await;
        let b = receive_one(&listener, "202 Accepted").await;
        assert_eq!(json(&a)["message"], "first");
        assert_eq!(a, b, "the retry sends the same body");
        // In order: if the 202 had been retried, this request would be "first" again.
        events
            .emit(&obj, Severity::Info, "NewArtifact", "second", BTreeMap::new())
            .await;
        let c = receive_one(&listener, "202 Accepted").await;
        assert_eq!(json(&c)["message"], "second");
    }

    #[tokio::test]
    async fn a_duplicate_reply_is_not_retried() {
        let (listener, addr) = listener().await;
        let events = short_backoff_events(&addr);
        let obj = object(&[]);
        events
            .emit(
                &obj,
                Severity::Error,
                "GitOperationFailed",
                "first",
                BTreeMap::new(),
            )
            .await;
        events
            .emit(
                &obj,
                Severity::Error,
                "GitOperationFailed",
                "second",
                BTreeMap::new(),
            )
            .await;
        let a = receive_one(&listener, "429 Too Many Requests").await;
        let b = receive_one(&listener, "202 Accepted").await;
        assert_eq!(json(&a)["message"], "first");
        assert_eq!(json(&b)["message"], "second", "429 means duplicate: no retry");
    }

    #[test]
    fn retry_policy_and_backoff_follow_flux() {
        use reqwest::StatusCode;
        assert_eq!(Verdict::of(None), Verdict::Retry);
        assert_eq!(Verdict::of(Some(StatusCode::ACCEPTED)), Verdict::Done);
        assert_eq!(Verdict::of(Some(StatusCode::TOO_MANY_REQUESTS)), Verdict::Done);
        assert_eq!(Verdict::of(Some(StatusCode::BAD_GATEWAY)), Verdict::Retry);
        assert_eq!(Verdict::of(Some(StatusCode::NOT_IMPLEMENTED)), Verdict::Rejected);
        assert_eq!(Verdict::of(Some(StatusCode::BAD_REQUEST)), Verdict::Rejected);
        let waits: Vec<u64> = (0..7).map(|n| Backoff::FLUX.wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(Backoff::FLUX.wait(u32::MAX), Duration::from_secs(30));
    }

    #[derive(Default)]
    struct Collect(std::sync::Mutex<Vec<FluxEvent>>);

    impl EventSink for Collect {
        fn accept(&self, event: FluxEvent) {
            self.0.lock().expect("lock").push(event);
        }
    }

    #[tokio::test]
    async fn the_sink_receives_info_and_error_but_not_trace() {
        let sink = Arc::new(Collect::default());
        let events = Events::new(no_apiserver(), "kluctl-controller", "pod-1", "").with_sink(sink.clone());
        let obj = object(&[("event.toolkit.fluxcd.io/env", "prod")]);
        for (severity, reason) in [
            (Severity::Trace, "Progressing"),
            (Severity::Info, "ReconciliationSucceeded"),
            (Severity::Error, "DeployFailed"),
        ] {
            events.emit(&obj, severity, reason, "m", BTreeMap::new()).await;
        }
        let got = sink.0.lock().expect("lock").clone();
        let got: Vec<_> = got
            .iter()
            .map(|e| {
                (
                    e.severity,
                    e.reason.as_str(),
                    e.metadata["event.toolkit.fluxcd.io/env"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Severity::Info, "ReconciliationSucceeded", "prod"),
                (Severity::Error, "DeployFailed", "prod"),
            ]
        );
    }

    #[test]
    fn long_notes_are_truncated_on_a_char_boundary() {
        let s = "é".repeat(1000);
        let t = truncate(&s, 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }
}
