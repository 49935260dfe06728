//! `kluctl diff`: a server-side dry run of the whole target, diffed against the cluster.

use super::{cluster_of, context, finish, prepared};
use crate::flags::commands::DiffCmd;
use kluctl_engine::apply::ApplyOptions;
use kluctl_engine::diff::IgnoreOptions;

/// Runs `kluctl diff`.
///
/// # Errors
/// Render errors or a result with errors.
pub fn run_diff(cmd: &DiffCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, cmd.discriminator.as_ref())?;
    let cluster = cluster_of(&p)?;
    let mut ctx = context(&p, cluster);
    ctx.ignore = IgnoreOptions {
        ignore_tags: cmd.ignore_tags,
        ignore_labels: cmd.ignore_labels,
        ignore_annotations: cmd.ignore_annotations,
        ignore_kluctl_metadata: cmd.ignore_kluctl_metadata,
    };
    let apply = ApplyOptions {
        force_apply: cmd.apply.force_apply,
        replace_on_error: cmd.apply.replace_on_error,
        force_replace_on_error: cmd.apply.force_replace_on_error,
        ..ApplyOptions::default()
    };
    let r = cluster.block_on(ctx.diff(&apply));
    finish("diff", r, &cmd.output, None)
}
