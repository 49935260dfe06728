//! Kluctl's command-result model: what one `deploy`, `diff`, `prune`, `delete` or `poke-images`
//! run found and did, in the JSON shape Kluctl writes (`-o yaml`, stored results, the webui), so
//! Kluctl's tools can read ours and the other way round.
//!
//! ```text
//! apply / diff / prune ──► builder::ResultBuilder (new, changed, orphan, deleted, hook, errors)
//!                              │ finish()
//!                              ▼
//!                        CommandResult ──► summary()                  (counts; stored annotation)
//!                              ├────────► compact::to_reduced_objects() (identity + labels only)
//!                              └────────► compact::to_compacted()       ("full:"/"delta:" texts,
//!                                                                        deltas from dmp)
//! ```
//!
//! This module owns the model and its serde rules; `compact` the reduced and compacted forms,
//! `dmp` the diff-match-patch delta text, `builder` the merge rules that assemble a result.
//!
//! Field names and omission rules follow Kluctl exactly: fields Kluctl always writes are always
//! written here (`reconcileId`, `projectKey.repoKey`, `gitInfo`, `clusterInfo`, the summary's
//! `errors`/`warnings` as `null` when empty), optional ones are left out when empty.

mod builder;
mod compact;
mod dmp;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use builder::ResultBuilder;
pub(crate) use builder::push_unique;
pub use compact::{
    CompactedCommandResult, CompactedObject, compact_object, compact_objects, expand_objects, reduced_object,
};
pub use dmp::{decode_delta, encode_delta};
pub use gitops_api::kluctl::results::{
    ClusterInfo, DeploymentError, GitInfo, KluctlDeploymentInfo, ProjectKey, TargetKey,
};
use gitops_api::kluctl::v1beta1::{FixedImage, ObjectRef};

use crate::project::config::{DeploymentProjectConfig, Target, is_false, present_value};

/// Errors of reading a compacted result back.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// A compacted object field is neither `full: ...` nor `delta: ...`.
    #[error("failed to decode compacted object {object:?} field {field:?}: {reason}")]
    Compacted {
        /// The object reference (`ns/Kind/name`).
        object: String,
        /// `rendered`, `remote` or `applied`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The kind of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    /// The field exists only in the new object.
    Insert,
    /// The field exists only in the old object.
    Delete,
    /// The field exists in both with different values.
    Update,
}

/// One changed field of an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// `insert`, `delete` or `update`.
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    /// Kluctl's JSON path of the field (`spec.replicas`, `metadata.labels["a/b"]`, `$["x"]`).
    pub json_path: String,
    /// The value before; absent for inserts (a JSON `null` value is kept as `Some(Null)`).
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub old_value: Option<Value>,
    /// The value after; absent for deletes.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub new_value: Option<Value>,
    /// The change as unified-diff lines (without file headers).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unified_diff: String,
}

/// Who started the command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandInitiator {
    /// The `kluctl` CLI.
    #[default]
    CommandLine,
    /// The controller reconciling a KluctlDeployment.
    KluctlDeployment,
}

/// The command and the switches that shaped it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandInfo {
    /// Who ran it.
    #[serde(default)]
    pub initiator: CommandInitiator,
    /// Start time (RFC 3339, seconds); `null` when unset.
    #[serde(default, with = "k8s_time")]
    pub start_time: Option<jiff::Timestamp>,
    /// End time (RFC 3339, seconds); `null` when unset.
    #[serde(default, with = "k8s_time")]
    pub end_time: Option<jiff::Timestamp>,
    /// `deploy`, `diff`, `prune`, `delete`, `poke-images`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// Target name as requested.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// `--target-name-override`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_name_override: String,
    /// `--context`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_override: String,
    /// Arguments passed on the command line / in the KluctlDeployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Fixed images passed in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<FixedImage>,
    /// `--dry-run`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// `--no-wait`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_wait: bool,
    /// `--force-apply`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_apply: bool,
    /// `--replace-on-error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replace_on_error: bool,
    /// `--force-replace-on-error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_replace_on_error: bool,
    /// `--abort-on-error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub abort_on_error: bool,
    /// `--include-tag`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_tags: Vec<String>,
    /// `--exclude-tag`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tags: Vec<String>,
    /// `--include-deployment-dir`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_deployment_dirs: Vec<String>,
    /// `--exclude-deployment-dir`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_deployment_dirs: Vec<String>,
}

/// One object the command touched or looked at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultObject {
    /// The object (for `kluctl.io/diff-name` objects: the diff name).
    #[serde(rename = "ref")]
    pub object: ObjectRef,
    /// Field changes between the live object and the applied (or dry-run applied) one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Did not exist before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub new: bool,
    /// On the cluster with our discriminator but no longer rendered.
    #[serde(default, skip_serializing_if = "is_false")]
    pub orphan: bool,
    /// Deleted by this command.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Applied as a hook.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hook: bool,
    /// The rendered object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Value>,
    /// The live object before the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Value>,
    /// The object as the apiserver returned it from the apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Value>,
}

/// The result of one command.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// Result ID (a UUID).
    #[serde(default)]
    pub id: String,
    /// Controller reconcile ID; empty for the CLI.
    #[serde(default)]
    pub reconcile_id: String,
    /// The project.
    #[serde(default)]
    pub project_key: ProjectKey,
    /// The target on the cluster.
    #[serde(default)]
    pub target_key: TargetKey,
    /// The target as configured (after overrides).
    #[serde(default)]
    pub target: Target,
    /// The command.
    #[serde(default)]
    pub command: CommandInfo,
    /// The KluctlDeployment (controller runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Overrides the KluctlDeployment applied to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides_patch: Option<Value>,
    /// Git state of the project.
    #[serde(default)]
    pub git_info: GitInfo,
    /// The cluster.
    #[serde(default)]
    pub cluster_info: ClusterInfo,
    /// The root `deployment.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentProjectConfig>,
    /// Hash over all rendered objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// The objects, sorted by group/version/kind then reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ResultObject>,
    /// Errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<DeploymentError>,
    /// Warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<DeploymentError>,
    /// Images `images.get_image` resolved during rendering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen_images: Vec<FixedImage>,
}

/// The counts of a result, stored as the `kluctl.io/command-result-summary` annotation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResultSummary {
    /// Result ID.
    pub id: String,
    /// Controller reconcile ID.
    pub reconcile_id: String,
    /// The project.
    pub project_key: ProjectKey,
    /// The target on the cluster.
    pub target_key: TargetKey,
    /// The target.
    pub target: Target,
    /// The command (named `commandInfo` here, as Kluctl does).
    #[serde(rename = "commandInfo")]
    pub command: CommandInfo,
    /// The KluctlDeployment (controller runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Git state.
    pub git_info: GitInfo,
    /// The cluster.
    pub cluster_info: ClusterInfo,
    /// Hash over all rendered objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// Objects with a rendered version.
    pub rendered_objects: usize,
    /// Objects found on the cluster.
    pub remote_objects: usize,
    /// Objects applied.
    pub applied_objects: usize,
    /// Hook objects applied.
    pub applied_hook_objects: usize,
    /// New objects.
    pub new_objects: usize,
    /// Objects with changes.
    pub changed_objects: usize,
    /// Orphan objects.
    pub orphan_objects: usize,
    /// Deleted objects.
    pub deleted_objects: usize,
    /// Errors (`null` when none, as Kluctl writes it).
    #[serde(default, serialize_with = "null_if_empty", deserialize_with = "null_as_empty")]
    pub errors: Vec<DeploymentError>,
    /// Warnings (`null` when none).
    #[serde(default, serialize_with = "null_if_empty", deserialize_with = "null_as_empty")]
    pub warnings: Vec<DeploymentError>,
    /// Sum of changes over all objects.
    pub total_changes: usize,
}

impl CommandResult {
    /// The counts Kluctl stores next to a result.
    pub fn summary(&self) -> CommandResultSummary {
        let count = |f: fn(&ResultObject) -> bool| self.objects.iter().filter(|o| f(o)).count();
        CommandResultSummary {
            id: self.id.clone(),
            reconcile_id: self.reconcile_id.clone(),
            project_key: self.project_key.clone(),
            target_key: self.target_key.clone(),
            target: self.target.clone(),
            command: self.command.clone(),
            kluctl_deployment: self.kluctl_deployment.clone(),
            git_info: self.git_info.clone(),
            cluster_info: self.cluster_info.clone(),
            rendered_objects_hash: self.rendered_objects_hash.clone(),
            rendered_objects: count(|o| o.rendered.is_some()),
            remote_objects: count(|o| o.remote.is_some()),
            applied_objects: count(|o| o.applied.is_some()),
            applied_hook_objects: count(|o| o.hook),
            new_objects: count(|o| o.new),
            changed_objects: count(|o| !o.changes.is_empty()),
            orphan_objects: count(|o| o.orphan),
            deleted_objects: count(|o| o.deleted),
            errors: self.errors.clone(),
            warnings: self.warnings.clone(),
            total_changes: self.objects.iter().map(|o| o.changes.len()).sum(),
        }
    }

    /// A copy of everything but the objects, which the callers rebuild their own way (every
    /// field is named, so a new one does not compile until it is considered here).
    pub(super) fn clone_without_objects(&self) -> CommandResult {
        CommandResult {
            id: self.id.clone(),
            reconcile_id: self.reconcile_id.clone(),
            project_key: self.project_key.clone(),
            target_key: self.target_key.clone(),
            target: self.target.clone(),
            command: self.command.clone(),
            kluctl_deployment: self.kluctl_deployment.clone(),
            overrides_patch: self.overrides_patch.clone(),
            git_info: self.git_info.clone(),
            cluster_info: self.cluster_info.clone(),
            deployment: self.deployment.clone(),
            rendered_objects_hash: self.rendered_objects_hash.clone(),
            objects: Vec::new(),
            errors: self.errors.clone(),
            warnings: self.warnings.clone(),
            seen_images: self.seen_images.clone(),
        }
    }
}

fn null_if_empty<S: Serializer>(v: &[DeploymentError], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DeploymentError>, D::Error> {
    Ok(Option::<Vec<DeploymentError>>::deserialize(d)?.unwrap_or_default())
}

/// Kubernetes `metav1.Time` in JSON: RFC 3339 in UTC with seconds, `null` when unset.
mod k8s_time {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes the field by reference
    pub fn serialize<S: Serializer>(t: &Option<jiff::Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Change, ChangeType, ObjectRef};
    use serde_json::json;

    /// `ns/ConfigMap/<name>`.
    pub fn cm(name: &str) -> ObjectRef {
        ObjectRef {
            version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            namespace: "ns".into(),
            ..ObjectRef::default()
        }
    }

    /// An update of `data.a` from `x` to `y`.
    pub fn change() -> Change {
        Change {
            change_type: ChangeType::Update,
            json_path: "data.a".into(),
            old_value: Some(json!("x")),
            new_value: Some(json!("y")),
            unified_diff: "-x\n+y".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{change, cm};
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shape_matches_kluctls_field_names_and_omissions() {
        let mut r = CommandResult {
            id: "id1".into(),
            ..CommandResult::default()
        };
        r.command.command = "diff".into();
        r.command.start_time = Some("2024-05-01T10:00:00Z".parse().unwrap());
        r.objects.push(ResultObject {
            object: cm("a"),
            changes: vec![change()],
            ..ResultObject::default()
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["reconcileId"], json!(""));
        assert_eq!(v["projectKey"], json!({"repoKey": ""}));
        assert_eq!(v["targetKey"], json!({"clusterId": ""}));
        assert_eq!(
            v["gitInfo"],
            json!({"url": null, "ref": null, "subDir": "", "commit": "", "dirty": false})
        );
        assert_eq!(
            v["command"],
            json!({"initiator": "CommandLine", "startTime": "2024-05-01T10:00:00Z", "endTime": null, "command": "diff"})
        );
        assert_eq!(
            v["objects"][0],
            json!({"ref": {"version": "v1", "kind": "ConfigMap", "name": "a", "namespace": "ns"},
                   "changes": [{"type": "update", "jsonPath": "data.a", "oldValue": "x", "newValue": "y", "unifiedDiff": "-x\n+y"}]})
        );
        assert!(v.get("errors").is_none() && v.get("deployment").is_none());
        let s = serde_json::to_value(r.summary()).unwrap();
        assert_eq!(s["errors"], Value::Null);
        assert_eq!(s["commandInfo"]["command"], json!("diff"));
        assert_eq!(s["changedObjects"], json!(1));
        let back: CommandResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn null_change_values_survive_a_round_trip() {
        let c = Change {
            old_value: Some(Value::Null),
            new_value: None,
            ..change()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["oldValue"], Value::Null);
        assert!(v.get("newValue").is_none());
        let back: Change = serde_json::from_value(v).unwrap();
        assert_eq!(back.old_value, Some(Value::Null));
        assert_eq!(back.new_value, None);
    }
}
