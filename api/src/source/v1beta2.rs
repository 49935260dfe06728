//! `source.toolkit.fluxcd.io/v1beta2`: served but deprecated. Only here so that manifests written
//! for it still apply; objects are stored as `v1` and controllers should use [`super::v1`].
//!
//! The shape follows the last published `v1beta2` schema: the `v1` fields of that time plus
//! `gitImplementation`, `accessFrom` and the status fields `url` and `contentConfigChecksum`.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::{BucketProvider, BucketStsSpec, GitRepositoryInclude, GitRepositoryRef};
use super::{AccessFrom, DIGEST_PATTERN, INTERVAL_PATTERN, TIMEOUT_PATTERN, default_timeout, is_false};
use crate::meta::{Condition, LocalObjectReference, Time};

/// Artifact record of the `v1beta2` status: like the `v1` one, except that `digest` may be absent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Relative path of the artifact in the storage, `<kind>/<namespace>/<name>/<file>`.
    pub path: String,

    /// HTTP address of the artifact, as exposed by the controller's storage server.
    pub url: String,

    /// Human-readable identifier of the source state, e.g. `main@sha1:<hash>`.
    pub revision: String,

    /// Digest of the file in the form `<algorithm>:<checksum>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DIGEST_PATTERN))]
    pub digest: Option<String>,

    /// Time when the artifact was last updated on the storage.
    pub last_update_time: Time,

    /// Size of the file in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,

    /// Arbitrary metadata of the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Git client implementation selector of the old APIs (`spec.gitImplementation`); ignored, every
/// value behaves the same.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum GitImplementation {
    /// The pure-Go client.
    #[default]
    #[serde(rename = "go-git")]
    GoGit,
    /// The libgit2-based client.
    #[serde(rename = "libgit2")]
    Libgit2,
}

/// Verification mode of the old APIs (`spec.verify.mode`): only the HEAD commit could be verified.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum GitVerificationMode {
    /// Verify the signature of the commit that was checked out.
    #[default]
    #[serde(rename = "head")]
    Head,
}

// ---------------------------------------------------------------------------------------------
// GitRepository
// ---------------------------------------------------------------------------------------------

/// Desired state of a `v1beta2` GitRepository.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1beta2",
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
    deprecated = "v1beta2 GitRepository is deprecated, upgrade to v1",
    doc = "A Git repository mirrored as an artifact (deprecated v1beta2 form; use v1).",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".spec.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#
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
    #[schemars(pattern(INTERVAL_PATTERN))]
    pub interval: String,

    /// Time limit of each Git operation, as a Go duration without hours.
    #[serde(default = "default_timeout")]
    #[schemars(pattern(TIMEOUT_PATTERN))]
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

/// Signature verification settings of a `v1beta2` GitRepository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryVerification {
    /// What to verify; only `head` exists in this version.
    pub mode: GitVerificationMode,

    /// Secret holding the trusted PGP public keys.
    pub secret_ref: LocalObjectReference,
}

/// Observed state of a `v1beta2` GitRepository.
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

    /// Obsolete checksum over the settings that shape the artifact content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_config_checksum: Option<String>,

    /// `spec.ignore` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_ignore: Option<String>,

    /// `spec.recurseSubmodules` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "is_false")]
    pub observed_recurse_submodules: bool,

    /// `spec.include` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_include: Option<Vec<GitRepositoryInclude>>,

    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation that was last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Bucket
// ---------------------------------------------------------------------------------------------

/// Desired state of a `v1beta2` Bucket.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1beta2",
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
    deprecated = "v1beta2 Bucket is deprecated, upgrade to v1",
    doc = "An object storage bucket mirrored as an artifact (deprecated v1beta2 form; use v1).",
    printcolumn = r#"{"name": "Endpoint", "type": "string", "jsonPath": ".spec.endpoint"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(
    validation = Rule::new("self.provider == 'aws' || self.provider == 'generic' || !has(self.sts)")
        .message("STS configuration is only supported for the 'aws' and 'generic' Bucket providers"),
    validation = Rule::new("self.provider != 'aws' || !has(self.sts) || self.sts.provider == 'aws'")
        .message("'aws' is the only supported STS provider for the 'aws' Bucket provider"),
    validation = Rule::new("self.provider != 'generic' || !has(self.sts) || self.sts.provider == 'ldap'")
        .message("'ldap' is the only supported STS provider for the 'generic' Bucket provider"),
    validation = Rule::new("!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.secretRef)")
        .message("spec.sts.secretRef is not required for the 'aws' STS provider"),
    validation = Rule::new("!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.certSecretRef)")
        .message("spec.sts.certSecretRef is not required for the 'aws' STS provider")
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

    /// Temporary-credential (STS) endpoint; only for the `aws` and `generic` providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts: Option<BucketStsSpec>,

    /// Talk to `endpoint` over plain HTTP.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,

    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Only objects whose keys start with this prefix are fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,

    /// Secret in the same namespace with the provider credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// Secret in the same namespace with TLS material for the `generic` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,

    /// Secret in the same namespace naming a proxy for the storage traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,

    /// How often the bucket is listed for changes, as a Go duration.
    #[schemars(pattern(INTERVAL_PATTERN))]
    pub interval: String,

    /// Time limit of the fetch operations, as a Go duration without hours.
    #[serde(default = "default_timeout")]
    #[schemars(pattern(TIMEOUT_PATTERN))]
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

/// Observed state of a `v1beta2` Bucket.
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

    /// `spec.ignore` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_ignore: Option<String>,

    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation that was last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `v1beta2` GitRepository of the Kluctl microservices-demo tutorial.
    #[test]
    fn v1beta2_gitrepository_from_tutorial() {
        let yaml = r"
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: GitRepository
metadata:
  name: microservices-demo
  namespace: flux-system
spec:
  interval: 5m
  url: https://github.com/kluctl/kluctl-examples.git
  ref:
    branch: main
";
        let repo: GitRepository = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(repo.metadata.name.as_deref(), Some("microservices-demo"));
        assert_eq!(repo.spec.url, "https://github.com/kluctl/kluctl-examples.git");
        assert_eq!(repo.spec.interval, "5m");
        assert_eq!(repo.spec.timeout, "60s");
        assert_eq!(repo.spec.git_implementation, GitImplementation::GoGit);
        assert_eq!(repo.spec.reference.unwrap().branch.as_deref(), Some("main"));
    }

    #[test]
    fn v1beta2_old_fields() {
        let yaml = r#"
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: GitRepository
metadata:
  name: old
spec:
  url: ssh://git@example.com/repo
  interval: 1m
  gitImplementation: libgit2
  verify:
    mode: head
    secretRef:
      name: keys
  accessFrom:
    namespaceSelectors:
      - matchLabels:
          team: a
status:
  url: http://source-controller/gitrepository/default/old/latest.tar.gz
  contentConfigChecksum: sha256:abc
  artifact:
    path: gitrepository/default/old/abc.tar.gz
    url: http://source-controller/gitrepository/default/old/abc.tar.gz
    revision: main/abc
    lastUpdateTime: "2023-01-01T00:00:00Z"
"#;
        let repo: GitRepository = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(repo.spec.git_implementation, GitImplementation::Libgit2);
        assert_eq!(
            repo.spec.verification.as_ref().unwrap().mode,
            GitVerificationMode::Head
        );
        let access = repo.spec.access_from.as_ref().unwrap();
        assert_eq!(
            access.namespace_selectors[0].match_labels.as_ref().unwrap()["team"],
            "a"
        );
        let status = repo.status.as_ref().unwrap();
        assert_eq!(status.content_config_checksum.as_deref(), Some("sha256:abc"));
        assert_eq!(status.artifact.as_ref().unwrap().digest, None);

        let bucket: Bucket = serde_saphyr::from_str(
            "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: Bucket\nmetadata:\n  name: b\nspec:\n  \
             provider: azure\n  bucketName: b\n  endpoint: https://acct.blob.core.windows.net\n  interval: 10m\n  \
             accessFrom:\n    namespaceSelectors: []\n",
        )
        .unwrap();
        assert_eq!(bucket.spec.provider, BucketProvider::Azure);
        assert_eq!(bucket.spec.timeout, "60s");
        assert!(bucket.spec.access_from.unwrap().namespace_selectors.is_empty());
    }
}
