//! Where the `kluctl-controller` gets its project from, end to end: `spec.sourceRef` to a
//! GitRepository and to a Bucket of our source-controller (a new artifact revision redeploys
//! through the watch alone), ten KluctlDeployments on one `spec.source.git` repository (one fetch
//! per commit, counted at the git server), a deleted source and an artifact whose digest is wrong
//! (Ready=False `ArtifactFailed`, nothing deployed or pruned).
//!
//! Every test deploys a one-ConfigMap project into its own namespace, with a discriminator made of
//! the namespace and the `id` arg, so parallel tests never meet. KluctlDeployments use
//! `interval: 1h`: any second reconcile a test sees was triggered by a watch or a request.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p source-controller --bin
//! source-controller` and the environment of `make e2e-up`.

// Each test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use e2e::kluctl_deployment as kd;
use e2e::source::{apply, ready_is, request_reconcile};
use e2e::{
    GitRepo, KluctlController, SourceController, TestNs, log_value, project_root, upload_pack_posts,
    wait_for, wait_gone,
};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::source::v1::{Bucket, GitRepository};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use sha2::Digest as _;

const WAIT: Duration = Duration::from_secs(60);

/// Message of the controller's log line at the end of a full reconcile.
const FINISHED: &str = "Reconciliation finished";

/// A Kluctl project under `dir/`: ConfigMap `app-<id>` in namespace `<ns>` (both args) with
/// `data.message: <message>`, discriminator `e2e-<ns>-<id>`.
fn project(dir: &str, message: &str) -> Vec<(String, String)> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    vec![
        (
            format!("{prefix}.kluctl.yaml"),
            "discriminator: e2e-{{ args.ns }}-{{ args.id }}\nargs:\n  - name: ns\n  - name: id\n    default: main\ntargets:\n  - name: test\n"
                .to_owned(),
        ),
        (
            format!("{prefix}deployment.yaml"),
            "deployments:\n  - path: app\n".to_owned(),
        ),
        (
            format!("{prefix}app/configmap.yaml"),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{{{{ args.id }}}}\n  namespace: {{{{ args.ns }}}}\ndata:\n  message: {message}\n"
            ),
        ),
    ]
}

fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect()
}

/// `data.message` of ConfigMap `name` in `ns` (`None` when it does not exist).
async fn message(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|cm| cm.data.and_then(|d| d.get("message").cloned())))
}

/// The spec of a KluctlDeployment deploying target `test` of the project at `path` in the
/// artifact of `kind/name`, into `ns`.
fn source_ref_spec(
    kind: &str,
    name: &str,
    path: &str,
    ns: &str,
    extra: &serde_json::Value,
) -> serde_json::Value {
    let mut spec = json!({
        "interval": "1h",
        "sourceRef": {"kind": kind, "name": name},
        "path": path,
        "target": "test",
        "args": {"ns": ns},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

/// GitRepository `name` on `repo`'s `main`, labelled for the test's source-controller.
async fn git_repository(t: &TestNs, name: &str, repo: &GitRepo) -> anyhow::Result<Api<GitRepository>> {
    let api: Api<GitRepository> = Api::namespaced(t.client.clone(), &t.name);
    let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
    apply(
        &api,
        &json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": t.name, "labels": {"e2e.kluctl-gitops/ns": t.name}},
            "spec": {"interval": "10m", "url": url, "ref": {"branch": "main"}},
        }),
    )
    .await?;
    Ok(api)
}

/// `object.reason` (kube-runtime's why: "object updated", "related object updated", ...) of
/// the full reconcile `reconcile_id`, waiting for its last log line.
fn reconcile_trigger(ctl: &mut KluctlController, reconcile_id: &str) -> anyhow::Result<String> {
    let id = reconcile_id.to_owned();
    ctl.wait_for_log(&format!("the end of reconcile {reconcile_id}"), WAIT, move |l| {
        (log_value(l, "reconcileID").as_deref() == Some(id.as_str())
            && log_value(l, "msg").is_some_and(|m| m.starts_with(FINISHED)))
        .then(|| log_value(l, "object.reason").unwrap_or_default())
    })
}

/// The reconcile ids of the full reconciles the controller has finished so far.
fn finished_reconciles(ctl: &KluctlController) -> BTreeSet<String> {
    ctl.log_lines()
        .iter()
        .filter(|l| log_value(l, "msg").is_some_and(|m| m.starts_with(FINISHED)))
        .filter_map(|l| log_value(l, "reconcileID"))
        .collect()
}

#[tokio::test]
async fn a_gitrepository_artifact_deploys_and_its_next_revision_redeploys_through_the_watch()
-> anyhow::Result<()> {
    TestNs::run("kd_src_gitrepo", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            let first = repo.commit(&refs(&project("deploy/app", "one")), "one")?;
            let source = SourceController::start(&t.env, &ns, &[])?;
            let git_api = git_repository(&t, "project", &repo).await?;
            wait_for(
                &git_api,
                "project",
                "GitRepository Ready=True",
                WAIT,
                ready_is("True"),
            )
            .await
            .with_context(|| source.log_tail(30))?;
            let mut ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &api,
                "app",
                source_ref_spec("GitRepository", "project", "deploy/app", &ns, &json!({})),
            )
            .await?;

            let deployed = kd::wait_ready(&api, &ctl, "app", "True", "ReconciliationSucceeded").await?;
            let s = kd::status(&deployed);
            assert_eq!(
                s.observed_commit, first,
                "status.observedCommit: the artifact's commit"
            );
            let summary = s.last_deploy_result.clone().context("status.lastDeployResult")?;
            assert_eq!(summary.git_info.commit, first, "lastDeployResult.gitInfo.commit");
            assert_eq!(summary.new_objects, 1, "{summary:#?}");
            let key = s.project_key.clone().context("status.projectKey")?;
            assert!(
                key.repo_key.ends_with(&format!("/git/{}", repo.name)) && key.sub_dir == "deploy/app",
                "projectKey of the GitRepository's URL and spec.path: {key:?}"
            );
            assert_eq!(message(&t.client, &ns, "app-main").await?.as_deref(), Some("one"));

            // A new commit: the GitRepository publishes a new artifact, and the watch of it is the
            // only thing that can make the controller deploy again within the hour.
            let second = repo.commit(&refs(&project("deploy/app", "two")), "two")?;
            let artifact = request_reconcile(&git_api, "project", "second-commit", WAIT).await?;
            let revision = e2e::source::artifact(&artifact).map(|a| a.revision);
            assert_eq!(revision, Some(format!("main@sha1:{second}")), "the new artifact");
            let want = second.clone();
            let redeployed = kd::wait(&api, &ctl, "app", "the deploy of the second commit", move |k| {
                kd::deployed_commit(k, &want) && kd::ready_is(k, "True", "ReconciliationSucceeded")
            })
            .await?;
            assert_eq!(
                redeployed.metadata.generation, deployed.metadata.generation,
                "no spec change"
            );
            let s = kd::status(&redeployed);
            assert_eq!(s.observed_commit, second);
            let summary = s.last_deploy_result.context("status.lastDeployResult")?;
            assert_eq!(summary.changed_objects, 1, "{summary:#?}");
            assert_eq!(message(&t.client, &ns, "app-main").await?.as_deref(), Some("two"));
            let trigger = reconcile_trigger(&mut ctl, &summary.reconcile_id)?;
            assert_eq!(
                trigger,
                format!("related object updated: GitRepository.v1.source.toolkit.fluxcd.io/project.{ns}"),
                "the redeploy was triggered by the GitRepository watch"
            );
            Ok(())
        })
    })
    .await
}

/// boto3 through `e2e/scripts/s3ctl.py` with the e2e environment's endpoint and keys (as
/// `source_bucket.rs` fills buckets).
struct S3 {
    python: String,
    vars: Vec<(String, String)>,
}

impl S3 {
    fn new(t: &TestNs) -> anyhow::Result<Self> {
        let mut vars = Vec::new();
        for k in ["E2E_S3_ENDPOINT", "E2E_S3_ACCESS_KEY", "E2E_S3_SECRET_KEY"] {
            vars.push((k.to_owned(), t.env.get(k)?.to_owned()));
        }
        Ok(S3 {
            python: t.env.get("E2E_PYTHON")?.to_owned(),
            vars,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(project_root().join("e2e/scripts/s3ctl.py"))
            .args(args)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("REQUESTS_CA_BUNDLE");
        cmd
    }

    fn put(&self, bucket: &str, key: &str, data: &str) -> anyhow::Result<()> {
        let mut child = self
            .command(&["put", bucket, key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} (boto3 venv from 'make e2e-up')", self.python))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(data.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "s3ctl.py put {bucket} {key} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// Removes the keys under a prefix of the shared scratch bucket when dropped.
struct RemovePrefix(Command);

impl Drop for RemovePrefix {
    fn drop(&mut self) {
        let ok = self
            .0
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: cleanup {:?} failed", self.0);
        }
    }
}

#[tokio::test]
async fn a_bucket_artifact_deploys_and_a_changed_object_redeploys_through_the_watch() -> anyhow::Result<()> {
    TestNs::run("kd_src_bucket", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let s3 = S3::new(&t)?;
            // The shared scratch bucket, under a prefix of this test's own.
            let bucket = t.env.get("E2E_S3_BUCKET")?.to_owned();
            let prefix = format!("{ns}/");
            let _cleanup = RemovePrefix(s3.command(&["rmprefix", &bucket, &prefix]));
            for (key, data) in project(&format!("{ns}/project"), "one") {
                s3.put(&bucket, &key, &data)?;
            }
            let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &ns);
            let creds = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s3", "namespace": ns},
                "stringData": {"accesskey": t.env.get("E2E_S3_ACCESS_KEY")?,
                               "secretkey": t.env.get("E2E_S3_SECRET_KEY")?},
            });
            secrets
                .patch("s3", &PatchParams::apply("e2e").force(), &Patch::Apply(&creds))
                .await?;
            let source = SourceController::start(&t.env, &ns, &[])?;
            let buckets: Api<Bucket> = Api::namespaced(t.client.clone(), &ns);
            apply(
                &buckets,
                &json!({
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "Bucket",
                    "metadata": {"name": "project", "namespace": ns, "labels": {"e2e.kluctl-gitops/ns": ns}},
                    "spec": {"interval": "10m", "provider": "generic", "insecure": true,
                             "bucketName": bucket, "endpoint": t.env.get("E2E_S3_ENDPOINT")?,
                             "secretRef": {"name": "s3"}, "prefix": prefix},
                }),
            )
            .await?;
            let first = wait_for(&buckets, "project", "Bucket Ready=True", WAIT, ready_is("True"))
                .await
                .with_context(|| source.log_tail(30))?;
            let first = e2e::source::artifact(&first).context("the Bucket has no artifact")?;

            let mut ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            // The artifact keeps the keys' prefix: the project is at <ns>/project inside it.
            kd::apply(
                &api,
                "app",
                source_ref_spec("Bucket", "project", &format!("{ns}/project"), &ns, &json!({})),
            )
            .await?;
            let deployed = kd::wait_ready(&api, &ctl, "app", "True", "ReconciliationSucceeded").await?;
            let s = kd::status(&deployed);
            // A Bucket revision names no commit: it is the revision itself.
            assert_eq!(s.observed_commit, first.revision, "status.observedCommit");
            assert_eq!(message(&t.client, &ns, "app-main").await?.as_deref(), Some("one"));

            // One object changes: a new artifact revision, redeployed through the Bucket watch.
            s3.put(
                &bucket,
                &format!("{ns}/project/app/configmap.yaml"),
                &project("", "two")[2].1,
            )?;
            let second = request_reconcile(&buckets, "project", "changed-object", WAIT).await?;
            let second = e2e::source::artifact(&second).context("the Bucket has no artifact")?;
            assert_ne!(
                second.revision, first.revision,
                "the changed object makes a new revision"
            );
            let want = second.revision.clone();
            let redeployed = kd::wait(
                &api,
                &ctl,
                "app",
                "the deploy of the new Bucket revision",
                move |k| {
                    kd::status(k).observed_commit == want
                        && kd::ready_is(k, "True", "ReconciliationSucceeded")
                },
            )
            .await?;
            assert_eq!(redeployed.metadata.generation, deployed.metadata.generation);
            let summary = kd::status(&redeployed)
                .last_deploy_result
                .context("status.lastDeployResult")?;
            assert_eq!(summary.changed_objects, 1, "{summary:#?}");
            assert_eq!(message(&t.client, &ns, "app-main").await?.as_deref(), Some("two"));
            let trigger = reconcile_trigger(&mut ctl, &summary.reconcile_id)?;
            assert_eq!(
                trigger,
                format!("related object updated: Bucket.v1.source.toolkit.fluxcd.io/project.{ns}"),
                "the redeploy was triggered by the Bucket watch"
            );
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn ten_deployments_of_one_repository_fetch_each_commit_once() -> anyhow::Result<()> {
    TestNs::run("kd_src_shared", |t| {
        Box::pin(async move {
            const N: usize = 10;
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            let first = repo.commit(&refs(&project("project", "one")), "one")?;
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            let names: Vec<String> = (0..N).map(|i| format!("app-{i}")).collect();

            let posts_before = upload_pack_posts(&t.env, &repo.name)?;
            for (i, name) in names.iter().enumerate() {
                kd::apply(
                    &api,
                    name,
                    json!({
                        "interval": "1h",
                        "source": {"git": {"url": url, "ref": {"branch": "main"}, "path": "project"}},
                        "target": "test",
                        "args": {"ns": ns, "id": format!("k{i}")},
                    }),
                )
                .await?;
            }
            for (i, name) in names.iter().enumerate() {
                let k = kd::wait_ready(&api, &ctl, name, "True", "ReconciliationSucceeded").await?;
                assert_eq!(kd::status(&k).observed_commit, first, "{name}");
                assert_eq!(
                    message(&t.client, &ns, &format!("app-k{i}")).await?.as_deref(),
                    Some("one")
                );
            }
            // Every reconcile lists the refs (one upload-pack POST with protocol v2: a new commit
            // must be seen); the commit is fetched (one more POST) once for all of them.
            let reconciles = finished_reconciles(&ctl).len();
            assert!(reconciles >= N, "{reconciles} reconciles of {N} objects");
            let posts = upload_pack_posts(&t.env, &repo.name)? - posts_before;
            assert_eq!(
                posts,
                reconciles + 1,
                "{reconciles} ref listings and one fetch for {N} KluctlDeployments of one commit"
            );

            // A new commit, all ten asked at once: again one fetch.
            let second = repo.commit(&refs(&project("project", "two")), "two")?;
            let (posts_before, seen) = (upload_pack_posts(&t.env, &repo.name)?, finished_reconciles(&ctl));
            let token = "second-commit";
            let request = json!({"requestValue": token}).to_string();
            for name in &names {
                let patch = json!({"metadata": {"annotations": {"kluctl.io/request-reconcile": request}}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            for (i, name) in names.iter().enumerate() {
                let want = second.clone();
                let k = kd::wait(
                    &api,
                    &ctl,
                    name,
                    "the second commit deployed by the request",
                    move |k| {
                        kd::request_result(k, "reconcile")
                            .is_some_and(|r| r.request.request_value == token && r.end_time.is_some())
                            && kd::status(k).observed_commit == want
                    },
                )
                .await?;
                assert!(
                    kd::ready_is(&k, "True", "ReconciliationSucceeded"),
                    "{name}: {:?}",
                    kd::ready(&k)
                );
                assert_eq!(
                    message(&t.client, &ns, &format!("app-k{i}")).await?.as_deref(),
                    Some("two")
                );
            }
            let reconciles = e2e::poll_for("the ten requested reconciles in the log", WAIT, || {
                let new = finished_reconciles(&ctl).difference(&seen).count();
                async move { Ok((new >= N).then_some(new)) }
            })
            .await?;
            let posts = upload_pack_posts(&t.env, &repo.name)? - posts_before;
            assert_eq!(
                posts,
                reconciles + 1,
                "{reconciles} ref listings and one fetch of the new commit for {N} KluctlDeployments"
            );
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn a_deleted_source_fails_with_artifact_failed_and_prunes_nothing() -> anyhow::Result<()> {
    TestNs::run("kd_src_deleted", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            repo.commit(&refs(&project("project", "one")), "one")?;
            let source = SourceController::start(&t.env, &ns, &[])?;
            let git_api = git_repository(&t, "project", &repo).await?;
            wait_for(
                &git_api,
                "project",
                "GitRepository Ready=True",
                WAIT,
                ready_is("True"),
            )
            .await
            .with_context(|| source.log_tail(30))?;
            let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            // prune: true, so a deploy of nothing would delete the ConfigMap.
            kd::apply(
                &api,
                "app",
                source_ref_spec(
                    "GitRepository",
                    "project",
                    "project",
                    &ns,
                    &json!({"prune": true}),
                ),
            )
            .await?;
            let deployed = kd::wait_ready(&api, &ctl, "app", "True", "ReconciliationSucceeded").await?;
            let deploy_id = kd::deploy_id(&deployed);

            // The source goes (its controller releases its finalizer); the watch of it brings
            // the KluctlDeployment back within its hour-long interval.
            git_api.delete("project", &DeleteParams::default()).await?;
            wait_gone(&git_api, "project", WAIT)
                .await
                .with_context(|| source.log_tail(30))?;
            let want = format!("Source 'GitRepository/{ns}/project' not found");
            let failed = kd::wait(
                &api,
                &ctl,
                "app",
                &format!("Ready=False (ArtifactFailed): {want}"),
                move |k| {
                    kd::ready_is(k, "False", "ArtifactFailed")
                        && kd::ready(k).is_some_and(|c| c.message == want)
                },
            )
            .await?;
            assert_eq!(kd::deploy_id(&failed), deploy_id, "no deploy without a source");
            assert_eq!(
                message(&t.client, &ns, "app-main").await?.as_deref(),
                Some("one"),
                "nothing pruned"
            );
            Ok(())
        })
    })
    .await
}

/// An HTTP server on 127.0.0.1 that answers every GET with `body` and counts the requests.
struct ArtifactServer {
    url: String,
    gets: Arc<AtomicUsize>,
}

impl ArtifactServer {
    fn start(body: Vec<u8>) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!(
            "http://{}/gitrepository/project/artifact.tar.gz",
            listener.local_addr()?
        );
        let gets = Arc::new(AtomicUsize::new(0));
        let count = gets.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                // The request head fits one read: a GET without a body.
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head);
                count.fetch_add(1, Ordering::SeqCst);
                let header = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(header.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        Ok(ArtifactServer { url, gets })
    }
}

/// A tar.gz of `files`, as a source-controller artifact.
fn tar_gz(files: &[(String, String)]) -> anyhow::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, path, content.as_bytes())?;
    }
    Ok(archive.into_inner()?.finish()?)
}

#[tokio::test]
async fn an_artifact_with_a_wrong_digest_fails_with_artifact_failed_and_deploys_nothing() -> anyhow::Result<()>
{
    TestNs::run("kd_src_digest", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let body = tar_gz(&project("project", "one"))?;
            let actual = format!("sha256:{}", gitops_api::revision::lower_hex(&sha2::Sha256::digest(&body)));
            let wrong = format!("sha256:{}", gitops_api::revision::lower_hex(&sha2::Sha256::digest(b"other")));
            let server = ArtifactServer::start(body)?;
            // No source-controller: the test writes the GitRepository's status itself (no label,
            // so no other test's source-controller takes it).
            let git_api: Api<GitRepository> = Api::namespaced(t.client.clone(), &ns);
            apply(
                &git_api,
                &json!({
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "GitRepository",
                    "metadata": {"name": "project", "namespace": ns},
                    "spec": {"interval": "10m", "url": "http://git.example.invalid/project.git"},
                }),
            )
            .await?;
            let commit = "0123456789abcdef0123456789abcdef01234567";
            let artifact = |digest: &str| {
                json!({"status": {"artifact": {
                    "digest": digest,
                    "lastUpdateTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "path": format!("gitrepository/{ns}/project/artifact.tar.gz"),
                    "revision": format!("main@sha1:{commit}"),
                    "url": server.url,
                }}})
            };
            git_api
                .patch_status("project", &PatchParams::default(), &Patch::Merge(artifact(&wrong)))
                .await?;

            let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &api,
                "app",
                source_ref_spec("GitRepository", "project", "project", &ns, &json!({})),
            )
            .await?;
            let failed = kd::wait(&api, &ctl, "app", "Ready=False (ArtifactFailed)", |k| {
                kd::reconciled(k) && kd::ready_is(k, "False", "ArtifactFailed")
            })
            .await?;
            let text = kd::ready(&failed).map(|c| c.message.clone()).unwrap_or_default();
            for want in [
                format!("'{}'", server.url),
                format!("is '{wrong}'"),
                format!("hash to '{actual}'"),
            ] {
                assert!(text.contains(&want), "the Ready message must contain {want:?}: {text:?}");
            }
            assert!(server.gets.load(Ordering::SeqCst) >= 1, "the artifact was downloaded");
            assert_eq!(kd::deploy_id(&failed), None, "nothing deployed");
            assert_eq!(message(&t.client, &ns, "app-main").await?, None, "nothing deployed");

            // The same bytes with their true digest: the watch sees a new artifact, and they deploy.
            git_api
                .patch_status("project", &PatchParams::default(), &Patch::Merge(artifact(&actual)))
                .await?;
            let deployed = kd::wait_ready(&api, &ctl, "app", "True", "ReconciliationSucceeded").await?;
            assert_eq!(kd::status(&deployed).observed_commit, commit);
            assert_eq!(message(&t.client, &ns, "app-main").await?.as_deref(), Some("one"));
            Ok(())
        })
    })
    .await
}
