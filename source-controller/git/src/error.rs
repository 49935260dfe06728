//! The error type of the git layer: what went wrong talking to a remote, with the URL (password
//! removed) and a message scrubbed of every credential value.
//!
//! Variants carry text, not the underlying gix errors: those can quote URLs and server replies,
//! and every message is scrubbed (see [`crate::Credentials::scrub`]) before it is stored here, so
//! nothing that reaches a condition, an event or a log can hold a credential. How a variant is
//! reported (Flux reasons, Kluctl messages) is the caller's business.

use std::time::Duration;

/// A failure of the git layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL cannot be used (bad syntax, unsupported scheme, SCP-like form where not allowed).
    #[error("invalid git URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL with any password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The credentials are incomplete or contradictory (names keys, never values).
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
    /// The operation did not finish within its timeout.
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

impl Error {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// An error and its sources, joined with `: `; a source whose text already ends the message
/// (an error that prints its source) is not repeated.
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// #[error("failed to read 'a.yaml'")]
/// struct ReadError(#[source] std::io::Error);
///
/// let e = ReadError(std::io::Error::other("permission denied"));
/// assert_eq!(gitops_git::error_chain(&e), "failed to read 'a.yaml': permission denied");
/// ```
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    join_errors(std::iter::successors(Some(e), |e| e.source()))
}

/// Joins the texts of `errors` with `: `, leaving out empty texts and texts the joined message
/// already ends with.
pub(crate) fn join_errors<E: std::fmt::Display>(errors: impl Iterator<Item = E>) -> String {
    let mut out = String::new();
    for e in errors {
        let text = e.to_string();
        if text.is_empty() || out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read 'x'")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("failed to fetch: {0}")]
    struct Printing(#[source] std::io::Error);

    #[test]
    fn error_chain_joins_sources_once() {
        let e = Outer(std::io::Error::other("permission denied"));
        assert_eq!(error_chain(&e), "failed to read 'x': permission denied");
        let e = Printing(std::io::Error::other("timed out"));
        assert_eq!(error_chain(&e), "failed to fetch: timed out");
    }
}
