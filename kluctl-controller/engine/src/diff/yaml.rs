//! YAML text of values in the layout Kluctl's Go YAML writer produces, used for the values in
//! unified diffs and for `-o yaml`: keys sorted with that writer's natural order (non-letters
//! before letters, digit runs compared as numbers), block style, list items at the same indent
//! as their parent key, strings quoted only when they would read back as something else.
//!
//! Written by hand because the text must match Kluctl's byte for byte in diffs users compare,
//! and general YAML writers indent lists and quote differently. Known difference: Go's writer
//! folds plain strings with spaces longer than 80 columns; we never fold.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::Value;

/// The YAML document for `v`, ending with a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_list(&mut out, a, 0),
        _ => {
            out.push_str(&scalar(v, 0));
            out.push('\n');
        }
    }
    out
}

/// Go YAML's key order: runs of digits compare as numbers, a non-letter sorts before a letter.
pub fn key_cmp(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl { Ordering::Less } else { Ordering::Greater };
        }
        let mut an: u128 = 0;
        let mut bn: u128 = 0;
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .saturating_mul(10)
                .saturating_add(u128::from(ar[ai] as u32 - '0' as u32));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .saturating_mul(10)
                .saturating_add(u128::from(br[bi] as u32 - '0' as u32));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, m: &serde_json::Map<String, Value>, ind: usize) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| key_cmp(a, b));
    for (n, k) in keys.into_iter().enumerate() {
        if n > 0 {
            indent(out, ind);
        }
        out.push_str(&string_scalar(k, ind));
        out.push(':');
        write_value_after_key(out, &m[k], ind);
    }
}

fn write_value_after_key(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Object(c) if !c.is_empty() => {
            out.push('\n');
            indent(out, ind + 2);
            write_map(out, c, ind + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            indent(out, ind);
            write_list(out, a, ind);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(v, ind));
            out.push('\n');
        }
    }
}

fn write_list(out: &mut String, a: &[Value], ind: usize) {
    for (n, v) in a.iter().enumerate() {
        if n > 0 {
            indent(out, ind);
        }
        out.push_str("- ");
        match v {
            Value::Object(c) if !c.is_empty() => write_map(out, c, ind + 2),
            Value::Array(l) if !l.is_empty() => write_list(out, l, ind + 2),
            _ => {
                out.push_str(&scalar(v, ind));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value, ind: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_scalar(s, ind),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// Whether YAML 1.1 (as Go's reader resolves plain scalars) reads `s` as something other than a
/// string.
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true",
        "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf",
        ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let t = s.replace('_', "");
    let body = t.strip_prefix(['-', '+']).unwrap_or(&t);
    if body.is_empty() {
        return false;
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(bin) = body.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| c == '0' || c == '1');
    }
    if body.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // base 60 (`1:20`) counts as a number in YAML 1.1
    if body.contains(':')
        && body
            .split(':')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        return true;
    }
    is_float(body)
}

fn is_float(s: &str) -> bool {
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits_dot = !mant.is_empty()
        && mant.chars().all(|c| c.is_ascii_digit() || c == '.')
        && mant.matches('.').count() <= 1
        && mant.chars().any(|c| c.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    digits_dot && exp_ok && (mant.contains('.') || exp.is_some())
}

fn plain_allowed(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    let second = s.chars().nth(1);
    if "[]{},#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ') {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    s.chars()
        .all(|c| c != '\n' && c != '\t' && c != '\r' && !c.is_control() && c != '\u{feff}')
}

fn string_scalar(s: &str, ind: usize) -> String {
    if s.is_empty() || resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if s.contains('\n') && literal_allowed(s) {
        return literal(s, ind);
    }
    if plain_allowed(s) {
        return s.to_owned();
    }
    if s.chars().any(char::is_control) {
        return double_quoted(s);
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn literal_allowed(s: &str) -> bool {
    s.lines().all(|l| !l.ends_with(' ') && !l.ends_with('\t'))
        && s.chars().all(|c| c == '\n' || !c.is_control())
}

fn literal(s: &str, ind: usize) -> String {
    let chomp = if !s.ends_with('\n') {
        "-"
    } else if s.ends_with("\n\n") {
        "+"
    } else {
        ""
    };
    // A leading space or line break needs an explicit indentation indicator.
    let hint = if s.starts_with([' ', '\n']) { "2" } else { "" };
    let mut out = format!("|{hint}{chomp}");
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(&mut out, ind + 2);
            out.push_str(line);
        }
    }
    out
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_matches_go_yaml() {
        let v = json!({"b": [1, {"y": "1", "x": true}, []], "a": {"k": "yes", "e": {}}, "s": "- x", "m": "l1\nl2"});
        assert_eq!(
            to_yaml(&v),
            "a:\n  e: {}\n  k: \"yes\"\nb:\n- 1\n- x: true\n  \"y\": \"1\"\n- []\nm: |-\n  l1\n  l2\ns: '- x'\n"
        );
    }

    #[test]
    fn keys_sort_naturally_with_non_letters_first() {
        let mut keys = vec!["a10", "a9", "B", "_x", "a", "1"];
        keys.sort_by(|a, b| key_cmp(a, b));
        // non-digit non-letters count as 0 against a digit run, so "_x" < "1"
        assert_eq!(keys, ["_x", "1", "B", "a", "a9", "a10"]);
    }

    #[test]
    fn strings_are_quoted_only_when_needed() {
        assert_eq!(to_yaml(&json!("plain text")), "plain text\n");
        assert_eq!(to_yaml(&json!("123")), "\"123\"\n");
        assert_eq!(to_yaml(&json!("1.5")), "\"1.5\"\n");
        assert_eq!(to_yaml(&json!("")), "\"\"\n");
        assert_eq!(to_yaml(&json!("*****a")), "'*****a'\n");
        assert_eq!(to_yaml(&json!("a: b")), "'a: b'\n");
        assert_eq!(to_yaml(&json!("it's")), "it's\n");
        assert_eq!(to_yaml(&json!({"k": "  a\nb\n"})), "k: |2\n    a\n  b\n");
        assert_eq!(to_yaml(&json!({"k": "a \nb"})), "k: \"a \\nb\"\n");
        assert_eq!(to_yaml(&json!({"k": "a\n\n"})), "k: |+\n  a\n\n");
    }
}
