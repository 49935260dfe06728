//! End-to-end test harness: a real kube-apiserver (started by `e2e/scripts/up.sh`), clients for the
//! admin and the non-admin identity, one fresh namespace per test, waits with conditions and
//! timeouts, drop guards that clean up also after a failed assert, test processes that bind port
//! 0 and report the port in their log, and a dump of the relevant objects when a test fails.
//!
//! ```text
//!  make e2e-up ──► e2e/scripts/up.sh ──► $E2E_STATE/env.sh ──► Env::load() ──► Client
//!                                                                   │
//!  test body ◄── TestNs::run(|ns| async { ... }) ── creates ns, runs, dumps on error, deletes ns
//! ```
//!
//! A missing environment is an error that says how to start it, never a skipped test.

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub mod browser;
pub mod faults;
mod kluctl_controller;
pub mod kluctl_deployment;
pub mod oidc;
pub mod sink;
pub mod webui;
pub use kluctl_controller::{KluctlController, kluctl_controller_bin, log_value};

/// Default location of the env file written by `e2e/scripts/up.sh`.
pub const DEFAULT_STATE_DIR: &str = "/tmp/kluctl-gitops-e2e";

/// The variables of the running e2e environment.
#[derive(Clone, Debug)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads `$E2E_STATE/env.sh` (default `/tmp/kluctl-gitops-e2e/env.sh`); process variables win.
    ///
    /// # Errors
    /// When the file is missing: the message says to run `make e2e-up`.
    pub fn load() -> anyhow::Result<Self> {
        let state = std::env::var("E2E_STATE").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string());
        let file = PathBuf::from(&state).join("env.sh");
        let text = fs_err::read_to_string(&file).map_err(|e| {
            anyhow!("{e}\nhint: the e2e environment is not running; start it with 'make e2e-up' (or set E2E_STATE)")
        })?;
        let mut vars = parse_env_file(&text);
        for (k, v) in std::env::vars() {
            if k.starts_with("E2E_") {
                vars.insert(k, v);
            }
        }
        Ok(Env { vars })
    }

    /// The value of `name`.
    ///
    /// # Errors
    /// When the variable is not set by the env file or the process.
    pub fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{name} is not set in the e2e env file; re-run 'make e2e-up'"))
    }

    /// True when the CRDs are served with CEL rules enforced (hybrid apiextensions-apiserver).
    pub fn cel_enforced(&self) -> bool {
        self.vars.get("E2E_CEL").is_some_and(|v| v == "1")
    }

    /// Path of `kubectl` matching the cluster.
    pub fn kubectl_path(&self) -> anyhow::Result<&str> {
        self.get("E2E_KUBECTL")
    }

    /// A client for the admin identity.
    pub async fn admin_client(&self) -> anyhow::Result<Client> {
        client_from(Path::new(self.get("E2E_KUBECONFIG_ADMIN")?), None).await
    }

    /// A client for the admin identity impersonating `user` (e.g. `system:serviceaccount:ns:name`).
    pub async fn impersonating_client(&self, user: &str) -> anyhow::Result<Client> {
        client_from(Path::new(self.get("E2E_KUBECONFIG_ADMIN")?), Some(user)).await
    }

    /// A client for the non-admin identity (`dev-user`, no rights unless granted).
    pub async fn dev_client(&self) -> anyhow::Result<Client> {
        client_from(Path::new(self.get("E2E_KUBECONFIG_DEV")?), None).await
    }

    /// Runs `kubectl` as the admin with `args`; returns stdout, or an error with stderr.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.kubectl_with_input(args, None)
    }

    /// Runs `kubectl` as the admin with `args` and `stdin`.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut cmd = Command::new(self.kubectl_path()?);
        cmd.args(args)
            .env("KUBECONFIG", self.get("E2E_KUBECONFIG_ADMIN")?);
        cmd.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("failed to run kubectl {}", args.join(" ")))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Parses `export NAME=value` lines (values optionally single- or double-quoted).
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

async fn client_from(kubeconfig: &Path, impersonate: Option<&str>) -> anyhow::Result<Client> {
    let kc =
        Kubeconfig::read_from(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    if let Some(user) = impersonate {
        config.auth_info.impersonate = Some(user.to_string());
    }
    config.read_timeout = Some(Duration::from_secs(30));
    Ok(Client::try_from(config)?)
}

/// Waits for `cond` on the object `name`, failing after `timeout` with the last state seen.
///
/// # Errors
/// On timeout (naming the object and the wait) or a watch error.
pub async fn wait_for<K, C>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: C,
) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: kube::runtime::wait::Condition<K>,
{
    let fut = kube::runtime::wait::await_condition(api.clone(), name, cond);
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => bail!("{name}: object was deleted while waiting for {what}"),
        Ok(Err(e)) => Err(anyhow!(e).context(format!("{name}: watch failed while waiting for {what}"))),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            bail!("{name}: timed out after {timeout:?} waiting for {what}; last state: {last:#?}")
        }
    }
}

/// Waits until the object `name` does not exist, failing after `timeout` with the last state seen.
///
/// # Errors
/// On timeout or a watch error.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let fut = kube::runtime::wait::await_condition(api.clone(), name, |o: Option<&K>| o.is_none());
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow!(e).context(format!("{name}: watch failed while waiting for deletion"))),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            bail!("{name}: still exists after {timeout:?}; last state: {last:#?}")
        }
    }
}

/// A namespace that exists for one test.
pub struct TestNs {
    /// The environment.
    pub env: Env,
    /// Admin client.
    pub client: Client,
    /// Namespace name.
    pub name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<prefix>-<pid>-<n>`: a name no other test of this run or of a parallel test process uses
/// (lower case when `prefix` is, so it fits namespaces and other object names).
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes one cluster object with `kubectl delete --ignore-not-found --wait=false` when dropped,
/// so a test's cleanup also runs when one of its asserts panics. Declare it before creating the
/// object; guards drop in reverse order of declaration.
///
/// Drop is sync and may run inside a runtime, so it shells out to `kubectl` instead of using an
/// async client.
#[must_use = "the object is deleted when the guard drops"]
pub struct DeleteOnDrop {
    env: Env,
    args: Vec<String>,
}

impl DeleteOnDrop {
    /// Deletes namespace `name` (and so everything in it).
    pub fn namespace(env: &Env, name: &str) -> Self {
        Self::object(env, "namespace", name)
    }

    /// Deletes the cluster-scoped object `resource/name` (`crd`, `validatingwebhookconfiguration`,
    /// ...).
    pub fn object(env: &Env, resource: &str, name: &str) -> Self {
        DeleteOnDrop {
            env: env.clone(),
            args: vec![resource.to_string(), name.to_string()],
        }
    }

    /// Deletes `resource/name` in namespace `ns` (for objects in a namespace the test does not
    /// own, such as a shared one).
    pub fn namespaced(env: &Env, resource: &str, ns: &str, name: &str) -> Self {
        DeleteOnDrop {
            env: env.clone(),
            args: vec![
                resource.to_string(),
                name.to_string(),
                "-n".to_string(),
                ns.to_string(),
            ],
        }
    }
}

/// The drop guards for what an installation of the controllers into `ns` (`kluctl install
/// [--webui]`, `kluctl bootstrap git`) creates outside of `ns`: the cluster-scoped RBAC, named
/// with the namespace as a suffix, and the Roles of the shared results namespace `kluctl-results`.
pub fn installation_guards(env: &Env, ns: &str) -> Vec<DeleteOnDrop> {
    let mut g = Vec::new();
    for c in ["kluctl-controller", "source-controller", "kluctl-webui"] {
        let name = format!("kluctl-gitops:{c}-{ns}");
        g.push(DeleteOnDrop::object(env, "clusterrolebinding", &name));
        g.push(DeleteOnDrop::object(env, "clusterrole", &name));
    }
    for c in ["kluctl-controller", "kluctl-webui"] {
        let results = format!("{c}-results-{ns}");
        g.push(DeleteOnDrop::namespaced(
            env,
            "rolebinding",
            "kluctl-results",
            &results,
        ));
        g.push(DeleteOnDrop::namespaced(env, "role", "kluctl-results", &results));
    }
    g
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let mut args = vec!["delete"];
        args.extend(self.args.iter().map(String::as_str));
        args.extend(["--ignore-not-found", "--wait=false"]);
        if let Err(e) = self.env.kubectl(&args) {
            eprintln!("warning: cleanup failed: {e:#}");
        }
    }
}

impl TestNs {
    /// Creates a fresh namespace named after the test, runs `body`, dumps the namespace's objects
    /// when `body` fails, and deletes the namespace either way.
    ///
    /// # Errors
    /// The body's error (with the dump printed to stderr), or a failure to set up the namespace.
    pub async fn run<F, Fut>(test: &str, body: F) -> anyhow::Result<()>
    where
        F: FnOnce(TestNs) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let env = Env::load()?;
        let client = env.admin_client().await?;
        let prefix: String = test.replace('_', "-").chars().take(30).collect();
        let name = unique_name(&format!("e2e-{}", prefix.trim_end_matches('-')));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some([("e2e.kluctl-gitops/test".to_string(), "true".to_string())].into());
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let handle = TestNs {
            env: env.clone(),
            client: client.clone(),
            name: name.clone(),
        };
        // A failed assert panics: catch it so the dump and the cleanup still happen, then re-raise.
        let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body(handle))).await;
        let failure = match &outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(panic) => Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_else(|| "panic".into()),
            ),
        };
        if let Some(why) = failure {
            eprintln!("=== e2e test '{test}' failed: {why}");
            eprintln!("=== dump of namespace {name}:");
            eprintln!("{}", dump_namespace(&env, &name));
        }
        // The test's controller is gone by now: drop our finalizers so the namespace can go.
        release_finalizers(&env, &name);
        // Namespace deletion is asynchronous (kube-controller-manager finalizes it); don't wait.
        let _ = namespaces.delete(&name, &DeleteParams::background()).await;
        match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Kinds whose objects carry our controllers' finalizers.
const FINALIZED_KINDS: &str = "gitrepositories.source.toolkit.fluxcd.io,buckets.source.toolkit.fluxcd.io,\
                               kluctldeployments.gitops.kluctl.io,kluctldeployments.flux.kluctl.io";

/// Removes the finalizers of our kinds in `ns` (their controller was a test process, now ended).
pub fn release_finalizers(env: &Env, ns: &str) {
    let Ok(names) = env.kubectl(&["get", FINALIZED_KINDS, "-n", ns, "-o", "name"]) else {
        return;
    };
    for obj in names.lines().filter(|l| !l.is_empty()) {
        let _ = env.kubectl(&[
            "patch",
            obj,
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
    }
}

/// Everything in a namespace that a failing test may want to see, as YAML.
pub fn dump_namespace(env: &Env, ns: &str) -> String {
    let kinds = "all,configmaps,secrets,events,gitrepositories.source.toolkit.fluxcd.io,\
                 buckets.source.toolkit.fluxcd.io,kluctldeployments.gitops.kluctl.io,\
                 kluctldeployments.flux.kluctl.io,alerts.notification.toolkit.fluxcd.io,\
                 providers.notification.toolkit.fluxcd.io,receivers.notification.toolkit.fluxcd.io";
    let mut out = match env.kubectl(&["get", kinds, "-n", ns, "-o", "yaml"]) {
        // Secret values stay out of test logs.
        Ok(yaml) => redact_secret_data(&yaml),
        Err(e) => format!("(dump failed: {e:#})"),
    };
    // The last lines of every control-plane and test-server log.
    let state = std::env::var("E2E_STATE").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string());
    for dir in ["cluster/logs", "servers/logs"] {
        let Ok(entries) = fs_err::read_dir(Path::new(&state).join(dir)) else {
            continue;
        };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            let Ok(text) = fs_err::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            let _ = write!(
                out,
                "\n=== last lines of {}:\n{}\n",
                path.display(),
                tail.join("\n")
            );
        }
    }
    out
}

fn redact_secret_data(yaml: &str) -> String {
    let mut out = String::new();
    // Indent of the `data:`/`stringData:` key we are inside, if any.
    let mut data_indent: Option<usize> = None;
    for line in yaml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(d) = data_indent {
            if indent > d {
                out.push_str(&line[..indent]);
                out.push_str(trimmed.split(':').next().unwrap_or(""));
                out.push_str(": <redacted>\n");
                continue;
            }
            data_indent = None;
        }
        if trimmed == "data:" || trimmed == "stringData:" {
            data_indent = Some(indent);
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Installs tracing output for a test binary once (RUST_LOG controls the level).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Root of the project checkout (the workspace root).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Parses one YAML manifest into a dynamic object.
///
/// # Errors
/// When the YAML is invalid or lacks `apiVersion`/`kind`.
pub fn parse_manifest(yaml: &str) -> anyhow::Result<kube::api::DynamicObject> {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).context("parsing YAML manifest")?;
    serde_json::from_value(value).context("manifest is not a Kubernetes object")
}

/// The API for `obj`'s kind, resolved through discovery (so aggregated groups work too), in the
/// object's namespace when the kind is namespaced.
///
/// # Errors
/// When the kind is not served.
pub async fn api_for(
    client: &Client,
    obj: &kube::api::DynamicObject,
) -> anyhow::Result<Api<kube::api::DynamicObject>> {
    let types = obj
        .types
        .as_ref()
        .ok_or_else(|| anyhow!("object has no apiVersion/kind"))?;
    let gvk = kube::api::GroupVersionKind::try_from(types)?;
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| {
            format!(
                "{}/{} is not served by the apiserver",
                types.api_version, types.kind
            )
        })?;
    Ok(match (caps.scope, obj.metadata.namespace.as_deref()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    })
}

/// Creates namespace `name` unless it exists.
///
/// # Errors
/// On any API error other than "already exists".
pub async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// True when every field of `want` appears in `got` with an equal value (extra fields in `got`,
/// such as defaults filled in by the apiserver, are allowed). Returns the first mismatch path.
pub fn contains_fields(want: &serde_json::Value, got: &serde_json::Value, path: &str) -> Result<(), String> {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                let gv = g
                    .get(k)
                    .ok_or_else(|| format!("{p}: missing in the object read back"))?;
                contains_fields(wv, gv, &p)?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                contains_fields(wv, gv, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if want == got => Ok(()),
        _ => Err(format!("{path}: applied {want} but read back {got}")),
    }
}

/// A child process's output stream copied line by line to a log file by a thread, so a test can
/// wait for a line (a server reporting the port it bound) instead of polling the file.
pub struct ChildLog {
    /// The log file.
    pub path: PathBuf,
    state: std::sync::Arc<(std::sync::Mutex<LogLines>, std::sync::Condvar)>,
}

#[derive(Default)]
struct LogLines {
    lines: Vec<String>,
    /// The stream ended (the process exited or closed it).
    closed: bool,
}

impl ChildLog {
    /// Starts copying `stream` (a child's piped stderr or stdout) to a new file at `path`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn follow(stream: impl std::io::Read + Send + 'static, path: &Path) -> anyhow::Result<Self> {
        use std::io::{BufRead as _, Write as _};
        let mut file = fs_err::File::create(path)?;
        let state = std::sync::Arc::new((
            std::sync::Mutex::new(LogLines::default()),
            std::sync::Condvar::new(),
        ));
        let shared = state.clone();
        std::thread::spawn(move || {
            let (lines, changed) = &*shared;
            for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if let Ok(mut l) = lines.lock() {
                    l.lines.push(line);
                }
                changed.notify_all();
            }
            if let Ok(mut l) = lines.lock() {
                l.closed = true;
            }
            changed.notify_all();
        });
        Ok(ChildLog {
            path: path.to_path_buf(),
            state,
        })
    }

    /// Waits up to `timeout` for a line `pick` takes a value from (earlier lines count too).
    ///
    /// # Errors
    /// When the stream ends or `timeout` passes first, with the end of the log.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        pick: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let (lines, changed) = &*self.state;
        let found = |l: &LogLines| l.lines.iter().find_map(|line| pick(line));
        let guard = lines
            .lock()
            .map_err(|_| anyhow!("the log reader of {} panicked", self.path.display()))?;
        let (guard, _) = changed
            .wait_timeout_while(guard, timeout, |l| !l.closed && found(l).is_none())
            .map_err(|_| anyhow!("the log reader of {} panicked", self.path.display()))?;
        if let Some(v) = found(&guard) {
            return Ok(v);
        }
        let why = if guard.closed {
            "the process exited"
        } else {
            "timed out"
        };
        drop(guard);
        bail!(
            "{why} before logging {what} (after {timeout:?})\n--- end of {}:\n{}",
            self.path.display(),
            self.tail(30)
        )
    }

    /// The last `lines` lines so far.
    pub fn tail(&self, lines: usize) -> String {
        let text = fs_err::read_to_string(&self.path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The value of `key=` in a console-encoded log line.
fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// A `source-controller` process started for one test, killed when dropped.
///
/// Every server of it binds port 0; it logs the addresses it bound, which this reads.
pub struct SourceController {
    child: std::process::Child,
    /// Its storage directory.
    pub storage_dir: PathBuf,
    /// `host:port` of its health endpoints.
    pub health_addr: String,
    /// Its log (stderr).
    pub log: ChildLog,
    /// `$E2E_STATE/controllers/<ns>`: its storage and log files.
    dir: PathBuf,
    args: Vec<std::ffi::OsString>,
}

/// Starts the built `source-controller` with `args`, its stderr copied to a new log in `dir`.
fn spawn_source_controller(
    dir: &Path,
    args: &[std::ffi::OsString],
) -> anyhow::Result<(std::process::Child, ChildLog)> {
    let bin = built_bin(
        "E2E_SOURCE_CONTROLLER_BIN",
        "source-controller",
        "cargo build -p source-controller",
    )?;
    let mut child = Command::new(&bin)
        .args(args)
        // The machine presets CA bundles for child processes; the controller must not rely on them.
        .env_remove("GIT_SSL_CAINFO")
        .env_remove("SSL_CERT_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stderr = child
        .stderr
        .take()
        .context("source-controller has no stderr pipe")?;
    let log = dir.join(format!(
        "source-controller-{}.log",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok((child, ChildLog::follow(stderr, &log)?))
}

impl SourceController {
    /// Starts the built binary against the e2e cluster, reconciling only objects labelled
    /// `e2e.kluctl-gitops/ns=<ns>`, with its own storage dir; returns once it has logged its
    /// health address (a standby of a leader election has no artifact server yet, see
    /// [`SourceController::storage_addr`]).
    ///
    /// # Errors
    /// When the binary is missing (the message says how to build it), does not start, or exits or
    /// stays silent for 60 s before logging its addresses (with the end of its log).
    pub fn start(env: &Env, ns: &str, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_via(ns, Path::new(env.get("E2E_KUBECONFIG_ADMIN")?), extra_args)
    }

    /// As [`SourceController::start`], talking to the apiserver through `kubeconfig` (a proxy's,
    /// see [`faults`]).
    ///
    /// # Errors
    /// As [`SourceController::start`].
    pub fn start_via(ns: &str, kubeconfig: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let state = std::env::var("E2E_STATE").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string());
        let dir = PathBuf::from(state).join("controllers").join(ns);
        let storage_dir = dir.join("storage");
        fs_err::create_dir_all(&storage_dir)?;
        let mut args: Vec<std::ffi::OsString> = vec!["--kubeconfig".into(), kubeconfig.into()];
        let selector = format!("e2e.kluctl-gitops/ns={ns}");
        let storage = storage_dir.to_string_lossy().into_owned();
        for a in [
            "--storage-path",
            &storage,
            // No --storage-adv-addr: the controller advertises the port it bound.
            "--storage-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
            "--log-encoding",
            "console",
            "--min-retry-delay",
            "500ms",
        ] {
            args.push(a.into());
        }
        // `--watch-all-namespaces=false` in `extra_args` selects by namespace instead.
        if !extra_args.iter().any(|a| a.starts_with("--watch-all-namespaces")) {
            args.extend(["--watch-label-selector".into(), selector.into()]);
        }
        args.extend(extra_args.iter().map(Into::into));
        let (child, log) = spawn_source_controller(&dir, &args)?;
        let mut ctl = SourceController {
            child,
            storage_dir,
            health_addr: String::new(),
            log,
            dir,
            args,
        };
        ctl.wait_health()?;
        Ok(ctl)
    }

    fn wait_health(&mut self) -> anyhow::Result<()> {
        self.health_addr = self
            .log
            .wait_for("its health address", Duration::from_secs(60), |l| {
                log_field(l, "health_addr").map(str::to_string)
            })?;
        Ok(())
    }

    /// Kills the process with SIGKILL (`kill -9`: no cleanup of any kind runs) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process (SIGKILL) if it still runs and starts it again with the same arguments
    /// and storage dir, a new log; returns once it has logged its health address again.
    ///
    /// # Errors
    /// As [`SourceController::start`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let (child, log) = spawn_source_controller(&self.dir, &self.args)?;
        self.child = child;
        self.log = log;
        self.wait_health()
    }

    /// `host:port` of its artifact server, waiting up to 10 s for it to be logged (a standby of a
    /// leader election serves no artifacts until it leads).
    ///
    /// # Errors
    /// When it has not logged the address by then.
    pub fn storage_addr(&self) -> anyhow::Result<String> {
        self.storage_addr_within(Duration::from_secs(10))
    }

    fn storage_addr_within(&self, timeout: Duration) -> anyhow::Result<String> {
        self.log.wait_for("its artifact server address", timeout, |l| {
            log_field(l, "storage_addr").map(str::to_string)
        })
    }

    /// HTTP status of `GET /readyz` (0 when nothing answers).
    pub async fn readyz(&self) -> u16 {
        match reqwest::get(format!("http://{}/readyz", self.health_addr)).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// True when it has logged its artifact server's address and that accepts connections.
    pub fn serving(&self) -> bool {
        self.storage_addr_within(Duration::ZERO)
            .is_ok_and(|addr| std::net::TcpStream::connect(addr).is_ok())
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log.tail(lines)
    }
}

impl Drop for SourceController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare Git repository under `$E2E_GIT_REPOS`, with a work tree to commit from.
pub struct GitRepo {
    /// Repository name (`<name>.git` on the servers).
    pub name: String,
    work: PathBuf,
}

impl GitRepo {
    /// Creates `<name>.git` (removing an old one) with an empty `main` branch work tree.
    ///
    /// # Errors
    /// When git fails.
    pub fn create(env: &Env, name: &str) -> anyhow::Result<Self> {
        let repos = PathBuf::from(env.get("E2E_GIT_REPOS")?);
        let bare = repos.join(format!("{name}.git"));
        let work = repos.join(format!(".work-{name}"));
        let _ = fs_err::remove_dir_all(&bare);
        let _ = fs_err::remove_dir_all(&work);
        git(
            &repos,
            &["init", "-q", "--bare", "-b", "main", &bare.to_string_lossy()],
        )?;
        git(&repos, &["init", "-q", "-b", "main", &work.to_string_lossy()])?;
        git(&work, &["remote", "add", "origin", &bare.to_string_lossy()])?;
        Ok(GitRepo {
            name: name.to_string(),
            work,
        })
    }

    /// Writes files (path, content) and commits them with `message`; returns the commit sha.
    ///
    /// # Errors
    /// When git fails.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> anyhow::Result<String> {
        for (path, content) in files {
            let p = self.work.join(path);
            if let Some(parent) = p.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::write(p, content)?;
        }
        git(&self.work, &["add", "-A"])?;
        self.commit_and_push(message)
    }

    /// Deletes files (paths in the work tree) and commits that with `message`, as a user's
    /// `git rm` + commit + push; returns the commit sha.
    ///
    /// # Errors
    /// When git fails (a path that is not committed, too).
    pub fn remove(&self, paths: &[&str], message: &str) -> anyhow::Result<String> {
        let mut args = vec!["rm", "-q", "--"];
        args.extend_from_slice(paths);
        git(&self.work, &args)?;
        self.commit_and_push(message)
    }

    fn commit_and_push(&self, message: &str) -> anyhow::Result<String> {
        git(
            &self.work,
            &[
                "-c",
                "user.name=e2e",
                "-c",
                "user.email=e2e@example.invalid",
                "commit",
                "-q",
                "-m",
                message,
            ],
        )?;
        git(&self.work, &["push", "-q", "origin", "HEAD:refs/heads/main"])?;
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Moves the work tree to the branch as someone else pushed it (`kluctl bootstrap git`, say),
    /// so the next commit goes on top.
    ///
    /// # Errors
    /// When git fails.
    pub fn pull(&self) -> anyhow::Result<()> {
        git(&self.work, &["fetch", "-q", "origin", "main"])?;
        git(&self.work, &["reset", "-q", "--hard", "FETCH_HEAD"])?;
        Ok(())
    }

    /// Tags the last commit as `name` (lightweight) and pushes the tag.
    ///
    /// # Errors
    /// When git fails.
    pub fn tag(&self, name: &str) -> anyhow::Result<()> {
        git(&self.work, &["tag", "-f", name])?;
        git(
            &self.work,
            &["push", "-q", "-f", "origin", &format!("refs/tags/{name}")],
        )?;
        Ok(())
    }

    /// `git ls-tree -r --name-only <rev>` of the repository.
    ///
    /// # Errors
    /// When git fails.
    pub fn ls_tree(&self, rev: &str) -> anyhow::Result<Vec<String>> {
        Ok(git(&self.work, &["ls-tree", "-r", "--name-only", rev])?
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// Runs git in `dir` isolated from user and system configuration (fixed identity, no signing,
/// default branch `main`); returns trimmed stdout.
///
/// # Errors
/// When git fails, with its stderr.
pub fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args([
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(["-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false"])
        .args(args)
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Downloads an artifact the way Flux consumers do (GET the URL, verify the advertised digest),
/// then lists its entries with Flux's untar rules: names escaping the root are rejected, symlinks
/// skipped. Returns the regular-file names.
///
/// # Errors
/// On HTTP errors, a digest mismatch or an unsafe entry.
pub async fn fetch_artifact_files(url: &str, digest: &str) -> anyhow::Result<Vec<String>> {
    use sha2::Digest as _;
    let resp = reqwest::get(url).await?;
    if !resp.status().is_success() {
        bail!("GET {url}: {}", resp.status());
    }
    let bytes = resp.bytes().await?;
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| anyhow!("digest '{digest}' is not sha256"))?;
    let actual = gitops_api::revision::lower_hex(&sha2::Sha256::digest(&bytes));
    if actual != hex {
        bail!("digest mismatch for {url}: advertised {hex}, got {actual}");
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut files = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path.starts_with('/') || path.split('/').any(|s| s == "..") {
            bail!("artifact entry '{path}' escapes the extraction root");
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular => files.push(path),
            tar::EntryType::Directory | tar::EntryType::Symlink => {}
            other => bail!("artifact entry '{path}' has unsupported type {other:?}"),
        }
    }
    files.sort();
    Ok(files)
}

/// Counts `git-upload-pack` POSTs for `repo` in the git HTTP server's request log (written before
/// each request is served): protocol v2 sends one for `ls-refs` and one more for `fetch`, so a
/// no-op reconcile adds exactly one.
///
/// # Errors
/// When the log cannot be read.
pub fn upload_pack_posts(env: &Env, repo: &str) -> anyhow::Result<usize> {
    let log = fs_err::read_to_string(env.get("E2E_GIT_REQUEST_LOG")?)?;
    let needle = format!("POST /{repo}.git/git-upload-pack");
    Ok(log.lines().filter(|l| *l == needle).count())
}

/// Polls `check` every 200 ms until it returns true, failing after `timeout` with `what`.
/// For states no API can be watched for (an HTTP endpoint's answer).
///
/// # Errors
/// On timeout.
pub async fn poll_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_for(what, timeout, || {
        let fut = check();
        async move { Ok(fut.await.then_some(())) }
    })
    .await
}

/// Polls `check` every 200 ms until it yields a value, failing after `timeout` with `what`.
/// For states no single object can be watched for (a list by label, an authorizer catching up).
///
/// # Errors
/// The first error `check` returns, or a timeout.
pub async fn poll_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tick.tick().await;
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
    }
}

/// Makes the one-replica Deployment `name` in `ns` ready. The e2e cluster has no kubelet: its pod
/// is marked Running and Ready through `/status` as the admin identity, and the ReplicaSet and
/// Deployment controllers of the real kube-controller-manager then count it. Returns when the
/// Deployment reports one ready and available replica.
///
/// # Errors
/// On API errors, or when the pod or the count does not appear within `timeout` each.
pub async fn make_deployment_ready(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{ListParams, Patch, PatchParams};
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = ListParams::default().labels(&format!("app={name}"));
    let pod = poll_for(&format!("a pod of deployment {ns}/{name}"), timeout, || async {
        let list = pods.list(&selector).await?;
        Ok(list.items.into_iter().find_map(|p| p.metadata.name))
    })
    .await?;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    pods.patch_status(
        &pod,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    wait_for(
        &deployments,
        name,
        "one ready and available replica",
        timeout,
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.ready_replicas == Some(1) && s.available_replicas == Some(1))
        },
    )
    .await?;
    Ok(())
}

/// A webhook receiver on 127.0.0.1 that records the JSON bodies POSTed to it (answering 200).
pub struct WebhookSink {
    /// `http://127.0.0.1:<port>/`.
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    count: tokio::sync::watch::Receiver<usize>,
}

impl WebhookSink {
    /// Starts the receiver on a free port; it serves until the process ends.
    ///
    /// # Errors
    /// When it cannot bind.
    pub fn start() -> anyhow::Result<Self> {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/", listener.local_addr()?);
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = received.clone();
        let (tx, count) = tokio::sync::watch::channel(0usize);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(v) = serde_json::from_slice(&body)
                    && let Ok(mut all) = sink.lock()
                {
                    all.push(v);
                    let _ = tx.send(all.len());
                }
                let mut stream = reader.into_inner();
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Ok(WebhookSink { url, received, count })
    }

    /// Waits until a received body satisfies `pred`, failing after `timeout`.
    ///
    /// # Errors
    /// On timeout, listing what was received.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let mut rx = self.count.clone();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(v) = self.received().into_iter().find(|v| pred(v)) {
                    return v;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        found.map_err(|_| {
            anyhow!(
                "no matching webhook call within {timeout:?}; received: {:?}",
                self.received()
            )
        })
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines_parse_with_and_without_quotes() {
        let vars = parse_env_file("# c\nexport A=1\nexport B='two words'\nexport C=\"x=y\"\nPATH=ignored\n");
        assert_eq!(vars.get("A").map(String::as_str), Some("1"));
        assert_eq!(vars.get("B").map(String::as_str), Some("two words"));
        assert_eq!(vars.get("C").map(String::as_str), Some("x=y"));
        assert!(!vars.contains_key("PATH"));
    }

    #[test]
    fn log_fields_are_read_by_exact_key() {
        let line = "2026-01-01T00:00:00Z  INFO source_controller: serving artifacts \
                    storage_addr=127.0.0.1:4100 metrics_addr=127.0.0.1:4101 health_addr=127.0.0.1:4102";
        assert_eq!(log_field(line, "storage_addr"), Some("127.0.0.1:4100"));
        assert_eq!(log_field(line, "health_addr"), Some("127.0.0.1:4102"));
        assert_eq!(log_field(line, "addr"), None);
    }

    #[test]
    fn secret_data_is_redacted_in_dumps() {
        let yaml = "items:\n- apiVersion: v1\n  data:\n    password: aHVudGVyMg==\n  kind: Secret\n";
        let dumped = redact_secret_data(yaml);
        assert!(!dumped.contains("aHVudGVyMg=="), "{dumped}");
        assert!(dumped.contains("    password: <redacted>"), "{dumped}");
        assert!(dumped.contains("  kind: Secret"), "{dumped}");
    }
}

/// Helpers for Flux source objects (GitRepository, Bucket): apply a manifest, read `Ready`, wait
/// for it, and ask for a reconcile the way `flux reconcile` does.
pub mod source {
    use super::wait_for;
    use gitops_api::conditions::{self, types};
    use gitops_api::meta::Condition;
    use k8s_openapi::NamespaceResourceScope;
    use kube::Resource;
    use kube::api::{Api, ListParams, Patch, PatchParams};
    use serde_json::json;
    use std::time::Duration;

    /// Object types these helpers work with.
    pub trait Object:
        Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + 'static
    {
    }
    impl<K> Object for K where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned
            + Send
            + 'static
    {
    }

    /// Server-side applies the full manifest `obj` (field manager `e2e`, forced).
    ///
    /// # Errors
    /// When the apiserver rejects it.
    pub async fn apply<K: Object>(api: &Api<K>, obj: &serde_json::Value) -> anyhow::Result<()> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(obj))
            .await?;
        Ok(())
    }

    fn conditions_of<K: Object>(o: &K) -> Vec<Condition> {
        serde_json::to_value(o)
            .ok()
            .and_then(|v| serde_json::from_value(v["status"]["conditions"].clone()).ok())
            .unwrap_or_default()
    }

    /// `(status, reason, message)` of the object's `Ready` condition (empty when absent).
    pub fn ready<K: Object>(o: &K) -> (String, String, String) {
        conditions::find(&conditions_of(o), types::READY)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
            .unwrap_or_default()
    }

    /// A wait condition: `Ready` has `status` for the object's current generation.
    pub fn ready_is<K: Object>(status: &'static str) -> impl Fn(Option<&K>) -> bool {
        move |o: Option<&K>| {
            o.is_some_and(|o| {
                conditions::find(&conditions_of(o), types::READY)
                    .is_some_and(|c| c.status == status && c.observed_generation == o.meta().generation)
            })
        }
    }

    /// A wait condition: `Stalled` is True.
    pub fn stalled<K: Object>(o: Option<&K>) -> bool {
        o.is_some_and(|o| conditions::is_true(&conditions_of(o), types::STALLED))
    }

    /// Sets `reconcile.fluxcd.io/requestedAt` to `token` and waits (up to `timeout`) until the
    /// controller has handled it (`status.lastHandledReconcileAt`).
    ///
    /// # Errors
    /// On API errors or timeout.
    pub async fn request_reconcile<K: Object>(
        api: &Api<K>,
        name: &str,
        token: &str,
        timeout: Duration,
    ) -> anyhow::Result<K> {
        let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let token = token.to_string();
        wait_for(
            api,
            name,
            "lastHandledReconcileAt",
            timeout,
            move |o: Option<&K>| {
                o.and_then(|o| serde_json::to_value(o).ok())
                    .is_some_and(|v| v["status"]["lastHandledReconcileAt"].as_str() == Some(token.as_str()))
            },
        )
        .await
    }

    /// Messages of the events with `reason` about the object `name` in `namespace`.
    ///
    /// # Errors
    /// On API errors.
    pub async fn event_messages(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        reason: &str,
    ) -> anyhow::Result<Vec<String>> {
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), namespace);
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
            })
            .filter_map(|e| e.message)
            .collect())
    }

    /// `status.artifact` of the object, if any.
    pub fn artifact<K: Object>(o: &K) -> Option<gitops_api::meta::Artifact> {
        serde_json::to_value(o)
            .ok()
            .and_then(|v| serde_json::from_value(v["status"]["artifact"].clone()).ok())
    }

    /// Waits (up to `timeout`) until the URL in the object's `status.artifact` serves bytes whose
    /// sha256 is `digest`, and returns that artifact.
    ///
    /// # Errors
    /// On timeout, naming the last artifact seen.
    pub async fn wait_until_served<K: Object>(
        api: &Api<K>,
        name: &str,
        digest: &str,
        timeout: Duration,
    ) -> anyhow::Result<gitops_api::meta::Artifact> {
        let seen = std::sync::Mutex::new(None);
        let what = format!("{name}: its artifact to be served with digest {digest}");
        let waited = crate::poll_until(&what, timeout, || async {
            let Some(a) = api.get_opt(name).await.ok().flatten().and_then(|o| artifact(&o)) else {
                return false;
            };
            let served = a.digest == digest && crate::fetch_artifact_files(&a.url, &a.digest).await.is_ok();
            *seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(a);
            served
        })
        .await;
        let last = seen
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (waited, last) {
            (Ok(()), Some(a)) => Ok(a),
            (Err(e), last) => Err(e.context(format!("last artifact: {last:#?}"))),
            (Ok(()), None) => anyhow::bail!("{what}: no artifact"),
        }
    }
}

/// The `kluctl` binary under test: `$E2E_KLUCTL_BIN`, or `target/debug/kluctl`.
///
/// # Errors
/// When it is missing, with the command that builds it.
pub fn kluctl_bin() -> anyhow::Result<PathBuf> {
    built_bin("E2E_KLUCTL_BIN", "kluctl", "cargo build -p kluctl --bin kluctl")
}

/// A binary of this workspace: `$var` when set, else `target/debug/<name>`; missing, an error
/// with `build`, the command that builds it.
fn built_bin(var: &str, name: &str, build: &str) -> anyhow::Result<PathBuf> {
    let bin =
        std::env::var(var).map_or_else(|_| project_root().join("target/debug").join(name), PathBuf::from);
    if !bin.exists() {
        bail!(
            "{} is missing; build it with '{build}' (make e2e-test does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Writes `content` to `path` below `dir`, creating the directories in between (project files
/// of a test).
///
/// # Errors
/// When a directory or the file cannot be written.
pub fn write_file(dir: &Path, path: &str, content: &str) -> anyhow::Result<()> {
    let p = dir.join(path);
    if let Some(parent) = p.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs_err::write(&p, content)?;
    Ok(())
}

/// Runs `kluctl <args>` in `dir` as a user would: the pinned kustomize and helm, a private cache
/// dir, the admin kubeconfig of the test cluster, stdin closed (not a terminal), plus `vars`.
///
/// # Errors
/// When the binary is missing or cannot be started.
pub fn run_kluctl(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> anyhow::Result<std::process::Output> {
    let env = Env::load()?;
    let cache = tempfile::tempdir()?;
    let mut command = std::process::Command::new(kluctl_bin()?);
    // Every KLUCTL_* variable is a flag to kluctl: one left in the caller's shell (a kubeconfig, a
    // discriminator, --prune) must not steer the tests' deploys and deletes.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KLUCTL_") {
            command.env_remove(&key);
        }
    }
    command
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(dir)
        .env("KLUCTL_KUSTOMIZE", env.get("E2E_KUSTOMIZE")?)
        .env("KLUCTL_HELM", env.get("E2E_HELM")?)
        .env("KUBECONFIG", env.get("E2E_KUBECONFIG_ADMIN")?)
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("RUST_BACKTRACE")
        .stdin(std::process::Stdio::null())
        .output()
        .context("failed to run kluctl")
}
