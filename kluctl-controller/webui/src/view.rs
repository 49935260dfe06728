//! What the browser receives: slim views of KluctlDeployments and stored results, built from the
//! watched objects (pure functions), and the redaction applied for viewers.
//!
//! The overview needs a few hundred bytes per KluctlDeployment and per result, not the objects:
//! with 1,000 deployments and 5,000 results the first snapshot stays around two megabytes. The
//! deployment page reads the whole object (redacted) from the same in-memory copy.
//!
//! Redaction ([`redact_for_viewer`]): stored results already carry obfuscated Secret values (the
//! engine's store never writes them). What remains sensitive are the values of `args` (target
//! arguments often carry passwords or tokens), `overridesPatch` and the KluctlDeployment's
//! `spec.args`; for viewers every leaf value below such a key becomes `*****`, keeping the keys.

use serde::Serialize;
use serde_json::Value;

use gitops_api::kluctl::request::RequestKind;
use gitops_api::kluctl::results::{CommandResultSummary, ProjectKey, TargetKey};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use kluctl_engine::store::ValidateResultSummary;

/// What a caller may see and do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything an admin sees, except argument values; cannot act.
    Viewer,
    /// Sees everything and may act.
    Admin,
}

/// The value shown instead of a redacted one (the same as obfuscated Secret values in results).
pub const REDACTED: &str = "*****";

/// Keys whose values are redacted for viewers, wherever they appear.
const SENSITIVE_KEYS: [&str; 3] = ["args", "overridesPatch", "vars"];

/// Replaces every leaf value below a [`SENSITIVE_KEYS`] key with [`REDACTED`].
pub fn redact_for_viewer(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SENSITIVE_KEYS.contains(&k.as_str()) {
                    redact_leaves(v);
                } else {
                    redact_for_viewer(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_for_viewer),
        _ => {}
    }
}

fn redact_leaves(value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(redact_leaves),
        Value::Array(items) => items.iter_mut().for_each(redact_leaves),
        Value::Null => {}
        leaf => *leaf = Value::String(REDACTED.to_owned()),
    }
}

/// `value` as JSON, redacted when `role` is a viewer.
pub fn json_for<T: Serialize>(value: &T, role: Role) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    if role == Role::Viewer {
        redact_for_viewer(&mut v);
    }
    v
}

/// Cluster, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjKey {
    /// The cluster (its kube context's name).
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// The key of a KluctlDeployment of `cluster`.
    pub fn of(cluster: &str, kd: &KluctlDeployment) -> Self {
        Self {
            cluster: cluster.to_owned(),
            namespace: kd.metadata.namespace.clone().unwrap_or_default(),
            name: kd.metadata.name.clone().unwrap_or_default(),
        }
    }
}

/// One KluctlDeployment as the overview shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    /// The cluster (set by the model; empty until then).
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The project (from status, once the controller prepared it).
    pub project: Option<ProjectKey>,
    /// The target on the cluster (from status).
    pub target_key: Option<TargetKey>,
    /// `spec.target`.
    pub target: Option<String>,
    /// Where the project comes from, one line (`https://... @ main, path x` or `GitRepository ns/name`).
    pub source: String,
    /// `spec.suspend`.
    pub suspend: bool,
    /// `spec.manual`.
    pub manual: bool,
    /// The rendered objects' hash waiting for approval (`status.lastObjectsHash`) when it differs
    /// from the approved one (`spec.manualObjectsHash`).
    pub pending_approval: Option<String>,
    /// `spec.manualObjectsHash`.
    pub approved_hash: Option<String>,
    /// `spec.dryRun`.
    pub dry_run: bool,
    /// `spec.prune`.
    pub prune: bool,
    /// `spec.interval`.
    pub interval: String,
    /// The Ready condition: `True`, `False` or `Unknown` (none yet).
    pub ready: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// Whether a reconciliation runs now (Reconciling=True).
    pub reconciling: bool,
    /// `status.observedCommit`.
    pub commit: String,
    /// The last deploy result's id, time and counts.
    pub last_deploy: Option<ResultView>,
    /// The last diff result.
    pub last_diff: Option<ResultView>,
    /// The last validation: ready, error and warning counts, time.
    pub last_validate: Option<ResultView>,
    /// `status.lastDriftDetectionResultMessage` (`no drift`, `1 chg`, ...).
    pub drift: String,
    /// The number of drifted objects.
    pub drifted_objects: usize,
    /// Manual requests the controller reported (one per kind at most).
    pub requests: Vec<RequestView>,
}

/// A manual request as `status.<x>RequestResult` reports it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    /// `deploy`, `diff`, ...
    pub kind: &'static str,
    /// The request value (when it was asked).
    pub request_value: String,
    /// When the controller started it.
    pub start_time: String,
    /// When it ended (empty while running).
    pub end_time: String,
    /// The stored result, if any.
    pub result_id: String,
    /// The error, if the command failed.
    pub command_error: String,
}

/// A stored command or validate result, slim.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResultView {
    /// The cluster whose result store holds it (set by the watch; empty for the last results a
    /// KluctlDeployment's view carries, which are of its cluster).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The result id.
    pub id: String,
    /// `command` or `validate`.
    pub kind: &'static str,
    /// `deploy`, `diff`, `prune`, `delete`, `poke-images`, `validate`.
    pub command: String,
    /// `KluctlDeployment` or `CommandLine`.
    pub initiator: String,
    /// Start time (RFC 3339).
    pub start_time: String,
    /// End time.
    pub end_time: String,
    /// The project.
    pub project: ProjectKey,
    /// The target on the cluster.
    pub target_key: TargetKey,
    /// The KluctlDeployment that ran it (namespace/name), if any.
    pub deployment: Option<String>,
    /// The commit deployed.
    pub commit: String,
    /// New objects.
    pub new: i64,
    /// Changed objects.
    pub changed: i64,
    /// Orphan objects.
    pub orphan: i64,
    /// Deleted objects.
    pub deleted: i64,
    /// Applied objects.
    pub applied: i64,
    /// Errors.
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
    /// Validate results: everything ready.
    pub ready: Option<bool>,
}

fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    t.map(|t| t.0.to_string()).unwrap_or_default()
}

impl ResultView {
    /// The view of a command result summary.
    pub fn command(s: &CommandResultSummary) -> Self {
        Self {
            cluster: String::new(),
            id: s.id.clone(),
            kind: "command",
            command: s.command_info.command.clone(),
            initiator: s.command_info.initiator.clone(),
            start_time: time(s.command_info.start_time.as_ref()),
            end_time: time(s.command_info.end_time.as_ref()),
            project: s.project_key.clone(),
            target_key: s.target_key.clone(),
            deployment: s
                .kluctl_deployment
                .as_ref()
                .map(|d| format!("{}/{}", d.namespace, d.name)),
            commit: s.git_info.commit.clone(),
            new: s.new_objects,
            changed: s.changed_objects,
            orphan: s.orphan_objects,
            deleted: s.deleted_objects,
            applied: s.applied_objects,
            errors: s.errors.len(),
            warnings: s.warnings.len(),
            ready: None,
        }
    }

    /// The view of a validate result summary.
    pub fn validate(s: &ValidateResultSummary) -> Self {
        Self {
            cluster: String::new(),
            id: s.id.clone(),
            kind: "validate",
            command: "validate".to_owned(),
            initiator: if s.kluctl_deployment.is_some() {
                "KluctlDeployment"
            } else {
                "CommandLine"
            }
            .to_owned(),
            start_time: time(s.start_time.as_ref()),
            end_time: time(s.end_time.as_ref()),
            project: s.project_key.clone(),
            target_key: s.target_key.clone(),
            deployment: s
                .kluctl_deployment
                .as_ref()
                .map(|d| format!("{}/{}", d.namespace, d.name)),
            commit: String::new(),
            new: 0,
            changed: 0,
            orphan: 0,
            deleted: 0,
            applied: 0,
            errors: s.errors,
            warnings: s.warnings,
            ready: Some(s.ready),
        }
    }
}

/// The one-line source of a KluctlDeployment.
fn source_line(kd: &KluctlDeployment) -> String {
    let spec = &kd.spec;
    if let Some(r) = &spec.source_ref {
        let ns = r
            .namespace
            .clone()
            .unwrap_or_else(|| kd.metadata.namespace.clone().unwrap_or_default());
        let path = spec
            .path
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| format!(", path {p}"))
            .unwrap_or_default();
        return format!("{:?} {ns}/{}{path}", r.kind, r.name);
    }
    let Some(src) = &spec.source else {
        return String::new();
    };
    let (url, git_ref, path) = if let Some(g) = &src.git {
        (g.url.clone(), g.git_ref.as_ref().map(ref_line), g.path.clone())
    } else if let Some(o) = &src.oci {
        (o.url.clone(), None, o.path.clone())
    } else {
        (
            src.url.clone().unwrap_or_default(),
            src.git_ref.as_ref().map(ref_line),
            src.path.clone(),
        )
    };
    let mut line = url;
    if let Some(r) = git_ref.filter(|r| !r.is_empty()) {
        line.push_str(" @ ");
        line.push_str(&r);
    }
    if !path.is_empty() {
        line.push_str(", path ");
        line.push_str(&path);
    }
    line
}

fn ref_line(r: &gitops_api::kluctl::v1beta1::GitRef) -> String {
    [&r.branch, &r.tag, &r.commit]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default()
}

impl DeploymentView {
    /// The overview's view of `kd`.
    pub fn of(kd: &KluctlDeployment) -> Self {
        let key = ObjKey::of("", kd);
        let status = kd.status.as_ref();
        let condition = |t: &str| status.and_then(|s| s.conditions.iter().find(|c| c.type_ == t));
        let ready = condition("Ready");
        let pending = status.map(|s| s.last_objects_hash.clone()).filter(|h| {
            kd.spec.manual && !h.is_empty() && kd.spec.manual_objects_hash.as_deref() != Some(h.as_str())
        });
        let requests = status
            .map(|s| {
                RequestKind::ALL
                    .into_iter()
                    .filter_map(|k| {
                        k.result(s).map(|r| RequestView {
                            kind: k.name(),
                            request_value: r.request.request_value.clone(),
                            start_time: r.start_time.0.to_string(),
                            end_time: time(r.end_time.as_ref()),
                            result_id: r.result_id.clone(),
                            command_error: r.command_error.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let drift = status.and_then(|s| s.last_drift_detection_result.as_ref());
        Self {
            cluster: key.cluster,
            namespace: key.namespace,
            name: key.name,
            project: status.and_then(|s| s.project_key.clone()),
            target_key: status.and_then(|s| s.target_key.clone()),
            target: kd.spec.target.clone(),
            source: source_line(kd),
            suspend: kd.spec.suspend,
            manual: kd.spec.manual,
            pending_approval: pending,
            approved_hash: kd.spec.manual_objects_hash.clone(),
            dry_run: kd.spec.dry_run,
            prune: kd.spec.prune,
            interval: kd.spec.interval.clone(),
            ready: ready.map_or_else(|| "Unknown".to_owned(), |c| c.status.clone()),
            reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
            message: ready.map(|c| c.message.clone()).unwrap_or_default(),
            reconciling: condition("Reconciling").is_some_and(|c| c.status == "True"),
            commit: status.map(|s| s.observed_commit.clone()).unwrap_or_default(),
            last_deploy: status
                .and_then(|s| s.last_deploy_result.as_ref())
                .map(ResultView::command),
            last_diff: status
                .and_then(|s| s.last_diff_result.as_ref())
                .map(ResultView::command),
            last_validate: status
                .and_then(|s| s.last_validate_result.as_ref())
                .map(|v| ResultView::validate(&ValidateResultSummary::of(v))),
            drift: status
                .map(|s| s.last_drift_detection_result_message.clone())
                .unwrap_or_default(),
            drifted_objects: drift.map_or(0, |d| d.objects.len()),
            requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn viewers_get_every_argument_value_redacted_and_keep_the_keys() {
        let mut v = json!({
            "spec": {"args": {"password": "hunter2", "nested": {"token": "abc", "list": ["x", 1]}, "none": null}},
            "target": {"name": "prod", "args": {"db": "secret"}},
            "commandInfo": {"overridesPatch": {"spec": {"args": {"a": "b"}}}},
            "objects": [{"args": true}],
            "name": "visible",
        });
        redact_for_viewer(&mut v);
        assert_eq!(
            v,
            json!({
                "spec": {"args": {"password": "*****", "nested": {"token": "*****", "list": ["*****", "*****"]}, "none": null}},
                "target": {"name": "prod", "args": {"db": "*****"}},
                "commandInfo": {"overridesPatch": {"spec": {"args": {"a": "*****"}}}},
                "objects": [{"args": "*****"}],
                "name": "visible",
            })
        );
        let text = v.to_string();
        for secret in ["hunter2", "abc", "secret"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn admins_get_values_as_they_are() {
        let v = json_for(&json!({"args": {"password": "hunter2"}}), Role::Admin);
        assert_eq!(v, json!({"args": {"password": "hunter2"}}));
        let v = json_for(&json!({"args": {"password": "hunter2"}}), Role::Viewer);
        assert_eq!(v, json!({"args": {"password": "*****"}}));
    }
}
