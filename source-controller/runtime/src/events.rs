//! Events: a Kubernetes Event for every notable outcome, and — when `--events-addr` is set — the
//! same event as Flux's event JSON POSTed to a notification receiver.
//!
//! ```text
//!  reconciler ──► Events::emit(obj, Severity, reason, message, metadata)
//!                    ├─► events.k8s.io Event (Normal / Warning)          always
//!                    └─► POST {involvedObject, severity, reason, ...}    Info/Error only, when --events-addr
//! ```
//!
//! `Trace` events reach only Kubernetes (Flux never forwards them). The HTTP body follows Flux's
//! wire format so Flux's notification-controller and our own dispatcher accept it; a 429 reply
//! means "duplicate" and is not retried. Failures to deliver are logged, never fatal.
//!
//! `metadata` carries the controller's keys (`source.toolkit.fluxcd.io/revision`,
//! `gitops.kluctl.io/commit_status`, ...) into the HTTP body; Kubernetes events have no place for it.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::collections::BTreeMap;
use std::time::Duration;

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
    http: Option<(reqwest::Client, String)>,
}

impl Events {
    /// Events reported as `controller` from `instance` (usually the pod name); `events_addr` empty
    /// disables the HTTP path.
    pub fn new(client: kube::Client, controller: &str, instance: &str, events_addr: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: Some(instance.to_string()),
        };
        let http = (!events_addr.is_empty()).then(|| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default();
            (client, events_addr.to_string())
        });
        Events {
            recorder: Recorder::new(client, reporter),
            controller: controller.to_string(),
            instance: instance.to_string(),
            http,
        }
    }

    /// Emits one event about `obj`. `metadata` goes into the HTTP body only.
    ///
    /// ```no_run
    /// # async fn run(client: kube::Client, obj: k8s_openapi::api::core::v1::ObjectReference) {
    /// use gitops_runtime::{Events, Severity};
    /// use std::collections::BTreeMap;
    /// let events = Events::new(client, "kluctl-controller", "pod-1", "http://notification-controller/");
    /// let metadata = BTreeMap::from([
    ///     ("gitops.kluctl.io/commit_status".to_string(), "update".to_string()),
    /// ]);
    /// events.emit(&obj, Severity::Info, "ReconciliationSucceeded", "deployed", metadata).await;
    /// # }
    /// ```
    pub async fn emit(
        &self,
        obj: &ObjectReference,
        severity: Severity,
        reason: &str,
        message: &str,
        metadata: BTreeMap<String, String>,
    ) {
        let type_ = if severity == Severity::Error {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(message, 1024)),
            action: action_for(reason, message),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, obj).await {
            tracing::warn!(error = %e, reason, "failed to record Kubernetes event");
        }
        let Some((client, url)) = &self.http else { return };
        if severity == Severity::Trace {
            return;
        }
        let body = flux_event(
            obj,
            severity,
            reason,
            message,
            &metadata,
            &self.controller,
            &self.instance,
        );
        let request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        match request.send().await {
            Ok(r) if r.status().is_success() || r.status().as_u16() == 429 => {}
            Ok(r) => tracing::warn!(status = %r.status(), reason, "event receiver rejected the event"),
            Err(e) => tracing::warn!(error = %e, reason, "failed to send event"),
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
/// kube-runtime's recorder folds events with the same (type, reason, action, object) into one series
/// that keeps the first note, so "stored artifact for commit 'b'" would vanish behind 'a'. Making
/// the action depend on the message keeps every distinct message visible, while repeats of the same
/// message still aggregate into a series.
fn action_for(reason: &str, message: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message.hash(&mut h);
    format!("{reason}-{:08x}", h.finish() & 0xffff_ffff)
}

fn truncate(s: &str, max: usize) -> String {
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

    /// One HTTP request from a client that closes after it: the body, after the blank line.
    async fn receive_one(listener: &tokio::net::TcpListener) -> String {
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
                    conn.write_all(
                        b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await
                    .expect("reply");
                    return body.to_string();
                }
            }
            assert!(n > 0, "connection closed before the body arrived: {text}");
        }
    }

    #[tokio::test]
    async fn emit_forwards_info_and_error_with_metadata_and_keeps_trace_in_kubernetes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = format!("http://{}/", listener.local_addr().expect("addr"));
        // No apiserver behind this port: recording the Kubernetes event fails (logged), the HTTP
        // path must still deliver.
        let kube_url = "http://127.0.0.1:1".parse().expect("url");
        let client = kube::Client::try_from(kube::Config::new(kube_url)).expect("client");
        let events = Events::new(client, "kluctl-controller", "pod-1", &addr);
        let obj = ObjectReference {
            kind: Some("KluctlDeployment".into()),
            name: Some("app".into()),
            namespace: Some("default".into()),
            ..ObjectReference::default()
        };
        let md = BTreeMap::from([
            ("gitops.kluctl.io/commit_status".to_string(), "update".to_string()),
            ("revision".to_string(), "main@sha1:abc".to_string()),
        ]);
        let server = tokio::spawn(async move {
            let first = receive_one(&listener).await;
            let second = receive_one(&listener).await;
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
        let first: serde_json::Value = serde_json::from_str(&first).expect("json");
        let second: serde_json::Value = serde_json::from_str(&second).expect("json");
        assert_eq!(first["reason"], "ReconciliationSucceeded", "{first}");
        assert_eq!(first["severity"], "info");
        assert_eq!(first["metadata"]["gitops.kluctl.io/commit_status"], "update");
        assert_eq!(first["metadata"]["revision"], "main@sha1:abc");
        assert_eq!(first["reportingController"], "kluctl-controller");
        assert_eq!(first["involvedObject"]["kind"], "KluctlDeployment");
        assert_eq!(second["reason"], "ReconciliationFailed", "{second}");
        assert_eq!(second["severity"], "error");
    }

    #[test]
    fn long_notes_are_truncated_on_a_char_boundary() {
        let s = "é".repeat(1000);
        let t = truncate(&s, 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }
}
