//! The CRDs of every kind in this crate, and the post-processing the derive cannot express.
//!
//! `kube-derive` produces one CRD per version from the Rust types. Each kind module merges its
//! versions and then uses the helpers here for what must match upstream exactly but has no derive
//! attribute: the `status` default (`observedGeneration: -1`), CRD annotations and labels, and
//! per-version deprecation warnings. `strip_cel` exists for apiservers older than 1.25, which
//! reject `x-kubernetes-validations` under server-side apply.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::{flux_kluctl, kluctl, notification, source};

/// Every CRD this project serves, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        source::gitrepository_crd(),
        source::bucket_crd(),
        kluctl::kluctldeployment_crd(),
        flux_kluctl::kluctldeployment_crd(),
        notification::alert_crd(),
        notification::provider_crd(),
        notification::receiver_crd(),
    ]
}

/// File name of a CRD under `config/crd/bases`, `<group>_<plural>.yaml` as controller-gen names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// Renders a CRD as a YAML document with a leading `---`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let body = serde_saphyr::to_string(crd).unwrap_or_else(|e| format!("# failed to render CRD: {e}\n"));
    format!("---\n{body}")
}

/// Merges per-version CRDs of one kind, with `storage` as the storage version.
///
/// # Panics
/// When the versions disagree on group, kind or scope: a programming error in this crate, caught by
/// the unit tests that build every CRD.
pub fn merge(versions: Vec<CustomResourceDefinition>, storage: &str) -> CustomResourceDefinition {
    match kube::core::crd::merge_crds(versions, storage) {
        Ok(crd) => crd,
        Err(e) => panic!("CRD versions do not merge: {e}"),
    }
}

/// Applies `f` to the CRD as JSON and converts it back.
///
/// # Panics
/// When `f` produces something that is no longer a CRD (a programming error in this crate).
pub fn patch_json(crd: &CustomResourceDefinition, f: impl FnOnce(&mut Value)) -> CustomResourceDefinition {
    let mut v = serde_json::to_value(crd).unwrap_or(Value::Null);
    f(&mut v);
    match serde_json::from_value(v) {
        Ok(crd) => crd,
        Err(e) => panic!("CRD patch broke the CRD: {e}"),
    }
}

/// Sets `default` on the root `status` property of every version's schema.
pub fn with_status_default(crd: &CustomResourceDefinition, default: &Value) -> CustomResourceDefinition {
    patch_json(crd, |v| {
        for version in versions_mut(v) {
            if let Some(status) = version.pointer_mut("/schema/openAPIV3Schema/properties/status") {
                status["default"] = default.clone();
            }
        }
    })
}

/// Sets a metadata annotation on the CRD object itself.
pub fn with_annotation(crd: &CustomResourceDefinition, key: &str, value: &str) -> CustomResourceDefinition {
    let mut crd = crd.clone();
    crd.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    crd
}

/// Sets a metadata label on the CRD object itself.
pub fn with_label(crd: &CustomResourceDefinition, key: &str, value: &str) -> CustomResourceDefinition {
    let mut crd = crd.clone();
    crd.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    crd
}

/// Marks `version` deprecated with the warning clients print when they use it.
pub fn with_deprecation(
    crd: &CustomResourceDefinition,
    version: &str,
    warning: &str,
) -> CustomResourceDefinition {
    let mut crd = crd.clone();
    for v in &mut crd.spec.versions {
        if v.name == version {
            v.deprecated = Some(true);
            v.deprecation_warning = Some(warning.to_string());
        }
    }
    crd
}

/// Removes every `x-kubernetes-validations` (CEL) rule, for apiservers older than 1.25.
///
/// Schema validation (types, patterns, enums, required) is kept; only CEL rules go.
pub fn strip_cel(crd: &CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("x-kubernetes-validations");
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    patch_json(crd, walk)
}

/// Counts the CEL rules in a CRD (all versions).
pub fn cel_rule_count(crd: &CustomResourceDefinition) -> usize {
    fn walk(v: &Value) -> usize {
        match v {
            Value::Object(map) => {
                let here = map
                    .get("x-kubernetes-validations")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                here + map.values().map(walk).sum::<usize>()
            }
            Value::Array(items) => items.iter().map(walk).sum(),
            _ => 0,
        }
    }
    walk(&serde_json::to_value(crd).unwrap_or(Value::Null))
}

fn versions_mut(v: &mut Value) -> impl Iterator<Item = &mut Value> {
    v.pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
        .map(|a| a.iter_mut())
        .into_iter()
        .flatten()
}
