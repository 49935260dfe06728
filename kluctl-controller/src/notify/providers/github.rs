//! `github`: a commit status on the commit the event reports.
//!
//! ```text
//!  GET  <api>/repos/<owner>/<repo>/commits/<sha>/statuses?per_page=50
//!       newest status with our context has the same state and description ─► skipped
//!  POST <api>/repos/<owner>/<repo>/statuses/<sha>
//!       {"state": "success" | "failure", "context": <status id>, "description": <reason words>}
//! ```
//!
//! `<api>` is `https://api.github.com/` for `github.com`, `<base>/api/v3/` for GitHub Enterprise.
//! Auth: `Authorization: Bearer <token>` (Secret `token`, else `password`). `Progressing` events
//! are skipped: a status per progress step would flap the commit's checks.

use gitops_runtime::Severity;
use reqwest::Url;
use serde_json::{Value, json};

use super::commit_status::{Status, api_url};

/// The REST API root for a forge base URL (`https://github.com` or a GitHub Enterprise host).
pub fn api_base(base: &Url) -> Url {
    let host = base.host_str().unwrap_or_default();
    if host == "github.com" {
        return Url::parse("https://api.github.com/").expect("static URL");
    }
    // GitHub Enterprise serves the API under /api/v3/, unless the address already is an API host.
    if host.starts_with("api.") || host.contains(".api.") {
        return base.clone();
    }
    base.join("api/v3/").unwrap_or_else(|_| base.clone())
}

/// `GET` URL listing the commit's statuses (newest first).
pub fn list_url(api: &Url, owner: &str, repo: &str, sha: &str) -> Url {
    api_url(
        api,
        &["repos", owner, repo, "commits", sha, "statuses"],
        &[("per_page", "50")],
    )
}

/// `POST` URL creating a status on the commit.
pub fn create_url(api: &Url, owner: &str, repo: &str, sha: &str) -> Url {
    api_url(api, &["repos", owner, repo, "statuses", sha], &[])
}

/// `success` for info, `failure` for error events.
pub fn state(severity: Severity) -> &'static str {
    if severity == Severity::Error {
        "failure"
    } else {
        "success"
    }
}

/// The status to create.
pub(crate) fn payload(status: &Status) -> Value {
    json!({"state": status.state, "context": status.context, "description": status.description})
}

/// Whether the listed statuses already end with ours (see [`super::commit_status::latest_is_same`]).
pub(crate) fn is_duplicate(listed: &[Value], ours: &Status) -> bool {
    super::commit_status::latest_is_same(listed, ours, "context")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn api_base_is_api_github_com_or_the_enterprise_v3_root() {
        assert_eq!(
            api_base(&url("https://github.com")).as_str(),
            "https://api.github.com/"
        );
        assert_eq!(
            api_base(&url("https://ghe.example.com")).as_str(),
            "https://ghe.example.com/api/v3/"
        );
        assert_eq!(
            api_base(&url("http://127.0.0.1:8080")).as_str(),
            "http://127.0.0.1:8080/api/v3/"
        );
    }

    #[test]
    fn urls_and_payload_follow_the_statuses_api() {
        let api = url("https://api.github.com/");
        assert_eq!(
            list_url(&api, "org", "app", "abc").as_str(),
            "https://api.github.com/repos/org/app/commits/abc/statuses?per_page=50"
        );
        assert_eq!(
            create_url(&api, "org", "app", "abc").as_str(),
            "https://api.github.com/repos/org/app/statuses/abc"
        );
        let s = Status {
            state: state(Severity::Info),
            context: "kluctldeployment/app/0c9c2e41".into(),
            description: "reconciliation succeeded".into(),
        };
        assert_eq!(
            payload(&s),
            json!({"state": "success", "context": "kluctldeployment/app/0c9c2e41",
                   "description": "reconciliation succeeded"})
        );
        assert_eq!(state(Severity::Error), "failure");
    }

    #[test]
    fn only_the_newest_status_of_our_context_counts_for_dedup() {
        let ours = Status {
            state: "success",
            context: "c".into(),
            description: "reconciliation succeeded".into(),
        };
        let st = |context: &str, state: &str, d: &str| json!({"context": context, "state": state, "description": d});
        assert!(is_duplicate(
            &[
                st("other", "failure", "x"),
                st("c", "success", "reconciliation succeeded")
            ],
            &ours
        ));
        // Newest first: a newer failure of our context means ours is news.
        assert!(!is_duplicate(
            &[
                st("c", "failure", "health check failed"),
                st("c", "success", "reconciliation succeeded")
            ],
            &ours
        ));
        assert!(!is_duplicate(
            &[json!({"context": "c", "state": "success"})],
            &ours
        ));
        assert!(!is_duplicate(&[], &ours));
    }
}
