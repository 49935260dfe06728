//! Normalisation before a diff, as Kluctl does it: both the live object and the (dry-run)
//! applied object pass through [`normalize_object`] so that server-managed noise (managed fields,
//! resource versions, status, ...) and fields the user chose to ignore never show up as changes.
//!
//! ```text
//! object ─► integral floats to ints ─► metadata noise out ─► controller-uid labels, status out
//!        ─► per kind (env lists keyed by name; empty Secret/ConfigMap data; SA token secrets)
//!        ─► kluctl.io/ignore-diff?  ─► {}            (the object never differs)
//!        ─► ignoreForDiff rules + kluctl.io/ignore-diff-field[-regex][-N] annotations
//! ```
//!
//! Ignore rules come from `deployment.yaml` (`ignoreForDiff`, every parent project's rules
//! first) plus [`IgnoreOptions`] (the CLI's `--ignore-*` switches), see [`ignore_rules`].

use regex::Regex;
use serde_json::{Map, Value};

use super::DiffError;
use super::jsonpath::{JsonPath, Key, delete_paths, to_json_path};
use crate::project::config::{IgnoreForDiffItem, StringOrList};

/// The CLI's `--ignore-tags`, `--ignore-labels`, `--ignore-annotations` and
/// `--ignore-kluctl-metadata` switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgnoreOptions {
    /// Ignore `kluctl.io/tag-*` labels.
    pub ignore_tags: bool,
    /// Ignore all labels.
    pub ignore_labels: bool,
    /// Ignore all annotations.
    pub ignore_annotations: bool,
    /// Ignore tag labels, the discriminator label and the deployment-item-dir annotation.
    pub ignore_kluctl_metadata: bool,
}

/// All ignore rules of one deployment item: the project rules (root project first, as the
/// caller collects them from the item's parents) followed by the rules of the CLI switches.
pub fn ignore_rules(project_rules: &[IgnoreForDiffItem], opts: IgnoreOptions) -> Vec<IgnoreForDiffItem> {
    let regex = |r: &str| IgnoreForDiffItem {
        field_path_regex: StringOrList(vec![r.to_owned()]),
        ..IgnoreForDiffItem::default()
    };
    let path = |p: &str| IgnoreForDiffItem {
        field_path: StringOrList(vec![p.to_owned()]),
        ..IgnoreForDiffItem::default()
    };
    let mut ret = project_rules.to_vec();
    if opts.ignore_tags {
        ret.push(regex(r#"metadata\.labels\["kluctl\.io/tag-.*"\]"#));
    }
    if opts.ignore_labels {
        ret.push(path("metadata.labels.*"));
    }
    if opts.ignore_annotations {
        ret.push(path("metadata.annotations.*"));
    }
    if opts.ignore_kluctl_metadata {
        ret.push(regex(r#"metadata\.labels\["kluctl\.io/tag-.*"\]"#));
        ret.push(regex(r#"metadata\.labels\["kluctl\.io/discriminator"\]"#));
        ret.push(regex(
            r#"metadata\.annotations\["kluctl\.io/deployment-item-dir"\]"#,
        ));
    }
    ret
}

/// Normalises `object` for diffing.
///
/// `local` is the rendered object: its `kluctl.io/ignore-diff*` annotations apply (to both
/// sides of a diff, so pass the same `local` for both).
///
/// # Errors
/// An ignore rule (or annotation) with an invalid JSON path or regular expression.
pub fn normalize_object(
    object: &Value,
    rules: &[IgnoreForDiffItem],
    local: &Value,
) -> Result<Value, DiffError> {
    let mut o = object.clone();
    normalize_floats(&mut o);
    let Value::Object(map) = &mut o else { return Ok(o) };
    normalize_metadata(map);
    normalize_misc(map);

    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // Kluctl's switch lists the lowercase "job", so Jobs keep their env lists as lists; we
    // keep that so change paths stay identical to Kluctl's.
    match kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" | "job" => normalize_containers(map),
        "Secret" | "ConfigMap"
            if map
                .get("data")
                .is_some_and(|d| d.is_null() || d.as_object().is_some_and(Map::is_empty)) =>
        {
            map.remove("data");
        }
        "ServiceAccount" => normalize_service_account(map),
        _ => {}
    }

    if crate::annotation_bool(local, "kluctl.io/ignore-diff") == Some(true) {
        return Ok(Value::Object(Map::new()));
    }

    // The object's own rules, after the given ones (the given ones are not copied).
    let mut extra: Vec<IgnoreForDiffItem> = Vec::new();
    if let Some(a) = local.pointer("/metadata/annotations").and_then(Value::as_object) {
        for (k, v) in a {
            let Some(v) = v.as_str() else { continue };
            if is_numbered_annotation(k, "kluctl.io/ignore-diff-field") {
                extra.push(IgnoreForDiffItem {
                    field_path: StringOrList(vec![v.to_owned()]),
                    ..Default::default()
                });
            } else if is_numbered_annotation(k, "kluctl.io/ignore-diff-field-regex") {
                extra.push(IgnoreForDiffItem {
                    field_path_regex: StringOrList(vec![v.to_owned()]),
                    ..Default::default()
                });
            }
        }
    }

    let object_ref = super::object_ref(object)
        .map(|r| r.to_string())
        .unwrap_or_default();
    let group = api_group(object);
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // An empty object value matches any filter, as in Kluctl (core objects match every group).
    let matches = |v: &str, m: &Option<String>| v.is_empty() || m.as_deref().is_none_or(|m| m == v);
    for rule in rules.iter().chain(&extra) {
        if !(matches(&group, &rule.group)
            && matches(&kind, &rule.kind)
            && matches(ns, &rule.namespace)
            && matches(name, &rule.name))
        {
            continue;
        }
        for p in &rule.field_path.0 {
            let jp = JsonPath::parse(p).map_err(|reason| DiffError::InvalidFieldPath {
                object: object_ref.clone(),
                path: p.clone(),
                reason,
            })?;
            jp.delete(&mut o);
        }
        for r in &rule.field_path_regex.0 {
            let re = Regex::new(r).map_err(|e| DiffError::InvalidFieldPathRegex {
                object: object_ref.clone(),
                regex: r.clone(),
                source: Box::new(e),
            })?;
            remove_fields_by_path_regex(&mut o, &re);
        }
    }
    Ok(o)
}

/// `base`, `base-` or `base-<digits>`, as Kluctl's `^base(-\d*)?$`.
pub(crate) fn is_numbered_annotation(key: &str, base: &str) -> bool {
    key.strip_prefix(base).is_some_and(|rest| {
        rest.is_empty()
            || rest
                .strip_prefix('-')
                .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()))
    })
}

/// The API group of an object (`apps` of `apps/v1`, empty for `v1`).
pub fn api_group(o: &Value) -> String {
    let av = o.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    av.rsplit_once('/').map(|(g, _)| g.to_owned()).unwrap_or_default()
}

/// Removes every leaf whose canonical path text matches `re` (unanchored, as Go's MatchString).
fn remove_fields_by_path_regex(o: &mut Value, re: &Regex) {
    fn walk(v: &Value, path: &mut Vec<Key>, re: &Regex, out: &mut Vec<Vec<Key>>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    path.push(Key::Name(k.clone()));
                    walk(x, path, re, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(Key::Index(i));
                    walk(x, path, re, out);
                    path.pop();
                }
            }
            _ => {
                if re.is_match(&to_json_path(path)) {
                    out.push(path.clone());
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(o, &mut Vec::new(), re, &mut found);
    delete_paths(o, found);
}

/// Floats with an integral value become integers (JSON decoders differ in which they produce).
fn normalize_floats(v: &mut Value) {
    match v {
        Value::Object(m) => m.values_mut().for_each(normalize_floats),
        Value::Array(a) => a.iter_mut().for_each(normalize_floats),
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let i = f as i64;
                #[allow(clippy::cast_precision_loss, clippy::float_cmp)]
                if f.is_finite() && (i as f64) == f {
                    *v = Value::from(i);
                }
            }
        }
        _ => {}
    }
}

fn normalize_metadata(o: &mut Map<String, Value>) {
    let meta = o.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    meta.remove("managedFields");
    if let Some(Value::Object(a)) = meta.get_mut("annotations") {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    for k in [
        "creationTimestamp",
        "generation",
        "resourceVersion",
        "selfLink",
        "uid",
    ] {
        meta.remove(k);
    }
    for k in ["labels", "annotations"] {
        meta.entry(k).or_insert_with(|| Value::Object(Map::new()));
    }
}

fn remove_at(o: &mut Map<String, Value>, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = o;
    for p in parents {
        match cur.get_mut(*p) {
            Some(Value::Object(m)) => cur = m,
            _ => return,
        }
    }
    cur.remove(*last);
}

fn normalize_misc(o: &mut Map<String, Value>) {
    for label in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        remove_at(o, &["spec", "template", "metadata", "labels", label]);
        remove_at(o, &["spec", "selector", "matchLabels", label]);
    }
    o.remove("status");
}

fn normalize_containers(o: &mut Map<String, Value>) {
    let containers = o
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(|s| s.get_mut("containers"))
        .and_then(Value::as_array_mut);
    for c in containers.into_iter().flatten() {
        if let Value::Object(c) = c {
            normalize_env(c);
        }
    }
}

/// `env` becomes a map keyed by name (left alone if an entry has no name); `envFrom` a map keyed
/// `configMapRef/<name>` / `secretRef/<name>`, with unnamed entries in a list under `unknown`.
fn normalize_env(c: &mut Map<String, Value>) {
    if let Some(Value::Array(env)) = c.get("env")
        && !env.is_empty()
    {
        let mut m = Map::new();
        let mut ok = true;
        for e in env {
            match e.get("name").and_then(Value::as_str) {
                Some(n) => {
                    m.insert(n.to_owned(), e.clone());
                }
                None => ok = false,
            }
        }
        if ok {
            c.insert("env".into(), Value::Object(m));
        }
    }
    if let Some(Value::Array(env_from)) = c.get("envFrom")
        && !env_from.is_empty()
    {
        let mut m = Map::new();
        for e in env_from {
            let mut key = None;
            for t in ["configMapRef", "secretRef"] {
                if let Some(n) = e.get(t).and_then(|r| r.get("name")).and_then(Value::as_str) {
                    key = Some(format!("{t}/{n}"));
                }
            }
            if let Some(k) = key {
                m.insert(k, e.clone());
            } else if let Value::Array(u) = m.entry("unknown").or_insert_with(|| Value::Array(Vec::new())) {
                u.push(e.clone());
            }
        }
        c.insert("envFrom".into(), Value::Object(m));
    }
}

/// Drops the auto-created token secrets (`<sa-name>-...`) from a ServiceAccount's `secrets`.
fn normalize_service_account(o: &mut Map<String, Value>) {
    let Some(name) = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
    else {
        return;
    };
    let prefix = format!("{name}-");
    if let Some(Value::Array(secrets)) = o.get_mut("secrets") {
        secrets.retain(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.starts_with(&prefix))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn norm(o: &Value) -> Value {
        normalize_object(o, &[], o).unwrap()
    }

    #[test]
    fn metadata_noise_and_status_are_removed_and_empty_maps_added() {
        let o = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s",
            "managedFields": [{}], "creationTimestamp": "t", "generation": 2, "resourceVersion": "1",
            "selfLink": "/x", "uid": "u",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"}},
            "status": {"x": 1}});
        assert_eq!(
            norm(&o),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {}, "annotations": {"keep": "1"}}})
        );
    }

    #[test]
    fn controller_uid_labels_are_removed() {
        let o = json!({"kind": "Job", "metadata": {}, "spec": {
            "selector": {"matchLabels": {"controller-uid": "1", "batch.kubernetes.io/controller-uid": "1", "a": "b"}},
            "template": {"metadata": {"labels": {"controller-uid": "1", "batch.kubernetes.io/controller-uid": "1"}}}}});
        let n = norm(&o);
        assert_eq!(n["spec"]["selector"]["matchLabels"], json!({"a": "b"}));
        assert_eq!(n["spec"]["template"]["metadata"]["labels"], json!({}));
    }

    #[test]
    fn integral_floats_become_integers() {
        let o = json!({"kind": "X", "metadata": {}, "spec": {"a": 3.0, "b": 1.5, "c": [2.0]}});
        let n = norm(&o);
        assert!(n["spec"]["a"].is_i64());
        assert_eq!(n["spec"]["b"], json!(1.5));
        assert!(n["spec"]["c"][0].is_i64());
    }

    #[test]
    fn deployment_env_and_env_from_are_keyed() {
        let o = json!({"kind": "Deployment", "metadata": {}, "spec": {"template": {"spec": {"containers": [{
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s"}}, {"prefix": "x"}]}]}}}});
        let c = &norm(&o)["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!({"A": {"name": "A", "value": "1"}, "B": {"name": "B", "value": "2"}})
        );
        assert_eq!(
            c["envFrom"],
            json!({"configMapRef/cm": {"configMapRef": {"name": "cm"}}, "secretRef/s": {"secretRef": {"name": "s"}},
                   "unknown": [{"prefix": "x"}]})
        );
        // Kluctl matches the lowercase "job" only, so a Job keeps its env list.
        let mut job = o.clone();
        job["kind"] = json!("Job");
        assert!(norm(&job)["spec"]["template"]["spec"]["containers"][0]["env"].is_array());
    }

    #[test]
    fn empty_secret_data_and_sa_token_secrets_are_dropped() {
        let s = json!({"kind": "Secret", "metadata": {}, "data": {}});
        assert!(norm(&s).get("data").is_none());
        let sa = json!({"kind": "ServiceAccount", "metadata": {"name": "sa"},
            "secrets": [{"name": "sa-token-x"}, {"name": "other"}]});
        assert_eq!(norm(&sa)["secrets"], json!([{"name": "other"}]));
    }

    #[test]
    fn ignore_diff_annotation_empties_the_object() {
        let local =
            json!({"kind": "ConfigMap", "metadata": {"annotations": {"kluctl.io/ignore-diff": "true"}}});
        let remote = json!({"kind": "ConfigMap", "metadata": {}, "data": {"a": "1"}});
        assert_eq!(normalize_object(&remote, &[], &local).unwrap(), json!({}));
    }

    #[test]
    fn ignore_diff_field_annotations_remove_paths_and_regex_matches() {
        let local = json!({"kind": "ConfigMap", "metadata": {"annotations": {
            "kluctl.io/ignore-diff-field": "data.a",
            "kluctl.io/ignore-diff-field-2": "data['b.c']",
            "kluctl.io/ignore-diff-field-regex-1": "^data\\.x_"}}});
        let remote = json!({"kind": "ConfigMap", "metadata": {},
            "data": {"a": "1", "b.c": "2", "x_1": "3", "keep": "4"}});
        assert_eq!(
            normalize_object(&remote, &[], &local).unwrap()["data"],
            json!({"keep": "4"})
        );
    }

    #[test]
    fn ignore_for_diff_rules_filter_by_kind_name_namespace_and_group() {
        let rule = |kind: &str, name: Option<&str>| IgnoreForDiffItem {
            field_path: StringOrList(vec!["spec.replicas".into()]),
            kind: Some(kind.into()),
            name: name.map(Into::into),
            ..Default::default()
        };
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}, "spec": {"replicas": 1}});
        assert!(
            normalize_object(&d, &[rule("Deployment", None)], &d).unwrap()["spec"]
                .get("replicas")
                .is_none()
        );
        assert!(
            normalize_object(&d, &[rule("Deployment", Some("other"))], &d).unwrap()["spec"]
                .get("replicas")
                .is_some()
        );
        assert!(
            normalize_object(&d, &[rule("StatefulSet", None)], &d).unwrap()["spec"]
                .get("replicas")
                .is_some()
        );
        let group = IgnoreForDiffItem {
            group: Some("batch".into()),
            ..rule("Deployment", None)
        };
        assert!(
            normalize_object(&d, &[group], &d).unwrap()["spec"]
                .get("replicas")
                .is_some()
        );
    }

    #[test]
    fn cli_switches_add_kluctls_rules() {
        let o = json!({"kind": "ConfigMap", "metadata": {
            "labels": {"kluctl.io/tag-0": "t", "kluctl.io/discriminator": "d", "app": "a"},
            "annotations": {"kluctl.io/deployment-item-dir": "x", "other": "y"}}});
        let with = |opts| normalize_object(&o, &ignore_rules(&[], opts), &o).unwrap()["metadata"].clone();
        let m = with(IgnoreOptions {
            ignore_tags: true,
            ..Default::default()
        });
        assert_eq!(m["labels"], json!({"kluctl.io/discriminator": "d", "app": "a"}));
        let m = with(IgnoreOptions {
            ignore_kluctl_metadata: true,
            ..Default::default()
        });
        assert_eq!(m["labels"], json!({"app": "a"}));
        assert_eq!(m["annotations"], json!({"other": "y"}));
        let m = with(IgnoreOptions {
            ignore_labels: true,
            ignore_annotations: true,
            ..Default::default()
        });
        assert_eq!(
            (m["labels"].clone(), m["annotations"].clone()),
            (json!({}), json!({}))
        );
    }

    #[test]
    fn invalid_rules_name_the_object_and_the_rule() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}});
        let bad = IgnoreForDiffItem {
            field_path_regex: StringOrList(vec!["(".into()]),
            ..Default::default()
        };
        let e = normalize_object(&o, &[bad], &o).unwrap_err().to_string();
        assert!(e.contains("n/ConfigMap/c") && e.contains("\"(\""), "{e}");
        let bad = IgnoreForDiffItem {
            field_path: StringOrList(vec!["a[".into()]),
            ..Default::default()
        };
        assert!(normalize_object(&o, &[bad], &o).is_err());
    }
}
