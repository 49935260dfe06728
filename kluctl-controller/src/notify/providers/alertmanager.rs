//! `alertmanager`: one firing alert POSTed to Alertmanager's `/api/v2/alerts` (the address is the
//! full endpoint).
//!
//! ```json
//! [{"status": "firing",
//!   "labels": {<metadata but summary>, "alertname": "Flux<Kind><Reason title-cased>",
//!              "severity", "reason", "kind", "name", "namespace", "reportingcontroller"},
//!   "annotations": {"message": "<message>", "summary": "<metadata summary, if any>"},
//!   "startsAt": "<event timestamp>"}]
//! ```
//!
//! `endsAt` is left out, so Alertmanager resolves the alert after its `resolve_timeout` (Flux
//! sends Go's zero time, which Alertmanager treats the same way). Auth: Secret `token` as
//! `Authorization: Bearer`, or `username` + `password` as basic auth.

use std::collections::BTreeMap;

use gitops_runtime::FluxEvent;
use serde_json::{Value, json};

/// The alert list.
pub fn payload(event: &FluxEvent) -> Value {
    let mut labels: BTreeMap<String, String> = event.metadata.clone();
    let mut annotations = BTreeMap::from([("message".to_string(), event.message.clone())]);
    if let Some(summary) = labels.remove("summary") {
        annotations.insert("summary".to_string(), summary);
    }
    let o = &event.involved_object;
    let kind = o.kind.clone().unwrap_or_default();
    labels.insert(
        "alertname".into(),
        format!("Flux{kind}{}", title_case(&event.reason)),
    );
    labels.insert("severity".into(), event.severity.as_str().into());
    labels.insert("reason".into(), event.reason.clone());
    labels.insert("kind".into(), kind);
    labels.insert("name".into(), o.name.clone().unwrap_or_default());
    labels.insert("namespace".into(), o.namespace.clone().unwrap_or_default());
    labels.insert("reportingcontroller".into(), event.reporting_controller.clone());
    json!([{
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": event.timestamp,
    }])
}

/// Each word's first letter upper case, the rest lower case (Go's `cases.Title`):
/// `ReconciliationSucceeded` → `Reconciliationsucceeded`, `health check` → `Health Check`.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word_start = true;
    for c in s.chars() {
        if c.is_alphanumeric() || c == '\'' {
            if word_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            word_start = false;
        } else {
            out.push(c);
            word_start = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::{error_event, event};

    #[test]
    fn alert_has_labels_annotations_and_start_time() {
        let p = payload(&event(&[("revision", "r1"), ("summary", "prod")]));
        let a = &p[0];
        assert_eq!(a["status"], "firing");
        assert_eq!(a["startsAt"], "2026-01-02T03:04:05Z");
        assert!(a.get("endsAt").is_none());
        assert_eq!(
            a["annotations"],
            json!({"message": "deployed 3 objects\nall healthy", "summary": "prod"})
        );
        assert_eq!(
            a["labels"],
            json!({
                "alertname": "FluxKluctlDeploymentReconciliationsucceeded",
                "severity": "info",
                "reason": "ReconciliationSucceeded",
                "kind": "KluctlDeployment",
                "name": "podinfo",
                "namespace": "apps",
                "reportingcontroller": "kluctl-controller",
                "revision": "r1",
            })
        );
        assert_eq!(payload(&error_event())[0]["labels"]["severity"], "error");
        assert!(payload(&error_event())[0]["annotations"].get("summary").is_none());
    }

    #[test]
    fn title_case_follows_go_cases_title() {
        assert_eq!(title_case("ReconciliationSucceeded"), "Reconciliationsucceeded");
        assert_eq!(title_case("info"), "Info");
        assert_eq!(title_case("health check-failed"), "Health Check-Failed");
        assert_eq!(title_case(""), "");
    }
}
