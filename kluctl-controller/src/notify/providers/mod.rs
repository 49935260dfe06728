//! Provider destinations: a Provider (`notification.toolkit.fluxcd.io/v1beta3`) and its Secrets
//! resolved into a [`Destination`] that sends one merged Flux event in the provider's format, with
//! Flux's retries, bounded by the provider timeout.
//!
//! ```text
//!  Provider + Secrets (secretRef, proxySecretRef, certSecretRef)
//!     └─► Destination::resolve (reads the Secrets) / Destination::from_parts (given their data)
//!           type and commitStatusExpr check ─► config: address, token, headers, proxy, TLS,
//!           timeout ─► one reqwest client and the type's target      ── ProviderError
//!  Destination::send(event)  (the dispatcher has merged metadata: keys are unprefixed)
//!     └─► payload (a pure function per type) ─► delivery (retries) ─► Sent   ── SendError
//!         all of it inside tokio::time::timeout(spec.timeout, default 15s)
//! ```
//!
//! | `spec.type`     | request                                                            |
//! |-----------------|--------------------------------------------------------------------|
//! | `generic`       | the event JSON; `gotk-component` header; Secret `headers`          |
//! | `generic-hmac`  | same, plus `X-Signature: sha256=<HMAC-SHA256(body, token)>`        |
//! | `slack`         | attachment message; `Authorization: Bearer <token>` if set         |
//! | `discord`       | Slack's message to `<address>/slack`                               |
//! | `msteams`       | MessageCard (`*.webhook.office.com`) or Adaptive Card              |
//! | `googlechat`    | card message                                                       |
//! | `alertmanager`  | one firing alert; bearer token or basic auth                       |
//! | `github`        | commit status (deduplicated against the listed statuses)          |
//! | `gitea`         | commit status (deduplicated against the listed statuses)          |
//! | `gitlab`        | commit status (deduplicated against the listed statuses)          |
//!
//! Every other type is refused with [`UNSUPPORTED_CONFIGURATION`]; so is `spec.commitStatusExpr`
//! (there is no CEL engine here) and GitHub App authentication.
//!
//! Reasons ([`ProviderError::reason`], for the Provider's `Ready=False` condition):
//! `UnsupportedConfiguration`, `SecretNotFound`, `SecretReadFailed`, `MissingSecretKey`,
//! `InvalidSecret`, `InvalidAddress`, `InvalidProxy`, `InvalidTLSConfig`, `InvalidTimeout`,
//! `HTTPClientFailed`.
//!
//! Secrets never reach a message: errors name the Provider, the field, the Secret and the key;
//! addresses are shown as `scheme://host[:port]`; response bodies and transport errors have every
//! token, password, header value and URL userinfo replaced by `***`.

mod alertmanager;
mod commit_status;
mod config;
pub mod delivery;
mod discord;
mod generic;
mod gitea;
mod github;
mod gitlab;
mod googlechat;
mod msteams;
mod redact;
mod slack;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use gitops_api::conditions::reasons;
use gitops_api::notification::v1beta3::{Provider, ProviderType};
use gitops_runtime::FluxEvent;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

pub use config::{ProviderSecrets, SecretData};
pub use delivery::RetryPolicy;

use commit_status::{RepoAddress, Status, commit_sha, description, parse_repo_address, status_id};
use delivery::{Failure, Progress};
use redact::{Masks, origin};

/// Reason of an unsupported `spec.type`, `spec.commitStatusExpr` or GitHub App authentication.
pub const UNSUPPORTED_CONFIGURATION: &str = reasons::UNSUPPORTED_CONFIGURATION;
/// Reason of a referenced Secret that does not exist.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// Reason of a referenced Secret that could not be read (forbidden, API unavailable).
pub const SECRET_READ_FAILED: &str = "SecretReadFailed";
/// Reason of a Secret without a key the type needs (`token`, proxy `address`).
pub const MISSING_SECRET_KEY: &str = "MissingSecretKey";
/// Reason of a Secret key whose value is unusable (`headers`, `address` too long).
pub const INVALID_SECRET: &str = "InvalidSecret";
/// Reason of a missing address or one that is not a URL of the type's form.
pub const INVALID_ADDRESS: &str = "InvalidAddress";
/// Reason of an unusable proxy (`spec.proxy`, Secret `proxy`, `spec.proxySecretRef`).
pub const INVALID_PROXY: &str = "InvalidProxy";
/// Reason of unusable TLS material (`ca.crt`, `tls.crt`, `tls.key`).
pub const INVALID_TLS_CONFIG: &str = "InvalidTLSConfig";
/// Reason of a `spec.timeout` that is not a duration.
pub const INVALID_TIMEOUT: &str = "InvalidTimeout";
/// Reason of an HTTP client that could not be built from valid-looking settings.
pub const HTTP_CLIENT_FAILED: &str = "HTTPClientFailed";

/// The types this controller sends to, in the order messages list them.
pub const SUPPORTED_TYPES: &[ProviderType] = &[
    ProviderType::Generic,
    ProviderType::GenericHmac,
    ProviderType::Slack,
    ProviderType::Discord,
    ProviderType::Msteams,
    ProviderType::GoogleChat,
    ProviderType::Github,
    ProviderType::Gitea,
    ProviderType::Gitlab,
    ProviderType::Alertmanager,
];

/// What a request does, for messages ("failed to <action> for Provider ...").
const POST_EVENT: &str = "post the event";
const LIST_STATUSES: &str = "list the commit statuses";
const CREATE_STATUS: &str = "create the commit status";

/// `User-Agent` of every request (GitHub's API refuses requests without one).
const USER_AGENT: &str = concat!("kluctl-controller/", env!("CARGO_PKG_VERSION"));

/// Why a Provider cannot be used; the Provider's `Ready=False` reason is [`ProviderError::reason`].
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// `spec.type` is not one of [`SUPPORTED_TYPES`].
    #[error(
        "Provider '{provider}': spec.type '{value}' is not supported by this controller (supported: {})",
        supported_list()
    )]
    UnsupportedType {
        /// `namespace/name` of the Provider.
        provider: String,
        /// The type.
        value: String,
    },
    /// `spec.commitStatusExpr` is set.
    #[error(
        "Provider '{provider}': spec.commitStatusExpr is not supported by this controller (it has no CEL \
         engine); remove it to use the default commit status id '<kind>/<name>/<provider UID prefix>'"
    )]
    CommitStatusExpr {
        /// `namespace/name` of the Provider.
        provider: String,
    },
    /// The `github` Secret holds GitHub App keys and no token.
    #[error(
        "Provider '{provider}': GitHub App authentication (key 'githubAppID' of Secret '{secret}') is not \
         supported by this controller; set a 'token' in the Secret"
    )]
    GitHubApp {
        /// `namespace/name` of the Provider.
        provider: String,
        /// `namespace/name` of the Secret.
        secret: String,
    },
    /// A referenced Secret could not be read.
    #[error("Provider '{provider}': failed to get Secret '{secret}' named by {field}: {message}")]
    SecretGet {
        /// `namespace/name` of the Provider.
        provider: String,
        /// The field naming the Secret, e.g. `spec.secretRef.name`.
        field: String,
        /// `namespace/name` of the Secret.
        secret: String,
        /// The API server's message.
        message: String,
        /// Whether the Secret does not exist (rather than being unreadable).
        not_found: bool,
    },
    /// A key the type needs is missing (or the Secret itself is not referenced).
    #[error("Provider '{provider}': {}", missing_key_text(secret, field, key, why))]
    MissingSecretKey {
        /// `namespace/name` of the Provider.
        provider: String,
        /// `namespace/name` of the Secret, empty when the field is not set.
        secret: String,
        /// The field referencing the Secret, e.g. `spec.secretRef`.
        field: String,
        /// The missing key.
        key: String,
        /// Why the type needs it.
        why: String,
    },
    /// A Secret key's value is unusable.
    #[error("Provider '{provider}': invalid key '{key}' of Secret '{secret}' ({field}): {why}")]
    InvalidSecretValue {
        /// `namespace/name` of the Provider.
        provider: String,
        /// `namespace/name` of the Secret.
        secret: String,
        /// The field referencing the Secret.
        field: String,
        /// The key.
        key: String,
        /// What is wrong (never the value).
        why: String,
    },
    /// The address is missing or not of the type's form.
    #[error("Provider '{provider}': invalid address in {source_field}: {why}")]
    InvalidAddress {
        /// `namespace/name` of the Provider.
        provider: String,
        /// `spec.address` or `key 'address' of Secret '<ns>/<name>'`.
        source_field: String,
        /// What is wrong (never the value).
        why: String,
    },
    /// The proxy is unusable.
    #[error("Provider '{provider}': invalid proxy in {location}: {why}")]
    InvalidProxy {
        /// `namespace/name` of the Provider.
        provider: String,
        /// Where the proxy came from.
        location: String,
        /// What is wrong (never the value).
        why: String,
    },
    /// TLS material is unusable.
    #[error("Provider '{provider}': invalid TLS material in {location}: {why}")]
    InvalidTls {
        /// `namespace/name` of the Provider.
        provider: String,
        /// The Secret and the field referencing it.
        location: String,
        /// What is wrong, naming the key.
        why: String,
    },
    /// `spec.timeout` is not a duration.
    #[error("Provider '{provider}': invalid spec.timeout: {why}")]
    InvalidTimeout {
        /// `namespace/name` of the Provider.
        provider: String,
        /// The parser's message.
        why: String,
    },
    /// The HTTP client could not be built.
    #[error("Provider '{provider}': failed to build the HTTP client: {message}")]
    Client {
        /// `namespace/name` of the Provider.
        provider: String,
        /// The error chain.
        message: String,
    },
}

impl ProviderError {
    /// The stable reason for the Provider's `Ready=False` condition (see the module docs).
    pub fn reason(&self) -> &'static str {
        match self {
            ProviderError::UnsupportedType { .. }
            | ProviderError::CommitStatusExpr { .. }
            | ProviderError::GitHubApp { .. } => UNSUPPORTED_CONFIGURATION,
            ProviderError::SecretGet { not_found: true, .. } => SECRET_NOT_FOUND,
            ProviderError::SecretGet { .. } => SECRET_READ_FAILED,
            ProviderError::MissingSecretKey { .. } => MISSING_SECRET_KEY,
            ProviderError::InvalidSecretValue { .. } => INVALID_SECRET,
            ProviderError::InvalidAddress { .. } => INVALID_ADDRESS,
            ProviderError::InvalidProxy { .. } => INVALID_PROXY,
            ProviderError::InvalidTls { .. } => INVALID_TLS_CONFIG,
            ProviderError::InvalidTimeout { .. } => INVALID_TIMEOUT,
            ProviderError::Client { .. } => HTTP_CLIENT_FAILED,
        }
    }
}

fn supported_list() -> String {
    SUPPORTED_TYPES
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn missing_key_text(secret: &str, field: &str, key: &str, why: &str) -> String {
    if secret.is_empty() {
        format!("{field} is not set, but a Secret with key '{key}' is required: {why}")
    } else {
        format!("Secret '{secret}' ({field}) has no key '{key}': {why}")
    }
}

/// Why an event was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The destination refused the request or could not be reached (after retries where they
    /// apply). The message has the status code and the (truncated, masked) body, or the
    /// transport error.
    #[error("failed to {action} for Provider '{provider}' at {target} ({attempts} attempt(s)): {message}")]
    Failed {
        /// `namespace/name` of the Provider.
        provider: String,
        /// What was being done, e.g. `post the event`, `create the commit status`.
        action: &'static str,
        /// `scheme://host[:port]` of the destination.
        target: String,
        /// Requests sent.
        attempts: u32,
        /// The HTTP status of the last answer, if there was one.
        status: Option<u16>,
        /// What went wrong (masked).
        message: String,
    },
    /// The provider timeout ended the delivery (retries included).
    #[error(
        "failed to {action} for Provider '{provider}' at {target}: no success within the timeout of {timeout:?} \
         ({attempts} attempt(s)){}",
        last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    Timeout {
        /// `namespace/name` of the Provider.
        provider: String,
        /// What was being done when the time ran out.
        action: &'static str,
        /// `scheme://host[:port]` of the destination.
        target: String,
        /// The provider timeout.
        timeout: Duration,
        /// Requests sent.
        attempts: u32,
        /// How the last failed attempt failed (masked).
        last_error: Option<String>,
    },
    /// The event cannot be expressed for this type (e.g. a commit status without a commit).
    #[error("cannot send the event of {object} to Provider '{provider}': {message}")]
    Event {
        /// `namespace/name` of the Provider.
        provider: String,
        /// `Kind 'namespace/name'` of the event's object.
        object: String,
        /// Why.
        message: String,
    },
}

impl SendError {
    /// The HTTP status of the last answer, when the destination answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Failed { status, .. } => *status,
            _ => None,
        }
    }
}

/// What [`Destination::send`] did with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The destination accepted it.
    Delivered,
    /// Nothing was sent, on purpose (the text says why).
    Skipped(&'static str),
}

/// Where events of one Provider go: everything resolved, one HTTP client (connection pool) for
/// all sends. Cheap to share (`Arc`) across concurrent sends; rebuild it when the Provider or
/// its Secrets change.
pub struct Destination {
    provider: String,
    provider_type: ProviderType,
    provider_uid: String,
    target: Target,
    client: reqwest::Client,
    timeout: Duration,
    retry: RetryPolicy,
    masks: Masks,
}

/// The per-type part of a destination.
enum Target {
    Generic {
        url: Url,
        headers: HeaderMap,
        hmac_key: Option<Vec<u8>>,
    },
    Slack {
        url: Url,
        token: Option<String>,
        username: String,
        channel: String,
    },
    Discord {
        url: Url,
        username: String,
    },
    MsTeams {
        url: Url,
        legacy: bool,
    },
    GoogleChat {
        url: Url,
    },
    Alertmanager {
        url: Url,
        token: Option<String>,
        basic: Option<(String, String)>,
    },
    GitHub(Forge),
    Gitea(Forge),
    GitLab(Forge),
}

/// A commit-status API: its root, the repository and the token.
struct Forge {
    api: Url,
    /// GitHub/Gitea owner; GitLab project id or path.
    owner: String,
    /// GitHub/Gitea repository; empty for GitLab.
    repo: String,
    token: String,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Addresses and credentials are secrets; only the origin is shown.
        f.debug_struct("Destination")
            .field("provider", &self.provider)
            .field("type", &self.provider_type.as_str())
            .field("target", &self.origin())
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Destination {
    /// Reads the Provider's Secrets and resolves everything a send needs (see
    /// [`Destination::from_parts`]). The type and `commitStatusExpr` are checked before any
    /// Secret is read.
    ///
    /// ```no_run
    /// # async fn run(client: kube::Client, provider: gitops_api::notification::v1beta3::Provider,
    /// #              event: gitops_runtime::FluxEvent) -> Result<(), Box<dyn std::error::Error>> {
    /// use kluctl_controller::notify::providers::Destination;
    /// let destination = Destination::resolve(&client, &provider).await?;
    /// destination.send(&event).await?;
    /// # Ok(()) }
    /// ```
    pub async fn resolve(client: &kube::Client, provider: &Provider) -> Result<Destination, ProviderError> {
        check_supported(provider)?;
        let namespace = provider.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let name = provider_name(provider);
        let spec = &provider.spec;
        let mut secrets = ProviderSecrets::default();
        if let Some(r) = &spec.secret_ref {
            secrets.secret = read_secret(&api, &name, "spec.secretRef.name", namespace, &r.name).await?;
        }
        if let Some(r) = &spec.proxy_secret_ref {
            secrets.proxy = read_secret(&api, &name, "spec.proxySecretRef.name", namespace, &r.name).await?;
        }
        if let Some(r) = &spec.cert_secret_ref {
            secrets.cert = read_secret(&api, &name, "spec.certSecretRef.name", namespace, &r.name).await?;
        }
        Destination::from_parts(provider, &secrets)
    }

    /// Resolves a destination from the Provider and the data of the Secrets it references,
    /// without Kubernetes (tests, benchmarks). A referenced Secret missing from `secrets` is
    /// [`ProviderError::SecretGet`] (not found).
    ///
    /// ```
    /// use gitops_api::notification::v1beta3::{Provider, ProviderSpec, ProviderType};
    /// use kluctl_controller::notify::providers::{Destination, ProviderSecrets};
    ///
    /// let spec: ProviderSpec = serde_json::from_value(serde_json::json!({
    ///     "type": "generic", "address": "http://127.0.0.1:9/hook", "timeout": "5s"
    /// })).unwrap();
    /// let mut provider = Provider::new("webhook", spec);
    /// provider.metadata.namespace = Some("apps".into());
    /// let destination = Destination::from_parts(&provider, &ProviderSecrets::default()).unwrap();
    /// assert_eq!(destination.timeout(), std::time::Duration::from_secs(5));
    ///
    /// provider.spec.provider_type = ProviderType::Telegram;
    /// let err = Destination::from_parts(&provider, &ProviderSecrets::default()).unwrap_err();
    /// assert_eq!(err.reason(), "UnsupportedConfiguration");
    /// ```
    pub fn from_parts(provider: &Provider, secrets: &ProviderSecrets) -> Result<Destination, ProviderError> {
        check_supported(provider)?;
        let name = provider_name(provider);
        let mut s = config::settings(provider, secrets)?;
        let kind = provider.spec.provider_type;
        let token_text = s
            .token
            .as_ref()
            .map(|t| String::from_utf8_lossy(t).trim().to_string());
        let target = match kind {
            ProviderType::Generic | ProviderType::GenericHmac => {
                let hmac_key = if kind == ProviderType::GenericHmac {
                    match &s.token {
                        Some(t) if !t.is_empty() => Some(t.clone()),
                        _ => {
                            return Err(missing_token(
                                &name,
                                &s,
                                "generic-hmac signs every request with it",
                            ));
                        }
                    }
                } else {
                    None
                };
                Target::Generic {
                    url: http_address(&name, &s)?,
                    headers: std::mem::take(&mut s.headers),
                    hmac_key,
                }
            }
            ProviderType::Slack => Target::Slack {
                url: http_address(&name, &s)?,
                token: token_text.filter(|t| !t.is_empty()),
                username: s.username.clone(),
                channel: provider.spec.channel.clone(),
            },
            ProviderType::Discord => Target::Discord {
                url: discord::webhook(&http_address(&name, &s)?),
                username: s.username.clone(),
            },
            ProviderType::Msteams => {
                let url = http_address(&name, &s)?;
                Target::MsTeams {
                    legacy: msteams::is_legacy_connector(&url),
                    url,
                }
            }
            ProviderType::GoogleChat => Target::GoogleChat {
                url: http_address(&name, &s)?,
            },
            ProviderType::Alertmanager => Target::Alertmanager {
                url: http_address(&name, &s)?,
                token: token_text.filter(|t| !t.is_empty()),
                basic: match &s.password {
                    Some(p) if !s.username.is_empty() && !p.is_empty() => {
                        Some((s.username.clone(), p.clone()))
                    }
                    _ => None,
                },
            },
            ProviderType::Github | ProviderType::Gitea | ProviderType::Gitlab => {
                forge_target(&name, kind, &s, token_text)?
            }
            other => {
                return Err(ProviderError::UnsupportedType {
                    provider: name,
                    value: other.as_str().to_string(),
                });
            }
        };
        let mut builder = reqwest::Client::builder().user_agent(USER_AGENT);
        if let Some(ca) = s.ca.take() {
            builder = builder.tls_certs_only(ca);
        }
        if let Some(identity) = s.identity.take() {
            builder = builder.identity(identity);
        }
        if let Some(proxy) = s.proxy.take() {
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(|e| ProviderError::Client {
            provider: name.clone(),
            message: s.masks.apply(&gitops_git::error_chain(&e.without_url())),
        })?;
        Ok(Destination {
            provider: name,
            provider_type: kind,
            provider_uid: provider.metadata.uid.clone().unwrap_or_default(),
            target,
            client,
            timeout: s.timeout,
            retry: RetryPolicy::default(),
            masks: s.masks,
        })
    }

    /// The same destination with another retry policy (tests and benchmarks use short waits).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The provider timeout bounding each [`Destination::send`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Provider's type.
    pub fn provider_type(&self) -> ProviderType {
        self.provider_type
    }

    /// Sends one event (metadata already merged and unprefixed), retrying as Flux does, all of
    /// it within the provider timeout.
    ///
    /// # Errors
    /// [`SendError`] with the status code and masked body of a refusal, the transport error, the
    /// timeout (with the last attempt's error), or why the event does not fit the type.
    pub async fn send(&self, event: &FluxEvent) -> Result<Sent, SendError> {
        let mut progress = Progress::default();
        let outcome = tokio::time::timeout(self.timeout, self.deliver(event, &mut progress)).await;
        match outcome {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout {
                provider: self.provider.clone(),
                action: progress.action.unwrap_or(POST_EVENT),
                target: self.origin(),
                timeout: self.timeout,
                attempts: progress.attempts,
                last_error: progress.last_error.as_deref().map(|e| self.masks.apply(e)),
            }),
        }
    }

    async fn deliver(&self, event: &FluxEvent, progress: &mut Progress) -> Result<Sent, SendError> {
        match &self.target {
            Target::Generic {
                url,
                headers,
                hmac_key,
            } => {
                let body = generic::payload(event);
                let mut all = HeaderMap::new();
                all.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if let Ok(v) = HeaderValue::from_str(&event.reporting_controller) {
                    all.insert(HeaderName::from_static(generic::COMPONENT_HEADER), v);
                }
                // The Secret's headers may replace the two above, as in Flux.
                for (k, v) in headers {
                    all.insert(k.clone(), v.clone());
                }
                if let Some(key) = hmac_key {
                    let sig = generic::signature(&body, key);
                    if let Ok(v) = HeaderValue::from_str(&sig) {
                        all.insert(HeaderName::from_static(generic::SIGNATURE_HEADER), v);
                    }
                }
                let request = self.client.post(url.clone()).headers(all).body(body);
                self.execute(request, POST_EVENT, progress).await?;
            }
            Target::Slack {
                url,
                token,
                username,
                channel,
            } => {
                let mut request = self
                    .client
                    .post(url.clone())
                    .json_body(&slack::payload(event, username, channel));
                if let Some(t) = token {
                    request = request.header(AUTHORIZATION, sensitive(&format!("Bearer {t}")));
                }
                let answer = self.execute(request, POST_EVENT, progress).await?;
                if url.as_str() == slack::CHAT_POST_MESSAGE
                    && let Some(error) = slack::api_error(&answer)
                {
                    return Err(self.failed(POST_EVENT, progress.attempts, None, &error));
                }
            }
            Target::Discord { url, username } => {
                let request = self
                    .client
                    .post(url.clone())
                    .json_body(&discord::payload(event, username));
                self.execute(request, POST_EVENT, progress).await?;
            }
            Target::MsTeams { url, legacy } => {
                let request = self
                    .client
                    .post(url.clone())
                    .json_body(&msteams::payload(event, *legacy));
                self.execute(request, POST_EVENT, progress).await?;
            }
            Target::GoogleChat { url } => {
                let request = self
                    .client
                    .post(url.clone())
                    .json_body(&googlechat::payload(event));
                self.execute(request, POST_EVENT, progress).await?;
            }
            Target::Alertmanager { url, token, basic } => {
                let mut request = self
                    .client
                    .post(url.clone())
                    .json_body(&alertmanager::payload(event));
                if let Some(t) = token {
                    request = request.header(AUTHORIZATION, sensitive(&format!("Bearer {t}")));
                }
                if let Some((user, password)) = basic {
                    request = request.basic_auth(user, Some(password));
                }
                self.execute(request, POST_EVENT, progress).await?;
            }
            Target::GitHub(forge) | Target::Gitea(forge) | Target::GitLab(forge) => {
                return self.commit_status(forge, event, progress).await;
            }
        }
        Ok(Sent::Delivered)
    }

    /// List, compare, create: the commit-status flow shared by github, gitea and gitlab.
    async fn commit_status(
        &self,
        forge: &Forge,
        event: &FluxEvent,
        progress: &mut Progress,
    ) -> Result<Sent, SendError> {
        let kind = self.provider_type;
        // GitHub and GitLab skip progress events (a status per step would flap the commit's
        // checks); Gitea reports them as `pending`.
        if event.reason == reasons::PROGRESSING && kind != ProviderType::Gitea {
            return Ok(Sent::Skipped("Progressing events do not set commit statuses"));
        }
        let sha = commit_sha(event).map_err(|message| self.event_error(event, &message))?;
        let status = Status {
            state: match kind {
                ProviderType::Github => github::state(event.severity),
                ProviderType::Gitlab => gitlab::state(event.severity),
                _ => gitea::state(event),
            },
            context: status_id(event, &self.provider_uid),
            description: description(&event.reason),
        };
        let (list_url, create_url, body) = match kind {
            ProviderType::Github => (
                github::list_url(&forge.api, &forge.owner, &forge.repo, &sha),
                github::create_url(&forge.api, &forge.owner, &forge.repo, &sha),
                github::payload(&status),
            ),
            ProviderType::Gitlab => (
                gitlab::list_url(&forge.api, &forge.owner, &sha, &status.context),
                gitlab::create_url(&forge.api, &forge.owner, &sha),
                gitlab::payload(&status),
            ),
            _ => (
                gitea::list_url(&forge.api, &forge.owner, &forge.repo, &sha),
                gitea::create_url(&forge.api, &forge.owner, &forge.repo, &sha),
                gitea::payload(&status),
            ),
        };
        let listed = self
            .execute(
                self.forge_auth(forge, self.client.get(list_url)),
                LIST_STATUSES,
                progress,
            )
            .await?;
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed).map_err(|e| {
            self.failed(
                LIST_STATUSES,
                progress.attempts,
                None,
                &format!("the answer is not a JSON list: {e}"),
            )
        })?;
        let duplicate = match kind {
            ProviderType::Github => github::is_duplicate(&listed, &status),
            ProviderType::Gitlab => gitlab::is_duplicate(&listed, &status, &sha),
            _ => gitea::is_duplicate(&listed, &status),
        };
        if duplicate {
            return Ok(Sent::Skipped("the commit already has this status"));
        }
        let request = self
            .forge_auth(forge, self.client.post(create_url))
            .json_body(&body);
        self.execute(request, CREATE_STATUS, progress).await?;
        Ok(Sent::Delivered)
    }

    fn forge_auth(&self, forge: &Forge, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.provider_type {
            ProviderType::Github => request
                .header(AUTHORIZATION, sensitive(&format!("Bearer {}", forge.token)))
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            ProviderType::Gitlab => request.header("PRIVATE-TOKEN", sensitive(&forge.token)),
            _ => request.header(AUTHORIZATION, sensitive(&format!("token {}", forge.token))),
        }
    }

    /// Runs one request through [`delivery::execute`], turning a failure into a masked
    /// [`SendError`]; returns the `2xx` body.
    async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        action: &'static str,
        progress: &mut Progress,
    ) -> Result<Vec<u8>, SendError> {
        progress.action = Some(action);
        let request = request.build().map_err(|e| {
            self.failed(
                action,
                progress.attempts,
                None,
                &gitops_git::error_chain(&e.without_url()),
            )
        })?;
        match delivery::execute(&self.client, &request, &self.retry, progress).await {
            Ok(answer) => Ok(answer.body),
            Err(failure) => {
                let status = match &failure {
                    Failure::Status { status, .. } => Some(status.as_u16()),
                    Failure::Transport(_) => None,
                };
                Err(self.failed(action, progress.attempts, status, &failure.describe()))
            }
        }
    }

    fn failed(&self, action: &'static str, attempts: u32, status: Option<u16>, message: &str) -> SendError {
        SendError::Failed {
            provider: self.provider.clone(),
            action,
            target: self.origin(),
            attempts,
            status,
            message: self.masks.apply(message),
        }
    }

    fn event_error(&self, event: &FluxEvent, message: &str) -> SendError {
        let o = &event.involved_object;
        SendError::Event {
            provider: self.provider.clone(),
            object: format!(
                "{} '{}/{}'",
                o.kind.as_deref().unwrap_or_default(),
                o.namespace.as_deref().unwrap_or_default(),
                o.name.as_deref().unwrap_or_default()
            ),
            message: self.masks.apply(message),
        }
    }

    /// `scheme://host[:port]` of where requests go.
    fn origin(&self) -> String {
        match &self.target {
            Target::Generic { url, .. }
            | Target::Slack { url, .. }
            | Target::Discord { url, .. }
            | Target::MsTeams { url, .. }
            | Target::GoogleChat { url }
            | Target::Alertmanager { url, .. } => origin(url),
            Target::GitHub(f) | Target::Gitea(f) | Target::GitLab(f) => origin(&f.api),
        }
    }
}

/// `namespace/name` of a Provider, as every message names it.
pub(crate) fn provider_name(provider: &Provider) -> String {
    format!(
        "{}/{}",
        provider.metadata.namespace.as_deref().unwrap_or("default"),
        provider.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The checks that need no Secret: a supported type, no `commitStatusExpr`.
fn check_supported(provider: &Provider) -> Result<(), ProviderError> {
    let spec = &provider.spec;
    if !SUPPORTED_TYPES.contains(&spec.provider_type) {
        return Err(ProviderError::UnsupportedType {
            provider: provider_name(provider),
            value: spec.provider_type.as_str().to_string(),
        });
    }
    if !spec.commit_status_expr.is_empty() {
        return Err(ProviderError::CommitStatusExpr {
            provider: provider_name(provider),
        });
    }
    Ok(())
}

async fn read_secret(
    api: &Api<Secret>,
    provider: &str,
    field: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<SecretData>, ProviderError> {
    match api.get(name).await {
        Ok(secret) => Ok(Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .chain(
                    // stringData is write-only on the API, but objects built in memory carry it.
                    secret
                        .string_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes())),
                )
                .collect(),
        )),
        Err(e) => {
            let (message, not_found) = match e {
                kube::Error::Api(status) => {
                    let not_found = status.code == 404;
                    (status.message, not_found)
                }
                other => (gitops_git::error_chain(&other), false),
            };
            Err(ProviderError::SecretGet {
                provider: provider.to_string(),
                field: field.to_string(),
                secret: format!("{namespace}/{name}"),
                message,
                not_found,
            })
        }
    }
}

/// The address of a webhook type: an absolute `http(s)` URL with a host.
fn http_address(provider: &str, s: &config::Settings) -> Result<Url, ProviderError> {
    let invalid = |why: &str| ProviderError::InvalidAddress {
        provider: provider.to_string(),
        source_field: s.address_source.clone(),
        why: why.to_string(),
    };
    if s.address.is_empty() {
        return Err(ProviderError::InvalidAddress {
            provider: provider.to_string(),
            source_field: "spec.address".into(),
            why: match &s.secret_name {
                Some(secret) => format!("it is empty and Secret '{secret}' has no 'address' key"),
                None => "it is empty (set spec.address or the 'address' key of spec.secretRef)".into(),
            },
        });
    }
    let url = Url::parse(&s.address).map_err(|_| invalid("it is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it must be an http:// or https:// URL with a host"));
    }
    Ok(url)
}

fn missing_token(provider: &str, s: &config::Settings, why: &str) -> ProviderError {
    ProviderError::MissingSecretKey {
        provider: provider.to_string(),
        secret: s.secret_name.clone().unwrap_or_default(),
        field: "spec.secretRef".into(),
        key: "token".into(),
        why: why.to_string(),
    }
}

/// github, gitea, gitlab: the repository from the address, the token (Secret `token`, else
/// `password`, as Flux falls back).
fn forge_target(
    provider: &str,
    kind: ProviderType,
    s: &config::Settings,
    token: Option<String>,
) -> Result<Target, ProviderError> {
    let token = token
        .filter(|t| !t.is_empty())
        .or_else(|| s.password.clone().filter(|p| !p.is_empty()));
    let Some(token) = token else {
        if kind == ProviderType::Github && s.github_app {
            return Err(ProviderError::GitHubApp {
                provider: provider.to_string(),
                secret: s.secret_name.clone().unwrap_or_default(),
            });
        }
        return Err(missing_token(
            provider,
            s,
            "commit statuses are set with an API token (or 'password')",
        ));
    };
    let invalid = |why: &str| ProviderError::InvalidAddress {
        provider: provider.to_string(),
        source_field: s.address_source.clone(),
        why: why.to_string(),
    };
    let RepoAddress { base, id } = parse_repo_address(&s.address)
        .ok_or_else(|| invalid("it must be the repository URL, e.g. https://github.com/<owner>/<repo>"))?;
    let forge = |owner: String, repo: String, api: Url| Forge {
        api,
        owner,
        repo,
        token: token.clone(),
    };
    if kind == ProviderType::Gitlab {
        // GitLab takes the whole path (groups nest) or a numeric project id.
        return Ok(Target::GitLab(forge(id, String::new(), gitlab::api_base(&base))));
    }
    let mut parts = id.split('/');
    let (Some(owner), Some(repo), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("the repository path must be '<owner>/<repo>'"));
    };
    let (owner, repo) = (owner.to_string(), repo.to_string());
    Ok(if kind == ProviderType::Github {
        Target::GitHub(forge(owner, repo, github::api_base(&base)))
    } else {
        Target::Gitea(forge(owner, repo, gitea::api_base(&base)))
    })
}

/// A JSON body without reqwest's `json` feature: the payloads are `serde_json::Value`s already.
trait JsonBody {
    fn json_body(self, value: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, value: &serde_json::Value) -> Self {
        self.header(CONTENT_TYPE, "application/json")
            .body(value.to_string())
    }
}

/// A header value that reqwest and `Debug` treat as secret.
fn sensitive(value: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}
