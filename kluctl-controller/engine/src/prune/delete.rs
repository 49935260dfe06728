//! Deleting objects on the cluster in Kluctl's order: every Namespace first (in parallel),
//! objects inside those namespaces are left to the namespace deletion, then everything else in
//! parallel. Used by prune, delete-all, and by apply/ for `deleteObjects` / `kluctl.io/delete`.
//!
//! ```text
//! [(ref, uid?)] ─► phase 1: Namespaces ──(8 at a time)──► DELETE (+ wait)
//!               ─► phase 2: the rest, minus objects in phase-1 namespaces ──(8)──► DELETE (+ wait)
//!               ─► DeleteOutcome { deleted, skipped_in_deleted_namespaces, errors, warnings }
//! ```
//!
//! Deletes use background propagation. "Not found" counts as deleted. A dry run asks the
//! server to validate the delete without persisting it and never waits. With a uid (prune and
//! delete-all pass the uid they listed) the delete carries a uid precondition, so an object
//! recreated by someone else since the listing is left alone and reported as a warning.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt as _;
use gitops_api::kluctl::v1beta1::{DeploymentError, ObjectRef};
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};

use crate::remote::{ApiIndex, api_for};

/// Kluctl's parallelism for deletes.
pub const DEFAULT_DELETE_CONCURRENCY: usize = 8;
/// How often a waited-for object is looked up again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// How to delete.
#[derive(Clone, Debug)]
pub struct DeleteOptions {
    /// Server-side dry run: nothing is deleted, nothing is waited for.
    pub dry_run: bool,
    /// Wait for each object to disappear, at most this long per object; `None`: do not wait.
    pub wait: Option<Duration>,
    /// Deletes in flight at a time.
    pub concurrency: usize,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            wait: None,
            concurrency: DEFAULT_DELETE_CONCURRENCY,
        }
    }
}

/// What a deletion did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Objects deleted (or already gone; in a dry run: that would be deleted), in request order
    /// per phase.
    pub deleted: Vec<ObjectRef>,
    /// Objects not deleted one by one because their namespace was deleted in the same run.
    pub skipped_in_deleted_namespaces: Vec<ObjectRef>,
    /// Deletes that failed.
    pub errors: Vec<DeploymentError>,
    /// Objects left alone on purpose (recreated since listed).
    pub warnings: Vec<DeploymentError>,
}

/// One object to delete, optionally pinned to the uid seen when it was listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteTarget {
    /// The object.
    pub reference: ObjectRef,
    /// Delete only if the object still has this uid.
    pub uid: Option<String>,
}

fn is_namespace(r: &ObjectRef) -> bool {
    r.group.is_empty() && r.version == "v1" && r.kind == "Namespace"
}

/// Deletes `refs` (no uid preconditions); see the module doc for the order.
///
/// # Example
/// ```no_run
/// # async fn run(client: kube::Client, index: kluctl_engine::remote::ApiIndex,
/// #              refs: Vec<gitops_api::kluctl::v1beta1::ObjectRef>) {
/// use kluctl_engine::prune::{DeleteOptions, delete_objects};
/// let outcome = delete_objects(&client, &index, &refs, &DeleteOptions::default()).await;
/// for e in &outcome.errors {
///     eprintln!("{}: {}", e.object_ref, e.message);
/// }
/// # }
/// ```
pub async fn delete_objects(
    client: &kube::Client,
    index: &ApiIndex,
    refs: &[ObjectRef],
    options: &DeleteOptions,
) -> DeleteOutcome {
    let targets: Vec<DeleteTarget> = refs
        .iter()
        .map(|r| DeleteTarget {
            reference: r.clone(),
            uid: None,
        })
        .collect();
    delete_targets(client, index, &targets, options).await
}

/// Deletes `targets` with their uid preconditions; see the module doc for the order.
pub async fn delete_targets(
    client: &kube::Client,
    index: &ApiIndex,
    targets: &[DeleteTarget],
    options: &DeleteOptions,
) -> DeleteOutcome {
    let mut outcome = DeleteOutcome::default();
    let (namespaces, rest): (Vec<&DeleteTarget>, Vec<&DeleteTarget>) =
        targets.iter().partition(|t| is_namespace(&t.reference));
    let deleted_namespaces: BTreeSet<&str> = namespaces.iter().map(|t| t.reference.name.as_str()).collect();
    run_phase(client, index, &namespaces, options, &mut outcome).await;
    let (skipped, rest): (Vec<&DeleteTarget>, Vec<&DeleteTarget>) = rest
        .into_iter()
        .partition(|t| deleted_namespaces.contains(t.reference.namespace.as_str()));
    outcome.skipped_in_deleted_namespaces = skipped.into_iter().map(|t| t.reference.clone()).collect();
    run_phase(client, index, &rest, options, &mut outcome).await;
    outcome
}

enum Deleted {
    Yes,
    Recreated(String),
    Failed(String),
}

async fn run_phase(
    client: &kube::Client,
    index: &ApiIndex,
    targets: &[&DeleteTarget],
    options: &DeleteOptions,
    outcome: &mut DeleteOutcome,
) {
    // `buffered` keeps request order in the results while running `concurrency` at a time.
    let results: Vec<(ObjectRef, Deleted)> = futures::stream::iter(targets)
        .map(|t| async move { (t.reference.clone(), delete_one(client, index, t, options).await) })
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    for (reference, result) in results {
        match result {
            Deleted::Yes => outcome.deleted.push(reference),
            Deleted::Recreated(message) => outcome.warnings.push(DeploymentError {
                object_ref: reference,
                message,
            }),
            Deleted::Failed(message) => outcome.errors.push(DeploymentError {
                object_ref: reference,
                message,
            }),
        }
    }
}

async fn delete_one(
    client: &kube::Client,
    index: &ApiIndex,
    target: &DeleteTarget,
    options: &DeleteOptions,
) -> Deleted {
    let reference = &target.reference;
    let Some(entry) = index.resolve(reference) else {
        return Deleted::Failed(format!(
            "failed to delete object: kind '{}' of '{}' is not served by the cluster",
            reference.kind,
            kube::core::GroupVersion::gv(&reference.group, &reference.version).api_version()
        ));
    };
    let api = api_for(client, entry, &reference.namespace);
    let params = DeleteParams {
        dry_run: options.dry_run,
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: target.uid.as_ref().map(|uid| Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&reference.name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_not_found() => return Deleted::Yes,
        Err(kube::Error::Api(s)) if s.is_conflict() && target.uid.is_some() => {
            return Deleted::Recreated(
                "not deleted: the object was replaced since it was listed (uid precondition failed)"
                    .to_owned(),
            );
        }
        Err(e) => return Deleted::Failed(format!("failed to delete object: {e}")),
    }
    if options.dry_run {
        return Deleted::Yes;
    }
    let Some(timeout) = options.wait else {
        return Deleted::Yes;
    };
    let wait = async {
        loop {
            match api.get_metadata_opt(&reference.name).await {
                Ok(None) => return Ok(()),
                // A new object under the same name is not the one we deleted.
                Ok(Some(m)) if target.uid.is_some() && m.metadata.uid != target.uid => return Ok(()),
                Ok(Some(_)) => tokio::time::sleep(WAIT_POLL).await,
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(())) => Deleted::Yes,
        Ok(Err(e)) => Deleted::Failed(format!("failed to wait for the deletion of the object: {e}")),
        Err(_) => Deleted::Failed(format!(
            "failed to wait for the deletion of the object: still present after {}s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::rules::test_support::reference;
    use crate::remote::resources::test_support::{index, unreachable_client};

    #[tokio::test]
    async fn objects_in_deleted_namespaces_are_left_to_the_namespace() {
        let refs = [
            reference("", "v1", "ConfigMap", "app", "inside"),
            reference("", "v1", "Namespace", "", "app"),
        ];
        let outcome = delete_objects(&unreachable_client(), &index(), &refs, &DeleteOptions::default()).await;
        assert_eq!(
            outcome.skipped_in_deleted_namespaces,
            [reference("", "v1", "ConfigMap", "app", "inside")]
        );
        // The namespace delete was attempted (and failed: nothing listens).
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.errors[0].object_ref.to_string(), "Namespace/app");
        assert!(outcome.errors[0].message.starts_with("failed to delete object: "));
        assert!(outcome.deleted.is_empty());
    }

    #[tokio::test]
    async fn unserved_kinds_fail_without_a_request() {
        let refs = [reference("gone.example.com", "v1", "Thing", "app", "t")];
        let outcome = delete_objects(&unreachable_client(), &index(), &refs, &DeleteOptions::default()).await;
        assert_eq!(
            outcome.errors[0].message,
            "failed to delete object: kind 'Thing' of 'gone.example.com/v1' is not served by the cluster"
        );
    }
}
