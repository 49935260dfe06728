//! Field-manager conflicts of a server-side apply, resolved as Kluctl resolves them.
//!
//! ```text
//! 409 Status causes (field, message) ─┐
//! remote managedFields (fieldsV1) ────┼─► per conflicting field: force-apply | ignore | give up
//! local object + rules ───────────────┘      └─► local object without the given-up fields,
//!                                                 warnings "… Not updating field '…' as we lost
//!                                                 field ownership", then re-apply with force
//! ```
//!
//! A conflicting field is taken over (force) when a rule says `force-apply` (`conflictResolution`
//! in `deployment.yaml`, `kluctl.io/force-apply`, `kluctl.io/force-apply-field[-N]`,
//! `kluctl.io/force-apply-manager[-N]`) or when one of its managers is a user-facing editor
//! (`kluctl*`, `kubectl*`, `rancher`, `k9s`) and no ignore rule matches. Otherwise it is removed
//! from the applied object, so the other manager keeps its value; a warning is given unless an
//! ignore rule matches or both values are equal. Ignore rules come after force rules and win.
//!
//! `fieldsV1` parsing and the apiserver's path strings (`.spec.containers[name="app"].image`)
//! are written here because no crate in Rust implements structured-merge-diff's field sets.
//! Field-path rules are Kluctl's JSON paths ([`crate::diff::jsonpath`]; `..` alone means
//! every field); regex rules match Kluctl's path text of each field (`spec.replicas`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::diff::jsonpath::{JsonPath, Key, delete_paths, to_json_path};
use crate::diff::normalize::is_numbered_annotation;
use crate::project::config::{ConflictAction, ConflictResolutionItem, StringOrList};

/// Managers whose fields are taken over unless a rule says to ignore the conflict (compiled
/// once, not on every 409).
static EDITOR_MANAGERS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        "^kluctl$",
        "^kluctl-.*$",
        "^kubectl$",
        "^kubectl-.*$",
        "^rancher$",
        "^k9s$",
    ]
    .iter()
    .filter_map(|r| Regex::new(r).ok())
    .collect()
});

/// One element of a managed-fields path.
#[derive(Clone, Debug, PartialEq)]
pub enum PathElement {
    /// A map field.
    Field(String),
    /// A list item identified by key fields (sorted by name).
    Key(Vec<(String, Value)>),
    /// A set item identified by its value.
    Value(Value),
    /// A list item by position.
    Index(usize),
}

/// A field the apply gave up, for the warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostOwnership {
    /// The apiserver's path of the field.
    pub field: String,
    /// The apiserver's conflict message.
    pub message: String,
}

impl std::fmt::Display for LostOwnership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}. Not updating field '{}' as we lost field ownership",
            self.message, self.field
        )
    }
}

/// A conflict that cannot be resolved (the apply of this object fails with it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConflictError(pub String);

/// The outcome of [`resolve`].
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    /// The object to re-apply with force.
    pub object: Value,
    /// Fields left to their other managers, with a value different from ours.
    pub lost: Vec<LostOwnership>,
}

/// Resolves the conflicts `causes` (`(field, message)` from the 409 Status) of applying `local`
/// over `remote`, with the project's `rules`.
///
/// # Errors
/// When a conflicting field cannot be found in the managed fields, the local or the remote
/// object, or a rule does not compile.
pub fn resolve(
    local: &Value,
    remote: &Value,
    causes: &[(String, String)],
    rules: &[ConflictResolutionItem],
) -> Result<Resolution, ConflictError> {
    let managers = managers_by_field(remote)?;
    let actions = rule_actions(local, remote, &managers, &all_rules(local, rules))?;
    let mut given_up = Vec::new();
    let mut lost = Vec::new();
    for (field, message) in causes {
        let entry = managers.get(field).ok_or_else(|| {
            ConflictError(format!(
                "{message}. Could not find matching field for path '{field}'"
            ))
        })?;
        let path = &entry.path;
        let local_steps = steps_in(local, path)
            .ok_or_else(|| ConflictError(format!("{message}. Field '{field}' not found in local object")))?;
        let remote_steps = steps_in(remote, path)
            .ok_or_else(|| ConflictError(format!("{message}. Field '{field}' not found in remote object")))?;
        let action = actions
            .get(&to_json_path(&local_steps))
            .or_else(|| actions.get(&to_json_path(&remote_steps)));
        let ignore = action == Some(&ConflictAction::Ignore);
        let mut overwrite = action == Some(&ConflictAction::ForceApply);
        if !ignore
            && entry
                .managers
                .iter()
                .any(|m| EDITOR_MANAGERS.iter().any(|r| r.is_match(m)))
        {
            overwrite = true;
        }
        if !overwrite {
            let differs = get(local, &local_steps) != get(remote, &remote_steps);
            given_up.push(local_steps);
            if differs && !ignore {
                lost.push(LostOwnership {
                    field: field.clone(),
                    message: message.clone(),
                });
            }
        }
    }
    let mut object = local.clone();
    delete_paths(&mut object, given_up);
    Ok(Resolution { object, lost })
}

/// Managers and the parsed path of every managed field, by the apiserver's path string.
#[derive(Debug, Default)]
struct FieldManagers {
    path: Vec<PathElement>,
    managers: Vec<String>,
}

fn managers_by_field(remote: &Value) -> Result<BTreeMap<String, FieldManagers>, ConflictError> {
    let mut out: BTreeMap<String, FieldManagers> = BTreeMap::new();
    let entries = remote
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for mf in entries {
        let Some(fields) = mf.get("fieldsV1").and_then(Value::as_object) else {
            continue;
        };
        let manager = mf
            .get("manager")
            .and_then(Value::as_str)
            .ok_or_else(|| ConflictError("manager field is missing".to_owned()))?;
        let mut paths = Vec::new();
        collect_paths(fields, &mut Vec::new(), &mut paths)?;
        for path in paths {
            let entry = out.entry(path_string(&path)).or_default();
            entry.path = path;
            entry.managers.push(manager.to_owned());
        }
    }
    Ok(out)
}

/// The member paths of a `fieldsV1` set: leaves (`{}`) and nodes marked with `"."`.
fn collect_paths(
    set: &Map<String, Value>,
    prefix: &mut Vec<PathElement>,
    out: &mut Vec<Vec<PathElement>>,
) -> Result<(), ConflictError> {
    for (key, child) in set {
        if key == "." {
            continue;
        }
        let Some(element) = parse_element(key)? else {
            continue;
        };
        prefix.push(element);
        let child = child
            .as_object()
            .ok_or_else(|| ConflictError("value is not a map".to_owned()))?;
        if child.is_empty() || child.contains_key(".") {
            out.push(prefix.clone());
        }
        collect_paths(child, prefix, out)?;
        prefix.pop();
    }
    Ok(())
}

/// `f:name`, `k:{json}`, `v:json`, `i:n`; unknown prefixes are skipped (`None`).
fn parse_element(key: &str) -> Result<Option<PathElement>, ConflictError> {
    let bad = |e: String| ConflictError(format!("parsing key as path element: {key}: {e}"));
    let Some((kind, rest)) = key.split_once(':') else {
        return Ok(None);
    };
    Ok(Some(match kind {
        "f" => PathElement::Field(rest.to_owned()),
        "k" => {
            let map: Map<String, Value> = serde_json::from_str(rest).map_err(|e| bad(e.to_string()))?;
            // serde_json maps iterate sorted by key, the order the apiserver prints keys in.
            PathElement::Key(map.into_iter().collect())
        }
        "v" => PathElement::Value(serde_json::from_str(rest).map_err(|e| bad(e.to_string()))?),
        "i" => PathElement::Index(
            rest.parse()
                .map_err(|e: std::num::ParseIntError| bad(e.to_string()))?,
        ),
        _ => return Ok(None),
    }))
}

/// The apiserver's string for a path, as in conflict causes: `.a.b[k="v"][=1][0]`.
#[must_use]
pub fn path_string(path: &[PathElement]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            PathElement::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElement::Key(keys) => {
                let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push('[');
                s.push_str(&parts.join(","));
                s.push(']');
            }
            PathElement::Value(v) => {
                let _ = write!(s, "[={v}]");
            }
            PathElement::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// The concrete steps of `path` in `obj`, if every element is found.
fn steps_in(obj: &Value, path: &[PathElement]) -> Option<Vec<Key>> {
    let mut steps = Vec::with_capacity(path.len());
    let mut cur = obj;
    for e in path {
        if let PathElement::Field(f) = e {
            cur = cur.get(f)?;
            steps.push(Key::Name(f.clone()));
            continue;
        }
        let items = cur.as_array()?;
        let (i, item) = items.iter().enumerate().find(|(i, item)| match e {
            PathElement::Key(keys) => keys.iter().all(|(k, v)| item.get(k) == Some(v)),
            PathElement::Value(v) => *item == v,
            PathElement::Index(n) => i == n,
            PathElement::Field(_) => false,
        })?;
        steps.push(Key::Index(i));
        cur = item;
    }
    Some(steps)
}

fn get<'v>(obj: &'v Value, steps: &[Key]) -> Option<&'v Value> {
    steps.iter().try_fold(obj, |cur, s| match s {
        Key::Name(k) => cur.get(k),
        Key::Index(i) => cur.get(i),
    })
}

/// The project's rules followed by the object's annotations: force rules first, so that
/// ignore rules (later) win.
fn all_rules(local: &Value, rules: &[ConflictResolutionItem]) -> Vec<ConflictResolutionItem> {
    let annotations: Vec<(String, String)> = local
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let numbered = |name: &str| -> Vec<String> {
        annotations
            .iter()
            .filter(|(k, _)| is_numbered_annotation(k, name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let flag = |name: &str| crate::annotation_bool(local, name) == Some(true);
    let rule =
        |field_path: Vec<String>, manager: Vec<String>, action: ConflictAction| ConflictResolutionItem {
            field_path: StringOrList(field_path),
            field_path_regex: StringOrList(Vec::new()),
            manager: StringOrList(manager),
            group: None,
            kind: None,
            name: None,
            namespace: None,
            action,
        };
    let mut out = rules.to_vec();
    for (all, manager, field, action) in [
        (
            "kluctl.io/force-apply",
            "kluctl.io/force-apply-manager",
            "kluctl.io/force-apply-field",
            ConflictAction::ForceApply,
        ),
        (
            "kluctl.io/ignore-conflicts",
            "kluctl.io/ignore-conflicts-manager",
            "kluctl.io/ignore-conflicts-field",
            ConflictAction::Ignore,
        ),
    ] {
        if flag(all) {
            out.push(rule(vec!["..".to_owned()], Vec::new(), action));
        }
        for m in numbered(manager) {
            out.push(rule(Vec::new(), vec![m], action));
        }
        for f in numbered(field) {
            out.push(rule(vec![f], Vec::new(), action));
        }
    }
    out
}

/// The action per field (`$.…` form) the rules assign; later rules win.
fn rule_actions(
    local: &Value,
    remote: &Value,
    managers: &BTreeMap<String, FieldManagers>,
    rules: &[ConflictResolutionItem],
) -> Result<BTreeMap<String, ConflictAction>, ConflictError> {
    let mut out = BTreeMap::new();
    let reference = |o: &Value, p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let group = reference(local, "/apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| g.to_owned())
        .unwrap_or_default();
    let kind = reference(local, "/kind");
    let name = reference(local, "/metadata/name");
    let namespace = reference(local, "/metadata/namespace");
    let local_fields = field_path("..")?.locate(local);
    for r in rules {
        let matches =
            |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w.is_empty() || w == have);
        if !(matches(&r.group, &group)
            && matches(&r.kind, &kind)
            && matches(&r.name, &name)
            && matches(&r.namespace, &namespace))
        {
            continue;
        }
        for fp in &r.field_path.0 {
            let path = field_path(fp)?;
            for f in path.locate(local).into_iter().chain(path.locate(remote)) {
                out.insert(to_json_path(&f), r.action);
            }
        }
        for rx in &r.field_path_regex.0 {
            let re =
                Regex::new(rx).map_err(|e| ConflictError(format!("invalid fieldPathRegex '{rx}': {e}")))?;
            for f in &local_fields {
                let p = to_json_path(f);
                if re.is_match(&p) {
                    out.insert(p, r.action);
                }
            }
        }
        for m in &r.manager.0 {
            let re = Regex::new(m).map_err(|e| ConflictError(format!("invalid manager regex '{m}': {e}")))?;
            for entry in managers.values() {
                if entry.managers.iter().any(|name| re.is_match(name))
                    && let Some(steps) = steps_in(remote, &entry.path)
                {
                    out.insert(to_json_path(&steps), r.action);
                }
            }
        }
    }
    Ok(out)
}

/// A `fieldPath` rule; `..` alone (Kluctl's "every field") is every descendant.
fn field_path(fp: &str) -> Result<JsonPath, ConflictError> {
    let text = if fp.trim() == ".." { "$..*" } else { fp };
    JsonPath::parse(text).map_err(|e| ConflictError(format!("invalid fieldPath '{fp}': {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn remote() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "app", "namespace": "ns", "managedFields": [
                {"manager": "kluctl", "operation": "Apply", "fieldsV1": {
                    "f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
                {"manager": "hpa-controller", "operation": "Update", "fieldsV1": {
                    "f:spec": {"f:replicas": {}}}},
                {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {
                    "f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"app\"}": {"f:image": {}}}}}}}}
            ]},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}
        })
    }

    fn local() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
        })
    }

    fn causes() -> Vec<(String, String)> {
        vec![
            (
                ".spec.replicas".to_owned(),
                "conflict with \"hpa-controller\" using apps/v1".to_owned(),
            ),
            (
                ".spec.template.spec.containers[name=\"app\"].image".to_owned(),
                "conflict with \"kubectl-edit\" using apps/v1".to_owned(),
            ),
        ]
    }

    #[test]
    fn fields_of_controllers_are_given_up_and_editor_fields_taken_over() {
        let r = resolve(&local(), &remote(), &causes(), &[]).unwrap();
        // replicas belongs to the HPA: dropped from our object, with the warning.
        assert_eq!(r.object.pointer("/spec/replicas"), None);
        assert_eq!(r.lost.len(), 1);
        assert_eq!(
            r.lost[0].to_string(),
            "conflict with \"hpa-controller\" using apps/v1. Not updating field '.spec.replicas' as we lost field ownership"
        );
        // The image was edited with kubectl: we take it back.
        assert_eq!(
            r.object.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("app:1"))
        );
    }

    #[test]
    fn rules_and_annotations_force_or_silence_conflicts() {
        let force = ConflictResolutionItem {
            field_path: StringOrList(vec!["spec.replicas".to_owned()]),
            field_path_regex: StringOrList(Vec::new()),
            manager: StringOrList(Vec::new()),
            group: None,
            kind: Some("Deployment".to_owned()),
            name: None,
            namespace: None,
            action: ConflictAction::ForceApply,
        };
        let r = resolve(&local(), &remote(), &causes(), &[force]).unwrap();
        assert_eq!(r.object.pointer("/spec/replicas"), Some(&json!(1)));
        assert!(r.lost.is_empty());

        let mut annotated = local();
        annotated["metadata"]["annotations"] = json!({"kluctl.io/ignore-conflicts-manager": "hpa-.*"});
        let r = resolve(&annotated, &remote(), &causes(), &[]).unwrap();
        assert_eq!(
            r.object.pointer("/spec/replicas"),
            None,
            "ignored conflicts still give the field up"
        );
        assert!(r.lost.is_empty(), "but without a warning");

        annotated["metadata"]["annotations"] = json!({"kluctl.io/force-apply": "true"});
        let r = resolve(&annotated, &remote(), &causes(), &[]).unwrap();
        assert_eq!(r.object.pointer("/spec/replicas"), Some(&json!(1)));
    }

    #[test]
    fn unknown_conflict_fields_are_errors_naming_the_field() {
        let e = resolve(
            &local(),
            &remote(),
            &[(".spec.paused".to_owned(), "conflict".to_owned())],
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "conflict. Could not find matching field for path '.spec.paused'"
        );
    }

    #[test]
    fn path_strings_match_the_apiserver_format() {
        let p = vec![
            PathElement::Field("spec".to_owned()),
            PathElement::Key(vec![
                ("name".to_owned(), json!("a")),
                ("port".to_owned(), json!(80)),
            ]),
            PathElement::Value(json!("x")),
            PathElement::Index(2),
        ];
        assert_eq!(path_string(&p), ".spec[name=\"a\",port=80][=\"x\"][2]");
    }
}
