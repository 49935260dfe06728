//! Which stored results to list and which to delete, without a client: Kluctl's project
//! filter, its newest-first order of summaries, and the "keep the newest N per project and
//! target" choice applied after every write.
//!
//! ```text
//! listed summaries ─► project filter ─► newest first ─► same target key? ─► 1..=keep stay
//!                                                                          keep+1.. expire
//! ```

use std::cmp::{Ordering, Reverse};

use gitops_api::kluctl::results::ProjectKey;

use super::ValidateResultSummary;
use crate::result::CommandResultSummary;

/// Kluctl's project filter: `None` matches everything; otherwise a non-empty repository key
/// and a non-empty sub-directory of the filter must each be equal. (So a filter of a project
/// outside Git, empty repository key and sub-directory, matches every project, as in Kluctl.)
pub fn project_matches(key: &ProjectKey, filter: Option<&ProjectKey>) -> bool {
    let Some(f) = filter else { return true };
    (f.repo_key.is_empty() || key.repo_key == f.repo_key)
        && (f.sub_dir.is_empty() || key.sub_dir == f.sub_dir)
}

/// Kluctl's order of command results: newest start time first, then newest end time, then
/// command name and id ascending. A result without times sorts last (Go's zero time).
pub fn command_order(a: &CommandResultSummary, b: &CommandResultSummary) -> Ordering {
    Reverse(a.command.start_time)
        .cmp(&Reverse(b.command.start_time))
        .then_with(|| Reverse(a.command.end_time).cmp(&Reverse(b.command.end_time)))
        .then_with(|| a.command.command.cmp(&b.command.command))
        .then_with(|| a.id.cmp(&b.id))
}

/// Kluctl's order of validate results: newest start time, then newest end time, then id.
pub fn validate_order(a: &ValidateResultSummary, b: &ValidateResultSummary) -> Ordering {
    let start = |s: &ValidateResultSummary| s.start_time.as_ref().map(|t| t.0);
    let end = |s: &ValidateResultSummary| s.end_time.as_ref().map(|t| t.0);
    Reverse(start(a))
        .cmp(&Reverse(start(b)))
        .then_with(|| Reverse(end(a)).cmp(&Reverse(end(b))))
        .then_with(|| a.id.cmp(&b.id))
}

/// The entries to delete: of the entries `in_scope` (same project and target), in the
/// given newest-first order, all after the first `keep`. Entries out of scope never expire.
pub fn beyond_keep<T>(sorted: &[T], keep: usize, in_scope: impl Fn(&T) -> bool) -> Vec<&T> {
    sorted.iter().filter(|e| in_scope(e)).skip(keep).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::kluctl::results::TargetKey;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn cmd(id: &str, start: Option<&str>, target: &str) -> CommandResultSummary {
        let mut s = CommandResultSummary {
            id: id.into(),
            ..CommandResultSummary::default()
        };
        s.command.start_time = start.map(ts);
        s.target_key = TargetKey {
            target_name: target.into(),
            cluster_id: "c".into(),
            discriminator: String::new(),
        };
        s
    }

    fn pk(repo: &str, sub_dir: &str) -> ProjectKey {
        ProjectKey {
            repo_key: repo.into(),
            sub_dir: sub_dir.into(),
        }
    }

    #[test]
    fn project_filter_ignores_empty_fields_like_kluctl() {
        let key = pk("git://h/a", "sub");
        assert!(project_matches(&key, None));
        assert!(project_matches(&key, Some(&pk("git://h/a", "sub"))));
        assert!(project_matches(&key, Some(&pk("git://h/a", ""))));
        assert!(project_matches(&key, Some(&pk("", ""))));
        assert!(!project_matches(&key, Some(&pk("git://h/b", "sub"))));
        assert!(!project_matches(&key, Some(&pk("git://h/a", "other"))));
        assert!(!project_matches(
            &pk("git://h/a", ""),
            Some(&pk("git://h/a", "sub"))
        ));
    }

    #[test]
    fn command_summaries_sort_newest_first_then_by_end_command_and_id() {
        let mut v = [
            cmd("old", Some("2025-01-01T00:00:00Z"), "t"),
            cmd("none", None, "t"),
            cmd("new-b", Some("2025-01-03T00:00:00Z"), "t"),
            cmd("new-a", Some("2025-01-03T00:00:00Z"), "t"),
            cmd("mid", Some("2025-01-02T00:00:00Z"), "t"),
        ];
        v[2].command.end_time = Some(ts("2025-01-03T00:01:00Z"));
        v[3].command.end_time = Some(ts("2025-01-03T00:01:00Z"));
        v[3].command.command = "deploy".into();
        v[2].command.command = "delete".into();
        v.sort_by(command_order);
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["new-b", "new-a", "mid", "old", "none"]);
        // The later end time wins at equal start times.
        v[1].command.end_time = Some(ts("2025-01-03T00:02:00Z"));
        v.sort_by(command_order);
        assert_eq!(v[0].id, "new-a");
    }

    #[test]
    fn validate_summaries_sort_newest_first() {
        let at = |id: &str, t: &str| ValidateResultSummary {
            id: id.into(),
            start_time: Some(Time(ts(t))),
            ..ValidateResultSummary::default()
        };
        let mut v = [
            at("a", "2025-01-01T00:00:00Z"),
            ValidateResultSummary {
                id: "z".into(),
                ..ValidateResultSummary::default()
            },
            at("b", "2025-01-02T00:00:00Z"),
        ];
        v.sort_by(validate_order);
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "z"]);
    }

    #[test]
    fn retention_keeps_the_newest_per_target_and_never_touches_others() {
        let mut v: Vec<CommandResultSummary> = (0..7)
            .map(|i| {
                cmd(
                    &format!("p{i}"),
                    Some(&format!("2025-01-0{}T00:00:00Z", i + 1)),
                    "prod",
                )
            })
            .collect();
        v.push(cmd("s0", Some("2025-01-01T00:00:00Z"), "staging"));
        v.push(cmd("s1", Some("2025-01-09T00:00:00Z"), "staging"));
        v.sort_by(command_order);
        let prod = TargetKey {
            target_name: "prod".into(),
            cluster_id: "c".into(),
            discriminator: String::new(),
        };
        let expired: Vec<&str> = beyond_keep(&v, 5, |s| s.target_key == prod)
            .into_iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(expired, ["p1", "p0"]);
        assert!(beyond_keep(&v, 7, |s| s.target_key == prod).is_empty());
        // keep 0 expires all of them, the newest included (Kluctl's arithmetic).
        assert_eq!(beyond_keep(&v, 0, |s| s.target_key == prod).len(), 7);
    }
}
