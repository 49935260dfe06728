//! The two HTTP endpoints every controller serves besides its own: `/metrics` (the Prometheus
//! text exposition of a registry) and the probes `/healthz` (always 200) and `/readyz` (200 once
//! the controller says it is ready, 503 before and while shutting down).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;

/// A controller's registry and readiness flag, served over HTTP.
#[derive(Clone, Default)]
pub struct Probes {
    registry: Arc<Mutex<Registry>>,
    ready: Arc<AtomicBool>,
}

impl Probes {
    /// Serves `registry` (not ready yet).
    pub fn new(registry: Registry) -> Self {
        Probes {
            registry: Arc::new(Mutex::new(registry)),
            ready: Arc::default(),
        }
    }

    /// Marks the process ready (`/readyz` answers 200) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }

    /// Router serving `/metrics`.
    pub fn metrics_router(&self) -> axum::Router {
        let me = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let me = me.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        me.encode(),
                    )
                }
            }),
        )
    }

    /// Router serving `/healthz` (always 200) and `/readyz` (200 once ready, else 503).
    pub fn health_router(&self) -> axum::Router {
        let ready = self.ready.clone();
        axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/readyz",
                axum::routing::get(move || {
                    let ready = ready.load(Ordering::SeqCst);
                    async move {
                        if ready {
                            (axum::http::StatusCode::OK, "ok")
                        } else {
                            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
                        }
                    }
                }),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn the_registry_is_encoded_and_readiness_follows_the_flag() {
        let mut registry = Registry::default();
        let c = Counter::<u64>::default();
        registry.register("things", "Things seen", c.clone());
        c.inc();
        let p = Probes::new(registry);
        assert!(p.encode().contains("things_total 1"), "{}", p.encode());
        assert!(!p.ready.load(Ordering::SeqCst));
        p.set_ready(true);
        assert!(p.ready.load(Ordering::SeqCst));
    }
}
