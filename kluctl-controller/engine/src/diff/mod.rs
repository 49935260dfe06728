//! Diff: how a live object differs from what we (would) apply, in Kluctl's terms, and how a
//! command result is shown to users.
//!
//! ```text
//! remote object ─┐
//!                ├─► normalize (noise out, ignoreForDiff, ignore-diff annotations) ─► changes
//! applied object ┘        (same rules and rendered object for both sides)             │
//!                                                                                       ▼
//!                      ResultBuilder::add_changed ─► CommandResult ─► obfuscate ─► output
//! ```
//!
//! - [`normalize`]: Kluctl's normalisation and ignore rules ([`IgnoreOptions`] = CLI switches)
//! - [`changes`]: the change list with JSON paths and unified diffs
//! - [`obfuscate`]: Secret values out of results (`--no-obfuscate` skips it)
//! - [`output`]: text report, `-o yaml|json`
//! - [`jsonpath`], [`yaml`]: Kluctl's JSON path dialect and Go-style YAML text
//!
//! The dry-run apply that produces the applied objects lives in `apply/`; this module takes no
//! client.

pub mod changes;
pub mod jsonpath;
pub mod normalize;
pub mod obfuscate;
pub mod output;
pub mod yaml;

use std::collections::BTreeMap;

use gitops_api::kluctl::v1beta1::ObjectRef;
use serde_json::Value;

use crate::project::config::IgnoreForDiffItem;
use crate::result::{Change, ResultBuilder};

pub use changes::diff_objects;
pub use normalize::{IgnoreOptions, ignore_rules, normalize_object};
pub use obfuscate::{obfuscate_changes, obfuscate_object, obfuscate_result};
pub use output::{OutputOptions, format_json, format_text, format_yaml};

/// Errors of the diff step.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// An `ignoreForDiff`/`kluctl.io/ignore-diff-field` path that does not parse.
    #[error("failed to parse ignore-diff field path {path:?} for object {object:?}: {reason}")]
    InvalidFieldPath {
        /// The object being normalised (`ns/Kind/name`).
        object: String,
        /// The path as written.
        path: String,
        /// Why it does not parse.
        reason: String,
    },
    /// An `ignoreForDiff`/`kluctl.io/ignore-diff-field-regex` regex that does not compile.
    #[error("failed to compile ignore-diff field path regex {regex:?} for object {object:?}")]
    InvalidFieldPathRegex {
        /// The object being normalised.
        object: String,
        /// The regex as written.
        regex: String,
        /// The regex error.
        #[source]
        source: Box<regex::Error>,
    },
    /// A Secret whose `data` or `stringData` is not a map (obfuscation cannot vouch for it).
    #[error("failed to obfuscate secret {object:?}: field {field:?} is not a map of strings")]
    SecretNotMap {
        /// The Secret.
        object: String,
        /// `data` or `stringData`.
        field: &'static str,
    },
}

pub use crate::object_ref;

/// The reference an object is diffed and reported under: its own, with the name replaced by
/// the `kluctl.io/diff-name` annotation when set (the caller then compares against the
/// youngest live object carrying the same diff name).
pub fn diff_ref(o: &Value) -> Option<ObjectRef> {
    let mut r = object_ref(o)?;
    if let Some(n) = crate::annotation(o, "kluctl.io/diff-name") {
        n.clone_into(&mut r.name);
    }
    Some(r)
}

/// The changes from `remote` (live) to `applied` (dry-run or real apply result) for the
/// rendered object `local`, both normalised with `rules` (see [`ignore_rules`]).
///
/// # Errors
/// An ignore rule that does not parse.
///
/// ```
/// use kluctl_engine::diff::diff_object;
/// use serde_json::json;
///
/// let local = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "new"}});
/// let remote = json!({"apiVersion": "v1", "kind": "ConfigMap",
///     "metadata": {"name": "c", "resourceVersion": "7"}, "data": {"k": "old"}});
/// let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
///     "metadata": {"name": "c", "resourceVersion": "8"}, "data": {"k": "new"}});
/// let changes = diff_object(&local, &remote, &applied, &[]).unwrap();
/// assert_eq!(changes[0].json_path, "data[\"k\"]");
/// assert_eq!(changes[0].unified_diff, "-old\n+new");
/// ```
pub fn diff_object(
    local: &Value,
    remote: &Value,
    applied: &Value,
    rules: &[IgnoreForDiffItem],
) -> Result<Vec<Change>, DiffError> {
    let new = normalize_object(applied, rules, local)?;
    let old = normalize_object(remote, rules, local)?;
    Ok(diff_objects(&old, &new))
}

/// The live object each diff reference is compared against: per diff reference (see
/// [`diff_ref`]) the youngest live object by `metadata.creationTimestamp`; on equal timestamps
/// (they have seconds resolution) the one with the greater name, so the choice is stable.
pub fn remote_objects_by_diff_ref<'a>(
    remotes: impl IntoIterator<Item = &'a Value>,
) -> BTreeMap<ObjectRef, &'a Value> {
    let created = |o: &Value| -> Option<jiff::Timestamp> {
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    };
    let name = |o: &Value| {
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut ret: BTreeMap<ObjectRef, &Value> = BTreeMap::new();
    for o in remotes {
        let Some(r) = diff_ref(o) else { continue };
        let replace = match ret.get(&r) {
            None => true,
            Some(old) if created(old) == created(o) => name(o) > name(old),
            Some(old) => created(o) > created(old),
        };
        if replace {
            ret.insert(r, o);
        }
    }
    ret
}

/// Diffs the rendered objects of one deployment item and records the changes in `builder`
/// (under the diff reference); objects that were not applied (they failed) or have no live
/// counterpart (new) are skipped, and a normalisation error is recorded as an error of the
/// rendered object.
pub fn diff_rendered_objects<'a>(
    rendered: impl IntoIterator<Item = &'a Value>,
    applied: &BTreeMap<ObjectRef, &Value>,
    remote_by_diff_ref: &BTreeMap<ObjectRef, &Value>,
    rules: &[IgnoreForDiffItem],
    builder: &mut ResultBuilder,
) {
    for local in rendered {
        let (Some(r), Some(dr)) = (object_ref(local), diff_ref(local)) else {
            continue;
        };
        let (Some(applied), Some(remote)) = (applied.get(&r), remote_by_diff_ref.get(&dr)) else {
            continue;
        };
        match diff_object(local, remote, applied, rules) {
            Ok(changes) => builder.add_changed(&dr, changes),
            Err(e) => builder.add_error(&r, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_noise_produces_no_changes_but_real_edits_do() {
        let local = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
            "spec": {"replicas": 2}});
        let remote = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n",
            "resourceVersion": "5", "uid": "u", "generation": 3, "managedFields": [{"manager": "kluctl"}]},
            "spec": {"replicas": 1}, "status": {"readyReplicas": 1}});
        let mut applied = remote.clone();
        applied["metadata"]["resourceVersion"] = json!("6");
        applied["status"] = json!({});
        assert!(diff_object(&local, &remote, &applied, &[]).unwrap().is_empty());
        applied["spec"]["replicas"] = json!(2.0);
        let c = diff_object(&local, &remote, &applied, &[]).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].json_path.as_str(), c[0].unified_diff.as_str()),
            ("spec.replicas", "-1\n+2")
        );
    }

    #[test]
    fn youngest_remote_wins_per_diff_name_and_ties_go_to_the_greater_name() {
        let obj = |name: &str, created: &str| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "n",
                "creationTimestamp": created, "annotations": {"kluctl.io/diff-name": "job"}}})
        };
        let a = obj("job-a", "2024-01-01T00:00:00Z");
        let b = obj("job-b", "2024-01-02T00:00:00Z");
        let c = obj("job-c", "2024-01-02T00:00:00Z");
        let m = remote_objects_by_diff_ref([&c, &a, &b]);
        assert_eq!(m.len(), 1);
        assert_eq!(m.values().next().unwrap()["metadata"]["name"], json!("job-c"));
        let m = remote_objects_by_diff_ref([&a, &b]);
        assert_eq!(m.values().next().unwrap()["metadata"]["name"], json!("job-b"));
    }

    #[test]
    fn rendered_objects_are_diffed_against_their_remote_and_errors_recorded() {
        let local = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"k": "2"}});
        let remote = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"k": "1"}});
        let fresh =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new", "namespace": "n"}});
        let applied: BTreeMap<ObjectRef, &Value> = [
            (object_ref(&local).unwrap(), &local),
            (object_ref(&fresh).unwrap(), &fresh),
        ]
        .into();
        let remotes = remote_objects_by_diff_ref([&remote]);
        let mut b = ResultBuilder::new();
        diff_rendered_objects([&local, &fresh], &applied, &remotes, &[], &mut b);
        let bad = IgnoreForDiffItem {
            field_path: crate::project::config::StringOrList(vec!["[".into()]),
            ..Default::default()
        };
        diff_rendered_objects([&local], &applied, &remotes, &[bad], &mut b);
        b.set_rendered(&object_ref(&local).unwrap(), local.clone());
        let mut r = crate::result::CommandResult::default();
        b.finish(&mut r);
        assert_eq!(r.objects.len(), 1);
        assert_eq!(r.objects[0].changes[0].unified_diff, "-1\n+2");
        assert_eq!(r.errors.len(), 1);
        assert!(
            r.errors[0]
                .message
                .contains("failed to parse ignore-diff field path"),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn refs_and_diff_names() {
        let o = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d-123", "namespace": "n", "annotations": {"kluctl.io/diff-name": "d"}}});
        assert_eq!(object_ref(&o).unwrap().to_string(), "n/Deployment/d-123");
        let r = diff_ref(&o).unwrap();
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.name.as_str()),
            ("apps", "v1", "d")
        );
        assert!(object_ref(&json!({"apiVersion": "v1"})).is_none());
    }
}
