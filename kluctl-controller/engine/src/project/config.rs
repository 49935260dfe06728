//! The file formats of a Kluctl project, as typed data: `.kluctl.yaml`, `.kluctl-library.yaml`
//! and `deployment.yaml` (with its vars sources), plus the checks Kluctl makes after parsing.
//!
//! ```text
//! text (already Jinja-rendered) ──parse_*──► typed config ──validate──► ConfigError naming file + field
//! ```
//!
//! Parsing is strict like Kluctl's: an unknown field is an error, so a typo never silently drops
//! a setting. Free-form maps (`args`, `values`, `systemEnvVars`) are `serde_json::Value`; their
//! keys iterate sorted, which is also the order Kluctl hands them to Jinja2.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Why a project file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid YAML for this file type (unknown field, wrong type, syntax).
    #[error("failed to parse '{file}': {message}")]
    Parse {
        /// The file, relative to the project root.
        file: String,
        /// What the YAML parser said (with line and column).
        message: String,
    },
    /// The file parsed but breaks one of Kluctl's rules.
    #[error("invalid '{file}': {field}: {message}")]
    Invalid {
        /// The file, relative to the project root.
        file: String,
        /// Where in the file, e.g. `deployments[2]` or `vars[0].clusterSecret`.
        field: String,
        /// The rule that was broken.
        message: String,
    },
}

/// `.kluctl.yaml`: targets, argument declarations and the default discriminator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KluctlProjectConfig {
    /// The targets that commands select with `-t`.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Declared arguments; those without a default are required.
    #[serde(default)]
    pub args: Vec<ArgDefinition>,
    /// Default discriminator template for targets that set none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub discriminator: String,
    /// Default AWS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsConfig>,
}

/// `.kluctl-library.yaml`: marks an included project as a library with its own arguments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KluctlLibraryConfig {
    /// Declared arguments of the library.
    #[serde(default)]
    pub args: Vec<ArgDefinition>,
}

/// One target of `.kluctl.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// Unique name.
    pub name: String,
    /// Kubeconfig context; the current context when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Arguments this target passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// AWS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsConfig>,
    /// Fixed images for `images.get_image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<FixedImage>,
    /// Discriminator template of this target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub discriminator: String,
}

/// An argument declaration (`args[]` of `.kluctl.yaml` / `.kluctl-library.yaml`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgDefinition {
    /// The argument name; dots address nested values.
    pub name: String,
    /// The default; an argument without one is required. `default: null` counts as a default.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
}

/// AWS settings of a project or target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsConfig {
    /// Profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Service account whose IRSA role is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountRef>,
}

/// A service account reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountRef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// A fixed image: what `images.get_image(image)` returns when an entry matches. The same type
/// as `KluctlDeployment.spec.images`, so CLI, project and controller images are one thing.
pub use gitops_api::kluctl::v1beta1::{FixedImage, ObjectRef};

/// Checks Kluctl's rule for a fixed image: exactly one of `image` and `imageRegex`.
///
/// # Errors
/// A message in Kluctl's words.
pub fn check_fixed_image(image: &FixedImage) -> Result<(), &'static str> {
    match (&image.image, &image.image_regex) {
        (None, None) => Err("one of image or imageRegex must be set"),
        (Some(_), Some(_)) => Err("only one of image or imageRegex can be set"),
        _ => Ok(()),
    }
}

/// `deployment.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentProjectConfig {
    /// Vars sources, loaded in order after this file is rendered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<VarsSource>,
    /// Jinja2 condition; sub-projects only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub when: String,
    /// The deployment items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentItemConfig>,
    /// Labels added to every object below this project.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations added to every object below this project.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_annotations: BTreeMap<String, String>,
    /// Namespace for kustomizations that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_namespace: Option<String>,
    /// Tags of every item below this project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Fields ignored by diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_for_diff: Vec<IgnoreForDiffItem>,
    /// Conflict resolution rules for server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflict_resolution: Vec<ConflictResolutionItem>,
}

/// One item of `deployments[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentItemConfig {
    /// A kustomize/plain directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A local sub-project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// A sub-project from Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitProject>,
    /// A sub-project from an OCI registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciProject>,
    /// Objects deleted when this item is deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_objects: Vec<ObjectRefItem>,
    /// Tags (default: the base name of `path`/`include`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Wait for everything before this item.
    #[serde(default, skip_serializing_if = "is_false")]
    pub barrier: bool,
    /// Text shown at the barrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Generate the kustomization from subdirectories too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recursive: bool,
    /// Wait for this item's objects to be ready.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wait_readiness: bool,
    /// Objects to wait for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_readiness_objects: Vec<ObjectRefItem>,
    /// Arguments for an included project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Pass this project's vars to an included library.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pass_vars: bool,
    /// Vars visible to this item only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<VarsSource>,
    /// Keep objects when deleting/pruning with tag inclusion active.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_delete_if_tags: bool,
    /// Render but never deploy.
    #[serde(default, skip_serializing_if = "is_false")]
    pub only_render: bool,
    /// Deploy regardless of inclusion rules.
    #[serde(default, skip_serializing_if = "is_false")]
    pub always_deploy: bool,
    /// Jinja2 condition; the item is dropped when false.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub when: String,
}

/// A Git sub-project: a URL string or `{url, ref, subDir}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitProject {
    /// Repository URL.
    pub url: String,
    /// Ref to check out; the default branch when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<GitRef>,
    /// Directory inside the repository.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub_dir: String,
}

impl<'de> Deserialize<'de> for GitProject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Full {
            url: String,
            #[serde(default)]
            r#ref: Option<GitRef>,
            #[serde(default)]
            sub_dir: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Url(String),
            Full(Full),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Url(url) => Self {
                url,
                ..Self::default()
            },
            Form::Full(f) => Self {
                url: f.url,
                r#ref: f.r#ref,
                sub_dir: f.sub_dir,
            },
        })
    }
}

pub use crate::source::GitRef;

/// `vars[].git`: one file of a Git repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitVarsSource {
    /// Repository URL.
    pub url: String,
    /// Ref to read; the default branch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<GitRef>,
    /// The file inside the repository (Jinja-rendered like `file:` sources).
    pub path: String,
}

/// `vars[].gitFiles`: files of every ref matching a pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitFilesVarsSource {
    /// Repository URL.
    pub url: String,
    /// `branch`/`tag` are regular expressions over the names; `commit` picks the ref pointing
    /// at it; absent: the default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<GitRef>,
    /// Which files to read (first matching glob wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<GitFileSpec>,
}

/// One `gitFiles.files[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitFileSpec {
    /// Glob over the path in the repository (`*` stays within a directory, `**` spans them).
    pub glob: String,
    /// Render the file with the current vars.
    #[serde(default, skip_serializing_if = "is_false")]
    pub render: bool,
    /// Parse the content as YAML into `parsed`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub parse_yaml: bool,
    /// With `parseYaml`: the file holds several documents (a list).
    #[serde(default, skip_serializing_if = "is_false")]
    pub yaml_multi_doc: bool,
}

/// An OCI sub-project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OciProject {
    /// `oci://` URL.
    pub url: String,
    /// Tag or digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<OciRef>,
    /// Directory inside the artifact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_dir: String,
}

/// An OCI ref.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OciRef {
    /// Tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// An object reference in `deleteObjects` / `waitReadinessObjects`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRefItem {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// A string or a list of strings (`fieldPath: a` = `fieldPath: [a]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StringOrList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(Self(match Form::deserialize(deserializer)? {
            Form::One(s) => vec![s],
            Form::Many(v) => v,
        }))
    }
}

/// An `ignoreForDiff` rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoreForDiffItem {
    /// JSON paths.
    #[serde(default, skip_serializing_if = "is_empty_list")]
    pub field_path: StringOrList,
    /// Regular expressions on field paths.
    #[serde(default, skip_serializing_if = "is_empty_list")]
    pub field_path_regex: StringOrList,
    /// API group filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What a conflict resolution rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictAction {
    /// Keep the other manager's value.
    #[serde(rename = "ignore")]
    Ignore,
    /// Take the field over.
    #[serde(rename = "force-apply")]
    ForceApply,
}

/// A `conflictResolution` rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConflictResolutionItem {
    /// JSON paths.
    #[serde(default, skip_serializing_if = "is_empty_list")]
    pub field_path: StringOrList,
    /// Regular expressions on field paths.
    #[serde(default, skip_serializing_if = "is_empty_list")]
    pub field_path_regex: StringOrList,
    /// Regular expressions on the conflicting manager.
    #[serde(default, skip_serializing_if = "is_empty_list")]
    pub manager: StringOrList,
    /// API group filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The action.
    pub action: ConflictAction,
}

/// One entry of `vars[]`: exactly one source plus options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VarsSource {
    /// A missing file/object is not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_missing: Option<bool>,
    /// Only set values that are not set yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_override: Option<bool>,
    /// Values are sensitive (redacted in results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// The file holds several YAML documents (needs `targetPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multidoc: Option<bool>,
    /// Inline values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
    /// A file (Jinja-rendered) relative to the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A file from Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitVarsSource>,
    /// Files of many Git refs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_files: Option<GitFilesVarsSource>,
    /// A key of a ConfigMap in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_config_map: Option<ClusterConfigMapOrSecret>,
    /// A key of a Secret in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<ClusterConfigMapOrSecret>,
    /// A field of any cluster object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_object: Option<ClusterObject>,
    /// Environment variables of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_env_vars: Option<Value>,
    /// An HTTP response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
    /// AWS Secrets Manager (not supported by this build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secrets_manager: Option<Value>,
    /// GCP Secret Manager (not supported by this build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_secret_manager: Option<Value>,
    /// Vault (not supported by this build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<Value>,
    /// Azure Key Vault (not supported by this build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_key_vault: Option<Value>,
    /// Where below the vars root the loaded values go.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_path: String,
    /// Jinja2 condition; the source is skipped when false.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub when: String,
}

/// The kind of a [`VarsSource`], for messages and dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarsSourceKind {
    /// `values`
    Values,
    /// `file`
    File,
    /// `git`
    Git,
    /// `gitFiles`
    GitFiles,
    /// `clusterConfigMap`
    ClusterConfigMap,
    /// `clusterSecret`
    ClusterSecret,
    /// `clusterObject`
    ClusterObject,
    /// `systemEnvVars`
    SystemEnvVars,
    /// `http`
    Http,
    /// `awsSecretsManager`
    AwsSecretsManager,
    /// `gcpSecretManager`
    GcpSecretManager,
    /// `vault`
    Vault,
    /// `azureKeyVault`
    AzureKeyVault,
}

impl fmt::Display for VarsSourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Values => "values",
            Self::File => "file",
            Self::Git => "git",
            Self::GitFiles => "gitFiles",
            Self::ClusterConfigMap => "clusterConfigMap",
            Self::ClusterSecret => "clusterSecret",
            Self::ClusterObject => "clusterObject",
            Self::SystemEnvVars => "systemEnvVars",
            Self::Http => "http",
            Self::AwsSecretsManager => "awsSecretsManager",
            Self::GcpSecretManager => "gcpSecretManager",
            Self::Vault => "vault",
            Self::AzureKeyVault => "azureKeyVault",
        })
    }
}

impl VarsSource {
    /// The source kinds this entry sets (valid entries set exactly one).
    #[must_use]
    pub fn kinds(&self) -> Vec<VarsSourceKind> {
        use VarsSourceKind as K;
        [
            (self.values.is_some(), K::Values),
            (self.file.is_some(), K::File),
            (self.git.is_some(), K::Git),
            (self.git_files.is_some(), K::GitFiles),
            (self.cluster_config_map.is_some(), K::ClusterConfigMap),
            (self.cluster_secret.is_some(), K::ClusterSecret),
            (self.cluster_object.is_some(), K::ClusterObject),
            (self.system_env_vars.is_some(), K::SystemEnvVars),
            (self.http.is_some(), K::Http),
            (self.aws_secrets_manager.is_some(), K::AwsSecretsManager),
            (self.gcp_secret_manager.is_some(), K::GcpSecretManager),
            (self.vault.is_some(), K::Vault),
            (self.azure_key_vault.is_some(), K::AzureKeyVault),
        ]
        .into_iter()
        .filter_map(|(set, kind)| set.then_some(kind))
        .collect()
    }
}

/// `clusterConfigMap` / `clusterSecret`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfigMapOrSecret {
    /// Name (or `labels`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Label selector (or `name`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Namespace.
    pub namespace: String,
    /// The data key; its value is parsed as YAML.
    pub key: String,
    /// Where below the vars root the value goes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_path: String,
}

/// `clusterObject`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterObject {
    /// Kind.
    pub kind: String,
    /// API version; discovered from the kind when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name (or `labels`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Label selector (or `name`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Return a list of all matches.
    #[serde(default, skip_serializing_if = "is_false")]
    pub list: bool,
    /// JSON path of the value (`$` = whole object).
    pub path: String,
    /// Render the value with Jinja2.
    #[serde(default, skip_serializing_if = "is_false")]
    pub render: bool,
    /// Parse the value as YAML.
    #[serde(default, skip_serializing_if = "is_false")]
    pub parse_yaml: bool,
}

/// `http`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSource {
    /// URL.
    pub url: String,
    /// Method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON path into the (YAML/JSON) response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
}

// serde's `skip_serializing_if` takes `&T`.
#[allow(clippy::trivially_copy_pass_by_ref)]
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

fn is_empty_list(l: &StringOrList) -> bool {
    l.0.is_empty()
}

/// Deserializes a field that is present (even as `null`) into `Some`.
pub(crate) fn present_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn parse<T: serde::de::DeserializeOwned + Default>(text: &str, file: &str) -> Result<T, ConfigError> {
    // An empty file (or one holding only comments) is an empty config, as in Kluctl.
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Ok(T::default());
    }
    serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_owned(),
        message: e.to_string(),
    })
}

fn invalid(file: &str, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

/// Parses and checks `.kluctl.yaml` text.
///
/// # Errors
/// [`ConfigError::Parse`] for bad YAML or unknown fields, [`ConfigError::Invalid`] for a target
/// without a name, duplicate target names or an argument without a name.
pub fn parse_kluctl_project(text: &str, file: &str) -> Result<KluctlProjectConfig, ConfigError> {
    let config: KluctlProjectConfig = parse(text, file)?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in config.targets.iter().enumerate() {
        if t.name.is_empty() {
            return Err(invalid(file, format!("targets[{i}].name"), "required"));
        }
        if !seen.insert(t.name.as_str()) {
            return Err(invalid(
                file,
                format!("targets[{i}].name"),
                format!("duplicate target name '{}'", t.name),
            ));
        }
    }
    for (i, t) in config.targets.iter().enumerate() {
        for (j, image) in t.images.iter().enumerate() {
            check_fixed_image(image).map_err(|m| invalid(file, format!("targets[{i}].images[{j}]"), m))?;
        }
    }
    check_arg_definitions(&config.args, file)?;
    Ok(config)
}

/// Parses and checks `.kluctl-library.yaml` text.
///
/// # Errors
/// As [`parse_kluctl_project`].
pub fn parse_kluctl_library(text: &str, file: &str) -> Result<KluctlLibraryConfig, ConfigError> {
    let config: KluctlLibraryConfig = parse(text, file)?;
    check_arg_definitions(&config.args, file)?;
    Ok(config)
}

fn check_arg_definitions(args: &[ArgDefinition], file: &str) -> Result<(), ConfigError> {
    for (i, a) in args.iter().enumerate() {
        if a.name.is_empty() {
            return Err(invalid(file, format!("args[{i}].name"), "required"));
        }
    }
    Ok(())
}

/// Parses and checks `deployment.yaml` text (already rendered with Jinja2).
///
/// `is_root` marks the project's root `deployment.yaml`, which may not carry `when`.
///
/// # Errors
/// [`ConfigError::Parse`] for bad YAML or unknown fields; [`ConfigError::Invalid`] for every
/// rule Kluctl checks (one source per item, `recursive` and `waitReadiness` only with `path`,
/// `args`/`passVars` only on includes, object refs need `group` or `kind`, `ignoreForDiff` and
/// `conflictResolution` need a path or manager, one vars source per `vars` entry, ...).
pub fn parse_deployment_project(
    text: &str,
    file: &str,
    is_root: bool,
) -> Result<DeploymentProjectConfig, ConfigError> {
    let config: DeploymentProjectConfig = parse(text, file)?;
    if is_root && !config.when.is_empty() {
        return Err(invalid(
            file,
            "when",
            "the root deployment project can not contain 'when'",
        ));
    }
    check_vars(&config.vars, file, "vars")?;
    for (i, item) in config.deployments.iter().enumerate() {
        check_item(item, file, &format!("deployments[{i}]"))?;
    }
    for (i, rule) in config.ignore_for_diff.iter().enumerate() {
        if rule.field_path.0.is_empty() && rule.field_path_regex.0.is_empty() {
            return Err(invalid(
                file,
                format!("ignoreForDiff[{i}]"),
                "at least one of fieldPath or fieldPathRegex must be set",
            ));
        }
    }
    for (i, rule) in config.conflict_resolution.iter().enumerate() {
        if rule.field_path.0.is_empty() && rule.field_path_regex.0.is_empty() && rule.manager.0.is_empty() {
            return Err(invalid(
                file,
                format!("conflictResolution[{i}]"),
                "at least one of fieldPath, fieldPathRegex or manager must be set",
            ));
        }
    }
    Ok(config)
}

fn check_item(item: &DeploymentItemConfig, file: &str, at: &str) -> Result<(), ConfigError> {
    let sources = [
        item.path.is_some(),
        item.include.is_some(),
        item.git.is_some(),
        item.oci.is_some(),
    ];
    let is_include = item.include.is_some() || item.git.is_some() || item.oci.is_some();
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(invalid(
            file,
            at,
            "only one of path, include, git and oci can be set at the same time",
        ));
    }
    if item.recursive && item.path.is_none() {
        return Err(invalid(
            file,
            format!("{at}.recursive"),
            "recursive can only be set when path is set",
        ));
    }
    if item.wait_readiness && item.path.is_none() {
        return Err(invalid(
            file,
            format!("{at}.waitReadiness"),
            "only kustomize deployments are allowed to have waitReadiness set",
        ));
    }
    let has_args = item
        .args
        .as_ref()
        .is_some_and(|a| a.as_object().is_none_or(|m| !m.is_empty()));
    if has_args && !is_include {
        return Err(invalid(
            file,
            format!("{at}.args"),
            "args are only allowed when another project is included (via include, git or oci)",
        ));
    }
    if item.pass_vars && !is_include {
        return Err(invalid(
            file,
            format!("{at}.passVars"),
            "passVars is only allowed when another project is included (via include, git or oci)",
        ));
    }
    if let Some(git) = &item.git {
        if git.url.is_empty() {
            return Err(invalid(file, format!("{at}.git.url"), "required"));
        }
        if git.sub_dir.split('/').any(invalid_git_dir_name) {
            return Err(invalid(
                file,
                format!("{at}.git.subDir"),
                format!("'{}' is not valid git subdirectory path", git.sub_dir),
            ));
        }
    }
    for (list, name) in [
        (&item.delete_objects, "deleteObjects"),
        (&item.wait_readiness_objects, "waitReadinessObjects"),
    ] {
        for (j, r) in list.iter().enumerate() {
            if r.group.is_none() && r.kind.is_none() {
                return Err(invalid(
                    file,
                    format!("{at}.{name}[{j}]"),
                    "at least one of group or kind must be set",
                ));
            }
        }
    }
    check_vars(&item.vars, file, &format!("{at}.vars"))
}

/// Kluctl's forbidden characters in a Git sub directory name.
fn invalid_git_dir_name(name: &str) -> bool {
    name.chars().any(|c| {
        matches!(
            c,
            '\\' | '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '^' | '\0'
        ) || c.is_control()
    })
}

fn check_vars(vars: &[VarsSource], file: &str, at: &str) -> Result<(), ConfigError> {
    for (i, v) in vars.iter().enumerate() {
        let field = format!("{at}[{i}]");
        match v.kinds().len() {
            0 => return Err(invalid(file, field, "unknown vars source type")),
            1 => {}
            _ => return Err(invalid(file, field, "more then one vars source type")),
        }
        for (src, name) in [
            (&v.cluster_config_map, "clusterConfigMap"),
            (&v.cluster_secret, "clusterSecret"),
        ] {
            if let Some(s) = src {
                check_name_or_labels(&s.name, &s.labels, file, &format!("{field}.{name}"))?;
            }
        }
        if let Some(o) = &v.cluster_object {
            check_name_or_labels(&o.name, &o.labels, file, &format!("{field}.clusterObject"))?;
        }
        if v.multidoc == Some(true) && v.target_path.is_empty() {
            return Err(invalid(
                file,
                format!("{field}.multidoc"),
                "multidoc is only allowed together with targetPath",
            ));
        }
    }
    Ok(())
}

fn check_name_or_labels(
    name: &str,
    labels: &BTreeMap<String, String>,
    file: &str,
    at: &str,
) -> Result<(), ConfigError> {
    match (name.is_empty(), labels.is_empty()) {
        (true, true) => Err(invalid(file, at, "either name or labels must be set")),
        (false, false) => Err(invalid(file, at, "only one of name or labels can be set")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kluctl_yaml_parses_targets_args_and_discriminator() {
        let c = parse_kluctl_project(
            "discriminator: kluctl-{{ target.name }}\n\
             targets:\n  - name: prod\n    context: prod-ctx\n    args: {env: prod}\n\
             \x20   images:\n      - image: nginx\n        resultImage: nginx:1.25\n\
             args:\n  - name: env\n  - name: replicas\n    default: 2\n  - name: nothing\n    default: null\n",
            ".kluctl.yaml",
        )
        .unwrap();
        assert_eq!(c.discriminator, "kluctl-{{ target.name }}");
        assert_eq!(c.targets[0].context.as_deref(), Some("prod-ctx"));
        assert_eq!(c.targets[0].images[0].result_image, "nginx:1.25");
        assert_eq!(c.args[0].default, None, "no default: required");
        assert_eq!(c.args[1].default, Some(serde_json::json!(2)));
        assert_eq!(
            c.args[2].default,
            Some(Value::Null),
            "an explicit null is a default"
        );
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_file() {
        let e = parse_kluctl_project("targets:\n  - name: a\n    contxt: x\n", ".kluctl.yaml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("failed to parse '.kluctl.yaml'"), "{msg}");
        assert!(msg.contains("contxt"), "{msg}");
    }

    #[test]
    fn duplicate_target_names_are_rejected() {
        let e = parse_kluctl_project("targets: [{name: a}, {name: a}]", ".kluctl.yaml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid '.kluctl.yaml': targets[1].name: duplicate target name 'a'"
        );
    }

    #[test]
    fn empty_files_are_empty_configs() {
        assert_eq!(
            parse_deployment_project("# nothing\n", "deployment.yaml", true).unwrap(),
            DeploymentProjectConfig::default()
        );
        assert_eq!(
            parse_kluctl_project("", ".kluctl.yaml").unwrap(),
            KluctlProjectConfig::default()
        );
    }

    #[test]
    fn deployment_yaml_parses_every_item_kind() {
        let c = parse_deployment_project(
            "deployments:\n\
             \x20 - path: nginx\n    tags: [web]\n    waitReadiness: true\n\
             \x20 - include: sub\n    args: {a: 1}\n    passVars: true\n\
             \x20 - git: https://example.com/repo.git\n\
             \x20 - git: {url: https://example.com/r.git, ref: {tag: v1}, subDir: x/y}\n\
             \x20 - barrier: true\n    message: wait here\n\
             \x20 - deleteObjects: [{kind: ConfigMap, name: old}]\n\
             commonLabels: {a: b}\noverrideNamespace: ns\ntags: [t]\n\
             ignoreForDiff: [{fieldPath: metadata.labels.x}]\n\
             conflictResolution: [{manager: [kubectl], action: force-apply}]\n",
            "deployment.yaml",
            true,
        )
        .unwrap();
        assert_eq!(c.deployments.len(), 6);
        assert_eq!(
            c.deployments[2].git.as_ref().unwrap().url,
            "https://example.com/repo.git"
        );
        let g = c.deployments[3].git.as_ref().unwrap();
        assert_eq!(g.r#ref.as_ref().unwrap().tag.as_deref(), Some("v1"));
        assert_eq!(g.sub_dir, "x/y");
        assert!(c.deployments[4].barrier);
        assert_eq!(
            c.ignore_for_diff[0].field_path.0,
            vec!["metadata.labels.x".to_owned()]
        );
        assert_eq!(c.conflict_resolution[0].action, ConflictAction::ForceApply);
        assert_eq!(c.override_namespace.as_deref(), Some("ns"));
    }

    fn deployment_error(text: &str) -> String {
        parse_deployment_project(text, "sub/deployment.yaml", false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn item_rules_are_checked_with_kluctls_wording() {
        let cases = [
            (
                "deployments: [{path: a, include: b}]",
                "deployments[0]: only one of path, include, git and oci can be set at the same time",
            ),
            (
                "deployments: [{include: a, recursive: true}]",
                "deployments[0].recursive: recursive can only be set when path is set",
            ),
            (
                "deployments: [{include: a, waitReadiness: true}]",
                "deployments[0].waitReadiness: only kustomize deployments are allowed to have waitReadiness set",
            ),
            (
                "deployments: [{path: a, args: {x: 1}}]",
                "deployments[0].args: args are only allowed when another project is included (via include, git or oci)",
            ),
            (
                "deployments: [{path: a, passVars: true}]",
                "deployments[0].passVars: passVars is only allowed when another project is included (via include, git or oci)",
            ),
            (
                "deployments: [{deleteObjects: [{name: x}]}]",
                "deployments[0].deleteObjects[0]: at least one of group or kind must be set",
            ),
            (
                "vars: [{ignoreMissing: true}]",
                "vars[0]: unknown vars source type",
            ),
            (
                "vars: [{values: {a: 1}, file: x.yaml}]",
                "vars[0]: more then one vars source type",
            ),
            (
                "vars: [{clusterSecret: {namespace: a, key: b}}]",
                "vars[0].clusterSecret: either name or labels must be set",
            ),
            (
                "ignoreForDiff: [{kind: Secret}]",
                "ignoreForDiff[0]: at least one of fieldPath or fieldPathRegex must be set",
            ),
            (
                "deployments: [{git: {url: x, subDir: 'a/b:c'}}]",
                "deployments[0].git.subDir: 'a/b:c' is not valid git subdirectory path",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                deployment_error(text),
                format!("invalid 'sub/deployment.yaml': {want}"),
                "{text}"
            );
        }
    }

    #[test]
    fn root_project_may_not_have_when() {
        let e = parse_deployment_project("when: 'true'\n", "deployment.yaml", true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid 'deployment.yaml': when: the root deployment project can not contain 'when'"
        );
        assert!(parse_deployment_project("when: 'true'\n", "sub/deployment.yaml", false).is_ok());
    }

    #[test]
    fn vars_source_kinds_name_the_one_set() {
        let c = parse_deployment_project(
            "vars:\n  - systemEnvVars: {HOME_DIR: HOME}\n  - vault: {address: x, path: y}\n",
            "deployment.yaml",
            true,
        )
        .unwrap();
        assert_eq!(c.vars[0].kinds(), vec![VarsSourceKind::SystemEnvVars]);
        assert_eq!(c.vars[1].kinds()[0].to_string(), "vault");
    }
}
