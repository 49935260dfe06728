//! `source.toolkit.fluxcd.io/v1beta1`: the oldest served version, deprecated. Only here so that
//! manifests written for it still apply; objects are stored as `v1` and controllers should use
//! [`super::v1`].
//!
//! Differences to the later versions: durations carry no pattern, the reference has no `name`,
//! the Bucket has no `azure` provider, STS, prefix or TLS/proxy secrets, and the artifact record
//! has the bare `checksum` instead of `digest`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::GitRepositoryInclude;
use super::v1beta2::{GitImplementation, GitVerificationMode};
use super::{AccessFrom, default_timeout, is_false};
use crate::meta::{Condition, LocalObjectReference, Time};

/// Artifact record of the `v1beta1` status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Relative path of the artifact in the storage.
    pub path: String,

    /// HTTP address of the artifact.
    pub url: String,

    /// Human-readable identifier of the source state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,

    /// SHA-256 hex of the artifact file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,

    /// Time when the artifact was last updated on the storage.
    pub last_update_time: Time,
}

// ---------------------------------------------------------------------------------------------
// GitRepository
// ---------------------------------------------------------------------------------------------

/// Desired state of a `v1beta1` GitRepository.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1beta1",
    kind = "GitRepository",
    plural = "gitrepositories",
    singular = "gitrepository",
    namespaced,
    status = "GitRepositoryStatus",
    derive = "PartialEq",
    shortname = "gitrepo",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-sources",
    served = true,
    storage = false,
    deprecated = "v1beta1 GitRepository is deprecated, upgrade to v1",
    doc = "A Git repository mirrored as an artifact (deprecated v1beta1 form; use v1).",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".spec.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// Address of the repository: `http://`, `https://` or `ssh://`.
    #[schemars(pattern(r"^(http|https|ssh)://.*$"))]
    pub url: String,

    /// Secret in the same namespace with the credentials for the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// How often the remote is checked for a new revision, as a Go duration.
    pub interval: String,

    /// Time limit of each Git operation, as a Go duration.
    #[serde(default = "default_timeout")]
    pub timeout: String,

    /// Reference to check out; when unset the `master` branch is used.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitRepositoryRef>,

    /// Signature verification of the checked-out commit.
    #[serde(default, rename = "verify", skip_serializing_if = "Option::is_none")]
    pub verification: Option<GitRepositoryVerification>,

    /// Exclusion rules in `.gitignore` syntax, replacing the default set when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,

    /// Stops reconciliation of this object while true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,

    /// Obsolete Git client selector; accepted and ignored.
    #[serde(default)]
    pub git_implementation: GitImplementation,

    /// Also clone the repository's submodules.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recurse_submodules: bool,

    /// Artifacts of other GitRepositories in the same namespace to copy into this artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<GitRepositoryInclude>>,

    /// Obsolete cross-namespace access list; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_from: Option<AccessFrom>,
}

/// The Git reference of a `v1beta1` GitRepository; `commit` wins over `semver`, which wins over
/// `tag`, which wins over `branch`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryRef {
    /// Branch to follow; `master` when nothing else is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,

    /// Tag to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,

    /// Semantic version constraint; the highest matching tag is checked out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,

    /// Full commit SHA to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Signature verification settings of a `v1beta1` GitRepository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryVerification {
    /// What to verify; only `head` exists in this version.
    pub mode: GitVerificationMode,

    /// Secret holding the trusted PGP public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// Observed state of a `v1beta1` GitRepository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryStatus {
    /// Generation of the object that the current status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Latest observations of the object's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// Stable address of the newest artifact, offered on a best-effort basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The artifact produced by the last successful reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,

    /// Artifacts of `spec.include` used for the current artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_artifacts: Option<Vec<Artifact>>,

    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation that was last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Bucket
// ---------------------------------------------------------------------------------------------

/// Desired state of a `v1beta1` Bucket.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1beta1",
    kind = "Bucket",
    plural = "buckets",
    singular = "bucket",
    namespaced,
    status = "BucketStatus",
    derive = "PartialEq",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-sources",
    served = true,
    storage = false,
    deprecated = "v1beta1 Bucket is deprecated, upgrade to v1",
    doc = "An object storage bucket mirrored as an artifact (deprecated v1beta1 form; use v1).",
    printcolumn = r#"{"name": "Endpoint", "type": "string", "jsonPath": ".spec.endpoint"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// Storage API to talk to; `generic` is any S3-compatible service.
    #[serde(default)]
    pub provider: BucketProvider,

    /// Name of the bucket.
    pub bucket_name: String,

    /// Address of the storage service.
    pub endpoint: String,

    /// Talk to `endpoint` over plain HTTP.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,

    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Secret in the same namespace with the provider credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// How often the bucket is listed for changes, as a Go duration.
    pub interval: String,

    /// Time limit of the fetch operations, as a Go duration.
    #[serde(default = "default_timeout")]
    pub timeout: String,

    /// Exclusion rules in `.gitignore` syntax applied to object keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,

    /// Stops reconciliation of this object while true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,

    /// Obsolete cross-namespace access list; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_from: Option<AccessFrom>,
}

/// Storage API of a `v1beta1` Bucket (no Azure yet).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum BucketProvider {
    /// Any S3-compatible service.
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// Amazon S3.
    #[serde(rename = "aws")]
    Aws,
    /// Google Cloud Storage.
    #[serde(rename = "gcp")]
    Gcp,
}

/// Observed state of a `v1beta1` Bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketStatus {
    /// Generation of the object that the current status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Latest observations of the object's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// Stable address of the newest artifact, offered on a best-effort basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The artifact produced by the last successful reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,

    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation that was last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `v1beta1` GitRepository of the DevOps-with-Kubernetes GitOps chapter.
    #[test]
    fn v1beta1_gitrepository_from_course() {
        let yaml = r"
apiVersion: source.toolkit.fluxcd.io/v1beta1
kind: GitRepository
metadata:
  name: example-repo
  namespace: flux-system
spec:
  interval: 10m
  url: https://github.com/kubernetes-hy/material-example
  ref:
    branch: master
";
        let repo: GitRepository = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(repo.metadata.namespace.as_deref(), Some("flux-system"));
        assert_eq!(repo.spec.url, "https://github.com/kubernetes-hy/material-example");
        assert_eq!(repo.spec.interval, "10m");
        assert_eq!(repo.spec.timeout, "60s");
        assert_eq!(
            repo.spec.reference.as_ref().unwrap().branch.as_deref(),
            Some("master")
        );
    }

    #[test]
    fn v1beta1_old_fields() {
        let yaml = r#"
apiVersion: source.toolkit.fluxcd.io/v1beta1
kind: GitRepository
metadata:
  name: old
spec:
  url: https://example.com/repo
  interval: 1m
  verify:
    mode: head
status:
  url: http://source-controller/gitrepository/default/old/latest.tar.gz
  artifact:
    path: gitrepository/default/old/abc.tar.gz
    url: http://source-controller/gitrepository/default/old/abc.tar.gz
    checksum: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
    lastUpdateTime: "2022-01-01T00:00:00Z"
"#;
        let repo: GitRepository = serde_saphyr::from_str(yaml).unwrap();
        let verify = repo.spec.verification.as_ref().unwrap();
        assert_eq!(verify.mode, GitVerificationMode::Head);
        assert_eq!(verify.secret_ref, None);
        let artifact = repo.status.as_ref().unwrap().artifact.as_ref().unwrap();
        assert_eq!(artifact.revision, None);
        assert!(artifact.checksum.is_some());

        let bucket: Bucket = serde_saphyr::from_str(
            "apiVersion: source.toolkit.fluxcd.io/v1beta1\nkind: Bucket\nmetadata:\n  name: b\nspec:\n  \
             bucketName: b\n  endpoint: minio:9000\n  interval: 1m\n  insecure: true\n",
        )
        .unwrap();
        assert_eq!(bucket.spec.provider, BucketProvider::Generic);
        assert!(bucket.spec.insecure);
        assert_eq!(bucket.spec.timeout, "60s");
    }
}
