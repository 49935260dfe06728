//! The `from_yaml` filter: PyYAML's `yaml.load(text, Loader=SafeLoader)` (YAML 1.1 typing) on
//! top of the `granit-parser` event stream.
//!
//! serde-saphyr's typing differs from PyYAML in ways templates notice (`y`/`n` become booleans,
//! `1e3` and `0o17` become numbers, `0755` is decimal), so plain scalars are typed here with
//! PyYAML's implicit resolvers instead: `yes/no/on/off/true/false` (three spellings each) are
//! booleans, `0b…`/`0x…`/`0…` (octal)/sexagesimal/underscored integers, floats need a dot
//! (or `.inf`/`.nan`), `~`/`null`/empty are null; quoted and block scalars are strings. Anchors,
//! aliases and `<<` merge keys work as in PyYAML (own keys win, then earlier merged maps).
//!
//! Known gap: timestamps (`2020-01-01`) stay strings (PyYAML makes `date`/`datetime` objects).

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};
use indexmap::IndexMap;
use minijinja::{Error, ErrorKind, Value};

use super::pyyaml::{ResolvedKind, resolve_plain};

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(IndexMap<Value, Value>, Vec<Value>, Option<Value>, usize),
}

/// A merge key (`<<`) while its mapping is being built.
const MERGE_MARKER: &str = "\u{0}<<merge>>";

/// Parses one YAML document like PyYAML's safe loader. Empty input gives `none`.
pub fn load(text: &str) -> Result<Value, Error> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut result: Option<Value> = None;
    let mut documents = 0;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| invalid(format!("failed to parse YAML: {e}")))?;
        let value = match ev {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(invalid(format!(
                        "failed to parse YAML: expected a single document, found another at line {}",
                        span.start.line()
                    )));
                }
                continue;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let v = scalar(&text, style, tag.as_deref(), stack.last())?;
                remember(&mut anchors, anchor, &v);
                v
            }
            Event::Alias(id) => anchors.get(&id).cloned().ok_or_else(|| {
                invalid(format!(
                    "failed to parse YAML: unknown alias at line {}",
                    span.start.line()
                ))
            })?,
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), anchor));
                continue;
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map(IndexMap::new(), Vec::new(), None, anchor));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => {
                    let v = Value::from(items);
                    remember(&mut anchors, anchor, &v);
                    v
                }
                _ => return Err(invalid("failed to parse YAML: unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(own, merges, _, anchor)) => {
                    let v = finish_map(own, merges)?;
                    remember(&mut anchors, anchor, &v);
                    v
                }
                _ => return Err(invalid("failed to parse YAML: unbalanced mapping".into())),
            },
            _ => continue,
        };
        match stack.last_mut() {
            None => result = Some(value),
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(own, merges, key, _)) => match key.take() {
                None => *key = Some(value),
                Some(k) if k.as_str() == Some(MERGE_MARKER) => merges.push(value),
                Some(k) => {
                    own.insert(k, value);
                }
            },
        }
    }
    Ok(result.unwrap_or(Value::from(())))
}

fn remember(anchors: &mut HashMap<usize, Value>, anchor: usize, v: &Value) {
    if anchor != 0 {
        anchors.insert(anchor, v.clone());
    }
}

/// Applies `<<` merges: merged keys first (earlier maps win over later ones), own keys win.
fn finish_map(own: IndexMap<Value, Value>, merges: Vec<Value>) -> Result<Value, Error> {
    if merges.is_empty() {
        return Ok(Value::from_object(own));
    }
    let mut sources: Vec<Value> = Vec::new();
    for m in merges {
        match m.kind() {
            minijinja::value::ValueKind::Map => sources.push(m),
            minijinja::value::ValueKind::Seq => {
                for item in m.try_iter()? {
                    if item.kind() != minijinja::value::ValueKind::Map {
                        return Err(invalid(
                            "failed to parse YAML: expected a mapping for merging".into(),
                        ));
                    }
                    sources.push(item);
                }
            }
            _ => {
                return Err(invalid(
                    "failed to parse YAML: expected a mapping or list of mappings for merging".into(),
                ));
            }
        }
    }
    let mut out: IndexMap<Value, Value> = IndexMap::new();
    for src in sources.iter().rev() {
        for k in src.try_iter()? {
            let v = src.get_item(&k)?;
            out.insert(k, v);
        }
    }
    for (k, v) in own {
        out.insert(k, v);
    }
    Ok(Value::from_object(out))
}

fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&granit_parser::Tag>,
    parent: Option<&Frame>,
) -> Result<Value, Error> {
    if let Some(tag) = tag {
        let core = |s: &str| tag.is_yaml_core_schema_tag(s);
        return if core("str") {
            Ok(Value::from(text))
        } else if core("null") {
            Ok(Value::from(()))
        } else if core("bool") || core("int") || core("float") {
            match resolve_plain(text) {
                ResolvedKind::Bool(b) if core("bool") => Ok(Value::from(b)),
                ResolvedKind::Int(i) if core("int") => Ok(Value::from(i)),
                ResolvedKind::Int(i) if core("float") => Ok(Value::from(int_as_f64(i))),
                ResolvedKind::Float(f) if core("float") => Ok(Value::from(f)),
                _ => Err(invalid(format!(
                    "failed to parse YAML: {text:?} is not a valid !!{}",
                    tag.suffix()
                ))),
            }
        } else {
            Err(invalid(format!(
                "failed to parse YAML: could not determine a constructor for the tag '{}{}'",
                tag.handle(),
                tag.suffix()
            )))
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::from(text));
    }
    Ok(match resolve_plain(text) {
        ResolvedKind::Null => Value::from(()),
        ResolvedKind::Bool(b) => Value::from(b),
        ResolvedKind::Int(i) => Value::from(i),
        ResolvedKind::Float(f) => Value::from(f),
        ResolvedKind::Merge if matches!(parent, Some(Frame::Map(_, _, None, _))) => Value::from(MERGE_MARKER),
        ResolvedKind::Merge | ResolvedKind::Other | ResolvedKind::Str => Value::from(text),
    })
}

#[allow(clippy::cast_precision_loss)]
fn int_as_f64(i: i128) -> f64 {
    i as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::pyjson::dumps;

    fn j(y: &str) -> String {
        dumps(&load(y).unwrap()).unwrap()
    }

    #[test]
    fn plain_scalars_are_typed_like_pyyaml() {
        assert_eq!(
            j(
                "a: on\nb: n\nc: y\nd: 0755\ne: 08\nf: 1e3\ng: 1.5e+3\nh: 0x1F\ni: ~\nj: ''\nk: 1_000\nl: .inf\nm: 190:20:30"
            ),
            r#"{"a": true, "b": "n", "c": "y", "d": 493, "e": "08", "f": "1e3", "g": 1500.0, "h": 31, "i": null, "j": "", "k": 1000, "l": Infinity, "m": 685230}"#
        );
    }

    #[test]
    fn quoted_and_tagged_scalars() {
        assert_eq!(
            j("a: 'true'\nb: \"1\"\nc: !!str 5\nd: !!int '7'\ne: |\n  x\n"),
            r#"{"a": "true", "b": "1", "c": "5", "d": 7, "e": "x\n"}"#
        );
        assert!(load("a: !custom x").is_err());
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        assert_eq!(
            j("base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nm:\n  <<: [*b, *o]\n  x: 9\nl: *b"),
            r#"{"base": {"x": 1, "y": 2}, "other": {"y": 3, "z": 4}, "m": {"y": 2, "z": 4, "x": 9}, "l": {"x": 1, "y": 2}}"#
        );
    }

    #[test]
    fn empty_input_is_none_and_multiple_documents_fail() {
        assert!(load("").unwrap().is_none());
        assert!(load("a: 1\n---\nb: 2\n").is_err());
        assert_eq!(j("just text"), r#""just text""#);
    }
}
