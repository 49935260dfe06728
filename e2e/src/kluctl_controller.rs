//! The `kluctl-controller` binary run for one test: watching only the test's namespace, with the
//! admin kubeconfig, its own cache dir and log file, metrics, probes, the event endpoint and
//! Receiver webhooks on port 0 (it logs the addresses it bound, which this reads), killed when
//! dropped.
//!
//! ```text
//!  KluctlController::start(env, ns, extra) ─► target/debug/kluctl-controller --namespace ns ...
//!        │                                         │ JSON log lines ─► --log-file (kept after the test)
//!        └─ waits for msg "serving metrics and probes" {metrics_addr, health_addr}
//! ```

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::{COUNTER, ChildLog, DEFAULT_STATE_DIR, Env, built_bin};

/// Message of the log line that reports the bound addresses.
const SERVING_MSG: &str = "serving metrics and probes";

/// Message of the log line that reports the Receiver webhook server's address.
const RECEIVER_MSG: &str = "serving receiver webhooks";

/// How long the controller may take to log its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A `kluctl-controller` process started for one test, killed when dropped.
pub struct KluctlController {
    child: Child,
    /// Its cache dir (`--cache-dir`), removed when dropped.
    pub cache_dir: tempfile::TempDir,
    /// Its JSON log (`--log-file`); kept under `$E2E_STATE/controllers/<ns>/` after the test.
    pub log_file: PathBuf,
    /// Its stderr (panics, flag errors, and whatever it logs there besides the log file).
    pub stderr: ChildLog,
    /// `host:port` of its metrics endpoint.
    pub metrics_addr: String,
    /// `host:port` of its health endpoints.
    pub health_addr: String,
    /// `host:port` of its Flux event endpoint (empty with `--notification-dispatch=false`).
    pub events_addr: String,
    env: Env,
    /// `$E2E_STATE/controllers/<ns>`: its log files.
    dir: PathBuf,
    args: Vec<std::ffi::OsString>,
}

/// Starts the binary with `args` (the log file named with a fresh number in `dir`).
fn spawn(env: &Env, dir: &Path, args: &[std::ffi::OsString]) -> anyhow::Result<(Child, PathBuf, ChildLog)> {
    let bin = kluctl_controller_bin()?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let log_file = dir.join(format!("kluctl-controller-{n}.log"));
    let mut command = Command::new(&bin);
    // Every KLUCTL_* variable may be read as a flag: one left in the caller's shell must not
    // steer the controller under test.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KLUCTL_") {
            command.env_remove(&key);
        }
    }
    let mut child = command
        .args(args)
        .arg("--log-file")
        .arg(&log_file)
        // The pinned tools, as `kluctl` gets them in the CLI tests.
        .env("KLUCTL_KUSTOMIZE", env.get("E2E_KUSTOMIZE")?)
        .env("KLUCTL_HELM", env.get("E2E_HELM")?)
        // The machine presets CA bundles for child processes; the controller must not rely on them.
        .env_remove("GIT_SSL_CAINFO")
        .env_remove("SSL_CERT_FILE")
        // Read as --events-addr: the caller's must not send the tests' events anywhere.
        .env_remove("EVENTS_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stderr = child
        .stderr
        .take()
        .context("kluctl-controller has no stderr pipe")?;
    let stderr = ChildLog::follow(stderr, &dir.join(format!("kluctl-controller-{n}.stderr")))?;
    Ok((child, log_file, stderr))
}

/// The `kluctl-controller` binary under test: `$E2E_KLUCTL_CONTROLLER_BIN`, or
/// `target/debug/kluctl-controller`.
///
/// # Errors
/// When it is missing, with the command that builds it.
pub fn kluctl_controller_bin() -> anyhow::Result<PathBuf> {
    built_bin(
        "E2E_KLUCTL_CONTROLLER_BIN",
        "kluctl-controller",
        "cargo build -p kluctl-controller --bin kluctl-controller",
    )
}

impl KluctlController {
    /// Starts the built binary against the e2e cluster, reconciling only KluctlDeployments in `ns`
    /// (which is also its `--controller-namespace`), with `extra_args` appended; returns once it
    /// has logged its metrics and health addresses.
    ///
    /// # Errors
    /// When the binary is missing (the message says how to build it), does not start, or exits or
    /// stays silent for 60 s before logging its addresses (with the end of its logs).
    pub fn start(env: &Env, ns: &str, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_via(env, ns, Path::new(env.get("E2E_KUBECONFIG_ADMIN")?), extra_args)
    }

    /// As [`KluctlController::start`], talking to the apiserver through `kubeconfig` (a proxy's,
    /// see [`crate::faults`]).
    ///
    /// # Errors
    /// As [`KluctlController::start`].
    pub fn start_via(env: &Env, ns: &str, kubeconfig: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let state = std::env::var("E2E_STATE").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string());
        let dir = PathBuf::from(state).join("controllers").join(ns);
        fs_err::create_dir_all(&dir)?;
        let cache_dir = tempfile::Builder::new()
            .prefix("kluctl-controller-cache-")
            .tempdir()?;
        let mut args: Vec<std::ffi::OsString> = vec!["--kubeconfig".into(), kubeconfig.into()];
        for a in [
            "--namespace",
            ns,
            "--controller-namespace",
            ns,
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--health-probe-bind-address",
            "127.0.0.1:0",
            "--events-listen-addr",
            "127.0.0.1:0",
            "--receiver-listen-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--cache-dir",
        ] {
            args.push(a.into());
        }
        args.push(cache_dir.path().into());
        args.extend(extra_args.iter().map(Into::into));
        let (child, log_file, stderr) = spawn(env, &dir, &args)?;
        let mut ctl = KluctlController {
            child,
            cache_dir,
            log_file,
            stderr,
            metrics_addr: String::new(),
            health_addr: String::new(),
            events_addr: String::new(),
            env: env.clone(),
            dir,
            args,
        };
        ctl.wait_serving()?;
        Ok(ctl)
    }

    fn wait_serving(&mut self) -> anyhow::Result<()> {
        let (metrics, health, events) =
            self.wait_for_log("its metrics and health addresses", START_TIMEOUT, |v| {
                if v["msg"].as_str() != Some(SERVING_MSG) {
                    return None;
                }
                Some((
                    log_value(v, "metrics_addr")?,
                    log_value(v, "health_addr")?,
                    log_value(v, "events_addr").unwrap_or_default(),
                ))
            })?;
        self.metrics_addr = metrics;
        self.health_addr = health;
        self.events_addr = events;
        Ok(())
    }

    /// Kills the process with SIGKILL (`kill -9`: no cleanup of any kind runs) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process (SIGKILL) if it still runs and starts it again with the same arguments
    /// and cache dir, a new log file; returns once it has logged its addresses again.
    ///
    /// # Errors
    /// As [`KluctlController::start`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let (child, log_file, stderr) = spawn(&self.env, &self.dir, &self.args)?;
        self.child = child;
        self.log_file = log_file;
        self.stderr = stderr;
        self.wait_serving()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for a JSON log line (of the log file, or of stderr) that `pick` takes
    /// a value from; earlier lines count too.
    ///
    /// # Errors
    /// When the process exits or `timeout` passes first, with the end of its logs.
    pub fn wait_for_log<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        pick: impl Fn(&serde_json::Value) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the exit status first so lines written just before exiting are still seen.
            let exited = self.child.try_wait()?;
            let mut lines = self.log_lines().into_iter().chain(json_lines(&self.stderr.path));
            if let Some(v) = lines.find_map(|l| pick(&l)) {
                return Ok(v);
            }
            let why = match exited {
                Some(status) => format!("the process exited ({status})"),
                None if Instant::now() >= deadline => "timed out".to_string(),
                // The log file is written by another process: nothing to watch but the file.
                None => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            bail!(
                "kluctl-controller: {why} before logging {what} (after {timeout:?})\n{}",
                self.log_tail(30)
            );
        }
    }

    /// Every line of its log file (`--log-file`) that parses as a JSON object. (The controller
    /// writes the same lines to stderr.)
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        json_lines(&self.log_file)
    }

    /// The last `lines` lines of its log file and of its stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- end of {}:\n{}\n--- end of {}:\n{}",
            self.log_file.display(),
            tail_of(&self.log_file, lines),
            self.stderr.path.display(),
            self.stderr.tail(lines)
        )
    }

    /// `host:port` of its Receiver webhook server (`--receiver-listen-addr`), from its log.
    ///
    /// # Errors
    /// When it has not logged the address within 10 s (it does right after its metrics address).
    pub fn receiver_addr(&mut self) -> anyhow::Result<String> {
        self.wait_for_log("its receiver webhook address", Duration::from_secs(10), |v| {
            if v["msg"].as_str() != Some(RECEIVER_MSG) {
                return None;
            }
            log_value(v, "receiver_addr")
        })
    }

    /// HTTP status of `GET /readyz` (0 when nothing answers).
    pub async fn readyz(&self) -> u16 {
        match reqwest::get(format!("http://{}/readyz", self.health_addr)).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

impl Drop for KluctlController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of a JSON log line: at the top level (zap's shape, Kluctl's), or under `fields` (the
/// shape of `tracing-subscriber`'s JSON format).
pub fn log_value(line: &serde_json::Value, key: &str) -> Option<String> {
    line.get(key)
        .or_else(|| line.get("fields").and_then(|f| f.get(key)))
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

/// The lines of the file at `path` that parse as JSON objects (none when it does not exist yet).
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    fs_err::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}

fn tail_of(path: &Path, lines: usize) -> String {
    let text = fs_err::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_values_are_read_at_the_top_level_or_under_fields() {
        let zap: serde_json::Value = serde_json::json!({"msg": SERVING_MSG, "metrics_addr": "127.0.0.1:1"});
        let tracing: serde_json::Value =
            serde_json::json!({"msg": SERVING_MSG, "fields": {"health_addr": "127.0.0.1:2"}});
        assert_eq!(log_value(&zap, "metrics_addr").as_deref(), Some("127.0.0.1:1"));
        assert_eq!(log_value(&tracing, "health_addr").as_deref(), Some("127.0.0.1:2"));
        assert_eq!(log_value(&zap, "health_addr"), None);
    }
}
