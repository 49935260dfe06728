//! Schema pieces the derive cannot produce on its own, shared by every kind
//! in this crate.
//!
//! - free-form objects (`x-kubernetes-preserve-unknown-fields`), used where upstream stores raw JSON
//!   but our Rust field is typed;
//! - the `metav1.Condition` list with the apiserver-side limits (lengths, patterns, enum) that the
//!   `k8s-openapi` schema leaves out;
//! - the root-level shape controller-gen emits (`apiVersion`/`kind`/`metadata` properties, `listKind`),
//!   and an empty `subresources` object for kinds without status.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceSubresources,
};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::crds;

/// Pattern of a Kubernetes duration string (`metav1.Duration`), e.g. `5m` or `1h30m`.
pub(crate) const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// Schema of a free-form JSON object whose content the apiserver keeps as is.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of a list of free-form JSON objects.
pub(crate) fn preserve_unknown_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// Schema of a `[]metav1.Condition` status field, with the limits the apiserver's own types carry.
pub(crate) fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Latest observations of the object's state, one entry per condition type.",
        "type": "array",
        "items": {
            "description": "One aspect of the object's current state.",
            "type": "object",
            "properties": {
                "lastTransitionTime": {
                    "description": "When the status of this condition last changed.",
                    "type": "string",
                    "format": "date-time",
                },
                "message": {
                    "description": "Human-readable details about the last transition; may be empty.",
                    "type": "string",
                    "maxLength": 32768,
                },
                "observedGeneration": {
                    "description": "The `.metadata.generation` the condition was computed from.",
                    "type": "integer",
                    "format": "int64",
                    "minimum": 0,
                },
                "reason": {
                    "description": "Machine-readable CamelCase cause of the last transition; never empty.",
                    "type": "string",
                    "maxLength": 1024,
                    "minLength": 1,
                    "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                },
                "status": {
                    "description": "Whether the condition holds: True, False or Unknown.",
                    "type": "string",
                    "enum": ["True", "False", "Unknown"],
                },
                "type": {
                    "description": "Condition type, CamelCase, optionally prefixed by a DNS subdomain and `/`.",
                    "type": "string",
                    "maxLength": 316,
                    "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                },
            },
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
        },
    })
}

/// Deserializes `null` as the type's default, for lists Go writes as `null` when empty.
pub(crate) fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Option::unwrap_or_default)
}

/// Gives a derived CRD the root shape controller-gen produces: `listKind`, the `apiVersion`, `kind` and
/// `metadata` properties, no schema `title`, and (when `empty_subresources`) `subresources: {}` on
/// versions that have none.
pub(crate) fn controller_gen_shape(
    crd: &CustomResourceDefinition,
    empty_subresources: bool,
) -> CustomResourceDefinition {
    let mut crd = crd.clone();
    crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));
    if empty_subresources {
        for version in &mut crd.spec.versions {
            version
                .subresources
                .get_or_insert_with(CustomResourceSubresources::default);
        }
    }
    crds::patch_json(&crd, |v| {
        let Some(versions) = v.pointer_mut("/spec/versions").and_then(Value::as_array_mut) else {
            return;
        };
        for version in versions {
            let Some(root) = version
                .pointer_mut("/schema/openAPIV3Schema")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            root.remove("title");
            let Some(props) = root.get_mut("properties").and_then(Value::as_object_mut) else {
                continue;
            };
            props.insert(
                "apiVersion".into(),
                json!({
                    "description": "Versioned schema of this object; the server may convert or reject unknown values.",
                    "type": "string",
                }),
            );
            props.insert(
                "kind".into(),
                json!({
                    "description": "REST resource kind of this object, in CamelCase; cannot be updated.",
                    "type": "string",
                }),
            );
            props.insert("metadata".into(), json!({ "type": "object" }));
        }
    })
}
