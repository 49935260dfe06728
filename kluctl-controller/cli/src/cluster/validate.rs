//! `kluctl validate`: checks the deployed objects of the target (readiness, validation
//! annotations), with `--wait` again every `--sleep` until they validate or the time is up.

use super::{cluster_of, context, prepared};
use crate::flags::commands::ValidateCmd;
use crate::output::{self, Format, write_outputs};
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
    let failed = |v: &ValidateResult| {
        !v.ready || !v.errors.is_empty() || (cmd.warnings_as_errors && !v.warnings.is_empty())
    };
    let mut v = cluster.block_on(ctx.validate());
    while failed(&v)
        && let Some(wait) = cmd.wait
        && start.elapsed() + cmd.sleep < wait
    {
        eprintln!("Validation failed, retrying in {}s", cmd.sleep.as_secs());
        std::thread::sleep(cmd.sleep);
        v = cluster.block_on(ctx.validate());
    }
    write_outputs(&cmd.output, Format::Text, &|format| match format {
        Format::Text => Ok(kluctl_engine::validate::format_validate_text(&v)),
        Format::Yaml => Ok(kluctl_engine::diff::yaml::to_yaml(&serde_json::to_value(&v)?)),
        Format::Json => Ok(serde_json::to_string_pretty(&v)?),
    })?;
    if failed(&v) {
        let problems = if v.errors.is_empty() && cmd.warnings_as_errors {
            &v.warnings
        } else {
            &v.errors
        };
        let files = output::files(cmd.output.iter().map(|o| &o.to));
        let mut failure = CommandFailed::new("validate", problems, &files);
        if !v.ready && cmd.wait.is_none() && files.is_empty() {
            "the target is not ready yet; pass --wait 5m to wait for it".clone_into(&mut failure.hint);
        }
        return Err(failure.into());
    }
    eprintln!("Validation succeeded");
    Ok(())
}
