//! Bucket reconcile: resolve → fetch → package → store → status.
//!
//! ```text
//!  resolve   spec → Source (client settings, timeout)  pure; gcp, sts, serviceAccountName ⇒ Stalled
//!  check     GC; re-verify the recorded artifact; refresh latest.tar.gz
//!  fetch     Secrets → client; list + ignore rules → etag index → revision
//!            (revision equals the recorded one ⇒ Unchanged, nothing downloaded)
//!            download the indexed objects into a temp dir ⇒ Tree (revision recomputed)
//!  package   Tree → tar.gz bytes                       pure (objects were filtered before download)
//!  store     atomic write under a lock; latest.tar.gz symlink
//!  record    pure: artifact, url, observedIgnore, conditions, events (see record.rs)
//! ```
//!
//! Failures never remove the previous artifact: it stays in status and on disk, still served.

use super::Context;
use super::context::namespaced_name;
use super::error::{Failure, StepError};
use super::record::{self, End, Fetched, Note, Recorded, Run, Verdict};
use super::store;
use crate::archive;
use crate::bucket::{self, BucketClient, ClientConfig, Provider};
use crate::credentials::Secrets;
use crate::status::Conditions;
use gitops_api::conditions::reasons;
use gitops_api::meta::Artifact;
use gitops_api::source::v1::{Bucket, BucketProvider, BucketStatus};
use gitops_runtime::Severity;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Storage kind directory of Bucket artifacts.
pub const KIND_DIR: &str = "bucket";

/// Entry point for the controller.
pub async fn reconcile(obj: Arc<Bucket>, ctx: Arc<Context>) -> Result<Action, super::Error> {
    super::finalizer::reconcile_kind(obj, ctx, run, record).await
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

/// What a new Bucket artifact brings: the artifact, how many objects were fetched, and the URL of
/// the `latest.tar.gz` symlink now pointing at it.
struct NewArtifact {
    artifact: Artifact,
    files: usize,
    latest_url: Option<String>,
}

/// What resolve derives from the spec: the client settings (without Secrets) and the timeout.
struct Source {
    provider: Provider,
    timeout: Duration,
}

/// The downloaded objects of a new revision, removed when dropped.
struct Tree {
    dir: tempfile::TempDir,
    index: bucket::EtagIndex,
}

/// The steps of one run, in order; the status function gets what they found.
async fn run(obj: &Bucket, ctx: &Context, status: &BucketStatus) -> Run<NewArtifact> {
    let source = match resolve(obj) {
        Ok(s) => s,
        Err(e) => return Run::stopped(e.into()),
    };
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let mut checked = store::check(ctx, KIND_DIR, &ns, &name, status.artifact.clone());
    // Keep status.url pointing at the symlink whenever an artifact is stored.
    if let Some(a) = &checked.artifact {
        checked.latest_url = ctx
            .storage
            .set_latest_symlink(KIND_DIR, &ns, &name, file_name(a))
            .ok();
    }
    let content_changed = status.observed_ignore != obj.spec.ignore;
    let recorded = checked.artifact.as_ref().filter(|_| !content_changed);
    let mut building = None;
    let mut notes = Vec::new();
    let end = match fetch(obj, ctx, &source, recorded, &mut building).await {
        Ok(Fetched::Unchanged(revision)) => Ok(End::Unchanged { revision }),
        Ok(Fetched::Changed(tree)) => store_tree(obj, ctx, tree, &mut notes).await.map(End::Stored),
        Err(f) => Err(f),
    };
    Run {
        checked: Some(checked),
        building,
        notes,
        end,
    }
}

/// The file name of a stored artifact.
fn file_name(a: &Artifact) -> &str {
    a.path.rsplit('/').next().unwrap_or_default()
}

/// The resolve step: configuration errors stall the object until its spec changes.
fn resolve(obj: &Bucket) -> Result<Source, StepError> {
    if let Some(field) = unsupported_field(obj) {
        return Err(StepError::Unsupported {
            field,
            kind: "Bucket",
            object: namespaced_name(obj),
        });
    }
    if obj.spec.cert_secret_ref.is_some() && obj.spec.provider != BucketProvider::Generic {
        return Err(StepError::CertSecretProvider {
            object: namespaced_name(obj),
        });
    }
    let provider = match obj.spec.provider {
        BucketProvider::Aws => Provider::Aws,
        BucketProvider::Azure => Provider::Azure,
        BucketProvider::Generic | BucketProvider::Gcp => Provider::Generic,
    };
    let timeout = gitops_api::duration::parse(&obj.spec.timeout).unwrap_or(Duration::from_secs(60));
    Ok(Source { provider, timeout })
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

/// The fetch step: Secrets → client, the etag index, and a download when its revision differs
/// from `recorded` (`None` when the ignore rules changed). Sets `building` to the listed revision
/// before the download.
async fn fetch(
    obj: &Bucket,
    ctx: &Context,
    source: &Source,
    recorded: Option<&Artifact>,
    building: &mut Option<String>,
) -> Result<Fetched<Tree>, Failure> {
    let secrets = Secrets::new(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let s = &obj.spec;
    let found = secrets
        .bucket(
            s.secret_ref.as_ref(),
            s.cert_secret_ref.as_ref(),
            s.proxy_secret_ref.as_ref(),
        )
        .await
        .map_err(StepError::from)?;
    let client = BucketClient::new(&ClientConfig {
        provider: source.provider,
        bucket: s.bucket_name.clone(),
        endpoint: s.endpoint.clone(),
        insecure: s.insecure,
        region: s.region.clone(),
        secret: found.secret,
        cert_secret: found.cert_secret,
        proxy: found.proxy,
    })
    .map_err(StepError::from)?;
    let indexed = bucket::index(&client, s.prefix.as_deref(), s.ignore.as_deref(), source.timeout)
        .await
        .map_err(StepError::from)?;
    let listed_revision = indexed.index.revision();
    if recorded.is_some_and(|a| a.revision == listed_revision) {
        return Ok(Fetched::Unchanged(listed_revision));
    }
    *building = Some(listed_revision);
    let dir = tempfile::tempdir().map_err(StepError::TempDir)?;
    let index = bucket::download(&client, &indexed.index, dir.path(), source.timeout)
        .await
        .map_err(StepError::from)?;
    Ok(Fetched::Changed(Tree { dir, index }))
}

/// The package step: every downloaded object into `out` (they were filtered before download).
fn package(tree: &Path, out: &mut impl Write) -> Result<(), StepError> {
    archive::write_tar_gz(tree, &archive::IgnoreRules::none(), out)?;
    Ok(())
}

/// Packages and stores `tree` as `<digest-hex>.tar.gz` under the index's revision and points
/// `latest.tar.gz` at it; a failed symlink update is only a trace event in `notes`.
async fn store_tree(
    obj: &Bucket,
    ctx: &Context,
    tree: Tree,
    notes: &mut Vec<Note>,
) -> Result<NewArtifact, Failure> {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let Tree { dir, index } = tree;
    let revision = index.revision();
    let file = format!(
        "{}.tar.gz",
        revision.split_once(':').map_or(revision.as_str(), |(_, hex)| hex)
    );
    let stored = store::store(ctx, KIND_DIR, &ns, &name, &file, move |out| {
        package(dir.path(), out)
    })
    .await?;
    let latest_url = match ctx.storage.set_latest_symlink(KIND_DIR, &ns, &name, &file) {
        Ok(url) => Some(url),
        Err(e) => {
            notes.push(Note::new(
                Severity::Trace,
                reasons::SYMLINK_UPDATE_FAILED,
                e.to_string(),
            ));
            None
        }
    };
    Ok(NewArtifact {
        artifact: stored.into_artifact(&revision),
        files: index.len(),
        latest_url,
    })
}

/// The status function of a Bucket run (pure).
fn record(
    obj: &Bucket,
    run: Run<NewArtifact>,
    status: &mut BucketStatus,
    conds: &mut Conditions,
) -> Recorded {
    if let Some(url) = run.checked.as_ref().and_then(|c| c.latest_url.clone()) {
        status.url = Some(url);
    }
    if let Err(f) = &run.end
        && f.stalls()
    {
        // As Flux does for Buckets, the stalling error is also the fetch failure, so Ready
        // shows it rather than an older fetch error.
        conds.fail(crate::status::FailureKind::Fetch, f.reason, &f.message);
    }
    record::record::<Bucket, _>(run, status, conds, |end, status| match end {
        End::Stored(NewArtifact {
            artifact,
            files,
            latest_url,
        }) => {
            if latest_url.is_some() {
                status.url = latest_url;
            }
            status.observed_ignore.clone_from(&obj.spec.ignore);
            Verdict::Stored {
                condition: stored(&artifact.revision),
                event: format!(
                    "stored artifact with {files} fetched files from '{}' bucket",
                    obj.spec.bucket_name
                ),
                artifact,
            }
        }
        End::Unchanged { revision } => Verdict::Unchanged {
            condition: stored(&revision),
            trace: (
                reasons::ARTIFACT_UP_TO_DATE,
                format!("artifact up-to-date with remote revision: '{revision}'"),
            ),
        },
    })
}

/// Flux's Bucket wording of a stored artifact: "stored artifact: revision '<rev>'" (a colon,
/// unlike Git).
fn stored(revision: &str) -> String {
    format!("stored artifact: revision '{revision}'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bucket(spec: &serde_json::Value) -> Bucket {
        let mut full = json!({"bucketName": "x", "endpoint": "e", "interval": "1m"});
        if let (Some(m), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "Bucket",
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": full,
        }))
        .unwrap()
    }

    fn stall(spec: &serde_json::Value) -> Failure {
        Failure::from(resolve(&bucket(spec)).err().expect("a configuration error"))
    }

    #[test]
    fn gcp_sts_and_service_accounts_stall_naming_the_field() {
        let gcp = stall(&json!({"provider": "gcp"}));
        assert!(gcp.stalls());
        assert_eq!(gcp.reason, "UnsupportedConfiguration");
        assert!(
            gcp.message.starts_with("spec.provider 'gcp' is not supported"),
            "{}",
            gcp.message
        );
        assert!(stall(&json!({"provider": "aws", "serviceAccountName": "sa"})).stalls());
        let sts = stall(
            &json!({"provider": "aws", "sts": {"provider": "aws", "endpoint": "https://sts.amazonaws.com"}}),
        );
        assert!(sts.message.starts_with("spec.sts "), "{}", sts.message);
        let cert = stall(&json!({"provider": "aws", "certSecretRef": {"name": "tls"}}));
        assert_eq!(cert.reason, reasons::INVALID_PROVIDER_CONFIGURATION);
        assert!(resolve(&bucket(&json!({}))).is_ok());
    }

    #[test]
    fn a_stall_is_also_the_fetch_failure_and_waits_for_a_change() {
        let obj = bucket(&json!({"provider": "gcp"}));
        let mut status = BucketStatus::default();
        let mut conds = Conditions::new(
            vec![],
            Some(1),
            gitops_api::meta::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        );
        let rec = record(
            &obj,
            Run::stopped(stall(&json!({"provider": "gcp"}))),
            &mut status,
            &mut conds,
        );
        assert_eq!(rec.next, super::super::requeue::Next::AwaitChange);
        assert!(conds.is_stalled());
        let fetch = gitops_api::conditions::find(&conds.list, gitops_api::conditions::types::FETCH_FAILED)
            .expect("FetchFailed");
        assert_eq!(fetch.reason, reasons::UNSUPPORTED_CONFIGURATION);
    }
}
