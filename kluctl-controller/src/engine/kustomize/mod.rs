//! Kustomize step of the render pipeline: turns a rendered deployment-item directory into the
//! objects `kustomize build --load-restrictor LoadRestrictionsNone <dir>` (kustomize 5.8.1, the
//! version Kluctl embeds) outputs, in the same order.
//!
//! ```text
//!                ┌─ native::build (resources + namespace only; pure Rust, no process) ─┐
//! build(dir) ──► │                                                                     ├──► Vec<Object>
//!                └─ binary::KustomizeBinary::build (everything else, or when native    ┘
//!                   declines: unknown fields, remote resources, lists, duplicate ids, ...)
//! ```
//!
//! [`generate_kustomization`] writes the `kustomization.yml` Kluctl generates for a deployment item
//! that has none; the render step calls it before [`Kustomizer::build`].
//!
//! The native path is hand-written because no Rust crate implements kustomize; it covers only the
//! subset that Kluctl projects use most (generated kustomizations, explicit ones with `resources` and
//! `namespace`), and declines everything else so that the binary produces the result and its errors.

mod binary;
mod generate;
mod native;

pub use binary::{ENV_KUSTOMIZE, KustomizeBinary, PINNED_KUSTOMIZE_VERSION};
pub use generate::{
    Kustomization, PreparedKustomization, generate_kustomization, prepare_kustomization, write_kustomization,
};

use crate::engine::Object;
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
    #[error("failed to build kustomization in '{}': {stderr}", dir.display())]
    BuildFailed {
        /// The kustomization directory.
        dir: PathBuf,
        /// kustomize's stderr.
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
        source: Box<crate::engine::helm::HelmError>,
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
            match native::build(dir) {
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
        native::build(dir).map_err(|d| d.0)
    }
}

/// Parser options that resolve plain scalars as go-yaml v3 does (the parser of kustomize and Kluctl):
/// only `true`/`false` spellings are booleans (`yes`, `on` stay strings) and `0`-prefixed integers
/// are octal (`017` is 15). Pinned by the `scalars` fixture of the differential test.
///
/// The parse budget is raised well above serde-saphyr's defaults (1,024 documents, 250,000 nodes):
/// one deployment item may hold thousands of objects or large CRD bundles. Alias-expansion limits
/// stay in force.
pub fn go_yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        legacy_octal_numbers: true,
        budget: serde_saphyr::budget! {
            max_documents: 10_000_000,
            max_nodes: 100_000_000,
            max_events: 400_000_000,
            max_depth: 256,
        },
    }
}

/// Parses a multi-document YAML stream into objects; empty and `null` documents are skipped.
///
/// # Errors
/// A message when the text is not YAML or a document is not a mapping.
pub fn parse_multi_doc(text: &str) -> Result<Vec<Object>, String> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(text, go_yaml_options()).map_err(|e| e.to_string())?;
    docs.into_iter()
        .enumerate()
        .filter(|(_, d)| !d.is_null())
        .map(|(i, d)| match d {
            serde_json::Value::Object(m) => Ok(m),
            other => Err(format!(
                "document {} is not a mapping but {}",
                i + 1,
                json_kind(&other)
            )),
        })
        .collect()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a sequence",
        serde_json::Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_doc_parsing_handles_many_documents_and_go_yaml_scalars() {
        let text = "---\nkind: A\nv: yes\no: 017\n".repeat(5000);
        let docs = parse_multi_doc(&text).unwrap();
        assert_eq!(docs.len(), 5000);
        assert_eq!(docs[0]["v"], "yes");
        assert_eq!(docs[0]["o"], 15);
    }

    #[test]
    fn multi_doc_parsing_rejects_duplicate_keys_and_scalar_documents() {
        assert!(parse_multi_doc("a: 1\na: 2\n").is_err());
        let err = parse_multi_doc("a: 1\n---\n- x\n").unwrap_err();
        assert!(err.contains("document 2 is not a mapping"), "{err}");
    }
}
