//! The storage error type and its mapping to stable condition reasons.

use gitops_api::conditions::reasons;
use std::io;
use std::path::PathBuf;

pub use reasons::GARBAGE_COLLECTION_FAILED;

/// A failed storage action, naming the path it failed on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A kind, namespace, name, file or relative path would leave the storage root or is malformed.
    #[error("invalid artifact path '{path}': {reason}")]
    InvalidPath {
        /// The offending path (or path part) as given.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The storage root does not exist or is not a directory.
    #[error("invalid storage root '{path}': not an existing directory")]
    InvalidRoot {
        /// The configured root.
        path: PathBuf,
        /// The stat failure, if the root could not be inspected at all.
        #[source]
        source: Option<io::Error>,
    },
    /// `--storage-addr` could not be split into host and port.
    #[error("invalid storage address '{addr}': {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The storage address binds `0.0.0.0` and the hostname to advertise could not be read.
    #[error("failed to determine the hostname to advertise for storage address '{addr}'")]
    Hostname {
        /// The address as given.
        addr: String,
        /// The lookup failure.
        #[source]
        source: io::Error,
    },
    /// Creating an artifact directory failed.
    #[error("failed to create artifact directory '{path}'")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Opening or locking `<file>.lock` failed.
    #[error("failed to acquire lock '{path}'")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Writing, syncing or renaming the artifact file failed.
    #[error("failed to write artifact '{path}'")]
    Write {
        /// The artifact file being written.
        path: PathBuf,
        /// The I/O failure (including one returned by the caller's writer).
        #[source]
        source: io::Error,
    },
    /// Reading an artifact file (to verify it) failed.
    #[error("failed to read artifact '{path}'")]
    Read {
        /// The artifact file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Inspecting a file or directory failed.
    #[error("failed to stat '{path}'")]
    Stat {
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Listing an artifact directory (for garbage collection) failed.
    #[error("failed to list artifact directory '{path}'")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Removing a file or directory failed.
    #[error("failed to remove '{path}'")]
    Remove {
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Creating or replacing a symlink failed.
    #[error("failed to update symlink '{path}'")]
    Symlink {
        /// The symlink.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    /// The stable PascalCase reason for conditions, events and metric labels.
    ///
    /// Follows Flux's `sourcev1.*Reason` choices; lock failures get `AcquireLockFailed` where Flux
    /// uses the generic `Failed`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidPath { .. } | Self::InvalidRoot { .. } | Self::InvalidAddress { .. } => {
                reasons::INVALID_PATH
            }
            Self::Hostname { .. } | Self::Stat { .. } => reasons::STAT_OPERATION_FAILED,
            Self::CreateDir { .. } => reasons::DIRECTORY_CREATION_FAILED,
            Self::Lock { .. } => reasons::ACQUIRE_LOCK_FAILED,
            Self::Write { .. } => reasons::ARCHIVE_OPERATION_FAILED,
            Self::Read { .. } => reasons::READ_OPERATION_FAILED,
            Self::ListDir { .. } | Self::Remove { .. } => GARBAGE_COLLECTION_FAILED,
            Self::Symlink { .. } => reasons::SYMLINK_UPDATE_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_flux_names() {
        let io = || io::Error::other("boom");
        let cases = [
            (
                StorageError::InvalidPath {
                    path: "a/../b".into(),
                    reason: "x".into(),
                },
                "InvalidPath",
            ),
            (
                StorageError::CreateDir {
                    path: "d".into(),
                    source: io(),
                },
                "DirectoryCreationFailed",
            ),
            (
                StorageError::Lock {
                    path: "l".into(),
                    source: io(),
                },
                "AcquireLockFailed",
            ),
            (
                StorageError::Write {
                    path: "f".into(),
                    source: io(),
                },
                "ArchiveOperationFailed",
            ),
            (
                StorageError::Stat {
                    path: "f".into(),
                    source: io(),
                },
                "StatOperationFailed",
            ),
            (
                StorageError::Symlink {
                    path: "f".into(),
                    source: io(),
                },
                "SymlinkUpdateFailed",
            ),
            (
                StorageError::Remove {
                    path: "f".into(),
                    source: io(),
                },
                "GarbageCollectionFailed",
            ),
        ];
        for (err, reason) in cases {
            assert_eq!(err.reason(), reason, "{err}");
        }
    }

    #[test]
    fn messages_name_the_path_and_action() {
        let err = StorageError::Lock {
            path: "/data/gitrepository/ns/app/abc.tar.gz.lock".into(),
            source: io::Error::other("busy"),
        };
        assert_eq!(
            err.to_string(),
            "failed to acquire lock '/data/gitrepository/ns/app/abc.tar.gz.lock'"
        );
    }
}
