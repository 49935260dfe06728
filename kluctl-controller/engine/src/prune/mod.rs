//! Pruning and deleting: the only engine code that removes objects from the cluster because
//! they are ours, not because a rendered object asks for it.
//!
//! ```text
//!  apply/ (all items applied) ─► Applied ─┐
//!  remote/ list_by_discriminator ─► RemoteObjects ─┬─► plan_prune ──────┐
//!                                                  └─► plan_delete_all ─┴─► DeletionPlan
//!                                          (CLI: show + confirm) ─► execute ─► DeleteOutcome
//! ```
//!
//! Safety, by construction:
//! - [`plan_prune`] needs an [`Applied`], which only apply/ can make after the render and every
//!   apply of the same run succeeded, so a failed render or apply can never lead to a prune.
//! - Candidates come only from [`RemoteObjects`], i.e. from lists with the label selector of a
//!   non-empty [`crate::remote::Discriminator`]; the prune refuses when the run has no discriminator or the
//!   listing was made with another one.
//! - Only objects passing [`rules::deletable`] are candidates (kluctl-managed, not owned, not
//!   marked to keep); deletes carry a uid precondition, so an object replaced since the listing
//!   is never removed.
//!
//! `delete` (delete-all) is not based on local state: every deletable object of the
//! discriminator inside the inclusion rules goes.

pub mod delete;
pub mod rules;

use gitops_api::kluctl::v1beta1::ObjectRef;

pub use delete::{DeleteOptions, DeleteOutcome, DeleteTarget, delete_objects, delete_targets};
pub use rules::{KeepReason, deletable, find_orphans, kept_orphans, objects_for_delete};

use crate::project::inclusion::Inclusion;
use crate::remote::{ApiIndex, RemoteObjects, object_ref};
use crate::target::RenderedTarget;

/// Why a prune was refused.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The target has no discriminator: orphans cannot be told apart from foreign objects.
    #[error("failed to prune target '{target}': pruning without a discriminator is not supported")]
    NoDiscriminator {
        /// The target name.
        target: String,
    },
    /// The remote objects were listed with another discriminator than the applied target's.
    #[error(
        "failed to prune target '{target}': remote objects were listed with discriminator '{listed}', the target has '{applied}'"
    )]
    DiscriminatorMismatch {
        /// The target name.
        target: String,
        /// The discriminator of the listing.
        listed: String,
        /// The discriminator of the applied target.
        applied: String,
    },
}

/// Evidence that this run rendered a target and applied every one of its objects successfully.
/// The only ticket to [`plan_prune`].
///
/// Only apply/ may construct this (after a successful apply of every item); other code receives
/// it from there.
#[derive(Debug)]
pub struct Applied {
    target: String,
    discriminator: String,
    rendered: Vec<ObjectRef>,
    inclusion: Inclusion,
}

impl Applied {
    /// Records a successful apply of `rendered`, which was rendered with `inclusion`.
    ///
    /// Only apply/ may call this, and only when the render and every apply of the run
    /// succeeded (no item failed, nothing aborted, no timeout).
    pub(crate) fn new(rendered: &RenderedTarget, inclusion: Inclusion) -> Self {
        Self {
            target: rendered.target.name.clone(),
            discriminator: rendered.target.discriminator.clone(),
            rendered: rendered.objects().filter_map(object_ref).collect(),
            inclusion,
        }
    }

    /// The ticket of the standalone `kluctl prune`, which applies nothing: it stands for the
    /// successful render of this run (a [`RenderedTarget`] exists only after one), and prunes
    /// what that render no longer contains. Deploy and the controller must use the token
    /// apply/ hands out instead.
    pub fn for_standalone_prune(rendered: &RenderedTarget, inclusion: Inclusion) -> Self {
        Self::new(rendered, inclusion)
    }

    /// The references of every rendered object.
    pub fn rendered(&self) -> &[ObjectRef] {
        &self.rendered
    }

    /// The target's discriminator (may be empty: then [`plan_prune`] refuses).
    pub fn discriminator(&self) -> &str {
        &self.discriminator
    }
}

/// Objects chosen for deletion, in delete order, each pinned to the uid it was listed with.
/// Made only by [`plan_prune`] and [`plan_delete_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionPlan {
    targets: Vec<DeleteTarget>,
}

impl DeletionPlan {
    fn new(refs: Vec<ObjectRef>, remote: &RemoteObjects) -> Self {
        let targets = refs
            .into_iter()
            .map(|reference| DeleteTarget {
                uid: remote.objects.get(&reference).and_then(|m| m.uid.clone()),
                reference,
            })
            .collect();
        Self { targets }
    }

    /// The objects to delete, in order (what a confirmation prompt shows).
    pub fn refs(&self) -> impl Iterator<Item = &ObjectRef> {
        self.targets.iter().map(|t| &t.reference)
    }

    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The orphans of an applied target: deletable objects of its discriminator inside its
/// inclusion rules that it no longer renders.
///
/// # Errors
/// [`PruneError::NoDiscriminator`] for a target without a discriminator;
/// [`PruneError::DiscriminatorMismatch`] when `remote` was listed for another one.
pub fn plan_prune(
    applied: &Applied,
    remote: &RemoteObjects,
    index: &ApiIndex,
) -> Result<DeletionPlan, PruneError> {
    if applied.discriminator.is_empty() {
        return Err(PruneError::NoDiscriminator {
            target: applied.target.clone(),
        });
    }
    if remote.discriminator().as_str() != applied.discriminator {
        return Err(PruneError::DiscriminatorMismatch {
            target: applied.target.clone(),
            listed: remote.discriminator().to_string(),
            applied: applied.discriminator.clone(),
        });
    }
    let refs = objects_for_delete(remote, index, &applied.inclusion, &applied.rendered);
    Ok(DeletionPlan::new(refs, remote))
}

/// Every deletable object of `remote`'s discriminator inside `inclusion` (`kluctl delete`, and
/// the controller's finalizer). Needs no render: a [`RemoteObjects`] exists only for a
/// non-empty [`crate::remote::Discriminator`].
pub fn plan_delete_all(remote: &RemoteObjects, index: &ApiIndex, inclusion: &Inclusion) -> DeletionPlan {
    DeletionPlan::new(objects_for_delete(remote, index, inclusion, &[]), remote)
}

/// Deletes the objects of `plan` (see [`delete`] for order, dry run and waiting).
///
/// # Example
/// ```no_run
/// # async fn run(client: kube::Client, index: kluctl_engine::remote::ApiIndex)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use kluctl_engine::project::inclusion::Inclusion;
/// use kluctl_engine::prune::{self, DeleteOptions};
/// use kluctl_engine::remote::{self, Discriminator, ListOptions};
/// let remote = remote::list_by_discriminator(&client, &index, &Discriminator::new("my-app")?, &ListOptions::default()).await?;
/// let plan = prune::plan_delete_all(&remote, &index, &Inclusion::default());
/// let outcome = prune::execute(&client, &index, &plan, &DeleteOptions::default()).await;
/// println!("deleted {}", outcome.deleted.len());
/// # Ok(()) }
/// ```
pub async fn execute(
    client: &kube::Client,
    index: &ApiIndex,
    plan: &DeletionPlan,
    options: &DeleteOptions,
) -> DeleteOutcome {
    delete_targets(client, index, &plan.targets, options).await
}

/// [`plan_prune`] then [`execute`]: deletes the orphans of an applied target.
///
/// # Errors
/// As [`plan_prune`]; failures of single deletes are in the [`DeleteOutcome`].
pub async fn prune(
    client: &kube::Client,
    index: &ApiIndex,
    applied: &Applied,
    remote: &RemoteObjects,
    options: &DeleteOptions,
) -> Result<(DeletionPlan, DeleteOutcome), PruneError> {
    let plan = plan_prune(applied, remote, index)?;
    let outcome = execute(client, index, &plan, options).await;
    Ok((plan, outcome))
}

#[cfg(test)]
mod tests {
    use super::rules::test_support::{meta, reference, remote};
    use super::*;
    use crate::remote::resources::test_support::index;
    use serde_json::json;

    fn applied(discriminator: &str, rendered: Vec<ObjectRef>) -> Applied {
        Applied {
            target: "prod".into(),
            discriminator: discriminator.into(),
            rendered,
            inclusion: Inclusion::default(),
        }
    }

    #[test]
    fn prune_refuses_without_discriminator_or_with_another_listing() {
        let r = remote(vec![(
            reference("", "v1", "ConfigMap", "app", "old"),
            meta(json!({})),
        )]);
        let err = plan_prune(&applied("", vec![]), &r, &index()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to prune target 'prod': pruning without a discriminator is not supported"
        );
        let err = plan_prune(&applied("other", vec![]), &r, &index()).unwrap_err();
        assert!(matches!(err, PruneError::DiscriminatorMismatch { .. }), "{err}");
    }

    #[tokio::test]
    async fn refused_prune_sends_no_request() {
        // The client points at a closed port: had a delete been sent, the outcome would hold
        // an error instead of the refusal.
        let r = remote(vec![(
            reference("", "v1", "ConfigMap", "app", "old"),
            meta(json!({})),
        )]);
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let err = prune(
            &client,
            &index(),
            &applied("", vec![]),
            &r,
            &DeleteOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PruneError::NoDiscriminator { .. }));
    }

    #[test]
    fn plans_pin_listed_uids_and_keep_delete_order() {
        let r = remote(vec![
            (
                reference("", "v1", "ConfigMap", "app", "old"),
                meta(json!({"uid": "u-cm"})),
            ),
            (
                reference("", "v1", "ConfigMap", "app", "current"),
                meta(json!({"uid": "u-cur"})),
            ),
            (
                reference("", "v1", "Namespace", "", "app"),
                meta(json!({"uid": "u-ns"})),
            ),
        ]);
        let a = applied("d", vec![reference("", "v1", "ConfigMap", "app", "current")]);
        let plan = plan_prune(&a, &r, &index()).unwrap();
        assert_eq!(
            plan.targets,
            [
                DeleteTarget {
                    reference: reference("", "v1", "Namespace", "", "app"),
                    uid: Some("u-ns".into())
                },
                DeleteTarget {
                    reference: reference("", "v1", "ConfigMap", "app", "old"),
                    uid: Some("u-cm".into())
                },
            ]
        );
        let all = plan_delete_all(&r, &index(), &Inclusion::default());
        assert_eq!(all.refs().count(), 3);
        assert!(!all.is_empty());
    }
}
