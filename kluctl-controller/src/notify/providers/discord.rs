//! `discord`: Slack's attachment message to Discord's Slack-compatible endpoint, the address with
//! `/slack` appended (unless it already ends so). No fallback text, no channel (a Discord webhook
//! posts to its own channel), no token.

use gitops_runtime::FluxEvent;
use reqwest::Url;
use serde_json::{Value, json};

use super::slack;

/// The webhook with the `/slack` suffix Discord's Slack-compatible endpoint needs.
pub fn webhook(address: &Url) -> Url {
    let mut url = address.clone();
    if !url.path().ends_with("/slack") {
        let path = format!("{}/slack", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    url
}

/// The message; `username` empty means the reporting controller.
pub fn payload(event: &FluxEvent, username: &str) -> Value {
    json!({
        "channel": "",
        "username": if username.is_empty() { &event.reporting_controller } else { username },
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [{
            "fallback": "",
            "color": slack::color(event),
            "author_name": slack::object_name(event),
            "text": event.message,
            "mrkdwn_in": ["text"],
            "fields": slack::fields(event),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::{error_event, event};

    #[test]
    fn webhook_gets_the_slack_suffix_once() {
        let url = |s: &str| Url::parse(s).expect("url");
        assert_eq!(
            webhook(&url("https://discord.com/api/webhooks/1/tok")).as_str(),
            "https://discord.com/api/webhooks/1/tok/slack"
        );
        assert_eq!(
            webhook(&url("https://discord.com/api/webhooks/1/tok/slack")).as_str(),
            "https://discord.com/api/webhooks/1/tok/slack"
        );
        assert_eq!(
            webhook(&url("https://discord.com/api/webhooks/1/tok/?wait=true")).as_str(),
            "https://discord.com/api/webhooks/1/tok/slack?wait=true"
        );
    }

    #[test]
    fn payload_is_slack_shaped_without_fallback() {
        let p = payload(&event(&[("revision", "r1")]), "");
        let a = &p["attachments"][0];
        assert_eq!(p["username"], "kluctl-controller");
        assert_eq!(a["fallback"], "");
        assert_eq!(a["color"], "good");
        assert_eq!(a["author_name"], "kluctldeployment/podinfo.apps");
        assert_eq!(a["fields"][0]["title"], "revision");
        assert_eq!(payload(&error_event(), "")["attachments"][0]["color"], "danger");
    }
}
