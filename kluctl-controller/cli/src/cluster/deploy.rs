//! `kluctl deploy`: unless `-y` or `--dry-run`, the engine first runs a dry run whose diff is
//! shown and confirmed; then it applies, waits for readiness and optionally prunes.

use anyhow::Context as _;

use super::{conclude, context, output_options, prepared};
use crate::flags::commands::DeployCmd;
use crate::progress::LineProgress;
use crate::prompt::{Prompt, interactive, no_terminal};
use kluctl_engine::apply::ApplyOptions;
use kluctl_engine::commands::DeployOptions;
use kluctl_engine::diff::{format_text, obfuscate_result};
use kluctl_engine::result::CommandResult;

/// Runs `kluctl deploy`.
///
/// # Errors
/// No terminal to confirm on (before rendering anything), render errors, a failure while
/// confirming, or a result with errors.
pub fn run_deploy(cmd: &DeployCmd) -> anyhow::Result<()> {
    let ask_first = cmd.yes.asks();
    if ask_first && !interactive() {
        return Err(no_terminal(
            "deploy",
            "pass -y (--yes) to deploy without asking, or --dry-run to only see the changes",
        ));
    }
    let mut p = prepared(&cmd.flags, cmd.discriminator.as_ref())?;
    // A field borrow (not `cluster_of(&p)`): the rendered objects are dropped below while the
    // cluster is still needed.
    let cluster = p
        .cluster
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("this command needs a cluster connection"))?;
    let ctx = context(&p, cluster);
    let options = DeployOptions {
        apply: ApplyOptions {
            force_apply: cmd.apply.force_apply,
            replace_on_error: cmd.apply.replace_on_error,
            force_replace_on_error: cmd.apply.force_replace_on_error,
            dry_run: cmd.yes.dry_run,
            abort_on_error: cmd.abort_on_error,
            readiness_timeout: cmd.readiness_timeout,
            no_wait: cmd.no_wait,
        },
        prune: cmd.prune,
        wait_prune: !cmd.no_wait,
        // A one-off run knows nothing of earlier listings: every kind.
        only_kinds: None,
    };
    let mut prompt = Prompt::default();
    let mut confirm = |mut preview: CommandResult| -> bool {
        if !cmd.output.no_obfuscate
            && let Err(e) = obfuscate_result(&mut preview).context("failed to obfuscate the diff to confirm")
        {
            prompt.fail(e);
            return false;
        }
        print!("{}", format_text(&preview, &output_options(&cmd.output)));
        let question = if preview.errors.is_empty() {
            "The diff succeeded, do you want to proceed?"
        } else {
            "The diff resulted in errors, do you still want to proceed?"
        };
        prompt.ask(question, "deploy")
    };
    let progress = LineProgress::new();
    let r = cluster.block_on(ctx.deploy(
        &options,
        &progress,
        if ask_first { Some(&mut confirm) } else { None },
    ));
    // The result holds its own copy of every rendered object: the rendered target's are not
    // needed any more, and storing and printing the result is where the command peaks.
    for item in &mut p.rendered.items {
        item.objects = Vec::new();
    }
    conclude(
        "deploy",
        cluster,
        r,
        prompt,
        &cmd.results,
        &cmd.output,
        cmd.yes.dry_run,
    )
}
