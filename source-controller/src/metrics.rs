//! Prometheus metrics on `--metrics-addr` (`/metrics`) and the health endpoints on `--health-addr`
//! (`/healthz`, `/readyz`).
//!
//! Names follow Flux and controller-runtime so existing dashboards work:
//! `gotk_reconcile_duration_seconds{kind,name,namespace}` (series removed when the object is
//! deleted), `controller_runtime_reconcile_total{controller,result}` and
//! `controller_runtime_reconcile_errors_total{controller}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets_range};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    controller: String,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

/// The controller's metrics.
#[derive(Clone)]
pub struct Metrics {
    probes: gitops_runtime::Probes,
    duration: Family<ObjectLabels, Histogram>,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let duration = Family::<ObjectLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets_range(0.01, 1800.0, 10))
        });
        registry.register(
            "gotk_reconcile_duration_seconds",
            "Duration of reconciles per object",
            duration.clone(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "controller_runtime_reconcile",
            "Reconciles per controller and result",
            reconciles.clone(),
        );
        let errors = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "controller_runtime_reconcile_errors",
            "Reconcile errors per controller",
            errors.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "source_controller_reconcile_failures",
            "Failed reconciles per controller and failure category",
            failures.clone(),
        );
        Metrics {
            probes: gitops_runtime::Probes::new(registry),
            duration,
            reconciles,
            errors,
            failures,
        }
    }

    /// Records one reconcile of an object.
    pub fn observe_reconcile(&self, kind: &str, namespace: &str, name: &str, took: Duration) {
        let labels = ObjectLabels {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
        };
        self.duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Counts a finished reconcile (`success`, `error` or `requeue`).
    pub fn count(&self, controller: &str, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        if result == "error" {
            self.errors
                .get_or_create(&ControllerLabels {
                    controller: controller.into(),
                })
                .inc();
        }
    }

    /// Counts a failed run of `controller` by its category (a
    /// [`crate::reconcile::Category`] label value).
    pub fn count_failure(&self, controller: &str, category: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                controller: controller.into(),
                category: category.into(),
            })
            .inc();
    }

    /// Removes an object's series (it was deleted).
    pub fn forget(&self, kind: &str, namespace: &str, name: &str) {
        self.duration.remove(&ObjectLabels {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
        });
    }

    /// Marks the process ready (`/readyz` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.probes.set_ready(ready);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        self.probes.encode()
    }

    /// Router serving `/metrics`.
    pub fn metrics_router(&self) -> axum::Router {
        self.probes.metrics_router()
    }

    /// Router serving `/healthz` (always 200) and `/readyz` (200 once ready, else 503).
    pub fn health_router(&self) -> axum::Router {
        self.probes.health_router()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_duration_is_exported_per_object_and_removed_on_forget() {
        let m = Metrics::new();
        m.observe_reconcile(
            "GitRepository",
            "flux-system",
            "podinfo",
            Duration::from_millis(250),
        );
        m.count("gitrepository", "success");
        m.count("gitrepository", "error");
        m.count_failure("bucket", "credentials");
        let text = m.encode();
        assert!(text.contains("gotk_reconcile_duration_seconds_count{kind=\"GitRepository\",name=\"podinfo\",namespace=\"flux-system\"} 1"), "{text}");
        assert!(
            text.contains(
                "controller_runtime_reconcile_total{controller=\"gitrepository\",result=\"success\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("controller_runtime_reconcile_errors_total{controller=\"gitrepository\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "source_controller_reconcile_failures_total{controller=\"bucket\",category=\"credentials\"} 1"
            ),
            "{text}"
        );
        m.forget("GitRepository", "flux-system", "podinfo");
        assert!(!m.encode().contains("name=\"podinfo\""));
    }
}
