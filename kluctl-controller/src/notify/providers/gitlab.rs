//! `gitlab`: a commit status (a "external" pipeline job) on the commit the event reports.
//!
//! ```text
//!  GET  <base>/api/v4/projects/<id>/repository/commits/<sha>/statuses?name=<status id>
//!       any listed status with our sha, name, state and description ─► skipped
//!  POST <base>/api/v4/projects/<id>/statuses/<sha>
//!       {"state": "success" | "failed", "name": <status id>, "description": <reason words>}
//! ```
//!
//! `<id>` is the address path: a numeric project id (`https://gitlab.com/1234`) or the project
//! path (`group/sub/project`, sent percent-encoded as one segment). Auth: `PRIVATE-TOKEN`
//! (Secret `token`, else `password`). `Progressing` events are skipped.

use gitops_runtime::Severity;
use reqwest::Url;
use serde_json::{Value, json};

use super::commit_status::{Status, api_url};

/// The REST API root of a GitLab base URL.
pub fn api_base(base: &Url) -> Url {
    api_url(base, &["api", "v4"], &[])
}

/// `GET` URL listing the commit's statuses with our name.
pub fn list_url(api: &Url, project: &str, sha: &str, name: &str) -> Url {
    api_url(
        api,
        &["projects", project, "repository", "commits", sha, "statuses"],
        &[("name", name)],
    )
}

/// `POST` URL setting a status on the commit.
pub fn create_url(api: &Url, project: &str, sha: &str) -> Url {
    api_url(api, &["projects", project, "statuses", sha], &[])
}

/// `success` for info, `failed` for error events.
pub fn state(severity: Severity) -> &'static str {
    if severity == Severity::Error {
        "failed"
    } else {
        "success"
    }
}

/// The status to set.
pub(crate) fn payload(status: &Status) -> Value {
    json!({"state": status.state, "name": status.context, "description": status.description})
}

/// GitLab's dedup rule: any listed status for the same commit with the same name, state and
/// description (GitLab keeps one job per name and ref, so order does not matter).
pub(crate) fn is_duplicate(listed: &[Value], ours: &Status, sha: &str) -> bool {
    let field = |s: &Value, k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    listed.iter().any(|s| {
        field(s, "sha") == sha
            && field(s, "status") == ours.state
            && field(s, "description") == ours.description
            && field(s, "name") == ours.context
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_the_project_path_as_one_segment() {
        let api = api_base(&Url::parse("https://gitlab.com").expect("url"));
        assert_eq!(
            list_url(&api, "group/app", "abc", "kluctldeployment/podinfo/0c9c2e41").as_str(),
            "https://gitlab.com/api/v4/projects/group%2Fapp/repository/commits/abc/statuses\
             ?name=kluctldeployment%2Fpodinfo%2F0c9c2e41"
        );
        assert_eq!(
            create_url(&api, "1234", "abc").as_str(),
            "https://gitlab.com/api/v4/projects/1234/statuses/abc"
        );
    }

    #[test]
    fn payload_and_dedup_use_gitlab_names() {
        let s = Status {
            state: state(Severity::Error),
            context: "kluctldeployment/podinfo/0c9c2e41".into(),
            description: "health check failed".into(),
        };
        assert_eq!(
            payload(&s),
            json!({"state": "failed", "name": "kluctldeployment/podinfo/0c9c2e41",
                   "description": "health check failed"})
        );
        let listed = json!([{"sha": "abc", "status": "failed", "name": "kluctldeployment/podinfo/0c9c2e41",
                             "description": "health check failed"}]);
        let listed = listed.as_array().expect("array");
        assert!(is_duplicate(listed, &s, "abc"));
        assert!(!is_duplicate(listed, &s, "def"));
        assert_eq!(state(Severity::Info), "success");
    }
}
