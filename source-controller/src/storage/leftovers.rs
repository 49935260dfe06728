//! Removal, at start, of the temp files an interrupted artifact write left behind.
//!
//! ```text
//!  <root>/<kind>/<ns>/<name>/.<file>.XXXXXX.tmp   left by a writer killed before its rename
//!      └─ <file>.lock free (try-lock succeeds) ─► no writer is alive ─► remove the temp file
//!      └─ <file>.lock held                      ─► a live writer (another instance on a shared
//!                                                   storage path): keep it
//! ```
//!
//! A write normally removes its temp file on drop, on error too; only a process killed mid-write
//! (kill -9, OOM, power loss) leaves one. They are never served (the server serves artifact
//! paths from the status, and the names start with a dot), but they hold disk space: on a full
//! storage volume, space a restart must give back.

use super::write::lock_path;
use super::{Storage, StorageError};
use std::path::{Path, PathBuf};

impl Storage {
    /// Removes the temp files of interrupted writes under `<root>/<kind>/<ns>/<name>/` whose
    /// artifact lock no live writer holds; returns the paths removed. Blocking.
    ///
    /// # Errors
    /// [`StorageError::ListDir`] when a directory cannot be listed, [`StorageError::Remove`] when
    /// a leftover cannot be removed (the other leftovers are removed first).
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>, StorageError> {
        let mut removed = Vec::new();
        let mut failed = None;
        for kind in subdirs(self.root())? {
            for ns in subdirs(&kind)? {
                for object in subdirs(&ns)? {
                    for temp in leftover_temp_files(&object)? {
                        match remove_if_unlocked(&temp) {
                            Ok(true) => removed.push(temp),
                            Ok(false) => {}
                            Err(e) => failed = Some(e),
                        }
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

fn list(dir: &Path) -> Result<Vec<std::fs::DirEntry>, StorageError> {
    let failed = |source| StorageError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    Ok(list(dir)?
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// `.<file>.XXXXXX.tmp` regular files (the names [`Storage::writer`] gives its temp files).
fn leftover_temp_files(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    Ok(list(dir)?
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".tmp") && target_of(&name).is_some()
        })
        .map(|e| e.path())
        .collect())
}

/// `<file>` of a temp file name `.<file>.XXXXXX.tmp`.
fn target_of(temp_name: &str) -> Option<&str> {
    let inner = temp_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (file, random) = inner.rsplit_once('.')?;
    (!file.is_empty() && !random.is_empty()).then_some(file)
}

/// Removes `temp` unless a writer holds the lock of its artifact; true when removed.
fn remove_if_unlocked(temp: &Path) -> Result<bool, StorageError> {
    let name = temp
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (Some(dir), Some(file)) = (temp.parent(), target_of(&name)) else {
        return Ok(false);
    };
    let lock = lock_path(&dir.join(file));
    // No lock file: no writer ever locked it, so none is writing now.
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock) {
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StorageError::Lock { path: lock, source });
            }
        }
    }
    match std::fs::remove_file(temp) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StorageError::Remove {
            path: temp.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::artifact_path;

    #[test]
    fn temp_file_names_name_their_artifact() {
        assert_eq!(target_of(".abc.tar.gz.zdfKYK.tmp"), Some("abc.tar.gz"));
        assert_eq!(target_of(".tmp"), None);
        assert_eq!(target_of("abc.tar.gz"), None);
    }

    #[test]
    fn leftovers_of_a_killed_writer_go_and_a_live_writers_temp_file_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = Storage::new(tmp.path(), "http://x").unwrap();
        // A finished artifact, and the leftover of a writer killed while replacing it.
        let done = artifact_path("GitRepository", "ns", "app", "aaa.tar.gz").unwrap();
        storage
            .store(&done, |w| std::io::Write::write_all(w, b"done"))
            .unwrap();
        let dir = storage.object_dir_path("GitRepository", "ns", "app").unwrap();
        let leftover = dir.join(".bbb.tar.gz.Xy12Z9.tmp");
        fs_err::write(&leftover, b"partial").unwrap();
        // A write in progress (its lock held): its temp file is not a leftover.
        let live = artifact_path("GitRepository", "ns", "app", "ccc.tar.gz").unwrap();
        let writer = storage.writer(&live).unwrap();
        let removed = storage.remove_leftovers().unwrap();
        assert_eq!(removed, vec![leftover.clone()]);
        assert!(!leftover.exists());
        assert!(
            storage.local_path(&done).unwrap().exists(),
            "finished artifacts stay"
        );
        let names: Vec<String> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(
                |n| n.starts_with(".ccc.tar.gz.") && Path::new(n).extension().is_some_and(|e| e == "tmp")
            ),
            "the live writer's temp file stays: {names:?}"
        );
        drop(writer);
    }
}
