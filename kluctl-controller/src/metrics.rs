//! Prometheus metrics on `--metrics-bind-address` (`/metrics`) and the probes on
//! `--health-probe-bind-address` (`/healthz`, `/readyz`).
//!
//! Per object: reconcile durations and failures by reason, and the last results as gauges
//! (`kluctl_last_deploy_errors`, `kluctl_last_validate_ready`, `kluctl_drifted_objects`, ...), so
//! users can alert on a failing deploy, a not-ready target or drift without reading status.
//! Controller-wide: controller-runtime's `controller_runtime_reconcile_total{controller,result}`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets_range};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Object {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    name: String,
    namespace: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    controller: String,
    result: String,
}

/// The controller's metrics.
#[derive(Clone)]
pub struct Metrics {
    probes: gitops_runtime::Probes,
    duration: Family<Object, Histogram>,
    failures: Family<Failure, Counter>,
    reconciles: Family<Outcome, Counter>,
    deploy_errors: Family<Object, Gauge>,
    deploy_warnings: Family<Object, Gauge>,
    changed: Family<Object, Gauge>,
    orphans: Family<Object, Gauge>,
    validate_ready: Family<Object, Gauge>,
    drifted: Family<Object, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The last results of one object, for the gauges.
#[derive(Clone, Debug, Default)]
pub struct LastResults {
    /// Errors of the last deploy.
    pub deploy_errors: Option<usize>,
    /// Warnings of the last deploy.
    pub deploy_warnings: Option<usize>,
    /// New plus changed objects of the last deploy.
    pub changed: Option<usize>,
    /// Orphans of the last deploy.
    pub orphans: Option<usize>,
    /// Whether the last validation found everything ready.
    pub validate_ready: Option<bool>,
    /// Objects the last drift detection reported.
    pub drifted: Option<usize>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let duration = Family::<Object, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets_range(0.05, 1800.0, 12))
        });
        registry.register(
            "kluctl_reconcile_duration_seconds",
            "Duration of KluctlDeployment reconciles",
            duration.clone(),
        );
        let failures = Family::<Failure, Counter>::default();
        registry.register(
            "kluctl_reconcile_failures",
            "Failed KluctlDeployment reconciles by Ready reason",
            failures.clone(),
        );
        let reconciles = Family::<Outcome, Counter>::default();
        registry.register(
            "controller_runtime_reconcile",
            "Reconciles per controller and result",
            reconciles.clone(),
        );
        let mut gauge = |name: &str, help: &str| {
            let g = Family::<Object, Gauge>::default();
            registry.register(name, help, g.clone());
            g
        };
        let deploy_errors = gauge("kluctl_last_deploy_errors", "Errors of the last deploy");
        let deploy_warnings = gauge("kluctl_last_deploy_warnings", "Warnings of the last deploy");
        let changed = gauge(
            "kluctl_last_deploy_changed_objects",
            "New and changed objects of the last deploy",
        );
        let orphans = gauge(
            "kluctl_last_deploy_orphan_objects",
            "Orphan objects of the last deploy",
        );
        let validate_ready = gauge(
            "kluctl_last_validate_ready",
            "1 when the last validation found every object ready, else 0",
        );
        let drifted = gauge(
            "kluctl_drifted_objects",
            "Objects the last drift detection reported",
        );
        Metrics {
            probes: gitops_runtime::Probes::new(registry),
            duration,
            failures,
            reconciles,
            deploy_errors,
            deploy_warnings,
            changed,
            orphans,
            validate_ready,
            drifted,
        }
    }

    fn object(namespace: &str, name: &str) -> Object {
        Object {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// Records one reconcile, and its failure reason if it failed.
    pub fn observe(&self, namespace: &str, name: &str, took: Duration, failed: Option<&str>) {
        self.duration
            .get_or_create(&Self::object(namespace, name))
            .observe(took.as_secs_f64());
        self.reconciles
            .get_or_create(&Outcome {
                controller: "kluctldeployment".to_owned(),
                result: if failed.is_some() { "error" } else { "success" }.to_owned(),
            })
            .inc();
        if let Some(reason) = failed {
            self.failures
                .get_or_create(&Failure {
                    name: name.to_owned(),
                    namespace: namespace.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Sets the gauges of one object.
    pub fn set_results(&self, namespace: &str, name: &str, r: &LastResults) {
        let o = Self::object(namespace, name);
        let set = |f: &Family<Object, Gauge>, v: Option<usize>| {
            if let Some(v) = v {
                f.get_or_create(&o).set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        };
        set(&self.deploy_errors, r.deploy_errors);
        set(&self.deploy_warnings, r.deploy_warnings);
        set(&self.changed, r.changed);
        set(&self.orphans, r.orphans);
        set(&self.validate_ready, r.validate_ready.map(usize::from));
        set(&self.drifted, r.drifted);
    }

    /// Drops every series of a deleted object.
    pub fn forget(&self, namespace: &str, name: &str) {
        let o = Self::object(namespace, name);
        self.duration.remove(&o);
        for f in [
            &self.deploy_errors,
            &self.deploy_warnings,
            &self.changed,
            &self.orphans,
            &self.validate_ready,
            &self.drifted,
        ] {
            f.remove(&o);
        }
    }

    /// Marks the controller ready (`/readyz` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.probes.set_ready(ready);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        self.probes.encode()
    }

    /// `/metrics`.
    pub fn metrics_router(&self) -> axum::Router {
        self.probes.metrics_router()
    }

    /// `/healthz` (always 200) and `/readyz` (200 once reconciling).
    pub fn health_router(&self) -> axum::Router {
        self.probes.health_router()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_gauges_and_deleted_objects_leave_no_series() {
        let m = Metrics::new();
        m.observe("ns", "app", Duration::from_millis(20), Some("PrepareFailed"));
        m.set_results(
            "ns",
            "app",
            &LastResults {
                deploy_errors: Some(2),
                validate_ready: Some(true),
                ..LastResults::default()
            },
        );
        let text = m.encode();
        assert!(
            text.contains(r#"kluctl_last_deploy_errors{name="app",namespace="ns"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kluctl_last_validate_ready{name="app",namespace="ns"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kluctl_reconcile_failures_total{name="app",namespace="ns",reason="PrepareFailed"} 1"#
            ),
            "{text}"
        );
        m.forget("ns", "app");
        assert!(!m.encode().contains("kluctl_last_deploy_errors{"));
    }
}
