//! Flags of `kluctl webui run`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `kluctl webui`.
#[derive(Args, Debug, Clone)]
pub struct WebuiCmd {
    /// What to do.
    #[command(subcommand)]
    pub command: WebuiCommand,
}

/// Subcommands of `kluctl webui`.
#[derive(Subcommand, Debug, Clone)]
pub enum WebuiCommand {
    /// Serve the web UI: every KluctlDeployment and stored result of the cluster, live, with
    /// deploy/diff/prune/validate/reconcile/suspend/approve buttons for admins
    Run(WebuiRunCmd),
}

/// `kluctl webui run`.
#[derive(Args, Debug, Clone)]
pub struct WebuiRunCmd {
    /// Listen on this address (loopback by default: locally every caller acts with your kubeconfig)
    #[arg(long = "host", value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Listen on this port (0 picks a free one; the address is printed)
    #[arg(long = "port", value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Serve every path under this prefix (e.g. /kluctl behind a shared ingress)
    #[arg(long = "path-prefix", value_name = "PREFIX", default_value = "")]
    pub path_prefix: String,
    /// `--context`, `--kubeconfig`.
    #[command(flatten)]
    pub cluster: super::get::ClusterFlags,
    /// Run inside the cluster: use the pod's service account, and require a login with the
    /// passwords of the --auth-secret-name Secret
    #[arg(long = "in-cluster")]
    pub in_cluster: bool,
    /// Require a login with the `admin-password` / `viewer-password` keys of this Secret
    /// (default with --in-cluster: webui-secret)
    #[arg(long = "auth-secret-name", value_name = "NAME")]
    pub auth_secret_name: Option<String>,
    /// The namespace of the --auth-secret-name Secret
    #[arg(long = "auth-secret-namespace", value_name = "NAMESPACE", default_value = super::install::DEFAULT_NAMESPACE)]
    pub auth_secret_namespace: String,
    /// The namespace of the stored command results
    #[arg(long = "command-result-namespace", value_name = "NAMESPACE", default_value = kluctl_engine::store::DEFAULT_RESULTS_NAMESPACE)]
    pub results_namespace: String,
    /// The namespace the kluctl-controller runs in (the deployment pages show its pods' logs)
    #[arg(
        long = "controller-namespace",
        value_name = "NAMESPACE",
        default_value = "kluctl-system"
    )]
    pub controller_namespace: String,
    /// Read the controller's log from FILE (its --log-file) instead of from its pods, for a
    /// controller running as a local process
    #[arg(long = "controller-log-file", value_name = "FILE")]
    pub controller_log_file: Option<PathBuf>,
}
