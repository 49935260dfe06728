//! `kluctl gitops ...` against the real apiserver, with the test playing the controller's side
//! of the protocol (no controller runs): it waits for the request annotation, checks the JSON
//! and the `overridesPatch` the CLI sent, writes `status.<x>RequestResult` (start, then end time
//! with a result id or a command error) and stores the command result with the engine's store;
//! then it checks what the CLI printed and its exit status. Also: suspend/resume waiting for
//! `observedGeneration`, the controller's log lines shown while a request runs, and
//! `gitops logs` reading a local controller's log file (selection by name, reconcile id, `--all`,
//! the local Git project, and `-f`).
//!
//! Needs the `kluctl` binary (`cargo build -p kluctl --bin kluctl`) and the cluster of
//! `make e2e-up` (with the KluctlDeployment CRD).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use e2e::{ChildLog, DeleteOnDrop, Env, TestNs, git, kluctl_bin, poll_for, unique_name};
use gitops_api::kluctl::v1beta1::{DeploymentError, KluctlDeployment, ManualRequest, ObjectRef};
use k8s_openapi::jiff::Timestamp;
use kluctl_engine::diff::{OutputOptions, format_text, obfuscate_result};
use kluctl_engine::result::{CommandResult, ResultBuilder};
use kluctl_engine::store;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A running `kluctl` with its stdout and stderr copied to files, killed when dropped.
struct Cli {
    child: Child,
    stdout: ChildLog,
    stderr: ChildLog,
    _logs: tempfile::TempDir,
}

impl Cli {
    /// Starts `kluctl <args>` in `dir` as `run_kluctl` runs it (admin kubeconfig, no inherited
    /// `KLUCTL_*` variables, stdin closed), with its output streamed so the test can wait for it.
    fn start(env: &Env, dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let mut command = Command::new(kluctl_bin()?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KLUCTL_") {
                command.env_remove(&key);
            }
        }
        let mut child = command
            .args(args)
            .current_dir(dir)
            .env("KUBECONFIG", env.get("E2E_KUBECONFIG_ADMIN")?)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start kluctl")?;
        let logs = tempfile::tempdir()?;
        let stdout = ChildLog::follow(
            child.stdout.take().context("stdout")?,
            &logs.path().join("stdout"),
        )?;
        let stderr = ChildLog::follow(
            child.stderr.take().context("stderr")?,
            &logs.path().join("stderr"),
        )?;
        Ok(Self {
            child,
            stdout,
            stderr,
            _logs: logs,
        })
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit; returns the exit code, stdout and stderr.
    async fn finish(mut self) -> anyhow::Result<(Option<i32>, String, String)> {
        let status = poll_for("kluctl to exit", WAIT, || {
            let status = self.child.try_wait();
            async move { Ok(status?) }
        })
        .await;
        let stderr = || fs_err::read_to_string(&self.stderr.path).unwrap_or_default();
        let status = status.with_context(|| format!("stderr so far:\n{}", stderr()))?;
        // The copying threads end with the pipes; wait for both to be drained.
        self.stdout.wait_for("end of stdout", WAIT, |_| None::<()>).ok();
        self.stderr.wait_for("end of stderr", WAIT, |_| None::<()>).ok();
        let stdout = fs_err::read_to_string(&self.stdout.path)?;
        Ok((status.code(), stdout, stderr()))
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates KluctlDeployment `name` in `ns` with `spec` (over a minimal valid one).
async fn create_kd(
    api: &Api<KluctlDeployment>,
    ns: &str,
    name: &str,
    spec: Value,
) -> anyhow::Result<KluctlDeployment> {
    let mut full =
        json!({"interval": "5m", "source": {"git": {"url": "https://git.example.com/org/app.git"}}});
    kluctl_engine::values::merge(&mut full, spec);
    let kd: KluctlDeployment = serde_json::from_value(json!({
        "apiVersion": "gitops.kluctl.io/v1beta1",
        "kind": "KluctlDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": full,
    }))?;
    Ok(api.create(&PostParams::default(), &kd).await?)
}

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The controller's pick-up of a request: waits for `annotation`, removes it (as the
/// controller does) and returns the request.
async fn pick_up(api: &Api<KluctlDeployment>, name: &str, annotation: &str) -> anyhow::Result<ManualRequest> {
    let raw = poll_for(&format!("annotation {annotation} on {name}"), WAIT, || async {
        let kd = api.get(name).await?;
        Ok(kd.metadata.annotations.and_then(|a| a.get(annotation).cloned()))
    })
    .await?;
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {annotation: null}}})),
    )
    .await?;
    serde_json::from_str(&raw)
        .with_context(|| format!("annotation {annotation} is not a ManualRequest: {raw}"))
}

/// Writes `status.<field>` (a ManualRequestResult) as the controller does.
async fn report(api: &Api<KluctlDeployment>, name: &str, field: &str, result: Value) -> anyhow::Result<()> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {field: result}})),
    )
    .await?;
    Ok(())
}

fn object(ns: &str, kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        version: "v1".into(),
        kind: kind.into(),
        name: name.into(),
        namespace: ns.into(),
        ..ObjectRef::default()
    }
}

/// A deploy result with one new ConfigMap, as the controller would store it.
fn deploy_result(id: &str, ns: &str, reconcile_id: &str) -> CommandResult {
    let cm = object(ns, "ConfigMap", "web-config");
    let mut b = ResultBuilder::new();
    b.set_rendered(
        &cm,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-config", "namespace": ns}, "data": {"a": "1"}}),
    );
    b.add_new(&cm);
    let mut r = CommandResult {
        id: id.into(),
        reconcile_id: reconcile_id.into(),
        ..CommandResult::default()
    };
    r.command.command = "deploy".into();
    b.finish(&mut r);
    r
}

/// A JSON controller log line of the current time.
fn log_line(ns: &str, name: &str, reconcile_id: &str, msg: &str, ts: &str) -> String {
    json!({"level": "info", "ts": ts, "msg": msg, "name": name, "namespace": ns,
        "reconcileID": reconcile_id, "controller": "kluctldeployment"})
    .to_string()
}

fn append(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = fs_err::OpenOptions::new().create(true).append(true).open(path)?;
    for l in lines {
        writeln!(f, "{l}")?;
    }
    Ok(())
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one request, step by step on both sides")]
async fn a_deploy_request_carries_only_the_given_overrides_and_prints_the_stored_result() -> anyhow::Result<()>
{
    TestNs::run("gitops_deploy", |t| async move {
        let ns = t.name.clone();
        let results = format!("{ns}-results");
        let _results = DeleteOnDrop::namespace(&t.env, &results);
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
        create_kd(
            &api,
            &ns,
            "app",
            json!({"images": [{"image": "nginx", "resultImage": "nginx:1"}],
                   "args": {"env": "prod", "db": {"host": "a", "port": 5432}}}),
        )
        .await?;
        let dir = tempfile::tempdir()?;
        let log_file = dir.path().join("controller.log");
        fs_err::write(&log_file, "")?;
        let log_arg = log_file.display().to_string();
        let cli = Cli::start(
            &t.env,
            dir.path(),
            &[
                "gitops",
                "deploy",
                "--name",
                "app",
                "-n",
                &ns,
                "--command-result-namespace",
                &results,
                "--dry-run",
                "-F",
                "busybox=busybox:2",
                "-a",
                "db.port=6543",
                "--timeout",
                "1m",
                "--controller-log-file",
                &log_arg,
            ],
        )?;

        let request = pick_up(&api, "app", "kluctl.io/request-deploy").await?;
        ensure!(
            request.request_value.parse::<Timestamp>().is_ok(),
            "requestValue is not an RFC 3339 time: {}",
            request.request_value
        );
        let patch = Value::Object(request.overrides_patch.clone().unwrap_or_default());
        ensure!(
            patch
                == json!({"spec": {
                    "dryRun": true,
                    "images": [{"image": "nginx", "resultImage": "nginx:1"},
                               {"image": "busybox", "resultImage": "busybox:2"}],
                    "args": {"env": "prod", "db": {"host": "a", "port": 6543}},
                }}),
            "overridesPatch: {patch}"
        );

        // Running: the controller's lines of this reconciliation appear on stderr meanwhile.
        let reconcile_id = unique_name("rec");
        let ts = now();
        append(
            &log_file,
            &[
                log_line(&ns, "app", &reconcile_id, "deploying 1 object", &ts),
                log_line(&ns, "app", "another-run", "line of another run", &ts),
                log_line(&ns, "other", &reconcile_id, "line of another object", &ts),
            ],
        )?;
        let request_json = serde_json::to_value(&request)?;
        report(
            &api,
            "app",
            "deployRequestResult",
            json!({"request": request_json, "startTime": now(), "reconcileId": reconcile_id}),
        )
        .await?;
        cli.stderr.wait_for("the controller's log line", WAIT, |l| {
            l.ends_with("info deploying 1 object").then_some(())
        })?;

        // Finished: the result is stored, its id reported.
        let id = unique_name("result");
        let result = deploy_result(&id, &ns, &reconcile_id);
        store::write_command_result(&t.client, &results, &result, 5).await?;
        report(
            &api,
            "app",
            "deployRequestResult",
            json!({"request": request_json, "startTime": now(), "endTime": now(),
                   "reconcileId": reconcile_id, "resultId": id}),
        )
        .await?;

        let (code, stdout, stderr) = cli.finish().await?;
        ensure!(
            code == Some(0),
            "exit {code:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        let mut stored = store::get_command_result(&t.client, &results, &id).await?;
        obfuscate_result(&mut stored)?;
        let local = format_text(&stored, &OutputOptions::default());
        ensure!(
            stdout == local,
            "printed as the local deploy prints:\n{stdout}\nwanted:\n{local}"
        );
        ensure!(
            stdout.contains(&format!("New objects:\n  {ns}/ConfigMap/web-config")),
            "{stdout}"
        );
        ensure!(
            !stderr.contains("another run") && !stderr.contains("another object"),
            "log lines of other runs and objects: {stderr}"
        );
        // The object's spec is untouched: the overrides were for this request only.
        let kd = api.get("app").await?;
        ensure!(
            !kd.spec.dry_run && kd.spec.images.len() == 1,
            "spec changed: {:?}",
            kd.spec
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn errors_in_the_result_and_a_command_error_exit_1_with_the_message() -> anyhow::Result<()> {
    TestNs::run("gitops_errors", |t| async move {
        let ns = t.name.clone();
        let results = format!("{ns}-results");
        let _results = DeleteOnDrop::namespace(&t.env, &results);
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
        create_kd(&api, &ns, "app", json!({})).await?;
        let dir = tempfile::tempdir()?;
        let log_arg = dir.path().join("none.log");
        fs_err::write(&log_arg, "")?;
        let log_arg = log_arg.display().to_string();
        let args = |cmd: &'static str| -> Vec<String> {
            ["gitops", cmd, "--name", "app", "-n", &ns, "--command-result-namespace", &results,
             "--controller-log-file", &log_arg]
                .map(str::to_owned)
                .to_vec()
        };

        // A prune whose result has an error: printed, then exit 1 with the report on stderr.
        let prune_args = args("prune");
        let cli = Cli::start(&t.env, dir.path(), &prune_args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let request = pick_up(&api, "app", "kluctl.io/request-prune").await?;
        ensure!(request.overrides_patch.is_none(), "no overrides given: {request:?}");
        let id = unique_name("prune");
        let mut r = CommandResult {
            id: id.clone(),
            ..CommandResult::default()
        };
        r.command.command = "prune".into();
        r.errors.push(DeploymentError {
            object_ref: object(&ns, "Service", "bad"),
            message: "failed to delete: forbidden".into(),
        });
        store::write_command_result(&t.client, &results, &r, 5).await?;
        report(
            &api,
            "app",
            "pruneRequestResult",
            json!({"request": request, "startTime": now(), "endTime": now(), "reconcileId": "r1", "resultId": id}),
        )
        .await?;
        let (code, stdout, stderr) = cli.finish().await?;
        ensure!(code == Some(1), "exit {code:?}\n{stderr}");
        ensure!(stdout.contains("Errors:") && stdout.contains(&format!("{ns}/Service/bad")), "{stdout}");
        ensure!(stderr.contains("error: prune failed with 1 error\n"), "{stderr}");
        ensure!(stderr.contains(&format!("  {ns}/Service/bad: failed to delete: forbidden")), "{stderr}");

        // A validate the controller could not run: its command error is the failure.
        let validate_args = args("validate");
        let cli = Cli::start(&t.env, dir.path(), &validate_args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let request = pick_up(&api, "app", "kluctl.io/request-validate").await?;
        report(
            &api,
            "app",
            "validateRequestResult",
            json!({"request": request, "startTime": now(), "endTime": now(), "reconcileId": "r2",
                   "commandError": "failed to clone 'https://git.example.com/org/app.git': not found"}),
        )
        .await?;
        let (code, stdout, stderr) = cli.finish().await?;
        ensure!(code == Some(1), "exit {code:?}\n{stderr}");
        ensure!(stdout.is_empty(), "{stdout}");
        ensure!(
            stderr.contains(&format!(
                "error: the controller failed the validate request of '{ns}/app': failed to clone 'https://git.example.com/org/app.git': not found"
            )),
            "{stderr}"
        );

        // Nobody answers: the wait gives up with a hint.
        let mut quick = args("diff");
        quick.extend(["--timeout".to_owned(), "2s".to_owned()]);
        let cli = Cli::start(&t.env, dir.path(), &quick.iter().map(String::as_str).collect::<Vec<_>>())?;
        let (code, _, stderr) = cli.finish().await?;
        ensure!(code == Some(1), "exit {code:?}\n{stderr}");
        ensure!(
            stderr.contains(&format!("error: timed out after 2s: the controller did not pick up the diff request of '{ns}/app'"))
                && stderr.contains("hint: check that the kluctl-controller runs"),
            "{stderr}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn suspend_and_resume_wait_until_the_controller_observed_the_generation() -> anyhow::Result<()> {
    TestNs::run("gitops_suspend", |t| async move {
        let ns = t.name.clone();
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
        create_kd(&api, &ns, "app", json!({})).await?;
        let dir = tempfile::tempdir()?;
        for (verb, suspended, done) in [("suspend", true, "suspended"), ("resume", false, "resumed")] {
            let mut cli = Cli::start(&t.env, dir.path(), &["gitops", verb, "--name", "app", "-n", &ns])?;
            let generation = poll_for(&format!("spec.suspend={suspended}"), WAIT, || async {
                let kd = api.get("app").await?;
                Ok((kd.spec.suspend == suspended).then_some(kd.metadata.generation.unwrap_or_default()))
            })
            .await?;
            cli.stderr.wait_for("the wait", WAIT, |l| {
                l.contains("Waiting for the controller").then_some(())
            })?;
            ensure!(
                cli.running(),
                "{verb} returned before the controller observed generation {generation}"
            );
            api.patch_status(
                "app",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"observedGeneration": generation}})),
            )
            .await?;
            let (code, stdout, stderr) = cli.finish().await?;
            ensure!(code == Some(0), "{verb}: exit {code:?}\n{stderr}");
            ensure!(
                stdout == format!("KluctlDeployment {ns}/app {done}\n"),
                "{verb}: {stdout}"
            );
        }
        // Without the controller, the wait ends at --timeout.
        let cli = Cli::start(
            &t.env,
            dir.path(),
            &["gitops", "suspend", "--all", "-n", &ns, "--timeout", "2s"],
        )?;
        let (code, _, stderr) = cli.finish().await?;
        ensure!(code == Some(1), "exit {code:?}\n{stderr}");
        ensure!(
            stderr.contains(&format!(
                "the controller did not observe generation 4 of '{ns}/app'"
            )),
            "{stderr}"
        );
        Ok(())
    })
    .await
}

/// A Git work tree whose `origin` is `url`, with the project in `sub_dir`.
fn git_project(url: &str, sub_dir: &str) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let repo = tempfile::Builder::new().prefix("gitops-project-").tempdir()?;
    git(repo.path(), &["init", "-q"])?;
    git(repo.path(), &["remote", "add", "origin", url])?;
    let project = repo.path().join(sub_dir);
    fs_err::create_dir_all(&project)?;
    fs_err::write(project.join(".kluctl.yaml"), "targets: []\n")?;
    git(repo.path(), &["add", "-A"])?;
    git(repo.path(), &["commit", "-q", "-m", "project"])?;
    Ok((repo, project))
}

#[tokio::test]
async fn logs_are_filtered_by_object_and_reconcile_id_from_the_controller_log_file() -> anyhow::Result<()> {
    TestNs::run("gitops_logs", |t| async move {
        let ns = t.name.clone();
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
        let repo_name = unique_name("repo");
        let url = format!("https://git.example.com/org/{repo_name}.git");
        create_kd(&api, &ns, "app", json!({"source": {"git": {"url": url, "path": "deploy"}}})).await?;
        create_kd(&api, &ns, "other", json!({})).await?;
        let (repo, project) = git_project(&url, "deploy")?;
        let log_file = repo.path().join("controller.log");
        let ts = now();
        let old = Timestamp::now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(3600))?
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        append(
            &log_file,
            &[
                json!({"level": "info", "ts": ts, "msg": "starting manager"}).to_string(),
                log_line(&ns, "app", "r1", "a1", &ts),
                log_line(&ns, "other", "r3", "o3", &ts),
                "plain text line".to_owned(),
                log_line(&ns, "app", "r2", "a2", &ts),
                log_line(&ns, "app", "r0", "too old", &old),
            ],
        )?;
        let log_arg = log_file.display().to_string();
        let run = |args: &[&str], dir: &Path| -> anyhow::Result<Cli> {
            let mut full = vec!["gitops", "logs", "-n", &ns, "--controller-log-file", &log_arg];
            full.extend_from_slice(args);
            Cli::start(&t.env, dir, &full)
        };
        let lines = |msgs: &[&str]| msgs.iter().flat_map(|m| [*m, "\n"]).collect::<String>();
        let root = repo.path().to_path_buf();

        let (code, stdout, stderr) = run(&["--name", "app"], &root)?.finish().await?;
        ensure!(code == Some(0), "{stderr}");
        ensure!(
            stdout == lines(&[&format!("{ts} info a1"), "plain text line", &format!("{ts} info a2")]),
            "by name:\n{stdout}"
        );

        let (_, stdout, _) = run(&["--name", "app", "--reconcile-id", "r2"], &root)?.finish().await?;
        ensure!(stdout == lines(&["plain text line", &format!("{ts} info a2")]), "by reconcile id:\n{stdout}");

        let (_, stdout, _) = run(&["--all"], &root)?.finish().await?;
        ensure!(
            stdout
                == lines(&[
                    &format!("{ts} info starting manager"),
                    &format!("{ts} info {ns}/app: a1"),
                    &format!("{ts} info {ns}/other: o3"),
                    "plain text line",
                    &format!("{ts} info {ns}/app: a2"),
                ]),
            "--all:\n{stdout}"
        );

        // No selection flag: the KluctlDeployment of the Git project in the working directory.
        let (code, stdout, stderr) = run(&[], &project)?.finish().await?;
        ensure!(code == Some(0), "{stderr}");
        ensure!(stdout.contains(" info a1\n") && !stdout.contains("o3"), "auto-detected:\n{stdout}");
        ensure!(stderr.contains(&format!("Auto-detected KluctlDeployment {ns}/app via repo key git://git.example.com/org/{repo_name}")), "{stderr}");
        // The repository root is another project: nothing deploys it.
        let (code, stdout, stderr) = run(&[], &root)?.finish().await?;
        ensure!(code == Some(1) && stdout.is_empty(), "{stdout}\n{stderr}");
        ensure!(
            stderr.contains(&format!(
                "error: no KluctlDeployment in namespace '{ns}' deploys repo key 'git://git.example.com/org/{repo_name}'\n"
            )) && stderr.contains("hint: pass --name"),
            "{stderr}"
        );

        // -f: lines appended later follow.
        let cli = Cli::start(
            &t.env,
            &root,
            &["gitops", "logs", "-n", &ns, "--name", "app", "-f", "--controller-log-file", &log_arg],
        )?;
        cli.stdout.wait_for("a2", WAIT, |l| l.ends_with(" info a2").then_some(()))?;
        // o4 first: once a4 is shown, o4 was read (and dropped).
        append(&log_file, &[log_line(&ns, "other", "r4", "o4", &now()), log_line(&ns, "app", "r4", "a4", &now())])?;
        cli.stdout.wait_for("the appended a4", WAIT, |l| l.ends_with(" info a4").then_some(()))?;
        let shown = fs_err::read_to_string(&cli.stdout.path)?;
        ensure!(!shown.contains("o4"), "a line of another object: {shown}");
        Ok(())
    })
    .await
}
