//! The kluctl-controller's log lines, read from outside the controller: `kluctl gitops logs`, the
//! lines a `kluctl gitops` request command shows while it waits, and the web UI's log panel all
//! read them through this module.
//!
//! ```text
//! LogSource::open ─► raw lines ─► LogFilter::render ─► "ts level msg" (or the raw line if not JSON)
//!   Pods:  pods labelled control-plane=kluctl-controller in a namespace, pods/log
//!          (sinceSeconds = since, follow)
//!   File:  the file a controller running as a local process writes with --log-file
//!          (every line; LogSource::not_before gives the filter its `since`; follow polls
//!          for appended lines, like tail -f)
//! ```
//!
//! The controller writes JSON lines with `level`, `ts`, `msg`, `name`, `namespace` and
//! `reconcileID` (plus other fields). Each is looked up at the top level, then under `fields`
//! and `span` (tracing-subscriber's JSON layout), so either layout filters the same way.
//!
//! Errors name what failed; what the user should do about it (which flag to pass) is the
//! caller's to say, as the flags are the caller's.

use std::io::{BufRead as _, Seek as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Label of the controller's pods.
pub const CONTROLLER_POD_SELECTOR: &str = "control-plane=kluctl-controller";

/// How often a followed log file is checked for appended lines.
const FILE_POLL: Duration = Duration::from_millis(250);

/// Which log lines to show, and how.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// `(namespace, name)` of the objects whose lines are shown; `None`: every line.
    pub objects: Option<Vec<(String, String)>>,
    /// Only lines of this reconciliation.
    pub reconcile_id: Option<String>,
    /// Drop lines with an older `ts` (a file source's `since`, see [`LogSource::not_before`]).
    pub not_before: Option<jiff::Timestamp>,
    /// Prefix each line with its object (when lines of several objects are shown).
    pub show_object: bool,
}

impl LogFilter {
    /// The human line for `raw`, or `None` when the filter drops it. A line that is not a JSON
    /// object (a panic, a startup message, a reader's `error: ...` line) passes through
    /// unchanged.
    ///
    /// ```
    /// use kluctl_engine::controller_logs::LogFilter;
    /// let f = LogFilter {
    ///     objects: Some(vec![("ns".into(), "app".into())]),
    ///     ..LogFilter::default()
    /// };
    /// let raw = r#"{"level":"info","ts":"2024-06-01T10:00:00Z","msg":"deployed","namespace":"ns","name":"app"}"#;
    /// assert_eq!(f.render(raw).as_deref(), Some("2024-06-01T10:00:00Z info deployed"));
    /// assert_eq!(f.render(&raw.replace("\"app\"", "\"other\"")), None);
    /// ```
    #[must_use]
    pub fn render(&self, raw: &str) -> Option<String> {
        let raw = raw.trim_end();
        if raw.is_empty() {
            return None;
        }
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(raw) else {
            return Some(raw.to_owned());
        };
        let name = text(&o, "name");
        let namespace = text(&o, "namespace");
        if let Some(objects) = &self.objects
            && !objects.iter().any(|(ns, n)| *ns == namespace && *n == name)
        {
            return None;
        }
        if let Some(id) = &self.reconcile_id
            && text(&o, "reconcileID") != *id
        {
            return None;
        }
        let ts = timestamp(field(&o, "ts"));
        if let (Some(not_before), Some(ts)) = (self.not_before, ts)
            && ts < not_before
        {
            return None;
        }
        let ts = ts.map_or_else(|| text(&o, "ts"), |t| t.to_string());
        let msg = match text(&o, "msg") {
            m if m.is_empty() => text(&o, "message"),
            m => m,
        };
        let level = text(&o, "level");
        let mut line = [ts, level]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if self.show_object && !name.is_empty() {
            line = format!("{line} {namespace}/{name}:");
        }
        line.push(' ');
        line.push_str(&msg);
        Some(line.trim_start().to_owned())
    }
}

/// A field at the top level, else under `fields` or `span`.
fn field<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).or_else(|| {
        ["fields", "span"]
            .iter()
            .find_map(|nested| o.get(*nested)?.as_object()?.get(key))
    })
}

/// A field as text (strings as they are, other scalars as JSON; missing: empty).
fn text(o: &Map<String, Value>, key: &str) -> String {
    match field(o, key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// `ts` as RFC 3339 text or as seconds since the epoch (zap's default encoder).
fn timestamp(v: Option<&Value>) -> Option<jiff::Timestamp> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => {
            let secs = n.as_f64()?;
            // An epoch float near today holds microseconds at best: round to them, so
            // `.25` prints as `.25`, not `.249999872`.
            #[allow(clippy::cast_possible_truncation)]
            let micros = (secs * 1e6).round() as i64;
            jiff::Timestamp::from_microsecond(micros).ok()
        }
        _ => None,
    }
}

/// Why a [`LogSource`] could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be opened (the message names it).
    #[error(transparent)]
    OpenFile(std::io::Error),
    /// Listing the controller's pods failed (no connection, or no right to list pods).
    #[error("failed to list the controller pods in namespace '{namespace}'")]
    ListPods {
        /// The namespace looked in.
        namespace: String,
        /// The apiserver's error.
        #[source]
        source: kube::Error,
    },
    /// No pod carries [`CONTROLLER_POD_SELECTOR`] in the namespace.
    #[error("no kluctl-controller pods (label {CONTROLLER_POD_SELECTOR}) in namespace '{namespace}'")]
    NoPods {
        /// The namespace looked in.
        namespace: String,
    },
}

/// Where the controller's log lines come from.
#[derive(Clone)]
pub enum LogSource {
    /// The pods labelled [`CONTROLLER_POD_SELECTOR`] in a namespace.
    Pods {
        /// The client.
        client: kube::Client,
        /// The controller's namespace.
        namespace: String,
    },
    /// The log file of a controller running as a local process.
    File(PathBuf),
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pods { namespace, .. } => f.debug_struct("Pods").field("namespace", namespace).finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl LogSource {
    /// The [`LogFilter::not_before`] that drops the lines older than `since` (from now): the
    /// pods' API applies `since` itself (`None`), a file holds every line.
    #[must_use]
    pub fn not_before(&self, since: Duration) -> Option<jiff::Timestamp> {
        match self {
            Self::File(_) => jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::try_from(since).unwrap_or_default())
                .ok(),
            Self::Pods { .. } => None,
        }
    }

    /// Starts reading: raw lines arrive on the returned channel, which closes when every
    /// source ended (with `follow` only when a pod's stream ends, or the file reader fails).
    /// Dropping the receiver stops the readers: the pods' streams at once, the file within a
    /// poll interval. A failure after the start arrives as a line `error: ...`.
    ///
    /// # Errors
    /// An unreadable file, a failed pod listing or no controller pods.
    pub async fn open(&self, since: Duration, follow: bool) -> Result<mpsc::Receiver<String>, LogError> {
        let (tx, rx) = mpsc::channel(1024);
        match self {
            Self::File(path) => {
                let file = fs_err::File::open(path).map_err(LogError::OpenFile)?;
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = read_file(file, &path, follow, &tx) {
                        let _ = tx.blocking_send(format!("error: {}", crate::error_chain(&e)));
                    }
                });
            }
            Self::Pods { client, namespace } => {
                let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
                let pods = api
                    .list(&ListParams::default().labels(CONTROLLER_POD_SELECTOR))
                    .await
                    .map_err(|source| LogError::ListPods {
                        namespace: namespace.clone(),
                        source,
                    })?;
                if pods.items.is_empty() {
                    return Err(LogError::NoPods {
                        namespace: namespace.clone(),
                    });
                }
                let params = LogParams {
                    follow,
                    since_seconds: i64::try_from(since.as_secs()).ok().filter(|s| *s > 0),
                    ..LogParams::default()
                };
                for pod in pods.items {
                    let name = pod.metadata.name.unwrap_or_default();
                    tokio::spawn(follow_pod(api.clone(), name, params.clone(), tx.clone()));
                }
            }
        }
        Ok(rx)
    }
}

/// Sends the log lines of pod `name` until its stream ends or the receiver is gone (which ends
/// the stream at once, so a followed, quiet pod's connection does not outlive its reader).
async fn follow_pod(api: Api<Pod>, name: String, params: LogParams, tx: mpsc::Sender<String>) {
    let stream = match api.log_stream(&name, &params).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx
                .send(format!("error: failed to read the logs of pod '{name}': {e}"))
                .await;
            return;
        }
    };
    let mut lines = stream.lines();
    loop {
        let line = tokio::select! {
            () = tx.closed() => return,
            line = lines.next() => line,
        };
        let Some(Ok(line)) = line else { return };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

/// Sends the lines of `file`; with `follow`, then the lines appended later (from the start again
/// when the file was truncated), until the receiver is gone.
fn read_file(
    file: fs_err::File,
    path: &Path,
    follow: bool,
    tx: &mpsc::Sender<String>,
) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::new(file);
    let mut partial = String::new();
    let mut offset = 0u64;
    loop {
        let mut buf = String::new();
        let n = reader.read_line(&mut buf).map_err(|e| {
            std::io::Error::new(e.kind(), format!("failed to read '{}': {e}", path.display()))
        })?;
        if n > 0 {
            offset += n as u64;
            partial.push_str(&buf);
            // A line still being written has no newline yet: wait for the rest of it.
            if (partial.ends_with('\n') || !follow) && tx.blocking_send(std::mem::take(&mut partial)).is_err()
            {
                return Ok(());
            }
            continue;
        }
        if !follow {
            return Ok(());
        }
        if tx.is_closed() {
            return Ok(());
        }
        std::thread::sleep(FILE_POLL);
        let len = fs_err::metadata(path)?.len();
        if len < offset {
            reader.seek(std::io::SeekFrom::Start(0))?;
            offset = 0;
            partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn line(name: &str, ns: &str, id: &str, ts: &str, msg: &str) -> String {
        serde_json::json!({"level": "info", "ts": ts, "msg": msg, "name": name, "namespace": ns,
            "reconcileID": id, "controller": "kluctldeployment"})
        .to_string()
    }

    #[test]
    fn lines_of_other_objects_and_reconciliations_are_dropped() {
        let ts = "2024-06-01T10:00:00.5Z";
        let f = LogFilter {
            objects: Some(vec![("ns".into(), "app".into())]),
            reconcile_id: Some("r1".into()),
            ..LogFilter::default()
        };
        assert_eq!(
            f.render(&line("app", "ns", "r1", ts, "deploying")).as_deref(),
            Some("2024-06-01T10:00:00.5Z info deploying")
        );
        assert_eq!(f.render(&line("app", "ns", "r2", ts, "x")), None);
        assert_eq!(f.render(&line("app", "other", "r1", ts, "x")), None);
        assert_eq!(f.render(&line("other", "ns", "r1", ts, "x")), None);
        assert_eq!(
            f.render(r#"{"level":"info","msg":"starting manager"}"#),
            None,
            "lines of no object belong to no selected object"
        );
        assert_eq!(
            f.render("panic: oh no\n").as_deref(),
            Some("panic: oh no"),
            "non-JSON lines pass through"
        );
        assert_eq!(f.render("   \n"), None);
    }

    #[test]
    fn without_objects_every_line_shows_and_can_name_its_object() {
        let f = LogFilter {
            show_object: true,
            ..LogFilter::default()
        };
        assert_eq!(
            f.render(&line("app", "ns", "r1", "2024-06-01T10:00:00Z", "done"))
                .as_deref(),
            Some("2024-06-01T10:00:00Z info ns/app: done")
        );
        assert_eq!(
            f.render(r#"{"level":"error","ts":"2024-06-01T10:00:00Z","msg":"no leader"}"#)
                .as_deref(),
            Some("2024-06-01T10:00:00Z error no leader")
        );
    }

    #[test]
    fn since_drops_older_lines_and_epoch_timestamps_are_converted() {
        let f = LogFilter {
            not_before: Some("2024-06-01T10:00:00Z".parse().unwrap()),
            ..LogFilter::default()
        };
        assert_eq!(
            f.render(&line("a", "n", "r", "2024-06-01T09:59:59Z", "old")),
            None
        );
        assert_eq!(
            f.render(r#"{"level":"info","ts":1717236000.25,"msg":"epoch"}"#)
                .as_deref(),
            Some("2024-06-01T10:00:00.25Z info epoch")
        );
    }

    #[test]
    fn tracing_json_fields_and_spans_are_found() {
        let f = LogFilter {
            objects: Some(vec![("ns".into(), "app".into())]),
            reconcile_id: Some("r1".into()),
            ..LogFilter::default()
        };
        let raw = r#"{"timestamp":"x","level":"INFO","fields":{"message":"applied"},"span":{"name":"app","namespace":"ns","reconcileID":"r1"}}"#;
        assert_eq!(f.render(raw).as_deref(), Some("INFO applied"));
    }

    #[tokio::test]
    async fn a_followed_file_yields_appended_lines_and_whole_lines_only() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controller.log");
        fs_err::write(&path, "one\n").unwrap();
        let mut rx = LogSource::File(path.clone())
            .open(Duration::from_secs(60), true)
            .await
            .unwrap();
        assert_eq!(rx.recv().await.as_deref(), Some("one\n"));
        let mut f = fs_err::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"tw").unwrap();
        f.flush().unwrap();
        f.write_all(b"o\n").unwrap();
        assert_eq!(rx.recv().await.as_deref(), Some("two\n"));
        let e = LogSource::File(dir.path().join("missing.log"))
            .open(Duration::from_secs(60), false)
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("missing.log"), "{e:#}");
    }
}
