//! GitRepository reconcile: resolve → fetch → package → store → status.
//!
//! ```text
//!  deleted?            remove the storage dir, drop the finalizer
//!  no finalizer?       add it (the update triggers the next run)
//!  suspended?          record lastHandledReconcileAt, stop
//!  config check        unsupported fields / bad URL  ──► Stalled, no requeue until the spec changes
//!  storage             GC; re-verify the stored artifact (digest), drop it when lost
//!  resolve             secret → auth; ls-remote → revision    (same revision + same ignore ⇒ no clone)
//!  fetch + package     shallow checkout into a temp dir → tar.gz through the ignore rules
//!  store               atomic write under a lock, sha256 while writing
//!  status              one patch: artifact, observed*, conditions, observedGeneration, lastHandled…
//! ```
//!
//! Failures never remove the previous artifact: it stays in status and on disk, still served.

use super::Context;
use crate::archive;
use crate::credentials::{Credentials, ProxyOptions};
use crate::git;
use crate::status::{Conditions, FailureKind};
use gitops_api::conditions::reasons;
use gitops_api::meta::Artifact;
use gitops_api::source::v1::{GitRepository, GitRepositoryStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Storage kind directory of GitRepository artifacts.
pub const KIND_DIR: &str = "gitrepository";

/// What a new GitRepository artifact brings: the artifact and the commit subject, if known.
struct NewArtifact {
    artifact: Artifact,
    subject: Option<String>,
}

type Outcome = super::Outcome<NewArtifact>;

/// Entry point for the controller.
pub async fn reconcile(obj: Arc<GitRepository>, ctx: Arc<Context>) -> Result<Action, super::Error> {
    super::reconcile_kind(obj, ctx, async |obj, ctx, status, conds, interval| {
        let outcome = run_steps(obj, ctx, status, conds).await;
        record(outcome, obj, ctx, status, conds, interval).await
    })
    .await
}

/// `namespace/name`: the key of per-object controller state (backoff, handled runs).
pub(crate) fn key(obj: &GitRepository) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Turns the steps' outcome into status fields, conditions, events and the next requeue.
async fn record(
    outcome: Outcome,
    obj: &GitRepository,
    ctx: &Context,
    status: &mut GitRepositoryStatus,
    conds: &mut Conditions,
    interval: Duration,
) -> (Action, Option<Duration>) {
    match outcome {
        Outcome::Stored(NewArtifact { artifact, subject }) => {
            let stored = format!("stored artifact for revision '{}'", artifact.revision);
            let msg = match subject {
                Some(s) => format!("stored artifact for commit '{s}'"),
                None => stored.clone(),
            };
            let result =
                super::record_new_artifact(obj, ctx, conds, &artifact, &stored, &msg, interval).await;
            status.artifact = Some(artifact);
            status.observed_ignore.clone_from(&obj.spec.ignore);
            result
        }
        Outcome::Unchanged { revision } => {
            let msg = format!("no changes since last reconciliation: observed revision '{revision}'");
            let trace = (reasons::GIT_OPERATION_SUCCEEDED, msg.as_str());
            let stored = format!("stored artifact for revision '{revision}'");
            super::record_unchanged(obj, ctx, conds, &stored, trace, interval).await
        }
        Outcome::Failed {
            kind,
            reason,
            message,
        } => super::record_failure(obj, ctx, conds, kind, reason, &message).await,
        Outcome::Stalled { reason, message } => super::record_stall(obj, ctx, conds, reason, &message).await,
    }
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

/// Configuration errors that stall the object until its spec changes.
fn check_config(obj: &GitRepository) -> Option<Outcome> {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    if let Some(field) = unsupported_field(obj) {
        return Some(Outcome::Stalled {
            reason: reasons::UNSUPPORTED_CONFIGURATION,
            message: format!(
                "{field} is not supported by this source-controller yet; remove it from GitRepository '{ns}/{name}'"
            ),
        });
    }
    let url = obj.spec.url.clone();
    if let Err(why) = check_url(&url) {
        return Some(Outcome::Stalled {
            reason: reasons::URL_INVALID,
            message: format!("invalid spec.url '{url}': {why}"),
        });
    }
    None
}

async fn run_steps(
    obj: &GitRepository,
    ctx: &Context,
    status: &mut GitRepositoryStatus,
    conds: &mut Conditions,
) -> Outcome {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    if let Some(stalled) = check_config(obj) {
        return stalled;
    }
    let url = obj.spec.url.clone();
    let timeout = gitops_api::duration::parse(&obj.spec.timeout).unwrap_or(Duration::from_secs(60));

    super::check_storage(ctx, &obj.object_ref(&()), KIND_DIR, &mut status.artifact, conds).await;

    // Credentials.
    let auth = match load_auth(obj, ctx, &url).await {
        Ok(a) => a,
        Err(outcome) => return outcome,
    };

    // Resolve the remote ref; skip everything when it still points at what we store.
    let gitref = match git::GitRef::from_spec(obj.spec.reference.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Stalled {
                reason: e.reason(),
                message: format!("invalid spec.ref: {e}"),
            };
        }
    };
    let (url2, auth2) = (url.clone(), auth.clone());
    let resolved = tokio::task::spawn_blocking(move || git::resolve(&url2, &gitref, &auth2, timeout)).await;
    let resolved = match resolved {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return git_failure(&e, &auth),
        Err(e) => {
            return Outcome::Failed {
                kind: FailureKind::Fetch,
                reason: reasons::GIT_OPERATION_FAILED,
                message: format!("git task failed: {e}"),
            };
        }
    };
    let revision = resolved.revision();
    let content_changed = status.observed_ignore != obj.spec.ignore;
    if let Some(a) = &status.artifact
        && a.revision == revision
        && !content_changed
    {
        return Outcome::Unchanged { revision };
    }
    conds.outdated(&revision);

    // Fetch + package + store.
    let file = format!("{}.tar.gz", resolved.commit);
    let rel = match crate::storage::artifact_path(KIND_DIR, &ns, &name, &file) {
        Ok(p) => p,
        Err(e) => {
            return Outcome::Failed {
                kind: FailureKind::Storage,
                reason: e.reason(),
                message: e.to_string(),
            };
        }
    };
    if let Err(e) = ctx.storage.create_object_dir(KIND_DIR, &ns, &name) {
        return Outcome::Failed {
            kind: FailureKind::Storage,
            reason: e.reason(),
            message: e.to_string(),
        };
    }
    let storage = ctx.storage.clone();
    let spec_ignore = obj.spec.ignore.clone();
    let (url3, auth3) = (url.clone(), auth.clone());
    let job = tokio::task::spawn_blocking(move || {
        fetch_and_package(
            &url3,
            &resolved,
            &auth3,
            timeout,
            &storage,
            &rel,
            spec_ignore.as_deref(),
        )
    });
    match job.await {
        Ok(Ok((stored, subject))) => {
            let _ = ctx.storage.remove_legacy_latest(KIND_DIR, &ns, &name);
            Outcome::Stored(NewArtifact {
                artifact: stored.into_artifact(&revision),
                subject,
            })
        }
        Ok(Err(outcome)) => *outcome,
        Err(e) => Outcome::Failed {
            kind: FailureKind::Storage,
            reason: reasons::ARCHIVE_OPERATION_FAILED,
            message: format!("packaging task failed: {e}"),
        },
    }
}

/// A storage-side failure as an outcome.
fn storage_failure(reason: &'static str, message: String) -> Box<Outcome> {
    Box::new(Outcome::Failed {
        kind: FailureKind::Storage,
        reason,
        message,
    })
}

/// Blocking part of a build: checkout into a temp dir, archive through the ignore rules, store
/// atomically. Returns the stored file and the commit subject, if known.
fn fetch_and_package(
    url: &str,
    resolved: &git::Resolved,
    auth: &Credentials,
    timeout: Duration,
    storage: &crate::storage::Storage,
    rel: &str,
    spec_ignore: Option<&str>,
) -> Result<(crate::storage::Stored, Option<String>), Box<Outcome>> {
    let tmp = tempfile::tempdir().map_err(|e| {
        storage_failure(
            reasons::DIRECTORY_CREATION_FAILED,
            format!("failed to create temporary directory: {e}"),
        )
    })?;
    let checkout = git::checkout(url, resolved, auth, tmp.path(), timeout)
        .map_err(|e| Box::new(git_failure(&e, auth)))?;
    let rules = archive::IgnoreRules::for_git(tmp.path(), spec_ignore)
        .map_err(|e| storage_failure(reasons::ARCHIVE_OPERATION_FAILED, e.to_string()))?;
    let mut writer = storage
        .writer(rel)
        .map_err(|e| storage_failure(e.reason(), e.to_string()))?;
    archive::write_tar_gz(tmp.path(), &rules, &mut writer)
        .map_err(|e| storage_failure(reasons::ARCHIVE_OPERATION_FAILED, e.to_string()))?;
    let stored = writer
        .commit()
        .map_err(|e| storage_failure(e.reason(), e.to_string()))?;
    Ok((stored, checkout.message))
}

fn git_failure(e: &git::GitError, auth: &Credentials) -> Outcome {
    Outcome::Failed {
        kind: FailureKind::Fetch,
        reason: e.reason(),
        message: auth.scrub(&e.to_string()),
    }
}

async fn load_auth(obj: &GitRepository, ctx: &Context, url: &str) -> Result<Credentials, Outcome> {
    let ns = obj.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut auth = match &obj.spec.secret_ref {
        Some(r) => {
            let data = read_secret(&secrets, &ns, &r.name).await?;
            Credentials::from_secret_data(url, &data).map_err(|e| Outcome::Failed {
                kind: FailureKind::Fetch,
                reason: reasons::AUTHENTICATION_FAILED,
                message: format!(
                    "invalid secret '{}/{}': {e}",
                    obj.namespace().unwrap_or_default(),
                    r.name
                ),
            })?
        }
        None => Credentials::none(),
    };
    if let Some(r) = &obj.spec.proxy_secret_ref {
        let data = read_secret(&secrets, &ns, &r.name).await?;
        let proxy = ProxyOptions::from_secret(&data).map_err(|e| Outcome::Failed {
            kind: FailureKind::Fetch,
            reason: reasons::AUTHENTICATION_FAILED,
            message: format!("invalid proxy secret '{}': {e}", r.name),
        })?;
        auth = auth.with_proxy(proxy);
    }
    Ok(auth)
}

async fn read_secret(
    secrets: &Api<Secret>,
    ns: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, Outcome> {
    super::read_secret(secrets, ns, name)
        .await
        .map_err(|message| Outcome::Failed {
            kind: FailureKind::Fetch,
            reason: reasons::AUTHENTICATION_FAILED,
            message,
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

    #[test]
    fn urls_are_checked_like_flux() {
        assert!(check_url("https://github.com/org/repo").is_ok());
        assert!(check_url("ssh://git@github.com:22/org/repo").is_ok());
        assert!(check_url("http://127.0.0.1:18080/git/demo.git").is_ok());
        assert!(check_url("git@github.com:org/repo.git").is_err());
        assert!(check_url("ftp://example.com/repo").is_err());
        assert!(check_url("https:///repo").is_err());
    }
}
