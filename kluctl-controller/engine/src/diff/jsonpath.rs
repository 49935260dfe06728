//! JSON paths as Kluctl reads and writes them: the lenient Goessner syntax of `ignoreForDiff`
//! `fieldPath`s and `kluctl.io/ignore-diff-field` annotations (located and deleted here), and the
//! canonical path text Kluctl prints for a field (`spec.replicas`, `metadata.labels["a/b"]`,
//! `$["x"]`) that regex rules and change lists use.
//!
//! Written by hand: the RFC 9535 crates reject what Kluctl users write (a leading name without
//! `$`, dashes in dotted names such as `metadata.labels.app-name`), and we need the located key
//! paths to delete matches. Supported: `$`, `.name`, `..` (recursive descent), `*`, `[n]`
//! (negative counts from the end), `['name']`/`["name"]`, unions `[a,b]`, slices `[s:e:step]` and
//! filters `[?(@.a.b)]`, `[?(@.a == 'x')]`, `[?(@.a != 1)]`.

use std::fmt::Write as _;

use serde_json::Value;

/// One step of a located path: a map key or a list index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A map key.
    Name(String),
    /// A list index.
    Index(usize),
}

/// Kluctl's text for a located path: simple identifiers (two or more of `[A-Za-z0-9_]`, not
/// starting with a digit) joined by dots, other keys as `["key"]` (`['key']` if it contains a
/// double quote), indexes as `[n]`; a path starting with a bracketed key gets a leading `$`.
pub fn to_json_path(path: &[Key]) -> String {
    let mut p = String::new();
    for k in path {
        match k {
            Key::Index(i) => {
                let _ = write!(p, "[{i}]");
            }
            Key::Name(s) if is_simple_identifier(s) => {
                if !p.is_empty() {
                    p.push('.');
                }
                p.push_str(s);
            }
            Key::Name(s) => {
                if p.is_empty() {
                    p.push('$');
                }
                if s.contains('"') {
                    let _ = write!(p, "['{s}']");
                } else {
                    let _ = write!(p, "[\"{s}\"]");
                }
            }
        }
    }
    p
}

fn is_simple_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A parsed JSON path.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
struct Step {
    descendant: bool,
    selector: Selector,
}

#[derive(Clone, Debug, PartialEq)]
enum Selector {
    Name(String),
    Index(i64),
    Wildcard,
    Union(Vec<Selector>),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    path: Vec<String>,
    op: Option<(bool, Value)>,
}

impl JsonPath {
    /// Parses a path.
    ///
    /// # Errors
    /// A message naming the position and what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        Parser {
            s: text.as_bytes(),
            text,
            pos: 0,
        }
        .parse()
    }

    /// Every location in `root` the path selects, in document order.
    pub fn locate(&self, root: &Value) -> Vec<Vec<Key>> {
        let mut current: Vec<(Vec<Key>, &Value)> = vec![(Vec::new(), root)];
        for step in &self.steps {
            let mut next = Vec::new();
            for (path, v) in current {
                if step.descendant {
                    let mut all = Vec::new();
                    descendants(&path, v, &mut all);
                    for (p, x) in all {
                        select(&step.selector, &p, x, &mut next);
                    }
                } else {
                    select(&step.selector, &path, v, &mut next);
                }
            }
            current = next;
        }
        current.into_iter().map(|(p, _)| p).collect()
    }

    /// Deletes every location the path selects from `root` (list elements are removed, later
    /// indexes first so earlier ones stay valid).
    pub fn delete(&self, root: &mut Value) {
        delete_paths(root, self.locate(root));
    }
}

/// Deletes the given locations (deepest and highest indexes first).
pub fn delete_paths(root: &mut Value, mut paths: Vec<Vec<Key>>) {
    paths.sort();
    paths.dedup();
    for p in paths.iter().rev() {
        let Some((last, parent)) = p.split_last() else {
            continue;
        };
        let Some(container) = get_mut(root, parent) else {
            continue;
        };
        match (container, last) {
            (Value::Object(m), Key::Name(k)) => {
                m.remove(k);
            }
            (Value::Array(a), Key::Index(i)) if *i < a.len() => {
                a.remove(*i);
            }
            _ => {}
        }
    }
}

/// The value at a located path.
pub fn get_mut<'a>(root: &'a mut Value, path: &[Key]) -> Option<&'a mut Value> {
    path.iter().try_fold(root, |cur, k| match (cur, k) {
        (Value::Object(m), Key::Name(n)) => m.get_mut(n),
        (Value::Array(a), Key::Index(i)) => a.get_mut(*i),
        _ => None,
    })
}

fn descendants<'v>(path: &[Key], v: &'v Value, out: &mut Vec<(Vec<Key>, &'v Value)>) {
    out.push((path.to_vec(), v));
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let mut p = path.to_vec();
                p.push(Key::Name(k.clone()));
                descendants(&p, x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = path.to_vec();
                p.push(Key::Index(i));
                descendants(&p, x, out);
            }
        }
        _ => {}
    }
}

fn push<'v>(out: &mut Vec<(Vec<Key>, &'v Value)>, path: &[Key], k: Key, v: &'v Value) {
    let mut p = path.to_vec();
    p.push(k);
    out.push((p, v));
}

fn select<'v>(sel: &Selector, path: &[Key], v: &'v Value, out: &mut Vec<(Vec<Key>, &'v Value)>) {
    match (sel, v) {
        (Selector::Name(n), Value::Object(m)) => {
            if let Some(x) = m.get(n) {
                push(out, path, Key::Name(n.clone()), x);
            }
        }
        (Selector::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 {
                i64::try_from(a.len()).unwrap_or(i64::MAX) + i
            } else {
                *i
            };
            if let Some(x) = usize::try_from(idx).ok().and_then(|u| a.get(u).map(|x| (u, x))) {
                push(out, path, Key::Index(x.0), x.1);
            }
        }
        (Selector::Wildcard, Value::Object(m)) => {
            for (k, x) in m {
                push(out, path, Key::Name(k.clone()), x);
            }
        }
        (Selector::Wildcard, Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                push(out, path, Key::Index(i), x);
            }
        }
        (Selector::Union(list), _) => {
            for s in list {
                select(s, path, v, out);
            }
        }
        (Selector::Slice(start, end, step), Value::Array(a)) => {
            let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
            let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
            let step = step.unwrap_or(1);
            if step > 0 {
                let mut i = norm(start.unwrap_or(0));
                let e = norm(end.unwrap_or(len));
                while i < e {
                    if let Ok(u) = usize::try_from(i) {
                        push(out, path, Key::Index(u), &a[u]);
                    }
                    i += step;
                }
            }
        }
        (Selector::Filter(f), Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                if f.matches(x) {
                    push(out, path, Key::Index(i), x);
                }
            }
        }
        (Selector::Filter(f), Value::Object(m)) => {
            for (k, x) in m {
                if f.matches(x) {
                    push(out, path, Key::Name(k.clone()), x);
                }
            }
        }
        _ => {}
    }
}

impl Filter {
    fn matches(&self, v: &Value) -> bool {
        let found = self.path.iter().try_fold(v, |cur, k| cur.as_object()?.get(k));
        match (&self.op, found) {
            (None, found) => found.is_some(),
            (Some((equal, lit)), Some(x)) => values_equal(x, lit) == *equal,
            (Some((equal, _)), None) => !*equal,
        }
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < f64::EPSILON,
        _ => a == b,
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("invalid JSON path {:?} at offset {}: {what}", self.text, self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn parse(mut self) -> Result<JsonPath, String> {
        let mut steps = Vec::new();
        if self.peek() == Some(b'$') {
            self.pos += 1;
        } else if self.peek().is_some_and(|c| c != b'.' && c != b'[') {
            steps.push(Step {
                descendant: false,
                selector: self.dotted()?,
            });
        }
        while let Some(c) = self.peek() {
            match c {
                b'.' => {
                    self.pos += 1;
                    let descendant = self.peek() == Some(b'.');
                    if descendant {
                        self.pos += 1;
                        if self.peek() == Some(b'[') {
                            steps.push(Step {
                                descendant,
                                selector: self.bracket()?,
                            });
                            continue;
                        }
                    }
                    steps.push(Step {
                        descendant,
                        selector: self.dotted()?,
                    });
                }
                b'[' => steps.push(Step {
                    descendant: false,
                    selector: self.bracket()?,
                }),
                _ => return Err(self.err("expected '.' or '['")),
            }
        }
        if steps.is_empty() && self.text.trim_start_matches('$').is_empty() && !self.text.is_empty() {
            return Ok(JsonPath { steps });
        }
        if steps.is_empty() {
            return Err(self.err("empty path"));
        }
        Ok(JsonPath { steps })
    }

    fn dotted(&mut self) -> Result<Selector, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c != b'.' && c != b'[') {
            self.pos += 1;
        }
        let name = &self.text[start..self.pos];
        match name {
            "" => Err(self.err("expected a name")),
            "*" => Ok(Selector::Wildcard),
            _ => Ok(Selector::Name(name.to_owned())),
        }
    }

    fn skip_ws(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn bracket(&mut self) -> Result<Selector, String> {
        self.pos += 1; // '['
        self.skip_ws();
        if self.peek() == Some(b'?') {
            let f = self.filter()?;
            self.expect(b']')?;
            return Ok(Selector::Filter(f));
        }
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            items.push(self.bracket_item()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Selector::Union(items)
        })
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    fn bracket_item(&mut self) -> Result<Selector, String> {
        match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                Ok(Selector::Wildcard)
            }
            Some(q @ (b'\'' | b'"')) => Ok(Selector::Name(self.quoted(q)?)),
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c == b'-' || c == b':' || c.is_ascii_digit() || c == b' ')
                {
                    self.pos += 1;
                }
                let t = self.text[start..self.pos].trim();
                if t.contains(':') {
                    let parts: Vec<&str> = t.split(':').collect();
                    if parts.len() > 3 {
                        return Err(self.err("invalid slice"));
                    }
                    let num = |s: &str| -> Result<Option<i64>, String> {
                        let s = s.trim();
                        if s.is_empty() {
                            Ok(None)
                        } else {
                            s.parse().map(Some).map_err(|_| self.err("invalid slice bound"))
                        }
                    };
                    Ok(Selector::Slice(
                        num(parts[0])?,
                        num(parts.get(1).copied().unwrap_or(""))?,
                        num(parts.get(2).copied().unwrap_or(""))?,
                    ))
                } else {
                    t.parse()
                        .map(Selector::Index)
                        .map_err(|_| self.err("expected an index, '*' or a quoted name"))
                }
            }
        }
    }

    fn quoted(&mut self, q: u8) -> Result<String, String> {
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == b'\\' {
                if let Some(n) = self.peek() {
                    out.push(n);
                    self.pos += 1;
                }
            } else if c == q {
                return String::from_utf8(out).map_err(|_| self.err("invalid UTF-8"));
            } else {
                out.push(c);
            }
        }
        Err(self.err("unterminated string"))
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.pos += 1; // '?'
        self.expect(b'(')?;
        self.skip_ws();
        if self.peek() != Some(b'@') {
            return Err(self.err("filters must start with '@'"));
        }
        self.pos += 1;
        let mut path = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.pos += 1;
                    let start = self.pos;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                    {
                        self.pos += 1;
                    }
                    path.push(self.text[start..self.pos].to_owned());
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    let q = self
                        .peek()
                        .filter(|c| *c == b'\'' || *c == b'"')
                        .ok_or_else(|| self.err("expected a quoted name"))?;
                    path.push(self.quoted(q)?);
                    self.expect(b']')?;
                }
                _ => break,
            }
        }
        self.skip_ws();
        let op = if self.text[self.pos..].starts_with("==") || self.text[self.pos..].starts_with("!=") {
            let equal = self.s[self.pos] == b'=';
            self.pos += 2;
            self.skip_ws();
            Some((equal, self.literal()?))
        } else {
            None
        };
        self.expect(b')')?;
        Ok(Filter { path, op })
    }

    fn literal(&mut self) -> Result<Value, String> {
        if let Some(q @ (b'\'' | b'"')) = self.peek() {
            return self.quoted(q).map(Value::String);
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c != b')' && c != b' ') {
            self.pos += 1;
        }
        serde_json::from_str(&self.text[start..self.pos]).map_err(|_| self.err("expected a literal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(p: &str, v: &Value) -> Vec<String> {
        JsonPath::parse(p)
            .unwrap()
            .locate(v)
            .iter()
            .map(|k| to_json_path(k))
            .collect()
    }

    #[test]
    fn canonical_text_quotes_non_identifiers_and_single_letter_keys() {
        let k = |s: &str| Key::Name(s.into());
        assert_eq!(to_json_path(&[k("spec"), k("replicas")]), "spec.replicas");
        assert_eq!(
            to_json_path(&[k("metadata"), k("labels"), k("app.kubernetes.io/name")]),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(to_json_path(&[k("a")]), "$[\"a\"]");
        assert_eq!(to_json_path(&[k("data"), k("x\"y")]), "data['x\"y']");
        assert_eq!(
            to_json_path(&[k("spec"), k("containers"), Key::Index(0), k("image")]),
            "spec.containers[0].image"
        );
    }

    #[test]
    fn lenient_paths_locate_like_kluctl() {
        let v = json!({"metadata": {"labels": {"app-name": "x", "b": "y"}},
            "spec": {"containers": [{"name": "a", "image": "i1"}, {"name": "b", "image": "i2"}]}});
        assert_eq!(
            paths("metadata.labels.app-name", &v),
            ["metadata.labels[\"app-name\"]"]
        );
        assert_eq!(paths("$.metadata.labels.*", &v).len(), 2);
        assert_eq!(paths("metadata.labels['b']", &v), ["metadata.labels[\"b\"]"]);
        assert_eq!(
            paths("spec.containers[*].image", &v),
            ["spec.containers[0].image", "spec.containers[1].image"]
        );
        assert_eq!(paths("spec.containers[-1].name", &v), ["spec.containers[1].name"]);
        assert_eq!(
            paths("spec.containers[?(@.name == 'b')].image", &v),
            ["spec.containers[1].image"]
        );
        assert_eq!(paths("spec.containers[0:1]", &v), ["spec.containers[0]"]);
        assert_eq!(
            paths("$..image", &v),
            ["spec.containers[0].image", "spec.containers[1].image"]
        );
        assert!(paths("spec.missing.x", &v).is_empty());
        assert!(JsonPath::parse("spec.[").is_err());
        assert!(JsonPath::parse("a[?(x)]").is_err());
    }

    #[test]
    fn delete_removes_list_elements_from_the_back() {
        let mut v = json!({"l": [1, 2, 3, 4], "m": {"a": 1}});
        JsonPath::parse("l[0,2]").unwrap().delete(&mut v);
        JsonPath::parse("m.a").unwrap().delete(&mut v);
        assert_eq!(v, json!({"l": [2, 4], "m": {}}));
    }
}
