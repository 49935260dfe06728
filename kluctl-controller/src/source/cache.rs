//! The controller's source cache: one per process, shared by every KluctlDeployment, under
//! `--cache-dir`, with a hard size cap.
//!
//! Why: Kluctl users report caches of 17 GB on disk and 10 GiB of memory when every deployment
//! keeps its own clones (kluctl#1354), and Flux users ask for one shared clone cache instead of
//! a clone per object. Here a commit's tree is fetched once per process and reused by every
//! reconcile that needs it, and a collector keeps the directory under its cap.
//!
//! ```text
//!   <cache-dir>/git/<url key>/<commit>/   a git checkout (no .git), keyed by URL and commit;
//!                                         written by the engine's GitCache (one fetch per
//!                                         destination in the process), also for git includes
//!                                         and git vars rendered with SourceCache::git_options
//!   <cache-dir>/artifacts/<sha256 hex>/   a source-controller artifact, keyed by its digest,
//!                                         verified and unpacked once
//!   .checkout-*, .artifact-*, .gc-*       work in progress or leftovers; removed by gc when old
//! ```
//!
//! A [`Checkout`] pins its entry: while any Checkout (or any engine `GitCache` built with
//! [`SourceCache::git_options`]) holds an entry, [`SourceCache::gc`] leaves it alone. Pins are
//! taken before an entry is looked at, and gc removes an entry only under the same lock after
//! seeing no pin, by renaming it away first, so a reader never sees a tree disappear. Entries
//! never change once in place (a commit's tree, a digest's content), so there is nothing to
//! invalidate, only to collect: least recently used first until the total is under the cap,
//! plus everything unused for longer than the TTL.
//!
//! Access: the refs of a repository are listed with the caller's credentials on every
//! [`SourceCache::git_checkout`] (a new revision must be seen, and a caller that cannot read the
//! repository must not get another tenant's cached tree); artifacts are public to the cluster
//! already (source-controller serves them without authentication).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use gitops_api::meta::Artifact;
use gitops_git::GitCredentialRules;
use kluctl_engine::source::{CheckoutPin, CheckoutPinner, GitCache, GitError, GitRef, GitSourceOptions};

use super::artifact::{self, ArtifactError, DIGEST_FIELD, FetchOptions};

/// Default hard cap of the cache directory (the integrator's `--cache-max-bytes` default).
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;
/// Default time after which an unused entry is removed even under the cap.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A cached tree in use; its entry is kept by [`SourceCache::gc`] until this is dropped.
#[derive(Debug)]
pub struct Checkout {
    /// The tree.
    pub dir: PathBuf,
    /// Git: the commit id; artifact: `status.artifact.revision`.
    pub revision: String,
    /// Git: the full ref the reference resolved through (`refs/heads/main`), `None` for a
    /// commit reference; artifact: `None`.
    pub reference: Option<String>,
    _pin: Pin,
}

/// What one [`SourceCache::gc`] run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Entries removed.
    pub removed: usize,
    /// Bytes of the removed entries (and of removed leftovers).
    pub freed_bytes: u64,
    /// Entries left.
    pub kept: usize,
    /// Bytes of the entries left.
    pub kept_bytes: u64,
}

/// The process-wide source cache; cheap to clone (all clones share one state).
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use kluctl_controller::source::cache::{SourceCache, DEFAULT_MAX_BYTES};
/// let cache = SourceCache::new("/var/cache/kluctl", DEFAULT_MAX_BYTES);
/// let checkout = cache.git_checkout("https://github.com/kluctl/kluctl-examples.git", None, &Default::default())?;
/// println!("{} at {}", checkout.revision, checkout.dir.display());
/// let stats = cache.gc();
/// println!("freed {} bytes", stats.freed_bytes);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SourceCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    ttl: Duration,
    env: BTreeMap<String, String>,
    state: Mutex<HashMap<PathBuf, Entry>>,
    /// One async lock per artifact digest in flight.
    artifact_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises gc runs.
    gc_lock: Mutex<()>,
}

/// What the process knows of an entry beyond the file system.
#[derive(Debug, Default)]
struct Entry {
    pins: usize,
    last_used: Option<SystemTime>,
    /// Entries never change once in place, so their size is measured once.
    size: Option<u64>,
}

impl SourceCache {
    /// A cache in `dir` (created when first written) holding at most `max_bytes` of unpinned
    /// entries after each [`gc`](Self::gc), with a TTL of [`DEFAULT_TTL`] and no `KLUCTL_GIT_*`
    /// environment.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        SourceCache {
            inner: Arc::new(Inner {
                dir: dir.into(),
                max_bytes,
                ttl: DEFAULT_TTL,
                env: BTreeMap::new(),
                state: Mutex::default(),
                artifact_locks: Mutex::default(),
                gc_lock: Mutex::default(),
            }),
        }
    }

    /// The same settings with another TTL (before the cache is shared).
    #[must_use]
    pub fn with_ttl(self, ttl: Duration) -> Self {
        self.rebuild(|inner| inner.ttl = ttl)
    }

    /// The same settings with the environment whose `KLUCTL_GIT_*` sets (and `GIT_SSH_COMMAND`)
    /// apply when no credential rule matches, as in Kluctl's controller.
    #[must_use]
    pub fn with_env(self, env: BTreeMap<String, String>) -> Self {
        self.rebuild(|inner| inner.env = env)
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            dir: self.inner.dir.clone(),
            max_bytes: self.inner.max_bytes,
            ttl: self.inner.ttl,
            env: self.inner.env.clone(),
            state: Mutex::default(),
            artifact_locks: Mutex::default(),
            gc_lock: Mutex::default(),
        };
        change(&mut inner);
        SourceCache {
            inner: Arc::new(inner),
        }
    }

    /// The directory of git checkouts: `TargetOptions.git_cache_dir` for renders that use
    /// [`git_options`](Self::git_options).
    pub fn git_dir(&self) -> PathBuf {
        self.inner.dir.join("git")
    }

    fn artifacts_dir(&self) -> PathBuf {
        self.inner.dir.join("artifacts")
    }

    /// `TargetOptions.git` for a render whose git includes and vars use this cache: `rules`
    /// first, the access check on (the directory is shared between tenants), and every checkout
    /// pinned until the render's `GitCache` is dropped.
    pub fn git_options(&self, rules: GitCredentialRules) -> GitSourceOptions {
        GitSourceOptions {
            credentials: rules,
            check_access: true,
            pinner: Some(Arc::new(Pinner(Arc::clone(&self.inner)))),
        }
    }

    /// The tree of `reference` (the default branch when `None`) of `url`, checked out once per
    /// commit in the process. Blocking: call it from `spawn_blocking`.
    ///
    /// The refs are listed on every call, with `rules` (then the `KLUCTL_GIT_*` sets), so a
    /// new revision is seen and a caller without access gets an error, not a cached tree.
    ///
    /// # Errors
    /// [`GitError`] when listing or fetching fails, the ref does not exist, or the cache
    /// cannot be written.
    pub fn git_checkout(
        &self,
        url: &str,
        reference: Option<&GitRef>,
        rules: &GitCredentialRules,
    ) -> Result<Checkout, GitError> {
        let git = GitCache::new(self.git_dir(), &self.inner.env).with_options(GitSourceOptions {
            credentials: rules.clone(),
            check_access: true,
            pinner: None,
        });
        let (full_ref, commit) = git.repo_info(url)?.resolve(url, reference)?;
        let pin = self.pin(&git.checkout_dir(url, &commit));
        // The refs listed above are this instance's access check: no second round trip.
        let dir = git.checkout_commit(url, &commit)?;
        Ok(Checkout {
            dir,
            revision: commit,
            reference: full_ref,
            _pin: pin,
        })
    }

    /// The unpacked tree of `artifact`, downloaded, verified and unpacked once per digest;
    /// concurrent callers for one digest wait for the one download.
    ///
    /// # Errors
    /// [`ArtifactError`] as [`artifact::fetch`]; an unusable digest before anything is fetched.
    pub async fn artifact(
        &self,
        artifact: &Artifact,
        options: &FetchOptions,
    ) -> Result<Checkout, ArtifactError> {
        let hex =
            artifact::parse_digest(&artifact.digest).map_err(|problem| ArtifactError::InvalidDigest {
                revision: artifact.revision.clone(),
                field: DIGEST_FIELD,
                digest: artifact.digest.clone(),
                problem,
            })?;
        let dest = self.artifacts_dir().join(&hex);
        let pin = self.pin(&dest);
        let checkout = |dir: PathBuf| Checkout {
            dir,
            revision: artifact.revision.clone(),
            reference: None,
            _pin: pin,
        };
        if dest.is_dir() {
            return Ok(checkout(dest));
        }
        let lock = keyed(&self.inner.artifact_locks, &hex);
        let _guard = lock.lock().await;
        if dest.is_dir() {
            return Ok(checkout(dest));
        }
        fs_err::create_dir_all(self.artifacts_dir()).map_err(|source| ArtifactError::Io {
            revision: artifact.revision.clone(),
            action: "create the artifact cache",
            source,
        })?;
        let fetched = artifact::fetch(artifact, &dest, options).await?;
        Ok(checkout(fetched.dir))
    }

    /// Removes unpinned entries: those unused for longer than the TTL, then the least recently
    /// used until the total size is at most `max_bytes`; also leftovers of interrupted work
    /// older than the TTL. Blocking (walks the directory): call it from `spawn_blocking`.
    /// Pinned entries are never removed, so the total may stay above the cap while they are in
    /// use. Failures to remove are logged and retried on the next run.
    pub fn gc(&self) -> GcStats {
        let _serial = self.inner.gc_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let now = SystemTime::now();
        let mut stats = GcStats::default();
        let (entries, leftovers) = self.scan();
        for (leftover, mtime) in leftovers {
            if now.duration_since(mtime).unwrap_or_default() > self.inner.ttl {
                stats.freed_bytes += tree_size(&leftover);
                remove_tree(&leftover);
            }
        }
        // Sizes and ages outside the state lock: walking trees can take a while.
        let mut candidates: Vec<(PathBuf, u64, SystemTime)> = entries
            .into_iter()
            .map(|(path, mtime)| {
                let (size, used) = self.entry_facts(&path, mtime);
                (path, size, used)
            })
            .collect();
        candidates.sort_by_key(|(_, _, used)| *used);
        let mut total: u64 = candidates.iter().map(|(_, size, _)| size).sum();
        let mut doomed = Vec::new();
        {
            let mut known = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            for (path, size, used) in candidates {
                let pinned = known.get(&path).is_some_and(|e| e.pins > 0);
                let expired = now.duration_since(used).unwrap_or_default() > self.inner.ttl;
                if pinned || !(expired || total > self.inner.max_bytes) {
                    stats.kept += 1;
                    stats.kept_bytes += size;
                    continue;
                }
                // Renamed away under the lock: a pin taken after this sees no tree and fetches.
                let trash = trash_name(&path);
                match fs_err::rename(&path, &trash) {
                    Ok(()) => {
                        known.remove(&path);
                        total = total.saturating_sub(size);
                        stats.removed += 1;
                        stats.freed_bytes += size;
                        doomed.push(trash);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "failed to remove a source cache entry");
                        stats.kept += 1;
                        stats.kept_bytes += size;
                    }
                }
            }
            // Forget entries that are gone and unpinned (a pin of a failed fetch, say).
            known.retain(|path, e| e.pins > 0 || path.exists());
        }
        for trash in doomed {
            remove_tree(&trash);
        }
        stats
    }

    /// Pins `path` (which may not exist yet) until the returned value is dropped.
    fn pin(&self, path: &Path) -> Pin {
        pin(&self.inner, path)
    }

    /// The size (measured once) and the last use of an entry: in this process, else the time
    /// its tree was written.
    fn entry_facts(&self, path: &Path, mtime: SystemTime) -> (u64, SystemTime) {
        let known = {
            let state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.get(path).map(|e| (e.size, e.last_used))
        };
        let (size, used) = known.unwrap_or((None, None));
        let size = size.unwrap_or_else(|| {
            let measured = tree_size(path);
            let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.entry(path.to_path_buf()).or_default().size = Some(measured);
            measured
        });
        (size, used.unwrap_or(mtime))
    }

    /// Entries (`git/<key>/<commit>`, `artifacts/<hex>`) and leftovers (dot-names), each with
    /// its modification time.
    fn scan(&self) -> (Vec<Dated>, Vec<Dated>) {
        let mut entries = Vec::new();
        let mut leftovers = Vec::new();
        let mut sort = |child: Child, is_entry: bool| {
            let name = child
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                leftovers.push((child.path, child.mtime));
            } else if is_entry && child.is_dir {
                entries.push((child.path, child.mtime));
            }
        };
        for key_dir in children(&self.git_dir()).into_iter().filter(|c| c.is_dir) {
            for child in children(&key_dir.path) {
                let is_commit = child
                    .path
                    .file_name()
                    .is_some_and(|n| is_hex(&n.to_string_lossy(), &[40, 64]));
                sort(child, is_commit);
            }
        }
        for child in children(&self.artifacts_dir()) {
            let is_digest = child
                .path
                .file_name()
                .is_some_and(|n| is_hex(&n.to_string_lossy(), &[64]));
            sort(child, is_digest);
        }
        (entries, leftovers)
    }
}

/// A path and its modification time.
type Dated = (PathBuf, SystemTime);

/// The pinner the engine's `GitCache` uses for renders on this cache.
#[derive(Debug)]
struct Pinner(Arc<Inner>);

impl CheckoutPinner for Pinner {
    fn pin(&self, dir: &Path) -> CheckoutPin {
        Box::new(pin(&self.0, dir))
    }
}

/// A pin on one entry; dropping it records the use.
#[derive(Debug)]
struct Pin {
    inner: Arc<Inner>,
    path: PathBuf,
}

fn pin(inner: &Arc<Inner>, path: &Path) -> Pin {
    let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = state.entry(path.to_path_buf()).or_default();
    entry.pins += 1;
    entry.last_used = Some(SystemTime::now());
    Pin {
        inner: Arc::clone(inner),
        path: path.to_path_buf(),
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = state.get_mut(&self.path) {
            entry.pins = entry.pins.saturating_sub(1);
            entry.last_used = Some(SystemTime::now());
        }
    }
}

/// The lock of `key` in `locks`; a lock leaves the map only when nobody holds it.
fn keyed(
    locks: &Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key: &str,
) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = locks.lock().unwrap_or_else(PoisonError::into_inner);
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    Arc::clone(locks.entry(key.to_owned()).or_default())
}

fn is_hex(name: &str, lengths: &[usize]) -> bool {
    lengths.contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One entry of a cache directory.
struct Child {
    path: PathBuf,
    mtime: SystemTime,
    is_dir: bool,
}

/// The entries of `dir` (symlinks not followed); nothing when `dir` is missing.
fn children(dir: &Path) -> Vec<Child> {
    let Ok(read) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .filter_map(|e| {
            let meta = e.path().symlink_metadata().ok()?;
            Some(Child {
                path: e.path(),
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                is_dir: meta.is_dir(),
            })
        })
        .collect()
}

/// Bytes of the regular files under `path` (symlinks not followed; a file counts itself).
fn tree_size(path: &Path) -> u64 {
    if let Ok(meta) = path.symlink_metadata()
        && !meta.is_dir()
    {
        return meta.len();
    }
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = fs_err::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// `.gc-<name>-<nanos>` beside `path`: a leftover name if the removal is interrupted.
fn trash_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    path.with_file_name(format!(".gc-{name}-{nanos}"))
}

fn remove_tree(path: &Path) {
    let removed = if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        fs_err::remove_dir_all(path)
    } else {
        fs_err::remove_file(path)
    };
    if let Err(e) = removed {
        tracing::warn!(error = %e, "failed to remove a source cache leftover");
    }
}

#[cfg(test)]
mod tests;
