//! One test per rule and kind: small live-object fixtures, asserting readiness and the exact
//! messages.

use super::*;
use serde_json::json;

const NOW: &str = "2024-05-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// Validates with "not ready is an error" (as `kluctl validate` does) and a kind with status.
fn check(obj: &Value) -> ObjectValidation {
    validate_object(obj, true, &StatusExpectation::Required, now())
}

fn messages(list: &[DeploymentError]) -> Vec<&str> {
    list.iter().map(|e| e.message.as_str()).collect()
}

fn obj(api_version: &str, kind: &str, spec: &Value, status: Option<Value>) -> Value {
    let mut o = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "generation": 1,
                     "creationTimestamp": "2024-05-01T11:00:00Z"},
        "spec": spec,
    });
    if let Some(s) = status {
        o["status"] = s;
    }
    o
}

fn ready(o: &Value) {
    let v = check(o);
    assert!(v.ready, "expected ready: {v:?}");
    assert!(v.errors.is_empty() && v.warnings.is_empty(), "{v:?}");
}

fn not_ready(o: &Value, want: &[&str]) {
    let v = check(o);
    assert!(!v.ready, "expected not ready: {v:?}");
    assert_eq!(messages(&v.errors), want);
    assert!(v.warnings.is_empty(), "{v:?}");
}

fn cond(typ: &str, status: &str) -> Value {
    json!({"type": typ, "status": status})
}

// ---- annotations ----

#[test]
fn validate_ignore_skips_everything_including_results() {
    let mut o = obj(
        "v1",
        "PersistentVolumeClaim",
        &json!({}),
        Some(json!({"phase": "Pending"})),
    );
    o["metadata"]["annotations"] = json!({
        "kluctl.io/validate-ignore": "true",
        "validate-result.kluctl.io/check": "ok",
    });
    let v = check(&o);
    assert_eq!(
        v,
        ObjectValidation {
            ready: true,
            ..ObjectValidation::default()
        }
    );
}

#[test]
fn result_annotations_are_copied_in_key_order_with_the_ref() {
    let mut o = obj("v1", "ConfigMap", &json!({}), None);
    o["metadata"]["annotations"] = json!({
        "validate-result.kluctl.io/b": "second",
        "validate-result.kluctl.io/a": "first",
        "other.kluctl.io/c": "ignored",
        "kluctl.io/is-ready": "true",
    });
    let v = check(&o);
    assert!(v.ready);
    let got: Vec<(&str, &str)> = v
        .results
        .iter()
        .map(|r| (r.annotation.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("validate-result.kluctl.io/a", "first"),
            ("validate-result.kluctl.io/b", "second")
        ]
    );
    assert_eq!(v.results[0].object_ref.to_string(), "ns/ConfigMap/x");
}

#[test]
fn is_ready_false_is_not_ready_and_true_overrides_failing_rules() {
    let mut o = obj(
        "v1",
        "PersistentVolumeClaim",
        &json!({}),
        Some(json!({"phase": "Pending"})),
    );
    o["metadata"]["annotations"] = json!({"kluctl.io/is-ready": "false"});
    not_ready(&o, &["kluctl.io/is-ready annotation is set to false"]);
    o["metadata"]["annotations"] = json!({"kluctl.io/is-ready": "true"});
    ready(&o);
    // Unparsable values are ignored: the normal rules apply.
    o["metadata"]["annotations"] = json!({"kluctl.io/is-ready": "maybe"});
    not_ready(&o, &["Volume is not bound"]);
}

#[test]
fn not_ready_findings_are_warnings_unless_asked_for_errors() {
    let o = obj(
        "v1",
        "PersistentVolumeClaim",
        &json!({}),
        Some(json!({"phase": "Pending"})),
    );
    let v = validate_object(&o, false, &StatusExpectation::Required, now());
    assert!(!v.ready);
    assert!(v.errors.is_empty());
    assert_eq!(messages(&v.warnings), ["Volume is not bound"]);
}

// ---- status presence ----

#[test]
fn missing_status_depends_on_expectation_and_age() {
    let young = json!({"apiVersion": "example.com/v1", "kind": "Thing",
        "metadata": {"name": "t", "creationTimestamp": "2024-05-01T11:59:50Z"}});
    let old = json!({"apiVersion": "example.com/v1", "kind": "Thing",
        "metadata": {"name": "t", "creationTimestamp": "2024-05-01T11:59:40Z"}});
    let run = |o: &Value, e: StatusExpectation| validate_object(o, true, &e, now());

    let v = run(&young, StatusExpectation::Required);
    assert!(!v.ready);
    assert_eq!(messages(&v.errors), ["no status available yet"]);
    // Older than 15 s: accepted without a status.
    assert!(run(&old, StatusExpectation::Required).ready);
    // Forced: never accepted.
    assert_eq!(
        messages(&run(&old, StatusExpectation::Forced).errors),
        ["no status available yet"]
    );
    assert!(run(&young, StatusExpectation::NotRequired).ready);

    let v = run(&young, StatusExpectation::Unknown);
    assert!(v.ready);
    assert_eq!(
        messages(&v.warnings),
        [
            "unable to determine if a status is expected. This usually happens when you don't have permission to list CRDs or status sub-resources"
        ]
    );
    let v = run(
        &young,
        StatusExpectation::LookupFailed("failed to get CRD".into()),
    );
    assert!(!v.ready);
    assert_eq!(messages(&v.errors), ["failed to get CRD"]);
}

#[test]
fn missing_creation_time_counts_as_old_and_null_status_as_missing() {
    let o = json!({"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t"}, "status": null});
    assert!(check(&o).ready);
    let mut young = o.clone();
    young["metadata"]["creationTimestamp"] = json!("2024-05-01T11:59:59Z");
    assert_eq!(messages(&check(&young).errors), ["no status available yet"]);
}

#[test]
fn observed_generation_behind_is_waiting_for_reconciliation() {
    let o = obj(
        "example.com/v1",
        "Thing",
        &json!({}),
        Some(json!({"observedGeneration": 0})),
    );
    not_ready(&o, &["Waiting for reconciliation"]);
    let o = obj(
        "example.com/v1",
        "Thing",
        &json!({}),
        Some(json!({"observedGeneration": 1})),
    );
    ready(&o);
    // Not an integer: ignored.
    let o = obj(
        "example.com/v1",
        "Thing",
        &json!({}),
        Some(json!({"observedGeneration": "0"})),
    );
    ready(&o);
}

#[test]
fn other_kinds_are_ready_once_they_have_a_status() {
    ready(&obj("example.com/v1", "Thing", &json!({}), Some(json!({}))));
    ready(&obj("v1", "ConfigMap", &json!({}), Some(json!({"anything": 1}))));
}

// ---- Pod ----

#[test]
fn pod_running_is_not_ready_and_completed_is_ready() {
    let running = obj(
        "v1",
        "Pod",
        &json!({}),
        Some(json!({"conditions": [cond("Ready", "True")]})),
    );
    not_ready(&running, &["Not ready"]);
    let done = obj(
        "v1",
        "Pod",
        &json!({}),
        Some(json!({"conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}]})),
    );
    ready(&done);
}

#[test]
fn pod_container_terminated_with_error_is_an_error() {
    let o = obj(
        "v1",
        "Pod",
        &json!({}),
        Some(json!({
            "containerStatuses": [
                {"name": "app", "state": {"terminated": {"reason": "Error"}}},
                {"name": "side", "state": {"terminated": {"reason": "Completed"}}},
            ],
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
        })),
    );
    not_ready(&o, &["container app exited with error"]);
}

#[test]
fn pod_without_ready_condition_reports_both_findings() {
    let o = obj("v1", "Pod", &json!({}), Some(json!({"phase": "Pending"})));
    not_ready(&o, &["Ready condition not in status", "Not ready"]);
    let o = obj(
        "v1",
        "Pod",
        &json!({}),
        Some(json!({"containerStatuses": {"a": 1}})),
    );
    not_ready(&o, &["nested value is not a slice"]);
}

#[test]
fn duplicate_condition_is_an_error() {
    let o = obj(
        "v1",
        "Pod",
        &json!({}),
        Some(json!({"conditions": [cond("Ready", "True"), cond("Ready", "True")]})),
    );
    not_ready(&o, &["Ready condition found more then once", "Not ready"]);
}

// ---- Job ----

#[test]
fn job_failed_complete_and_running() {
    let job = |conds: Value| obj("batch/v1", "Job", &json!({}), Some(json!({"conditions": conds})));
    not_ready(
        &job(json!([{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}])),
        &["BackoffLimitExceeded"],
    );
    not_ready(&job(json!([cond("Failed", "True")])), &["Failed"]);
    ready(&job(json!([cond("Complete", "True")])));
    not_ready(&job(json!([])), &["Not completed"]);
    not_ready(
        &job(json!([{"type": "Complete", "status": "False", "message": "still running"}])),
        &["still running"],
    );
}

// ---- Deployment ----

#[test]
fn deployment_ready_replicas_against_replicas() {
    let dep = |replicas: i64, status: Value| {
        obj(
            "apps/v1",
            "Deployment",
            &json!({"replicas": replicas}),
            Some(status),
        )
    };
    not_ready(
        &dep(2, json!({"readyReplicas": 1, "replicas": 2})),
        &["readyReplicas (1) is less then replicas (2)"],
    );
    ready(&dep(2, json!({"readyReplicas": 2, "replicas": 2})));
    // A fresh Deployment has an empty status: the first missing field stops the checks.
    not_ready(
        &dep(1, json!({})),
        &["readyReplicas field not in status or empty"],
    );
    // Scaled to zero: nothing to wait for.
    ready(&dep(0, json!({})));
    // Without spec.replicas Kluctl checks nothing either.
    ready(&obj("apps/v1", "Deployment", &json!({}), Some(json!({}))));
}

// ---- PVC ----

#[test]
fn pvc_must_be_bound() {
    let pvc = |status: Value| obj("v1", "PersistentVolumeClaim", &json!({}), Some(status));
    ready(&pvc(json!({"phase": "Bound"})));
    not_ready(&pvc(json!({"phase": "Pending"})), &["Volume is not bound"]);
    not_ready(&pvc(json!({})), &["phase field not in status or empty"]);
    // A malformed phase is an error even when not-ready findings are warnings.
    let v = validate_object(
        &pvc(json!({"phase": 3})),
        false,
        &StatusExpectation::Required,
        now(),
    );
    assert_eq!(messages(&v.errors), ["phase field is not a string"]);
    assert!(v.warnings.is_empty());
}

// ---- Service ----

#[test]
fn service_rules_per_type() {
    let svc = |spec: Value, status: Value| obj("v1", "Service", &spec, Some(status));
    ready(&svc(
        json!({"type": "ClusterIP", "clusterIP": "10.0.0.1"}),
        json!({"loadBalancer": {}}),
    ));
    ready(&svc(json!({"clusterIP": "None"}), json!({})));
    ready(&svc(
        json!({"type": "ExternalName", "externalName": "example.com"}),
        json!({}),
    ));
    // No cluster IP is an error, not a not-ready finding.
    let v = validate_object(
        &svc(json!({"type": "ClusterIP"}), json!({})),
        false,
        &StatusExpectation::Required,
        now(),
    );
    assert_eq!(messages(&v.errors), ["Service does not have a cluster IP"]);
    let lb = json!({"type": "LoadBalancer", "clusterIP": "10.0.0.2"});
    not_ready(&svc(lb.clone(), json!({"loadBalancer": {}})), &["Not ready"]);
    ready(&svc(
        lb,
        json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}),
    ));
    ready(&svc(
        json!({"type": "LoadBalancer", "clusterIP": "10.0.0.2", "externalIPs": ["1.2.3.4"]}),
        json!({"loadBalancer": {}}),
    ));
}

// ---- DaemonSet ----

fn daemon_set(strategy: Value, status: Value) -> Value {
    let mut spec = json!({});
    spec["updateStrategy"] = strategy;
    obj("apps/v1", "DaemonSet", &spec, Some(status))
}

#[test]
fn daemon_set_rolling_update_scheduled_and_ready_with_default_max_unavailable() {
    let ru = json!({"type": "RollingUpdate"});
    not_ready(
        &daemon_set(
            ru.clone(),
            json!({"updatedNumberScheduled": 2, "desiredNumberScheduled": 3, "numberReady": 2}),
        ),
        &["DaemonSet is not ready. 2 out of 3 expected pods have been scheduled"],
    );
    // maxUnavailable defaults to 1: 2 of 3 ready is enough, 1 of 3 is not.
    ready(&daemon_set(
        ru.clone(),
        json!({"updatedNumberScheduled": 3, "desiredNumberScheduled": 3, "numberReady": 2}),
    ));
    not_ready(
        &daemon_set(
            ru,
            json!({"updatedNumberScheduled": 3, "desiredNumberScheduled": 3, "numberReady": 1}),
        ),
        &["DaemonSet is not ready. 1 out of 2 expected pods are ready"],
    );
    // OnDelete: not checked.
    ready(&daemon_set(json!({"type": "OnDelete"}), json!({})));
}

#[test]
fn daemon_set_max_unavailable_int_percent_and_garbage() {
    let status = |ready: i64| json!({"updatedNumberScheduled": 10, "desiredNumberScheduled": 10, "numberReady": ready});
    // 33 % of 10 = 3.3, truncated to 3: 7 must be ready.
    let pct = json!({"type": "RollingUpdate", "maxUnavailable": "33%"});
    ready(&daemon_set(pct.clone(), status(7)));
    not_ready(
        &daemon_set(pct, status(6)),
        &["DaemonSet is not ready. 6 out of 7 expected pods are ready"],
    );
    // Any string is a percentage, with or without '%'.
    ready(&daemon_set(
        json!({"type": "RollingUpdate", "maxUnavailable": "50"}),
        status(5),
    ));
    let zero = json!({"type": "RollingUpdate", "maxUnavailable": 0});
    not_ready(
        &daemon_set(zero, status(9)),
        &["DaemonSet is not ready. 9 out of 10 expected pods are ready"],
    );
    // Unparsable: everything may be unavailable.
    ready(&daemon_set(
        json!({"type": "RollingUpdate", "maxUnavailable": "lots"}),
        status(0),
    ));
}

#[test]
fn daemon_set_reads_max_unavailable_where_kluctl_does_not_from_rolling_update() {
    // Kluctl ignores spec.updateStrategy.rollingUpdate.maxUnavailable: the default 1 applies.
    let s = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}});
    not_ready(
        &daemon_set(
            s,
            json!({"updatedNumberScheduled": 4, "desiredNumberScheduled": 4, "numberReady": 0}),
        ),
        &["DaemonSet is not ready. 0 out of 3 expected pods are ready"],
    );
}

// ---- StatefulSet ----

fn stateful_set(replicas: Option<i64>, partition: Option<i64>, status: Value) -> Value {
    let mut spec = json!({"updateStrategy": {"type": "RollingUpdate"}});
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    if let Some(p) = partition {
        spec["updateStrategy"]["rollingUpdate"] = json!({"partition": p});
    }
    obj("apps/v1", "StatefulSet", &spec, Some(status))
}

#[test]
fn stateful_set_partition_and_ready_replicas() {
    // 5 replicas, partition 2: 3 pods get updated.
    not_ready(
        &stateful_set(
            Some(5),
            Some(2),
            json!({"updatedReplicas": 2, "readyReplicas": 5}),
        ),
        &["StatefulSet is not ready. 2 out of 3 expected pods have been scheduled"],
    );
    not_ready(
        &stateful_set(
            Some(5),
            Some(2),
            json!({"updatedReplicas": 3, "readyReplicas": 4}),
        ),
        &["StatefulSet is not ready. 4 out of 5 expected pods are ready"],
    );
    ready(&stateful_set(
        Some(5),
        Some(2),
        json!({"updatedReplicas": 3, "readyReplicas": 5}),
    ));
    // replicas defaults to 1.
    not_ready(
        &stateful_set(None, None, json!({"updatedReplicas": 0})),
        &["StatefulSet is not ready. 0 out of 1 expected pods have been scheduled"],
    );
    ready(&stateful_set(Some(0), None, json!({})));
    ready(&obj(
        "apps/v1",
        "StatefulSet",
        &json!({"updateStrategy": {"type": "OnDelete"}}),
        Some(json!({})),
    ));
}

// ---- CRD ----

#[test]
fn crd_established_or_names_rejected() {
    let crd = |conds: Value| {
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &json!({}),
            Some(json!({"conditions": conds})),
        )
    };
    ready(&crd(json!([cond("Established", "True")])));
    ready(&crd(json!([
        cond("Established", "False"),
        cond("NamesAccepted", "False")
    ])));
    not_ready(
        &crd(json!([
            cond("Established", "False"),
            cond("NamesAccepted", "True")
        ])),
        &["CRD is not ready"],
    );
    not_ready(&crd(json!([])), &["NamesAccepted condition not in status"]);
}

// ---- MachineDeployment ----

#[test]
fn machine_deployment_conditions_and_replicas() {
    let md = |status: Value| {
        obj(
            "cluster.x-k8s.io/v1beta1",
            "MachineDeployment",
            &json!({}),
            Some(status),
        )
    };
    let good = json!({
        "conditions": [cond("Ready", "True"), cond("Available", "True")],
        "readyReplicas": 3, "replicas": 3,
    });
    ready(&md(good));
    not_ready(
        &md(json!({
            "conditions": [{"type": "Ready", "status": "False", "message": "scaling up"}, cond("Available", "True")],
            "readyReplicas": 2, "replicas": 3, "unavailableReplicas": 1,
        })),
        &[
            "scaling up",
            "readyReplicas (2) is less then replicas (3)",
            "unavailableReplicas (1) != 0",
        ],
    );
    not_ready(&md(json!({"conditions": []})), &["Ready condition not in status"]);
}

// ---- helpers ----

#[test]
fn int_or_percent_parsing() {
    assert_eq!(value_from_int_or_percent(&json!(2), 10), Some(2));
    assert_eq!(value_from_int_or_percent(&json!("25%"), 10), Some(2));
    assert_eq!(value_from_int_or_percent(&json!("x%"), 10), None);
    assert_eq!(value_from_int_or_percent(&json!(1.5), 10), None);
    assert_eq!(nested_int(&json!({"a": 2.9}), &["a"]), Some(2));
    assert_eq!(nested_int(&json!({"a": "2"}), &["a"]), None);
}
