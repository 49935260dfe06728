//! What a Provider and its Secrets resolve to before anything is sent: the address, credentials,
//! extra headers, proxy, TLS material and timeout, each checked with an error naming the Provider,
//! the field or Secret key at fault, never a value.
//!
//! ```text
//!  spec.address ◄── Secret key `address` wins          spec.username ◄── Secret `username` wins
//!  Secret `token`, `password`, `headers` (YAML map: header -> value)
//!  proxy: spec.proxy ◄── Secret `proxy` ◄── proxySecretRef {address, username, password} (last wins)
//!  TLS:   certSecretRef {ca.crt | caFile, tls.crt + tls.key | certFile + keyFile}
//!         or, for commit-status types without certSecretRef, the same keys of secretRef when it
//!         has a `ca.crt`
//!  spec.timeout (default 15s)
//! ```
//!
//! A `ca.crt` replaces the system roots (only that CA is trusted), as Flux does.

use std::collections::BTreeMap;
use std::time::Duration;

use gitops_api::notification::v1beta3::{DEFAULT_PROVIDER_TIMEOUT, Provider};
use gitops_git::credentials::{ClientCertificate, client_identity, parse_ca_bundle};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::ProviderError;
use super::redact::Masks;

/// The data of one Secret, by key.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The data of the Secrets a Provider references, read by [`super::Destination::resolve`] or
/// given by a caller without a cluster.
///
/// No `Debug`: it holds secret values.
#[derive(Clone, Default)]
pub struct ProviderSecrets {
    /// `spec.secretRef`.
    pub secret: Option<SecretData>,
    /// `spec.proxySecretRef`.
    pub proxy: Option<SecretData>,
    /// `spec.certSecretRef`.
    pub cert: Option<SecretData>,
}

/// Everything resolved; the caller picks what its type uses.
pub(crate) struct Settings {
    /// The address (trimmed), and where it came from for messages.
    pub address: String,
    pub address_source: String,
    /// Secret `token`, as stored (the HMAC key is the raw bytes, as in Flux).
    pub token: Option<Vec<u8>>,
    /// Secret `password`.
    pub password: Option<String>,
    /// spec.username, or Secret `username`.
    pub username: String,
    /// Secret `headers`, marked sensitive.
    pub headers: HeaderMap,
    /// Whether the secretRef Secret has GitHub App keys.
    pub github_app: bool,
    /// `namespace/name` of the secretRef Secret.
    pub secret_name: Option<String>,
    pub proxy: Option<reqwest::Proxy>,
    pub ca: Option<Vec<reqwest::Certificate>>,
    pub identity: Option<reqwest::Identity>,
    pub timeout: Duration,
    pub masks: Masks,
}

/// Resolves `provider`'s settings from `secrets`.
pub(crate) fn settings(provider: &Provider, secrets: &ProviderSecrets) -> Result<Settings, ProviderError> {
    let spec = &provider.spec;
    let name = super::provider_name(provider);
    let namespace = provider.metadata.namespace.as_deref().unwrap_or("default");

    let timeout_text = spec.timeout.as_deref().unwrap_or(DEFAULT_PROVIDER_TIMEOUT);
    let timeout = gitops_api::duration::parse(timeout_text).map_err(|e| ProviderError::InvalidTimeout {
        provider: name.clone(),
        why: e.to_string(),
    })?;
    let mut s = Settings {
        address: spec.address.trim().to_string(),
        address_source: "spec.address".to_string(),
        token: None,
        password: None,
        username: spec.username.clone(),
        headers: HeaderMap::new(),
        github_app: false,
        secret_name: None,
        proxy: None,
        ca: None,
        identity: None,
        timeout,
        masks: Masks::default(),
    };

    let secret = match &spec.secret_ref {
        Some(r) => Some((
            format!("{namespace}/{}", r.name),
            required(
                &name,
                "spec.secretRef.name",
                namespace,
                &r.name,
                secrets.secret.as_ref(),
            )?,
        )),
        None => None,
    };
    // Later sources win: spec.proxy, then the Secret's `proxy`, then proxySecretRef.
    let mut proxy_address =
        (!spec.proxy.is_empty()).then(|| ("spec.proxy".to_string(), spec.proxy.trim().to_string()));
    if let Some((secret_name, data)) = &secret
        && let Some(p) = apply_secret(&mut s, &name, secret_name, data)?
    {
        proxy_address = Some(p);
    }
    if let Ok(url) = Url::parse(&s.address) {
        s.masks.add_userinfo(&url);
    }
    if let Some((source, address)) = &proxy_address {
        s.proxy = Some(proxy_from(&name, source, address, None, None, &mut s.masks)?);
    }
    if let Some(r) = &spec.proxy_secret_ref {
        let data = required(
            &name,
            "spec.proxySecretRef.name",
            namespace,
            &r.name,
            secrets.proxy.as_ref(),
        )?;
        s.proxy = Some(proxy_secret(
            &name,
            &format!("{namespace}/{}", r.name),
            data,
            &mut s.masks,
        )?);
    }

    let tls = match (&spec.cert_secret_ref, &secret) {
        (Some(r), _) => Some((
            required(
                &name,
                "spec.certSecretRef.name",
                namespace,
                &r.name,
                secrets.cert.as_ref(),
            )?,
            format!("Secret '{namespace}/{}' (spec.certSecretRef)", r.name),
        )),
        // Commit-status types also read TLS from secretRef when certSecretRef is absent.
        (None, Some((secret_name, data)))
            if spec.provider_type.is_commit_status()
                && (data.contains_key("ca.crt") || data.contains_key("caFile")) =>
        {
            Some((*data, format!("Secret '{secret_name}' (spec.secretRef)")))
        }
        _ => None,
    };
    if let Some((data, source)) = tls {
        (s.ca, s.identity) = tls_from(&name, &source, data)?;
    }
    s.github_app = secret
        .as_ref()
        .is_some_and(|(_, d)| d.contains_key("githubAppID"));
    s.secret_name = secret.map(|(n, _)| n);
    Ok(s)
}

/// Takes `address`, `token`, `password`, `username` and `headers` from the secretRef Secret;
/// returns its deprecated `proxy` key, if set, with where it came from.
fn apply_secret(
    s: &mut Settings,
    provider: &str,
    secret_name: &str,
    data: &SecretData,
) -> Result<Option<(String, String)>, ProviderError> {
    let key_error = |key: &str, why: &str| ProviderError::InvalidSecretValue {
        provider: provider.to_string(),
        secret: secret_name.to_string(),
        field: "spec.secretRef".into(),
        key: key.into(),
        why: why.into(),
    };
    if let Some(a) = data.get("address") {
        if a.len() > 2048 {
            return Err(key_error("address", "it is longer than 2048 bytes"));
        }
        s.address = text(a).trim().to_string();
        s.address_source = format!("key 'address' of Secret '{secret_name}'");
        s.masks.add(&s.address);
    }
    if let Some(t) = data.get("token") {
        s.masks.add(&text(t));
        s.token = Some(t.clone());
    }
    if let Some(p) = data.get("password") {
        let p = text(p);
        s.masks.add(&p);
        s.password = Some(p);
    }
    if let Some(u) = data.get("username").map(|u| text(u)).filter(|u| !u.is_empty()) {
        s.username = u;
    }
    if let Some(h) = data.get("headers") {
        s.headers = parse_headers(h, &mut s.masks).map_err(|why| key_error("headers", &why))?;
    }
    Ok(data.get("proxy").map(|p| {
        (
            format!("key 'proxy' of Secret '{secret_name}'"),
            text(p).trim().to_string(),
        )
    }))
}

/// The proxy of `spec.proxySecretRef`: `address` (required), `username`, `password`.
fn proxy_secret(
    provider: &str,
    secret_name: &str,
    data: &SecretData,
    masks: &mut Masks,
) -> Result<reqwest::Proxy, ProviderError> {
    let address = data
        .get("address")
        .map(|a| text(a).trim().to_string())
        .unwrap_or_default();
    if address.is_empty() {
        return Err(ProviderError::MissingSecretKey {
            provider: provider.to_string(),
            secret: secret_name.to_string(),
            field: "spec.proxySecretRef".into(),
            key: "address".into(),
            why: "it holds the proxy URL".into(),
        });
    }
    let user = data.get("username").map(|u| text(u));
    let pass = data.get("password").map(|p| text(p));
    let source = format!("key 'address' of Secret '{secret_name}'");
    proxy_from(
        provider,
        &source,
        &address,
        user.as_deref(),
        pass.as_deref(),
        masks,
    )
}

/// The data of a referenced Secret, or the error of one that could not be read.
fn required<'a>(
    provider: &str,
    field: &str,
    namespace: &str,
    name: &str,
    data: Option<&'a SecretData>,
) -> Result<&'a SecretData, ProviderError> {
    data.ok_or_else(|| ProviderError::SecretGet {
        provider: provider.to_string(),
        field: field.to_string(),
        secret: format!("{namespace}/{name}"),
        message: format!("secrets \"{name}\" not found"),
        not_found: true,
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The Secret's `headers`: a YAML map of header names to values. Values are secrets (API keys
/// live there), so they are marked sensitive and masked; errors never quote the text.
fn parse_headers(yaml: &[u8], masks: &mut Masks) -> Result<HeaderMap, String> {
    let text = std::str::from_utf8(yaml).map_err(|_| "it is not UTF-8 text".to_string())?;
    let map: BTreeMap<String, String> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_saphyr::from_str(text)
            .map_err(|_| "it is not a YAML map of HTTP header names to string values".to_string())?
    };
    let mut headers = HeaderMap::new();
    for (k, v) in map {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("'{k}' is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(v.trim())
            .map_err(|_| format!("the value of header '{k}' is not a valid HTTP header value"))?;
        value.set_sensitive(true);
        masks.add(&v);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// A proxy from its URL (`http`, `https` or `socks5`) and optional basic credentials.
fn proxy_from(
    provider: &str,
    source: &str,
    address: &str,
    username: Option<&str>,
    password: Option<&str>,
    masks: &mut Masks,
) -> Result<reqwest::Proxy, ProviderError> {
    let invalid = |why: &str| ProviderError::InvalidProxy {
        provider: provider.to_string(),
        location: source.to_string(),
        why: why.to_string(),
    };
    let url = Url::parse(address).map_err(|_| invalid("it is not a URL"))?;
    masks.add_userinfo(&url);
    if !matches!(url.scheme(), "http" | "https" | "socks5") {
        return Err(invalid("the scheme must be one of http, https, socks5"));
    }
    let mut proxy = reqwest::Proxy::all(url.as_str()).map_err(|_| invalid("it is not a usable proxy URL"))?;
    if let Some(user) = username.filter(|u| !u.is_empty()) {
        let password = password.unwrap_or_default();
        masks.add(password);
        proxy = proxy.basic_auth(user, password);
    }
    Ok(proxy)
}

/// CA bundle and client identity from `ca.crt`, `tls.crt` + `tls.key` (or the legacy `caFile`,
/// `certFile`, `keyFile`).
#[allow(clippy::type_complexity)]
fn tls_from(
    provider: &str,
    source: &str,
    data: &SecretData,
) -> Result<(Option<Vec<reqwest::Certificate>>, Option<reqwest::Identity>), ProviderError> {
    let invalid = |why: String| ProviderError::InvalidTls {
        provider: provider.to_string(),
        location: source.to_string(),
        why,
    };
    let get = |key: &str, legacy: &str| {
        data.get(key)
            .or_else(|| data.get(legacy))
            .filter(|v| !v.is_empty())
    };
    let ca = match get("ca.crt", "caFile") {
        Some(pem) => Some(parse_ca_bundle(pem).map_err(|e| invalid(e.to_string()))?),
        None => None,
    };
    let identity = match (get("tls.crt", "certFile"), get("tls.key", "keyFile")) {
        (Some(cert), Some(key)) => {
            let cert = ClientCertificate {
                cert_pem: cert.clone(),
                key_pem: gitops_git::Secret::new(key.clone()),
            };
            Some(client_identity(&cert).map_err(|e| invalid(e.to_string()))?)
        }
        (None, None) => None,
        _ => return Err(invalid("'tls.crt' and 'tls.key' must be set together".into())),
    };
    Ok((ca, identity))
}
