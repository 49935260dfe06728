//! Materializing a resolved commit: a shallow (depth 1) fetch of exactly that commit, by its id,
//! and a checkout of its tree into a directory.
//!
//! Fetching by id for every kind of reference (rather than by branch or tag name) guarantees the
//! tree on disk is the commit [`super::resolve`] reported, even if the branch moved in between.
//! Protocol v2 servers (git-http-backend, git daemon, sshd + git, GitHub, GitLab) accept any
//! commit id in a `want`.
//!
//! gix speaks the protocol (connection, credentials, handshake, `want <id>` + `deepen 1`); the
//! pack it hands over is stored and checked out by `git::unpack`, which reads it back with
//! positioned reads instead of gix's memory map (see there why). The scratch files live in
//! `dest/.git` while the checkout runs and are removed when it succeeds.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use gix::bstr::ByteSlice as _;
use gix::error::ErrorExt as _;

use super::GitError;
use super::auth::Auth;
use super::refs::Resolved;
use super::transport::{Session, run_with_deadline};
use super::unpack;

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
    let want = gix::ObjectId::from_hex(resolved.commit.as_bytes())
        .map_err(|e| session.failure(OP, &format!("'{}' is not a commit id: {e}", resolved.commit)))?;
    let commit = resolved.commit.clone();
    let dest = dest.to_path_buf();
    let display_url = session.display_url.clone();
    let existed = match fs_err::read_dir(&dest).map(|mut entries| entries.next().is_none()) {
        Ok(false) => {
            return Err(session.failure(OP, &format!("the destination '{}' is not empty", dest.display())));
        }
        Ok(true) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(session.failure(OP, &e.to_string())),
    };
    run_with_deadline(OP, &display_url, timeout, move |interrupt| {
        let result = fetch_and_check_out(&session, want, &dest, interrupt);
        if result.is_err() {
            // Leave `dest` as it was found; a failure here changes nothing about the error.
            let _ = fs_err::remove_dir_all(&dest);
            if existed {
                let _ = fs_err::create_dir(&dest);
            }
        }
        let message = result?.message.to_str().ok().and_then(short_message);
        Ok(Checkout { commit, message })
    })
}

fn fetch_and_check_out(
    session: &Session,
    want: gix::ObjectId,
    dest: &Path,
    interrupt: &AtomicBool,
) -> Result<unpack::CheckedOut, GitError> {
    let git_dir = dest.join(".git");
    fs_err::create_dir_all(&git_dir).map_err(|e| session.failure("fetch", &e.to_string()))?;
    let received = fetch_pack(session, &git_dir, want, interrupt)?;
    let done = received
        .check_out(want, dest, interrupt)
        .map_err(|e| unpack_error(session, "check out", e))?;
    // The pack, and blobs no path of the tree used, are of no further use.
    fs_err::remove_dir_all(&git_dir).map_err(|e| session.failure("check out", &e.to_string()))?;
    Ok(done)
}

/// Connects, asks for `want` at depth 1 and receives the pack into `git_dir`.
fn fetch_pack(
    session: &Session,
    git_dir: &Path,
    want: gix::ObjectId,
    interrupt: &AtomicBool,
) -> Result<unpack::Received, GitError> {
    const OP: &str = "fetch";
    let repo = session.scratch_repo(&git_dir.join("repo"), OP)?;
    let remote = repo
        .remote_at_without_url_rewrite(session.url.clone())
        .map(|r| r.with_fetch_tags(gix::remote::fetch::Tags::None))
        .map_err(|e| session.error(OP, &e))?;
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| session.error(OP, &e))?;
    let transport = connection.transport_mut();
    if let Some(options) = session.transport_options() {
        transport
            .configure(&options)
            .map_err(|e| session.failure(OP, &format!("configuring the transport failed: {e}")))?;
    }
    let mut handshake = gix::protocol::handshake(
        &mut *transport,
        gix::protocol::transport::Service::UploadPack,
        session.credentials(),
        Vec::new(),
        &mut gix::progress::Discard,
    )
    .map_err(|e| session.error(OP, &e))?;
    let protocol = handshake.server_protocol_version;
    let mut received = None;
    let shallow = gix::protocol::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN);
    let fetched = gix::protocol::fetch(
        &mut WantOne(want),
        |pack, _, interrupt| {
            let result = unpack::receive(pack, git_dir, interrupt);
            let ok = result.is_ok();
            received = Some(result);
            if ok {
                Ok(true)
            } else {
                Err(gix::error::Message::new("the received pack could not be stored").raise())
            }
        },
        gix::progress::Discard,
        interrupt,
        gix::protocol::fetch::Context {
            handshake: &mut handshake,
            transport: &mut *transport,
            user_agent: ("agent", Some(gix::protocol::agent(gix::env::agent()))),
            trace_packetlines: false,
        },
        gix::protocol::fetch::Options {
            shallow_file: git_dir.join("shallow"),
            shallow: &shallow,
            tags: gix::protocol::fetch::Tags::None,
            reject_shallow_remote: false,
        },
    );
    // Our own error says more than gix's wrapper of it.
    let received = received.transpose().map_err(|e| unpack_error(session, OP, e))?;
    fetched.map_err(|e| session.error(OP, &e))?;
    if protocol == gix::protocol::transport::Protocol::V2 {
        gix::protocol::indicate_end_of_interaction(&mut *transport, false).ok();
    }
    received.ok_or_else(|| session.failure(OP, &format!("the server sent no pack for commit {want}")))
}

/// The one negotiation a fresh depth-1 fetch needs: want the commit, have nothing.
struct WantOne(gix::ObjectId);

impl gix::protocol::fetch::Negotiate for WantOne {
    fn mark_complete_and_common_ref(&mut self) -> gix::Result<gix::protocol::fetch::negotiate::Action> {
        Ok(gix::protocol::fetch::negotiate::Action::MustNegotiate {
            remote_ref_target_known: Vec::new(),
        })
    }

    fn add_wants(&mut self, arguments: &mut gix::protocol::fetch::Arguments, _: &[bool]) -> bool {
        arguments.want(self.0);
        true
    }

    fn one_round(
        &mut self,
        _: &mut gix::protocol::fetch::negotiate::one_round::State,
        _: &mut gix::protocol::fetch::Arguments,
        _: Option<&gix::protocol::fetch::Response>,
    ) -> gix::Result<(gix::protocol::fetch::negotiate::Round, bool)> {
        Ok((
            gix::protocol::fetch::negotiate::Round {
                haves_sent: 0,
                in_vain: 0,
                haves_to_send: 0,
                previous_response_had_at_least_one_in_common: false,
            },
            true,
        ))
    }
}

fn unpack_error(session: &Session, op: &'static str, e: unpack::UnpackError) -> GitError {
    match e {
        unpack::UnpackError::Io(e) => session.failure(op, &e.to_string()),
        unpack::UnpackError::Invalid(message) => session.failure(op, &message),
        unpack::UnpackError::Interrupted => session.failure(op, "interrupted"),
    }
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
