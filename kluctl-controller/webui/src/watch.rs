//! The two watches per cluster that keep the [`Model`] current: every KluctlDeployment of the
//! cluster, and the metadata of the result Secrets in the results namespace (their summary
//! annotations are all the overview needs; a result's data is read only when someone opens it).
//!
//! Both use kube-runtime's watcher with its default backoff: an error (no CRD yet, no access, a
//! dropped connection) is logged and the watch starts over with a fresh listing, which replaces
//! the model's copy as a whole.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use gitops_api::kluctl::results::CommandResultSummary;
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use kluctl_engine::store::encode::parse_validate_summary;
use kluctl_engine::store::{
    COMMAND_RESULT_ID_LABEL, COMMAND_RESULT_SUMMARY_ANNOTATION, RESULT_LABEL, VALIDATE_RESULT_ID_LABEL,
};

use crate::model::{Model, ResultKey, Stored};

/// Objects per page when listing: a page is held whole in memory while it is read, and
/// KluctlDeployments with their statuses run to several kilobytes each.
const LIST_PAGE: u32 = 100;
use crate::view::{ObjKey, ResultView};

/// Runs both watches of `cluster` until the task is dropped.
pub async fn run(cluster: String, client: Client, results_namespace: String, model: Model) {
    tokio::join!(
        deployments(&cluster, client.clone(), model.clone()),
        results(&cluster, client, results_namespace, model)
    );
}

async fn deployments(cluster: &str, client: Client, model: Model) {
    let api: Api<KluctlDeployment> = Api::all(client);
    // Each listed object is slimmed as it arrives; small pages keep the listing's buffers small.
    let mut listing: Vec<Stored> = Vec::new();
    let config = watcher::Config::default().page_size(LIST_PAGE);
    let mut events = watcher(api, config).default_backoff().boxed();
    loop {
        match events.try_next().await {
            Ok(Some(event)) => match event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(kd) => listing.push(Stored::of(cluster, kd)),
                watcher::Event::InitDone => model.reset_deployments(cluster, std::mem::take(&mut listing)),
                watcher::Event::Apply(kd) => model.put_deployment(cluster, kd),
                watcher::Event::Delete(kd) => model.remove_deployment(&ObjKey::of(cluster, &kd)),
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, cluster, "watching KluctlDeployments failed; retrying"),
        }
    }
}

/// The result id of a result Secret (from its id label).
fn result_id(meta: &PartialObjectMeta<Secret>) -> Option<String> {
    let labels = meta.metadata.labels.as_ref()?;
    labels
        .get(COMMAND_RESULT_ID_LABEL)
        .or_else(|| labels.get(VALIDATE_RESULT_ID_LABEL))
        .cloned()
}

/// The view of a result Secret of `cluster`, from its summary annotation; `None` for Secrets
/// without a readable one (skipped, as the store's listing skips them).
fn view(cluster: &str, meta: &PartialObjectMeta<Secret>) -> Option<ResultView> {
    let mut view = summary_view(meta)?;
    cluster.clone_into(&mut view.cluster);
    Some(view)
}

fn summary_view(meta: &PartialObjectMeta<Secret>) -> Option<ResultView> {
    let labels = meta.metadata.labels.as_ref()?;
    let annotations = meta.metadata.annotations.as_ref()?;
    if labels.contains_key(COMMAND_RESULT_ID_LABEL) {
        // The status fields' summary type (the one KluctlDeployments carry), read from the same JSON.
        let text = annotations.get(COMMAND_RESULT_SUMMARY_ANNOTATION)?;
        let summary: CommandResultSummary = serde_json::from_str(text).ok()?;
        Some(ResultView::command(&summary))
    } else if labels.contains_key(VALIDATE_RESULT_ID_LABEL) {
        parse_validate_summary(annotations).map(|v| ResultView::validate(&v))
    } else {
        None
    }
}

async fn results(cluster: &str, client: Client, namespace: String, model: Model) {
    // Metadata only: the summaries are annotations, the data stays on the server.
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default()
        .labels(RESULT_LABEL)
        .page_size(LIST_PAGE);
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listed = Vec::new();
    loop {
        match events.try_next().await {
            Ok(Some(event)) => match event {
                watcher::Event::Init => listed.clear(),
                watcher::Event::InitApply(meta) => listed.extend(view(cluster, &meta)),
                watcher::Event::InitDone => model.reset_results(cluster, std::mem::take(&mut listed)),
                watcher::Event::Apply(meta) => {
                    if let Some(v) = view(cluster, &meta) {
                        model.put_result(v);
                    }
                }
                watcher::Event::Delete(meta) => {
                    if let Some(id) = result_id(&meta) {
                        model.remove_result(&ResultKey {
                            cluster: cluster.to_owned(),
                            id,
                        });
                    }
                }
            },
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, cluster, namespace, "watching result Secrets failed; retrying");
            }
        }
    }
}
