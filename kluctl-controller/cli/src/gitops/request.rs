//! The manual request protocol, the CLI's side: set `kluctl.io/request-<x>` to a JSON
//! `{"requestValue": <now>, "overridesPatch": {...}}`, then poll the object every second until
//! the controller reports the request finished in `status.<x>RequestResult`.
//!
//! ```text
//!             annotation set (merge patch, field manager kluctl)
//!                  │
//!   Pending ───────┴──► Running { reconcileId }  ──► Finished (endTime set: resultId, commandError)
//!     │   requestValue of status.<x>RequestResult       │
//!     │   is the one sent                               └─ controller log lines of the reconcile
//!     └──► Superseded: the annotation now holds another      id shown on stderr meanwhile
//!          request (someone asked again before the controller picked ours up)
//! ```
//!
//! [`progress`] is the state machine (pure); [`wait`] polls it with a timeout.

use std::time::Duration;

use anyhow::Context as _;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::logs::{LogFilter, LogSource};
use super::select::key_of;
use crate::report::Hinted;
use gitops_api::constants::KLUCTL_FIELD_MANAGER;
use gitops_api::kluctl::v1beta1::{KluctlDeployment, ManualRequest, ManualRequestResult};

/// How often the object is read while waiting (Kluctl's CLI: every second).
const POLL: Duration = Duration::from_secs(1);

pub(crate) use gitops_api::kluctl::request::{RequestKind, annotation_value};

/// A new request value: now, RFC 3339 with nanoseconds (Kluctl's `RFC3339Nano`).
pub(crate) fn request_value_now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Where a request stands, as the object shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Progress {
    /// Not picked up yet.
    Pending,
    /// The annotation holds another request value: ours will not be handled.
    Superseded(String),
    /// The controller is handling it.
    Running {
        /// The reconciliation handling it.
        reconcile_id: String,
    },
    /// Done (`endTime` set).
    Finished(ManualRequestResult),
}

/// Where the request `sent` of `kind` stands on `kd`.
pub(crate) fn progress(kd: &KluctlDeployment, kind: RequestKind, sent: &str) -> Progress {
    if let Some(r) = kd.status.as_ref().and_then(|s| kind.result(s))
        && r.request.request_value == sent
    {
        return match r.end_time {
            Some(_) => Progress::Finished(r.clone()),
            None => Progress::Running {
                reconcile_id: r.reconcile_id.clone(),
            },
        };
    }
    let annotation = kd
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(kind.annotation()));
    match annotation {
        // Absent: the controller removed it and has not written the status yet (or never will,
        // if another request replaced ours and was handled; the timeout covers that).
        None => Progress::Pending,
        Some(raw) => {
            let value =
                serde_json::from_str::<ManualRequest>(raw).map_or_else(|_| raw.clone(), |r| r.request_value);
            if value == sent {
                Progress::Pending
            } else {
                Progress::Superseded(value)
            }
        }
    }
}

/// Sets the request annotation of `kind` on `kd`; returns the request value sent.
///
/// # Errors
/// The patch failed.
pub(crate) async fn send(
    api: &Api<KluctlDeployment>,
    kd: &KluctlDeployment,
    kind: RequestKind,
    overrides: &Map<String, Value>,
) -> anyhow::Result<String> {
    let value = request_value_now();
    let patch =
        json!({"metadata": {"annotations": {kind.annotation(): annotation_value(&value, overrides)}}});
    api.patch(
        kd.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams {
            field_manager: Some(KLUCTL_FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .with_context(|| {
        format!(
            "failed to request a {} of KluctlDeployment '{}'",
            kind.name(),
            key_of(kd)
        )
    })?;
    Ok(value)
}

/// What [`wait`] shows of the controller's log while the request runs.
pub(crate) struct WaitLogs<'a> {
    /// Where the lines come from.
    pub source: &'a LogSource,
    /// `--log-since`.
    pub since: Duration,
}

/// Polls until the request `sent` is finished and returns its result. Once it runs, the
/// controller's log lines of its reconciliation go to stderr (a log source that cannot be read
/// is a warning, not a failure).
///
/// # Errors
/// A failed read (the object deleted, ...), a superseded request, or `timeout` (zero: none)
/// passed, with a hint depending on whether the controller picked the request up.
pub(crate) async fn wait(
    api: &Api<KluctlDeployment>,
    kd: &KluctlDeployment,
    kind: RequestKind,
    sent: &str,
    timeout: Duration,
    logs: Option<WaitLogs<'_>>,
) -> anyhow::Result<ManualRequestResult> {
    let key = key_of(kd);
    let name = kd.metadata.name.clone().unwrap_or_default();
    let namespace = kd.metadata.namespace.clone().unwrap_or_default();
    let deadline = (!timeout.is_zero()).then(|| tokio::time::Instant::now() + timeout);
    let mut tick = tokio::time::interval(POLL);
    let mut log_lines: Option<(tokio::sync::mpsc::Receiver<String>, LogFilter)> = None;
    let mut last = Progress::Pending;
    eprintln!(
        "Waiting for the controller to pick up the {} request of {key}",
        kind.name()
    );
    loop {
        let line = tokio::select! {
            _ = tick.tick() => None,
            Some(line) = async { log_lines.as_mut()?.0.recv().await } => Some(line),
        };
        if let Some(line) = line {
            if let Some((_, filter)) = &log_lines
                && let Some(l) = filter.render(&line)
            {
                eprintln!("{l}");
            }
            continue;
        }
        let current = api.get(&name).await.with_context(|| {
            format!(
                "failed to read KluctlDeployment '{key}' while waiting for its {} request",
                kind.name()
            )
        })?;
        let now = progress(&current, kind, sent);
        match &now {
            Progress::Finished(result) => return Ok(result.clone()),
            Progress::Superseded(other) => anyhow::bail!(
                "the {} request of '{key}' was replaced by another request ('{other}') before the controller picked it up",
                kind.name()
            ),
            Progress::Running { reconcile_id } if last == Progress::Pending => {
                eprintln!(
                    "The controller started the {} request (reconcile id {reconcile_id})",
                    kind.name()
                );
                if let Some(logs) = &logs {
                    match super::logs::open(logs.source, logs.since, true).await {
                        Ok(rx) => {
                            let filter = LogFilter {
                                objects: Some(vec![(namespace.clone(), name.clone())]),
                                reconcile_id: Some(reconcile_id.clone()),
                                ..LogFilter::default()
                            };
                            log_lines = Some((rx, filter));
                        }
                        Err(e) => eprintln!("warning: not showing the controller's log: {e:#}"),
                    }
                }
            }
            _ => {}
        }
        last = now;
        if let Some(deadline) = deadline
            && tokio::time::Instant::now() >= deadline
        {
            return Err(timed_out(kind, &key, &last, timeout));
        }
    }
}

fn timed_out(kind: RequestKind, key: &str, last: &Progress, timeout: Duration) -> anyhow::Error {
    let after = format_duration(timeout);
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    match last {
        Progress::Running { reconcile_id } => Hinted::new(
            anyhow::anyhow!(
                "timed out after {after} waiting for the controller to finish the {} request of '{key}' (reconcile id {reconcile_id})",
                kind.name()
            ),
            format!(
                "it is still running: follow it with 'kluctl gitops logs -n {ns} --name {name} --reconcile-id {reconcile_id} -f', or pass a longer --timeout"
            ),
        )
        .into(),
        _ => Hinted::new(
            anyhow::anyhow!(
                "timed out after {after}: the controller did not pick up the {} request of '{key}'",
                kind.name()
            ),
            "check that the kluctl-controller runs and watches this namespace ('kluctl gitops logs --all'), or pass a longer --timeout",
        )
        .into(),
    }
}

/// A duration as Go prints short ones: `10m`, `90s`, `1h`.
pub(crate) fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kd(annotation: Option<&str>, deploy_result: Option<Value>) -> KluctlDeployment {
        let mut o = json!({
            "apiVersion": "gitops.kluctl.io/v1beta1",
            "kind": "KluctlDeployment",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"interval": "5m", "source": {"git": {"url": "https://h/r"}}},
        });
        if let Some(a) = annotation {
            o["metadata"]["annotations"] = json!({"kluctl.io/request-deploy": a});
        }
        if let Some(r) = deploy_result {
            o["status"] = json!({"deployRequestResult": r});
        }
        serde_json::from_value(o).unwrap()
    }

    const SENT: &str = "2024-06-01T10:00:00.123456789Z";

    #[test]
    fn the_annotation_holds_the_request_value_and_only_a_nonempty_patch() {
        let plain = annotation_value(SENT, &Map::new());
        assert_eq!(plain, format!(r#"{{"requestValue":"{SENT}"}}"#));
        let mut o = Map::new();
        o.insert("dryRun".into(), json!(true));
        let v: Value = serde_json::from_str(&annotation_value(SENT, &o)).unwrap();
        assert_eq!(
            v,
            json!({"requestValue": SENT, "overridesPatch": {"spec": {"dryRun": true}}})
        );
        let now = request_value_now();
        assert!(
            now.parse::<jiff::Timestamp>().is_ok() && now.ends_with('Z'),
            "{now}"
        );
    }

    #[test]
    fn the_wait_goes_from_pending_over_running_to_finished_with_the_result_id() {
        let ours = annotation_value(SENT, &Map::new());
        assert_eq!(
            progress(&kd(Some(&ours), None), RequestKind::Deploy, SENT),
            Progress::Pending
        );
        // An older request's result is not ours.
        let old = json!({"request": {"requestValue": "old"}, "startTime": "2024-06-01T09:00:00Z",
            "endTime": "2024-06-01T09:01:00Z", "reconcileId": "r0", "resultId": "old-result"});
        assert_eq!(
            progress(&kd(Some(&ours), Some(old.clone())), RequestKind::Deploy, SENT),
            Progress::Pending
        );
        // The controller removed the annotation but has not written the status yet.
        assert_eq!(
            progress(&kd(None, Some(old)), RequestKind::Deploy, SENT),
            Progress::Pending
        );
        let running = json!({"request": {"requestValue": SENT}, "startTime": "2024-06-01T10:00:01Z", "reconcileId": "r1"});
        assert_eq!(
            progress(&kd(None, Some(running)), RequestKind::Deploy, SENT),
            Progress::Running {
                reconcile_id: "r1".into()
            }
        );
        let done = json!({"request": {"requestValue": SENT}, "startTime": "2024-06-01T10:00:01Z",
            "endTime": "2024-06-01T10:00:09Z", "reconcileId": "r1", "resultId": "res-1"});
        let Progress::Finished(r) = progress(&kd(None, Some(done.clone())), RequestKind::Deploy, SENT) else {
            panic!("not finished");
        };
        assert_eq!((r.result_id.as_str(), r.command_error.as_str()), ("res-1", ""));
        assert_eq!(
            progress(&kd(None, Some(done)), RequestKind::Diff, SENT),
            Progress::Pending,
            "another request's status field"
        );
    }

    #[test]
    fn another_request_in_the_annotation_supersedes_ours() {
        let other = annotation_value("2024-06-01T10:00:05Z", &Map::new());
        assert_eq!(
            progress(&kd(Some(&other), None), RequestKind::Deploy, SENT),
            Progress::Superseded("2024-06-01T10:00:05Z".into())
        );
        assert_eq!(
            progress(&kd(Some("garbage"), None), RequestKind::Deploy, SENT),
            Progress::Superseded("garbage".into())
        );
    }

    #[test]
    fn durations_print_like_go_flags() {
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }
}
