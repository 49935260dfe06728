//! `kluctl validate`'s text output, in Kluctl's sections.

use std::fmt::Write as _;

use super::ValidateResult;
use crate::diff::output::write_errors;

/// The text of a validate result, in Kluctl's sections (warnings, errors, results).
pub fn format_validate_text(v: &ValidateResult) -> String {
    let mut out = String::new();
    if !v.warnings.is_empty() {
        out.push_str("\nValidation Warnings:\n");
        write_errors(&mut out, &v.warnings);
    }
    if !v.errors.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("Validation Errors:\n");
        write_errors(&mut out, &v.errors);
    }
    if !v.results.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("Results:\n");
        for e in &v.results {
            let _ = writeln!(out, "  {}: {}", e.object_ref, e.message);
        }
    }
    out
}
