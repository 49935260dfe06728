//! Kluctl's readiness rules for one live object, as a pure function: no client, no clock.
//!
//! ```text
//! kluctl.io/validate-ignore ─► ready, nothing reported
//! validate-result.kluctl.io/* annotations ─► results
//! kluctl.io/is-ready ─► ready / not ready, nothing else checked
//! no status ─► StatusExpectation (decided by the caller) + object age
//! status.observedGeneration != metadata.generation ─► "Waiting for reconciliation"
//! per kind: Pod, Job, Deployment, PVC, Service, DaemonSet, CRD, StatefulSet,
//!           cluster.x-k8s.io MachineDeployment; every other kind is ready once it has a status
//! ```
//!
//! "Not ready" findings become errors when the caller asks (`kluctl validate`) and warnings
//! otherwise (waiting during deploy); malformed fields are errors. Some checks stop the
//! validation of the object at the first finding, others go on and collect more; the order and
//! the stops follow Kluctl, so the same object yields the same messages.

use gitops_api::kluctl::v1beta1::ObjectRef;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use super::{DeploymentError, ValidateResultEntry, annotation_bool, object_ref};

/// How long an object whose kind should have a status may go without one before it counts as
/// ready anyway (some operators never write the status their CRD declares).
pub const MISSING_STATUS_GRACE: SignedDuration = SignedDuration::from_secs(15);

/// Annotations copied into [`ObjectValidation::results`]; the dots are regex wildcards as in
/// Kluctl, so the match is the same.
const RESULT_ANNOTATION: &str = "^validate-result.kluctl.io/";
/// [`RESULT_ANNOTATION`] compiled once (validation polls every object while it waits).
static RESULT_PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(RESULT_ANNOTATION).ok());

/// Whether an object of this kind is expected to carry a `status`, decided by the caller from
/// the cluster (status sub-resource in discovery, `status` in the CRD schema); only consulted
/// when the live object has no status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusExpectation {
    /// A status must be there, whatever the object's age (Kluctl's `forceStatusRequired`).
    Forced,
    /// The kind has a status: missing is "not ready" for [`MISSING_STATUS_GRACE`], then accepted.
    Required,
    /// The kind has no status: the object is ready.
    NotRequired,
    /// Could not be determined (no permission to read CRDs): ready, with a warning.
    Unknown,
    /// Determining it failed; the message becomes an error of the object.
    LookupFailed(String),
}

/// Readiness findings for one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectValidation {
    /// The object is ready (no error and no not-ready finding).
    pub ready: bool,
    /// Warnings (and "not ready" findings when they are not errors).
    pub warnings: Vec<DeploymentError>,
    /// Errors (and "not ready" findings when asked to treat them as errors).
    pub errors: Vec<DeploymentError>,
    /// `validate-result.kluctl.io/*` annotations of the object.
    pub results: Vec<ValidateResultEntry>,
}

/// The live object's `status`, when it is a map; anything else counts as "no status".
pub fn status_map(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("status")?.as_object()
}

/// Validates one live object with Kluctl's readiness rules.
///
/// `not_ready_is_error` turns "not ready" findings into errors (`kluctl validate`) instead of
/// warnings (waiting during deploy). `status` is only consulted when the object has no status;
/// `now` is compared with `metadata.creationTimestamp` for the missing-status grace period.
///
/// ```
/// use kluctl_engine::validate::{StatusExpectation, validate_object};
/// let pvc = serde_json::json!({
///     "apiVersion": "v1", "kind": "PersistentVolumeClaim",
///     "metadata": {"name": "data", "namespace": "db"},
///     "status": {"phase": "Pending"},
/// });
/// let v = validate_object(&pvc, true, &StatusExpectation::Required, jiff::Timestamp::now());
/// assert!(!v.ready);
/// assert_eq!(v.errors[0].message, "Volume is not bound");
/// assert_eq!(v.errors[0].object_ref.to_string(), "db/PersistentVolumeClaim/data");
/// ```
pub fn validate_object(
    obj: &Value,
    not_ready_is_error: bool,
    status: &StatusExpectation,
    now: Timestamp,
) -> ObjectValidation {
    let mut check = Check {
        object_ref: object_ref(obj).unwrap_or_default(),
        not_ready_is_error,
        out: ObjectValidation {
            ready: true,
            ..ObjectValidation::default()
        },
    };
    if annotation_bool(obj, "kluctl.io/validate-ignore") == Some(true) {
        return check.out;
    }
    check.collect_results(obj);
    // A `Stop` only ends the checks early; the findings so far are the result.
    let _ = check.run(obj, status, now);
    check.out
}

/// The checks ended early (Kluctl raises and recovers; here it is a `?`).
struct Stop;

type Flow<T = ()> = Result<T, Stop>;

/// What a failed lookup becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum React {
    Ignore,
    Error,
    NotReady,
}

/// One status condition (missing fields read as empty strings).
#[derive(Default)]
struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

impl Condition<'_> {
    fn message_or<'a>(&'a self, default: &'a str) -> &'a str {
        if self.message.is_empty() {
            default
        } else {
            self.message
        }
    }
}

struct Check {
    object_ref: ObjectRef,
    not_ready_is_error: bool,
    out: ObjectValidation,
}

impl Check {
    fn entry(&self, message: String) -> DeploymentError {
        DeploymentError {
            object_ref: self.object_ref.clone(),
            message,
        }
    }

    fn error(&mut self, message: impl Into<String>) {
        let e = self.entry(message.into());
        self.out.errors.push(e);
        self.out.ready = false;
    }

    fn warning(&mut self, message: impl Into<String>) {
        let e = self.entry(message.into());
        self.out.warnings.push(e);
    }

    fn not_ready(&mut self, message: impl Into<String>) {
        if self.not_ready_is_error {
            self.error(message);
        } else {
            self.warning(message);
        }
        self.out.ready = false;
    }

    fn react(&mut self, message: String, react: React, stop: bool) -> Flow {
        match react {
            React::Ignore => {}
            React::Error => self.error(message),
            React::NotReady => self.not_ready(message),
        }
        if stop { Err(Stop) } else { Ok(()) }
    }

    fn collect_results(&mut self, obj: &Value) {
        // The pattern is a constant; a failure to compile it would be caught by every test.
        let Some(pattern) = RESULT_PATTERN.as_ref() else {
            return;
        };
        let Some(annotations) = obj
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_object)
        else {
            return;
        };
        // serde_json maps iterate in key order: results are sorted by annotation.
        for (key, value) in annotations {
            if pattern.is_match(key) {
                self.out.results.push(ValidateResultEntry {
                    object_ref: self.object_ref.clone(),
                    annotation: key.clone(),
                    message: value.as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }

    fn run(&mut self, obj: &Value, expectation: &StatusExpectation, now: Timestamp) -> Flow {
        match annotation_bool(obj, "kluctl.io/is-ready") {
            Some(false) => {
                self.not_ready("kluctl.io/is-ready annotation is set to false");
                return Ok(());
            }
            Some(true) => return Ok(()),
            None => {}
        }
        let Some(status) = status_map(obj) else {
            self.missing_status(obj, expectation, now);
            return Ok(());
        };

        let observed = self.status_int(status, "observedGeneration", React::Ignore, false, -1)?;
        if observed != -1 && observed != generation(obj) {
            self.not_ready("Waiting for reconciliation");
            return Ok(());
        }

        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        match (group, kind) {
            ("", "Pod") => self.pod(status),
            ("batch", "Job") => self.job(status),
            ("apps", "Deployment") => self.deployment(obj, status),
            ("", "PersistentVolumeClaim") => self.pvc(status),
            ("", "Service") => {
                self.service(obj, status);
                Ok(())
            }
            ("apps", "DaemonSet") => self.daemon_set(obj, status),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => self.crd(status),
            ("apps", "StatefulSet") => self.stateful_set(obj, status),
            ("cluster.x-k8s.io", "MachineDeployment") => self.machine_deployment(status),
            _ => Ok(()),
        }
    }

    fn missing_status(&mut self, obj: &Value, expectation: &StatusExpectation, now: Timestamp) {
        match expectation {
            StatusExpectation::Forced => self.not_ready("no status available yet"),
            StatusExpectation::Required => {
                // Objects without a (parsable) creation time are treated as old, as Kluctl's
                // zero time does.
                let created = obj
                    .get("metadata")
                    .and_then(|m| m.get("creationTimestamp"))
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Timestamp>().ok());
                let young = created.is_some_and(|c| now.duration_since(c) <= MISSING_STATUS_GRACE);
                if young {
                    self.not_ready("no status available yet");
                }
            }
            StatusExpectation::NotRequired => {}
            StatusExpectation::Unknown => self.warning(
                "unable to determine if a status is expected. This usually happens when you don't have permission to list CRDs or status sub-resources",
            ),
            StatusExpectation::LookupFailed(message) => self.error(message.clone()),
        }
    }

    /// All conditions of type `typ`; none when `conditions` is not a list of maps.
    fn conditions<'s>(status: &'s Map<String, Value>, typ: &str) -> Vec<Condition<'s>> {
        let Some(list) = status.get("conditions").and_then(Value::as_array) else {
            return Vec::new();
        };
        if !list.iter().all(Value::is_object) {
            return Vec::new();
        }
        let field = |c: &'s Value, key: &str| c.get(key).and_then(Value::as_str).unwrap_or_default();
        list.iter()
            .filter(|c| field(c, "type") == typ)
            .map(|c| Condition {
                status: field(c, "status"),
                reason: field(c, "reason"),
                message: field(c, "message"),
            })
            .collect()
    }

    fn condition<'s>(
        &mut self,
        status: &'s Map<String, Value>,
        typ: &str,
        react: React,
        stop: bool,
    ) -> Flow<Condition<'s>> {
        let mut found = Self::conditions(status, typ);
        if found.is_empty() {
            self.react(format!("{typ} condition not in status"), react, stop)?;
            return Ok(Condition::default());
        }
        if found.len() != 1 {
            self.error(format!("{typ} condition found more then once"));
            if stop {
                return Err(Stop);
            }
        }
        Ok(found.swap_remove(0))
    }

    fn status_int(
        &mut self,
        status: &Map<String, Value>,
        field: &str,
        react: React,
        stop: bool,
        default: i64,
    ) -> Flow<i64> {
        match status.get(field) {
            None => {
                self.react(format!("{field} field not in status or empty"), react, stop)?;
                Ok(default)
            }
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.as_i64().unwrap_or(i64::MAX)),
            Some(_) => {
                self.react(format!("{field} field is not an int"), react, stop)?;
                Ok(default)
            }
        }
    }

    fn status_str<'s>(
        &mut self,
        status: &'s Map<String, Value>,
        field: &str,
        react: React,
        stop: bool,
    ) -> Flow<&'s str> {
        match status.get(field) {
            None => {
                self.react(format!("{field} field not in status or empty"), react, stop)?;
                Ok("")
            }
            Some(Value::String(s)) => Ok(s),
            Some(_) => {
                // Always an error, whatever `react` says (as in Kluctl).
                self.error(format!("{field} field is not a string"));
                if stop { Err(Stop) } else { Ok("") }
            }
        }
    }

    fn pod(&mut self, status: &Map<String, Value>) -> Flow {
        match status.get("containerStatuses") {
            None => {}
            Some(Value::Array(list)) => {
                if !list.iter().all(Value::is_object) {
                    return self.react(
                        "nested value is not a slice of maps".to_owned(),
                        React::Error,
                        true,
                    );
                }
                for cs in list {
                    let name = match cs.get("name") {
                        None => "",
                        Some(Value::String(s)) => s,
                        Some(_) => {
                            return self.react(
                                "value at name is not a string".to_owned(),
                                React::Error,
                                true,
                            );
                        }
                    };
                    let reason = cs
                        .get("state")
                        .and_then(|s| s.get("terminated"))
                        .and_then(|t| t.get("reason"));
                    match reason {
                        Some(Value::String(r)) if r == "Error" => {
                            self.error(format!("container {name} exited with error"));
                        }
                        Some(Value::String(_)) | None => {}
                        Some(_) => {
                            return self.react(
                                "value at state.terminated.reason is not a string".to_owned(),
                                React::Error,
                                true,
                            );
                        }
                    }
                }
            }
            Some(_) => return self.react("nested value is not a slice".to_owned(), React::Error, true),
        }
        let ready = self.condition(status, "Ready", React::NotReady, false)?;
        if ready.status == "False" && ready.reason == "PodCompleted" {
            return Ok(());
        }
        self.not_ready("Not ready");
        Ok(())
    }

    fn job(&mut self, status: &Map<String, Value>) -> Flow {
        let failed = self.condition(status, "Failed", React::Ignore, false)?;
        if failed.status == "True" {
            self.error(failed.message_or("Failed"));
            return Ok(());
        }
        let complete = self.condition(status, "Complete", React::Ignore, false)?;
        if complete.status != "True" {
            self.not_ready(complete.message_or("Not completed"));
        }
        Ok(())
    }

    fn deployment(&mut self, obj: &Value, status: &Map<String, Value>) -> Flow {
        match nested_int(obj, &["spec", "replicas"]) {
            Some(0) | None => Ok(()),
            Some(_) => self.replicas_ready(status),
        }
    }

    fn replicas_ready(&mut self, status: &Map<String, Value>) -> Flow {
        let ready = self.status_int(status, "readyReplicas", React::NotReady, true, 0)?;
        let replicas = self.status_int(status, "replicas", React::NotReady, true, 0)?;
        if ready < replicas {
            self.not_ready(format!(
                "readyReplicas ({ready}) is less then replicas ({replicas})"
            ));
        }
        Ok(())
    }

    fn pvc(&mut self, status: &Map<String, Value>) -> Flow {
        if self.status_str(status, "phase", React::NotReady, true)? != "Bound" {
            self.not_ready("Volume is not bound");
        }
        Ok(())
    }

    fn service(&mut self, obj: &Value, status: &Map<String, Value>) {
        let spec_str = |key: &str| {
            obj.get("spec")
                .and_then(|s| s.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let svc_type = spec_str("type");
        if svc_type == "ExternalName" {
            return;
        }
        if spec_str("clusterIP").is_empty() {
            self.error("Service does not have a cluster IP");
        } else if svc_type == "LoadBalancer" {
            let non_empty = |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|l| !l.is_empty());
            let external_ips = non_empty(obj.get("spec").and_then(|s| s.get("externalIPs")));
            let ingress = non_empty(status.get("loadBalancer").and_then(|l| l.get("ingress")));
            if !external_ips && !ingress {
                self.not_ready("Not ready");
            }
        }
    }

    fn daemon_set(&mut self, obj: &Value, status: &Map<String, Value>) -> Flow {
        if update_strategy(obj) != Some("RollingUpdate") {
            return Ok(());
        }
        let updated = self.status_int(status, "updatedNumberScheduled", React::NotReady, true, 0)?;
        let desired = self.status_int(status, "desiredNumberScheduled", React::NotReady, true, 0)?;
        if updated != desired {
            self.not_ready(format!(
                "DaemonSet is not ready. {updated} out of {desired} expected pods have been scheduled"
            ));
            return Ok(());
        }
        // Kluctl reads `spec.updateStrategy.maxUnavailable`, not the Kubernetes field
        // `spec.updateStrategy.rollingUpdate.maxUnavailable`: the usual value is therefore the
        // default 1. Kept so both tools agree on when a DaemonSet is ready.
        let max_unavailable = match obj
            .get("spec")
            .and_then(|s| s.get("updateStrategy"))
            .and_then(|u| u.get("maxUnavailable"))
        {
            None | Some(Value::Null) => Some(1),
            Some(v) => value_from_int_or_percent(v, desired),
        }
        .unwrap_or(desired);
        let expected = desired - max_unavailable;
        let ready = self.status_int(status, "numberReady", React::NotReady, true, 0)?;
        if ready < expected {
            self.not_ready(format!(
                "DaemonSet is not ready. {ready} out of {expected} expected pods are ready"
            ));
        }
        Ok(())
    }

    fn crd(&mut self, status: &Map<String, Value>) -> Flow {
        // Ready once established, or when the names were rejected (nothing will change then);
        // the same test as Helm's.
        let established = self.condition(status, "Established", React::Ignore, false)?;
        if established.status != "True" {
            let names = self.condition(status, "NamesAccepted", React::NotReady, true)?;
            if names.status != "False" {
                self.not_ready("CRD is not ready");
            }
        }
        Ok(())
    }

    fn stateful_set(&mut self, obj: &Value, status: &Map<String, Value>) -> Flow {
        if update_strategy(obj) != Some("RollingUpdate") {
            return Ok(());
        }
        let partition =
            nested_int(obj, &["spec", "updateStrategy", "rollingUpdate", "partition"]).unwrap_or(0);
        let replicas = nested_int(obj, &["spec", "replicas"]).unwrap_or(1);
        if replicas == 0 {
            return Ok(());
        }
        let updated = self.status_int(status, "updatedReplicas", React::NotReady, true, 0)?;
        let expected = replicas - partition;
        if updated != expected {
            self.not_ready(format!(
                "StatefulSet is not ready. {updated} out of {expected} expected pods have been scheduled"
            ));
            return Ok(());
        }
        let ready = self.status_int(status, "readyReplicas", React::NotReady, true, 0)?;
        if ready != replicas {
            self.not_ready(format!(
                "StatefulSet is not ready. {ready} out of {replicas} expected pods are ready"
            ));
        }
        Ok(())
    }

    fn machine_deployment(&mut self, status: &Map<String, Value>) -> Flow {
        for typ in ["Ready", "Available"] {
            let c = self.condition(status, typ, React::NotReady, true)?;
            if c.status != "True" {
                self.not_ready(c.message_or("Not ready"));
            }
        }
        self.replicas_ready(status)?;
        // Ignored and never stopping: reading it after the replicas changes nothing but order.
        let unavailable = self.status_int(status, "unavailableReplicas", React::Ignore, false, 0)?;
        if unavailable != 0 {
            self.not_ready(format!("unavailableReplicas ({unavailable}) != 0"));
        }
        Ok(())
    }
}

/// `metadata.generation`, -1 when absent.
fn generation(obj: &Value) -> i64 {
    nested_int(obj, &["metadata", "generation"]).unwrap_or(-1)
}

fn update_strategy(obj: &Value) -> Option<&str> {
    obj.get("spec")?.get("updateStrategy")?.get("type")?.as_str()
}

/// A number at `path`; floats are truncated (Kluctl reads spec numbers this way).
fn nested_int(obj: &Value, path: &[&str]) -> Option<i64> {
    let v = path.iter().try_fold(obj, |cur, key| cur.get(key))?;
    let n = v.as_number()?;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "Go's int64(float64) truncates the same way"
    )]
    n.as_i64()
        .or_else(|| n.as_u64().map(|_| i64::MAX))
        .or_else(|| n.as_f64().map(|f| f as i64))
}

/// An int-or-percent value resolved against `total`; `None` when it cannot be parsed.
///
/// Any string counts as a percentage (`"1"` is 1 %), and the product is computed in 32-bit
/// floats and truncated, as Kluctl does.
fn value_from_int_or_percent(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|_| i64::MAX)),
        Value::String(s) => {
            let percent: i32 = s.replace('%', "").parse().ok()?;
            #[expect(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                reason = "Kluctl computes percentages in float32 and truncates"
            )]
            let value = ((percent as f32) * (total as f32) / 100.0) as i64;
            Some(value)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
