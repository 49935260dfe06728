//! Garbage collection of an object's old artifacts (Flux §3.8), run at the start of every reconcile.
//!
//! ```text
//!  candidates = regular files in <kind>/<ns>/<name>/, minus *.lock and symlinks (≤ 1000 walked)
//!  1. TTL:     every non-current candidate older than --artifact-retention-ttl is garbage
//!  2. records: then oldest first, more non-current candidates are garbage until at most
//!              --artifact-retention-records candidates remain (the current file counts)
//!  each garbage file is removed together with its <file>.lock
//! ```

use super::{Storage, StorageError, path::check_component, write::lock_path};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Default `--artifact-retention-ttl`.
pub const DEFAULT_RETENTION_TTL: Duration = Duration::from_secs(60);
/// Default `--artifact-retention-records`.
pub const DEFAULT_RETENTION_RECORDS: usize = 2;
/// At most this many artifact files are looked at per run (Flux's `GarbageCountLimit`).
pub const GC_WALK_LIMIT: usize = 1000;

/// What one [`Storage::gc`] run did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Artifact files removed (absolute paths), oldest first within each rule.
    pub deleted: Vec<PathBuf>,
    /// Removals that failed; the other garbage was still removed.
    pub failures: Vec<StorageError>,
    /// The walk stopped at [`GC_WALK_LIMIT`] artifact files; more may remain for the next run.
    pub walk_limit_reached: bool,
}

/// A file that may be collected.
#[derive(Debug)]
struct Candidate {
    name: String,
    modified: SystemTime,
}

impl Storage {
    /// Removes old artifacts of one object, keeping `current_file` (a file name in its directory).
    ///
    /// A missing object directory is not an error (nothing stored yet). Blocking: walks at most
    /// [`GC_WALK_LIMIT`] files; callers bound it with their own timeout (Flux uses 5s).
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`] for a bad kind/namespace/name/file, [`StorageError::ListDir`]
    /// when the directory cannot be listed. Failed removals are collected in
    /// [`GcReport::failures`] instead.
    ///
    /// ```no_run
    /// # use source_controller::storage::{Storage, DEFAULT_RETENTION_RECORDS, DEFAULT_RETENTION_TTL};
    /// # fn f(storage: &Storage) -> Result<(), Box<dyn std::error::Error>> {
    /// let report = storage.gc("GitRepository", "flux-system", "podinfo", "0a1b2c.tar.gz",
    ///                         DEFAULT_RETENTION_TTL, DEFAULT_RETENTION_RECORDS)?;
    /// println!("garbage collected {} artifacts", report.deleted.len());
    /// # Ok(()) }
    /// ```
    pub fn gc(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        current_file: &str,
        ttl: Duration,
        records: usize,
    ) -> Result<GcReport, StorageError> {
        check_component("file", current_file)?;
        let dir = self.object_dir_path(kind, namespace, name)?;
        let mut report = GcReport::default();
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(source) => return Err(StorageError::ListDir { path: dir, source }),
        };
        let mut candidates = Vec::new();
        for entry in entries {
            if candidates.len() >= GC_WALK_LIMIT {
                report.walk_limit_reached = true;
                break;
            }
            let entry = entry.map_err(|source| StorageError::ListDir {
                path: dir.clone(),
                source,
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // DirEntry metadata does not follow symlinks, so links (latest.tar.gz) are skipped here.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Removed while we walked: nothing to collect.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(StorageError::Stat {
                        path: entry.path(),
                        source,
                    });
                }
            };
            // Same test as Flux's `filepath.Ext(path) == ".lock"` (case-sensitive).
            let is_lock = Path::new(&name).extension() == Some(OsStr::new("lock"));
            if !meta.file_type().is_file() || is_lock {
                continue;
            }
            let modified = meta.modified().map_err(|source| StorageError::Stat {
                path: entry.path(),
                source,
            })?;
            candidates.push(Candidate { name, modified });
        }

        for name in select_garbage(candidates, current_file, SystemTime::now(), ttl, records) {
            let file = dir.join(&name);
            match fs_err::remove_file(&file) {
                Ok(()) => report.deleted.push(file.clone()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => report.failures.push(StorageError::Remove {
                    path: file.clone(),
                    source,
                }),
            }
            let lock = lock_path(&file);
            match fs_err::remove_file(&lock) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => report.failures.push(StorageError::Remove { path: lock, source }),
            }
        }
        Ok(report)
    }
}

/// The names to delete, by the two rules in the module docs; pure so the policy is testable.
fn select_garbage(
    mut candidates: Vec<Candidate>,
    current: &str,
    now: SystemTime,
    ttl: Duration,
    records: usize,
) -> Vec<String> {
    // Oldest first; equal times ordered by name so runs are deterministic.
    candidates.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)));
    let expired = |c: &Candidate| now.duration_since(c.modified).is_ok_and(|age| age > ttl);
    let (mut garbage, survivors): (Vec<Candidate>, Vec<Candidate>) = candidates
        .into_iter()
        .partition(|c| c.name != current && expired(c));
    let mut remaining = survivors.len();
    for candidate in survivors {
        if remaining <= records {
            break;
        }
        if candidate.name != current {
            garbage.push(candidate);
            remaining -= 1;
        }
    }
    garbage.into_iter().map(|c| c.name).collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::storage;
    use super::*;

    const KIND: &str = "GitRepository";
    const NS: &str = "flux-system";
    const NAME: &str = "podinfo";

    /// Stores `file` with an mtime `age` in the past, plus its lock file.
    fn artifact(storage: &Storage, file: &str, age: Duration) {
        let path = super::super::artifact_path(KIND, NS, NAME, file).unwrap();
        storage
            .store(&path, |out| out.write_all(file.as_bytes()))
            .unwrap();
        let f = fs_err::File::options()
            .write(true)
            .open(storage.root().join(&path))
            .unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    fn names(storage: &Storage) -> Vec<String> {
        let dir = storage.root().join("gitrepository/flux-system/podinfo");
        let mut names: Vec<_> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    #[test]
    fn ttl_removes_expired_non_current_files_with_their_locks() {
        let (_tmp, storage) = storage();
        artifact(&storage, "a.tar.gz", mins(10));
        artifact(&storage, "b.tar.gz", mins(5));
        artifact(&storage, "c.tar.gz", Duration::ZERO);
        let report = storage
            .gc(KIND, NS, NAME, "c.tar.gz", DEFAULT_RETENTION_TTL, 10)
            .unwrap();
        assert_eq!(report.deleted.len(), 2);
        assert!(report.failures.is_empty());
        assert_eq!(names(&storage), ["c.tar.gz", "c.tar.gz.lock"]);
    }

    #[test]
    fn current_file_survives_even_when_expired() {
        let (_tmp, storage) = storage();
        artifact(&storage, "old-current.tar.gz", mins(60));
        artifact(&storage, "other.tar.gz", mins(30));
        let report = storage
            .gc(KIND, NS, NAME, "old-current.tar.gz", mins(1), 0)
            .unwrap();
        assert_eq!(report.deleted.len(), 1);
        assert_eq!(names(&storage), ["old-current.tar.gz", "old-current.tar.gz.lock"]);
    }

    #[test]
    fn records_keep_the_newest_files_including_current() {
        let (_tmp, storage) = storage();
        for (i, file) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            // a is the oldest; nothing is past the TTL.
            artifact(
                &storage,
                &format!("{file}.tar.gz"),
                Duration::from_secs(50 - i as u64 * 10),
            );
        }
        let report = storage
            .gc(
                KIND,
                NS,
                NAME,
                "e.tar.gz",
                DEFAULT_RETENTION_TTL,
                DEFAULT_RETENTION_RECORDS,
            )
            .unwrap();
        assert_eq!(report.deleted.len(), 3);
        assert_eq!(
            names(&storage),
            ["d.tar.gz", "d.tar.gz.lock", "e.tar.gz", "e.tar.gz.lock"]
        );
    }

    #[test]
    fn records_skip_an_old_current_file() {
        let (_tmp, storage) = storage();
        artifact(&storage, "current.tar.gz", Duration::from_secs(40));
        artifact(&storage, "b.tar.gz", Duration::from_secs(30));
        artifact(&storage, "c.tar.gz", Duration::from_secs(20));
        artifact(&storage, "d.tar.gz", Duration::from_secs(10));
        storage.gc(KIND, NS, NAME, "current.tar.gz", mins(1), 2).unwrap();
        assert_eq!(
            names(&storage),
            [
                "current.tar.gz",
                "current.tar.gz.lock",
                "d.tar.gz",
                "d.tar.gz.lock"
            ]
        );
    }

    #[test]
    fn ttl_then_records_together_leave_exactly_records_files() {
        let (_tmp, storage) = storage();
        artifact(&storage, "expired.tar.gz", mins(5));
        for (i, file) in ["a", "b", "c", "d"].iter().enumerate() {
            artifact(
                &storage,
                &format!("{file}.tar.gz"),
                Duration::from_secs(50 - i as u64 * 10),
            );
        }
        let report = storage.gc(KIND, NS, NAME, "d.tar.gz", mins(1), 2).unwrap();
        assert_eq!(report.deleted.len(), 3);
        assert_eq!(
            names(&storage),
            ["c.tar.gz", "c.tar.gz.lock", "d.tar.gz", "d.tar.gz.lock"]
        );
    }

    #[test]
    fn symlinks_and_orphan_locks_are_not_artifacts() {
        let (_tmp, storage) = storage();
        artifact(&storage, "a.tar.gz", mins(10));
        artifact(&storage, "b.tar.gz", Duration::ZERO);
        storage.set_latest_symlink(KIND, NS, NAME, "a.tar.gz").unwrap();
        let dir = storage.root().join("gitrepository/flux-system/podinfo");
        fs_err::write(dir.join("orphan.tar.gz.lock"), b"").unwrap();
        let f = fs_err::File::options()
            .write(true)
            .open(dir.join("orphan.tar.gz.lock"))
            .unwrap();
        f.set_modified(SystemTime::now() - mins(10)).unwrap();
        storage.gc(KIND, NS, NAME, "b.tar.gz", mins(1), 0).unwrap();
        assert_eq!(
            names(&storage),
            ["b.tar.gz", "b.tar.gz.lock", "latest.tar.gz", "orphan.tar.gz.lock"]
        );
    }

    #[test]
    fn missing_directory_is_an_empty_report() {
        let (_tmp, storage) = storage();
        let report = storage
            .gc(KIND, NS, "never-stored", "x.tar.gz", mins(1), 2)
            .unwrap();
        assert!(report.deleted.is_empty() && report.failures.is_empty());
    }

    #[test]
    fn gc_rejects_traversal() {
        let (_tmp, storage) = storage();
        let err = storage.gc(KIND, "..", NAME, "x.tar.gz", mins(1), 2).unwrap_err();
        assert_eq!(err.reason(), "InvalidPath");
        let err = storage.gc(KIND, NS, NAME, "../x.tar.gz", mins(1), 2).unwrap_err();
        assert_eq!(err.reason(), "InvalidPath");
    }

    #[test]
    fn selection_is_by_age_then_name() {
        let now = SystemTime::now();
        let same = now - Duration::from_secs(5);
        let c = |name: &str, t| Candidate {
            name: name.into(),
            modified: t,
        };
        let picked = select_garbage(
            vec![
                c("z", same),
                c("y", same),
                c("cur", now),
                c("future", now + mins(1)),
            ],
            "cur",
            now,
            mins(1),
            2,
        );
        assert_eq!(picked, ["y", "z"]);
    }
}
