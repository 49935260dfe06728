//! Kluctl command results as they appear in `KluctlDeployment.status` (JSON).
//!
//! The structs read what upstream Kluctl writes, including Go's habits: empty lists and zero
//! timestamps may arrive as `null`, and unknown fields are ignored, so a status written by another
//! Kluctl version never makes the whole object unreadable. Every result type therefore defaults all
//! of its fields when absent.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::v1beta1::{FixedImage, GitRef, ObjectRef};
use crate::schema::null_as_default;

/// Identity of a project: its repository and the project directory within it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectKey {
    /// Scheme-less repository key, `git://host/path` or `oci://host/path` (`.git` suffix stripped).
    /// Always written, empty when the project is not in Git, as Kluctl writes it.
    #[serde(default)]
    pub repo_key: String,
    /// Project directory inside the repository.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_dir: String,
}

/// Identity of a deployed target: target name, cluster and discriminator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetKey {
    /// Target name; empty for target-less deployments.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_name: String,
    /// Cluster identity: the UID of the cluster's `kube-system` namespace.
    pub cluster_id: String,
    /// Discriminator label value of the target's objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub discriminator: String,
}

/// The `KluctlDeployment` a command ran for.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct KluctlDeploymentInfo {
    /// Name of the `KluctlDeployment`.
    pub name: String,
    /// Namespace of the `KluctlDeployment`.
    pub namespace: String,
    /// Cluster the `KluctlDeployment` lives in.
    pub cluster_id: String,
}

/// Reference to a service account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAccountRef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// AWS settings of a target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct AwsConfig {
    /// AWS profile name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Service account used for IRSA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountRef>,
}

/// A target as defined in `.kluctl.yaml` (after overrides).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Target {
    /// Target name.
    pub name: String,
    /// Kubeconfig context of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Target arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
    /// AWS settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsConfig>,
    /// Fixed images of the target.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub images: Vec<FixedImage>,
    /// Discriminator of the target.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub discriminator: String,
}

/// How a command was invoked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CommandInfo {
    /// Who ran the command: `CommandLine` or `KluctlDeployment`.
    pub initiator: String,
    /// Start of the command.
    pub start_time: Option<Time>,
    /// End of the command.
    pub end_time: Option<Time>,
    /// Command name, e.g. `deploy`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// Requested target.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// Target name override.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_name_override: String,
    /// Context override.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub context_override: String,
    /// Arguments passed to the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
    /// Fixed images passed to the command.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub images: Vec<FixedImage>,
    /// `--dry-run`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// `--no-wait`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_wait: bool,
    /// `--force-apply`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_apply: bool,
    /// `--replace-on-error`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replace_on_error: bool,
    /// `--force-replace-on-error`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_replace_on_error: bool,
    /// `--abort-on-error`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub abort_on_error: bool,
    /// `--include-tag` values.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub include_tags: Vec<String>,
    /// `--exclude-tag` values.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub exclude_tags: Vec<String>,
    /// `--include-deployment-dir` values.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub include_deployment_dirs: Vec<String>,
    /// `--exclude-deployment-dir` values.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub exclude_deployment_dirs: Vec<String>,
}

/// Git state of the project a command ran on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct GitInfo {
    /// Repository URL.
    pub url: Option<String>,
    /// Checked-out reference.
    #[serde(rename = "ref")]
    pub git_ref: Option<GitRef>,
    /// Project directory inside the repository.
    pub sub_dir: String,
    /// Checked-out commit.
    pub commit: String,
    /// Whether the working tree had local changes.
    pub dirty: bool,
}

/// Cluster a command ran against.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    /// UID of the cluster's `kube-system` namespace.
    pub cluster_id: String,
}

/// An error or warning about one object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentError {
    /// Object concerned.
    #[serde(rename = "ref")]
    pub object_ref: ObjectRef,
    /// What went wrong.
    pub message: String,
}

/// One change of an object, at one JSON path.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Change {
    /// `insert`, `delete` or `update`.
    #[serde(rename = "type")]
    pub change_type: String,
    /// Path of the changed value.
    pub json_path: String,
    /// Value before the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_value: Option<Value>,
    /// Value after the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_value: Option<Value>,
    /// Unified diff of old and new value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unified_diff: String,
}

/// Summary of a deploy, diff, prune or poke-images command.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CommandResultSummary {
    /// Id of the stored full result.
    pub id: String,
    /// Reconciliation that produced the result.
    pub reconcile_id: String,
    /// Project the command ran on.
    pub project_key: ProjectKey,
    /// Target the command ran for.
    pub target_key: TargetKey,
    /// The target's definition.
    pub target: Target,
    /// How the command was invoked.
    pub command_info: CommandInfo,
    /// `KluctlDeployment` the command ran for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Git state of the project.
    pub git_info: GitInfo,
    /// Cluster the command ran against.
    pub cluster_info: ClusterInfo,
    /// Hash of all rendered objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// Number of rendered objects.
    pub rendered_objects: i64,
    /// Number of objects read from the cluster.
    pub remote_objects: i64,
    /// Number of applied objects.
    pub applied_objects: i64,
    /// Number of applied hook objects.
    pub applied_hook_objects: i64,
    /// Number of created objects.
    pub new_objects: i64,
    /// Number of changed objects.
    pub changed_objects: i64,
    /// Number of orphan objects.
    pub orphan_objects: i64,
    /// Number of deleted objects.
    pub deleted_objects: i64,
    /// Errors.
    #[serde(deserialize_with = "null_as_default")]
    pub errors: Vec<DeploymentError>,
    /// Warnings.
    #[serde(deserialize_with = "null_as_default")]
    pub warnings: Vec<DeploymentError>,
    /// Number of changes over all objects.
    pub total_changes: i64,
}

/// One finding of a validation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ValidateResultEntry {
    /// Object concerned.
    #[serde(rename = "ref")]
    pub object_ref: ObjectRef,
    /// Annotation that produced the finding.
    pub annotation: String,
    /// The finding.
    pub message: String,
}

/// Result of a validate command.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ValidateResult {
    /// Id of the result.
    pub id: String,
    /// Reconciliation that produced the result.
    pub reconcile_id: String,
    /// Project validated.
    pub project_key: ProjectKey,
    /// Target validated.
    pub target_key: TargetKey,
    /// `KluctlDeployment` validated, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Spec patch of the manual request that triggered the validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides_patch: Option<Map<String, Value>>,
    /// Hash of all rendered objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// Start of the validation.
    pub start_time: Option<Time>,
    /// End of the validation.
    pub end_time: Option<Time>,
    /// Whether every object is ready and no error was found.
    pub ready: bool,
    /// Warnings.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub warnings: Vec<DeploymentError>,
    /// Errors.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub errors: Vec<DeploymentError>,
    /// Findings of validation annotations.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub results: Vec<ValidateResultEntry>,
}

/// An object that differs from its rendered state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct DriftedObject {
    /// The object.
    #[serde(rename = "ref")]
    pub object_ref: ObjectRef,
    /// Changes needed to bring it back to the rendered state.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub changes: Vec<Change>,
    /// Rendered but missing in the cluster.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new: bool,
    /// In the cluster but no longer rendered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub orphan: bool,
    /// Deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// A hook object.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hook: bool,
    /// Resource version of the object when the drift was computed.
    pub last_resource_version: String,
}

/// Result of a drift detection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct DriftDetectionResult {
    /// Id of the result.
    pub id: String,
    /// Reconciliation that produced the result.
    pub reconcile_id: String,
    /// Project checked.
    pub project_key: ProjectKey,
    /// Target checked.
    pub target_key: TargetKey,
    /// `KluctlDeployment` checked, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Hash of all rendered objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// Start of the detection.
    pub start_time: Option<Time>,
    /// End of the detection.
    pub end_time: Option<Time>,
    /// Warnings.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub warnings: Vec<DeploymentError>,
    /// Errors.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub errors: Vec<DeploymentError>,
    /// Drifted objects.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub objects: Vec<DriftedObject>,
}

impl DriftDetectionResult {
    /// One-line summary for `status.lastDriftDetectionResultMessage`: `no drift`, or counts such as
    /// `1 new/2 chg/1 err` (zero counts left out).
    pub fn short_message(&self) -> String {
        if self.objects.is_empty() {
            return "no drift".to_string();
        }
        let count = |f: fn(&DriftedObject) -> bool| self.objects.iter().filter(|o| f(o)).count();
        let parts = [
            (count(|o| o.new), "new"),
            (count(|o| !o.changes.is_empty()), "chg"),
            (count(|o| o.orphan), "orp"),
            (count(|o| o.deleted), "del"),
            (self.errors.len(), "err"),
            (self.warnings.len(), "wrn"),
        ];
        parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join("/")
    }
}
