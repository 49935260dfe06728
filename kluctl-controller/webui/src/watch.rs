//! The two watches that keep the [`Model`] current: every KluctlDeployment of the cluster, and
//! the metadata of the result Secrets in the results namespace (their summary annotations are all
//! the overview needs; a result's data is read only when someone opens it).
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

use crate::model::{Model, Stored};

/// Objects per page when listing: a page is held whole in memory while it is read, and
/// KluctlDeployments with their statuses run to several kilobytes each.
const LIST_PAGE: u32 = 100;
use crate::view::{ObjKey, ResultView};

/// Runs both watches until the task is dropped.
pub async fn run(client: Client, results_namespace: String, model: Model) {
    tokio::join!(
        deployments(client.clone(), model.clone()),
        results(client, results_namespace, model)
    );
}

async fn deployments(client: Client, model: Model) {
    let api: Api<KluctlDeployment> = Api::all(client);
    // Each listed object is slimmed as it arrives; small pages keep the listing's buffers small.
    let mut listing: Vec<Stored> = Vec::new();
    let config = watcher::Config::default().page_size(LIST_PAGE);
    let mut events = watcher(api, config).default_backoff().boxed();
    loop {
        match events.try_next().await {
            Ok(Some(event)) => match event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(kd) => listing.push(Stored::of(kd)),
                watcher::Event::InitDone => model.reset_deployments(std::mem::take(&mut listing)),
                watcher::Event::Apply(kd) => model.put_deployment(kd),
                watcher::Event::Delete(kd) => model.remove_deployment(&ObjKey::of(&kd)),
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "watching KluctlDeployments failed; retrying"),
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

/// The view of a result Secret, from its summary annotation; `None` for Secrets without a
/// readable one (skipped, as the store's listing skips them).
fn view(meta: &PartialObjectMeta<Secret>) -> Option<ResultView> {
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

async fn results(client: Client, namespace: String, model: Model) {
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
                watcher::Event::InitApply(meta) => listed.extend(view(&meta)),
                watcher::Event::InitDone => model.reset_results(std::mem::take(&mut listed)),
                watcher::Event::Apply(meta) => {
                    if let Some(v) = view(&meta) {
                        model.put_result(v);
                    }
                }
                watcher::Event::Delete(meta) => {
                    if let Some(id) = result_id(&meta) {
                        model.remove_result(&id);
                    }
                }
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, namespace, "watching result Secrets failed; retrying"),
        }
    }
}
