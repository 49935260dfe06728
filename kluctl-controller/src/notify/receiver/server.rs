//! The webhook server on `--receiver-listen-addr`: one handler for every path.
//!
//! ```text
//!  request ─► /hook/...? ── no ─► 404
//!          ─► body ≤ 3 MiB ── no ─► 413
//!          ─► Receiver whose status.webhookPath is the path (reflector store) ── none ─► 404
//!          ─► suspended or not Ready ─► 503
//!          ─► token (its Secret) + validate (type, signature, spec.events) ── fails ─► 400
//!          ─► GitHub ping ─► 200, nothing requested
//!          ─► trigger each spec.resources[] entry ── any fails ─► 500
//!          ─► 200
//! ```
//!
//! The status codes are Flux's (notification-controller `receiver_handlers.go`). The response
//! bodies are empty, as Flux's: the caller learns nothing about the Receiver. Neither the token nor
//! the path (which a `generic` Receiver accepts requests on) is logged.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt as _;
use gitops_api::conditions::{self, types};
use gitops_api::notification::v1::{Receiver, WEBHOOK_PATH_PREFIX};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::{Resource as _, ResourceExt as _};
use tracing::Instrument as _;

use super::reconcile::TOKEN_KEY;
use super::validate::{self, Verdict};
use super::{FIELD_MANAGER, trigger};

/// The largest request body accepted (Flux's limit).
pub const MAX_BODY: usize = 3 << 20;

/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request waits for the first list of Receivers after the controller started.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handler needs.
pub struct Server {
    /// The controller's client (token Secrets, annotations).
    pub client: kube::Client,
    /// The Receivers, kept current by the reconciler's watch.
    pub store: Store<Receiver>,
    /// Refuse `spec.resources[]` in other namespaces.
    pub no_cross_namespace_refs: bool,
}

/// Serves webhooks on `listener` until the process ends.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve(listener: tokio::net::TcpListener, server: Server) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(handle).with_state(Arc::new(server));
    axum::serve(listener, app).await
}

async fn handle(State(server): State<Arc<Server>>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if !path.starts_with(WEBHOOK_PATH_PREFIX) {
        return StatusCode::NOT_FOUND;
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(body, MAX_BODY))
        .await
        .unwrap_or(Err(BodyError::Timeout))
    {
        Ok(body) => body,
        Err(e) => {
            let code = StatusCode::from(e);
            tracing::info!(
                status = code.as_u16(),
                "webhook request refused before a Receiver was looked up"
            );
            return code;
        }
    };
    if tokio::time::timeout(STORE_TIMEOUT, server.store.wait_until_ready())
        .await
        .is_err()
    {
        tracing::warn!("webhook request before the Receivers were listed");
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Some(receiver) = server.store.find(|r| {
        r.status
            .as_ref()
            .is_some_and(|s| !s.webhook_path.is_empty() && s.webhook_path == path)
    }) else {
        tracing::debug!("webhook request for a path no Receiver serves");
        return StatusCode::NOT_FOUND;
    };
    let name = receiver.name_any();
    let namespace = receiver.namespace().unwrap_or_default();
    let span = tracing::info_span!("webhook", kind = "Receiver", name = %name, namespace = %namespace);
    async {
        let code = server.handle(&receiver, &parts.headers, &body).await;
        tracing::info!(status = code.as_u16(), "handled webhook request");
        code
    }
    .instrument(span)
    .await
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Unreadable,
    Timeout,
}

impl From<BodyError> for StatusCode {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Unreadable => StatusCode::BAD_REQUEST,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// The body, refused as soon as it grows beyond `limit`.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl Server {
    /// Validates a request for `receiver` and requests the reconciles it asks for.
    async fn handle(&self, receiver: &Receiver, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let status = receiver.status.clone().unwrap_or_default();
        if receiver.spec.suspend {
            tracing::warn!("Receiver is suspended: request not processed");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        if !conditions::is_true(&status.conditions, types::READY) {
            tracing::warn!("Receiver is not ready: request not processed");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let token = match self.token(receiver).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "unable to read the Receiver's token");
                return StatusCode::BAD_REQUEST;
            }
        };
        let verdict = match validate::validate(
            receiver.spec.receiver_type,
            &token,
            &receiver.spec.events,
            headers,
            body,
        ) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "webhook request refused");
                return StatusCode::BAD_REQUEST;
            }
        };
        let event = match verdict {
            Verdict::Ping => {
                tracing::info!("GitHub ping answered, nothing to reconcile");
                return StatusCode::OK;
            }
            Verdict::Trigger { event } => event,
        };
        if let Some(event) = &event {
            tracing::info!(event = %event, "handling event");
        }
        let now = jiff::Timestamp::now().to_string();
        let namespace = receiver.namespace().unwrap_or_default();
        let mut failed = false;
        // Every entry is tried, whatever the earlier ones did: one broken reference must not keep
        // the others from reconciling.
        for (index, resource) in receiver.spec.resources.iter().enumerate() {
            let target = match trigger::resolve(&resource.reference, &namespace, self.no_cross_namespace_refs)
            {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(resource = index, error = %e, "unable to request a reconcile");
                    failed = true;
                    continue;
                }
            };
            match trigger::request(&self.client, &target, &now, FIELD_MANAGER).await {
                Ok(names) => {
                    for n in names {
                        tracing::info!(
                            resource = index,
                            kind = target.kind.kind(),
                            target = %format!("{}/{n}", target.namespace),
                            annotation = target.kind.annotation(),
                            "reconcile requested"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        resource = index,
                        error = %kluctl_engine::error_chain(&e),
                        "unable to request a reconcile"
                    );
                    failed = true;
                }
            }
        }
        if failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }

    /// The `token` of the Receiver's Secret, read per request as Flux does (a rotated token
    /// works at once).
    async fn token(&self, receiver: &Receiver) -> Result<String, String> {
        let Some(secret_ref) = &receiver.spec.secret_ref else {
            return Err("spec.secretRef is not set".into());
        };
        let namespace = receiver.meta().namespace.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let what = format!("Secret '{namespace}/{}'", secret_ref.name);
        let secret = api
            .get_opt(&secret_ref.name)
            .await
            .map_err(|e| format!("failed to read {what}: {}", kluctl_engine::error_chain(&e)))?
            .ok_or_else(|| format!("{what} not found"))?;
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(TOKEN_KEY))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| format!("{what} has no key '{TOKEN_KEY}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_beyond_the_limit_are_refused() {
        let ok = read_body(Body::from(vec![b'a'; 10]), 10).await;
        assert_eq!(ok.ok().map(|b| b.len()), Some(10));
        let too_large = read_body(Body::from(vec![b'a'; 11]), 10).await;
        assert!(matches!(too_large, Err(BodyError::TooLarge)));
    }
}
