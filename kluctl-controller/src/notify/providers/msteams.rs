//! `msteams`: a Microsoft Teams card, in the format the address takes.
//!
//! - Host ending in `.webhook.office.com` (the retired Office 365 connectors): a legacy
//!   `MessageCard` with `themeColor` `0076D7` (info) or `FF0000` (error), the message as
//!   `activityTitle` and one fact per metadata key.
//! - Anything else (Power Automate "Workflows" webhooks): an Adaptive Card 1.4, full width, with
//!   the object name as a large bold title, the message (colour `attention` for errors) and a
//!   fact set listing `summary` first, then the other metadata keys sorted.

use gitops_runtime::{FluxEvent, Severity};
use reqwest::Url;
use serde_json::{Value, json};

use super::slack::object_name;

/// Highest Adaptive Card version Teams renders.
const ADAPTIVE_CARD_VERSION: &str = "1.4";

/// Whether the address is a legacy Office 365 connector (which takes only `MessageCard`s).
pub fn is_legacy_connector(address: &Url) -> bool {
    address
        .host_str()
        .is_some_and(|h| h.ends_with(".webhook.office.com"))
}

/// The card for `address`'s format.
pub fn payload(event: &FluxEvent, legacy_connector: bool) -> Value {
    if legacy_connector {
        message_card(event)
    } else {
        adaptive_card(event)
    }
}

/// The legacy connector's `MessageCard`.
pub fn message_card(event: &FluxEvent) -> Value {
    let name = object_name(event);
    let facts: Vec<Value> = event
        .metadata
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": if event.severity == Severity::Error { "FF0000" } else { "0076D7" },
        "summary": name,
        "sections": [{
            "activityTitle": event.message,
            "activitySubtitle": name,
            "facts": facts,
        }],
    })
}

/// The Workflows webhook's Adaptive Card message.
pub fn adaptive_card(event: &FluxEvent) -> Value {
    let mut message = json!({"type": "TextBlock", "text": event.message, "wrap": true});
    if event.severity == Severity::Error {
        message["color"] = json!("attention");
    }
    let summary = event
        .metadata
        .get("summary")
        .map(|v| json!({"title": "summary", "value": v}));
    // BTreeMap order: the remaining keys come sorted.
    let facts: Vec<Value> = summary
        .into_iter()
        .chain(
            event
                .metadata
                .iter()
                .filter(|(k, _)| k.as_str() != "summary")
                .map(|(k, v)| json!({"title": k, "value": v})),
        )
        .collect();
    let mut fact_set = json!({"type": "FactSet"});
    if !facts.is_empty() {
        fact_set["facts"] = Value::Array(facts);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": ADAPTIVE_CARD_VERSION,
                "msteams": {"width": "Full"},
                "body": [{
                    "type": "Container",
                    "items": [
                        {"type": "TextBlock", "text": object_name(event), "size": "large",
                         "weight": "bolder", "wrap": true},
                        message,
                        fact_set,
                    ],
                }],
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::{error_event, event};

    #[test]
    fn only_office_connector_hosts_get_the_legacy_card() {
        let url = |s: &str| Url::parse(s).expect("url");
        assert!(is_legacy_connector(&url(
            "https://xyz.webhook.office.com/webhookb2/a"
        )));
        assert!(is_legacy_connector(&url(
            "https://xyz.webhook.office.com:443/webhookb2/a"
        )));
        assert!(!is_legacy_connector(&url(
            "https://prod-1.westus.logic.azure.com:443/workflows/a/triggers/manual/paths/invoke"
        )));
        assert!(!is_legacy_connector(&url(
            "https://webhook.office.com.evil.example/x"
        )));
    }

    #[test]
    fn message_card_has_theme_colour_title_and_facts() {
        let p = payload(&event(&[("revision", "r1")]), true);
        assert_eq!(p["@type"], "MessageCard");
        assert_eq!(p["@context"], "http://schema.org/extensions");
        assert_eq!(p["themeColor"], "0076D7");
        assert_eq!(p["summary"], "kluctldeployment/podinfo.apps");
        let s = &p["sections"][0];
        assert_eq!(s["activityTitle"], "deployed 3 objects\nall healthy");
        assert_eq!(s["activitySubtitle"], "kluctldeployment/podinfo.apps");
        assert_eq!(s["facts"], json!([{"name": "revision", "value": "r1"}]));
        assert_eq!(payload(&error_event(), true)["themeColor"], "FF0000");
        assert_eq!(payload(&error_event(), true)["sections"][0]["facts"], json!([]));
    }

    #[test]
    fn adaptive_card_lists_summary_first_then_sorted_keys() {
        let ev = event(&[("zeta", "z"), ("summary", "prod cluster"), ("alpha", "a")]);
        let p = payload(&ev, false);
        assert_eq!(p["type"], "message");
        let a = &p["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        let c = &a["content"];
        assert_eq!(c["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(c["version"], "1.4");
        assert_eq!(c["msteams"]["width"], "Full");
        let items = &c["body"][0]["items"];
        assert_eq!(c["body"][0]["type"], "Container");
        assert_eq!(
            items[0],
            json!({"type": "TextBlock", "text": "kluctldeployment/podinfo.apps", "size": "large",
                   "weight": "bolder", "wrap": true})
        );
        assert_eq!(
            items[1],
            json!({"type": "TextBlock", "text": "deployed 3 objects\nall healthy", "wrap": true})
        );
        let titles: Vec<&str> = items[2]["facts"]
            .as_array()
            .expect("facts")
            .iter()
            .map(|f| f["title"].as_str().expect("title"))
            .collect();
        assert_eq!(items[2]["type"], "FactSet");
        assert_eq!(titles, ["summary", "alpha", "zeta"]);
    }

    #[test]
    fn adaptive_card_marks_errors_and_omits_empty_facts() {
        let p = payload(&error_event(), false);
        let items = &p["attachments"][0]["content"]["body"][0]["items"];
        assert_eq!(items[1]["color"], "attention");
        assert_eq!(items[2], json!({"type": "FactSet"}));
    }
}
