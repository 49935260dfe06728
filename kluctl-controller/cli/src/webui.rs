//! `kluctl webui run`: the web UI server of the `kluctl-webui` crate, connected with the user's
//! kubeconfig (every caller is an admin, the server listens on loopback) or, with `--in-cluster`
//! / `--auth-secret-name` / `--auth-oidc-issuer-url`, behind logins: the static passwords of a
//! Secret, OIDC, or both (Kluctl's `--auth-static-login-enabled` and `--auth-oidc-*` flags).
//! The deployment pages show the kluctl-controller's log lines: from its pods in
//! `--controller-namespace` (also in the cluster), or from `--controller-log-file`. One server
//! shows several clusters with `--context a --context b` or `--all-contexts`.

use std::net::SocketAddr;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kluctl_engine::controller_logs::LogSource;
use kluctl_webui::oidc::{ClientSecret, Oidc, OidcConfig};
use kube::Api;

use crate::flags::webui::{OidcFlags, WebuiCmd, WebuiCommand, WebuiRunCmd};
use crate::report::Hinted;

/// The Secret `--in-cluster` reads the passwords from unless `--auth-secret-name` says otherwise.
pub const DEFAULT_AUTH_SECRET: &str = "webui-secret";

/// Runs `kluctl webui ...`.
///
/// # Errors
/// No cluster connection, an unreadable password Secret, or the address cannot be bound.
pub fn run_webui(cmd: &WebuiCmd) -> anyhow::Result<()> {
    match &cmd.command {
        // One thread: the server waits on the network and serves from memory, and a single
        // thread keeps a single malloc arena (two worker threads cost B10 a fifth more peak RSS).
        WebuiCommand::Run(run) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the server runtime")?
            .block_on(run_server(run)),
    }
}

/// The name of the pod's own cluster with `--in-cluster`, and of the cluster of a kubeconfig
/// without a current context.
const IN_CLUSTER: &str = "in-cluster";

/// The clusters to show, each with its client: the pod's own (`--in-cluster`), every context of
/// the kubeconfig (`--all-contexts`; one that cannot be loaded is skipped with a warning), the
/// `--context`s given, or the current context.
async fn clusters(cmd: &WebuiRunCmd) -> anyhow::Result<Vec<(String, kube::Client)>> {
    if cmd.in_cluster {
        let config = kube::Config::incluster().context("--in-cluster: not running in a cluster")?;
        let client = kube::Client::try_from(config).context("failed to create a Kubernetes client")?;
        return Ok(vec![(IN_CLUSTER.to_owned(), client)]);
    }
    // Read once: every context's config comes from this copy.
    let kubeconfig = crate::gitops::read_kubeconfig(cmd.kubeconfig.as_deref())?;
    let contexts: Vec<Option<String>> = if cmd.all_contexts {
        let names: Vec<Option<String>> = kubeconfig
            .iter()
            .flat_map(|kc| kc.contexts.iter().map(|c| Some(c.name.clone())))
            .collect();
        if names.is_empty() {
            return Err(Hinted::new(
                anyhow::anyhow!("--all-contexts: the kubeconfig has no contexts"),
                "pass --kubeconfig with the file that has them",
            )
            .into());
        }
        names
    } else if cmd.contexts.is_empty() {
        vec![None]
    } else {
        cmd.contexts.iter().cloned().map(Some).collect()
    };
    let current = kubeconfig.as_ref().and_then(|kc| kc.current_context.clone());
    let mut clusters = Vec::new();
    for context in contexts {
        let name = context
            .clone()
            .or_else(|| current.clone())
            .unwrap_or_else(|| IN_CLUSTER.to_owned());
        let client = crate::gitops::config_from(kubeconfig.clone(), context.as_deref())
            .await
            .and_then(|c| kube::Client::try_from(c).context("failed to create a Kubernetes client"));
        match client {
            Ok(client) => clusters.push((name, client)),
            Err(e) if cmd.all_contexts => {
                eprintln!("warning: --all-contexts: skipping context '{name}': {e:#}");
            }
            Err(e) => {
                return Err(Hinted::new(e, "pass --kubeconfig or --context to choose the cluster").into());
            }
        }
    }
    if clusters.is_empty() {
        anyhow::bail!("--all-contexts: no context of the kubeconfig could be loaded");
    }
    Ok(clusters)
}

async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    what: &str,
    hint: &str,
) -> anyhow::Result<Secret> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| {
            Hinted::new(
                anyhow::anyhow!("failed to read the web UI's {what} Secret {namespace}/{name}: {e}"),
                hint.to_owned(),
            )
            .into()
        })
}

/// The value of `key` in `secret` (UTF-8, a trailing newline dropped), if set and not empty.
fn secret_key(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .map(|s| s.trim_end_matches('\n').to_owned())
        .filter(|s| !s.is_empty())
}

/// The passwords of `name`: its `admin-password` and `viewer-password` keys (a missing key
/// disables that role's login). With OIDC on, a Secret without either key only turns password
/// logins off.
async fn passwords(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    oidc_on: bool,
) -> anyhow::Result<Option<kluctl_webui::Passwords>> {
    let hint = "create it with keys admin-password and viewer-password, or pass --auth-secret-name";
    let secret = read_secret(client, namespace, name, "password", hint).await?;
    let (admin, viewer) = (
        secret_key(&secret, "admin-password"),
        secret_key(&secret, "viewer-password"),
    );
    if admin.is_none() && viewer.is_none() {
        if oidc_on {
            eprintln!(
                "note: the Secret {namespace}/{name} has no admin-password or viewer-password key: OIDC logins only"
            );
            return Ok(None);
        }
        anyhow::bail!(
            "the web UI's password Secret {namespace}/{name} has neither an admin-password nor a viewer-password key"
        );
    }
    Ok(Some(kluctl_webui::Passwords { admin, viewer }))
}

/// The OIDC provider of the `--auth-oidc-*` flags, discovered; `None` without an issuer URL.
async fn oidc(client: &kube::Client, namespace: &str, flags: &OidcFlags) -> anyhow::Result<Option<Oidc>> {
    let Some(issuer_url) = flags.issuer_url.clone() else {
        return Ok(None);
    };
    let client_id = flags
        .client_id
        .clone()
        .context("--auth-oidc-client-id is required with --auth-oidc-issuer-url")?;
    let redirect_url = flags.redirect_url.clone().ok_or_else(|| {
        Hinted::new(
            anyhow::anyhow!("--auth-oidc-redirect-url is required with --auth-oidc-issuer-url"),
            "pass the web UI's public address with /auth/callback, as registered with the provider",
        )
    })?;
    let params = flags
        .params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--auth-oidc-param {p:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (name, key) = (&flags.client_secret_name, &flags.client_secret_key);
    let hint = format!(
        "create it with key {key}, or pass --auth-oidc-client-secret-name / --auth-oidc-client-secret-key"
    );
    let secret = read_secret(client, namespace, name, "OIDC client", &hint).await?;
    let client_secret = secret_key(&secret, key).ok_or_else(|| {
        Hinted::new(
            anyhow::anyhow!("the Secret {namespace}/{name} has no key {key} (the OIDC client secret)"),
            hint,
        )
    })?;
    let config = OidcConfig {
        issuer_url,
        display_name: flags.display_name.clone(),
        client_id,
        client_secret: ClientSecret::new(client_secret),
        redirect_url,
        scopes: flags.scopes.clone(),
        params,
        user_claim: flags.user_claim.clone(),
        group_claim: flags.group_claim.clone(),
        admins_groups: flags.admins_groups.clone(),
        viewers_groups: flags.viewers_groups.clone(),
    };
    Ok(Some(Oidc::discover(config).await?))
}

/// The logins the flags ask for.
async fn auth(client: &kube::Client, cmd: &WebuiRunCmd) -> anyhow::Result<kluctl_webui::Auth> {
    let namespace = &cmd.auth_secret_namespace;
    let oidc = oidc(client, namespace, &cmd.oidc).await?;
    let secret_name = cmd
        .auth_secret_name
        .clone()
        .or_else(|| cmd.in_cluster.then(|| DEFAULT_AUTH_SECRET.to_owned()));
    let passwords = match secret_name {
        Some(name) if cmd.auth_static_login_enabled => {
            passwords(client, namespace, &name, oidc.is_some()).await?
        }
        _ => None,
    };
    if passwords.is_none() && oidc.is_none() {
        if cmd.in_cluster || cmd.auth_secret_name.is_some() {
            return Err(Hinted::new(
                anyhow::anyhow!("no login is left: password logins are off and OIDC is not configured"),
                "pass --auth-static-login-enabled=true or --auth-oidc-issuer-url",
            )
            .into());
        }
        return Ok(kluctl_webui::Auth::Local);
    }
    Ok(kluctl_webui::Auth::Login(kluctl_webui::Logins {
        passwords,
        oidc: oidc.map(Box::new),
        key: kluctl_webui::auth::random_key(),
    }))
}

async fn run_server(cmd: &WebuiRunCmd) -> anyhow::Result<()> {
    let clusters = clusters(cmd).await?;
    // Logins are read from the first cluster (the in-cluster server has only its own).
    let auth = auth(&clusters[0].1, cmd).await?;
    let options = kluctl_webui::Options {
        addr: SocketAddr::new(cmd.host, cmd.port),
        path_prefix: cmd.path_prefix.clone(),
        results_namespace: cmd.results_namespace.clone(),
        auth,
    };
    let clusters = clusters
        .into_iter()
        .map(|(name, client)| kluctl_webui::Cluster {
            name,
            logs: Some(match &cmd.controller_log_file {
                Some(path) => LogSource::File(path.clone()),
                None => LogSource::Pods {
                    client: client.clone(),
                    namespace: cmd.controller_namespace.clone(),
                },
            }),
            client,
        })
        .collect();
    let running = kluctl_webui::start(clusters, options).await?;
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
