//! The legacy `flux.kluctl.io/v1alpha1` KluctlDeployment, reconciled by the built
//! `kluctl-controller` from a GitRepository artifact of our source-controller: with
//! `renameContexts` it reaches Ready ("Deployed revision: …"), its objects exist and see the
//! renamed context; `deploy.flux.kluctl.io/requestedAt` forces a deploy and is recorded in
//! `status.lastHandledDeployAt`; `reconcile.fluxcd.io/requestedAt` in
//! `status.lastHandledReconcileAt`; with `spec.delete` its objects go with it.

use std::time::Duration;

use anyhow::Context as _;
use e2e::source::{apply, ready, ready_is, request_reconcile};
use e2e::{GitRepo, KluctlController, SourceController, TestNs, log_value, poll_until, wait_for, wait_gone};
use gitops_api::flux_kluctl::v1alpha1::KluctlDeployment;
use gitops_api::source::v1::GitRepository;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

/// The shared controller harness for `ns` (results stored in `ns` too), once its legacy
/// `flux.kluctl.io` controller has started.
fn start_controller(t: &TestNs, ns: &str) -> anyhow::Result<KluctlController> {
    let mut ctl = KluctlController::start(&t.env, ns, &["--command-result-namespace", ns])?;
    ctl.wait_for_log("the legacy controller to start", Duration::from_secs(60), |l| {
        log_value(l, "msg")
            .is_some_and(|m| m == "reconciling legacy flux.kluctl.io KluctlDeployments")
            .then_some(())
    })?;
    Ok(ctl)
}

fn status_str(kd: &KluctlDeployment, pointer: &str) -> String {
    serde_json::to_value(kd)
        .ok()
        .and_then(|v| v.pointer(pointer).and_then(|x| x.as_str().map(str::to_owned)))
        .unwrap_or_default()
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one scenario, step by step")]
async fn legacy_kluctldeployment_with_renamed_context_deploys_and_honours_the_deploy_request()
-> anyhow::Result<()> {
    TestNs::run("kluctl_legacy", |t| Box::pin(async move {
        let ns = t.name.clone();
        let kluctl_yaml = format!(
            "discriminator: legacy-{{{{ target.name }}}}-{ns}\ntargets:\n  - name: test\n    context: renamed\n"
        );
        let configmap = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: legacy-app\n  namespace: {ns}\n\
             data:\n  context: \"{{{{ target.context }}}}\"\n"
        );
        // The project sits in a sub directory (spec.path) and its target names a context that
        // only exists after spec.renameContexts renames the controller's own `default`.
        let files = [
            ("project/.kluctl.yaml", kluctl_yaml.as_str()),
            ("project/deployment.yaml", "deployments:\n  - path: app\n"),
            ("project/app/configmap.yaml", configmap.as_str()),
        ];
        let repo = GitRepo::create(&t.env, &ns)?;
        let sha = repo.commit(&files, "legacy kluctl project")?;
        let _source = SourceController::start(&t.env, &ns, &[])?;
        let git_api: Api<GitRepository> = Api::namespaced(t.client.clone(), &ns);
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        apply(
            &git_api,
            &json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "project", "namespace": ns, "labels": {"e2e.kluctl-gitops/ns": ns}},
                "spec": {"interval": "10m", "url": url, "ref": {"branch": "main"}},
            }),
        )
        .await?;
        wait_for(&git_api, "project", "GitRepository Ready=True", WAIT, ready_is("True")).await?;

        let ctl = start_controller(&t, &ns)?;
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
        let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
        apply(
            &api,
            &json!({
                "apiVersion": "flux.kluctl.io/v1alpha1",
                "kind": "KluctlDeployment",
                "metadata": {"name": "legacy", "namespace": ns},
                "spec": {
                    "interval": "10m",
                    "timeout": "2m",
                    "sourceRef": {"kind": "GitRepository", "name": "project"},
                    "path": "project",
                    "target": "test",
                    "renameContexts": [{"oldContext": "default", "newContext": "renamed"}],
                    "prune": true,
                    "delete": true,
                },
            }),
        )
        .await?;
        let with_log = |e: anyhow::Error| anyhow::anyhow!("{e:#}\n--- kluctl-controller log:\n{}", ctl.log_tail(40));

        // Ready, in the legacy wording, with the objects deployed.
        let kd = wait_for(&api, "legacy", "legacy KluctlDeployment Ready=True", WAIT, ready_is("True"))
            .await
            .map_err(with_log)?;
        let revision = format!("main@sha1:{sha}");
        let (_, reason, message) = ready(&kd);
        assert_eq!(reason, "ReconciliationSucceeded");
        assert_eq!(message, format!("Deployed revision: {revision}"));
        assert!(kd.metadata.finalizers.as_deref().unwrap_or_default().iter().any(|f| f == "finalizers.flux.kluctl.io"));
        let st = kd.status.clone().context("no status")?;
        assert_eq!(st.last_attempted_revision, revision);
        assert_eq!(st.discriminator, format!("legacy-test-{ns}"));
        assert_eq!(st.observed_generation, kd.metadata.generation);
        let deploy = st.last_deploy_result.clone().context("no lastDeployResult")?;
        assert_eq!((deploy.revision.as_str(), deploy.target.as_deref(), deploy.error.as_str()), (revision.as_str(), Some("test"), ""));
        assert_eq!(deploy.objects_hash.len(), 64, "{deploy:?}");
        let raw: serde_json::Value = serde_json::from_str(deploy.raw_result.as_deref().context("no rawResult")?)?;
        assert_eq!(raw["command"]["command"], "deploy", "{raw}");
        assert!(st.last_prune_result.is_some(), "prune: true records lastPruneResult");
        let validate = st.last_validate_result.clone().context("no lastValidateResult")?;
        assert_eq!(validate.error, "");
        let cm = cms.get("legacy-app").await?;
        assert_eq!(
            cm.data.unwrap_or_default().get("context").map(String::as_str),
            Some("renamed"),
            "templates see the renamed context"
        );

        // A deploy request redeploys the unchanged render: the deleted object comes back and the
        // request's value is recorded.
        cms.delete("legacy-app", &DeleteParams::default()).await?;
        wait_gone(&cms, "legacy-app", WAIT).await?;
        let token = "2026-01-01T00:00:00.000000001Z";
        api.patch(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"deploy.flux.kluctl.io/requestedAt": token}}})),
        )
        .await?;
        let kd = wait_for(&api, "legacy", "lastHandledDeployAt", WAIT, |o: Option<&KluctlDeployment>| {
            o.is_some_and(|o| status_str(o, "/status/lastHandledDeployAt") == token)
        })
        .await
        .map_err(with_log)?;
        assert_eq!(ready(&kd).0, "True", "{:?}", ready(&kd));
        poll_until("ConfigMap legacy-app to be deployed again", WAIT, || {
            let cms = cms.clone();
            async move { cms.get_opt("legacy-app").await.ok().flatten().is_some() }
        })
        .await
        .map_err(with_log)?;

        // A reconcile request is acknowledged.
        request_reconcile(&api, "legacy", "reconcile-1", WAIT).await.map_err(with_log)?;

        // spec.delete: deleting the KluctlDeployment deletes its objects by discriminator.
        api.delete("legacy", &DeleteParams::default()).await?;
        wait_gone(&api, "legacy", WAIT).await.map_err(with_log)?;
        wait_gone(&cms, "legacy-app", WAIT).await.map_err(with_log)?;
        Ok(())
    }))
    .await
}
