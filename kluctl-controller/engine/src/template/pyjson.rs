//! Python-compatible text forms of template values: `json.dumps` (the `to_json` filter), `repr`
//! (how Jinja2 prints a dict or list inside `{{ }}`) and Python's float `repr`.
//!
//! Kluctl runs real Python, so `{{ x | to_json }}` yields `json.dumps(x)` with its defaults
//! (`", "`/`": "` separators, ASCII-only output, insertion order kept, `Infinity`/`NaN`), and
//! `{{ some_dict }}` yields Python's `repr`. No crate reproduces these byte for byte (serde_json
//! prints `{"a":1}` and keeps non-ASCII), so the few rules are written here and pinned by tests.

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Value};

/// Formats a float the way Python's `repr(float)` does (shortest round-trip digits, exponent form
/// below `1e-4` and from `1e16` on, always a `.0` for integral values in fixed form).
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits as `d.ddde<exp>`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // position of the decimal point within `digits`
        let body = if point <= 0 {
            let zeros = usize::try_from(-point).unwrap_or(0);
            format!("0.{}{digits}", "0".repeat(zeros))
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let mant = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// Whether the value is a float (a number that is not an integer).
pub fn is_float(v: &Value) -> bool {
    v.kind() == ValueKind::Number && !v.is_integer()
}

/// The float payload of a number value.
pub fn as_f64(v: &Value) -> f64 {
    f64::try_from(v.clone()).unwrap_or(f64::NAN)
}

/// Text of an integer value (i128 range, as Python prints it).
pub fn int_text(v: &Value) -> String {
    i128::try_from(v.clone()).map_or_else(|_| v.to_string(), |i| i.to_string())
}

/// `json.dumps(value)` with Python's defaults.
pub fn dumps(v: &Value) -> Result<String, Error> {
    dumps_with(v, false, None)
}

/// `json.dumps(value, sort_keys=..., indent=...)` (with an indent, items end in `,` + newline).
pub fn dumps_with(v: &Value, sort_keys: bool, indent: Option<usize>) -> Result<String, Error> {
    let mut out = String::new();
    Dumper { sort_keys, indent }.dump(v, &mut out, 0)?;
    Ok(out)
}

/// Jinja2's `tojson` filter: sorted keys, optional indent, and `<`, `>`, `&`, `'` escaped as
/// `\u003c`, `\u003e`, `\u0026`, `\u0027` so the text is safe inside HTML.
pub fn jinja_tojson(v: &Value, indent: Option<usize>) -> Result<String, Error> {
    Ok(dumps_with(v, true, indent)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027"))
}

struct Dumper {
    sort_keys: bool,
    indent: Option<usize>,
}

impl Dumper {
    fn newline(&self, out: &mut String, level: usize) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    }

    fn item_sep(&self) -> &'static str {
        if self.indent.is_some() { "," } else { ", " }
    }

    fn dump(&self, v: &Value, out: &mut String, level: usize) -> Result<(), Error> {
        match v.kind() {
            ValueKind::Undefined => {
                return Err(Error::new(
                    ErrorKind::UndefinedError,
                    "cannot serialize an undefined value to JSON",
                ));
            }
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                if v.is_integer() {
                    out.push_str(&int_text(v));
                } else {
                    let f = as_f64(v);
                    if f.is_nan() {
                        out.push_str("NaN");
                    } else if f.is_infinite() {
                        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                    } else {
                        out.push_str(&float_repr(f));
                    }
                }
            }
            ValueKind::String => json_string(v.as_str().unwrap_or_default(), out),
            ValueKind::Map => {
                let mut entries: Vec<(String, Value)> = Vec::new();
                for key in v.try_iter()? {
                    let item = v.get_item(&key)?;
                    let k = match key.kind() {
                        ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                        ValueKind::Number | ValueKind::Bool | ValueKind::None => dumps(&key)?,
                        _ => {
                            return Err(Error::new(
                                ErrorKind::InvalidOperation,
                                format!("keys must be str, int, float, bool or None, not {}", key.kind()),
                            ));
                        }
                    };
                    entries.push((k, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                if entries.is_empty() {
                    out.push_str("{}");
                    return Ok(());
                }
                out.push('{');
                for (i, (k, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep());
                    }
                    self.newline(out, level + 1);
                    json_string(k, out);
                    out.push_str(": ");
                    self.dump(item, out, level + 1)?;
                }
                self.newline(out, level);
                out.push('}');
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep());
                    }
                    self.newline(out, level + 1);
                    self.dump(item, out, level + 1)?;
                }
                self.newline(out, level);
                out.push(']');
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("object of type {} is not JSON serializable", v.kind()),
                ));
            }
        }
        Ok(())
    }
}

/// A JSON string literal with `ensure_ascii=True` escaping (lowercase `\uXXXX`, surrogate pairs).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr()` of a value, used when a dict or list is printed in a template.
pub fn repr(v: &Value) -> String {
    let mut out = String::new();
    repr_into(v, &mut out);
    out
}

fn repr_into(v: &Value, out: &mut String) {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number if v.is_integer() => out.push_str(&int_text(v)),
        ValueKind::Number => out.push_str(&float_repr(as_f64(v))),
        ValueKind::String => str_repr(v.as_str().unwrap_or_default(), out),
        ValueKind::Map => {
            out.push('{');
            if let Ok(keys) = v.try_iter() {
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    repr_into(&key, out);
                    out.push_str(": ");
                    repr_into(&v.get_item(&key).unwrap_or_default(), out);
                }
            }
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let tuple = v.is_tuple();
            out.push(if tuple { '(' } else { '[' });
            let mut n = 0;
            if let Ok(items) = v.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    repr_into(&item, out);
                    n += 1;
                }
            }
            if tuple && n == 1 {
                out.push(',');
            }
            out.push(if tuple { ')' } else { ']' });
        }
        _ => out.push_str(&v.to_string()),
    }
}

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`.
fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(0.1), "0.1");
        assert_eq!(float_repr(1.5e-5), "1.5e-05");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1e15), "1000000000000000.0");
        assert_eq!(float_repr(123.456), "123.456");
        assert_eq!(float_repr(-2.5), "-2.5");
        assert_eq!(float_repr(1.234_567_890_123_456_7e22), "1.2345678901234568e+22");
    }

    #[test]
    fn dumps_uses_python_separators_and_ascii_escapes() {
        let v = Value::from_serialize_json(r#"{"b": [1, 2.5, null, true], "a": "é\n\"x\"", "c": {}}"#);
        assert_eq!(
            dumps(&v).unwrap(),
            r#"{"b": [1, 2.5, null, true], "a": "\u00e9\n\"x\"", "c": {}}"#
        );
        assert_eq!(dumps(&Value::from("😀")).unwrap(), r#""\ud83d\ude00""#);
    }

    #[test]
    fn tojson_sorts_indents_and_escapes_like_jinja2() {
        let v = Value::from_serialize_json(r#"{"b": {"y": 1, "x": []}, "a": "<&>'"}"#);
        assert_eq!(
            jinja_tojson(&v, None).unwrap(),
            r#"{"a": "\u003c\u0026\u003e\u0027", "b": {"x": [], "y": 1}}"#
        );
        assert_eq!(
            jinja_tojson(&v, Some(2)).unwrap(),
            "{\n  \"a\": \"\\u003c\\u0026\\u003e\\u0027\",\n  \"b\": {\n    \"x\": [],\n    \"y\": 1\n  }\n}"
        );
    }

    #[test]
    fn repr_matches_python() {
        let v = Value::from_serialize_json(r#"{"a": [1, "it's", null, false], "b": 1.0}"#);
        assert_eq!(repr(&v), r#"{'a': [1, "it's", None, False], 'b': 1.0}"#);
    }

    trait FromJson {
        fn from_serialize_json(s: &str) -> Value;
    }
    impl FromJson for Value {
        fn from_serialize_json(s: &str) -> Value {
            let v: Value = serde_json::from_str(s).unwrap();
            v
        }
    }
}
