//! `flux.kluctl.io/v1alpha1` `KluctlDeployment`, in the shape of flux-kluctl-controller v0.16.5.
//!
//! The project comes either from a source-controller artifact (`sourceRef` + `path`, the original
//! mode, deprecated upstream) or from a Git repository the controller clones itself (`source`).
//! Intervals other than `interval`, `retryInterval` and `timeout` also accept the literal `never`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::meta::{LocalObjectReference, NamespacedObjectKindReference, SecretKeyReference};
use crate::schema::{DURATION_PATTERN, conditions, preserve_unknown_object};

pub use crate::kluctl::v1beta1::{Decryption, DecryptionProvider, DeployMode};

/// Kind name of the resource.
pub const KIND: &str = "KluctlDeployment";

/// The value of a [`DURATION_OR_NEVER_PATTERN`] field that disables the periodic action.
pub const NEVER: &str = "never";

/// Pattern of `deployInterval`/`validateInterval`: a duration or `never` (anchored as upstream has it).
pub const DURATION_OR_NEVER_PATTERN: &str = r"^(([0-9]+(\.[0-9]+)?(ms|s|m|h))+)|never$";

/// Desired state of a legacy `KluctlDeployment`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flux.kluctl.io",
    version = "v1alpha1",
    kind = "KluctlDeployment",
    plural = "kluctldeployments",
    singular = "kluctldeployment",
    namespaced,
    status = "KluctlDeploymentStatus",
    derive = "PartialEq",
    doc = "A Kluctl project deployed by the (deprecated) flux-kluctl-controller.",
    printcolumn = r#"{"name": "DryRun", "type": "boolean", "jsonPath": ".spec.dryRun"}"#,
    printcolumn = r#"{"name": "Deployed", "type": "date", "jsonPath": ".status.lastDeployResult.time"}"#,
    printcolumn = r#"{"name": "Pruned", "type": "date", "jsonPath": ".status.lastPruneResult.time"}"#,
    printcolumn = r#"{"name": "Validated", "type": "date", "jsonPath": ".status.lastValidateResult.time"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KluctlDeploymentSpec {
    /// Deprecated (use `source.path`): project directory inside the `sourceRef` artifact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,

    /// Deprecated (use `source`): the `GitRepository` whose artifact holds the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<NamespacedObjectKindReference>,

    /// Git repository the controller clones to get the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ProjectSource>,

    /// SOPS decryption of secrets before they are applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<Decryption>,

    /// How often the project is rendered and, when it changed, deployed.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: String,

    /// Delay before retrying after a failed reconciliation; defaults to `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub retry_interval: Option<String>,

    /// Period of forced deploys, or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_OR_NEVER_PATTERN))]
    pub deploy_interval: Option<String>,

    /// Deploy whenever the rendered objects changed.
    #[serde(default = "default_true")]
    pub deploy_on_changes: bool,

    /// Period of validation runs, or `never`; defaults to `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_OR_NEVER_PATTERN))]
    pub validate_interval: Option<String>,

    /// Time budget of one reconciliation; defaults to `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,

    /// Stops further reconciliations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// Deprecated: registry pull secrets, no longer used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry_secrets: Vec<LocalObjectReference>,

    /// Credentials for Helm repositories used by the project's charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helm_credentials: Vec<HelmCredentials>,

    /// Service account impersonated while deploying.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,

    /// Kubeconfig (from a Secret) of the cluster to deploy to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_config: Option<KubeConfig>,

    /// Context renames applied to the kubeconfig before Kluctl sees it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rename_contexts: Vec<RenameContext>,

    /// Name of the target from `.kluctl.yaml`; omit for projects without targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub target: Option<String>,

    /// Target name to use instead of the target's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub target_name_override: Option<String>,

    /// Kubeconfig context to use instead of the one the target names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,

    /// Target arguments; values may be nested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub args: Option<Map<String, Value>>,

    /// Deprecated: image updates are no longer supported.
    #[serde(default)]
    pub update_images: bool,

    /// Fixed image overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<FixedImage>,

    /// Run every command in dry-run mode.
    #[serde(default)]
    pub dry_run: bool,

    /// Do not wait for objects and hooks to become ready.
    #[serde(default)]
    pub no_wait: bool,

    /// Take over fields owned by other managers on apply conflicts.
    #[serde(default)]
    pub force_apply: bool,

    /// Replace objects whose apply failed.
    #[serde(default)]
    pub replace_on_error: bool,

    /// Delete and recreate objects when a replace failed too.
    #[serde(default)]
    pub force_replace_on_error: bool,

    /// Stop a deploy at the first error.
    #[serde(default)]
    pub abort_on_error: bool,

    /// Deploy only the deployment items carrying one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_tags: Vec<String>,

    /// Skip the deployment items carrying one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tags: Vec<String>,

    /// Deploy only these deployment directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_deployment_dirs: Vec<String>,

    /// Skip these deployment directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_deployment_dirs: Vec<String>,

    /// `full-deploy` or `poke-images`.
    #[serde(default)]
    pub deploy_mode: DeployMode,

    /// Validate the deployed objects after deploys and every `validateInterval`.
    #[serde(default = "default_true")]
    pub validate: bool,

    /// Prune orphaned objects after each deploy.
    #[serde(default)]
    pub prune: bool,

    /// Delete the target's objects when this `KluctlDeployment` is deleted.
    #[serde(default)]
    pub delete: bool,
}

fn default_true() -> bool {
    true
}

/// A Git repository holding the project.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSource {
    /// Clone URL.
    pub url: String,
    /// Branch or tag to check out; the default branch when omitted.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRef>,
    /// Sub-directory of the repository holding the project.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Secret with `username`/`password` (HTTPS) or `identity`/`known_hosts` (SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// Git branch or tag.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// Branch name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// Tag name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
}

/// Helm repository credentials entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmCredentials {
    /// Secret with a `url` key plus basic-auth or TLS credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// Kubeconfig of the cluster to deploy to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeConfig {
    /// Secret key holding the kubeconfig; key `value` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyReference>,
}

/// Rename of a kubeconfig context.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameContext {
    /// Context name in the kubeconfig.
    pub old_context: String,
    /// Name Kluctl sees instead.
    pub new_context: String,
}

/// Reference to a Kubernetes object; every field is written, empty when not applicable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// Image override (legacy shape: `image` is mandatory).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FixedImage {
    /// Image name to match (without tag).
    pub image: String,
    /// Image to use instead.
    pub result_image: String,
    /// Image seen in the deployed object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_image: Option<String>,
    /// Registry image (no longer used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_image: Option<String>,
    /// Only objects in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// Only this object, written `Kind/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Only this container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Version filter (no longer used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_filter: Option<String>,
    /// Only deployment items carrying all of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deploy_tags: Vec<String>,
    /// Only this deployment directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_dir: Option<String>,
}

/// Observed state of a legacy `KluctlDeployment`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KluctlDeploymentStatus {
    /// Last handled value of the `reconcile.fluxcd.io/requestedAt` annotation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_handled_reconcile_at: String,
    /// Last handled value of the `deploy.flux.kluctl.io/requestedAt` annotation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_handled_deploy_at: String,
    /// Generation handled by the last reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions, `Ready` first of all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
    /// Source revision of the last reconciliation attempt.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_attempted_revision: String,
    /// Outcome of the last deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deploy_result: Option<LastCommandResult>,
    /// Outcome of the last prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_prune_result: Option<LastCommandResult>,
    /// Outcome of the last validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validate_result: Option<LastValidateResult>,
    /// Discriminator of the deployed target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub discriminator: String,
    /// The deployed target's definition, as YAML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_target: Option<String>,
    /// Set once the object may be taken over by the `gitops.kluctl.io` controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_for_migration: Option<bool>,
}

/// Outcome of one deploy, prune or validate run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastCommandResult {
    /// When the run was attempted.
    pub time: Time,
    /// Source revision used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// `spec.target` at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `spec.targetNameOverride` at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name_override: Option<String>,
    /// Hash of the rendered objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub objects_hash: String,
    /// The full Kluctl command result, serialized (upstream writes YAML, which JSON also satisfies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_result: Option<String>,
    /// Error of the run, empty on success.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Outcome of a validate run; the same fields as [`LastCommandResult`].
pub type LastValidateResult = LastCommandResult;
