//! The status step: how one run of a kind's steps changes the status, as a pure function of the
//! old status and what the steps found. It returns the events to emit and when to run next; the
//! driver emits, requeues and writes the status in one patch.
//!
//! ```text
//!  Run { checked, building, notes, end }
//!    checked   GC'd files          ──► GarbageCollectionSucceeded (trace)
//!              recorded artifact lost ─► ArtifactInStorage removed, Reconciling; ArtifactVerificationFailed
//!    building  new upstream revision ─► ArtifactOutdated, Reconciling "building artifact: ..."
//!    end       Ok(Stored)          ──► ArtifactInStorage, NewArtifact (info)            Next::Interval
//!              Ok(Unchanged)       ──► ArtifactInStorage, trace (+ Succeeded on recovery) Next::Interval
//!              Err(retryable)      ──► FetchFailed | StorageOperationFailed, warning    Next::Backoff
//!              Err(configuration)  ──► Stalled, warning                                 Next::AwaitChange
//! ```

use super::SourceKind;
use super::error::Failure;
use super::requeue::Next;
use crate::status::Conditions;
use gitops_api::conditions::{reasons, types};
use gitops_api::constants::{EVENT_DIGEST_KEY, EVENT_REVISION_KEY};
use gitops_api::meta::Artifact;
use gitops_runtime::Severity;
use std::collections::BTreeMap;

/// What the storage check (GC, then verification of the recorded artifact) found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Checked {
    /// How many superseded artifact files were garbage-collected.
    pub gc_deleted: usize,
    /// The recorded artifact after the check: with the current advertised URL, or `None` when lost.
    pub artifact: Option<Artifact>,
    /// The path of a recorded artifact that was missing or did not match its digest.
    pub lost: Option<String>,
    /// Bucket: the URL of the `latest.tar.gz` symlink, refreshed for the recorded artifact.
    pub latest_url: Option<String>,
}

/// How a run of the steps ended, when it did not fail.
pub(crate) enum End<N> {
    /// A new artifact was stored; `N` is what it brings.
    Stored(N),
    /// The source still has the recorded revision; nothing was fetched.
    Unchanged {
        /// The recorded revision.
        revision: String,
    },
}

/// What a kind's fetch step found.
pub(crate) enum Fetched<T> {
    /// The source still has the recorded revision (and the ignore rules are unchanged).
    Unchanged(String),
    /// A new revision, or new ignore rules: the fetched tree to package.
    Changed(T),
}

/// What one run of a kind's steps did, in the order the status function applies it.
pub(crate) struct Run<N> {
    /// The storage check, when the run got that far.
    pub checked: Option<Checked>,
    /// The new upstream revision being built, when the run got that far.
    pub building: Option<String>,
    /// Events a step raised on the way (emitted after the storage check's).
    pub notes: Vec<Note>,
    /// The end: success, or the failure of the step that stopped the run.
    pub end: Result<End<N>, Failure>,
}

impl<N> Run<N> {
    /// A run that ended before the storage check.
    pub fn stopped(failure: Failure) -> Self {
        Run {
            checked: None,
            building: None,
            notes: Vec::new(),
            end: Err(failure),
        }
    }
}

/// An event to emit about the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Note {
    /// Info and Error reach the notification receiver; Trace only Kubernetes.
    pub severity: Severity,
    /// The event reason.
    pub reason: &'static str,
    /// The event message.
    pub message: String,
    /// Event metadata (HTTP body only).
    pub metadata: BTreeMap<String, String>,
}

impl Note {
    /// An event without metadata.
    pub fn new(severity: Severity, reason: &'static str, message: impl Into<String>) -> Self {
        Note {
            severity,
            reason,
            message: message.into(),
            metadata: BTreeMap::new(),
        }
    }
}

/// How a kind words the end of a successful run.
pub(crate) enum Verdict {
    /// A new artifact was stored.
    Stored {
        /// The stored artifact (its revision and digest go into the event metadata).
        artifact: Artifact,
        /// The `ArtifactInStorage` message.
        condition: String,
        /// The `NewArtifact` event message.
        event: String,
    },
    /// The recorded artifact is current.
    Unchanged {
        /// The `ArtifactInStorage` message.
        condition: String,
        /// The reason and message of the trace event.
        trace: (&'static str, String),
    },
}

/// What the status function decided besides the status itself.
pub(crate) struct Recorded {
    /// Events to emit, in order.
    pub notes: Vec<Note>,
    /// When to run next.
    pub next: Next,
    /// The failure that ended the run, if any (logged and counted by the driver).
    pub failure: Option<Failure>,
}

/// Applies `run` to `status` and `conds`; `verdict` words a successful end and records the
/// kind's own status fields of a new artifact (it gets the status with the artifact of the storage
/// check already set).
pub(crate) fn record<K: SourceKind, N>(
    run: Run<N>,
    status: &mut K::Status,
    conds: &mut Conditions,
    verdict: impl FnOnce(End<N>, &mut K::Status) -> Verdict,
) -> Recorded {
    let Run {
        checked,
        building,
        notes: step_notes,
        end,
    } = run;
    let mut notes = Vec::new();
    if let Some(checked) = checked {
        *K::fields(status).artifact = checked.artifact;
        if checked.gc_deleted > 0 {
            let msg = format!("garbage collected {} artifacts", checked.gc_deleted);
            notes.push(Note::new(
                Severity::Trace,
                reasons::GARBAGE_COLLECTION_SUCCEEDED,
                msg,
            ));
        }
        if let Some(path) = checked.lost {
            conds.artifact_lost("building artifact: disappeared from storage");
            notes.push(Note::new(
                Severity::Error,
                reasons::ARTIFACT_VERIFICATION_FAILED,
                format!("stored artifact '{path}' is missing or does not match its digest; rebuilding"),
            ));
        }
    }
    notes.extend(step_notes);
    if let Some(revision) = &building {
        conds.outdated(revision);
    }
    let end = match end {
        Ok(end) => end,
        Err(failure) => {
            let next = if failure.stalls() {
                conds.stall(failure.reason, &failure.message);
                Next::AwaitChange
            } else {
                conds.fail(failure.category.failure_kind(), failure.reason, &failure.message);
                Next::Backoff
            };
            notes.push(Note::new(
                Severity::Error,
                failure.reason,
                failure.message.clone(),
            ));
            return Recorded {
                notes,
                next,
                failure: Some(failure),
            };
        }
    };
    match verdict(end, status) {
        Verdict::Stored {
            artifact,
            condition,
            event,
        } => {
            conds.succeed_with(&condition);
            let mut note = Note::new(Severity::Info, reasons::NEW_ARTIFACT, event);
            note.metadata = BTreeMap::from([
                (EVENT_REVISION_KEY.to_string(), artifact.revision.clone()),
                (EVENT_DIGEST_KEY.to_string(), artifact.digest.clone()),
            ]);
            notes.push(note);
            *K::fields(status).artifact = Some(artifact);
        }
        Verdict::Unchanged { condition, trace } => {
            // A run that finds the artifact current after a fetch or storage failure recovered.
            let recovered = conds
                .list
                .iter()
                .any(|c| c.type_ == types::FETCH_FAILED || c.type_ == types::STORAGE_OPERATION_FAILED);
            conds.succeed_with(&condition);
            notes.push(Note::new(Severity::Trace, trace.0, trace.1));
            if recovered {
                notes.push(Note::new(Severity::Info, reasons::SUCCEEDED, condition));
            }
        }
    }
    Recorded {
        notes,
        next: Next::Interval,
        failure: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::error::StepError;
    use crate::storage::StorageError;
    use gitops_api::conditions::{self, status};
    use gitops_api::meta::Time;
    use gitops_api::source::v1::{GitRepository, GitRepositoryStatus};
    use k8s_openapi::jiff::Timestamp;

    fn conds() -> Conditions {
        Conditions::new(
            vec![],
            Some(1),
            Time(Timestamp::from_second(1_700_000_000).unwrap()),
        )
    }

    fn artifact(revision: &str) -> Artifact {
        serde_json::from_value(serde_json::json!({
            "path": "gitrepository/ns/app/abc.tar.gz",
            "url": "http://storage/gitrepository/ns/app/abc.tar.gz",
            "revision": revision,
            "digest": "sha256:abc",
            "lastUpdateTime": "2024-01-01T00:00:00Z",
        }))
        .unwrap()
    }

    fn unchanged(end: End<()>, _: &mut GitRepositoryStatus) -> Verdict {
        let End::Unchanged { revision } = end else {
            panic!("expected Unchanged")
        };
        Verdict::Unchanged {
            condition: format!("stored artifact for revision '{revision}'"),
            trace: (reasons::GIT_OPERATION_SUCCEEDED, "no changes".into()),
        }
    }

    #[test]
    fn a_lost_artifact_is_dropped_reported_and_rebuilt() {
        let (mut status, mut c) = (GitRepositoryStatus::default(), conds());
        status.artifact = Some(artifact("main@sha1:abc"));
        let run: Run<Artifact> = Run {
            checked: Some(Checked {
                gc_deleted: 1,
                lost: Some("gitrepository/ns/app/abc.tar.gz".into()),
                ..Checked::default()
            }),
            building: Some("main@sha1:abc".into()),
            notes: vec![],
            end: Ok(End::Stored(artifact("main@sha1:abc"))),
        };
        let rec = record::<GitRepository, _>(run, &mut status, &mut c, |end, _| {
            let End::Stored(a) = end else {
                panic!("expected Stored")
            };
            Verdict::Stored {
                condition: "stored artifact for revision 'main@sha1:abc'".into(),
                event: "stored artifact for commit 'x'".into(),
                artifact: a,
            }
        });
        let reasons: Vec<_> = rec.notes.iter().map(|n| n.reason).collect();
        assert_eq!(
            reasons,
            [
                reasons::GARBAGE_COLLECTION_SUCCEEDED,
                reasons::ARTIFACT_VERIFICATION_FAILED,
                reasons::NEW_ARTIFACT
            ]
        );
        assert_eq!(rec.notes[2].metadata[EVENT_DIGEST_KEY], "sha256:abc");
        assert_eq!(rec.next, Next::Interval);
        assert!(c.is_ready());
        assert!(status.artifact.is_some());
    }

    #[test]
    fn a_failure_keeps_the_artifact_and_backs_off_and_a_stall_waits() {
        let (mut status, mut c) = (GitRepositoryStatus::default(), conds());
        status.artifact = Some(artifact("main@sha1:abc"));
        c.succeed("main@sha1:abc");
        let failure = Failure::from(StepError::from(StorageError::Lock {
            path: "/data/x.lock".into(),
            source: std::io::Error::other("busy"),
        }));
        let run: Run<()> = Run {
            checked: Some(Checked {
                artifact: status.artifact.clone(),
                ..Checked::default()
            }),
            building: Some("main@sha1:def".into()),
            notes: vec![],
            end: Err(failure),
        };
        let rec = record::<GitRepository, _>(run, &mut status, &mut c, unchanged);
        assert_eq!(rec.next, Next::Backoff);
        assert!(conditions::is_true(&c.list, types::STORAGE_OPERATION_FAILED));
        assert_eq!(
            conditions::find(&c.list, types::READY).map(|r| r.message.as_str()),
            Some("failed to acquire lock '/data/x.lock': busy")
        );
        assert_eq!(status.artifact, Some(artifact("main@sha1:abc")));
        assert_eq!(rec.notes.len(), 1);
        assert_eq!(rec.notes[0].severity, Severity::Error);

        let stall = Failure::from(StepError::InvalidUrl {
            url: "ftp://x".into(),
            why: "unsupported scheme; use http, https or ssh",
        });
        let rec = record::<GitRepository, _>(Run::stopped(stall), &mut status, &mut c, unchanged);
        assert_eq!(rec.next, Next::AwaitChange);
        assert!(c.is_stalled());
        assert_eq!(status.artifact, Some(artifact("main@sha1:abc")), "untouched");
    }

    #[test]
    fn an_unchanged_run_after_a_failure_reports_the_recovery() {
        let (mut status, mut c) = (GitRepositoryStatus::default(), conds());
        c.fail(
            crate::status::FailureKind::Fetch,
            reasons::GIT_OPERATION_FAILED,
            "timeout",
        );
        let run: Run<()> = Run {
            checked: Some(Checked::default()),
            building: None,
            notes: vec![],
            end: Ok(End::Unchanged {
                revision: "main@sha1:abc".into(),
            }),
        };
        let rec = record::<GitRepository, _>(run, &mut status, &mut c, unchanged);
        let got: Vec<_> = rec.notes.iter().map(|n| (n.severity, n.reason)).collect();
        assert_eq!(
            got,
            [
                (Severity::Trace, reasons::GIT_OPERATION_SUCCEEDED),
                (Severity::Info, reasons::SUCCEEDED)
            ]
        );
        let ready = conditions::find(&c.list, types::READY).unwrap();
        assert_eq!(ready.status, status::TRUE);
    }
}
