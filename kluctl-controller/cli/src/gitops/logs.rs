//! The kluctl-controller's log lines of selected KluctlDeployments: `kluctl gitops logs`, and the
//! lines of a request's reconciliation shown (on stderr) while a request command waits.
//!
//! Reading and filtering is [`kluctl_engine::controller_logs`] (shared with the web UI); this
//! adds what only the CLI says: the hint naming `--controller-namespace` and
//! `--controller-log-file` when no controller pod is found.
//!
//! ```text
//!   pods:  --controller-namespace (sinceSeconds = --log-since, follow = -f)
//!   file:  --controller-log-file (lines older than --log-since dropped; -f follows)
//! ```

use std::time::Duration;

use tokio::sync::mpsc;

pub(crate) use kluctl_engine::controller_logs::{LogError, LogFilter, LogSource};

use crate::report::Hinted;

/// [`LogSource::open`], with a hint when no controller pod is found.
///
/// # Errors
/// An unreadable file, a failed pod listing or no controller pods (with a hint).
pub(crate) async fn open(
    source: &LogSource,
    since: Duration,
    follow: bool,
) -> anyhow::Result<mpsc::Receiver<String>> {
    source.open(since, follow).await.map_err(hinted)
}

/// `e`, with the flags to pass when no controller pod was found.
fn hinted(e: LogError) -> anyhow::Error {
    match e {
        e @ LogError::NoPods { .. } => Hinted::new(
            e,
            "pass --controller-namespace, or --controller-log-file for a controller running as a local process",
        )
        .into(),
        e => anyhow::Error::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_file_names_its_path_without_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(
            &LogSource::File(dir.path().join("missing.log")),
            Duration::from_secs(60),
            false,
        )
        .await
        .unwrap_err();
        let lines = crate::report::report(&e);
        assert!(lines[0].contains("missing.log"), "{lines:?}");
        assert_eq!(lines.len(), 1, "no hint for a file: {lines:?}");
    }

    #[test]
    fn no_controller_pods_hint_at_the_flags() {
        let lines = crate::report::report(&hinted(LogError::NoPods {
            namespace: "kluctl-system".into(),
        }));
        assert_eq!(
            lines,
            [
                "error: no kluctl-controller pods (label control-plane=kluctl-controller) in namespace 'kluctl-system'",
                "hint: pass --controller-namespace, or --controller-log-file for a controller running as a local process",
            ]
        );
    }
}
