//! Credentials for a git remote, read from the data of a `spec.secretRef` Secret (and of a
//! `spec.proxySecretRef` Secret), with the keys and checks of Flux (`fluxcd/pkg/git`):
//!
//! ```text
//!   http(s)  username + password (basic) | bearerToken      — never both
//!            ca.crt (or legacy caFile)   — the only roots trusted when set
//!            tls.crt + tls.key           — client certificate (mTLS), both or neither
//!   ssh      identity (required) + known_hosts (required, strict) + password (key passphrase)
//!   proxy    address (required) + username + password        — http(s) remotes only
//! ```
//!
//! Every secret value lives in a [`Secret`], whose `Debug`/`Display` print `<redacted>`, so an
//! [`Auth`] can be logged with `{:?}` safely. Errors name keys, never values. Encrypted SSH keys
//! (OpenSSH format) are decrypted here, in-process, so that the `ssh` binary never needs to ask
//! for a passphrase.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use super::GitError;

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
pub struct SshAuth {
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

/// Everything needed to authenticate against one git remote.
///
/// `Auth::default()` is anonymous access.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    pub(crate) basic: Option<BasicAuth>,
    pub(crate) bearer_token: Option<Secret>,
    pub(crate) ca_bundle: Option<Vec<u8>>,
    pub(crate) client_cert: Option<ClientCertificate>,
    pub(crate) ssh: Option<SshAuth>,
    pub(crate) proxy: Option<ProxyOptions>,
}

/// The URL scheme classes that decide which secret keys apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Http,
    Https,
    Ssh,
    Git,
}

impl Transport {
    pub(crate) fn of(url: &str) -> Option<Transport> {
        let (scheme, _) = url.split_once("://")?;
        match scheme.to_ascii_lowercase().as_str() {
            "http" => Some(Transport::Http),
            "https" => Some(Transport::Https),
            "ssh" => Some(Transport::Ssh),
            "git" => Some(Transport::Git),
            _ => None,
        }
    }
}

impl Auth {
    /// Anonymous access.
    pub fn none() -> Self {
        Auth::default()
    }

    /// Reads the credentials for `url` from Secret data, checking them the way Flux does.
    ///
    /// # Errors
    /// [`GitError::InvalidSecret`] (reason `AuthenticationFailed`) naming the offending keys: a
    /// password without a user name, basic auth together with a bearer token, half of a client
    /// certificate, unparsable PEM, a missing `identity`/`known_hosts` for SSH, an encrypted key
    /// without (or with a wrong) passphrase. [`GitError::InvalidUrl`] for an unsupported scheme.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use source_controller::git::Auth;
    ///
    /// let data = BTreeMap::from([
    ///     ("username".to_string(), b"flux".to_vec()),
    ///     ("password".to_string(), b"s3cret".to_vec()),
    /// ]);
    /// let auth = Auth::from_secret("https://example.com/repo.git", &data).unwrap();
    /// assert!(!format!("{auth:?}").contains("s3cret"));
    /// ```
    pub fn from_secret(url: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self, GitError> {
        let transport = Transport::of(url).ok_or_else(|| GitError::InvalidUrl {
            url: redact_url(url),
            reason: "the scheme must be one of http, https, ssh or git".to_string(),
        })?;
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty());
        let text = |key: &str| get(key).map(|v| String::from_utf8_lossy(v).into_owned());
        let mut auth = Auth::default();
        match transport {
            Transport::Http | Transport::Https => {
                let url_user = url_username(url);
                let username = text("username").or(url_user);
                let password = get("password").map(|p| Secret::new(p.clone()));
                if password.is_some() && username.is_none() {
                    return Err(GitError::InvalidSecret(
                        "'password' requires 'username' to be set".to_string(),
                    ));
                }
                let bearer = get("bearerToken").map(|t| Secret::new(t.clone()));
                if bearer.is_some() && username.is_some() {
                    return Err(GitError::InvalidSecret(
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
                        return Err(GitError::InvalidSecret(
                            "'tls.crt' and 'tls.key' must be set together".to_string(),
                        ));
                    }
                }
            }
            Transport::Ssh => {
                let identity = get("identity").ok_or_else(|| {
                    GitError::InvalidSecret("'identity' is required for ssh URLs".to_string())
                })?;
                let known_hosts = get("known_hosts").ok_or_else(|| {
                    GitError::InvalidSecret("'known_hosts' is required for ssh URLs".to_string())
                })?;
                let passphrase = get("password").map(|p| Secret::new(p.clone()));
                auth.ssh = Some(SshAuth {
                    identity: decrypt_identity(identity, passphrase.as_ref())?,
                    known_hosts: known_hosts.clone(),
                });
            }
            Transport::Git => {}
        }
        Ok(auth)
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
    /// [`GitError::InvalidSecret`] when `address` is missing or not a usable proxy URL.
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, GitError> {
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty());
        let address = get("address")
            .map(|a| String::from_utf8_lossy(a).trim().to_string())
            .ok_or_else(|| GitError::InvalidSecret("proxy secret needs 'address'".to_string()))?;
        reqwest::Proxy::all(address.as_str()).map_err(|_| {
            GitError::InvalidSecret(format!(
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
pub(crate) fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, GitError> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(GitError::InvalidSecret(
            "'ca.crt' is not a PEM certificate bundle".to_string(),
        )),
    }
}

/// Builds the reqwest identity from `tls.crt` + `tls.key`.
pub(crate) fn client_identity(cert: &ClientCertificate) -> Result<reqwest::Identity, GitError> {
    let mut pem = cert.cert_pem.clone();
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(cert.key_pem.expose());
    reqwest::Identity::from_pem(&pem).map_err(|_| {
        GitError::InvalidSecret(
            "'tls.crt' and 'tls.key' are not a PEM certificate and private key".to_string(),
        )
    })
}

/// Returns the identity in a form `ssh` can read without asking for anything.
fn decrypt_identity(identity: &[u8], passphrase: Option<&Secret>) -> Result<Secret, GitError> {
    match ssh_key::PrivateKey::from_openssh(identity) {
        Ok(key) if key.is_encrypted() => {
            let passphrase = passphrase.ok_or_else(|| {
                GitError::InvalidSecret(
                    "'identity' is encrypted but 'password' (its passphrase) is not set".to_string(),
                )
            })?;
            let key = key.decrypt(passphrase.expose()).map_err(|_| {
                GitError::InvalidSecret("'identity' could not be decrypted with 'password'".to_string())
            })?;
            let text = key
                .to_openssh(ssh_key::LineEnding::LF)
                .map_err(|_| GitError::InvalidSecret("'identity' could not be re-encoded".to_string()))?;
            Ok(Secret::new(text.as_bytes().to_vec()))
        }
        Ok(_) => Ok(Secret::new(identity.to_vec())),
        Err(_) => {
            // Not the OpenSSH format: PEM (PKCS#1/PKCS#8/SEC1) keys are handed to `ssh` as-is,
            // which reads them natively, but only unencrypted ones.
            let text = String::from_utf8_lossy(identity);
            if !text.contains("-----BEGIN ") || !text.contains("PRIVATE KEY-----") {
                return Err(GitError::InvalidSecret(
                    "'identity' is not a PEM or OpenSSH private key".to_string(),
                ));
            }
            if text.contains("ENCRYPTED") {
                return Err(GitError::InvalidSecret(
                    "'identity' is an encrypted PEM key; only encrypted keys in the OpenSSH format \
                     can be decrypted (convert with 'ssh-keygen -p -f <key>')"
                        .to_string(),
                ));
            }
            Ok(Secret::new(identity.to_vec()))
        }
    }
}

/// The user name in the URL's userinfo, if any.
fn url_username(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let user = userinfo.split(':').next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// The URL with the password of its userinfo removed, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{path}")
        }
        _ => url.to_string(),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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
        match Auth::from_secret(url, &data(pairs)) {
            Err(GitError::InvalidSecret(msg)) => msg,
            other => panic!("expected an invalid-secret error, got {other:?}"),
        }
    }

    #[test]
    fn basic_auth_is_read_and_never_printed() {
        let auth = Auth::from_secret(
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
            Auth::from_secret("http://flux@example.com/r.git", &data(&[("password", "pw")])).expect("valid");
        assert_eq!(auth.basic.expect("basic").username, "flux");
    }

    #[test]
    fn bearer_token_and_basic_auth_are_exclusive() {
        let msg = secret_error(
            "https://example.com/r.git",
            &[("username", "u"), ("password", "p"), ("bearerToken", "t")],
        );
        assert_eq!(msg, "basic auth and bearer token cannot be set at the same time");
        let auth = Auth::from_secret("https://example.com/r.git", &data(&[("bearerToken", "tok-123")]))
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

        let auth = Auth::from_secret(
            url,
            &data(&[
                ("identity", ENCRYPTED_KEY),
                ("known_hosts", "h"),
                ("password", "correct horse"),
            ]),
        )
        .expect("decrypts");
        let ssh = auth.ssh.as_ref().expect("ssh auth");
        let decrypted = ssh_key::PrivateKey::from_openssh(ssh.identity.expose()).expect("parses");
        assert!(!decrypted.is_encrypted());
        let public = ssh_key::PublicKey::from_openssh(ENCRYPTED_KEY_PUB).expect("public key");
        assert_eq!(decrypted.public_key().key_data(), public.key_data());
        assert!(!format!("{auth:?}").contains("BEGIN OPENSSH"));
        assert!(!format!("{auth:?}").contains("correct horse"));
    }

    #[test]
    fn unknown_schemes_are_invalid_urls() {
        let err = Auth::from_secret("ftp://example.com/r.git", &BTreeMap::new()).expect_err("bad");
        assert_eq!(err.reason(), "URLInvalid");
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
        let auth = Auth::from_secret(
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

    #[test]
    fn redact_url_drops_the_password_only() {
        assert_eq!(
            redact_url("https://user:pw@example.com/a/b.git"),
            "https://user@example.com/a/b.git"
        );
        assert_eq!(
            redact_url("ssh://git@example.com:22/a.git"),
            "ssh://git@example.com:22/a.git"
        );
        assert_eq!(redact_url("http://example.com/x@y"), "http://example.com/x@y");
    }
}
