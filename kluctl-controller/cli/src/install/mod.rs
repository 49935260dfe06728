//! `kluctl install`, `kluctl check`, `kluctl uninstall`: the controllers' own installation
//! (CRDs, RBAC, Deployments and Services of source-controller and kluctl-controller, and with
//! `install --webui` those of the web UI).
//!
//! ```text
//! manifests  config/ embedded at build time ─► assembled for --namespace (pure)
//! apply      install: server-side apply, CRDs first and Established, then the rest
//! check      check [--pre]: server version, rights; CRDs and Deployments (a table)
//! uninstall  suspend the KluctlDeployments ─► delete controllers/web UI/RBAC (─► namespace, CRDs)
//! ```

pub mod apply;
pub mod check;
pub mod manifests;
pub mod uninstall;

use anyhow::Context as _;

use crate::flags::install::{CheckCmd, InstallClusterFlags, InstallCmd, UninstallCmd};
use manifests::{Manifests, Options};

/// Runs `kluctl install`.
///
/// # Errors
/// An invalid namespace, a failed connection, an object the server refuses, or a CRD that does
/// not become Established in time.
pub fn run_install(cmd: &InstallCmd) -> anyhow::Result<()> {
    let mut m = manifests::assemble(&Options {
        namespace: cmd.cluster.namespace.clone(),
        legacy: cmd.legacy,
        watch_all_namespaces: cmd.watch_all_namespaces,
        webui: cmd.webui,
    })?;
    let minor = cmd
        .kubernetes_version
        .as_deref()
        .map(manifests::parse_version)
        .transpose()?;
    if cmd.export {
        if minor.is_some_and(|m| m < manifests::CEL_MINOR) {
            m.strip_for_old_servers();
        }
        print!("{}", m.to_yaml()?);
        return Ok(());
    }
    block_on(async {
        let client = connect(&cmd.cluster).await?;
        let minor = if let Some(m) = minor {
            m
        } else {
            let v = client
                .apiserver_version()
                .await
                .context("failed to read the server version")?;
            manifests::parse_minor(&v.major, &v.minor).unwrap_or(u32::MAX)
        };
        if minor < manifests::CEL_MINOR && m.strip_for_old_servers() > 0 {
            println!(
                "Kubernetes 1.{minor}: the CRDs are applied without their CEL rules \
                 (x-kubernetes-validations) and empty-string defaults, which it refuses"
            );
        }
        apply::apply(&client, &m, cmd.timeout).await
    })
}

/// Runs `kluctl check`.
///
/// # Errors
/// A failed check (exit status 1), or a failed connection.
pub fn run_check(cmd: &CheckCmd) -> anyhow::Result<()> {
    // The web UI's objects add no kind or namespace to the rights `--pre` asks for; its
    // Deployment, when installed, is one of the labelled Deployments the health check lists.
    let m = assemble(&cmd.cluster, true, false)?;
    block_on(async {
        let client = connect(&cmd.cluster).await?;
        check::check(&client, &m, &cmd.cluster.namespace, cmd.pre).await
    })
}

/// Runs `kluctl uninstall`.
///
/// # Errors
/// No confirmation, a failed connection or API call.
pub fn run_uninstall(cmd: &UninstallCmd) -> anyhow::Result<()> {
    // With the web UI's objects whether or not `--webui` installed them: those absent are skipped.
    let m = assemble(&cmd.cluster, cmd.legacy, true)?;
    let ns = &cmd.cluster.namespace;
    if !cmd.yes {
        let mut question = format!(
            "Remove the kluctl-gitops controllers (and the web UI, if installed), their Services \
             and RBAC from namespace {ns}{}?",
            if cmd.keep_namespace {
                ""
            } else {
                " (and the namespace)"
            }
        );
        if cmd.delete_crds {
            question.push_str(
                " The CRDs are deleted too: that deletes EVERY KluctlDeployment, GitRepository, \
                 Bucket, Alert, Provider and Receiver in the cluster.",
            );
        }
        if !crate::prompt::ask(&question, "uninstall")? {
            anyhow::bail!("uninstall aborted: nothing was removed");
        }
    }
    block_on(async {
        let client = connect(&cmd.cluster).await?;
        let scope = uninstall::Scope {
            delete_namespace: !cmd.keep_namespace,
            delete_crds: cmd.delete_crds,
        };
        uninstall::uninstall(&client, &m, ns, scope, cmd.timeout).await
    })
}

fn assemble(cluster: &InstallClusterFlags, legacy: bool, webui: bool) -> anyhow::Result<Manifests> {
    manifests::assemble(&Options {
        namespace: cluster.namespace.clone(),
        legacy,
        watch_all_namespaces: true,
        webui,
    })
}

fn block_on<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the client runtime")?
        .block_on(f)
}

async fn connect(flags: &InstallClusterFlags) -> anyhow::Result<kube::Client> {
    Ok(crate::get::connect(&flags.connection).await?.0)
}
