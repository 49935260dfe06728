//! The git credentials of one reconcile, read from Secrets: the project preparation step that
//! turns `spec.credentials.git` (and a referenced GitRepository's `spec.secretRef`) into the
//! ordered [`GitCredentialRules`] the engine asks for every git URL it clones (the project
//! itself, git includes, git vars).
//!
//! ```text
//!   spec.credentials.git[i] {host, path, secretRef.name} ──► Secret <ns>/<name>, Kluctl's keys
//!        username, password, caFile (https) | identity, known_hosts (ssh, strict)
//!                                                        └─► GitCredentialRule::kluctl, in order
//!   GitRepository spec.secretRef ──► Secret, Flux's keys ──► GitCredentialRule::flux for the
//!                                                            GitRepository URL's host
//! ```
//!
//! Secrets are read once per reconcile, in the object's namespace. Every failure is a
//! [`CredentialsError`] naming the spec field, the Secret as `namespace/name` and the key at
//! fault, never a value; its [`reason`](CredentialsError::reason) is `PrepareFailed`, the reason
//! Kluctl gives any failure to prepare the project.

use std::collections::BTreeMap;

use gitops_api::conditions::reasons;
use gitops_api::kluctl::v1beta1::ProjectCredentialsGit;
use gitops_api::source::v1::GitRepository;
use gitops_git::{Credentials, GitCredentialRule, GitCredentialRules, InvalidGlob, KluctlGitSecret};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

/// The data of one Secret, by key.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// A credentials Secret could not be read or does not make git credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Reading the Secret failed (missing, forbidden, API down).
    #[error("failed to get secret '{secret}' named by {field}: {message}")]
    Get {
        /// The field naming the Secret, such as `spec.credentials.git[1].secretRef.name`.
        field: String,
        /// `namespace/name` of the Secret.
        secret: String,
        /// The API server's message.
        message: String,
    },
    /// The Secret's data is unusable (the source names the key).
    #[error("invalid secret '{secret}' named by {field}")]
    InvalidSecret {
        /// The field naming the Secret.
        field: String,
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is wrong (keys, never values).
        #[source]
        source: gitops_git::Error,
    },
    /// `spec.credentials.git[i].host` is empty.
    #[error("invalid {field}: it must be a host name, host:port or '*'")]
    EmptyHost {
        /// The field, such as `spec.credentials.git[0].host`.
        field: String,
    },
    /// `spec.credentials.git[i].path` is not a glob.
    #[error("invalid {field}")]
    InvalidPath {
        /// The field, such as `spec.credentials.git[0].path`.
        field: String,
        /// Why the glob does not compile.
        #[source]
        source: InvalidGlob,
    },
    /// The GitRepository's URL has no host to attach its Secret to.
    #[error("invalid spec.url '{url}' of GitRepository '{object}': it has no host")]
    GitRepositoryUrl {
        /// `namespace/name` of the GitRepository.
        object: String,
        /// The URL, without password.
        url: String,
    },
}

impl CredentialsError {
    /// The condition and event reason: `PrepareFailed`, as for every failure to prepare the
    /// project in Kluctl's controller.
    pub fn reason(&self) -> &'static str {
        reasons::PREPARE_FAILED
    }
}

/// Reads the Secrets of `spec.credentials.git` from `namespace` and builds the rules, in spec
/// order (first match wins). Each Secret is read once, however many entries name it.
///
/// # Errors
/// [`CredentialsError`] naming the entry's field, the Secret and the key.
///
/// ```no_run
/// # async fn run(client: kube::Client, kd: &gitops_api::kluctl::v1beta1::KluctlDeployment) -> Result<(), Box<dyn std::error::Error>> {
/// use kluctl_controller::source::credentials::load_git_credentials;
/// let git = kd.spec.credentials.as_ref().map(|c| c.git.as_slice()).unwrap_or_default();
/// let rules = load_git_credentials(&client, "default", git).await?;
/// println!("{} git credential rules", rules.len());
/// # Ok(()) }
/// ```
pub async fn load_git_credentials(
    client: &kube::Client,
    namespace: &str,
    credentials: &[ProjectCredentialsGit],
) -> Result<GitCredentialRules, CredentialsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets: BTreeMap<String, SecretData> = BTreeMap::new();
    for (i, entry) in credentials.iter().enumerate() {
        let name = &entry.secret_ref.name;
        if secrets.contains_key(name) {
            continue;
        }
        let data = read_secret(&api, namespace, name, &secret_field(i)).await?;
        secrets.insert(name.clone(), data);
    }
    git_rules(namespace, credentials, &secrets)
}

/// The rules of `spec.credentials.git`, given the data of the Secrets they name (by name, all
/// in `namespace`); the part of [`load_git_credentials`] that needs no cluster.
///
/// # Errors
/// [`CredentialsError`] naming the entry's field, the Secret and the key; a Secret missing from
/// `secrets` is [`CredentialsError::Get`].
pub fn git_rules(
    namespace: &str,
    credentials: &[ProjectCredentialsGit],
    secrets: &BTreeMap<String, SecretData>,
) -> Result<GitCredentialRules, CredentialsError> {
    let mut rules = GitCredentialRules::default();
    for (i, entry) in credentials.iter().enumerate() {
        let host = entry.host.trim();
        if host.is_empty() {
            return Err(CredentialsError::EmptyHost {
                field: format!("spec.credentials.git[{i}].host"),
            });
        }
        let name = &entry.secret_ref.name;
        let secret = format!("{namespace}/{name}");
        let data = secrets.get(name).ok_or_else(|| CredentialsError::Get {
            field: secret_field(i),
            secret: secret.clone(),
            message: format!("secrets \"{name}\" not found"),
        })?;
        let parsed = KluctlGitSecret::parse(data).map_err(|source| CredentialsError::InvalidSecret {
            field: secret_field(i),
            secret,
            source,
        })?;
        let path = Some(entry.path.as_str()).filter(|p| !p.is_empty());
        let rule = GitCredentialRule::kluctl(host, path, parsed).map_err(|source| {
            CredentialsError::InvalidPath {
                field: format!("spec.credentials.git[{i}].path"),
                source,
            }
        })?;
        rules.push(rule);
    }
    Ok(rules)
}

/// The credentials of a GitRepository's `spec.secretRef` (Flux's keys) as one rule for every
/// repository on the host of its `spec.url`, so that the git includes and git vars of a project
/// from that source authenticate like the source itself. No rules when `spec.secretRef` is unset.
///
/// # Errors
/// [`CredentialsError`] naming `spec.secretRef.name` of the GitRepository, the Secret and the key.
///
/// ```no_run
/// # async fn run(client: kube::Client, repo: &gitops_api::source::v1::GitRepository) -> Result<(), Box<dyn std::error::Error>> {
/// use kluctl_controller::source::credentials::git_repository_credentials;
/// let rules = git_repository_credentials(&client, repo).await?;
/// # Ok(()) }
/// ```
pub async fn git_repository_credentials(
    client: &kube::Client,
    repository: &GitRepository,
) -> Result<GitCredentialRules, CredentialsError> {
    let Some(reference) = &repository.spec.secret_ref else {
        return Ok(GitCredentialRules::default());
    };
    let namespace = repository.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let data = read_secret(&api, namespace, &reference.name, &repository_field(repository)).await?;
    git_repository_rules(repository, &data)
}

/// The rule of [`git_repository_credentials`], given the data of its `spec.secretRef` Secret.
///
/// # Errors
/// [`CredentialsError::InvalidSecret`] when the data does not make Flux credentials for the
/// GitRepository's own URL; [`CredentialsError::GitRepositoryUrl`] when that URL has no host.
pub fn git_repository_rules(
    repository: &GitRepository,
    data: &SecretData,
) -> Result<GitCredentialRules, CredentialsError> {
    let Some(reference) = &repository.spec.secret_ref else {
        return Ok(GitCredentialRules::default());
    };
    let namespace = repository.metadata.namespace.as_deref().unwrap_or("default");
    let url = &repository.spec.url;
    // Checked against the source's own URL, as source-controller reads it: a Secret that fails
    // there is reported, not silently skipped for every include.
    Credentials::from_secret_data(url, data).map_err(|source| CredentialsError::InvalidSecret {
        field: repository_field(repository),
        secret: format!("{namespace}/{}", reference.name),
        source,
    })?;
    let host = GitCredentialRule::host_of(url).ok_or_else(|| CredentialsError::GitRepositoryUrl {
        object: object_name(repository),
        url: gitops_git::redact_url(url),
    })?;
    Ok([GitCredentialRule::flux(&host, data)].into_iter().collect())
}

fn secret_field(index: usize) -> String {
    format!("spec.credentials.git[{index}].secretRef.name")
}

fn object_name(repository: &GitRepository) -> String {
    format!(
        "{}/{}",
        repository.metadata.namespace.as_deref().unwrap_or("default"),
        repository.metadata.name.as_deref().unwrap_or_default()
    )
}

fn repository_field(repository: &GitRepository) -> String {
    format!(
        "spec.secretRef.name of GitRepository '{}'",
        object_name(repository)
    )
}

async fn read_secret(
    api: &Api<Secret>,
    namespace: &str,
    name: &str,
    field: &str,
) -> Result<SecretData, CredentialsError> {
    match api.get(name).await {
        Ok(secret) => Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()),
        Err(e) => Err(CredentialsError::Get {
            field: field.to_owned(),
            secret: format!("{namespace}/{name}"),
            message: match e {
                kube::Error::Api(status) => status.message,
                other => other.to_string(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::meta::LocalObjectReference;
    use kluctl_engine::error_chain;

    fn entry(host: &str, path: &str, secret: &str) -> ProjectCredentialsGit {
        ProjectCredentialsGit {
            host: host.to_owned(),
            path: path.to_owned(),
            secret_ref: LocalObjectReference {
                name: secret.to_owned(),
            },
        }
    }

    fn data(pairs: &[(&str, &str)]) -> SecretData {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn shown(rules: &GitCredentialRules, url: &str) -> Option<String> {
        // Credentials do not expose their fields outside the git layer; Debug shows the user
        // name (never the password).
        rules.credentials_for(url).map(|c| format!("{c:?}"))
    }

    #[test]
    fn rules_keep_spec_order_and_share_secrets() {
        let secrets = BTreeMap::from([
            (
                "infra".to_owned(),
                data(&[("username", "infra-user"), ("password", "pw-1")]),
            ),
            (
                "any".to_owned(),
                data(&[("username", "any-user"), ("password", "pw-2")]),
            ),
        ]);
        let spec = [
            entry("git.example.com", "infra/*", "infra"),
            entry("git.example.com", "", "any"),
            entry("other.example.com", "", "infra"),
        ];
        let rules = git_rules("apps", &spec, &secrets).expect("valid");
        assert_eq!(rules.len(), 3);
        let infra = shown(&rules, "https://git.example.com/infra/app.git").expect("first rule");
        assert!(infra.contains("infra-user") && !infra.contains("pw-1"), "{infra}");
        let any = shown(&rules, "https://git.example.com/team/app.git").expect("second rule");
        assert!(any.contains("any-user"), "{any}");
        assert!(shown(&rules, "https://other.example.com/x.git").is_some());
        assert!(shown(&rules, "https://unknown.example.com/x.git").is_none());
    }

    #[test]
    fn errors_name_the_field_the_secret_and_the_key_but_no_value() {
        let secrets = BTreeMap::from([
            (
                "ok".to_owned(),
                data(&[("username", "u"), ("password", "pw-secret-1")]),
            ),
            (
                "bad".to_owned(),
                data(&[("username", "u"), ("caFile", "pw-secret-2")]),
            ),
        ]);
        let err = git_rules("apps", &[entry("h", "", "ok"), entry("h", "", "bad")], &secrets).unwrap_err();
        assert_eq!(
            error_chain(&err),
            "invalid secret 'apps/bad' named by spec.credentials.git[1].secretRef.name: invalid secret data: \
             'caFile' is not a PEM certificate bundle"
        );
        assert!(!error_chain(&err).contains("pw-secret"));
        assert_eq!(err.reason(), "PrepareFailed");

        let err = git_rules("apps", &[entry("h", "", "ok"), entry("h", "", "gone")], &secrets).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to get secret 'apps/gone' named by spec.credentials.git[1].secretRef.name: secrets \"gone\" not found"
        );
        let err = git_rules("apps", &[entry(" ", "", "ok")], &secrets).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid spec.credentials.git[0].host: it must be a host name, host:port or '*'"
        );
        let err = git_rules("apps", &[entry("h", "org/[x", "ok")], &secrets).unwrap_err();
        assert!(
            error_chain(&err).starts_with("invalid spec.credentials.git[0].path: invalid path glob 'org/[x'"),
            "{}",
            error_chain(&err)
        );
    }

    fn repository(url: &str, secret: Option<&str>) -> GitRepository {
        let mut repo: GitRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "app", "namespace": "flux-system"},
            "spec": {"url": url, "interval": "1m"},
        }))
        .expect("a GitRepository");
        repo.spec.secret_ref = secret.map(|name| LocalObjectReference {
            name: name.to_owned(),
        });
        repo
    }

    #[test]
    fn a_git_repository_secret_serves_every_repository_on_its_host() {
        let repo = repository("https://git.example.com/org/app.git", Some("auth"));
        let rules =
            git_repository_rules(&repo, &data(&[("username", "flux"), ("password", "pw-3")])).expect("valid");
        let include = shown(&rules, "https://git.example.com/org/include.git").expect("same host");
        assert!(include.contains("flux") && !include.contains("pw-3"), "{include}");
        assert!(shown(&rules, "https://elsewhere.example.com/org/include.git").is_none());
        assert!(
            git_repository_rules(&repository("https://h/r.git", None), &SecretData::new())
                .expect("no secret")
                .is_empty()
        );
    }

    #[test]
    fn a_git_repository_secret_is_checked_against_its_own_url() {
        let repo = repository("ssh://git@git.example.com/org/app.git", Some("auth"));
        let err = git_repository_rules(&repo, &data(&[("identity", "x")])).unwrap_err();
        assert_eq!(
            error_chain(&err),
            "invalid secret 'flux-system/auth' named by spec.secretRef.name of GitRepository \
             'flux-system/app': invalid secret data: 'known_hosts' is required for ssh URLs"
        );
    }
}
