//! `gitops.kluctl.io/v1beta1` `KluctlDeployment`: the upstream shape plus our `spec.sourceRef`/`spec.path`.
//!
//! Upstream requires `spec.source` (the controller clones Git or pulls OCI itself). We additionally
//! accept `spec.sourceRef`, a `GitRepository` or `Bucket` whose source-controller artifact holds the
//! project, with `spec.path` selecting the project directory inside it. Exactly one of the two must be
//! set; the CRD enforces this with CEL rules, and [`KluctlDeploymentSpec::validate`] performs the same
//! checks for clusters that cannot evaluate CEL.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::meta::{LocalObjectReference, SecretKeyReference};
use crate::schema::{DURATION_PATTERN, conditions, preserve_unknown_object, preserve_unknown_object_list};

pub use super::results::{
    AwsConfig, Change, ClusterInfo, CommandInfo, CommandResultSummary, DeploymentError, DriftDetectionResult,
    DriftedObject, GitInfo, KluctlDeploymentInfo, ProjectKey, ServiceAccountRef, Target, TargetKey,
    ValidateResult, ValidateResultEntry,
};
pub use super::validate::SpecError;

/// Kind name of the resource.
pub const KIND: &str = "KluctlDeployment";

/// CEL rule: `spec.source` and `spec.sourceRef` are mutually exclusive.
pub const RULE_SOURCE_EXCLUSIVE: &str = "!(has(self.source) && has(self.sourceRef))";
/// Message of [`RULE_SOURCE_EXCLUSIVE`].
pub const MSG_SOURCE_EXCLUSIVE: &str =
    "spec.source and spec.sourceRef are mutually exclusive: set exactly one of them";
/// CEL rule: one of `spec.source` and `spec.sourceRef` is set.
pub const RULE_SOURCE_REQUIRED: &str = "has(self.source) || has(self.sourceRef)";
/// Message of [`RULE_SOURCE_REQUIRED`].
pub const MSG_SOURCE_REQUIRED: &str = "one of spec.source or spec.sourceRef must be set";
/// CEL rule: `spec.path` only together with `spec.sourceRef`.
pub const RULE_PATH_NEEDS_SOURCE_REF: &str = "!has(self.path) || has(self.sourceRef)";
/// Message of [`RULE_PATH_NEEDS_SOURCE_REF`].
pub const MSG_PATH_NEEDS_SOURCE_REF: &str = "spec.path can only be set together with spec.sourceRef (use spec.source.git.path or spec.source.oci.path otherwise)";
/// CEL rule on `spec.path`: no leading `/`.
pub const RULE_PATH_RELATIVE: &str = "!self.matches('^/')";
/// Message of [`RULE_PATH_RELATIVE`].
pub const MSG_PATH_RELATIVE: &str =
    "spec.path must be relative to the artifact root and must not start with '/'";
/// CEL rule on `spec.path`: no `..` segment.
pub const RULE_PATH_NO_PARENT: &str = "!self.matches('(^|/)[.][.](/|$)')";
/// Message of [`RULE_PATH_NO_PARENT`].
pub const MSG_PATH_NO_PARENT: &str =
    "spec.path must not contain '..' segments: it must stay inside the artifact";

/// Pattern of the deploy and validate intervals: a duration, prefix-matched as upstream does.
const SAFE_DURATION_PATTERN: &str = r"^(([0-9]+(\.[0-9]+)?(ms|s|m|h))+)";

/// Desired state of a `KluctlDeployment`: where the Kluctl project comes from, which target to deploy
/// and how often, and the options passed to the deploy, validate and prune runs.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitops.kluctl.io",
    version = "v1beta1",
    kind = "KluctlDeployment",
    plural = "kluctldeployments",
    singular = "kluctldeployment",
    namespaced,
    status = "KluctlDeploymentStatus",
    derive = "PartialEq",
    doc = "A Kluctl project deployed (and kept deployed) to a target by the kluctl-controller.",
    printcolumn = r#"{"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"}"#,
    printcolumn = r#"{"name": "DryRun", "type": "boolean", "jsonPath": ".spec.dryRun"}"#,
    printcolumn = r#"{"name": "Deployed", "type": "date", "jsonPath": ".status.lastDeployResult.commandInfo.endTime"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Drift", "type": "string", "jsonPath": ".status.lastDriftDetectionResultMessage"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = kube::core::Rule::new(RULE_SOURCE_EXCLUSIVE).message(MSG_SOURCE_EXCLUSIVE),
    validation = kube::core::Rule::new(RULE_SOURCE_REQUIRED).message(MSG_SOURCE_REQUIRED),
    validation = kube::core::Rule::new(RULE_PATH_NEEDS_SOURCE_REF).message(MSG_PATH_NEEDS_SOURCE_REF)
)]
#[serde(rename_all = "camelCase")]
pub struct KluctlDeploymentSpec {
    /// Location of the project: a Git repository or an OCI artifact fetched by the controller.
    /// Mutually exclusive with `sourceRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ProjectSource>,

    /// Extension of this project (not upstream): a `GitRepository` or `Bucket` whose artifact holds the
    /// project. Mutually exclusive with `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<CrossNamespaceSourceReference>,

    /// Extension of this project (not upstream): directory of the project inside the `sourceRef`
    /// artifact, relative to its root, without `..` segments. Defaults to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = kube::core::Rule::new(RULE_PATH_RELATIVE).message(MSG_PATH_RELATIVE),
        validation = kube::core::Rule::new(RULE_PATH_NO_PARENT).message(MSG_PATH_NO_PARENT)
    )]
    pub path: Option<String>,

    /// Replacements of repositories referenced by the project, e.g. local checkouts served by
    /// `kluctl gitops --local-git-override`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_overrides: Vec<SourceOverride>,

    /// Credentials for Git, OCI and Helm repositories the project pulls from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ProjectCredentials>,

    /// SOPS decryption of secrets before they are applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<Decryption>,

    /// How often the project is rendered; a deploy happens when the rendered objects changed.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: String,

    /// Delay before retrying after a failed reconciliation; defaults to `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub retry_interval: Option<String>,

    /// Period of forced deploys even when nothing changed; unset means no periodic deploys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SAFE_DURATION_PATTERN))]
    pub deploy_interval: Option<String>,

    /// Period of validation runs; defaults to `interval`. A deploy is always followed by a validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SAFE_DURATION_PATTERN))]
    pub validate_interval: Option<String>,

    /// Time budget of a whole reconciliation; defaults to `deployInterval` when set, else `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,

    /// Stops further reconciliations (runs already in progress finish).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// Deprecated and rejected at reconcile time: use `credentials.helm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helm_credentials: Vec<HelmCredentials>,

    /// Service account impersonated while deploying; defaults to the controller's configured one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,

    /// Kubeconfig (from a Secret) of the cluster to deploy to, instead of the controller's cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_config: Option<KubeConfig>,

    /// Name of the target from `.kluctl.yaml`; omit for projects without targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub target: Option<String>,

    /// Target name to use instead of (or in the absence of) the target's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub target_name_override: Option<String>,

    /// Kubeconfig context to use instead of the one the target names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,

    /// Target arguments, as passed with `-a name=value` on the command line; values may be nested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub args: Option<Map<String, Value>>,

    /// Fixed image overrides, like `--fixed-images-file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<FixedImage>,

    /// Run every command in dry-run mode (`--dry-run`).
    #[serde(default)]
    pub dry_run: bool,

    /// Do not wait for objects and hooks to become ready (`--no-wait`).
    #[serde(default)]
    pub no_wait: bool,

    /// Take over fields owned by other managers on apply conflicts (`--force-apply`).
    #[serde(default)]
    pub force_apply: bool,

    /// Replace objects whose apply failed (`--replace-on-error`).
    #[serde(default)]
    pub replace_on_error: bool,

    /// Delete and recreate objects when a replace failed too (`--force-replace-on-error`).
    #[serde(default)]
    pub force_replace_on_error: bool,

    /// Stop a deploy at the first error (`--abort-on-error`).
    #[serde(default)]
    pub abort_on_error: bool,

    /// Deploy only the deployment items carrying one of these tags (`--include-tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_tags: Vec<String>,

    /// Skip the deployment items carrying one of these tags (`--exclude-tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tags: Vec<String>,

    /// Deploy only these deployment directories (`--include-deployment-dir`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_deployment_dirs: Vec<String>,

    /// Skip these deployment directories (`--exclude-deployment-dir`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_deployment_dirs: Vec<String>,

    /// `full-deploy` deploys everything; `poke-images` only patches images into existing objects.
    #[serde(default)]
    pub deploy_mode: DeployMode,

    /// Validate the deployed objects after each deploy and every `validateInterval`.
    #[serde(default = "default_true")]
    pub validate: bool,

    /// Delete orphaned objects as part of each deploy.
    #[serde(default)]
    pub prune: bool,

    /// Delete the target's objects when this `KluctlDeployment` is deleted.
    #[serde(default)]
    pub delete: bool,

    /// Manual mode: deploy for real only what was approved through `manualObjectsHash`, dry-run otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,

    /// Rendered-objects hash approved for deployment in manual mode (a copy of
    /// `status.lastObjectsHash`, typically set by the web UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_objects_hash: Option<String>,
}

fn default_true() -> bool {
    true
}

/// Where the controller fetches the project from: exactly one of `git`, `oci` or the deprecated
/// top-level `url`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSource {
    /// A Git repository holding the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<ProjectSourceGit>,

    /// An OCI artifact holding the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<ProjectSourceOci>,

    /// Deprecated: Git URL of the project; use `git.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Deprecated: Git reference to check out; use `git.ref`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRef>,

    /// Deprecated: project directory in the repository; use `git.path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,

    /// Deprecated and rejected at reconcile time: use `spec.credentials.git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub secret_ref: Option<Map<String, Value>>,

    /// Deprecated and rejected at reconcile time: use `spec.credentials.git`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_object_list")]
    pub credentials: Vec<Map<String, Value>>,
}

/// A Git repository as project source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSourceGit {
    /// Clone URL (HTTPS or SSH); credentials come from `spec.credentials.git`.
    pub url: String,

    /// Branch, tag or commit to check out; the default branch when omitted.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRef>,

    /// Sub-directory of the repository holding the project.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// An OCI artifact as project source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSourceOci {
    /// Artifact URL, `oci://` without tag or digest; credentials come from `spec.credentials.oci`.
    pub url: String,

    /// Tag or digest to pull; `latest` when omitted.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub oci_ref: Option<OciRef>,

    /// Sub-directory of the artifact holding the project.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// Git reference; exactly one field is expected to be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// Branch name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// Tag name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Full commit SHA.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
}

/// OCI reference; a digest wins over a tag.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciRef {
    /// Digest to pull, `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Tag to pull; `latest` when neither tag nor digest is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
}

/// Kinds a `sourceRef` may point to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SourceKind {
    /// A `source.toolkit.fluxcd.io` `GitRepository`.
    #[default]
    GitRepository,
    /// A `source.toolkit.fluxcd.io` Bucket.
    Bucket,
}

impl SourceKind {
    /// The kind name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitRepository => "GitRepository",
            Self::Bucket => "Bucket",
        }
    }
}

/// Reference to a source-controller object, optionally in another namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceSourceReference {
    /// API version of the source; the served preferred version when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the source.
    pub kind: SourceKind,
    /// Name of the source.
    pub name: String,
    /// Namespace of the source; the `KluctlDeployment`'s namespace when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Repository replacement used while rendering the project.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceOverride {
    /// Key of the repository to replace, e.g. `git://github.com/org/repo`.
    pub repo_key: String,
    /// URL to use instead.
    pub url: String,
    /// Whether `repoKey` is a prefix matching a group of repositories.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_group: bool,
}

/// Credentials for the repositories a project pulls from; within each list the first match wins.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCredentials {
    /// Git credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git: Vec<ProjectCredentialsGit>,
    /// OCI registry credentials, also used for Helm charts in OCI registries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oci: Vec<ProjectCredentialsOci>,
    /// Helm repository credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helm: Vec<ProjectCredentialsHelm>,
}

/// Git credentials for one host (and optionally a path glob).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCredentialsGit {
    /// Host these credentials are for; `*` matches every host but is ignored for HTTP(S) URLs.
    pub host: String,
    /// Glob on the repository path; every repository of the host when omitted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Secret with `username`/`password` (HTTPS) or `identity`/`known_hosts` (SSH), optionally `caFile`.
    pub secret_ref: LocalObjectReference,
}

/// OCI registry credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCredentialsOci {
    /// Registry host these credentials are for.
    pub registry: String,
    /// `org/repo` filter; either part may be a wildcard. Every repository when omitted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// Secret with `username`/`password` or `token`, and optional TLS settings.
    pub secret_ref: LocalObjectReference,
}

/// Helm repository credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCredentialsHelm {
    /// Host these credentials are for.
    pub host: String,
    /// Glob on the URL path; every URL of the host when omitted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Secret with basic-auth or TLS client credentials, `caFile`, and the flags
    /// `insecureSkipTlsVerify` / `passCredentialsAll`.
    pub secret_ref: LocalObjectReference,
}

/// Decryption engines.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecryptionProvider {
    /// Mozilla SOPS.
    #[default]
    Sops,
}

/// Secret decryption settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decryption {
    /// Decryption engine.
    pub provider: DecryptionProvider,
    /// Secret holding the private keys (PGP, age, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Service account whose token is exchanged for cloud credentials (AWS KMS via IRSA).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
}

/// Deprecated Helm credentials entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmCredentials {
    /// Secret with a `url` key plus basic-auth or TLS credentials.
    pub secret_ref: LocalObjectReference,
}

/// Kubeconfig of the cluster to deploy to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeConfig {
    /// Secret key holding a self-contained kubeconfig; key `value` (then `value.yaml`) when not given.
    pub secret_ref: SecretKeyReference,
}

/// What a deploy does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeployMode {
    /// A full `kluctl deploy`.
    #[default]
    #[serde(rename = "full-deploy")]
    FullDeploy,
    /// Only `kluctl poke-images`: patch images into the already deployed objects.
    #[serde(rename = "poke-images")]
    PokeImages,
}

/// Reference to a Kubernetes object as Kluctl writes it in results and image filters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API group; empty for the core group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl std::fmt::Display for ObjectRef {
    /// `namespace/Kind/name`, `Kind/name` or `Kind`, as Kluctl prints references.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.namespace.is_empty(), self.name.is_empty()) {
            (false, _) => write!(f, "{}/{}/{}", self.namespace, self.kind, self.name),
            (true, false) => write!(f, "{}/{}", self.kind, self.name),
            (true, true) => f.write_str(&self.kind),
        }
    }
}

/// Image override: every image matching `image` (or `imageRegex`) and the optional filters becomes
/// `resultImage`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FixedImage {
    /// Exact image name to match (without tag). Exactly one of `image` and `imageRegex` is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Regular expression matched against the image name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_regex: Option<String>,
    /// Image to use instead.
    pub result_image: String,
    /// Image seen in the deployed object; filled in by Kluctl in results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_image: Option<String>,
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
    /// Only deployment items carrying all of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deploy_tags: Vec<String>,
    /// Only this deployment directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_dir: Option<String>,
}

/// Observed state of a `KluctlDeployment`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KluctlDeploymentStatus {
    /// Outcome of the last request made through the `kluctl.io/request-reconcile` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_request_result: Option<ManualRequestResult>,
    /// Outcome of the last request made through the `kluctl.io/request-diff` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_request_result: Option<ManualRequestResult>,
    /// Outcome of the last request made through the `kluctl.io/request-deploy` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_request_result: Option<ManualRequestResult>,
    /// Outcome of the last request made through the `kluctl.io/request-prune` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_request_result: Option<ManualRequestResult>,
    /// Outcome of the last request made through the `kluctl.io/request-validate` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate_request_result: Option<ManualRequestResult>,

    /// Generation handled by the last complete reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Commit of the source that was checked out last.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observed_commit: String,
    /// Conditions, `Ready` first of all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,

    /// Repository and sub-directory of the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_key: Option<ProjectKey>,
    /// Identity of the deployed target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key: Option<TargetKey>,

    /// Hash of all objects rendered by the last reconciliation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_objects_hash: String,
    /// `spec.manualObjectsHash` as seen by the last reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_manual_objects_hash: Option<String>,
    /// Full text of the last error while loading or rendering the project.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_prepare_error: String,

    /// Summary of the last manually requested diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub last_diff_result: Option<CommandResultSummary>,
    /// Summary of the last deploy (or poke-images, or manual prune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub last_deploy_result: Option<CommandResultSummary>,
    /// Full result of the last validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub last_validate_result: Option<ValidateResult>,
    /// Result of the last drift detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub last_drift_detection_result: Option<DriftDetectionResult>,
    /// One-line drift summary such as `no drift` or `2 chg/1 orp`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_drift_detection_result_message: String,
}

/// Content of a manual request annotation (JSON).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualRequest {
    /// The annotation value identifying the request (usually a timestamp).
    pub request_value: String,
    /// Patch applied to the spec for this request only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub overrides_patch: Option<Map<String, Value>>,
}

/// Progress and outcome of a manual request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualRequestResult {
    /// The request being handled.
    pub request: ManualRequest,
    /// When handling started.
    pub start_time: Time,
    /// When handling finished; unset while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Reconciliation that handled the request.
    pub reconcile_id: String,
    /// Id of the stored command result, if one was produced.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result_id: String,
    /// Error of the command, if it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command_error: String,
}
