//! Bucket reconcile: index → fetch → package → store → status.
//!
//! ```text
//!  deleted?            remove the storage dir, drop the finalizer
//!  no finalizer?       add it (the update triggers the next run)
//!  suspended?          record lastHandledReconcileAt, stop
//!  config check        gcp, sts, serviceAccountName  ──► Stalled, no requeue until the spec changes
//!  storage             GC; re-verify the stored artifact (digest), drop it when lost
//!  index               secrets → client; list + ignore rules → etag index → revision
//!                      (revision equals the stored one ⇒ nothing downloaded)
//!  fetch               download the indexed objects into a temp dir; revision recomputed
//!  package + store     tar.gz of the temp dir, atomic write under a lock; latest.tar.gz symlink
//!  status              one patch: artifact, url, observedIgnore, conditions, observedGeneration, ...
//! ```
//!
//! Failures never remove the previous artifact: it stays in status and on disk, still served.

use super::Context;
use crate::archive;
use crate::bucket::{self, BucketClient, ClientConfig, Provider, SecretData};
use crate::credentials::{ProxyOptions, Secret};
use crate::events::Severity;
use crate::status::{Conditions, FailureKind};
use gitops_api::conditions::reasons;
use gitops_api::meta::Artifact;
use gitops_api::source::v1::{Bucket, BucketProvider, BucketStatus};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Storage kind directory of Bucket artifacts.
pub const KIND_DIR: &str = "bucket";

/// What a new Bucket artifact brings: the artifact and how many objects were fetched.
struct NewArtifact {
    artifact: Artifact,
    files: usize,
}

type Outcome = super::Outcome<NewArtifact>;

impl Outcome {
    fn fetch_failed(e: &bucket::BucketError) -> Self {
        Outcome::Failed {
            kind: FailureKind::Fetch,
            reason: e.reason(),
            message: e.to_string(),
        }
    }

    fn storage_failed(reason: &'static str, message: String) -> Self {
        Outcome::Failed {
            kind: FailureKind::Storage,
            reason,
            message,
        }
    }
}

/// Entry point for the controller.
pub async fn reconcile(obj: Arc<Bucket>, ctx: Arc<Context>) -> Result<Action, super::Error> {
    super::reconcile_kind(obj, ctx, async |obj, ctx, status, conds, interval| {
        let outcome = run_steps(obj, ctx, status, conds).await;
        record(outcome, obj, ctx, status, conds, interval).await
    })
    .await
}

/// `bucket/namespace/name`: the key of per-object controller state (backoff, handled runs); the
/// kind prefix keeps it apart from a GitRepository of the same name.
pub(crate) fn key(obj: &Bucket) -> String {
    format!(
        "bucket/{}/{}",
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Turns the steps' outcome into status fields, conditions, events and the next requeue.
async fn record(
    outcome: Outcome,
    obj: &Bucket,
    ctx: &Context,
    status: &mut BucketStatus,
    conds: &mut Conditions,
    interval: Duration,
) -> (Action, Option<Duration>) {
    match outcome {
        Outcome::Stored(NewArtifact { artifact, files }) => {
            let revision = artifact.revision.clone();
            let msg = format!(
                "stored artifact with {files} fetched files from '{}' bucket",
                obj.spec.bucket_name
            );
            let result =
                super::record_new_artifact(obj, ctx, conds, &artifact, &stored(&revision), &msg, interval)
                    .await;
            status.artifact = Some(artifact);
            status.observed_ignore.clone_from(&obj.spec.ignore);
            result
        }
        Outcome::Unchanged { revision } => {
            let msg = format!("artifact up-to-date with remote revision: '{revision}'");
            let trace = (reasons::ARTIFACT_UP_TO_DATE, msg.as_str());
            super::record_unchanged(obj, ctx, conds, &stored(&revision), trace, interval).await
        }
        Outcome::Failed {
            kind,
            reason,
            message,
        } => super::record_failure(obj, ctx, conds, kind, reason, &message).await,
        Outcome::Stalled { reason, message } => {
            // As Flux does for Buckets, the stalling error is also the fetch failure, so Ready
            // shows it rather than an older fetch error.
            conds.fail(FailureKind::Fetch, reason, &message);
            super::record_stall(obj, ctx, conds, reason, &message).await
        }
    }
}

/// Flux's Bucket wording of a stored artifact: "stored artifact: revision '<rev>'" (a colon,
/// unlike Git).
fn stored(revision: &str) -> String {
    format!("stored artifact: revision '{revision}'")
}

/// Fields this build does not act on yet; setting one stalls the object instead of ignoring it.
fn unsupported_field(obj: &Bucket) -> Option<&'static str> {
    let s = &obj.spec;
    if s.provider == BucketProvider::Gcp {
        Some("spec.provider 'gcp'")
    } else if s.sts.is_some() {
        Some("spec.sts")
    } else if s.service_account_name.is_some() {
        Some("spec.serviceAccountName")
    } else {
        None
    }
}

/// Configuration errors that stall the object until its spec changes.
fn check_config(obj: &Bucket) -> Option<Outcome> {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    if let Some(field) = unsupported_field(obj) {
        return Some(Outcome::Stalled {
            reason: reasons::UNSUPPORTED_CONFIGURATION,
            message: format!(
                "{field} is not supported by this source-controller yet; remove it from Bucket '{ns}/{name}'"
            ),
        });
    }
    if obj.spec.cert_secret_ref.is_some() && obj.spec.provider != BucketProvider::Generic {
        return Some(Outcome::Stalled {
            reason: reasons::INVALID_PROVIDER_CONFIGURATION,
            message: format!(
                "spec.certSecretRef is only supported for the 'generic' provider; Bucket '{ns}/{name}'"
            ),
        });
    }
    None
}

async fn run_steps(
    obj: &Bucket,
    ctx: &Context,
    status: &mut BucketStatus,
    conds: &mut Conditions,
) -> Outcome {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    if let Some(stalled) = check_config(obj) {
        return stalled;
    }
    let timeout = gitops_api::duration::parse(&obj.spec.timeout).unwrap_or(Duration::from_secs(60));

    super::check_storage(ctx, &obj.object_ref(&()), KIND_DIR, &mut status.artifact, conds).await;
    // Keep status.url pointing at the symlink whenever an artifact is stored.
    if status.artifact.is_some()
        && let Ok(url) = ctx.storage.set_latest_symlink(
            KIND_DIR,
            &ns,
            &name,
            status
                .artifact
                .as_ref()
                .and_then(|a| a.path.rsplit('/').next())
                .unwrap_or_default(),
        )
    {
        status.url = Some(url);
    }

    let client = match client(obj, ctx).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };

    // Index: list + ignore rules; skip everything when the digest equals the stored revision.
    let indexed = match bucket::index(
        &client,
        obj.spec.prefix.as_deref(),
        obj.spec.ignore.as_deref(),
        timeout,
    )
    .await
    {
        Ok(i) => i,
        Err(e) => return Outcome::fetch_failed(&e),
    };
    let listed_revision = indexed.index.revision();
    let content_changed = status.observed_ignore != obj.spec.ignore;
    if let Some(a) = &status.artifact
        && a.revision == listed_revision
        && !content_changed
    {
        return Outcome::Unchanged {
            revision: listed_revision,
        };
    }
    conds.outdated(&listed_revision);

    // Fetch into a temp dir, then package + store under the final revision.
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            return Outcome::storage_failed(
                reasons::DIRECTORY_CREATION_FAILED,
                format!("failed to create temporary directory: {e}"),
            );
        }
    };
    let fetched = match bucket::download(&client, &indexed.index, tmp.path(), timeout).await {
        Ok(i) => i,
        Err(e) => return Outcome::fetch_failed(&e),
    };
    package_and_store(obj, ctx, status, tmp, &fetched).await
}

/// Archives the downloaded objects as `<digest-hex>.tar.gz` under the index's revision and points
/// `latest.tar.gz` (and `status.url`) at it.
async fn package_and_store(
    obj: &Bucket,
    ctx: &Context,
    status: &mut BucketStatus,
    dir: tempfile::TempDir,
    fetched: &bucket::EtagIndex,
) -> Outcome {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let revision = fetched.revision();
    let files = fetched.len();
    let file = format!(
        "{}.tar.gz",
        revision.split_once(':').map_or(revision.as_str(), |(_, hex)| hex)
    );
    let rel = match crate::storage::artifact_path(KIND_DIR, &ns, &name, &file) {
        Ok(p) => p,
        Err(e) => return Outcome::storage_failed(e.reason(), e.to_string()),
    };
    if let Err(e) = ctx.storage.create_object_dir(KIND_DIR, &ns, &name) {
        return Outcome::storage_failed(e.reason(), e.to_string());
    }
    let storage = ctx.storage.clone();
    let job = tokio::task::spawn_blocking(move || {
        let mut writer = storage.writer(&rel).map_err(|e| (e.reason(), e.to_string()))?;
        // The objects were filtered before download: archive all of them.
        archive::write_tar_gz(dir.path(), &archive::IgnoreRules::none(), &mut writer)
            .map_err(|e| (reasons::ARCHIVE_OPERATION_FAILED, e.to_string()))?;
        writer.commit().map_err(|e| (e.reason(), e.to_string()))
    });
    let stored = match job.await {
        Ok(Ok(stored)) => stored,
        Ok(Err((reason, message))) => return Outcome::storage_failed(reason, message),
        Err(e) => {
            return Outcome::storage_failed(
                reasons::ARCHIVE_OPERATION_FAILED,
                format!("packaging task failed: {e}"),
            );
        }
    };
    match ctx.storage.set_latest_symlink(KIND_DIR, &ns, &name, &file) {
        Ok(url) => status.url = Some(url),
        Err(e) => {
            ctx.events
                .emit(
                    &obj.object_ref(&()),
                    Severity::Trace,
                    reasons::SYMLINK_UPDATE_FAILED,
                    &e.to_string(),
                    BTreeMap::new(),
                )
                .await;
        }
    }
    Outcome::Stored(NewArtifact {
        artifact: stored.into_artifact(&revision),
        files,
    })
}

/// Reads the referenced Secrets and builds the client.
async fn client(obj: &Bucket, ctx: &Context) -> Result<BucketClient, Outcome> {
    let ns = obj.namespace().unwrap_or_default();
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), &ns);
    let auth_failed = |message: String| Outcome::Failed {
        kind: FailureKind::Fetch,
        reason: reasons::AUTHENTICATION_FAILED,
        message,
    };
    let read = |name: String| {
        let secrets = secrets.clone();
        let ns = ns.clone();
        async move {
            let data = super::read_secret(&secrets, &ns, &name).await?;
            Ok::<_, String>((
                format!("{ns}/{name}"),
                data.into_iter()
                    .map(|(k, v)| (k, Secret::new(v)))
                    .collect::<SecretData>(),
            ))
        }
    };
    let secret = match &obj.spec.secret_ref {
        Some(r) => Some(read(r.name.clone()).await.map_err(auth_failed)?),
        None => None,
    };
    let cert_secret = match &obj.spec.cert_secret_ref {
        Some(r) => Some(read(r.name.clone()).await.map_err(auth_failed)?),
        None => None,
    };
    let proxy = match &obj.spec.proxy_secret_ref {
        Some(r) => {
            let (_, data) = read(r.name.clone()).await.map_err(auth_failed)?;
            let raw: BTreeMap<String, Vec<u8>> =
                data.into_iter().map(|(k, v)| (k, v.expose().to_vec())).collect();
            Some(
                ProxyOptions::from_secret(&raw)
                    .map_err(|e| auth_failed(format!("invalid proxy secret '{ns}/{}': {e}", r.name)))?,
            )
        }
        None => None,
    };
    let provider = match obj.spec.provider {
        BucketProvider::Aws => Provider::Aws,
        BucketProvider::Azure => Provider::Azure,
        BucketProvider::Generic | BucketProvider::Gcp => Provider::Generic,
    };
    let cfg = ClientConfig {
        provider,
        bucket: obj.spec.bucket_name.clone(),
        endpoint: obj.spec.endpoint.clone(),
        insecure: obj.spec.insecure,
        region: obj.spec.region.clone(),
        secret,
        cert_secret,
        proxy,
    };
    BucketClient::new(&cfg).map_err(|e| Outcome::fetch_failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(spec: &serde_json::Value) -> Bucket {
        let mut full = serde_json::json!({"bucketName": "x", "endpoint": "e", "interval": "1m"});
        if let (Some(m), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "Bucket",
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": full,
        }))
        .unwrap()
    }

    #[test]
    fn gcp_sts_and_service_accounts_stall_naming_the_field() {
        use serde_json::json;
        let gcp = bucket(&json!({"provider": "gcp"}));
        let Some(Outcome::Stalled { reason, message }) = check_config(&gcp) else {
            panic!("gcp must stall");
        };
        assert_eq!(reason, "UnsupportedConfiguration");
        assert!(
            message.starts_with("spec.provider 'gcp' is not supported"),
            "{message}"
        );
        let sa = bucket(&json!({"provider": "aws", "serviceAccountName": "sa"}));
        assert!(matches!(check_config(&sa), Some(Outcome::Stalled { .. })));
        let sts = bucket(
            &json!({"provider": "aws", "sts": {"provider": "aws", "endpoint": "https://sts.amazonaws.com"}}),
        );
        let Some(Outcome::Stalled { message, .. }) = check_config(&sts) else {
            panic!("sts must stall");
        };
        assert!(message.starts_with("spec.sts "), "{message}");
        assert!(check_config(&bucket(&json!({}))).is_none());
    }
}
