//! The error type of GitRepository's git steps and its mapping to Flux condition reasons: the
//! git layer's [`gitops_git::Error`] plus what only Flux's ref selection can fail with.
//!
//! Variants carry text, not the underlying gix errors, and the git layer scrubs every message
//! of secret values before it is stored, so nothing that reaches a condition, an event or a log
//! can hold a credential.

use gitops_api::conditions::reasons;

/// A failure of a git operation, with the Flux reason it is reported under.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Talking to the remote failed, or the URL or credentials cannot be used.
    #[error(transparent)]
    Remote(#[from] gitops_git::Error),
    /// `spec.ref` cannot be used (bad commit hash, bad semver constraint, bad ref name).
    #[error("invalid reference {field} '{value}': {reason}")]
    InvalidReference {
        /// The field of `spec.ref`, such as `semver` or `commit`.
        field: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The remote repository has no commits.
    #[error("git repository '{url}' is empty")]
    EmptyRepository {
        /// The URL with any password removed.
        url: String,
    },
    /// The branch, tag or ref does not exist on the remote.
    #[error("{kind} '{name}' not found in '{url}'")]
    RefNotFound {
        /// `branch`, `tag` or `ref`.
        kind: &'static str,
        /// The name as given in `spec.ref`.
        name: String,
        /// The URL with any password removed.
        url: String,
    },
    /// No tag parses as a version that satisfies `spec.ref.semver`.
    #[error("no tag in '{url}' matches semver constraint '{constraint}'")]
    NoSemverMatch {
        /// The constraint as written.
        constraint: String,
        /// The URL with any password removed.
        url: String,
    },
}

impl GitError {
    /// The Flux condition reason this error is reported under.
    pub fn reason(&self) -> &'static str {
        match self {
            GitError::Remote(e) => remote_reason(e),
            GitError::EmptyRepository { .. } => reasons::EMPTY_GIT_REPOSITORY,
            GitError::InvalidReference { .. }
            | GitError::RefNotFound { .. }
            | GitError::NoSemverMatch { .. } => reasons::GIT_OPERATION_FAILED,
        }
    }
}

/// The Flux reason of a git-layer failure.
fn remote_reason(e: &gitops_git::Error) -> &'static str {
    use gitops_git::Error;
    match e {
        Error::InvalidUrl { .. } => reasons::URL_INVALID,
        Error::InvalidSecret(_) | Error::Authentication { .. } => reasons::AUTHENTICATION_FAILED,
        Error::Unsupported { .. } => reasons::UNSUPPORTED_CONFIGURATION,
        Error::Timeout { .. } | Error::Operation { .. } | Error::Io { .. } => reasons::GIT_OPERATION_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_error_maps_to_its_flux_reason() {
        let url = || "https://example.com/repo.git".to_string();
        let cases = [
            (
                gitops_git::Error::InvalidUrl {
                    url: url(),
                    reason: "x".into(),
                }
                .into(),
                "URLInvalid",
            ),
            (
                gitops_git::Error::InvalidSecret("x".into()).into(),
                "AuthenticationFailed",
            ),
            (
                gitops_git::Error::Authentication {
                    url: url(),
                    message: "x".into(),
                }
                .into(),
                "AuthenticationFailed",
            ),
            (
                gitops_git::Error::Unsupported {
                    url: url(),
                    reason: "x".into(),
                }
                .into(),
                "UnsupportedConfiguration",
            ),
            (GitError::EmptyRepository { url: url() }, "EmptyGitRepository"),
            (
                GitError::RefNotFound {
                    kind: "branch",
                    name: "main".into(),
                    url: url(),
                },
                "GitOperationFailed",
            ),
            (
                gitops_git::Error::Timeout {
                    op: "fetch",
                    url: url(),
                    timeout: Duration::from_secs(1),
                }
                .into(),
                "GitOperationFailed",
            ),
        ];
        for (err, reason) in cases {
            assert_eq!(err.reason(), reason, "{err}");
        }
    }

    #[test]
    fn messages_name_the_ref_and_the_url() {
        let err = GitError::RefNotFound {
            kind: "branch",
            name: "feature/x".into(),
            url: "http://127.0.0.1/git/demo.git".into(),
        };
        assert_eq!(
            err.to_string(),
            "branch 'feature/x' not found in 'http://127.0.0.1/git/demo.git'"
        );
    }
}
