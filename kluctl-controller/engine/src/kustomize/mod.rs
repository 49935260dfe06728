//! Kustomize step of the render pipeline: turns a rendered deployment-item directory into the
//! objects `kustomize build --load-restrictor LoadRestrictionsNone <dir>` (kustomize 5.8.1, the
//! version Kluctl embeds) outputs, in the same order.
//!
//! ```text
//!                ┌─ native::build (resources + namespace only; pure Rust, no process) ─┐
//! build(dir) ──► │                                                                     ├──► Vec<Object>
//!                └─ binary::KustomizeBinary::build (everything else, or when native    ┘
//!                   declines: unknown fields, remote resources, lists, duplicate ids,
//!                   references kustomize's name-reference rule would rewrite, ...)
//! ```
//!
//! [`generate_kustomization`] writes the `kustomization.yml` Kluctl generates for a deployment item
//! that has none; the render step calls it before [`Kustomizer::build`].
//!
//! The native path is hand-written because no Rust crate implements kustomize; it covers only the
//! subset that Kluctl projects use most (generated kustomizations, explicit ones with `resources` and
//! `namespace`), and declines everything else so that the binary produces the result and its errors.
//! `name_reference` holds the guard for the one kustomize rule that acts across objects even in that
//! subset (RoleBinding subjects and webhook services follow the object they name).

mod binary;
mod generate;
mod name_reference;
mod native;

pub use binary::{ENV_KUSTOMIZE, KustomizeBinary, PINNED_KUSTOMIZE_VERSION};
pub use generate::{
    Kustomization, PreparedKustomization, generate_kustomization, prepare_kustomization,
    prepare_kustomization_in, write_kustomization,
};

use crate::Object;
use std::path::{Path, PathBuf};

/// Failures of the kustomize step.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// The kustomize binary could not be run at all.
    #[error(
        "failed to run kustomize at '{path}': {message}\nhint: install kustomize {ver} and put it on $PATH, or set {env} to its path",
        ver = PINNED_KUSTOMIZE_VERSION,
        env = ENV_KUSTOMIZE
    )]
    Binary {
        /// Path of the binary.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// `kustomize build` ran and failed.
    /// (The message leaves `dir` out: callers name the deployment item, and the directory is a
    /// temporary render dir.)
    #[error("kustomize build failed: {stderr}")]
    BuildFailed {
        /// The kustomization directory.
        dir: PathBuf,
        /// kustomize's stderr, paths below `dir` made relative to it.
        stderr: String,
    },
    /// `kustomize build` printed something that is not a stream of YAML objects.
    #[error("failed to parse the output of kustomize for '{}': {message}", dir.display())]
    ParseOutput {
        /// The kustomization directory.
        dir: PathBuf,
        /// Parser message.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("failed to {action} '{}'", path.display())]
    Io {
        /// What was attempted (`read directory`, `write`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `recursive: true` met a kustomization file.
    #[error("failed to generate kustomization: recursive: true cannot be used when a nested kustomization.yaml/yml already exists in '{}'", path.display())]
    RecursiveWithKustomization {
        /// The offending file, relative to the item directory.
        path: PathBuf,
    },
    /// `recursive: true` on an item that has its own kustomization.
    #[error("failed to prepare kustomization: recursive: true cannot be used when a kustomization.yaml/yml already exists in '{}'", dir.display())]
    RecursiveWithOwnKustomization {
        /// The item directory (relative to the source root when known).
        dir: PathBuf,
    },
    /// An existing kustomization file is not a YAML mapping.
    #[error("failed to parse kustomization '{}': {message}", path.display())]
    ParseKustomization {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A `helm-chart.yaml` met while generating a kustomization could not be read.
    #[error("failed to generate kustomization in '{}'", dir.display())]
    HelmChart {
        /// The item directory.
        dir: PathBuf,
        /// The chart configuration error.
        #[source]
        source: Box<crate::helm::HelmError>,
    },
}

/// Which implementation produced a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildPath {
    /// The native Rust path.
    Native,
    /// The kustomize binary; the string says why the native path declined.
    Binary(String),
}

/// Builds kustomizations: the native fast path when it applies, the pinned binary otherwise.
#[derive(Clone, Debug, Default)]
pub struct Kustomizer {
    /// The binary used for everything outside the native subset.
    pub binary: KustomizeBinary,
    /// When false, every build goes to the binary (used by the differential test and for debugging).
    pub native_disabled: bool,
}

impl Kustomizer {
    /// A kustomizer using `binary` for what the native path declines.
    pub fn new(binary: KustomizeBinary) -> Self {
        Self {
            binary,
            native_disabled: false,
        }
    }

    /// The objects `kustomize build --load-restrictor LoadRestrictionsNone <dir>` outputs, in order.
    ///
    /// # Errors
    /// Binary failures as [`KustomizeError`]; errors of kustomize itself carry its stderr and `dir`.
    pub fn build(&self, dir: &Path) -> Result<Vec<Object>, KustomizeError> {
        self.build_traced(dir).map(|(objects, _)| objects)
    }

    /// Like [`Kustomizer::build`], also saying which path produced the objects.
    ///
    /// # Errors
    /// As [`Kustomizer::build`].
    pub fn build_traced(&self, dir: &Path) -> Result<(Vec<Object>, BuildPath), KustomizeError> {
        let declined = if self.native_disabled {
            "native path disabled".to_string()
        } else {
            match native::build(&crate::files::Disk, dir) {
                Ok(objects) => return Ok((objects, BuildPath::Native)),
                Err(declined) => declined.0,
            }
        };
        tracing::debug!(dir = %dir.display(), reason = %declined, "kustomize: using the binary");
        let objects = self.binary.build(dir)?;
        Ok((objects, BuildPath::Binary(declined)))
    }

    /// Only the native path: `Err` carries why it declined (for tests and diagnostics).
    pub fn build_native(dir: &Path) -> Result<Vec<Object>, String> {
        native::build(&crate::files::Disk, dir).map_err(|d| d.0)
    }

    /// The native path on a rendered tree held in memory ([`crate::files::MemTree`]), or why it
    /// declined (`None`: native builds are disabled). The caller then writes the tree to disk
    /// and calls [`Kustomizer::build`], which decides again on the files.
    pub fn build_native_in(
        &self,
        tree: &dyn crate::files::Tree,
        dir: &Path,
    ) -> Option<Result<Vec<Object>, String>> {
        (!self.native_disabled).then(|| native::build(tree, dir).map_err(|d| d.0))
    }
}
