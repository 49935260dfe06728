//! The flags of `kluctl gitops ...` (the code that runs them is in [`crate::gitops`]): which
//! KluctlDeployments on which cluster, how long to wait for the controller, and the overrides a
//! request carries in its `overridesPatch`.
//!
//! ```text
//! every subcommand        GitopsFlags (selection, cluster, namespaces)
//! suspend, resume         + WaitFlags
//! reconcile, deploy       + WaitFlags + OverrideFlags + DeployOverrideFlags + LogFlags
//! diff, prune, validate   + WaitFlags + OverrideFlags + LogFlags (+ the command's output flags)
//! logs                    + LogFlags, -f, --reconcile-id
//! ```
//!
//! An override is `Option`: `None` when the user did not give it, so only given flags reach the
//! patch. Boolean overrides take Go's values (`--dry-run`, `--dry-run=false`), so a spec value
//! can be switched off for one request too.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{ArgsFlags, ImageFlags, InclusionFlags, OutputFormatFlags, ProjectFlags, parse_duration};
use crate::output::{ResultOutput, parse_validate_output};

/// Which KluctlDeployments, on which cluster (every `gitops` subcommand).
#[derive(Args, Debug, Clone, Default)]
pub struct GitopsFlags {
    // --project-dir: the Git project whose KluctlDeployments are looked for when no --name, -l
    // or --all is given.
    #[command(flatten)]
    pub(crate) project: ProjectFlags,
    /// Select the KluctlDeployment with this name
    #[arg(long = "name", value_name = "NAME", conflicts_with_all = ["label_selector", "all"])]
    pub name: Option<String>,
    /// Look in this namespace (default: the kubeconfig context's namespace, else 'default')
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Select the KluctlDeployments matching this label selector
    #[arg(
        short = 'l',
        long = "label-selector",
        value_name = "SELECTOR",
        conflicts_with = "all"
    )]
    pub label_selector: Option<String>,
    /// Select every KluctlDeployment in the namespace (logs: show every controller line)
    #[arg(long = "all")]
    pub all: bool,
    /// Use this kube context instead of the current one
    #[arg(long = "context", value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Use this kubeconfig instead of $KUBECONFIG or ~/.kube/config
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace the kluctl-controller runs in (its pods' logs are read from there)
    #[arg(
        long = "controller-namespace",
        value_name = "NAMESPACE",
        default_value = "kluctl-system"
    )]
    pub controller_namespace: String,
    /// Read command results from this namespace
    #[arg(long = "command-result-namespace", value_name = "NAMESPACE", default_value = kluctl_engine::store::DEFAULT_RESULTS_NAMESPACE)]
    pub command_result_namespace: String,
}

/// `--timeout`: how long to wait for the controller.
#[derive(Args, Debug, Clone)]
pub struct WaitFlags {
    /// Give up waiting for the controller after this long (Go duration; 0: wait without limit)
    #[arg(long = "timeout", value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Controller log flags: where the logs come from and how far back they go.
#[derive(Args, Debug, Clone, Default)]
pub struct LogFlags {
    /// Show log lines of at most this long ago (Go duration)
    #[arg(long = "log-since", value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub log_since: Duration,
    /// Read the controller's log from FILE (its --log-file) instead of from its pods, for a
    /// controller running as a local process
    #[arg(long = "controller-log-file", value_name = "FILE")]
    pub controller_log_file: Option<PathBuf>,
}

/// Spec overrides of `reconcile`, `deploy`, `diff`, `prune` and `validate` (sent in the
/// request's `overridesPatch`; the object's spec is not changed).
#[derive(Args, Debug, Clone, Default)]
pub struct OverrideFlags {
    /// Override spec.dryRun: run the command as a dry run
    #[arg(
        long = "dry-run",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = gitops_api::flags::parse_bool,
    )]
    pub dry_run: Option<bool>,
    /// Override spec.forceApply: take over fields other managers own
    #[arg(
        long = "force-apply",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = gitops_api::flags::parse_bool,
    )]
    pub force_apply: Option<bool>,
    /// Override spec.replaceOnError: replace objects whose patch fails
    #[arg(
        long = "replace-on-error",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = gitops_api::flags::parse_bool,
    )]
    pub replace_on_error: Option<bool>,
    /// Override spec.forceReplaceOnError: delete and re-create when replacing fails too
    #[arg(
        long = "force-replace-on-error",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = gitops_api::flags::parse_bool,
    )]
    pub force_replace_on_error: Option<bool>,
    /// Override spec.abortOnError: stop at the first error
    #[arg(
        long = "abort-on-error",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = gitops_api::flags::parse_bool,
    )]
    pub abort_on_error: Option<bool>,
    /// Override spec.target
    #[arg(short = 't', long = "target", value_name = "NAME")]
    pub target: Option<String>,
    /// Override spec.targetNameOverride
    #[arg(short = 'T', long = "target-name-override", value_name = "NAME")]
    pub target_name_override: Option<String>,
    /// Override spec.context: the kube context the controller deploys with
    #[arg(long = "target-context", value_name = "CONTEXT")]
    pub target_context: Option<String>,
    // -a / --args-from-file: merged into spec.args.
    #[command(flatten)]
    pub(crate) args: ArgsFlags,
    // -F / --fixed-images-file: appended to spec.images.
    #[command(flatten)]
    pub(crate) images: ImageFlags,
    // -I / -E / --include-deployment-dir / --exclude-deployment-dir: appended to the spec's lists.
    #[command(flatten)]
    pub(crate) inclusion: InclusionFlags,
}

/// The overrides only `deploy` and `reconcile` take.
#[derive(Args, Debug, Clone, Default)]
pub struct DeployOverrideFlags {
    /// Override spec.noWait: do not wait for readiness
    #[arg(
        long = "no-wait",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = gitops_api::flags::parse_bool,
    )]
    pub no_wait: Option<bool>,
    /// Override spec.prune: prune orphans after deploying
    #[arg(
        long = "prune",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = gitops_api::flags::parse_bool,
    )]
    pub prune: Option<bool>,
}

/// `kluctl gitops suspend` / `resume`.
#[derive(Args, Debug, Clone)]
pub struct SuspendCmd {
    #[command(flatten)]
    pub(crate) gitops: GitopsFlags,
    #[command(flatten)]
    pub(crate) wait: WaitFlags,
}

/// `kluctl gitops reconcile`.
#[derive(Args, Debug, Clone)]
pub struct GitopsReconcileCmd {
    #[command(flatten)]
    pub(crate) gitops: GitopsFlags,
    #[command(flatten)]
    pub(crate) wait: WaitFlags,
    #[command(flatten)]
    pub(crate) logs: LogFlags,
    #[command(flatten)]
    pub(crate) overrides: OverrideFlags,
    #[command(flatten)]
    pub(crate) deploy: DeployOverrideFlags,
}

/// `kluctl gitops deploy`.
#[derive(Args, Debug, Clone)]
pub struct GitopsDeployCmd {
    #[command(flatten)]
    pub(crate) gitops: GitopsFlags,
    #[command(flatten)]
    pub(crate) wait: WaitFlags,
    #[command(flatten)]
    pub(crate) logs: LogFlags,
    #[command(flatten)]
    pub(crate) overrides: OverrideFlags,
    #[command(flatten)]
    pub(crate) deploy: DeployOverrideFlags,
    #[command(flatten)]
    pub(crate) output: OutputFormatFlags,
}

/// `kluctl gitops diff` and `kluctl gitops prune`.
#[derive(Args, Debug, Clone)]
pub struct GitopsCommandCmd {
    #[command(flatten)]
    pub(crate) gitops: GitopsFlags,
    #[command(flatten)]
    pub(crate) wait: WaitFlags,
    #[command(flatten)]
    pub(crate) logs: LogFlags,
    #[command(flatten)]
    pub(crate) overrides: OverrideFlags,
    #[command(flatten)]
    pub(crate) output: OutputFormatFlags,
}

/// `kluctl gitops validate`.
#[derive(Args, Debug, Clone)]
pub struct GitopsValidateCmd {
    #[command(flatten)]
    pub(crate) gitops: GitopsFlags,
    #[command(flatten)]
    pub(crate) wait: WaitFlags,
    #[command(flatten)]
    pub(crate) logs: LogFlags,
    #[command(flatten)]
    pub(crate) overrides: OverrideFlags,
    /// Print the result as FORMAT (text or yaml; default text) on stdout, or with '=PATH' into
    /// PATH; repeatable
    #[arg(short = 'o', long = "output", value_name = "FORMAT[=PATH]", value_parser = parse_validate_output)]
    pub(crate) output: Vec<ResultOutput>,
    /// Treat warnings as failures
    #[arg(long = "warnings-as-errors")]
    pub(crate) warnings_as_errors: bool,
}

/// `kluctl gitops logs`.
#[derive(Args, Debug, Clone)]
pub struct GitopsLogsCmd {
    #[command(flatten)]
    pub(crate) gitops: GitopsFlags,
    #[command(flatten)]
    pub(crate) logs: LogFlags,
    /// Keep printing new lines as the controller writes them
    #[arg(short = 'f', long = "follow")]
    pub(crate) follow: bool,
    /// Show only the lines of this reconciliation
    #[arg(long = "reconcile-id", value_name = "ID")]
    pub(crate) reconcile_id: Option<String>,
}

/// Subcommands of `kluctl gitops`.
#[derive(Subcommand, Debug, Clone)]
pub enum GitopsCommand {
    /// Suspend KluctlDeployments (spec.suspend=true) and wait until the controller saw it
    Suspend(SuspendCmd),
    /// Resume KluctlDeployments (spec.suspend=false) and wait until the controller saw it
    Resume(SuspendCmd),
    /// Ask the controller for a full reconciliation (also when suspended), wait, and print the
    /// Ready condition
    Reconcile(GitopsReconcileCmd),
    /// Ask the controller for a deploy, wait, and print its result
    Deploy(GitopsDeployCmd),
    /// Ask the controller for a diff, wait, and print its result
    Diff(GitopsCommandCmd),
    /// Ask the controller for a prune, wait, and print its result
    Prune(GitopsCommandCmd),
    /// Ask the controller for a validation, wait, and print its result
    Validate(GitopsValidateCmd),
    /// Print the controller's log lines of KluctlDeployments
    Logs(GitopsLogsCmd),
}

/// `kluctl gitops`.
#[derive(Args, Debug, Clone)]
pub struct GitopsCmd {
    /// What to ask the controller.
    #[command(subcommand)]
    pub command: GitopsCommand,
}
