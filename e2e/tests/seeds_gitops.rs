//! The GitOps workflows of the seed documents (`shared/reference/seeds/`), end to end on the real
//! apiserver, each in its own namespace with its own controllers and a repository on the local git
//! server holding a fixture project of `e2e/fixtures/seeds-gitops/<seed>/`:
//!
//! - 002 (the course's GitOps section): a GitRepository in the course's
//!   `source.toolkit.fluxcd.io/v1beta1` YAML and a `gitops.kluctl.io/v1beta1` KluctlDeployment on
//!   a directory of plain manifests; a CI commit changing only the image tag changes only the
//!   Deployment; deleting a file prunes its object; other objects in the namespace stay.
//! - 003 (Kluctl and Flux): a target deployed by GitOps shows no changes in a local `kluctl diff`
//!   of the same commit, target and args.
//! - 004 (the Flux Kluctl Controller README): the seed's `flux.kluctl.io/v1alpha1`
//!   KluctlDeployments with `renameContexts` deploy targets `test` and `prod`, and a generic
//!   webhook Alert on kind `KluctlDeployment` receives their deploy notifications.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p source-controller --bin
//! source-controller -p kluctl --bin kluctl` and the environment of `make e2e-up`.

// Each test is one seed's workflow told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use e2e::kluctl_deployment as kd;
use e2e::sink::{Received, RecordingSink};
use e2e::source::{ready, ready_is, request_reconcile};
use e2e::{
    GitRepo, KluctlController, SourceController, TestNs, api_for, git, log_value, parse_manifest, poll_for,
    project_root, run_kluctl, wait_for, wait_gone,
};
use gitops_api::flux_kluctl::v1alpha1::KluctlDeployment as LegacyKluctlDeployment;
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::notification::v1beta3::{Alert, Provider};
use gitops_api::source::v1::GitRepository;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

/// The token the fixture projects carry where the test's namespace goes.
const NS_TOKEN: &str = "SEED_NAMESPACE";

/// The files of fixture project `seed` (paths relative to its directory), with [`NS_TOKEN`]
/// replaced by `ns`.
fn fixture(seed: &str, ns: &str) -> anyhow::Result<Vec<(String, String)>> {
    fn walk(root: &Path, dir: &Path, ns: &str, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
        for entry in fs_err::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, ns, out)?;
            } else {
                let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                out.push((rel, fs_err::read_to_string(&path)?.replace(NS_TOKEN, ns)));
            }
        }
        Ok(())
    }
    let root = project_root().join("e2e/fixtures/seeds-gitops").join(seed);
    let mut out = Vec::new();
    walk(&root, &root, ns, &mut out)?;
    out.sort();
    anyhow::ensure!(!out.is_empty(), "no fixture files in {}", root.display());
    Ok(out)
}

fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect()
}

/// Server-side applies one manifest written as YAML, through the API version it names (as
/// `kubectl apply --server-side -f` would).
async fn apply_yaml(client: &kube::Client, yaml: &str) -> anyhow::Result<()> {
    let obj = parse_manifest(yaml)?;
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api = api_for(client, &obj).await?;
    api.patch(&name, &PatchParams::apply("e2e").force(), &Patch::Apply(&obj))
        .await
        .with_context(|| format!("applying {name}:\n{yaml}"))?;
    Ok(())
}

/// `metadata.resourceVersion` of `name`.
async fn rv<K>(api: &Api<K>, name: &str) -> anyhow::Result<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .get(name)
        .await?
        .meta()
        .resource_version
        .clone()
        .unwrap_or_default())
}

fn image(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

/// Waits until KluctlDeployment `name` has deployed `commit` and is Ready.
async fn wait_deployed(
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    name: &str,
    commit: &str,
) -> anyhow::Result<KluctlDeployment> {
    let want = commit.to_owned();
    kd::wait(
        api,
        ctl,
        name,
        &format!("the deploy of commit {commit}"),
        move |k| kd::deployed_commit(k, &want) && kd::ready_is(k, "True", "ReconciliationSucceeded"),
    )
    .await
}

#[tokio::test]
async fn seed_002_gitrepository_v1beta1_plain_manifests_ci_image_bump_and_prune_by_file_deletion()
-> anyhow::Result<()> {
    TestNs::run("seed_002", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            let files = fixture("002", &ns)?;
            let first = repo.commit(&refs(&files), "the gitops app")?;
            let source = SourceController::start(&t.env, &ns, &[])?;
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);

            // The seed's example-source.yaml. Adapted: the namespace, the URL, the branch (our
            // repositories have `main`), and the label this test's source-controller watches.
            let example_source = format!(
                "apiVersion: source.toolkit.fluxcd.io/v1beta1\n\
                 kind: GitRepository\n\
                 metadata:\n  name: example-repo\n  namespace: {ns}\n  labels:\n    e2e.kluctl-gitops/ns: {ns}\n\
                 spec:\n  interval: 10m\n  url: {url}\n  ref:\n    branch: main\n"
            );
            apply_yaml(&t.client, &example_source).await?;
            let git_api: Api<GitRepository> = Api::namespaced(t.client.clone(), &ns);
            wait_for(&git_api, "example-repo", "GitRepository Ready=True", WAIT, ready_is("True"))
                .await
                .with_context(|| source.log_tail(30))?;

            // An object of the namespace that Kluctl does not manage (no discriminator).
            let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
            let unmanaged: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": "unmanaged", "namespace": ns, "labels": {"app": "hashgenerator"}},
                "data": {"owner": "someone else"},
            }))?;
            cms.create(&PostParams::default(), &unmanaged).await?;
            let unmanaged_rv = rv(&cms, "unmanaged").await?;

            // The seed's Kustomization, as a KluctlDeployment: the same source, interval, path and
            // prune; no health checks (the seed's Kustomization has none), so no validate.
            let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &api,
                "example-gitops-app",
                json!({
                    "interval": "10m",
                    "sourceRef": {"kind": "GitRepository", "name": "example-repo"},
                    "path": "./4-gitops",
                    "target": "prod",
                    "prune": true,
                    "validate": false,
                }),
            )
            .await?;
            let deployed = wait_deployed(&api, &ctl, "example-gitops-app", &first).await?;
            let summary = kd::status(&deployed).last_deploy_result.context("lastDeployResult")?;
            assert_eq!(summary.new_objects, 3, "Deployment, Service, ConfigMap: {summary:#?}");

            let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &ns);
            let services: Api<Service> = Api::namespaced(t.client.clone(), &ns);
            let dep = deployments.get("hashgenerator-dep").await?;
            assert_eq!(image(&dep).as_deref(), Some("registry.example.invalid/dwk/gitops-app:0c1d2e3f"));
            let labels = dep.metadata.labels.clone().unwrap_or_default();
            assert_eq!(
                labels.get("kluctl.io/discriminator").map(String::as_str),
                Some(format!("seed-002-{ns}").as_str()),
                "{labels:?}"
            );
            let cm = cms.get("hashgenerator-config").await?;
            assert_eq!(
                cm.data.unwrap_or_default().get("GREETING").map(String::as_str),
                Some("hello from git")
            );
            let service_rv = rv(&services, "hashgenerator-svc").await?;
            let config_rv = rv(&cms, "hashgenerator-config").await?;
            let generation = dep.metadata.generation;

            // The CI job: a new image tag in the Deployment's manifest, committed and pushed;
            // nothing else in the repository changes.
            let manifest = "4-gitops/manifests/deployment.yaml";
            let old = files
                .iter()
                .find(|(p, _)| p == manifest)
                .map(|(_, c)| c.clone())
                .context("the fixture's deployment.yaml")?;
            let bumped = old.replace("gitops-app:0c1d2e3f", "gitops-app:9a8b7c6d");
            assert_ne!(old, bumped);
            let second = repo.commit(&[(manifest, &bumped)], "New version release for gitops-app 9a8b7c6d")?;
            request_reconcile(&git_api, "example-repo", "ci-release", WAIT).await?;
            wait_deployed(&api, &ctl, "example-gitops-app", &second).await?;
            let dep = deployments.get("hashgenerator-dep").await?;
            assert_eq!(image(&dep).as_deref(), Some("registry.example.invalid/dwk/gitops-app:9a8b7c6d"));
            assert_eq!(dep.metadata.generation, generation.map(|g| g + 1), "one spec change");
            assert_eq!(rv(&services, "hashgenerator-svc").await?, service_rv, "the Service was not touched");
            assert_eq!(rv(&cms, "hashgenerator-config").await?, config_rv, "the ConfigMap was not touched");
            let deployment_rv = rv(&deployments, "hashgenerator-dep").await?;

            // Deleting the ConfigMap's file from Git deletes the ConfigMap (prune: true); the rest
            // of the app and the unmanaged object stay as they are.
            let third = repo.remove(&["4-gitops/manifests/configmap.yaml"], "drop the config")?;
            request_reconcile(&git_api, "example-repo", "file-deleted", WAIT).await?;
            let pruned = wait_deployed(&api, &ctl, "example-gitops-app", &third).await?;
            wait_gone(&cms, "hashgenerator-config", WAIT).await?;
            let prune = kd::status(&pruned).last_deploy_result.context("lastDeployResult")?;
            assert_eq!(prune.deleted_objects, 1, "{prune:#?}");
            assert_eq!(rv(&deployments, "hashgenerator-dep").await?, deployment_rv);
            assert_eq!(rv(&services, "hashgenerator-svc").await?, service_rv);
            assert_eq!(rv(&cms, "unmanaged").await?, unmanaged_rv, "outside the discriminator");
            Ok(())
        })
    })
    .await
}

/// The legacy controller of `ctl`, once it has started.
fn wait_legacy_controller(ctl: &mut KluctlController) -> anyhow::Result<()> {
    ctl.wait_for_log("the legacy controller to start", Duration::from_secs(60), |l| {
        log_value(l, "msg")
            .is_some_and(|m| m == "reconciling legacy flux.kluctl.io KluctlDeployments")
            .then_some(())
    })
}

/// The seed's KluctlDeployment for `target`, in `ns` (the seed's namespace is `flux-system`).
fn legacy_kluctl_deployment(ns: &str, target: &str) -> String {
    format!(
        r#"apiVersion: flux.kluctl.io/v1alpha1
kind: KluctlDeployment
metadata:
  name: microservices-demo-{target}
  namespace: {ns}
spec:
  interval: 10m
  path: "./microservices-demo/3-templating-and-multi-env/"
  sourceRef:
    kind: GitRepository
    name: microservices-demo
  timeout: 2m
  target: {target}
  prune: true
  # kluctl cluster configs specify the expected context name, which does not necessarely match the context name
  # found while it is deployed via the controller. This means we must pass a kubeconfig to kluctl that has the
  # context renamed to the one that it expects.
  renameContexts:
    - oldContext: default
      newContext: kind-kind
"#
    )
}

#[tokio::test]
async fn seed_004_legacy_kluctldeployments_with_renamed_contexts_notify_a_generic_webhook()
-> anyhow::Result<()> {
    TestNs::run("seed_004", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let mut ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            wait_legacy_controller(&mut ctl)?;

            // A generic webhook for every KluctlDeployment of the namespace.
            let sink = RecordingSink::start(vec![]).await?;
            let providers: Api<Provider> = Api::namespaced(t.client.clone(), &ns);
            e2e::source::apply(
                &providers,
                &json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider",
                        "metadata": {"name": "webhook", "namespace": ns},
                        "spec": {"type": "generic", "address": sink.url}}),
            )
            .await?;
            let alerts: Api<Alert> = Api::namespaced(t.client.clone(), &ns);
            e2e::source::apply(
                &alerts,
                &json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert",
                        "metadata": {"name": "deployments", "namespace": ns},
                        "spec": {"providerRef": {"name": "webhook"}, "eventSeverity": "info",
                                 "eventSources": [{"kind": "KluctlDeployment", "name": "*"}]}}),
            )
            .await?;
            poll_for("Alert deployments Ready=True", WAIT, || async {
                Ok((ready(&alerts.get("deployments").await?).0 == "True").then_some(()))
            })
            .await?;

            // The seed's source, URL and namespace adapted (plus the watch label).
            let repo = GitRepo::create(&t.env, &ns)?;
            let sha = repo.commit(&refs(&fixture("004", &ns)?), "microservices demo")?;
            let _source = SourceController::start(&t.env, &ns, &[])?;
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            apply_yaml(
                &t.client,
                &format!(
                    "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: GitRepository\n\
                     metadata:\n  name: microservices-demo\n  namespace: {ns}\n  labels:\n    e2e.kluctl-gitops/ns: {ns}\n\
                     spec:\n  interval: 5m\n  url: {url}\n  ref:\n    branch: main\n"
                ),
            )
            .await?;
            let git_api: Api<GitRepository> = Api::namespaced(t.client.clone(), &ns);
            wait_for(&git_api, "microservices-demo", "GitRepository Ready=True", WAIT, ready_is("True")).await?;

            let api: Api<LegacyKluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
            let revision = format!("main@sha1:{sha}");
            for target in ["test", "prod"] {
                apply_yaml(&t.client, &legacy_kluctl_deployment(&ns, target)).await?;
            }
            for (target, replicas) in [("test", "1"), ("prod", "3")] {
                let name = format!("microservices-demo-{target}");
                let kd = wait_for(&api, &name, "Ready=True", WAIT, ready_is("True"))
                    .await
                    .with_context(|| ctl.log_tail(40))?;
                let (_, reason, message) = ready(&kd);
                assert_eq!(reason, "ReconciliationSucceeded");
                assert_eq!(message, format!("Deployed revision: {revision}"));
                let st = kd.status.clone().context("status")?;
                assert_eq!(st.discriminator, format!("seed-004-{target}-{ns}"));
                let data = |cm: ConfigMap| cm.data.unwrap_or_default();
                let frontend = data(cms.get(&format!("frontend-{target}")).await?);
                assert_eq!(frontend.get("replicas").map(String::as_str), Some(replicas), "{frontend:?}");
                assert_eq!(
                    frontend.get("context").map(String::as_str),
                    Some("kind-kind"),
                    "the project sees the renamed context"
                );
                let backend = data(cms.get(&format!("backend-{target}")).await?);
                assert_eq!(backend.get("replicas").map(String::as_str), Some(replicas));

                // The deploy notification about this KluctlDeployment, as Flux's generic provider
                // posts it: the legacy kind, the source revision under an unprefixed key.
                let deploy_event = |r: &Received| {
                    let b = r.json();
                    b["involvedObject"]["name"] == name.as_str()
                        && b["message"].as_str().is_some_and(|m| m.starts_with("deploy succeeded"))
                };
                let got = sink.wait_for(WAIT, deploy_event).await?;
                let body = got.json();
                assert_eq!(got.method, "POST");
                assert_eq!(body["involvedObject"]["kind"], "KluctlDeployment", "{body}");
                assert_eq!(body["involvedObject"]["apiVersion"], "flux.kluctl.io/v1alpha1", "{body}");
                assert_eq!(body["involvedObject"]["namespace"], ns.as_str(), "{body}");
                assert_eq!(body["severity"], "info", "{body}");
                assert_eq!(body["reason"], "ReconciliationSucceeded", "{body}");
                println!("e2e: the webhook received {body}");
                let metadata: BTreeMap<String, String> =
                    serde_json::from_value(body["metadata"].clone()).unwrap_or_default();
                assert_eq!(metadata.get("revision"), Some(&revision), "{body}");
                assert!(
                    metadata.keys().all(|k| !k.contains('/')),
                    "metadata keys are unprefixed: {body}"
                );
            }
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn seed_003_a_target_deployed_by_gitops_shows_no_changes_in_a_local_kluctl_diff() -> anyhow::Result<()>
{
    TestNs::run("seed_003", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            let sha = repo.commit(&refs(&fixture("003", &ns)?), "the app")?;
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);

            // GitOps deploys target `prod` with an argument.
            let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &api,
                "app",
                json!({
                    "interval": "10m",
                    "source": {"git": {"url": url, "ref": {"branch": "main"}}},
                    "target": "prod",
                    "args": {"environment": "production"},
                    "prune": true,
                }),
            )
            .await?;
            wait_deployed(&api, &ctl, "app", &sha).await?;
            let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
            let cm = cms.get("app-config").await?;
            assert_eq!(
                cm.data.unwrap_or_default().get("environment").map(String::as_str),
                Some("production")
            );
            let config_rv = rv(&cms, "app-config").await?;

            // The developer's checkout of the same commit.
            let checkout = tempfile::tempdir()?;
            let dir = checkout.path().join("app");
            git(checkout.path(), &["clone", "-q", &url, &dir.to_string_lossy()])?;
            git(&dir, &["checkout", "-q", &sha])?;

            let out = run_kluctl(&dir, &["diff", "-t", "prod", "-a", "environment=production"], &[])?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "kluctl diff failed:\n{stdout}\n{stderr}");
            println!("e2e: kluctl diff of the deployed commit:\n{stdout}{stderr}");
            for section in [
                "New objects:",
                "Changed objects:",
                "Deleted objects:",
                "Orphan objects:",
                "Errors:",
            ] {
                assert!(
                    !stdout.contains(section),
                    "'{section}' in the diff of the deployed commit:\n{stdout}"
                );
            }

            // The same diff with another argument value does show the change: the empty diff above
            // compared the rendered objects with the live ones.
            let out = run_kluctl(&dir, &["diff", "-t", "prod", "-a", "environment=staging"], &[])?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("Changed objects:") && stdout.contains(&format!("{ns}/ConfigMap/app-config")),
                "{stdout}"
            );
            assert_eq!(rv(&cms, "app-config").await?, config_rv, "diff changed nothing");
            Ok(())
        })
    })
    .await
}
