//! `slack`: an attachment message, for incoming webhooks and for the `chat.postMessage` API.
//!
//! ```json
//! {"channel": "<spec.channel>", "username": "<username or reportingController>",
//!  "icon_url": "", "icon_emoji": "",
//!  "attachments": [{"fallback": "<author>: <first line>", "color": "good" | "danger",
//!                   "author_name": "<kind lowercase>/<name>.<namespace>", "text": "<message>",
//!                   "mrkdwn_in": ["text"], "fields": [{"title": k, "value": v, "short": false}]}]}
//! ```
//!
//! A Secret `token` is sent as `Authorization: Bearer <token>`. The Web API
//! (`https://slack.com/api/chat.postMessage`) answers `200` even on failure, so its JSON
//! `{"ok": false, "error": ...}` is checked; for webhooks any `2xx` is success.

use gitops_runtime::{FluxEvent, Severity};
use serde_json::{Value, json};

/// The Web API address whose answers are checked for `ok`.
pub const CHAT_POST_MESSAGE: &str = "https://slack.com/api/chat.postMessage";

/// `<kind lowercase>/<name>.<namespace>`: how chat providers name the object.
pub fn object_name(event: &FluxEvent) -> String {
    let o = &event.involved_object;
    format!(
        "{}/{}.{}",
        o.kind.as_deref().unwrap_or_default().to_lowercase(),
        o.name.as_deref().unwrap_or_default(),
        o.namespace.as_deref().unwrap_or_default()
    )
}

/// `good` for info, `danger` for error events.
pub fn color(event: &FluxEvent) -> &'static str {
    if event.severity == Severity::Error {
        "danger"
    } else {
        "good"
    }
}

/// One `{title, value, short: false}` field per metadata key.
pub fn fields(event: &FluxEvent) -> Vec<Value> {
    event
        .metadata
        .iter()
        .map(|(k, v)| json!({"title": k, "value": v, "short": false}))
        .collect()
}

/// The message; `username` empty means the reporting controller.
pub fn payload(event: &FluxEvent, username: &str, channel: &str) -> Value {
    let author = object_name(event);
    let first_line = event.message.split('\n').next().unwrap_or_default();
    json!({
        "channel": channel,
        "username": if username.is_empty() { &event.reporting_controller } else { username },
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [{
            "fallback": format!("{author}: {first_line}"),
            "color": color(event),
            "author_name": author,
            "text": event.message,
            "mrkdwn_in": ["text"],
            "fields": fields(event),
        }],
    })
}

/// The error of a Web API answer (`{"ok": false, "error": "..."}`), `None` when `ok`.
pub fn api_error(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        ok: bool,
        #[serde(default)]
        error: String,
    }
    match serde_json::from_slice::<Answer>(body) {
        Ok(a) if a.ok => None,
        Ok(a) => Some(format!("Slack responded with error: {}", a.error)),
        Err(e) => Some(format!("unable to read the Slack API answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::{error_event, event};

    #[test]
    fn payload_has_slacks_attachment_shape() {
        let ev = event(&[("revision", "main@sha1:abc")]);
        let p = payload(&ev, "", "#ops");
        assert_eq!(p["channel"], "#ops");
        assert_eq!(p["username"], "kluctl-controller");
        assert_eq!(p["icon_url"], "");
        assert_eq!(p["icon_emoji"], "");
        let a = &p["attachments"][0];
        assert_eq!(a["color"], "good");
        assert_eq!(a["author_name"], "kluctldeployment/podinfo.apps");
        assert_eq!(a["text"], "deployed 3 objects\nall healthy");
        assert_eq!(a["fallback"], "kluctldeployment/podinfo.apps: deployed 3 objects");
        assert_eq!(a["mrkdwn_in"], json!(["text"]));
        assert_eq!(
            a["fields"],
            json!([{"title": "revision", "value": "main@sha1:abc", "short": false}])
        );
    }

    #[test]
    fn errors_are_danger_and_username_overrides_the_controller() {
        let p = payload(&error_event(), "flux-bot", "");
        assert_eq!(p["attachments"][0]["color"], "danger");
        assert_eq!(p["username"], "flux-bot");
        assert_eq!(p["channel"], "");
        assert_eq!(p["attachments"][0]["fields"], json!([]));
    }

    #[test]
    fn web_api_answers_are_checked_for_ok() {
        assert_eq!(api_error(br#"{"ok":true}"#), None);
        assert_eq!(
            api_error(br#"{"ok":false,"error":"channel_not_found"}"#).as_deref(),
            Some("Slack responded with error: channel_not_found")
        );
        assert!(api_error(b"ok").is_some());
    }
}
