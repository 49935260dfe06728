//! `kluctl get deployments` (`kd`): KluctlDeployments with the revision they deployed last.

use gitops_api::kluctl::v1beta1::KluctlDeployment;
use jiff::Timestamp;
use kube::Resource as _;
use kube::api::ListParams;

use super::table::{self, StatusRow};
use super::{changes, connect_list, print_watch};
use crate::flags::get::GetDeploymentsCmd;

/// Lists (or watches) the KluctlDeployments.
pub(super) async fn run(cmd: &GetDeploymentsCmd) -> anyhow::Result<()> {
    let conn = connect_list(&cmd.list).await?;
    let all = conn.namespace.is_none();
    if cmd.watch {
        let stream = changes(conn.api::<KluctlDeployment>(), deployment_row);
        return print_watch(vec![stream], all).await;
    }
    let list = conn
        .api::<KluctlDeployment>()
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("failed to list KluctlDeployments: {e}"))?;
    if list.items.is_empty() {
        eprintln!("no KluctlDeployments found{}", where_(conn.namespace.as_deref()));
        return Ok(());
    }
    let rows: Vec<StatusRow> = list.items.iter().map(deployment_row).collect();
    print!("{}", table::status_table(&rows, all, Timestamp::now()));
    Ok(())
}

/// ` in namespace 'x'` or ` in any namespace`, for "nothing found" messages.
pub(super) fn where_(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!(" in namespace '{ns}'"),
        None => " in any namespace".to_owned(),
    }
}

/// The revision a KluctlDeployment deployed last: the commit of `status.lastDeployResult`, else
/// `status.observedCommit` (the source revision it checked out last; a Bucket's revision).
pub(super) fn deployed_revision(o: &KluctlDeployment) -> String {
    let Some(status) = &o.status else {
        return String::new();
    };
    status
        .last_deploy_result
        .as_ref()
        .map(|r| r.git_info.commit.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| status.observed_commit.clone())
}

/// The row of a KluctlDeployment.
pub(super) fn deployment_row(o: &KluctlDeployment) -> StatusRow {
    StatusRow {
        namespace: o.meta().namespace.clone().unwrap_or_default(),
        name: o.meta().name.clone().unwrap_or_default(),
        revision: deployed_revision(o),
        suspended: o.spec.suspend,
        conditions: o
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
        created: o.meta().creation_timestamp.as_ref().map(|t| t.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kd(status: serde_json::Value) -> KluctlDeployment {
        let mut o = json!({
            "apiVersion": "gitops.kluctl.io/v1beta1",
            "kind": "KluctlDeployment",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"interval": "5m", "sourceRef": {"kind": "Bucket", "name": "b"}},
        });
        o["status"] = status;
        serde_json::from_value(o).unwrap()
    }

    #[test]
    fn the_revision_is_the_observed_commit_until_a_deploy_result_names_one() {
        assert_eq!(
            deployed_revision(&kd(json!({"observedCommit": "rev-1"}))),
            "rev-1"
        );
        let row = deployment_row(&kd(json!({})));
        assert_eq!((row.revision.as_str(), row.suspended), ("", false));
        assert_eq!(
            table::ready_columns(&row.conditions),
            ("False".to_owned(), "waiting to be reconciled".to_owned())
        );
    }
}
