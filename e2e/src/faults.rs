//! Fault injection for the reliability suite (`make faults`, and the quick faults of `make test`):
//! a TCP proxy that can be switched at run time between passing traffic and failing in the ways
//! real networks and servers fail, an apiserver kubeconfig that goes through such a proxy, an
//! audited HTTP proxy in front of the apiserver, and the invariant checks run after every fault.
//!
//! ```text
//!  controller ──► FaultProxy 127.0.0.1:0 ──(Pass | Slow | DropAfter)──► git / S3 / artifacts / sink / apiserver
//!                      │ Refuse: listener closed     Reset: accept + RST     Hang: accept, never answer
//!                      └ Http(503): a bare HTTP answer; every mode change cuts the open connections
//!
//!  before the fault: ForeignObjects::plant ─┐   during: LossWatch polls the rendered objects
//!  after:  touched() == 0, lost() == 0, SecretScan::leaks() == 0, recovered within T ──► FaultReport
//!                                                       ──► one JSON line in the results file ──► `make faults` table
//! ```
//!
//! The proxy speaks TCP, so it sits in front of TLS servers (the kube-apiserver) as well: there the
//! HTTP answer modes make no sense, the others do ("apiserver away" without stopping the shared one).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::{DEFAULT_STATE_DIR, Env};

/// What a [`FaultProxy`] does with a connection accepted while the mode is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// The listener is closed: connecting is refused (the server is down).
    Refuse,
    /// Accept, then reset the connection (RST) without reading.
    Reset,
    /// Accept and never answer (a hung server); held until the mode changes.
    Hang,
    /// Read the request head and answer this HTTP status with a short body, then close.
    Http(u16),
    /// Forward, but close the connection after this many bytes of the answer (dropped mid-stream).
    DropAfter(usize),
    /// Forward, waiting this long before passing on each chunk read (a slow link).
    Slow(Duration),
}

struct Shared {
    mode: Mutex<Mode>,
    target: Mutex<Option<String>>,
    /// Bumped on every mode change: open connections end, hung ones are released.
    epoch: tokio::sync::watch::Sender<u64>,
    accepted: AtomicUsize,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn target(&self) -> Option<String> {
        self.target.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A TCP proxy on 127.0.0.1:0 in front of `target`, switched at run time with [`FaultProxy::set`];
/// stops when dropped.
pub struct FaultProxy {
    /// The address it listens on (kept across [`Mode::Refuse`]).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in [`Mode::Pass`] forwarding to `target` (`host:port`); `None`: set it later
    /// with [`FaultProxy::set_target`] (for a server whose port is known only after it starts,
    /// while the proxy's address must be passed to it).
    ///
    /// # Errors
    /// When it cannot bind.
    pub async fn start(target: Option<&str>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            target: Mutex::new(target.map(str::to_owned)),
            epoch: tokio::sync::watch::channel(0).0,
            accepted: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, addr, shared.clone()));
        Ok(FaultProxy { addr, shared, task })
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where connections go from now on (`host:port`).
    pub fn set_target(&self, target: &str) {
        *self.shared.target.lock().unwrap_or_else(PoisonError::into_inner) = Some(target.to_owned());
    }

    /// Switches to `mode`; connections open until now are closed (as a server going away or
    /// coming back closes them).
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
        self.shared.epoch.send_modify(|e| *e += 1);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Connections accepted so far (in any mode but [`Mode::Refuse`]).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.set(Mode::Refuse);
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    let mut listener = Some(listener);
    let mut epoch = shared.epoch.subscribe();
    loop {
        if shared.mode() == Mode::Refuse {
            // Closed, so connecting fails at once with "connection refused".
            listener = None;
            if epoch.changed().await.is_err() {
                return;
            }
            continue;
        }
        let Some(l) = listener.as_ref() else {
            // Back from Refuse: listen on the same port again (SO_REUSEADDR is set by tokio).
            match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "fault proxy: re-binding failed, retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((stream, _)) = accepted {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(handle(stream, shared.clone()));
                }
            }
            changed = epoch.changed() => if changed.is_err() { return },
        }
    }
}

async fn handle(mut client: TcpStream, shared: Arc<Shared>) {
    let mut epoch = shared.epoch.subscribe();
    let mode = shared.mode();
    match mode {
        Mode::Refuse => {}
        Mode::Reset => {
            let _ = client.set_zero_linger();
        }
        Mode::Hang => {
            let _ = epoch.changed().await;
        }
        Mode::Http(code) => {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(&mut client, code)).await;
        }
        Mode::Pass | Mode::Slow(_) | Mode::DropAfter(_) => {
            let Some(target) = shared.target() else {
                return;
            };
            let Ok(server) = TcpStream::connect(&target).await else {
                // The real server is down: so is the proxy, for this client.
                let _ = client.set_zero_linger();
                return;
            };
            tokio::select! {
                () = pipe(client, server, mode) => {}
                _ = epoch.changed() => {}
            }
        }
    }
}

/// Reads the request head (up to 64 KiB) and answers `code` with `connection: close`.
async fn answer(client: &mut TcpStream, code: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("fault proxy: injected HTTP {code}\n");
    let reply = format!(
        "HTTP/1.1 {code} Injected\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(reply.as_bytes()).await;
    let _ = client.shutdown().await;
}

async fn pipe(client: TcpStream, server: TcpStream, mode: Mode) {
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let delay = match mode {
        Mode::Slow(d) => Some(d),
        _ => None,
    };
    let limit = match mode {
        Mode::DropAfter(n) => Some(n),
        _ => None,
    };
    // The request side ending (a half close) does not end the connection; the answer side does.
    let up = async {
        copy(&mut client_r, &mut server_w, delay, None).await;
        let _ = server_w.shutdown().await;
        std::future::pending::<()>().await;
    };
    let down = async {
        copy(&mut server_r, &mut client_w, delay, limit).await;
        let _ = client_w.shutdown().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

async fn copy(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    delay: Option<Duration>,
    limit: Option<usize>,
) {
    let mut left = limit.unwrap_or(usize::MAX);
    let mut buf = vec![0u8; 16 << 10];
    while left > 0 {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n.min(left),
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        left -= n;
    }
}

/// `host:port` of the e2e apiserver (`E2E_APISERVER_URL` without the scheme).
///
/// # Errors
/// When the variable is missing.
pub fn apiserver_addr(env: &Env) -> anyhow::Result<String> {
    let url = env.get("E2E_APISERVER_URL")?;
    Ok(url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned())
}

/// Writes to `path` the admin kubeconfig with its server replaced by `https://<proxy>`: TLS and
/// credentials pass through the proxy untouched (the apiserver's certificate is valid for
/// 127.0.0.1, where the proxy listens too).
///
/// # Errors
/// When the admin kubeconfig cannot be read or does not name the apiserver's URL.
pub fn kubeconfig_via(env: &Env, proxy: SocketAddr, path: &Path) -> anyhow::Result<PathBuf> {
    let admin = env.get("E2E_KUBECONFIG_ADMIN")?;
    let text = fs_err::read_to_string(admin)?;
    let server = env.get("E2E_APISERVER_URL")?;
    if !text.contains(server) {
        bail!("{admin} does not name the apiserver {server}: cannot point it at the proxy");
    }
    fs_err::write(path, text.replace(server, &format!("https://{proxy}")))?;
    Ok(path.to_path_buf())
}

/// One request an [`AuditProxy`] forwarded.
#[derive(Clone, Debug)]
pub struct Audited {
    /// When it arrived.
    pub at: Instant,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub target: String,
}

/// An HTTP proxy on 127.0.0.1:0 that forwards every request to the apiserver with the admin client
/// and records when each arrived (method, path): the audit of what one controller instance sent.
/// Optionally waits `delay` before each mutating request, one at a time (a slow apply or prune,
/// to stop a process in the middle of it: parallel writes would all wait the same `delay` and
/// land together, leaving no middle to stop in). Stops when dropped.
pub struct AuditProxy {
    /// The address it listens on.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Audited>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AuditProxy {
    /// Starts it, forwarding with `client`.
    ///
    /// # Errors
    /// When it cannot bind.
    pub async fn start(client: Client, delay: Duration) -> anyhow::Result<Self> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let writes = Arc::new(tokio::sync::Mutex::new(()));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (client, seen, writes) = (client.clone(), seen.clone(), writes.clone());
            async move { forward(&client, &seen, (delay, &writes), req).await }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(AuditProxy { addr, requests, task })
    }

    /// Everything forwarded so far.
    pub fn requests(&self) -> Vec<Audited> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// A kubeconfig naming the proxy (no credentials: it adds the admin's).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<PathBuf> {
        fs_err::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: audit, cluster: {{server: \"http://{}\"}}}}]\n\
                 users: [{{name: audit, user: {{}}}}]\n\
                 contexts: [{{name: audit, context: {{cluster: audit, user: audit}}}}]\ncurrent-context: audit\n",
                self.addr
            ),
        )?;
        Ok(path.to_path_buf())
    }
}

impl Drop for AuditProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: &Client,
    seen: &Mutex<Vec<Audited>>,
    (delay, writes): (Duration, &tokio::sync::Mutex<()>),
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http;
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    if parts.method != http::Method::GET && !delay.is_zero() {
        let _one_at_a_time = writes.lock().await;
        tokio::time::sleep(delay).await;
    }
    if let Ok(mut s) = seen.lock() {
        s.push(Audited {
            at: Instant::now(),
            method: parts.method.to_string(),
            target: target.clone(),
        });
    }
    let bad_gateway = |e: String| {
        http::Response::builder()
            .status(http::StatusCode::BAD_GATEWAY)
            .body(axum::body::Body::from(e))
            .unwrap_or_default()
    };
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return bad_gateway(e.to_string()),
    };
    let mut out = http::Request::builder().method(parts.method).uri(target);
    for (name, value) in &parts.headers {
        // Connection-level headers belong to this hop; the length follows from the new body.
        if ![
            http::header::HOST,
            http::header::CONNECTION,
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
        ]
        .contains(name)
        {
            out = out.header(name, value);
        }
    }
    let out = match out.body(kube::client::Body::from(bytes.to_vec())) {
        Ok(r) => r,
        Err(e) => return bad_gateway(e.to_string()),
    };
    match client.send(out).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            http::Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(e) => bad_gateway(e.to_string()),
    }
}

/// Objects outside every discriminator a deployment owns, created before a fault with their
/// resourceVersions: afterwards none may be changed or gone.
pub struct ForeignObjects {
    client: Client,
    /// `(namespace, name, resourceVersion)`.
    planted: Vec<(String, String, String)>,
}

impl ForeignObjects {
    /// Creates in each of `namespaces` two ConfigMaps: `foreign-plain` (no labels) and
    /// `foreign-other` (labelled with another project's discriminator, `other-<namespace>`).
    ///
    /// # Errors
    /// On API errors.
    pub async fn plant(client: &Client, namespaces: &[&str]) -> anyhow::Result<Self> {
        let mut planted = Vec::new();
        for ns in namespaces {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            for (name, labels) in [
                ("foreign-plain", serde_json::json!({})),
                (
                    "foreign-other",
                    serde_json::json!({"kluctl.io/discriminator": format!("other-{ns}")}),
                ),
            ] {
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                    "data": {"owner": "not the deployment under test"},
                }))?;
                let made = api
                    .create(&PostParams::default(), &cm)
                    .await
                    .with_context(|| format!("creating ConfigMap {ns}/{name}"))?;
                planted.push((
                    (*ns).to_owned(),
                    name.to_owned(),
                    made.metadata.resource_version.unwrap_or_default(),
                ));
            }
        }
        Ok(ForeignObjects {
            client: client.clone(),
            planted,
        })
    }

    /// The planted objects that were changed or deleted (`ns/name: what`).
    ///
    /// # Errors
    /// On API errors.
    pub async fn touched(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for (ns, name, rv) in &self.planted {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
            match api.get_opt(name).await? {
                None => out.push(format!("{ns}/{name}: deleted")),
                Some(cm) if cm.metadata.resource_version.as_deref() != Some(rv) => out.push(format!(
                    "{ns}/{name}: resourceVersion {rv} -> {:?}",
                    cm.metadata.resource_version
                )),
                Some(_) => {}
            }
        }
        Ok(out)
    }
}

/// Polls (every 100 ms, until dropped) that the ConfigMaps of the last successful render exist in
/// a namespace, and remembers each one seen missing: "zero objects deleted that the last
/// successful render still contains" holds at every moment of a fault, not only at its end.
pub struct LossWatch {
    expected: Arc<Mutex<BTreeSet<String>>>,
    lost: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LossWatch {
    /// Starts watching ConfigMaps `expected` in `ns`.
    pub fn start(client: &Client, ns: &str, expected: impl IntoIterator<Item = String>) -> Self {
        let expected = Arc::new(Mutex::new(expected.into_iter().collect::<BTreeSet<_>>()));
        let lost = Arc::new(Mutex::new(BTreeSet::new()));
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let (want, gone) = (expected.clone(), lost.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                // An unreachable apiserver (a fault of its own) proves nothing either way.
                let Ok(listed) = api.list_metadata(&ListParams::default()).await else {
                    continue;
                };
                let present: BTreeSet<String> =
                    listed.items.into_iter().filter_map(|o| o.metadata.name).collect();
                let want = want.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let mut gone = gone.lock().unwrap_or_else(PoisonError::into_inner);
                gone.extend(want.difference(&present).cloned());
            }
        });
        LossWatch { expected, lost, task }
    }

    /// Replaces the expected set (a new render succeeded: it is now the last successful one).
    pub fn expect(&self, names: impl IntoIterator<Item = String>) {
        *self.expected.lock().unwrap_or_else(PoisonError::into_inner) = names.into_iter().collect();
    }

    /// Every expected object seen missing so far.
    pub fn lost(&self) -> BTreeSet<String> {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for LossWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Secret strings planted in Secrets and credentials, looked for everywhere a controller writes:
/// its log files, every event, the statuses of our kinds, the stored command results.
pub struct SecretScan {
    needles: Vec<String>,
}

/// Kinds whose whole objects (status included) are scanned.
const SCANNED_KINDS: &str = "gitrepositories.source.toolkit.fluxcd.io,buckets.source.toolkit.fluxcd.io,\
                             kluctldeployments.gitops.kluctl.io,alerts.notification.toolkit.fluxcd.io,\
                             providers.notification.toolkit.fluxcd.io";

impl SecretScan {
    /// Scans for `secrets` and their base64 forms.
    pub fn new(secrets: &[&str]) -> Self {
        let mut needles = Vec::new();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            needles.push((*s).to_owned());
            needles.push(base64_engine(s.as_bytes()));
        }
        SecretScan { needles }
    }

    /// A distinctive secret value for a test (`FAULTSECRET-<n>-<pid>-<nanos>`).
    pub fn distinctive(n: u32) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("FAULTSECRET-{n}-{}-{nanos:x}", std::process::id())
    }

    /// Where a planted secret appears: the files under `log_dirs` (recursively), `kubectl get
    /// events -A`, our kinds in `namespaces`, and the command result Secrets in `namespaces`
    /// (their gzip data decoded). Each finding is `where: needle prefix`.
    ///
    /// # Errors
    /// When kubectl or the API fails.
    pub async fn leaks(
        &self,
        env: &Env,
        client: &Client,
        namespaces: &[&str],
        log_dirs: &[&Path],
    ) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        let mut check = |place: &str, text: &str| {
            for n in &self.needles {
                if text.contains(n.as_str()) {
                    found.push(format!("{place}: {}...", &n[..n.len().min(14)]));
                }
            }
        };
        for dir in log_dirs {
            for file in files_under(dir) {
                if let Ok(bytes) = fs_err::read(&file) {
                    check(&file.display().to_string(), &String::from_utf8_lossy(&bytes));
                }
            }
        }
        check("events", &env.kubectl(&["get", "events", "-A", "-o", "yaml"])?);
        for ns in namespaces {
            check(
                &format!("objects of {ns}"),
                &env.kubectl(&["get", SCANNED_KINDS, "-n", ns, "-o", "yaml"])?,
            );
            let results: Api<Secret> = Api::namespaced(client.clone(), ns);
            for s in results
                .list(&ListParams::default().labels("kluctl.io/result=true"))
                .await?
            {
                let name = format!("result {ns}/{}", s.metadata.name.clone().unwrap_or_default());
                check(&name, &format!("{:?}", s.metadata.annotations));
                for (key, value) in s.data.unwrap_or_default() {
                    let data = kluctl_engine::store::encode::gunzip(&value.0).unwrap_or(value.0);
                    check(&format!("{name} {key}"), &String::from_utf8_lossy(&data));
                }
            }
        }
        Ok(found)
    }
}

fn base64_engine(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs_err::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                // Artifacts and caches hold the deployed project itself, secrets included.
                let name = entry.file_name();
                if name != "storage" && name != "cache" {
                    out.extend(files_under(&path));
                }
            }
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out
}

/// `$E2E_STATE/controllers/<ns>`: where the test processes of `ns` keep their logs.
pub fn controllers_dir(ns: &str) -> PathBuf {
    let state = std::env::var("E2E_STATE").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string());
    PathBuf::from(state).join("controllers").join(ns)
}

/// One row of the `make faults` table: a fault, how often it was injected, and what the invariant
/// checks found over all runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FaultReport {
    /// What was injected.
    pub fault: String,
    /// Injections.
    pub runs: u32,
    /// Objects of the last successful render seen missing.
    pub objects_lost: usize,
    /// Foreign objects changed or deleted.
    pub foreign_touched: usize,
    /// Planted secrets found in logs, events, statuses, results.
    pub secrets_leaked: usize,
    /// Every run recovered (Ready=True, the end state of an undisturbed run).
    pub recovered: bool,
    /// Longest time from the end of the fault to recovery.
    pub recover_secs: f64,
    /// What the checks found, for the failure message.
    #[serde(default)]
    pub findings: Vec<String>,
}

impl FaultReport {
    /// A report for `fault`, no runs yet.
    pub fn new(fault: &str) -> Self {
        FaultReport {
            fault: fault.to_owned(),
            recovered: true,
            ..FaultReport::default()
        }
    }

    /// Adds one run's findings.
    pub fn run(
        &mut self,
        lost: &BTreeSet<String>,
        touched: &[String],
        leaked: &[String],
        recovered: Option<Duration>,
    ) {
        self.runs += 1;
        self.objects_lost += lost.len();
        self.foreign_touched += touched.len();
        self.secrets_leaked += leaked.len();
        self.findings.extend(lost.iter().map(|l| format!("lost: {l}")));
        self.findings
            .extend(touched.iter().map(|t| format!("foreign touched: {t}")));
        self.findings
            .extend(leaked.iter().map(|l| format!("secret leaked: {l}")));
        if let Some(d) = recovered {
            self.recover_secs = self.recover_secs.max(d.as_secs_f64());
        } else {
            self.recovered = false;
            self.findings.push("did not recover".into());
        }
    }

    /// Adds a finding that is none of the counted invariants (a leftover, an overlap): the run
    /// did not recover cleanly.
    pub fn finding(&mut self, what: String) {
        self.recovered = false;
        self.findings.push(what);
    }

    /// Appends the row to the results file ([`results_file`]) and fails when an invariant broke.
    ///
    /// # Errors
    /// When the file cannot be written, or with every finding.
    pub fn finish(self) -> anyhow::Result<()> {
        use std::io::Write as _;
        let path = results_file();
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let mut file = fs_err::OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(file, "{}", serde_json::to_string(&self)?)?;
        eprintln!("{}", table(std::slice::from_ref(&self)));
        if !self.findings.is_empty() || !self.recovered || self.runs == 0 {
            bail!("fault '{}' broke an invariant: {:#?}", self.fault, self.findings);
        }
        Ok(())
    }
}

/// `$E2E_FAULTS_RESULTS`, else `$E2E_STATE/faults/results.jsonl`.
pub fn results_file() -> PathBuf {
    std::env::var("E2E_FAULTS_RESULTS").map_or_else(
        |_| {
            let state = std::env::var("E2E_STATE").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string());
            PathBuf::from(state).join("faults/results.jsonl")
        },
        PathBuf::from,
    )
}

/// The rows as one text table.
pub fn table(rows: &[FaultReport]) -> String {
    let width = rows.iter().map(|r| r.fault.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<width$} | runs | objects lost | foreign touched | secrets leaked | recovered | time to recover\n",
        "fault"
    );
    let _ = writeln!(out, "{}", "-".repeat(width + 86));
    for r in rows {
        let _ = writeln!(
            out,
            "{:<width$} | {:>4} | {:>12} | {:>15} | {:>14} | {:>9} | {:>13.1} s",
            r.fault,
            r.runs,
            r.objects_lost,
            r.foreign_touched,
            r.secrets_leaked,
            if r.recovered { "yes" } else { "NO" },
            r.recover_secs
        );
    }
    out
}

/// Reads the results file: one report per line (the last of a fault wins, so a re-run replaces it).
///
/// # Errors
/// When the file cannot be read or a line does not parse.
pub fn read_results(path: &Path) -> anyhow::Result<Vec<FaultReport>> {
    let text = fs_err::read_to_string(path)?;
    let mut rows: Vec<FaultReport> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: FaultReport =
            serde_json::from_str(line).with_context(|| format!("{}: bad line {line}", path.display()))?;
        rows.retain(|r| r.fault != row.fault);
        rows.push(row);
    }
    Ok(rows)
}

/// A Kluctl project (target `test`, discriminator `faults-<ns>`) deploying into `ns` the
/// ConfigMaps `cm-<i>` for each `i` of `items` (`data.value: <value>`) and the Secret `planted`
/// holding `secret`: the files to commit.
pub fn project(
    ns: &str,
    items: impl IntoIterator<Item = usize>,
    value: &str,
    secret: &str,
) -> Vec<(String, String)> {
    let mut objects = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\n  namespace: {ns}\nstringData:\n  token: {secret}\n"
    );
    for i in items {
        let _ = write!(
            objects,
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: {ns}\ndata:\n  value: \"{value}\"\n"
        );
    }
    vec![
        (
            ".kluctl.yaml".to_owned(),
            format!("discriminator: faults-{ns}\ntargets:\n  - name: test\n"),
        ),
        (
            "deployment.yaml".to_owned(),
            "deployments:\n  - path: app\n".to_owned(),
        ),
        ("app/objects.yaml".to_owned(), objects),
    ]
}

/// The names `cm-<i>` of `items`.
pub fn cm_names(items: impl IntoIterator<Item = usize>) -> BTreeSet<String> {
    items.into_iter().map(|i| format!("cm-{i}")).collect()
}

/// The `cm-*` ConfigMaps that exist in `ns`.
///
/// # Errors
/// On API errors.
pub async fn deployed_cms(client: &Client, ns: &str) -> anyhow::Result<BTreeSet<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .filter(|n| n.starts_with("cm-"))
        .collect())
}

/// boto3 through `e2e/scripts/s3ctl.py` with the environment's S3 endpoint and keys: puts objects
/// of a fault scenario under a prefix of the shared scratch bucket.
pub struct S3 {
    python: String,
    vars: Vec<(String, String)>,
}

impl S3 {
    /// For the environment's S3 server.
    ///
    /// # Errors
    /// When a variable is missing.
    pub fn new(env: &Env) -> anyhow::Result<Self> {
        let mut vars = Vec::new();
        for k in ["E2E_S3_ENDPOINT", "E2E_S3_ACCESS_KEY", "E2E_S3_SECRET_KEY"] {
            vars.push((k.to_owned(), env.get(k)?.to_owned()));
        }
        Ok(S3 {
            python: env.get("E2E_PYTHON")?.to_owned(),
            vars,
        })
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.python);
        cmd.arg(crate::project_root().join("e2e/scripts/s3ctl.py"))
            .args(args)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("REQUESTS_CA_BUNDLE");
        cmd
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> anyhow::Result<()> {
        use std::io::Write as _;
        use std::process::Stdio;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} (boto3 venv from 'make e2e-up')", self.python))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "s3ctl.py {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Puts `files` (path, content) under `prefix` of `bucket`, and removes `gone` (paths).
    ///
    /// # Errors
    /// When a put fails.
    pub fn put_files(&self, bucket: &str, prefix: &str, files: &[(String, String)]) -> anyhow::Result<()> {
        for (path, content) in files {
            self.run(&["put", bucket, &format!("{prefix}{path}")], content.as_bytes())?;
        }
        Ok(())
    }

    /// A guard removing every key under `prefix` of `bucket` when dropped.
    pub fn remove_on_drop(&self, bucket: &str, prefix: &str) -> RemovePrefix {
        RemovePrefix(self.command(&["rmprefix", bucket, prefix]))
    }
}

/// Removes the keys under a prefix of a bucket when dropped (see [`S3::remove_on_drop`]).
pub struct RemovePrefix(std::process::Command);

impl Drop for RemovePrefix {
    fn drop(&mut self) {
        use std::process::Stdio;
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

/// A tmpfs of a given size mounted on a directory (a small volume to fill: "storage full");
/// unmounted when dropped. Needs root (`mount -t tmpfs`).
pub struct TmpfsMount {
    /// Where it is mounted.
    pub dir: PathBuf,
}

impl TmpfsMount {
    /// Creates `dir` and mounts a tmpfs of `size` (as `mount -o size=`: `4m`) on it.
    ///
    /// # Errors
    /// When `mount` fails (not root, no tmpfs).
    pub fn mount(dir: &Path, size: &str) -> anyhow::Result<Self> {
        fs_err::create_dir_all(dir)?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            bail!(
                "mount -t tmpfs -o size={size} on {} failed (needs root): {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(TmpfsMount {
            dir: dir.to_path_buf(),
        })
    }

    /// Bytes free on it.
    ///
    /// # Errors
    /// When `df` fails.
    pub fn free_bytes(&self) -> anyhow::Result<u64> {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.dir)
            .output()
            .context("running df")?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("df of {}: {text}", self.dir.display()))
    }

    /// Writes `filler` until about `leave` bytes are free (ENOSPC ends it too); returns the bytes
    /// written.
    ///
    /// # Errors
    /// When the file cannot be created or `df` fails.
    pub fn fill(&self, filler: &str, leave: u64) -> anyhow::Result<u64> {
        use std::io::Write as _;
        let mut file = fs_err::File::create(self.dir.join(filler))?;
        let mut left = self.free_bytes()?.saturating_sub(leave);
        let chunk = vec![0x5au8; 64 << 10];
        let mut written = 0u64;
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            if file.write_all(&chunk[..n]).is_err() {
                break;
            }
            written += n as u64;
            left -= n as u64;
        }
        let _ = file.flush();
        Ok(written)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there must not keep the mount forever.
        let ok = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: umount -l {} failed", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64_engine(b"hunter2"), "aHVudGVyMg==");
        assert_eq!(base64_engine(b"abc"), "YWJj");
        assert_eq!(base64_engine(b"ab"), "YWI=");
    }

    #[test]
    fn a_run_with_a_finding_fails_and_the_table_shows_it() {
        let mut r = FaultReport::new("kill -9 mid-deploy");
        r.run(&BTreeSet::new(), &[], &[], Some(Duration::from_millis(1500)));
        assert!(r.findings.is_empty() && r.recovered);
        r.run(&["app-1".to_owned()].into(), &[], &[], None);
        assert_eq!((r.runs, r.objects_lost, r.recovered), (2, 1, false));
        let t = table(&[r]);
        assert!(t.contains("kill -9 mid-deploy |    2 |            1 |"), "{t}");
        assert!(t.contains("NO"), "{t}");
    }

    #[tokio::test]
    async fn the_proxy_passes_refuses_resets_answers_and_drops() {
        // A server that answers every connection with 100 bytes and closes.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = server.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = server.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&[b'x'; 100]).await;
                });
            }
        });
        let proxy = FaultProxy::start(Some(&target)).await.unwrap();
        let fetch = |addr: SocketAddr| async move {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        assert_eq!(fetch(proxy.addr).await.unwrap().len(), 100);
        proxy.set(Mode::DropAfter(10));
        assert_eq!(fetch(proxy.addr).await.unwrap().len(), 10);
        proxy.set(Mode::Http(503));
        let got = String::from_utf8(fetch(proxy.addr).await.unwrap()).unwrap();
        assert!(got.starts_with("HTTP/1.1 503 "), "{got}");
        proxy.set(Mode::Refuse);
        let refused = crate::poll_until("the listener to close", Duration::from_secs(5), || async {
            TcpStream::connect(proxy.addr).await.is_err()
        })
        .await;
        assert!(refused.is_ok());
        proxy.set(Mode::Reset);
        crate::poll_until("the listener to reopen", Duration::from_secs(5), || async {
            TcpStream::connect(proxy.addr).await.is_ok()
        })
        .await
        .unwrap();
        assert!(
            fetch(proxy.addr).await.map_or(true, |b| b.is_empty()),
            "reset: no bytes"
        );
        proxy.set(Mode::Hang);
        let hung = tokio::time::timeout(Duration::from_millis(300), fetch(proxy.addr)).await;
        assert!(hung.is_err(), "hang: no answer");
        proxy.set(Mode::Pass);
        assert_eq!(fetch(proxy.addr).await.unwrap().len(), 100);
    }
}
