//! Artifact storage: the `store` step of `resolve → fetch → package → store → status`.
//!
//! Owns the storage root (`--storage-path`) and the advertised base URL (`--storage-adv-addr`,
//! derived from `--storage-addr` when empty). Everything that touches artifact files goes through
//! [`Storage`]; the HTTP server ([`crate::server`]) only reads what it wrote.
//!
//! ```text
//!  <root>/
//!    gitrepository/<namespace>/<name>/          0700, one directory per object
//!      <commit-hex>.tar.gz                      0600, written atomically  ── store / verify
//!      <commit-hex>.tar.gz.lock                 exclusive lock while writing
//!    bucket/<namespace>/<name>/
//!      <digest-hex>.tar.gz, *.lock
//!      latest.tar.gz -> <digest-hex>.tar.gz     symlink, replaced atomically
//!
//!  status.artifact.path = <lowercase kind>/<namespace>/<name>/<file>
//!  status.artifact.url  = <advertised base>/<path>
//! ```
//!
//! Per reconcile the caller runs [`Storage::gc`] and [`Storage::verify`] first (Flux's
//! `reconcileStorage`), then [`Storage::store`] for a new revision. All I/O is blocking; async
//! callers use `spawn_blocking`.

mod address;
mod error;
mod gc;
mod leftovers;
mod path;
mod verify;
mod write;

pub use address::advertised_base_url;
pub use error::{GARBAGE_COLLECTION_FAILED, StorageError};
pub use gc::{DEFAULT_RETENTION_RECORDS, DEFAULT_RETENTION_TTL, GC_WALK_LIMIT, GcReport};
pub use path::{artifact_path, object_dir};
pub use verify::Verification;
pub use write::{ArtifactWriter, Stored};

use std::io;
use std::path::{Path, PathBuf};

/// Name of the Bucket's symlink to its current artifact (and of Git's legacy one).
pub const LATEST_SYMLINK: &str = "latest.tar.gz";

/// The artifact store: a root directory plus the base URL its files are served under.
#[derive(Clone, Debug)]
pub struct Storage {
    root: PathBuf,
    base_url: String,
}

impl Storage {
    /// A store at `root` (which must be an existing directory) advertised under `base_url`.
    ///
    /// A trailing `/` on `base_url` is dropped.
    ///
    /// # Errors
    /// [`StorageError::InvalidRoot`] when `root` is not an existing directory (Flux refuses to start
    /// then, too).
    pub fn new(root: impl Into<PathBuf>, base_url: impl Into<String>) -> Result<Self, StorageError> {
        let root = root.into();
        match fs_err::metadata(&root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StorageError::InvalidRoot {
                    path: root,
                    source: None,
                });
            }
            Err(source) => {
                return Err(StorageError::InvalidRoot {
                    path: root,
                    source: Some(source),
                });
            }
        }
        let base_url = base_url.into().trim_end_matches('/').to_string();
        Ok(Storage { root, base_url })
    }

    /// A store from the controller flags `--storage-path`, `--storage-addr`, `--storage-adv-addr`.
    ///
    /// # Errors
    /// As [`advertised_base_url`] and [`Storage::new`].
    ///
    /// ```no_run
    /// # use source_controller::storage::Storage;
    /// let storage = Storage::from_flags("/data", ":9090", "source-controller.flux-system.svc.cluster.local.")?;
    /// assert_eq!(
    ///     storage.url("gitrepository/flux-system/podinfo/0a1b.tar.gz"),
    ///     "http://source-controller.flux-system.svc.cluster.local./gitrepository/flux-system/podinfo/0a1b.tar.gz"
    /// );
    /// # Ok::<(), source_controller::storage::StorageError>(())
    /// ```
    pub fn from_flags(
        storage_path: impl Into<PathBuf>,
        storage_addr: &str,
        storage_adv_addr: &str,
    ) -> Result<Self, StorageError> {
        let base_url = advertised_base_url(storage_addr, storage_adv_addr)?;
        Storage::new(storage_path, base_url)
    }

    /// The storage root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The advertised base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The download URL of a relative artifact path: `<base>/<path>`.
    ///
    /// Callers rewrite `status.artifact.url` with this on every reconcile, so a changed advertised
    /// address reaches consumers without a rebuild.
    pub fn url(&self, rel_path: &str) -> String {
        format!("{}/{}", self.base_url, rel_path.trim_start_matches('/'))
    }

    /// The absolute path of a relative artifact path, after checking it stays inside the root.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`] for an empty or absolute path, or a segment that is empty,
    /// `.`/`..`, or contains `\` or NUL.
    pub fn local_path(&self, rel_path: &str) -> Result<PathBuf, StorageError> {
        let mut path = self.root.clone();
        path.extend(path::split_relative(rel_path)?);
        Ok(path)
    }

    /// The absolute directory of one object: `<root>/<lowercase kind>/<namespace>/<name>`.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`] as for [`object_dir`].
    pub fn object_dir_path(&self, kind: &str, namespace: &str, name: &str) -> Result<PathBuf, StorageError> {
        Ok(self.root.join(object_dir(kind, namespace, name)?))
    }

    /// Creates an object's directory (and missing parents) with mode 0700; returns its path.
    ///
    /// [`Storage::store`] does this itself; this is for callers that need the directory earlier.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`] or [`StorageError::CreateDir`].
    pub fn create_object_dir(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, StorageError> {
        let dir = self.object_dir_path(kind, namespace, name)?;
        write::create_dir(&dir)?;
        Ok(dir)
    }

    /// Removes one artifact file (e.g. after a digest mismatch); `Ok(false)` if it was not there.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`] or [`StorageError::Remove`].
    pub fn remove(&self, rel_path: &str) -> Result<bool, StorageError> {
        let path = self.local_path(rel_path)?;
        match fs_err::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StorageError::Remove { path, source }),
        }
    }

    /// Removes an object's whole directory (on object deletion); `Ok(false)` if there was none.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`] or [`StorageError::Remove`].
    pub fn remove_object_dir(&self, kind: &str, namespace: &str, name: &str) -> Result<bool, StorageError> {
        let dir = self.object_dir_path(kind, namespace, name)?;
        match fs_err::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StorageError::Remove { path: dir, source }),
        }
    }

    /// Points `<object dir>/latest.tar.gz` at `file` (Bucket), replacing any previous link
    /// atomically; returns the link's URL.
    ///
    /// The link target is the bare file name (relative), so it stays valid wherever the volume is
    /// mounted; Flux writes an absolute target.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`], [`StorageError::CreateDir`] or [`StorageError::Symlink`].
    pub fn set_latest_symlink(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        file: &str,
    ) -> Result<String, StorageError> {
        path::check_component("file", file)?;
        let dir = self.create_object_dir(kind, namespace, name)?;
        let link = dir.join(LATEST_SYMLINK);
        let tmp = dir.join(format!("{LATEST_SYMLINK}.tmp"));
        let failed = |source| StorageError::Symlink {
            path: link.clone(),
            source,
        };
        match fs_err::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        fs_err::os::unix::fs::symlink(file, &tmp).map_err(failed)?;
        fs_err::rename(&tmp, &link).map_err(failed)?;
        Ok(self.url(&format!(
            "{}/{LATEST_SYMLINK}",
            object_dir(kind, namespace, name)?
        )))
    }

    /// Removes the legacy `latest.tar.gz` symlink older releases wrote for Git objects; a regular
    /// file of that name is left alone. Returns whether a link was removed.
    ///
    /// # Errors
    /// [`StorageError::InvalidPath`], [`StorageError::Stat`] or [`StorageError::Symlink`].
    pub fn remove_legacy_latest(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<bool, StorageError> {
        let link = self.object_dir_path(kind, namespace, name)?.join(LATEST_SYMLINK);
        match fs_err::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(StorageError::Stat { path: link, source }),
        }
        match fs_err::remove_file(&link) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StorageError::Symlink { path: link, source }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A storage in a fresh temp dir (`<tmp>/root`, so tests can check nothing lands beside it).
    pub(crate) fn storage() -> (tempfile::TempDir, Storage) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs_err::create_dir(&root).unwrap();
        let storage = Storage::new(&root, "http://localhost:9090/").unwrap();
        (tmp, storage)
    }

    #[test]
    fn url_joins_base_and_path() {
        let (_tmp, storage) = storage();
        assert_eq!(storage.base_url(), "http://localhost:9090");
        assert_eq!(
            storage.url("gitrepository/ns/app/a.tar.gz"),
            "http://localhost:9090/gitrepository/ns/app/a.tar.gz"
        );
    }

    #[test]
    fn from_flags_uses_the_advertised_address() {
        let (tmp, _) = storage();
        let storage =
            Storage::from_flags(tmp.path().join("root"), ":9090", "https://cdn.example/flux").unwrap();
        assert_eq!(
            storage.url("bucket/ns/b/x.tar.gz"),
            "https://cdn.example/flux/bucket/ns/b/x.tar.gz"
        );
    }

    #[test]
    fn root_must_be_an_existing_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Storage::new(tmp.path().join("missing"), "http://x").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        fs_err::write(tmp.path().join("file"), b"").unwrap();
        assert!(Storage::new(tmp.path().join("file"), "http://x").is_err());
    }

    #[test]
    fn local_path_rejects_traversal() {
        let (_tmp, storage) = storage();
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\..\\x", ""] {
            let err = storage.local_path(bad).unwrap_err();
            assert_eq!(err.reason(), "InvalidPath", "{bad}");
        }
        assert_eq!(
            storage.local_path("bucket/ns/b/x.tar.gz").unwrap(),
            storage.root().join("bucket/ns/b/x.tar.gz")
        );
    }

    #[test]
    fn object_dir_is_created_private() {
        use std::os::unix::fs::MetadataExt;
        let (_tmp, storage) = storage();
        let dir = storage.create_object_dir("Bucket", "ns", "b").unwrap();
        assert_eq!(dir, storage.root().join("bucket/ns/b"));
        assert_eq!(fs_err::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn latest_symlink_points_at_the_current_file_and_is_replaced() {
        let (_tmp, storage) = storage();
        for file in ["one.tar.gz", "two.tar.gz"] {
            let path = artifact_path("Bucket", "ns", "b", file).unwrap();
            storage
                .store(&path, |out| out.write_all(file.as_bytes()))
                .unwrap();
        }
        let url = storage
            .set_latest_symlink("Bucket", "ns", "b", "one.tar.gz")
            .unwrap();
        assert_eq!(url, "http://localhost:9090/bucket/ns/b/latest.tar.gz");
        let link = storage.root().join("bucket/ns/b/latest.tar.gz");
        assert_eq!(fs_err::read(&link).unwrap(), b"one.tar.gz");
        storage
            .set_latest_symlink("Bucket", "ns", "b", "two.tar.gz")
            .unwrap();
        assert_eq!(fs_err::read_link(&link).unwrap(), Path::new("two.tar.gz"));
        assert_eq!(fs_err::read(&link).unwrap(), b"two.tar.gz");
        assert!(!storage.root().join("bucket/ns/b/latest.tar.gz.tmp").exists());
        assert!(storage.set_latest_symlink("Bucket", "ns", "b", "../x").is_err());
    }

    #[test]
    fn legacy_latest_symlink_is_removed_but_regular_files_are_kept() {
        let (_tmp, storage) = storage();
        storage
            .set_latest_symlink("GitRepository", "ns", "g", "a.tar.gz")
            .unwrap();
        assert!(storage.remove_legacy_latest("GitRepository", "ns", "g").unwrap());
        assert!(!storage.remove_legacy_latest("GitRepository", "ns", "g").unwrap());
        let file = storage.root().join("gitrepository/ns/g/latest.tar.gz");
        fs_err::write(&file, b"not a link").unwrap();
        assert!(!storage.remove_legacy_latest("GitRepository", "ns", "g").unwrap());
        assert!(file.exists());
    }

    #[test]
    fn remove_and_remove_object_dir_tolerate_absence() {
        let (_tmp, storage) = storage();
        let path = artifact_path("GitRepository", "ns", "g", "a.tar.gz").unwrap();
        storage.store(&path, |out| out.write_all(b"x")).unwrap();
        assert!(storage.remove(&path).unwrap());
        assert!(!storage.remove(&path).unwrap());
        assert!(storage.remove_object_dir("GitRepository", "ns", "g").unwrap());
        assert!(!storage.root().join("gitrepository/ns/g").exists());
        assert!(!storage.remove_object_dir("GitRepository", "ns", "g").unwrap());
        assert!(storage.remove_object_dir("GitRepository", "..", "..").is_err());
    }
}
