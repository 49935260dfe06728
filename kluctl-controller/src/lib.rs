//! The `KluctlDeployment` controller: reconciles KluctlDeployment objects with the Kluctl engine
//! (`kluctl-engine`, the crate beside this one). The `kluctl` CLI is its own crate
//! (`kluctl-controller/cli`), so neither depends on the other.
//!
//! ```text
//!  main ──► run_controller(ControllerArgs)
//!             ├─ metrics (/metrics) and probes (/healthz, /readyz)
//!             ├─ Receiver webhooks (--receiver-listen-addr): notify::receiver::run
//!             ├─ leader election (--leader-elect, Lease kluctl-controller-leader-election)
//!             └─ KluctlDeployment controller: controller::reconcile
//!                  triggers: spec changes and request annotations of KluctlDeployments,
//!                            new artifact revisions of referenced GitRepositories and Buckets
//!                            and their deletion,
//!                            the requeue each reconcile asks for
//!             └─ legacy flux.kluctl.io KluctlDeployment controller: controller::legacy::run
//!                  (same process, same Context, run concurrently with the one above)
//! ```

pub mod args;
pub mod controller;
pub mod metrics;
pub mod notify;
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

async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let base_config = client_config(&args).await?;
    let client = kube::Client::try_from(base_config.clone())?;
    let instance = std::env::var("POD_NAME")
        .ok()
        .or_else(|| hostname::get().ok().map(|h| h.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "kluctl-controller".into());
    let metrics = metrics::Metrics::new();
    let events_listener = serve_endpoints(&args, &metrics).await?;
    serve_receivers(&client, &args).await?;

    let leadership = if args.leader_elect {
        Some(leader(&client, &args, &instance).await?)
    } else {
        None
    };

    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut leadership = leadership;
    tokio::spawn(async move {
        match leadership.as_mut() {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
        let _ = lost_tx.send(());
    });
    // Every controller stops when leadership is lost.
    let lost = futures::FutureExt::shared(async move {
        let _ = lost_rx.await;
    });

    let (dispatcher, dispatch) = notifications(&client, &args, &instance, events_listener, lost.clone());
    let mut events = gitops_runtime::events::Events::new(
        client.clone(),
        "kluctl-controller",
        &instance,
        &args.events_addr,
    );
    if let Some(dispatcher) = dispatcher {
        // Our own events reach our Alerts without an HTTP round trip.
        events = events.with_sink(Arc::new(dispatcher));
    }

    let ctx = Arc::new(controller::Context {
        client: client.clone(),
        base_config,
        events,
        metrics: metrics.clone(),
        sources: source::cache::SourceCache::new(args.cache_dir().join("sources"), args.cache_max_size),
        settings: settings(&args)?,
        discovery: Arc::default(),
        last_gc: std::sync::Mutex::new(std::time::Instant::now()),
        in_sync: Arc::default(),
    });

    let api = |client: &kube::Client| -> Api<KluctlDeployment> {
        if args.namespace.is_empty() {
            Api::all(client.clone())
        } else {
            Api::namespaced(client.clone(), &args.namespace)
        }
    };
    let (reader, writer) = reflector::store();
    // Reconcile on spec changes, deletion and request annotations; not on our own status writes.
    let deployments = watcher(api(&client), watch_config(&args.watch_label_selector))
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash(), PredicateConfig::default());
    let git_repositories = source_watch::<GitRepository>(&client, &args.namespace);
    let buckets = source_watch::<Bucket>(&client, &args.namespace);
    let (store_g, store_b, latest) = (reader.clone(), reader.clone(), reader.clone());
    // Both API versions share the --concurrency slots.
    let slots = Arc::new(gitops_runtime::Slots::new(args.concurrency));
    slots.close_on(lost.clone());
    let legacy = controller::legacy::run(ctx.clone(), &args, Arc::clone(&slots), lost.clone());
    metrics.set_ready(true);
    tracing::info!(namespace = %args.namespace, concurrency = args.concurrency, "reconciling KluctlDeployments");
    let v1beta1 = Controller::for_stream(deployments, reader)
        .with_config(gitops_runtime::slots::unbounded())
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
        .graceful_shutdown_on(lost)
        .shutdown_on_signal()
        .run(
            gitops_runtime::slots::in_slots(slots, latest, controller::reconcile),
            controller::error_policy,
            ctx,
        )
        .for_each(|_| std::future::ready(()));
    futures::join!(v1beta1, legacy, dispatch);
    metrics.set_ready(false);
    tracing::info!("shutting down");
    Ok(())
}

/// Serves Receiver webhooks on `--receiver-listen-addr` (unless empty), with their reconciler.
async fn serve_receivers(client: &kube::Client, args: &ControllerArgs) -> anyhow::Result<()> {
    if args.receiver_listen_addr.is_empty() {
        return Ok(());
    }
    let listener = bind(&args.receiver_listen_addr).await?;
    let receiver_addr = listener.local_addr()?;
    let settings = notify::receiver::Settings {
        namespace: args.namespace.clone(),
        no_cross_namespace_refs: args.no_cross_namespace_refs,
    };
    tokio::spawn(notify::receiver::run(client.clone(), listener, settings));
    tracing::info!(receiver_addr = %receiver_addr, "serving receiver webhooks");
    Ok(())
}

/// Serves metrics and probes, binds the event endpoint (served once the dispatcher runs), and
/// logs the bound addresses (tests start the controller on port 0 and read them).
async fn serve_endpoints(
    args: &ControllerArgs,
    metrics: &metrics::Metrics,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let metrics_listener = bind(&args.metrics_bind_address).await?;
    let health_listener = bind(&args.health_probe_bind_address).await?;
    let metrics_addr = metrics_listener.local_addr()?;
    let health_addr = health_listener.local_addr()?;
    let events_listener = if args.notification_dispatch && !args.events_listen_addr.is_empty() {
        Some(bind(&args.events_listen_addr).await?)
    } else {
        None
    };
    let events_addr = events_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (m, h) = (metrics.metrics_router(), metrics.health_router());
    tokio::spawn(async move { axum::serve(metrics_listener, m).await });
    tokio::spawn(async move { axum::serve(health_listener, h).await });
    tracing::info!(%metrics_addr, %health_addr, %events_addr, "serving metrics and probes");
    Ok(events_listener)
}

/// The notification dispatcher (Alert and Provider controllers, event endpoint) when
/// `--notification-dispatch`, and the future that runs it until `shutdown`.
fn notifications<S>(
    client: &kube::Client,
    args: &ControllerArgs,
    instance: &str,
    events_listener: Option<tokio::net::TcpListener>,
    shutdown: S,
) -> (
    Option<notify::dispatch::Dispatcher>,
    futures::future::BoxFuture<'static, ()>,
)
where
    S: Future<Output = ()> + Send + Sync + Clone + 'static,
{
    if !args.notification_dispatch {
        return (None, Box::pin(std::future::ready(())));
    }
    let n = notify::reconcile::start(
        client,
        &args.namespace,
        notify::dispatch::Settings {
            no_cross_namespace_refs: args.no_cross_namespace_refs,
            rate_limit_interval: args.rate_limit_interval,
        },
        // Events about Alerts go to Kubernetes only: forwarding them would loop.
        gitops_runtime::events::Events::new(client.clone(), "kluctl-controller", instance, ""),
        shutdown,
    );
    if let Some(listener) = events_listener {
        let router = notify::intake::router(n.dispatcher.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    (Some(n.dispatcher), n.run)
}

/// Waits for the `kluctl-controller-leader-election` Lease.
async fn leader(
    client: &kube::Client,
    args: &ControllerArgs,
    instance: &str,
) -> anyhow::Result<gitops_runtime::leader::Leadership> {
    let config = gitops_runtime::leader::LeaseConfig {
        name: LEASE_NAME.to_owned(),
        namespace: args.controller_namespace.clone(),
        label_selector: args.watch_label_selector.clone(),
        duration: args.leader_election_lease_duration,
        renew_deadline: args.leader_election_renew_deadline,
        field_manager: controller::FIELD_MANAGER.to_owned(),
    };
    gitops_runtime::leader::acquire(client.clone(), config, instance).await
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

/// What makes a KluctlDeployment worth a reconcile: its generation, whether it is being
/// deleted, and its request annotations when added or changed. Removing one (the controller
/// does so when it takes the request) must not trigger another reconcile, so the last value
/// seen per object stands in for a removed annotation.
fn trigger_hash() -> impl Fn(&KluctlDeployment) -> Option<u64> + Send + Sync + 'static {
    let seen: std::sync::Mutex<std::collections::HashMap<String, Vec<Option<String>>>> =
        std::sync::Mutex::default();
    move |kd: &KluctlDeployment| {
        let kinds = controller::requests::RequestKind::COMMANDS
            .into_iter()
            .chain([controller::requests::RequestKind::Reconcile]);
        let key = kd.uid().unwrap_or_else(|| kd.name_any());
        let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let values = seen.entry(key.clone()).or_insert_with(|| vec![None; 5]);
        for (slot, kind) in values.iter_mut().zip(kinds) {
            if let Some(v) = kd.annotations().get(kind.annotation()) {
                slot.clone_from(&Some(v.clone()));
            }
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        kd.metadata.generation.hash(&mut h);
        kd.metadata.deletion_timestamp.is_some().hash(&mut h);
        values.hash(&mut h);
        if kd.metadata.deletion_timestamp.is_some() {
            seen.remove(&key);
        }
        Some(h.finish())
    }
}

/// A watch of a source kind that yields an object when its artifact revision changes and when
/// it is deleted. A referencing KluctlDeployment must hear of the deletion (Flux's consumers
/// do): its next reconcile reports the missing source instead of waiting for its interval.
/// (`predicate_filter` cannot do this: a deleted object carries the revision it had, so a
/// revision predicate drops its delete event.)
/// The KluctlDeployment watch: every object, or those matching `--watch-label-selector`.
pub(crate) fn watch_config(label_selector: &str) -> watcher::Config {
    let wc = watcher::Config::default();
    if label_selector.is_empty() {
        wc
    } else {
        wc.labels(label_selector)
    }
}

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
    let mut triggers = SourceTriggers::default();
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| std::future::ready(triggers.filter(event)))
}

/// The last artifact revision seen per source object (by uid), to pass on only the events that
/// should reconcile the KluctlDeployments referencing it.
#[derive(Default)]
struct SourceTriggers {
    revisions: std::collections::HashMap<String, Option<String>>,
}

impl SourceTriggers {
    /// The object of `event` if it is new, has a new artifact revision, or was deleted.
    fn filter<K>(
        &mut self,
        event: Result<watcher::Event<K>, watcher::Error>,
    ) -> Option<Result<K, watcher::Error>>
    where
        K: kube::Resource + ArtifactRevision,
    {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let key = o.uid().unwrap_or_else(|| o.name_any());
                let revision = o.artifact_revision();
                let changed = self.revisions.get(&key) != Some(&revision);
                self.revisions.insert(key, revision);
                changed.then_some(Ok(o))
            }
            Ok(watcher::Event::Delete(o)) => {
                self.revisions.remove(&o.uid().unwrap_or_else(|| o.name_any()));
                Some(Ok(o))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        }
    }
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

    fn kd(generation: i64, annotations: &[(&str, &str)]) -> KluctlDeployment {
        let mut kd: KluctlDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
            "metadata": {"name": "a", "namespace": "n", "uid": "u1", "generation": generation},
            "spec": {"interval": "1m", "source": {"git": {"url": "u"}}}
        }))
        .unwrap();
        kd.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        kd
    }

    #[test]
    fn requests_trigger_when_set_but_not_when_the_controller_removes_them() {
        let hash = trigger_hash();
        let plain = hash(&kd(1, &[])).unwrap();
        let requested = hash(&kd(1, &[("kluctl.io/request-deploy", "t1")])).unwrap();
        assert_ne!(plain, requested, "a new request triggers");
        assert_eq!(hash(&kd(1, &[])), Some(requested), "its removal does not");
        assert_ne!(
            hash(&kd(1, &[("kluctl.io/request-deploy", "t2")])),
            Some(requested),
            "a newer one does"
        );
        assert_ne!(hash(&kd(2, &[])), Some(requested), "a spec change does");
        assert_eq!(
            hash(&kd(2, &[("other", "x")])),
            hash(&kd(2, &[])),
            "other annotations do not"
        );
    }

    fn repo(uid: &str, digest: Option<&str>) -> GitRepository {
        let mut v = serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "r", "namespace": "n", "uid": uid},
            "spec": {"interval": "1m", "url": "http://h/r.git"}
        });
        if let Some(d) = digest {
            v["status"] = serde_json::json!({"artifact": {"digest": d, "lastUpdateTime": "2026-01-01T00:00:00Z",
                "path": "p", "revision": "main@sha1:0", "url": "http://s/p"}});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn sources_trigger_on_new_revisions_and_on_deletion() {
        let mut t = SourceTriggers::default();
        let mut passes = |e: watcher::Event<GitRepository>| t.filter(Ok(e)).is_some();
        assert!(passes(watcher::Event::InitApply(repo("u1", None))), "first sight");
        assert!(
            !passes(watcher::Event::Apply(repo("u1", None))),
            "same (no) artifact"
        );
        assert!(
            passes(watcher::Event::Apply(repo("u1", Some("sha256:a")))),
            "new artifact"
        );
        assert!(
            !passes(watcher::Event::Apply(repo("u1", Some("sha256:a")))),
            "status-only update"
        );
        assert!(!passes(watcher::Event::Init), "no object");
        assert!(
            passes(watcher::Event::Delete(repo("u1", Some("sha256:a")))),
            "deleted, same revision"
        );
        assert!(
            passes(watcher::Event::Apply(repo("u2", Some("sha256:a")))),
            "recreated"
        );
    }
}
