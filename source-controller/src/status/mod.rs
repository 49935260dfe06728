//! Conditions of GitRepository and Bucket: how each step's outcome changes them, and how they
//! are summarised into `Ready`. Pure functions of the old conditions and the outcome; the reconciler
//! writes the result in one status patch.
//!
//! ```text
//!  old conditions ──► begin()           Reconciling=True  (Ready=Unknown while building)
//!                 ──► fail(kind, ..)    FetchFailed / StorageOperationFailed = True, Reconciling → retry
//!                 ──► stall(reason, ..) Stalled=True, Reconciling removed (waits for a spec change)
//!                 ──► succeed(rev)      ArtifactInStorage=True, negative conditions removed
//!                 ──► summarize()       Ready from the highest-ranked condition
//! ```
//!
//! Summary rule (as Flux's): conditions are ranked by (True, negative) > (False, positive) >
//! (True, positive) > (False, negative) > Unknown, ties broken by a fixed type order; the winner's
//! reason and message become Ready's, with Ready=False for the first two ranks, True for the next
//! two, Unknown otherwise. While `Reconciling` is True with reason `Progressing` and nothing failed,
//! Ready is Unknown with the progress message (work in progress, e.g. a new revision being built).

use gitops_api::conditions::{self, reasons, status, types};
use gitops_api::meta::{Condition, Time};

/// Types in summary priority order.
const PRIORITY: [&str; 8] = [
    types::STORAGE_OPERATION_FAILED,
    types::FETCH_FAILED,
    types::INCLUDE_UNAVAILABLE,
    types::ARTIFACT_OUTDATED,
    types::ARTIFACT_IN_STORAGE,
    types::SOURCE_VERIFIED,
    types::STALLED,
    types::RECONCILING,
];

/// Types whose `True` means something is wrong (removed when resolved).
const NEGATIVE: [&str; 6] = [
    types::STORAGE_OPERATION_FAILED,
    types::FETCH_FAILED,
    types::INCLUDE_UNAVAILABLE,
    types::ARTIFACT_OUTDATED,
    types::STALLED,
    types::RECONCILING,
];

/// Which failure condition an error sets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Talking to the upstream (Git remote, bucket) failed.
    Fetch,
    /// Writing or reading the storage failed.
    Storage,
}

/// Conditions plus the generation they are computed for.
#[derive(Clone, Debug)]
pub struct Conditions {
    /// The current list.
    pub list: Vec<Condition>,
    generation: Option<i64>,
    now: Time,
}

impl Conditions {
    /// Starts from the object's current conditions.
    pub fn new(list: Vec<Condition>, generation: Option<i64>, now: Time) -> Self {
        Conditions {
            list,
            generation,
            now,
        }
    }

    fn set(&mut self, type_: &str, status: &str, reason: &str, message: &str) {
        self.list = conditions::set(
            &self.list,
            type_,
            status,
            reason,
            message,
            self.generation,
            &self.now,
        );
    }

    fn remove(&mut self, type_: &str) {
        self.list = conditions::remove(&self.list, type_);
    }

    /// Marks work in progress; `message` says what is being done.
    pub fn begin(&mut self, message: &str) {
        self.set(types::RECONCILING, status::TRUE, reasons::PROGRESSING, message);
        self.summarize();
    }

    /// Records a new upstream revision that is not yet stored.
    pub fn outdated(&mut self, revision: &str) {
        let had_artifact = conditions::find(&self.list, types::ARTIFACT_IN_STORAGE).is_some();
        if had_artifact {
            let msg = format!("new upstream revision '{revision}'");
            self.set(
                types::ARTIFACT_OUTDATED,
                status::TRUE,
                reasons::NEW_REVISION,
                &msg,
            );
        }
        let msg = format!("building artifact: new upstream revision '{revision}'");
        self.set(types::RECONCILING, status::TRUE, reasons::PROGRESSING, &msg);
        self.summarize();
    }

    /// Records a transient failure; the object is retried with backoff.
    pub fn fail(&mut self, kind: FailureKind, reason: &str, message: &str) {
        let type_ = match kind {
            FailureKind::Fetch => types::FETCH_FAILED,
            FailureKind::Storage => types::STORAGE_OPERATION_FAILED,
        };
        self.set(type_, status::TRUE, reason, message);
        let progress = conditions::find(&self.list, types::RECONCILING).map(|c| c.message.clone());
        self.set(
            types::RECONCILING,
            status::TRUE,
            reasons::PROGRESSING_WITH_RETRY,
            &progress.unwrap_or_else(|| "reconciliation in progress".into()),
        );
        self.summarize();
    }

    /// Records a configuration error: nothing changes until the spec does.
    pub fn stall(&mut self, reason: &str, message: &str) {
        self.set(types::STALLED, status::TRUE, reason, message);
        self.remove(types::RECONCILING);
        self.summarize();
    }

    /// Records success: the artifact for `revision` is stored; resolved problems are removed.
    pub fn succeed(&mut self, revision: &str) {
        self.succeed_with(&format!("stored artifact for revision '{revision}'"));
    }

    /// [`Conditions::succeed`] with the kind's own `ArtifactInStorage` message (Bucket:
    /// `stored artifact: revision '<rev>'`).
    pub fn succeed_with(&mut self, message: &str) {
        for t in [
            types::FETCH_FAILED,
            types::STORAGE_OPERATION_FAILED,
            types::ARTIFACT_OUTDATED,
            types::STALLED,
            types::RECONCILING,
        ] {
            self.remove(t);
        }
        self.set(
            types::ARTIFACT_IN_STORAGE,
            status::TRUE,
            reasons::SUCCEEDED,
            message,
        );
        self.summarize();
    }

    /// Marks the stored artifact as gone (missing or failed verification).
    pub fn artifact_lost(&mut self, message: &str) {
        self.remove(types::ARTIFACT_IN_STORAGE);
        self.set(types::RECONCILING, status::TRUE, reasons::PROGRESSING, message);
        self.summarize();
    }

    /// Recomputes `Ready` from the other conditions.
    pub fn summarize(&mut self) {
        if let Some((st, reason, message)) = summary(&self.list) {
            self.set(types::READY, &st, &reason, &message);
        }
    }

    /// True when `Stalled=True`.
    pub fn is_stalled(&self) -> bool {
        conditions::is_true(&self.list, types::STALLED)
    }

    /// True when `Ready=True`.
    pub fn is_ready(&self) -> bool {
        conditions::is_true(&self.list, types::READY)
    }
}

/// The `Ready` status, reason and message implied by `list`, or `None` when nothing is known yet.
pub fn summary(list: &[Condition]) -> Option<(String, String, String)> {
    let rank = |c: &Condition| {
        let negative = NEGATIVE.contains(&c.type_.as_str());
        match (c.status.as_str(), negative) {
            (status::TRUE, true) => 0,
            (status::FALSE, false) => 1,
            (status::TRUE, false) => 2,
            (status::FALSE, true) => 3,
            _ => 4,
        }
    };
    // While work is in progress and nothing has failed, Ready is Unknown with the progress message
    // (a new revision being built is drift, not a failure).
    if let Some(rec) = conditions::find(list, types::RECONCILING).filter(|r| r.status == status::TRUE)
        && rec.reason == reasons::PROGRESSING
        && ![
            types::STORAGE_OPERATION_FAILED,
            types::FETCH_FAILED,
            types::INCLUDE_UNAVAILABLE,
            types::STALLED,
        ]
        .iter()
        .any(|t| conditions::is_true(list, t))
    {
        return Some((
            status::UNKNOWN.to_string(),
            rec.reason.clone(),
            rec.message.clone(),
        ));
    }
    let winner = PRIORITY
        .iter()
        .filter_map(|t| conditions::find(list, t))
        .min_by_key(|c| (rank(c), PRIORITY.iter().position(|t| *t == c.type_)))?;
    let ready = if winner.type_ == types::RECONCILING {
        status::UNKNOWN
    } else {
        match rank(winner) {
            0 | 1 => status::FALSE,
            2 | 3 => status::TRUE,
            _ => status::UNKNOWN,
        }
    };
    Some((ready.to_string(), winner.reason.clone(), winner.message.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn ready(c: &Conditions) -> (String, String, String) {
        let r = conditions::find(&c.list, types::READY).expect("Ready is set");
        (r.status.clone(), r.reason.clone(), r.message.clone())
    }

    #[test]
    fn first_reconcile_is_unknown_then_ready_with_the_revision() {
        let mut c = Conditions::new(vec![], Some(1), now());
        c.begin("reconciliation in progress");
        assert_eq!(ready(&c).0, status::UNKNOWN);
        c.succeed("main@sha1:abc");
        assert_eq!(
            ready(&c),
            (
                status::TRUE.into(),
                reasons::SUCCEEDED.into(),
                "stored artifact for revision 'main@sha1:abc'".into()
            )
        );
        assert!(conditions::find(&c.list, types::RECONCILING).is_none());
        assert!(c.is_ready());
    }

    #[test]
    fn fetch_failure_keeps_artifact_but_ready_false_with_the_failure_reason() {
        let mut c = Conditions::new(vec![], Some(1), now());
        c.succeed("main@sha1:abc");
        c.begin("reconciliation in progress");
        c.fail(
            FailureKind::Fetch,
            reasons::AUTHENTICATION_FAILED,
            "failed to authenticate to 'https://x'",
        );
        assert_eq!(ready(&c).0, status::FALSE);
        assert_eq!(ready(&c).1, reasons::AUTHENTICATION_FAILED);
        assert!(
            conditions::is_true(&c.list, types::ARTIFACT_IN_STORAGE),
            "old artifact still stored"
        );
        let rec = conditions::find(&c.list, types::RECONCILING).unwrap();
        assert_eq!(rec.reason, reasons::PROGRESSING_WITH_RETRY);
        // recovery removes the failure
        c.succeed("main@sha1:def");
        assert!(conditions::find(&c.list, types::FETCH_FAILED).is_none());
        assert!(c.is_ready());
    }

    #[test]
    fn storage_failure_outranks_fetch_failure() {
        let mut c = Conditions::new(vec![], Some(1), now());
        c.fail(FailureKind::Fetch, reasons::GIT_OPERATION_FAILED, "fetch");
        c.fail(
            FailureKind::Storage,
            reasons::ARCHIVE_OPERATION_FAILED,
            "disk full",
        );
        assert_eq!(ready(&c).1, reasons::ARCHIVE_OPERATION_FAILED);
    }

    #[test]
    fn stall_removes_reconciling_and_sets_ready_false() {
        let mut c = Conditions::new(vec![], Some(2), now());
        c.begin("reconciliation in progress");
        c.stall(reasons::URL_INVALID, "invalid URL 'ftp://x'");
        assert!(c.is_stalled());
        assert!(conditions::find(&c.list, types::RECONCILING).is_none());
        assert_eq!(
            ready(&c),
            (
                status::FALSE.into(),
                reasons::URL_INVALID.into(),
                "invalid URL 'ftp://x'".into()
            )
        );
        assert!(c.list.iter().all(|x| x.observed_generation == Some(2)));
    }

    #[test]
    fn new_revision_marks_outdated_only_when_an_artifact_exists() {
        let mut c = Conditions::new(vec![], Some(1), now());
        c.outdated("main@sha1:abc");
        assert!(conditions::find(&c.list, types::ARTIFACT_OUTDATED).is_none());
        c.succeed("main@sha1:abc");
        c.outdated("main@sha1:def");
        let o = conditions::find(&c.list, types::ARTIFACT_OUTDATED).unwrap();
        assert_eq!(o.reason, reasons::NEW_REVISION);
        assert_eq!(
            ready(&c),
            (
                status::UNKNOWN.into(),
                reasons::PROGRESSING.into(),
                "building artifact: new upstream revision 'main@sha1:def'".into()
            ),
            "a revision being built is progress, not failure"
        );
    }

    #[test]
    fn nothing_known_gives_no_summary() {
        assert!(summary(&[]).is_none());
    }
}
