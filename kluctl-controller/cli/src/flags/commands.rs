//! The flags of each `kluctl` command, one struct per command (the code that runs them is in
//! [`crate::render`] and [`crate::cluster`]).

use std::time::Duration;

use clap::Args;

use super::{
    ApplyFlags, ArgsFlags, ClusterRenderFlags, CommandResultFlags, OutputFlags, OutputFormatFlags,
    ProjectFlags, RenderFlags, YesDryRunFlags, parse_duration,
};
use crate::output::{ResultOutput, parse_validate_output};

/// `kluctl render`.
#[derive(Args, Debug, Clone, Default)]
pub struct RenderCmd {
    #[command(flatten)]
    pub(crate) flags: RenderFlags,
    /// Print every rendered object to stdout
    #[arg(long = "print-all")]
    pub(crate) print_all: bool,
}

/// `kluctl list-images`.
#[derive(Args, Debug, Clone, Default)]
pub struct ListImagesCmd {
    #[command(flatten)]
    pub(crate) flags: RenderFlags,
    #[command(flatten)]
    pub(crate) output: OutputFlags,
    /// Print a simplified list of images
    #[arg(long = "simple")]
    pub(crate) simple: bool,
}

/// `kluctl list-targets`.
#[derive(Args, Debug, Clone, Default)]
pub struct ListTargetsCmd {
    #[command(flatten)]
    pub(crate) project: ProjectFlags,
    #[command(flatten)]
    pub(crate) args: ArgsFlags,
    #[command(flatten)]
    pub(crate) output: OutputFlags,
    /// Print only the target names, one per line (a list of names with -o yaml / -o json)
    #[arg(long = "only-names")]
    pub(crate) only_names: bool,
}

/// `kluctl deploy`.
#[derive(Args, Debug, Clone, Default)]
pub struct DeployCmd {
    #[command(flatten)]
    pub(crate) flags: ClusterRenderFlags,
    #[command(flatten)]
    pub(crate) yes: YesDryRunFlags,
    #[command(flatten)]
    pub(crate) apply: ApplyFlags,
    /// Stop at the first error instead of deploying the remaining items
    #[arg(long = "abort-on-error")]
    pub(crate) abort_on_error: bool,
    /// Do not wait for objects to become ready
    #[arg(long = "no-wait")]
    pub(crate) no_wait: bool,
    /// Delete orphaned objects right after deploying (only when every object applied)
    #[arg(long = "prune")]
    pub(crate) prune: bool,
    /// Wait at most this long per object for readiness (Go duration: 30s, 5m)
    #[arg(long = "readiness-timeout", value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub(crate) readiness_timeout: Duration,
    /// Use this discriminator instead of the target's
    #[arg(long = "discriminator")]
    pub(crate) discriminator: Option<String>,
    #[command(flatten)]
    pub(crate) results: CommandResultFlags,
    #[command(flatten)]
    pub(crate) output: OutputFormatFlags,
}

/// `kluctl diff`.
#[derive(Args, Debug, Clone, Default)]
pub struct DiffCmd {
    #[command(flatten)]
    pub(crate) flags: ClusterRenderFlags,
    #[command(flatten)]
    pub(crate) apply: ApplyFlags,
    /// Ignore changes in tags
    #[arg(long = "ignore-tags")]
    pub(crate) ignore_tags: bool,
    /// Ignore changes in labels
    #[arg(long = "ignore-labels")]
    pub(crate) ignore_labels: bool,
    /// Ignore changes in annotations
    #[arg(long = "ignore-annotations")]
    pub(crate) ignore_annotations: bool,
    /// Ignore changes in Kluctl's own metadata (tags, discriminators, ...)
    #[arg(long = "ignore-kluctl-metadata")]
    pub(crate) ignore_kluctl_metadata: bool,
    /// Use this discriminator instead of the target's
    #[arg(long = "discriminator")]
    pub(crate) discriminator: Option<String>,
    #[command(flatten)]
    pub(crate) output: OutputFormatFlags,
}

/// `kluctl prune`.
#[derive(Args, Debug, Clone, Default)]
pub struct PruneCmd {
    #[command(flatten)]
    pub(crate) flags: ClusterRenderFlags,
    #[command(flatten)]
    pub(crate) yes: YesDryRunFlags,
    /// Use this discriminator instead of the target's
    #[arg(long = "discriminator")]
    pub(crate) discriminator: Option<String>,
    #[command(flatten)]
    pub(crate) results: CommandResultFlags,
    #[command(flatten)]
    pub(crate) output: OutputFormatFlags,
}

/// `kluctl delete`.
#[derive(Args, Debug, Clone, Default)]
pub struct DeleteCmd {
    #[command(flatten)]
    pub(crate) flags: ClusterRenderFlags,
    #[command(flatten)]
    pub(crate) yes: YesDryRunFlags,
    /// Do not wait until the deleted objects are gone
    #[arg(long = "no-wait")]
    pub(crate) no_wait: bool,
    /// Find the objects to delete by this discriminator instead of the target's
    #[arg(long = "discriminator")]
    pub(crate) discriminator: Option<String>,
    #[command(flatten)]
    pub(crate) results: CommandResultFlags,
    #[command(flatten)]
    pub(crate) output: OutputFormatFlags,
}

/// `kluctl poke-images`.
#[derive(Args, Debug, Clone, Default)]
pub struct PokeImagesCmd {
    #[command(flatten)]
    pub(crate) flags: ClusterRenderFlags,
    #[command(flatten)]
    pub(crate) yes: YesDryRunFlags,
    #[command(flatten)]
    pub(crate) results: CommandResultFlags,
    #[command(flatten)]
    pub(crate) output: OutputFormatFlags,
}

/// `kluctl validate`.
#[derive(Args, Debug, Clone, Default)]
pub struct ValidateCmd {
    #[command(flatten)]
    pub(crate) flags: ClusterRenderFlags,
    /// Print the result as FORMAT (text or yaml; default text) on stdout, or with '=PATH' into
    /// PATH; repeatable
    #[arg(short = 'o', long = "output", value_name = "FORMAT[=PATH]", value_parser = parse_validate_output)]
    pub(crate) output: Vec<ResultOutput>,
    /// Retry for up to this long until the target validates (Go duration: 30s, 5m)
    #[arg(long = "wait", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) wait: Option<Duration>,
    /// Wait this long between two attempts of --wait
    #[arg(long = "sleep", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) sleep: Duration,
    /// Treat warnings as failures
    #[arg(long = "warnings-as-errors")]
    pub(crate) warnings_as_errors: bool,
}
