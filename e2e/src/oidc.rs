//! A small fake OIDC provider for the web UI's login tests: discovery, JWKS, an authorize
//! endpoint that logs the configured user in at once, and a token endpoint that checks what a
//! real provider checks (the code, once; the redirect URI; the client secret; the PKCE verifier
//! against the challenge) and returns an RS256 ID token signed with a key made in-process.
//!
//! ```text
//!  ISSUER = http://127.0.0.1:PORT/realms/test
//!  GET  ISSUER/.well-known/openid-configuration
//!  GET  ISSUER/jwks
//!  GET  ISSUER/authorize   records the request, 303 to redirect_uri?code=…&state=…
//!  POST ISSUER/token       client_secret_basic; records refusals
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use aws_lc_rs::encoding::AsDer as _;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// One code handed out by the authorize endpoint.
struct Grant {
    redirect_uri: String,
    nonce: String,
    challenge: String,
    user: String,
    groups: Vec<String>,
}

struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
    key: EncodingKey,
    jwk: Jwk,
    kid: String,
    user: (String, Vec<String>),
    grants: HashMap<String, Grant>,
    authorize_requests: Vec<HashMap<String, String>>,
    refusals: Vec<String>,
}

type Shared = Arc<Mutex<Provider>>;

/// A running fake provider; stops when dropped.
pub struct FakeOidc {
    /// The issuer URL.
    pub issuer: String,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo (the third element of its outer
/// SEQUENCE, an OCTET STRING): jsonwebtoken's aws-lc backend signs RSA with PKCS#1.
fn pkcs1_of_pkcs8(der: &[u8]) -> anyhow::Result<&[u8]> {
    fn element(der: &[u8], at: usize) -> anyhow::Result<(u8, usize, usize)> {
        let short = |i: usize| der.get(i).copied().context("truncated PKCS#8 key");
        let first = short(at + 1)?;
        if first < 0x80 {
            return Ok((short(at)?, 2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        let bytes = der.get(at + 2..at + 2 + n).context("truncated PKCS#8 key")?;
        let len = bytes.iter().fold(0, |acc, b| (acc << 8) | usize::from(*b));
        Ok((short(at)?, 2 + n, len))
    }
    let (tag, mut at, _) = element(der, 0)?;
    anyhow::ensure!(tag == 0x30, "PKCS#8 key is no SEQUENCE");
    for _ in 0..2 {
        let (_, h, l) = element(der, at)?;
        at += h + l;
    }
    let (tag, h, l) = element(der, at)?;
    anyhow::ensure!(tag == 0x04, "PKCS#8 key holds no OCTET STRING");
    der.get(at + h..at + h + l).context("truncated PKCS#8 key")
}

/// A fresh RSA 2048 signing key and its public JWK, named `kid`.
fn signing_key(kid: &str) -> anyhow::Result<(EncodingKey, Jwk)> {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| anyhow::anyhow!("failed to generate an RSA key: {e}"))?;
    let pkcs8 = pair
        .as_der()
        .map_err(|e| anyhow::anyhow!("failed to encode the RSA key: {e}"))?;
    let key = EncodingKey::from_rsa_der(pkcs1_of_pkcs8(pkcs8.as_ref())?);
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
    jwk.common.key_id = Some(kid.to_owned());
    Ok((key, jwk))
}

impl FakeOidc {
    /// Starts a provider on 127.0.0.1 (a free port) for one client.
    ///
    /// # Errors
    /// No key or no port.
    pub async fn start(client_id: &str, client_secret: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://{}/realms/test", listener.local_addr()?);
        let kid = "fake-oidc-1".to_owned();
        let (key, jwk) = signing_key(&kid)?;
        let state = Arc::new(Mutex::new(Provider {
            issuer: issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            key,
            jwk,
            kid,
            user: ("nobody@example.com".to_owned(), Vec::new()),
            grants: HashMap::new(),
            authorize_requests: Vec::new(),
            refusals: Vec::new(),
        }));
        let routes = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        let app = Router::new().nest("/realms/test", routes);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { issuer, state, task })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Provider> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next logins are `user` with `groups`.
    pub fn log_in_as(&self, user: &str, groups: &[&str]) {
        self.lock().user = (user.to_owned(), groups.iter().map(|g| (*g).to_owned()).collect());
    }

    /// Replaces the signing key with a new one under a new key id (only the new one is in the
    /// key set), as a provider rotating its keys does.
    ///
    /// # Errors
    /// No key.
    pub fn rotate_key(&self) -> anyhow::Result<()> {
        let kid = format!("fake-oidc-{}", uuid::Uuid::new_v4());
        let (key, jwk) = signing_key(&kid)?;
        let mut p = self.lock();
        (p.key, p.jwk, p.kid) = (key, jwk, kid);
        Ok(())
    }

    /// The query of every authorization request so far.
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.lock().authorize_requests.clone()
    }

    /// Why the token endpoint refused requests so far.
    pub fn refusals(&self) -> Vec<String> {
        self.lock().refusals.clone()
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Provider> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let issuer = lock(&s).issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn jwks(State(s): State<Shared>) -> Json<JwkSet> {
    Json(JwkSet {
        keys: vec![lock(&s).jwk.clone()],
    })
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_owned()).into_response()
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut p = lock(&s);
    p.authorize_requests.push(q.clone());
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    if field("client_id") != p.client_id || field("response_type") != "code" {
        return bad_request("unknown client or response_type");
    }
    if field("code_challenge_method") != "S256" || field("code_challenge").is_empty() {
        return bad_request("PKCE S256 is required");
    }
    let Ok(mut back) = url::Url::parse(&field("redirect_uri")) else {
        return bad_request("no redirect_uri");
    };
    let code = uuid::Uuid::new_v4().to_string();
    let (user, groups) = p.user.clone();
    p.grants.insert(
        code.clone(),
        Grant {
            redirect_uri: field("redirect_uri"),
            nonce: field("nonce"),
            challenge: field("code_challenge"),
            user,
            groups,
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, back.to_string())]).into_response()
}

/// The client id and secret of a basic `Authorization` header (each form-decoded).
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

fn refuse(p: &mut Provider, status: StatusCode, error: &str, why: &str) -> Response {
    p.refusals.push(why.to_owned());
    (status, Json(json!({"error": error, "error_description": why}))).into_response()
}

async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut p = lock(&s);
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    if basic_client(&headers) != Some((p.client_id.clone(), p.client_secret.clone())) {
        return refuse(
            &mut p,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "wrong client credentials",
        );
    }
    if field("grant_type") != "authorization_code" {
        return refuse(
            &mut p,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "not authorization_code",
        );
    }
    // A code works once.
    let Some(grant) = p.grants.remove(&field("code")) else {
        return refuse(
            &mut p,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if grant.redirect_uri != field("redirect_uri") {
        return refuse(
            &mut p,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri differs",
        );
    }
    if b64url(&Sha256::digest(field("code_verifier").as_bytes())) != grant.challenge {
        return refuse(
            &mut p,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier does not match the challenge",
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = json!({
        "iss": p.issuer,
        "aud": p.client_id,
        "sub": format!("id-{}", grant.user),
        "email": grant.user,
        "groups": grant.groups,
        "nonce": grant.nonce,
        "iat": now,
        "exp": now + 300,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(p.kid.clone());
    match jsonwebtoken::encode(&header, &claims, &p.key) {
        Ok(id_token) => Json(json!({
            "access_token": uuid::Uuid::new_v4().to_string(),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }))
        .into_response(),
        Err(e) => refuse(
            &mut p,
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &format!("signing failed: {e}"),
        ),
    }
}
