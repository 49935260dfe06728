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
    /// Show this kube context instead of the current one (repeatable: one server for several
    /// clusters)
    #[arg(long = "context", value_name = "CONTEXT")]
    pub contexts: Vec<String>,
    /// Show every context of the kubeconfig, each as its own cluster
    #[arg(long = "all-contexts", conflicts_with_all = ["contexts", "in_cluster"])]
    pub all_contexts: bool,
    /// Use this kubeconfig instead of $KUBECONFIG or ~/.kube/config
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Run inside the cluster: use the pod's service account, and require a login with the
    /// passwords of the --auth-secret-name Secret
    #[arg(long = "in-cluster", conflicts_with = "contexts")]
    pub in_cluster: bool,
    /// Require a login with the `admin-password` / `viewer-password` keys of this Secret
    /// (default with --in-cluster: webui-secret)
    #[arg(long = "auth-secret-name", value_name = "NAME")]
    pub auth_secret_name: Option<String>,
    /// The namespace of the --auth-secret-name and --auth-oidc-client-secret-name Secrets
    #[arg(long = "auth-secret-namespace", value_name = "NAMESPACE", default_value = super::install::DEFAULT_NAMESPACE)]
    pub auth_secret_namespace: String,
    /// Allow logins with the static admin/viewer passwords (as Kluctl's; pass
    /// --auth-static-login-enabled=false to allow OIDC logins only)
    #[arg(
        long = "auth-static-login-enabled",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub auth_static_login_enabled: bool,
    /// `--auth-oidc-*`.
    #[command(flatten)]
    pub oidc: OidcFlags,
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

/// The OIDC login flags of `kluctl webui run` (Kluctl's names and defaults; lists also take
/// comma-separated values, as Kluctl's do).
#[derive(Args, Debug, Clone)]
pub struct OidcFlags {
    /// The OIDC provider's issuer URL; turns OIDC logins on
    #[arg(long = "auth-oidc-issuer-url", value_name = "URL")]
    pub issuer_url: Option<String>,
    /// The provider's name on the login button
    #[arg(
        long = "auth-oidc-display-name",
        value_name = "NAME",
        default_value = "OpenID Connect"
    )]
    pub display_name: String,
    /// The OIDC client id
    #[arg(long = "auth-oidc-client-id", value_name = "ID")]
    pub client_id: Option<String>,
    /// The Secret (in --auth-secret-namespace) holding the OIDC client secret
    #[arg(
        long = "auth-oidc-client-secret-name",
        value_name = "NAME",
        default_value = "webui-secret"
    )]
    pub client_secret_name: String,
    /// The key of the client secret in that Secret
    #[arg(
        long = "auth-oidc-client-secret-key",
        value_name = "KEY",
        default_value = "oidc-client-secret"
    )]
    pub client_secret_key: String,
    /// The redirect URL registered with the provider: the web UI's address with
    /// /auth/callback (Kluctl's) or /auth/oidc/callback, after the --path-prefix
    #[arg(long = "auth-oidc-redirect-url", value_name = "URL")]
    pub redirect_url: Option<String>,
    /// A scope to request (repeatable; openid is always requested)
    #[arg(long = "auth-oidc-scope", value_name = "SCOPE", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// An extra parameter for the authorization request, KEY=VALUE (repeatable)
    #[arg(long = "auth-oidc-param", value_name = "KEY=VALUE", value_delimiter = ',')]
    pub params: Vec<String>,
    /// The ID token claim holding the user name
    #[arg(long = "auth-oidc-user-claim", value_name = "CLAIM", default_value = "email")]
    pub user_claim: String,
    /// The ID token claim holding the user's groups
    #[arg(
        long = "auth-oidc-group-claim",
        value_name = "CLAIM",
        default_value = "groups"
    )]
    pub group_claim: String,
    /// Members of this group are admins (repeatable)
    #[arg(long = "auth-oidc-admins-group", value_name = "GROUP", value_delimiter = ',')]
    pub admins_groups: Vec<String>,
    /// Members of this group are viewers (repeatable)
    #[arg(long = "auth-oidc-viewers-group", value_name = "GROUP", value_delimiter = ',')]
    pub viewers_groups: Vec<String>,
}
