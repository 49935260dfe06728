//! `kluctl events`: the Kubernetes Events (events.k8s.io/v1, what both controllers record) of
//! the sources, KluctlDeployments and notification objects, oldest first.

use std::collections::BTreeSet;

use anyhow::Context as _;
use futures::TryStreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::Resource as _;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt as _, watcher};

use super::connect_list;
use super::table::{self, MAX_MESSAGE, age, one_line};
use crate::flags::get::EventsCmd;

/// The kinds whose events are shown, with the names `--for` also takes for them.
const KINDS: &[(&str, &[&str])] = &[
    ("GitRepository", &["gitrepositories", "gitrepo", "git"]),
    ("Bucket", &["buckets"]),
    ("KluctlDeployment", &["kluctldeployments", "kd"]),
    ("Alert", &["alerts"]),
    ("Provider", &["providers"]),
    ("Receiver", &["receivers"]),
];

/// The kind `--for` names (case-insensitive kind, plural or short name).
pub(super) fn canonical_kind(name: &str) -> anyhow::Result<&'static str> {
    let lower = name.to_lowercase();
    KINDS
        .iter()
        .find(|(kind, aliases)| kind.to_lowercase() == lower || aliases.contains(&lower.as_str()))
        .map(|(kind, _)| *kind)
        .with_context(|| {
            let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            format!(
                "unknown kind '{name}' in --for: expected one of {}",
                known.join(", ")
            )
        })
}

/// Which events to show: of our kinds, and of one object with `--for`.
pub(super) struct Filter {
    pub kind: Option<&'static str>,
    pub name: Option<String>,
}

impl Filter {
    pub fn accepts(&self, e: &Event) -> bool {
        let Some(regarding) = &e.regarding else {
            return false;
        };
        let kind = regarding.kind.as_deref().unwrap_or_default();
        if !KINDS.iter().any(|(k, _)| *k == kind) {
            return false;
        }
        self.kind.is_none_or(|k| k == kind)
            && self
                .name
                .as_deref()
                .is_none_or(|n| regarding.name.as_deref() == Some(n))
    }
}

/// When the event was last seen: its series' last observation, else the deprecated last
/// timestamp, else the event time, else its creation.
pub(super) fn last_seen(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.meta().creation_timestamp.as_ref().map(|t| t.0))
}

/// The columns, with NAMESPACE first when listing all namespaces.
pub(super) fn headers(all_namespaces: bool) -> Vec<&'static str> {
    let mut h = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if all_namespaces {
        h.insert(0, "NAMESPACE");
    }
    h
}

/// The cells of one event.
pub(super) fn cells(e: &Event, all_namespaces: bool, now: Timestamp) -> Vec<String> {
    let regarding = e.regarding.clone().unwrap_or_default();
    let mut cells = vec![
        last_seen(e).map_or_else(|| "<unknown>".to_owned(), |t| age(now, t)),
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        format!(
            "{}/{}",
            regarding.kind.unwrap_or_default(),
            regarding.name.unwrap_or_default()
        ),
        one_line(e.note.as_deref().unwrap_or_default(), MAX_MESSAGE),
    ];
    if all_namespaces {
        cells.insert(0, e.meta().namespace.clone().unwrap_or_default());
    }
    cells
}

/// The events `filter` accepts, oldest first, as table rows.
pub(super) fn rows(
    events: &[Event],
    filter: &Filter,
    all_namespaces: bool,
    now: Timestamp,
) -> Vec<Vec<String>> {
    let mut shown: Vec<&Event> = events.iter().filter(|e| filter.accepts(e)).collect();
    shown.sort_by_key(|e| last_seen(e));
    shown.iter().map(|e| cells(e, all_namespaces, now)).collect()
}

pub(super) async fn run(cmd: &EventsCmd) -> anyhow::Result<()> {
    let filter = Filter {
        kind: cmd
            .for_object
            .as_ref()
            .map(|(k, _)| canonical_kind(k))
            .transpose()?,
        name: cmd.for_object.as_ref().map(|(_, n)| n.clone()),
    };
    let conn = connect_list(&cmd.list).await?;
    let all = conn.namespace.is_none();
    let api = conn.api::<Event>();
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("failed to list events.k8s.io/v1 Events: {e}"))?;
    let headers = headers(all);
    let rows = rows(&list.items, &filter, all, Timestamp::now());
    if rows.is_empty() && !cmd.watch {
        eprintln!(
            "no events found{}",
            super::deployments::where_(conn.namespace.as_deref())
        );
        return Ok(());
    }
    print!("{}", table::render(&headers, &rows));
    if !cmd.watch {
        return Ok(());
    }
    // Only events changed after the listing: the watch starts at the list's resourceVersion.
    let mut widths = table::widths(&headers, &rows);
    let seen: BTreeSet<(String, String)> = list
        .items
        .iter()
        .map(|e| {
            (
                e.meta().uid.clone().unwrap_or_default(),
                e.meta().resource_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    while let Some(e) = stream.try_next().await.context("failed to watch events")? {
        let key = (
            e.meta().uid.clone().unwrap_or_default(),
            e.meta().resource_version.clone().unwrap_or_default(),
        );
        if seen.contains(&key) || !filter.accepts(&e) {
            continue;
        }
        let row = cells(&e, all, Timestamp::now());
        for (w, c) in widths.iter_mut().zip(&row) {
            *w = (*w).max(c.chars().count());
        }
        println!("{}", table::render_row(&widths, &row));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, name: &str, reason: &str, at: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.{reason}"), "namespace": "ns"},
            "eventTime": at,
            "regarding": {"kind": kind, "name": name, "namespace": "ns"},
            "reason": reason,
            "type": "Normal",
            "note": format!("{reason} of {name}\nsecond line"),
            "reportingController": "c",
            "reportingInstance": "i",
            "action": "a",
        }))
        .unwrap()
    }

    #[test]
    fn only_our_kinds_are_shown_oldest_first_and_for_selects_one_object() {
        let events = vec![
            event(
                "KluctlDeployment",
                "app",
                "ReconciliationSucceeded",
                "2026-01-01T00:02:00.000000Z",
            ),
            event("Pod", "web", "Pulled", "2026-01-01T00:00:00.000000Z"),
            event(
                "GitRepository",
                "src",
                "NewArtifact",
                "2026-01-01T00:01:00.000000Z",
            ),
        ];
        let now: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let all = Filter {
            kind: None,
            name: None,
        };
        let rows = rows(&events, &all, false, now);
        assert_eq!(
            rows,
            [
                [
                    "4m",
                    "Normal",
                    "NewArtifact",
                    "GitRepository/src",
                    "NewArtifact of src second line"
                ],
                [
                    "3m",
                    "Normal",
                    "ReconciliationSucceeded",
                    "KluctlDeployment/app",
                    "ReconciliationSucceeded of app second line"
                ],
            ]
        );
        let one = Filter {
            kind: Some(canonical_kind("kd").unwrap()),
            name: Some("app".into()),
        };
        let only = super::rows(&events, &one, true, now);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0][0], "ns", "the NAMESPACE column with -A");
        assert_eq!(canonical_kind("gitrepository").unwrap(), "GitRepository");
        let e = canonical_kind("pod").unwrap_err().to_string();
        assert!(e.contains("unknown kind 'pod' in --for"), "{e}");
    }
}
