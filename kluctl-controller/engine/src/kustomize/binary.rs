//! The pinned `kustomize` binary: locating it, checking that it runs, and running
//! `kustomize build --load-restrictor LoadRestrictionsNone <dir>` for every kustomization the native
//! path does not handle.
//!
//! Location (first match wins): an explicit path given by the caller, the `KLUCTL_KUSTOMIZE`
//! environment variable ([`ENV_KUSTOMIZE`]), then `kustomize` on `$PATH`. Kluctl itself embeds
//! kustomize/api v0.21.1, which is kustomize 5.8.1; that is the version this binary should have.

use super::KustomizeError;
use crate::Object;
use crate::yaml::parse_multi_doc;
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

    /// The objects of `dir` in the order Kluctl's kustomize gives them, parsed.
    ///
    /// Kluctl runs kustomize's library with the reorder option left empty, which means resource
    /// input order (FIFO) unless the top-level kustomization sets `sortOptions`. The 5.8.1 CLI
    /// has no `--reorder` flag any more and applies the legacy kind sort by default, so a
    /// kustomization without `sortOptions` is built through a temporary wrapper kustomization
    /// that lists it and asks for `order: fifo` (only the top-level `sortOptions` counts).
    /// When the wrapped build fails, `dir` is built directly so the error names the user's files.
    ///
    /// # Errors
    /// [`KustomizeError::Binary`] when it cannot start, [`KustomizeError::BuildFailed`] with its stderr
    /// when it fails, [`KustomizeError::ParseOutput`] when the output is not YAML objects.
    pub fn build(&self, dir: &Path) -> Result<Vec<Object>, KustomizeError> {
        if has_sort_options(dir) {
            return self.build_dir(dir);
        }
        let wrapper = tempfile::Builder::new()
            .prefix("kluctl-kustomize-")
            .tempdir()
            .map_err(|source| KustomizeError::Io {
                action: "create",
                path: std::env::temp_dir(),
                source,
            })?;
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let rel = relative_path(wrapper.path(), &abs);
        let text = format!(
            "resources:\n- {}\nsortOptions:\n  order: fifo\n",
            serde_json::Value::String(rel.to_string_lossy().replace('\\', "/"))
        );
        let file = wrapper.path().join("kustomization.yaml");
        fs_err::write(&file, text).map_err(|source| KustomizeError::Io {
            action: "write",
            path: file,
            source,
        })?;
        match self.build_dir(wrapper.path()) {
            Err(KustomizeError::BuildFailed { .. }) => {
                self.build_dir(dir).and_then(|_| self.build_dir(wrapper.path()))
            }
            other => other,
        }
    }

    /// Runs `kustomize build --load-restrictor LoadRestrictionsNone <dir>` and parses its output.
    fn build_dir(&self, dir: &Path) -> Result<Vec<Object>, KustomizeError> {
        let out = Command::new(&self.path)
            .arg("build")
            .arg("--load-restrictor")
            .arg("LoadRestrictionsNone")
            .arg(dir)
            .output()
            .map_err(|e| self.spawn_error(&e))?;
        if !out.status.success() {
            // kustomize names files by absolute path, which here is a temporary render dir that
            // changes every reconcile: name them relative to the kustomization instead.
            let at = dir.display().to_string();
            let stderr = stderr_text(&out.stderr)
                .replace(&format!("{at}/"), "")
                .replace(&at, ".");
            return Err(KustomizeError::BuildFailed {
                dir: dir.to_path_buf(),
                stderr,
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

/// Whether the kustomization in `dir` has a top-level `sortOptions` key (unreadable: no).
fn has_sort_options(dir: &Path) -> bool {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .and_then(|p| fs_err::read_to_string(p).ok())
        .and_then(|t| serde_saphyr::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("sortOptions").is_some())
}

/// `to` relative to `from` (both absolute), with `..` where they part.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c.as_os_str());
    }
    out
}

#[cfg(test)]
mod order_tests {
    use super::relative_path;
    use std::path::Path;

    #[test]
    fn relative_paths_climb_to_the_common_parent() {
        assert_eq!(
            relative_path(Path::new("/tmp/w"), Path::new("/work/p/x")),
            Path::new("../../work/p/x")
        );
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/b/c")),
            Path::new("c")
        );
    }
}
