//! `kluctl gitops ...`: drive the kluctl-controller's KluctlDeployments through the Kubernetes
//! API only (annotations, `spec.suspend`, the status and the command-result store).
//!
//! ```text
//! flags ─► connect (kubeconfig, context, namespace) ─► select (which objects)
//!   suspend/resume  ─► merge patch spec.suspend ─► wait observedGeneration >= generation
//!   reconcile/deploy/diff/prune/validate
//!                   ─► overrides (patch of spec) ─► request (annotation) ─► wait (status)
//!                   ─► result store by resultId ─► printed as the local command prints it
//!   logs            ─► controller log lines of the selected objects (pods or a local file)
//! ```
//!
//! Objects are handled one after the other; the first failure ends the command (as Kluctl).
//! `--local-git-override` and the source-override proxy are not implemented.

mod logs;
mod overrides;
pub(crate) mod request;
mod select;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cluster::{conclude_validate, finish};
use crate::flags::OutputFormatFlags;
use crate::flags::gitops::{
    GitopsCmd, GitopsCommand, GitopsFlags, GitopsLogsCmd, LogFlags, SuspendCmd, WaitFlags,
};
use crate::output::ResultOutput;
use crate::report::Hinted;
use gitops_api::constants::KLUCTL_FIELD_MANAGER;
use gitops_api::kluctl::v1beta1::{KluctlDeployment, ManualRequestResult};
use logs::{LogFilter, LogSource};
use overrides::Overrides;
use request::{RequestKind, WaitLogs, format_duration};
use select::{key_of, select};

/// How often `suspend`/`resume` read the object while waiting for the controller.
const POLL: Duration = Duration::from_secs(1);

/// Runs `kluctl gitops <command>`.
///
/// # Errors
/// A bad flag value or file, a failed connection, nothing selected, a failed request (the
/// controller's command error), a result with errors, or a timeout.
pub fn run_gitops(cmd: &GitopsCmd) -> anyhow::Result<()> {
    // Files named by flags are read before connecting: a typo fails before the cluster is asked.
    let overrides = match &cmd.command {
        GitopsCommand::Reconcile(c) => Some(Overrides::resolve(&c.overrides, Some(&c.deploy))?),
        GitopsCommand::Deploy(c) => Some(Overrides::resolve(&c.overrides, Some(&c.deploy))?),
        GitopsCommand::Diff(c) | GitopsCommand::Prune(c) => Some(Overrides::resolve(&c.overrides, None)?),
        GitopsCommand::Validate(c) => Some(Overrides::resolve(&c.overrides, None)?),
        GitopsCommand::Suspend(_) | GitopsCommand::Resume(_) | GitopsCommand::Logs(_) => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the client runtime")?;
    runtime.block_on(async {
        let overrides = overrides.unwrap_or_default();
        match &cmd.command {
            GitopsCommand::Suspend(c) => Box::pin(suspend(c, true)).await,
            GitopsCommand::Resume(c) => Box::pin(suspend(c, false)).await,
            GitopsCommand::Reconcile(c) => {
                let output = Output::Reconcile;
                Box::pin(run_requests(
                    RequestKind::Reconcile,
                    &c.gitops,
                    &c.wait,
                    &c.logs,
                    &overrides,
                    &output,
                ))
                .await
            }
            GitopsCommand::Deploy(c) => {
                let output = Output::Command(&c.output);
                Box::pin(run_requests(
                    RequestKind::Deploy,
                    &c.gitops,
                    &c.wait,
                    &c.logs,
                    &overrides,
                    &output,
                ))
                .await
            }
            GitopsCommand::Diff(c) => {
                let output = Output::Command(&c.output);
                Box::pin(run_requests(
                    RequestKind::Diff,
                    &c.gitops,
                    &c.wait,
                    &c.logs,
                    &overrides,
                    &output,
                ))
                .await
            }
            GitopsCommand::Prune(c) => {
                let output = Output::Command(&c.output);
                Box::pin(run_requests(
                    RequestKind::Prune,
                    &c.gitops,
                    &c.wait,
                    &c.logs,
                    &overrides,
                    &output,
                ))
                .await
            }
            GitopsCommand::Validate(c) => {
                let output = Output::Validate {
                    outputs: &c.output,
                    warnings_as_errors: c.warnings_as_errors,
                };
                Box::pin(run_requests(
                    RequestKind::Validate,
                    &c.gitops,
                    &c.wait,
                    &c.logs,
                    &overrides,
                    &output,
                ))
                .await
            }
            GitopsCommand::Logs(c) => Box::pin(run_logs(c)).await,
        }
    })
}

/// A client for the cluster of the KluctlDeployments and the namespace to look in.
struct Connection {
    client: kube::Client,
    namespace: String,
}

impl Connection {
    fn api(&self) -> Api<KluctlDeployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// Connects with `--kubeconfig` (else `$KUBECONFIG` / `~/.kube/config`, else in-cluster) and
/// `--context`; the namespace is `-n`, else the context's, else `default`.
async fn connect(flags: &GitopsFlags) -> anyhow::Result<Connection> {
    let config = load_config(flags.kubeconfig.as_deref(), flags.context.as_deref())
        .await
        .map_err(|e| Hinted::new(e, "pass --kubeconfig or --context to choose the cluster"))?;
    let namespace = flags
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).context("failed to create a Kubernetes client")?;
    Ok(Connection { client, namespace })
}

pub(crate) async fn load_config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    config_from(read_kubeconfig(kubeconfig)?, context).await
}

/// The kubeconfig at `path`, else the one of `$KUBECONFIG` / `~/.kube/config` if there is one.
pub(crate) fn read_kubeconfig(path: Option<&Path>) -> anyhow::Result<Option<kube::config::Kubeconfig>> {
    Ok(match path {
        Some(path) => Some(
            kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("failed to read kubeconfig '{}'", path.display()))?,
        ),
        None => kube::config::Kubeconfig::read().ok(),
    })
}

/// The client config of `context` (the current one when `None`) of a kubeconfig already read;
/// without a kubeconfig, the pod's own cluster.
pub(crate) async fn config_from(
    kc: Option<kube::config::Kubeconfig>,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    match kc {
        Some(kc) => kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .with_context(|| match context {
                Some(c) => format!("failed to load kubeconfig context '{c}'"),
                None => "failed to load the kubeconfig".to_owned(),
            }),
        None if context.is_none() => {
            kube::Config::incluster().context("failed to load a kubeconfig: none found and not in a cluster")
        }
        None => anyhow::bail!(
            "failed to load kubeconfig context '{}': no kubeconfig found",
            context.unwrap_or_default()
        ),
    }
}

/// `suspend` (`true`) or `resume`: patch `spec.suspend`, then wait until the controller observed
/// the new generation (so no reconciliation of the old spec is still running).
async fn suspend(cmd: &SuspendCmd, suspend: bool) -> anyhow::Result<()> {
    let conn = connect(&cmd.gitops).await?;
    let api = conn.api();
    let (verb, done) = if suspend {
        ("suspend", "suspended")
    } else {
        ("resume", "resumed")
    };
    for kd in select(&api, &conn.namespace, &cmd.gitops).await? {
        let key = key_of(&kd);
        let name = kd.metadata.name.clone().unwrap_or_default();
        let patched = api
            .patch(
                &name,
                &patch_params(),
                &Patch::Merge(&json!({"spec": {"suspend": suspend}})),
            )
            .await
            .with_context(|| format!("failed to {verb} KluctlDeployment '{key}'"))?;
        let generation = patched.metadata.generation.unwrap_or_default();
        wait_observed(&api, &key, &name, generation, &cmd.wait).await?;
        println!("KluctlDeployment {key} {done}");
    }
    Ok(())
}

/// Polls until `status.observedGeneration >= generation`.
async fn wait_observed(
    api: &Api<KluctlDeployment>,
    key: &str,
    name: &str,
    generation: i64,
    wait: &WaitFlags,
) -> anyhow::Result<()> {
    let deadline = (!wait.timeout.is_zero()).then(|| tokio::time::Instant::now() + wait.timeout);
    let mut tick = tokio::time::interval(POLL);
    let mut said = false;
    loop {
        tick.tick().await;
        let kd = api
            .get(name)
            .await
            .with_context(|| format!("failed to read KluctlDeployment '{key}'"))?;
        let observed = kd.status.as_ref().and_then(|s| s.observed_generation);
        if observed.is_some_and(|o| o >= generation) {
            return Ok(());
        }
        if !said {
            eprintln!("Waiting for the controller to reconcile generation {generation} of {key}");
            said = true;
        }
        if let Some(deadline) = deadline
            && tokio::time::Instant::now() >= deadline
        {
            return Err(Hinted::new(
                anyhow::anyhow!(
                    "timed out after {}: the controller did not observe generation {generation} of '{key}' (observed: {})",
                    format_duration(wait.timeout),
                    observed.map_or_else(|| "none".to_owned(), |o| o.to_string())
                ),
                "check that the kluctl-controller runs and watches this namespace, or pass a longer --timeout",
            )
            .into());
        }
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(KLUCTL_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// How a finished request is shown.
enum Output<'a> {
    /// The object's Ready condition.
    Reconcile,
    /// A command result (deploy, diff, prune), as the local command prints it.
    Command(&'a OutputFormatFlags),
    /// A validate result, as the local `validate` prints it.
    Validate {
        outputs: &'a [ResultOutput],
        warnings_as_errors: bool,
    },
}

/// Sends the request of `kind` to each selected object, waits for it and shows the outcome.
async fn run_requests(
    kind: RequestKind,
    flags: &GitopsFlags,
    wait: &WaitFlags,
    log_flags: &LogFlags,
    overrides: &Overrides,
    output: &Output<'_>,
) -> anyhow::Result<()> {
    let conn = connect(flags).await?;
    let api = conn.api();
    let log_source = log_source(&conn, flags, log_flags);
    for kd in select(&api, &conn.namespace, flags).await? {
        let patch = overrides.patch(&kd.spec);
        let sent = request::send(&api, &kd, kind, &patch).await?;
        let logs = WaitLogs {
            source: &log_source,
            since: log_flags.log_since,
        };
        let result = request::wait(&api, &kd, kind, &sent, wait.timeout, Some(logs)).await?;
        show(&conn, flags, kind, &kd, &result, output).await?;
    }
    Ok(())
}

/// Prints the outcome of a finished request: the stored result (when there is one), then the
/// controller's command error as the failure.
async fn show(
    conn: &Connection,
    flags: &GitopsFlags,
    kind: RequestKind,
    kd: &KluctlDeployment,
    result: &ManualRequestResult,
    output: &Output<'_>,
) -> anyhow::Result<()> {
    let key = key_of(kd);
    let results_ns = &flags.command_result_namespace;
    let read_failed = |what: &str| {
        format!(
            "failed to read the {what} result '{}' of '{key}' from namespace '{results_ns}'",
            result.result_id
        )
    };
    let shown = match output {
        Output::Reconcile => ready_condition(conn, kd).await,
        _ if result.result_id.is_empty() => {
            if result.command_error.is_empty() {
                eprintln!(
                    "The controller stored no result for the {} request of {key}",
                    kind.name()
                );
            }
            Ok(())
        }
        Output::Command(flags) => {
            let r = kluctl_engine::store::get_command_result(&conn.client, results_ns, &result.result_id)
                .await
                .with_context(|| read_failed("command"))?;
            finish(kind.name(), r, flags, None)
        }
        Output::Validate {
            outputs,
            warnings_as_errors,
        } => {
            let v = kluctl_engine::store::get_validate_result(&conn.client, results_ns, &result.result_id)
                .await
                .with_context(|| read_failed("validate"))?;
            conclude_validate(&v, outputs, *warnings_as_errors, None)
        }
    };
    if !result.command_error.is_empty() {
        // The controller's own failure comes first: the result (if any) was printed above.
        anyhow::bail!(
            "the controller failed the {} request of '{key}': {}",
            kind.name(),
            result.command_error
        );
    }
    shown
}

/// Prints the object's Ready condition after a reconcile; Ready=False is a failure.
async fn ready_condition(conn: &Connection, kd: &KluctlDeployment) -> anyhow::Result<()> {
    let key = key_of(kd);
    let name = kd.metadata.name.as_deref().unwrap_or_default();
    let current = conn
        .api()
        .get(name)
        .await
        .with_context(|| format!("failed to read KluctlDeployment '{key}'"))?;
    let ready = current
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let Some(ready) = ready else {
        println!("KluctlDeployment {key}: no Ready condition yet");
        return Ok(());
    };
    println!(
        "KluctlDeployment {key}: Ready={} ({}): {}",
        ready.status, ready.reason, ready.message
    );
    if ready.status == "False" {
        anyhow::bail!("KluctlDeployment '{key}' is not ready: {}", ready.message);
    }
    Ok(())
}

/// `--controller-log-file`, else the controller's pods.
fn log_source(conn: &Connection, flags: &GitopsFlags, logs: &LogFlags) -> LogSource {
    match &logs.controller_log_file {
        Some(path) => LogSource::File(path.clone()),
        None => LogSource::Pods {
            client: conn.client.clone(),
            namespace: flags.controller_namespace.clone(),
        },
    }
}

/// `kluctl gitops logs`: the selected objects' lines (every line with `--all`) on stdout.
async fn run_logs(cmd: &GitopsLogsCmd) -> anyhow::Result<()> {
    let conn = connect(&cmd.gitops).await?;
    let objects = if cmd.gitops.all {
        None
    } else {
        let selected = select(&conn.api(), &conn.namespace, &cmd.gitops).await?;
        Some(
            selected
                .iter()
                .map(|kd| {
                    (
                        kd.metadata.namespace.clone().unwrap_or_default(),
                        kd.metadata.name.clone().unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let source = log_source(&conn, &cmd.gitops, &cmd.logs);
    let filter = LogFilter {
        show_object: objects.as_ref().is_none_or(|o| o.len() > 1),
        objects,
        reconcile_id: cmd.reconcile_id.clone(),
        // The pods' API applies --log-since itself (sinceSeconds); a file has every line.
        not_before: source.not_before(cmd.logs.log_since),
    };
    let mut lines = logs::open(&source, cmd.logs.log_since, cmd.follow).await?;
    while let Some(line) = lines.recv().await {
        if let Some(l) = filter.render(&line) {
            println!("{l}");
        }
    }
    Ok(())
}
