//! Reconcile requests: what an accepted webhook request does to each `spec.resources[]` entry.
//!
//! ```text
//!  resources[i] ─► resolve (pure: kind, apiVersion, namespace, name or matchLabels)
//!               ─► request: JSON merge patch of metadata.annotations on the object(s)
//!                     GitRepository, Bucket   reconcile.fluxcd.io/requestedAt: <now>
//!                     KluctlDeployment        kluctl.io/request-reconcile: {"requestValue": <now>}
//! ```
//!
//! The KluctlDeployment value is Kluctl's manual request JSON, as `kluctl gitops reconcile`
//! writes it: a bare timestamp there would be refused as an invalid request.
//!
//! Only the kinds this product reconciles are accepted: a request for any other kind would
//! annotate an object no controller of ours reads.

use std::collections::BTreeMap;

use gitops_api::constants::{
    KLUCTL_GROUP, KLUCTL_REQUEST_RECONCILE_ANNOTATION, RECONCILE_REQUESTED_AT_ANNOTATION, SOURCE_GROUP,
};
use gitops_api::notification::v1::{CrossNamespaceObjectReference, ReferencedKind};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use serde_json::json;

/// The kinds a Receiver can request a reconcile of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// `source.toolkit.fluxcd.io` GitRepository.
    GitRepository,
    /// `source.toolkit.fluxcd.io` Bucket.
    Bucket,
    /// `gitops.kluctl.io` KluctlDeployment.
    KluctlDeployment,
}

impl TargetKind {
    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            TargetKind::GitRepository => "GitRepository",
            TargetKind::Bucket => "Bucket",
            TargetKind::KluctlDeployment => "KluctlDeployment",
        }
    }

    fn group(self) -> &'static str {
        match self {
            TargetKind::GitRepository | TargetKind::Bucket => SOURCE_GROUP,
            TargetKind::KluctlDeployment => KLUCTL_GROUP,
        }
    }

    /// The version used when `apiVersion` is omitted (Flux's default for its source kinds).
    fn default_version(self) -> &'static str {
        match self {
            TargetKind::GitRepository | TargetKind::Bucket => "v1",
            TargetKind::KluctlDeployment => "v1beta1",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            TargetKind::GitRepository => "gitrepositories",
            TargetKind::Bucket => "buckets",
            TargetKind::KluctlDeployment => "kluctldeployments",
        }
    }

    /// The annotation whose change makes the kind's controller reconcile.
    pub fn annotation(self) -> &'static str {
        match self {
            TargetKind::GitRepository | TargetKind::Bucket => RECONCILE_REQUESTED_AT_ANNOTATION,
            TargetKind::KluctlDeployment => KLUCTL_REQUEST_RECONCILE_ANNOTATION,
        }
    }
}

/// Which objects of the kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The object of this name.
    Name(String),
    /// Every object carrying all these labels (`name: '*'`).
    Labels(BTreeMap<String, String>),
}

/// A resolved `spec.resources[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The kind.
    pub kind: TargetKind,
    /// The API version requested (the kind's default when the entry names none).
    pub version: String,
    /// The namespace (the Receiver's when the entry names none).
    pub namespace: String,
    /// Which objects.
    pub selector: Selector,
}

/// Why a reconcile request failed (the server answers 500).
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// `--no-cross-namespace-refs` and the entry names another namespace.
    #[error("cross-namespace reference to {kind} '{namespace}/{name}' refused (--no-cross-namespace-refs)")]
    CrossNamespace {
        /// The kind named.
        kind: ReferencedKind,
        /// The namespace named.
        namespace: String,
        /// The name named.
        name: String,
    },
    /// A kind this product does not reconcile.
    #[error("kind '{0}' is not reconciled by this product (GitRepository, Bucket or KluctlDeployment)")]
    UnsupportedKind(ReferencedKind),
    /// An `apiVersion` outside the kind's API group.
    #[error("apiVersion '{api_version}' does not serve kind '{kind}' (group '{group}')")]
    WrongApiVersion {
        /// The apiVersion named.
        api_version: String,
        /// The kind named.
        kind: &'static str,
        /// The kind's group.
        group: &'static str,
    },
    /// `name: '*'` without `matchLabels`.
    #[error("{kind} name '*' needs matchLabels")]
    WildcardWithoutLabels {
        /// The kind named.
        kind: &'static str,
    },
    /// The named object does not exist.
    #[error("{kind} '{namespace}/{name}' not found")]
    NotFound {
        /// The kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Listing the objects matching the labels failed.
    #[error("failed to list {kind} in namespace '{namespace}' matching labels '{labels}'")]
    List {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The label selector.
        labels: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Patching the annotation failed.
    #[error("failed to annotate {kind} '{namespace}/{name}'")]
    Annotate {
        /// The kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
}

/// Resolves one `spec.resources[]` entry of a Receiver in `receiver_namespace`.
///
/// # Errors
/// A cross-namespace reference under `no_cross_namespace_refs`, a kind other than GitRepository,
/// Bucket and KluctlDeployment, an `apiVersion` of another group, `*` without `matchLabels`.
pub fn resolve(
    reference: &CrossNamespaceObjectReference,
    receiver_namespace: &str,
    no_cross_namespace_refs: bool,
) -> Result<Target, TriggerError> {
    let namespace = if reference.namespace.is_empty() {
        receiver_namespace.to_owned()
    } else {
        if no_cross_namespace_refs && reference.namespace != receiver_namespace {
            return Err(TriggerError::CrossNamespace {
                kind: reference.kind,
                namespace: reference.namespace.clone(),
                name: reference.name.clone(),
            });
        }
        reference.namespace.clone()
    };
    let kind = match reference.kind {
        ReferencedKind::GitRepository => TargetKind::GitRepository,
        ReferencedKind::Bucket => TargetKind::Bucket,
        ReferencedKind::KluctlDeployment => TargetKind::KluctlDeployment,
        other => return Err(TriggerError::UnsupportedKind(other)),
    };
    let version = if reference.api_version.is_empty() {
        kind.default_version().to_owned()
    } else {
        match reference.api_version.split_once('/') {
            Some((group, version)) if group == kind.group() && !version.is_empty() => version.to_owned(),
            _ => {
                return Err(TriggerError::WrongApiVersion {
                    api_version: reference.api_version.clone(),
                    kind: kind.kind(),
                    group: kind.group(),
                });
            }
        }
    };
    let selector = if reference.name == "*" {
        if reference.match_labels.is_empty() {
            return Err(TriggerError::WildcardWithoutLabels { kind: kind.kind() });
        }
        Selector::Labels(reference.match_labels.clone())
    } else {
        Selector::Name(reference.name.clone())
    };
    Ok(Target {
        kind,
        version,
        namespace,
        selector,
    })
}

/// The merge patch setting the kind's reconcile annotation to a request made at `now`.
pub fn annotation_patch(kind: TargetKind, now: &str) -> serde_json::Value {
    let value = match kind {
        TargetKind::GitRepository | TargetKind::Bucket => now.to_owned(),
        TargetKind::KluctlDeployment => json!({ "requestValue": now }).to_string(),
    };
    json!({"metadata": {"annotations": {kind.annotation(): value}}})
}

/// `k=v,k2=v2`.
fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sets the reconcile annotation of the target's objects to `now` (RFC 3339); returns the names
/// of the objects annotated (none when a label selector matched nothing: only logged, as Flux
/// does).
///
/// # Errors
/// A named object that does not exist, a failed list or patch.
pub async fn request(
    client: &kube::Client,
    target: &Target,
    now: &str,
    field_manager: &str,
) -> Result<Vec<String>, TriggerError> {
    let kind = target.kind;
    let gvk = GroupVersionKind::gvk(kind.group(), &target.version, kind.kind());
    let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &target.namespace, &resource);
    let names = match &target.selector {
        Selector::Name(name) => vec![name.clone()],
        Selector::Labels(labels) => {
            let selector = label_selector(labels);
            let list = api
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(|source| TriggerError::List {
                    kind: kind.kind(),
                    namespace: target.namespace.clone(),
                    labels: selector.clone(),
                    source: Box::new(source),
                })?;
            let names: Vec<String> = list.items.into_iter().filter_map(|o| o.metadata.name).collect();
            if names.is_empty() {
                tracing::warn!(
                    kind = kind.kind(),
                    namespace = %target.namespace,
                    labels = %selector,
                    "no objects match the labels of a Receiver resource"
                );
            }
            names
        }
    };
    let params = PatchParams {
        field_manager: Some(field_manager.to_owned()),
        ..PatchParams::default()
    };
    let patch = annotation_patch(kind, now);
    for name in &names {
        match api.patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                return Err(TriggerError::NotFound {
                    kind: kind.kind(),
                    namespace: target.namespace.clone(),
                    name: name.clone(),
                });
            }
            Err(source) => {
                return Err(TriggerError::Annotate {
                    kind: kind.kind(),
                    namespace: target.namespace.clone(),
                    name: name.clone(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(yaml: serde_json::Value) -> CrossNamespaceObjectReference {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn named_sources_default_to_flux_v1_in_the_receivers_namespace() {
        let t = resolve(
            &reference(json!({"kind": "GitRepository", "name": "app"})),
            "team",
            false,
        )
        .unwrap();
        assert_eq!(
            t,
            Target {
                kind: TargetKind::GitRepository,
                version: "v1".into(),
                namespace: "team".into(),
                selector: Selector::Name("app".into()),
            }
        );
        assert_eq!(t.kind.annotation(), "reconcile.fluxcd.io/requestedAt");
        let b = resolve(&reference(json!({"kind": "Bucket", "name": "b"})), "team", false).unwrap();
        assert_eq!((b.kind, b.version.as_str()), (TargetKind::Bucket, "v1"));
    }

    #[test]
    fn kluctl_deployments_get_kluctls_request_annotation() {
        let t = resolve(
            &reference(json!({"kind": "KluctlDeployment", "name": "kd", "namespace": "apps"})),
            "team",
            false,
        )
        .unwrap();
        assert_eq!(
            (t.kind, t.version.as_str(), t.namespace.as_str()),
            (TargetKind::KluctlDeployment, "v1beta1", "apps")
        );
        let patch = annotation_patch(t.kind, "2026-01-01T00:00:00.5Z");
        let value = patch["metadata"]["annotations"]["kluctl.io/request-reconcile"]
            .as_str()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(value).unwrap(),
            json!({"requestValue": "2026-01-01T00:00:00.5Z"}),
            "Kluctl's manual request JSON"
        );
        let parsed =
            crate::controller::requests::parse(crate::controller::requests::RequestKind::Reconcile, value)
                .expect("the KluctlDeployment controller takes the request");
        assert_eq!(parsed.request.request_value, "2026-01-01T00:00:00.5Z");
        assert_eq!(
            annotation_patch(TargetKind::Bucket, "2026-01-01T00:00:00.5Z"),
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-01-01T00:00:00.5Z"}}})
        );
    }

    #[test]
    fn explicit_api_versions_must_belong_to_the_kind() {
        let ok = resolve(
            &reference(
                json!({"kind": "GitRepository", "name": "a", "apiVersion": "source.toolkit.fluxcd.io/v1beta2"}),
            ),
            "n",
            false,
        )
        .unwrap();
        assert_eq!(ok.version, "v1beta2");
        let err = resolve(
            &reference(
                json!({"kind": "GitRepository", "name": "a", "apiVersion": "gitops.kluctl.io/v1beta1"}),
            ),
            "n",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "apiVersion 'gitops.kluctl.io/v1beta1' does not serve kind 'GitRepository' (group 'source.toolkit.fluxcd.io')"
        );
    }

    #[test]
    fn cross_namespace_references_are_refused_only_when_the_flag_says_so() {
        let r = reference(json!({"kind": "GitRepository", "name": "a", "namespace": "other"}));
        assert_eq!(resolve(&r, "n", false).unwrap().namespace, "other");
        let err = resolve(&r, "n", true).unwrap_err();
        assert!(matches!(err, TriggerError::CrossNamespace { .. }), "{err}");
        assert!(err.to_string().contains("'other/a'"), "{err}");
        let same = reference(json!({"kind": "GitRepository", "name": "a", "namespace": "n"}));
        assert!(
            resolve(&same, "n", true).is_ok(),
            "naming its own namespace is fine"
        );
    }

    #[test]
    fn wildcards_need_match_labels() {
        let err = resolve(&reference(json!({"kind": "Bucket", "name": "*"})), "n", false).unwrap_err();
        assert_eq!(err.to_string(), "Bucket name '*' needs matchLabels");
        let t = resolve(
            &reference(json!({"kind": "Bucket", "name": "*", "matchLabels": {"team": "a", "tier": "web"}})),
            "n",
            false,
        )
        .unwrap();
        let Selector::Labels(labels) = &t.selector else {
            panic!("{t:?}")
        };
        assert_eq!(label_selector(labels), "team=a,tier=web");
    }

    #[test]
    fn kinds_we_do_not_reconcile_are_refused() {
        let err = resolve(
            &reference(json!({"kind": "Kustomization", "name": "a"})),
            "n",
            false,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            TriggerError::UnsupportedKind(ReferencedKind::Kustomization)
        ));
        assert!(err.to_string().contains("'Kustomization'"), "{err}");
    }
}
