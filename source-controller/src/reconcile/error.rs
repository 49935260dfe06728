//! The errors of a reconcile: [`StepError`] for a failed source step (recorded in status, with a
//! Flux reason), [`Error`] for a failed API call that ends the reconcile (retried by the
//! controller), and the bounded [`Category`] both are counted under.
//!
//! ```text
//!  resolve  ──► StepError::Unsupported | InvalidUrl | ProviderConfig | InvalidRef  (Config: Stalled)
//!  fetch    ──► StepError::Credentials | Git | Bucket | GitTask                    (FetchFailed)
//!  package  ──► StepError::Archive | PackageTask                                   (StorageOperationFailed)
//!  store    ──► StepError::Storage | TempDir                                       (StorageOperationFailed)
//!                  │
//!                  └─► reason() (condition + event reason), category() (metric label),
//!                      Failure::new: message = whole cause chain, scrubbed of secrets
//! ```

use crate::archive::ArchiveError;
use crate::bucket::BucketError;
use crate::credentials::CredentialsError;
use crate::git::GitError;
use crate::status::FailureKind;
use crate::storage::StorageError;
use gitops_api::conditions::reasons;

/// Why a source step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A spec field this build does not act on is set.
    #[error("{field} is not supported by this source-controller yet; remove it from {kind} '{object}'")]
    Unsupported {
        /// The field, such as `spec.include` or `spec.provider 'gcp'`.
        field: &'static str,
        /// `GitRepository` or `Bucket`.
        kind: &'static str,
        /// `namespace/name` of the object.
        object: String,
    },
    /// `spec.url` is not a URL Flux accepts.
    #[error("invalid spec.url '{url}': {why}")]
    InvalidUrl {
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `spec.certSecretRef` on a provider that has no use for it.
    #[error("spec.certSecretRef is only supported for the 'generic' provider; Bucket '{object}'")]
    CertSecretProvider {
        /// `namespace/name` of the Bucket.
        object: String,
    },
    /// `spec.ref` cannot be used.
    #[error("invalid spec.ref")]
    InvalidRef(#[source] GitError),
    /// A referenced Secret is missing or unusable.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// Listing refs of or fetching from the Git remote failed.
    #[error(transparent)]
    Git(GitError),
    /// Building the bucket client, listing or downloading failed.
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// The blocking git task panicked or was cancelled.
    #[error("git task failed")]
    GitTask(#[source] tokio::task::JoinError),
    /// Packaging the fetched tree failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The blocking packaging task panicked or was cancelled.
    #[error("packaging task failed")]
    PackageTask(#[source] tokio::task::JoinError),
    /// The temporary directory for the fetched tree could not be created.
    #[error("failed to create temporary directory")]
    TempDir(#[source] std::io::Error),
    /// Writing to the artifact storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The bounded class of a failure: the `category` label of
/// `source_controller_reconcile_failures_total`, and what the status records for it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// The spec cannot work as written: Stalled until it changes.
    Config,
    /// A referenced Secret is missing or unusable.
    Credentials,
    /// Talking to the upstream (Git remote, bucket) failed.
    Fetch,
    /// Packaging the fetched tree failed.
    Package,
    /// The artifact storage failed.
    Storage,
    /// A Kubernetes API call of the reconciler failed.
    Kube,
}

impl Category {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Config => "config",
            Category::Credentials => "credentials",
            Category::Fetch => "fetch",
            Category::Package => "package",
            Category::Storage => "storage",
            Category::Kube => "kube",
        }
    }

    /// The failure condition a retryable failure of this class sets (`FetchFailed` or
    /// `StorageOperationFailed`).
    pub fn failure_kind(self) -> FailureKind {
        match self {
            Category::Config | Category::Credentials | Category::Fetch | Category::Kube => FailureKind::Fetch,
            Category::Package | Category::Storage => FailureKind::Storage,
        }
    }
}

impl StepError {
    /// The stable Flux reason of conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            StepError::Unsupported { .. } => reasons::UNSUPPORTED_CONFIGURATION,
            StepError::InvalidUrl { .. } => reasons::URL_INVALID,
            StepError::CertSecretProvider { .. } => reasons::INVALID_PROVIDER_CONFIGURATION,
            StepError::InvalidRef(e) | StepError::Git(e) => e.reason(),
            StepError::Credentials(_) => reasons::AUTHENTICATION_FAILED,
            StepError::Bucket(e) => e.reason(),
            StepError::GitTask(_) => reasons::GIT_OPERATION_FAILED,
            StepError::Archive(e) => e.reason(),
            StepError::PackageTask(_) => reasons::ARCHIVE_OPERATION_FAILED,
            StepError::TempDir(_) => reasons::DIRECTORY_CREATION_FAILED,
            StepError::Storage(e) => e.reason(),
        }
    }

    /// The failure's class; [`Category::Config`] stalls the object.
    pub fn category(&self) -> Category {
        match self {
            StepError::Unsupported { .. }
            | StepError::InvalidUrl { .. }
            | StepError::CertSecretProvider { .. }
            | StepError::InvalidRef(_) => Category::Config,
            StepError::Credentials(_) => Category::Credentials,
            StepError::Git(_) | StepError::Bucket(_) | StepError::GitTask(_) => Category::Fetch,
            StepError::Archive(_) | StepError::PackageTask(_) => Category::Package,
            StepError::TempDir(_) | StepError::Storage(_) => Category::Storage,
        }
    }
}

/// A failed step as the status records it.
#[derive(Debug)]
pub struct Failure {
    /// The Flux reason.
    pub reason: &'static str,
    /// The failure's class.
    pub category: Category,
    /// The whole cause chain, scrubbed of secret values.
    pub message: String,
}

impl Failure {
    /// The failure `error` records, its message passed through `scrub` (which removes the secret
    /// values the step knows of).
    pub fn new(error: &StepError, scrub: impl FnOnce(&str) -> String) -> Self {
        Failure {
            reason: error.reason(),
            category: error.category(),
            message: scrub(&crate::error_chain(error)),
        }
    }

    /// True for a configuration error: Stalled, no retry until the spec changes.
    pub fn stalls(&self) -> bool {
        self.category == Category::Config
    }
}

impl From<StepError> for Failure {
    /// A failure whose message holds no secret value (configuration, storage, credentials keys).
    fn from(error: StepError) -> Self {
        Failure::new(&error, str::to_string)
    }
}

/// Errors that end a reconcile abnormally (API failures); source failures are recorded in status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the Kubernetes API failed.
    #[error("failed to {action} for {kind} '{namespace}/{name}'")]
    Kube {
        /// The object's kind.
        kind: &'static str,
        /// What was attempted.
        action: &'static str,
        /// Object namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The finalizer helper failed.
    #[error("finalizer handling failed")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The failure's class for the failure metric: an API failure, or the class of the error the
    /// finalizer's apply or cleanup ended with.
    pub fn category(&self) -> Category {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(e) => match e.as_ref() {
                F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner.category(),
                F::AddFinalizer(_) | F::RemoveFinalizer(_) | F::UnnamedObject | F::InvalidFinalizer => {
                    Category::Kube
                }
            },
            Error::Kube { .. } => Category::Kube,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn messages_keep_the_whole_cause_chain() {
        let e = StepError::from(StorageError::Write {
            path: PathBuf::from("/data/gitrepository/ns/app/abc.tar.gz"),
            source: std::io::Error::from_raw_os_error(28),
        });
        let f = Failure::from(e);
        assert_eq!(
            f.message,
            "failed to write artifact '/data/gitrepository/ns/app/abc.tar.gz': No space left on device (os error 28)"
        );
        assert_eq!(
            (f.reason, f.category),
            (reasons::ARCHIVE_OPERATION_FAILED, Category::Storage)
        );
        let e = StepError::InvalidRef(GitError::InvalidReference {
            field: "semver",
            value: ">=x".into(),
            reason: "bad constraint".into(),
        });
        assert_eq!(
            Failure::from(e).message,
            "invalid spec.ref: invalid reference semver '>=x': bad constraint"
        );
    }

    #[test]
    fn configuration_errors_stall_and_others_retry() {
        let stall = Failure::from(StepError::InvalidUrl {
            url: "ftp://x".into(),
            why: "unsupported scheme; use http, https or ssh",
        });
        assert!(stall.stalls());
        assert_eq!(stall.reason, reasons::URL_INVALID);
        let auth = Failure::from(StepError::from(CredentialsError::Get {
            secret: "ns/s".into(),
            message: "secrets \"s\" not found".into(),
        }));
        assert!(!auth.stalls());
        assert_eq!(
            (auth.reason, auth.category.failure_kind()),
            (reasons::AUTHENTICATION_FAILED, FailureKind::Fetch)
        );
        let archive = Failure::from(StepError::from(ArchiveError::Finish {
            source: std::io::Error::other("disk full"),
        }));
        assert_eq!(archive.category.failure_kind(), FailureKind::Storage);
        assert_eq!(archive.message, "failed to finish the archive: disk full");
    }

    #[test]
    fn scrub_removes_secret_values_from_the_message() {
        let e = StepError::Git(GitError::Remote(gitops_git::Error::Operation {
            op: "fetch",
            url: "https://example.com/repo.git".into(),
            message: "server said hunter2".into(),
        }));
        let f = Failure::new(&e, |m| m.replace("hunter2", "*****"));
        assert_eq!(
            f.message,
            "failed to fetch 'https://example.com/repo.git': server said *****"
        );
        assert_eq!(f.category.as_str(), "fetch");
    }
}
