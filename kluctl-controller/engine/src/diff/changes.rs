//! Change computation: two normalised objects in, Kluctl's list of [`Change`]s out, each with
//! its canonical JSON path, old/new values and a unified diff of the values' text.
//!
//! Comparison rules (Kluctl's):
//! - maps compare key by key; a key on one side only is one `insert`/`delete` of its whole value;
//! - lists compare as multisets first: reordering alone is no change. Elements without an equal
//!   partner on the other side are paired by index (`update` when both sides have that index,
//!   else `insert`/`delete`);
//! - values of different types, or `null` against a value, are one `update`.
//!
//! Values are shown as text for the unified diff: strings as they are, numbers in Go's `%v`
//! float form (`3`, `1.5`, `1e+06`), maps and lists as YAML (see [`super::yaml`]). Changes are
//! sorted by path.

use serde_json::Value;

use super::jsonpath::{Key, to_json_path};
use super::yaml::to_yaml;
use crate::result::{Change, ChangeType};

struct RawChange {
    kind: ChangeType,
    path: Vec<Key>,
    from: Option<Value>,
    to: Option<Value>,
}

/// The changes that turn `old` into `new` (both normalised).
pub fn diff_objects(old: &Value, new: &Value) -> Vec<Change> {
    let mut raw = Vec::new();
    diff_value(&mut Vec::new(), Some(old), Some(new), &mut raw);
    let mut changes: Vec<Change> = raw
        .into_iter()
        .map(|c| {
            let mut ch = Change {
                change_type: c.kind,
                json_path: to_json_path(&c.path),
                old_value: c.from,
                new_value: c.to,
                unified_diff: String::new(),
            };
            ch.unified_diff = unified_diff_of(&ch);
            ch
        })
        .collect();
    changes.sort_by(|a, b| a.json_path.cmp(&b.json_path));
    changes
}

/// The unified diff text Kluctl shows for a change.
pub fn unified_diff_of(c: &Change) -> String {
    match c.change_type {
        ChangeType::Insert => build_unified_diff(None, c.new_value.as_ref()),
        ChangeType::Delete => build_unified_diff(c.old_value.as_ref(), None),
        ChangeType::Update => build_unified_diff(
            Some(c.old_value.as_ref().unwrap_or(&Value::Null)),
            Some(c.new_value.as_ref().unwrap_or(&Value::Null)),
        ),
    }
}

fn diff_value(path: &mut Vec<Key>, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<RawChange>) {
    let push = |out: &mut Vec<RawChange>, kind, path: &Vec<Key>, from: Option<&Value>, to: Option<&Value>| {
        out.push(RawChange {
            kind,
            path: path.clone(),
            from: from.cloned(),
            to: to.cloned(),
        });
    };
    match (a, b) {
        (None, None) | (Some(Value::Null), Some(Value::Null)) => {}
        (None, Some(b)) => push(out, ChangeType::Insert, path, None, Some(b)),
        (Some(a), None) => push(out, ChangeType::Delete, path, Some(a), None),
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            for (k, av) in x {
                path.push(Key::Name(k.clone()));
                diff_value(path, Some(av), y.get(k), out);
                path.pop();
            }
            for (k, bv) in y {
                if !x.contains_key(k) {
                    path.push(Key::Name(k.clone()));
                    diff_value(path, None, Some(bv), out);
                    path.pop();
                }
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            let missing_a = unmatched(x, y);
            let missing_b = unmatched(y, x);
            let mut keys: Vec<usize> = missing_a.clone();
            keys.extend(missing_b.iter().filter(|i| !missing_a.contains(i)));
            for i in keys {
                let av = missing_a.contains(&i).then(|| &x[i]);
                let bv = missing_b.contains(&i).then(|| &y[i]);
                path.push(Key::Index(i));
                diff_value(path, av, bv, out);
                path.pop();
            }
        }
        (Some(a), Some(b)) => {
            if !scalar_equal(a, b) {
                push(out, ChangeType::Update, path, Some(a), Some(b));
            }
        }
    }
}

/// Indexes of `x` whose elements have no (not yet taken) equal partner in `y`.
fn unmatched(x: &[Value], y: &[Value]) -> Vec<usize> {
    let mut taken = vec![false; y.len()];
    let mut missing = Vec::new();
    for (i, e) in x.iter().enumerate() {
        let found = y
            .iter()
            .enumerate()
            .position(|(j, f)| !taken[j] && loose_equal(e, f));
        match found {
            Some(j) => taken[j] = true,
            None => missing.push(i),
        }
    }
    missing
}

/// Equality with lists compared as multisets (what "no changes" means above).
fn loose_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| loose_equal(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && unmatched(x, y).is_empty(),
        _ => scalar_equal(a, b),
    }
}

fn scalar_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_i128(), r.as_i128()) {
            (Some(li), Some(ri)) => li == ri,
            (None, None) => l.as_f64() == r.as_f64(),
            _ => false,
        },
        _ => left == right,
    }
}

/// Text of a value for the unified diff; `None` is "not present".
fn diffable(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Null) => "<nil>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => go_float(n.as_f64().unwrap_or_default()),
        Some(v @ (Value::Object(_) | Value::Array(_))) => to_yaml(v),
    }
}

/// Go's `fmt.Sprint(float64)`: shortest digits, exponent form (`1e+06`) when the decimal
/// exponent is below -4 or at least 6 (`%v` is `%g`, which decides with precision 6).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return "0".into();
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

fn prepend_lines(s: &str, prefix: char) -> String {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.split('\n')
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn build_unified_diff(a: Option<&Value>, b: Option<&Value>) -> String {
    let a = diffable(a);
    let b = diffable(b);
    if a.is_empty() {
        return prepend_lines(&b, '+');
    }
    if b.is_empty() {
        return prepend_lines(&a, '-');
    }
    if !a.contains('\n') && !b.contains('\n') {
        return format!("-{a}\n+{b}");
    }
    unified_hunks(&a, &b)
}

fn split_lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.split_inclusive('\n').collect();
    if v.last() == Some(&"") {
        v.pop();
    }
    v
}

enum Line<'a> {
    Equal(&'a str),
    Delete(&'a str),
    Insert(&'a str),
}

struct Hunk<'a> {
    from_line: usize,
    to_line: usize,
    lines: Vec<Line<'a>>,
}

fn add_equal<'a>(al: &[&'a str], h: &mut Hunk<'a>, start: isize, end: isize) -> usize {
    let mut delta = 0;
    let mut i = start;
    while i < end {
        if i >= 0 {
            let Some(l) = usize::try_from(i).ok().and_then(|u| al.get(u)) else {
                return delta;
            };
            h.lines.push(Line::Equal(l));
            delta += 1;
        }
        i += 1;
    }
    delta
}

/// Line diff in unified form without file headers: hunks with 3 lines of context, hunks closer
/// than 6 lines merged, `@@ -l,n +l,n @@` with `,n` left out when n <= 1, and a
/// `\ No newline at end of file` marker after a last line without newline.
fn unified_hunks<'a>(a: &'a str, b: &'a str) -> String {
    use similar::{Algorithm, DiffOp, capture_diff_slices};
    const EDGE: usize = 3;
    const GAP: usize = EDGE * 2;
    let al = split_lines(a);
    let bl = split_lines(b);
    // (start, end, inserted lines) in old-line coordinates, like line edits.
    let mut edits: Vec<(usize, usize, &[&'a str])> = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, &al, &bl) {
        match op {
            DiffOp::Equal { .. } => {}
            DiffOp::Delete {
                old_index, old_len, ..
            } => edits.push((old_index, old_index + old_len, &[])),
            DiffOp::Insert {
                old_index,
                new_index,
                new_len,
            } => {
                edits.push((old_index, old_index, &bl[new_index..new_index + new_len]));
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                edits.push((old_index, old_index + old_len, &[]));
                edits.push((
                    old_index + old_len,
                    old_index + old_len,
                    &bl[new_index..new_index + new_len],
                ));
            }
        }
    }
    let signed = |u: usize| isize::try_from(u).unwrap_or(isize::MAX);
    let mut hunks: Vec<Hunk<'a>> = Vec::new();
    let mut h: Option<Hunk<'a>> = None;
    let mut last = 0usize;
    let mut to_line = 0usize;
    for (start, end, new) in edits {
        match h.as_mut() {
            Some(_) if start == last => {}
            Some(cur) if start <= last + GAP => {
                add_equal(&al, cur, signed(last), signed(start));
            }
            _ => {
                if let Some(mut done) = h.take() {
                    add_equal(&al, &mut done, signed(last), signed(last + EDGE));
                    hunks.push(done);
                }
                to_line += start.saturating_sub(last);
                let mut nh = Hunk {
                    from_line: start + 1,
                    to_line: to_line + 1,
                    lines: Vec::new(),
                };
                let delta = add_equal(&al, &mut nh, signed(start) - signed(EDGE), signed(start));
                nh.from_line -= delta;
                nh.to_line -= delta;
                h = Some(nh);
            }
        }
        let Some(cur) = h.as_mut() else { continue };
        last = start;
        for l in &al[start..end] {
            cur.lines.push(Line::Delete(l));
            last += 1;
        }
        for l in new {
            cur.lines.push(Line::Insert(l));
            to_line += 1;
        }
    }
    if let Some(mut done) = h.take() {
        add_equal(&al, &mut done, signed(last), signed(last + EDGE));
        hunks.push(done);
    }
    format_hunks(&hunks)
}

fn format_hunks(hunks: &[Hunk<'_>]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for hunk in hunks {
        let from_count = hunk
            .lines
            .iter()
            .filter(|l| !matches!(l, Line::Insert(_)))
            .count();
        let to_count = hunk
            .lines
            .iter()
            .filter(|l| !matches!(l, Line::Delete(_)))
            .count();
        let range = |line: usize, count: usize| {
            if count > 1 {
                format!("{line},{count}")
            } else {
                line.to_string()
            }
        };
        let _ = writeln!(
            out,
            "@@ -{} +{} @@",
            range(hunk.from_line, from_count),
            range(hunk.to_line, to_count)
        );
        for l in &hunk.lines {
            let (p, text) = match l {
                Line::Equal(t) => (' ', *t),
                Line::Delete(t) => ('-', *t),
                Line::Insert(t) => ('+', *t),
            };
            out.push(p);
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(c: &[Change]) -> Vec<(ChangeType, String)> {
        c.iter().map(|c| (c.change_type, c.json_path.clone())).collect()
    }

    #[test]
    fn map_changes_give_insert_delete_update_with_whole_values() {
        let old = json!({"metadata": {"labels": {"a": "1", "gone": "x"}}, "spec": {"replicas": 1}});
        let new =
            json!({"metadata": {"labels": {"a": "2"}}, "spec": {"replicas": 1, "template": {"x": [1]}}});
        let c = diff_objects(&old, &new);
        assert_eq!(
            summary(&c),
            [
                // plain byte order of the path text: '.' sorts before '['
                (ChangeType::Delete, "metadata.labels.gone".to_owned()),
                (ChangeType::Update, "metadata.labels[\"a\"]".to_owned()),
                (ChangeType::Insert, "spec.template".to_owned()),
            ]
        );
        assert_eq!(c[1].unified_diff, "-1\n+2");
        assert_eq!(c[0].unified_diff, "-x");
        assert_eq!(c[0].old_value, Some(json!("x")));
        assert_eq!(c[2].new_value, Some(json!({"x": [1]})));
        assert_eq!(c[2].unified_diff, "+x:\n+- 1");
    }

    #[test]
    fn reordered_lists_are_unchanged_and_unmatched_elements_pair_by_index() {
        assert!(diff_objects(&json!({"ll": [1, 2, 3]}), &json!({"ll": [3, 1, 2]})).is_empty());
        let c = diff_objects(&json!({"ll": [1, 2, 3]}), &json!({"ll": [1, 5, 3]}));
        assert_eq!(summary(&c), [(ChangeType::Update, "ll[1]".to_owned())]);
        let c = diff_objects(&json!({"ll": [1, 2]}), &json!({"ll": [2, 1, 9]}));
        assert_eq!(summary(&c), [(ChangeType::Insert, "ll[2]".to_owned())]);
        let c = diff_objects(&json!({"ll": [1, 2, 2]}), &json!({"ll": [2]}));
        assert_eq!(
            summary(&c),
            [
                (ChangeType::Delete, "ll[0]".to_owned()),
                (ChangeType::Delete, "ll[2]".to_owned())
            ]
        );
        let c = diff_objects(
            &json!({"containers": [{"name": "a", "image": "x:1"}]}),
            &json!({"containers": [{"name": "a", "image": "x:2"}]}),
        );
        assert_eq!(
            summary(&c),
            [(ChangeType::Update, "containers[0].image".to_owned())]
        );
    }

    #[test]
    fn type_changes_and_nulls_are_updates() {
        let c = diff_objects(
            &json!({"a": "1", "n": null, "m": {"x": 1}}),
            &json!({"a": 1, "n": "v", "m": "s"}),
        );
        assert_eq!(
            summary(&c),
            [
                (ChangeType::Update, "$[\"a\"]".to_owned()),
                (ChangeType::Update, "$[\"m\"]".to_owned()),
                (ChangeType::Update, "$[\"n\"]".to_owned()),
            ]
        );
        // a multi-line side (YAML ends with a newline) always gives a hunk
        assert_eq!(
            c[1].unified_diff,
            "@@ -1 +1 @@\n-x: 1\n+s\n\\ No newline at end of file\n"
        );
        assert_eq!(c[2].unified_diff, "-<nil>\n+v");
    }

    #[test]
    fn numbers_print_like_go() {
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(123_456.0), "123456");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(123_456_789.0), "1.23456789e+08");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.000_01), "1e-05");
        let c = diff_objects(
            &json!({"spec": {"replicas": 1_000_000}}),
            &json!({"spec": {"replicas": 2}}),
        );
        assert_eq!(c[0].unified_diff, "-1e+06\n+2");
    }

    #[test]
    fn multi_line_values_get_hunks_with_context() {
        let old: String = (1..=12).fold(String::new(), |acc, i| acc + "line" + &i.to_string() + "\n");
        let new = old.replace("line2\n", "line2b\n").replace("line11\n", "");
        let c = diff_objects(&json!({"data": {"f": old}}), &json!({"data": {"f": new}}));
        assert_eq!(
            c[0].unified_diff,
            "@@ -1,5 +1,5 @@\n line1\n-line2\n+line2b\n line3\n line4\n line5\n\
             @@ -8,5 +8,4 @@\n line8\n line9\n line10\n-line11\n line12\n"
        );
        let c = diff_objects(&json!({"x": {"f": "a\nb"}}), &json!({"x": {"f": "a\nc"}}));
        assert_eq!(
            c[0].unified_diff,
            "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn yaml_values_diff_line_by_line() {
        let c = diff_objects(
            &json!({"spec": {"ports": {"a": {"port": 80, "name": "http"}}}}),
            &json!({"spec": {"ports": {"a": {"port": 81, "name": "http"}}}}),
        );
        assert_eq!(
            summary(&c),
            [(ChangeType::Update, "spec.ports[\"a\"].port".to_owned())]
        );
        assert_eq!(c[0].unified_diff, "-80\n+81");
    }
}
