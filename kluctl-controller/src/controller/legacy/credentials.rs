//! Clone credentials of the legacy `spec.source.secretRef`: a Secret in the object's namespace
//! with `username`/`password` (HTTPS basic auth) or `identity` (+ `known_hosts`) (SSH), turned
//! into the `KLUCTL_GIT_*` / `GIT_SSH_COMMAND` settings the shared Git source step takes.
//!
//! The values stay in memory and in a private temporary directory (SSH keys, removed when the
//! returned [`GitCredentials`] drops); no error or log line carries them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// Why the Secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret is missing.
    #[error("spec.source.secretRef: Secret '{namespace}/{name}' not found")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// It has neither `username`/`password` nor `identity`.
    #[error(
        "spec.source.secretRef: Secret '{namespace}/{name}' has neither 'username'/'password' nor 'identity'"
    )]
    NoKeys {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Reading it failed.
    #[error("spec.source.secretRef: failed to read Secret '{namespace}/{name}': {source}")]
    Kube {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing the SSH key file failed.
    #[error("spec.source.secretRef: failed to write the SSH key of Secret '{namespace}/{name}': {source}")]
    Io {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The file error.
        source: std::io::Error,
    },
}

/// Settings for the Git source step; keep it alive until the clone is done.
#[derive(Debug, Default)]
pub struct GitCredentials {
    /// `KLUCTL_GIT_*` and `GIT_SSH_COMMAND`.
    pub env: BTreeMap<String, String>,
    _keys: Option<tempfile::TempDir>,
}

/// `host[:port]` of a URL (`scheme://[user@]host[:port]/path`); `None` for SCP-like URLs.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then_some(host)
}

/// The credentials of `secret_ref` for cloning `url`.
///
/// # Errors
/// [`CredentialsError`] naming the Secret.
pub async fn git_credentials(
    client: &kube::Client,
    namespace: &str,
    secret_ref: &str,
    url: &str,
    work_dir: &std::path::Path,
) -> Result<GitCredentials, CredentialsError> {
    let (ns, name) = (namespace.to_owned(), secret_ref.to_owned());
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(secret_ref)
        .await
        .map_err(|source| CredentialsError::Kube {
            namespace: ns.clone(),
            name: name.clone(),
            source,
        })?
        .ok_or_else(|| CredentialsError::NotFound {
            namespace: ns.clone(),
            name: name.clone(),
        })?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|s| !s.is_empty())
    };
    let mut env = BTreeMap::new();
    let mut keys = None;
    if let (Some(host), Some(username)) = (url_host(url), text("username")) {
        env.insert("KLUCTL_GIT_HOST".into(), host.to_owned());
        env.insert("KLUCTL_GIT_USERNAME".into(), username);
        env.insert("KLUCTL_GIT_PASSWORD".into(), text("password").unwrap_or_default());
    }
    if let Some(identity) = text("identity") {
        let io = |source| CredentialsError::Io {
            namespace: ns.clone(),
            name: name.clone(),
            source,
        };
        fs_err::create_dir_all(work_dir).map_err(io)?;
        let dir = tempfile::Builder::new()
            .prefix("ssh-")
            .tempdir_in(work_dir)
            .map_err(io)?;
        let key = dir.path().join("identity");
        write_private(&key, identity.as_bytes()).map_err(io)?;
        let mut command = format!("ssh -i '{}' -o IdentitiesOnly=yes", key.display());
        match text("known_hosts") {
            Some(known) => {
                let file = dir.path().join("known_hosts");
                write_private(&file, known.as_bytes()).map_err(io)?;
                let _ = write!(
                    command,
                    " -o UserKnownHostsFile='{}' -o StrictHostKeyChecking=yes",
                    file.display()
                );
            }
            None => command.push_str(" -o StrictHostKeyChecking=accept-new"),
        }
        env.insert("GIT_SSH_COMMAND".into(), command);
        keys = Some(dir);
    }
    if env.is_empty() {
        return Err(CredentialsError::NoKeys { namespace: ns, name });
    }
    Ok(GitCredentials { env, _keys: keys })
}

/// Writes `bytes` to `path`, readable by the owner only (ssh refuses group-readable keys).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    use std::io::Write as _;
    let mut options = fs_err::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    // ssh wants the key to end with a newline.
    if !bytes.ends_with(b"\n") {
        f.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_authority_without_user() {
        assert_eq!(
            url_host("https://git.example.com/org/repo.git"),
            Some("git.example.com")
        );
        assert_eq!(
            url_host("https://me@git.example.com:8443/r"),
            Some("git.example.com:8443")
        );
        assert_eq!(url_host("ssh://git@h:22/r"), Some("h:22"));
        assert_eq!(url_host("git@github.com:org/repo"), None);
    }
}
