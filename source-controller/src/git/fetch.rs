//! Materializing a resolved commit: a shallow (depth 1) fetch of exactly that commit, by its id,
//! and a checkout of its tree into a directory.
//!
//! Fetching by id for every kind of reference (rather than by branch or tag name) guarantees the
//! tree on disk is the commit [`super::resolve`] reported, even if the branch moved in between.
//! Protocol v2 servers (git-http-backend, git daemon, sshd + git, GitHub, GitLab) accept any
//! commit id in a `want`. The destination holds the worktree plus the `.git` directory gix needs;
//! the archive step drops `.git/`.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gix::bstr::ByteSlice as _;

use super::GitError;
use super::auth::Auth;
use super::refs::Resolved;
use super::transport::{Session, run_with_deadline};

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
/// then. Submodules are not checked out.
///
/// # Errors
/// [`GitError::Authentication`] for rejected credentials or SSH host keys,
/// [`GitError::Timeout`], [`GitError::InvalidUrl`], or [`GitError::Operation`] (for example a
/// commit the server does not have).
///
/// ```no_run
/// use std::time::Duration;
/// use source_controller::git::{self, Auth, GitRef};
///
/// let url = "https://example.com/repo.git";
/// let auth = Auth::none();
/// let timeout = Duration::from_secs(60);
/// let resolved = git::resolve(url, &GitRef::from_spec(None)?, &auth, timeout)?;
/// let done = git::checkout(url, &resolved, &auth, std::path::Path::new("/tmp/checkout"), timeout)?;
/// println!("stored artifact for commit '{}'", done.message.unwrap_or_default());
/// # Ok::<(), git::GitError>(())
/// ```
pub fn checkout(
    url: &str,
    resolved: &Resolved,
    auth: &Auth,
    dest: &Path,
    timeout: Duration,
) -> Result<Checkout, GitError> {
    const OP: &str = "fetch";
    let mut session = Session::new(url, auth, timeout)?;
    // Temporary ssh files stay with this thread, so they go when it stops waiting.
    let _files = session.take_files();
    let session = Arc::new(session);
    let commit = resolved.commit.clone();
    let dest = dest.to_path_buf();
    let display_url = session.display_url.clone();
    run_with_deadline(OP, &display_url, timeout, move |interrupt| {
        let for_connection = Arc::clone(&session);
        let mut prepare = gix::clone::PrepareFetch::new(
            session.url.clone(),
            &dest,
            gix::create::Kind::WithWorktree,
            gix::create::Options::default(),
            session.open_options(),
        )
        .and_then(|p| p.with_revision(Some(commit.as_str())))
        .map_err(|e| session.error(OP, &e))?
        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN))
        .configure_connection(move |connection| {
            for_connection.configure(connection);
            Ok(())
        });
        let (mut worktree, _) = prepare
            .fetch_then_checkout(gix::progress::Discard, interrupt)
            .map_err(|e| session.error(OP, &e))?;
        let (repo, _) = worktree
            .main_worktree(gix::progress::Discard, interrupt)
            .map_err(|e| session.error("check out", &e))?;
        if interrupt.load(Ordering::SeqCst) {
            return Err(session.failure("check out", "interrupted"));
        }
        let head = repo
            .head_id()
            .map_err(|e| session.failure("check out", &e.to_string()))?;
        if gix::ObjectId::from_hex(commit.as_bytes()).ok() != Some(head.detach()) {
            return Err(session.failure(
                "check out",
                &format!("HEAD is '{head}' but commit '{commit}' was requested"),
            ));
        }
        let message = head
            .object()
            .ok()
            .and_then(|o| o.try_into_commit().ok())
            .and_then(|c| c.message_raw_sloppy().to_str().ok().and_then(short_message));
        Ok(Checkout { commit, message })
    })
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
