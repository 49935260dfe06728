//! Condition types, reasons, and pure helpers over `status.conditions`.
//!
//! The names are the ones Flux and Kluctl clients match on (`kubectl wait --for=condition=Ready`,
//! `flux get`, kstatus). Helpers take the old list and return the new one; they never touch the
//! API server, so status can be computed as a pure function and written in one patch.

use crate::meta::{Condition, Time};

/// Condition types.
pub mod types {
    /// Summary condition: the object is in its desired state.
    pub const READY: &str = "Ready";
    /// Work is in progress (negative polarity: present only while true).
    pub const RECONCILING: &str = "Reconciling";
    /// The object cannot make progress until its spec changes.
    pub const STALLED: &str = "Stalled";
    /// A valid artifact is stored and served.
    pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
    /// The upstream has a revision newer than the stored artifact.
    pub const ARTIFACT_OUTDATED: &str = "ArtifactOutdated";
    /// Fetching from the upstream failed.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// A storage operation (write, archive, stat) failed.
    pub const STORAGE_OPERATION_FAILED: &str = "StorageOperationFailed";
    /// An included GitRepository is missing or has no artifact.
    pub const INCLUDE_UNAVAILABLE: &str = "IncludeUnavailable";
    /// The source's signature was verified (GitRepository with `spec.verify`).
    pub const SOURCE_VERIFIED: &str = "SourceVerified";
    /// Building an artifact failed.
    pub const BUILD_FAILED: &str = "BuildFailed";
}

/// Condition reasons.
pub mod reasons {
    /// The operation succeeded.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The operation failed (generic).
    pub const FAILED: &str = "Failed";
    /// Work is in progress.
    pub const PROGRESSING: &str = "Progressing";
    /// Work is in progress after an earlier failure.
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    /// The object is suspended.
    pub const SUSPENDED: &str = "Suspended";
    /// A dependency is not ready.
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// The URL in the spec is invalid.
    pub const URL_INVALID: &str = "URLInvalid";
    /// The provider configuration is invalid.
    pub const INVALID_PROVIDER_CONFIGURATION: &str = "InvalidProviderConfiguration";
    /// The spec uses a field this build does not support yet.
    pub const UNSUPPORTED_CONFIGURATION: &str = "UnsupportedConfiguration";
    /// Credentials were missing or rejected.
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// A Receiver's token Secret or its `token` key is missing (Flux's reason).
    pub const TOKEN_NOT_FOUND: &str = "TokenNotFound";
    /// The spec fails a check the CRD schema could not express (Flux's reason).
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// A Git operation failed.
    pub const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
    /// A Git operation succeeded.
    pub const GIT_OPERATION_SUCCEEDED: &str = "GitOperationSucceeded";
    /// The repository has no commits.
    pub const EMPTY_GIT_REPOSITORY: &str = "EmptyGitRepository";
    /// A bucket operation failed.
    pub const BUCKET_OPERATION_FAILED: &str = "BucketOperationFailed";
    /// A bucket operation succeeded.
    pub const BUCKET_OPERATION_SUCCEEDED: &str = "BucketOperationSucceeded";
    /// The upstream has a new revision.
    pub const NEW_REVISION: &str = "NewRevision";
    /// A new artifact was stored (event reason).
    pub const NEW_ARTIFACT: &str = "NewArtifact";
    /// The stored artifact is current (event reason).
    pub const ARTIFACT_UP_TO_DATE: &str = "ArtifactUpToDate";
    /// Creating a storage directory failed.
    pub const DIRECTORY_CREATION_FAILED: &str = "DirectoryCreationFailed";
    /// Stat of a storage file failed.
    pub const STAT_OPERATION_FAILED: &str = "StatOperationFailed";
    /// Reading a file failed.
    pub const READ_OPERATION_FAILED: &str = "ReadOperationFailed";
    /// Writing the archive failed.
    pub const ARCHIVE_OPERATION_FAILED: &str = "ArchiveOperationFailed";
    /// Acquiring the storage lock failed.
    pub const ACQUIRE_LOCK_FAILED: &str = "AcquireLockFailed";
    /// Updating the `latest` symlink failed.
    pub const SYMLINK_UPDATE_FAILED: &str = "SymlinkUpdateFailed";
    /// A storage path is invalid.
    pub const INVALID_PATH: &str = "InvalidPath";
    /// A path tried to escape its root.
    pub const ILLEGAL_PATH: &str = "IllegalPath";
    /// Garbage collection of old artifacts failed.
    pub const GARBAGE_COLLECTION_FAILED: &str = "GarbageCollectionFailed";
    /// Garbage collection of old artifacts succeeded (trace event).
    pub const GARBAGE_COLLECTION_SUCCEEDED: &str = "GarbageCollectionSucceeded";
    /// The stored artifact's digest did not match (warning event).
    pub const ARTIFACT_VERIFICATION_FAILED: &str = "ArtifactVerificationFailed";
    /// Patching the object failed.
    pub const PATCH_OPERATION_FAILED: &str = "PatchOperationFailed";
    /// Kluctl: a full reconcile succeeded.
    pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
    /// Kluctl: loading or rendering the project failed.
    pub const PREPARE_FAILED: &str = "PrepareFailed";
    /// Kluctl: deploy failed.
    pub const DEPLOY_FAILED: &str = "DeployFailed";
    /// Kluctl: diff failed.
    pub const DIFF_FAILED: &str = "DiffFailed";
    /// Kluctl: prune failed.
    pub const PRUNE_FAILED: &str = "PruneFailed";
    /// Kluctl: validate failed.
    pub const VALIDATE_FAILED: &str = "ValidateFailed";
    /// Fetching, verifying or unpacking a source artifact failed (the reason Flux's
    /// kustomize-controller and both Kluctl controllers use).
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
}

/// Condition status values.
pub mod status {
    /// The condition holds.
    pub const TRUE: &str = "True";
    /// The condition does not hold.
    pub const FALSE: &str = "False";
    /// Not known yet.
    pub const UNKNOWN: &str = "Unknown";
}

/// Finds the condition of `type_`.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` exists with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == status::TRUE)
}

/// Sets a condition, keeping `lastTransitionTime` unless the status changed.
///
/// Returns the new list; the order of existing conditions is kept and new ones are appended.
pub fn set(
    conditions: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out = conditions.to_vec();
    let new = |transition: Time| Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation,
        last_transition_time: transition,
    };
    match out.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let transition = if existing.status == status {
                existing.last_transition_time.clone()
            } else {
                now.clone()
            };
            *existing = new(transition);
        }
        None => out.push(new(now.clone())),
    }
    out
}

/// Removes the condition of `type_` (negative-polarity conditions are deleted when resolved).
pub fn remove(conditions: &[Condition], type_: &str) -> Vec<Condition> {
    conditions.iter().filter(|c| c.type_ != type_).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn set_appends_then_keeps_transition_time_while_status_is_unchanged() {
        let c = set(
            &[],
            types::READY,
            status::FALSE,
            reasons::PROGRESSING,
            "working",
            Some(1),
            &at(10),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, at(10));
        let c = set(
            &c,
            types::READY,
            status::FALSE,
            reasons::FAILED,
            "broken",
            Some(2),
            &at(20),
        );
        assert_eq!(
            c[0].last_transition_time,
            at(10),
            "same status keeps the transition time"
        );
        assert_eq!(
            (c[0].reason.as_str(), c[0].message.as_str()),
            (reasons::FAILED, "broken")
        );
        assert_eq!(c[0].observed_generation, Some(2));
        let c = set(
            &c,
            types::READY,
            status::TRUE,
            reasons::SUCCEEDED,
            "ok",
            Some(2),
            &at(30),
        );
        assert_eq!(
            c[0].last_transition_time,
            at(30),
            "a status change moves the transition time"
        );
        assert!(is_true(&c, types::READY));
    }

    #[test]
    fn set_keeps_order_and_remove_drops_only_the_named_type() {
        let c = set(
            &[],
            types::RECONCILING,
            status::TRUE,
            reasons::PROGRESSING,
            "",
            None,
            &at(1),
        );
        let c = set(
            &c,
            types::READY,
            status::UNKNOWN,
            reasons::PROGRESSING,
            "",
            None,
            &at(1),
        );
        let c = set(
            &c,
            types::RECONCILING,
            status::TRUE,
            reasons::PROGRESSING_WITH_RETRY,
            "",
            None,
            &at(2),
        );
        assert_eq!(
            c.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [types::RECONCILING, types::READY]
        );
        let c = remove(&c, types::RECONCILING);
        assert_eq!(
            c.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [types::READY]
        );
        assert!(find(&c, types::RECONCILING).is_none());
        assert!(!is_true(&c, types::READY));
    }
}
