//! OIDC logins: the authorization code flow with PKCE (S256), `state` and `nonce`, as Kluctl's
//! web UI offers them (`--auth-oidc-*` flags, same meaning).
//!
//! ```text
//!  browser ── GET auth/oidc/login ──► server: new LoginState (state, nonce, PKCE verifier)
//!          ◄─ 303 to the provider's authorization endpoint + signed login-state cookie
//!  browser ── log in at the provider ──► 303 back to the redirect URL (?code=…&state=…)
//!  browser ── GET auth/oidc/callback ─► server: open the login-state cookie, compare state,
//!          exchange the code (+ verifier, client secret) at the token endpoint, verify the ID
//!          token (JWKS signature, iss, aud, exp, nonce), map its groups to a role
//!          ◄─ 303 to the page + session cookie (the same kind password logins get)
//! ```
//!
//! Nothing is stored on the server between the two requests: the state, nonce and verifier
//! travel in a short-lived cookie signed with the session key ([`LoginState`]). The provider's
//! discovery document is read once at start ([`Oidc::discover`]); its key set is cached and read
//! again when a token names a key it does not hold (the provider rotated its keys).
//!
//! Crates: ID tokens are checked with `jsonwebtoken` on its `aws-lc-rs` backend (rustls already
//! brings aws-lc-rs into the binary, so this adds jsonwebtoken, `signature` and little else);
//! discovery, key set and token requests go through the workspace's reqwest 0.13 (rustls).
//! `openidconnect` would have done the whole flow but pulls in a second reqwest major and
//! RustCrypto's RSA and curve crates next to aws-lc-rs.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{random_key, sign};
use crate::view::Role;

/// The login-state cookie's name.
pub const STATE_COOKIE: &str = "kluctl-webui-oidc-login";

/// How long a login at the provider may take before the login-state cookie expires.
pub const LOGIN_STATE_SECONDS: i64 = 600;

/// The paths (under the path prefix) the redirect URL may end with: ours and Kluctl's.
pub const CALLBACK_PATHS: [&str; 2] = ["/auth/oidc/callback", "/auth/callback"];

/// Signature algorithms accepted for ID tokens (never `none` or a symmetric one).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// The OIDC client secret; it never prints.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// What the `--auth-oidc-*` flags say.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL (`--auth-oidc-issuer-url`).
    pub issuer_url: String,
    /// Shown on the login button (`--auth-oidc-display-name`).
    pub display_name: String,
    /// `--auth-oidc-client-id`.
    pub client_id: String,
    /// Read from the Secret `--auth-oidc-client-secret-name`, key `--auth-oidc-client-secret-key`.
    pub client_secret: ClientSecret,
    /// The redirect URL registered with the provider (`--auth-oidc-redirect-url`).
    pub redirect_url: String,
    /// `--auth-oidc-scope`; `openid` is added when missing.
    pub scopes: Vec<String>,
    /// Extra authorization request parameters (`--auth-oidc-param KEY=VALUE`).
    pub params: Vec<(String, String)>,
    /// The claim holding the user name (`--auth-oidc-user-claim`, default `email`).
    pub user_claim: String,
    /// The claim holding the groups (`--auth-oidc-group-claim`, default `groups`).
    pub group_claim: String,
    /// Members of any of these groups are admins (`--auth-oidc-admins-group`).
    pub admins_groups: Vec<String>,
    /// Members of any of these groups are viewers (`--auth-oidc-viewers-group`).
    pub viewers_groups: Vec<String>,
}

/// The parts of the discovery document we use.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    Basic,
    Post,
}

/// An OIDC provider, discovered.
#[derive(Debug)]
pub struct Oidc {
    config: OidcConfig,
    discovery: Discovery,
    client_auth: ClientAuth,
    http: reqwest::Client,
    keys: Mutex<JwkSet>,
}

/// Starting OIDC failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client for OIDC")]
    Client(#[source] reqwest::Error),
    /// A flag is missing or malformed.
    #[error("invalid OIDC configuration: {0}")]
    Config(String),
    /// The discovery document could not be read.
    #[error("failed to read the OIDC discovery document {url} of issuer {issuer:?}")]
    Discovery {
        /// The issuer URL.
        issuer: String,
        /// The document's URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The discovery document names another issuer.
    #[error(
        "the OIDC discovery document {url} names issuer {found:?}, not {expected:?} (--auth-oidc-issuer-url must be the exact issuer)"
    )]
    IssuerMismatch {
        /// The document's URL.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The document's issuer.
        found: String,
    },
    /// The discovery document's endpoints are unusable.
    #[error("the OIDC discovery document {url} has an invalid {field} {value:?}")]
    Endpoint {
        /// The document's URL.
        url: String,
        /// Which endpoint.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The provider's key set could not be read.
    #[error("failed to read the OIDC key set {url}")]
    Jwks {
        /// The key set's URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or a header that cannot be read.
    #[error("the ID token is malformed: {0}")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// Signed with an algorithm we do not accept.
    #[error(
        "the ID token is signed with {0:?}, which is not accepted (RS256/384/512, PS256/384/512, ES256/384)"
    )]
    Algorithm(Algorithm),
    /// No key of the key set matches the token's `kid`.
    #[error("the ID token is signed with key {}, which the provider's key set {url} does not hold", kid_name(kid.as_deref()))]
    UnknownKey {
        /// The token's key id.
        kid: Option<String>,
        /// The key set's URL.
        url: String,
    },
    /// The key of the key set is unusable for the token's algorithm.
    #[error("key {} of the provider's key set cannot check a {alg:?} signature", kid_name(kid.as_deref()))]
    KeyMismatch {
        /// The token's key id.
        kid: Option<String>,
        /// The token's algorithm.
        alg: Algorithm,
    },
    /// Signature, issuer, audience or expiry are wrong.
    #[error("the ID token is invalid: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// The nonce is not this login's.
    #[error("the ID token's nonce does not match this login")]
    Nonce,
    /// Issued to another client (`azp`).
    #[error("the ID token was issued to client {0:?}, not to this one")]
    AuthorizedParty(String),
}

fn kid_name(kid: Option<&str>) -> String {
    kid.map_or_else(|| "(no kid)".to_owned(), |k| format!("{k:?}"))
}

/// Why a login at the callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The login-state cookie is missing.
    #[error(
        "no login-state cookie came with the callback; start the login again from the web UI (and allow its cookies)"
    )]
    StateMissing,
    /// The login-state cookie is forged, expired or malformed.
    #[error("the login-state cookie is forged, expired or malformed; start the login again from the web UI")]
    StateInvalid,
    /// The `state` parameter is not the one this browser started with.
    #[error(
        "the callback's state parameter does not match this browser's login; start the login again from the web UI"
    )]
    StateMismatch,
    /// The provider answered with an error.
    #[error("the OIDC provider refused the login: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Provider {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter.
        description: Option<String>,
    },
    /// No `code` parameter.
    #[error("the callback carries no code parameter")]
    MissingCode,
    /// The token request failed.
    #[error("failed to exchange the code at the token endpoint {url}")]
    Exchange {
        /// The token endpoint.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint refused the code.
    #[error("the token endpoint {url} answered {status}: {error}")]
    TokenEndpoint {
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Its `error` and `error_description`.
        error: String,
    },
    /// No ID token in the token response.
    #[error("the token endpoint {url} returned no id_token (is the openid scope requested?)")]
    NoIdToken {
        /// The token endpoint.
        url: String,
    },
    /// The key set could not be read again.
    #[error(transparent)]
    Jwks(OidcError),
    /// The ID token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A claim is missing or has the wrong type.
    #[error("the ID token's claim {claim:?} {problem}")]
    Claim {
        /// The claim's name.
        claim: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The user is in neither the admins nor the viewers groups.
    #[error(
        "user {user:?} (groups {groups:?}) may not use the web UI: admins need one of the groups {admins:?}, viewers one of {viewers:?}"
    )]
    Refused {
        /// The user name.
        user: String,
        /// The user's groups.
        groups: Vec<String>,
        /// The admins groups.
        admins: Vec<String>,
        /// The viewers groups.
        viewers: Vec<String>,
    },
}

impl LoginError {
    /// The HTTP status to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::StateMissing | Self::StateInvalid | Self::StateMismatch | Self::MissingCode => 400,
            Self::Provider { .. } | Self::Token(_) | Self::Claim { .. } => 401,
            Self::Refused { .. } => 403,
            Self::Exchange { .. } | Self::TokenEndpoint { .. } | Self::NoIdToken { .. } | Self::Jwks(_) => {
                502
            }
        }
    }
}

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user claim's value.
    pub user: String,
    /// The role the groups give.
    pub role: Role,
}

/// The query of the callback.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state sent to the provider.
    pub state: Option<String>,
    /// An error from the provider.
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The state, nonce and PKCE verifier of one login, carried in a signed cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    /// The `state` parameter.
    pub state: String,
    /// The `nonce` parameter, echoed in the ID token.
    pub nonce: String,
    /// The PKCE code verifier (its S256 hash is the challenge).
    pub verifier: String,
    /// Unix seconds after which the cookie is refused.
    pub expires: i64,
}

impl LoginState {
    /// Fresh random values, valid for [`LOGIN_STATE_SECONDS`] from `now`.
    #[must_use]
    pub fn new(now: i64) -> Self {
        Self {
            state: b64(&random_key()),
            nonce: b64(&random_key()),
            verifier: b64(&random_key()),
            expires: now + LOGIN_STATE_SECONDS,
        }
    }

    /// The PKCE S256 challenge of the verifier.
    #[must_use]
    pub fn challenge(&self) -> String {
        b64(&Sha256::digest(self.verifier.as_bytes()))
    }

    fn payload(&self) -> String {
        format!("{}.{}.{}.{}", self.state, self.nonce, self.verifier, self.expires)
    }

    /// The cookie value, signed with `key` (apart from session signatures: a session cookie is
    /// never a valid login state, nor the reverse).
    #[must_use]
    pub fn seal(&self, key: &[u8; 32]) -> String {
        let payload = self.payload();
        let signature = sign(key, &format!("login-state.{payload}"));
        format!("{payload}.{signature}")
    }

    /// The login state of a cookie value at `now`.
    ///
    /// # Errors
    /// [`LoginError::StateInvalid`]: a wrong signature, expired or malformed.
    pub fn open(value: &str, key: &[u8; 32], now: i64) -> Result<Self, LoginError> {
        let (payload, signature) = value.rsplit_once('.').ok_or(LoginError::StateInvalid)?;
        let expected = sign(key, &format!("login-state.{payload}"));
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return Err(LoginError::StateInvalid);
        }
        let mut parts = payload.split('.');
        let (Some(state), Some(nonce), Some(verifier), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(LoginError::StateInvalid);
        };
        let expires = expires.parse::<i64>().map_err(|_| LoginError::StateInvalid)?;
        if expires <= now {
            return Err(LoginError::StateInvalid);
        }
        Ok(Self {
            state: state.to_owned(),
            nonce: nonce.to_owned(),
            verifier: verifier.to_owned(),
            expires,
        })
    }
}

/// What an ID token must show.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The issuer (`iss`).
    pub issuer: &'a str,
    /// The client id (in `aud`).
    pub client_id: &'a str,
    /// This login's nonce.
    pub nonce: &'a str,
}

/// The key of `keys` that signed a token with `header`, if any.
fn key_for<'a>(keys: &'a JwkSet, header: &jsonwebtoken::Header) -> Option<&'a Jwk> {
    let usable = |k: &&Jwk| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption));
    let mut signing = keys.keys.iter().filter(usable);
    if let Some(kid) = &header.kid {
        return signing.find(|k| k.common.key_id.as_deref() == Some(kid.as_str()));
    }
    // Without a kid, only a sole signing key is unambiguous.
    let only = signing.next()?;
    signing.next().is_none().then_some(only)
}

/// Verifies an ID token against `keys` and returns its claims.
///
/// # Errors
/// A malformed token, a refused algorithm, a key not in `keys` ([`TokenError::UnknownKey`]: the
/// caller may read the key set again), a bad signature, issuer, audience or expiry, a wrong
/// nonce or authorized party.
pub fn verify_id_token(
    token: &str,
    keys: &JwkSet,
    jwks_url: &str,
    expected: Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(TokenError::Malformed)?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(TokenError::Algorithm(header.alg));
    }
    let jwk = key_for(keys, &header).ok_or_else(|| TokenError::UnknownKey {
        kid: header.kid.clone(),
        url: jwks_url.to_owned(),
    })?;
    let mismatch = || TokenError::KeyMismatch {
        kid: header.kid.clone(),
        alg: header.alg,
    };
    if let Some(alg) = jwk.common.key_algorithm
        && alg != header.alg.into()
    {
        return Err(mismatch());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| mismatch())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
        if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidAlgorithm) {
            mismatch()
        } else {
            TokenError::Invalid(e)
        }
    })?;
    let claims = data.claims;
    let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
    if !bool::from(nonce.as_bytes().ct_eq(expected.nonce.as_bytes())) {
        return Err(TokenError::Nonce);
    }
    if let Some(azp) = claims.get("azp").and_then(Value::as_str)
        && azp != expected.client_id
    {
        return Err(TokenError::AuthorizedParty(azp.to_owned()));
    }
    Ok(claims)
}

/// The user and groups of an ID token's claims.
///
/// # Errors
/// The user claim is missing or not a string; the group claim is not a list of strings (a
/// missing group claim is no groups).
pub fn user_and_groups(
    claims: &Map<String, Value>,
    user_claim: &str,
    group_claim: &str,
) -> Result<(String, Vec<String>), LoginError> {
    let user = claims
        .get(user_claim)
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| LoginError::Claim {
            claim: user_claim.to_owned(),
            problem: "is missing or not a string (see --auth-oidc-user-claim)",
        })?;
    let not_list = || LoginError::Claim {
        claim: group_claim.to_owned(),
        problem: "is not a list of strings (see --auth-oidc-group-claim)",
    };
    let groups = match claims.get(group_claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|g| g.as_str().map(str::to_owned).ok_or_else(not_list))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(not_list()),
    };
    Ok((user.to_owned(), groups))
}

/// The role `groups` give: admin before viewer; `None` for neither.
#[must_use]
pub fn role_for(groups: &[String], admins: &[String], viewers: &[String]) -> Option<Role> {
    if groups.iter().any(|g| admins.contains(g)) {
        Some(Role::Admin)
    } else if groups.iter().any(|g| viewers.contains(g)) {
        Some(Role::Viewer)
    } else {
        None
    }
}

/// Checks the redirect URL: absolute http(s), ending with one of [`CALLBACK_PATHS`].
fn check_redirect_url(redirect: &str) -> Result<(), OidcError> {
    let url = url::Url::parse(redirect).map_err(|e| {
        OidcError::Config(format!(
            "--auth-oidc-redirect-url {redirect:?} is not an absolute URL: {e}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || !CALLBACK_PATHS.iter().any(|p| url.path().ends_with(p)) {
        return Err(OidcError::Config(format!(
            "--auth-oidc-redirect-url {redirect:?} must be an http(s) URL of the web UI ending with {} or {} (after the --path-prefix)",
            CALLBACK_PATHS[0], CALLBACK_PATHS[1]
        )));
    }
    Ok(())
}

fn endpoint(url: &str, field: &'static str, value: &str) -> Result<(), OidcError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(OidcError::Endpoint {
            url: url.to_owned(),
            field,
            value: value.to_owned(),
        }),
    }
}

impl Oidc {
    /// Reads the provider's discovery document and key set.
    ///
    /// # Errors
    /// A flag is missing or malformed, the discovery document or key set cannot be read, or
    /// the document names another issuer.
    pub async fn discover(config: OidcConfig) -> Result<Self, OidcError> {
        if config.client_id.is_empty() {
            return Err(OidcError::Config(
                "--auth-oidc-client-id is required with --auth-oidc-issuer-url".to_owned(),
            ));
        }
        check_redirect_url(&config.redirect_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(OidcError::Client)?;
        let issuer = config.issuer_url.clone();
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let fail = |source| OidcError::Discovery {
            issuer: issuer.clone(),
            url: url.clone(),
            source,
        };
        let discovery: Discovery = get_json(&http, &url).await.map_err(fail)?;
        if discovery.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(OidcError::IssuerMismatch {
                url,
                expected: issuer,
                found: discovery.issuer,
            });
        }
        endpoint(&url, "authorization_endpoint", &discovery.authorization_endpoint)?;
        endpoint(&url, "token_endpoint", &discovery.token_endpoint)?;
        endpoint(&url, "jwks_uri", &discovery.jwks_uri)?;
        // Basic is the default (OIDC Discovery 1.0, §3); post only where basic is not offered.
        let client_auth = match &discovery.token_endpoint_auth_methods_supported {
            Some(m)
                if !m.iter().any(|m| m == "client_secret_basic")
                    && m.iter().any(|m| m == "client_secret_post") =>
            {
                ClientAuth::Post
            }
            _ => ClientAuth::Basic,
        };
        let keys = fetch_keys(&http, &discovery.jwks_uri).await?;
        Ok(Self {
            config,
            discovery,
            client_auth,
            http,
            keys: Mutex::new(keys),
        })
    }

    /// The name on the login button.
    #[must_use]
    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    /// Whether the redirect URL is `https` (then the cookies get `Secure`).
    #[must_use]
    pub fn secure(&self) -> bool {
        self.config.redirect_url.starts_with("https:")
    }

    /// The provider's authorization URL for `login`.
    #[must_use]
    pub fn authorize_url(&self, login: &LoginState) -> String {
        let mut scopes = self.config.scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        // Checked at discovery.
        let Ok(mut url) = url::Url::parse(&self.discovery.authorization_endpoint) else {
            return self.discovery.authorization_endpoint.clone();
        };
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &login.challenge())
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(self.config.params.iter());
        url.into()
    }

    /// Finishes a login at the callback: checks the state, exchanges the code, verifies the ID
    /// token and maps the groups to a role.
    ///
    /// # Errors
    /// See [`LoginError`]; every variant says what is wrong.
    pub async fn finish(
        &self,
        query: &CallbackQuery,
        state_cookie: Option<&str>,
        key: &[u8; 32],
        now: i64,
    ) -> Result<Identity, LoginError> {
        let login = LoginState::open(state_cookie.ok_or(LoginError::StateMissing)?, key, now)?;
        let state = query.state.as_deref().unwrap_or_default();
        if !bool::from(state.as_bytes().ct_eq(login.state.as_bytes())) {
            return Err(LoginError::StateMismatch);
        }
        if let Some(error) = &query.error {
            return Err(LoginError::Provider {
                error: error.clone(),
                description: query.error_description.clone(),
            });
        }
        let code = query
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(LoginError::MissingCode)?;
        let id_token = self.exchange(code, &login.verifier).await?;
        let claims = self.verify(&id_token, &login.nonce).await?;
        let (user, groups) = user_and_groups(&claims, &self.config.user_claim, &self.config.group_claim)?;
        let c = &self.config;
        match role_for(&groups, &c.admins_groups, &c.viewers_groups) {
            Some(role) => Ok(Identity { user, role }),
            None => Err(LoginError::Refused {
                user,
                groups,
                admins: c.admins_groups.clone(),
                viewers: c.viewers_groups.clone(),
            }),
        }
    }

    /// The ID token for `code`.
    async fn exchange(&self, code: &str, verifier: &str) -> Result<String, LoginError> {
        let url = &self.discovery.token_endpoint;
        let c = &self.config;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", c.redirect_url.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json");
        match self.client_auth {
            // RFC 6749 §2.3.1: both are form-encoded before they go into the header.
            ClientAuth::Basic => {
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request = request.basic_auth(enc(&c.client_id), Some(enc(c.client_secret.expose())));
            }
            ClientAuth::Post => {
                form.push(("client_id", c.client_id.as_str()));
                form.push(("client_secret", c.client_secret.expose()));
            }
        }
        let fail = |source| LoginError::Exchange {
            url: url.clone(),
            source,
        };
        let response = request.form(&form).send().await.map_err(fail)?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let field = |k: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(300).collect::<String>())
            };
            let error = match (field("error"), field("error_description")) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                (Some(e), None) => e,
                _ => "no OAuth error in the response".to_owned(),
            };
            return Err(LoginError::TokenEndpoint {
                url: url.clone(),
                status: status.as_u16(),
                error,
            });
        }
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| LoginError::NoIdToken { url: url.clone() })
    }

    /// Verifies `token`, reading the key set again once if it names an unknown key.
    async fn verify(&self, token: &str, nonce: &str) -> Result<Map<String, Value>, LoginError> {
        let expected = Expected {
            issuer: &self.discovery.issuer,
            client_id: &self.config.client_id,
            nonce,
        };
        let url = &self.discovery.jwks_uri;
        let first = {
            let keys = self
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            verify_id_token(token, &keys, url, expected)
        };
        match first {
            Err(TokenError::UnknownKey { .. }) => {
                let fresh = fetch_keys(&self.http, url).await.map_err(LoginError::Jwks)?;
                let result = verify_id_token(token, &fresh, url, expected);
                *self
                    .keys
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                Ok(result?)
            }
            other => Ok(other?),
        }
    }
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<JwkSet, OidcError> {
    let fail = |source| OidcError::Jwks {
        url: url.to_owned(),
        source,
    };
    get_json(http, url).await.map_err(fail)
}

/// The JSON document at `url` (a non-2xx answer is an error): discovery and key set alike.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, reqwest::Error> {
    http.get(url).send().await?.error_for_status()?.json().await
}

#[cfg(test)]
mod tests;
