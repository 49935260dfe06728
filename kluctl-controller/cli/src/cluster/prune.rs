//! `kluctl prune` and `kluctl delete`: both show the objects they will delete and ask (unless
//! `-y` or `--dry-run`); prune takes the orphans, delete every object of the discriminator.

use gitops_api::kluctl::v1beta1::ObjectRef;

use super::{cluster_of, conclude, context, prepared};
use crate::flags::YesDryRunFlags;
use crate::flags::commands::{DeleteCmd, PruneCmd};
use crate::prompt::Prompt;

/// Shows what will be deleted and asks (Kluctl's wording), unless `-y` or a dry run.
fn confirm_deletion(yes: &YesDryRunFlags, refs: &[ObjectRef], prompt: &mut Prompt, what: &str) -> bool {
    eprintln!("The following objects will be deleted:");
    for r in refs {
        eprintln!("  {r}");
    }
    if !yes.asks() {
        return true;
    }
    prompt.ask(
        &format!("Do you really want to delete {} objects?", refs.len()),
        what,
    )
}

/// Runs `kluctl prune`.
///
/// # Errors
/// Render errors, no confirmation, or a result with errors.
pub fn run_prune(cmd: &PruneCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, cmd.discriminator.as_ref())?;
    let cluster = cluster_of(&p)?;
    let ctx = context(&p, cluster);
    let mut prompt = Prompt::default();
    let mut confirm = |refs: &[ObjectRef]| confirm_deletion(&cmd.yes, refs, &mut prompt, "prune");
    let r = cluster.block_on(ctx.prune(cmd.yes.dry_run, Some(&mut confirm)));
    conclude(
        "prune",
        cluster,
        r,
        prompt,
        &cmd.results,
        &cmd.output,
        cmd.yes.dry_run,
    )
}

/// Runs `kluctl delete`.
///
/// # Errors
/// Render errors, no confirmation, or a result with errors.
pub fn run_delete(cmd: &DeleteCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, cmd.discriminator.as_ref())?;
    let cluster = cluster_of(&p)?;
    let ctx = context(&p, cluster);
    let mut prompt = Prompt::default();
    let mut confirm = |refs: &[ObjectRef]| confirm_deletion(&cmd.yes, refs, &mut prompt, "delete");
    let r = cluster.block_on(ctx.delete(cmd.yes.dry_run, !cmd.no_wait, Some(&mut confirm)));
    conclude(
        "delete",
        cluster,
        r,
        prompt,
        &cmd.results,
        &cmd.output,
        cmd.yes.dry_run,
    )
}
