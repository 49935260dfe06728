//! Flags of `kluctl bootstrap git`: a Git repository that the cluster then syncs from, the
//! controllers' installation included (as `flux bootstrap git` does).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::install::InstallClusterFlags;

/// `kluctl bootstrap`.
#[derive(Args, Debug, Clone)]
pub struct BootstrapCmd {
    /// Where the repository is hosted.
    #[command(subcommand)]
    pub command: BootstrapCommand,
}

/// The subcommands of `kluctl bootstrap`.
#[derive(Subcommand, Debug, Clone)]
pub enum BootstrapCommand {
    /// Push the controllers' manifests and a sync (GitRepository + KluctlDeployment) to any Git
    /// server, install them, and wait until the cluster deploys itself from that repository
    Git(BootstrapGitCmd),
}

/// `kluctl bootstrap git`.
#[derive(Args, Debug, Clone)]
pub struct BootstrapGitCmd {
    #[command(flatten)]
    pub(crate) cluster: InstallClusterFlags,
    /// Clone and push to this repository (https://, http://, ssh:// or user@host:path)
    #[arg(long = "url", value_name = "URL")]
    pub url: String,
    /// Push to and sync from this branch (created when the repository does not have it)
    #[arg(long = "branch", value_name = "BRANCH", default_value = "main")]
    pub branch: String,
    /// Sync this directory of the repository: a Kluctl project that gets an item with the
    /// controllers' manifests (default: the repository's root)
    #[arg(long = "path", value_name = "PATH", default_value = ".")]
    pub path: String,
    /// How often the GitRepository looks for new commits
    #[arg(long = "interval", value_name = "DURATION", default_value = "1m", value_parser = super::parse_duration)]
    pub interval: Duration,
    /// Deploy this target of the synced project's .kluctl.yaml (default: none, the project's
    /// top-level discriminator applies)
    #[arg(long = "target", value_name = "NAME")]
    pub target: Option<String>,
    /// User name for HTTP(S) basic authentication (default with --password: git)
    #[arg(short = 'u', long = "username", value_name = "NAME")]
    pub username: Option<String>,
    /// Password or token for HTTP(S) basic authentication; KLUCTL_PASSWORD keeps it off the
    /// command line. Stored in the cluster's Secret, never in the repository
    #[arg(
        short = 'p',
        long = "password",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Private key for ssh:// URLs (stored in the cluster's Secret, never in the repository)
    #[arg(long = "private-key-file", value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// known_hosts for ssh:// URLs (default: the host keys ssh-keyscan reads from the server)
    #[arg(long = "known-hosts-file", value_name = "FILE")]
    pub known_hosts_file: Option<PathBuf>,
    /// PEM CA bundle that signs the HTTPS server's certificate
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Commit as this author
    #[arg(long = "author-name", value_name = "NAME", default_value = "kluctl")]
    pub author_name: String,
    /// Commit with this author e-mail
    #[arg(
        long = "author-email",
        value_name = "EMAIL",
        default_value = "kluctl@localhost"
    )]
    pub author_email: String,
    /// Push and install the controllers' manifests only: no Secret, no sync objects
    #[arg(long = "components-only")]
    pub components_only: bool,
    /// Leave the controllers' Deployments out of the manifests, for clusters where the
    /// controllers run elsewhere (a control plane without nodes, as `make run` starts)
    #[arg(long = "without-controller-deployments")]
    pub without_controller_deployments: bool,
    /// Also install the legacy flux.kluctl.io KluctlDeployment CRD
    #[arg(long = "legacy")]
    pub legacy: bool,
    /// Let the controllers reconcile the objects of every namespace (=false: only their own)
    #[arg(
        long = "watch-all-namespaces",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = super::parse_bool_flag,
    )]
    pub watch_all_namespaces: bool,
    /// Wait this long for CRDs, the GitRepository and the KluctlDeployment to become Ready
    #[arg(long = "timeout", value_name = "DURATION", default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use crate::{KluctlArgs, KluctlCommand};
    use clap::Parser;

    use super::BootstrapCommand;

    #[test]
    fn bootstrap_git_flags_parse_with_flux_like_defaults() {
        let parse =
            |a: &[&str]| KluctlArgs::try_parse_from(std::iter::once("kluctl").chain(a.iter().copied()));
        let KluctlCommand::Bootstrap(b) = parse(&["bootstrap", "git", "--url", "https://h/r.git"])
            .unwrap()
            .command
        else {
            panic!("not bootstrap");
        };
        let BootstrapCommand::Git(g) = b.command;
        assert_eq!(g.url, "https://h/r.git");
        assert_eq!((g.branch.as_str(), g.path.as_str()), ("main", "."));
        assert_eq!(g.interval.as_secs(), 60);
        assert_eq!(g.timeout.as_secs(), 300);
        assert_eq!(g.cluster.namespace, "kluctl-system");
        assert!(!g.components_only && !g.without_controller_deployments && g.watch_all_namespaces);
        assert!(parse(&["bootstrap", "git"]).is_err(), "--url is required");
        assert!(parse(&["bootstrap", "git", "--url", "u", "--interval", "soon"]).is_err());
    }
}
