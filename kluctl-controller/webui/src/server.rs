//! The HTTP server: the page, the JSON API, the live event stream and the actions.
//!
//! ```text
//!  GET  /                         the page (assets built into the binary)
//!  POST /auth/login, /auth/logout session cookie (password logins)
//!  GET  /auth/oidc/login          303 to the OIDC provider (also GET /auth/login, as Kluctl)
//!  GET  /auth/oidc/callback       back from the provider: 303 to the page with a session
//!                                 (also /auth/callback, the path Kluctl users registered)
//!  GET  /api/whoami               {role, user, needsLogin, staticLogin, oidc, oidcName}
//!  GET  /api/overview             every deployment and result, slim (from memory)
//!  GET  /api/events               server-sent events: `snapshot`, then `deployment` / `result`
//!  GET  /api/deployments/NS/NAME  the object (redacted for viewers) and its target's results
//!  GET  /api/results/ID           one stored result, whole (one Secret read)
//!  GET  /api/deployments/NS/NAME/logs   server-sent events `log`: the controller's lines of
//!                                       this KluctlDeployment (buffered, then live)
//!  POST /api/deployments/NS/NAME/actions/ACTION   admins only (see crate::actions)
//! ```
//!
//! With several clusters (`--context a --context b`, `--all-contexts`) every deployment and
//! result in the overview names its `cluster`, and the paths under `/api/deployments` and
//! `/api/results` take `?cluster=NAME` (without it: the first cluster).
//!
//! Everything but opening a result and acting is answered from the [`Model`] and the
//! [`LogHub`] (one reader of the controller's log, however many pages follow it); the apiserver
//! load does not grow with the number of open browsers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::Deserialize;
use serde_json::json;

use gitops_api::constants::KLUCTL_FIELD_MANAGER;
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use kluctl_engine::controller_logs::{LogFilter, LogSource};
use kluctl_engine::store;

use crate::actions::{Action, ActionError};
use crate::assets;
use crate::auth::{ACTION_HEADER, Auth, SESSION_COOKIE, SESSION_HOURS, cookie};
use crate::logs::{LogHub, SINCE, Subscription};
use crate::model::{Change, Model, ResultKey};
use crate::oidc::{CallbackQuery, LOGIN_STATE_SECONDS, LoginState, STATE_COOKIE};
use crate::view::{ObjKey, Role, json_for, redact_for_viewer};

/// How the server runs.
pub struct Options {
    /// Where to listen (`127.0.0.1:8080`; port 0 picks one).
    pub addr: SocketAddr,
    /// A prefix all paths are served under (`/kluctl` behind a shared ingress); empty for none.
    pub path_prefix: String,
    /// The namespace of the result store.
    pub results_namespace: String,
    /// How callers are authenticated.
    pub auth: Auth,
}

/// One cluster the server shows (`kluctl webui run --context a --context b`, `--all-contexts`).
pub struct Cluster {
    /// Its name in the page and the API: the kube context's name.
    pub name: String,
    /// The client acting on it.
    pub client: kube::Client,
    /// Where its kluctl-controller's log lines come from (the deployment pages' log panel);
    /// `None`: no log panel (`/logs` answers 404).
    pub logs: Option<LogSource>,
}

struct ClusterState {
    client: kube::Client,
    logs: Option<Logs>,
}

struct Shared {
    clusters: BTreeMap<String, ClusterState>,
    /// The cluster of requests that name none (the first given).
    default_cluster: String,
    model: Model,
    auth: Auth,
    results_namespace: String,
    prefix: String,
}

/// The `?cluster=NAME` of a request; without it, the first cluster.
#[derive(Deserialize, Default)]
struct At {
    cluster: Option<String>,
}

/// The cluster a request names, or the message saying it is unknown (answered with 404).
fn cluster<'a>(s: &'a Shared, at: &'a At) -> Result<(&'a str, &'a ClusterState), String> {
    let name = at.cluster.as_deref().unwrap_or(&s.default_cluster);
    s.clusters
        .get_key_value(name)
        .map(|(k, c)| (k.as_str(), c))
        .ok_or_else(|| {
            let known: Vec<&str> = s.clusters.keys().map(String::as_str).collect();
            format!("unknown cluster {name:?}; this server shows {}", known.join(", "))
        })
}

/// The log hub and its source (whose [`LogSource::not_before`] each page's filter applies).
struct Logs {
    hub: LogHub,
    source: LogSource,
}

type AppState = Arc<Shared>;

/// A running server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    watch: tokio::task::JoinHandle<Vec<()>>,
}

impl Running {
    /// Serves until the server fails (it does not end otherwise).
    ///
    /// # Errors
    /// Accepting connections failed.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        self.watch.abort();
    }
}

/// Binds `options.addr`, starts the watches of every cluster and serves.
///
/// # Errors
/// No cluster, two clusters of one name, or the address cannot be bound.
pub async fn start(clusters: Vec<Cluster>, options: Options) -> anyhow::Result<Running> {
    let names: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();
    let Some(default_cluster) = names.first().cloned() else {
        anyhow::bail!("the web UI needs at least one cluster");
    };
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
    {
        anyhow::bail!("the cluster {twice:?} is given twice");
    }
    let model = Model::new(names);
    let watch = tokio::spawn(futures::future::join_all(clusters.iter().map(|c| {
        crate::watch::run(
            c.name.clone(),
            c.client.clone(),
            options.results_namespace.clone(),
            model.clone(),
        )
    })));
    let prefix = normalize_prefix(&options.path_prefix);
    let clusters = clusters
        .into_iter()
        .map(|c| {
            let logs = c.logs.map(|source| Logs {
                hub: LogHub::for_source(source.clone()),
                source,
            });
            (
                c.name,
                ClusterState {
                    client: c.client,
                    logs,
                },
            )
        })
        .collect();
    let shared = Arc::new(Shared {
        clusters,
        default_cluster,
        model,
        auth: options.auth,
        results_namespace: options.results_namespace,
        prefix: prefix.clone(),
    });
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| anyhow::anyhow!("failed to listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr()?;
    let app = if prefix.is_empty() {
        router(shared)
    } else {
        // A nested "/" answers only the bare prefix; the page's own address ends with a slash.
        Router::new()
            .route(&format!("{prefix}/"), get(index).with_state(shared.clone()))
            .nest(&prefix, router(shared))
    };
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Running { addr, task, watch })
}

/// `kluctl` → `/kluctl`, `/` → empty.
fn normalize_prefix(p: &str) -> String {
    let p = p.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", assets::APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", assets::APP_CSS) }),
        )
        .route("/auth/login", post(login).get(oidc_login))
        .route("/auth/logout", post(logout))
        .route("/auth/oidc/login", get(oidc_login))
        .route("/auth/oidc/callback", get(oidc_callback))
        .route("/auth/callback", get(oidc_callback))
        .route("/api/whoami", get(whoami))
        .route("/api/overview", get(overview))
        .route("/api/events", get(events))
        .route("/api/deployments/{namespace}/{name}", get(deployment))
        .route("/api/deployments/{namespace}/{name}/logs", get(logs))
        .route("/api/deployments/{namespace}/{name}/actions/{action}", post(act))
        .route("/api/results/{id}", get(result))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index(State(s): State<AppState>) -> Response {
    let base = format!("{}/", s.prefix);
    let html = assets::INDEX_HTML.replace("<base href=\"/\">", &format!("<base href=\"{base}\">"));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// A body that is JSON already.
fn json_response(body: &str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.to_owned()).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The caller's role; `None`: answer [`unauthorized`].
fn role(s: &Shared, headers: &HeaderMap) -> Option<Role> {
    s.auth.role_of(headers, now())
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "log in first")
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

/// The path cookies are scoped to: the prefix, or `/`.
fn cookie_path(s: &Shared) -> &str {
    if s.prefix.is_empty() {
        "/"
    } else {
        s.prefix.as_str()
    }
}

fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn session_cookie(s: &Shared, value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        cookie_path(s)
    )
}

/// The login-state cookie: `SameSite=Lax`, or it would not come back from the provider.
fn state_cookie(s: &Shared, value: &str, max_age: i64) -> String {
    let secure = if s.auth.oidc().is_some_and(crate::oidc::Oidc::secure) {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{STATE_COOKIE}={value}; Path={}/auth; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        s.prefix
    )
}

async fn login(State(s): State<AppState>, Json(body): Json<LoginBody>) -> Response {
    if !s.auth.static_login() {
        return error(
            StatusCode::NOT_FOUND,
            "password logins are off (--auth-static-login-enabled=false); log in through OIDC",
        );
    }
    let Some(role) = s.auth.login(&body.user, &body.password) else {
        tracing::info!(user = %body.user, "webui login refused");
        return error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    };
    let value = s.auth.session(role, &body.user, now());
    let mut res = Json(json!({"role": role, "user": body.user})).into_response();
    set_cookie(&mut res, &session_cookie(&s, &value, SESSION_HOURS * 3600, false));
    res
}

async fn logout(State(s): State<AppState>) -> Response {
    let mut res = Json(json!({})).into_response();
    set_cookie(&mut res, &session_cookie(&s, "", 0, false));
    res
}

async fn whoami(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let caller = s.auth.caller_of(&headers, now());
    let oidc = s.auth.oidc();
    Json(json!({
        "role": caller.as_ref().map(|c| c.role),
        "user": caller.map(|c| c.user),
        "needsLogin": s.auth.needs_login(),
        "staticLogin": s.auth.static_login(),
        "oidc": oidc.is_some(),
        "oidcName": oidc.map(crate::oidc::Oidc::display_name),
    }))
    .into_response()
}

fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

async fn oidc_login(State(s): State<AppState>) -> Response {
    let (Some(oidc), Some(key)) = (s.auth.oidc(), s.auth.key()) else {
        return error(
            StatusCode::NOT_FOUND,
            "OIDC logins are off (no --auth-oidc-issuer-url)",
        );
    };
    let login = LoginState::new(now());
    let mut res = redirect(&oidc.authorize_url(&login));
    set_cookie(&mut res, &state_cookie(&s, &login.seal(key), LOGIN_STATE_SECONDS));
    res
}

async fn oidc_callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let (Some(oidc), Some(key)) = (s.auth.oidc(), s.auth.key()) else {
        return error(
            StatusCode::NOT_FOUND,
            "OIDC logins are off (no --auth-oidc-issuer-url)",
        );
    };
    let state = cookie(&headers, STATE_COOKIE);
    let mut res = match oidc.finish(&query, state.as_deref(), key, now()).await {
        Ok(id) => {
            tracing::info!(user = %id.user, role = ?id.role, "webui OIDC login");
            let mut res = redirect(&format!("{}/", s.prefix));
            let value = s.auth.session(id.role, &id.user, now());
            set_cookie(
                &mut res,
                &session_cookie(&s, &value, SESSION_HOURS * 3600, oidc.secure()),
            );
            res
        }
        Err(e) => {
            tracing::info!(error = %e, "webui OIDC login refused");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            login_failed(&s, &headers, status, &e.to_string())
        }
    };
    // One use only.
    set_cookie(&mut res, &state_cookie(&s, "", 0));
    res
}

/// A refused login: a small page for browsers, JSON for everyone else.
fn login_failed(s: &Shared, headers: &HeaderMap, status: StatusCode, message: &str) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if !wants_html {
        return error(status, message);
    }
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Login refused</title>\
         <h1>Login refused</h1><p id=\"login-error\">{escaped}</p><p><a href=\"{}/\">Back to the web UI</a></p>",
        s.prefix
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn overview(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if role(&s, &headers).is_none() {
        return unauthorized();
    }
    json_response(&s.model.snapshot_json())
}

async fn deployment(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Query(at): Query<At>,
) -> Response {
    let Some(role) = role(&s, &headers) else {
        return unauthorized();
    };
    let (cluster, _) = match cluster(&s, &at) {
        Ok(c) => c,
        Err(unknown) => return error(StatusCode::NOT_FOUND, unknown),
    };
    let key = ObjKey {
        cluster: cluster.to_owned(),
        namespace,
        name,
    };
    let Some(stored) = s.model.deployment(&key) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "KluctlDeployment {}/{} not found in cluster {cluster}",
                key.namespace, key.name
            ),
        );
    };
    // The model holds objects without managed fields already.
    let mut object: serde_json::Value = serde_json::from_str(&stored.object).unwrap_or_default();
    if role == Role::Viewer {
        redact_for_viewer(&mut object);
    }
    Json(json!({
        "deployment": stored.view,
        "object": object,
        "results": s.model.results_of(&stored.view),
    }))
    .into_response()
}

async fn result(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(at): Query<At>,
) -> Response {
    let Some(role) = role(&s, &headers) else {
        return unauthorized();
    };
    let (cluster, state) = match cluster(&s, &at) {
        Ok(c) => c,
        Err(unknown) => return error(StatusCode::NOT_FOUND, unknown),
    };
    let ns = &s.results_namespace;
    let key = ResultKey {
        cluster: cluster.to_owned(),
        id,
    };
    let id = &key.id;
    let read = match s.model.result_view(&key).map(|r| r.kind) {
        Some("validate") => store::get_validate_result(&state.client, ns, id)
            .await
            .map(|r| json_for(&r, role)),
        Some(_) => store::get_command_result(&state.client, ns, id)
            .await
            .map(|r| json_for(&r, role)),
        None => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no stored result with id {id} in namespace {ns} of cluster {cluster}"),
            );
        }
    };
    match read {
        Ok(v) => Json(json!({"summary": s.model.result_view(&key), "result": v})).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, kluctl_engine::error_chain(&e)),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ActionBody {
    objects_hash: Option<String>,
}

async fn act(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((namespace, name, action)): Path<(String, String, String)>,
    Query(at): Query<At>,
    body: Option<Json<ActionBody>>,
) -> Response {
    match role(&s, &headers) {
        Some(Role::Admin) => {}
        Some(Role::Viewer) => return error(StatusCode::FORBIDDEN, "viewers cannot act; log in as admin"),
        None => return unauthorized(),
    }
    if !headers.contains_key(ACTION_HEADER) {
        return error(
            StatusCode::FORBIDDEN,
            format!("actions must carry the {ACTION_HEADER} header"),
        );
    }
    let objects_hash = body.and_then(|Json(b)| b.objects_hash);
    let action = match Action::parse(&action, objects_hash) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (cluster, state) = match cluster(&s, &at) {
        Ok(c) => c,
        Err(unknown) => return error(StatusCode::NOT_FOUND, unknown),
    };
    let api: Api<KluctlDeployment> = Api::namespaced(state.client.clone(), &namespace);
    // The newest copy, not the model's: approval compares hashes against what is there now.
    let kd = match api.get_opt(&name).await {
        Ok(Some(kd)) => kd,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("KluctlDeployment {namespace}/{name} not found in cluster {cluster}"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("failed to read KluctlDeployment {namespace}/{name}: {e}"),
            );
        }
    };
    let request_value = jiff::Timestamp::now().to_string();
    let patch = match action.patch(&kd, &request_value) {
        Ok(p) => p,
        Err(e @ ActionError::HashChanged { .. }) => return error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let params = PatchParams {
        field_manager: Some(KLUCTL_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    if let Err(e) = api.patch(&name, &params, &Patch::Merge(&patch)).await {
        return error(
            StatusCode::BAD_GATEWAY,
            format!("failed to patch KluctlDeployment {namespace}/{name}: {e}"),
        );
    }
    tracing::info!(cluster, namespace, name, ?action, "webui action");
    let request = matches!(action, Action::Request(_)).then_some(request_value);
    Json(json!({"requestValue": request})).into_response()
}

/// One browser's stream: a snapshot, then every change rendered for its role.
fn stream(model: Model) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = model.subscribe();
    let first = Event::default().event("snapshot").data(&*model.snapshot_json());
    // A receive error is falling behind (Lagged) or the model gone (Closed): the stream ends and
    // the browser reconnects for a new snapshot.
    let changes = futures::stream::unfold((rx, model), |(mut rx, model)| async move {
        let change = rx.recv().await.ok()?;
        Some((Ok(render(&model, &change)), (rx, model)))
    });
    futures::StreamExt::chain(futures::stream::once(async move { Ok(first) }), changes)
}

fn json_string<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// The event of one change. The slim views carry no argument values, so viewers and admins get
/// the same events.
fn render(model: &Model, change: &Change) -> Event {
    match change {
        Change::Deployment(key) => {
            let stored = model.deployment(key);
            let view = stored.as_ref().map(|d| &d.view);
            Event::default()
                .event("deployment")
                .data(json_string(&json!({"key": key, "deployment": view})))
        }
        Change::Result(key) => {
            let view = model.result_view(key);
            Event::default().event("result").data(json_string(
                &json!({"cluster": key.cluster, "id": key.id, "result": view}),
            ))
        }
        Change::Resync => Event::default().event("snapshot").data(&*model.snapshot_json()),
    }
}

async fn events(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if role(&s, &headers).is_none() {
        return unauthorized();
    }
    Sse::new(stream(s.model.clone()))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// How long a browser waits before it reconnects a log stream that ended (the source failed or
/// ended): each reconnect opens the source again.
const LOG_RETRY: Duration = Duration::from_secs(15);

async fn logs(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Query(at): Query<At>,
) -> Response {
    if role(&s, &headers).is_none() {
        return unauthorized();
    }
    let (_, state) = match cluster(&s, &at) {
        Ok(c) => c,
        Err(unknown) => return error(StatusCode::NOT_FOUND, unknown),
    };
    let Some(logs) = &state.logs else {
        return error(
            StatusCode::NOT_FOUND,
            "controller logs are not configured on this server; kluctl webui run reads them from \
             the pods of --controller-namespace or from --controller-log-file",
        );
    };
    // Both roles read them: the controller keeps secrets out of its log (a rule of this project),
    // and what it does is what a viewer is there to follow.
    let filter = LogFilter {
        objects: Some(vec![(namespace, name)]),
        not_before: logs.source.not_before(SINCE),
        ..LogFilter::default()
    };
    Sse::new(log_stream(logs.hub.subscribe(), filter))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// One page's log stream: a `retry` hint, then a `log` event per line `filter` keeps. Ends when
/// the source failed or ended (the browser then reconnects, which opens it again).
fn log_stream(sub: Subscription, filter: LogFilter) -> impl Stream<Item = Result<Event, Infallible>> {
    let retry = Event::default().retry(LOG_RETRY).comment("controller logs");
    let lines = futures::stream::unfold((sub, filter), |(mut sub, filter)| async move {
        loop {
            let raw = sub.next().await?;
            if let Some(line) = filter.render(&raw) {
                let event = Event::default()
                    .event("log")
                    .data(json_string(&json!({ "line": line })));
                return Some((Ok(event), (sub, filter)));
            }
        }
    });
    futures::StreamExt::chain(futures::stream::once(async move { Ok(retry) }), lines)
}
