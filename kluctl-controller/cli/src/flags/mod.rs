//! Every flag of `kluctl`, apart from the code that runs the commands: the groups shared by
//! several commands here, one struct per command in [`commands`]. Flags are named as Kluctl names
//! them (so `KLUCTL_<FLAG>` environment variables and scripts carry over), and values that can
//! be checked without doing any work are parsed by clap (`-o`, `-F`, durations, booleans), so a
//! bad value is a usage error (exit status 2) before anything is rendered or touched.
//!
//! Help texts are imperative, like clap's own ("Print help"): they say what the flag makes
//! `kluctl` do.

pub mod bootstrap;
pub mod commands;
pub mod get;
pub mod gitops;
pub mod install;
pub mod webui;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::output::{ListOutput, ResultOutput, parse_list_output, parse_result_output};
use kluctl_engine::project::config::FixedImage;

/// `--project-dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct ProjectFlags {
    /// Use DIR as the project directory (default: the current directory)
    #[arg(long = "project-dir", value_name = "DIR")]
    pub project_dir: Option<PathBuf>,
}

/// `-t`, `-T`, `--context`, `--kubeconfig`.
#[derive(Args, Debug, Clone, Default)]
pub struct TargetFlags {
    /// Run the command for this target of .kluctl.yaml
    #[arg(short = 't', long = "target", value_name = "NAME")]
    pub target: Option<String>,
    /// Rename the target (with -t: look the target up by the -t name, then rename it)
    #[arg(short = 'T', long = "target-name-override", value_name = "NAME")]
    pub target_name_override: Option<String>,
    /// Use this kube context instead of the target's
    #[arg(long = "context", value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Use this kubeconfig instead of $KUBECONFIG or ~/.kube/config
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `--discovery-cache-dir`, `--no-discovery-cache`: where API discovery is cached between runs.
#[derive(Args, Debug, Clone, Default)]
pub struct DiscoveryCacheFlags {
    /// Cache API discovery in DIR (default: $XDG_CACHE_HOME/kluctl/discovery, else ~/.cache/kluctl/discovery)
    #[arg(long = "discovery-cache-dir", value_name = "DIR")]
    pub discovery_cache_dir: Option<PathBuf>,
    /// Discover the cluster's API resources afresh, without reading or writing the cache
    #[arg(long = "no-discovery-cache", conflicts_with = "discovery_cache_dir")]
    pub no_discovery_cache: bool,
}

impl DiscoveryCacheFlags {
    /// The cache to use: `None` with `--no-discovery-cache` or when no default directory can
    /// be found (neither `XDG_CACHE_HOME` nor `HOME` set).
    pub fn options(&self) -> Option<kluctl_engine::cluster::DiscoveryCacheOptions> {
        if self.no_discovery_cache {
            return None;
        }
        let dir = self
            .discovery_cache_dir
            .clone()
            .or_else(kluctl_engine::cluster::DiscoveryCacheOptions::default_dir)?;
        Some(kluctl_engine::cluster::DiscoveryCacheOptions {
            dir,
            ttl: kluctl_engine::cluster::disk_cache::DEFAULT_TTL,
        })
    }
}

/// `-a`, `--args-from-file`.
#[derive(Args, Debug, Clone, Default)]
pub struct ArgsFlags {
    /// Pass a template argument as NAME=VALUE: VALUE is read as YAML, '@FILE' loads FILE as
    /// YAML, a dotted NAME (my.nested.arg) sets a nested argument
    #[arg(short = 'a', long = "arg", value_name = "NAME=VALUE")]
    pub arg: Vec<String>,
    /// Load template arguments from a YAML file
    #[arg(long = "args-from-file", value_name = "FILE")]
    pub args_from_file: Vec<PathBuf>,
}

/// `-F`, `--fixed-images-file`.
#[derive(Args, Debug, Clone, Default)]
pub struct ImageFlags {
    /// Pin an image: 'image<:namespace:deployment:container>=result'
    #[arg(short = 'F', long = "fixed-image", value_name = "IMAGE=RESULT", value_parser = parse_fixed_image)]
    pub fixed_image: Vec<FixedImage>,
    /// Pin the images listed in a YAML file (the output format of list-images)
    #[arg(long = "fixed-images-file", value_name = "FILE")]
    pub fixed_images_file: Option<PathBuf>,
}

/// `-I`, `-E`, `--include-deployment-dir`, `--exclude-deployment-dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct InclusionFlags {
    /// Include the deployment items with this tag
    #[arg(short = 'I', long = "include-tag", value_name = "TAG")]
    pub include_tag: Vec<String>,
    /// Exclude the deployment items with this tag (exclusion wins over inclusion)
    #[arg(short = 'E', long = "exclude-tag", value_name = "TAG")]
    pub exclude_tag: Vec<String>,
    /// Include this deployment dir (relative to the root deployment project)
    #[arg(long = "include-deployment-dir", value_name = "DIR")]
    pub include_deployment_dir: Vec<String>,
    /// Exclude this deployment dir (relative to the root deployment project)
    #[arg(long = "exclude-deployment-dir", value_name = "DIR")]
    pub exclude_deployment_dir: Vec<String>,
}

/// `--offline-kubernetes`, `--kubernetes-version`.
#[derive(Args, Debug, Clone, Default)]
pub struct OfflineFlags {
    /// Render without connecting to the target's cluster
    #[arg(long = "offline-kubernetes")]
    pub offline_kubernetes: bool,
    /// Assume this Kubernetes version (also the kubeVersion Helm charts are rendered for)
    #[arg(long = "kubernetes-version", value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
}

/// `--render-output-dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct RenderOutputFlags {
    /// Render the project into DIR (default: a temporary directory)
    #[arg(long = "render-output-dir", value_name = "DIR")]
    pub render_output_dir: Option<PathBuf>,
}

/// `-o`.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputFlags {
    /// Write the output to FILE ('-': stdout) as Kluctl does, or use 'yaml' or 'json' to
    /// choose the format, on stdout or in FILE with 'yaml=FILE' / 'json=FILE'; repeatable
    #[arg(short = 'o', long = "output", value_name = "FILE|FORMAT[=FILE]", value_parser = parse_list_output)]
    pub output: Vec<ListOutput>,
}

/// The flags of every command that renders a target and may work on its cluster.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterRenderFlags {
    #[command(flatten)]
    pub(crate) project: ProjectFlags,
    #[command(flatten)]
    pub(crate) target: TargetFlags,
    #[command(flatten)]
    pub(crate) args: ArgsFlags,
    #[command(flatten)]
    pub(crate) images: ImageFlags,
    #[command(flatten)]
    pub(crate) inclusion: InclusionFlags,
    #[command(flatten)]
    pub(crate) render_output: RenderOutputFlags,
    #[command(flatten)]
    pub(crate) discovery_cache: DiscoveryCacheFlags,
}

/// The flags of the commands that only render (they may also run without a cluster).
#[derive(Args, Debug, Clone, Default)]
pub struct RenderFlags {
    #[command(flatten)]
    pub(crate) common: ClusterRenderFlags,
    #[command(flatten)]
    pub(crate) offline: OfflineFlags,
}

/// `-o/--output-format`, `--short-output`, `--no-obfuscate`: how a command result is printed.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputFormatFlags {
    /// Print the result as FORMAT (text, yaml or json; default text) on stdout, or with
    /// '=PATH' into PATH; repeatable
    #[arg(short = 'o', long = "output-format", value_name = "FORMAT[=PATH]", value_parser = parse_result_output)]
    pub output_format: Vec<ResultOutput>,
    /// Show only the names of changed objects in the text output, not their changes
    #[arg(long = "short-output")]
    pub short_output: bool,
    /// Show secret values in the output instead of obfuscating them
    #[arg(long = "no-obfuscate")]
    pub no_obfuscate: bool,
}

/// `-y`, `--dry-run`.
#[derive(Args, Debug, Clone, Default)]
pub struct YesDryRunFlags {
    /// Proceed without asking, as if every question were answered yes
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Make every Kubernetes API call in dry-run mode: nothing on the cluster changes
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

impl YesDryRunFlags {
    /// Whether the command asks before changing the cluster: neither `-y` nor `--dry-run`.
    pub fn asks(&self) -> bool {
        !self.yes && !self.dry_run
    }
}

/// `--force-apply`, `--replace-on-error`, `--force-replace-on-error`.
#[derive(Args, Debug, Clone, Default)]
pub struct ApplyFlags {
    /// Take over the fields other field managers own when applying, instead of keeping their
    /// values with a warning
    #[arg(long = "force-apply")]
    pub force_apply: bool,
    /// Replace an object when patching it fails (e.g. an immutable field changed)
    #[arg(long = "replace-on-error")]
    pub replace_on_error: bool,
    /// Like --replace-on-error, and delete and re-create the object when replacing fails too
    #[arg(long = "force-replace-on-error")]
    pub force_replace_on_error: bool,
}

/// A duration in Go's syntax (`30s`, `5m`, `1h30m`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    gitops_api::duration::parse(s).map_err(|e| e.to_string())
}

/// Parses one `-F image<:namespace:deployment:container>=result`.
///
/// # Errors
/// The usage text Kluctl prints for a malformed value.
pub fn parse_fixed_image(arg: &str) -> Result<FixedImage, String> {
    const USAGE: &str = "--fixed-image expects 'image<:namespace:deployment:container>=result'";
    let parts: Vec<&str> = arg.split('=').collect();
    let [image, result] = parts.as_slice() else {
        return Err(USAGE.to_owned());
    };
    let fields: Vec<&str> = image.split(':').collect();
    if fields.len() > 4 {
        return Err(USAGE.to_owned());
    }
    let field = |i: usize| fields.get(i).map(|s| (*s).to_owned());
    Ok(FixedImage {
        image: field(0),
        namespace: field(1),
        deployment: field(2),
        container: field(3),
        result_image: (*result).to_owned(),
        ..FixedImage::default()
    })
}

/// `--write-command-result`, `--force-write-command-result`, `--command-result-namespace`,
/// `--keep-command-results-count`, `--keep-validate-results-count`: whether and where the
/// commands that change the cluster (`deploy`, `prune`, `delete`, `poke-images`) store their
/// result, and how many old results survive.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct CommandResultFlags {
    /// Write the command result into the cluster (on by default; =false turns it off)
    #[arg(
        long = "write-command-result",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = parse_bool_flag,
    )]
    pub write_command_result: bool,
    /// Write the command result even with --dry-run
    #[arg(
        long = "force-write-command-result",
        value_name = "BOOL",
        default_value_t = false,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = parse_bool_flag,
    )]
    pub force_write_command_result: bool,
    /// Write command results to this namespace (created when missing)
    #[arg(long = "command-result-namespace", value_name = "NAMESPACE", default_value = kluctl_engine::store::DEFAULT_RESULTS_NAMESPACE)]
    pub command_result_namespace: String,
    /// Keep this many command results per project and target
    #[arg(long = "keep-command-results-count", value_name = "N", default_value_t = kluctl_engine::store::DEFAULT_KEEP_COMMAND_RESULTS)]
    pub keep_command_results_count: usize,
    /// Keep this many validate results per project and target
    #[arg(long = "keep-validate-results-count", value_name = "N", default_value_t = kluctl_engine::store::DEFAULT_KEEP_VALIDATE_RESULTS)]
    pub keep_validate_results_count: usize,
}

impl Default for CommandResultFlags {
    /// Kluctl's defaults: write, no forcing, `kluctl-results`, keep 5 command and 2 validate
    /// results.
    fn default() -> Self {
        Self {
            write_command_result: true,
            force_write_command_result: false,
            command_result_namespace: kluctl_engine::store::DEFAULT_RESULTS_NAMESPACE.to_owned(),
            keep_command_results_count: kluctl_engine::store::DEFAULT_KEEP_COMMAND_RESULTS,
            keep_validate_results_count: kluctl_engine::store::DEFAULT_KEEP_VALIDATE_RESULTS,
        }
    }
}

impl CommandResultFlags {
    /// Whether a command with this `--dry-run` setting writes its result (Kluctl: written
    /// unless disabled; a dry run writes only with `--force-write-command-result`).
    pub fn should_write(&self, dry_run: bool) -> bool {
        self.write_command_result && (!dry_run || self.force_write_command_result)
    }
}

/// A boolean flag value in Go's syntax (`true`, `false`, `1`, `0`, `t`, `F`, ...).
fn parse_bool_flag(s: &str) -> Result<bool, String> {
    kluctl_engine::values::parse_go_bool(s).ok_or_else(|| format!("invalid boolean value {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse_fixed_image;

    #[test]
    fn fixed_images_parse_like_kluctl() {
        let f = parse_fixed_image("a=b=c").unwrap_err();
        assert!(f.contains("--fixed-image expects"), "two '=' signs: {f}");
        assert_eq!(
            parse_fixed_image("nginx=nginx:1.25").unwrap().result_image,
            "nginx:1.25"
        );
        let f = parse_fixed_image("nginx:prod:Deployment/web:main=nginx@sha256").unwrap();
        assert_eq!(f.image.as_deref(), Some("nginx"));
        assert_eq!(f.namespace.as_deref(), Some("prod"));
        assert_eq!(f.deployment.as_deref(), Some("Deployment/web"));
        assert_eq!(f.container.as_deref(), Some("main"));
        assert_eq!(f.result_image, "nginx@sha256");
        assert!(parse_fixed_image("a:b:c:d:e=x").is_err());
        assert!(parse_fixed_image("nginx").is_err());
    }

    #[test]
    fn command_result_flags_default_like_kluctl_and_take_go_booleans() {
        use super::CommandResultFlags;
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            flags: CommandResultFlags,
            rest: Vec<String>,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("kluctl").chain(args.iter().copied()))
                .map(|c| (c.flags, c.rest))
        };
        let (f, _) = parse(&[]).unwrap();
        assert_eq!(f, CommandResultFlags::default());
        assert!(f.write_command_result && !f.force_write_command_result);
        assert_eq!(f.command_result_namespace, "kluctl-results");
        assert_eq!(
            (f.keep_command_results_count, f.keep_validate_results_count),
            (5, 2)
        );
        assert!(f.should_write(false) && !f.should_write(true));

        for off in [
            "--write-command-result=false",
            "--write-command-result=0",
            "--write-command-result=F",
        ] {
            let (f, _) = parse(&[off]).unwrap();
            assert!(!f.write_command_result, "{off}");
            assert!(!f.should_write(false));
        }
        let (f, _) = parse(&["--write-command-result", "--force-write-command-result"]).unwrap();
        assert!(f.write_command_result && f.should_write(true));
        // As in Go, a bool flag never takes the next word as its value.
        let (f, rest) = parse(&["--write-command-result", "false"]).unwrap();
        assert!(f.write_command_result);
        assert_eq!(rest, ["false"]);
        assert!(parse(&["--write-command-result=maybe"]).is_err());
        let (f, _) = parse(&[
            "--command-result-namespace",
            "results",
            "--keep-command-results-count=9",
            "--keep-validate-results-count",
            "0",
        ])
        .unwrap();
        assert_eq!(f.command_result_namespace, "results");
        assert_eq!(
            (f.keep_command_results_count, f.keep_validate_results_count),
            (9, 0)
        );
    }
}
