//! `source.toolkit.fluxcd.io/v1`: the storage version of GitRepository and Bucket, and the types
//! the controllers work with.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{INTERVAL_PATTERN, TIMEOUT_PATTERN, default_timeout, is_false};
use crate::meta::{Artifact, Condition, LocalObjectReference};

// ---------------------------------------------------------------------------------------------
// GitRepository
// ---------------------------------------------------------------------------------------------

/// Desired state of a GitRepository: which repository and reference to fetch, how often, and how to
/// turn the checkout into an artifact.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
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
    doc = "A Git repository that the source-controller fetches periodically and publishes as a tarball artifact.",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".spec.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(
    validation = Rule::new("!has(self.serviceAccountName) || (has(self.provider) && (self.provider == 'azure' || self.provider == 'aws'))")
        .message("serviceAccountName can only be set when provider is 'azure' or 'aws'")
)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// Address of the repository: `http://`, `https://` or `ssh://` (SCP-like `user@host:path` is
    /// not accepted; write `ssh://user@host/path` instead).
    #[schemars(pattern(r"^(http|https|ssh)://.*$"))]
    pub url: String,

    /// Secret in the same namespace with the credentials for the repository: `username`/`password`
    /// or `bearerToken` for HTTPS, `identity`/`known_hosts` for SSH, GitHub App data for the
    /// `github` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// How credentials are obtained: `generic` (from `secretRef`, the behaviour when unset), or
    /// the cloud/App integrations `aws`, `azure` and `github`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<GitProvider>,

    /// ServiceAccount whose workload identity is used to authenticate; only valid with the `azure`
    /// and `aws` providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// How often the remote is checked for a new revision, as a Go duration (e.g. `5m`). The real
    /// period may deviate slightly because of jitter.
    #[schemars(pattern(INTERVAL_PATTERN))]
    pub interval: String,

    /// Time limit of each Git operation (clone, fetch, ls-remote), as a Go duration without hours.
    #[serde(default = "default_timeout")]
    #[schemars(pattern(TIMEOUT_PATTERN))]
    pub timeout: String,

    /// Reference to check out; when unset the `master` branch is used.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitRepositoryRef>,

    /// Commit/tag signature verification; the artifact is only produced when it passes.
    #[serde(default, rename = "verify", skip_serializing_if = "Option::is_none")]
    pub verification: Option<GitRepositoryVerification>,

    /// Secret in the same namespace naming a proxy for the Git traffic (keys `address`, and
    /// optionally `username` and `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,

    /// Exclusion rules in `.gitignore` syntax, replacing the default set of excluded files when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,

    /// Stops reconciliation of this object while true; the current artifact stays available.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,

    /// Also clone the repository's submodules (recursively, with their default settings).
    #[serde(default, skip_serializing_if = "is_false")]
    pub recurse_submodules: bool,

    /// Artifacts of other GitRepositories in the same namespace to copy into this artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<GitRepositoryInclude>>,

    /// Limit the checkout to these directories (Git sparse checkout); the artifact then holds only
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_checkout: Option<Vec<String>>,
}

impl Default for GitRepositorySpec {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret_ref: None,
            provider: None,
            service_account_name: None,
            interval: String::new(),
            timeout: default_timeout(),
            reference: None,
            verification: None,
            proxy_secret_ref: None,
            ignore: None,
            suspend: false,
            recurse_submodules: false,
            include: None,
            sparse_checkout: None,
        }
    }
}

/// Where the GitRepository's credentials come from: `generic` (`spec.secretRef`, also the behaviour
/// when unset), `aws` or `azure` (workload identity), or `github` (GitHub App data in `spec.secretRef`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum GitProvider {
    /// Credentials come from `spec.secretRef` (or none at all).
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// AWS CodeCommit with credentials from the workload identity.
    #[serde(rename = "aws")]
    Aws,
    /// Azure DevOps with credentials from the workload identity.
    #[serde(rename = "azure")]
    Azure,
    /// GitHub App installation token, App data taken from `spec.secretRef`.
    #[serde(rename = "github")]
    Github,
}

/// The Git reference to resolve. When several fields are set the most specific wins:
/// `commit`, then `name`, then `semver`, then `tag`, then `branch`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryRef {
    /// Branch to follow; `master` when no field of the reference is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,

    /// Tag to check out; wins over `branch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,

    /// Semantic version constraint; the highest matching tag is checked out. Wins over `tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,

    /// Full reference name such as `refs/heads/main`, `refs/tags/v1.0.0` or `refs/pull/7/head`;
    /// wins over `branch`, `tag` and `semver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Full commit SHA to check out; wins over every other field. Together with `branch` only that
    /// branch is fetched, and it must contain the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Signature verification settings of a GitRepository (`spec.verify`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryVerification {
    /// What to verify: the commit at HEAD, the tag object, or both.
    #[serde(default)]
    pub mode: GitVerificationMode,

    /// Secret holding the trusted public keys: armored PGP keys under keys ending in `.asc`, SSH
    /// public keys under keys ending in `.sshpub`.
    pub secret_ref: LocalObjectReference,
}

/// Which Git objects must carry a valid signature (`spec.verify.mode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum GitVerificationMode {
    /// Legacy lower-case spelling of [`GitVerificationMode::Head`]; same meaning.
    #[serde(rename = "head")]
    LegacyHead,
    /// The commit the checked-out reference points to.
    #[default]
    #[serde(rename = "HEAD")]
    Head,
    /// The annotated tag that was checked out.
    Tag,
    /// Both the annotated tag and the commit it points to.
    #[serde(rename = "TagAndHEAD")]
    TagAndHead,
}

impl GitVerificationMode {
    /// Whether the commit signature must be checked.
    pub fn verifies_head(self) -> bool {
        matches!(self, Self::LegacyHead | Self::Head | Self::TagAndHead)
    }

    /// Whether the tag signature must be checked.
    pub fn verifies_tag(self) -> bool {
        matches!(self, Self::Tag | Self::TagAndHead)
    }

    /// The canonical spelling, as recorded in `status.sourceVerificationMode` (`head` becomes `HEAD`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LegacyHead | Self::Head => "HEAD",
            Self::Tag => "Tag",
            Self::TagAndHead => "TagAndHEAD",
        }
    }
}

/// Another GitRepository whose artifact is copied into this one (`spec.include[]`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryInclude {
    /// The GitRepository, in the same namespace, to take the artifact from.
    #[serde(rename = "repository")]
    pub git_repository_ref: LocalObjectReference,

    /// Directory inside the included artifact to copy; the artifact root when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_path: Option<String>,

    /// Directory of this checkout to copy into; the included repository's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_path: Option<String>,
}

/// Observed state of a GitRepository, written by the source-controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryStatus {
    /// Generation of the object that the current status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Latest observations of the object's state (`Ready`, `Reconciling`, `Stalled`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// The artifact produced by the last successful reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,

    /// Artifacts of `spec.include` used for the current artifact, in the same order as the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_artifacts: Option<Vec<Artifact>>,

    /// `spec.ignore` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_ignore: Option<String>,

    /// `spec.recurseSubmodules` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "is_false")]
    pub observed_recurse_submodules: bool,

    /// `spec.include` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_include: Option<Vec<GitRepositoryInclude>>,

    /// `spec.sparseCheckout` as it was when the current artifact was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_sparse_checkout: Option<Vec<String>>,

    /// Verification mode that the current artifact passed (`HEAD`, `Tag` or `TagAndHEAD`); unset
    /// when nothing was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_verification_mode: Option<String>,

    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation that was last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Bucket
// ---------------------------------------------------------------------------------------------

/// Desired state of a Bucket: which object storage bucket to mirror, how often, and with which
/// credentials.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "Bucket",
    plural = "buckets",
    singular = "bucket",
    namespaced,
    status = "BucketStatus",
    derive = "PartialEq",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-sources",
    doc = "An object storage bucket that the source-controller mirrors periodically and publishes as a tarball artifact.",
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
        .message("spec.sts.certSecretRef is not required for the 'aws' STS provider"),
    validation = Rule::new("self.provider != 'generic' || !has(self.serviceAccountName)")
        .message("ServiceAccountName is not supported for the 'generic' Bucket provider"),
    validation = Rule::new("!has(self.secretRef) || !has(self.serviceAccountName)")
        .message("cannot set both .spec.secretRef and .spec.serviceAccountName")
)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// Storage API to talk to; `generic` is any S3-compatible service.
    #[serde(default)]
    pub provider: BucketProvider,

    /// Name of the bucket.
    pub bucket_name: String,

    /// Address of the storage service: `host[:port]` for S3-compatible services (HTTPS unless
    /// `insecure`), the account URL for Azure.
    pub endpoint: String,

    /// Temporary-credential (STS) endpoint; only for the `aws` and `generic` providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts: Option<BucketStsSpec>,

    /// Talk to `endpoint` over plain HTTP.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,

    /// Region of the bucket, for providers that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Only objects whose keys start with this prefix are listed and fetched (the keys keep the
    /// prefix inside the artifact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,

    /// Secret in the same namespace with the provider credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// ServiceAccount whose workload identity is used to authenticate; not for the `generic`
    /// provider, and not together with `secretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Secret in the same namespace with TLS material for the `generic` provider: a client
    /// certificate pair (`tls.crt`, `tls.key`) and/or a CA bundle (`ca.crt`). Type `Opaque` or
    /// `kubernetes.io/tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,

    /// Secret in the same namespace naming a proxy for the storage traffic (keys `address`, and
    /// optionally `username` and `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,

    /// How often the bucket is listed for changes, as a Go duration (e.g. `5m`). The real period may
    /// deviate slightly because of jitter.
    #[schemars(pattern(INTERVAL_PATTERN))]
    pub interval: String,

    /// Time limit of the listing phase and, separately, of the download phase, as a Go duration
    /// without hours.
    #[serde(default = "default_timeout")]
    #[schemars(pattern(TIMEOUT_PATTERN))]
    pub timeout: String,

    /// Exclusion rules in `.gitignore` syntax applied to object keys before download, replacing
    /// the default set when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,

    /// Stops reconciliation of this object while true; the current artifact stays available.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
}

impl Default for BucketSpec {
    fn default() -> Self {
        Self {
            provider: BucketProvider::default(),
            bucket_name: String::new(),
            endpoint: String::new(),
            sts: None,
            insecure: false,
            region: None,
            prefix: None,
            secret_ref: None,
            service_account_name: None,
            cert_secret_ref: None,
            proxy_secret_ref: None,
            interval: String::new(),
            timeout: default_timeout(),
            ignore: None,
            suspend: false,
        }
    }
}

/// Storage API of a Bucket (`spec.provider`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum BucketProvider {
    /// Any S3-compatible service (MinIO client).
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// Amazon S3.
    #[serde(rename = "aws")]
    Aws,
    /// Google Cloud Storage.
    #[serde(rename = "gcp")]
    Gcp,
    /// Azure Blob Storage.
    #[serde(rename = "azure")]
    Azure,
}

/// Security Token Service from which a Bucket obtains temporary credentials (`spec.sts`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketStsSpec {
    /// Kind of STS: `aws` for the `aws` Bucket provider, `ldap` for the `generic` one.
    pub provider: BucketStsProvider,

    /// HTTP(S) address of the STS.
    #[schemars(pattern(r"^(http|https)://.*$"))]
    pub endpoint: String,

    /// Secret in the same namespace with `username` and `password` for the STS; `ldap` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// Secret in the same namespace with TLS material for the STS connection: a client certificate
    /// pair (`tls.crt`, `tls.key`) and/or a CA bundle (`ca.crt`); `ldap` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
}

/// Kind of Security Token Service (`spec.sts.provider`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum BucketStsProvider {
    /// AWS STS.
    #[default]
    #[serde(rename = "aws")]
    Aws,
    /// MinIO's LDAP STS.
    #[serde(rename = "ldap")]
    Ldap,
}

/// Observed state of a Bucket, written by the source-controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketStatus {
    /// Generation of the object that the current status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Latest observations of the object's state (`Ready`, `Reconciling`, `Stalled`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// Stable address of the newest artifact (`.../latest.tar.gz`), offered on a best-effort basis;
    /// prefer `artifact.url`.
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

    #[test]
    fn v1_gitrepository_all_fields() {
        let yaml = r#"
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  url: ssh://git@github.com/stefanprodan/podinfo
  secretRef:
    name: git-auth
  provider: azure
  serviceAccountName: git-sa
  interval: 1m30s
  timeout: 2m
  ref:
    branch: main
    tag: v1.0.0
    semver: ">=1.0.0"
    name: refs/heads/main
    commit: 132f4e719209eb10b9485302f8593fc0e680f4fc
  verify:
    mode: TagAndHEAD
    secretRef:
      name: pgp-keys
  proxySecretRef:
    name: proxy
  ignore: |
    /*
    !/deploy
  suspend: true
  recurseSubmodules: true
  include:
    - repository:
        name: other
      fromPath: deploy
      toPath: other-deploy
    - repository:
        name: third
  sparseCheckout:
    - ./deploy
    - charts
status:
  observedGeneration: 3
  conditions:
    - type: Ready
      status: "True"
      reason: Succeeded
      message: "stored artifact for revision 'main@sha1:132f4e71'"
      lastTransitionTime: "2024-01-01T00:00:00Z"
      observedGeneration: 3
  artifact:
    digest: sha256:0123abcd
    lastUpdateTime: "2024-01-01T00:00:00Z"
    path: gitrepository/flux-system/podinfo/132f4e71.tar.gz
    revision: main@sha1:132f4e719209eb10b9485302f8593fc0e680f4fc
    size: 1234
    url: http://source-controller/gitrepository/flux-system/podinfo/132f4e71.tar.gz
  includedArtifacts:
    - digest: sha256:beef
      lastUpdateTime: "2024-01-01T00:00:00Z"
      path: gitrepository/flux-system/other/x.tar.gz
      revision: main@sha1:aaaa
      url: http://source-controller/gitrepository/flux-system/other/x.tar.gz
      metadata:
        a: b
  observedIgnore: "/*"
  observedRecurseSubmodules: true
  observedInclude:
    - repository:
        name: other
      fromPath: deploy
      toPath: other-deploy
  observedSparseCheckout: [deploy]
  sourceVerificationMode: TagAndHEAD
  lastHandledReconcileAt: "2024-01-01T00:00:00Z"
"#;
        let repo: GitRepository = serde_saphyr::from_str(yaml).unwrap();
        let spec = &repo.spec;
        assert_eq!(spec.url, "ssh://git@github.com/stefanprodan/podinfo");
        assert_eq!(spec.provider, Some(GitProvider::Azure));
        assert_eq!(spec.interval, "1m30s");
        assert_eq!(spec.timeout, "2m");
        let r = spec.reference.as_ref().unwrap();
        assert_eq!(
            r.commit.as_deref(),
            Some("132f4e719209eb10b9485302f8593fc0e680f4fc")
        );
        assert_eq!(r.name.as_deref(), Some("refs/heads/main"));
        assert_eq!(r.semver.as_deref(), Some(">=1.0.0"));
        let verify = spec.verification.as_ref().unwrap();
        assert_eq!(verify.mode, GitVerificationMode::TagAndHead);
        assert!(verify.mode.verifies_head() && verify.mode.verifies_tag());
        assert_eq!(verify.secret_ref.name, "pgp-keys");
        assert!(spec.suspend && spec.recurse_submodules);
        let include = spec.include.as_ref().unwrap();
        assert_eq!(include[0].git_repository_ref.name, "other");
        assert_eq!(include[1].to_path, None);
        assert_eq!(spec.sparse_checkout.as_deref().unwrap().len(), 2);
        let status = repo.status.as_ref().unwrap();
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
        assert_eq!(status.artifact.as_ref().unwrap().size, Some(1234));
        assert!(status.observed_recurse_submodules);
        assert_eq!(status.included_artifacts.as_ref().unwrap().len(), 1);

        // Round trip keeps every field.
        let back: GitRepository = serde_json::from_value(serde_json::to_value(&repo).unwrap()).unwrap();
        assert_eq!(back, repo);
    }

    #[test]
    fn v1_gitrepository_defaults() {
        let yaml = r"
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: minimal
spec:
  url: https://github.com/example/repo
  interval: 5m
  verify:
    secretRef:
      name: keys
";
        let repo: GitRepository = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(repo.spec.timeout, "60s");
        assert_eq!(
            repo.spec.verification.as_ref().unwrap().mode,
            GitVerificationMode::Head
        );
        assert!(!repo.spec.suspend);
        assert_eq!(repo.status, None);
        let json = serde_json::to_value(&repo.spec).unwrap();
        assert!(
            json.get("suspend").is_none(),
            "false flags are omitted like Go omitempty"
        );
        assert!(json.get("provider").is_none());
        assert_eq!(GitVerificationMode::LegacyHead.as_str(), "HEAD");
        assert_eq!(GitRepositorySpec::default().timeout, "60s");
    }

    #[test]
    fn v1_bucket_all_fields() {
        let yaml = r#"
apiVersion: source.toolkit.fluxcd.io/v1
kind: Bucket
metadata:
  name: minio
  namespace: default
spec:
  provider: generic
  bucketName: podinfo
  endpoint: minio.minio.svc:9000
  sts:
    provider: ldap
    endpoint: https://minio.minio.svc:9000
    secretRef:
      name: ldap-credentials
    certSecretRef:
      name: ldap-tls
  insecure: true
  region: us-east-1
  prefix: deploy/
  secretRef:
    name: minio-credentials
  certSecretRef:
    name: minio-tls
  proxySecretRef:
    name: proxy
  interval: 5m
  timeout: 30s
  ignore: "*.md"
  suspend: true
status:
  observedGeneration: 2
  conditions:
    - type: Ready
      status: "False"
      reason: BucketOperationFailed
      message: "bucket 'podinfo' not found"
      lastTransitionTime: "2024-01-01T00:00:00Z"
  url: http://source-controller/bucket/default/minio/latest.tar.gz
  artifact:
    digest: sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    lastUpdateTime: "2024-01-01T00:00:00Z"
    path: bucket/default/minio/e3b0.tar.gz
    revision: sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    url: http://source-controller/bucket/default/minio/e3b0.tar.gz
  observedIgnore: "*.md"
  lastHandledReconcileAt: now
"#;
        let bucket: Bucket = serde_saphyr::from_str(yaml).unwrap();
        let spec = &bucket.spec;
        assert_eq!(spec.provider, BucketProvider::Generic);
        let sts = spec.sts.as_ref().unwrap();
        assert_eq!(sts.provider, BucketStsProvider::Ldap);
        assert_eq!(sts.cert_secret_ref.as_ref().unwrap().name, "ldap-tls");
        assert!(spec.insecure && spec.suspend);
        assert_eq!(spec.prefix.as_deref(), Some("deploy/"));
        assert_eq!(spec.timeout, "30s");
        let status = bucket.status.as_ref().unwrap();
        assert_eq!(
            status.url.as_deref(),
            Some("http://source-controller/bucket/default/minio/latest.tar.gz")
        );
        assert_eq!(status.observed_ignore.as_deref(), Some("*.md"));
        let back: Bucket = serde_json::from_value(serde_json::to_value(&bucket).unwrap()).unwrap();
        assert_eq!(back, bucket);

        let minimal: Bucket = serde_saphyr::from_str(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: Bucket\nmetadata:\n  name: b\nspec:\n  provider: gcp\n  \
             serviceAccountName: sa\n  bucketName: b\n  endpoint: storage.googleapis.com\n  interval: 1h\n",
        )
        .unwrap();
        assert_eq!(minimal.spec.provider, BucketProvider::Gcp);
        assert_eq!(minimal.spec.timeout, "60s");
        assert_eq!(BucketSpec::default().provider, BucketProvider::Generic);
    }
}
