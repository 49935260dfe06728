//! Loading the Secrets a source object references (`secretRef`, `certSecretRef`,
//! `proxySecretRef`) from its namespace, and turning their data into what the git and bucket
//! clients take: the first half of each kind's fetch step.
//!
//! ```text
//!  GitRepository  secretRef ──► Credentials::from_secret_data ─┐
//!                 proxySecretRef ─► ProxyOptions ───────────────┴─► Credentials
//!  Bucket         secretRef, certSecretRef ──► (namespace/name, SecretData) ─┐
//!                 proxySecretRef ─► ProxyOptions ────────────────────────────┴─► BucketSecrets
//! ```
//!
//! Every failure is a [`CredentialsError`] naming the Secret as `namespace/name`; the messages
//! name keys, never values.
//!
//! The value types (re-exported here for the git and bucket code) come from the git layer
//! (`gitops-git`), which owns them because the Kluctl engine needs them too: [`Secret`] (bytes
//! that never print), [`ProxyOptions`], [`ClientCertificate`] and the parsing of `ca.crt` and
//! `tls.crt`/`tls.key`, which GitRepository and Bucket read with the same keys.

use crate::bucket::SecretData;
use gitops_api::meta::LocalObjectReference;
use gitops_git::Error as GitError;
pub use gitops_git::credentials::{
    ClientCertificate, Credentials, ProxyOptions, Secret, client_identity, parse_ca_bundle,
};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::Api;
use std::collections::BTreeMap;

/// A referenced Secret could not be read or its data is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Reading the Secret from the API failed (missing, forbidden, API down).
    #[error("failed to get secret '{secret}': {message}")]
    Get {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The API server's message.
        message: String,
    },
    /// The `secretRef` data does not make git credentials for the URL.
    #[error("invalid secret '{secret}'")]
    InvalidAuth {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is wrong (keys, never values).
        #[source]
        source: GitError,
    },
    /// The `proxySecretRef` data does not make proxy settings.
    #[error("invalid proxy secret '{secret}'")]
    InvalidProxy {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is wrong (keys, never values).
        #[source]
        source: GitError,
    },
}

/// The Secrets a Bucket references, read and parsed for [`crate::bucket::ClientConfig`].
#[derive(Default)]
pub struct BucketSecrets {
    /// `spec.secretRef`: its `namespace/name` and data.
    pub secret: Option<(String, SecretData)>,
    /// `spec.certSecretRef`: its `namespace/name` and data.
    pub cert_secret: Option<(String, SecretData)>,
    /// `spec.proxySecretRef`, parsed.
    pub proxy: Option<ProxyOptions>,
}

/// Secrets of one namespace.
pub struct Secrets {
    api: Api<KubeSecret>,
    namespace: String,
}

impl Secrets {
    /// The Secrets of `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Secrets {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    /// `namespace/name` of Secret `name`, as messages name it.
    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    /// The data of Secret `name`.
    ///
    /// # Errors
    /// [`CredentialsError::Get`] with the API server's message.
    pub async fn data(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CredentialsError> {
        match self.api.get(name).await {
            Ok(s) => Ok(s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()),
            Err(e) => Err(CredentialsError::Get {
                secret: self.key(name),
                message: match e {
                    kube::Error::Api(s) => s.message,
                    other => other.to_string(),
                },
            }),
        }
    }

    /// The proxy settings of `proxySecretRef`, if set.
    ///
    /// # Errors
    /// [`CredentialsError::Get`] or [`CredentialsError::InvalidProxy`].
    pub async fn proxy(
        &self,
        reference: Option<&LocalObjectReference>,
    ) -> Result<Option<ProxyOptions>, CredentialsError> {
        let Some(r) = reference else { return Ok(None) };
        let data = self.data(&r.name).await?;
        ProxyOptions::from_secret(&data)
            .map(Some)
            .map_err(|source| CredentialsError::InvalidProxy {
                secret: self.key(&r.name),
                source,
            })
    }

    /// Git credentials for `url` from `secretRef` (none when unset), with the proxy of
    /// `proxySecretRef`.
    ///
    /// # Errors
    /// [`CredentialsError::Get`], [`CredentialsError::InvalidAuth`] or
    /// [`CredentialsError::InvalidProxy`].
    pub async fn git_auth(
        &self,
        url: &str,
        secret_ref: Option<&LocalObjectReference>,
        proxy_ref: Option<&LocalObjectReference>,
    ) -> Result<Credentials, CredentialsError> {
        let auth = match secret_ref {
            Some(r) => {
                let data = self.data(&r.name).await?;
                Credentials::from_secret_data(url, &data).map_err(|source| CredentialsError::InvalidAuth {
                    secret: self.key(&r.name),
                    source,
                })?
            }
            None => Credentials::none(),
        };
        Ok(match self.proxy(proxy_ref).await? {
            Some(proxy) => auth.with_proxy(proxy),
            None => auth,
        })
    }

    /// The Secrets a Bucket references, each wrapped so its values cannot print.
    ///
    /// # Errors
    /// [`CredentialsError::Get`] or [`CredentialsError::InvalidProxy`].
    pub async fn bucket(
        &self,
        secret_ref: Option<&LocalObjectReference>,
        cert_secret_ref: Option<&LocalObjectReference>,
        proxy_ref: Option<&LocalObjectReference>,
    ) -> Result<BucketSecrets, CredentialsError> {
        let wrapped = async |reference: Option<&LocalObjectReference>| {
            let Some(r) = reference else { return Ok(None) };
            let data = self.data(&r.name).await?;
            let data: SecretData = data.into_iter().map(|(k, v)| (k, Secret::new(v))).collect();
            Ok::<_, CredentialsError>(Some((self.key(&r.name), data)))
        };
        Ok(BucketSecrets {
            secret: wrapped(secret_ref).await?,
            cert_secret: wrapped(cert_secret_ref).await?,
            proxy: self.proxy(proxy_ref).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_secret_and_keep_the_cause() {
        let e = CredentialsError::InvalidProxy {
            secret: "ns/proxy".into(),
            source: GitError::InvalidSecret("missing key 'address'".into()),
        };
        assert_eq!(
            crate::error_chain(&e),
            "invalid proxy secret 'ns/proxy': invalid secret data: missing key 'address'"
        );
        let e = CredentialsError::Get {
            secret: "ns/git-auth".into(),
            message: "secrets \"git-auth\" not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "failed to get secret 'ns/git-auth': secrets \"git-auth\" not found"
        );
    }
}
