//! The source step: where this reconcile's project comes from, checked out or unpacked on
//! local disk.
//!
//! ```text
//! spec.source.git (url, ref, path) ──► ls-refs ──► commit ──► checkout (cache, per commit)
//! spec.sourceRef  (GitRepository | Bucket) ──► status.artifact ──► download, verify, untar
//! spec.source.oci ──► Stalled: UnsupportedConfiguration
//! ```
//!
//! Nothing is deployed or pruned when this step fails: the pipeline stops here and the error
//! becomes the Ready condition (`ArtifactFailed` for artifacts, as Flux's consumers and Kluctl's
//! legacy controller say; `PrepareFailed` for Git, where Kluctl clones as part of preparing).

use std::path::{Component, Path, PathBuf};

use gitops_api::kluctl::results::{GitInfo, ProjectKey};
use gitops_api::kluctl::v1beta1::{KluctlDeploymentSpec, ProjectSourceGit, SourceKind};
use gitops_api::meta::Artifact;
use gitops_api::source::v1::{Bucket, GitRepository};
use kube::Api;

use crate::source::artifact::{ArtifactError, FetchOptions};
use crate::source::cache::{Checkout, SourceCache};
use crate::source::credentials::{self, CredentialsError};
use gitops_git::GitCredentialRules;

/// A project on local disk.
#[derive(Debug)]
pub struct Fetched {
    /// The project directory (the source root joined with the path inside it).
    pub project_dir: PathBuf,
    /// The checked-out commit, or the artifact's revision.
    pub revision: String,
    /// `status.observedCommit`: the commit (for artifacts: the sha of a `<ref>@sha1:<sha>` revision).
    pub commit: String,
    /// The revision in Flux's form, as events carry it: the artifact's revision, or for git
    /// `<branch|tag>@sha1:<commit>` (`sha1:<commit>` for a commit reference).
    pub source_revision: String,
    /// Repository key and sub directory.
    pub project_key: ProjectKey,
    /// Git state for the results.
    pub git_info: GitInfo,
    /// Credentials for the project's git includes and vars: `spec.credentials.git`, then
    /// those of a referenced GitRepository for its host.
    pub rules: GitCredentialRules,
    /// Keeps the cache entry from garbage collection while in use.
    _hold: Checkout,
}

/// Why the source could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A field this build does not support.
    #[error("{field} is not supported by this controller yet: {message}")]
    Unsupported {
        /// The field's path.
        field: &'static str,
        /// What to use instead.
        message: &'static str,
    },
    /// Neither `spec.source` nor `spec.sourceRef` names a location.
    #[error("spec.source must set git.url (or use spec.sourceRef)")]
    NoSource,
    /// Cloning failed.
    #[error("failed to clone '{url}': {message}")]
    Git {
        /// The URL without credentials.
        url: String,
        /// The error chain (credentials scrubbed by the git layer).
        message: String,
    },
    /// The referenced source object does not exist.
    #[error("Source '{kind}/{namespace}/{name}' not found")]
    SourceNotFound {
        /// `GitRepository` or `Bucket`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Cross-namespace references are disabled.
    #[error(
        "cannot access {kind}/{namespace}/{name}: cross-namespace references are disabled (--no-cross-namespace-refs)"
    )]
    CrossNamespace {
        /// `GitRepository` or `Bucket`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The source has no artifact yet.
    #[error("Source '{kind}/{namespace}/{name}' is not ready, artifact not found")]
    NoArtifact {
        /// `GitRepository` or `Bucket`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Downloading, verifying or unpacking the artifact failed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A credentials Secret is missing or unusable.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The project path does not exist in the source.
    #[error("kluctlDeployment path not found: {field} '{path}' does not exist in the source")]
    PathNotFound {
        /// `spec.path` or `spec.source.git.path`.
        field: &'static str,
        /// The path.
        path: String,
    },
    /// The project path leaves the source.
    #[error("{field} '{path}' must be a relative path inside the source without '..'")]
    PathInvalid {
        /// `spec.path` or `spec.source.git.path`.
        field: &'static str,
        /// The path.
        path: String,
    },
    /// Reading the source object failed.
    #[error("failed to read {kind}/{namespace}/{name}: {source}")]
    Kube {
        /// `GitRepository` or `Bucket`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// Local file system trouble.
    #[error("failed to prepare a working directory: {0}")]
    Io(#[from] std::io::Error),
}

impl FetchError {
    /// The Ready reason.
    pub fn reason(&self) -> &'static str {
        use gitops_api::conditions::reasons;
        match self {
            Self::Unsupported { .. } => reasons::UNSUPPORTED_CONFIGURATION,
            Self::Git { .. }
            | Self::NoSource
            | Self::PathInvalid { .. }
            | Self::PathNotFound { .. }
            | Self::Io(_) => reasons::PREPARE_FAILED,
            Self::Credentials(e) => e.reason(),
            Self::Artifact(e) => e.reason(),
            Self::SourceNotFound { .. }
            | Self::CrossNamespace { .. }
            | Self::NoArtifact { .. }
            | Self::Kube { .. } => reasons::ARTIFACT_FAILED,
        }
    }

    /// Whether retrying cannot help until the spec changes (→ Stalled).
    pub fn stalled(&self) -> bool {
        matches!(
            self,
            Self::Unsupported { .. }
                | Self::NoSource
                | Self::PathInvalid { .. }
                | Self::CrossNamespace { .. }
        )
    }
}

/// What the source step needs from the controller.
pub struct FetchContext<'a> {
    /// The controller's client.
    pub client: &'a kube::Client,
    /// The shared source cache.
    pub sources: &'a SourceCache,
    /// How artifacts are downloaded.
    pub artifact_options: &'a FetchOptions,
    /// `--no-cross-namespace-refs`.
    pub no_cross_namespace_refs: bool,
}

/// `dir/rel` if `rel` is a relative path without `..` that exists.
fn join_project_path(
    root: &Path,
    field: &'static str,
    rel: Option<&str>,
) -> Result<(PathBuf, String), FetchError> {
    let rel = rel.unwrap_or("").trim_matches('/');
    if rel.is_empty() || rel == "." {
        return Ok((root.to_path_buf(), String::new()));
    }
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(FetchError::PathInvalid {
            field,
            path: rel.to_owned(),
        });
    }
    let dir = root.join(p);
    if !dir.is_dir() {
        return Err(FetchError::PathNotFound {
            field,
            path: rel.to_owned(),
        });
    }
    Ok((dir, rel.to_owned()))
}

/// The project key a spec will have, before anything is fetched (Kluctl patches it early so
/// the web UI can group objects that never deployed).
pub fn early_project_key(spec: &KluctlDeploymentSpec) -> Option<ProjectKey> {
    let git = spec.source.as_ref().and_then(git_source)?;
    Some(ProjectKey {
        repo_key: kluctl_engine::source::repo_key(&git.url)?,
        sub_dir: git.path.trim_matches('/').to_owned(),
    })
}

/// Spec fields this build cannot honour. Ignoring them would deploy something else than the
/// user asked for (encrypted Secrets as they are, the wrong repository), so they stop the
/// reconcile before anything is fetched.
fn unsupported(spec: &KluctlDeploymentSpec) -> Result<(), FetchError> {
    let found = [
        (
            spec.decryption.is_some(),
            "spec.decryption",
            "SOPS decryption is not implemented; remove the field or decrypt before committing",
        ),
        (
            !spec.source_overrides.is_empty(),
            "spec.sourceOverrides",
            "source overrides (kluctl gitops --local-git-override) are not implemented",
        ),
        (
            !spec.helm_credentials.is_empty(),
            "spec.helmCredentials",
            "this deprecated field is rejected; use spec.credentials.helm",
        ),
        (
            spec.credentials
                .as_ref()
                .is_some_and(|c| !c.oci.is_empty() || !c.helm.is_empty()),
            "spec.credentials.oci/helm",
            "OCI and Helm repository credentials are not implemented",
        ),
    ];
    match found.into_iter().find(|(set, _, _)| *set) {
        Some((_, field, message)) => Err(FetchError::Unsupported { field, message }),
        None => Ok(()),
    }
}

/// The Git source: `spec.source.git`, or the deprecated top-level `url`/`ref`/`path`.
fn git_source(source: &gitops_api::kluctl::v1beta1::ProjectSource) -> Option<ProjectSourceGit> {
    if let Some(git) = &source.git {
        return Some(git.clone());
    }
    source.url.as_ref().map(|url| ProjectSourceGit {
        url: url.clone(),
        git_ref: source.git_ref.clone(),
        path: source.path.clone(),
    })
}

/// Fetches the project of `spec` (for an object in `namespace`).
///
/// # Errors
/// [`FetchError`], naming the field, URL or source object.
pub async fn fetch(
    cx: &FetchContext<'_>,
    namespace: &str,
    spec: &KluctlDeploymentSpec,
) -> Result<Fetched, FetchError> {
    unsupported(spec)?;
    let git = spec
        .credentials
        .as_ref()
        .map(|c| c.git.as_slice())
        .unwrap_or_default();
    let rules = credentials::load_git_credentials(cx.client, namespace, git).await?;
    match &spec.source_ref {
        Some(source_ref) => fetch_artifact(cx, namespace, source_ref, spec.path.as_deref(), rules).await,
        None => fetch_git(cx, spec, rules).await,
    }
}

/// The artifact of a `sourceRef`, unpacked, with the project at `path` inside it.
async fn fetch_artifact(
    cx: &FetchContext<'_>,
    namespace: &str,
    source_ref: &gitops_api::kluctl::v1beta1::CrossNamespaceSourceReference,
    path: Option<&str>,
    mut rules: GitCredentialRules,
) -> Result<Fetched, FetchError> {
    {
        let ns = source_ref
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| namespace.to_owned());
        let kind: &'static str = match source_ref.kind {
            SourceKind::GitRepository => "GitRepository",
            SourceKind::Bucket => "Bucket",
        };
        if cx.no_cross_namespace_refs && ns != namespace {
            return Err(FetchError::CrossNamespace {
                kind,
                namespace: ns,
                name: source_ref.name.clone(),
            });
        }
        let not_found = || FetchError::SourceNotFound {
            kind,
            namespace: ns.clone(),
            name: source_ref.name.clone(),
        };
        let kube_err = |source| FetchError::Kube {
            kind,
            namespace: ns.clone(),
            name: source_ref.name.clone(),
            source: Box::new(source),
        };
        let (artifact, url): (Option<Artifact>, Option<String>) = match source_ref.kind {
            SourceKind::GitRepository => {
                let api: Api<GitRepository> = Api::namespaced(cx.client.clone(), &ns);
                let o = api
                    .get_opt(&source_ref.name)
                    .await
                    .map_err(kube_err)?
                    .ok_or_else(not_found)?;
                // The repository's own credentials serve includes from its host (after the spec's).
                rules.extend(credentials::git_repository_credentials(cx.client, &o).await?);
                (o.status.and_then(|s| s.artifact), Some(o.spec.url))
            }
            SourceKind::Bucket => {
                let api: Api<Bucket> = Api::namespaced(cx.client.clone(), &ns);
                let o = api
                    .get_opt(&source_ref.name)
                    .await
                    .map_err(kube_err)?
                    .ok_or_else(not_found)?;
                (o.status.and_then(|s| s.artifact), None)
            }
        };
        let artifact = artifact.ok_or_else(|| FetchError::NoArtifact {
            kind,
            namespace: ns.clone(),
            name: source_ref.name.clone(),
        })?;
        let fetched = cx.sources.artifact(&artifact, cx.artifact_options).await?;
        let (project_dir, sub_dir) = join_project_path(&fetched.dir, "spec.path", path)?;
        let commit = artifact_commit(&fetched.revision);
        let repo_key = url
            .as_deref()
            .and_then(kluctl_engine::source::repo_key)
            .unwrap_or_default();
        Ok(Fetched {
            project_dir,
            revision: fetched.revision.clone(),
            commit: commit.clone(),
            source_revision: fetched.revision.clone(),
            project_key: ProjectKey {
                repo_key,
                sub_dir: sub_dir.clone(),
            },
            git_info: GitInfo {
                url: url.map(|u| gitops_git::redact_url(&u)),
                sub_dir,
                commit,
                ..GitInfo::default()
            },
            rules,
            _hold: fetched,
        })
    }
}

/// `spec.source.git` (or the deprecated top-level fields), checked out.
async fn fetch_git(
    cx: &FetchContext<'_>,
    spec: &KluctlDeploymentSpec,
    rules: GitCredentialRules,
) -> Result<Fetched, FetchError> {
    let source = spec.source.as_ref().ok_or(FetchError::NoSource)?;
    if source.oci.is_some() {
        return Err(FetchError::Unsupported {
            field: "spec.source.oci",
            message: "use spec.source.git or spec.sourceRef",
        });
    }
    if source.secret_ref.is_some() || !source.credentials.is_empty() {
        return Err(FetchError::Unsupported {
            field: "spec.source.secretRef/spec.source.credentials",
            message: "these deprecated fields are rejected; use spec.credentials.git",
        });
    }
    let git = git_source(source).ok_or(FetchError::NoSource)?;
    let reference = git.git_ref.as_ref().map(|r| kluctl_engine::source::GitRef {
        branch: Some(r.branch.clone()).filter(|s| !s.is_empty()),
        tag: Some(r.tag.clone()).filter(|s| !s.is_empty()),
        commit: Some(r.commit.clone()).filter(|s| !s.is_empty()),
    });
    let url = git.url.clone();
    let (sources, task_rules) = (cx.sources.clone(), rules.clone());
    let checkout =
        tokio::task::spawn_blocking(move || sources.git_checkout(&url, reference.as_ref(), &task_rules))
            .await
            .map_err(|e| FetchError::Io(std::io::Error::other(e)))?
            .map_err(|e| FetchError::Git {
                url: gitops_git::redact_url(&git.url),
                message: kluctl_engine::error_chain(&e),
            })?;
    let (root, commit) = (checkout.dir.clone(), checkout.revision.clone());
    let (project_dir, sub_dir) = join_project_path(&root, "spec.source.git.path", Some(git.path.as_str()))?;
    Ok(Fetched {
        project_dir,
        revision: commit.clone(),
        commit: commit.clone(),
        source_revision: git_revision(checkout.reference.as_deref(), &commit),
        project_key: ProjectKey {
            repo_key: kluctl_engine::source::repo_key(&git.url).unwrap_or_default(),
            sub_dir: sub_dir.clone(),
        },
        git_info: GitInfo {
            url: Some(gitops_git::redact_url(&git.url)),
            git_ref: git.git_ref.clone(),
            sub_dir,
            commit,
            dirty: false,
        },
        rules,
        _hold: checkout,
    })
}

/// A checked-out commit as Flux's source-controller words the revision of a GitRepository:
/// branches and tags by their short name (`main@sha1:<sha>`), other refs in full
/// (`refs/pull/1/head@sha1:<sha>`), a commit alone as `sha1:<sha>`.
fn git_revision(reference: Option<&str>, commit: &str) -> String {
    let reference = reference.map(|r| {
        r.strip_prefix("refs/heads/")
            .or_else(|| r.strip_prefix("refs/tags/"))
            .unwrap_or(r)
    });
    gitops_api::revision::Revision::git(reference, commit).to_string()
}

/// The commit of an artifact revision (`main@sha1:<sha>` → `<sha>`); the revision itself when
/// it names none (Bucket digests).
fn artifact_commit(revision: &str) -> String {
    revision
        .rsplit_once(':')
        .filter(|(head, _)| head.ends_with("@sha1") || head.ends_with("@sha256") || *head == "sha1")
        .map_or_else(|| revision.to_owned(), |(_, sha)| sha.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_without_an_artifact_yet_is_waited_for_not_an_error() {
        let waiting = crate::controller::StepError::Fetch(FetchError::NoArtifact {
            kind: "GitRepository",
            namespace: "ns".into(),
            name: "app".into(),
        });
        assert!(waiting.is_waiting());
        let failed = crate::controller::StepError::Fetch(FetchError::CrossNamespace {
            kind: "GitRepository",
            namespace: "other".into(),
            name: "app".into(),
        });
        assert!(!failed.is_waiting());
    }

    #[test]
    fn fields_that_would_change_what_is_deployed_stop_the_reconcile() {
        let spec = |extra: serde_json::Value| -> KluctlDeploymentSpec {
            let mut v = serde_json::json!({"interval": "1m", "source": {"git": {"url": "https://h/r"}}});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(v).unwrap()
        };
        assert!(unsupported(&spec(serde_json::json!({}))).is_ok());
        let e = unsupported(&spec(serde_json::json!({"decryption": {"provider": "sops"}}))).unwrap_err();
        assert!(
            e.to_string().starts_with("spec.decryption is not supported"),
            "{e}"
        );
        assert!(e.stalled());
        assert_eq!(e.reason(), "UnsupportedConfiguration");
        let e = unsupported(&spec(
            serde_json::json!({"credentials": {"helm": [{"host": "h", "secretRef": {"name": "s"}}]}}),
        ))
        .unwrap_err();
        assert!(e.to_string().starts_with("spec.credentials.oci/helm"), "{e}");
    }

    #[test]
    fn git_revisions_use_flux_form() {
        assert_eq!(git_revision(Some("refs/heads/main"), "abc"), "main@sha1:abc");
        assert_eq!(git_revision(Some("refs/tags/v1.0"), "abc"), "v1.0@sha1:abc");
        assert_eq!(
            git_revision(Some("refs/pull/1/head"), "abc"),
            "refs/pull/1/head@sha1:abc"
        );
        assert_eq!(git_revision(None, "abc"), "sha1:abc");
    }

    #[test]
    fn artifact_revisions_name_their_commit() {
        assert_eq!(artifact_commit("main@sha1:abc"), "abc");
        assert_eq!(artifact_commit("sha1:abc"), "abc");
        assert_eq!(artifact_commit("sha256:0123"), "sha256:0123");
    }

    #[test]
    fn project_paths_stay_inside_the_source() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("a/b")).unwrap();
        let (p, sub) = join_project_path(dir.path(), "spec.path", Some("a/b/")).unwrap();
        assert_eq!((p, sub.as_str()), (dir.path().join("a/b"), "a/b"));
        assert_eq!(join_project_path(dir.path(), "spec.path", None).unwrap().1, "");
        assert!(matches!(
            join_project_path(dir.path(), "spec.path", Some("../x")),
            Err(FetchError::PathInvalid { .. })
        ));
        let e = join_project_path(dir.path(), "spec.path", Some("missing")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kluctlDeployment path not found: spec.path 'missing' does not exist in the source"
        );
    }
}
