//! `kluctl get sources [git|bucket]`: GitRepositories and Buckets with their artifact revision.

use gitops_api::source::v1::{Bucket, GitRepository};
use jiff::Timestamp;
use kube::Resource as _;
use kube::api::ListParams;

use super::table::{self, StatusRow};
use super::{changes, connect_list, print_watch};
use crate::flags::get::{GetSourcesCmd, SourceKindArg};

/// Lists (or watches) the selected source kinds; both kinds share one table, named `kind/name`.
pub(super) async fn run(cmd: &GetSourcesCmd) -> anyhow::Result<()> {
    let conn = connect_list(&cmd.list).await?;
    let all = conn.namespace.is_none();
    let kinds = match cmd.kind {
        Some(k) => vec![k],
        None => vec![SourceKindArg::Git, SourceKindArg::Bucket],
    };
    let prefixed = kinds.len() > 1;
    if cmd.watch {
        let streams = kinds
            .iter()
            .map(|k| match k {
                SourceKindArg::Git => changes(conn.api::<GitRepository>(), move |o| git_row(o, prefixed)),
                SourceKindArg::Bucket => changes(conn.api::<Bucket>(), move |o| bucket_row(o, prefixed)),
            })
            .collect();
        return print_watch(streams, all).await;
    }
    let mut rows = Vec::new();
    for kind in kinds {
        match kind {
            SourceKindArg::Git => rows.extend(list_rows(&conn, "GitRepositories", git_row, prefixed).await?),
            SourceKindArg::Bucket => rows.extend(list_rows(&conn, "Buckets", bucket_row, prefixed).await?),
        }
    }
    if rows.is_empty() {
        eprintln!(
            "no sources found{}",
            super::deployments::where_(conn.namespace.as_deref())
        );
        return Ok(());
    }
    print!("{}", table::status_table(&rows, all, Timestamp::now()));
    Ok(())
}

/// One row per object of kind `K` (`what`: the kind's plural, for the error).
async fn list_rows<K>(
    conn: &super::Connection,
    what: &str,
    row: fn(&K, bool) -> StatusRow,
    prefixed: bool,
) -> anyhow::Result<Vec<StatusRow>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let list = conn
        .api::<K>()
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("failed to list {what}: {e}"))?;
    Ok(list.items.iter().map(|o| row(o, prefixed)).collect())
}

fn name_of<K: kube::Resource<DynamicType = ()>>(o: &K, prefixed: bool) -> String {
    let name = o.meta().name.clone().unwrap_or_default();
    if prefixed {
        format!("{}/{name}", K::kind(&()).to_lowercase())
    } else {
        name
    }
}

/// The row of a GitRepository: REVISION is `status.artifact.revision`.
pub(super) fn git_row(o: &GitRepository, prefixed: bool) -> StatusRow {
    let status = o.status.clone().unwrap_or_default();
    StatusRow {
        namespace: o.meta().namespace.clone().unwrap_or_default(),
        name: name_of(o, prefixed),
        revision: status.artifact.map(|a| a.revision).unwrap_or_default(),
        suspended: o.spec.suspend,
        conditions: status.conditions.unwrap_or_default(),
        created: o.meta().creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// The row of a Bucket: REVISION is `status.artifact.revision`.
pub(super) fn bucket_row(o: &Bucket, prefixed: bool) -> StatusRow {
    let status = o.status.clone().unwrap_or_default();
    StatusRow {
        namespace: o.meta().namespace.clone().unwrap_or_default(),
        name: name_of(o, prefixed),
        revision: status.artifact.map(|a| a.revision).unwrap_or_default(),
        suspended: o.spec.suspend,
        conditions: status.conditions.unwrap_or_default(),
        created: o.meta().creation_timestamp.as_ref().map(|t| t.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_gitrepository_row_shows_its_artifact_revision_and_ready_condition() {
        let o: GitRepository = serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "app", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"interval": "1m", "url": "http://git/app.git", "suspend": true},
            "status": {
                "artifact": {"revision": "main@sha1:abc", "path": "p", "url": "u", "digest": "sha256:x", "lastUpdateTime": "2026-01-01T00:00:00Z"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                    "message": "stored artifact for revision 'main@sha1:abc'", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            },
        }))
        .unwrap();
        let row = git_row(&o, true);
        assert_eq!(row.name, "gitrepository/app");
        assert_eq!(row.revision, "main@sha1:abc");
        assert!(row.suspended);
        let cells = table::status_cells(&row, false, "2026-01-01T01:00:00Z".parse().unwrap());
        assert_eq!(
            cells,
            [
                "gitrepository/app",
                "main@sha1:abc",
                "True",
                "True",
                "stored artifact for revision 'main@sha1:abc'",
                "60m"
            ]
        );
        assert_eq!(git_row(&o, false).name, "app");
    }
}
