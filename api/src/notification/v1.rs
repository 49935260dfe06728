//! `notification.toolkit.fluxcd.io/v1`: Receiver, and the object reference shared with Alert.
//!
//! A Receiver is an incoming webhook: a request to its path (derived from a token) makes the
//! notification-controller request a reconcile of the referenced objects.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::LocalObjectReference;
use crate::schema::{DURATION_PATTERN, conditions};

/// Kind name of the Receiver resource.
pub const RECEIVER_KIND: &str = "Receiver";

/// Prefix of every Receiver's webhook path.
pub const WEBHOOK_PATH_PREFIX: &str = "/hook/";

/// Audience expected in OIDC tokens when an `oidcProviders` entry sets none.
pub const DEFAULT_OIDC_AUDIENCE: &str = "notification-controller";

/// Receiver interval when the spec does not set one.
pub const DEFAULT_RECEIVER_INTERVAL: &str = "10m";

/// The CEL rules of the Receiver spec, `(rule, message)`, in CRD order.
pub const RECEIVER_RULES: [(&str, &str); 4] = [
    (
        "self.type != 'generic-oidc' || (has(self.oidcProviders) && size(self.oidcProviders) > 0)",
        "generic-oidc receivers must define at least one oidcProvider",
    ),
    (
        "self.type == 'generic-oidc' || !has(self.oidcProviders) || size(self.oidcProviders) == 0",
        "oidcProviders can only be set when type is generic-oidc",
    ),
    (
        "self.type != 'generic-oidc' || !has(self.secretRef)",
        "secretRef cannot be set when type is generic-oidc",
    ),
    (
        "self.type == 'generic-oidc' || has(self.secretRef)",
        "secretRef is required when type is not generic-oidc",
    ),
];

string_enum! {
    /// Kinds an Alert or Receiver may reference.
    pub enum ReferencedKind {
        /// `source.toolkit.fluxcd.io` Bucket.
        Bucket = "Bucket",
        /// `source.toolkit.fluxcd.io` `GitRepository`.
        GitRepository = "GitRepository",
        /// `kustomize.toolkit.fluxcd.io` Kustomization.
        Kustomization = "Kustomization",
        /// `helm.toolkit.fluxcd.io` `HelmRelease`.
        HelmRelease = "HelmRelease",
        /// `source.toolkit.fluxcd.io` `HelmChart`.
        HelmChart = "HelmChart",
        /// `source.toolkit.fluxcd.io` `HelmRepository`.
        HelmRepository = "HelmRepository",
        /// `image.toolkit.fluxcd.io` `ImageRepository`.
        ImageRepository = "ImageRepository",
        /// `image.toolkit.fluxcd.io` `ImagePolicy`.
        ImagePolicy = "ImagePolicy",
        /// `image.toolkit.fluxcd.io` `ImageUpdateAutomation`.
        ImageUpdateAutomation = "ImageUpdateAutomation",
        /// `source.toolkit.fluxcd.io` `OCIRepository`.
        OciRepository = "OCIRepository",
        /// `source.extensions.fluxcd.io` `ArtifactGenerator`.
        ArtifactGenerator = "ArtifactGenerator",
        /// `source.toolkit.fluxcd.io` `ExternalArtifact`.
        ExternalArtifact = "ExternalArtifact",
        /// `gitops.kluctl.io` `KluctlDeployment`.
        KluctlDeployment = "KluctlDeployment",
    }
}

/// Reference to a Flux object, possibly in another namespace, possibly all objects of a kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceObjectReference {
    /// API version of the referent; a kind-specific default when omitted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Kind of the referent.
    pub kind: ReferencedKind,
    /// Name of the referent; `*` matches every object of the kind.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the referent; the referrer's namespace when omitted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253))]
    pub namespace: String,
    /// Label selector narrowing a `*` name to the objects carrying all these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

string_enum! {
    /// Webhook flavours a Receiver understands.
    pub enum ReceiverType {
        /// Any request with the right path.
        Generic = "generic",
        /// Requests signed with an HMAC of the token (`X-Signature`).
        GenericHmac = "generic-hmac",
        /// Requests carrying an OIDC token checked against `oidcProviders`.
        GenericOidc = "generic-oidc",
        /// GitHub (and Gitea) webhooks.
        Github = "github",
        /// GitLab webhooks.
        Gitlab = "gitlab",
        /// Bitbucket Server webhooks.
        Bitbucket = "bitbucket",
        /// Harbor webhooks.
        Harbor = "harbor",
        /// Docker Hub webhooks.
        Dockerhub = "dockerhub",
        /// Quay webhooks.
        Quay = "quay",
        /// Google Container Registry Pub/Sub pushes.
        Gcr = "gcr",
        /// Nexus webhooks.
        Nexus = "nexus",
        /// Azure Container Registry webhooks.
        Acr = "acr",
        /// `CDEvents`.
        Cdevents = "cdevents",
    }
}

/// Desired state of a Receiver.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "notification.toolkit.fluxcd.io",
    version = "v1",
    kind = "Receiver",
    plural = "receivers",
    singular = "receiver",
    namespaced,
    status = "ReceiverStatus",
    derive = "PartialEq",
    doc = "An incoming webhook that triggers reconciliations of Flux objects.",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-notifications",
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(
    validation = kube::core::Rule::new(RECEIVER_RULES[0].0).message(RECEIVER_RULES[0].1),
    validation = kube::core::Rule::new(RECEIVER_RULES[1].0).message(RECEIVER_RULES[1].1),
    validation = kube::core::Rule::new(RECEIVER_RULES[2].0).message(RECEIVER_RULES[2].1),
    validation = kube::core::Rule::new(RECEIVER_RULES[3].0).message(RECEIVER_RULES[3].1)
)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// Webhook flavour, which decides how requests are authenticated and filtered.
    #[serde(rename = "type")]
    pub receiver_type: ReceiverType,

    /// How often the token Secret is re-read and the webhook path recomputed.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: String,

    /// Event types to accept (GitHub, GitLab, Bitbucket, `CDEvents`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,

    /// Objects to reconcile when a request is accepted.
    pub resources: Vec<ReceiverResource>,

    /// CEL expression over `res` (object metadata), `req` (request body) and, for OIDC, `claims`;
    /// only objects for which it is true are reconciled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_filter: String,

    /// Secret whose `token` key authenticates requests and seeds the webhook path; not used by
    /// `generic-oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// Token issuers trusted by a `generic-oidc` receiver, keyed by issuer URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["issuerURL".into()]))]
    pub oidc_providers: Vec<OidcProvider>,

    /// Stops handling requests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

fn default_interval() -> String {
    DEFAULT_RECEIVER_INTERVAL.to_string()
}

/// An object reference of a Receiver, with an optional per-entry filter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverResource {
    /// The referenced object(s).
    #[serde(flatten)]
    pub reference: CrossNamespaceObjectReference,
    /// CEL expression over `res` and `req` selecting which matched objects are reconciled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter: String,
}

/// A trusted OIDC token issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    /// Issuer URL; its discovery document provides the signing keys.
    #[serde(rename = "issuerURL")]
    #[schemars(regex(pattern = "^https?://"))]
    pub issuer_url: String,
    /// Expected token audience; `notification-controller` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub audience: String,
    /// Named CEL expressions over `claims`, usable as `variables.<name>` in the validations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<OidcVariable>,
    /// CEL conditions a token must all satisfy.
    #[schemars(length(min = 1))]
    pub validations: Vec<OidcValidation>,
}

/// A named CEL expression.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcVariable {
    /// Variable name.
    pub name: String,
    /// CEL expression computing the value.
    pub expression: String,
}

/// A CEL condition with the message returned when it fails.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcValidation {
    /// CEL expression that must be true.
    pub expression: String,
    /// Message returned when it is not.
    pub message: String,
}

/// Observed state of a Receiver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverStatus {
    /// Last handled value of the `reconcile.fluxcd.io/requestedAt` annotation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_handled_reconcile_at: String,
    /// Conditions, `Ready` first of all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
    /// Path the webhook is served under, `/hook/<sha256 hex>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub webhook_path: String,
    /// Generation handled by the last reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
