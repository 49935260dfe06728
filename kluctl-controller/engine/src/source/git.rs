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
//! concurrent or interrupted run never sees half a tree. Within one process a lock per
//! destination (`<url key>/<commit>`, shared by every `GitCache` instance) makes N concurrent
//! runs that need the same commit do one fetch; the others wait and reuse it.
//!
//! The controller shares one cache directory between all KluctlDeployments, so it sets
//! [`GitSourceOptions`]: its credential rules (`spec.credentials.git`, asked before the
//! `KLUCTL_GIT_*` sets), an access check (a cached commit is handed out only after this run's
//! credentials listed the remote, so one tenant's private checkout never reaches a run that
//! cannot read the repository), and a [`CheckoutPinner`] that keeps the garbage collector away
//! from checkouts a render is reading. The CLI leaves them at their defaults: no rules, no
//! check (cached commits work offline), no pins.
//!
//! Talking to the remote is the shared git layer (`gitops-git`, in `source-controller/git/`):
//! connection set-up, timeout, ls-refs, the lean single-commit fetch and checkout, URL redaction,
//! and the credentials, which come from the rules, else from the environment as Kluctl reads them
//! (`KLUCTL_GIT_[<n>_]HOST`, `..._USERNAME`, `..._PASSWORD`, optionally `..._PATH`; see
//! [`gitops_git::KluctlGitEnv`]). `ssh://` and SCP-like URLs run the user's `ssh`
//! (`GIT_SSH_COMMAND` is honoured), so the agent and `~/.ssh/config` apply. Nothing prompts, and
//! no machine-level git configuration is read. What is written here is only the cache layout
//! and Kluctl's ref selection.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use gitops_git::{GitCredentialRules, KluctlGitEnv, Remote, redact_url};
use gix::bstr::ByteSlice as _;
use sha2::Digest as _;

use super::GitRef;

/// Why a Git operation failed. Messages name the URL (without credentials).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The remote could not be reached, listed or fetched (or ran into the timeout).
    #[error(transparent)]
    Remote(#[from] gitops_git::Error),
    /// The requested branch or tag does not exist.
    #[error("ref '{reference}' not found in '{url}'")]
    RefNotFound {
        /// `refs/heads/x` or `refs/tags/y`.
        reference: String,
        /// The repository URL.
        url: String,
    },
    /// A `commit` that is not a full hexadecimal commit id.
    #[error(
        "invalid commit '{commit}' for '{url}': a commit must be a full hexadecimal id (40 or 64 characters)"
    )]
    InvalidCommit {
        /// The value as written.
        commit: String,
        /// The repository URL.
        url: String,
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
                url: redact_url(url),
            }),
        }
    }
}

/// Something that keeps a checkout directory alive while it is held (the controller's source
/// cache: its garbage collector skips pinned entries).
pub type CheckoutPin = Box<dyn Any + Send + Sync>;

/// Pins checkout directories for as long as a [`GitCache`] lives.
///
/// [`GitCache`] pins `<url key>/<commit>` before it looks whether the checkout exists, and keeps
/// the pin until it is dropped, so a collector that honours pins can never remove a tree between
/// that look and the render's last read.
pub trait CheckoutPinner: Send + Sync + std::fmt::Debug {
    /// Pins `dir` (which may not exist yet) until the returned value is dropped.
    fn pin(&self, dir: &Path) -> CheckoutPin;
}

/// How a [`GitCache`] authenticates and shares its directory; the default is the CLI's
/// behaviour (the `KLUCTL_GIT_*` sets only, no access check, no pins).
#[derive(Clone, Debug, Default)]
pub struct GitSourceOptions {
    /// Credential rules asked before the `KLUCTL_GIT_*` sets (`spec.credentials.git` and a
    /// referenced GitRepository's secret); the first rule with credentials for a URL wins.
    pub credentials: GitCredentialRules,
    /// List the remote's refs with these credentials (once per repository and cache instance)
    /// before handing out a cached commit: set it when the directory is shared by callers with
    /// different credentials.
    pub check_access: bool,
    /// Pins every checkout handed out, until the cache instance is dropped.
    pub pinner: Option<Arc<dyn CheckoutPinner>>,
}

/// The per-user cache of Git checkouts plus the refs listed during this run.
#[derive(Debug)]
pub struct GitCache {
    dir: PathBuf,
    env: KluctlGitEnv,
    options: GitSourceOptions,
    timeout: Duration,
    infos: Mutex<HashMap<String, Arc<RepoInfo>>>,
    /// Pins taken by [`GitSourceOptions::pinner`], released when the cache is dropped.
    pins: Mutex<Vec<CheckoutPinDebug>>,
}

/// A held pin; `Debug` only says that it is one.
struct CheckoutPinDebug(#[allow(dead_code)] CheckoutPin);

impl std::fmt::Debug for CheckoutPinDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckoutPin")
    }
}

impl GitCache {
    /// A cache in `dir` using the credentials and `GIT_SSH_COMMAND` found in `env`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>, env: &BTreeMap<String, String>) -> Self {
        Self {
            dir: dir.into(),
            env: KluctlGitEnv::from_env(env),
            options: GitSourceOptions::default(),
            timeout: Duration::from_secs(300),
            infos: Mutex::new(HashMap::new()),
            pins: Mutex::new(Vec::new()),
        }
    }

    /// The same cache with credential rules, access check and pinner from `options`.
    #[must_use]
    pub fn with_options(mut self, options: GitSourceOptions) -> Self {
        self.options = options;
        self
    }

    /// The directory of `commit`'s checkout of `url` (it may not exist yet).
    #[must_use]
    pub fn checkout_dir(&self, url: &str, commit: &str) -> PathBuf {
        self.dir.join(url_key(url)).join(commit)
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
        let listing =
            self.remote(url)?
                .list_refs(&["HEAD", "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"])?;
        let info = RepoInfo {
            default_branch: listing
                .head_target
                .as_deref()
                .and_then(|t| t.strip_prefix("refs/heads/"))
                .map(str::to_owned),
            refs: listing
                .refs
                .into_iter()
                .filter(|r| r.name.starts_with("refs/heads/") || r.name.starts_with("refs/tags/"))
                .map(|r| (r.name, r.commit))
                .collect(),
        };
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
        // The id names a cache directory: anything but hex digits (`..`, `/`) could point outside.
        if !matches!(commit.len(), 40 | 64) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GitError::InvalidCommit {
                commit: commit.to_string(),
                url: redact_url(url),
            });
        }
        if self.options.check_access {
            self.repo_info(url)?;
        }
        let dest = self.checkout_dir(url, commit);
        if let Some(pinner) = &self.options.pinner {
            let pin = pinner.pin(&dest);
            self.pins
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(CheckoutPinDebug(pin));
        }
        if dest.is_dir() {
            return Ok(dest);
        }
        // One fetch per destination in the whole process, whichever instance asks.
        let lock = destination_lock(&dest);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
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
        self.remote(url)?.fetch_commit(commit, &work)?;
        match fs_err::rename(&work, &dest) {
            Ok(()) => Ok(dest),
            // Another process finished the same commit first.
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => Err(cache_err(e)),
        }
    }

    /// The credentials of the first rule for `url`, else of the matching `KLUCTL_GIT_*` set.
    fn credentials(&self, url: &str) -> gitops_git::Credentials {
        self.options
            .credentials
            .credentials_for(url)
            .unwrap_or_else(|| self.env.credentials_for(url))
    }

    /// The remote with [`Self::credentials`] for `url`.
    fn remote(&self, url: &str) -> Result<Remote, GitError> {
        Ok(Remote::new(url, &self.credentials(url), self.timeout)?)
    }
}

/// The process-wide lock of one checkout destination, shared by every [`GitCache`] instance.
///
/// A lock leaves the map only when no caller holds it (its count is the map's alone), so two
/// callers can never hold different locks for one destination, and the map stays as small as
/// the set of checkouts in flight.
fn destination_lock(dest: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    Arc::clone(locks.entry(dest.to_path_buf()).or_default())
}

/// A readable, unique directory name for a URL: `<host>-<last path part>-<hash>`.
fn url_key(url: &str) -> String {
    let hash =
        sha2::Sha256::digest(url.as_bytes())[..8]
            .iter()
            .fold(String::with_capacity(16), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
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

/// The repository key of a Git URL, as Kluctl writes it: `git://host[:port]/path`, the
/// scheme, user and a `.git` suffix dropped (`https://github.com/org/repo.git`,
/// `git@github.com:org/repo` and `ssh://git@github.com/org/repo` all give
/// `git://github.com/org/repo`). `None` for a URL without a host (a local path) or one that
/// does not parse.
///
/// The port stays part of the key, as in Kluctl (`RepoKey.Host` is Go's `url.Host`): two
/// servers on one host are two repositories.
///
/// ```
/// use kluctl_engine::source::git::repo_key;
/// assert_eq!(repo_key("https://github.com/org/repo.git").as_deref(), Some("git://github.com/org/repo"));
/// assert_eq!(repo_key("git@example.com:org/repo").as_deref(), Some("git://example.com/org/repo"));
/// assert_eq!(repo_key("http://127.0.0.1:8080/git/r.git").as_deref(), Some("git://127.0.0.1:8080/git/r"));
/// assert_eq!(repo_key("/srv/repo"), None);
/// ```
pub fn repo_key(url: &str) -> Option<String> {
    let url = gix::url::parse(gix::bstr::BStr::new(url.as_bytes())).ok()?;
    repo_key_of(&url)
}

fn repo_key_of(url: &gix::Url) -> Option<String> {
    let host = url.host()?;
    let path = url.path.to_str_lossy();
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    Some(match url.port {
        Some(port) => format!("git://{host}:{port}/{path}"),
        None => format!("git://{host}/{path}"),
    })
}

/// The identity of a project checked out locally: its repository key ([`repo_key`] of the
/// `origin` remote), its directory inside the repository, and the commit.
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
        if let Some(k) = repo_key_of(url) {
            key.repo_key = k;
        }
        let path = url.path.to_str_lossy();
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
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

    #[test]
    fn a_commit_that_is_not_a_hex_id_is_refused_before_any_path_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(dir.path(), &BTreeMap::new());
        let not_hex = "g".repeat(40);
        for bad in ["../../etc", "/home/u/.kube", "abc123", not_hex.as_str()] {
            assert!(
                matches!(
                    cache.checkout_commit("https://h/r.git", bad),
                    Err(GitError::InvalidCommit { .. })
                ),
                "{bad}"
            );
        }
    }

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
        assert_eq!(e, "ref 'refs/heads/nope' not found in 'https://u@h/r.git'");
    }

    /// Runs the git CLI (a test dependency, as for the git layer's own tests) in `dir`.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .expect("git must be installed for this test");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn the_default_branch_is_fetched_into_the_cache_once_without_git_metadata() {
        let origin = tempfile::tempdir().unwrap();
        let o = origin.path();
        git(o, &["init", "-q", "-b", "trunk"]);
        fs_err::create_dir_all(o.join("vars")).unwrap();
        fs_err::write(o.join("vars/values.yaml"), "color: red\n").unwrap();
        git(o, &["add", "-A"]);
        git(o, &["commit", "-q", "-m", "red"]);
        let head = git(o, &["rev-parse", "HEAD"]);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), &BTreeMap::new());
        let url = o.display().to_string();

        let info = cache.repo_info(&url).unwrap();
        assert_eq!(info.default_branch.as_deref(), Some("trunk"));
        let (dir, commit) = cache.checkout(&url, None).unwrap();
        assert_eq!(commit, head);
        assert_eq!(
            fs_err::read_to_string(dir.join("vars/values.yaml")).unwrap(),
            "color: red\n"
        );
        assert!(!dir.join(".git").exists(), "the checkout carries no git metadata");
        // A cached commit is not fetched again: the remote may be gone.
        drop(origin);
        assert_eq!(cache.checkout_commit(&url, &head).unwrap(), dir);
    }

    /// A repository with one commit in `<base>/repo` and its `HEAD` commit.
    fn origin_repo(base: &Path) -> (PathBuf, String) {
        let o = base.join("repo");
        fs_err::create_dir_all(&o).unwrap();
        git(&o, &["init", "-q", "-b", "main"]);
        fs_err::write(o.join("values.yaml"), "color: blue\n").unwrap();
        git(&o, &["add", "-A"]);
        git(&o, &["commit", "-q", "-m", "blue"]);
        let head = git(&o, &["rev-parse", "HEAD"]);
        (o, head)
    }

    /// Serves `base` over `git://` on 127.0.0.1 (port 0): `git daemon --inetd` per connection,
    /// counting connections (a depth-1 fetch of a commit is one connection).
    fn git_daemon(base: &Path) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::os::fd::OwnedFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let base = base.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let input = OwnedFd::from(stream.try_clone().unwrap());
                let output = OwnedFd::from(stream);
                let child = std::process::Command::new("git")
                    .args(["daemon", "--inetd", "--export-all"])
                    .arg(format!("--base-path={}", base.display()))
                    .arg(&base)
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .env("HOME", &base)
                    .stdin(input)
                    .stdout(output)
                    .stderr(std::process::Stdio::null())
                    .spawn();
                if let Ok(mut child) = child {
                    std::thread::spawn(move || child.wait());
                }
            }
        });
        (format!("git://{addr}/repo"), connections)
    }

    #[test]
    fn concurrent_caches_on_one_dir_fetch_a_commit_once() {
        let base = tempfile::tempdir().unwrap();
        let (_, head) = origin_repo(base.path());
        let (url, connections) = git_daemon(base.path());
        let cache_dir = tempfile::tempdir().unwrap();
        let threads = 8;
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (dir, url, head, barrier) = (
                    cache_dir.path().to_path_buf(),
                    url.clone(),
                    head.clone(),
                    Arc::clone(&barrier),
                );
                std::thread::spawn(move || {
                    // One cache instance per thread, as one per reconcile in the controller.
                    let cache = GitCache::new(dir, &BTreeMap::new());
                    barrier.wait();
                    cache.checkout_commit(&url, &head)
                })
            })
            .collect();
        let dirs: Vec<PathBuf> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
        assert!(dirs.iter().all(|d| *d == dirs[0]), "{dirs:?}");
        assert_eq!(
            fs_err::read_to_string(dirs[0].join("values.yaml")).unwrap(),
            "color: blue\n"
        );
        assert_eq!(
            connections.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{threads} concurrent checkouts of one commit must fetch it once"
        );
    }

    #[derive(Debug, Default)]
    struct CountingPinner(Mutex<Vec<PathBuf>>, Arc<std::sync::atomic::AtomicUsize>);

    /// Decrements the pinner's count of held pins when dropped.
    struct Release(Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for Release {
        fn drop(&mut self) {
            self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl CheckoutPinner for CountingPinner {
        fn pin(&self, dir: &Path) -> CheckoutPin {
            self.0.lock().unwrap().push(dir.to_path_buf());
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::new(Release(Arc::clone(&self.1)))
        }
    }

    #[test]
    fn checkouts_stay_pinned_while_the_cache_lives() {
        let base = tempfile::tempdir().unwrap();
        let (origin, commit) = origin_repo(base.path());
        let url = origin.display().to_string();
        let cache_dir = tempfile::tempdir().unwrap();
        let pinner = Arc::new(CountingPinner::default());
        let held = Arc::clone(&pinner.1);
        let cache = GitCache::new(cache_dir.path(), &BTreeMap::new()).with_options(GitSourceOptions {
            pinner: Some(pinner.clone()),
            ..GitSourceOptions::default()
        });
        let (dir, _) = cache.checkout(&url, None).unwrap();
        assert_eq!(
            pinner.0.lock().unwrap().as_slice(),
            std::slice::from_ref(&dir),
            "pinned before use"
        );
        assert_eq!(held.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(dir, cache.checkout_dir(&url, &commit));
        drop(cache);
        assert_eq!(
            held.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "released with the cache"
        );
    }

    #[test]
    fn with_the_access_check_a_cached_commit_needs_a_readable_remote() {
        let base = tempfile::tempdir().unwrap();
        let (origin, head) = origin_repo(base.path());
        let url = origin.display().to_string();
        let cache_dir = tempfile::tempdir().unwrap();
        GitCache::new(cache_dir.path(), &BTreeMap::new())
            .checkout_commit(&url, &head)
            .unwrap();
        fs_err::remove_dir_all(&origin).unwrap();
        // The CLI's default: a cached commit is served without asking the remote.
        assert!(
            GitCache::new(cache_dir.path(), &BTreeMap::new())
                .checkout_commit(&url, &head)
                .is_ok()
        );
        // Shared by tenants: served only after these credentials could list the repository.
        let checked = GitCache::new(cache_dir.path(), &BTreeMap::new()).with_options(GitSourceOptions {
            check_access: true,
            ..GitSourceOptions::default()
        });
        assert!(matches!(
            checked.checkout_commit(&url, &head),
            Err(GitError::Remote(_))
        ));
    }

    #[test]
    fn credential_rules_are_asked_before_the_kluctl_env_sets() {
        let data = BTreeMap::from([
            ("username".to_owned(), b"from-rule".to_vec()),
            ("password".to_owned(), b"pw".to_vec()),
        ]);
        let secret = gitops_git::KluctlGitSecret::parse(&data).unwrap();
        let rules: GitCredentialRules =
            [gitops_git::GitCredentialRule::kluctl("h.example", None, secret).unwrap()]
                .into_iter()
                .collect();
        let env = BTreeMap::from([
            ("KLUCTL_GIT_HOST".to_owned(), "h.example".to_owned()),
            ("KLUCTL_GIT_USERNAME".to_owned(), "from-env".to_owned()),
            ("KLUCTL_GIT_PASSWORD".to_owned(), "pw".to_owned()),
        ]);
        let cache = GitCache::new("/nonexistent", &env).with_options(GitSourceOptions {
            credentials: rules,
            ..GitSourceOptions::default()
        });
        let used = format!("{:?}", cache.credentials("https://h.example/r.git"));
        assert!(used.contains("from-rule"), "{used}");
        let env_set = BTreeMap::from([("KLUCTL_GIT_1_HOST".to_owned(), "other.example".to_owned())]);
        let fallback = GitCache::new("/nonexistent", &env_set).with_options(cache.options.clone());
        let used = format!("{:?}", fallback.credentials("https://other.example/r.git"));
        assert!(
            used.contains("System"),
            "no rule: the KLUCTL_GIT_* sets and the user's ssh: {used}"
        );
    }

    #[test]
    fn repo_keys_drop_scheme_user_and_dot_git_and_keep_the_port() {
        for (url, want) in [
            (
                "https://github.com/org/repo.git",
                Some("git://github.com/org/repo"),
            ),
            (
                "https://user:pw@github.com/org/repo/",
                Some("git://github.com/org/repo"),
            ),
            (
                "ssh://git@github.com/org/repo.git",
                Some("git://github.com/org/repo"),
            ),
            ("git@github.com:org/repo.git", Some("git://github.com/org/repo")),
            ("ssh://git@h:2222/org/repo", Some("git://h:2222/org/repo")),
            (
                "http://127.0.0.1:18080/git/r.git",
                Some("git://127.0.0.1:18080/git/r"),
            ),
            ("/srv/git/repo", None),
        ] {
            assert_eq!(repo_key(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn url_keys_are_readable_and_distinct() {
        let a = url_key("https://github.com/kluctl/kluctl-examples.git");
        assert!(a.starts_with("github.com-kluctl-kluctl-examples-"), "{a}");
        assert_ne!(a, url_key("https://github.com/kluctl/kluctl-examples"));
        assert!(!url_key("https://u:pw@h/r").contains("pw"));
    }
}
