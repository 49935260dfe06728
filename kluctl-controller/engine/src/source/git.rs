//! Git repositories a project refers to (`git` includes, `git` and `gitFiles` vars): the remote's
//! refs, and the tree of one commit checked out into a cache directory.
//!
//! ```text
//! url ──ls-refs (one round trip, remembered per run)──► RepoInfo { default branch, refs → commit }
//!     └─ resolve(ref: branch | tag | commit | default) ─► commit
//!          └─ checkout: <cache>/<url key>/<commit>/ (shallow fetch of the commit, worktree,
//!             `.git` dropped; a finished checkout is reused by every later run)
//! ```
//!
//! A commit's tree never changes, so the cache is keyed by commit and needs no invalidation;
//! the refs are listed again on every run (Kluctl's git cache likewise asks the remote on each
//! command). Checkouts are written to a temporary sibling and renamed into place, so a
//! concurrent or interrupted run never sees half a tree.
//!
//! Credentials come from the environment as Kluctl reads them: `KLUCTL_GIT_[<n>_]HOST`,
//! `..._USERNAME`, `..._PASSWORD`, optionally `..._PATH` (a glob on the URL path); `HOST` matches
//! the URL's host with or without its port. `ssh://`
//! URLs run the system `ssh` (`GIT_SSH_COMMAND` is honoured), so the user's agent and
//! `~/.ssh/config` apply. Nothing prompts, and no machine-level git configuration is read.
//!
//! gix does the protocol work (ls-refs, shallow fetch by commit id, checkout); what is written
//! here is only the cache layout, ref selection and credential matching.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use gix::bstr::ByteSlice as _;
use gix::credentials::helper::{Action, NextAction};
use gix::credentials::protocol::Outcome;

use sha2::Digest as _;

use super::GitRef;

/// Why a Git operation failed. Messages name the URL (without credentials).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The remote could not be listed or fetched.
    #[error("failed to {op} '{url}': {message}")]
    Remote {
        /// What was attempted.
        op: &'static str,
        /// The repository URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The requested branch or tag does not exist.
    #[error("ref '{reference}' not found in '{url}'")]
    RefNotFound {
        /// `refs/heads/x` or `refs/tags/y`.
        reference: String,
        /// The repository URL.
        url: String,
    },
    /// The operation ran into the timeout.
    #[error("failed to {op} '{url}': timed out after {timeout:?}")]
    Timeout {
        /// What was attempted.
        op: &'static str,
        /// The repository URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The cache directory could not be written.
    #[error("failed to write the git cache at '{path}': {message}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What the remote advertises.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoInfo {
    /// The branch `HEAD` points to (`main`), if the remote says.
    pub default_branch: Option<String>,
    /// `refs/heads/*` and `refs/tags/*` → commit (annotated tags peeled), sorted by name.
    pub refs: BTreeMap<String, String>,
}

impl RepoInfo {
    /// The full ref name and commit `reference` selects; the default branch when `None`.
    ///
    /// # Errors
    /// [`GitError::RefNotFound`] when the branch or tag does not exist.
    pub fn resolve(
        &self,
        url: &str,
        reference: Option<&GitRef>,
    ) -> Result<(Option<String>, String), GitError> {
        let name = match reference {
            Some(GitRef { commit: Some(c), .. }) => return Ok((None, c.to_lowercase())),
            Some(GitRef { tag: Some(t), .. }) => format!("refs/tags/{t}"),
            Some(GitRef { branch: Some(b), .. }) => format!("refs/heads/{b}"),
            _ => format!("refs/heads/{}", self.default_branch.as_deref().unwrap_or("HEAD")),
        };
        match self.refs.get(&name) {
            Some(commit) => Ok((Some(name), commit.clone())),
            None => Err(GitError::RefNotFound {
                reference: name,
                url: redact(url),
            }),
        }
    }
}

/// One `KLUCTL_GIT_*` credentials entry.
#[derive(Clone)]
struct Credential {
    host: String,
    path: Option<globset::GlobMatcher>,
    username: String,
    password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("host", &self.host)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The per-user cache of Git checkouts plus the refs listed during this run.
#[derive(Debug)]
pub struct GitCache {
    dir: PathBuf,
    credentials: Vec<Credential>,
    ssh_command: Option<String>,
    timeout: Duration,
    infos: Mutex<HashMap<String, Arc<RepoInfo>>>,
    /// Serialises checkouts within the process, so a commit named twice is fetched once.
    busy: Mutex<()>,
}

impl GitCache {
    /// A cache in `dir` using the credentials and `GIT_SSH_COMMAND` found in `env`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>, env: &BTreeMap<String, String>) -> Self {
        Self {
            dir: dir.into(),
            credentials: credentials_from_env(env),
            ssh_command: env.get("GIT_SSH_COMMAND").filter(|s| !s.is_empty()).cloned(),
            timeout: Duration::from_secs(300),
            infos: Mutex::new(HashMap::new()),
            busy: Mutex::new(()),
        }
    }

    /// `$XDG_CACHE_HOME/kluctl/git`, else `~/.cache/kluctl/git`, else a temp dir.
    #[must_use]
    pub fn default_dir() -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("kluctl")
            .join("git")
    }

    /// The remote's refs, listed once per URL and cache.
    ///
    /// # Errors
    /// [`GitError`] when the remote cannot be listed.
    pub fn repo_info(&self, url: &str) -> Result<Arc<RepoInfo>, GitError> {
        if let Some(info) = self.infos.lock().ok().and_then(|m| m.get(url).cloned()) {
            return Ok(info);
        }
        let session = self.session(url);
        let scratch = tempfile::tempdir().map_err(|e| GitError::Cache {
            path: std::env::temp_dir(),
            message: e.to_string(),
        })?;
        let scratch_path = scratch.path().to_path_buf();
        let info = run_with_deadline("list references of", url, self.timeout, move |_| {
            list_refs(&session, &scratch_path)
        })?;
        let info = Arc::new(info);
        if let Ok(mut m) = self.infos.lock() {
            m.insert(url.to_owned(), Arc::clone(&info));
        }
        Ok(info)
    }

    /// The checked-out tree of `reference` (default branch when `None`) and its commit.
    ///
    /// # Errors
    /// [`GitError`] when listing, fetching or writing the cache fails.
    pub fn checkout(&self, url: &str, reference: Option<&GitRef>) -> Result<(PathBuf, String), GitError> {
        let commit = match reference {
            Some(GitRef { commit: Some(c), .. }) => c.to_lowercase(),
            _ => self.repo_info(url)?.resolve(url, reference)?.1,
        };
        Ok((self.checkout_commit(url, &commit)?, commit))
    }

    /// The checked-out tree of `commit`, fetched unless already cached.
    ///
    /// # Errors
    /// [`GitError`] when fetching or writing the cache fails.
    pub fn checkout_commit(&self, url: &str, commit: &str) -> Result<PathBuf, GitError> {
        let dest = self.dir.join(url_key(url)).join(commit);
        if dest.is_dir() {
            return Ok(dest);
        }
        let _guard = self.busy.lock();
        if dest.is_dir() {
            return Ok(dest);
        }
        let parent = dest.parent().unwrap_or(&self.dir).to_path_buf();
        let cache_err = |e: std::io::Error| GitError::Cache {
            path: parent.clone(),
            message: e.to_string(),
        };
        fs_err::create_dir_all(&parent).map_err(cache_err)?;
        let tmp = tempfile::Builder::new()
            .prefix(".checkout-")
            .tempdir_in(&parent)
            .map_err(cache_err)?;
        let work = tmp.path().join("tree");
        let session = self.session(url);
        let commit_owned = commit.to_owned();
        let work_owned = work.clone();
        run_with_deadline("fetch", url, self.timeout, move |interrupt| {
            fetch_commit(&session, &commit_owned, &work_owned, interrupt)
        })?;
        let _ = fs_err::remove_dir_all(work.join(".git"));
        match fs_err::rename(&work, &dest) {
            Ok(()) => Ok(dest),
            // Another process finished the same commit first.
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => Err(cache_err(e)),
        }
    }

    fn session(&self, url: &str) -> Session {
        let parsed = gix::url::parse(url.as_bytes().as_bstr()).ok();
        let host = parsed
            .as_ref()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        let host_port = match parsed.as_ref().and_then(|u| u.port) {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let path = parsed
            .as_ref()
            .map(|u| u.path.to_str_lossy().trim_start_matches('/').to_owned())
            .unwrap_or_default();
        let credential = self
            .credentials
            .iter()
            .find(|c| {
                (c.host == host || c.host == host_port) && c.path.as_ref().is_none_or(|g| g.is_match(&path))
            })
            .cloned();
        Session {
            url: url.to_owned(),
            credential,
            ssh_command: self.ssh_command.clone(),
        }
    }
}

/// What one remote operation needs; moved onto the worker thread.
struct Session {
    url: String,
    credential: Option<Credential>,
    ssh_command: Option<String>,
}

impl Session {
    fn open_options(&self) -> gix::open::Options {
        let mut overrides = vec!["protocol.version=2".to_owned()];
        if let Some(cmd) = &self.ssh_command {
            overrides.push(format!("core.sshCommand={cmd}"));
        }
        gix::open::Options::isolated().config_overrides(overrides)
    }

    /// The error with its sources (`a: b: c`, repeats dropped), the password scrubbed.
    fn error(&self, op: &'static str, e: &(dyn std::error::Error + 'static)) -> GitError {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = s.source();
        }
        self.failure(op, message)
    }

    fn failure(&self, op: &'static str, mut message: String) -> GitError {
        if let Some(c) = &self.credential
            && !c.password.is_empty()
        {
            message = message.replace(&c.password, "*****");
        }
        GitError::Remote {
            op,
            url: redact(&self.url),
            message,
        }
    }
}

/// Answers the server's credential requests with the matching `KLUCTL_GIT_*` entry; nothing
/// is stored or erased.
fn set_credentials<T: gix::protocol::transport::client::blocking_io::Transport>(
    connection: &mut gix::remote::Connection<'_, '_, '_, T>,
    credential: Option<Credential>,
) {
    connection.set_credentials(move |action| match action {
        Action::Get(context) => match &credential {
            Some(c) => Ok(Some(Outcome {
                identity: gix::sec::identity::Account {
                    username: c.username.clone(),
                    password: c.password.clone(),
                    oauth_refresh_token: None,
                },
                next: NextAction::from(context),
            })),
            None => Err(gix::error::Message::new(
                "the server asks for credentials but no KLUCTL_GIT_* entry matches its host",
            )
            .unauthenticated_error()),
        },
        Action::Store(_) | Action::Erase(_) => Ok(None),
    });
}

fn list_refs(session: &Session, scratch: &Path) -> Result<RepoInfo, GitError> {
    const OP: &str = "list references of";
    let repo = gix::ThreadSafeRepository::init_opts(
        scratch,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        session.open_options(),
    )
    .map_err(|e| session.error(OP, &e))?
    .to_thread_local();
    let remote = repo
        .remote_at_without_url_rewrite(session.url.as_str())
        .and_then(|r| {
            r.with_refspecs(
                ["HEAD", "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"],
                gix::remote::Direction::Fetch,
            )
        })
        .map(|r| r.with_fetch_tags(gix::remote::fetch::Tags::None))
        .map_err(|e| session.error(OP, &e))?;
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| session.error(OP, &e))?;
    set_credentials(&mut connection, session.credential.clone());
    let (ref_map, _) = connection
        .ref_map(
            gix::progress::Discard,
            gix::remote::ref_map::Options {
                prefix_from_spec_as_filter_on_remote: true,
                ..Default::default()
            },
        )
        .map_err(|e| session.error(OP, &e))?;
    let mut info = RepoInfo::default();
    for r in &ref_map.remote_refs {
        use gix::protocol::handshake::Ref;
        match r {
            // HEAD names the default branch, whether it has commits yet or not.
            Ref::Symbolic {
                full_ref_name,
                target,
                ..
            }
            | Ref::Unborn {
                full_ref_name,
                target,
            } if full_ref_name == "HEAD" => {
                info.default_branch = target
                    .to_str()
                    .ok()
                    .and_then(|t| t.strip_prefix("refs/heads/"))
                    .map(str::to_owned);
            }
            Ref::Direct {
                full_ref_name,
                object,
            }
            | Ref::Peeled {
                full_ref_name,
                object,
                ..
            }
            | Ref::Symbolic {
                full_ref_name,
                object,
                ..
            } => {
                let name = full_ref_name.to_str_lossy();
                if name.starts_with("refs/heads/") || name.starts_with("refs/tags/") {
                    info.refs.insert(name.into_owned(), object.to_hex().to_string());
                }
            }
            Ref::Unborn { .. } => {}
        }
    }
    Ok(info)
}

fn fetch_commit(
    session: &Session,
    commit: &str,
    dest: &Path,
    interrupt: &AtomicBool,
) -> Result<(), GitError> {
    const OP: &str = "fetch";
    let credential = session.credential.clone();
    let mut prepare = gix::clone::PrepareFetch::new(
        session.url.as_str(),
        dest,
        gix::create::Kind::WithWorktree,
        gix::create::Options::default(),
        session.open_options(),
    )
    .and_then(|p| p.with_revision(Some(commit)))
    .map_err(|e| session.error(OP, &e))?
    .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN))
    .configure_connection(move |connection| {
        set_credentials(connection, credential.clone());
        Ok(())
    });
    let (mut worktree, _) = prepare
        .fetch_then_checkout(gix::progress::Discard, interrupt)
        .map_err(|e| session.error(OP, &e))?;
    worktree
        .main_worktree(gix::progress::Discard, interrupt)
        .map_err(|e| session.error("check out", &e))?;
    if interrupt.load(Ordering::SeqCst) {
        return Err(session.failure("check out", "interrupted".to_owned()));
    }
    Ok(())
}

/// Runs `work` on its own thread and stops waiting after `timeout` (raising the interrupt).
fn run_with_deadline<T, F>(op: &'static str, url: &str, timeout: Duration, work: F) -> Result<T, GitError>
where
    T: Send + 'static,
    F: FnOnce(&AtomicBool) -> Result<T, GitError> + Send + 'static,
{
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("git".to_owned())
        .spawn(move || {
            let _ = tx.send(work(&flag));
        })
        .map_err(|e| GitError::Remote {
            op,
            url: redact(url),
            message: e.to_string(),
        })?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            interrupt.store(true, Ordering::SeqCst);
            Err(GitError::Timeout {
                op,
                url: redact(url),
                timeout,
            })
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(GitError::Remote {
            op,
            url: redact(url),
            message: "the git worker stopped unexpectedly".to_owned(),
        }),
    }
}

/// `KLUCTL_GIT_HOST` / `KLUCTL_GIT_<n>_HOST` sets, in Kluctl's order (unnumbered first, then by n).
fn credentials_from_env(env: &BTreeMap<String, String>) -> Vec<Credential> {
    let mut sets: BTreeMap<Option<u64>, BTreeMap<&str, &str>> = BTreeMap::new();
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("KLUCTL_GIT_") else {
            continue;
        };
        let (index, key) = match rest.split_once('_') {
            Some((n, key)) if n.chars().all(|c| c.is_ascii_digit()) => (n.parse().ok(), key),
            _ => (None, rest),
        };
        sets.entry(index).or_default().insert(key, v.as_str());
    }
    sets.into_values()
        .filter_map(|m| {
            let host = m.get("HOST").filter(|h| !h.is_empty())?;
            let path = m
                .get("PATH")
                .filter(|p| !p.is_empty())
                .and_then(|p| {
                    globset::GlobBuilder::new(p.trim_start_matches('/'))
                        .literal_separator(true)
                        .build()
                        .ok()
                })
                .map(|g| g.compile_matcher());
            Some(Credential {
                host: (*host).to_owned(),
                path,
                username: m.get("USERNAME").copied().unwrap_or_default().to_owned(),
                password: m.get("PASSWORD").copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// A readable, unique directory name for a URL: `<host>-<last path part>-<hash>`.
fn url_key(url: &str) -> String {
    let hash =
        sha2::Sha256::digest(url.as_bytes())[..8]
            .iter()
            .fold(String::with_capacity(16), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
    let readable: String = url
        .split("://")
        .last()
        .unwrap_or(url)
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".git")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let readable = readable.trim_matches('-');
    let skip = readable.chars().count().saturating_sub(60);
    let tail: String = readable.chars().skip(skip).collect();
    format!("{tail}-{hash}")
}

/// The URL without a password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:*****{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The identity of a project checked out locally: its repository key (`git://host/path` of the
/// `origin` remote, `.git` stripped), its directory inside the repository, and the commit.
/// Empty values when `project_dir` is not inside a Git work tree (or has no `origin`).
pub fn project_identity(
    project_dir: &Path,
) -> (
    gitops_api::kluctl::results::ProjectKey,
    gitops_api::kluctl::results::GitInfo,
) {
    let mut key = gitops_api::kluctl::results::ProjectKey::default();
    let mut info = gitops_api::kluctl::results::GitInfo::default();
    let Ok(repo) = gix::discover(project_dir) else {
        return (key, info);
    };
    if let Some(root) = repo.workdir()
        && let (Ok(root), Ok(dir)) = (root.canonicalize(), project_dir.canonicalize())
        && let Ok(rel) = dir.strip_prefix(&root)
    {
        key.sub_dir = rel.to_string_lossy().replace('\\', "/");
        info.sub_dir.clone_from(&key.sub_dir);
    }
    if let Ok(id) = repo.head_id() {
        info.commit = id.to_string();
    }
    if let Ok(remote) = repo.find_remote("origin")
        && let Some(url) = remote.url(gix::remote::Direction::Fetch)
    {
        let path = url.path.to_str_lossy();
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        if let Some(host) = url.host() {
            key.repo_key = format!("git://{host}/{path}");
        }
        // Never the credentials: only scheme, host and path.
        info.url = Some(match url.host() {
            Some(host) => format!("{}://{host}/{path}", url.scheme.as_str()),
            None => url.path.to_str_lossy().into_owned(),
        });
    }
    (key, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RepoInfo {
        RepoInfo {
            default_branch: Some("main".to_owned()),
            refs: [
                ("refs/heads/main", "a"),
                ("refs/heads/dev", "b"),
                ("refs/tags/v1", "c"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }

    #[test]
    fn refs_resolve_to_commits_and_missing_refs_are_named() {
        let i = info();
        assert_eq!(
            i.resolve("u", None).unwrap(),
            (Some("refs/heads/main".to_owned()), "a".to_owned())
        );
        let tag = GitRef {
            tag: Some("v1".to_owned()),
            ..GitRef::default()
        };
        assert_eq!(i.resolve("u", Some(&tag)).unwrap().1, "c");
        let commit = GitRef {
            commit: Some("ABC".to_owned()),
            ..GitRef::default()
        };
        assert_eq!(i.resolve("u", Some(&commit)).unwrap(), (None, "abc".to_owned()));
        let missing = GitRef {
            branch: Some("nope".to_owned()),
            ..GitRef::default()
        };
        let e = i
            .resolve("https://u:secret@h/r.git", Some(&missing))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "ref 'refs/heads/nope' not found in 'https://u:*****@h/r.git'");
    }

    #[test]
    fn credentials_come_from_numbered_and_plain_env_sets() {
        let env: BTreeMap<String, String> = [
            ("KLUCTL_GIT_HOST", "a.example"),
            ("KLUCTL_GIT_USERNAME", "u0"),
            ("KLUCTL_GIT_PASSWORD", "p0"),
            ("KLUCTL_GIT_1_HOST", "b.example"),
            ("KLUCTL_GIT_1_PATH", "org/*"),
            ("KLUCTL_GIT_1_USERNAME", "u1"),
            ("KLUCTL_GIT_2_USERNAME", "no-host"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let cache = GitCache::new("/nonexistent", &env);
        assert_eq!(cache.credentials.len(), 2);
        let s = cache.session("https://b.example/org/repo.git");
        assert_eq!(s.credential.map(|c| c.username), Some("u1".to_owned()));
        let s = cache.session("https://b.example/other/org/repo.git");
        assert!(
            s.credential.is_none(),
            "the path glob must not match deeper paths"
        );
        let s = cache.session("https://a.example/x.git");
        assert_eq!(s.credential.map(|c| c.password), Some("p0".to_owned()));
        assert!(
            !format!("{cache:?}").contains("p0"),
            "Debug must not show passwords"
        );
    }

    #[test]
    fn url_keys_are_readable_and_distinct() {
        let a = url_key("https://github.com/kluctl/kluctl-examples.git");
        assert!(a.starts_with("github.com-kluctl-kluctl-examples-"), "{a}");
        assert_ne!(a, url_key("https://github.com/kluctl/kluctl-examples"));
        assert!(!url_key("https://u:pw@h/r").contains("pw"));
    }
}
