//! The destructive faults of the reliability suite, run only by `make faults` (`--ignored`): they
//! stop and start the REAL kube-apiserver of the shared e2e environment and pause its etcd
//! (SIGSTOP/SIGCONT), so they need the environment to themselves. `make test` does not run them
//! (`#[ignore]`); `make faults` does, after the quick faults.
//!
//! Each: both controllers deploy a project from a GitRepository, the fault starts, a commit that
//! removes an object is pushed, the fault ends; nothing was pruned or deleted while the
//! control plane was away, foreign objects are untouched, no planted secret leaked, and the
//! commit deploys (Ready=True) once the watches resume; the time from the end of the fault to that
//! is the time to recover.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p source-controller --bin
//! source-controller` and the environment of `make e2e-up`.

#![allow(clippy::too_many_lines)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use e2e::faults::{self, FaultReport, ForeignObjects, LossWatch, SecretScan, controllers_dir, deployed_cms};
use e2e::kluctl_deployment as kd;
use e2e::source::{apply, ready};
use e2e::{
    DEFAULT_STATE_DIR, Env, GitRepo, KluctlController, SourceController, TestNs, poll_for, poll_until,
};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::source::v1::GitRepository;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect()
}

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("E2E_STATE").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string()))
}

/// The pid of a control-plane process `e2e/scripts/cluster.sh` started (`etcd`, `kube-apiserver`).
fn pid_of(component: &str) -> anyhow::Result<String> {
    let file = state_dir().join("cluster/run").join(format!("{component}.pid"));
    Ok(fs_err::read_to_string(&file)?.trim().to_owned())
}

fn signal(sig: &str, pid: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill").args([sig, pid]).status()?.success();
    anyhow::ensure!(ok, "kill {sig} {pid} failed");
    Ok(())
}

/// True when the apiserver answers `/readyz` within 2 s.
fn apiserver_ready(env: &Env) -> bool {
    env.kubectl(&["get", "--raw", "/readyz", "--request-timeout=2s"])
        .is_ok_and(|s| s.trim() == "ok")
}

/// Stops the kube-apiserver (SIGTERM, as `cluster.sh stop` does) and waits until its process is
/// gone: its graceful shutdown takes seconds, and `cluster.sh start` skips a process still alive.
fn stop_apiserver() -> anyhow::Result<()> {
    let pid = pid_of("kube-apiserver")?;
    signal("-TERM", &pid)?;
    let alive = || {
        Command::new("kill")
            .args(["-0", &pid])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let deadline = Instant::now() + WAIT;
    while alive() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "kube-apiserver (pid {pid}) still running {WAIT:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Starts what of the control plane is not running (`cluster.sh start` skips live processes).
fn start_control_plane() -> anyhow::Result<()> {
    let script = e2e::project_root().join("e2e/scripts/cluster.sh");
    let out = Command::new(&script)
        .arg("start")
        .env("E2E_STATE", state_dir())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} start failed: {}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Resumes etcd, or restarts the apiserver, when dropped: a failed assert must not leave the
/// shared environment broken.
struct Restore(fn() -> anyhow::Result<()>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = (self.0)() {
            eprintln!("warning: restoring the control plane failed: {e:#}");
        }
    }
}

/// A deployed project of `items` ConfigMaps from a GitRepository, both controllers running.
struct Deployed {
    repo: GitRepo,
    git_api: Api<GitRepository>,
    api: Api<KluctlDeployment>,
    ctl: KluctlController,
    _source: SourceController,
    foreign: ForeignObjects,
    scan: SecretScan,
    secret: String,
}

async fn deploy(t: &TestNs, items: usize) -> anyhow::Result<Deployed> {
    let ns = t.name.clone();
    let secret = SecretScan::distinctive(10);
    let repo = GitRepo::create(&t.env, &ns)?;
    let first = repo.commit(&refs(&faults::project(&ns, 0..items, "one", &secret)), "first")?;
    let foreign = ForeignObjects::plant(&t.client, &[&ns]).await?;
    let source = SourceController::start(&t.env, &ns, &[])?;
    let git_api: Api<GitRepository> = Api::namespaced(t.client.clone(), &ns);
    let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
    apply(
        &git_api,
        &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "project", "namespace": ns, "labels": {"e2e.kluctl-gitops/ns": ns}},
                "spec": {"interval": "1h", "url": url, "ref": {"branch": "main"}}}),
    )
    .await?;
    let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
    let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
    kd::apply(
        &api,
        "app",
        json!({"interval": "1h", "retryInterval": "2s", "sourceRef": {"kind": "GitRepository", "name": "project"},
               "target": "test", "prune": true}),
    )
    .await?;
    converge(t, &api, &ctl, &first, items).await?;
    Ok(Deployed {
        repo,
        git_api,
        api,
        ctl,
        _source: source,
        foreign,
        scan: SecretScan::new(&[&secret]),
        secret,
    })
}

async fn converge(
    t: &TestNs,
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    commit: &str,
    items: usize,
) -> anyhow::Result<()> {
    let want = commit.to_owned();
    kd::wait(api, ctl, "app", &format!("the deploy of {commit}"), move |k| {
        kd::deployed_commit(k, &want) && kd::ready_is(k, "True", "ReconciliationSucceeded")
    })
    .await?;
    let expected = faults::cm_names(0..items);
    poll_for("exactly the rendered ConfigMaps", WAIT, || async {
        Ok((deployed_cms(&t.client, &t.name).await? == expected).then_some(()))
    })
    .await
}

/// Runs one control-plane fault: `inject` takes it away, then a commit removing one object is
/// pushed and a reconcile of the GitRepository asked (through the watch it is seen only once the
/// control plane is back), `restore` brings it back; then recovery is timed.
async fn control_plane_fault(
    t: &TestNs,
    name: &str,
    inject: impl FnOnce() -> anyhow::Result<()>,
    restore: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    const ITEMS: usize = 6;
    let d = deploy(t, ITEMS).await?;
    let watch = LossWatch::start(&t.client, &t.name, faults::cm_names(0..ITEMS));
    let mut report = FaultReport::new(name);
    inject()?;
    poll_until("the apiserver to stop answering", WAIT, || async {
        !apiserver_ready(&t.env)
    })
    .await?;
    let next = d.repo.commit(
        &refs(&faults::project(&t.name, 0..ITEMS - 1, "two", &d.secret)),
        "while away",
    )?;
    restore()?;
    let back = Instant::now();
    poll_until("the apiserver to answer again", WAIT, || async {
        apiserver_ready(&t.env)
    })
    .await?;
    if deployed_cms(&t.client, &t.name).await?.len() != ITEMS {
        report.finding("an object was pruned while the control plane was away".into());
    }
    watch.expect(faults::cm_names(0..ITEMS - 1));
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": name}}});
    d.git_api
        .patch("project", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let took = converge(t, &d.api, &d.ctl, &next, ITEMS - 1)
        .await
        .map(|()| back.elapsed());
    if let Ok(g) = d.git_api.get("project").await {
        eprintln!("GitRepository after recovery: {:?}", ready(&g));
    }
    let touched = d.foreign.touched().await?;
    let leaked = d
        .scan
        .leaks(&t.env, &t.client, &[&t.name], &[&controllers_dir(&t.name)])
        .await?;
    report.run(&watch.lost(), &touched, &leaked, took.ok());
    report.finish()
}

#[tokio::test]
#[ignore = "stops the shared kube-apiserver: run by `make faults`, which needs the environment to itself"]
async fn the_real_apiserver_stopped_and_started() -> anyhow::Result<()> {
    TestNs::run("faults_apiserver_stop", |t| {
        Box::pin(async move {
            let _restore = Restore(start_control_plane);
            control_plane_fault(
                &t,
                "kube-apiserver stopped and started",
                stop_apiserver,
                start_control_plane,
            )
            .await
        })
    })
    .await
}

#[tokio::test]
#[ignore = "pauses the shared etcd: run by `make faults`, which needs the environment to itself"]
async fn etcd_paused_and_resumed() -> anyhow::Result<()> {
    fn resume() -> anyhow::Result<()> {
        signal("-CONT", &pid_of("etcd")?)
    }
    TestNs::run("faults_etcd_pause", |t| {
        Box::pin(async move {
            let _restore = Restore(resume);
            control_plane_fault(
                &t,
                "etcd paused (SIGSTOP) and resumed",
                || signal("-STOP", &pid_of("etcd")?),
                resume,
            )
            .await
        })
    })
    .await
}
