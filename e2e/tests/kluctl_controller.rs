//! The `kluctl-controller` binary end to end: KluctlDeployments with `spec.source.git` on the real
//! git HTTP server, deploying the multi-environment fixture `e2e/fixtures/kluctl-gitops/ms-demo`
//! (targets `test` and `prod`) to the real apiserver + kube-controller-manager.
//!
//! Each test pushes the fixture to its own repository, starts its own controller for its own
//! namespace and passes its namespace name as the project's `prefix` arg, so the target namespaces
//! (`<prefix>-test`, `<prefix>-prod`) and the discriminators (`ms-demo-<prefix>-<target>`) of tests
//! running in parallel never meet.
//!
//! The local cluster has no kubelet or scheduler: where readiness is the point, the test marks the
//! Deployments' pods ready through `/status` as the admin identity (`make_deployment_ready`);
//! elsewhere the KluctlDeployment sets `validate: false`.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller` (which `make e2e-test` does)
//! and the environment of `make e2e-up`.

// Each test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use e2e::source::apply;
use e2e::{
    DeleteOnDrop, GitRepo, KluctlController, TestNs, WebhookSink, make_deployment_ready, poll_for,
    project_root, wait_for, wait_gone,
};
use gitops_api::kluctl::v1beta1::{CommandResultSummary, KluctlDeployment, KluctlDeploymentStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

/// How long one reconcile-driven change may take (clone, render, apply, status patch).
const WAIT: Duration = Duration::from_secs(120);

/// The label every object of a target carries.
const DISCRIMINATOR_LABEL: &str = "kluctl.io/discriminator";

/// The fixture's files, relative to its root, with their contents.
fn fixture_files() -> anyhow::Result<Vec<(String, String)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
        for entry in fs_err::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                out.push((rel, fs_err::read_to_string(&path)?));
            }
        }
        Ok(())
    }
    let root = project_root().join("e2e/fixtures/kluctl-gitops/ms-demo");
    let mut out = Vec::new();
    walk(&root, &root, &mut out)?;
    out.sort();
    Ok(out)
}

/// One test's project: its repository (holding the fixture), the first commit, the controller
/// and the KluctlDeployment API of the test namespace. The target namespaces are deleted when it
/// drops (after the controller is killed: fields drop in order of declaration).
struct Demo {
    ctl: KluctlController,
    api: Api<KluctlDeployment>,
    repo: GitRepo,
    url: String,
    sha: String,
    prefix: String,
    _namespaces: [DeleteOnDrop; 2],
}

impl Demo {
    /// Pushes the fixture to a new repository and starts a controller for `t`'s namespace.
    fn start(t: &TestNs) -> anyhow::Result<Self> {
        Self::start_with(t, &[])
    }

    /// [`Demo::start`] with `extra_args` for the controller.
    fn start_with(t: &TestNs, extra_args: &[&str]) -> anyhow::Result<Self> {
        let prefix = t.name.clone();
        // Declared before anything can create them.
        let namespaces = [
            DeleteOnDrop::namespace(&t.env, &format!("{prefix}-test")),
            DeleteOnDrop::namespace(&t.env, &format!("{prefix}-prod")),
        ];
        let files = fixture_files()?;
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        let repo = GitRepo::create(&t.env, &t.name)?;
        let sha = repo.commit(&files, "ms-demo")?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        let ctl = KluctlController::start(&t.env, &t.name, extra_args)?;
        Ok(Demo {
            ctl,
            api: Api::namespaced(t.client.clone(), &t.name),
            repo,
            url,
            sha,
            prefix,
            _namespaces: namespaces,
        })
    }

    /// The namespace the fixture deploys `target` into.
    fn target_ns(&self, target: &str) -> String {
        format!("{}-{target}", self.prefix)
    }

    /// The discriminator of `target`.
    fn discriminator(&self, target: &str) -> String {
        format!("ms-demo-{}-{target}", self.prefix)
    }

    /// Applies KluctlDeployment `name` deploying `target` from the repository's `main`, with
    /// `extra_spec` merged over the defaults (interval 10m: the tests ask for reconciles).
    async fn apply_kd(&self, name: &str, target: &str, extra_spec: &serde_json::Value) -> anyhow::Result<()> {
        let mut spec = json!({
            "interval": "10m",
            "source": {"git": {"url": self.url, "ref": {"branch": "main"}}},
            "target": target,
            "args": {"prefix": self.prefix},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
            spec.extend(extra.clone());
        }
        let ns = self.api_namespace()?;
        apply(
            &self.api,
            &json!({
                "apiVersion": "gitops.kluctl.io/v1beta1",
                "kind": "KluctlDeployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            }),
        )
        .await
        .with_context(|| format!("applying KluctlDeployment {ns}/{name}"))
    }

    fn api_namespace(&self) -> anyhow::Result<String> {
        self.api
            .namespace()
            .map(str::to_string)
            .context("the KluctlDeployment API has no namespace")
    }

    /// Merge-patches the spec of `name`; returns the new generation.
    async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> anyhow::Result<i64> {
        let kd = self
            .api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await?;
        kd.metadata
            .generation
            .context("a patched KluctlDeployment has no generation")
    }

    /// Waits until `pred` holds for `name`; a timeout error carries the controller's log.
    async fn wait_kd(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&KluctlDeployment) -> bool + Send + 'static,
    ) -> anyhow::Result<KluctlDeployment> {
        // Boxed: a watch of this large type makes a large future in every caller.
        Box::pin(wait_for(
            &self.api,
            name,
            what,
            WAIT,
            move |o: Option<&KluctlDeployment>| o.is_some_and(&pred),
        ))
        .await
        .map_err(|e| e.context(self.ctl.log_tail(40)))
    }

    /// Waits until `name` has reconciled its current generation with Ready `status` and `reason`.
    async fn wait_ready(
        &self,
        name: &str,
        status: &'static str,
        reason: &'static str,
    ) -> anyhow::Result<KluctlDeployment> {
        self.wait_kd(
            name,
            &format!("Ready={status} ({reason}) for its generation"),
            move |k| reconciled(k) && ready_is(k, status, reason),
        )
        .await
    }

    /// Sets `kluctl.io/request-reconcile` to a request with `token` and waits until the controller
    /// has finished handling it (`status.reconcileRequestResult.endTime`).
    async fn request_reconcile(&self, name: &str, token: &str) -> anyhow::Result<KluctlDeployment> {
        let request = json!({"requestValue": token}).to_string();
        let patch = json!({"metadata": {"annotations": {"kluctl.io/request-reconcile": request}}});
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let token = token.to_string();
        self.wait_kd(
            name,
            &format!("the reconcile request {token} to be handled"),
            move |k| {
                k.status
                    .as_ref()
                    .and_then(|s| s.reconcile_request_result.as_ref())
                    .is_some_and(|r| r.request.request_value == token && r.end_time.is_some())
            },
        )
        .await
    }

    /// Pushes `files` over the fixture; returns the new commit.
    fn push(&self, files: &[(&str, &str)], message: &str) -> anyhow::Result<String> {
        self.repo.commit(files, message)
    }
}

fn status(k: &KluctlDeployment) -> KluctlDeploymentStatus {
    k.status.clone().unwrap_or_default()
}

fn ready(k: &KluctlDeployment) -> Option<&Condition> {
    k.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")
}

fn ready_is(k: &KluctlDeployment, status: &str, reason: &str) -> bool {
    ready(k).is_some_and(|c| c.status == status && c.reason == reason)
}

/// The controller has finished a reconcile of the object's current generation.
fn reconciled(k: &KluctlDeployment) -> bool {
    k.status.as_ref().and_then(|s| s.observed_generation) == k.metadata.generation
}

fn last_deploy(k: &KluctlDeployment) -> anyhow::Result<CommandResultSummary> {
    status(k).last_deploy_result.with_context(|| {
        format!(
            "{}: no status.lastDeployResult; status: {:#?}",
            k.metadata.name.as_deref().unwrap_or_default(),
            k.status
        )
    })
}

fn deploy_id(k: &KluctlDeployment) -> Option<String> {
    k.status
        .as_ref()?
        .last_deploy_result
        .as_ref()
        .map(|r| r.id.clone())
}

/// `data.message` of ConfigMap `name` in `ns` (`None` when it does not exist).
async fn configmap_message(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|cm| cm.data.and_then(|d| d.get("message").cloned())))
}

/// The value of the discriminator label of `obj` (empty when missing).
fn discriminator_of(obj: &impl kube::Resource) -> String {
    obj.meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(DISCRIMINATOR_LABEL).cloned())
        .unwrap_or_default()
}

/// The rewritten `vars/test.yml` of the fixture: `message` for the frontend, the backend on or off.
fn test_vars(message: &str, backend: bool) -> String {
    format!(
        "services:\n  frontend:\n    message: {message}\n    port: 8080\n  backend:\n    enabled: {backend}\n    message: backend of test\n    port: 9090\n"
    )
}

#[tokio::test]
async fn test_and_prod_targets_deploy_from_git_and_become_ready() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_ready", |t| async move {
        let demo = Demo::start(&t)?;
        assert_eq!(demo.ctl.readyz().await, 200, "readyz of a running controller");
        demo.apply_kd("ms-demo-test", "test", &json!({"interval": "5s"}))
            .await?;
        // Readiness is not the point for prod; its Deployments stay unready.
        demo.apply_kd("ms-demo-prod", "prod", &json!({"validate": false}))
            .await?;

        // No kubelet: mark the test target's pods ready so validate can pass.
        let test_ns = demo.target_ns("test");
        for deployment in ["frontend", "backend"] {
            make_deployment_ready(&t.client, &test_ns, deployment, WAIT)
                .await
                .map_err(|e| e.context(demo.ctl.log_tail(40)))?;
        }
        let test = demo
            .wait_kd("ms-demo-test", "Ready=True with a ready validate result", |k| {
                reconciled(k)
                    && ready_is(k, "True", "ReconciliationSucceeded")
                    && status(k).last_validate_result.is_some_and(|v| v.ready)
            })
            .await?;
        let prod = demo
            .wait_ready("ms-demo-prod", "True", "ReconciliationSucceeded")
            .await?;

        // Kluctl's cluster id: the UID of kube-system.
        let cluster_id = Api::<Namespace>::all(t.client.clone())
            .get("kube-system")
            .await?
            .metadata
            .uid
            .context("kube-system has no uid")?;
        for (k, target) in [(&test, "test"), (&prod, "prod")] {
            let s = status(k);
            let name = k.metadata.name.clone().unwrap_or_default();
            assert_eq!(s.observed_commit, demo.sha, "{name}: status.observedCommit");
            let project_key = s.project_key.clone().context("status.projectKey")?;
            assert!(
                project_key.repo_key.starts_with("git://")
                    && project_key
                        .repo_key
                        .ends_with(&format!("/git/{}", demo.repo.name)),
                "{name}: projectKey.repoKey {:?} (scheme-less host/path of the URL, without .git)",
                project_key.repo_key
            );
            let target_key = s.target_key.clone().context("status.targetKey")?;
            assert_eq!(target_key.cluster_id, cluster_id, "{name}: targetKey.clusterId");
            assert!(
                !k.status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .any(|c| c.type_ == "Reconciling"),
                "{name}: Reconciling is removed once Ready is set: {:#?}",
                k.status
            );
            assert_eq!(
                target_key.discriminator,
                demo.discriminator(target),
                "{name}: targetKey"
            );
            assert_eq!(target_key.target_name, target, "{name}: targetKey.targetName");
            let deployed = last_deploy(k)?;
            assert!(
                deployed.errors.is_empty(),
                "{name}: deploy errors {:?}",
                deployed.errors
            );
            assert_eq!(
                deployed.git_info.commit, demo.sha,
                "{name}: lastDeployResult.gitInfo.commit"
            );
            let owner = deployed
                .kluctl_deployment
                .clone()
                .context("lastDeployResult.kluctlDeployment")?;
            assert_eq!(
                (owner.name.as_str(), owner.namespace.as_str()),
                (name.as_str(), t.name.as_str())
            );
            assert_eq!(
                deployed.command_info.initiator, "KluctlDeployment",
                "{name}: commandInfo.initiator"
            );
            assert!(
                !s.last_objects_hash.is_empty(),
                "{name}: status.lastObjectsHash is empty"
            );
            assert_eq!(
                deployed.rendered_objects_hash, s.last_objects_hash,
                "{name}: the deployed objects are the rendered ones"
            );
            let message = &ready(k).context("Ready")?.message;
            assert!(
                message.contains("deploy succeeded"),
                "{name}: Ready message {message:?}"
            );
        }
        let message = &ready(&test).context("Ready")?.message;
        assert!(
            message.contains("validate succeeded"),
            "test: Ready message {message:?}"
        );

        // Every object of a target carries its discriminator; each env got its own values and items.
        for target in ["test", "prod"] {
            let ns_name = demo.target_ns(target);
            let want = demo.discriminator(target);
            let namespaces: Api<Namespace> = Api::all(t.client.clone());
            let ns = namespaces.get(&ns_name).await?;
            assert_eq!(discriminator_of(&ns), want, "namespace {ns_name}");
            let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns_name);
            let services: Api<Service> = Api::namespaced(t.client.clone(), &ns_name);
            let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &ns_name);
            for svc in ["frontend", "backend"] {
                let cm = configmaps.get(&format!("{svc}-config")).await?;
                assert_eq!(discriminator_of(&cm), want, "{ns_name}/{svc}-config");
                assert_eq!(
                    cm.data.as_ref().and_then(|d| d.get("env")).map(String::as_str),
                    Some(target),
                    "{ns_name}/{svc}-config data.env"
                );
                assert_eq!(
                    discriminator_of(&services.get(svc).await?),
                    want,
                    "{ns_name}/service {svc}"
                );
                assert_eq!(
                    discriminator_of(&deployments.get(svc).await?),
                    want,
                    "{ns_name}/deployment {svc}"
                );
            }
            let cache = configmaps.get_opt("cache-config").await?;
            assert_eq!(
                cache.is_some(),
                target == "prod",
                "{ns_name}: the cache runs in prod only"
            );
        }
        assert_eq!(
            configmap_message(&t.client, &demo.target_ns("test"), "frontend-config")
                .await?
                .as_deref(),
            Some("hello from test")
        );
        assert_eq!(
            configmap_message(&t.client, &demo.target_ns("prod"), "frontend-config")
                .await?
                .as_deref(),
            Some("hello from prod")
        );
        Ok(())
    }))
    .await
}

#[tokio::test]
async fn a_pushed_value_change_is_deployed() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_push", |t| async move {
        let demo = Demo::start(&t)?;
        // The controller finds the new commit by polling the repository every interval.
        demo.apply_kd(
            "ms-demo-test",
            "test",
            &json!({"interval": "5s", "validate": false}),
        )
        .await?;
        let first = demo
            .wait_ready("ms-demo-test", "True", "ReconciliationSucceeded")
            .await?;
        let first_id = last_deploy(&first)?.id;

        let second = demo.push(
            &[("vars/test.yml", &test_vars("changed in test", true))],
            "frontend message",
        )?;
        let want = second.clone();
        let deployed = demo
            .wait_kd("ms-demo-test", "the pushed commit to be deployed", move |k| {
                status(k).observed_commit == want
                    && status(k)
                        .last_deploy_result
                        .is_some_and(|r| r.git_info.commit == want)
            })
            .await?;
        let summary = last_deploy(&deployed)?;
        assert_ne!(summary.id, first_id, "the change needs a new deploy");
        assert_eq!(
            summary.changed_objects, 1,
            "only frontend-config changed: {summary:#?}"
        );
        assert!(summary.errors.is_empty(), "deploy errors {:?}", summary.errors);
        assert_eq!(
            configmap_message(&t.client, &demo.target_ns("test"), "frontend-config")
                .await?
                .as_deref(),
            Some("changed in test")
        );
        Ok(())
    }))
    .await
}

#[tokio::test]
async fn an_unchanged_reconcile_does_not_redeploy_and_deploy_interval_forces_a_deploy() -> anyhow::Result<()>
{
    Box::pin(TestNs::run("kd_hash", |t| async move {
        let demo = Demo::start(&t)?;
        demo.apply_kd("ms-demo-test", "test", &json!({"validate": false}))
            .await?;
        let first = demo
            .wait_ready("ms-demo-test", "True", "ReconciliationSucceeded")
            .await?;
        let first_id = last_deploy(&first)?.id;
        let first_hash = status(&first).last_objects_hash;

        // Same commit, same generation, same rendered objects: the hash gate skips the deploy.
        let after = demo.request_reconcile("ms-demo-test", "no-change-1").await?;
        assert!(
            ready_is(&after, "True", "ReconciliationSucceeded"),
            "Ready after a no-op reconcile: {:?}",
            ready(&after)
        );
        assert_eq!(
            status(&after).last_objects_hash,
            first_hash,
            "same objects, same hash"
        );
        assert_eq!(
            last_deploy(&after)?.id,
            first_id,
            "an unchanged reconcile must not deploy"
        );
        // Drift detection runs on every full reconcile; nothing changed the objects.
        assert_eq!(
            status(&after).last_drift_detection_result_message,
            "no drift",
            "drift of untouched objects: {:#?}",
            status(&after).last_drift_detection_result
        );

        // deployInterval: a deploy of unchanged objects once the interval has passed. The spec
        // change itself is a deploy too (new generation); the one after it is the interval's.
        let generation = demo
            .patch_spec("ms-demo-test", json!({"deployInterval": "5s"}))
            .await?;
        let at_generation = demo
            .wait_kd(
                "ms-demo-test",
                "the deployInterval generation to be reconciled",
                move |k| {
                    k.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
                        && deploy_id(k).is_some()
                },
            )
            .await?;
        let generation_id = last_deploy(&at_generation)?.id;
        let forced = demo
            .wait_kd("ms-demo-test", "a deploy forced by deployInterval", move |k| {
                deploy_id(k).is_some_and(|id| id != generation_id)
            })
            .await?;
        let s = status(&forced);
        assert_eq!(
            s.observed_generation,
            Some(generation),
            "no spec change in between"
        );
        assert_eq!(
            s.last_objects_hash, first_hash,
            "the forced deploy renders the same objects"
        );
        let summary = last_deploy(&forced)?;
        assert_eq!(
            summary.new_objects + summary.changed_objects,
            0,
            "nothing changed: {summary:#?}"
        );
        Ok(())
    }))
    .await
}

#[tokio::test]
async fn a_removed_item_is_an_orphan_until_prune_deletes_it() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_prune", |t| async move {
        let demo = Demo::start(&t)?;
        demo.apply_kd(
            "ms-demo-test",
            "test",
            &json!({"validate": false, "prune": false}),
        )
        .await?;
        demo.wait_ready("ms-demo-test", "True", "ReconciliationSucceeded")
            .await?;
        let ns = demo.target_ns("test");
        assert!(
            configmap_message(&t.client, &ns, "backend-config")
                .await?
                .is_some()
        );

        // The backend item is no longer rendered: its three objects become orphans.
        let second = demo.push(
            &[("vars/test.yml", &test_vars("hello from test", false))],
            "backend off",
        )?;
        let orphaned = demo.request_reconcile("ms-demo-test", "backend-off").await?;
        assert_eq!(status(&orphaned).observed_commit, second, "status.observedCommit");
        let summary = last_deploy(&orphaned)?;
        assert_eq!(summary.git_info.commit, second, "the deploy of the new commit");
        assert_eq!(
            summary.orphan_objects, 3,
            "backend ConfigMap, Service, Deployment: {summary:#?}"
        );
        assert_eq!(summary.deleted_objects, 0, "prune is off: {summary:#?}");
        // The stored result names them.
        let stored = kluctl_engine::store::get_command_result(
            &t.client,
            kluctl_engine::store::DEFAULT_RESULTS_NAMESPACE,
            &summary.id,
        )
        .await
        .with_context(|| format!("reading command result {}", summary.id))?;
        let orphans: BTreeSet<String> = stored
            .objects
            .iter()
            .filter(|o| o.orphan)
            .map(|o| format!("{}/{}/{}", o.object.namespace, o.object.kind, o.object.name))
            .collect();
        let want: BTreeSet<String> = [
            "ConfigMap/backend-config",
            "Service/backend",
            "Deployment/backend",
        ]
        .iter()
        .map(|r| format!("{ns}/{r}"))
        .collect();
        assert_eq!(orphans, want, "orphans of the stored result {}", summary.id);
        assert!(
            configmap_message(&t.client, &ns, "backend-config")
                .await?
                .is_some(),
            "kept with prune: false"
        );
        let services: Api<Service> = Api::namespaced(t.client.clone(), &ns);
        let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &ns);
        assert!(
            services.get_opt("backend").await?.is_some(),
            "kept with prune: false"
        );
        assert!(
            deployments.get_opt("backend").await?.is_some(),
            "kept with prune: false"
        );

        // prune: true deletes them, and nothing else.
        let generation = demo.patch_spec("ms-demo-test", json!({"prune": true})).await?;
        let pruned = demo
            .wait_kd(
                "ms-demo-test",
                "the prune: true generation to be deployed",
                move |k| {
                    k.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
                        && ready_is(k, "True", "ReconciliationSucceeded")
                },
            )
            .await?;
        let summary = last_deploy(&pruned)?;
        assert_eq!(summary.deleted_objects, 3, "the three orphans: {summary:#?}");
        let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
        wait_gone(&configmaps, "backend-config", WAIT).await?;
        wait_gone(&services, "backend", WAIT).await?;
        wait_gone(&deployments, "backend", WAIT).await?;
        assert_eq!(
            configmap_message(&t.client, &ns, "frontend-config")
                .await?
                .as_deref(),
            Some("hello from test"),
            "rendered objects stay"
        );
        assert!(
            deployments.get_opt("frontend").await?.is_some(),
            "rendered objects stay"
        );
        Ok(())
    }))
    .await
}

#[tokio::test]
async fn delete_true_removes_the_targets_objects_and_leaves_the_other_target() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_delete", |t| async move {
        let demo = Demo::start(&t)?;
        for target in ["test", "prod"] {
            demo.apply_kd(
                &format!("ms-demo-{target}"),
                target,
                &json!({"validate": false, "delete": true}),
            )
            .await?;
        }
        demo.wait_ready("ms-demo-test", "True", "ReconciliationSucceeded")
            .await?;
        demo.wait_ready("ms-demo-prod", "True", "ReconciliationSucceeded")
            .await?;

        demo.api.delete("ms-demo-test", &DeleteParams::default()).await?;
        Box::pin(wait_gone(&demo.api, "ms-demo-test", WAIT))
            .await
            .map_err(|e| e.context(demo.ctl.log_tail(40)))?;
        // The Namespace is one of the target's objects: kluctl deletes it, and the
        // namespace controller everything in it.
        let namespaces: Api<Namespace> = Api::all(t.client.clone());
        let test_ns = demo.target_ns("test");
        let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), &test_ns);
        wait_gone(&configmaps, "frontend-config", WAIT).await?;
        wait_gone(&namespaces, &test_ns, WAIT).await?;

        let prod_ns = demo.target_ns("prod");
        let ns = namespaces.get(&prod_ns).await?;
        assert!(
            ns.metadata.deletion_timestamp.is_none(),
            "{prod_ns} is being deleted"
        );
        for cm in ["frontend-config", "backend-config", "cache-config"] {
            assert!(
                configmap_message(&t.client, &prod_ns, cm).await?.is_some(),
                "{prod_ns}/{cm} must stay"
            );
        }
        let prod = demo.api.get("ms-demo-prod").await?;
        assert!(
            ready_is(&prod, "True", "ReconciliationSucceeded"),
            "prod: {:?}",
            ready(&prod)
        );
        Ok(())
    }))
    .await
}

#[tokio::test]
async fn a_broken_template_fails_prepare_and_prunes_nothing() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_broken", |t| async move {
        let demo = Demo::start(&t)?;
        // prune: true, so a deploy of a partial render would delete what it missed.
        demo.apply_kd("ms-demo-test", "test", &json!({"validate": false, "prune": true})).await?;
        let good = demo.wait_ready("ms-demo-test", "True", "ReconciliationSucceeded").await?;
        let good_id = last_deploy(&good)?.id;

        // Line 6 of the ConfigMap template does not parse.
        let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frontend-config\ndata:\n  message: \"{{ services.frontend.message ) }}\"\n  env: \"{{ args.env_type }}\"\n";
        let sha = demo.push(&[("services/frontend/configmap.yml", broken)], "broken template")?;
        demo.request_reconcile("ms-demo-test", "broken-1").await?;
        let failed = demo
            .wait_kd("ms-demo-test", "Ready=False (PrepareFailed)", |k| {
                ready_is(k, "False", "PrepareFailed")
            })
            .await?;
        let s = status(&failed);
        for want in ["services/frontend/configmap.yml", "line 6"] {
            assert!(
                s.last_prepare_error.contains(want),
                "status.lastPrepareError must name {want:?}: {:?}",
                s.last_prepare_error
            );
        }
        let message = &ready(&failed).context("Ready")?.message;
        assert!(message.contains("prepare failed"), "Ready message {message:?}");
        assert_eq!(deploy_id(&failed), Some(good_id), "no deploy after a failed prepare");
        assert_ne!(
            s.last_deploy_result.map(|r| r.git_info.commit),
            Some(sha),
            "the broken commit was never deployed"
        );

        // Nothing was pruned or changed.
        let ns = demo.target_ns("test");
        assert_eq!(
            configmap_message(&t.client, &ns, "frontend-config").await?.as_deref(),
            Some("hello from test")
        );
        assert!(configmap_message(&t.client, &ns, "backend-config").await?.is_some());
        let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &ns);
        for d in ["frontend", "backend"] {
            assert!(deployments.get_opt(d).await?.is_some(), "deployment {ns}/{d} must stay");
        }

        // A fixed template recovers: the next reconcile deploys it and clears the error.
        let fixed = demo.push(
            &[(
                "services/frontend/configmap.yml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frontend-config\ndata:\n  message: \"fixed {{ services.frontend.message }}\"\n  env: \"{{ args.env_type }}\"\n",
            )],
            "fixed template",
        )?;
        demo.request_reconcile("ms-demo-test", "fixed-1").await?;
        let recovered = demo
            .wait_ready("ms-demo-test", "True", "ReconciliationSucceeded")
            .await?;
        let s = status(&recovered);
        assert_eq!(last_deploy(&recovered)?.git_info.commit, fixed, "the fixed commit is deployed");
        assert!(s.last_prepare_error.is_empty(), "lastPrepareError stays: {:?}", s.last_prepare_error);
        assert_eq!(
            configmap_message(&t.client, &ns, "frontend-config").await?.as_deref(),
            Some("fixed hello from test")
        );
        Ok(())
    }))
    .await
}

fn stalled_is(k: &KluctlDeployment) -> bool {
    status(k)
        .conditions
        .iter()
        .any(|c| c.type_ == "Stalled" && c.status == "True")
}

/// A stall (a field this build does not implement) ends with the spec change that removes the
/// field, even when the next reconcile fails for another, retryable, reason: Stalled=True must
/// not outlive its generation.
#[tokio::test]
async fn a_stall_is_cleared_when_the_fixed_spec_fails_for_a_retryable_reason() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_stall_clear", |t| async move {
        let demo = Demo::start(&t)?;
        demo.apply_kd(
            "ms-demo-test",
            "test",
            &json!({"decryption": {"provider": "sops"}}),
        )
        .await?;
        demo.wait_kd("ms-demo-test", "Stalled=True (UnsupportedConfiguration)", |k| {
            ready_is(k, "False", "UnsupportedConfiguration") && stalled_is(k)
        })
        .await?;
        // The field goes; the target does not exist: a prepare failure, retried, not a stall.
        demo.apply_kd("ms-demo-test", "no-such-target", &json!({}))
            .await?;
        let failed = demo
            .wait_kd("ms-demo-test", "Ready=False (PrepareFailed)", |k| {
                ready_is(k, "False", "PrepareFailed") && reconciled(k)
            })
            .await?;
        assert!(
            !stalled_is(&failed),
            "Stalled of the previous generation stays: {:?}",
            status(&failed).conditions
        );
        Ok(())
    }))
    .await
}

#[tokio::test]
async fn a_suspended_deployment_does_not_deploy_but_observes_its_generation() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_suspend", |t| async move {
        let demo = Demo::start(&t)?;
        let namespaces: Api<Namespace> = Api::all(t.client.clone());
        let test_ns = demo.target_ns("test");
        demo.apply_kd(
            "ms-demo-test",
            "test",
            &json!({"interval": "5s", "validate": false, "suspend": true}),
        )
        .await?;
        let suspended = demo
            .wait_kd(
                "ms-demo-test",
                "observedGeneration of the suspended object",
                reconciled,
            )
            .await?;
        assert!(
            deploy_id(&suspended).is_none(),
            "suspended: no deploy, {:#?}",
            suspended.status
        );
        assert!(
            namespaces.get_opt(&test_ns).await?.is_none(),
            "suspended: {test_ns} must not exist"
        );

        // A spec change while suspended is observed, still without a deploy.
        let generation = demo.patch_spec("ms-demo-test", json!({"interval": "6s"})).await?;
        let observed = demo
            .wait_kd(
                "ms-demo-test",
                "observedGeneration of the changed suspended object",
                move |k| k.status.as_ref().and_then(|s| s.observed_generation) == Some(generation),
            )
            .await?;
        assert!(
            deploy_id(&observed).is_none(),
            "suspended: no deploy, {:#?}",
            observed.status
        );
        assert!(
            namespaces.get_opt(&test_ns).await?.is_none(),
            "suspended: {test_ns} must not exist"
        );

        // Resumed, it deploys.
        demo.patch_spec("ms-demo-test", json!({"suspend": false})).await?;
        let resumed = demo
            .wait_ready("ms-demo-test", "True", "ReconciliationSucceeded")
            .await?;
        assert_eq!(last_deploy(&resumed)?.git_info.commit, demo.sha);
        let found = poll_for("the resumed deploy's ConfigMap", WAIT, || async {
            configmap_message(&t.client, &test_ns, "frontend-config").await
        })
        .await?;
        assert_eq!(found, "hello from test");
        Ok(())
    }))
    .await
}

/// `--events-addr` receives the KluctlDeployment's events in Flux's format, with metadata keys
/// prefixed by the KluctlDeployment's own API group (Flux's notification-controller drops the
/// keys of other groups), the object's `event.toolkit.fluxcd.io/*` annotations, and messages
/// worded as Kluctl's: the scheduled deploy named by its deployMode, then "Reconciliation
/// finished" with `commit_status: update`; a failure is an `error` event with the new revision.
#[tokio::test]
async fn events_go_to_the_events_address_with_the_kluctl_group_metadata() -> anyhow::Result<()> {
    Box::pin(TestNs::run("kd_events", |t| async move {
        let sink = WebhookSink::start()?;
        let demo = Demo::start_with(&t, &["--events-addr", &sink.url])?;
        let ns = demo.api_namespace()?;
        apply(
            &demo.api,
            &json!({
                "apiVersion": "gitops.kluctl.io/v1beta1",
                "kind": "KluctlDeployment",
                "metadata": {
                    "name": "ms-demo-test",
                    "namespace": ns,
                    "annotations": {"event.toolkit.fluxcd.io/team": "payments", "other": "not sent"},
                },
                "spec": {
                    "interval": "10m",
                    "source": {"git": {"url": demo.url, "ref": {"branch": "main"}}},
                    "target": "test",
                    "args": {"prefix": demo.prefix},
                    "validate": false,
                },
            }),
        )
        .await?;
        let revision = format!("main@sha1:{}", demo.sha);
        let message = |e: &serde_json::Value| e["message"].as_str().unwrap_or_default().to_string();
        let deployed = sink
            .wait_for(WAIT, |e| message(e).starts_with("full-deploy succeeded."))
            .await?;
        assert_eq!(deployed["severity"], "info", "{deployed}");
        assert_eq!(deployed["reason"], "ReconciliationSucceeded", "{deployed}");
        assert_eq!(deployed["reportingController"], "kluctl-controller");
        assert_eq!(
            deployed["involvedObject"]["apiVersion"], "gitops.kluctl.io/v1beta1",
            "{deployed}"
        );
        assert_eq!(deployed["involvedObject"]["kind"], "KluctlDeployment");
        assert_eq!(deployed["involvedObject"]["name"], "ms-demo-test");
        assert!(message(&deployed).contains("new objects."), "{deployed}");
        assert_eq!(
            deployed["metadata"],
            json!({
                "gitops.kluctl.io/revision": revision,
                "event.toolkit.fluxcd.io/team": "payments",
            }),
            "no commit_status on the command's own event"
        );
        let finished = sink
            .wait_for(WAIT, |e| message(e).starts_with("Reconciliation finished in "))
            .await?;
        assert_eq!(finished["severity"], "info", "{finished}");
        assert_eq!(finished["reason"], "ReconciliationSucceeded");
        assert_eq!(
            finished["metadata"],
            json!({
                "gitops.kluctl.io/revision": revision,
                "gitops.kluctl.io/commit_status": "update",
                "event.toolkit.fluxcd.io/team": "payments",
            })
        );

        // A broken template: an error event about the new commit.
        let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frontend-config\ndata:\n  message: \"{{ services.frontend.message ) }}\"\n";
        let sha = demo.push(&[("services/frontend/configmap.yml", broken)], "broken template")?;
        demo.request_reconcile("ms-demo-test", "broken-1").await?;
        let failed = sink
            .wait_for(WAIT, |e| e["reason"] == "PrepareFailed")
            .await?;
        assert_eq!(failed["severity"], "error", "{failed}");
        assert!(
            message(&failed).contains("services/frontend/configmap.yml"),
            "the error names the file: {failed}"
        );
        assert_eq!(
            failed["metadata"]["gitops.kluctl.io/revision"],
            format!("main@sha1:{sha}")
        );
        for e in sink.received() {
            let keys = e["metadata"].as_object().cloned().unwrap_or_default();
            assert!(
                keys.keys().all(|k| k.starts_with("gitops.kluctl.io/")
                    || k.starts_with("event.toolkit.fluxcd.io/")),
                "only the KluctlDeployment's group and copied annotations: {e}"
            );
            assert_ne!(e["severity"], "trace", "{e}");
        }
        Ok(())
    }))
    .await
}
