//! `kluctl poke-images`: sets only the images `images.get_image` resolved on the live objects,
//! after one question (unless `-y` or `--dry-run`).

use super::{cluster_of, conclude, context, prepared};
use crate::flags::commands::PokeImagesCmd;
use crate::prompt::{Prompt, ask};

/// Runs `kluctl poke-images`.
///
/// # Errors
/// Render errors, no confirmation (or "aborted" when the answer is no), or a result with
/// errors.
pub fn run_poke_images(cmd: &PokeImagesCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, None)?;
    let cluster = cluster_of(&p)?;
    if cmd.yes.asks() && !ask("Do you really want to poke images to the target?", "poke images")? {
        anyhow::bail!("aborted");
    }
    let ctx = context(&p, cluster);
    let r = cluster.block_on(ctx.poke_images(cmd.yes.dry_run));
    conclude(
        "poke-images",
        cluster,
        r,
        Prompt::default(),
        &cmd.results,
        &cmd.output,
        cmd.yes.dry_run,
    )
}
