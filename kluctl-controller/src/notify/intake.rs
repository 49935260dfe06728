//! The event endpoint (`--events-listen-addr`): where source-controller's `--events-addr` (or any
//! Flux controller's) POSTs its events, answered as Flux's notification-controller answers.
//!
//! Any path and method is accepted (Flux mounts the handler on `/`). Body over 3 MiB: 413; not an
//! event: 400; a duplicate within the rate-limit interval: 429 (the sender treats it as
//! delivered); queue full: 503 (the sender retries); otherwise 202 before anything is sent.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::dispatch::{Dispatcher, Intake};

/// Largest event body accepted.
pub const MAX_BODY: usize = 3 << 20;

/// The router of the event endpoint.
pub fn router(dispatcher: Dispatcher) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(dispatcher)
}

async fn handle(State(dispatcher): State<Dispatcher>, body: Body) -> impl IntoResponse {
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "event body larger than 3 MiB\n".to_owned(),
        );
    };
    let event: gitops_runtime::FluxEvent = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(error = %e, "rejected an event body");
            return (StatusCode::BAD_REQUEST, format!("not a Flux event: {e}\n"));
        }
    };
    match dispatcher.intake(event) {
        Intake::Accepted => (StatusCode::ACCEPTED, String::new()),
        Intake::Duplicate => (StatusCode::TOO_MANY_REQUESTS, "duplicate event\n".to_owned()),
        Intake::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "event queue full\n".to_owned()),
    }
}
