//! Flag groups shared by `kluctl` commands, named as Kluctl names them (so `KLUCTL_<FLAG>`
//! environment variables and scripts carry over).

use std::path::PathBuf;

use clap::Args;

use kluctl_engine::project::config::FixedImage;

/// `--project-dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct ProjectFlags {
    /// Specify the project directory. Defaults to the current working directory.
    #[arg(long = "project-dir", value_name = "DIR")]
    pub project_dir: Option<PathBuf>,
}

/// `-t`, `-T`, `--context`, `--kubeconfig`.
#[derive(Args, Debug, Clone, Default)]
pub struct TargetFlags {
    /// Target name to run command for. Target must exist in .kluctl.yaml.
    #[arg(short = 't', long = "target")]
    pub target: Option<String>,
    /// Overrides the target name. If -t is used at the same time, then the target will be
    /// looked up based on -t <name> and then renamed to the value of -T.
    #[arg(short = 'T', long = "target-name-override")]
    pub target_name_override: Option<String>,
    /// Overrides the context name specified in the target.
    #[arg(long = "context")]
    pub context: Option<String>,
    /// Overrides the kubeconfig to use.
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `-a`, `--args-from-file`.
#[derive(Args, Debug, Clone, Default)]
pub struct ArgsFlags {
    /// Passes a template argument in the form of name=value. Nested args can be set with the
    /// '-a my.nested.arg=value' syntax. Values are interpreted as YAML. If the value starts with
    /// @, the file it names is loaded as YAML.
    #[arg(short = 'a', long = "arg", value_name = "NAME=VALUE")]
    pub arg: Vec<String>,
    /// Loads a YAML file and makes it available as arguments.
    #[arg(long = "args-from-file", value_name = "FILE")]
    pub args_from_file: Vec<PathBuf>,
}

/// `-F`, `--fixed-images-file`.
#[derive(Args, Debug, Clone, Default)]
pub struct ImageFlags {
    /// Pin an image to a given version. Expects
    /// '--fixed-image=image<:namespace:deployment:container>=result'.
    #[arg(short = 'F', long = "fixed-image")]
    pub fixed_image: Vec<String>,
    /// Use .yaml file to pin image versions (the output format of list-images).
    #[arg(long = "fixed-images-file", value_name = "FILE")]
    pub fixed_images_file: Option<PathBuf>,
}

/// `-I`, `-E`, `--include-deployment-dir`, `--exclude-deployment-dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct InclusionFlags {
    /// Include deployments with given tag.
    #[arg(short = 'I', long = "include-tag")]
    pub include_tag: Vec<String>,
    /// Exclude deployments with given tag. Exclusion has precedence over inclusion.
    #[arg(short = 'E', long = "exclude-tag")]
    pub exclude_tag: Vec<String>,
    /// Include deployment dir. The path must be relative to the root deployment project.
    #[arg(long = "include-deployment-dir")]
    pub include_deployment_dir: Vec<String>,
    /// Exclude deployment dir. The path must be relative to the root deployment project.
    #[arg(long = "exclude-deployment-dir")]
    pub exclude_deployment_dir: Vec<String>,
}

/// `--offline-kubernetes`, `--kubernetes-version`.
#[derive(Args, Debug, Clone, Default)]
pub struct OfflineFlags {
    /// Run command in offline mode, meaning that it will not try to connect the target cluster.
    #[arg(long = "offline-kubernetes")]
    pub offline_kubernetes: bool,
    /// Specify the Kubernetes version that will be assumed. This will also override the
    /// kubeVersion used when rendering Helm Charts.
    #[arg(long = "kubernetes-version")]
    pub kubernetes_version: Option<String>,
}

/// `--render-output-dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct RenderOutputFlags {
    /// Specifies the target directory to render the project into. If omitted, a temporary
    /// directory is used.
    #[arg(long = "render-output-dir", value_name = "DIR")]
    pub render_output_dir: Option<PathBuf>,
}

/// `-o`.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputFlags {
    /// Output: 'yaml' or 'json' (to stdout), or a file path (YAML; '-' is stdout). Can be
    /// given more than once.
    #[arg(short = 'o', long = "output")]
    pub output: Vec<String>,
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
    /// Write the command result into the cluster (default true; `--write-command-result=false`
    /// turns it off).
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
    /// Write the command result even in `--dry-run` mode.
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
    /// Namespace the command results are written to (created when missing).
    #[arg(long = "command-result-namespace", value_name = "NAMESPACE", default_value = kluctl_engine::store::DEFAULT_RESULTS_NAMESPACE)]
    pub command_result_namespace: String,
    /// How many command results to keep per project and target.
    #[arg(long = "keep-command-results-count", value_name = "N", default_value_t = kluctl_engine::store::DEFAULT_KEEP_COMMAND_RESULTS)]
    pub keep_command_results_count: usize,
    /// How many validate results to keep per project and target.
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
