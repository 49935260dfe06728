//! `kluctl validate`: checks the deployed objects of the target (readiness, validation
//! annotations), with `--wait` again every `--sleep` until they validate or the time is up.

use super::{cluster_of, context, prepared};
use crate::flags::commands::ValidateCmd;
use crate::output::{self, Format, ResultOutput, write_outputs};
use crate::report::CommandFailed;
use kluctl_engine::validate::ValidateResult;

/// Runs `kluctl validate`.
///
/// # Errors
/// Render errors, or [`CommandFailed`] when the target is not ready or has errors (or
/// warnings, with `--warnings-as-errors`).
pub fn run_validate(cmd: &ValidateCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, None)?;
    let cluster = cluster_of(&p)?;
    let ctx = context(&p, cluster);
    let start = std::time::Instant::now();
    let mut v = cluster.block_on(ctx.validate());
    while failed(&v, cmd.warnings_as_errors)
        && let Some(wait) = cmd.wait
        && start.elapsed() + cmd.sleep < wait
    {
        eprintln!("Validation failed, retrying in {}s", cmd.sleep.as_secs());
        std::thread::sleep(cmd.sleep);
        v = cluster.block_on(ctx.validate());
    }
    let hint = cmd
        .wait
        .is_none()
        .then_some("the target is not ready yet; pass --wait 5m to wait for it");
    conclude_validate(&v, &cmd.output, cmd.warnings_as_errors, hint)
}

/// Prints a validate result to `outputs` (default: text on stdout) and decides the outcome, the
/// same for the local `validate` and `gitops validate`: failed when not ready, with errors, or
/// with warnings under `warnings_as_errors`.
///
/// # Errors
/// A failed write, or [`CommandFailed`] (with `not_ready_hint` when the target is merely not
/// ready and the result went to stdout).
pub(crate) fn conclude_validate(
    v: &ValidateResult,
    outputs: &[ResultOutput],
    warnings_as_errors: bool,
    not_ready_hint: Option<&str>,
) -> anyhow::Result<()> {
    write_outputs(outputs, Format::Text, &|format| match format {
        Format::Text => Ok(kluctl_engine::validate::format_validate_text(v)),
        Format::Yaml => Ok(kluctl_engine::diff::yaml::to_yaml(&serde_json::to_value(v)?)),
        Format::Json => Ok(serde_json::to_string_pretty(v)?),
    })?;
    if failed(v, warnings_as_errors) {
        let problems = if v.errors.is_empty() && warnings_as_errors {
            &v.warnings
        } else {
            &v.errors
        };
        let files = output::files(outputs.iter().map(|o| &o.to));
        let mut failure = CommandFailed::new("validate", problems, &files);
        if let Some(hint) = not_ready_hint
            && !v.ready
            && files.is_empty()
        {
            hint.clone_into(&mut failure.hint);
        }
        return Err(failure.into());
    }
    eprintln!("Validation succeeded");
    Ok(())
}

/// Whether a validate result is a failure.
fn failed(v: &ValidateResult, warnings_as_errors: bool) -> bool {
    !v.ready || !v.errors.is_empty() || (warnings_as_errors && !v.warnings.is_empty())
}
