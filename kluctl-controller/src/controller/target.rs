//! Which cluster a KluctlDeployment deploys to, and as whom: the controller's own connection or
//! the kubeconfig in `spec.kubeConfig.secretRef`, impersonating `spec.serviceAccountName` (else
//! `--default-service-account`) as `system:serviceaccount:<namespace>:<name>`.
//!
//! Impersonation means the API server checks every apply, delete and read of the deploy against
//! the service account's RBAC: a KluctlDeployment can do no more than its service account.

use gitops_api::kluctl::v1beta1::KluctlDeploymentSpec;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// The context name templates see for the controller's own connection (Kluctl generates a
/// kubeconfig with one context of this name).
pub const DEFAULT_CONTEXT: &str = "default";

/// Why the target cluster's configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The kubeconfig Secret is missing.
    #[error("spec.kubeConfig.secretRef: Secret '{namespace}/{name}' not found")]
    SecretNotFound {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The Secret has none of the keys looked for.
    #[error("spec.kubeConfig.secretRef: Secret '{namespace}/{name}' has no key {keys}")]
    KeyMissing {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
        /// The keys tried, quoted.
        keys: String,
    },
    /// The kubeconfig does not parse or has no usable context.
    #[error(
        "spec.kubeConfig.secretRef: the kubeconfig in Secret '{namespace}/{name}' key '{key}' is unusable: {message}"
    )]
    Invalid {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
        /// The key holding it.
        key: String,
        /// Why.
        message: String,
    },
    /// Reading the Secret failed.
    #[error("spec.kubeConfig.secretRef: failed to read Secret '{namespace}/{name}': {source}")]
    Kube {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
}

/// The user to impersonate for a KluctlDeployment in `namespace`, if any.
pub fn impersonated_user(spec: &KluctlDeploymentSpec, namespace: &str, default_sa: &str) -> Option<String> {
    let sa = if spec.service_account_name.is_empty() {
        default_sa
    } else {
        &spec.service_account_name
    };
    (!sa.is_empty()).then(|| format!("system:serviceaccount:{namespace}:{sa}"))
}

/// The client configuration and context name of the target cluster.
///
/// # Errors
/// [`TargetError`] naming the Secret and key.
pub async fn target_config(
    client: &kube::Client,
    base: &kube::Config,
    namespace: &str,
    spec: &KluctlDeploymentSpec,
    default_sa: &str,
) -> Result<(kube::Config, String), TargetError> {
    let (mut config, context) = match spec.kube_config.as_ref().map(|k| &k.secret_ref) {
        None => (
            base.clone(),
            spec.context.clone().unwrap_or_else(|| DEFAULT_CONTEXT.to_owned()),
        ),
        Some(r) => {
            let name = r.name.clone();
            let ns = namespace.to_owned();
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let secret = api
                .get_opt(&name)
                .await
                .map_err(|source| TargetError::Kube {
                    namespace: ns.clone(),
                    name: name.clone(),
                    source: Box::new(source),
                })?
                .ok_or_else(|| TargetError::SecretNotFound {
                    namespace: ns.clone(),
                    name: name.clone(),
                })?;
            let keys: Vec<String> = match r.key.as_deref().filter(|k| !k.is_empty()) {
                Some(k) => vec![k.to_owned()],
                None => vec!["value".to_owned(), "value.yaml".to_owned()],
            };
            let data = secret.data.unwrap_or_default();
            let (key, bytes) = keys
                .iter()
                .find_map(|k| data.get(k).map(|v| (k.clone(), v)))
                .ok_or_else(|| TargetError::KeyMissing {
                    namespace: ns.clone(),
                    name: name.clone(),
                    keys: keys
                        .iter()
                        .map(|k| format!("'{k}'"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                })?;
            let invalid = |message: String| TargetError::Invalid {
                namespace: ns.clone(),
                name: name.clone(),
                key: key.clone(),
                message,
            };
            let text = String::from_utf8(bytes.0.clone()).map_err(|_| invalid("not UTF-8".to_owned()))?;
            let kc = kube::config::Kubeconfig::from_yaml(&text)
                .map_err(|e| invalid(parse_error_position(&e.to_string())))?;
            let context = spec
                .context
                .clone()
                .or_else(|| kc.current_context.clone())
                .unwrap_or_default();
            let options = kube::config::KubeConfigOptions {
                context: spec.context.clone(),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            (config, context)
        }
    };
    if let Some(user) = impersonated_user(spec, namespace, default_sa) {
        config.auth_info.impersonate = Some(user);
    }
    Ok((config, context))
}

/// Where a kubeconfig failed to parse, without the parser's words: they quote the text (a line of
/// the Secret, a token say) and go to status and events.
fn parse_error_position(error: &str) -> String {
    let position = error.find("line ").and_then(|start| {
        let rest = &error[start..];
        let column = rest.find("column ")? + "column ".len();
        let digits = rest[column..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - column);
        (digits > 0).then(|| rest[..column + digits].to_owned())
    });
    match position {
        Some(at) => format!("it does not parse as a kubeconfig ({at})"),
        None => "it does not parse as a kubeconfig".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the bad-input suite: the parser's message quoted the Secret's text into
    /// status.lastPrepareError and events.
    #[test]
    fn a_kubeconfig_parse_error_names_the_position_not_the_text() {
        let text = "token: s3cr3t: [";
        let e = kube::config::Kubeconfig::from_yaml(text).expect_err("not a kubeconfig");
        assert!(
            e.to_string().contains("s3cr3t"),
            "the raw error quotes the text: {e}"
        );
        let safe = parse_error_position(&e.to_string());
        assert!(!safe.contains("s3cr3t"), "{safe}");
        assert!(
            safe.starts_with("it does not parse as a kubeconfig (line 1 column "),
            "{safe}"
        );
        assert_eq!(
            parse_error_position("no position"),
            "it does not parse as a kubeconfig"
        );
    }

    #[test]
    fn the_spec_service_account_wins_over_the_default() {
        let spec = |sa: &str| -> KluctlDeploymentSpec {
            serde_json::from_value(
                json!({"interval": "1m", "serviceAccountName": sa, "source": {"git": {"url": "u"}}}),
            )
            .unwrap()
        };
        assert_eq!(
            impersonated_user(&spec("deployer"), "apps", "kluctl").as_deref(),
            Some("system:serviceaccount:apps:deployer")
        );
        assert_eq!(
            impersonated_user(&spec(""), "apps", "kluctl").as_deref(),
            Some("system:serviceaccount:apps:kluctl")
        );
        assert_eq!(impersonated_user(&spec(""), "apps", ""), None);
    }
}
