//! Re-verification of a stored artifact against the digest advertised in `status.artifact`.
//!
//! Runs on every reconcile (Flux's `reconcileStorage`): a file that is gone or whose bytes no longer
//! hash to `artifact.digest` must not stay advertised, because consumers would reject the download.

use super::{Storage, StorageError};
use gitops_api::meta::Artifact;
use gitops_api::revision::{Digest, lower_hex};
use std::io::{self, Read};

/// Read buffer for hashing.
const CHUNK: usize = 64 * 1024;

/// The result of [`Storage::verify`]; anything but [`Verification::Verified`] means "rebuild".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The file exists and hashes to the advertised digest.
    Verified,
    /// No regular file at the artifact path (deleted, a symlink, or a path outside the storage).
    Missing,
    /// The file's bytes hash to something else: delete it and rebuild.
    Mismatch {
        /// The digest advertised in the status.
        expected: String,
        /// The digest of the file's bytes, same algorithm.
        actual: String,
    },
    /// The advertised digest cannot be checked (empty, malformed, or an algorithm we do not hash);
    /// Flux treats this like a mismatch.
    Unverifiable {
        /// The digest string from the status.
        digest: String,
        /// Why it cannot be checked.
        reason: String,
    },
}

impl Verification {
    /// `true` only for [`Verification::Verified`].
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified)
    }
}

impl Storage {
    /// Checks that `artifact.path` is a regular file whose bytes hash to `artifact.digest`.
    ///
    /// A path that could not be in the storage (it would escape the root) is reported
    /// [`Verification::Missing`], as Flux's clamped lookup does, so the caller rebuilds instead of
    /// failing forever on a status it cannot repair.
    ///
    /// # Errors
    /// [`StorageError::Stat`] or [`StorageError::Read`] when the file exists but cannot be inspected
    /// or read.
    ///
    /// ```no_run
    /// # use source_controller::storage::{Storage, Verification};
    /// # fn f(storage: &Storage, artifact: &gitops_api::meta::Artifact) -> Result<(), Box<dyn std::error::Error>> {
    /// match storage.verify(artifact)? {
    ///     Verification::Verified => {}
    ///     Verification::Missing => { /* clear status.artifact, rebuild */ }
    ///     _ => { storage.remove(&artifact.path)?; /* clear status.artifact, rebuild */ }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn verify(&self, artifact: &Artifact) -> Result<Verification, StorageError> {
        let Ok(path) = self.local_path(&artifact.path) else {
            return Ok(Verification::Missing);
        };
        match fs_err::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_file() => {}
            Ok(_) => return Ok(Verification::Missing),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verification::Missing),
            Err(source) => return Err(StorageError::Stat { path, source }),
        }
        let expected = match Digest::parse(&artifact.digest) {
            Ok(d) => d,
            Err(e) => {
                return Ok(Verification::Unverifiable {
                    digest: artifact.digest.clone(),
                    reason: e.to_string(),
                });
            }
        };
        let hash: fn(&mut dyn Read) -> io::Result<String> = match expected.algorithm.as_str() {
            "sha256" => hash_reader::<sha2::Sha256>,
            "sha384" => hash_reader::<sha2::Sha384>,
            "sha512" => hash_reader::<sha2::Sha512>,
            other => {
                return Ok(Verification::Unverifiable {
                    digest: artifact.digest.clone(),
                    reason: format!("algorithm '{other}' is not used for artifacts"),
                });
            }
        };
        let read_failed = |source| StorageError::Read {
            path: path.clone(),
            source,
        };
        let mut file = match fs_err::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verification::Missing),
            Err(e) => return Err(read_failed(e)),
        };
        let actual = hash(&mut file).map_err(read_failed)?;
        if actual == expected.hex {
            Ok(Verification::Verified)
        } else {
            Ok(Verification::Mismatch {
                expected: expected.to_string(),
                actual: format!("{}:{actual}", expected.algorithm),
            })
        }
    }
}

/// Hex digest of everything `reader` yields.
fn hash_reader<D: sha2::Digest>(reader: &mut dyn Read) -> io::Result<String> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(lower_hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::storage;
    use super::*;

    const PATH: &str = "bucket/default/podinfo/abc.tar.gz";

    fn stored_artifact(storage: &Storage) -> Artifact {
        storage
            .store(PATH, |out| out.write_all(b"artifact bytes"))
            .unwrap()
            .into_artifact("sha256:abc")
    }

    #[test]
    fn verify_accepts_the_stored_file() {
        let (_tmp, storage) = storage();
        let artifact = stored_artifact(&storage);
        assert_eq!(storage.verify(&artifact).unwrap(), Verification::Verified);
    }

    #[test]
    fn verify_reports_a_deleted_file_missing() {
        let (_tmp, storage) = storage();
        let artifact = stored_artifact(&storage);
        fs_err::remove_file(storage.root().join(PATH)).unwrap();
        assert_eq!(storage.verify(&artifact).unwrap(), Verification::Missing);
    }

    #[test]
    fn verify_reports_changed_bytes_as_mismatch() {
        let (_tmp, storage) = storage();
        let artifact = stored_artifact(&storage);
        fs_err::write(storage.root().join(PATH), b"tampered").unwrap();
        match storage.verify(&artifact).unwrap() {
            Verification::Mismatch { expected, actual } => {
                assert_eq!(expected, artifact.digest);
                assert_ne!(actual, expected);
                assert!(actual.starts_with("sha256:"));
            }
            other => panic!("expected mismatch, got {other:?}"),
        }
    }

    #[test]
    fn verify_reports_bad_digests_unverifiable() {
        let (_tmp, storage) = storage();
        let mut artifact = stored_artifact(&storage);
        for digest in ["", "sha256:nothex", "md5:d41d8cd98f00b204e9800998ecf8427e"] {
            artifact.digest = digest.into();
            let v = storage.verify(&artifact).unwrap();
            assert!(matches!(v, Verification::Unverifiable { .. }), "{digest}: {v:?}");
            assert!(!v.is_verified());
        }
    }

    #[test]
    fn verify_treats_symlinks_and_escaping_paths_as_missing() {
        let (_tmp, storage) = storage();
        let mut artifact = stored_artifact(&storage);
        let link = storage.root().join("bucket/default/podinfo/link.tar.gz");
        std::os::unix::fs::symlink("abc.tar.gz", &link).unwrap();
        artifact.path = "bucket/default/podinfo/link.tar.gz".into();
        assert_eq!(storage.verify(&artifact).unwrap(), Verification::Missing);
        artifact.path = "../outside.tar.gz".into();
        assert_eq!(storage.verify(&artifact).unwrap(), Verification::Missing);
    }
}
