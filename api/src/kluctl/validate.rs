//! The `spec.source`/`spec.sourceRef`/`spec.path` rules in plain Rust, for clusters that cannot
//! evaluate the CRD's CEL rules (apiservers before 1.25, or CRDs installed with CEL stripped).
//!
//! The checks are the same as the CEL rules in [`super::v1beta1`], with the same messages.

use std::fmt;

use super::v1beta1::{
    KluctlDeploymentSpec, MSG_PATH_NEEDS_SOURCE_REF, MSG_PATH_NO_PARENT, MSG_PATH_RELATIVE,
    MSG_SOURCE_EXCLUSIVE, MSG_SOURCE_REQUIRED,
};

/// One violated rule of a `KluctlDeployment` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// Path of the offending field, e.g. `spec.sourceRef` or `spec.path`.
    pub field: &'static str,
    /// What is wrong, naming the fields involved.
    pub message: &'static str,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

impl KluctlDeploymentSpec {
    /// Checks the rules the CRD expresses in CEL: exactly one of `source` and `sourceRef`; `path` only
    /// with `sourceRef`; `path` relative and free of `..` segments. Returns every violation found.
    pub fn validate(&self) -> Result<(), Vec<SpecError>> {
        let mut errors = Vec::new();
        match (self.source.is_some(), self.source_ref.is_some()) {
            (true, true) => errors.push(SpecError {
                field: "spec.sourceRef",
                message: MSG_SOURCE_EXCLUSIVE,
            }),
            (false, false) => errors.push(SpecError {
                field: "spec.source",
                message: MSG_SOURCE_REQUIRED,
            }),
            _ => {}
        }
        if let Some(path) = &self.path {
            if self.source_ref.is_none() {
                errors.push(SpecError {
                    field: "spec.path",
                    message: MSG_PATH_NEEDS_SOURCE_REF,
                });
            }
            if path.starts_with('/') {
                errors.push(SpecError {
                    field: "spec.path",
                    message: MSG_PATH_RELATIVE,
                });
            }
            if path.split('/').any(|segment| segment == "..") {
                errors.push(SpecError {
                    field: "spec.path",
                    message: MSG_PATH_NO_PARENT,
                });
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}
