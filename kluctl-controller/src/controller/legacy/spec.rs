//! The legacy spec in the v1beta1 controller's terms: a `flux.kluctl.io/v1alpha1` spec becomes
//! the `gitops.kluctl.io/v1beta1` spec the shared steps take (source, target connection, engine
//! job), and `spec.renameContexts` decides which kubeconfig context is used and under which name
//! the project sees it.
//!
//! ```text
//! v1alpha1 spec ──► engine_spec ──► fetch / target_config / project::prepare (shared steps)
//!   renameContexts + context ──► resolve_context ──► kubeconfig context (old name)
//!                                                 └► target.context in templates (new name)
//! ```
//!
//! `spec.source.secretRef` becomes a `spec.credentials.git` entry for the source URL's host, so
//! the clone and the project's Git includes from that host use it. Fields that are no-ops
//! upstream too (`registrySecrets`, `updateImages`) are dropped; [`ignored_fields`] names the
//! ones set so the reconcile can say so. Fields the shared steps cannot honour (`decryption`,
//! `helmCredentials`) are carried over, so they stall exactly as on `gitops.kluctl.io`.

use gitops_api::flux_kluctl::v1alpha1::{self, RenameContext};
use gitops_api::kluctl::v1beta1::{
    self, CrossNamespaceSourceReference, GitRef, KubeConfig, ProjectCredentials, ProjectCredentialsGit,
    ProjectSource, ProjectSourceGit, SourceKind,
};

use crate::controller::target::DEFAULT_CONTEXT;

/// A legacy spec the shared steps cannot take.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `spec.sourceRef.kind` is neither `GitRepository` nor `Bucket`.
    #[error("spec.sourceRef.kind '{0}' is not supported: use GitRepository or Bucket")]
    SourceKind(String),
    /// Neither `spec.source` nor `spec.sourceRef` is set.
    #[error("one of spec.source or spec.sourceRef must be set")]
    NoSource,
    /// `spec.source.ref` sets both a branch and a tag.
    #[error("spec.source.ref: only one of branch and tag can be set")]
    AmbiguousRef,
}

/// The `gitops.kluctl.io/v1beta1` spec equivalent to a legacy one.
///
/// `spec.source` wins over the deprecated `spec.sourceRef` + `spec.path` when both are set, as
/// in flux-kluctl-controller. `context` is left as written: [`resolve_context`] replaces it.
///
/// # Errors
/// [`SpecError`] naming the field.
pub fn engine_spec(
    spec: &v1alpha1::KluctlDeploymentSpec,
) -> Result<v1beta1::KluctlDeploymentSpec, SpecError> {
    // Destructured without `..`: a field added to the legacy type must be decided on here.
    let v1alpha1::KluctlDeploymentSpec {
        path,
        source_ref,
        source,
        decryption,
        interval,
        retry_interval,
        deploy_interval: _,
        deploy_on_changes: _,
        validate_interval: _,
        timeout,
        suspend,
        registry_secrets: _,
        helm_credentials,
        service_account_name,
        kube_config,
        rename_contexts: _,
        target,
        target_name_override,
        context,
        args,
        update_images: _,
        images,
        dry_run,
        no_wait,
        force_apply,
        replace_on_error,
        force_replace_on_error,
        abort_on_error,
        include_tags,
        exclude_tags,
        include_deployment_dirs,
        exclude_deployment_dirs,
        deploy_mode,
        validate,
        prune,
        delete,
    } = spec;
    let (source, source_ref, path) = project_source(source.as_ref(), source_ref.as_ref(), path)?;
    Ok(v1beta1::KluctlDeploymentSpec {
        source,
        source_ref,
        path,
        source_overrides: Vec::new(),
        credentials: spec.source.as_ref().and_then(source_credentials),
        decryption: decryption.clone(),
        interval: interval.clone(),
        retry_interval: retry_interval.clone(),
        // The legacy timing (with `never`) is decided in `legacy::decide`, not by the shared steps.
        deploy_interval: None,
        validate_interval: None,
        timeout: timeout.clone(),
        suspend: *suspend,
        helm_credentials: helm_credentials
            .iter()
            .filter_map(|h| h.secret_ref.clone())
            .map(|secret_ref| v1beta1::HelmCredentials { secret_ref })
            .collect(),
        service_account_name: service_account_name.clone(),
        kube_config: kube_config
            .as_ref()
            .and_then(|k| k.secret_ref.clone())
            .map(|secret_ref| KubeConfig { secret_ref }),
        target: target.clone(),
        target_name_override: target_name_override.clone(),
        context: context.clone(),
        args: args.clone(),
        images: images.iter().map(fixed_image).collect(),
        dry_run: *dry_run,
        no_wait: *no_wait,
        force_apply: *force_apply,
        replace_on_error: *replace_on_error,
        force_replace_on_error: *force_replace_on_error,
        abort_on_error: *abort_on_error,
        include_tags: include_tags.clone(),
        exclude_tags: exclude_tags.clone(),
        include_deployment_dirs: include_deployment_dirs.clone(),
        exclude_deployment_dirs: exclude_deployment_dirs.clone(),
        deploy_mode: *deploy_mode,
        validate: *validate,
        prune: *prune,
        delete: *delete,
        manual: false,
        manual_objects_hash: None,
    })
}

/// The v1beta1 `(source, sourceRef, path)` of the legacy source fields.
type Source = (
    Option<ProjectSource>,
    Option<CrossNamespaceSourceReference>,
    Option<String>,
);

fn project_source(
    source: Option<&v1alpha1::ProjectSource>,
    source_ref: Option<&gitops_api::meta::NamespacedObjectKindReference>,
    path: &str,
) -> Result<Source, SpecError> {
    match (source, source_ref) {
        (Some(s), _) => {
            let git_ref = match &s.git_ref {
                Some(r) if !r.branch.is_empty() && !r.tag.is_empty() => return Err(SpecError::AmbiguousRef),
                Some(r) if r.branch.is_empty() && r.tag.is_empty() => None,
                Some(r) => Some(GitRef {
                    branch: r.branch.clone(),
                    tag: r.tag.clone(),
                    commit: String::new(),
                }),
                None => None,
            };
            let git = ProjectSourceGit {
                url: s.url.clone(),
                git_ref,
                path: s.path.clone(),
            };
            let source = ProjectSource {
                git: Some(git),
                ..ProjectSource::default()
            };
            Ok((Some(source), None, None))
        }
        (None, Some(r)) => {
            let kind = match r.kind.as_str() {
                "GitRepository" => SourceKind::GitRepository,
                "Bucket" => SourceKind::Bucket,
                other => return Err(SpecError::SourceKind(other.to_owned())),
            };
            let source_ref = CrossNamespaceSourceReference {
                api_version: r.api_version.clone(),
                kind,
                name: r.name.clone(),
                namespace: r.namespace.clone(),
            };
            Ok((
                None,
                Some(source_ref),
                Some(path.to_owned()).filter(|p| !p.is_empty()),
            ))
        }
        (None, None) => Err(SpecError::NoSource),
    }
}

/// `spec.source.secretRef` as the `spec.credentials.git` entry for the URL's host.
fn source_credentials(source: &v1alpha1::ProjectSource) -> Option<ProjectCredentials> {
    let secret_ref = source.secret_ref.clone()?;
    let host = url_host(&source.url).unwrap_or("*").to_owned();
    Some(ProjectCredentials {
        git: vec![ProjectCredentialsGit {
            host,
            path: String::new(),
            secret_ref,
        }],
        ..ProjectCredentials::default()
    })
}

/// `host[:port]` of a Git URL: `scheme://[user@]host[:port]/path` or SCP-like `[user@]host:path`.
pub fn url_host(url: &str) -> Option<&str> {
    let host = if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split('/').next()?;
        authority.rsplit_once('@').map_or(authority, |(_, h)| h)
    } else {
        let (head, _) = url.split_once(':')?;
        head.rsplit_once('@').map_or(head, |(_, h)| h)
    };
    (!host.is_empty()).then_some(host)
}

/// Legacy fields that are set but have no effect here.
pub fn ignored_fields(spec: &v1alpha1::KluctlDeploymentSpec) -> Vec<&'static str> {
    let mut ignored = Vec::new();
    if !spec.registry_secrets.is_empty() {
        ignored.push("spec.registrySecrets");
    }
    if spec.update_images {
        ignored.push("spec.updateImages");
    }
    ignored
}

fn fixed_image(i: &v1alpha1::FixedImage) -> v1beta1::FixedImage {
    v1beta1::FixedImage {
        image: Some(i.image.clone()),
        image_regex: None,
        result_image: i.result_image.clone(),
        deployed_image: i.deployed_image.clone(),
        namespace: i.namespace.clone(),
        object: i.object.as_ref().map(|o| v1beta1::ObjectRef {
            group: o.group.clone(),
            version: o.version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            namespace: o.namespace.clone(),
        }),
        deployment: i.deployment.clone(),
        container: i.container.clone(),
        deploy_tags: i.deploy_tags.clone(),
        deployment_dir: i.deployment_dir.clone(),
    }
}

/// Which kubeconfig context a reconcile uses, and the name the project sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextChoice {
    /// The context to select in the kubeconfig (its name before renaming); `None`: the
    /// kubeconfig's current context.
    pub kubeconfig_context: Option<String>,
    /// The name after `spec.renameContexts`, for `target.context` in templates; `None` when it
    /// is only known once the kubeconfig's current context is read ([`rename`] it then).
    pub project_context: Option<String>,
}

/// A context the kubeconfig does not have under that name.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context was renamed away.
    #[error("context '{wanted}' ({origin}) does not exist: spec.renameContexts renames it to '{renamed}'")]
    RenamedAway {
        /// The context asked for.
        wanted: String,
        /// `spec.context` or the target in `.kluctl.yaml`.
        origin: &'static str,
        /// Its new name.
        renamed: String,
    },
    /// The controller's own connection has one context only.
    #[error(
        "context '{wanted}' ({origin}) does not exist: without spec.kubeConfig the only context is '{available}' \
         (rename it with spec.renameContexts)"
    )]
    NotInOwnConfig {
        /// The context asked for.
        wanted: String,
        /// `spec.context` or the target in `.kluctl.yaml`.
        origin: &'static str,
        /// The one context there is, after renames.
        available: String,
    },
}

/// `name` after `spec.renameContexts` (the first rename of `name` wins).
pub fn rename(renames: &[RenameContext], name: &str) -> String {
    renames
        .iter()
        .find(|r| r.old_context == name)
        .map_or_else(|| name.to_owned(), |r| r.new_context.clone())
}

/// The context for `wanted` (from `spec.context`, else the target's `context` in `.kluctl.yaml`;
/// `None`: the current one), given the renames and whether the connection is the controller's
/// own (whose generated kubeconfig has the single context `default`) or a kubeconfig Secret.
///
/// As in flux-kluctl-controller, the renames apply to the kubeconfig, so the project names
/// contexts by their new names: `wanted` is looked up among the renamed names.
///
/// # Errors
/// [`ContextError`] when no context has that name after renaming.
pub fn resolve_context(
    renames: &[RenameContext],
    wanted: Option<(&str, &'static str)>,
    own_connection: bool,
) -> Result<ContextChoice, ContextError> {
    let Some((wanted, origin)) = wanted else {
        return Ok(ContextChoice {
            kubeconfig_context: own_connection.then(|| DEFAULT_CONTEXT.to_owned()),
            project_context: own_connection.then(|| rename(renames, DEFAULT_CONTEXT)),
        });
    };
    let old = if let Some(r) = renames.iter().find(|r| r.new_context == wanted) {
        r.old_context.clone()
    } else if let Some(r) = renames.iter().find(|r| r.old_context == wanted) {
        return Err(ContextError::RenamedAway {
            wanted: wanted.to_owned(),
            origin,
            renamed: r.new_context.clone(),
        });
    } else {
        wanted.to_owned()
    };
    if own_connection && old != DEFAULT_CONTEXT {
        return Err(ContextError::NotInOwnConfig {
            wanted: wanted.to_owned(),
            origin,
            available: rename(renames, DEFAULT_CONTEXT),
        });
    }
    Ok(ContextChoice {
        kubeconfig_context: Some(old),
        project_context: Some(wanted.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn legacy(extra: &serde_json::Value) -> v1alpha1::KluctlDeploymentSpec {
        let mut v =
            json!({"interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "repo"}, "path": "p"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn renames(pairs: &[(&str, &str)]) -> Vec<RenameContext> {
        pairs
            .iter()
            .map(|(o, n)| RenameContext {
                old_context: (*o).to_owned(),
                new_context: (*n).to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_source_ref_becomes_the_v1beta1_source_ref_with_its_path() {
        let s = engine_spec(&legacy(&json!({
            "target": "prod", "args": {"a": {"b": 1}}, "prune": true, "deployMode": "poke-images",
            "images": [{"image": "nginx", "resultImage": "nginx:1.2"}],
            "kubeConfig": {"secretRef": {"name": "kc", "key": "config"}},
        })))
        .unwrap();
        let r = s.source_ref.unwrap();
        assert_eq!(
            (r.kind, r.name.as_str(), r.namespace),
            (SourceKind::GitRepository, "repo", None)
        );
        assert_eq!(s.path.as_deref(), Some("p"));
        assert!(s.source.is_none());
        assert_eq!(s.target.as_deref(), Some("prod"));
        assert_eq!(s.args.unwrap()["a"], json!({"b": 1}));
        assert!(s.prune && s.validate, "validate defaults to true");
        assert_eq!(s.deploy_mode, v1beta1::DeployMode::PokeImages);
        assert_eq!(s.images[0].image.as_deref(), Some("nginx"));
        assert_eq!(s.kube_config.unwrap().secret_ref.key.as_deref(), Some("config"));
        let bucket = engine_spec(&legacy(&json!({"sourceRef": {"kind": "Bucket", "name": "b"}}))).unwrap();
        assert_eq!(bucket.source_ref.unwrap().kind, SourceKind::Bucket);
        let e = engine_spec(&legacy(
            &json!({"sourceRef": {"kind": "OCIRepository", "name": "o"}}),
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.sourceRef.kind 'OCIRepository' is not supported: use GitRepository or Bucket"
        );
    }

    #[test]
    fn a_git_source_wins_and_keeps_its_ref_and_path() {
        let s = engine_spec(&legacy(&json!({
            "source": {"url": "https://h/r.git", "ref": {"tag": "v1"}, "path": "deploy"},
        })))
        .unwrap();
        assert!(s.source_ref.is_none() && s.path.is_none());
        let git = s.source.unwrap().git.unwrap();
        assert_eq!(
            (git.url.as_str(), git.path.as_str()),
            ("https://h/r.git", "deploy")
        );
        assert_eq!(git.git_ref.unwrap().tag, "v1");
        let both = legacy(&json!({"source": {"url": "u", "ref": {"branch": "b", "tag": "t"}}}));
        assert!(matches!(engine_spec(&both), Err(SpecError::AmbiguousRef)));
        let mut none = legacy(&json!({}));
        none.source_ref = None;
        assert!(matches!(engine_spec(&none), Err(SpecError::NoSource)));
    }

    #[test]
    fn the_source_secret_becomes_credentials_for_its_host() {
        let s = engine_spec(&legacy(&json!({
            "source": {"url": "https://me@git.example.com:8443/org/r.git", "secretRef": {"name": "git-auth"}},
        })))
        .unwrap();
        let git = &s.credentials.unwrap().git;
        assert_eq!(git.len(), 1);
        assert_eq!(
            (git[0].host.as_str(), git[0].secret_ref.name.as_str()),
            ("git.example.com:8443", "git-auth")
        );
        assert!(
            engine_spec(&legacy(&json!({"source": {"url": "https://h/r"}})))
                .unwrap()
                .credentials
                .is_none()
        );
        assert_eq!(url_host("ssh://git@h:22/r"), Some("h:22"));
        assert_eq!(url_host("git@github.com:org/repo"), Some("github.com"));
        assert_eq!(url_host("https://h/r"), Some("h"));
    }

    #[test]
    fn deprecated_fields_are_named_when_set() {
        assert!(ignored_fields(&legacy(&json!({}))).is_empty());
        let s = legacy(&json!({"updateImages": true, "registrySecrets": [{"name": "r"}]}));
        assert_eq!(ignored_fields(&s), ["spec.registrySecrets", "spec.updateImages"]);
    }

    #[test]
    fn renamed_contexts_are_found_by_their_new_name() {
        let r = renames(&[("default", "kind-kind")]);
        // The target asks for the new name: the own connection's `default` serves it.
        assert_eq!(
            resolve_context(&r, Some(("kind-kind", "target")), true).unwrap(),
            ContextChoice {
                kubeconfig_context: Some("default".into()),
                project_context: Some("kind-kind".into()),
            }
        );
        // No context asked for: the current one, under its new name.
        assert_eq!(
            resolve_context(&r, None, true)
                .unwrap()
                .project_context
                .as_deref(),
            Some("kind-kind")
        );
        // The old name is gone once renamed.
        let e = resolve_context(&r, Some(("default", "spec.context")), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "context 'default' (spec.context) does not exist: spec.renameContexts renames it to 'kind-kind'"
        );
        // Without a rename the own connection only has `default`.
        let e = resolve_context(&[], Some(("prod", "target")), true).unwrap_err();
        assert!(
            matches!(e, ContextError::NotInOwnConfig { ref available, .. } if available == "default"),
            "{e}"
        );
    }

    #[test]
    fn kubeconfig_secrets_select_the_old_name() {
        let r = renames(&[("admin@prod", "prod")]);
        assert_eq!(
            resolve_context(&r, Some(("prod", "target")), false).unwrap(),
            ContextChoice {
                kubeconfig_context: Some("admin@prod".into()),
                project_context: Some("prod".into()),
            }
        );
        // Unrenamed names pass through; the kubeconfig decides whether they exist.
        assert_eq!(
            resolve_context(&r, Some(("staging", "target")), false)
                .unwrap()
                .kubeconfig_context
                .as_deref(),
            Some("staging")
        );
        assert_eq!(
            resolve_context(&r, None, false).unwrap(),
            ContextChoice {
                kubeconfig_context: None,
                project_context: None,
            }
        );
        assert_eq!(rename(&r, "admin@prod"), "prod");
        assert_eq!(rename(&r, "other"), "other");
    }
}
