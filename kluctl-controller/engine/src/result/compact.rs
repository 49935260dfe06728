//! The reduced and compacted forms of a [`CommandResult`] (what the result store keeps): reduced
//! objects carry only identity, labels and annotations; compacted objects carry each of
//! `rendered`, `remote` and `applied` as text, the first present one as `full: <json>`, each later
//! one as `delta: <diff>` against the previous one when that is shorter (the delta text is
//! [`super::dmp`]'s).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dmp::{decode_delta, encode_delta};
use super::{Change, CommandResult, ObjectRef, ResultError, ResultObject};
use crate::project::config::is_false;

/// One object of the compacted form: flags plus `full:`/`delta:` texts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactedObject {
    /// The object.
    #[serde(rename = "ref")]
    pub object: ObjectRef,
    /// Field changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// New.
    #[serde(default, skip_serializing_if = "is_false")]
    pub new: bool,
    /// Orphan.
    #[serde(default, skip_serializing_if = "is_false")]
    pub orphan: bool,
    /// Deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Hook.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hook: bool,
    /// `full: <json>` or `delta: <delta>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rendered: String,
    /// `full: <json>` or `delta: <delta against rendered>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote: String,
    /// `full: <json>` or `delta: <delta against the previous one>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied: String,
}

/// A result whose objects are carried as [`CompactedObject`]s (`-o yaml`, the stored objects).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactedCommandResult {
    /// The result without `objects`.
    #[serde(flatten)]
    pub result: CommandResult,
    /// The objects, compacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compacted_objects: Vec<CompactedObject>,
}

impl CommandResult {
    /// A copy whose objects keep only identity, labels and annotations (the stored
    /// `reducedResult`).
    #[must_use]
    pub fn to_reduced_objects(&self) -> CommandResult {
        let mut ret = self.clone_without_objects();
        ret.objects = self
            .objects
            .iter()
            .map(|o| ResultObject {
                object: o.object.clone(),
                changes: o.changes.clone(),
                new: o.new,
                orphan: o.orphan,
                deleted: o.deleted,
                hook: o.hook,
                rendered: o.rendered.as_ref().map(reduced_object),
                remote: o.remote.as_ref().map(reduced_object),
                applied: o.applied.as_ref().map(reduced_object),
            })
            .collect();
        ret
    }

    /// The compacted form (`objects` moved to `compactedObjects`).
    pub fn to_compacted(&self) -> CompactedCommandResult {
        CompactedCommandResult {
            result: self.clone_without_objects(),
            compacted_objects: compact_objects(&self.objects),
        }
    }
}

impl CompactedCommandResult {
    /// Restores the full objects.
    ///
    /// # Errors
    /// A compacted field that is not `full: <json>` or a `delta: ` that does not fit.
    pub fn to_non_compacted(&self) -> Result<CommandResult, ResultError> {
        let mut ret = self.result.clone();
        if !self.compacted_objects.is_empty() {
            ret.objects = expand_objects(&self.compacted_objects)?;
        }
        Ok(ret)
    }
}

/// An object cut down to apiVersion, kind, name, namespace, labels and annotations.
pub fn reduced_object(o: &Value) -> Value {
    let meta = o.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k));
    let mut m = serde_json::Map::new();
    m.insert(
        "name".into(),
        get("name")
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
    );
    if let Some(ns) = get("namespace").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
        m.insert("namespace".into(), ns.clone());
    }
    for k in ["labels", "annotations"] {
        if let Some(v) = get(k).filter(|v| v.as_object().is_some_and(|x| !x.is_empty())) {
            m.insert(k.into(), v.clone());
        }
    }
    let mut r = serde_json::Map::new();
    r.insert(
        "apiVersion".into(),
        o.get("apiVersion")
            .cloned()
            .unwrap_or(Value::String(String::new())),
    );
    r.insert(
        "kind".into(),
        o.get("kind").cloned().unwrap_or(Value::String(String::new())),
    );
    r.insert("metadata".into(), Value::Object(m));
    Value::Object(r)
}

/// Compacts objects: per object the first present of rendered/remote/applied as `full: <json>`,
/// each later one as `delta: ` against the previous when that is shorter.
pub fn compact_objects(objects: &[ResultObject]) -> Vec<CompactedObject> {
    objects.iter().map(compact_object).collect()
}

/// Compacts one object (see [`compact_objects`]).
pub fn compact_object(o: &ResultObject) -> CompactedObject {
    let mut prev = String::new();
    let mut next = |v: &Option<Value>| -> String {
        let Some(v) = v else { return String::new() };
        let json = v.to_string();
        if prev.is_empty() {
            let s = format!("full: {json}");
            prev = json;
            return s;
        }
        let delta = encode_delta(&prev, &json);
        let s = if delta.len() < json.len() {
            format!("delta: {delta}")
        } else {
            format!("full: {json}")
        };
        prev = json;
        s
    };
    CompactedObject {
        object: o.object.clone(),
        changes: o.changes.clone(),
        new: o.new,
        orphan: o.orphan,
        deleted: o.deleted,
        hook: o.hook,
        rendered: next(&o.rendered),
        remote: next(&o.remote),
        applied: next(&o.applied),
    }
}

/// Restores objects from their compacted form.
///
/// # Errors
/// A field that is not `full: <json>`/`delta: <delta>` or a delta that does not fit.
pub fn expand_objects(objects: &[CompactedObject]) -> Result<Vec<ResultObject>, ResultError> {
    objects
        .iter()
        .map(|o| {
            let mut prev = String::new();
            let mut next = |field: &'static str, s: &str| -> Result<Option<Value>, ResultError> {
                let err = |reason: String| ResultError::Compacted {
                    object: o.object.to_string(),
                    field,
                    reason,
                };
                if s.is_empty() {
                    return Ok(None);
                }
                let json = if let Some(full) = s.strip_prefix("full: ") {
                    full.to_owned()
                } else if let Some(delta) = s.strip_prefix("delta: ") {
                    if prev.is_empty() {
                        return Err(err("a delta without a previous object".into()));
                    }
                    decode_delta(&prev, delta).map_err(err)?
                } else {
                    return Err(err("neither a \"full: \" nor a \"delta: \" text".into()));
                };
                let v = serde_json::from_str(&json).map_err(|e| err(format!("invalid JSON: {e}")))?;
                prev = json;
                Ok(Some(v))
            };
            Ok(ResultObject {
                object: o.object.clone(),
                changes: o.changes.clone(),
                new: o.new,
                orphan: o.orphan,
                deleted: o.deleted,
                hook: o.hook,
                rendered: next("rendered", &o.rendered)?,
                remote: next("remote", &o.remote)?,
                applied: next("applied", &o.applied)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::cm;
    use super::*;
    use serde_json::json;

    #[test]
    fn reduced_objects_keep_identity_labels_and_annotations_only() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "labels": {"l": "1"}, "annotations": {}, "uid": "u"},
            "data": {"secret": "x"}});
        assert_eq!(
            reduced_object(&o),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns", "labels": {"l": "1"}}})
        );
    }

    #[test]
    fn compacted_objects_use_full_then_delta_and_expand_back() {
        let rendered = json!({"kind": "ConfigMap", "data": {"a": "1", "long": "x".repeat(200)}});
        let mut remote = rendered.clone();
        remote["data"]["a"] = json!("2 ü%\t");
        let obj = ResultObject {
            object: cm("a"),
            rendered: Some(rendered.clone()),
            remote: Some(remote.clone()),
            applied: None,
            ..ResultObject::default()
        };
        let r = CommandResult {
            objects: vec![obj.clone()],
            ..CommandResult::default()
        };
        let c = r.to_compacted();
        assert!(c.result.objects.is_empty());
        let co = &c.compacted_objects[0];
        assert!(co.rendered.starts_with("full: {"), "{}", co.rendered);
        assert!(co.remote.starts_with("delta: ="), "{}", co.remote);
        assert!(co.applied.is_empty());
        let v = serde_json::to_value(&c).unwrap();
        assert!(v.get("objects").is_none() && v.get("compactedObjects").is_some());
        let back: CompactedCommandResult = serde_json::from_value(v).unwrap();
        assert_eq!(back.to_non_compacted().unwrap().objects, vec![obj]);
    }
}
