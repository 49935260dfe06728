//! Seed 000 ("Deploying via GitOps", `shared/reference/seeds/000_*`) end to end on the real
//! apiserver: the `gitops-deployment` project of kluctl-examples, bootstrapped with `kluctl deploy
//! -t gitops -a cluster_name=test.example.com`, manages itself and its child KluctlDeployments
//! `app1` (project `simple`) and `app2` (project `simple-helm`); removing `app2` from Git prunes it
//! and, as it has `delete: true`, the objects it deployed, while `app1`'s stay.
//!
//! `app2` points at `simple-helm`, so that project (with its pre-pulled chart) is pushed as well.
//! The projects are the unchanged copies of `e2e/fixtures/kluctl-examples`, pushed to one
//! repository of the local git server in the layout of kluctl-examples; only the repository URL
//! `https://github.com/kluctl/kluctl-examples.git` is replaced by the local one. The example
//! hard-codes the namespace `kluctl-gitops` (no other test uses it) and its children deploy to
//! `simple-test` and `simple-helm-test`; all three are deleted when the test ends, after the
//! controller is stopped and the KluctlDeployments' finalizers are released.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p kluctl --bin kluctl` and the
//! environment of `make e2e-up`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use e2e::kluctl_deployment as kd;
use e2e::{
    DeleteOnDrop, Env, GitRepo, KluctlController, git, poll_for, project_root, run_kluctl, unique_name,
    wait_gone,
};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// The namespace the example's KluctlDeployments live in (hard-coded by the example).
const GITOPS_NS: &str = "kluctl-gitops";
/// Where `app1` (`simple`, `environment: test`) deploys.
const APP1_NS: &str = "simple-test";
/// Where `app2` (`simple-helm`, `environment: test`) deploys.
const APP2_NS: &str = "simple-helm-test";
/// The URL the example's KluctlDeployments point at.
const UPSTREAM_URL: &str = "https://github.com/kluctl/kluctl-examples.git";
/// The example projects pushed, in kluctl-examples' layout.
const PROJECTS: [&str; 3] = ["gitops-deployment", "simple", "simple-helm"];
/// The child removed from Git.
const APP2_FILE: &str = "gitops-deployment/clusters/test.example.com/app2.yaml";

const WAIT: Duration = Duration::from_secs(120);

/// Releases the finalizers of the KluctlDeployments in [`GITOPS_NS`] when dropped: the
/// controller (a test process) is gone by then, and the namespace could not go otherwise.
struct ReleaseFinalizers(Env);

impl Drop for ReleaseFinalizers {
    fn drop(&mut self) {
        e2e::release_finalizers(&self.0, GITOPS_NS);
    }
}

/// The files of the example projects as (path in the repository, content), with the upstream
/// URL replaced by `url`.
fn example_files(url: &str) -> anyhow::Result<Vec<(String, String)>> {
    fn walk(root: &Path, dir: &Path, url: &str, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
        for entry in fs_err::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, url, out)?;
            } else {
                let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                let text = fs_err::read_to_string(&path)?;
                out.push((rel, text.replace(UPSTREAM_URL, url)));
            }
        }
        Ok(())
    }
    let root = project_root().join("e2e/fixtures/kluctl-examples");
    let mut out = Vec::new();
    for project in PROJECTS {
        walk(&root, &root.join(project), url, &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// Marks every pod in `ns` Running and Ready through `/status` (the cluster has no kubelet)
/// until Deployment `name` reports all its replicas ready and available.
async fn make_all_ready(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    poll_for(&format!("Deployment {ns}/{name} to be ready"), WAIT, || async {
        for pod in pods.list(&ListParams::default()).await? {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            pods.patch_status(
                &pod.metadata.name.unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
            )
            .await?;
        }
        let Some(d) = deployments.get_opt(name).await? else {
            return Ok(None);
        };
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = d
            .status
            .as_ref()
            .is_some_and(|s| s.ready_replicas == Some(want) && s.available_replicas == Some(want));
        Ok(ready.then_some(()))
    })
    .await
}

/// Waits until KluctlDeployment `name` has deployed `commit`, then asks it to validate (its
/// Deployments were only made ready after its first validate) and waits for Ready=True with a
/// ready validate result.
async fn wait_deployed_and_valid(
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
        move |k| kd::deployed_commit(k, &want),
    )
    .await?;
    Box::pin(kd::request(
        api,
        ctl,
        name,
        "validate",
        &format!("{name}-{commit}"),
    ))
    .await?;
    kd::wait(api, ctl, name, "Ready=True with a ready validate result", |k| {
        kd::ready_is(k, "True", "ReconciliationSucceeded")
            && kd::status(k).last_validate_result.is_some_and(|v| v.ready)
    })
    .await
}

#[tokio::test]
async fn seed_000_gitops_deployment_manages_itself_and_prunes_a_child_removed_from_git() -> anyhow::Result<()>
{
    let env = Env::load()?;
    let client = env.admin_client().await?;
    // Each phase is boxed and polled on its own: the debug build's watch of a KluctlDeployment
    // takes most of the test thread's stack, and one function holding the whole workflow would
    // overflow it.
    Box::pin(preflight(&client)).await?;
    // Dropped in reverse order: controller stopped, finalizers released, then the namespaces.
    let namespaces_guard = [GITOPS_NS, APP1_NS, APP2_NS].map(|ns| DeleteOnDrop::namespace(&env, ns));
    let finalizers = ReleaseFinalizers(env.clone());

    let repo = GitRepo::create(&env, &unique_name("seed-000-kluctl-examples"))?;
    let url = format!("{}/{}.git", env.get("E2E_GIT_HTTP_URL")?, repo.name);
    let files = example_files(&url)?;
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let first = repo.commit(&refs, "kluctl-examples")?;

    let api: Api<KluctlDeployment> = Api::namespaced(client.clone(), GITOPS_NS);
    Box::pin(bootstrap(&api, &url)).await?;
    let ctl = KluctlController::start(&env, GITOPS_NS, &["--command-result-namespace", GITOPS_NS])?;
    let app1_before = Box::pin(all_ready(&client, &api, &ctl, &first)).await?;
    Box::pin(prune_app2(&client, &api, &ctl, &repo, app1_before)).await?;

    // Clean up now rather than in the background: `seeds.rs` applies objects to `kluctl-gitops`
    // next, which a namespace still terminating would refuse.
    drop(ctl);
    drop(finalizers);
    drop(namespaces_guard);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [GITOPS_NS, APP1_NS, APP2_NS] {
        Box::pin(wait_gone(&namespaces, ns, WAIT)).await?;
    }
    Ok(())
}

/// An earlier run's namespaces may still be terminating: waits until they have gone. An active
/// `kluctl-gitops` holding KluctlDeployments means another run is going on: an error.
async fn preflight(client: &kube::Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [GITOPS_NS, APP1_NS, APP2_NS] {
        let terminating = namespaces
            .get_opt(ns)
            .await?
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some());
        if terminating {
            Box::pin(wait_gone(&namespaces, ns, WAIT))
                .await
                .with_context(|| format!("namespace {ns} of an earlier run"))?;
        }
    }
    let existing = Api::<KluctlDeployment>::namespaced(client.clone(), GITOPS_NS)
        .list(&ListParams::default())
        .await?;
    anyhow::ensure!(
        existing.items.is_empty(),
        "namespace {GITOPS_NS} already holds KluctlDeployments (another run of this test?): {:?}",
        existing
            .items
            .iter()
            .map(|k| k.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// The seed's bootstrap, `kluctl deploy` from a checkout of the repository as a user has it; the
/// three KluctlDeployments then point at the local repository. No command result: it would go
/// to a namespace of the shared cluster that nothing cleans up.
async fn bootstrap(api: &Api<KluctlDeployment>, url: &str) -> anyhow::Result<()> {
    let checkout = tempfile::tempdir()?;
    git(checkout.path(), &["clone", "-q", url, "kluctl-examples"])?;
    let project = checkout.path().join("kluctl-examples/gitops-deployment");
    let out = run_kluctl(
        &project,
        &[
            "deploy",
            "-y",
            "-t",
            "gitops",
            "-a",
            "cluster_name=test.example.com",
            "--write-command-result=false",
        ],
        &[],
    )?;
    anyhow::ensure!(
        out.status.success(),
        "kluctl deploy failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["gitops", "app1", "app2"] {
        let k = api
            .get(name)
            .await
            .with_context(|| format!("KluctlDeployment {name} after the bootstrap"))?;
        let git = k
            .spec
            .source
            .as_ref()
            .and_then(|s| s.git.as_ref())
            .context("spec.source.git")?;
        assert_eq!(git.url, url, "{name}: the URL of the local repository");
    }
    let gitops = api.get("gitops").await?;
    assert_eq!(
        gitops
            .spec
            .args
            .as_ref()
            .and_then(|a| a.get("cluster_name"))
            .and_then(|v| v.as_str()),
        Some("test.example.com"),
        "the bootstrap's cluster_name passed on to the self-managing deployment"
    );
    Ok(())
}

/// The identity and spec revision of a Deployment (its status keeps changing).
fn identity(d: &Deployment) -> (Option<String>, Option<i64>) {
    (d.metadata.uid.clone(), d.metadata.generation)
}

/// The controller takes over: `gitops` deploys its own project (itself and both children) and
/// the children deploy theirs; all three end Ready with a ready validate result. Returns the
/// [`identity`] of app1's Deployment.
async fn all_ready(
    client: &kube::Client,
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    first: &str,
) -> anyhow::Result<(Option<String>, Option<i64>)> {
    // No kubelet: the children's Deployments are made ready by hand.
    Box::pin(make_all_ready(client, APP1_NS, "nginx-deployment"))
        .await
        .map_err(|e| e.context(ctl.log_tail(40)))?;
    Box::pin(make_all_ready(client, APP2_NS, "nginx"))
        .await
        .map_err(|e| e.context(ctl.log_tail(40)))?;
    for name in ["gitops", "app1", "app2"] {
        Box::pin(wait_deployed_and_valid(api, ctl, name, first)).await?;
    }

    // The self-managing deployment deployed its own project with the bootstrap's discriminator.
    let gitops = api.get("gitops").await?;
    let summary = kd::status(&gitops)
        .last_deploy_result
        .context("gitops: lastDeployResult")?;
    assert_eq!(summary.deleted_objects, 0, "{summary:#?}");
    for name in ["gitops", "app1", "app2"] {
        let labels = api.get(name).await?.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get("kluctl.io/discriminator").map(String::as_str),
            Some("gitops-test-example-com"),
            "{name}: {labels:?}"
        );
    }
    let app1 = Api::<Deployment>::namespaced(client.clone(), APP1_NS)
        .get("nginx-deployment")
        .await?;
    Api::<Service>::namespaced(client.clone(), APP1_NS)
        .get("nginx")
        .await?;
    let helm = Api::<Deployment>::namespaced(client.clone(), APP2_NS)
        .get("nginx")
        .await?;
    let labels = helm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kluctl.io/discriminator").map(String::as_str),
        Some("kluctl-examples-simple-helm-simple-helm"),
        "{labels:?}"
    );
    Api::<Service>::namespaced(client.clone(), APP2_NS)
        .get("nginx")
        .await?;
    Ok(identity(&app1))
}

/// app2 leaves Git; the next reconcile of the self-managing deployment prunes it, and its
/// `delete: true` takes what it deployed with it. app1 and its objects stay as they were.
async fn prune_app2(
    client: &kube::Client,
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    repo: &GitRepo,
    app1_before: (Option<String>, Option<i64>),
) -> anyhow::Result<()> {
    let second = repo.remove(&[APP2_FILE], "remove app2 from test.example.com")?;
    Box::pin(kd::request(api, ctl, "gitops", "reconcile", "app2-removed")).await?;
    let want = second.clone();
    let pruned = Box::pin(kd::wait(
        api,
        ctl,
        "gitops",
        &format!("the deploy of commit {second}"),
        move |k| kd::deployed_commit(k, &want) && kd::ready_is(k, "True", "ReconciliationSucceeded"),
    ))
    .await?;
    let summary = kd::status(&pruned)
        .last_deploy_result
        .context("gitops: lastDeployResult")?;
    assert_eq!(
        summary.deleted_objects, 1,
        "the KluctlDeployment app2: {summary:#?}"
    );
    Box::pin(wait_gone(api, "app2", WAIT))
        .await
        .map_err(|e| e.context(ctl.log_tail(40)))?;
    let app2_deployments: Api<Deployment> = Api::namespaced(client.clone(), APP2_NS);
    let app2_services: Api<Service> = Api::namespaced(client.clone(), APP2_NS);
    Box::pin(wait_gone(&app2_deployments, "nginx", WAIT)).await?;
    Box::pin(wait_gone(&app2_services, "nginx", WAIT)).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Box::pin(wait_gone(&namespaces, APP2_NS, WAIT)).await?;

    Box::pin(kd::wait_ready(
        api,
        ctl,
        "app1",
        "True",
        "ReconciliationSucceeded",
    ))
    .await?;
    let app1 = Api::<Deployment>::namespaced(client.clone(), APP1_NS)
        .get("nginx-deployment")
        .await?;
    assert_eq!(
        identity(&app1),
        app1_before,
        "app1's Deployment is the same object with the same spec"
    );
    Api::<Service>::namespaced(client.clone(), APP1_NS)
        .get("nginx")
        .await?;
    Ok(())
}
