//! `gitea`: a commit status on the commit the event reports (Gitea and Forgejo).
//!
//! ```text
//!  GET  <base>/api/v1/repos/<owner>/<repo>/commits/<sha>/statuses?page=1&limit=50
//!       newest status with our context has the same state and description ─► skipped
//!  POST <base>/api/v1/repos/<owner>/<repo>/statuses/<sha>
//!       {"state": "pending" | "success" | "failure", "target_url": "", "context": <status id>,
//!        "description": <reason words>}
//! ```
//!
//! Unlike GitHub and GitLab, `Progressing` events are not skipped: they set `pending`.
//! Auth: `Authorization: token <token>` (Secret `token`, else `password`).

use gitops_api::conditions::reasons;
use gitops_runtime::{FluxEvent, Severity};
use reqwest::Url;
use serde_json::{Value, json};

use super::commit_status::{Status, api_url};

/// The REST API root of a Gitea base URL.
pub fn api_base(base: &Url) -> Url {
    api_url(base, &["api", "v1"], &[])
}

/// `GET` URL listing the commit's statuses (newest first).
pub fn list_url(api: &Url, owner: &str, repo: &str, sha: &str) -> Url {
    api_url(
        api,
        &["repos", owner, repo, "commits", sha, "statuses"],
        &[("page", "1"), ("limit", "50")],
    )
}

/// `POST` URL creating a status on the commit.
pub fn create_url(api: &Url, owner: &str, repo: &str, sha: &str) -> Url {
    api_url(api, &["repos", owner, repo, "statuses", sha], &[])
}

/// `pending` for `Progressing`, else `success` (info) or `failure` (error).
pub fn state(event: &FluxEvent) -> &'static str {
    if event.reason == reasons::PROGRESSING {
        "pending"
    } else if event.severity == Severity::Error {
        "failure"
    } else {
        "success"
    }
}

/// The status to create.
pub(crate) fn payload(status: &Status) -> Value {
    json!({
        "state": status.state,
        "target_url": "",
        "description": status.description,
        "context": status.context,
    })
}

/// Whether the listed statuses already end with ours (see [`super::commit_status::latest_is_same`]).
pub(crate) fn is_duplicate(listed: &[Value], ours: &Status) -> bool {
    // Gitea lists the state as `status` (it takes `state` when creating); accept both.
    let normalized: Vec<Value> = listed
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.get("state").is_none()
                && let Some(v) = s.get("status").cloned()
            {
                s["state"] = v;
            }
            s
        })
        .collect();
    super::commit_status::latest_is_same(&normalized, ours, "context")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::{error_event, event};

    #[test]
    fn urls_follow_the_gitea_api() {
        let api = api_base(&Url::parse("https://gitea.example.com:3000").expect("url"));
        assert_eq!(api.as_str(), "https://gitea.example.com:3000/api/v1");
        assert_eq!(
            list_url(&api, "org", "app", "abc").as_str(),
            "https://gitea.example.com:3000/api/v1/repos/org/app/commits/abc/statuses?page=1&limit=50"
        );
        assert_eq!(
            create_url(&api, "org", "app", "abc").as_str(),
            "https://gitea.example.com:3000/api/v1/repos/org/app/statuses/abc"
        );
    }

    #[test]
    fn progressing_is_pending_and_payload_has_gitea_fields() {
        let mut ev = event(&[]);
        assert_eq!(state(&ev), "success");
        assert_eq!(state(&error_event()), "failure");
        ev.reason = "Progressing".into();
        assert_eq!(state(&ev), "pending");
        let s = Status {
            state: "pending",
            context: "kluctldeployment/podinfo/0c9c2e41".into(),
            description: "progressing".into(),
        };
        assert_eq!(
            payload(&s),
            json!({"state": "pending", "target_url": "", "description": "progressing",
                   "context": "kluctldeployment/podinfo/0c9c2e41"})
        );
        assert!(is_duplicate(
            &[
                json!({"context": "kluctldeployment/podinfo/0c9c2e41", "status": "pending",
                     "description": "progressing"})
            ],
            &s
        ));
    }
}
