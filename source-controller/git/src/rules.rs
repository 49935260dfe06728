//! Kluctl's git credential rules: an ordered list of `{host, path glob, secret}` consulted per
//! URL, first match wins. The KluctlDeployment controller builds them from
//! `spec.credentials.git` (Kluctl's Secret keys) and from a referenced GitRepository's
//! `spec.secretRef` (Flux's keys); the engine asks them before the `KLUCTL_GIT_*` sets.
//!
//! ```text
//!   url ─► for each rule, in order:
//!            host   '*' (ssh URLs only; Kluctl ignores it for http(s)) or equal to host[:port]
//!            path   the glob, if any, matches the URL path ('*' stops at '/', '**' does not)
//!            secret has something for this URL's kind (https: a password; ssh: an identity)
//!        ─► the first rule passing all three gives the Credentials; none: the caller falls back
//! ```
//!
//! Kluctl's Secret keys ([`KluctlGitSecret`]): `username` + `password` (https basic auth, with
//! `caFile` as the trusted CA bundle), `identity` + `known_hosts` (ssh, host keys checked
//! strictly). A `username` in the Secret must agree with a user name written in the URL, as in
//! Kluctl; without one the URL's user name is used. A rule whose Secret has nothing for a URL is
//! skipped, not an error: one Secret may serve https and another ssh on the same host.

use std::collections::BTreeMap;

use crate::Error;
use crate::credentials::{
    BasicAuth, Credentials, Origin, Secret, SshKeys, SshMode, decrypt_identity, parse_ca_bundle,
};

/// The parts of a git URL a rule looks at.
struct UrlParts {
    ssh: bool,
    /// `host` or `host:port`, lowercase.
    host: String,
    /// The path without leading and trailing `/`.
    path: String,
    user: Option<String>,
}

impl UrlParts {
    fn of(url: &str) -> Option<UrlParts> {
        let parsed = gix::url::parse(gix::bstr::BStr::new(url.as_bytes())).ok()?;
        let host = parsed.host()?.to_ascii_lowercase();
        let host = match parsed.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Some(UrlParts {
            ssh: parsed.scheme == gix::url::Scheme::Ssh,
            host,
            path: String::from_utf8_lossy(&parsed.path).trim_matches('/').to_owned(),
            user: parsed.user().filter(|u| !u.is_empty()).map(str::to_owned),
        })
    }
}

/// A git Secret in Kluctl's format, checked once and matched against URLs many times.
///
/// `Debug` shows no secret value.
#[derive(Clone, Debug)]
pub struct KluctlGitSecret {
    username: Option<String>,
    password: Option<Secret>,
    ca_bundle: Option<Vec<u8>>,
    ssh: Option<SshKeys>,
}

impl KluctlGitSecret {
    /// Reads Kluctl's keys from Secret data: `username`, `password`, `caFile`, `identity`,
    /// `known_hosts`. Empty values count as unset.
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] naming the key: neither `password` nor `identity` set (the
    /// Secret could never be used), `caFile` not a PEM bundle, `identity` not a private key or
    /// encrypted (Kluctl's Secrets hold unencrypted keys), `identity` without `known_hosts`.
    pub fn parse(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, Error> {
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty());
        let username = get("username").map(|u| String::from_utf8_lossy(u).into_owned());
        let password = get("password").map(|p| Secret::new(p.clone()));
        let ca_bundle = match get("caFile") {
            Some(ca) => {
                parse_ca_bundle(ca).map_err(|_| {
                    Error::InvalidSecret("'caFile' is not a PEM certificate bundle".to_string())
                })?;
                Some(ca.clone())
            }
            None => None,
        };
        let ssh = match get("identity") {
            Some(identity) => {
                if ssh_key::PrivateKey::from_openssh(identity).is_ok_and(|k| k.is_encrypted()) {
                    return Err(Error::InvalidSecret(
                        "'identity' is encrypted; Kluctl's git secrets take unencrypted keys".to_string(),
                    ));
                }
                let known_hosts = get("known_hosts").ok_or_else(|| {
                    Error::InvalidSecret(
                        "'identity' requires 'known_hosts': ssh host keys are checked strictly".to_string(),
                    )
                })?;
                Some(SshKeys {
                    identity: decrypt_identity(identity, None)?,
                    known_hosts: known_hosts.clone(),
                })
            }
            None => None,
        };
        if password.is_none() && ssh.is_none() {
            return Err(Error::InvalidSecret(
                "neither 'password' (https) nor 'identity' (ssh) is set".to_string(),
            ));
        }
        Ok(KluctlGitSecret {
            username,
            password,
            ca_bundle,
            ssh,
        })
    }

    /// The credentials this Secret gives `url`, or `None` when it has nothing for it (Kluctl
    /// then tries the next rule): an ssh URL needs `identity`, any other a `password` and a user
    /// name (the Secret's or the URL's); a `username` differing from the URL's user skips too.
    pub fn credentials_for(&self, url: &str) -> Option<Credentials> {
        self.credentials_for_parts(&UrlParts::of(url)?)
    }

    fn credentials_for_parts(&self, url: &UrlParts) -> Option<Credentials> {
        if let (Some(in_url), Some(in_secret)) = (&url.user, &self.username)
            && in_url != in_secret
        {
            return None;
        }
        let mut credentials = Credentials {
            origin: Origin::Secret,
            ..Credentials::default()
        };
        if url.ssh {
            credentials.ssh = Some(SshMode::Strict(self.ssh.clone()?));
        } else {
            let username = url.user.clone().or_else(|| self.username.clone())?;
            credentials.basic = Some(BasicAuth {
                username,
                password: self.password.clone()?,
            });
            credentials.ca_bundle.clone_from(&self.ca_bundle);
        }
        Some(credentials)
    }
}

impl Credentials {
    /// The credentials a Secret in Kluctl's format (`spec.credentials.git[].secretRef`) gives
    /// `url`; `Ok(None)` when it has nothing for this kind of URL (see
    /// [`KluctlGitSecret::credentials_for`]).
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] naming the key, as [`KluctlGitSecret::parse`].
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use gitops_git::Credentials;
    ///
    /// let data = BTreeMap::from([
    ///     ("username".to_string(), b"deploy".to_vec()),
    ///     ("password".to_string(), b"s3cret".to_vec()),
    /// ]);
    /// let https = Credentials::from_kluctl_secret("https://example.com/r.git", &data).unwrap();
    /// assert!(https.is_some_and(|c| !format!("{c:?}").contains("s3cret")));
    /// // No `identity`: nothing for ssh, the next rule is asked.
    /// assert!(Credentials::from_kluctl_secret("ssh://git@example.com/r.git", &data).unwrap().is_none());
    /// ```
    pub fn from_kluctl_secret(url: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Option<Self>, Error> {
        Ok(KluctlGitSecret::parse(data)?.credentials_for(url))
    }
}

/// A path glob that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid path glob '{glob}': {message}")]
pub struct InvalidGlob {
    /// The glob as written.
    pub glob: String,
    /// Why it does not compile.
    pub message: String,
}

/// The Secret behind a rule.
#[derive(Clone, Debug)]
enum RuleSecret {
    /// Kluctl's keys, checked.
    Kluctl(KluctlGitSecret),
    /// Flux's keys (a GitRepository's `spec.secretRef`), read per URL with
    /// [`Credentials::from_secret_data`]; a URL they do not fit skips the rule.
    Flux(BTreeMap<String, Secret>),
}

/// One rule: which URLs it is for and the Secret that serves them.
#[derive(Clone, Debug)]
pub struct GitCredentialRule {
    host: String,
    path: Option<(String, globset::GlobMatcher)>,
    secret: RuleSecret,
}

impl GitCredentialRule {
    /// A rule with a Secret in Kluctl's format (`spec.credentials.git[]`). `host` is a host
    /// name, `host:port`, or `*` (every ssh URL); `path` a glob on the repository path (every
    /// repository of the host when `None` or empty).
    ///
    /// # Errors
    /// [`InvalidGlob`] when `path` does not compile.
    pub fn kluctl(host: &str, path: Option<&str>, secret: KluctlGitSecret) -> Result<Self, InvalidGlob> {
        Ok(GitCredentialRule {
            host: host.to_ascii_lowercase(),
            path: compile_glob(path)?,
            secret: RuleSecret::Kluctl(secret),
        })
    }

    /// A rule with a Secret in Flux's format (a GitRepository's `spec.secretRef`) for every
    /// repository on `host` (`host` or `host:port`); checked per URL by
    /// [`Credentials::from_secret_data`], and skipped for URLs its keys do not fit.
    pub fn flux(host: &str, data: &BTreeMap<String, Vec<u8>>) -> Self {
        GitCredentialRule {
            host: host.to_ascii_lowercase(),
            path: None,
            secret: RuleSecret::Flux(
                data.iter()
                    .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
                    .collect(),
            ),
        }
    }

    /// The host this rule is for, as `host[:port]` of `url` (lowercase), for [`Self::flux`].
    pub fn host_of(url: &str) -> Option<String> {
        UrlParts::of(url).map(|u| u.host)
    }

    fn credentials_for(&self, url: &str, parts: &UrlParts) -> Option<Credentials> {
        // Kluctl ignores '*' for http(s): a catch-all would send passwords to any server.
        let host_matches = if self.host == "*" {
            parts.ssh
        } else {
            self.host == parts.host
        };
        if !host_matches {
            return None;
        }
        if let Some((_, glob)) = &self.path {
            let without_suffix = parts.path.strip_suffix(".git").unwrap_or(&parts.path);
            if !glob.is_match(&parts.path) && !glob.is_match(without_suffix) {
                return None;
            }
        }
        match &self.secret {
            RuleSecret::Kluctl(secret) => secret.credentials_for_parts(parts),
            RuleSecret::Flux(data) => {
                let data = data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_vec()))
                    .collect();
                Credentials::from_secret_data(url, &data).ok()
            }
        }
    }
}

fn compile_glob(path: Option<&str>) -> Result<Option<(String, globset::GlobMatcher)>, InvalidGlob> {
    let Some(glob) = path.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let matcher = globset::GlobBuilder::new(glob.trim_matches('/'))
        .literal_separator(true)
        .build()
        .map_err(|e| InvalidGlob {
            glob: glob.to_owned(),
            message: e.kind().to_string(),
        })?
        .compile_matcher();
    Ok(Some((glob.to_owned(), matcher)))
}

/// Kluctl's git credential rules, in order; the first rule that matches a URL and has
/// something for it wins. Cheap to clone; `Debug` shows no secret value.
///
/// ```
/// use std::collections::BTreeMap;
/// use gitops_git::{GitCredentialRule, GitCredentialRules, KluctlGitSecret};
///
/// let data = BTreeMap::from([
///     ("username".to_string(), b"deploy".to_vec()),
///     ("password".to_string(), b"s3cret".to_vec()),
/// ]);
/// let secret = KluctlGitSecret::parse(&data).unwrap();
/// let mut rules = GitCredentialRules::default();
/// rules.push(GitCredentialRule::kluctl("git.example.com", Some("infra/*"), secret).unwrap());
/// assert!(rules.credentials_for("https://git.example.com/infra/app.git").is_some());
/// assert!(rules.credentials_for("https://git.example.com/other/app.git").is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct GitCredentialRules {
    rules: Vec<GitCredentialRule>,
}

impl GitCredentialRules {
    /// Appends a rule (consulted after the ones already there).
    pub fn push(&mut self, rule: GitCredentialRule) {
        self.rules.push(rule);
    }

    /// Appends all rules of `other`, after the ones already there.
    pub fn extend(&mut self, other: GitCredentialRules) {
        self.rules.extend(other.rules);
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The credentials of the first rule for `url`; `None` when no rule serves it (callers
    /// fall back to the `KLUCTL_GIT_*` sets or anonymous access).
    pub fn credentials_for(&self, url: &str) -> Option<Credentials> {
        let parts = UrlParts::of(url)?;
        self.rules.iter().find_map(|r| r.credentials_for(url, &parts))
    }
}

impl FromIterator<GitCredentialRule> for GitCredentialRules {
    fn from_iter<I: IntoIterator<Item = GitCredentialRule>>(iter: I) -> Self {
        GitCredentialRules {
            rules: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throw-away unencrypted ed25519 key made for this test with
    /// `ssh-keygen -t ed25519 -N '' -C test-fixture-rule`; it grants access to nothing.
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCpGk4+mxCaXVHPhk6QTHQxEu1H5LxoPhtVeMPFcJMTuQAAAJgvUcqfL1HK
nwAAAAtzc2gtZWQyNTUxOQAAACCpGk4+mxCaXVHPhk6QTHQxEu1H5LxoPhtVeMPFcJMTuQ
AAAEA2XAhGiucOmQcnEXzvgfrB3Oi6F3ZjOF8QDXkoGAdfa6kaTj6bEJpdUc+GTpBMdDES
7UfkvGg+G1V4w8VwkxO5AAAAEXRlc3QtZml4dHVyZS1ydWxlAQIDBA==
-----END OPENSSH PRIVATE KEY-----
";

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn kluctl(host: &str, path: Option<&str>, pairs: &[(&str, &str)]) -> GitCredentialRule {
        let secret = KluctlGitSecret::parse(&data(pairs)).expect("valid secret");
        GitCredentialRule::kluctl(host, path, secret).expect("valid glob")
    }

    fn user_of(c: Option<Credentials>) -> Option<String> {
        c.and_then(|c| c.basic).map(|b| b.username)
    }

    fn parse_error(pairs: &[(&str, &str)]) -> String {
        match KluctlGitSecret::parse(&data(pairs)) {
            Err(Error::InvalidSecret(msg)) => msg,
            other => panic!("expected an invalid-secret error, got {other:?}"),
        }
    }

    #[test]
    fn the_first_matching_rule_wins_and_path_globs_stop_at_slashes() {
        let rules: GitCredentialRules = [
            kluctl(
                "git.example.com",
                Some("infra/*"),
                &[("username", "infra"), ("password", "p1")],
            ),
            kluctl(
                "git.example.com",
                None,
                &[("username", "any"), ("password", "p2")],
            ),
            kluctl(
                "git.example.com",
                Some("infra/**"),
                &[("username", "never"), ("password", "p3")],
            ),
        ]
        .into_iter()
        .collect();
        let user = |url: &str| user_of(rules.credentials_for(url));
        assert_eq!(
            user("https://git.example.com/infra/app.git").as_deref(),
            Some("infra")
        );
        assert_eq!(
            user("https://git.example.com/infra/app").as_deref(),
            Some("infra")
        );
        assert_eq!(
            user("https://git.example.com/infra/deep/app.git").as_deref(),
            Some("any")
        );
        assert_eq!(
            user("https://GIT.example.com/other.git").as_deref(),
            Some("any"),
            "hosts ignore case"
        );
        assert_eq!(user("https://other.example.com/infra/app.git"), None);
    }

    #[test]
    fn a_wildcard_host_serves_ssh_but_never_http() {
        let rules: GitCredentialRules = [kluctl(
            "*",
            None,
            &[
                ("username", "u"),
                ("password", "pw1"),
                ("identity", KEY),
                ("known_hosts", "h ssh-ed25519 AAAA"),
            ],
        )]
        .into_iter()
        .collect();
        assert!(rules.credentials_for("https://git.example.com/r.git").is_none());
        assert!(rules.credentials_for("http://git.example.com/r.git").is_none());
        let ssh = rules
            .credentials_for("ssh://u@git.example.com/r.git")
            .expect("ssh matches '*'");
        assert!(matches!(ssh.ssh, Some(SshMode::Strict(_))), "{ssh:?}");
        assert!(ssh.basic.is_none());
    }

    #[test]
    fn a_host_with_a_port_matches_only_that_port() {
        let rules: GitCredentialRules = [
            kluctl(
                "git.example.com:8443",
                None,
                &[("username", "port"), ("password", "p")],
            ),
            kluctl(
                "git.example.com",
                None,
                &[("username", "plain"), ("password", "p")],
            ),
        ]
        .into_iter()
        .collect();
        let user = |url: &str| user_of(rules.credentials_for(url));
        assert_eq!(
            user("https://git.example.com:8443/r.git").as_deref(),
            Some("port")
        );
        assert_eq!(user("https://git.example.com/r.git").as_deref(), Some("plain"));
        assert_eq!(user("https://git.example.com:9000/r.git"), None);
    }

    #[test]
    fn a_rule_without_credentials_for_the_url_kind_is_skipped() {
        let rules: GitCredentialRules = [
            kluctl(
                "git.example.com",
                None,
                &[("username", "https-only"), ("password", "p")],
            ),
            kluctl(
                "git.example.com",
                None,
                &[("identity", KEY), ("known_hosts", "h ssh-ed25519 AAAA")],
            ),
        ]
        .into_iter()
        .collect();
        let ssh = rules
            .credentials_for("ssh://git@git.example.com/r.git")
            .expect("second rule");
        assert!(matches!(ssh.ssh, Some(SshMode::Strict(_))));
        let https = rules
            .credentials_for("https://git.example.com/r.git")
            .expect("first rule");
        assert_eq!(https.basic.map(|b| b.username).as_deref(), Some("https-only"));
    }

    #[test]
    fn user_names_in_the_url_and_the_secret_must_agree() {
        let rule = kluctl("h.example", None, &[("username", "deploy"), ("password", "p")]);
        let rules: GitCredentialRules = [rule].into_iter().collect();
        assert!(rules.credentials_for("https://other@h.example/r.git").is_none());
        assert_eq!(
            user_of(rules.credentials_for("https://deploy@h.example/r.git")).as_deref(),
            Some("deploy")
        );
        // Without a `username` the URL's user name is used; with neither there is nobody to be.
        let rules: GitCredentialRules = [kluctl("h.example", None, &[("password", "p")])]
            .into_iter()
            .collect();
        assert_eq!(
            user_of(rules.credentials_for("https://me@h.example/r.git")).as_deref(),
            Some("me")
        );
        assert!(rules.credentials_for("https://h.example/r.git").is_none());
    }

    #[test]
    fn kluctl_secret_keys_are_checked_and_never_printed() {
        assert_eq!(
            parse_error(&[("username", "u")]),
            "neither 'password' (https) nor 'identity' (ssh) is set"
        );
        assert_eq!(
            parse_error(&[("password", "p"), ("caFile", "not pem")]),
            "'caFile' is not a PEM certificate bundle"
        );
        assert_eq!(
            parse_error(&[("identity", KEY)]),
            "'identity' requires 'known_hosts': ssh host keys are checked strictly"
        );
        assert_eq!(
            parse_error(&[("identity", "garbage"), ("known_hosts", "h")]),
            "'identity' is not a PEM or OpenSSH private key"
        );
        let secret = KluctlGitSecret::parse(&data(&[
            ("username", "u"),
            ("password", "hunter2-pw"),
            ("identity", KEY),
            ("known_hosts", "h ssh-ed25519 AAAA"),
        ]))
        .expect("valid");
        let rules: GitCredentialRules = [GitCredentialRule::kluctl("h.example", None, secret).expect("glob")]
            .into_iter()
            .collect();
        let shown = format!("{rules:?} {:?}", rules.credentials_for("https://h.example/r"));
        assert!(!shown.contains("hunter2-pw"), "{shown}");
        assert!(!shown.contains("OPENSSH PRIVATE"), "{shown}");
    }

    #[test]
    fn flux_rules_serve_their_host_with_fluxs_keys() {
        let rules: GitCredentialRules = [GitCredentialRule::flux(
            &GitCredentialRule::host_of("https://git.example.com:8443/org/app.git").expect("host"),
            &data(&[("username", "flux"), ("password", "pw"), ("bearerToken", "")]),
        )]
        .into_iter()
        .collect();
        let c = rules
            .credentials_for("https://git.example.com:8443/org/include.git")
            .expect("same host");
        assert_eq!(c.basic.map(|b| b.username).as_deref(), Some("flux"));
        assert!(
            rules
                .credentials_for("https://git.example.com/org/include.git")
                .is_none()
        );
        // Flux's keys have nothing for ssh here (no identity): skipped, not an error.
        assert!(
            rules
                .credentials_for("ssh://git@git.example.com:8443/org/x.git")
                .is_none()
        );
    }

    #[test]
    fn invalid_globs_are_named() {
        let secret = KluctlGitSecret::parse(&data(&[("username", "u"), ("password", "p")])).expect("valid");
        let err = GitCredentialRule::kluctl("h", Some("org/[a"), secret).expect_err("bad glob");
        assert!(err.to_string().starts_with("invalid path glob 'org/[a'"), "{err}");
    }
}
