//! Materializing a resolved commit for the archive step: the git layer's single-commit fetch
//! (depth 1, by id, lean unpack) either as a tree to stream into the archive ([`fetch_tree`],
//! [`gitops_git::Remote::fetch_tree`]) or checked out into a directory ([`checkout`],
//! [`gitops_git::Remote::fetch_commit`]), plus the commit subject as Flux shows it in events.
//!
//! Fetching by id for every kind of reference (rather than by branch or tag name) guarantees the
//! tree on disk is the commit [`super::resolve`] reported, even if the branch moved in between.

use std::path::Path;
use std::time::Duration;

use gitops_git::Remote;

use super::GitError;
use super::refs::Resolved;
use crate::credentials::Credentials;

/// What [`checkout`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// The commit now checked out (equals the resolved commit).
    pub commit: String,
    /// The commit's subject line as Flux shows it in events: the first line of the message,
    /// cut to 50 characters plus `...` when longer; `None` when the message is empty.
    pub message: Option<String>,
}

/// Fetches the resolved commit from `url` (depth 1) and checks its tree out into `dest`.
///
/// `dest` must be empty or absent; on failure it is removed again if this call created it or
/// found it empty. Runs on a worker thread and gives up after `timeout`; after a timeout the
/// worker may still write into `dest` until it notices the interrupt, so treat `dest` as garbage
/// then. Submodules are not checked out; their paths are empty directories.
///
/// # Errors
/// The git layer's [`gitops_git::Error`] as [`GitError::Remote`]: authentication (rejected
/// credentials or SSH host keys), timeout, URL, or operation (for example a commit the server
/// does not have).
///
/// ```no_run
/// use std::time::Duration;
/// use source_controller::credentials::Credentials;
/// use source_controller::git::{self, GitRef};
///
/// let url = "https://example.com/repo.git";
/// let credentials = Credentials::none();
/// let timeout = Duration::from_secs(60);
/// let resolved = git::resolve(url, &GitRef::from_spec(None)?, &credentials, timeout)?;
/// let done = git::checkout(url, &resolved, &credentials, std::path::Path::new("/tmp/checkout"), timeout)?;
/// println!("stored artifact for commit '{}'", done.message.unwrap_or_default());
/// # Ok::<(), git::GitError>(())
/// ```
pub fn checkout(
    url: &str,
    resolved: &Resolved,
    credentials: &Credentials,
    dest: &Path,
    timeout: Duration,
) -> Result<Checkout, GitError> {
    let fetched = Remote::new(url, credentials, timeout)?.fetch_commit(&resolved.commit, dest)?;
    Ok(Checkout {
        commit: fetched.commit,
        message: short_message(&fetched.message),
    })
}

/// What [`fetch_tree`] produced.
#[derive(Debug)]
pub struct FetchedTree {
    /// The commit's tree, its blobs in the scratch directory given to [`fetch_tree`].
    pub tree: gitops_git::CommitTree,
    /// The commit's subject as in [`Checkout::message`].
    pub message: Option<String>,
}

/// Fetches the resolved commit from `url` (depth 1) as a tree to walk, without a checkout: trees
/// in memory, blob contents in files below `scratch` (see [`gitops_git::Remote::fetch_tree`]).
///
/// `scratch` must be empty or absent and must outlive the returned tree; on failure it is
/// removed again if this call created it or found it empty. Runs on a worker thread and gives
/// up after `timeout` (after a timeout, treat `scratch` as garbage).
///
/// # Errors
/// As [`checkout`].
///
/// ```no_run
/// use std::time::Duration;
/// use source_controller::credentials::Credentials;
/// use source_controller::git::{self, GitRef};
///
/// let url = "https://example.com/repo.git";
/// let credentials = Credentials::none();
/// let timeout = Duration::from_secs(60);
/// let resolved = git::resolve(url, &GitRef::from_spec(None)?, &credentials, timeout)?;
/// let scratch = std::path::Path::new("/tmp/scratch");
/// let fetched = git::fetch_tree(url, &resolved, &credentials, scratch, timeout)?;
/// println!("{} entries at the root", fetched.tree.entries(fetched.tree.root()).len());
/// # Ok::<(), git::GitError>(())
/// ```
pub fn fetch_tree(
    url: &str,
    resolved: &Resolved,
    credentials: &Credentials,
    scratch: &Path,
    timeout: Duration,
) -> Result<FetchedTree, GitError> {
    let tree = Remote::new(url, credentials, timeout)?.fetch_tree(&resolved.commit, scratch)?;
    let message = short_message(&tree.message());
    Ok(FetchedTree { tree, message })
}

/// Flux's `Commit.ShortMessage`: the subject line, at most 50 characters plus `...`.
fn short_message(message: &str) -> Option<String> {
    let subject = message.lines().next().unwrap_or_default().trim_end();
    if subject.is_empty() {
        return None;
    }
    let mut chars = subject.chars();
    let head: String = chars.by_ref().take(50).collect();
    Some(if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    })
}

#[cfg(test)]
mod tests {
    use super::short_message;

    #[test]
    fn short_message_is_the_subject_cut_at_fifty_characters() {
        assert_eq!(short_message("fix: a bug\n\nbody").as_deref(), Some("fix: a bug"));
        assert_eq!(short_message("").as_deref(), None);
        let long = "ä".repeat(60);
        assert_eq!(short_message(&long), Some(format!("{}...", "ä".repeat(50))));
        assert_eq!(short_message(&"x".repeat(50)), Some("x".repeat(50)));
    }
}
