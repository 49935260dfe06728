//! `kluctl deploy`, `diff`, `prune`, `delete`, `poke-images` and `validate`: render the target,
//! run the engine command on its cluster, ask before changing anything (unless `-y`), store the
//! result (when asked) and print it.
//!
//! ```text
//! flags (parsed and checked by clap) ──► prepare (render, connect) ──► engine command
//!     ──► [questions: prompt] ──► conclude: store, obfuscate, write outputs ──► Ok / CommandFailed
//! ```
//!
//! One module per runner (`prune` and `delete` share theirs); the shared end of every runner is
//! here. A result with errors is a [`CommandFailed`] (exit status 1), reported by
//! [`crate::report`] after the outputs are written.

mod deploy;
mod diff;
mod poke_images;
mod prune;
mod validate;

pub use deploy::run_deploy;
pub use diff::run_diff;
pub use poke_images::run_poke_images;
pub use prune::{run_delete, run_prune};
pub(crate) use validate::conclude_validate;
pub use validate::run_validate;

use gitops_api::kluctl::v1beta1::ObjectRef;

use crate::flags::{ClusterRenderFlags, CommandResultFlags, OfflineFlags, OutputFormatFlags};
use crate::output::{self, Format, stdout_color, write_outputs};
use crate::prepare::{Prepared, prepare};
use crate::prompt::Prompt;
use crate::report::CommandFailed;
use kluctl_engine::cluster::Cluster;
use kluctl_engine::commands::CommandContext;
use kluctl_engine::diff::{IgnoreOptions, OutputOptions, format_text, format_yaml, obfuscate_result};
use kluctl_engine::result::{CommandInfo, CommandResult};
use kluctl_engine::source::git::project_identity;

/// The engine's view of a prepared command (the engine names the command in its result).
fn context<'a>(p: &'a Prepared, cluster: &'a Cluster) -> CommandContext<'a> {
    let (project_key, git_info) = project_identity(&p.project_dir);
    let args = p
        .external_args
        .as_object()
        .filter(|m| !m.is_empty())
        .map(|_| p.external_args.clone());
    CommandContext {
        client: cluster.client(),
        index: cluster.index(),
        rendered: &p.rendered,
        inclusion: &p.inclusion,
        info: CommandInfo {
            target: p.rendered.target.name.clone(),
            args,
            start_time: Some(jiff::Timestamp::now()),
            include_tags: p.inclusion.include_tags().map(str::to_owned).collect(),
            exclude_tags: p.inclusion.exclude_tags().map(str::to_owned).collect(),
            ..CommandInfo::default()
        },
        project_key,
        git_info,
        ignore: IgnoreOptions::default(),
    }
}

/// Renders the target of a cluster command and connects to its cluster.
fn prepared(flags: &ClusterRenderFlags, discriminator: Option<&String>) -> anyhow::Result<Prepared> {
    prepare(flags, &OfflineFlags::default(), discriminator.cloned(), false)
}

fn cluster_of(p: &Prepared) -> anyhow::Result<&Cluster> {
    p.cluster
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("this command needs a cluster connection"))
}

/// The text output options of `--short-output` (colours on a terminal).
fn output_options(flags: &OutputFormatFlags) -> OutputOptions {
    OutputOptions {
        short: flags.short_output,
        color: stdout_color(),
        ..OutputOptions::default()
    }
}

/// The end of every command that writes a command result: a question that could not be asked
/// (or failed) is the error; otherwise the result is stored (when the flags say so) and
/// printed.
fn conclude(
    command: &'static str,
    cluster: &Cluster,
    mut r: CommandResult,
    prompt: Prompt,
    results: &CommandResultFlags,
    output: &OutputFormatFlags,
    dry_run: bool,
) -> anyhow::Result<()> {
    prompt.finish()?;
    let stored = store(cluster, &mut r, results, dry_run, !output.no_obfuscate);
    finish(command, r, output, stored)
}

/// Writes the result to the command-result store when the flags ask for it (Kluctl: not for
/// dry runs unless forced); the store obfuscates Secret values itself. A result the store had
/// to cut to fit one Secret is stored all the same; a `warning:` line on stderr says what was
/// cut. With `obfuscated_output` (no `--no-obfuscate`) the result is obfuscated in place, as it
/// will be printed, instead of the store copying every object to obfuscate the copy.
fn store(
    cluster: &Cluster,
    r: &mut CommandResult,
    flags: &CommandResultFlags,
    dry_run: bool,
    obfuscated_output: bool,
) -> Option<anyhow::Error> {
    if !flags.should_write(dry_run) {
        return None;
    }
    if r.cluster_info.cluster_id.is_empty() {
        r.warnings.push(gitops_api::kluctl::v1beta1::DeploymentError {
            object_ref: ObjectRef::default(),
            message: "failed to determine cluster ID due to missing get/list permissions for the kube-system namespace. This might result in follow up issues in regard to cluster differentiation stored command results".to_owned(),
        });
    }
    cluster
        .block_on(async {
            if obfuscated_output {
                kluctl_engine::store::write_command_result_obfuscating(
                    cluster.client(),
                    &flags.command_result_namespace,
                    r,
                    flags.keep_command_results_count,
                )
                .await
            } else {
                kluctl_engine::store::write_command_result(
                    cluster.client(),
                    &flags.command_result_namespace,
                    r,
                    flags.keep_command_results_count,
                )
                .await
            }
        })
        .map_or_else(
            |e| Some(anyhow::anyhow!("failed to write result to result store: {e}")),
            |stored| {
                if let Some(cut) = stored.reduction {
                    eprintln!("warning: {cut}");
                }
                None
            },
        )
}

/// Obfuscates (unless `--no-obfuscate`) and prints a command result.
///
/// # Errors
/// [`CommandFailed`] when the result has errors; else a failure to store it.
pub(crate) fn finish(
    command: &'static str,
    mut r: CommandResult,
    flags: &OutputFormatFlags,
    store_error: Option<anyhow::Error>,
) -> anyhow::Result<()> {
    if !flags.no_obfuscate {
        obfuscate_result(&mut r)?;
    }
    let opts = output_options(flags);
    write_outputs(&flags.output_format, Format::Text, &|format| {
        Ok(match format {
            Format::Text => format_text(&r, &opts),
            Format::Yaml => format_yaml(&r),
            Format::Json => kluctl_engine::diff::format_json(&r),
        })
    })?;
    if !r.errors.is_empty() {
        let files = output::files(flags.output_format.iter().map(|o| &o.to));
        return Err(CommandFailed::new(command, &r.errors, &files).into());
    }
    store_error.map_or(Ok(()), Err)
}
