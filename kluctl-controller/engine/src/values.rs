//! Operations on free-form values (args, vars, objects) with Kluctl's semantics: deep merge
//! where maps merge recursively and everything else (lists included) is replaced, and access by
//! dotted path; and the boolean spellings Go accepts, as Kluctl reads annotations and switches.

use serde_json::{Map, Value};

/// Merges `overlay` into `base`: maps merge key by key, recursively; any other value in
/// `overlay` (lists, scalars, `null`) replaces the one in `base`.
///
/// ```
/// use serde_json::json;
/// let mut base = json!({"a": {"b": 1, "c": [1]}, "d": 1});
/// kluctl_engine::values::merge(&mut base, json!({"a": {"c": [2]}, "e": 2}));
/// assert_eq!(base, json!({"a": {"b": 1, "c": [2]}, "d": 1, "e": 2}));
/// ```
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => merge_maps(b, o),
        (b, o) => *b = o,
    }
}

/// [`merge`] for two maps.
pub fn merge_maps(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (k, v) in overlay {
        match base.get_mut(&k) {
            Some(existing @ Value::Object(_)) if v.is_object() => merge(existing, v),
            _ => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets `value` at `path` below `root`, creating (or replacing non-map values by) maps on the way.
///
/// ```
/// use serde_json::json;
/// let mut root = json!({});
/// kluctl_engine::values::set_path(&mut root, &["a", "b"], json!(1));
/// assert_eq!(root, json!({"a": {"b": 1}}));
/// ```
pub fn set_path(root: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *root = value;
        return;
    };
    let mut cur = root;
    for p in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else {
            unreachable!("made an object above")
        };
        cur = m
            .entry((*p).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(m) = cur {
        m.insert((*last).to_owned(), value);
    }
}

/// Go's `strconv.ParseBool`, which Kluctl uses for annotations and environment switches:
/// `None` for anything else (callers treat that as their default).
#[must_use]
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The value at `path` below `root`, if every step is a map holding the key.
#[must_use]
pub fn get_path<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(root, |cur, p| cur.as_object()?.get(*p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_replaces_lists_and_nulls_and_merges_maps() {
        let mut base = json!({"m": {"x": 1, "y": {"z": 1}}, "l": [1, 2], "s": "a"});
        merge(
            &mut base,
            json!({"m": {"y": {"w": 2}}, "l": [3], "s": null, "n": {"k": true}}),
        );
        assert_eq!(
            base,
            json!({"m": {"x": 1, "y": {"z": 1, "w": 2}}, "l": [3], "s": null, "n": {"k": true}})
        );
    }

    #[test]
    fn merge_of_a_map_over_a_scalar_replaces_it() {
        let mut base = json!({"a": 1});
        merge(&mut base, json!({"a": {"b": 2}}));
        assert_eq!(base, json!({"a": {"b": 2}}));
    }

    #[test]
    fn set_and_get_paths() {
        let mut root = json!({"a": 5});
        set_path(&mut root, &["a", "b", "c"], json!("v"));
        assert_eq!(root, json!({"a": {"b": {"c": "v"}}}));
        assert_eq!(get_path(&root, &["a", "b", "c"]), Some(&json!("v")));
        assert_eq!(get_path(&root, &["a", "x"]), None);
        assert_eq!(get_path(&root, &[]), Some(&root));
    }
}
