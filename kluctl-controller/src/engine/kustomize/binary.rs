//! The pinned `kustomize` binary: locating it, checking that it runs, and running
//! `kustomize build --load-restrictor LoadRestrictionsNone <dir>` for every kustomization the native
//! path does not handle.
//!
//! Location (first match wins): an explicit path given by the caller, the `KLUCTL_KUSTOMIZE`
//! environment variable ([`ENV_KUSTOMIZE`]), then `kustomize` on `$PATH`. Kluctl itself embeds
//! kustomize/api v0.21.1, which is kustomize 5.8.1; that is the version this binary should have.

use super::{KustomizeError, parse_multi_doc};
use crate::engine::Object;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the kustomize binary.
pub const ENV_KUSTOMIZE: &str = "KLUCTL_KUSTOMIZE";

/// The kustomize release whose output the engine reproduces.
pub const PINNED_KUSTOMIZE_VERSION: &str = "v5.8.1";

/// How to reach the pinned kustomize binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KustomizeBinary {
    /// Path of the binary (a bare name is looked up on `$PATH` by the OS).
    pub path: PathBuf,
}

impl Default for KustomizeBinary {
    fn default() -> Self {
        Self::from_env()
    }
}

impl KustomizeBinary {
    /// A binary at an explicit path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `$KLUCTL_KUSTOMIZE` when set and non-empty, otherwise `kustomize` from `$PATH`.
    pub fn from_env() -> Self {
        match std::env::var_os(ENV_KUSTOMIZE) {
            Some(p) if !p.is_empty() => Self::new(p),
            _ => Self::new("kustomize"),
        }
    }

    /// Runs `kustomize version` and returns its output (e.g. `v5.8.1`).
    ///
    /// # Errors
    /// [`KustomizeError::Binary`] when the binary cannot be started or fails; the message carries a
    /// hint on how to install it or point [`ENV_KUSTOMIZE`] at it.
    pub fn check(&self) -> Result<String, KustomizeError> {
        let out = Command::new(&self.path)
            .arg("version")
            .output()
            .map_err(|e| self.spawn_error(&e))?;
        if !out.status.success() {
            return Err(KustomizeError::Binary {
                path: self.path.display().to_string(),
                message: format!(
                    "'kustomize version' exited with {}: {}",
                    out.status,
                    stderr_text(&out.stderr)
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs `kustomize build --load-restrictor LoadRestrictionsNone <dir>` and parses its output.
    ///
    /// # Errors
    /// [`KustomizeError::Binary`] when it cannot start, [`KustomizeError::BuildFailed`] with its stderr
    /// when it fails, [`KustomizeError::ParseOutput`] when the output is not YAML objects.
    pub fn build(&self, dir: &Path) -> Result<Vec<Object>, KustomizeError> {
        let out = Command::new(&self.path)
            .arg("build")
            .arg("--load-restrictor")
            .arg("LoadRestrictionsNone")
            .arg(dir)
            .output()
            .map_err(|e| self.spawn_error(&e))?;
        if !out.status.success() {
            return Err(KustomizeError::BuildFailed {
                dir: dir.to_path_buf(),
                stderr: stderr_text(&out.stderr),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        parse_multi_doc(&text).map_err(|message| KustomizeError::ParseOutput {
            dir: dir.to_path_buf(),
            message,
        })
    }

    fn spawn_error(&self, e: &std::io::Error) -> KustomizeError {
        KustomizeError::Binary {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }
}

fn stderr_text(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr).trim().to_string()
}
