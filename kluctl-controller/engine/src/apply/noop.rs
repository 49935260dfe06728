//! Would a server-side apply change anything? Deciding that without a request is what makes an
//! unchanged redeploy cost about one list per kind instead of one PATCH per object.
//!
//! A server-side apply of an object by field manager `kluctl` is a no-op when both hold:
//! - every field of the object already has the applied value on the live object, and
//! - the set of fields the object sets equals the set `kluctl` owns (its `Apply` entry in
//!   `metadata.managedFields`), so applying would neither take nor release ownership.
//!
//! The owned set is the apiserver's `FieldsV1` tree (`f:<field>`, `k:{<list keys>}`,
//! `v:<value>`). It also tells how the server treats each list and map (associative list by
//! keys, set, atomic), which this check follows instead of needing the OpenAPI schema.
//!
//! The check is conservative: anything it does not understand (another API version, an unknown
//! path element, numbers the server reformatted, defaulted values inside atomic fields) answers
//! "not a no-op", and the object is applied as usual. A wrong "no-op" would leave drift in
//! place, so every branch errs towards applying.

use serde_json::{Map, Value};

/// The field manager whose ownership is compared.
const MANAGER: &str = "kluctl";

/// Whether applying `local` with field manager `kluctl` to `live` would change nothing (see
/// the module doc). `false` whenever in doubt.
///
/// ```
/// use kluctl_engine::apply::noop::apply_is_noop;
/// use serde_json::json;
///
/// let local = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
/// let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "7",
///     "managedFields": [{"manager": "kluctl", "operation": "Apply", "apiVersion": "v1",
///         "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}}]},
///     "data": {"k": "v"}});
/// assert!(apply_is_noop(&local, &live));
/// live["data"]["k"] = json!("changed by someone");
/// assert!(!apply_is_noop(&local, &live));
/// ```
#[must_use]
pub fn apply_is_noop(local: &Value, live: &Value) -> bool {
    let Some(api_version) = local.get("apiVersion").and_then(Value::as_str) else {
        return false;
    };
    if live.get("apiVersion").and_then(Value::as_str) != Some(api_version)
        || live.get("kind") != local.get("kind")
    {
        return false;
    }
    let Some(fields) = owned_fields(live, api_version) else {
        return false;
    };
    let (Some(local), Some(live)) = (local.as_object(), live.as_object()) else {
        return false;
    };
    // apiVersion and kind are not tracked; name and namespace identify the object and are
    // not tracked either.
    let mut local = local.clone();
    local.remove("apiVersion");
    local.remove("kind");
    if let Some(Value::Object(meta)) = local.get_mut("metadata") {
        meta.remove("name");
        meta.remove("namespace");
        if meta.is_empty() {
            local.remove("metadata");
        }
    }
    map_matches(&local, live, fields)
}

/// The `FieldsV1` tree of the single `kluctl` `Apply` entry at `api_version` (no subresource).
fn owned_fields<'a>(live: &'a Value, api_version: &str) -> Option<&'a Map<String, Value>> {
    let entries = live.pointer("/metadata/managedFields")?.as_array()?;
    let mut ours = entries.iter().filter(|e| {
        e.get("manager").and_then(Value::as_str) == Some(MANAGER)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
    });
    let entry = ours.next()?;
    if ours.next().is_some()
        || entry.get("apiVersion").and_then(Value::as_str) != Some(api_version)
        || entry.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1")
        || entry
            .get("subresource")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    {
        return None;
    }
    entry.get("fieldsV1")?.as_object()
}

/// The children of a fields node, without the `.` marker (the node itself is owned).
fn children(fields: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    fields.iter().filter(|(k, _)| k.as_str() != ".")
}

fn map_matches(local: &Map<String, Value>, live: &Map<String, Value>, fields: &Map<String, Value>) -> bool {
    // Every owned field is still set locally (else applying releases it).
    for (key, _) in children(fields) {
        let Some(name) = key.strip_prefix("f:") else {
            return false;
        };
        if !local.contains_key(name) {
            return false;
        }
    }
    local.iter().all(|(name, value)| {
        let Some(live_value) = live.get(name) else {
            return false;
        };
        match fields.get(&format!("f:{name}")).and_then(Value::as_object) {
            Some(node) => value_matches(value, live_value, node),
            // Empty maps are not tracked as fields; the live object must have one too.
            None => value.as_object().is_some_and(Map::is_empty) && live_value.is_object(),
        }
    })
}

fn value_matches(local: &Value, live: &Value, fields: &Map<String, Value>) -> bool {
    if children(fields).next().is_none() {
        // A leaf, or an atomic map/list: replaced as a whole.
        return same(local, live);
    }
    match (local, live) {
        (Value::Object(l), Value::Object(r)) => map_matches(l, r, fields),
        (Value::Array(l), Value::Array(r)) => list_matches(l, r, fields),
        _ => false,
    }
}

fn list_matches(local: &[Value], live: &[Value], fields: &Map<String, Value>) -> bool {
    let entries: Vec<(&String, &Value)> = children(fields).collect();
    if entries.len() != local.len() {
        return false;
    }
    let mut used = vec![false; entries.len()];
    for element in local {
        let Some(index) = entries
            .iter()
            .enumerate()
            .position(|(i, (key, _))| !used[i] && element_has_key(element, key))
        else {
            return false;
        };
        used[index] = true;
        let (key, node) = entries[index];
        if let Some(set_value) = key.strip_prefix("v:") {
            // A set element: the value is the key; the live list must hold it too.
            let Ok(value) = serde_json::from_str::<Value>(set_value) else {
                return false;
            };
            if !live.iter().any(|l| same(l, &value)) {
                return false;
            }
            continue;
        }
        let Some(keys) = parse_keys(key) else {
            return false;
        };
        let Some(live_element) = live
            .iter()
            .find(|l| keys.iter().all(|(k, v)| l.get(k).is_some_and(|x| same(x, v))))
        else {
            return false;
        };
        let Some(node) = node.as_object() else {
            return false;
        };
        if !value_matches(element, live_element, node) {
            return false;
        }
    }
    true
}

/// `k:{"name":"c"}` → `[("name", "c")]`.
fn parse_keys(key: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(key.strip_prefix("k:")?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Whether a local list element is the one a fields entry names. Key fields the local element
/// leaves out may have been defaulted by the server (`protocol: TCP` of a port).
fn element_has_key(element: &Value, key: &str) -> bool {
    if let Some(set_value) = key.strip_prefix("v:") {
        return serde_json::from_str::<Value>(set_value).is_ok_and(|v| same(element, &v));
    }
    let Some(keys) = parse_keys(key) else {
        return false;
    };
    let Some(element) = element.as_object() else {
        return false;
    };
    keys.iter()
        .all(|(k, v)| element.get(k).is_none_or(|x| same(x, v)))
        && keys.keys().any(|k| element.contains_key(k))
}

/// Deep equality with numbers compared by value (`2` and `2.0` are the same).
fn same(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => {
            // Exact float equality on purpose: only the same value written differently counts.
            #[allow(clippy::float_cmp)]
            let equal = l == r || matches!((l.as_f64(), r.as_f64()), (Some(p), Some(q)) if p == q);
            equal
        }
        (Value::Array(l), Value::Array(r)) => l.len() == r.len() && l.iter().zip(r).all(|(p, q)| same(p, q)),
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len() && l.iter().all(|(k, v)| r.get(k).is_some_and(|w| same(v, w)))
        }
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Deployment as the local apiserver returned it after `kubectl apply --server-side
    /// --field-manager kluctl` (managedFields copied from the real answer; defaults added).
    fn live() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "probe", "namespace": "default", "labels": {"a": "b"}, "resourceVersion": "9",
                "managedFields": [
                    {"apiVersion": "apps/v1", "fieldsType": "FieldsV1", "manager": "kluctl", "operation": "Apply",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}},
                        "f:spec": {"f:replicas": {}, "f:selector": {},
                            "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {},
                                    "f:env": {"k:{\"name\":\"X\"}": {".": {}, "f:name": {}, "f:value": {}}},
                                    "f:image": {}, "f:name": {},
                                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}},
                                    "f:volumes": {"k:{\"name\":\"v\"}": {".": {}, "f:name": {}}}}}}}},
                    {"apiVersion": "apps/v1", "fieldsType": "FieldsV1", "manager": "kube-controller-manager",
                     "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "p"}}, "revisionHistoryLimit": 10,
                "template": {"metadata": {"labels": {"app": "p"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always",
                        "env": [{"name": "X", "value": "1"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                        "volumes": [{"name": "v", "emptyDir": {}}], "dnsPolicy": "ClusterFirst"}}},
            "status": {"observedGeneration": 1}})
    }

    fn local() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "probe", "namespace": "default", "labels": {"a": "b"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "p"}},
                "template": {"metadata": {"labels": {"app": "p"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx",
                        "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80}]}],
                        "volumes": [{"name": "v", "emptyDir": {}}]}}}})
    }

    #[test]
    fn the_applied_object_again_is_a_noop_despite_defaults_and_status() {
        assert!(apply_is_noop(&local(), &live()));
        let mut l = local();
        l["spec"]["replicas"] = json!(0.0);
        assert!(apply_is_noop(&l, &live()), "0 and 0.0 are the same number");
    }

    #[test]
    fn any_change_of_value_or_field_set_is_not_a_noop() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Change)> = vec![
            ("changed value", Box::new(|l| l["spec"]["replicas"] = json!(1))),
            (
                "changed list element",
                Box::new(|l| l["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2")),
            ),
            (
                "added field",
                Box::new(|l| l["metadata"]["labels"]["new"] = json!("x")),
            ),
            (
                "removed field",
                Box::new(|l| {
                    l["metadata"]["labels"].as_object_mut().unwrap().remove("a");
                }),
            ),
            (
                "added list element",
                Box::new(|l| {
                    l["spec"]["template"]["spec"]["containers"][0]["env"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"name": "Y", "value": "2"}));
                }),
            ),
            (
                "atomic map changed",
                Box::new(|l| l["spec"]["selector"]["matchLabels"]["x"] = json!("y")),
            ),
            (
                "other apiVersion",
                Box::new(|l| l["apiVersion"] = json!("apps/v1beta2")),
            ),
            ("status in local", Box::new(|l| l["status"] = json!({"x": 1}))),
            ("null value", Box::new(|l| l["spec"]["replicas"] = Value::Null)),
        ];
        for (what, change) in cases {
            let mut l = local();
            change(&mut l);
            assert!(!apply_is_noop(&l, &live()), "{what}");
        }
    }

    #[test]
    fn changes_by_others_or_missing_ownership_are_not_a_noop() {
        let mut r = live();
        r["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("edited");
        assert!(!apply_is_noop(&local(), &r), "live value edited");
        let mut r = live();
        r["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
        assert!(!apply_is_noop(&local(), &r), "no kluctl entry");
        let mut r = live();
        r["metadata"]["managedFields"][0]["operation"] = json!("Update");
        assert!(
            !apply_is_noop(&local(), &r),
            "kluctl Update entry is not an apply"
        );
        let mut r = live();
        // Losing the only owned child drops the parent from the set as well.
        r["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]
            .as_object_mut()
            .unwrap()
            .remove("f:labels");
        assert!(
            !apply_is_noop(&local(), &r),
            "a field we set is owned by someone else"
        );
        let mut r = live();
        r["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:paused"] = json!({});
        r["spec"]["paused"] = json!(false);
        assert!(!apply_is_noop(&local(), &r), "we own a field we no longer set");
        let mut r = live();
        r["spec"]["template"]["spec"]["volumes"][0] = json!({"name": "v", "hostPath": {"path": "/"}});
        assert!(!apply_is_noop(&local(), &r), "empty map gone from live");
    }

    #[test]
    fn set_lists_compare_by_value() {
        let local = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "n"}, "spec": {"finalizers": ["a", "b"]}});
        let live = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "n", "managedFields": [
            {"manager": "kluctl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}}}]},
            "spec": {"finalizers": ["b", "a", "c"]}});
        assert!(apply_is_noop(&local, &live));
        let mut l = local.clone();
        l["spec"]["finalizers"] = json!(["a", "d"]);
        assert!(!apply_is_noop(&l, &live));
    }
}
