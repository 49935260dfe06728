//! The one error type of the git module and its mapping to Flux condition reasons.
//!
//! Variants carry text, not the underlying gix errors: those can quote URLs and server replies,
//! and every message is scrubbed of secret values (see [`super::auth::Auth::scrub`]) before it
//! is stored here, so nothing that reaches a condition, an event or a log can hold a credential.

use std::time::Duration;

use gitops_api::conditions::reasons;

/// A failure of a git operation, with the Flux reason it is reported under.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL cannot be used (bad syntax, unsupported scheme, SCP-like form).
    #[error("invalid git URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL with any password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
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
    /// The Secret's data is incomplete or contradictory (names keys, never values).
    #[error("invalid secret data: {0}")]
    InvalidSecret(String),
    /// The combination of URL and options is not supported.
    #[error("unsupported configuration for '{url}': {reason}")]
    Unsupported {
        /// The URL with any password removed.
        url: String,
        /// What cannot be done.
        reason: String,
    },
    /// The server rejected or required credentials, or the SSH host key did not verify.
    #[error("authentication failed for '{url}': {message}")]
    Authentication {
        /// The URL with any password removed.
        url: String,
        /// The scrubbed cause.
        message: String,
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
    /// The operation did not finish within `spec.timeout`.
    #[error("failed to {op} '{url}': timed out after {timeout:?}")]
    Timeout {
        /// The operation, such as `list references of` or `fetch`.
        op: &'static str,
        /// The URL with any password removed.
        url: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// Any other failure of a git operation.
    #[error("failed to {op} '{url}': {message}")]
    Operation {
        /// The operation, such as `list references of` or `fetch`.
        op: &'static str,
        /// The URL with any password removed.
        url: String,
        /// The scrubbed cause chain.
        message: String,
    },
    /// Local file-system work around the operation failed.
    #[error("failed to {action} '{path}': {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// The Flux condition reason this error is reported under.
    pub fn reason(&self) -> &'static str {
        match self {
            GitError::InvalidUrl { .. } => reasons::URL_INVALID,
            GitError::InvalidSecret(_) | GitError::Authentication { .. } => reasons::AUTHENTICATION_FAILED,
            GitError::EmptyRepository { .. } => reasons::EMPTY_GIT_REPOSITORY,
            GitError::Unsupported { .. } => reasons::UNSUPPORTED_CONFIGURATION,
            GitError::InvalidReference { .. }
            | GitError::RefNotFound { .. }
            | GitError::NoSemverMatch { .. }
            | GitError::Timeout { .. }
            | GitError::Operation { .. }
            | GitError::Io { .. } => reasons::GIT_OPERATION_FAILED,
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        GitError::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_flux_reason() {
        let url = || "https://example.com/repo.git".to_string();
        let cases = [
            (
                GitError::InvalidUrl {
                    url: url(),
                    reason: "x".into(),
                },
                "URLInvalid",
            ),
            (GitError::InvalidSecret("x".into()), "AuthenticationFailed"),
            (
                GitError::Authentication {
                    url: url(),
                    message: "x".into(),
                },
                "AuthenticationFailed",
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
                GitError::Timeout {
                    op: "fetch",
                    url: url(),
                    timeout: Duration::from_secs(1),
                },
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
