//! The one place that turns a failed `kluctl` run into what the user sees on stderr and the
//! exit status.
//!
//! ```text
//! runner ──► anyhow::Error ──► report() ──► error: <the whole cause chain>
//!                                             <object>: <first error>   (a failed command)
//!                                           hint: <what to do next>      (when there is one)
//!                                           exit status 1
//! clap (unknown flag, bad -o value, no command) ──► its usage message, exit status 2
//! ```
//!
//! Runners return [`CommandFailed`] when a command ran but its result has errors, and
//! [`Hinted`] for failures the user can act on; every other error is printed as its chain.

use std::fmt;
use std::path::PathBuf;

use gitops_api::kluctl::results::DeploymentError;

/// Exit status of a failure: the command failed (errors in its result, validation failed, or
/// any other error), as Kluctl exits.
pub const EXIT_FAILURE: u8 = 1;

/// Exit status of a usage error (clap's: unknown command or flag, invalid flag value, no
/// command), found before any work.
pub const EXIT_USAGE: u8 = 2;

/// The exit status section of `kluctl --help` (the README documents the same).
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the command failed: errors in its result (listed in the output, the first also on
     stderr), validation failed, no confirmation, or any other error (as Kluctl)
  2  usage error: unknown command or flag, invalid flag value (e.g. -o xml), or no command;
     found before anything is rendered or changed (Kluctl exits 1 here)";

/// A command ran and its result has errors (or, for `validate`, the target is not ready).
#[derive(Debug)]
pub struct CommandFailed {
    /// `deploy`, `diff`, `prune`, `delete`, `poke-images` or `validate`.
    pub command: &'static str,
    /// How many errors the result has.
    pub count: usize,
    /// The first error of the result that names an object (else the first), with its object.
    pub first: Option<DeploymentError>,
    /// What to do next.
    pub hint: String,
}

impl CommandFailed {
    /// The failure of `command` whose result has `errors`, written to `files` (if any).
    pub fn new(command: &'static str, errors: &[DeploymentError], files: &[&PathBuf]) -> Self {
        let hint = match files.first() {
            Some(f) => format!("the full result is in '{}'", f.display()),
            None => "every error is listed in the result above".to_owned(),
        };
        Self {
            command,
            count: errors.len(),
            // The first error that names an object: a run-wide one such as "prune skipped" is
            // a consequence, and the object's error is what the user has to fix.
            first: errors
                .iter()
                .find(|e| !e.object_ref.to_string().is_empty())
                .or_else(|| errors.first())
                .cloned(),
            hint,
        }
    }
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.count {
            0 => write!(f, "{} failed", self.command),
            1 => write!(f, "{} failed with 1 error", self.command),
            n => write!(f, "{} failed with {n} errors", self.command),
        }
    }
}

impl std::error::Error for CommandFailed {}

/// A failure with a hint the user can act on (pass `-y`, choose another context, ...).
#[derive(Debug)]
pub struct Hinted {
    /// The failure.
    pub error: anyhow::Error,
    /// What to do about it.
    pub hint: String,
}

impl Hinted {
    /// `error` with `hint`.
    pub fn new(error: impl Into<anyhow::Error>, hint: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Hinted {}

/// The stderr lines of a failed run (each without its newline).
pub fn report(e: &anyhow::Error) -> Vec<String> {
    let mut lines = vec![format!("error: {e:#}")];
    let mut hints = Vec::new();
    for cause in e.chain() {
        if let Some(failed) = cause.downcast_ref::<CommandFailed>() {
            if let Some(first) = &failed.first {
                let label = if failed.count > 1 { "first error: " } else { "" };
                let object = first.object_ref.to_string();
                let object = if object.is_empty() {
                    String::new()
                } else {
                    format!("{object}: ")
                };
                let message = first.message.replace('\n', "\n    ");
                lines.push(format!("  {label}{object}{message}"));
            }
            hints.push(failed.hint.clone());
        } else if let Some(hinted) = cause.downcast_ref::<Hinted>() {
            hints.push(hinted.hint.clone());
        }
    }
    lines.extend(hints.into_iter().map(|h| format!("hint: {h}")));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::kluctl::v1beta1::ObjectRef;

    fn error(ns: &str, name: &str, message: &str) -> DeploymentError {
        DeploymentError {
            object_ref: ObjectRef {
                version: "v1".into(),
                kind: "Service".into(),
                name: name.into(),
                namespace: ns.into(),
                ..ObjectRef::default()
            },
            message: message.into(),
        }
    }

    #[test]
    fn a_failed_command_names_the_count_the_first_error_with_its_object_and_a_hint() {
        let errors = [
            error("ns", "bad", "failed to apply: invalid type\nsecond line"),
            error("ns", "worse", "also"),
        ];
        let e = anyhow::Error::new(CommandFailed::new("deploy", &errors, &[]));
        assert_eq!(
            report(&e),
            [
                "error: deploy failed with 2 errors",
                "  first error: ns/Service/bad: failed to apply: invalid type\n    second line",
                "hint: every error is listed in the result above",
            ]
        );
        // A run-wide consequence listed before the object's error does not hide it.
        let consequence_first = [
            DeploymentError {
                object_ref: ObjectRef::default(),
                message: "prune skipped: the apply had errors".into(),
            },
            error("ns", "bad", "invalid type"),
        ];
        let e = anyhow::Error::new(CommandFailed::new("deploy", &consequence_first, &[]));
        assert_eq!(report(&e)[1], "  first error: ns/Service/bad: invalid type");
        let file = PathBuf::from("out.yaml");
        let run_wide = [DeploymentError {
            object_ref: ObjectRef::default(),
            message: "aborted by user".into(),
        }];
        let e = anyhow::Error::new(CommandFailed::new("prune", &run_wide, &[&file]));
        assert_eq!(
            report(&e),
            [
                "error: prune failed with 1 error",
                "  aborted by user",
                "hint: the full result is in 'out.yaml'",
            ]
        );
    }

    #[test]
    fn other_errors_print_their_chain_and_their_hint() {
        let e = anyhow::Error::new(Hinted::new(
            anyhow::anyhow!("stdin is not a terminal").context("refusing to deploy without confirmation"),
            "pass -y",
        ))
        .context("failed to run deploy");
        assert_eq!(
            report(&e),
            [
                "error: failed to run deploy: refusing to deploy without confirmation: stdin is not a terminal",
                "hint: pass -y",
            ]
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(report(&plain), ["error: outer: inner"]);
    }
}
