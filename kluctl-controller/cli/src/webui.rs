//! `kluctl webui run`: the web UI server of the `kluctl-webui` crate, connected with the user's
//! kubeconfig (every caller is an admin, the server listens on loopback) or, with `--in-cluster`
//! / `--auth-secret-name`, behind the static passwords of a Secret. The deployment pages show
//! the kluctl-controller's log lines: from its pods in `--controller-namespace` (also in the
//! cluster), or from `--controller-log-file`.

use std::net::SocketAddr;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kluctl_engine::controller_logs::LogSource;
use kube::Api;

use crate::flags::webui::{WebuiCmd, WebuiCommand, WebuiRunCmd};
use crate::report::Hinted;

/// The Secret `--in-cluster` reads the passwords from unless `--auth-secret-name` says otherwise.
pub const DEFAULT_AUTH_SECRET: &str = "webui-secret";

/// Runs `kluctl webui ...`.
///
/// # Errors
/// No cluster connection, an unreadable password Secret, or the address cannot be bound.
pub fn run_webui(cmd: &WebuiCmd) -> anyhow::Result<()> {
    match &cmd.command {
        WebuiCommand::Run(run) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("failed to start the server runtime")?
            .block_on(run_server(run)),
    }
}

async fn client(cmd: &WebuiRunCmd) -> anyhow::Result<kube::Client> {
    if cmd.in_cluster {
        let config = kube::Config::incluster().context("--in-cluster: not running in a cluster")?;
        return kube::Client::try_from(config).context("failed to create a Kubernetes client");
    }
    Ok(crate::get::connect(&cmd.cluster).await?.0)
}

/// The passwords of `name`: its `admin-password` and `viewer-password` keys (a missing key
/// disables that role's login).
async fn passwords(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<kluctl_webui::Auth> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| {
            Hinted::new(
                anyhow::anyhow!("failed to read the web UI's password Secret {namespace}/{name}: {e}"),
                "create it with keys admin-password and viewer-password, or pass --auth-secret-name",
            )
        })?;
    let key = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|s| s.trim_end_matches('\n').to_owned())
            .filter(|s| !s.is_empty())
    };
    let (admin, viewer) = (key("admin-password"), key("viewer-password"));
    if admin.is_none() && viewer.is_none() {
        anyhow::bail!(
            "the web UI's password Secret {namespace}/{name} has neither an admin-password nor a viewer-password key"
        );
    }
    Ok(kluctl_webui::Auth::Passwords {
        admin,
        viewer,
        key: kluctl_webui::auth::random_key(),
    })
}

async fn run_server(cmd: &WebuiRunCmd) -> anyhow::Result<()> {
    let client = client(cmd).await?;
    let secret_name = cmd
        .auth_secret_name
        .clone()
        .or_else(|| cmd.in_cluster.then(|| DEFAULT_AUTH_SECRET.to_owned()));
    let auth = match secret_name {
        Some(name) => passwords(&client, &cmd.auth_secret_namespace, &name).await?,
        None => kluctl_webui::Auth::Local,
    };
    let options = kluctl_webui::Options {
        addr: SocketAddr::new(cmd.host, cmd.port),
        path_prefix: cmd.path_prefix.clone(),
        results_namespace: cmd.results_namespace.clone(),
        auth,
        logs: Some(match &cmd.controller_log_file {
            Some(path) => LogSource::File(path.clone()),
            None => LogSource::Pods {
                client: client.clone(),
                namespace: cmd.controller_namespace.clone(),
            },
        }),
    };
    let running = kluctl_webui::start(client, options).await?;
    let prefix = cmd.path_prefix.trim_matches('/');
    let shown = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    eprintln!("Serving the kluctl web UI at http://{}/{shown}", running.addr);
    tokio::select! {
        r = running.wait() => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
