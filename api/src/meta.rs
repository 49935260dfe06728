//! Shared building blocks of the API kinds: object references, the artifact record and
//! `metav1.Condition`.
//!
//! These mirror `github.com/fluxcd/pkg/apis/meta` field for field (JSON names, optionality), so a
//! status written by our source-controller reads the same to any Flux consumer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Reference to a resource in the same namespace as the referrer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the referent.
    pub name: String,
}

/// Reference to a Secret key in the same namespace as the referrer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyReference {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret; when not set, a kind-specific default key is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The output of a source reconciliation: a tarball in the source-controller's storage.
///
/// `digest` is the hash of the `.tar.gz` bytes served at `url`; consumers verify it after download.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Digest of the file in the form `<algorithm>:<checksum>`.
    #[schemars(regex(pattern = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"))]
    pub digest: String,
    /// Time when the artifact was last updated on the storage.
    pub last_update_time: Time,
    /// Arbitrary metadata of the artifact, e.g. upstream annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Relative path of the artifact in the storage, `<kind>/<namespace>/<name>/<file>`.
    pub path: String,
    /// Human-readable identifier of the source state, e.g. `main@sha1:<hash>` or `sha256:<digest>`.
    pub revision: String,
    /// Size of the file in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// HTTP address of the artifact, as exposed by the controller's storage server.
    pub url: String,
}

/// Artifact as written by the `v1beta2` API: the `v1` shape plus the deprecated bare `checksum`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactV1beta2 {
    /// Deprecated: the SHA-256 hex of the file; use `digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Digest of the file in the form `<algorithm>:<checksum>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"))]
    pub digest: Option<String>,
    /// Time when the artifact was last updated on the storage.
    pub last_update_time: Time,
    /// Arbitrary metadata of the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Relative path of the artifact in the storage.
    pub path: String,
    /// Human-readable identifier of the source state.
    pub revision: String,
    /// Size of the file in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// HTTP address of the artifact.
    pub url: String,
}

/// Reference to an object of a given kind, optionally in another namespace.
///
/// Used by Alert `eventSources`, Receiver `resources`, and the Kluctl `sourceRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedObjectKindReference {
    /// API version of the referent; when empty, the kind's preferred version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
    /// Namespace of the referent; when empty, the referrer's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
