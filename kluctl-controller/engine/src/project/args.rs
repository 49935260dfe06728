//! Arguments of a project render: the `-a name=value` / `--args-from-file` parsing of the CLI
//! (and the controller's `spec.args`), declared defaults, required arguments and the merge order.
//!
//! ```text
//! final args = defaults(.kluctl.yaml args[]) ⊕ target.args ⊕ external (-a …, --args-from-file …)
//!              (deep merge, later wins; maps merge, everything else is replaced)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::ArgDefinition;
use crate::values;

/// Why arguments could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// `-a` without `name=value`.
    #[error("invalid --arg argument. Must be --arg=some_var_name=value, not '{0}'")]
    Syntax(String),
    /// An `@file` value or `--args-from-file` file could not be read.
    #[error("failed to read argument file '{path}'")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value is not valid YAML.
    #[error("failed to parse the value of argument '{name}' as YAML: {message}")]
    Value {
        /// The argument (or file) whose value is broken.
        name: String,
        /// What the parser said.
        message: String,
    },
    /// `--args-from-file` does not hold a YAML map.
    #[error("argument file '{0}' must contain a YAML map")]
    NotAMap(PathBuf),
    /// A declared argument without default is not set.
    #[error("required argument {0} not set")]
    Required(String),
}

/// Parses `name=value` strings (names of letters, digits, `_`, `.`, `/`, `-`); a later
/// duplicate replaces an earlier one.
///
/// # Errors
/// [`ArgsError::Syntax`] for a string without `=` or with other characters in the name.
pub fn parse_cli_args<S: AsRef<str>>(args: &[S]) -> Result<BTreeMap<String, String>, ArgsError> {
    let mut out = BTreeMap::new();
    for arg in args {
        let arg = arg.as_ref();
        let valid = arg.split_once('=').is_some_and(|(name, _)| {
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        });
        let Some((name, value)) = arg.split_once('=').filter(|_| valid) else {
            return Err(ArgsError::Syntax(arg.to_owned()));
        };
        out.insert(name.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// Turns parsed `name=value` pairs into an args tree: dotted names nest, values are YAML,
/// `@path` loads the file at `path` (relative to `base_dir`) when `allow_files`, and a leading
/// `\@` stands for a literal `@`.
///
/// # Errors
/// [`ArgsError::Read`] for an unreadable `@file`, [`ArgsError::Value`] for invalid YAML.
pub fn args_to_values(
    args: &BTreeMap<String, String>,
    allow_files: bool,
    base_dir: &Path,
) -> Result<Value, ArgsError> {
    let mut out = Value::Object(serde_json::Map::new());
    for (name, raw) in args {
        let value = if let Some(rest) = raw.strip_prefix("\\@") {
            // Text starting with `@` is never valid YAML, so the escaped value is a string.
            Value::String(format!("@{rest}"))
        } else {
            let text = if let Some(path) = raw.strip_prefix('@').filter(|_| allow_files) {
                let path = base_dir.join(path);
                fs_err::read_to_string(&path).map_err(|source| ArgsError::Read {
                    path: path.clone(),
                    source,
                })?
            } else {
                raw.clone()
            };
            parse_yaml_value(&text).map_err(|message| ArgsError::Value {
                name: name.clone(),
                message,
            })?
        };
        let path: Vec<&str> = name.split('.').collect();
        values::set_path(&mut out, &path, value);
    }
    Ok(out)
}

/// Loads `--args-from-file` files (YAML maps) and merges them in order over `args`.
///
/// # Errors
/// [`ArgsError::Read`], [`ArgsError::Value`] or [`ArgsError::NotAMap`] naming the file.
pub fn merge_args_files(args: &mut Value, files: &[PathBuf]) -> Result<(), ArgsError> {
    for file in files {
        let text = fs_err::read_to_string(file).map_err(|source| ArgsError::Read {
            path: file.clone(),
            source,
        })?;
        let value = parse_yaml_value(&text).map_err(|message| ArgsError::Value {
            name: file.display().to_string(),
            message,
        })?;
        match value {
            Value::Object(_) => values::merge(args, value),
            Value::Null => {}
            _ => return Err(ArgsError::NotAMap(file.clone())),
        }
    }
    Ok(())
}

/// Applies declared defaults under `args` and checks required arguments.
///
/// A default is stored under the declared name as one key (as Kluctl does), and an argument
/// counts as set when its dotted path resolves in `args`.
///
/// # Errors
/// [`ArgsError::Required`] naming the first declared argument without default that is not set.
pub fn apply_defaults(definitions: &[ArgDefinition], args: Value) -> Result<Value, ArgsError> {
    let mut out = Value::Object(serde_json::Map::new());
    for d in definitions {
        if let Some(default) = &d.default {
            values::merge(
                &mut out,
                Value::Object(std::iter::once((d.name.clone(), default.clone())).collect()),
            );
        }
    }
    values::merge(&mut out, args);
    for d in definitions {
        let path: Vec<&str> = d.name.split('.').collect();
        if d.default.is_none() && values::get_path(&out, &path).is_none() {
            return Err(ArgsError::Required(d.name.clone()));
        }
    }
    Ok(out)
}

/// Parses one YAML value; an empty text is `null` (as Kluctl reads `-a name=`).
fn parse_yaml_value(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cli_args_need_name_equals_value() {
        let parsed = parse_cli_args(&["a=1", "b.c=x=y", "a=2", "d="]).unwrap();
        assert_eq!(parsed["a"], "2", "later wins");
        assert_eq!(parsed["b.c"], "x=y", "split at the first =");
        assert_eq!(parsed["d"], "");
        for bad in ["novalue", "a b=1", "ä=1"] {
            assert_eq!(
                parse_cli_args(&[bad]).unwrap_err().to_string(),
                format!("invalid --arg argument. Must be --arg=some_var_name=value, not '{bad}'")
            );
        }
    }

    #[test]
    fn values_are_yaml_and_dotted_names_nest() {
        let parsed = parse_cli_args(&[
            "n=3",
            "b=true",
            "s='true'",
            "obj={\"x\": [1, 2]}",
            "nested.deep.key=v",
            "nested.other=1.5",
            "at=\\@literal",
            "empty=",
        ])
        .unwrap();
        let v = args_to_values(&parsed, true, Path::new(".")).unwrap();
        assert_eq!(
            v,
            json!({
                "n": 3, "b": true, "s": "true", "obj": {"x": [1, 2]},
                "nested": {"deep": {"key": "v"}, "other": 1.5},
                "at": "@literal", "empty": null
            })
        );
    }

    #[test]
    fn at_file_loads_the_file_as_yaml_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("v.yaml"), "a: [1, 2]\n").unwrap();
        let parsed = parse_cli_args(&["f=@v.yaml"]).unwrap();
        assert_eq!(
            args_to_values(&parsed, true, dir.path()).unwrap(),
            json!({"f": {"a": [1, 2]}})
        );
        // Without file loading (the controller's spec.args), `@` starts invalid YAML.
        let err = args_to_values(&parsed, false, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("failed to parse the value of argument 'f' as YAML"),
            "{err}"
        );
        let missing = parse_cli_args(&["f=@nope.yaml"]).unwrap();
        let err = args_to_values(&missing, true, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.yaml"), "{err}");
    }

    #[test]
    fn args_files_merge_in_order_and_must_be_maps() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("1.yaml");
        let two = dir.path().join("2.yaml");
        let list = dir.path().join("3.yaml");
        fs_err::write(&one, "a: {x: 1, y: 1}\nb: 1\n").unwrap();
        fs_err::write(&two, "a: {y: 2}\n").unwrap();
        fs_err::write(&list, "- 1\n").unwrap();
        let mut args = json!({"b": 0, "c": 0});
        merge_args_files(&mut args, &[one, two]).unwrap();
        assert_eq!(args, json!({"a": {"x": 1, "y": 2}, "b": 1, "c": 0}));
        let err = merge_args_files(&mut args, std::slice::from_ref(&list)).unwrap_err();
        assert!(matches!(err, ArgsError::NotAMap(p) if p == list));
    }

    fn def(name: &str, default: Option<Value>) -> ArgDefinition {
        ArgDefinition {
            name: name.to_owned(),
            default,
        }
    }

    #[test]
    fn defaults_apply_under_given_args_and_required_args_are_checked() {
        let defs = [
            def("env", None),
            def("replicas", Some(json!(1))),
            def("opts", Some(json!({"a": 1, "b": 1}))),
            def("deep.name", None),
        ];
        let out = apply_defaults(
            &defs,
            json!({"env": "prod", "opts": {"b": 2}, "deep": {"name": "x"}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"env": "prod", "replicas": 1, "opts": {"a": 1, "b": 2}, "deep": {"name": "x"}})
        );
        let err = apply_defaults(&defs, json!({"env": "prod"})).unwrap_err();
        assert_eq!(err.to_string(), "required argument deep.name not set");
    }

    #[test]
    fn a_dotted_default_is_one_key_as_in_kluctl() {
        let out = apply_defaults(&[def("a.b", Some(json!(1)))], json!({})).unwrap();
        assert_eq!(out, json!({"a.b": 1}));
    }
}
