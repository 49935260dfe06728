//! `kluctl get sources|deployments`, `kluctl events`, `kluctl trace` and `kluctl tree` against
//! the real apiserver, with a source-controller and a kluctl-controller of the test: a
//! GitRepository of the local git server and a KluctlDeployment with `sourceRef` deploying one
//! ConfigMap; the `kluctl` binary is run as a user runs it and its output is checked.
//!
//! Needs `cargo build -p kluctl --bin kluctl -p kluctl-controller --bin kluctl-controller
//! -p source-controller --bin source-controller` and the environment of `make e2e-up`.

// The test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use e2e::kluctl_deployment as kd;
use e2e::source::{apply, ready_is};
use e2e::{ChildLog, GitRepo, KluctlController, SourceController, TestNs, kluctl_bin, poll_for, wait_for};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::source::v1::GitRepository;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// A Kluctl project deploying ConfigMap `app-main` into namespace `<args.ns>`, discriminator
/// `e2e-<ns>-get`.
fn project() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "deploy/app/.kluctl.yaml",
            "discriminator: e2e-{{ args.ns }}-get\nargs:\n  - name: ns\ntargets:\n  - name: test\n",
        ),
        ("deploy/app/deployment.yaml", "deployments:\n  - path: app\n"),
        (
            "deploy/app/app/configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-main\n  namespace: '{{ args.ns }}'\ndata:\n  message: hello\n",
        ),
    ]
}

/// Runs `kluctl <args>` to its end: exit code, stdout, stderr.
fn kluctl(args: &[&str]) -> anyhow::Result<(Option<i32>, String, String)> {
    kluctl_in(Path::new("."), args)
}

/// Runs `kluctl <args>` in `dir` to its end: exit code, stdout, stderr.
fn kluctl_in(dir: &Path, args: &[&str]) -> anyhow::Result<(Option<i32>, String, String)> {
    let out = e2e::run_kluctl(dir, args, &[])?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `kluctl <args>`, which must succeed; its stdout.
fn kluctl_ok(args: &[&str]) -> anyhow::Result<String> {
    let (code, stdout, stderr) = kluctl(args)?;
    anyhow::ensure!(
        code == Some(0),
        "kluctl {args:?} exited with {code:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    Ok(stdout)
}

/// The whitespace-separated cells of the line of `stdout` whose first cell is `first`.
fn row(stdout: &str, first: &str) -> Option<Vec<String>> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(first))
}

#[tokio::test]
async fn get_events_trace_and_tree_show_the_controllers_objects() -> anyhow::Result<()> {
    TestNs::run("kluctl_get", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            let commit = repo.commit(&project(), "one")?;
            let revision = format!("main@sha1:{commit}");
            let source = SourceController::start(&t.env, &ns, &[])?;
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
            wait_for(&git_api, "project", "GitRepository Ready=True", WAIT, ready_is("True"))
                .await
                .with_context(|| source.log_tail(30))?;
            let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &api,
                "app",
                json!({
                    "interval": "1h",
                    "sourceRef": {"kind": "GitRepository", "name": "project"},
                    "path": "deploy/app",
                    "target": "test",
                    "args": {"ns": ns},
                }),
            )
            .await?;
            kd::wait_ready(&api, &ctl, "app", "True", "ReconciliationSucceeded").await?;

            // get sources: both kinds named kind/name, or one kind by plain name.
            let out = kluctl_ok(&["get", "sources", "-n", &ns])?;
            let cells = row(&out, "gitrepository/project").with_context(|| out.clone())?;
            assert_eq!(cells[1], revision, "REVISION: {out}");
            assert_eq!(&cells[2..4], ["False", "True"], "SUSPENDED, READY: {out}");
            assert!(out.starts_with("NAME "), "{out}");
            let out = kluctl_ok(&["get", "sources", "git", "-n", &ns])?;
            assert_eq!(row(&out, "project").with_context(|| out.clone())?[1], revision, "{out}");
            let out = kluctl_ok(&["get", "sources", "bucket", "-n", &ns])?;
            assert!(row(&out, "project").is_none(), "no Buckets: {out}");

            // get deployments (and its alias kd): the deployed commit, Ready.
            for cmd in ["deployments", "kd"] {
                let out = kluctl_ok(&["get", cmd, "-n", &ns])?;
                let cells = row(&out, "app").with_context(|| out.clone())?;
                assert_eq!(cells[1], commit, "REVISION is the deployed commit: {out}");
                assert_eq!(&cells[2..4], ["False", "True"], "{out}");
            }
            // -A: the namespace comes first.
            let out = kluctl_ok(&["get", "deployments", "-A"])?;
            assert!(out.starts_with("NAMESPACE "), "{out}");
            let cells = row(&out, &ns).with_context(|| out.clone())?;
            assert_eq!(cells[1..3], ["app".to_owned(), commit.clone()], "{out}");

            // events: both controllers' events (the order is unit-tested); --for one object.
            let out = poll_for("the events of both controllers", WAIT, || async {
                let out = kluctl_ok(&["events", "-n", &ns])?;
                Ok((out.contains("GitRepository/project") && out.contains("KluctlDeployment/app"))
                    .then_some(out))
            })
            .await?;
            assert!(out.starts_with("LAST SEEN "), "{out}");
            let out = kluctl_ok(&["events", "-n", &ns, "--for", "kd/app"])?;
            assert!(out.contains("KluctlDeployment/app"), "{out}");
            assert!(!out.contains("GitRepository/"), "only the KluctlDeployment's: {out}");
            let (code, _, stderr) = kluctl(&["events", "-n", &ns, "--for", "pod/x"])?;
            assert_eq!(code, Some(1), "{stderr}");
            assert!(stderr.contains("unknown kind 'pod' in --for"), "{stderr}");

            // trace: the ConfigMap ─► the KluctlDeployment ─► the GitRepository and its revision.
            let out = kluctl_ok(&["trace", "configmap", "app-main", "-n", &ns])?;
            for want in [
                "Object:            configmap/app-main".to_owned(),
                format!("Discriminator:     e2e-{ns}-get"),
                "KluctlDeployment:  app".to_owned(),
                format!("Revision:          {commit}"),
                "GitRepository:     project".to_owned(),
                format!("URL:               {url}"),
                "Branch:            main".to_owned(),
                format!("Revision:          {revision}"),
            ] {
                assert!(out.lines().any(|l| l == want), "missing '{want}' in:\n{out}");
            }
            // An object without the discriminator label: no KluctlDeployment manages it.
            let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
            let mut plain = ConfigMap::default();
            plain.metadata.name = Some("plain".into());
            cms.create(&PostParams::default(), &plain).await?;
            let (code, stdout, stderr) = kluctl(&["trace", "cm", "plain", "-n", &ns])?;
            assert_eq!(code, Some(1), "{stdout}{stderr}");
            assert!(
                stderr.contains(&format!(
                    "ConfigMap '{ns}/plain' has no 'kluctl.io/discriminator' label: no KluctlDeployment manages it"
                )),
                "{stderr}"
            );
            // An object the kluctl CLI deployed: its newest stored deploy result names it.
            let cli = tempfile::tempdir()?;
            for (path, content) in [
                (".kluctl.yaml", format!("discriminator: e2e-{ns}-cli\ntargets:\n  - name: test\n")),
                ("deployment.yaml", "deployments:\n  - path: app\n".to_owned()),
                (
                    "app/configmap.yaml",
                    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cli-cm\n  namespace: {ns}\n"),
                ),
            ] {
                let file = cli.path().join(path);
                fs_err::create_dir_all(file.parent().context("parent")?)?;
                fs_err::write(&file, content)?;
            }
            let (code, stdout, stderr) =
                kluctl_in(cli.path(), &["deploy", "-y", "-t", "test", "--command-result-namespace", &ns])?;
            assert_eq!(code, Some(0), "kluctl deploy: {stdout}{stderr}");
            let out = kluctl_ok(&["trace", "configmap", "cli-cm", "-n", &ns, "--command-result-namespace", &ns])?;
            for want in [
                "Status:            Managed by the kluctl CLI",
                "Command:           deploy",
                "Initiator:         kluctl CLI",
                "Target:            test",
            ] {
                assert!(out.lines().any(|l| l == want), "missing '{want}' in:\n{out}");
            }
            let (code, _, stderr) = kluctl(&["trace", "nosuchkind", "x", "-n", &ns])?;
            assert_eq!(code, Some(1));
            assert!(stderr.contains("does not serve a kind named 'nosuchkind'"), "{stderr}");

            // tree: the deployed objects under the namespace and kind.
            let out = kluctl_ok(&["tree", "deployment", "app", "-n", &ns])?;
            assert!(
                out.starts_with(&format!("KluctlDeployment/app (namespace {ns}, discriminator e2e-{ns}-get)\n")),
                "{out}"
            );
            assert!(out.contains(&format!("Namespace/{ns}\n")), "{out}");
            assert!(out.contains("── ConfigMap\n") && out.contains("── app-main\n"), "{out}");
            assert!(
                !out.contains("plain") && !out.contains("cli-cm"),
                "objects of other owners: {out}"
            );

            // get deployments -w: the table, then a line per change (here: suspended).
            let mut command = Command::new(kluctl_bin()?);
            // Every KLUCTL_* variable is a flag: none of the caller's may steer this run.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("KLUCTL_") {
                    command.env_remove(&key);
                }
            }
            let mut child = command
                .args(["get", "deployments", "-n", &ns, "-w"])
                .env("KUBECONFIG", t.env.get("E2E_KUBECONFIG_ADMIN")?)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let logs = tempfile::tempdir()?;
            let stdout = ChildLog::follow(child.stdout.take().context("stdout")?, &logs.path().join("out"))?;
            let watched = (|| {
                stdout.wait_for("the table", WAIT, |l| l.starts_with("app ").then_some(()))?;
                Ok::<_, anyhow::Error>(())
            })();
            let suspended = async {
                watched?;
                api.patch("app", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}})))
                    .await?;
                stdout.wait_for("a line of the suspended KluctlDeployment", WAIT, |l| {
                    let cells: Vec<&str> = l.split_whitespace().collect();
                    (cells.first() == Some(&"app") && cells.get(2) == Some(&"True")).then_some(())
                })
            }
            .await;
            let _ = child.kill();
            let _ = child.wait();
            suspended?;
            Ok(())
        })
    })
    .await
}
