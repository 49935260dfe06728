//! The `to_yaml` filter's output: PyYAML's `yaml.dump(obj, Dumper=SafeDumper-with-Kluctl's-string-
//! style, sort_keys=False)` reproduced byte for byte.
//!
//! Kluctl's string representer picks a literal block (`|`) for strings of more than one line and
//! single quotes for numeric strings; everything else follows PyYAML's emitter: block style,
//! 2-space indent, sequences inside mappings not indented, width 80 with folding of long plain and
//! quoted scalars, ASCII-only output (`allow_unicode` off, so non-ASCII text is double-quoted
//! with `\u` escapes), implicit-type checks that quote strings such as `'true'` or `'1.5'`, and a
//! `...` document end after a top-level plain scalar or a `|+` block. serde-saphyr and other YAML
//! writers choose styles differently, so the emitter rules are written out here (our own
//! recursive formulation of the same decisions) and pinned by unit tests and the e2e parity test.
//!
//! Known gap: PyYAML emits anchors/aliases for a dict or list object that occurs twice in the
//! input; template values carry no object identity here, so repeated objects are written out.

use std::sync::LazyLock;

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Value};
use regex::Regex;

use super::pyjson::{as_f64, float_repr, int_text};

const BEST_WIDTH: usize = 80;
const BEST_INDENT: usize = 2;

/// Serialises a value as Kluctl's `to_yaml` does.
pub fn dump(v: &Value) -> Result<String, Error> {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        open_ended: false,
        indent: None,
        indents: Vec::new(),
    };
    e.node(
        v,
        Ctx {
            root: true,
            ..Ctx::default()
        },
    )?;
    // document end (implicit) and stream end
    e.indent = None;
    e.write_indent();
    if e.open_ended {
        e.write_indicator("...", true, false, false);
        e.write_indent();
    }
    Ok(e.out)
}

/// One scalar ready for emission: its text, whether a plain rendering resolves back to the same
/// type (`implicit`), and the style Kluctl's representer requests.
struct Scalar {
    text: String,
    plain_implicit: bool,
    style: Option<char>,
}

#[derive(Default, Clone, Copy)]
struct Ctx {
    root: bool,
    mapping: bool,
    simple_key: bool,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    open_ended: bool,
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn scalar_of(v: &Value) -> Result<Option<Scalar>, Error> {
    let plain = |text: String| {
        Some(Scalar {
            text,
            plain_implicit: true,
            style: None,
        })
    };
    Ok(match v.kind() {
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "cannot serialize an undefined value to YAML",
            ));
        }
        ValueKind::None => plain("null".into()),
        ValueKind::Bool => plain(if v.is_true() { "true" } else { "false" }.into()),
        ValueKind::Number if v.is_integer() => plain(int_text(v)),
        ValueKind::Number => {
            let f = as_f64(v);
            let text = if f.is_nan() {
                ".nan".to_string()
            } else if f.is_infinite() {
                if f > 0.0 { ".inf" } else { "-.inf" }.to_string()
            } else {
                let r = float_repr(f).to_lowercase();
                if !r.contains('.') && r.contains('e') {
                    r.replacen('e', ".0e", 1)
                } else {
                    r
                }
            };
            plain(text)
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            let style = if python_splitlines_count(s) > 1 {
                Some('|')
            } else if !s.is_empty() && s.chars().all(char::is_numeric) {
                Some('\'')
            } else {
                None
            };
            Some(Scalar {
                text: s.to_string(),
                plain_implicit: !resolves_to_non_str(s),
                style,
            })
        }
        ValueKind::Map | ValueKind::Seq | ValueKind::Iterable => None,
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot represent an object of type {} as YAML", v.kind()),
            ));
        }
    })
}

/// Python's `str.splitlines()` (line breaks dropped).
pub fn python_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        ) {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && iter.peek().is_some_and(|&(_, n)| n == '\n') {
                iter.next();
                end += 1;
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Number of lines `str.splitlines()` yields.
fn python_splitlines_count(s: &str) -> usize {
    let mut n = 0;
    let mut chars = s.chars().peekable();
    let mut line_open = false;
    while let Some(c) = chars.next() {
        if matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        ) {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            n += 1;
            line_open = false;
        } else {
            line_open = true;
        }
    }
    if line_open { n + 1 } else { n }
}

/// What PyYAML's implicit resolvers make of a plain scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedKind {
    /// `~`, `null`, `Null`, `NULL` or empty.
    Null,
    /// YAML 1.1 booleans (`yes`/`no`/`on`/`off`/`true`/`false`, three spellings each).
    Bool(bool),
    /// An integer (binary, octal with leading `0`, hex, sexagesimal, underscores allowed).
    Int(i128),
    /// A float (needs a dot, or `.inf`/`.nan`; sexagesimal allowed).
    Float(f64),
    /// The merge key `<<`.
    Merge,
    /// Another non-string type PyYAML knows (timestamp, `=`, `!`/`&`/`*`).
    Other,
    /// A plain string.
    Str,
}

static RESOLVERS: LazyLock<[Regex; 8]> = LazyLock::new(|| {
    [
        r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        r"^(?:<<)$",
        r"^(?:~|null|Null|NULL|)$",
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
        r"^(?:=)$",
        r"^(?:!|&|\*)$",
    ]
    .map(|r| Regex::new(r).unwrap_or_else(|e| panic!("invalid built-in resolver regex {r:?}: {e}")))
});

/// Types a plain scalar the way PyYAML's safe loader does.
pub fn resolve_plain(s: &str) -> ResolvedKind {
    let r = &*RESOLVERS;
    if r[0].is_match(s) {
        return ResolvedKind::Bool(matches!(
            s,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
        ));
    }
    if r[1].is_match(s) {
        return parse_float(s).map_or(ResolvedKind::Str, ResolvedKind::Float);
    }
    if r[2].is_match(s) {
        return parse_int(s).map_or(ResolvedKind::Other, ResolvedKind::Int);
    }
    if r[3].is_match(s) {
        return ResolvedKind::Merge;
    }
    if r[4].is_match(s) {
        return ResolvedKind::Null;
    }
    if r[5].is_match(s) || r[6].is_match(s) || r[7].is_match(s) {
        return ResolvedKind::Other;
    }
    ResolvedKind::Str
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

fn parse_int(s: &str) -> Option<i128> {
    let cleaned = s.replace('_', "");
    let (neg, v) = split_sign(&cleaned);
    let n = if v == "0" {
        0
    } else if let Some(b) = v.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else if let Some(h) = v.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if v.starts_with('0') {
        i128::from_str_radix(v, 8).ok()?
    } else if v.contains(':') {
        v.split(':')
            .try_fold(0i128, |acc, d| Some(acc * 60 + d.parse::<i128>().ok()?))?
    } else {
        v.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

fn parse_float(s: &str) -> Option<f64> {
    let cleaned = s.replace('_', "").to_lowercase();
    let (neg, v) = split_sign(&cleaned);
    let f = if v == ".inf" {
        f64::INFINITY
    } else if v == ".nan" {
        f64::NAN
    } else if v.contains(':') {
        v.split(':')
            .try_fold(0f64, |acc, d| Some(acc * 60.0 + d.parse::<f64>().ok()?))?
    } else {
        v.parse().ok()?
    };
    Some(if neg { -f } else { f })
}

/// PyYAML's implicit resolvers: a plain scalar with this text would load as a non-string.
fn resolves_to_non_str(s: &str) -> bool {
    resolve_plain(s) != ResolvedKind::Str
}

#[allow(clippy::struct_excessive_bools)]
struct Analysis {
    empty: bool,
    multiline: bool,
    allow_flow_plain: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
    allow_block: bool,
}

fn is_ws0(c: char) -> bool {
    matches!(
        c,
        '\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

#[allow(clippy::too_many_lines)]
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            allow_flow_plain: false,
            allow_block_plain: true,
            allow_single_quoted: true,
            allow_block: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let mut preceded_by_ws = true;
    let mut followed_by_ws = n == 1 || is_ws0(chars[1]);
    let (mut previous_space, mut previous_break) = (false, false);
    for (index, &ch) in chars.iter().enumerate() {
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_indicators = true;
                block_indicators = true;
            }
            if ch == '?' || ch == ':' {
                flow_indicators = true;
                if followed_by_ws {
                    block_indicators = true;
                }
            }
            if ch == '-' && followed_by_ws {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_indicators = true;
            }
            if ch == ':' {
                flow_indicators = true;
                if followed_by_ws {
                    block_indicators = true;
                }
            }
            if ch == '#' && preceded_by_ws {
                flow_indicators = true;
                block_indicators = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        // With allow_unicode off, every character outside printable ASCII (except '\n') is
        // special: such scalars are always double-quoted with escapes.
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            special = true;
        }
        if ch == ' ' {
            if index == 0 {
                leading_space = true;
            }
            if index == n - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(ch) {
            if index == 0 {
                leading_break = true;
            }
            if index == n - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_ws = is_ws0(ch);
        followed_by_ws = index + 2 >= n || is_ws0(chars[index + 2]);
    }
    let mut a = Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain: true,
        allow_block_plain: true,
        allow_single_quoted: true,
        allow_block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
    }
    if trailing_space {
        a.allow_block = false;
    }
    if break_space {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
        a.allow_single_quoted = false;
    }
    if space_break || special {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
        a.allow_single_quoted = false;
        a.allow_block = false;
    }
    if line_breaks {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
    }
    if flow_indicators {
        a.allow_flow_plain = false;
    }
    if block_indicators {
        a.allow_block_plain = false;
    }
    a
}

impl Emitter {
    fn write_raw(&mut self, s: &str) {
        self.column += s.chars().count();
        self.out.push_str(s);
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None => Some(if flow { BEST_INDENT } else { 0 }),
            Some(i) if !indentless => Some(i + BEST_INDENT),
            Some(i) => Some(i),
        };
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().flatten();
    }

    fn write_indicator(&mut self, indicator: &str, need_whitespace: bool, whitespace: bool, indention: bool) {
        if self.whitespace || !need_whitespace {
            self.write_raw(indicator);
        } else {
            self.write_raw(&format!(" {indicator}"));
        }
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
        self.open_ended = false;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break(None);
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.write_raw(&pad);
        }
    }

    fn write_line_break(&mut self, data: Option<char>) {
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
        self.out.push(data.unwrap_or('\n'));
    }

    fn node(&mut self, v: &Value, ctx: Ctx) -> Result<(), Error> {
        if let Some(scalar) = scalar_of(v)? {
            self.increase_indent(true, false);
            self.scalar(&scalar, ctx);
            self.pop_indent();
            return Ok(());
        }
        let is_map = v.kind() == ValueKind::Map;
        let items: Vec<Value> = v.try_iter()?.collect();
        if items.is_empty() {
            let (open, close) = if is_map { ("{", "}") } else { ("[", "]") };
            self.write_indicator(open, true, true, false);
            self.increase_indent(true, false);
            self.pop_indent();
            self.write_indicator(close, false, false, false);
            return Ok(());
        }
        if is_map {
            self.increase_indent(false, false);
            for key in items {
                let value = v.get_item(&key)?;
                self.write_indent();
                if Self::check_simple_key(&key)? {
                    self.node(
                        &key,
                        Ctx {
                            mapping: true,
                            simple_key: true,
                            ..Ctx::default()
                        },
                    )?;
                    self.write_indicator(":", false, false, false);
                } else {
                    self.write_indicator("?", true, false, true);
                    self.node(
                        &key,
                        Ctx {
                            mapping: true,
                            ..Ctx::default()
                        },
                    )?;
                    self.write_indent();
                    self.write_indicator(":", true, false, true);
                }
                self.node(
                    &value,
                    Ctx {
                        mapping: true,
                        ..Ctx::default()
                    },
                )?;
            }
            self.pop_indent();
        } else {
            let indentless = ctx.mapping && !self.indention;
            self.increase_indent(false, indentless);
            for item in items {
                self.write_indent();
                self.write_indicator("-", true, false, true);
                self.node(&item, Ctx::default())?;
            }
            self.pop_indent();
        }
        Ok(())
    }

    fn check_simple_key(key: &Value) -> Result<bool, Error> {
        Ok(match scalar_of(key)? {
            Some(s) => {
                let a = analyze(&s.text);
                s.text.chars().count() < 128 && !a.empty && !a.multiline
            }
            None => key.len() == Some(0),
        })
    }

    fn choose_style(s: &Scalar, a: &Analysis, ctx: Ctx) -> char {
        if s.style.is_none()
            && s.plain_implicit
            && !(ctx.simple_key && (a.empty || a.multiline))
            && a.allow_block_plain
        {
            return ' ';
        }
        if s.style == Some('|') && !ctx.simple_key && a.allow_block {
            return '|';
        }
        if (s.style.is_none() || s.style == Some('\''))
            && a.allow_single_quoted
            && !(ctx.simple_key && a.multiline)
        {
            return '\'';
        }
        '"'
    }

    fn scalar(&mut self, s: &Scalar, ctx: Ctx) {
        let a = analyze(&s.text);
        let split = !ctx.simple_key;
        match Self::choose_style(s, &a, ctx) {
            '"' => self.write_double_quoted(&s.text, split),
            '\'' => self.write_single_quoted(&s.text, split),
            '|' => self.write_literal(&s.text),
            _ => self.write_plain(&s.text, split, ctx.root),
        }
    }

    fn write_plain(&mut self, text: &str, split: bool, root: bool) {
        if root {
            self.open_ended = true;
        }
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write_raw(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut start) = (false, 0);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        let data: String = chars[start..end].iter().collect();
                        self.write_raw(&data);
                    }
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c)) {
                let data: String = chars[start..end].iter().collect();
                self.write_raw(&data);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
            }
        }
    }

    fn write_single_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks, mut start) = (false, false, 0);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column > BEST_WIDTH
                        && split
                        && start != 0
                        && end != chars.len()
                    {
                        self.write_indent();
                    } else {
                        let data: String = chars[start..end].iter().collect();
                        self.write_raw(&data);
                    }
                    start = end;
                }
            } else if breaks {
                if ch.is_none_or(|c| !is_break(c)) {
                    if chars[start] == '\n' {
                        self.write_line_break(None);
                    }
                    for &br in &chars[start..end] {
                        self.write_line_break(Some(br));
                    }
                    self.write_indent();
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c) || c == '\'') && start < end {
                let data: String = chars[start..end].iter().collect();
                self.write_raw(&data);
                start = end;
            }
            if ch == Some('\'') {
                self.write_raw("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len();
        let mut start = 0;
        for end in 0..=n {
            let ch = chars.get(end).copied();
            let needs_escape = ch.is_none_or(|c| {
                matches!(c, '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}')
                    || !(' '..='~').contains(&c)
            });
            if needs_escape {
                if start < end {
                    let data: String = chars[start..end].iter().collect();
                    self.write_raw(&data);
                    start = end;
                }
                if let Some(c) = ch {
                    let data = match c {
                        '\0' => "\\0".to_string(),
                        '\u{7}' => "\\a".to_string(),
                        '\u{8}' => "\\b".to_string(),
                        '\t' => "\\t".to_string(),
                        '\n' => "\\n".to_string(),
                        '\u{b}' => "\\v".to_string(),
                        '\u{c}' => "\\f".to_string(),
                        '\r' => "\\r".to_string(),
                        '\u{1b}' => "\\e".to_string(),
                        '"' => "\\\"".to_string(),
                        '\\' => "\\\\".to_string(),
                        '\u{85}' => "\\N".to_string(),
                        '\u{a0}' => "\\_".to_string(),
                        '\u{2028}' => "\\L".to_string(),
                        '\u{2029}' => "\\P".to_string(),
                        c if (c as u32) <= 0xFF => format!("\\x{:02X}", c as u32),
                        c if (c as u32) <= 0xFFFF => format!("\\u{:04X}", c as u32),
                        c => format!("\\U{:08X}", c as u32),
                    };
                    self.write_raw(&data);
                    start = end + 1;
                }
            }
            if 0 < end
                && end + 1 < n
                && (ch == Some(' ') || start >= end)
                && i64::try_from(self.column).unwrap_or(i64::MAX)
                    + (i64::try_from(end).unwrap_or(0) - i64::try_from(start).unwrap_or(0))
                    > i64::try_from(BEST_WIDTH).unwrap_or(80)
                && split
            {
                let mut data: String = if start < end {
                    chars[start..end].iter().collect()
                } else {
                    String::new()
                };
                data.push('\\');
                if start < end {
                    start = end;
                }
                self.write_raw(&data);
                self.write_indent();
                self.whitespace = false;
                self.indention = false;
                if chars[start] == ' ' {
                    self.write_raw("\\");
                }
            }
        }
        self.write_indicator("\"", false, false, false);
    }

    fn write_literal(&mut self, text: &str) {
        let chars: Vec<char> = text.chars().collect();
        let mut hints = String::new();
        if let (Some(&first), Some(&last)) = (chars.first(), chars.last()) {
            if first == ' ' || is_break(first) {
                hints.push_str(&BEST_INDENT.to_string());
            }
            if !is_break(last) {
                hints.push('-');
            } else if chars.len() == 1 || is_break(chars[chars.len() - 2]) {
                hints.push('+');
            }
        }
        self.write_indicator(&format!("|{hints}"), true, false, false);
        if hints.ends_with('+') {
            self.open_ended = true;
        }
        self.write_line_break(None);
        let (mut breaks, mut start) = (true, 0);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if breaks {
                if ch.is_none_or(|c| !is_break(c)) {
                    for &br in &chars[start..end] {
                        self.write_line_break(Some(br));
                    }
                    if ch.is_some() {
                        self.write_indent();
                    }
                    start = end;
                }
            } else if ch.is_none_or(is_break) {
                let data: String = chars[start..end].iter().collect();
                self.out.push_str(&data);
                if ch.is_none() {
                    self.write_line_break(None);
                }
                start = end;
            }
            if let Some(c) = ch {
                breaks = is_break(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(json: &str) -> String {
        let v: Value = serde_json::from_str(json).unwrap();
        dump(&v).unwrap()
    }

    #[test]
    fn block_mappings_keep_order_and_sequences_are_indentless() {
        assert_eq!(
            y(r#"{"b": 1, "a": [1, 2], "c": {"d": null, "e": true}}"#),
            "b: 1\na:\n- 1\n- 2\nc:\n  d: null\n  e: true\n"
        );
        assert_eq!(
            y(r#"[{"a": 1, "b": 2}, [1, 2], []]"#),
            "- a: 1\n  b: 2\n- - 1\n  - 2\n- []\n"
        );
        assert_eq!(y(r#"{"a": {}, "b": []}"#), "a: {}\nb: []\n");
    }

    #[test]
    fn top_level_plain_scalars_end_the_document() {
        assert_eq!(y(r#""abc""#), "abc\n...\n");
        assert_eq!(y("1"), "1\n...\n");
        assert_eq!(y("null"), "null\n...\n");
        assert_eq!(y(r#""123""#), "'123'\n");
    }

    #[test]
    fn strings_that_resolve_to_other_types_are_quoted() {
        assert_eq!(
            y(
                r#"{"a": "true", "b": "1.5", "c": "", "d": "null", "e": "2020-01-01", "f": "0x1F", "g": "yes", "h": "1e5"}"#
            ),
            "a: 'true'\nb: '1.5'\nc: ''\nd: 'null'\ne: '2020-01-01'\nf: '0x1F'\ng: 'yes'\nh: 1e5\n"
        );
    }

    #[test]
    fn multiline_strings_use_literal_blocks() {
        assert_eq!(y(r#"{"a": "x\ny\n"}"#), "a: |\n  x\n  y\n");
        assert_eq!(y(r#"{"a": "x\ny"}"#), "a: |-\n  x\n  y\n");
        assert_eq!(y(r#"{"a": "x\ny\n\n"}"#), "a: |+\n  x\n  y\n\n...\n");
        assert_eq!(y(r#"{"a": "x\n"}"#), "a: 'x\n\n  '\n");
        assert_eq!(y(r#"{"a": "x \ny"}"#), "a: \"x \\ny\"\n");
    }

    #[test]
    fn special_characters_are_escaped_in_double_quotes() {
        assert_eq!(
            y(r#"{"a": "é", "b": "tab\there", "c": ": x", "d": "it's"}"#),
            "a: \"\\xE9\"\nb: \"tab\\there\"\nc: ': x'\nd: it's\n"
        );
    }

    #[test]
    fn floats_follow_pyyaml() {
        assert_eq!(
            y(r#"{"a": 1.0, "b": 1e17, "c": 0.5}"#),
            "a: 1.0\nb: 1.0e+17\nc: 0.5\n"
        );
    }

    #[test]
    fn long_plain_scalars_fold_at_width_80() {
        let words = vec!["word"; 30].join(" ");
        let out = y(&format!(r#"{{"k": "{words}"}}"#));
        assert_eq!(
            out,
            format!(
                "k: {}\n  {}\n",
                vec!["word"; 16].join(" "),
                vec!["word"; 14].join(" ")
            )
        );
    }

    #[test]
    fn splitlines_counts_like_python() {
        assert_eq!(python_splitlines_count("a\n"), 1);
        assert_eq!(python_splitlines_count("a\r\nb"), 2);
        assert_eq!(python_splitlines_count(""), 0);
        assert_eq!(python_splitlines_count("a\n\n"), 2);
    }
}
