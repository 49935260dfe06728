//! The storage side of a run, shared by the kinds: the check of the recorded artifact before the
//! fetch (GC around it, then verify its digest) and the store step (atomic write of the archive the
//! package step produces).
//!
//! ```text
//!  check:  GC (TTL + records) around the recorded file ─► verify digest ─► Checked
//!            valid:  the artifact with the current advertised URL
//!            lost:   file removed, artifact dropped ⇒ the run rebuilds it (same revision, same digest)
//!  store:  artifact path ─► object dir ─► lock + temp file ─► package(writer) ─► fsync + rename ─► Stored
//! ```

use super::Context;
use super::error::StepError;
use super::record::Checked;
use crate::storage::{ArtifactWriter, Stored};
use gitops_api::meta::Artifact;

/// GC around the recorded artifact, then re-verify it. Like Flux, collects only around a current
/// artifact: without one there is nothing to keep. GC failures are logged, never fatal.
pub(crate) fn check(
    ctx: &Context,
    kind_dir: &str,
    ns: &str,
    name: &str,
    recorded: Option<Artifact>,
) -> Checked {
    let mut checked = Checked::default();
    let Some(mut artifact) = recorded else {
        return checked;
    };
    let settings = &ctx.settings;
    let current = artifact.path.rsplit('/').next().unwrap_or_default();
    match ctx.storage.gc(
        kind_dir,
        ns,
        name,
        current,
        settings.retention_ttl,
        settings.retention_records,
    ) {
        Ok(report) => checked.gc_deleted = report.deleted.len(),
        Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
    }
    if ctx.storage.verify(&artifact).is_ok_and(|v| v.is_verified()) {
        // The advertised address may have changed since the artifact was stored.
        artifact.url = ctx.storage.url(&artifact.path);
        checked.artifact = Some(artifact);
    } else {
        let _ = ctx.storage.remove(&artifact.path);
        checked.lost = Some(artifact.path);
    }
    checked
}

/// The store step: writes what `package` writes as `<kind_dir>/<ns>/<name>/<file>`, atomically and
/// under the artifact's lock, on the blocking pool. Nothing is stored when `package` fails.
///
/// # Errors
/// [`StepError::Storage`] for the path, directory, lock or write; what `package` returns;
/// [`StepError::PackageTask`] when the blocking task dies.
pub(crate) async fn store<P>(
    ctx: &Context,
    kind_dir: &str,
    ns: &str,
    name: &str,
    file: &str,
    package: P,
) -> Result<Stored, StepError>
where
    P: FnOnce(&mut ArtifactWriter) -> Result<(), StepError> + Send + 'static,
{
    let rel = crate::storage::artifact_path(kind_dir, ns, name, file)?;
    ctx.storage.create_object_dir(kind_dir, ns, name)?;
    let storage = ctx.storage.clone();
    tokio::task::spawn_blocking(move || {
        let mut writer = storage.writer(&rel)?;
        package(&mut writer)?;
        Ok(writer.commit()?)
    })
    .await
    .map_err(StepError::PackageTask)?
}
