//! The dispatcher: takes Flux events (from the HTTP intake or in-process), drops duplicates,
//! finds the Alerts that select them and sends them through their Providers.
//!
//! ```text
//!  intake(event) ── sync, never blocks ──► cleanup_metadata ─► dedup (429) ─► strip token
//!                                          └─► bounded queue (full: 503 / dropped with a warning)
//!  worker ─► per Alert in the reflector store: suspend, sources (matchLabels: one metadata GET
//!            per event), severity, inclusion/exclusion, cross-namespace, Provider (store),
//!            provider_accepts, merge_metadata
//!         └─► spawn send: Destination (cached per Provider generation; the Provider reconciler
//!             resolves it again every minute for Secret changes) .send()
//!             ─► Alert and Provider status (Recorder), Warning event on the Alert on failure
//! ```
//!
//! Sends never block the worker or a reconcile: each runs in its own task, bounded per Provider
//! (a hanging webhook holds at most [`SENDS_PER_PROVIDER`] connections) and in total
//! ([`MAX_PENDING`] tasks; beyond it events are dropped with a warning), each bounded in time by
//! the Provider's timeout inside `Destination::send`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitops_api::notification::v1beta3::{Alert, Provider};
use gitops_runtime::{EventSink, Events, FluxEvent, Severity};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource as _, ResourceExt as _};
use tokio::sync::{Semaphore, mpsc};

use super::dedup::RateLimiter;
use super::matching::{self, Filters, SourceMatch};
use super::providers::Destination;
use super::status::{Kind, Recorder};

/// Events waiting for the worker.
pub const QUEUE: usize = 16_384;
/// Concurrent sends through one Provider.
pub const SENDS_PER_PROVIDER: usize = 32;
/// Send tasks alive at once (running or waiting for their Provider's slot).
pub const MAX_PENDING: usize = 10_000;

/// Dispatcher settings from the flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--no-cross-namespace-refs`: an Alert only takes events of objects in its namespace.
    pub no_cross_namespace_refs: bool,
    /// `--rate-limit-interval`: one delivery per event key per interval.
    pub rate_limit_interval: Duration,
}

/// What the intake answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Intake {
    /// Queued for matching (HTTP 202).
    Accepted,
    /// Seen within the rate-limit interval (HTTP 429).
    Duplicate,
    /// The queue is full (HTTP 503).
    Overloaded,
}

/// Takes events and delivers them; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    alerts: Store<Alert>,
    providers: Store<Provider>,
    limiter: Mutex<RateLimiter>,
    tx: mpsc::Sender<FluxEvent>,
    settings: Settings,
    destinations: Mutex<HashMap<(String, String), Cached>>,
    /// Per Alert (namespace, name): the generation compiled and its filters.
    filters: Mutex<HashMap<(String, String), GenerationFilters>>,
    pending: AtomicUsize,
    status: Recorder,
    events: Events,
}

/// An Alert's filters, or why they do not compile.
type CompiledFilters = Arc<Result<Filters, String>>;
type GenerationFilters = (Option<i64>, CompiledFilters);

struct Cached {
    /// `metadata.generation` of the Provider it was resolved from (status writes do not
    /// change it; a spec change does).
    generation: Option<i64>,
    destination: Arc<Destination>,
    slots: Arc<Semaphore>,
}

impl Dispatcher {
    /// A dispatcher over the Alert and Provider stores; returns it and the worker to run.
    pub fn new(
        client: kube::Client,
        alerts: Store<Alert>,
        providers: Store<Provider>,
        status: Recorder,
        events: Events,
        settings: Settings,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dispatcher = Dispatcher {
            inner: Arc::new(Inner {
                client,
                alerts,
                providers,
                limiter: Mutex::new(RateLimiter::new(settings.rate_limit_interval)),
                tx,
                settings,
                destinations: Mutex::default(),
                filters: Mutex::default(),
                pending: AtomicUsize::new(0),
                status,
                events,
            }),
        };
        let worker = dispatcher.clone().run(rx);
        (dispatcher, worker)
    }

    /// Takes one event: drops `trace`, cleans its metadata, drops duplicates, queues the rest.
    pub fn intake(&self, mut event: FluxEvent) -> Intake {
        if event.severity == Severity::Trace {
            return Intake::Accepted;
        }
        matching::cleanup_metadata(&mut event);
        let key = matching::dedup_key(&event);
        let fresh = self
            .inner
            .limiter
            .lock()
            .map_or(true, |mut l| l.allow(&key, Instant::now()));
        if !fresh {
            tracing::debug!(reason = %event.reason, "discarding duplicate event");
            return Intake::Duplicate;
        }
        matching::strip_token(&mut event);
        match self.inner.tx.try_send(event) {
            Ok(()) => Intake::Accepted,
            Err(mpsc::error::TrySendError::Full(e)) => {
                tracing::warn!(reason = %e.reason, "event queue full: event dropped");
                Intake::Overloaded
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Intake::Overloaded,
        }
    }

    /// Remembers a Provider resolved by its reconciler, so the first event need not read Secrets.
    pub fn provider_resolved(&self, provider: &Provider, destination: Destination) {
        self.cache_destination(provider, Arc::new(destination));
    }

    /// The compiled filters of an Alert (cached per generation).
    pub fn filters(&self, alert: &Alert) -> CompiledFilters {
        let key = (alert.namespace().unwrap_or_default(), alert.name_any());
        let generation = alert.meta().generation;
        let Ok(mut cache) = self.inner.filters.lock() else {
            return Arc::new(Filters::compile(&alert.spec));
        };
        if let Some((g, f)) = cache.get(&key)
            && *g == generation
        {
            return f.clone();
        }
        let f = Arc::new(Filters::compile(&alert.spec));
        cache.insert(key, (generation, f.clone()));
        f
    }

    async fn run(self, mut rx: mpsc::Receiver<FluxEvent>) {
        // Events that arrive before the first list of Alerts wait in the queue, not dropped.
        let _ = self.inner.alerts.wait_until_ready().await;
        let _ = self.inner.providers.wait_until_ready().await;
        while let Some(event) = rx.recv().await {
            self.route(event).await;
        }
    }

    async fn route(&self, event: FluxEvent) {
        let mut labels: Option<Result<BTreeMap<String, String>, String>> = None;
        let event_ns = event.involved_object.namespace.clone().unwrap_or_default();
        let mut matched = 0usize;
        for alert in self.inner.alerts.state() {
            if alert.spec.suspend {
                continue;
            }
            let alert_ns = alert.namespace().unwrap_or_default();
            let mut selected = false;
            for source in &alert.spec.event_sources {
                match matching::source_match(&alert_ns, source, &event) {
                    SourceMatch::No => {}
                    SourceMatch::Yes => selected = true,
                    SourceMatch::IfLabels(selector) => {
                        if labels.is_none() {
                            labels = Some(self.labels_of(&event).await);
                        }
                        match labels.as_ref() {
                            Some(Ok(l)) => selected = matching::labels_match(&selector, l),
                            Some(Err(e)) => {
                                self.alert_event(&alert, "SourceFetchFailed", e).await;
                            }
                            None => {}
                        }
                    }
                }
                if selected {
                    break;
                }
            }
            if !selected || !matching::severity_matches(alert.spec.event_severity, event.severity) {
                continue;
            }
            match self.filters(&alert).as_ref() {
                Ok(f) if f.passes(&event.message) => {}
                Ok(_) => continue,
                Err(e) => {
                    self.alert_event(&alert, "InvalidConfig", e).await;
                    continue;
                }
            }
            if self.inner.settings.no_cross_namespace_refs && event_ns != alert_ns {
                let message = format!(
                    "Alert '{alert_ns}/{}' selects an event of '{event_ns}/{}', but cross-namespace references are disabled (--no-cross-namespace-refs)",
                    alert.name_any(),
                    event.involved_object.name.as_deref().unwrap_or_default()
                );
                // The Alert's configuration check reports this in Ready (InvalidConfig).
                self.alert_event(&alert, super::status::DISPATCH_FAILED, &message)
                    .await;
                continue;
            }
            let provider_ref = ObjectRef::<Provider>::new(&alert.spec.provider_ref.name).within(&alert_ns);
            let Some(provider) = self.inner.providers.get(&provider_ref) else {
                let message = format!(
                    "Provider '{alert_ns}/{}' of Alert '{alert_ns}/{}' (spec.providerRef.name) not found",
                    alert.spec.provider_ref.name,
                    alert.name_any()
                );
                // The Alert's configuration check reports this in Ready (ProviderNotFound).
                self.alert_event(&alert, super::status::DISPATCH_FAILED, &message)
                    .await;
                continue;
            };
            if provider.spec.suspend || !matching::provider_accepts(provider.spec.provider_type, &event) {
                continue;
            }
            let (metadata, conflicts) = matching::merge_metadata(&event, &alert.spec);
            if !conflicts.is_empty() {
                let message = format!(
                    "metadata keys {conflicts:?} of the event are overridden by the Alert's or the controller's values"
                );
                tracing::info!(alert = %alert.name_any(), namespace = %alert_ns, "{message}");
                self.alert_event(&alert, "MetadataAppendFailed", &message).await;
            }
            let mut out = event.clone();
            out.metadata = metadata;
            matched += 1;
            self.spawn_send(alert, provider, out);
        }
        if matched == 0 {
            tracing::debug!(reason = %event.reason, "discarding event, no alerts found");
        }
    }

    fn spawn_send(&self, alert: Arc<Alert>, provider: Arc<Provider>, event: FluxEvent) {
        if self.inner.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            self.inner.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                alert = %alert.name_any(), namespace = %alert.namespace().unwrap_or_default(),
                "too many notifications in flight: event dropped"
            );
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.send(&alert, &provider, &event).await;
            this.inner.pending.fetch_sub(1, Ordering::AcqRel);
        });
    }

    async fn send(&self, alert: &Alert, provider: &Provider, event: &FluxEvent) {
        let alert_key = super::status::key_of(Kind::Alert, alert);
        let provider_key = super::status::key_of(Kind::Provider, provider);
        let (destination, slots) = match self.destination(provider).await {
            Ok(d) => d,
            Err(message) => {
                self.inner.status.dispatched(alert_key, Err(message.clone()));
                self.alert_event(alert, super::status::DISPATCH_FAILED, &message)
                    .await;
                return;
            }
        };
        let Ok(_slot) = slots.acquire_owned().await else {
            return;
        };
        match destination.send(event).await {
            Ok(sent) => {
                if let super::providers::Sent::Skipped(why) = sent {
                    tracing::debug!(alert = %alert.name_any(), reason = %event.reason, "not sent: {why}");
                }
                self.inner.status.dispatched(alert_key, Ok(()));
                self.inner.status.dispatched(provider_key, Ok(()));
            }
            Err(e) => {
                let message = format!(
                    "failed to send the event to Provider '{}/{}': {e}",
                    provider.namespace().unwrap_or_default(),
                    provider.name_any()
                );
                tracing::error!(
                    alert = %alert.name_any(), namespace = %alert.namespace().unwrap_or_default(),
                    reason = %event.reason, "{message}"
                );
                self.inner.status.dispatched(alert_key, Err(message.clone()));
                self.inner.status.dispatched(provider_key, Err(message.clone()));
                self.alert_event(alert, super::status::DISPATCH_FAILED, &message)
                    .await;
            }
        }
    }

    async fn destination(&self, provider: &Provider) -> Result<(Arc<Destination>, Arc<Semaphore>), String> {
        let key = (provider.namespace().unwrap_or_default(), provider.name_any());
        let generation = provider.metadata.generation;
        if let Ok(cache) = self.inner.destinations.lock()
            && let Some(c) = cache.get(&key)
            && c.generation == generation
        {
            return Ok((c.destination.clone(), c.slots.clone()));
        }
        let destination = Destination::resolve(&self.inner.client, provider)
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.cache_destination(provider, Arc::new(destination)))
    }

    fn cache_destination(
        &self,
        provider: &Provider,
        destination: Arc<Destination>,
    ) -> (Arc<Destination>, Arc<Semaphore>) {
        let key = (provider.namespace().unwrap_or_default(), provider.name_any());
        let generation = provider.metadata.generation;
        let Ok(mut cache) = self.inner.destinations.lock() else {
            return (destination, Arc::new(Semaphore::new(SENDS_PER_PROVIDER)));
        };
        // Keep the slots across re-resolves: the bound is per Provider, not per resolve.
        let slots = cache.get(&key).map_or_else(
            || Arc::new(Semaphore::new(SENDS_PER_PROVIDER)),
            |c| c.slots.clone(),
        );
        cache.insert(
            key,
            Cached {
                generation,
                destination: destination.clone(),
                slots: slots.clone(),
            },
        );
        (destination, slots)
    }

    /// The labels of the event's object (for `name: '*'` with `matchLabels`).
    async fn labels_of(&self, event: &FluxEvent) -> Result<BTreeMap<String, String>, String> {
        let obj = &event.involved_object;
        let api_version = obj.api_version.as_deref().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = obj.kind.as_deref().unwrap_or_default();
        let name = obj.name.as_deref().unwrap_or_default();
        let namespace = obj.namespace.as_deref().unwrap_or_default();
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(self.inner.client.clone(), namespace, &resource);
        api.get_metadata(name)
            .await
            .map(|m| m.metadata.labels.unwrap_or_default())
            .map_err(|e| format!("failed to read the labels of {kind} '{namespace}/{name}': {e}"))
    }

    async fn alert_event(&self, alert: &Alert, reason: &str, message: &str) {
        self.inner
            .events
            .emit(alert, Severity::Error, reason, message, BTreeMap::new())
            .await;
    }
}

impl EventSink for Dispatcher {
    fn accept(&self, event: FluxEvent) {
        let _ = self.intake(event);
    }
}
