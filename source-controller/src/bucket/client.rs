//! Builds the object-store client of a Bucket from its spec and Secrets: S3 (`generic`, `aws`) or
//! Azure Blob (`azure`), with the CA, client certificate and proxy of `certSecretRef` and
//! `proxySecretRef`.
//!
//! ```text
//!  spec + secretRef + certSecretRef + proxySecretRef ──► BucketClient { ObjectStore, scrubber }
//! ```
//!
//! `object_store` does the S3 and Azure protocols (SigV4 / shared key / SAS / Entra ID, paging,
//! the AWS credential chain). Its own HTTP client options have a root CA but no client
//! certificate, so we hand it our own `reqwest` client through [`HttpConnector`]: CA bundle,
//! mTLS identity, proxy with credentials, https-only unless `spec.insecure`. Both use reqwest's
//! rustls with the aws-lc-rs provider, the one the rest of the workspace uses.
//!
//! Secret values never reach a message: every error text passes [`BucketClient::scrub`].

use super::error::BucketError;
use crate::credentials::{ClientCertificate, ProxyOptions, Secret, client_identity, parse_ca_bundle};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::client::{HttpClient, HttpConnector};
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The storage API of a Bucket this build talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Any S3-compatible server; anonymous without a secret.
    Generic,
    /// Amazon S3; without a secret the AWS credential chain (env, web identity, container, IMDS).
    Aws,
    /// Azure Blob storage; `endpoint` is the account URL.
    Azure,
}

impl Provider {
    /// The `spec.provider` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Generic => "generic",
            Provider::Aws => "aws",
            Provider::Azure => "azure",
        }
    }
}

/// Secret data as read from the API (values stay wrapped).
pub type SecretData = BTreeMap<String, Secret>;

/// Everything needed to build a client for one Bucket.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The provider.
    pub provider: Provider,
    /// `spec.bucketName`.
    pub bucket: String,
    /// `spec.endpoint`.
    pub endpoint: String,
    /// `spec.insecure`.
    pub insecure: bool,
    /// `spec.region`.
    pub region: Option<String>,
    /// `spec.secretRef`: its `namespace/name` and data.
    pub secret: Option<(String, SecretData)>,
    /// `spec.certSecretRef`: its `namespace/name` and data.
    pub cert_secret: Option<(String, SecretData)>,
    /// `spec.proxySecretRef`, parsed.
    pub proxy: Option<ProxyOptions>,
}

/// An object-store client for one bucket plus what is needed to keep its secrets out of messages.
#[derive(Clone)]
pub struct BucketClient {
    /// The store, rooted at the bucket.
    pub store: Arc<dyn ObjectStore>,
    /// The bucket name.
    pub bucket: String,
    /// The provider.
    pub provider: Provider,
    secrets: Vec<String>,
}

impl fmt::Debug for BucketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketClient")
            .field("bucket", &self.bucket)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl BucketClient {
    /// Builds the client.
    ///
    /// # Errors
    /// [`BucketError::InvalidSecret`] for missing or unusable secret keys (Flux's rule for S3:
    /// both `accesskey` and `secretkey`), [`BucketError::Client`] for an unusable endpoint.
    pub fn new(cfg: &ClientConfig) -> Result<Self, BucketError> {
        let connector = Connector::from_config(cfg)?;
        let retry = RetryConfig {
            // Flux fails a reconcile fast and retries it with backoff; two quick retries ride out
            // a dropped connection without hiding an endpoint that is down.
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        let mut secrets = Vec::new();
        let client_err = |e: &dyn std::error::Error| BucketError::Client {
            provider: cfg.provider.as_str(),
            bucket: cfg.bucket.clone(),
            message: crate::error_chain(e),
        };
        let store: Arc<dyn ObjectStore> = match cfg.provider {
            Provider::Generic | Provider::Aws => {
                let mut b = if cfg.provider == Provider::Aws && cfg.secret.is_none() {
                    AmazonS3Builder::from_env()
                } else {
                    AmazonS3Builder::new()
                };
                b = b
                    .with_bucket_name(&cfg.bucket)
                    .with_region(cfg.region.clone().unwrap_or_else(|| "us-east-1".into()))
                    .with_allow_http(cfg.insecure)
                    .with_retry(retry)
                    .with_http_connector(connector);
                // Amazon's own endpoints are addressed per region by the builder; everything else
                // is a path-style endpoint like minio-go's.
                if !(cfg.provider == Provider::Aws && is_amazon_endpoint(&cfg.endpoint)) {
                    b = b.with_endpoint(endpoint_url(&cfg.endpoint, cfg.insecure));
                }
                match &cfg.secret {
                    Some((name, data)) => {
                        let (access, secret) = s3_keys(name, data)?;
                        secrets.push(access.clone());
                        secrets.push(secret.clone());
                        b = b.with_access_key_id(access).with_secret_access_key(secret);
                    }
                    None if cfg.provider == Provider::Generic => b = b.with_skip_signature(true),
                    None => {}
                }
                Arc::new(b.build().map_err(|e| client_err(&e))?)
            }
            Provider::Azure => {
                let account = azure_account(&cfg.endpoint).ok_or_else(|| BucketError::Client {
                    provider: "azure",
                    bucket: cfg.bucket.clone(),
                    message: format!(
                        "cannot find the account name in endpoint '{}'; use https://<account>.blob.core.windows.net or http://<host>:<port>/<account>",
                        cfg.endpoint
                    ),
                })?;
                let mut b = MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(&cfg.bucket)
                    .with_endpoint(cfg.endpoint.trim_end_matches('/').to_string())
                    .with_allow_http(cfg.endpoint.starts_with("http://"))
                    .with_retry(retry)
                    .with_http_connector(connector);
                b = match &cfg.secret {
                    Some((name, data)) => azure_credentials(b, name, data, &mut secrets)?,
                    None => b.with_skip_signature(true),
                };
                Arc::new(b.build().map_err(|e| client_err(&e))?)
            }
        };
        Ok(BucketClient {
            store,
            bucket: cfg.bucket.clone(),
            provider: cfg.provider,
            secrets,
        })
    }

    /// Replaces every secret value (and its percent-encoded form) in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, &self.secrets)
    }
}

fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s.as_str(), "***");
        let encoded: String = s
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if encoded != *s {
            out = out.replace(&encoded, "***");
        }
    }
    out
}

fn is_amazon_endpoint(endpoint: &str) -> bool {
    let host = endpoint.split(['/', ':']).next().unwrap_or_default();
    host.ends_with(".amazonaws.com") || host == "amazonaws.com"
}

/// `spec.endpoint` is `host[:port]` for S3 (https unless `insecure`); a URL is taken as given.
fn endpoint_url(endpoint: &str, insecure: bool) -> String {
    if endpoint.contains("://") {
        endpoint.trim_end_matches('/').to_string()
    } else {
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{}", endpoint.trim_end_matches('/'))
    }
}

/// The storage account of an Azure endpoint: the first label of `<account>.blob.core.windows.net`,
/// or the first path segment of a path-style URL (`http://127.0.0.1:10000/devstoreaccount1`).
fn azure_account(endpoint: &str) -> Option<String> {
    let (_, rest) = endpoint.split_once("://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.rsplit('@').next().unwrap_or(host);
    if let Some(seg) = path.split('/').find(|s| !s.is_empty()) {
        return Some(seg.to_string());
    }
    let hostname = host.split(':').next().unwrap_or(host);
    let (first, domain) = hostname.split_once('.')?;
    (!first.is_empty() && !domain.is_empty() && first.parse::<u8>().is_err()).then(|| first.to_string())
}

fn s3_keys(name: &str, data: &SecretData) -> Result<(String, String), BucketError> {
    match (data.get("accesskey"), data.get("secretkey")) {
        (Some(a), Some(s)) => Ok((a.expose_str(), s.expose_str())),
        _ => Err(BucketError::InvalidSecret {
            secret: name.to_string(),
            message: "required fields 'accesskey' and 'secretkey'".into(),
        }),
    }
}

fn azure_credentials(
    mut b: MicrosoftAzureBuilder,
    name: &str,
    data: &SecretData,
    secrets: &mut Vec<String>,
) -> Result<MicrosoftAzureBuilder, BucketError> {
    let get = |k: &str| data.get(k).map(Secret::expose_str);
    let invalid = |message: &str| BucketError::InvalidSecret {
        secret: name.to_string(),
        message: message.to_string(),
    };
    if let Some(host) = get("authorityHost") {
        b = b.with_authority_host(host);
    }
    if let (Some(tenant), Some(client)) = (get("tenantId"), get("clientId")) {
        if let Some(secret) = get("clientSecret") {
            secrets.push(secret.clone());
            return Ok(b
                .with_tenant_id(tenant)
                .with_client_id(client)
                .with_client_secret(secret));
        }
        if data.contains_key("clientCertificate") {
            return Err(invalid(
                "'clientCertificate' authentication is not supported by this source-controller; use 'clientSecret', 'accountKey' or 'sasKey'",
            ));
        }
    }
    if let Some(key) = get("accountKey") {
        secrets.push(key.clone());
        return Ok(b.with_access_key(key));
    }
    if let Some(sas) = get("sasKey") {
        let query = sas.trim_start_matches('?').to_string();
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        if pairs.is_empty() {
            return Err(invalid("'sasKey' is empty"));
        }
        for (_, v) in &pairs {
            secrets.push(v.clone());
        }
        secrets.push(query);
        return Ok(b.with_sas_authorization(pairs));
    }
    if let Some(client) = get("clientId") {
        // Managed identity with a user-assigned client id.
        return Ok(b.with_client_id(client));
    }
    Err(invalid(
        "requires one of: 'clientId' (managed identity), 'accountKey', 'sasKey', or 'tenantId' + 'clientId' + 'clientSecret'",
    ))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(v);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Our `reqwest` client for `object_store`: adds what its options lack (client certificate) and
/// keeps the CA, proxy and TLS settings in one place.
#[derive(Clone)]
struct Connector {
    ca: Option<Vec<reqwest::Certificate>>,
    identity: Option<reqwest::Identity>,
    proxy: Option<reqwest::Proxy>,
    https_only: bool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("custom_ca", &self.ca.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("proxy", &self.proxy.is_some())
            .field("https_only", &self.https_only)
            .finish()
    }
}

impl Connector {
    fn from_config(cfg: &ClientConfig) -> Result<Self, BucketError> {
        let mut ca = None;
        let mut identity = None;
        if let Some((name, data)) = &cfg.cert_secret {
            let invalid = |message: String| BucketError::InvalidSecret {
                secret: name.clone(),
                message,
            };
            let get = |a: &str, b: &str| data.get(a).or_else(|| data.get(b));
            if let Some(pem) = get("ca.crt", "caFile") {
                ca = Some(parse_ca_bundle(pem.expose()).map_err(|e| invalid(e.to_string()))?);
            }
            match (get("tls.crt", "certFile"), get("tls.key", "keyFile")) {
                (Some(cert), Some(key)) => {
                    let cc = ClientCertificate {
                        cert_pem: cert.expose().to_vec(),
                        key_pem: key.clone(),
                    };
                    identity = Some(client_identity(&cc).map_err(|e| invalid(e.to_string()))?);
                }
                (None, None) => {}
                _ => return Err(invalid("'tls.crt' and 'tls.key' must be set together".into())),
            }
        }
        let proxy = match &cfg.proxy {
            Some(p) => {
                let mut proxy = reqwest::Proxy::all(p.address.as_str()).map_err(|_| BucketError::Client {
                    provider: cfg.provider.as_str(),
                    bucket: cfg.bucket.clone(),
                    message: "the proxy address is not a valid URL".into(),
                })?;
                if let Some(user) = &p.username {
                    let password = p.password.as_ref().map(Secret::expose_str).unwrap_or_default();
                    proxy = proxy.basic_auth(user, &password);
                }
                Some(proxy)
            }
            None => None,
        };
        let https_only = match cfg.provider {
            Provider::Azure => cfg.endpoint.starts_with("https://"),
            Provider::Generic | Provider::Aws => !cfg.insecure,
        };
        Ok(Connector {
            ca,
            identity,
            proxy,
            https_only,
        })
    }
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .https_only(self.https_only)
            .user_agent(concat!("source-controller/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.ca {
            // Only the secret's CA, as Flux does with certSecretRef.
            b = b.tls_certs_only(ca.clone());
        }
        if let Some(id) = &self.identity {
            b = b.identity(id.clone());
        }
        match &self.proxy {
            Some(p) => b = b.proxy(p.clone()),
            // No ambient HTTP(S)_PROXY: a proxy is configured per object, as Flux does for buckets.
            None => b = b.no_proxy(),
        }
        let client = b.build().map_err(|e| object_store::Error::Generic {
            store: "bucket",
            source: Box::new(e),
        })?;
        Ok(HttpClient::new(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> SecretData {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), Secret::new(v.as_bytes())))
            .collect()
    }

    fn cfg(provider: Provider, endpoint: &str) -> ClientConfig {
        ClientConfig {
            provider,
            bucket: "b".into(),
            endpoint: endpoint.into(),
            insecure: true,
            region: None,
            secret: None,
            cert_secret: None,
            proxy: None,
        }
    }

    #[test]
    fn s3_secrets_need_both_keys() {
        let mut c = cfg(Provider::Generic, "127.0.0.1:9000");
        c.secret = Some(("ns/s".into(), data(&[("accesskey", "AKIAEXAMPLE")])));
        let err = BucketClient::new(&c).unwrap_err();
        assert_eq!(err.reason(), "AuthenticationFailed");
        assert_eq!(
            err.to_string(),
            "invalid 'ns/s' secret data: required fields 'accesskey' and 'secretkey'"
        );
        c.secret = Some((
            "ns/s".into(),
            data(&[("accesskey", "AKIAEXAMPLE"), ("secretkey", "s3cr3t-value")]),
        ));
        let client = BucketClient::new(&c).unwrap();
        assert_eq!(
            client.scrub("sig s3cr3t-value and AKIAEXAMPLE"),
            "sig *** and ***"
        );
    }

    #[test]
    fn azure_accounts_come_from_host_or_path() {
        assert_eq!(
            azure_account("https://myacct.blob.core.windows.net").as_deref(),
            Some("myacct")
        );
        assert_eq!(
            azure_account("http://127.0.0.1:10000/devstoreaccount1").as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(azure_account("http://127.0.0.1:10000"), None);
        assert_eq!(azure_account("myacct.blob.core.windows.net"), None);
    }

    #[test]
    fn azure_secrets_need_a_known_key_set() {
        let mut c = cfg(Provider::Azure, "http://127.0.0.1:10000/devstoreaccount1");
        c.secret = Some(("ns/az".into(), data(&[("tenantId", "t")])));
        let err = BucketClient::new(&c).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid 'ns/az' secret data: requires one of"),
            "{err}"
        );
        c.secret = Some(("ns/az".into(), data(&[("sasKey", "?sv=2020&sig=abc%2Bdef%3D")])));
        let client = BucketClient::new(&c).unwrap();
        assert_eq!(client.scrub("url?sig=abc%2Bdef%3D"), "url?sig=***");
    }

    #[test]
    fn endpoints_get_a_scheme_from_insecure() {
        assert_eq!(endpoint_url("minio:9000", true), "http://minio:9000");
        assert_eq!(endpoint_url("minio:9000", false), "https://minio:9000");
        assert_eq!(endpoint_url("https://minio:9000/", true), "https://minio:9000");
        assert!(is_amazon_endpoint("s3.eu-west-1.amazonaws.com"));
        assert!(!is_amazon_endpoint("127.0.0.1:18333"));
    }

    #[test]
    fn percent_decoding_handles_escapes_and_plain_text() {
        assert_eq!(percent_decode("a%2Bb%3D"), "a+b=");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("50%"), "50%");
    }
}
