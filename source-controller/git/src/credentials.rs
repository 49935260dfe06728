//! Credentials for a git remote, from either of the two places they come from:
//!
//! ```text
//!   Secret data (controller: spec.secretRef, spec.proxySecretRef) ─► Credentials::from_secret_data
//!     http(s)  username + password (basic) | bearerToken      — never both
//!              ca.crt (or legacy caFile)   — the only roots trusted when set
//!              tls.crt + tls.key           — client certificate (mTLS), both or neither
//!     ssh      identity (required) + known_hosts (required)  — SshMode::Strict
//!              + password (key passphrase)
//!     proxy    address (required) + username + password      — http(s) remotes only
//!
//!   KLUCTL_GIT_[<n>_]HOST/USERNAME/PASSWORD/PATH (CLI) ──────► Credentials::from_kluctl_env
//!     http(s)  username + password of the first set whose HOST (and PATH glob) match the URL
//!     ssh      SshMode::System: the user's ssh, ~/.ssh/config, agent, GIT_SSH_COMMAND
//! ```
//!
//! The Secret keys and checks are Flux's (`fluxcd/pkg/git`), the environment sets Kluctl's.
//! Every secret value lives in a [`Secret`], whose `Debug`/`Display` print `<redacted>`, so
//! [`Credentials`] can be logged with `{:?}` safely. Errors name keys, never values. Encrypted SSH
//! keys (OpenSSH format) are decrypted here, in-process, so that the `ssh` binary never needs
//! to ask for a passphrase. The CA-bundle and client-identity parsing is shared with
//! source-controller's Bucket client, which reads the same keys.

use std::collections::BTreeMap;
use std::fmt;

use crate::Error;
use crate::url::{Scheme, percent_encode, redact_url, url_username};

/// Bytes that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Secret(value.into())
    }

    /// The secret bytes, for handing to the transport.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8 text, lossily (credentials on the wire are text).
    pub fn expose_str(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// HTTP basic credentials.
#[derive(Clone, Debug)]
pub struct BasicAuth {
    /// The user name (not secret).
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// A TLS client certificate and its key, as PEM.
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    /// The certificate chain (`tls.crt`), PEM.
    pub cert_pem: Vec<u8>,
    /// The private key (`tls.key`), PEM.
    pub key_pem: Secret,
}

/// SSH credentials: an unencrypted private key and the trusted host keys.
#[derive(Clone, Debug)]
pub struct SshKeys {
    /// The private key in a format `ssh` reads, already decrypted.
    pub identity: Secret,
    /// `known_hosts` lines; the host key of the server must be among them.
    pub known_hosts: Vec<u8>,
}

/// An HTTP(S) or SOCKS5 proxy for the git traffic (`spec.proxySecretRef`).
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// The proxy URL (`http://`, `https://` or `socks5://`).
    pub address: String,
    /// Proxy user name, if the proxy needs one.
    pub username: Option<String>,
    /// Proxy password.
    pub password: Option<Secret>,
}

/// How `ssh://` URLs are reached.
#[derive(Clone, Debug)]
pub enum SshMode {
    /// Only the given key and host keys (the controller): strict host-key checking against
    /// `known_hosts`, `BatchMode`, no agent, no user or system ssh configuration; a URL without
    /// a user name connects as `git`, as in Flux.
    Strict(SshKeys),
    /// The user's own `ssh` (the CLI): `~/.ssh/config`, the agent and the user's known hosts
    /// apply; `command` (`GIT_SSH_COMMAND`) replaces `ssh` when set. SCP-like `user@host:path`
    /// URLs and local paths are accepted too, as the user's git would.
    System {
        /// The ssh command line to run instead of `ssh`.
        command: Option<String>,
    },
}

/// Where credentials came from; names the place in the "none given" message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Origin {
    #[default]
    Secret,
    KluctlEnv,
}

/// Everything needed to authenticate against one git remote.
///
/// `Credentials::default()` is anonymous access with `ssh://` URLs refused (they need
/// [`SshMode`]).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub(crate) basic: Option<BasicAuth>,
    pub(crate) bearer_token: Option<Secret>,
    pub(crate) ca_bundle: Option<Vec<u8>>,
    pub(crate) client_cert: Option<ClientCertificate>,
    pub(crate) ssh: Option<SshMode>,
    pub(crate) proxy: Option<ProxyOptions>,
    pub(crate) origin: Origin,
}

impl Credentials {
    /// Anonymous access.
    pub fn none() -> Self {
        Credentials::default()
    }

    /// Reads the credentials for `url` from Secret data, checking them the way Flux does; ssh
    /// URLs get [`SshMode::Strict`].
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] naming the offending keys: a password without a user name, basic
    /// auth together with a bearer token, half of a client certificate, unparsable PEM, a
    /// missing `identity`/`known_hosts` for SSH, an encrypted key without (or with a wrong)
    /// passphrase. [`Error::InvalidUrl`] for an unsupported scheme.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use gitops_git::Credentials;
    ///
    /// let data = BTreeMap::from([
    ///     ("username".to_string(), b"flux".to_vec()),
    ///     ("password".to_string(), b"s3cret".to_vec()),
    /// ]);
    /// let credentials = Credentials::from_secret_data("https://example.com/repo.git", &data).unwrap();
    /// assert!(!format!("{credentials:?}").contains("s3cret"));
    /// ```
    pub fn from_secret_data(url: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self, Error> {
        let scheme = Scheme::of(url).ok_or_else(|| Error::InvalidUrl {
            url: redact_url(url),
            reason: "the scheme must be one of http, https, ssh or git".to_string(),
        })?;
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty());
        let text = |key: &str| get(key).map(|v| String::from_utf8_lossy(v).into_owned());
        let mut auth = Credentials::default();
        match scheme {
            Scheme::Http | Scheme::Https => {
                let url_user = url_username(url);
                let username = text("username").or(url_user);
                let password = get("password").map(|p| Secret::new(p.clone()));
                if password.is_some() && username.is_none() {
                    return Err(Error::InvalidSecret(
                        "'password' requires 'username' to be set".to_string(),
                    ));
                }
                let bearer = get("bearerToken").map(|t| Secret::new(t.clone()));
                if bearer.is_some() && username.is_some() {
                    return Err(Error::InvalidSecret(
                        "basic auth and bearer token cannot be set at the same time".to_string(),
                    ));
                }
                auth.bearer_token = bearer;
                if let (Some(username), Some(password)) = (username, password) {
                    auth.basic = Some(BasicAuth { username, password });
                }
                if let Some(ca) = get("ca.crt").or_else(|| get("caFile")) {
                    parse_ca_bundle(ca)?;
                    auth.ca_bundle = Some(ca.clone());
                }
                match (get("tls.crt"), get("tls.key")) {
                    (Some(cert), Some(key)) => {
                        let cert = ClientCertificate {
                            cert_pem: cert.clone(),
                            key_pem: Secret::new(key.clone()),
                        };
                        client_identity(&cert)?;
                        auth.client_cert = Some(cert);
                    }
                    (None, None) => {}
                    _ => {
                        return Err(Error::InvalidSecret(
                            "'tls.crt' and 'tls.key' must be set together".to_string(),
                        ));
                    }
                }
            }
            Scheme::Ssh => {
                let identity = get("identity")
                    .ok_or_else(|| Error::InvalidSecret("'identity' is required for ssh URLs".to_string()))?;
                let known_hosts = get("known_hosts").ok_or_else(|| {
                    Error::InvalidSecret("'known_hosts' is required for ssh URLs".to_string())
                })?;
                let passphrase = get("password").map(|p| Secret::new(p.clone()));
                auth.ssh = Some(SshMode::Strict(SshKeys {
                    identity: decrypt_identity(identity, passphrase.as_ref())?,
                    known_hosts: known_hosts.clone(),
                }));
            }
            Scheme::Git => {}
        }
        Ok(auth)
    }

    /// The credentials Kluctl's environment variables give for `url` (see [`KluctlGitEnv`]); ssh
    /// is [`SshMode::System`] with `GIT_SSH_COMMAND` from `env`.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use gitops_git::Credentials;
    ///
    /// let env = BTreeMap::from([
    ///     ("KLUCTL_GIT_HOST".to_string(), "example.com".to_string()),
    ///     ("KLUCTL_GIT_USERNAME".to_string(), "me".to_string()),
    ///     ("KLUCTL_GIT_PASSWORD".to_string(), "s3cret".to_string()),
    /// ]);
    /// let credentials = Credentials::from_kluctl_env("https://example.com/r.git", &env);
    /// assert!(!format!("{credentials:?}").contains("s3cret"));
    /// ```
    pub fn from_kluctl_env(url: &str, env: &BTreeMap<String, String>) -> Self {
        KluctlGitEnv::from_env(env).credentials_for(url)
    }

    /// What the credentials callback says when the server asks and nothing was given.
    pub(crate) fn missing_message(&self) -> &'static str {
        match self.origin {
            Origin::Secret => "the server asks for credentials but the secret provides none",
            Origin::KluctlEnv => "the server asks for credentials but no KLUCTL_GIT_* entry matches its host",
        }
    }

    /// Routes the HTTP(S) traffic through `proxy`.
    #[must_use]
    pub fn with_proxy(mut self, proxy: ProxyOptions) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Replaces every secret value (and its percent-encoded form) in `text` with `***`.
    ///
    /// Values shorter than three bytes are left alone: replacing single characters would
    /// destroy the message while protecting nothing.
    pub fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<String> = Vec::new();
        if let Some(b) = &self.basic {
            secrets.push(b.password.expose_str());
        }
        if let Some(t) = &self.bearer_token {
            secrets.push(t.expose_str());
        }
        if let Some(p) = self.proxy.as_ref().and_then(|p| p.password.as_ref()) {
            secrets.push(p.expose_str());
        }
        let mut out = text.to_string();
        for secret in secrets.iter().filter(|s| s.len() >= 3) {
            out = out.replace(secret.as_str(), "***");
            let encoded = percent_encode(secret);
            if encoded != *secret {
                out = out.replace(&encoded, "***");
            }
        }
        out
    }
}

impl ProxyOptions {
    /// Reads a proxy from `spec.proxySecretRef` data: `address` (required), `username`, `password`.
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] when `address` is missing or not a usable proxy URL.
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, Error> {
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty());
        let address = get("address")
            .map(|a| String::from_utf8_lossy(a).trim().to_string())
            .ok_or_else(|| Error::InvalidSecret("proxy secret needs 'address'".to_string()))?;
        reqwest::Proxy::all(address.as_str()).map_err(|_| {
            Error::InvalidSecret(format!(
                "proxy 'address' '{}' is not a valid proxy URL",
                redact_url(&address)
            ))
        })?;
        Ok(ProxyOptions {
            address,
            username: get("username").map(|u| String::from_utf8_lossy(u).into_owned()),
            password: get("password").map(|p| Secret::new(p.clone())),
        })
    }
}

/// Parses `ca.crt` into certificates; an empty or unreadable bundle is an error.
///
/// # Errors
/// [`Error::InvalidSecret`] naming `ca.crt`.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, Error> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(Error::InvalidSecret(
            "'ca.crt' is not a PEM certificate bundle".to_string(),
        )),
    }
}

/// Builds the reqwest identity from `tls.crt` + `tls.key`.
///
/// # Errors
/// [`Error::InvalidSecret`] naming both keys when they are not a PEM certificate and key.
pub fn client_identity(cert: &ClientCertificate) -> Result<reqwest::Identity, Error> {
    let mut pem = cert.cert_pem.clone();
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(cert.key_pem.expose());
    reqwest::Identity::from_pem(&pem).map_err(|_| {
        Error::InvalidSecret("'tls.crt' and 'tls.key' are not a PEM certificate and private key".to_string())
    })
}

/// Returns the identity in a form `ssh` can read without asking for anything.
pub(crate) fn decrypt_identity(identity: &[u8], passphrase: Option<&Secret>) -> Result<Secret, Error> {
    match ssh_key::PrivateKey::from_openssh(identity) {
        Ok(key) if key.is_encrypted() => {
            let passphrase = passphrase.ok_or_else(|| {
                Error::InvalidSecret(
                    "'identity' is encrypted but 'password' (its passphrase) is not set".to_string(),
                )
            })?;
            let key = key.decrypt(passphrase.expose()).map_err(|_| {
                Error::InvalidSecret("'identity' could not be decrypted with 'password'".to_string())
            })?;
            let text = key
                .to_openssh(ssh_key::LineEnding::LF)
                .map_err(|_| Error::InvalidSecret("'identity' could not be re-encoded".to_string()))?;
            Ok(Secret::new(text.as_bytes().to_vec()))
        }
        Ok(_) => Ok(Secret::new(identity.to_vec())),
        Err(_) => {
            // Not the OpenSSH format: PEM (PKCS#1/PKCS#8/SEC1) keys are handed to `ssh` as-is,
            // which reads them natively, but only unencrypted ones.
            let text = String::from_utf8_lossy(identity);
            if !text.contains("-----BEGIN ") || !text.contains("PRIVATE KEY-----") {
                return Err(Error::InvalidSecret(
                    "'identity' is not a PEM or OpenSSH private key".to_string(),
                ));
            }
            if text.contains("ENCRYPTED") {
                return Err(Error::InvalidSecret(
                    "'identity' is an encrypted PEM key; only encrypted keys in the OpenSSH format \
                     can be decrypted (convert with 'ssh-keygen -p -f <key>')"
                        .to_string(),
                ));
            }
            Ok(Secret::new(identity.to_vec()))
        }
    }
}

/// One `KLUCTL_GIT_[<n>_]*` set.
#[derive(Clone, Debug)]
struct EnvEntry {
    host: String,
    path: Option<globset::GlobMatcher>,
    username: String,
    password: Secret,
}

/// The git credentials of Kluctl's environment: `KLUCTL_GIT_HOST`, `_USERNAME`, `_PASSWORD` and
/// optionally `_PATH` (a glob on the URL path), unnumbered or numbered (`KLUCTL_GIT_1_HOST`, ...),
/// plus `GIT_SSH_COMMAND`. Read once, matched per URL; passwords never print.
#[derive(Clone, Debug, Default)]
pub struct KluctlGitEnv {
    entries: Vec<EnvEntry>,
    ssh_command: Option<String>,
}

impl KluctlGitEnv {
    /// Reads the sets from `env`, in Kluctl's order (unnumbered first, then by number); a set
    /// without `HOST` is ignored.
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let mut sets: BTreeMap<Option<u64>, BTreeMap<&str, &str>> = BTreeMap::new();
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("KLUCTL_GIT_") else {
                continue;
            };
            let (index, key) = match rest.split_once('_') {
                Some((n, key)) if n.chars().all(|c| c.is_ascii_digit()) => (n.parse().ok(), key),
                _ => (None, rest),
            };
            sets.entry(index).or_default().insert(key, v.as_str());
        }
        let entries = sets
            .into_values()
            .filter_map(|m| {
                let host = m.get("HOST").filter(|h| !h.is_empty())?;
                let path = m
                    .get("PATH")
                    .filter(|p| !p.is_empty())
                    .and_then(|p| {
                        globset::GlobBuilder::new(p.trim_start_matches('/'))
                            .literal_separator(true)
                            .build()
                            .ok()
                    })
                    .map(|g| g.compile_matcher());
                Some(EnvEntry {
                    host: (*host).to_owned(),
                    path,
                    username: m.get("USERNAME").copied().unwrap_or_default().to_owned(),
                    password: Secret::new(m.get("PASSWORD").copied().unwrap_or_default()),
                })
            })
            .collect();
        KluctlGitEnv {
            entries,
            ssh_command: env.get("GIT_SSH_COMMAND").filter(|s| !s.is_empty()).cloned(),
        }
    }

    /// The credentials for `url`: the first set whose `HOST` equals the URL's host (with or
    /// without its port) and whose `PATH` glob, if any, matches the URL path.
    pub fn credentials_for(&self, url: &str) -> Credentials {
        let parsed = gix::url::parse(gix::bstr::BStr::new(url.as_bytes())).ok();
        let host = parsed
            .as_ref()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        let host_port = match parsed.as_ref().and_then(|u| u.port) {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let path = parsed
            .as_ref()
            .map(|u| {
                String::from_utf8_lossy(&u.path)
                    .trim_start_matches('/')
                    .to_owned()
            })
            .unwrap_or_default();
        let basic = self
            .entries
            .iter()
            .find(|e| {
                (e.host == host || e.host == host_port) && e.path.as_ref().is_none_or(|g| g.is_match(&path))
            })
            .map(|e| BasicAuth {
                username: e.username.clone(),
                password: e.password.clone(),
            });
        Credentials {
            basic,
            ssh: Some(SshMode::System {
                command: self.ssh_command.clone(),
            }),
            origin: Origin::KluctlEnv,
            ..Credentials::default()
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn secret_error(url: &str, pairs: &[(&str, &str)]) -> String {
        match Credentials::from_secret_data(url, &data(pairs)) {
            Err(Error::InvalidSecret(msg)) => msg,
            other => panic!("expected an invalid-secret error, got {other:?}"),
        }
    }

    #[test]
    fn basic_auth_is_read_and_never_printed() {
        let auth = Credentials::from_secret_data(
            "https://example.com/r.git",
            &data(&[("username", "flux"), ("password", "hunter2-pw")]),
        )
        .expect("valid");
        let basic = auth.basic.as_ref().expect("basic auth");
        assert_eq!(basic.username, "flux");
        assert_eq!(basic.password.expose(), b"hunter2-pw");
        let debug = format!("{auth:?}");
        assert!(!debug.contains("hunter2-pw"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(format!("{}", basic.password), "<redacted>");
    }

    #[test]
    fn password_without_username_is_rejected() {
        let msg = secret_error("https://example.com/r.git", &[("password", "pw")]);
        assert_eq!(msg, "'password' requires 'username' to be set");
    }

    #[test]
    fn username_from_the_url_pairs_with_the_secret_password() {
        let auth =
            Credentials::from_secret_data("http://flux@example.com/r.git", &data(&[("password", "pw")]))
                .expect("valid");
        assert_eq!(auth.basic.expect("basic").username, "flux");
    }

    #[test]
    fn bearer_token_and_basic_auth_are_exclusive() {
        let msg = secret_error(
            "https://example.com/r.git",
            &[("username", "u"), ("password", "p"), ("bearerToken", "t")],
        );
        assert_eq!(msg, "basic auth and bearer token cannot be set at the same time");
        let auth =
            Credentials::from_secret_data("https://example.com/r.git", &data(&[("bearerToken", "tok-123")]))
                .expect("valid");
        assert!(auth.bearer_token.is_some());
        assert!(!format!("{auth:?}").contains("tok-123"));
    }

    #[test]
    fn client_certificate_needs_both_halves() {
        let msg = secret_error("https://example.com/r.git", &[("tls.crt", "x")]);
        assert_eq!(msg, "'tls.crt' and 'tls.key' must be set together");
        let msg = secret_error("https://example.com/r.git", &[("tls.key", "x")]);
        assert_eq!(msg, "'tls.crt' and 'tls.key' must be set together");
    }

    #[test]
    fn garbage_ca_is_rejected_without_echoing_it() {
        let msg = secret_error("https://example.com/r.git", &[("ca.crt", "not a cert")]);
        assert_eq!(msg, "'ca.crt' is not a PEM certificate bundle");
        let msg = secret_error("https://example.com/r.git", &[("caFile", "nope")]);
        assert_eq!(msg, "'ca.crt' is not a PEM certificate bundle");
    }

    #[test]
    fn ssh_needs_identity_and_known_hosts() {
        let msg = secret_error("ssh://git@example.com/r.git", &[("known_hosts", "x")]);
        assert_eq!(msg, "'identity' is required for ssh URLs");
        let msg = secret_error("ssh://git@example.com/r.git", &[("identity", "x")]);
        assert_eq!(msg, "'known_hosts' is required for ssh URLs");
        let msg = secret_error(
            "ssh://git@example.com/r.git",
            &[("identity", "garbage"), ("known_hosts", "x")],
        );
        assert_eq!(msg, "'identity' is not a PEM or OpenSSH private key");
    }

    /// A throw-away ed25519 key made for this test with
    /// `ssh-keygen -t ed25519 -N 'correct horse' -C test-fixture`; it grants access to nothing.
    const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBiWIi3JK
utQdQt4SGD+acCAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIC66AueahDV3nhx+
VyPmFYPGxgOfiJD/eZZbv40usyl0AAAAkD3c90q2VszjxV1MIFtoBI2XmFks0rof88BUsg
xaqhJEDUxDd3bAhHTHA0yxQd837ED9eFslTKtJs23W6/y15OIhdY3SrCbOVgfI2Cymwq9h
QAUhNz0mqhN7qUtE17r09Ri6a6xoRZh6/EfkoiGrXwYR2wHsosqwOrO8B84u3RqipMFTR1
bcQy84NxAaV7Fkiw==
-----END OPENSSH PRIVATE KEY-----
";
    const ENCRYPTED_KEY_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC66AueahDV3nhx+VyPmFYPGxgOfiJD/eZZbv40usyl0 test-fixture";

    #[test]
    fn encrypted_ssh_keys_are_decrypted_in_process() {
        let url = "ssh://git@example.com/r.git";
        let msg = secret_error(url, &[("identity", ENCRYPTED_KEY), ("known_hosts", "h")]);
        assert_eq!(
            msg,
            "'identity' is encrypted but 'password' (its passphrase) is not set"
        );
        let msg = secret_error(
            url,
            &[
                ("identity", ENCRYPTED_KEY),
                ("known_hosts", "h"),
                ("password", "wrong"),
            ],
        );
        assert_eq!(msg, "'identity' could not be decrypted with 'password'");

        let auth = Credentials::from_secret_data(
            url,
            &data(&[
                ("identity", ENCRYPTED_KEY),
                ("known_hosts", "h"),
                ("password", "correct horse"),
            ]),
        )
        .expect("decrypts");
        let Some(SshMode::Strict(ssh)) = auth.ssh.as_ref() else {
            panic!("expected strict ssh keys, got {auth:?}");
        };
        let decrypted = ssh_key::PrivateKey::from_openssh(ssh.identity.expose()).expect("parses");
        assert!(!decrypted.is_encrypted());
        let public = ssh_key::PublicKey::from_openssh(ENCRYPTED_KEY_PUB).expect("public key");
        assert_eq!(decrypted.public_key().key_data(), public.key_data());
        assert!(!format!("{auth:?}").contains("BEGIN OPENSSH"));
        assert!(!format!("{auth:?}").contains("correct horse"));
    }

    #[test]
    fn unknown_schemes_are_invalid_urls() {
        let err =
            Credentials::from_secret_data("ftp://example.com/r.git", &BTreeMap::new()).expect_err("bad");
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    }

    #[test]
    fn proxy_needs_an_address() {
        let err = ProxyOptions::from_secret(&data(&[("username", "u")])).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "invalid secret data: proxy secret needs 'address'"
        );
        let proxy = ProxyOptions::from_secret(&data(&[
            ("address", "http://proxy:3128"),
            ("username", "u"),
            ("password", "proxy-pw"),
        ]))
        .expect("valid");
        assert_eq!(proxy.address, "http://proxy:3128");
        assert!(!format!("{proxy:?}").contains("proxy-pw"));
    }

    #[test]
    fn scrub_removes_secret_values_and_their_encoded_form() {
        let auth = Credentials::from_secret_data(
            "https://example.com/r.git",
            &data(&[("username", "flux"), ("password", "p@ss word")]),
        )
        .expect("valid");
        let text = "failed for https://flux:p%40ss%20word@example.com: p@ss word rejected";
        assert_eq!(
            auth.scrub(text),
            "failed for https://flux:***@example.com: *** rejected"
        );
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn username(c: &Credentials) -> Option<&str> {
        c.basic.as_ref().map(|b| b.username.as_str())
    }

    #[test]
    fn kluctl_env_sets_match_host_and_path() {
        let sets = KluctlGitEnv::from_env(&env(&[
            ("KLUCTL_GIT_HOST", "a.example"),
            ("KLUCTL_GIT_USERNAME", "u0"),
            ("KLUCTL_GIT_PASSWORD", "p0-secret"),
            ("KLUCTL_GIT_1_HOST", "b.example"),
            ("KLUCTL_GIT_1_PATH", "org/*"),
            ("KLUCTL_GIT_1_USERNAME", "u1"),
            ("KLUCTL_GIT_2_USERNAME", "no-host"),
            ("KLUCTL_GIT_3_HOST", "c.example:8443"),
            ("KLUCTL_GIT_3_USERNAME", "u3"),
        ]));
        assert_eq!(sets.entries.len(), 3);
        let c = sets.credentials_for("https://b.example/org/repo.git");
        assert_eq!(username(&c), Some("u1"));
        let c = sets.credentials_for("https://b.example/other/org/repo.git");
        assert!(c.basic.is_none(), "the path glob must not match deeper paths");
        let c = sets.credentials_for("https://a.example/x.git");
        assert_eq!(
            c.basic.as_ref().map(|b| b.password.expose()),
            Some(&b"p0-secret"[..])
        );
        let c = sets.credentials_for("https://c.example:8443/x.git");
        assert_eq!(username(&c), Some("u3"));
        let c = sets.credentials_for("https://c.example/x.git");
        assert!(c.basic.is_none(), "a HOST with a port needs that port");
        assert!(
            !format!("{sets:?}").contains("p0-secret"),
            "Debug must not show passwords"
        );
        assert!(!format!("{c:?}").contains("p0-secret"));
    }

    #[test]
    fn kluctl_env_uses_the_system_ssh_and_names_itself_when_nothing_matches() {
        let c = Credentials::from_kluctl_env(
            "ssh://git@a.example/r.git",
            &env(&[("GIT_SSH_COMMAND", "ssh -o Port=2222")]),
        );
        assert!(
            matches!(&c.ssh, Some(SshMode::System { command: Some(cmd) }) if cmd == "ssh -o Port=2222"),
            "{c:?}"
        );
        assert!(c.missing_message().contains("KLUCTL_GIT_"));
        assert!(Credentials::none().missing_message().contains("secret"));
    }
}
