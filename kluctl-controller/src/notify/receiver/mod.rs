//! Receiver webhooks (`notification.toolkit.fluxcd.io/v1` Receiver): `status.webhookPath`, request
//! validation per type, reconcile requests for GitRepositories, Buckets and KluctlDeployments.
//!
//! ```text
//!  watch Receivers ─► reflector store ─┬─► reconcile: token ─► status.webhookPath, Ready
//!   (all namespaces, or --namespace)   │
//!                                      └─► server (--receiver-listen-addr): POST /hook/<sha256>
//!                                            looked up in the store (no apiserver call),
//!                                            validate (validate.rs) ─► annotate (trigger.rs)
//! ```
//!
//! Served types: `generic`, `generic-hmac`, `github`, `gitlab`, `bitbucket`. Others, and the CEL
//! fields (`resourceFilter`, `resources[].filter`), make the Receiver Ready=False
//! `UnsupportedConfiguration`: this build has no CEL engine, and silently ignoring a filter would
//! reconcile objects the user excluded.

pub mod reconcile;
pub mod server;
pub mod trigger;
pub mod validate;

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use futures::StreamExt as _;
use gitops_api::constants::RECONCILE_REQUESTED_AT_ANNOTATION;
use gitops_api::notification::v1::{Receiver, WEBHOOK_PATH_PREFIX};
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::{PredicateConfig, WatchStreamExt as _, reflector, watcher};
use sha2::Digest as _;

/// Field manager of the Receiver status and of the reconcile annotations.
pub const FIELD_MANAGER: &str = gitops_api::constants::KLUCTL_CONTROLLER_FIELD_MANAGER;

/// The webhook path of a Receiver: `/hook/` + lowercase hex SHA-256 of token, name and namespace
/// concatenated without separators (Flux's formula, so a path Flux computed stays valid).
pub fn webhook_path(token: &str, name: &str, namespace: &str) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(token)
        .chain_update(name)
        .chain_update(namespace)
        .finalize();
    format!("{WEBHOOK_PATH_PREFIX}{digest:x}")
}

/// Settings from the controller's flags.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Watch Receivers only in this namespace; empty: all namespaces.
    pub namespace: String,
    /// Refuse `spec.resources[]` in other namespaces than the Receiver's.
    pub no_cross_namespace_refs: bool,
}

/// Runs the Receiver reconciler and the webhook server on `listener` until the process ends.
///
/// Every replica runs both: webhooks are answered by whichever replica the Service picks, and the
/// status is written only when it changes, so replicas agree rather than fight.
pub async fn run(client: kube::Client, listener: tokio::net::TcpListener, settings: Settings) {
    let api: Api<Receiver> = if settings.namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &settings.namespace)
    };
    let (reader, writer) = reflector::store();
    // The store sees every change (the server reads status.webhookPath from it); reconciles
    // follow spec changes and reconcile requests, not our own status writes.
    let receivers = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(|r: &Receiver| Some(trigger_hash(r)), PredicateConfig::default());
    let ctx = Arc::new(reconcile::Context {
        client: client.clone(),
    });
    let controller = Controller::for_stream(receivers, reader.clone())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|_| std::future::ready(()));
    let webhooks = server::serve(
        listener,
        server::Server {
            client,
            store: reader,
            no_cross_namespace_refs: settings.no_cross_namespace_refs,
        },
    );
    let ((), outcome) = futures::join!(controller, webhooks);
    if let Err(e) = outcome {
        tracing::error!(error = %e, "the receiver webhook server stopped");
    }
}

/// What makes a Receiver worth a reconcile: its generation and its reconcile request.
fn trigger_hash(r: &Receiver) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.metadata.generation.hash(&mut h);
    r.annotations()
        .get(RECONCILE_REQUESTED_AT_ANNOTATION)
        .hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_path_is_the_sha256_of_token_name_and_namespace() {
        // printf '%s' 'tokenreceiverflux-system' | sha256sum
        assert_eq!(
            webhook_path("token", "receiver", "flux-system"),
            "/hook/82c055fa0743ee447b0870be16fa51a43bb6604b21ef8fae7ccf02bdc860b0f9"
        );
    }
}
