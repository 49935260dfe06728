//! Atomic, locked artifact writes that hash the bytes as they go.
//!
//! ```text
//!  lock <file>.lock ─► temp file .<file>.XXXXXX.tmp (0600) ─► write (sha256 + size) ─► fsync
//!                   ─► rename over <file> ─► fsync dir ─► unlock
//! ```
//!
//! A reader (the HTTP server, a verify) sees either the old file or the complete new one, never a
//! partial write; an aborted write leaves no file behind (the temp file is removed on drop).

use super::{Storage, StorageError};
use gitops_api::meta::{Artifact, Time};
use gitops_api::revision::{Digest, lower_hex};
use sha2::{Digest as _, Sha256};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tempfile::NamedTempFile;

/// Mode of artifact files (Flux writes archives 0600).
const FILE_MODE: u32 = 0o600;
/// Write buffer between the caller's encoder and the temp file.
const BUFFER: usize = 64 * 1024;

/// The outcome of a successful [`Storage::store`]: what the caller needs to build the `Artifact`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Path relative to the storage root (`status.artifact.path`).
    pub path: String,
    /// Download URL under the advertised address (`status.artifact.url`).
    pub url: String,
    /// sha256 of the bytes written (`status.artifact.digest`).
    pub digest: Digest,
    /// Number of bytes written (`status.artifact.size`).
    pub size: u64,
    /// Modification time of the stored file (`status.artifact.lastUpdateTime`).
    pub modified: SystemTime,
}

impl Stored {
    /// The `status.artifact` record for this file at `revision`.
    ///
    /// `lastUpdateTime` is the file's modification time truncated to whole seconds, the precision
    /// the API server keeps, so a re-read status compares equal.
    pub fn into_artifact(self, revision: impl Into<String>) -> Artifact {
        let Stored {
            path,
            url,
            digest,
            size,
            modified,
        } = self;
        let seconds = jiff::Timestamp::try_from(modified)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .as_second();
        let last_update_time = jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        Artifact {
            digest: digest.to_string(),
            last_update_time: Time(last_update_time),
            metadata: None,
            path,
            revision: revision.into(),
            size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
            url,
        }
    }
}

/// An artifact being written: implements [`Write`]; [`ArtifactWriter::commit`] makes it visible.
///
/// Holds the exclusive lock on `<file>.lock` until committed or dropped. Dropping it without
/// committing discards the bytes written and leaves any previous file in place.
#[derive(Debug)]
pub struct ArtifactWriter {
    rel_path: String,
    url: String,
    target: PathBuf,
    out: BufWriter<NamedTempFile>,
    hasher: Sha256,
    size: u64,
    // Released when the file is closed, i.e. when the writer is dropped (after the rename on commit).
    lock: fs_err::File,
}

impl Write for ArtifactWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl ArtifactWriter {
    /// Flushes, fsyncs and atomically renames the file into place, then fsyncs the directory.
    ///
    /// # Errors
    /// [`StorageError::Write`] when flushing, syncing, setting the mode or renaming fails; the
    /// temp file is removed and any previous file is left untouched.
    pub fn commit(self) -> Result<Stored, StorageError> {
        let ArtifactWriter {
            rel_path,
            url,
            target,
            out,
            hasher,
            size,
            lock,
        } = self;
        let failed = |source: io::Error| StorageError::Write {
            path: target.clone(),
            source,
        };
        let temp = out.into_inner().map_err(|e| failed(e.into_error()))?;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
            .map_err(failed)?;
        temp.as_file().sync_all().map_err(failed)?;
        let file = temp.persist(&target).map_err(|e| failed(e.error))?;
        if let Some(dir) = target.parent() {
            sync_dir(dir).map_err(failed)?;
        }
        let modified = file
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|source| StorageError::Stat {
                path: target.clone(),
                source,
            })?;
        drop(lock);
        Ok(Stored {
            path: rel_path,
            url,
            digest: Digest::sha256(lower_hex(&hasher.finalize())),
            size,
            modified,
        })
    }
}

impl Storage {
    /// Starts writing the artifact at `rel_path`: creates its directory (0700), takes the exclusive
    /// lock on `<file>.lock` (blocking while another writer holds it) and opens a temp file beside it.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`], [`StorageError::CreateDir`], [`StorageError::Lock`], or
    /// [`StorageError::Write`] when the temp file cannot be created.
    pub fn writer(&self, rel_path: &str) -> Result<ArtifactWriter, StorageError> {
        let target = self.local_path(rel_path)?;
        let (Some(dir), Some(file_name)) = (target.parent(), target.file_name()) else {
            return Err(StorageError::InvalidPath {
                path: rel_path.to_string(),
                reason: "the path has no file name".into(),
            });
        };
        create_dir(dir)?;
        let lock = lock_file(&lock_path(&target))?;
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(file_name);
        prefix.push(".");
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|source| StorageError::Write {
                path: target.clone(),
                source,
            })?;
        Ok(ArtifactWriter {
            rel_path: rel_path.to_string(),
            url: self.url(rel_path),
            target,
            out: BufWriter::with_capacity(BUFFER, temp),
            hasher: Sha256::new(),
            size: 0,
            lock,
        })
    }

    /// Writes the artifact at `rel_path` atomically with the bytes `write` produces, under the
    /// artifact's lock, and returns its digest, size and modification time.
    ///
    /// # Errors
    /// As [`Storage::writer`] and [`ArtifactWriter::commit`]; an error returned by `write` becomes
    /// [`StorageError::Write`] and nothing is stored.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use source_controller::storage::{artifact_path, Storage};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let storage = Storage::new("/data", "http://localhost:9090")?;
    /// let path = artifact_path("GitRepository", "flux-system", "podinfo", "0a1b2c.tar.gz")?;
    /// let stored = storage.store(&path, |out| out.write_all(b"tar.gz bytes"))?;
    /// let artifact = stored.into_artifact("main@sha1:0a1b2c");
    /// # Ok(()) }
    /// ```
    pub fn store(
        &self,
        rel_path: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<Stored, StorageError> {
        let mut writer = self.writer(rel_path)?;
        write(&mut writer).map_err(|source| StorageError::Write {
            path: writer.target.clone(),
            source,
        })?;
        writer.commit()
    }
}

/// `<file>.lock` beside `file`.
pub(super) fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Creates `dir` and missing parents with mode 0700.
pub(super) fn create_dir(dir: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StorageError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Opens (creating if needed) and exclusively locks `path`.
fn lock_file(path: &Path) -> Result<fs_err::File, StorageError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    let failed = |source| StorageError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(failed)?;
    file.lock().map_err(failed)?;
    Ok(file)
}

/// fsyncs a directory so a rename inside it survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::tests::storage;
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const PATH: &str = "gitrepository/flux-system/podinfo/0a1b2c.tar.gz";

    #[test]
    fn store_writes_file_with_sha256_size_and_mode() {
        let (_tmp, storage) = storage();
        let stored = storage.store(PATH, |out| out.write_all(b"hello world")).unwrap();
        assert_eq!(
            stored.digest.to_string(),
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(stored.size, 11);
        assert_eq!(stored.path, PATH);
        assert_eq!(stored.url, format!("http://localhost:9090/{PATH}"));
        let file = storage.root().join(PATH);
        assert_eq!(fs_err::read(&file).unwrap(), b"hello world");
        let meta = fs_err::metadata(&file).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.modified().unwrap(), stored.modified);
        let dir_mode = fs_err::metadata(file.parent().unwrap()).unwrap().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn store_leaves_only_the_artifact_and_its_lock() {
        let (_tmp, storage) = storage();
        storage.store(PATH, |out| out.write_all(b"v1")).unwrap();
        let dir = storage.root().join("gitrepository/flux-system/podinfo");
        let mut names: Vec<_> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["0a1b2c.tar.gz", "0a1b2c.tar.gz.lock"]);
    }

    #[test]
    fn failed_write_keeps_the_previous_file_and_no_temp() {
        let (_tmp, storage) = storage();
        storage.store(PATH, |out| out.write_all(b"old")).unwrap();
        let err = storage
            .store(PATH, |out| {
                out.write_all(b"partial new bytes")?;
                Err(io::Error::other("archive failed"))
            })
            .unwrap_err();
        assert_eq!(err.reason(), "ArchiveOperationFailed");
        assert_eq!(fs_err::read(storage.root().join(PATH)).unwrap(), b"old");
        let dir = storage.root().join("gitrepository/flux-system/podinfo");
        assert_eq!(fs_err::read_dir(&dir).unwrap().count(), 2, "artifact + lock only");
    }

    #[test]
    fn store_replaces_an_existing_file_atomically() {
        let (_tmp, storage) = storage();
        storage.store(PATH, |out| out.write_all(b"old")).unwrap();
        let stored = storage.store(PATH, |out| out.write_all(b"new")).unwrap();
        assert_eq!(fs_err::read(storage.root().join(PATH)).unwrap(), b"new");
        assert_eq!(stored.size, 3);
    }

    #[test]
    fn lock_is_exclusive_while_writing() {
        let (_tmp, storage) = storage();
        let writer = storage.writer(PATH).unwrap();
        let lock = fs_err::File::open(lock_path(&storage.root().join(PATH))).unwrap();
        assert!(lock.try_lock().is_err(), "lock must be held by the writer");
        writer.commit().unwrap();
        assert!(lock.try_lock().is_ok(), "lock must be released after commit");
    }

    #[test]
    fn store_rejects_traversal() {
        let (_tmp, storage) = storage();
        for bad in [
            "../escape.tar.gz",
            "gitrepository/../../escape.tar.gz",
            "/etc/passwd",
        ] {
            let err = storage.store(bad, |out| out.write_all(b"x")).unwrap_err();
            assert_eq!(err.reason(), "InvalidPath", "{bad}: {err}");
        }
        assert!(!storage.root().parent().unwrap().join("escape.tar.gz").exists());
    }

    #[test]
    fn stored_becomes_a_flux_artifact() {
        let (_tmp, storage) = storage();
        let stored = storage.store(PATH, |out| out.write_all(b"hello world")).unwrap();
        let modified = stored.modified;
        let artifact = stored.into_artifact("main@sha1:0a1b2c");
        assert_eq!(artifact.revision, "main@sha1:0a1b2c");
        assert_eq!(artifact.path, PATH);
        assert_eq!(artifact.size, Some(11));
        assert!(artifact.digest.starts_with("sha256:"));
        let secs = modified.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(
            artifact.last_update_time.0.as_second(),
            i64::try_from(secs).unwrap()
        );
        assert_eq!(artifact.last_update_time.0.subsec_nanosecond(), 0);
    }
}
