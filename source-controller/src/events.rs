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

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Event severity in Flux's terms.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Normal event, forwarded to notification receivers.
    Info,
    /// Warning event, forwarded to notification receivers.
    Error,
    /// Normal event, Kubernetes only.
    Trace,
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
            .body(body.to_string());
        match request.send().await {
            Ok(r) if r.status().is_success() || r.status().as_u16() == 429 => {}
            Ok(r) => tracing::warn!(status = %r.status(), reason, "event receiver rejected the event"),
            Err(e) => tracing::warn!(error = %e, reason, "failed to send event"),
        }
    }
}

/// The Flux event JSON (`event.toolkit.fluxcd.io` wire format).
pub fn flux_event(
    obj: &ObjectReference,
    severity: Severity,
    reason: &str,
    message: &str,
    metadata: &BTreeMap<String, String>,
    controller: &str,
    instance: &str,
) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now();
    json!({
        "involvedObject": obj,
        "severity": if severity == Severity::Error { "error" } else { "info" },
        "timestamp": now.to_string(),
        "message": message,
        "reason": reason,
        "metadata": metadata,
        "reportingController": controller,
        "reportingInstance": instance,
    })
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
        assert_eq!(ev["severity"], "info");
        assert_eq!(ev["involvedObject"]["kind"], "GitRepository");
        assert_eq!(
            ev["metadata"]["source.toolkit.fluxcd.io/revision"],
            "main@sha1:abc"
        );
        assert_eq!(ev["reportingController"], "source-controller");
        assert!(ev["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        let err = flux_event(&obj, Severity::Error, "GitOperationFailed", "x", &md, "c", "i");
        assert_eq!(err["severity"], "error");
    }

    #[test]
    fn distinct_messages_get_distinct_actions_and_repeats_share_one() {
        let a = action_for("NewArtifact", "stored artifact for commit 'a'");
        assert_eq!(a, action_for("NewArtifact", "stored artifact for commit 'a'"));
        assert_ne!(a, action_for("NewArtifact", "stored artifact for commit 'b'"));
        assert!(a.starts_with("NewArtifact-") && a.len() <= 128);
    }

    #[test]
    fn long_notes_are_truncated_on_a_char_boundary() {
        let s = "é".repeat(1000);
        let t = truncate(&s, 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }
}
