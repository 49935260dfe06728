//! The source-controller: reconciles Flux `GitRepository` and `Bucket` objects into versioned,
//! digest-addressed tar.gz artifacts and serves them over HTTP.
//!
//! ```text
//!  main ──► run(Args)
//!             ├─ artifact server      (--storage-addr)   server::serve
//!             ├─ metrics / health     (--metrics-addr, --health-addr)
//!             ├─ GitRepository controller: reconcile::gitrepository
//!             │      resolve (git) → fetch (git) → package (archive) → store (storage) → status
//!             └─ Bucket controller: reconcile::bucket
//!                    resolve → fetch (bucket) → package (archive) → store (storage) → status
//! ```

pub mod archive;
pub mod args;
pub mod bucket;
pub mod credentials;
pub mod git;
pub mod metrics;
pub mod reconcile;
pub mod server;
pub mod status;
pub mod storage;

/// One error-chain helper for the whole crate: the git layer's (it joins gix's chains too).
pub(crate) use gitops_git::error_chain;

pub use args::Args;

/// Base name of the leader-election Lease (Flux's).
pub const LEASE_NAME: &str = "source-controller-leader-election";

use anyhow::Context as _;
use futures::StreamExt;
use gitops_api::source::v1::{Bucket, GitRepository};
use gitops_runtime::{Events, leader};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client};
use std::sync::Arc;

/// Runs the controller with parsed arguments until SIGTERM/SIGINT.
///
/// # Errors
/// When the configuration is unusable (storage path, listen addresses, kubeconfig).
pub fn run(args: &Args) -> anyhow::Result<()> {
    init_logging(args);
    let rt = runtime()?;
    rt.block_on(run_async(args.clone()))
}

/// Threads for blocking file I/O (artifact reads, archive writes) and git operations.
///
/// tokio's default of 512 lets a burst of artifact downloads spawn hundreds of threads that fight
/// over a few cores; `make bench` (B5) measured twice the request rate with a small pool.
pub const BLOCKING_THREADS: usize = 8;

/// The controller's runtime: one worker per core, a small blocking pool.
///
/// # Errors
/// When the OS refuses to start threads.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
}

fn init_logging(args: &Args) {
    use tracing_subscriber::EnvFilter;
    let level = match args.log_level {
        args::LogLevel::Trace => "trace",
        args::LogLevel::Debug => "debug",
        args::LogLevel::Info => "info",
        args::LogLevel::Error => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour only on a terminal; log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match args.log_encoding {
        args::LogEncoding::Json => builder.json().try_init(),
        args::LogEncoding::Console => builder.try_init(),
    };
}

async fn client(args: &Args) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig '{path}'"))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not running in a cluster")?,
    };
    Ok(Client::try_from(config)?)
}

/// A process killed while writing an artifact left its temp file: give the space back before
/// anything is written (a full volume is a common reason the last one died).
async fn remove_leftovers(storage: &storage::Storage) -> anyhow::Result<()> {
    let sweep = storage.clone();
    match tokio::task::spawn_blocking(move || sweep.remove_leftovers()).await? {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(
                count = removed.len(),
                "removed temp files of interrupted artifact writes"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "removing temp files of interrupted artifact writes failed"),
    }
    Ok(())
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    fs_err::create_dir_all(&args.storage_path)?;
    let storage =
        storage::Storage::from_flags(&args.storage_path, &args.storage_addr, &args.storage_adv_addr)?;
    let client = client(&args).await?;
    let instance = std::env::var("POD_NAME")
        .ok()
        .or_else(|| hostname::get().ok().map(|h| h.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "source-controller".into());
    let events = Events::new(client.clone(), "source-controller", &instance, &args.events_addr);
    let metrics = metrics::Metrics::new();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let metrics_listener = server::bind(&args.metrics_addr).await?;
    let health_listener = server::bind(&args.health_addr).await?;
    // Port 0 binds a free port: the addresses logged are the ones bound.
    let metrics_addr = metrics_listener.local_addr()?;
    let health_addr = health_listener.local_addr()?;
    let m_router = metrics.metrics_router();
    let h_router = metrics.health_router();
    let stop_m = stopped();
    let stop_h = stopped();
    tokio::spawn(async move {
        axum::serve(metrics_listener, m_router)
            .with_graceful_shutdown(stop_m)
            .await
    });
    tokio::spawn(async move {
        axum::serve(health_listener, h_router)
            .with_graceful_shutdown(stop_h)
            .await
    });

    // Only the leader serves artifacts, reconciles and reports ready; losing leadership ends the
    // process so a restart re-enters the election (as controller-runtime managers do).
    // Health and metrics answer before that, so a standby instance is live but not ready.
    let mut leadership = None;
    if args.enable_leader_election {
        tracing::info!(%metrics_addr, %health_addr, "waiting for leadership");
        let lease = leader::LeaseConfig {
            name: LEASE_NAME.to_string(),
            namespace: args.runtime_namespace.clone(),
            label_selector: args.watch_label_selector.clone(),
            duration: args.leader_election_lease_duration,
            renew_deadline: args.leader_election_renew_deadline,
            field_manager: "source-controller".to_string(),
        };
        leadership = Some(leader::acquire(client.clone(), lease, &instance).await?);
    }
    remove_leftovers(&storage).await?;

    let artifact_listener = server::bind(&args.storage_addr).await?;
    let storage_addr = artifact_listener.local_addr()?;
    let storage = if args.storage_adv_addr.is_empty() {
        storage::Storage::from_flags(
            storage.root(),
            &with_port(&args.storage_addr, storage_addr.port()),
            "",
        )?
    } else {
        storage
    };
    tracing::info!(
        %storage_addr,
        %metrics_addr,
        %health_addr,
        base = storage.base_url(),
        "serving artifacts"
    );
    let serve_root = storage.root().to_path_buf();
    let artifacts = tokio::spawn(server::serve(serve_root, artifact_listener, stopped()));

    let settings = reconcile::Settings {
        retention_ttl: args.artifact_retention_ttl,
        retention_records: args.artifact_retention_records,
        jitter_percent: args.interval_jitter_percentage,
        requeue_dependency: args.requeue_dependency,
        min_retry_delay: args.min_retry_delay,
        max_retry_delay: args.max_retry_delay,
    };
    let ctx = Arc::new(reconcile::Context::new(
        client.clone(),
        storage,
        events,
        metrics.clone(),
        settings,
    ));
    run_controllers(&args, &client, leadership, &metrics, ctx).await;
    tracing::info!("shutting down");
    metrics.set_ready(false);
    let _ = stop_tx.send(true);
    let _ = artifacts.await;
    Ok(())
}

/// The listen address `flag` with its port replaced by `port`, the one bound: they differ when the
/// flag asks for port 0, and the advertised URL derived from it must name the bound one.
fn with_port(flag: &str, port: u16) -> String {
    match flag.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => flag.to_string(),
    }
}

/// Runs the GitRepository and Bucket controllers until a signal or the loss of leadership.
async fn run_controllers(
    args: &Args,
    client: &Client,
    mut leadership: Option<leader::Leadership>,
    metrics: &metrics::Metrics,
    ctx: Arc<reconcile::Context>,
) {
    let all = args.watch_all_namespaces || args.runtime_namespace.is_empty();
    let api: Api<GitRepository> = if all {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &args.runtime_namespace)
    };
    let bucket_api: Api<Bucket> = if all {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &args.runtime_namespace)
    };
    let mut wc = watcher::Config::default();
    if !args.watch_label_selector.is_empty() {
        wc = wc.labels(&args.watch_label_selector);
    }
    metrics.set_ready(true);
    // One leadership watch feeds both controllers' graceful shutdown.
    let (lost_tx, lost_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        match leadership.as_mut() {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
        let _ = lost_tx.send(true);
    });
    let lost = move || {
        let mut rx = lost_rx.clone();
        async move {
            let _ = rx.wait_for(|l| *l).await;
        }
    };
    // --concurrent slots per kind, first come first served (see gitops_runtime::slots).
    let slots = || {
        let slots = Arc::new(gitops_runtime::Slots::new(args.concurrent));
        slots.close_on(lost());
        slots
    };
    let git = Controller::new(api, wc.clone()).with_config(gitops_runtime::slots::unbounded());
    let latest = git.store();
    let git = git
        .graceful_shutdown_on(lost())
        .shutdown_on_signal()
        .run(
            gitops_runtime::slots::in_slots(slots(), latest, reconcile::gitrepository::reconcile),
            error_policy::<GitRepository>,
            ctx.clone(),
        )
        .for_each(count_result(metrics.clone(), "gitrepository"));
    let buckets = Controller::new(bucket_api, wc).with_config(gitops_runtime::slots::unbounded());
    let latest = buckets.store();
    let buckets = buckets
        .graceful_shutdown_on(lost())
        .shutdown_on_signal()
        .run(
            gitops_runtime::slots::in_slots(slots(), latest, reconcile::bucket::reconcile),
            error_policy::<Bucket>,
            ctx,
        )
        .for_each(count_result(metrics.clone(), "bucket"));
    futures::join!(git, buckets);
}

/// Counts and logs each controller result; a failed reconcile is also counted by its category.
fn count_result<T, Q: std::error::Error + 'static>(
    metrics: metrics::Metrics,
    controller: &'static str,
) -> impl FnMut(Result<T, kube::runtime::controller::Error<reconcile::Error, Q>>) -> std::future::Ready<()> {
    use kube::runtime::controller::Error as Run;
    move |res| {
        match res {
            Ok(_) => metrics.count(controller, "success"),
            Err(e) => {
                metrics.count(controller, "error");
                let category = match &e {
                    Run::ReconcilerFailed(err, _) => err.category(),
                    _ => reconcile::Category::Kube,
                };
                metrics.count_failure(controller, category.as_str());
                tracing::warn!(error = %error_chain(&e), "reconcile failed");
            }
        }
        std::future::ready(())
    }
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime requires
fn error_policy<K: reconcile::SourceKind>(
    obj: Arc<K>,
    err: &reconcile::Error,
    ctx: Arc<reconcile::Context>,
) -> Action {
    let key = obj.state_key();
    tracing::warn!(object = %key, error = %error_chain(err), "reconcile error");
    Action::requeue(ctx.backoff(&key))
}

#[cfg(test)]
mod tests {
    use super::{LEASE_NAME, leader, with_port};

    #[test]
    fn the_lease_keeps_fluxs_name_and_shards_get_a_suffix() {
        assert_eq!(
            leader::lease_name(LEASE_NAME, ""),
            "source-controller-leader-election"
        );
        assert!(
            leader::lease_name(LEASE_NAME, "sharding.fluxcd.io/key=shard1")
                .starts_with("source-controller-leader-election-")
        );
    }

    #[test]
    fn the_advertised_address_names_the_bound_port() {
        assert_eq!(with_port(":0", 41234), ":41234");
        assert_eq!(with_port("127.0.0.1:0", 41234), "127.0.0.1:41234");
        assert_eq!(with_port("[::1]:0", 41234), "[::1]:41234");
        assert_eq!(with_port("127.0.0.1:9090", 9090), "127.0.0.1:9090");
    }
}
