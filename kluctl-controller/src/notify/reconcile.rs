//! Alert and Provider reconcilers: check each object's configuration once per change and record
//! it in the dispatch status (Ready), so a typo shows before the first event needs it.
//!
//! - Alert: `inclusionList`/`exclusionList` compile, `providerRef` names a Provider, and with
//!   `--no-cross-namespace-refs` no `eventSources[].namespace` leaves the Alert's namespace.
//!   Re-checked when a Provider of its namespace appears, changes or goes.
//! - Provider: its type is supported and its Secrets resolve (`Destination::resolve`); re-checked
//!   every [`PROVIDER_RECHECK`] since Secret changes do not touch the Provider. The resolved
//!   destination is handed to the dispatcher.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use gitops_api::meta::Condition;
use gitops_api::notification::v1beta3::{Alert, DispatchStatus, Provider};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt as _};

use super::dispatch::{Dispatcher, Settings};
use super::providers::Destination;
use super::status::{INVALID_CONFIG, Kind, PROVIDER_NOT_FOUND, Problem, Recorder, key_of};

/// How often a Provider's Secrets are read again.
pub const PROVIDER_RECHECK: Duration = Duration::from_secs(60);

/// What both reconcilers share.
pub struct Ctx {
    /// The dispatcher (filters cache, destinations).
    pub dispatcher: Dispatcher,
    /// The status writer.
    pub status: Recorder,
    /// Providers seen by the watch.
    pub providers: Store<Provider>,
    /// Settings from the flags.
    pub settings: Settings,
    /// The client Provider Secrets are read with.
    pub client: kube::Client,
}

/// Never fails: problems are recorded in status.
#[derive(Debug, thiserror::Error)]
#[error("unreachable")]
pub struct Never;

/// The conditions already on an Alert or Provider.
fn existing_conditions(status: Option<&DispatchStatus>) -> &[Condition] {
    status.map_or(&[], |s| s.conditions.as_slice())
}

/// The configuration check of an Alert.
pub fn check_alert(alert: &Alert, ctx: &Ctx) -> Result<(), Problem> {
    let ns = alert.namespace().unwrap_or_default();
    if let Err(message) = ctx.dispatcher.filters(alert).as_ref() {
        return Err(Problem {
            reason: INVALID_CONFIG.to_owned(),
            message: format!("Alert '{ns}/{}': {message}", alert.name_any()),
        });
    }
    if ctx.settings.no_cross_namespace_refs
        && let Some((i, s)) = alert
            .spec
            .event_sources
            .iter()
            .enumerate()
            .find(|(_, s)| !s.namespace.is_empty() && s.namespace != ns)
    {
        return Err(Problem {
            reason: INVALID_CONFIG.to_owned(),
            message: format!(
                "Alert '{ns}/{}': spec.eventSources[{i}].namespace '{}' is another namespace, and cross-namespace references are disabled (--no-cross-namespace-refs)",
                alert.name_any(),
                s.namespace
            ),
        });
    }
    let provider = ObjectRef::<Provider>::new(&alert.spec.provider_ref.name).within(&ns);
    if ctx.providers.get(&provider).is_none() {
        return Err(Problem {
            reason: PROVIDER_NOT_FOUND.to_owned(),
            message: format!(
                "Alert '{ns}/{}': spec.providerRef.name: Provider '{}' not found in namespace '{ns}'",
                alert.name_any(),
                alert.spec.provider_ref.name
            ),
        });
    }
    Ok(())
}

async fn reconcile_alert(alert: Arc<Alert>, ctx: Arc<Ctx>) -> Result<Action, Never> {
    let check = check_alert(&alert, &ctx);
    ctx.status.configured(
        key_of(Kind::Alert, alert.as_ref()),
        alert.metadata.generation,
        existing_conditions(alert.status.as_ref()),
        check,
    );
    Ok(Action::await_change())
}

async fn reconcile_provider(provider: Arc<Provider>, ctx: Arc<Ctx>) -> Result<Action, Never> {
    let check = match Destination::resolve(&ctx.client, &provider).await {
        Ok(destination) => {
            ctx.dispatcher.provider_resolved(&provider, destination);
            Ok(())
        }
        Err(e) => Err(Problem {
            reason: e.reason().to_owned(),
            message: e.to_string(),
        }),
    };
    ctx.status.configured(
        key_of(Kind::Provider, provider.as_ref()),
        provider.metadata.generation,
        existing_conditions(provider.status.as_ref()),
        check,
    );
    Ok(Action::requeue(PROVIDER_RECHECK))
}

fn error_policy<K>(_: Arc<K>, _: &Never, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(60))
}

/// The Alert and Provider controllers and the dispatcher over their stores.
pub struct Notifications {
    /// Takes events (HTTP intake and in-process sink).
    pub dispatcher: Dispatcher,
    /// Runs the dispatcher worker and both controllers until `shutdown` resolves.
    pub run: futures::future::BoxFuture<'static, ()>,
}

/// Builds the notification side of kluctl-controller, watching `namespace` (all when empty). Its
/// future ends with `shutdown` or on SIGTERM/SIGINT, like the KluctlDeployment controllers.
pub fn start<S>(
    client: &kube::Client,
    namespace: &str,
    settings: Settings,
    events: gitops_runtime::Events,
    shutdown: S,
) -> Notifications
where
    S: Future<Output = ()> + Send + Sync + Clone + 'static,
{
    fn api<K>(client: &kube::Client, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        if namespace.is_empty() {
            Api::all(client.clone())
        } else {
            Api::namespaced(client.clone(), namespace)
        }
    }
    let providers_ctrl = Controller::new(api::<Provider>(client, namespace), watcher::Config::default());
    let alerts_ctrl = Controller::new(api::<Alert>(client, namespace), watcher::Config::default());
    let provider_store = providers_ctrl.store();
    let alert_store = alerts_ctrl.store();
    let status = Recorder::start(client.clone());
    let (dispatcher, worker) = Dispatcher::new(
        client.clone(),
        alert_store.clone(),
        provider_store.clone(),
        status.clone(),
        events,
        settings.clone(),
    );
    let ctx = Arc::new(Ctx {
        dispatcher: dispatcher.clone(),
        status,
        providers: provider_store,
        settings,
        client: client.clone(),
    });
    let alerts = alerts_ctrl
        .watches(
            api::<Provider>(client, namespace),
            watcher::Config::default(),
            move |p: Provider| {
                let ns = p.namespace().unwrap_or_default();
                let name = p.name_any();
                alert_store
                    .state()
                    .into_iter()
                    .filter(|a| {
                        a.namespace().as_deref() == Some(ns.as_str()) && a.spec.provider_ref.name == name
                    })
                    .map(|a| ObjectRef::from_obj(a.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .shutdown_on_signal()
        .run(reconcile_alert, error_policy::<Alert>, ctx.clone())
        .for_each(|_| std::future::ready(()));
    let providers = providers_ctrl
        .graceful_shutdown_on(shutdown.clone())
        .shutdown_on_signal()
        .run(reconcile_provider, error_policy::<Provider>, ctx)
        .for_each(|_| std::future::ready(()));
    let run = async move {
        // The controllers end on the shutdown future or SIGTERM/SIGINT; the worker goes with them.
        tokio::select! {
            () = async { futures::join!(alerts, providers); } => {}
            () = worker => {}
            () = shutdown => {}
        }
    };
    Notifications {
        dispatcher,
        run: Box::pin(run),
    }
}
