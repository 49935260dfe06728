//! The web UI server's API against the real apiserver, for each role: what a caller without a
//! session, a viewer and an admin may read and do, that a viewer never receives an argument
//! value, that every action is the merge patch `kluctl gitops` would make, and that the event
//! stream carries a change without a reload.
//!
//! The server runs in-process (`kluctl_webui::start`) with static passwords (and, for the OIDC
//! logins, the fake provider of `e2e::oidc`), its result store in the test's namespace. No
//! controller runs: the KluctlDeployment's status is written by the test, and the controller's
//! log is a file the test writes (`LogSource::File`, as for a controller running with
//! `--log-file`).
//!
//! Needs the environment of `make e2e-up`.

// One scenario per role, told start to finish.
#![allow(clippy::too_many_lines)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use e2e::TestNs;
use gitops_api::kluctl::results::{KluctlDeploymentInfo, ProjectKey, TargetKey};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use kluctl_engine::controller_logs::LogSource;
use kluctl_engine::result::CommandResult;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const SECRET_ARG: &str = "s3cr3t-arg-value-93f1";
const ADMIN_PW: &str = "admin-pw-e2e";
const VIEWER_PW: &str = "viewer-pw-e2e";

struct Server {
    base: String,
    http: reqwest::Client,
    _running: kluctl_webui::Running,
}

fn passwords() -> kluctl_webui::Passwords {
    kluctl_webui::Passwords {
        admin: Some(ADMIN_PW.to_owned()),
        viewer: Some(VIEWER_PW.to_owned()),
    }
}

impl Server {
    async fn start(t: &TestNs) -> anyhow::Result<Self> {
        Self::start_with(t, Some(passwords()), None, None).await
    }

    async fn start_with_logs(t: &TestNs, logs: Option<LogSource>) -> anyhow::Result<Self> {
        Self::start_with(t, Some(passwords()), None, logs).await
    }

    async fn start_with(
        t: &TestNs,
        passwords: Option<kluctl_webui::Passwords>,
        oidc: Option<kluctl_webui::oidc::Oidc>,
        logs: Option<LogSource>,
    ) -> anyhow::Result<Self> {
        Self::start_in(t, &["e2e"], passwords, oidc, logs).await
    }

    /// A server showing `clusters`, each one a client of the test's cluster under another name.
    async fn start_in(
        t: &TestNs,
        clusters: &[&str],
        passwords: Option<kluctl_webui::Passwords>,
        oidc: Option<kluctl_webui::oidc::Oidc>,
        logs: Option<LogSource>,
    ) -> anyhow::Result<Self> {
        let clusters = clusters
            .iter()
            .map(|name| kluctl_webui::Cluster {
                name: (*name).to_owned(),
                client: t.client.clone(),
                logs: logs.clone(),
            })
            .collect();
        let running = kluctl_webui::start(
            clusters,
            kluctl_webui::Options {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                path_prefix: "/ui".to_owned(),
                results_namespace: t.name.clone(),
                auth: kluctl_webui::Auth::Login(kluctl_webui::Logins {
                    passwords,
                    oidc: oidc.map(Box::new),
                    key: kluctl_webui::auth::random_key(),
                }),
            },
        )
        .await?;
        Ok(Self {
            base: format!("http://{}/ui", running.addr),
            http: reqwest::Client::new(),
            _running: running,
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }
}

/// Status and body text of a request.
async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<(u16, String)> {
    let res = req.send().await?;
    let status = res.status().as_u16();
    Ok((status, res.text().await?))
}

fn json_of(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

/// The KluctlDeployment `app` (manual, an argument holding a secret) and its status as a
/// controller would have written it; returns the project and target keys.
async fn create_deployment(t: &TestNs) -> anyhow::Result<(ProjectKey, TargetKey)> {
    let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &t.name);
    let kd: KluctlDeployment = serde_json::from_value(json!({
        "apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
        "metadata": {"name": "app", "namespace": t.name},
        "spec": {
            "interval": "1h", "target": "prod", "manual": true,
            "args": {"password": SECRET_ARG, "replicas": 2},
            "source": {"git": {"url": "https://git.example.invalid/app.git", "ref": {"branch": "main"}}},
        },
    }))?;
    api.create(&PostParams::default(), &kd).await?;
    let project = ProjectKey {
        repo_key: "git.example.invalid/app".to_owned(),
        sub_dir: String::new(),
    };
    let target = TargetKey {
        target_name: "prod".to_owned(),
        cluster_id: "e2e".to_owned(),
        discriminator: format!("e2e-{}", t.name),
    };
    api.patch_status(
        "app",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {
            "projectKey": project, "targetKey": target,
            "lastObjectsHash": "hash-1",
            "observedCommit": "main@sha1:0123456789abcdef",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ManualApprovalRequired",
                            "message": "waiting for approval", "lastTransitionTime": "2026-12-07T10:00:00Z"}],
        }})),
    )
    .await?;
    Ok((project, target))
}

/// A `command` result started at `start`, with `id` from `seed`.
fn command_result(
    seed: &str,
    project: &ProjectKey,
    target: &TargetKey,
    command: &str,
    start: &str,
) -> anyhow::Result<CommandResult> {
    let mut r = CommandResult {
        id: uuid_like(seed),
        project_key: project.clone(),
        target_key: target.clone(),
        ..CommandResult::default()
    };
    r.command.command = command.into();
    r.command.start_time = Some(start.parse()?);
    Ok(r)
}

/// A deploy result of `app` with the secret argument in its target, stored as the controller
/// stores it.
async fn store_result(t: &TestNs, project: &ProjectKey, target: &TargetKey) -> anyhow::Result<String> {
    let mut r = command_result(&t.name, project, target, "deploy", "2026-12-07T10:00:00Z")?;
    r.command.initiator = kluctl_engine::result::CommandInitiator::KluctlDeployment;
    r.command.end_time = Some("2026-12-07T10:00:05Z".parse()?);
    r.target.name = "prod".into();
    r.target.args = Some(serde_json::from_value(json!({"password": SECRET_ARG}))?);
    r.kluctl_deployment = Some(KluctlDeploymentInfo {
        name: "app".into(),
        namespace: t.name.clone(),
        ..KluctlDeploymentInfo::default()
    });
    kluctl_engine::store::write_command_result(&t.client, &t.name, &r, 5).await?;
    Ok(r.id)
}

fn uuid_like(seed: &str) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(seed.as_bytes());
    let hex = h.iter().fold(String::new(), |mut s, b| {
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
        s
    });
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Polls the overview (as admin, from the server's memory) until `check` holds.
async fn wait_overview(s: &Server, check: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = send(s.get("/api/overview").basic_auth("admin", Some(ADMIN_PW))).await?;
        anyhow::ensure!(status == 200, "overview: {status} {body}");
        let v = json_of(&body)?;
        if check(&v) {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "overview never matched; last: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has_deployment(v: &Value, ns: &str) -> bool {
    v["deployments"]
        .as_array()
        .is_some_and(|ds| ds.iter().any(|d| d["namespace"] == ns && d["name"] == "app"))
}

fn has_result(v: &Value, id: &str) -> bool {
    v["results"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["id"] == id))
}

/// The first SSE event of `kind` whose data satisfies `check`, reading `res` until `timeout`.
async fn next_event(
    res: &mut reqwest::Response,
    buf: &mut String,
    kind: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = "message";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = if e.trim() == kind { kind } else { "other" };
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if event == kind {
                let v = json_of(&data)?;
                if check(&v) {
                    return Ok(v);
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .with_context(|| format!("no '{kind}' event in time; unread: {buf}"))??
            .context("the event stream ended")?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn callers_without_a_session_get_nothing_and_viewers_see_no_argument_values_and_cannot_act()
-> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("webui_viewer", |t| async move {
        let s = Server::start(&t).await?;
        let (project, target) = create_deployment(&t).await?;
        let id = store_result(&t, &project, &target).await?;
        wait_overview(&s, |v| has_deployment(v, &t.name) && has_result(v, &id)).await?;

        // No session: every API path is refused, the page itself loads (it shows the login).
        for path in [
            "/api/overview".to_owned(),
            "/api/events".to_owned(),
            format!("/api/deployments/{}/app", t.name),
            format!("/api/results/{id}"),
        ] {
            let (status, body) = send(s.get(&path)).await?;
            assert_eq!(status, 401, "{path}: {body}");
        }
        let (status, page) = send(s.get("/")).await?;
        assert_eq!(status, 200);
        assert!(
            page.contains("<base href=\"/ui/\">"),
            "path prefix in the page: {page}"
        );
        let (status, _) = send(s.get("/api/overview").basic_auth("viewer", Some("wrong"))).await?;
        assert_eq!(status, 401, "a wrong password");

        // A viewer reads everything, with argument values replaced.
        let viewer = |r: reqwest::RequestBuilder| r.basic_auth("viewer", Some(VIEWER_PW));
        let (status, body) = send(viewer(s.get(&format!("/api/deployments/{}/app", t.name)))).await?;
        assert_eq!(status, 200, "{body}");
        assert!(
            !body.contains(SECRET_ARG),
            "viewer got the argument value: {body}"
        );
        let v = json_of(&body)?;
        assert_eq!(
            v["object"]["spec"]["args"],
            json!({"password": "*****", "replicas": "*****"})
        );
        assert_eq!(v["deployment"]["pendingApproval"], "hash-1");
        assert_eq!(
            v["results"][0]["id"],
            id.as_str(),
            "its result in the history: {v:#}"
        );
        let (status, body) = send(viewer(s.get(&format!("/api/results/{id}")))).await?;
        assert_eq!(status, 200, "{body}");
        assert!(
            !body.contains(SECRET_ARG),
            "viewer got the argument value: {body}"
        );
        assert_eq!(json_of(&body)?["result"]["target"]["args"]["password"], "*****");
        let (status, body) = send(viewer(s.get("/api/overview"))).await?;
        assert_eq!(status, 200);
        assert!(!body.contains(SECRET_ARG));
        let mut events = viewer(s.get("/api/events")).send().await?;
        assert_eq!(events.status().as_u16(), 200);
        let mut buf = String::new();
        let snapshot = next_event(&mut events, &mut buf, "snapshot", |_| true).await?;
        assert!(!snapshot.to_string().contains(SECRET_ARG));

        // ... and cannot act, whatever the action.
        for action in ["deploy", "suspend", "approve", "revoke", "reconcile"] {
            let (status, body) = send(
                viewer(s.post(&format!("/api/deployments/{}/app/actions/{action}", t.name)))
                    .header("x-kluctl-webui", "1")
                    .json(&json!({"objectsHash": "hash-1"})),
            )
            .await?;
            assert_eq!(status, 403, "{action}: {body}");
        }
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &t.name);
        let kd = api.get("app").await?;
        assert!(!kd.spec.suspend);
        assert_eq!(kd.spec.manual_objects_hash, None);
        assert!(
            kd.metadata.annotations.unwrap_or_default().is_empty(),
            "no request annotation"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn admins_act_through_the_same_patches_as_the_cli_and_the_stream_shows_changes() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("webui_admin", |t| async move {
        let s = Server::start(&t).await?;
        let (project, target) = create_deployment(&t).await?;
        store_result(&t, &project, &target).await?;
        wait_overview(&s, |v| has_deployment(v, &t.name)).await?;

        // Log in: a session cookie, no password on later requests.
        let (status, _) = send(
            s.post("/auth/login")
                .json(&json!({"user": "admin", "password": "nope"})),
        )
        .await?;
        assert_eq!(status, 401);
        let res = s
            .post("/auth/login")
            .json(&json!({"user": "admin", "password": ADMIN_PW}))
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), 200);
        let cookie = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("no session cookie")?
            .to_owned();
        let admin = |r: reqwest::RequestBuilder| r.header("cookie", cookie.clone());
        let (_, who) = send(admin(s.get("/api/whoami"))).await?;
        assert_eq!(json_of(&who)?["role"], "admin");
        let (_, body) = send(admin(s.get(&format!("/api/deployments/{}/app", t.name)))).await?;
        assert_eq!(
            json_of(&body)?["object"]["spec"]["args"]["password"],
            SECRET_ARG,
            "admins see values"
        );

        let mut events = admin(s.get("/api/events")).send().await?;
        let mut buf = String::new();
        next_event(&mut events, &mut buf, "snapshot", |_| true).await?;

        let act = |action: &str, body: Value, header: bool| {
            let mut r =
                admin(s.post(&format!("/api/deployments/{}/app/actions/{action}", t.name))).json(&body);
            if header {
                r = r.header("x-kluctl-webui", "1");
            }
            send(r)
        };
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &t.name);

        let (status, body) = act("suspend", json!({}), false).await?;
        assert_eq!(
            status, 403,
            "an action without the header (a cross-site form): {body}"
        );
        assert!(!api.get("app").await?.spec.suspend);

        let (status, body) = act("suspend", json!({}), true).await?;
        assert_eq!(status, 200, "{body}");
        assert!(api.get("app").await?.spec.suspend);
        // The stream shows it without a reload.
        let ns = t.name.clone();
        next_event(&mut events, &mut buf, "deployment", |v| {
            v["key"]["namespace"] == ns.as_str() && v["deployment"]["suspend"] == true
        })
        .await?;
        let (status, _) = act("resume", json!({}), true).await?;
        assert_eq!(status, 200);
        assert!(!api.get("app").await?.spec.suspend);

        let (status, body) = act("deploy", json!({}), true).await?;
        assert_eq!(status, 200, "{body}");
        let sent = json_of(&body)?["requestValue"]
            .as_str()
            .context("no requestValue")?
            .to_owned();
        let annotations = api.get("app").await?.metadata.annotations.unwrap_or_default();
        let request: Value = serde_json::from_str(
            annotations
                .get("kluctl.io/request-deploy")
                .context("no request annotation")?,
        )?;
        assert_eq!(request, json!({"requestValue": sent}));

        let (status, body) = act("approve", json!({"objectsHash": "hash-0"}), true).await?;
        assert_eq!(status, 409, "approving objects the admin has not seen: {body}");
        assert!(body.contains("changed"), "{body}");
        assert_eq!(api.get("app").await?.spec.manual_objects_hash, None);
        let (status, body) = act("approve", json!({"objectsHash": "hash-1"}), true).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            api.get("app").await?.spec.manual_objects_hash.as_deref(),
            Some("hash-1")
        );
        let (status, _) = act("revoke", json!({}), true).await?;
        assert_eq!(status, 200);
        assert_eq!(api.get("app").await?.spec.manual_objects_hash, None);
        let (status, body) = act("explode", json!({}), true).await?;
        assert_eq!(status, 400, "{body}");

        // A new stored result reaches the open stream.
        let diff = command_result(
            &format!("{}-2", t.name),
            &project,
            &target,
            "diff",
            "2026-12-07T11:00:00Z",
        )?;
        kluctl_engine::store::write_command_result(&t.client, &t.name, &diff, 5).await?;
        let second = diff.id;
        next_event(&mut events, &mut buf, "result", |v| {
            v["id"] == second.as_str() && v["result"]["command"] == "diff"
        })
        .await?;

        // Logging out ends the session cookie's use in the browser (the server answers with an
        // expired cookie).
        let res = admin(s.post("/auth/logout")).send().await?;
        let cleared = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        Ok(())
    })
    .await
}

/// A controller log line (the controller's JSON layout) of the KluctlDeployment `ns`/`name`.
fn log_line(ns: &str, name: &str, msg: &str, ts: Option<&str>) -> String {
    let mut v = json!({"level": "info", "msg": msg, "namespace": ns, "name": name,
                       "controller": "kluctldeployment", "reconcileID": "r-1"});
    if let Some(ts) = ts {
        v["ts"] = json!(ts);
    }
    format!("{v}\n")
}

#[tokio::test]
async fn the_log_stream_shows_this_deployments_controller_lines_buffered_then_live() -> anyhow::Result<()> {
    use std::io::Write as _;
    e2e::init_logging();
    TestNs::run("webui_logs", |t| async move {
        let ns = t.name.clone();
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("kluctl-controller.log");
        fs_err::write(
            &file,
            [
                log_line(&ns, "app", "an hour-old line", Some("2020-01-01T00:00:00Z")),
                log_line(&ns, "other", "buffered line of other", None),
                log_line(&ns, "app", "buffered line of app", None),
            ]
            .concat(),
        )?;
        let s = Server::start_with_logs(&t, Some(LogSource::File(file.clone()))).await?;
        let path = format!("/api/deployments/{ns}/app/logs");

        let (status, body) = send(s.get(&path)).await?;
        assert_eq!(status, 401, "no session: {body}");

        // A viewer reads them: the buffered line first, ...
        let mut res = s.get(&path).basic_auth("viewer", Some(VIEWER_PW)).send().await?;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        let mut buf = String::new();
        let first = next_event(&mut res, &mut buf, "log", |_| true).await?;
        assert_eq!(
            first["line"], "info buffered line of app",
            "neither the old line nor another deployment's: {first}"
        );

        // ... then a line appended after subscribing; the other deployment's line before it is
        // not sent.
        let mut f = fs_err::OpenOptions::new().append(true).open(&file)?;
        f.write_all(log_line(&ns, "other", "live line of other", None).as_bytes())?;
        f.write_all(log_line(&ns, "app", "live line of app", None).as_bytes())?;
        f.flush()?;
        let live = next_event(&mut res, &mut buf, "log", |_| true).await?;
        assert_eq!(live["line"], "info live line of app", "{live}");

        // An admin opening the page later gets the buffered lines of app too.
        let mut admin = s.get(&path).basic_auth("admin", Some(ADMIN_PW)).send().await?;
        let mut abuf = String::new();
        next_event(&mut admin, &mut abuf, "log", |v| {
            v["line"] == "info buffered line of app"
        })
        .await?;
        next_event(&mut admin, &mut abuf, "log", |v| {
            v["line"] == "info live line of app"
        })
        .await?;

        // A server without a log source says so.
        let plain = Server::start(&t).await?;
        let (status, body) = send(plain.get(&path).basic_auth("viewer", Some(VIEWER_PW))).await?;
        assert_eq!(status, 404, "{body}");
        assert!(
            json_of(&body)?["error"]
                .as_str()
                .is_some_and(|e| e.contains("logs are not configured")),
            "{body}"
        );
        Ok(())
    })
    .await
}

const CLIENT_ID: &str = "kluctl-webui-e2e";
const CLIENT_SECRET: &str = "oidc-client-s3cr3t-7c41";
/// The public address the provider sends browsers back to; the test forwards to the server, as
/// an ingress would.
const PUBLIC_CALLBACK: &str = "https://kluctl.example.test/ui/auth/callback";

async fn oidc_server(t: &TestNs, idp: &e2e::oidc::FakeOidc) -> anyhow::Result<Server> {
    oidc_server_with_secret(t, idp, CLIENT_SECRET).await
}

async fn oidc_server_with_secret(
    t: &TestNs,
    idp: &e2e::oidc::FakeOidc,
    secret: &str,
) -> anyhow::Result<Server> {
    let oidc = kluctl_webui::oidc::Oidc::discover(kluctl_webui::oidc::OidcConfig {
        issuer_url: idp.issuer.clone(),
        display_name: "Fake IdP".to_owned(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: kluctl_webui::oidc::ClientSecret::new(secret.to_owned()),
        redirect_url: PUBLIC_CALLBACK.to_owned(),
        scopes: vec!["email".to_owned()],
        params: vec![("prompt".to_owned(), "login".to_owned())],
        user_claim: "email".to_owned(),
        group_claim: "groups".to_owned(),
        admins_groups: vec!["kluctl-admins".to_owned()],
        viewers_groups: vec!["kluctl-viewers".to_owned(), "devs".to_owned()],
    })
    .await?;
    let mut s = Server::start_with(t, Some(passwords()), Some(oidc), None).await?;
    s.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok(s)
}

/// Every status line, header and body the browser saw, to search for leaks.
#[derive(Default)]
struct Transcript(String);

impl Transcript {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, HeaderMap, String)> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await?;
        let _ = writeln!(self.0, "{status} {headers:?}\n{body}");
        Ok((status, headers, body))
    }
}

fn location(headers: &HeaderMap) -> anyhow::Result<String> {
    Ok(headers
        .get("location")
        .context("no Location header")?
        .to_str()?
        .to_owned())
}

/// The `name=value` of cookie `name` among the Set-Cookie headers, with its attributes.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            (pair.to_owned(), attrs.to_owned())
        })
}

/// The callback a browser would reach: the provider's redirect, sent to the server.
fn to_server(s: &Server, redirect: &str) -> anyhow::Result<String> {
    let rest = redirect
        .strip_prefix("https://kluctl.example.test/ui")
        .with_context(|| format!("the provider redirected elsewhere: {redirect}"))?;
    Ok(format!("{}{rest}", s.base))
}

/// Starts a login: the login-state cookie and the provider's redirect back to the web UI.
async fn start_login(s: &Server, tr: &mut Transcript) -> anyhow::Result<(String, String)> {
    let (status, headers, _) = tr.send(s.get("/auth/oidc/login")).await?;
    assert_eq!(status, 303, "login redirects to the provider");
    let (state_cookie, attrs) =
        set_cookie(&headers, "kluctl-webui-oidc-login").context("no login-state cookie")?;
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/ui/auth", "Secure"] {
        assert!(attrs.contains(attr), "login-state cookie lacks {attr}: {attrs}");
    }
    let (status, headers, body) = tr.send(s.http.get(location(&headers)?)).await?;
    assert_eq!(status, 303, "the provider logs in at once: {body}");
    Ok((state_cookie, to_server(s, &location(&headers)?)?))
}

/// A whole login as `user` in `groups`: the callback's status, body and session cookie.
async fn oidc_login(
    s: &Server,
    idp: &e2e::oidc::FakeOidc,
    tr: &mut Transcript,
    user: &str,
    groups: &[&str],
) -> anyhow::Result<(u16, String, Option<String>)> {
    idp.log_in_as(user, groups);
    let (state_cookie, callback) = start_login(s, tr).await?;
    let (status, headers, body) = tr
        .send(s.http.get(callback).header("cookie", state_cookie))
        .await?;
    let cleared =
        set_cookie(&headers, "kluctl-webui-oidc-login").context("the login state is not cleared")?;
    assert!(cleared.1.contains("Max-Age=0"), "{cleared:?}");
    let session = set_cookie(&headers, "kluctl-webui-session").map(|(pair, attrs)| {
        assert!(
            attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
            "{attrs}"
        );
        pair
    });
    if status == 303 {
        assert_eq!(location(&headers)?, "/ui/", "back to the page");
    }
    Ok((status, body, session))
}

#[tokio::test]
async fn oidc_groups_give_admin_or_viewer_or_nothing_and_the_client_secret_never_leaves() -> anyhow::Result<()>
{
    e2e::init_logging();
    TestNs::run("webui_oidc", |t| async move {
        let idp = e2e::oidc::FakeOidc::start(CLIENT_ID, CLIENT_SECRET).await?;
        let s = oidc_server(&t, &idp).await?;
        create_deployment(&t).await?;
        wait_overview(&s, |v| has_deployment(v, &t.name)).await?;
        let mut tr = Transcript::default();

        // The page learns which logins exist.
        let (_, _, who) = tr.send(s.get("/api/whoami")).await?;
        let who = json_of(&who)?;
        assert_eq!(who["role"], Value::Null);
        assert_eq!(
            (who["oidc"].clone(), who["staticLogin"].clone()),
            (json!(true), json!(true))
        );
        assert_eq!(who["oidcName"], "Fake IdP");

        // An admin: the provider saw PKCE S256, state, nonce, openid and the extra parameter.
        let (status, body, session) =
            oidc_login(&s, &idp, &mut tr, "alice@example.com", &["devs", "kluctl-admins"]).await?;
        assert_eq!(status, 303, "{body}");
        let admin = session.context("no session for the admin")?;
        let asked = idp.authorize_requests().pop().context("no authorize request")?;
        assert_eq!(asked["code_challenge_method"], "S256");
        assert_eq!(asked["scope"], "openid email");
        assert_eq!(asked["prompt"], "login");
        assert_eq!(asked["redirect_uri"], PUBLIC_CALLBACK);
        assert!(!asked["nonce"].is_empty() && !asked["state"].is_empty());
        let (_, _, who) = tr.send(s.get("/api/whoami").header("cookie", &admin)).await?;
        let who = json_of(&who)?;
        assert_eq!(
            (who["role"].clone(), who["user"].clone()),
            (json!("admin"), json!("alice@example.com"))
        );
        let act = |cookie: &str, action: &str| {
            s.post(&format!("/api/deployments/{}/app/actions/{action}", t.name))
                .header("cookie", cookie.to_owned())
                .header("x-kluctl-webui", "1")
                .json(&json!({}))
        };
        let (status, _, body) = tr.send(act(&admin, "suspend")).await?;
        assert_eq!(status, 200, "admins act: {body}");
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &t.name);
        assert!(api.get("app").await?.spec.suspend);

        // A viewer reads but cannot act.
        let (status, body, session) = oidc_login(&s, &idp, &mut tr, "bob@example.com", &["devs"]).await?;
        assert_eq!(status, 303, "{body}");
        let viewer = session.context("no session for the viewer")?;
        let (_, _, who) = tr.send(s.get("/api/whoami").header("cookie", &viewer)).await?;
        assert_eq!(json_of(&who)?["role"], "viewer");
        let (status, _, _) = tr.send(s.get("/api/overview").header("cookie", &viewer)).await?;
        assert_eq!(status, 200);
        let (status, _, body) = tr.send(act(&viewer, "resume")).await?;
        assert_eq!(status, 403, "viewers cannot act: {body}");
        assert!(api.get("app").await?.spec.suspend);

        // Neither group: refused, naming the user and the groups that would do.
        let (status, body, session) = oidc_login(&s, &idp, &mut tr, "eve@example.com", &["ops"]).await?;
        assert_eq!(status, 403, "{body}");
        assert_eq!(session, None);
        for needed in ["eve@example.com", "kluctl-admins", "kluctl-viewers"] {
            assert!(body.contains(needed), "the refusal names {needed}: {body}");
        }

        assert!(
            idp.refusals().is_empty(),
            "every code, secret and verifier checked out: {:?}",
            idp.refusals()
        );
        assert!(!tr.0.is_empty());
        assert!(
            !tr.0.contains(CLIENT_SECRET),
            "the client secret reached the browser"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn oidc_callbacks_with_a_tampered_state_or_without_the_login_cookie_are_refused() -> anyhow::Result<()>
{
    e2e::init_logging();
    TestNs::run("webui_oidc_state", |t| async move {
        let idp = e2e::oidc::FakeOidc::start(CLIENT_ID, CLIENT_SECRET).await?;
        let s = oidc_server(&t, &idp).await?;
        idp.log_in_as("alice@example.com", &["kluctl-admins"]);
        let mut tr = Transcript::default();

        let (state_cookie, callback) = start_login(&s, &mut tr).await?;
        let mut url = reqwest::Url::parse(&callback)?;
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        url.query_pairs_mut().clear().extend_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.as_str(), if k == "state" { "forged-state" } else { v.as_str() })),
        );
        let (status, headers, body) = tr.send(s.http.get(url).header("cookie", &state_cookie)).await?;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("state parameter does not match"), "{body}");
        assert_eq!(set_cookie(&headers, "kluctl-webui-session"), None);

        let (_, callback) = start_login(&s, &mut tr).await?;
        let (status, headers, body) = tr.send(s.http.get(&callback)).await?;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("no login-state cookie"), "{body}");
        assert_eq!(set_cookie(&headers, "kluctl-webui-session"), None);

        // A login-state cookie of another login does not fit this callback's state either.
        let (other_cookie, _) = start_login(&s, &mut tr).await?;
        let (_, callback) = start_login(&s, &mut tr).await?;
        let (status, _, body) = tr
            .send(s.http.get(&callback).header("cookie", &other_cookie))
            .await?;
        assert_eq!(status, 400, "{body}");
        assert!(!tr.0.contains(CLIENT_SECRET));

        // The provider rotates its keys: the server reads the key set again for the new kid.
        idp.rotate_key()?;
        let (status, body, session) =
            oidc_login(&s, &idp, &mut tr, "alice@example.com", &["kluctl-admins"]).await?;
        assert_eq!(status, 303, "a token signed with the new key: {body}");
        assert!(session.is_some());

        // A wrong client secret: the provider refuses the code, the page hears why, not the secret.
        let wrong = "wrong-client-s3cr3t-19ad";
        let s = oidc_server_with_secret(&t, &idp, wrong).await?;
        let (status, body, session) =
            oidc_login(&s, &idp, &mut tr, "alice@example.com", &["kluctl-admins"]).await?;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("invalid_client"), "{body}");
        assert_eq!(session, None);
        assert_eq!(idp.refusals(), ["wrong client credentials"]);
        assert!(!tr.0.contains(wrong));
        Ok(())
    })
    .await
}

fn in_cluster(v: &Value, list: &str, cluster: &str, check: impl Fn(&Value) -> bool) -> bool {
    v[list]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["cluster"] == cluster && check(i)))
}

#[tokio::test]
async fn one_server_shows_several_clusters_each_under_its_own_name() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("webui_clusters", |t| async move {
        let ns = t.name.clone();
        let (project, target) = create_deployment(&t).await?;
        let id = store_result(&t, &project, &target).await?;
        // Two names for the test's cluster: each holds its own copy of every object.
        let s = Server::start_in(&t, &["east", "west"], Some(passwords()), None, None).await?;
        let v = wait_overview(&s, |v| {
            ["east", "west"].iter().all(|c| {
                in_cluster(v, "deployments", c, |d| {
                    d["namespace"] == ns.as_str() && d["name"] == "app"
                }) && in_cluster(v, "results", c, |r| r["id"] == id.as_str())
            }) && v["synced"] == true
        })
        .await?;
        assert_eq!(v["clusters"], json!(["east", "west"]), "in the order given");

        // A page names its cluster; without one it is the first cluster's.
        for (query, cluster) in [("?cluster=west", "west"), ("", "east")] {
            let (status, body) = send(
                s.get(&format!("/api/deployments/{ns}/app{query}"))
                    .basic_auth("viewer", Some(VIEWER_PW)),
            )
            .await?;
            assert_eq!(status, 200, "{body}");
            let page = json_of(&body)?;
            assert_eq!(page["deployment"]["cluster"], cluster, "{page:#}");
            assert!(
                in_cluster(&page, "results", cluster, |r| r["id"] == id.as_str()),
                "its results are its cluster's: {page:#}"
            );
        }
        let (status, body) = send(
            s.get(&format!("/api/results/{id}?cluster=west"))
                .basic_auth("viewer", Some(VIEWER_PW)),
        )
        .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(json_of(&body)?["summary"]["cluster"], "west");

        // A cluster the server does not show: 404 naming the ones it does, nothing patched.
        for req in [
            s.get(&format!("/api/deployments/{ns}/app?cluster=north")),
            s.get(&format!("/api/results/{id}?cluster=north")),
            s.post(&format!(
                "/api/deployments/{ns}/app/actions/suspend?cluster=north"
            ))
            .header("x-kluctl-webui", "1"),
        ] {
            let (status, body) = send(req.basic_auth("admin", Some(ADMIN_PW))).await?;
            assert_eq!(status, 404, "{body}");
            assert!(
                body.contains("unknown cluster \\\"north\\\"") && body.contains("east, west"),
                "{body}"
            );
        }
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
        assert!(!api.get("app").await?.spec.suspend, "nothing was patched");

        // An action through the second cluster's client.
        let (status, body) = send(
            s.post(&format!("/api/deployments/{ns}/app/actions/suspend?cluster=west"))
                .header("x-kluctl-webui", "1")
                .basic_auth("admin", Some(ADMIN_PW)),
        )
        .await?;
        assert_eq!(status, 200, "{body}");
        assert!(api.get("app").await?.spec.suspend);
        wait_overview(&s, |v| {
            ["east", "west"].iter().all(|c| {
                in_cluster(v, "deployments", c, |d| {
                    d["namespace"] == ns.as_str() && d["name"] == "app" && d["suspend"] == true
                })
            })
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn kluctl_webui_run_shows_the_contexts_it_is_given() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("webui_contexts", |t| async move {
        let dir = tempfile::tempdir()?;
        let kubeconfig = e2e::webui::two_context_kubeconfig(
            std::path::Path::new(t.env.get("E2E_KUBECONFIG_ADMIN")?),
            dir.path(),
        )?;
        let http = reqwest::Client::new();
        for (flags, expected) in [
            (vec!["--all-contexts"], json!(["ctx-a", "ctx-b"])),
            (
                vec!["--context", "ctx-b", "--context", "ctx-a"],
                json!(["ctx-b", "ctx-a"]),
            ),
            (vec![], json!(["ctx-a"])),
        ] {
            let mut args = vec!["--kubeconfig", kubeconfig.to_str().context("path")?];
            args.extend(["--command-result-namespace", &t.name]);
            args.extend(flags.iter().copied());
            let webui = e2e::webui::Webui::start(&args)?;
            let v: Value = http
                .get(format!("{}api/overview", webui.url))
                .send()
                .await?
                .json()
                .await?;
            assert_eq!(v["clusters"], expected, "kluctl webui run {args:?}");
        }
        Ok(())
    })
    .await
}
