//! The `KluctlDeployment` controller: reconciles KluctlDeployment objects with the Kluctl engine
//! (`kluctl-engine`, the crate beside this one). The `kluctl` CLI is its own crate
//! (`kluctl-controller/cli`), so neither depends on the other.
//!
//! ```text
//!  main ──► run_controller(ControllerArgs)
//!             ├─ metrics (/metrics) and probes (/healthz, /readyz)
//!             ├─ leader election (--leader-elect, Lease kluctl-controller-leader-election)
//!             └─ KluctlDeployment controller: controller::reconcile
//!                  triggers: spec changes and request annotations of KluctlDeployments,
//!                            new artifact revisions of referenced GitRepositories and Buckets,
//!                            the requeue each reconcile asks for
//! ```

pub mod args;
pub mod controller;
pub mod metrics;
pub mod source;

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use gitops_api::kluctl::v1beta1::{KluctlDeployment, SourceKind};
use gitops_api::source::v1::{Bucket, GitRepository};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt as _, reflector, watcher};
use kube::{Api, ResourceExt as _};

pub use args::ControllerArgs;
use gitops_runtime::logging::{self, LogFormat};

/// Base name of the leader election Lease.
pub const LEASE_NAME: &str = "kluctl-controller-leader-election";

/// Runs `kluctl-controller` with parsed arguments until SIGTERM/SIGINT (or the loss of
/// leadership).
///
/// # Errors
/// When the configuration is unusable (kubeconfig, listen addresses, log file).
pub fn run_controller(args: &ControllerArgs) -> anyhow::Result<()> {
    logging::init(
        match args.log_format {
            args::LogFormat::Json => LogFormat::Json,
            args::LogFormat::Console => LogFormat::Console,
        },
        &args.log_level,
        args.log_file.as_deref(),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Each reconcile runs the engine on one blocking thread; a few more serve git checkouts.
        .max_blocking_threads(usize::from(args.concurrency).max(1) * 2 + 2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args.clone()))
}

async fn client_config(args: &ControllerArgs) -> anyhow::Result<kube::Config> {
    match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("failed to read kubeconfig '{}'", path.display()))?;
            Ok(kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?)
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not running in a cluster"),
    }
}

async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    // Go's ":8080" means every interface.
    let addr = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("failed to listen on '{addr}'"))
}

#[allow(clippy::too_many_lines, reason = "the controller's start-up, in order")]
async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let base_config = client_config(&args).await?;
    let client = kube::Client::try_from(base_config.clone())?;
    let instance = std::env::var("POD_NAME")
        .ok()
        .or_else(|| hostname::get().ok().map(|h| h.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "kluctl-controller".into());
    let metrics = metrics::Metrics::new();
    let metrics_listener = bind(&args.metrics_bind_address).await?;
    let health_listener = bind(&args.health_probe_bind_address).await?;
    let metrics_addr = metrics_listener.local_addr()?;
    let health_addr = health_listener.local_addr()?;
    let (m, h) = (metrics.metrics_router(), metrics.health_router());
    tokio::spawn(async move { axum::serve(metrics_listener, m).await });
    tokio::spawn(async move { axum::serve(health_listener, h).await });
    tracing::info!(%metrics_addr, %health_addr, "serving metrics and probes");

    let mut leadership = None;
    if args.leader_elect {
        let config = gitops_runtime::leader::LeaseConfig {
            name: LEASE_NAME.to_owned(),
            namespace: args.controller_namespace.clone(),
            label_selector: args.watch_label_selector.clone(),
            duration: args.leader_election_lease_duration,
            renew_deadline: args.leader_election_renew_deadline,
            field_manager: controller::FIELD_MANAGER.to_owned(),
        };
        leadership = Some(gitops_runtime::leader::acquire(client.clone(), config, &instance).await?);
    }

    let ctx = Arc::new(controller::Context {
        client: client.clone(),
        base_config,
        events: gitops_runtime::events::Events::new(
            client.clone(),
            "kluctl-controller",
            &instance,
            &args.events_addr,
        ),
        metrics: metrics.clone(),
        settings: settings(&args)?,
        discovery: Arc::default(),
        in_sync: Arc::default(),
    });

    let api = |client: &kube::Client| -> Api<KluctlDeployment> {
        if args.namespace.is_empty() {
            Api::all(client.clone())
        } else {
            Api::namespaced(client.clone(), &args.namespace)
        }
    };
    let mut wc = watcher::Config::default();
    if !args.watch_label_selector.is_empty() {
        wc = wc.labels(&args.watch_label_selector);
    }
    let (reader, writer) = reflector::store();
    // Reconcile on spec changes, deletion and request annotations; not on our own status writes.
    let deployments = watcher(api(&client), wc)
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(request_predicate(), PredicateConfig::default());
    let git_repositories = source_watch::<GitRepository>(&client, &args.namespace);
    let buckets = source_watch::<Bucket>(&client, &args.namespace);
    let (store_g, store_b) = (reader.clone(), reader.clone());

    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        match leadership.as_mut() {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
        let _ = lost_tx.send(());
    });
    metrics.set_ready(true);
    tracing::info!(namespace = %args.namespace, concurrency = args.concurrency, "reconciling KluctlDeployments");
    Controller::for_stream(deployments, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(args.concurrency))
        .watches_stream(git_repositories, move |g: GitRepository| {
            referencing(
                &store_g,
                SourceKind::GitRepository,
                &g.namespace().unwrap_or_default(),
                &g.name_any(),
            )
        })
        .watches_stream(buckets, move |b: Bucket| {
            referencing(
                &store_b,
                SourceKind::Bucket,
                &b.namespace().unwrap_or_default(),
                &b.name_any(),
            )
        })
        .graceful_shutdown_on(async move {
            let _ = lost_rx.await;
        })
        .shutdown_on_signal()
        .run(controller::reconcile, controller::error_policy, ctx)
        .for_each(|_| std::future::ready(()))
        .await;
    metrics.set_ready(false);
    tracing::info!("shutting down");
    Ok(())
}

/// The reconcile settings of the flags (creates the cache directory).
fn settings(args: &ControllerArgs) -> anyhow::Result<controller::Settings> {
    let cache_dir = args.cache_dir();
    fs_err::create_dir_all(&cache_dir)
        .with_context(|| format!("failed to create the cache directory '{}'", cache_dir.display()))?;
    Ok(controller::Settings {
        default_service_account: args.default_service_account.clone(),
        dry_run: args.dry_run,
        no_cross_namespace_refs: args.no_cross_namespace_refs,
        cache_dir,
        results: controller::project::ResultStore {
            namespace: args.command_result_namespace.clone(),
            keep_command: args.keep_command_results_count,
            keep_validate: args.keep_validate_results_count,
        },
        artifact_options: source::artifact::FetchOptions::from_env(),
    })
}

/// Request annotation values last seen per KluctlDeployment (namespace, name), so that the
/// controller's own removal of a handled request's annotation does not look like a change.
#[derive(Debug, Default)]
struct SeenRequests(std::sync::Mutex<std::collections::HashMap<(String, String), RequestValues>>);

/// One value per request annotation kind.
type RequestValues = Vec<Option<String>>;

/// [`trigger_hash`] with its own memory of request values, for the KluctlDeployment watch.
fn request_predicate() -> impl Fn(&KluctlDeployment) -> Option<u64> {
    let seen = SeenRequests::default();
    move |kd| trigger_hash(kd, &seen)
}

/// What makes a KluctlDeployment worth a reconcile: its generation, whether it is being
/// deleted, and its request annotations (added or changed; removal does not count: a removed
/// annotation keeps hashing as its last value, as Flux's `ReconcileRequestedPredicate` ignores
/// removals; without that every handled request caused a second full reconcile).
#[allow(clippy::unnecessary_wraps)] // the predicate signature kube-runtime requires
fn trigger_hash(kd: &KluctlDeployment, seen: &SeenRequests) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kd.metadata.generation.hash(&mut h);
    kd.metadata.deletion_timestamp.is_some().hash(&mut h);
    let kinds: Vec<_> = controller::requests::RequestKind::COMMANDS
        .into_iter()
        .chain([controller::requests::RequestKind::Reconcile])
        .collect();
    let key = (kd.namespace().unwrap_or_default(), kd.name_any());
    let mut seen = seen.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let values = seen.entry(key).or_insert_with(|| vec![None; kinds.len()]);
    for (kind, last) in kinds.iter().zip(values.iter_mut()) {
        if let Some(v) = kd.annotations().get(kind.annotation()) {
            *last = Some(v.clone());
        }
        last.hash(&mut h);
    }
    Some(h.finish())
}

/// A watch of a source kind that yields an object only when its artifact revision changes.
fn source_watch<K>(
    client: &kube::Client,
    namespace: &str,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K: ArtifactRevision,
{
    let api: Api<K> = if namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    };
    watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(
            |o: &K| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                o.artifact_revision().hash(&mut h);
                Some(h.finish())
            },
            PredicateConfig::default(),
        )
}

/// The artifact revision of a source object.
trait ArtifactRevision {
    fn artifact_revision(&self) -> Option<String>;
}

impl ArtifactRevision for GitRepository {
    fn artifact_revision(&self) -> Option<String> {
        self.status.as_ref()?.artifact.as_ref().map(|a| a.digest.clone())
    }
}

impl ArtifactRevision for Bucket {
    fn artifact_revision(&self) -> Option<String> {
        self.status.as_ref()?.artifact.as_ref().map(|a| a.digest.clone())
    }
}

/// The KluctlDeployments whose `sourceRef` names this source.
fn referencing(
    store: &Store<KluctlDeployment>,
    kind: SourceKind,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<KluctlDeployment>> {
    store
        .state()
        .iter()
        .filter(|kd| {
            kd.spec.source_ref.as_ref().is_some_and(|r| {
                let own = kd.namespace().unwrap_or_default();
                let ns = r.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(&own);
                r.kind == kind && r.name == name && ns == namespace
            })
        })
        .map(|kd| ObjectRef::from_obj(kd.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kd(annotations: &[(&str, &str)]) -> KluctlDeployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
            "metadata": {"name": "kd", "namespace": "ns", "generation": 1,
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"interval": "5m", "target": "t", "source": {"git": {"url": "https://example.com/r.git"}}},
        }))
        .expect("a KluctlDeployment")
    }

    #[test]
    fn a_new_request_triggers_and_removing_the_handled_one_does_not() {
        let seen = SeenRequests::default();
        let plain = trigger_hash(&kd(&[]), &seen);
        let requested = trigger_hash(&kd(&[("kluctl.io/request-reconcile", "1")]), &seen);
        assert_ne!(plain, requested, "a request triggers");
        let removed = trigger_hash(&kd(&[]), &seen);
        assert_eq!(removed, requested, "the controller's removal of it does not");
        let again = trigger_hash(&kd(&[("kluctl.io/request-reconcile", "2")]), &seen);
        assert_ne!(again, requested, "the next request triggers");
    }
}
