//! The finalizer around every reconcile: an object being deleted gets its storage directory
//! removed and its controller state and metric series forgotten before the finalizer is dropped;
//! any other object goes to the [driver](super::driver).
//!
//! ```text
//!  watch ──► finalizer(SOURCE_FINALIZER)
//!              ├─ Apply   ──► driver::drive(run, record)
//!              └─ Cleanup ──► remove <kind>/<ns>/<name>/, forget state + metrics
//! ```

use super::driver::{self, SourceKind};
use super::record::{Recorded, Run};
use super::{Context, Error};
use crate::status::Conditions;
use gitops_api::constants::SOURCE_FINALIZER;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use std::sync::Arc;

/// A kind's controller entry: the finalizer around [`driver::drive`] (apply) and [`cleanup`]
/// (deletion). `run` is the kind's steps, `record` its status function.
pub(crate) async fn reconcile_kind<K, N>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    run: impl AsyncFn(&K, &Context, &K::Status) -> Run<N>,
    record: impl Fn(&K, Run<N>, &mut K::Status, &mut Conditions) -> Recorded,
) -> Result<Action, Error>
where
    K: SourceKind,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, SOURCE_FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => {
                let o = obj.as_ref();
                driver::drive(
                    o,
                    &ctx,
                    async |status| run(o, &ctx, status).await,
                    |outcome, status, conds| record(o, outcome, status, conds),
                )
                .await
            }
            FinalizerEvent::Cleanup(obj) => Ok(cleanup(obj.as_ref(), &ctx)),
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Deletion: remove the object's storage directory and forget its state.
pub(crate) fn cleanup<K: SourceKind>(obj: &K, ctx: &Context) -> Action {
    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    if let Err(e) = ctx.storage.remove_object_dir(K::DIR, &ns, &name) {
        tracing::error!(error = %e, "failed to remove artifact directory");
    }
    ctx.forget(&obj.state_key());
    ctx.metrics.forget(K::KIND, &ns, &name);
    Action::await_change()
}
