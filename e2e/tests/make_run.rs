//! `make run` (e2e/scripts/run.sh) end to end, as a user runs it: the demo repository is deployed
//! by both controllers running as local processes, a push to it is applied, and Ctrl-C (SIGINT to
//! its process group, as a terminal sends it) stops every process the script started.
//!
//! The script uses fixed names (namespace `kluctl-demo`, repository `kluctl-demo.git`): no other
//! test may use them. Its objects are deleted when the test ends, whatever the outcome.
//!
//! Needs the environment of `make e2e-up` and the debug binaries (the script builds them if not).

// One scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use e2e::{DeleteOnDrop, Env, git, poll_for, project_root, release_finalizers};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

const NS: &str = "kluctl-demo";
const READY_LINE: &str = "Following the deployments";
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// run.sh in a session of its own; SIGINT to its group when dropped (and SIGKILL if it lingers).
struct Run {
    child: Child,
}

impl Run {
    fn interrupt(&self) {
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{}", self.child.id())])
            .status();
    }

    /// Waits for the script to exit, up to `timeout`.
    fn wait(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("run.sh did not exit within {timeout:?} of Ctrl-C")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
            let _ = self.wait(Duration::from_secs(20));
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// Releases the finalizers of the demo's KluctlDeployments (their controller is gone), then the
/// namespaces go.
struct Cleanup {
    env: Env,
    _namespaces: [DeleteOnDrop; 4],
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        release_finalizers(&self.env, NS);
    }
}

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("E2E_STATE").unwrap_or_else(|_| "/tmp/kluctl-gitops-e2e".into()))
}

#[tokio::test]
async fn make_run_deploys_the_demo_applies_a_push_and_stops_on_ctrl_c() -> anyhow::Result<()> {
    e2e::init_logging();
    let env = Env::load()?;
    // Declared first, dropped last: after the script's processes are gone.
    let _cleanup = Cleanup {
        env: env.clone(),
        _namespaces: [
            DeleteOnDrop::namespace(&env, NS),
            DeleteOnDrop::namespace(&env, "kluctl-demo-results"),
            DeleteOnDrop::namespace(&env, "demo-test"),
            DeleteOnDrop::namespace(&env, "demo-prod"),
        ],
    };
    let log_path = state_dir().join("make-run-test.log");
    let log = fs_err::File::create(&log_path)?;
    let child = Command::new("setsid")
        .arg(project_root().join("e2e/scripts/run.sh"))
        .env("RUN_RESET", "1")
        .current_dir(project_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.into_parts().0)
        .spawn()
        .context("starting e2e/scripts/run.sh (setsid from util-linux)")?;
    let mut run = Run { child };
    let stdout = run.child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.starts_with(READY_LINE);
                printed.push(line);
                if done {
                    break;
                }
            }
            Err(_) => bail!(
                "make run did not reach '{READY_LINE}'; stdout:\n{}\nstderr ({}):\n{}",
                printed.join("\n"),
                log_path.display(),
                fs_err::read_to_string(&log_path).unwrap_or_default()
            ),
        }
    }
    let out = printed.join("\n");
    for want in [
        "gitrepository/kluctl-demo",
        "demo-test",
        "demo-prod",
        "configmap/greeting",
        "configmap/hello-greeting",
    ] {
        assert!(out.contains(want), "make run printed no {want}:\n{out}");
    }

    // A push from "a second terminal" is applied.
    let work = tempfile::tempdir()?;
    let url = format!("{}/kluctl-demo.git", env.get("E2E_GIT_HTTP_URL")?);
    let clone = work.path().join("demo");
    git(work.path(), &["clone", "-q", &url, &clone.to_string_lossy()])?;
    let file = clone.join("app/configmap.yaml");
    let text = fs_err::read_to_string(&file)?.replace("Hello from the", "Hi from the");
    fs_err::write(&file, text)?;
    git(
        &clone,
        &[
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@example.invalid",
            "commit",
            "-qam",
            "greeting",
        ],
    )?;
    git(&clone, &["push", "-q", "origin", "main"])?;
    let cms: Api<ConfigMap> = Api::namespaced(env.admin_client().await?, "demo-test");
    poll_for(
        "the pushed greeting in demo-test",
        Duration::from_secs(120),
        || async {
            let cm = cms.get_opt("greeting").await?;
            Ok(cm
                .and_then(|c| c.data)
                .and_then(|d| d.get("message").cloned())
                .filter(|m| m == "Hi from the test target"))
        },
    )
    .await?;

    // Ctrl-C stops everything the script started.
    let run_dir = state_dir().join("run");
    let pids: Vec<u32> = ["kluctl-controller", "source-controller", "watch"]
        .iter()
        .filter_map(|n| fs_err::read_to_string(run_dir.join(format!("{n}.pid"))).ok())
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert_eq!(
        pids.len(),
        3,
        "pid files of the controllers and the watch in {}",
        run_dir.display()
    );
    run.interrupt();
    run.wait(Duration::from_secs(30))?;
    for pid in pids {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "process {pid} started by make run is still running after Ctrl-C"
        );
    }
    Ok(())
}
