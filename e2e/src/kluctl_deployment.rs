//! Helpers for `gitops.kluctl.io/v1beta1` KluctlDeployments reconciled by a test's
//! [`KluctlController`]: apply one, read its Ready condition, wait for a state (a timeout carries
//! the controller's log), and send a `kluctl.io/request-*` annotation the way `kluctl gitops`
//! does, waiting until the controller has finished it.
//!
//! ```text
//!  apply(api, name, spec) ─► controller ─► status ◄─ wait(api, ctl, name, what, pred)
//!  request(api, ctl, name, "deploy", token) ─► annotation ─► status.deployRequestResult.endTime
//! ```

use std::time::Duration;

use anyhow::Context as _;
use gitops_api::kluctl::v1beta1::{KluctlDeployment, KluctlDeploymentStatus, ManualRequestResult};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::{KluctlController, wait_for};

/// How long one reconcile-driven change may take (fetch, render, apply, status patch).
pub const WAIT: Duration = Duration::from_secs(60);

/// Server-side applies KluctlDeployment `name` in the API's namespace with `spec` (field
/// manager `e2e`, forced).
///
/// # Errors
/// When the API has no namespace or the apiserver rejects the object.
pub async fn apply(api: &Api<KluctlDeployment>, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    let ns = api
        .namespace()
        .context("the KluctlDeployment API has no namespace")?
        .to_owned();
    let obj = json!({
        "apiVersion": "gitops.kluctl.io/v1beta1",
        "kind": "KluctlDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    crate::source::apply(api, &obj)
        .await
        .with_context(|| format!("applying KluctlDeployment {ns}/{name}"))
}

/// The status (default when none yet).
pub fn status(k: &KluctlDeployment) -> KluctlDeploymentStatus {
    k.status.clone().unwrap_or_default()
}

/// The `Ready` condition, if any.
pub fn ready(k: &KluctlDeployment) -> Option<&Condition> {
    k.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")
}

/// `Ready` has `status` and `reason`.
pub fn ready_is(k: &KluctlDeployment, status: &str, reason: &str) -> bool {
    ready(k).is_some_and(|c| c.status == status && c.reason == reason)
}

/// The last deploy result is of `commit`.
pub fn deployed_commit(k: &KluctlDeployment, commit: &str) -> bool {
    status(k)
        .last_deploy_result
        .is_some_and(|d| d.git_info.commit == commit)
}

/// The controller has finished a reconcile of the object's current generation.
pub fn reconciled(k: &KluctlDeployment) -> bool {
    k.status.as_ref().and_then(|s| s.observed_generation) == k.metadata.generation
}

/// The id of `status.lastDeployResult` (`None` before the first deploy).
pub fn deploy_id(k: &KluctlDeployment) -> Option<String> {
    k.status
        .as_ref()?
        .last_deploy_result
        .as_ref()
        .map(|r| r.id.clone())
}

/// Waits up to [`WAIT`] until `pred` holds for `name`; a timeout error carries the end of the
/// controller's log.
///
/// # Errors
/// On timeout or a watch error.
pub async fn wait(
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    name: &str,
    what: &str,
    pred: impl Fn(&KluctlDeployment) -> bool + Send + 'static,
) -> anyhow::Result<KluctlDeployment> {
    // Boxed: a watch of this large type makes a large future in every caller.
    Box::pin(wait_for(
        api,
        name,
        what,
        WAIT,
        move |o: Option<&KluctlDeployment>| o.is_some_and(&pred),
    ))
    .await
    .map_err(|e| e.context(ctl.log_tail(40)))
}

/// Waits until `name` has reconciled its current generation with Ready `status` and `reason`.
///
/// # Errors
/// On timeout or a watch error.
pub async fn wait_ready(
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    name: &str,
    status: &'static str,
    reason: &'static str,
) -> anyhow::Result<KluctlDeployment> {
    wait(
        api,
        ctl,
        name,
        &format!("Ready={status} ({reason}) for its generation"),
        move |k| reconciled(k) && ready_is(k, status, reason),
    )
    .await
}

/// `status.<kind>RequestResult` (`kind`: `reconcile`, `diff`, `deploy`, `prune`, `validate`).
pub fn request_result(k: &KluctlDeployment, kind: &str) -> Option<ManualRequestResult> {
    let s = k.status.as_ref()?;
    match kind {
        "reconcile" => s.reconcile_request_result.clone(),
        "diff" => s.diff_request_result.clone(),
        "deploy" => s.deploy_request_result.clone(),
        "prune" => s.prune_request_result.clone(),
        "validate" => s.validate_request_result.clone(),
        _ => None,
    }
}

/// Sets `kluctl.io/request-<kind>` to a request with `token` (no overrides) and waits until the
/// controller has finished handling it (`status.<kind>RequestResult.endTime`).
///
/// # Errors
/// On API errors or timeout.
pub async fn request(
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    name: &str,
    kind: &'static str,
    token: &str,
) -> anyhow::Result<KluctlDeployment> {
    let value = json!({"requestValue": token}).to_string();
    let annotation = format!("kluctl.io/request-{kind}");
    let patch = json!({"metadata": {"annotations": {annotation: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let token = token.to_owned();
    wait(
        api,
        ctl,
        name,
        &format!("the {kind} request {token} to be handled"),
        move |k| {
            request_result(k, kind).is_some_and(|r| r.request.request_value == token && r.end_time.is_some())
        },
    )
    .await
}
