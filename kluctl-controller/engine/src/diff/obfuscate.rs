//! Secret obfuscation for everything a result shows or stores: Secret objects get every
//! `data` value replaced by base64 of `*****` and every `stringData` value by `*****`, and
//! changes under a Secret's `data`/`stringData` get `*****` values and a unified diff that says
//! the value changed (`-***** (obfuscated)` / `+***** (obfuscated)`) without either value.
//! Runs on a finished [`CommandResult`] unless the user passed `--no-obfuscate`.

use base64::Engine;
use gitops_api::kluctl::v1beta1::ObjectRef;
use serde_json::Value;

use super::DiffError;
use super::changes::unified_diff_of;
use crate::result::{Change, CommandResult};

const MASK: &str = "*****";

/// Obfuscates every Secret in the result: rendered/remote/applied objects and changes.
///
/// # Errors
/// A Secret whose `data` or `stringData` is not a map.
pub fn obfuscate_result(r: &mut CommandResult) -> Result<(), DiffError> {
    for o in &mut r.objects {
        for v in [&mut o.rendered, &mut o.remote, &mut o.applied]
            .into_iter()
            .flatten()
        {
            obfuscate_object(v)?;
        }
        obfuscate_changes(&o.object, &mut o.changes);
    }
    Ok(())
}

pub(crate) fn is_secret_ref(r: &ObjectRef) -> bool {
    r.group.is_empty() && r.kind == "Secret"
}

/// Replaces the values of a Secret's `data` and `stringData` (other kinds are left alone).
///
/// # Errors
/// `data`/`stringData` present, not null and not a map.
pub fn obfuscate_object(o: &mut Value) -> Result<(), DiffError> {
    let is_secret = o.get("kind").and_then(Value::as_str) == Some("Secret")
        && o.get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.contains('/'));
    if !is_secret {
        return Ok(());
    }
    let name = super::object_ref(o).map(|r| r.to_string()).unwrap_or_default();
    let masked_b64 = base64::engine::general_purpose::STANDARD.encode(MASK);
    for (field, mask) in [("data", masked_b64.as_str()), ("stringData", MASK)] {
        match o.get_mut(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => m.values_mut().for_each(|v| *v = Value::String(mask.to_owned())),
            Some(_) => return Err(DiffError::SecretNotMap { object: name, field }),
        }
    }
    Ok(())
}

/// Obfuscates the changes of a Secret under `data`/`stringData`; other changes are untouched.
pub fn obfuscate_changes(r: &ObjectRef, changes: &mut [Change]) {
    if !is_secret_ref(r) {
        return;
    }
    for c in changes {
        let first = c.json_path.split(['.', '[']).next().unwrap_or_default();
        if first != "data" && first != "stringData" {
            continue;
        }
        mask_change(c);
    }
}

/// Masks both values of a change (keeping the shape of maps and lists) and says in its diff
/// that the value changed.
pub(crate) fn mask_change(c: &mut Change) {
    // Distinct placeholders first so the diff still shows "changed", then the neutral mask.
    c.new_value = c.new_value.as_ref().map(|v| replace_values(v, "*****a"));
    c.old_value = c.old_value.as_ref().map(|v| replace_values(v, "*****b"));
    let ud = unified_diff_of(c);
    c.new_value = c.new_value.as_ref().map(|v| replace_values(v, MASK));
    c.old_value = c.old_value.as_ref().map(|v| replace_values(v, MASK));
    c.unified_diff = ud
        .replace("*****a", "***** (obfuscated)")
        .replace("*****b", "***** (obfuscated)");
}

fn replace_values(v: &Value, with: &str) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.keys()
                .map(|k| (k.clone(), Value::String(with.to_owned())))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|_| Value::String(with.to_owned())).collect()),
        _ => Value::String(with.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::changes::diff_objects;
    use crate::diff::output::{OutputOptions, format_text, format_yaml};
    use crate::result::ResultObject;
    use serde_json::json;

    const SECRET_OLD: &str = "c3VwZXJzZWNyZXQtb2xk"; // base64("supersecret-old")
    const SECRET_NEW: &str = "c3VwZXJzZWNyZXQtbmV3";
    const PLAIN: &str = "plain-secret-value";

    fn secret(data: &str, extra_key: bool) -> Value {
        let mut d = json!({"pw": data});
        if extra_key {
            d["added"] = json!(SECRET_NEW);
        }
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
               "data": d, "stringData": {"plain": PLAIN}})
    }

    #[test]
    fn no_secret_value_appears_in_any_output() {
        let old = secret(SECRET_OLD, false);
        let new = secret(SECRET_NEW, true);
        let mut new2 = new.clone();
        new2["stringData"]["plain"] = json!("other-plain-secret");
        let changes = diff_objects(&old, &new2);
        assert!(!changes.is_empty());
        let r = ObjectRef {
            version: "v1".into(),
            kind: "Secret".into(),
            name: "s".into(),
            namespace: "n".into(),
            ..Default::default()
        };
        let mut result = CommandResult::default();
        result.objects.push(ResultObject {
            object: r,
            changes,
            rendered: Some(new2.clone()),
            remote: Some(old),
            applied: Some(new2),
            ..ResultObject::default()
        });
        obfuscate_result(&mut result).unwrap();
        let text = format_text(&result, &OutputOptions::default());
        let yaml = format_yaml(&result);
        let json = serde_json::to_string(&result).unwrap();
        let compact = serde_json::to_string(&result.to_compacted()).unwrap();
        for out in [&text, &yaml, &json, &compact] {
            for secret in [SECRET_OLD, SECRET_NEW, PLAIN, "other-plain-secret", "supersecret"] {
                assert!(!out.contains(secret), "{secret} leaked into:\n{out}");
            }
        }
        assert!(
            text.contains("-***** (obfuscated)") && text.contains("+***** (obfuscated)"),
            "{text}"
        );
        let c = &result.objects[0].changes;
        let pw = c.iter().find(|c| c.json_path == "data.pw").unwrap();
        assert_eq!(pw.unified_diff, "-***** (obfuscated)\n+***** (obfuscated)");
        assert_eq!(pw.old_value, Some(json!("*****")));
        let added = c.iter().find(|c| c.json_path == "data.added").unwrap();
        assert_eq!(added.unified_diff, "+***** (obfuscated)");
        assert_eq!(
            result.objects[0].rendered.as_ref().unwrap()["data"]["pw"],
            json!("KioqKio=")
        );
    }

    #[test]
    fn whole_data_maps_are_masked_key_by_key() {
        let r = ObjectRef {
            version: "v1".into(),
            kind: "Secret".into(),
            name: "s".into(),
            ..Default::default()
        };
        let mut c = diff_objects(
            &json!({"kind": "Secret"}),
            &json!({"kind": "Secret", "data": {"a": SECRET_NEW, "b": SECRET_OLD}}),
        );
        obfuscate_changes(&r, &mut c);
        assert_eq!(c[0].new_value, Some(json!({"a": "*****", "b": "*****"})));
        assert_eq!(
            c[0].unified_diff,
            "+a: '***** (obfuscated)'\n+b: '***** (obfuscated)'"
        );
    }

    #[test]
    fn other_kinds_are_not_touched_and_bad_data_is_an_error() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "visible"}});
        obfuscate_object(&mut cm).unwrap();
        assert_eq!(cm["data"]["a"], json!("visible"));
        let mut bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": "x"});
        let e = obfuscate_object(&mut bad).unwrap_err().to_string();
        assert!(e.contains("Secret/s") && e.contains("data"), "{e}");
    }
}
