//! GitRepository reconcile: resolve → fetch → package → store → status.
//!
//! ```text
//!  resolve   spec → Source (URL, ref, timeout)     pure; unsupported field / bad URL / bad ref ⇒ Stalled
//!  check     GC; re-verify the recorded artifact    a lost artifact is dropped and rebuilt
//!  fetch     Secrets → auth; ls-refs → revision     same revision + same ignore ⇒ Unchanged, no clone
//!            depth-1 fetch of the commit ⇒ Tree: its objects (blobs in a temp dir), or a
//!            checkout into the temp dir when the spec needs a directory (see `needs_checkout`)
//!  package   Tree + ignore rules → tar.gz bytes     streamed from the objects (or the checkout)
//!  store     atomic write under a lock, sha256 while writing
//!  record    pure: artifact, observedIgnore, conditions, events (see record.rs)
//! ```
//!
//! Failures never remove the previous artifact: it stays in status and on disk, still served.

use super::Context;
use super::context::namespaced_name;
use super::error::{Failure, StepError};
use super::record::{self, End, Fetched, Recorded, Run, Verdict};
use super::store;
use crate::archive::{self, ArchiveSummary};
use crate::credentials::Secrets;
use crate::git;
use crate::status::Conditions;
use gitops_api::conditions::reasons;
use gitops_api::meta::Artifact;
use gitops_api::source::v1::{GitRepository, GitRepositoryStatus};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Storage kind directory of GitRepository artifacts.
pub const KIND_DIR: &str = "gitrepository";

/// Entry point for the controller.
pub async fn reconcile(obj: Arc<GitRepository>, ctx: Arc<Context>) -> Result<Action, super::Error> {
    super::finalizer::reconcile_kind(obj, ctx, run, record).await
}

/// `namespace/name`: the key of per-object controller state (backoff, handled runs).
pub(crate) fn key(obj: &GitRepository) -> String {
    namespaced_name(obj)
}

/// What a new GitRepository artifact brings: the artifact and the commit subject, if known.
struct NewArtifact {
    artifact: Artifact,
    subject: Option<String>,
}

/// What resolve derives from the spec: everything fetch needs besides credentials.
struct Source {
    url: String,
    reference: git::GitRef,
    timeout: Duration,
}

/// The fetched tree of a new revision; its temp dir is removed when dropped.
struct Tree {
    dir: tempfile::TempDir,
    content: Content,
    revision: String,
    commit: String,
    subject: Option<String>,
}

/// What the fetch left for the package step.
enum Content {
    /// The commit's objects, blobs in the temp dir: packaged by streaming them, no checkout.
    Objects(gitops_git::CommitTree),
    /// A checkout in the temp dir.
    Checkout,
}

/// Whether packaging needs the commit checked out into a directory rather than streamed from
/// its objects: with `spec.include` (other repositories copied into the tree) or
/// `recurseSubmodules` (submodules checked out into it). Both still stall in [`resolve`], so
/// the reconcile streams today; decided from the spec before fetching, never from the content.
fn needs_checkout(obj: &GitRepository) -> bool {
    obj.spec.include.as_ref().is_some_and(|i| !i.is_empty()) || obj.spec.recurse_submodules
}

/// The steps of one run, in order; the status function gets what they found.
async fn run(obj: &GitRepository, ctx: &Context, status: &GitRepositoryStatus) -> Run<NewArtifact> {
    let source = match resolve(obj) {
        Ok(s) => s,
        Err(e) => return Run::stopped(e.into()),
    };
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let checked = store::check(ctx, KIND_DIR, &ns, &name, status.artifact.clone());
    // New ignore rules change the content: package again even when the revision is the same.
    let content_changed = status.observed_ignore != obj.spec.ignore;
    let recorded = checked.artifact.as_ref().filter(|_| !content_changed);
    let mut building = None;
    let end = match fetch(obj, ctx, &source, recorded, &mut building).await {
        Ok(Fetched::Unchanged(revision)) => Ok(End::Unchanged { revision }),
        Ok(Fetched::Changed(tree)) => store_tree(obj, ctx, tree).await.map(End::Stored),
        Err(f) => Err(f),
    };
    Run {
        checked: Some(checked),
        building,
        notes: Vec::new(),
        end,
    }
}

/// The resolve step: configuration errors stall the object until its spec changes.
fn resolve(obj: &GitRepository) -> Result<Source, StepError> {
    if let Some(field) = unsupported_field(obj) {
        return Err(StepError::Unsupported {
            field,
            kind: "GitRepository",
            object: namespaced_name(obj),
        });
    }
    let url = obj.spec.url.clone();
    if let Err(why) = check_url(&url) {
        return Err(StepError::InvalidUrl {
            url: gitops_git::redact_url(&url),
            why,
        });
    }
    let reference = git::GitRef::from_spec(obj.spec.reference.as_ref()).map_err(StepError::InvalidRef)?;
    let timeout = gitops_api::duration::parse(&obj.spec.timeout).unwrap_or(Duration::from_secs(60));
    Ok(Source {
        url,
        reference,
        timeout,
    })
}

/// Fields this build does not act on yet; setting one stalls the object instead of ignoring it.
fn unsupported_field(obj: &GitRepository) -> Option<&'static str> {
    let s = &obj.spec;
    if s.include.as_ref().is_some_and(|i| !i.is_empty()) {
        Some("spec.include")
    } else if s.sparse_checkout.as_ref().is_some_and(|i| !i.is_empty()) {
        Some("spec.sparseCheckout")
    } else if s.recurse_submodules {
        Some("spec.recurseSubmodules")
    } else if s.verification.is_some() {
        Some("spec.verify")
    } else if s
        .provider
        .as_ref()
        .is_some_and(|p| serde_json::to_value(p).ok() != Some(json!("generic")))
    {
        Some("spec.provider")
    } else if s.service_account_name.is_some() {
        Some("spec.serviceAccountName")
    } else {
        None
    }
}

/// The fetch step: credentials, ls-refs, and a checkout when the revision differs from `recorded`
/// (which is `None` when the ignore rules changed, so the tree is packaged again). Sets `building`
/// to the new revision before the checkout.
async fn fetch(
    obj: &GitRepository,
    ctx: &Context,
    source: &Source,
    recorded: Option<&Artifact>,
    building: &mut Option<String>,
) -> Result<Fetched<Tree>, Failure> {
    let secrets = Secrets::new(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let auth = secrets
        .git_auth(
            &source.url,
            obj.spec.secret_ref.as_ref(),
            obj.spec.proxy_secret_ref.as_ref(),
        )
        .await
        .map_err(StepError::from)?;
    let failed = |e: StepError| Failure::new(&e, |m| auth.scrub(m));
    let (url, reference, a, timeout) = (
        source.url.clone(),
        source.reference.clone(),
        auth.clone(),
        source.timeout,
    );
    let resolved = tokio::task::spawn_blocking(move || git::resolve(&url, &reference, &a, timeout))
        .await
        .map_err(|e| failed(StepError::GitTask(e)))?
        .map_err(|e| failed(StepError::Git(e)))?;
    let revision = resolved.revision();
    if recorded.is_some_and(|a| a.revision == revision) {
        return Ok(Fetched::Unchanged(revision));
    }
    *building = Some(revision.clone());
    let dir = tempfile::tempdir().map_err(|e| failed(StepError::TempDir(e)))?;
    let (url, a, dest) = (source.url.clone(), auth.clone(), dir.path().to_path_buf());
    let checkout = needs_checkout(obj);
    let fetched = tokio::task::spawn_blocking(move || {
        if checkout {
            git::checkout(&url, &resolved, &a, &dest, timeout)
                .map(|c| (c.commit, c.message, Content::Checkout))
        } else {
            git::fetch_tree(&url, &resolved, &a, &dest, timeout)
                .map(|f| (f.tree.commit(), f.message, Content::Objects(f.tree)))
        }
    })
    .await
    .map_err(|e| failed(StepError::GitTask(e)))?
    .map_err(|e| failed(StepError::Git(e)))?;
    let (commit, subject, content) = fetched;
    Ok(Fetched::Changed(Tree {
        dir,
        content,
        revision,
        commit,
        subject,
    }))
}

/// The package step for a checkout: the tree through its `.sourceignore` files and
/// `spec.ignore` into `out`.
fn package(
    tree: &Path,
    spec_ignore: Option<&str>,
    out: &mut impl Write,
) -> Result<ArchiveSummary, StepError> {
    let rules = archive::IgnoreRules::for_git(tree, spec_ignore)?;
    Ok(archive::write_tar_gz(tree, &rules, out)?)
}

/// The package step for fetched objects: the same bytes [`package`] writes for a checkout of
/// the commit, streamed from the blobs.
fn package_objects(
    tree: &gitops_git::CommitTree,
    spec_ignore: Option<&str>,
    out: &mut impl Write,
) -> Result<ArchiveSummary, StepError> {
    let rules = archive::IgnoreRules::for_git_tree(tree, spec_ignore)?;
    Ok(archive::write_tree_tar_gz(tree, &rules, out)?)
}

/// Packages and stores `tree` as `<commit>.tar.gz`.
async fn store_tree(obj: &GitRepository, ctx: &Context, tree: Tree) -> Result<NewArtifact, Failure> {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let Tree {
        dir,
        content,
        revision,
        commit,
        subject,
    } = tree;
    let spec_ignore = obj.spec.ignore.clone();
    let file = format!("{commit}.tar.gz");
    let stored = store::store(ctx, KIND_DIR, &ns, &name, &file, move |out| {
        let spec_ignore = spec_ignore.as_deref();
        match &content {
            Content::Objects(tree) => package_objects(tree, spec_ignore, out),
            Content::Checkout => package(dir.path(), spec_ignore, out),
        }
        .map(|_| ())
    })
    .await?;
    let _ = ctx.storage.remove_legacy_latest(KIND_DIR, &ns, &name);
    Ok(NewArtifact {
        artifact: stored.into_artifact(&revision),
        subject,
    })
}

/// The status function of a GitRepository run (pure).
fn record(
    obj: &GitRepository,
    run: Run<NewArtifact>,
    status: &mut GitRepositoryStatus,
    conds: &mut Conditions,
) -> Recorded {
    record::record::<GitRepository, _>(run, status, conds, |end, status| match end {
        End::Stored(NewArtifact { artifact, subject }) => {
            let condition = format!("stored artifact for revision '{}'", artifact.revision);
            let event = match subject {
                Some(s) => format!("stored artifact for commit '{s}'"),
                None => condition.clone(),
            };
            status.observed_ignore.clone_from(&obj.spec.ignore);
            Verdict::Stored {
                artifact,
                condition,
                event,
            }
        }
        End::Unchanged { revision } => Verdict::Unchanged {
            condition: format!("stored artifact for revision '{revision}'"),
            trace: (
                reasons::GIT_OPERATION_SUCCEEDED,
                format!("no changes since last reconciliation: observed revision '{revision}'"),
            ),
        },
    })
}

/// Flux accepts `http`, `https` and `ssh` URLs (no SCP-like `user@host:path`).
fn check_url(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL; use http://, https:// or ssh:// (scp-like addresses are not supported)");
    };
    if !matches!(scheme, "http" | "https" | "ssh") {
        return Err("unsupported scheme; use http, https or ssh");
    }
    if rest.split('/').next().unwrap_or_default().is_empty() {
        return Err("missing host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(spec: &serde_json::Value) -> GitRepository {
        let mut full = json!({"url": "https://example.com/repo.git", "interval": "1m"});
        if let (Some(m), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": full,
        }))
        .unwrap()
    }

    #[test]
    fn urls_are_checked_like_flux() {
        assert!(check_url("https://github.com/org/repo").is_ok());
        assert!(check_url("ssh://git@github.com:22/org/repo").is_ok());
        assert!(check_url("http://127.0.0.1:18080/git/demo.git").is_ok());
        assert!(check_url("git@github.com:org/repo.git").is_err());
        assert!(check_url("ftp://example.com/repo").is_err());
        assert!(check_url("https:///repo").is_err());
    }

    #[test]
    fn resolve_stalls_on_configuration_errors_naming_the_field() {
        let f = Failure::from(resolve(&repo(&json!({"recurseSubmodules": true}))).err().unwrap());
        assert!(f.stalls());
        assert_eq!(f.reason, reasons::UNSUPPORTED_CONFIGURATION);
        assert_eq!(
            f.message,
            "spec.recurseSubmodules is not supported by this source-controller yet; remove it from GitRepository 'ns/app'"
        );
        let f = Failure::from(
            resolve(&repo(&json!({"url": "https:///repo.git"})))
                .err()
                .unwrap(),
        );
        assert_eq!(
            (f.reason, f.message.as_str()),
            (
                reasons::URL_INVALID,
                "invalid spec.url 'https:///repo.git': missing host"
            )
        );
        let f = Failure::from(
            resolve(&repo(&json!({"ref": {"semver": ">= not a version"}})))
                .err()
                .unwrap(),
        );
        assert!(
            f.stalls() && f.message.starts_with("invalid spec.ref: "),
            "{}",
            f.message
        );
        let s = resolve(&repo(&json!({"timeout": "5s"}))).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(5));
    }

    #[test]
    fn package_applies_the_ignore_rules_of_the_tree_and_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [("app.yaml", "a: 1\n"), ("skip.yaml", "b: 2\n"), ("logo.png", "x")] {
            fs_err::write(dir.path().join(path), text).unwrap();
        }
        let files = |spec_ignore: Option<&str>| {
            let mut out = Vec::new();
            let summary = package(dir.path(), spec_ignore, &mut out).unwrap();
            assert_eq!(summary.size, out.len() as u64);
            summary.files
        };
        assert_eq!(files(None), 2, "the default *.png rule drops logo.png");
        assert_eq!(
            files(Some("skip.yaml\n")),
            2,
            "spec.ignore drops skip.yaml and replaces the extension defaults"
        );
    }
}
