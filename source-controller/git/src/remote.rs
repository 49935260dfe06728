//! One remote repository and the things done with it: list its refs (ls-refs, no objects) and
//! fetch exactly one commit (depth 1), either checked out into a directory or as a tree to walk.
//!
//! ```text
//!   Remote::new(url, &Credentials, timeout)      URL checks + connection set-up (crate::session)
//!     ├─ list_refs(prefixes) ──► RefListing { refs: [RemoteRef { name, commit }], head_target }
//!     ├─ fetch_commit(id, dest) ──► FetchedCommit { commit, message }
//!     │    want <id> + deepen 1 ─► pack ─► crate::unpack (positioned reads, no memory map)
//!     │                                 ─► the commit's tree in dest
//!     └─ fetch_tree(id, scratch) ──► CommitTree (crate::tree)
//!          want <id> + deepen 1 ─► pack ─► crate::unpack ─► trees in memory, blobs in scratch
//! ```
//!
//! Each operation runs on a worker thread and gives up after the timeout (see
//! `session::run_with_deadline`). Fetching by id (rather than by branch or tag name) guarantees
//! the tree on disk is the commit the caller resolved, even if the branch moved in between;
//! protocol v2 servers (git-http-backend, git daemon, sshd + git, GitHub, GitLab) accept any
//! commit id in a `want`. Which ref to follow is the caller's business: Flux's precedence and
//! semver live in source-controller, Kluctl's branch/tag/commit/default in the engine.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gix::bstr::ByteSlice as _;
use gix::error::ErrorExt as _;

use crate::session::{Session, run_with_deadline};
use crate::{CommitTree, Credentials, Error, unpack};

/// One ref advertised by the remote, with the commit it (eventually) points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    /// Full name, e.g. `refs/heads/main` or `HEAD`.
    pub name: String,
    /// The peeled object id (annotated tags resolve to their commit), 40 lowercase hex digits.
    pub commit: String,
}

/// What one ls-refs call returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefListing {
    /// The refs with a commit, in the server's order (unborn refs are left out).
    pub refs: Vec<RemoteRef>,
    /// The full name `HEAD` points to (`refs/heads/main`), when the server says; also for a
    /// repository without commits.
    pub head_target: Option<String>,
}

/// What [`Remote::fetch_commit`] checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedCommit {
    /// The commit now checked out, 40 lowercase hex digits.
    pub commit: String,
    /// The full commit message (everything after the headers), lossily as UTF-8.
    pub message: String,
}

/// A git remote ready for operations: URL checked, credentials and transport set up.
///
/// Temporary files of the connection (strict ssh: key, known_hosts, wrapper) belong to this
/// value, not to the worker threads, so they are removed when it drops even if a timed-out
/// worker is still running.
pub struct Remote {
    session: Arc<Session>,
    _files: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.session.display_url)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Checks `url` and prepares the connection for `credentials`; nothing is sent yet.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for URLs outside `http(s)://`, `ssh://`, `git://` (SCP-like forms
    /// and local paths are accepted with [`crate::SshMode::System`] only),
    /// [`Error::Unsupported`] for a proxy with a non-HTTP URL, [`Error::InvalidSecret`] for an
    /// ssh URL without an [`crate::SshMode`], [`Error::Io`] when the ssh files cannot be written.
    pub fn new(url: &str, credentials: &Credentials, timeout: Duration) -> Result<Self, Error> {
        let mut session = Session::new(url, credentials, timeout)?;
        let files = session.take_files();
        Ok(Remote {
            session: Arc::new(session),
            _files: files,
        })
    }

    /// The URL as messages show it (no password).
    pub fn display_url(&self) -> &str {
        &self.session.display_url
    }

    /// Lists the remote's refs with one ls-refs call (protocol v2), without fetching objects.
    ///
    /// `specs` are fetch refspecs (`refs/heads/main`, `refs/tags/*:refs/tags/*`, `HEAD`) whose
    /// prefixes the server filters by; an empty slice lists every ref. Runs on a worker thread
    /// and gives up after the timeout.
    ///
    /// # Errors
    /// [`Error::Authentication`] for rejected or missing credentials and failed SSH host-key
    /// checks, [`Error::Timeout`], [`Error::Operation`] for anything else.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use gitops_git::{Credentials, Remote};
    ///
    /// let remote = Remote::new("https://example.com/repo.git", &Credentials::none(), Duration::from_secs(60))?;
    /// for r in remote.list_refs(&["refs/heads/*:refs/heads/*"])?.refs {
    ///     println!("{} {}", r.commit, r.name);
    /// }
    /// # Ok::<(), gitops_git::Error>(())
    /// ```
    pub fn list_refs(&self, specs: &[&str]) -> Result<RefListing, Error> {
        self.list_refs_within(specs, self.session.timeout())
    }

    /// [`Remote::list_refs`] with its own `timeout` instead of the remote's, for a caller that
    /// spreads one deadline over several listings.
    ///
    /// # Errors
    /// As [`Remote::list_refs`].
    pub fn list_refs_within(&self, specs: &[&str], timeout: Duration) -> Result<RefListing, Error> {
        const OP: &str = "list references of";
        // gix needs a repository to talk to a remote: an empty bare one, on the caller's side
        // so that it goes when the caller stops waiting.
        let scratch = tempfile::Builder::new()
            .prefix("git-ls-refs-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory for", Path::new("ls-refs"), e))?;
        let scratch_path = scratch.path().to_path_buf();
        let session = Arc::clone(&self.session);
        let (specs, filter) = if specs.is_empty() {
            (vec!["HEAD".to_string()], false)
        } else {
            (specs.iter().map(ToString::to_string).collect(), true)
        };
        let result = run_with_deadline(OP, self.display_url(), timeout, move |interrupt| {
            // A worker that starts only after the deadline must not recreate the removed scratch
            // directory; one that finishes after it cleans up behind itself.
            if interrupt.load(Ordering::SeqCst) {
                return Err(session.failure(OP, "interrupted"));
            }
            let result = session
                .scratch_repo(&scratch_path, OP)
                .and_then(|repo| list(&repo, &session, &specs, filter));
            if interrupt.load(Ordering::SeqCst) {
                let _ = fs_err::remove_dir_all(&scratch_path);
            }
            result
        });
        drop(scratch);
        result
    }

    /// Fetches `commit` (40 hex digits) at depth 1 and checks its tree out into `dest`.
    ///
    /// `dest` must be empty or absent; on failure it is removed again if this call created it or
    /// found it empty. The pack is received and checked out by the lean unpacker (positioned
    /// reads, no memory map; see `unpack`); its scratch files live in `dest/.git` while the
    /// checkout runs and are removed when it succeeds. After a timeout the worker may still write
    /// into `dest` until it notices the interrupt, so treat `dest` as garbage then. Submodules
    /// are not checked out; their paths are empty directories.
    ///
    /// # Errors
    /// [`Error::Authentication`] for rejected credentials or SSH host keys, [`Error::Timeout`],
    /// or [`Error::Operation`] (a commit the server does not have, a non-empty `dest`, ...).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use gitops_git::{Credentials, Remote};
    ///
    /// let remote = Remote::new("https://example.com/repo.git", &Credentials::none(), Duration::from_secs(60))?;
    /// let head = &remote.list_refs(&["HEAD"])?.refs[0];
    /// let done = remote.fetch_commit(&head.commit, std::path::Path::new("/tmp/checkout"))?;
    /// println!("checked out {}", done.commit);
    /// # Ok::<(), gitops_git::Error>(())
    /// ```
    pub fn fetch_commit(&self, commit: &str, dest: &Path) -> Result<FetchedCommit, Error> {
        self.fetch_into(commit, dest, |session, want, dest, interrupt| {
            let done = fetch_and_check_out(session, want, dest, interrupt)?;
            Ok(FetchedCommit {
                commit: want.to_hex().to_string(),
                message: done.message.to_str_lossy().into_owned(),
            })
        })
    }

    /// Fetches `commit` (40 hex digits) at depth 1 and returns its tree, checked but not checked
    /// out: trees in memory, blob contents in files below `scratch`, for a caller that streams
    /// the tree somewhere (source-controller packs it into an archive) rather than needing a
    /// directory.
    ///
    /// `scratch` must be empty or absent and must outlive the returned [`CommitTree`], which
    /// reads its blobs from there; on failure it is removed again if this call created it or
    /// found it empty. The tree passes the checks of [`Remote::fetch_commit`]: pack checksum,
    /// every object id computed, the commit the one asked for, plain entry names, every tree and
    /// blob present. After a timeout the worker may still write into `scratch` until it notices
    /// the interrupt, so treat it as garbage then.
    ///
    /// # Errors
    /// As [`Remote::fetch_commit`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use gitops_git::{Credentials, EntryKind, Remote};
    ///
    /// let remote = Remote::new("https://example.com/repo.git", &Credentials::none(), Duration::from_secs(60))?;
    /// let head = &remote.list_refs(&["HEAD"])?.refs[0];
    /// let scratch = tempfile::tempdir().expect("a temporary directory");
    /// let tree = remote.fetch_tree(&head.commit, scratch.path())?;
    /// for entry in tree.entries(tree.root()) {
    ///     if let EntryKind::File { blob, .. } = entry.kind() {
    ///         println!("{:?}: {} bytes", entry.name(), tree.read_blob(blob).expect("blob").len());
    ///     }
    /// }
    /// # Ok::<(), gitops_git::Error>(())
    /// ```
    pub fn fetch_tree(&self, commit: &str, scratch: &Path) -> Result<CommitTree, Error> {
        self.fetch_into(commit, scratch, |session, want, scratch, interrupt| {
            fs_err::create_dir_all(scratch).map_err(|e| session.failure("fetch", &e.to_string()))?;
            let received = fetch_pack(session, scratch, want, interrupt)?;
            let tree = received
                .into_tree(want, interrupt)
                .map_err(|e| unpack_error(session, "fetch", e))?;
            // gix's scratch repository; the blobs stay for the caller.
            fs_err::remove_dir_all(scratch.join("repo"))
                .map_err(|e| session.failure("fetch", &e.to_string()))?;
            Ok(tree)
        })
    }

    /// Runs `work` on a worker thread within the deadline, for a destination `dir` that must be
    /// empty or absent and is left as found when `work` fails.
    fn fetch_into<T: Send + 'static>(
        &self,
        commit: &str,
        dir: &Path,
        work: impl FnOnce(&Session, gix::ObjectId, &Path, &AtomicBool) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        const OP: &str = "fetch";
        let session = Arc::clone(&self.session);
        let want = gix::ObjectId::from_hex(commit.as_bytes())
            .map_err(|e| session.failure(OP, &format!("'{commit}' is not a commit id: {e}")))?;
        let dir = dir.to_path_buf();
        let existed = match fs_err::read_dir(&dir).map(|mut entries| entries.next().is_none()) {
            Ok(false) => {
                return Err(session.failure(OP, &format!("the destination '{}' is not empty", dir.display())));
            }
            Ok(true) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(session.failure(OP, &e.to_string())),
        };
        run_with_deadline(OP, self.display_url(), session.timeout(), move |interrupt| {
            let result = work(&session, want, &dir, interrupt);
            if result.is_err() {
                // Leave `dir` as it was found; a failure here changes nothing about the error.
                let _ = fs_err::remove_dir_all(&dir);
                // After a timeout the caller stopped waiting and may have removed `dir` with its
                // temporary parent: do not bring back a directory nobody owns.
                if existed && !interrupt.load(Ordering::SeqCst) {
                    let _ = fs_err::create_dir(&dir);
                }
            }
            result
        })
    }
}

/// One ls-refs round trip on an open scratch repository.
fn list(
    repo: &gix::Repository,
    session: &Session,
    specs: &[String],
    filter: bool,
) -> Result<RefListing, Error> {
    const OP: &str = "list references of";
    let remote = repo
        .remote_at_without_url_rewrite(session.url.clone())
        .and_then(|r| r.with_refspecs(specs.iter().map(String::as_str), gix::remote::Direction::Fetch))
        .map(|r| r.with_fetch_tags(gix::remote::fetch::Tags::None))
        .map_err(|e| session.error(OP, &e))?;
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| session.error(OP, &e))?;
    session.configure(&mut connection);
    let (ref_map, _handshake) = connection
        .ref_map(
            gix::progress::Discard,
            gix::remote::ref_map::Options {
                prefix_from_spec_as_filter_on_remote: filter,
                ..Default::default()
            },
        )
        .map_err(|e| session.error(OP, &e))?;
    let mut listing = RefListing::default();
    for r in &ref_map.remote_refs {
        use gix::protocol::handshake::Ref;
        match r {
            Ref::Direct {
                full_ref_name,
                object,
            }
            | Ref::Peeled {
                full_ref_name,
                object,
                ..
            } => listing.refs.push(RemoteRef {
                name: full_ref_name.to_string(),
                commit: object.to_hex().to_string(),
            }),
            Ref::Symbolic {
                full_ref_name,
                target,
                object,
                ..
            } => {
                if full_ref_name == "HEAD" {
                    listing.head_target = Some(target.to_string());
                }
                listing.refs.push(RemoteRef {
                    name: full_ref_name.to_string(),
                    commit: object.to_hex().to_string(),
                });
            }
            // HEAD of a repository without commits still names the default branch.
            Ref::Unborn {
                full_ref_name,
                target,
            } => {
                if full_ref_name == "HEAD" {
                    listing.head_target = Some(target.to_string());
                }
            }
        }
    }
    Ok(listing)
}

fn fetch_and_check_out(
    session: &Session,
    want: gix::ObjectId,
    dest: &Path,
    interrupt: &AtomicBool,
) -> Result<unpack::CheckedOut, Error> {
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
) -> Result<unpack::Received, Error> {
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

fn unpack_error(session: &Session, op: &'static str, e: unpack::UnpackError) -> Error {
    match e {
        unpack::UnpackError::Io(e) => session.failure(op, &e.to_string()),
        unpack::UnpackError::Invalid(message) => session.failure(op, &message),
        unpack::UnpackError::Interrupted => session.failure(op, "interrupted"),
    }
}
