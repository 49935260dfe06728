//! Drift detection cost of the KluctlDeployment controller: a reconcile where nothing changed
//! sends fewer apiserver requests than the deployment has objects (no dry-run apply of objects
//! whose resourceVersion the last deploy or drift run saw in sync), while a change made with
//! `kubectl patch` is still found and reported in `status.lastDriftDetectionResult`.
//!
//! The controller (`target/debug/kluctl-controller`) talks to the apiserver through a counting
//! proxy this test runs: its kubeconfig names `http://127.0.0.1:<port>`, and the proxy forwards
//! every request with the admin client, recording method and path. So the count is exactly the
//! controller's own requests, whatever else uses the shared apiserver.
//!
//! The objects are Secrets written with `stringData` (which the live object never has, so the
//! engine's no-op check cannot vouch for them: only the known resourceVersion skips their dry
//! run) and ConfigMaps.
//!
//! Needs `cargo build -p kluctl-controller` and the environment of `make e2e-up`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::http;
use e2e::{ChildLog, DeleteOnDrop, GitRepo, TestNs, poll_for, project_root};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);
/// Secrets (stringData) and ConfigMaps the project deploys: enough objects that the fixed part
/// of a reconcile (the discriminator listing, one LIST per served kind, ~55 on the e2e cluster,
/// plus status patches and events) stays below one request per object.
const SECRETS: usize = 80;
const CONFIGMAPS: usize = 20;
const OBJECTS: usize = SECRETS + CONFIGMAPS;

/// An HTTP server on 127.0.0.1 that forwards every request to the e2e apiserver with the admin
/// client (TLS and credentials are the proxy's) and records `METHOD path?query` of each.
struct CountingProxy {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(client: kube::Client) -> anyhow::Result<Self> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (client, seen) = (client.clone(), seen.clone());
            async move { forward(&client, &seen, req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, requests, task })
    }

    /// How many requests were recorded so far.
    fn count(&self) -> usize {
        self.requests.lock().map_or(0, |r| r.len())
    }

    /// The requests recorded from position `from` on.
    fn since(&self, from: usize) -> Vec<String> {
        self.requests
            .lock()
            .map(|r| r[from.min(r.len())..].to_vec())
            .unwrap_or_default()
    }

    /// A kubeconfig for the proxy (no credentials: the proxy adds the admin's).
    fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        fs_err::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: proxy, cluster: {{server: \"http://{}\"}}}}]\n\
                 users: [{{name: proxy, user: {{}}}}]\n\
                 contexts: [{{name: proxy, context: {{cluster: proxy, user: proxy}}}}]\ncurrent-context: proxy\n",
                self.addr
            ),
        )?;
        Ok(())
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: &kube::Client,
    seen: &Mutex<Vec<String>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    if let Ok(mut s) = seen.lock() {
        s.push(format!("{} {target}", parts.method));
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

/// A `kluctl-controller` process for one namespace, killed when dropped.
struct KluctlController {
    child: std::process::Child,
    log: ChildLog,
}

impl KluctlController {
    /// Starts it (`run`: a number for its log file's name) and waits until it reconciles.
    fn start(kubeconfig: &Path, ns: &str, dir: &Path, run: u32) -> anyhow::Result<Self> {
        let bin = std::env::var("E2E_KLUCTL_CONTROLLER_BIN").map_or_else(
            |_| project_root().join("target/debug/kluctl-controller"),
            PathBuf::from,
        );
        anyhow::ensure!(
            bin.exists(),
            "{} is missing; build it with 'cargo build -p kluctl-controller'",
            bin.display()
        );
        let mut child = std::process::Command::new(&bin)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", ns])
            .args(["--metrics-bind-address", "127.0.0.1:0"])
            .args(["--health-probe-bind-address", "127.0.0.1:0"])
            .args(["--receiver-listen-addr", "127.0.0.1:0"])
            .args(["--events-listen-addr", "127.0.0.1:0"])
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(["--command-result-namespace", &format!("{ns}-results")])
            .args([
                "--log-format",
                "json",
                "--log-level",
                "debug",
                "--concurrency",
                "4",
            ])
            .env(
                "KLUCTL_KUSTOMIZE",
                std::env::var("E2E_KUSTOMIZE").unwrap_or_default(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child
            .stderr
            .take()
            .context("kluctl-controller has no stderr pipe")?;
        let log = ChildLog::follow(stderr, &dir.join(format!("kluctl-controller-{run}.log")))?;
        let ctl = Self { child, log };
        ctl.log.wait_for("its start", Duration::from_secs(60), |l| {
            l.contains("reconciling KluctlDeployments").then_some(())
        })?;
        Ok(ctl)
    }
}

impl Drop for KluctlController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The project: `SECRETS` Secrets with `stringData` and `CONFIGMAPS` ConfigMaps in `ns`.
fn project_files(ns: &str) -> Vec<(String, String)> {
    let secrets = (0..SECRETS).map(|i| {
        format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s-{i}\n  namespace: {ns}\nstringData:\n  k: value-{i}\n")
    });
    let configmaps = (0..CONFIGMAPS).map(|i| {
        format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c-{i}\n  namespace: {ns}\ndata:\n  k: value-{i}\n")
    });
    let objects: String = secrets.chain(configmaps).collect();
    vec![
        (
            ".kluctl.yaml".to_owned(),
            format!("discriminator: drift-{ns}\ntargets:\n  - name: test\n"),
        ),
        (
            "deployment.yaml".to_owned(),
            "deployments:\n  - path: app\n".to_owned(),
        ),
        ("app/objects.yaml".to_owned(), objects),
    ]
}

/// Asks for a reconcile (`kluctl.io/request-reconcile`) and waits until its result is recorded;
/// returns the KluctlDeployment then.
async fn reconcile(api: &Api<KluctlDeployment>, name: &str, value: &str) -> anyhow::Result<KluctlDeployment> {
    let request = json!({"requestValue": value}).to_string();
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"kluctl.io/request-reconcile": request}}})),
    )
    .await?;
    poll_for(&format!("the reconcile request {value:?}"), WAIT, || async {
        let kd = api.get(name).await?;
        let done = kd
            .status
            .as_ref()
            .and_then(|s| s.reconcile_request_result.as_ref())
            .is_some_and(|r| r.request.request_value == value && r.end_time.is_some());
        Ok(done.then_some(kd))
    })
    .await
}

fn dry_runs(requests: &[String]) -> usize {
    requests.iter().filter(|r| r.contains("dryRun=All")).count()
}

/// Requests that name one of the deployed objects (a GET, dry-run or real apply of one).
fn per_object(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|r| r.contains("/secrets/s-") || r.contains("/configmaps/c-"))
        .collect()
}

fn drifted(kd: &KluctlDeployment) -> Vec<String> {
    kd.status
        .as_ref()
        .and_then(|s| s.last_drift_detection_result.as_ref())
        .map(|d| {
            d.objects
                .iter()
                .filter(|o| !o.changes.is_empty())
                .map(|o| format!("{}/{}", o.object_ref.kind, o.object_ref.name))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one scenario, step by step")]
async fn unchanged_reconcile_costs_less_than_a_request_per_object_and_drift_is_still_found()
-> anyhow::Result<()> {
    // Boxed: the scenario's future is large.
    Box::pin(TestNs::run("kluctl_drift", |t| async move {
        let ns = t.name.clone();
        let _results = DeleteOnDrop::namespace(&t.env, &format!("{ns}-results"));
        let repo = GitRepo::create(&t.env, &ns)?;
        let files = project_files(&ns);
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        repo.commit(&refs, "drift project")?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);

        let proxy = CountingProxy::start(t.client.clone()).await?;
        let dir = tempfile::Builder::new().prefix("kluctl-drift-").tempdir()?;
        let kubeconfig = dir.path().join("proxy.kubeconfig");
        proxy.write_kubeconfig(&kubeconfig)?;
        let ctl = KluctlController::start(&kubeconfig, &ns, dir.path(), 1)?;

        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
        let kd: KluctlDeployment = serde_json::from_value(json!({
            "apiVersion": "gitops.kluctl.io/v1beta1",
            "kind": "KluctlDeployment",
            "metadata": {"name": "drift", "namespace": ns},
            // A long interval: no validation or forced deploy is due in the reconciles below.
            "spec": {"interval": "10m", "target": "test", "source": {"git": {"url": url}}},
        }))?;
        api.create(&kube::api::PostParams::default(), &kd).await?;
        // 1. The first reconcile deploys; its drift detection already skips what it applied.
        let first = poll_for("the first deploy and drift detection", WAIT, || async {
            let kd = api.get("drift").await?;
            let s = kd.status.clone().unwrap_or_default();
            let deployed = s.last_deploy_result.as_ref().is_some_and(|d| d.new_objects > 0);
            Ok((deployed && s.last_drift_detection_result.is_some()).then_some(kd))
        })
        .await?;
        let s = first.status.clone().unwrap_or_default();
        let deploy = s.last_deploy_result.clone().unwrap_or_default();
        assert_eq!(
            usize::try_from(deploy.new_objects)?,
            OBJECTS,
            "first deploy: {deploy:?}"
        );
        assert!(deploy.errors.is_empty(), "first deploy: {:?}", deploy.errors);
        assert_eq!(s.last_drift_detection_result_message, "no drift");
        let requests = proxy.since(0);
        assert_eq!(
            dry_runs(&requests),
            0,
            "the drift detection after the deploy dry-runs nothing the deploy applied:\n  {}",
            requests.join("\n  ")
        );

        // 2. A reconcile with nothing changed: no dry-run apply, fewer requests than objects.
        let before = proxy.count();
        let kd = reconcile(&api, "drift", "unchanged-1").await?;
        let requests = proxy.since(before);
        eprintln!(
            "unchanged reconcile: {} requests for {OBJECTS} objects:\n  {}",
            requests.len(),
            requests.join("\n  ")
        );
        assert_eq!(dry_runs(&requests), 0, "no object was dry-run-applied");
        assert_eq!(per_object(&requests), Vec::<&String>::new());
        // The discriminator listing covers only the kinds the last full listing found (here
        // ConfigMap and Secret), not one LIST per served kind (about 55 on this cluster).
        let lists: Vec<&String> = requests
            .iter()
            .filter(|r| r.contains("labelSelector=kluctl.io"))
            .collect();
        assert_eq!(
            lists.len(),
            2,
            "discriminator listings:\n  {}",
            requests.join("\n  ")
        );
        assert!(
            requests.len() < 20,
            "{} requests for {OBJECTS} objects:\n  {}",
            requests.len(),
            requests.join("\n  ")
        );
        assert_eq!(
            kd.status
                .as_ref()
                .map(|s| s.last_drift_detection_result_message.as_str()),
            Some("no drift")
        );

        // 3. After a restart nothing is known in sync: the startup reconcile dry-runs the
        // Secrets (which the no-op check cannot vouch for) once; the next one skips them again.
        // This also shows that the proxy sees the dry runs the count above found none of.
        let drift_id = |kd: &KluctlDeployment| {
            kd.status
                .as_ref()
                .and_then(|s| s.last_drift_detection_result.as_ref())
                .map(|d| d.id.clone())
        };
        let last = drift_id(&kd);
        drop(ctl);
        let before = proxy.count();
        let _ctl = KluctlController::start(&kubeconfig, &ns, dir.path(), 2)?;
        poll_for("the drift detection of the startup reconcile", WAIT, || async {
            let kd = api.get("drift").await?;
            Ok((drift_id(&kd) != last).then_some(()))
        })
        .await?;
        let requests = proxy.since(before);
        assert_eq!(
            dry_runs(&requests),
            SECRETS,
            "after a restart every Secret is dry-run-applied once:\n  {}",
            requests.join("\n  ")
        );
        let before = proxy.count();
        reconcile(&api, "drift", "unchanged-2").await?;
        let requests = proxy.since(before);
        assert_eq!(dry_runs(&requests), 0, "{}", requests.join("\n  "));
        assert_eq!(per_object(&requests), Vec::<&String>::new());
        assert!(
            requests.len() < OBJECTS,
            "{} requests:\n  {}",
            requests.len(),
            requests.join("\n  ")
        );

        // 4. A change by someone else is found (its resourceVersion moved), and again on the
        // next reconcile (what drifted is not in sync, so it is not skipped).
        t.env.kubectl(&[
            "-n",
            &ns,
            "patch",
            "configmap",
            "c-3",
            "--type=merge",
            "-p",
            r#"{"data":{"k":"tampered"}}"#,
        ])?;
        t.env.kubectl(&[
            "-n",
            &ns,
            "patch",
            "secret",
            "s-7",
            "--type=merge",
            "-p",
            r#"{"stringData":{"k":"tampered"}}"#,
        ])?;
        for round in ["drifted-1", "drifted-2"] {
            let before = proxy.count();
            let kd = reconcile(&api, "drift", round).await?;
            let requests = proxy.since(before);
            let mut found = drifted(&kd);
            found.sort();
            assert_eq!(found, ["ConfigMap/c-3", "Secret/s-7"], "{round}");
            assert_eq!(
                kd.status
                    .as_ref()
                    .map(|s| s.last_drift_detection_result_message.as_str()),
                Some("2 chg"),
                "{round}"
            );
            // The changed ConfigMap may take two (kubectl's field manager conflicts first).
            let mut named: Vec<&str> = requests
                .iter()
                .filter(|r| r.contains("dryRun=All"))
                .filter_map(|r| r.split('?').next()?.rsplit('/').next())
                .collect();
            named.sort_unstable();
            named.dedup();
            assert_eq!(
                named,
                ["c-3", "s-7"],
                "{round}: only the changed objects are dry-run-applied:\n  {}",
                requests.join("\n  ")
            );
        }
        Ok(())
    }))
    .await
}
