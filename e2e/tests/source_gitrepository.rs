//! source-controller end to end: the real binary reconciles GitRepository objects on the real
//! apiserver against repositories on the real git HTTP server.

// Each test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use e2e::source::{apply, ready, ready_is};
use e2e::{
    GitRepo, SourceController, TestNs, WebhookSink, fetch_artifact_files, poll_until, upload_pack_posts,
    wait_for,
};
use gitops_api::conditions::{self, reasons, types};
use gitops_api::source::v1::GitRepository;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn manifest(ns: &str, name: &str, url: &str, extra_spec: &serde_json::Value) -> serde_json::Value {
    let mut spec = json!({"interval": "10m", "url": url, "ref": {"branch": "main"}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": ns, "labels": {"e2e.kluctl-gitops/ns": ns}},
        "spec": spec,
    })
}

/// Sets `reconcile.fluxcd.io/requestedAt` and waits until the controller has handled it.
async fn request_reconcile(
    api: &Api<GitRepository>,
    name: &str,
    token: &str,
) -> anyhow::Result<GitRepository> {
    e2e::source::request_reconcile(api, name, token, WAIT).await
}

/// A test repository with one commit of `app.yaml`, a controller for the test namespace started
/// with `flags`, and the GitRepository API of that namespace.
struct Setup {
    repo: GitRepo,
    sha: String,
    ctl: SourceController,
    api: Api<GitRepository>,
}

fn setup(t: &TestNs, message: &str, flags: &[&str]) -> anyhow::Result<Setup> {
    let repo = GitRepo::create(&t.env, &t.name)?;
    let sha = repo.commit(&[("app.yaml", "a: 1\n")], message)?;
    let ctl = SourceController::start(&t.env, &t.name, flags)?;
    let api: Api<GitRepository> = Api::namespaced(t.client.clone(), &t.name);
    Ok(Setup { repo, sha, ctl, api })
}

async fn events_with_reason(t: &TestNs, name: &str, reason: &str) -> anyhow::Result<Vec<String>> {
    e2e::source::event_messages(&t.client, &t.name, name, reason).await
}

#[tokio::test]
async fn http_repository_produces_exact_revisions_verifiable_artifacts_and_no_clone_when_unchanged()
-> anyhow::Result<()> {
    TestNs::run("src_git_http", |t| async move {
        let repo = GitRepo::create(&t.env, &t.name)?;
        let first = repo.commit(
            &[
                ("deploy/app.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
                ("README.md", "hello\n"),
                ("logo.png", "not really a png\n"),
                (".github/workflows/ci.yml", "on: push\n"),
            ],
            "first commit",
        )?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<GitRepository> = Api::namespaced(t.client.clone(), &t.name);
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        apply(&api, &manifest(&t.name, "app", &url, &json!({}))).await?;
        let obj = wait_for(&api, "app", "Ready=True", WAIT, ready_is("True"))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\n--- controller log:\n{}", ctl.log_tail(30)))?;

        // Revision, path and URL exactly as Flux writes them.
        let artifact = obj
            .status
            .as_ref()
            .and_then(|s| s.artifact.clone())
            .expect("artifact");
        assert_eq!(artifact.revision, format!("main@sha1:{first}"));
        assert_eq!(
            artifact.path,
            format!("gitrepository/{}/app/{first}.tar.gz", t.name)
        );
        assert_eq!(
            artifact.url,
            format!("http://{}/{}", ctl.storage_addr()?, artifact.path)
        );
        assert_eq!(
            ready(&obj),
            (
                "True".into(),
                reasons::SUCCEEDED.into(),
                format!("stored artifact for revision 'main@sha1:{first}'")
            )
        );
        assert_eq!(
            obj.status.as_ref().and_then(|s| s.observed_generation),
            obj.metadata.generation
        );

        // A Flux-style consumer: GET, verify digest, safe untar; files = ls-tree minus default ignores.
        let files = fetch_artifact_files(&artifact.url, &artifact.digest).await?;
        let expected: Vec<String> = repo
            .ls_tree("HEAD")?
            .into_iter()
            // Flux's default pattern `*.png` is case-sensitive, so this comparison is too.
            .filter(|f| {
                #[allow(clippy::case_sensitive_file_extension_comparisons)]
                let png = f.ends_with(".png");
                !png && !f.starts_with(".github/")
            })
            .collect();
        assert_eq!(files, expected);

        // kubectl wait works on our conditions.
        t.env.kubectl(&[
            "wait",
            "--for=condition=Ready",
            "gitrepository/app",
            "-n",
            &t.name,
            "--timeout=20s",
        ])?;

        // Unchanged remote: one ls-refs request, no fetch, no new file.
        let posts_before = upload_pack_posts(&t.env, &repo.name)?;
        let files_before =
            fs_err::read_dir(ctl.storage_dir.join(format!("gitrepository/{}/app", t.name)))?.count();
        let obj = request_reconcile(&api, "app", "noop-1").await?;
        assert_eq!(
            obj.status
                .as_ref()
                .and_then(|s| s.artifact.as_ref())
                .map(|a| a.revision.clone()),
            Some(artifact.revision.clone())
        );
        assert_eq!(
            upload_pack_posts(&t.env, &repo.name)? - posts_before,
            1,
            "an unchanged remote costs one ls-refs and no fetch"
        );
        let files_after =
            fs_err::read_dir(ctl.storage_dir.join(format!("gitrepository/{}/app", t.name)))?.count();
        assert_eq!(files_before, files_after, "no new file written");

        // New commit: new artifact, NewArtifact event, old artifacts garbage-collected down to 2.
        let second = repo.commit(
            &[("deploy/app.yaml", "apiVersion: v1\nkind: ConfigMap\ndata: {}\n")],
            "second commit",
        )?;
        let obj = request_reconcile(&api, "app", "new-commit-1").await?;
        let a2 = obj
            .status
            .as_ref()
            .and_then(|s| s.artifact.clone())
            .expect("artifact");
        assert_eq!(a2.revision, format!("main@sha1:{second}"));
        assert_ne!(a2.digest, artifact.digest);
        let third = repo.commit(&[("more.yaml", "x: 1\n")], "third commit")?;
        let obj = request_reconcile(&api, "app", "new-commit-2").await?;
        assert_eq!(
            obj.status
                .as_ref()
                .and_then(|s| s.artifact.as_ref())
                .map(|a| a.revision.clone()),
            Some(format!("main@sha1:{third}"))
        );
        let _ = request_reconcile(&api, "app", "gc-1").await?;
        let dir = ctl.storage_dir.join(format!("gitrepository/{}/app", t.name));
        let archives: Vec<String> = fs_err::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tar.gz"))
            .collect();
        assert_eq!(
            archives.len(),
            2,
            "retention records=2 keeps two archives: {archives:?}"
        );
        assert!(
            !archives.contains(&format!("{first}.tar.gz")),
            "the oldest artifact was collected"
        );
        let new_artifact = events_with_reason(&t, "app", reasons::NEW_ARTIFACT).await?;
        assert!(
            new_artifact
                .iter()
                .any(|m| m == "stored artifact for commit 'second commit'"),
            "NewArtifact events name the commit subject: {new_artifact:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn failures_keep_the_previous_artifact_and_name_the_cause() -> anyhow::Result<()> {
    TestNs::run("src_git_fail", |t| async move {
        let Setup { repo, sha, ctl, api } = setup(&t, "initial", &[])?;
        let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &t.name);
        let put_secret = |password: String| {
            let secrets = secrets.clone();
            let user = t.env.get("E2E_GIT_USERNAME").map(str::to_string);
            async move {
                let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-auth"},
                               "stringData": {"username": user?, "password": password}});
                secrets
                    .patch("git-auth", &PatchParams::apply("e2e").force(), &Patch::Apply(&s))
                    .await?;
                anyhow::Ok(())
            }
        };
        put_secret(t.env.get("E2E_GIT_PASSWORD")?.to_string()).await?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_AUTH_URL")?, repo.name);
        apply(
            &api,
            &manifest(&t.name, "auth", &url, &json!({"secretRef": {"name": "git-auth"}})),
        )
        .await?;
        let obj = wait_for(&api, "auth", "Ready=True", WAIT, ready_is("True"))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\n--- controller log:\n{}", ctl.log_tail(30)))?;
        let artifact = obj
            .status
            .as_ref()
            .and_then(|s| s.artifact.clone())
            .expect("artifact");
        assert_eq!(artifact.revision, format!("main@sha1:{sha}"));

        // Wrong password: AuthenticationFailed, old artifact kept and still served, no secret in status.
        put_secret("definitely-wrong".into()).await?;
        repo.commit(&[("app.yaml", "a: 2\n")], "change")?;
        let obj = request_reconcile(&api, "auth", "wrong-password").await?;
        let (st, reason, message) = ready(&obj);
        assert_eq!(
            (st.as_str(), reason.as_str()),
            ("False", reasons::AUTHENTICATION_FAILED),
            "{message}"
        );
        assert!(
            !message.contains("definitely-wrong"),
            "no secret in the message: {message}"
        );
        let status_json = serde_json::to_string(&obj.status)?;
        assert!(
            !status_json.contains("definitely-wrong")
                && !status_json.contains(t.env.get("E2E_GIT_PASSWORD")?)
        );
        assert_eq!(
            obj.status.as_ref().and_then(|s| s.artifact.clone()),
            Some(artifact.clone()),
            "previous artifact kept"
        );
        fetch_artifact_files(&artifact.url, &artifact.digest).await?;
        let warnings = events_with_reason(&t, "auth", reasons::AUTHENTICATION_FAILED).await?;
        assert!(!warnings.is_empty(), "a warning event names the failure");
        // The controller logs the failure with its reason, and never the password.
        let log = ctl.log_tail(10_000);
        assert!(
            log.lines().any(|l| l.contains("reconciliation failed")
                && l.contains("name=\"auth\"")
                && l.contains(reasons::AUTHENTICATION_FAILED)),
            "an error line names the object and the reason:\n{log}"
        );
        assert!(
            !log.contains("definitely-wrong") && !log.contains(t.env.get("E2E_GIT_PASSWORD")?),
            "no secret in the log"
        );

        // Missing secret.
        apply(
            &api,
            &manifest(
                &t.name,
                "nosecret",
                &url,
                &json!({"secretRef": {"name": "does-not-exist"}}),
            ),
        )
        .await?;
        let obj = wait_for(&api, "nosecret", "Ready=False", WAIT, ready_is("False")).await?;
        let (_, reason, message) = ready(&obj);
        assert_eq!(reason, reasons::AUTHENTICATION_FAILED);
        assert!(message.contains("does-not-exist"), "{message}");

        // Bad URL and unsupported fields stall, naming the field, until the spec changes.
        apply(
            &api,
            &manifest(&t.name, "badurl", "https:///repo.git", &json!({})),
        )
        .await?;
        let obj = wait_for(&api, "badurl", "Ready=False", WAIT, ready_is("False")).await?;
        assert_eq!(ready(&obj).1, reasons::URL_INVALID);
        let conds = obj
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        assert!(conditions::is_true(&conds, types::STALLED));
        apply(
            &api,
            &manifest(&t.name, "submodules", &url, &json!({"recurseSubmodules": true})),
        )
        .await?;
        let obj = wait_for(&api, "submodules", "Ready=False", WAIT, ready_is("False")).await?;
        let (_, reason, message) = ready(&obj);
        assert_eq!(reason, reasons::UNSUPPORTED_CONFIGURATION);
        assert!(message.contains("spec.recurseSubmodules"), "{message}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn suspend_stops_reconciles_and_deletion_removes_storage() -> anyhow::Result<()> {
    TestNs::run("src_git_lifecycle", |t| async move {
        let Setup { repo, ctl, api, .. } = setup(&t, "initial", &[])?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        apply(&api, &manifest(&t.name, "life", &url, &json!({}))).await?;
        let obj = wait_for(&api, "life", "Ready=True", WAIT, ready_is("True")).await?;
        assert!(
            obj.metadata
                .finalizers
                .unwrap_or_default()
                .contains(&"finalizers.fluxcd.io".to_string())
        );
        let dir = ctl.storage_dir.join(format!("gitrepository/{}/life", t.name));
        assert!(dir.exists());

        // Suspended: a new commit and a request are recorded as handled but nothing is fetched.
        apply(&api, &manifest(&t.name, "life", &url, &json!({"suspend": true}))).await?;
        let posts = upload_pack_posts(&t.env, &repo.name)?;
        repo.commit(&[("app.yaml", "a: 2\n")], "while suspended")?;
        let obj = request_reconcile(&api, "life", "suspended-1").await?;
        assert_eq!(
            upload_pack_posts(&t.env, &repo.name)?,
            posts,
            "a suspended object is not fetched"
        );
        assert!(obj.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some());

        // Deletion removes the storage directory and the finalizer.
        api.delete("life", &kube::api::DeleteParams::default()).await?;
        let uid = obj.metadata.uid.clone().unwrap_or_default();
        wait_for(
            &api,
            "life",
            "deletion",
            WAIT,
            kube::runtime::wait::conditions::is_deleted(&uid),
        )
        .await
        .ok();
        assert!(
            api.get_opt("life").await?.is_none(),
            "object deleted (finalizer removed)"
        );
        assert!(!dir.exists(), "storage dir {} removed", dir.display());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn every_transport_yields_the_same_exact_revision() -> anyhow::Result<()> {
    TestNs::run("src_git_transports", |t| async move {
        let Setup { repo, sha, ctl, api } = setup(&t, "initial", &[])?;
        let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &t.name);
        let file = |var: &str| -> anyhow::Result<String> { Ok(fs_err::read_to_string(t.env.get(var)?)?) };
        let ca = file("E2E_TEST_CA")?;
        let repo_path = format!("{}.git", repo.name);
        // (object name, url, secret data). `git://` is not here: Flux's CRD pattern admits only
        // http, https and ssh URLs (the transport itself is covered by tests/source_git.rs).
        let cases = vec![
            ("https-ca", format!("{}/{repo_path}", t.env.get("E2E_GIT_HTTPS_URL")?), json!({"ca.crt": ca})),
            (
                "mtls",
                format!("{}/{repo_path}", t.env.get("E2E_GIT_MTLS_URL")?),
                json!({"ca.crt": ca, "tls.crt": file("E2E_TLS_CLIENT_CERT")?, "tls.key": file("E2E_TLS_CLIENT_KEY")?}),
            ),
            (
                "ssh",
                format!("{}/{repo_path}", t.env.get("E2E_GIT_SSH_URL")?),
                json!({"identity": file("E2E_SSH_IDENTITY")?, "known_hosts": file("E2E_SSH_KNOWN_HOSTS")?}),
            ),
        ];
        for (name, url, data) in &cases {
            let mut extra = json!({});
            if !data.is_null() {
                let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
                secrets.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&s)).await?;
                extra = json!({"secretRef": {"name": name}});
            }
            apply(&api, &manifest(&t.name, name, url, &extra)).await?;
        }
        for (name, url, _) in &cases {
            let obj = wait_for(&api, name, "Ready=True", WAIT, ready_is("True"))
                .await
                .map_err(|e| anyhow::anyhow!("{name} ({url}): {e:#}\n--- controller log:\n{}", ctl.log_tail(20)))?;
            let artifact = obj.status.as_ref().and_then(|s| s.artifact.clone()).expect("artifact");
            assert_eq!(artifact.revision, format!("main@sha1:{sha}"), "{name}");
            fetch_artifact_files(&artifact.url, &artifact.digest).await?;
        }

        // An unknown host key is refused, and the message does not leak the key.
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssh-wrong-host"},
                       "stringData": {"identity": file("E2E_SSH_IDENTITY")?, "known_hosts": file("E2E_SSH_KNOWN_HOSTS_WRONG")?}});
        secrets.patch("ssh-wrong-host", &PatchParams::apply("e2e").force(), &Patch::Apply(&s)).await?;
        let url = format!("{}/{repo_path}", t.env.get("E2E_GIT_SSH_URL")?);
        apply(&api, &manifest(&t.name, "ssh-unknown-host", &url, &json!({"secretRef": {"name": "ssh-wrong-host"}}))).await?;
        let obj = wait_for(&api, "ssh-unknown-host", "Ready=False", WAIT, ready_is("False")).await?;
        let (_, reason, message) = ready(&obj);
        assert!(
            reason == reasons::AUTHENTICATION_FAILED || reason == reasons::GIT_OPERATION_FAILED,
            "{reason}: {message}"
        );
        assert!(!message.contains("PRIVATE KEY"), "{message}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn events_are_posted_to_the_events_address_in_flux_format() -> anyhow::Result<()> {
    TestNs::run("src_git_events", |t| async move {
        let sink = WebhookSink::start()?;
        let Setup {
            repo,
            sha,
            api,
            ctl: _ctl,
        } = setup(&t, "notify me", &["--events-addr", &sink.url])?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        apply(&api, &manifest(&t.name, "notify", &url, &json!({}))).await?;
        let obj = wait_for(&api, "notify", "Ready=True", WAIT, ready_is("True")).await?;
        let artifact = obj
            .status
            .as_ref()
            .and_then(|s| s.artifact.clone())
            .expect("artifact");
        let event = sink
            .wait_for(Duration::from_secs(30), |e| e["reason"] == "NewArtifact")
            .await?;
        assert_eq!(event["severity"], "info");
        assert_eq!(event["involvedObject"]["kind"], "GitRepository");
        assert_eq!(event["involvedObject"]["name"], "notify");
        assert_eq!(event["involvedObject"]["namespace"], t.name.as_str());
        assert_eq!(event["message"], "stored artifact for commit 'notify me'");
        assert_eq!(
            event["metadata"]["source.toolkit.fluxcd.io/revision"],
            format!("main@sha1:{sha}").as_str()
        );
        assert_eq!(
            event["metadata"]["source.toolkit.fluxcd.io/digest"],
            artifact.digest.as_str()
        );
        assert_eq!(event["reportingController"], "source-controller");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn only_the_leader_serves_and_is_ready_and_a_standby_takes_over() -> anyhow::Result<()> {
    TestNs::run("src_leader", |t| async move {
        let repo = GitRepo::create(&t.env, &t.name)?;
        let sha = repo.commit(&[("app.yaml", "a: 1\n")], "initial")?;
        let flags = [
            "--enable-leader-election=true",
            "--runtime-namespace",
            t.name.as_str(),
            "--leader-election-lease-duration",
            "4s",
            "--leader-election-renew-deadline",
            "3s",
        ];
        let first = SourceController::start(&t.env, &t.name, &flags)?;
        poll_until("the first instance to become ready", WAIT, || async {
            first.readyz().await == 200
        })
        .await?;
        let second = SourceController::start(&t.env, &t.name, &flags)?;
        poll_until("the second instance to answer /readyz", WAIT, || async {
            second.readyz().await != 0
        })
        .await?;
        assert_eq!(second.readyz().await, 503, "a standby is live but not ready");
        assert!(
            first.serving() && !second.serving(),
            "only the leader serves artifacts"
        );

        let api: Api<GitRepository> = Api::namespaced(t.client.clone(), &t.name);
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        apply(&api, &manifest(&t.name, "led", &url, &json!({}))).await?;
        let obj = wait_for(&api, "led", "Ready=True", WAIT, ready_is("True")).await?;
        let a = obj
            .status
            .as_ref()
            .and_then(|s| s.artifact.clone())
            .expect("artifact");
        assert!(
            a.url.contains(&first.storage_addr()?),
            "the leader built the artifact"
        );

        drop(first);
        poll_until("the standby to take over", WAIT, || async {
            second.readyz().await == 200 && second.serving()
        })
        .await?;
        repo.commit(&[("app.yaml", "a: 2\n")], "after failover")?;
        let obj = request_reconcile(&api, "led", "after-failover").await?;
        let a = obj
            .status
            .as_ref()
            .and_then(|s| s.artifact.clone())
            .expect("artifact");
        assert!(
            a.url.contains(&second.storage_addr()?),
            "the new leader serves: {}",
            a.url
        );
        assert_ne!(a.revision, format!("main@sha1:{sha}"));
        fetch_artifact_files(&a.url, &a.digest).await?;
        Ok(())
    })
    .await
}

/// Empty storage (files deleted under a running controller, or a new pod's empty volume) is
/// rebuilt from the source: same revision, same digest, served again. Flux's source-controller
/// leaves such an object without a served artifact (fluxcd/source-controller#936); we keep the
/// rebuild.
#[tokio::test]
async fn empty_storage_is_rebuilt_with_the_same_revision_and_digest() -> anyhow::Result<()> {
    TestNs::run("src_git_rebuild", |t| async move {
        let Setup { repo, sha, ctl, api } = setup(&t, "initial", &[])?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        apply(&api, &manifest(&t.name, "app", &url, &json!({}))).await?;
        let obj = wait_for(&api, "app", "Ready=True", WAIT, ready_is("True"))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\n--- controller log:\n{}", ctl.log_tail(30)))?;
        let built = e2e::source::artifact(&obj).expect("artifact");
        assert_eq!(built.revision, format!("main@sha1:{sha}"));

        // The files go while the controller runs: the next run notices and rebuilds.
        fs_err::remove_dir_all(ctl.storage_dir.join("gitrepository"))?;
        let obj = request_reconcile(&api, "app", "files-deleted").await?;
        assert_eq!(ready(&obj).0, "True", "{:?}", ready(&obj));
        let rebuilt = e2e::source::wait_until_served(&api, "app", &built.digest, WAIT).await?;
        assert_eq!((&rebuilt.revision, &rebuilt.path), (&built.revision, &built.path));
        let lost = events_with_reason(&t, "app", reasons::ARTIFACT_VERIFICATION_FAILED).await?;
        assert!(
            lost.iter()
                .any(|m| m.contains(&built.path) && m.ends_with("rebuilding")),
            "the lost artifact is reported: {lost:?}"
        );

        // A restart on an empty storage path rebuilds without being asked.
        let storage_dir = ctl.storage_dir.clone();
        drop(ctl);
        fs_err::remove_dir_all(&storage_dir)?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let restarted = e2e::source::wait_until_served(&api, "app", &built.digest, WAIT)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\n--- controller log:\n{}", ctl.log_tail(30)))?;
        assert_eq!(restarted.revision, built.revision);
        assert!(
            restarted.url.contains(&ctl.storage_addr()?),
            "the new instance serves it: {}",
            restarted.url
        );
        assert!(ctl.storage_dir.join(&restarted.path).is_file());
        Ok(())
    })
    .await
}
