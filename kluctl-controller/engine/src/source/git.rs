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
//! Talking to the remote is the shared git layer (`gitops-git`, in `source-controller/git/`):
//! connection set-up, timeout, ls-refs, the lean single-commit fetch and checkout, URL redaction,
//! and the credentials, which come from the environment as Kluctl reads them
//! (`KLUCTL_GIT_[<n>_]HOST`, `..._USERNAME`, `..._PASSWORD`, optionally `..._PATH`; see
//! [`gitops_git::KluctlGitEnv`]). `ssh://` and SCP-like URLs run the user's `ssh`
//! (`GIT_SSH_COMMAND` is honoured), so the agent and `~/.ssh/config` apply. Nothing prompts, and
//! no machine-level git configuration is read. What is written here is only the cache layout
//! and Kluctl's ref selection.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitops_git::{KluctlGitEnv, Remote, redact_url};
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

/// The per-user cache of Git checkouts plus the refs listed during this run.
#[derive(Debug)]
pub struct GitCache {
    dir: PathBuf,
    env: KluctlGitEnv,
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
            env: KluctlGitEnv::from_env(env),
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
        self.remote(url)?.fetch_commit(commit, &work)?;
        match fs_err::rename(&work, &dest) {
            Ok(()) => Ok(dest),
            // Another process finished the same commit first.
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => Err(cache_err(e)),
        }
    }

    /// The remote with the `KLUCTL_GIT_*` credentials matching `url`.
    fn remote(&self, url: &str) -> Result<Remote, GitError> {
        Ok(Remote::new(url, &self.env.credentials_for(url), self.timeout)?)
    }
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
