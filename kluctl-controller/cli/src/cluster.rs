//! `kluctl deploy`, `diff`, `prune`, `delete` and `validate`: render the target, then run the
//! engine command on its cluster, ask before changing anything (unless `-y`), print the result.
//!
//! Exit status: non-zero only when the result has errors (validate: also when not ready, or
//! with warnings under `--warnings-as-errors`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use clap::Args;
use gitops_api::kluctl::v1beta1::ObjectRef;

use super::flags::{CommandResultFlags, OfflineFlags};
use super::render::{ClusterRenderFlags, Prepared, prepare};
use kluctl_engine::apply::{ApplyOptions, Progress};
use kluctl_engine::commands::{CommandContext, DeployOptions};
use kluctl_engine::diff::{IgnoreOptions, OutputOptions, format_text, format_yaml, obfuscate_result};
use kluctl_engine::result::{CommandInfo, CommandResult};
use kluctl_engine::source::git::project_identity;

fn parse_duration(s: &str) -> Result<Duration, String> {
    gitops_api::duration::parse(s).map_err(|e| e.to_string())
}

/// `-o/--output-format`, `--short-output`, `--no-obfuscate`.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputFormatFlags {
    /// Specify output format and target file, in the format 'format=path'. Format can be
    /// 'text', 'yaml' or 'json'. Can be specified multiple times.
    #[arg(short = 'o', long = "output-format")]
    pub output_format: Vec<String>,
    /// When using the 'text' output format (which is the default), only names of changes
    /// objects are shown instead of showing all changes.
    #[arg(long = "short-output")]
    pub short_output: bool,
    /// Disable obfuscation of sensitive/secret data.
    #[arg(long = "no-obfuscate")]
    pub no_obfuscate: bool,
}

/// `-y`, `--dry-run`.
#[derive(Args, Debug, Clone, Default)]
pub struct YesDryRunFlags {
    /// Suppresses 'Are you sure?' questions and proceeds as if you would answer 'yes'.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Performs all kubernetes API calls in dry-run mode.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

/// `--force-apply`, `--replace-on-error`, `--force-replace-on-error`.
#[derive(Args, Debug, Clone, Default)]
pub struct ApplyFlags {
    /// Force conflict resolution when applying. See documentation for details.
    #[arg(long = "force-apply")]
    pub force_apply: bool,
    /// When patching an object fails, try to replace it. See documentation for more details.
    #[arg(long = "replace-on-error")]
    pub replace_on_error: bool,
    /// Same as --replace-on-error, but also try to delete and re-create objects.
    #[arg(long = "force-replace-on-error")]
    pub force_replace_on_error: bool,
}

/// `kluctl deploy`.
#[derive(Args, Debug, Clone, Default)]
pub struct DeployCmd {
    #[command(flatten)]
    flags: ClusterRenderFlags,
    #[command(flatten)]
    yes: YesDryRunFlags,
    #[command(flatten)]
    apply: ApplyFlags,
    /// Abort deploying when an error occurs instead of trying the remaining deployments.
    #[arg(long = "abort-on-error")]
    abort_on_error: bool,
    /// Don't wait for objects readiness.
    #[arg(long = "no-wait")]
    no_wait: bool,
    /// Prune orphaned objects directly after deploying.
    #[arg(long = "prune")]
    prune: bool,
    /// Maximum time to wait for object readiness. Go duration syntax (5m, 30s).
    #[arg(long = "readiness-timeout", default_value = "5m", value_parser = parse_duration)]
    readiness_timeout: Duration,
    /// Override the target discriminator.
    #[arg(long = "discriminator")]
    discriminator: Option<String>,
    #[command(flatten)]
    results: CommandResultFlags,
    #[command(flatten)]
    output: OutputFormatFlags,
}

/// `kluctl diff`.
#[derive(Args, Debug, Clone, Default)]
pub struct DiffCmd {
    #[command(flatten)]
    flags: ClusterRenderFlags,
    #[command(flatten)]
    apply: ApplyFlags,
    /// Ignores changes in tags when diffing.
    #[arg(long = "ignore-tags")]
    ignore_tags: bool,
    /// Ignores changes in labels when diffing.
    #[arg(long = "ignore-labels")]
    ignore_labels: bool,
    /// Ignores changes in annotations when diffing.
    #[arg(long = "ignore-annotations")]
    ignore_annotations: bool,
    /// Ignores changes in Kluctl related metadata (e.g. tags, discriminators, ...).
    #[arg(long = "ignore-kluctl-metadata")]
    ignore_kluctl_metadata: bool,
    /// Override the target discriminator.
    #[arg(long = "discriminator")]
    discriminator: Option<String>,
    #[command(flatten)]
    output: OutputFormatFlags,
}

/// `kluctl prune`.
#[derive(Args, Debug, Clone, Default)]
pub struct PruneCmd {
    #[command(flatten)]
    flags: ClusterRenderFlags,
    #[command(flatten)]
    yes: YesDryRunFlags,
    /// Override the target discriminator.
    #[arg(long = "discriminator")]
    discriminator: Option<String>,
    #[command(flatten)]
    results: CommandResultFlags,
    #[command(flatten)]
    output: OutputFormatFlags,
}

/// `kluctl delete`.
#[derive(Args, Debug, Clone, Default)]
pub struct DeleteCmd {
    #[command(flatten)]
    flags: ClusterRenderFlags,
    #[command(flatten)]
    yes: YesDryRunFlags,
    /// Don't wait for deletion of objects to finish.
    #[arg(long = "no-wait")]
    no_wait: bool,
    /// Override the discriminator used to find objects for deletion.
    #[arg(long = "discriminator")]
    discriminator: Option<String>,
    #[command(flatten)]
    results: CommandResultFlags,
    #[command(flatten)]
    output: OutputFormatFlags,
}

/// `kluctl poke-images`.
#[derive(Args, Debug, Clone, Default)]
pub struct PokeImagesCmd {
    #[command(flatten)]
    flags: ClusterRenderFlags,
    #[command(flatten)]
    yes: YesDryRunFlags,
    #[command(flatten)]
    results: CommandResultFlags,
    #[command(flatten)]
    output: OutputFormatFlags,
}

/// `kluctl validate`.
#[derive(Args, Debug, Clone, Default)]
pub struct ValidateCmd {
    #[command(flatten)]
    flags: ClusterRenderFlags,
    /// Specify output target file. Can be specified multiple times ('text' or 'yaml', with
    /// '=path' to write to a file).
    #[arg(short = 'o', long = "output")]
    output: Vec<String>,
    /// Wait for the given amount of time until the deployment validates.
    #[arg(long = "wait", value_parser = parse_duration)]
    wait: Option<Duration>,
    /// Sleep duration between validation attempts.
    #[arg(long = "sleep", default_value = "5s", value_parser = parse_duration)]
    sleep: Duration,
    /// Consider warnings as failures.
    #[arg(long = "warnings-as-errors")]
    warnings_as_errors: bool,
}

/// Progress lines on stderr: one line per item update; on a terminal the running status is
/// redrawn in place and only finished items stay.
struct LineProgress {
    tty: bool,
    color: bool,
}

impl LineProgress {
    fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            tty,
            color: tty && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

impl Progress for LineProgress {
    fn update(&self, item: &str, message: &str) {
        let mut err = std::io::stderr().lock();
        let line = if item.is_empty() {
            message.to_owned()
        } else {
            format!("{item}: {message}")
        };
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn finish(&self, item: &str, ok: bool, summary: &str) {
        let mut err = std::io::stderr().lock();
        let mark = match (ok, self.color) {
            (true, true) => "\x1b[32m✓\x1b[0m",
            (false, true) => "\x1b[31m✗\x1b[0m",
            (true, false) => "ok",
            (false, false) => "failed",
        };
        let clear = if self.tty { "\r\x1b[2K" } else { "" };
        let _ = writeln!(err, "{clear}{mark} {item}: {summary}");
    }
}

/// Whether questions can be asked: stdin and stderr are a terminal.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question` on the terminal; without one, refuses with a clear error.
fn ask(question: &str) -> anyhow::Result<bool> {
    if !interactive() {
        anyhow::bail!(
            "refusing to continue without confirmation: stdin is not a terminal; pass -y (--yes) to proceed without asking"
        );
    }
    eprint!("{question} (y/N) ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Asks `question`; when it cannot be asked, the reason is kept in `refused` (reported once the
/// engine returns) and the answer is no.
fn ask_or_record(question: &str, refused: &mut Option<anyhow::Error>) -> bool {
    ask(question).unwrap_or_else(|e| {
        *refused = Some(e);
        false
    })
}

/// The end of every command that writes a command result: a question that could not be asked
/// is the error; otherwise the result is stored (when the flags say so) and printed.
fn conclude(
    cluster: &kluctl_engine::cluster::Cluster,
    mut r: CommandResult,
    refused: Option<anyhow::Error>,
    results: &CommandResultFlags,
    output: &OutputFormatFlags,
    dry_run: bool,
) -> anyhow::Result<()> {
    if let Some(e) = refused {
        return Err(e);
    }
    let stored = store(cluster, &mut r, results, dry_run);
    finish(r, output, stored)
}

/// The engine's view of a prepared command (the engine names the command in its result).
fn context<'a>(p: &'a Prepared, cluster: &'a kluctl_engine::cluster::Cluster) -> CommandContext<'a> {
    let (project_key, git_info) = project_identity(&p.project_dir);
    let args = p
        .external_args
        .as_object()
        .filter(|m| !m.is_empty())
        .map(|_| p.external_args.clone());
    CommandContext {
        client: cluster.client(),
        discovery: cluster.discovery(),
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

fn prepared(flags: &ClusterRenderFlags, discriminator: Option<&String>) -> anyhow::Result<Prepared> {
    prepare(flags, &OfflineFlags::default(), discriminator.cloned())
}

fn cluster_of(p: &Prepared) -> anyhow::Result<&kluctl_engine::cluster::Cluster> {
    p.cluster
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("this command needs a cluster connection"))
}

fn output_options(flags: &OutputFormatFlags) -> OutputOptions {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    OutputOptions {
        short: flags.short_output,
        color,
        ..OutputOptions::default()
    }
}

/// Writes `text`-or-`yaml` renderings to stdout or `format=path` files (Kluctl's `-o`).
fn write_outputs(outputs: &[String], render: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<()> {
    let defaults = ["text".to_owned()];
    let outputs = if outputs.is_empty() {
        &defaults[..]
    } else {
        outputs
    };
    for o in outputs {
        let (format, path) = match o.split_once('=') {
            Some((f, p)) => (f, Some(p)),
            None => (o.as_str(), None),
        };
        let mut text = render(format)?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        match path {
            Some(p) if p != "-" => fs_err::write(p, text)?,
            _ => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
        }
    }
    Ok(())
}

/// Writes the result to the command-result store when the flags ask for it (Kluctl: not for
/// dry runs unless forced); the store obfuscates Secret values itself.
fn store(
    cluster: &kluctl_engine::cluster::Cluster,
    r: &mut CommandResult,
    flags: &CommandResultFlags,
    dry_run: bool,
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
        .block_on(kluctl_engine::store::write_command_result(
            cluster.client(),
            &flags.command_result_namespace,
            r,
            flags.keep_command_results_count,
        ))
        .err()
        .map(|e| anyhow::anyhow!("failed to write result to result store: {e}"))
}

/// Obfuscates (unless `--no-obfuscate`) and prints a command result; an error when it has
/// errors (or when storing it failed).
fn finish(
    mut r: CommandResult,
    flags: &OutputFormatFlags,
    store_error: Option<anyhow::Error>,
) -> anyhow::Result<()> {
    if !flags.no_obfuscate {
        obfuscate_result(&mut r)?;
    }
    let opts = output_options(flags);
    write_outputs(&flags.output_format, &|format| match format {
        "text" => Ok(format_text(&r, &opts)),
        "yaml" => Ok(format_yaml(&r)),
        "json" => Ok(kluctl_engine::diff::format_json(&r)),
        other => anyhow::bail!("invalid format: {other} (expected text, yaml or json)"),
    })?;
    if !r.errors.is_empty() {
        anyhow::bail!("command failed");
    }
    store_error.map_or(Ok(()), Err)
}

/// Runs `kluctl deploy`.
///
/// # Errors
/// Render errors, refused confirmation, or a result with errors.
pub fn run_deploy(cmd: &DeployCmd) -> anyhow::Result<()> {
    // Refuse before rendering anything when the question could not be asked.
    let ask_first = !cmd.yes.yes && !cmd.yes.dry_run;
    if ask_first && !interactive() {
        anyhow::bail!(
            "refusing to deploy without confirmation: stdin is not a terminal; pass -y (--yes) to deploy without asking, or --dry-run to only see the changes"
        );
    }
    let p = prepared(&cmd.flags, cmd.discriminator.as_ref())?;
    let cluster = cluster_of(&p)?;
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
    };
    let mut refused = None;
    let mut confirm = |mut preview: CommandResult| -> bool {
        if !cmd.output.no_obfuscate && obfuscate_result(&mut preview).is_err() {
            return false;
        }
        print!("{}", format_text(&preview, &output_options(&cmd.output)));
        let question = if preview.errors.is_empty() {
            "The diff succeeded, do you want to proceed?"
        } else {
            "The diff resulted in errors, do you still want to proceed?"
        };
        ask_or_record(question, &mut refused)
    };
    let progress = LineProgress::new();
    let r = cluster.block_on(ctx.deploy(
        &options,
        &progress,
        if ask_first { Some(&mut confirm) } else { None },
    ));
    conclude(cluster, r, refused, &cmd.results, &cmd.output, cmd.yes.dry_run)
}

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
    finish(r, &cmd.output, None)
}

/// Shows what will be deleted and asks (Kluctl's wording), unless `-y` or a dry run.
fn confirm_deletion(yes: &YesDryRunFlags, refs: &[ObjectRef], refused: &mut Option<anyhow::Error>) -> bool {
    eprintln!("The following objects will be deleted:");
    for r in refs {
        eprintln!("  {r}");
    }
    if yes.yes || yes.dry_run {
        return true;
    }
    ask_or_record(
        &format!("Do you really want to delete {} objects?", refs.len()),
        refused,
    )
}

/// Runs `kluctl prune`.
///
/// # Errors
/// Render errors, refused confirmation, or a result with errors.
pub fn run_prune(cmd: &PruneCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, cmd.discriminator.as_ref())?;
    let cluster = cluster_of(&p)?;
    let ctx = context(&p, cluster);
    let mut refused = None;
    let mut confirm = |refs: &[ObjectRef]| confirm_deletion(&cmd.yes, refs, &mut refused);
    let r = cluster.block_on(ctx.prune(cmd.yes.dry_run, Some(&mut confirm)));
    conclude(cluster, r, refused, &cmd.results, &cmd.output, cmd.yes.dry_run)
}

/// Runs `kluctl delete`.
///
/// # Errors
/// Render errors, refused confirmation, or a result with errors.
pub fn run_delete(cmd: &DeleteCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, cmd.discriminator.as_ref())?;
    let cluster = cluster_of(&p)?;
    let ctx = context(&p, cluster);
    let mut refused = None;
    let mut confirm = |refs: &[ObjectRef]| confirm_deletion(&cmd.yes, refs, &mut refused);
    let r = cluster.block_on(ctx.delete(cmd.yes.dry_run, !cmd.no_wait, Some(&mut confirm)));
    conclude(cluster, r, refused, &cmd.results, &cmd.output, cmd.yes.dry_run)
}

/// Runs `kluctl poke-images`.
///
/// # Errors
/// Render errors, refused confirmation, or a result with errors.
pub fn run_poke_images(cmd: &PokeImagesCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, None)?;
    let cluster = cluster_of(&p)?;
    if !cmd.yes.yes && !cmd.yes.dry_run && !ask("Do you really want to poke images to the target?")? {
        anyhow::bail!("aborted");
    }
    let ctx = context(&p, cluster);
    let r = cluster.block_on(ctx.poke_images(cmd.yes.dry_run));
    conclude(cluster, r, None, &cmd.results, &cmd.output, cmd.yes.dry_run)
}

/// Runs `kluctl validate`: validates, and with `--wait` retries every `--sleep` until the
/// target is ready or the time is up.
///
/// # Errors
/// Render errors, or when the target is not ready / has errors (warnings with
/// `--warnings-as-errors`).
pub fn run_validate(cmd: &ValidateCmd) -> anyhow::Result<()> {
    let p = prepared(&cmd.flags, None)?;
    let cluster = cluster_of(&p)?;
    let ctx = context(&p, cluster);
    let start = std::time::Instant::now();
    let failed = |v: &kluctl_engine::validate::ValidateResult| {
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
    write_outputs(&cmd.output, &|format| match format {
        "text" => Ok(kluctl_engine::validate::format_validate_text(&v)),
        "yaml" => Ok(kluctl_engine::diff::yaml::to_yaml(&serde_json::to_value(&v)?)),
        other => anyhow::bail!("invalid validation result format: {other}"),
    })?;
    if failed(&v) {
        anyhow::bail!("Validation failed");
    }
    eprintln!("Validation succeeded");
    Ok(())
}
