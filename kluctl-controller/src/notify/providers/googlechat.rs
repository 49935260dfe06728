//! `googlechat`: a Google Chat card (the `cards` v1 format of incoming webhooks): the object name
//! as title, the reporting controller as subtitle, the message in a text paragraph (in red for
//! errors), and a second section with one key/value widget per metadata key.
//!
//! Unset optional fields are sent as `null`, as Flux sends them; Chat ignores them.

use gitops_runtime::{FluxEvent, Severity};
use serde_json::{Value, json};

use super::slack::object_name;

/// The card message.
pub fn payload(event: &FluxEvent) -> Value {
    let text = if event.severity == Severity::Error {
        format!("<font color=\"#ff0000\">{}</font>", event.message)
    } else {
        event.message.clone()
    };
    let mut sections = vec![json!({
        "header": "",
        "widgets": [{"textParagraph": {"text": text}, "keyValue": null}],
    })];
    if !event.metadata.is_empty() {
        let widgets: Vec<Value> = event
            .metadata
            .iter()
            .map(|(k, v)| {
                json!({
                    "textParagraph": null,
                    "keyValue": {"topLabel": k, "content": v, "contentMultiline": false,
                                 "bottomLabel": null, "icon": null},
                })
            })
            .collect();
        sections.push(json!({"header": "", "widgets": widgets}));
    }
    json!({
        "cards": [{
            "header": {
                "title": object_name(event),
                "subtitle": event.reporting_controller,
                "imageUrl": null,
                "imageStyle": null,
            },
            "sections": sections,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::{error_event, event};

    #[test]
    fn card_has_header_message_and_metadata_sections() {
        let p = payload(&event(&[("revision", "r1")]));
        let card = &p["cards"][0];
        assert_eq!(card["header"]["title"], "kluctldeployment/podinfo.apps");
        assert_eq!(card["header"]["subtitle"], "kluctl-controller");
        assert_eq!(
            card["sections"][0]["widgets"][0]["textParagraph"]["text"],
            "deployed 3 objects\nall healthy"
        );
        let kv = &card["sections"][1]["widgets"][0]["keyValue"];
        assert_eq!(kv["topLabel"], "revision");
        assert_eq!(kv["content"], "r1");
        assert_eq!(kv["contentMultiline"], false);
    }

    #[test]
    fn errors_are_red_and_no_metadata_means_one_section() {
        let p = payload(&error_event());
        let sections = p["cards"][0]["sections"].as_array().expect("sections");
        assert_eq!(sections.len(), 1);
        assert_eq!(
            sections[0]["widgets"][0]["textParagraph"]["text"],
            "<font color=\"#ff0000\">apply failed: boom</font>"
        );
    }
}
