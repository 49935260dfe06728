//! What the commit-status providers (`github`, `gitea`, `gitlab`) share: the repository an
//! address names, the commit an event is about, the status id and the description.
//!
//! ```text
//!  address  https://github.com/org/app(.git) | ssh://git@host/org/app | git@host:org/app
//!           ─► RepoAddress { base: https://host, id: "org/app" }
//!  event    metadata commit → originRevision → revision ("main@sha1:<hex>", "main/<hex>", "<hex>")
//!           ─► commit SHA (40 or 64 hex digits)
//!  status   id = lowercase "<kind>/<name>/<provider UID before the first '-'>"
//!           description = reason split on camelCase, lowercased ("ReconciliationSucceeded"
//!           ─► "reconciliation succeeded")
//! ```
//!
//! The id is Flux's default, so a repository that got statuses from Flux's notification-controller
//! gets them updated, not duplicated, once this dispatcher takes over with the same Provider.

use gitops_api::revision::extract_hash;
use gitops_runtime::FluxEvent;
use reqwest::Url;

/// The repository a commit-status Provider's address names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RepoAddress {
    /// `scheme://host[:port]` of the forge (ssh addresses become `https://host`).
    pub base: Url,
    /// The path without leading `/` and trailing `.git`: `owner/repo`, or a GitLab project path.
    pub id: String,
}

/// Parses a forge address: an `http(s)://` or `ssh://` URL or the scp-like `user@host:path`.
/// `None` when there is no host or no path.
pub(crate) fn parse_repo_address(address: &str) -> Option<RepoAddress> {
    let address = address.trim();
    let (scheme, host, port, path) = if address.contains("://") {
        let url = Url::parse(address).ok()?;
        let host = url.host_str()?.to_string();
        match url.scheme() {
            // The ssh port says nothing about the forge's https port.
            "ssh" => ("https".to_string(), host, None, url.path().to_string()),
            "http" | "https" => (url.scheme().to_string(), host, url.port(), url.path().to_string()),
            _ => return None,
        }
    } else {
        // scp-like: [user@]host:path
        let (authority, path) = address.split_once(':')?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        ("https".to_string(), host.to_string(), None, path.to_string())
    };
    if host.is_empty() {
        return None;
    }
    let id = path.trim_start_matches('/');
    let id = id.strip_suffix(".git").unwrap_or(id).trim_end_matches('/');
    if id.is_empty() {
        return None;
    }
    let base = match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    };
    Some(RepoAddress {
        base: Url::parse(&base).ok()?,
        id: id.to_string(),
    })
}

/// The revision an event reports: metadata `commit`, else `originRevision`, else `revision`.
pub(crate) fn event_revision(event: &FluxEvent) -> Option<&str> {
    ["commit", "originRevision", "revision"]
        .iter()
        .find_map(|k| event.metadata.get(*k))
        .map(String::as_str)
}

/// The commit SHA of the event's revision, or why there is none.
pub(crate) fn commit_sha(event: &FluxEvent) -> Result<String, String> {
    let revision = event_revision(event).ok_or_else(|| {
        "missing revision metadata (none of 'commit', 'originRevision', 'revision')".to_string()
    })?;
    let hash = extract_hash(revision);
    let is_sha = matches!(hash.len(), 40 | 64) && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if is_sha {
        Ok(hash)
    } else {
        Err(format!(
            "failed to extract commit hash from '{revision}' revision"
        ))
    }
}

/// Flux's default commit status id: lowercase `<kind>/<name>/<UID up to its first '-'>`.
pub(crate) fn status_id(event: &FluxEvent, provider_uid: &str) -> String {
    let uid = provider_uid.split('-').next().unwrap_or_default();
    let o = &event.involved_object;
    format!(
        "{}/{}/{uid}",
        o.kind.as_deref().unwrap_or_default(),
        o.name.as_deref().unwrap_or_default()
    )
    .to_lowercase()
}

/// The status description: the reason split into words on camelCase, lowercased.
pub(crate) fn description(reason: &str) -> String {
    split_camel_case(reason).join(" ").to_lowercase()
}

/// Splits `s` into runs of lowercase letters, uppercase letters, digits and other characters;
/// the last capital of an uppercase run starts the lowercase word after it, so
/// `HTTPServerError` gives `HTTP`, `Server`, `Error` (Flux's `splitCamelcase`).
pub(crate) fn split_camel_case(s: &str) -> Vec<String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Digit,
        Other,
    }
    let class = |c: char| {
        if c.is_lowercase() {
            Class::Lower
        } else if c.is_uppercase() {
            Class::Upper
        } else if c.is_numeric() {
            Class::Digit
        } else {
            Class::Other
        }
    };
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last = None;
    for c in s.chars() {
        let k = class(c);
        match runs.last_mut() {
            Some(run) if last == Some(k) => run.push(c),
            _ => runs.push(vec![c]),
        }
        last = Some(k);
    }
    for i in 0..runs.len().saturating_sub(1) {
        let upper_then_lower = runs[i].first().is_some_and(|c| c.is_uppercase())
            && runs[i + 1].first().is_some_and(|c| c.is_lowercase());
        if upper_then_lower && let Some(moved) = runs[i].pop() {
            runs[i + 1].insert(0, moved);
        }
    }
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.into_iter().collect())
        .collect()
}

/// One commit status as the forges list and create them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    /// Forge state, e.g. `success`, `failure`, `failed`, `pending`.
    pub state: &'static str,
    /// The status id (GitHub/Gitea `context`, GitLab `name`).
    pub context: String,
    /// The description.
    pub description: String,
}

/// GitHub's and Gitea's dedup rule: the newest listed status with our context decides; it is a
/// duplicate when its state and description equal ours. Entries missing a field are passed over.
pub(crate) fn latest_is_same(listed: &[serde_json::Value], ours: &Status, context_key: &str) -> bool {
    let field =
        |s: &serde_json::Value, k: &str| s.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
    for s in listed {
        let (Some(context), Some(state), Some(description)) =
            (field(s, context_key), field(s, "state"), field(s, "description"))
        else {
            continue;
        };
        if context.is_empty() || state.is_empty() || description.is_empty() {
            continue;
        }
        if context == ours.context {
            return state == ours.state && description == ours.description;
        }
    }
    false
}

/// `api` with `segments` appended (each percent-encoded as one segment, so GitLab's
/// `group/project` becomes `group%2Fproject`) and `query` added.
pub(crate) fn api_url(api: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = api.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::event;

    #[test]
    fn addresses_in_every_form_name_host_and_repository() {
        let cases = [
            ("https://github.com/org/app", "https://github.com/", "org/app"),
            ("https://github.com/org/app.git", "https://github.com/", "org/app"),
            (
                "http://gitea.local:3000/org/app/",
                "http://gitea.local:3000/",
                "org/app",
            ),
            (
                "ssh://git@github.com:22/org/app.git",
                "https://github.com/",
                "org/app",
            ),
            (
                "git@gitlab.com:group/sub/app.git",
                "https://gitlab.com/",
                "group/sub/app",
            ),
            ("https://gitlab.com/1234", "https://gitlab.com/", "1234"),
        ];
        for (address, base, id) in cases {
            let parsed = parse_repo_address(address).unwrap_or_else(|| panic!("{address}"));
            assert_eq!(
                (parsed.base.as_str(), parsed.id.as_str()),
                (base, id),
                "{address}"
            );
        }
        for bad in [
            "https://github.com",
            "https://github.com/",
            "not an address",
            "ftp://h/o/r",
            "",
        ] {
            assert_eq!(parse_repo_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_commit_comes_from_commit_then_origin_revision_then_revision() {
        let sha = "a1afe267b54f38b46b487f6e938a6fd508278c07";
        let other = "0000000000000000000000000000000000000001";
        let revisions = [
            format!("main@sha1:{sha}"),
            format!("environment/dev@sha1:{sha}"),
            format!("sha1:{sha}"),
            format!("main/{sha}"),
            format!("environment/dev/{sha}"),
            sha.to_string(),
        ];
        for rev in &revisions {
            let ev = event(&[("revision", rev)]);
            assert_eq!(commit_sha(&ev).as_deref(), Ok(sha), "{rev}");
        }
        let ev = event(&[
            ("revision", &format!("main@sha1:{other}")),
            ("originRevision", sha),
        ]);
        assert_eq!(commit_sha(&ev).as_deref(), Ok(sha));
        let ev = event(&[("originRevision", other), ("commit", sha)]);
        assert_eq!(commit_sha(&ev).as_deref(), Ok(sha));
        let ev = event(&[("revision", "master")]);
        assert_eq!(
            commit_sha(&ev),
            Err("failed to extract commit hash from 'master' revision".to_string())
        );
        assert!(commit_sha(&event(&[])).unwrap_err().contains("missing revision"));
    }

    #[test]
    fn status_id_is_kind_name_and_the_first_uid_segment_lowercased() {
        let ev = event(&[]);
        assert_eq!(
            status_id(&ev, "0c9c2e41-d2f9-4f9b-9c41-2d4a7f8c9b1e"),
            "kluctldeployment/podinfo/0c9c2e41"
        );
    }

    #[test]
    fn descriptions_split_camel_case() {
        let cases = [
            ("ReconciliationSucceeded", "reconciliation succeeded"),
            ("HealthCheckFailed", "health check failed"),
            ("ArtifactUpToDate", "artifact up to date"),
            ("HTTPServerError", "http server error"),
            ("Progressing", "progressing"),
            ("info", "info"),
            ("Build2Failed", "build 2 failed"),
            ("", ""),
        ];
        for (reason, want) in cases {
            assert_eq!(description(reason), want, "{reason}");
        }
    }

    #[test]
    fn api_urls_encode_each_segment() {
        let api = Url::parse("https://gitlab.example.com/api/v4").expect("url");
        assert_eq!(
            api_url(
                &api,
                &["projects", "group/sub/app", "statuses", "abc"],
                &[("name", "a/b")]
            )
            .as_str(),
            "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fapp/statuses/abc?name=a%2Fb"
        );
        let api = Url::parse("https://api.github.com/").expect("url");
        assert_eq!(
            api_url(&api, &["repos", "o", "r"], &[]).as_str(),
            "https://api.github.com/repos/o/r"
        );
    }
}
