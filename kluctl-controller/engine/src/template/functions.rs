//! Kluctl's template filters and global functions, registered on every [`super::Renderer`]
//! environment: the `kluctl` extension (`b64encode` … `load_latest_git_commit`), the `time`
//! extension and the `images`/`version` globals.
//!
//! Functions that read files (`load_template`, `load_base64`, `load_sha256`,
//! `load_latest_git_commit`) resolve paths through the renderer's [`SearchPath`], exactly like
//! includes. Functions that need "all variables" (`load_template`, `render`, `get_var`) see every
//! variable known at the call site (globals, context and `set` variables).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use minijinja::value::{Kwargs, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use sha2::{Digest, Sha256};

use super::search::SearchPath;
use super::slugify::{SlugifyOptions, slugify};
use super::{ImageLookup, pyjson, pyyaml, pyyaml_load};

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Registers all Kluctl filters and globals on `env`.
pub fn register(env: &mut Environment<'static>, search: &Arc<SearchPath>, images: &Arc<dyn ImageLookup>) {
    env.add_filter("b64encode", |s: &str| {
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    });
    env.add_filter("b64decode", b64decode);
    env.add_filter("to_yaml", |v: Value| pyyaml::dump(&v));
    env.add_filter("to_json", |v: Value| pyjson::dumps(&v));
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("render", render);
    env.add_filter(
        "sha256",
        |s: Value, digest_len: Option<usize>| -> Result<String, Error> {
            let bytes = match (s.as_str(), s.as_bytes()) {
                (Some(t), _) => t.as_bytes().to_vec(),
                (None, Some(b)) => b.to_vec(),
                _ => return Err(invalid(format!("sha256 expects a string, got {}", s.kind()))),
            };
            Ok(sha256_hex(&bytes, digest_len))
        },
    );
    env.add_filter("slugify", |s: &str, kwargs: Kwargs| -> Result<String, Error> {
        let mut opts = SlugifyOptions::default();
        if let Some(sep) = kwargs.get::<Option<String>>("separator")? {
            opts.separator = sep;
        }
        if let Some(lower) = kwargs.get::<Option<bool>>("lowercase")? {
            opts.lowercase = lower;
        }
        if let Some(max) = kwargs.get::<Option<usize>>("max_length")? {
            opts.max_length = max;
        }
        kwargs.assert_all_used()?;
        Ok(slugify(s, &opts))
    });

    register_jinja2_filters(env);
    env.add_filter(
        "indent",
        |s: &str, w: Option<Value>, f: Option<bool>, b: Option<bool>, kw: Kwargs| indent(s, w, f, b, &kw),
    );
    env.add_function("load_template", |state: &State, path: &str, kwargs: Kwargs| {
        load_template(state, path, &kwargs)
    });
    let sp = Arc::clone(search);
    env.add_function("load_base64", move |path: &str, width: Option<usize>| {
        load_base64(&sp, path, width)
    });
    env.add_function("get_var", |state: &State, path: Value, default: Option<Value>| {
        get_var(state, &path, default)
    });
    env.add_function("merge_dict", |a: Value, b: Value| merge_dict(&a, &b));
    env.add_function("update_dict", |_a: Value, _b: Value| -> Result<Value, Error> {
        Err(invalid("update_dict is not supported: dicts are immutable in this engine, use merge_dict and `set` the result"))
    });
    env.add_function("raise", |msg: Value| -> Result<Value, Error> {
        Err(invalid(msg.to_string()))
    });
    env.add_function("debug_print", |msg: Value| {
        tracing::info!(message = %msg, "debug_print");
        String::new()
    });
    env.add_function("load_sha256", load_sha256);
    env.add_function("render", render);
    let sp = Arc::clone(search);
    env.add_function(
        "load_latest_git_commit",
        move |path: &str, sha_len: Option<usize>| load_latest_git_commit(&sp, path, sha_len),
    );

    register_globals(env, images);
}

/// Jinja2 built-in filters that minijinja lacks or implements differently.
fn register_jinja2_filters(env: &mut Environment<'static>) {
    env.add_filter("urlencode", urlencode);
    env.add_filter(
        "tojson",
        |v: &Value, indent: Option<usize>, kwargs: Kwargs| -> Result<Value, Error> {
            let indent = kwargs.get::<Option<usize>>("indent")?.or(indent);
            kwargs.assert_all_used()?;
            pyjson::jinja_tojson(v, indent).map(Value::from_safe_string)
        },
    );
    env.add_filter("center", |s: &str, width: Option<usize>| {
        center(s, width.unwrap_or(80))
    });
    env.add_filter(
        "truncate",
        |s: &str, l: Option<usize>, k: Option<bool>, e: Option<String>, kw: Kwargs| truncate(s, l, k, e, &kw),
    );
    env.add_filter("wordcount", |s: &str| {
        s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .count()
    });
    env.add_filter("striptags", minijinja_contrib::filters::striptags);
    env.add_filter("filesizeformat", minijinja_contrib::filters::filesizeformat);
    env.add_filter(
        "wordwrap",
        |v: &Value,
         width: Option<usize>,
         break_long_words: Option<bool>,
         wrapstring: Option<String>,
         kwargs: Kwargs| {
            let mut pairs: Vec<(String, Value)> = Vec::new();
            for key in kwargs.args() {
                pairs.push((key.to_string(), kwargs.get::<Value>(key)?));
            }
            if let Some(w) = width {
                pairs.push(("width".into(), Value::from(w)));
            }
            if let Some(b) = break_long_words {
                pairs.push(("break_long_words".into(), Value::from(b)));
            }
            if let Some(w) = wrapstring {
                pairs.push(("wrapstring".into(), Value::from(w)));
            }
            minijinja_contrib::filters::wordwrap(v, pairs.into_iter().collect())
        },
    );
}

/// Jinja2's `urlencode`: strings are percent-quoted with `/` kept; dicts and pair lists become
/// a query string with `+` for spaces.
fn urlencode(v: &Value) -> Result<String, Error> {
    fn quote(s: &str, for_qs: bool) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || (!for_qs && b == b'/') {
                out.push(char::from(b));
            } else if for_qs && b == b' ' {
                out.push('+');
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out
    }
    let text = |x: &Value| {
        if x.kind() == ValueKind::String {
            x.as_str().unwrap_or_default().to_string()
        } else {
            x.to_string()
        }
    };
    match v.kind() {
        ValueKind::Map => {
            let mut parts = Vec::new();
            for k in v.try_iter()? {
                let item = v.get_item(&k)?;
                parts.push(format!(
                    "{}={}",
                    quote(&text(&k), true),
                    quote(&text(&item), true)
                ));
            }
            Ok(parts.join("&"))
        }
        ValueKind::Seq => {
            let mut parts = Vec::new();
            for pair in v.try_iter()? {
                let k = pair.get_item_by_index(0)?;
                let item = pair.get_item_by_index(1)?;
                parts.push(format!(
                    "{}={}",
                    quote(&text(&k), true),
                    quote(&text(&item), true)
                ));
            }
            Ok(parts.join("&"))
        }
        _ => Ok(quote(&text(v), false)),
    }
}

/// Python's `str.center`.
fn center(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if width <= len {
        return s.to_string();
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    format!("{}{s}{}", " ".repeat(left), " ".repeat(marg - left))
}

/// Jinja2's `truncate(length=255, killwords=False, end='...', leeway=5)` (positional or keyword).
fn truncate(
    s: &str,
    length: Option<usize>,
    killwords: Option<bool>,
    end: Option<String>,
    kwargs: &Kwargs,
) -> Result<String, Error> {
    let length = kwargs.get::<Option<usize>>("length")?.or(length).unwrap_or(255);
    let killwords = kwargs
        .get::<Option<bool>>("killwords")?
        .or(killwords)
        .unwrap_or(false);
    let end = kwargs
        .get::<Option<String>>("end")?
        .or(end)
        .unwrap_or_else(|| "...".into());
    let leeway = kwargs.get::<Option<usize>>("leeway")?.unwrap_or(5);
    kwargs.assert_all_used()?;
    let chars: Vec<char> = s.chars().collect();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(invalid("expected length >= len(end) in truncate"));
    }
    if chars.len() <= length + leeway {
        return Ok(s.to_string());
    }
    let head: String = chars[..length - end_len].iter().collect();
    if killwords {
        return Ok(head + &end);
    }
    let cut = head
        .rsplit_once(' ')
        .map_or(head.as_str(), |(a, _)| a)
        .to_string();
    Ok(cut + &end)
}

/// The `time`, `images` and `version` globals.
fn register_globals(env: &mut Environment<'static>, images: &Arc<dyn ImageLookup>) {
    env.add_global(
        "time",
        str_map([
            ("now", Value::from_function(|| SimpleTime::now(false))),
            ("utcnow", Value::from_function(|| SimpleTime::now(true))),
            (
                "parse_iso",
                Value::from_function(|s: &str| SimpleTime::parse_iso(s)),
            ),
            ("second", Value::from(1_000_000_i64)),
            ("minute", Value::from(60_000_000_i64)),
            ("hour", Value::from(3_600_000_000_i64)),
        ]),
    );
    env.add_global("images", Value::from_object(Images(Arc::clone(images))));
    env.add_global(
        "version",
        str_map([
            (
                "semver",
                Value::from_function(|kw: Kwargs| -> Result<String, Error> {
                    let allow: Option<bool> = kw.get("allow_no_nums")?;
                    kw.assert_all_used()?;
                    Ok(format!(
                        "semver(allow_no_nums={})",
                        if allow.unwrap_or(false) { "True" } else { "False" }
                    ))
                }),
            ),
            (
                "prefix",
                Value::from_function(|s: &str, suffix: Option<&str>| match suffix {
                    Some(x) => format!("prefix(\"{s}\", suffix=\"{x}\")"),
                    None => format!("prefix(\"{s}\")"),
                }),
            ),
            ("number", Value::from_function(|| "number()".to_string())),
            ("regex", Value::from_function(|r: &str| format!("regex(\"{r}\")"))),
        ]),
    );
}

/// A template map (insertion-ordered, like a Python dict) from key/value pairs.
pub fn map_value(pairs: impl IntoIterator<Item = (Value, Value)>) -> Value {
    Value::from_object(pairs.into_iter().collect::<indexmap::IndexMap<Value, Value>>())
}

fn str_map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    map_value(pairs.into_iter().map(|(k, v)| (Value::from(k), v)))
}

fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The lowercase hex sha256 of `bytes`, cut to `digest_len` characters when given (Kluctl's
/// `sha256` filter).
pub(crate) fn sha256_hex(bytes: &[u8], digest_len: Option<usize>) -> String {
    let hex = lower_hex(&Sha256::digest(bytes));
    match digest_len {
        Some(n) if n < hex.len() => hex[..n].to_string(),
        _ => hex,
    }
}

fn b64decode(s: &str) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|e| invalid(format!("failed to base64-decode: {e}")))?;
    String::from_utf8(bytes).map_err(|_| invalid("failed to base64-decode: the decoded bytes are not UTF-8"))
}

fn from_yaml(s: &str) -> Result<Value, Error> {
    pyyaml_load::load(s)
}

/// Jinja2's `indent` filter (minijinja's drops a trailing newline, Jinja2's keeps it): lines after
/// the first (and the first with `first=true`) get `width` spaces (or the given string); blank
/// lines only with `blank=true`.
fn indent(
    s: &str,
    width: Option<Value>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: &Kwargs,
) -> Result<String, Error> {
    let width = kwargs.get::<Option<Value>>("width")?.or(width);
    let first = kwargs.get::<Option<bool>>("first")?.or(first);
    let blank = kwargs.get::<Option<bool>>("blank")?.or(blank);
    kwargs.assert_all_used()?;
    let pad = match &width {
        None => "    ".to_string(),
        Some(w) if w.kind() == ValueKind::String => w.as_str().unwrap_or_default().to_string(),
        Some(w) => " ".repeat(
            usize::try_from(w.clone())
                .map_err(|_| invalid("indent width must be a string or a non-negative integer"))?,
        ),
    };
    let text = format!("{s}\n");
    let lines = pyyaml::python_splitlines(&text);
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            if blank.unwrap_or(false) || !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    if first.unwrap_or(false) {
        out.insert_str(0, &pad);
    }
    Ok(out)
}

/// All variables visible at the call site as one map (Jinja2's `context.get_all()`).
fn all_vars(state: &State) -> Value {
    let mut names: Vec<String> = state
        .known_variables()
        .into_iter()
        .map(std::borrow::Cow::into_owned)
        .collect();
    names.sort();
    names.dedup();
    map_value(
        names
            .into_iter()
            .filter_map(|n| state.lookup(&n).map(|v| (Value::from(n), v))),
    )
}

fn with_extra(base: &Value, extra: &[(String, Value)]) -> Result<Value, Error> {
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    for k in base.try_iter()? {
        if extra.iter().any(|(n, _)| k.as_str() == Some(n)) {
            continue;
        }
        let v = base.get_item(&k)?;
        pairs.push((k, v));
    }
    pairs.extend(extra.iter().map(|(k, v)| (Value::from(k.as_str()), v.clone())));
    Ok(map_value(pairs))
}

fn kwargs_pairs(kwargs: &Kwargs) -> Result<Vec<(String, Value)>, Error> {
    let mut out = Vec::new();
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        out.push((key.to_string(), v));
    }
    Ok(out)
}

fn render(state: &State, source: &str) -> Result<String, Error> {
    let ctx = all_vars(state);
    state.env().render_str(source, ctx)
}

fn load_template(state: &State, path: &str, kwargs: &Kwargs) -> Result<String, Error> {
    let extra = kwargs_pairs(kwargs)?;
    render_template_with(state, path, &extra)
}

fn render_template_with(state: &State, path: &str, extra: &[(String, Value)]) -> Result<String, Error> {
    let tmpl = state.get_template(path)?;
    let ctx = with_extra(&all_vars(state), extra)?;
    // Wrapped like an include, so the error names both the loaded file and the call site.
    tmpl.render(ctx)
        .map_err(|e| Error::new(ErrorKind::BadInclude, format!("error in {:?}", tmpl.name())).with_source(e))
}

fn load_sha256(state: &State, path: &str, digest_len: Option<usize>) -> Result<String, Error> {
    if state.lookup("__calc_sha256__").is_some() {
        return Ok("__self_sha256__".into());
    }
    let rendered = render_template_with(state, path, &[("__calc_sha256__".into(), Value::from(true))])?;
    Ok(sha256_hex(rendered.as_bytes(), digest_len))
}

fn load_base64(search: &SearchPath, path: &str, width: Option<usize>) -> Result<String, Error> {
    let file = search.find(path).ok_or_else(|| {
        Error::new(
            ErrorKind::TemplateNotFound,
            format!("template {path:?} not found"),
        )
    })?;
    let bytes = fs_err::read(&file).map_err(|e| invalid(format!("failed to read {path:?}: {e}")))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(match width {
        // textwrap.fill on a text without spaces: hard breaks every `width` characters.
        Some(w) if w > 0 => encoded
            .as_bytes()
            .chunks(w)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => encoded,
    })
}

fn load_latest_git_commit(search: &SearchPath, path: &str, sha_len: Option<usize>) -> Result<String, Error> {
    let file = search
        .find(path)
        .ok_or_else(|| invalid(format!("failed to find {path:?} for load_latest_git_commit")))?;
    let dir = file
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["log", "-1", "--format=%H", "--", &name])
        .output()
        .map_err(|e| invalid(format!("failed to run git for {path:?}: {e}")))?;
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || sha.is_empty() {
        return Err(invalid(format!("no commits found for path: {path}")));
    }
    Ok(match sha_len {
        Some(n) if n < sha.len() => sha[..n].to_string(),
        _ => sha,
    })
}

/// `merge_dict(a, b)`: a deep copy of `a` with `b` merged in (nested dicts merge, the rest of
/// `b` wins). `b` may be `none`.
pub fn merge_dict(a: &Value, b: &Value) -> Result<Value, Error> {
    if a.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "merge_dict expects a dict as first argument, got {}",
            a.kind()
        )));
    }
    if b.is_none() || b.is_undefined() {
        return Ok(a.clone());
    }
    if b.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "merge_dict expects a dict as second argument, got {}",
            b.kind()
        )));
    }
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    for k in a.try_iter()? {
        let v = a.get_item(&k)?;
        pairs.push((k, v));
    }
    for k in b.try_iter()? {
        let bv = b.get_item(&k)?;
        if let Some(slot) = pairs.iter_mut().find(|(ak, _)| *ak == k) {
            slot.1 = if slot.1.kind() == ValueKind::Map && bv.kind() == ValueKind::Map {
                merge_dict(&slot.1, &bv)?
            } else {
                bv
            };
        } else {
            pairs.push((k, bv));
        }
    }
    Ok(map_value(pairs))
}

/// One step of a Kluctl `get_var` path: a key or a list index.
#[derive(Debug, PartialEq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses the simple JSONPath subset Kluctl projects use with `get_var`: `a.b.c`, `$.a`,
/// `a["x-y"]`, `a['x']`, `a[0]`.
fn parse_path(p: &str) -> Result<Vec<PathStep>, Error> {
    let bad = || invalid(format!("invalid json path {p:?}"));
    let mut steps = Vec::new();
    let s = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => i += 1,
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']').ok_or_else(bad)? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                {
                    steps.push(PathStep::Key(q.to_string()));
                } else {
                    steps.push(PathStep::Index(inner.parse().map_err(|_| bad())?));
                }
                i = close + 1;
            }
            _ => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '.' || c == '[')
                    .map_or(chars.len(), |x| x + i);
                steps.push(PathStep::Key(chars[i..end].iter().collect()));
                i = end;
            }
        }
    }
    Ok(steps)
}

fn lookup_path(root: &Value, steps: &[PathStep]) -> Option<Value> {
    let mut cur = root.clone();
    for step in steps {
        cur = match step {
            PathStep::Key(k) if cur.kind() == ValueKind::Map => {
                cur.get_item(&Value::from(k.as_str())).ok()?
            }
            PathStep::Index(i) if cur.kind() == ValueKind::Seq => cur.get_item(&Value::from(*i)).ok()?,
            _ => return None,
        };
        if cur.is_undefined() {
            return None;
        }
    }
    Some(cur)
}

fn get_var(state: &State, path: &Value, default: Option<Value>) -> Result<Value, Error> {
    let paths: Vec<String> = match path.kind() {
        ValueKind::String => vec![path.as_str().unwrap_or_default().to_string()],
        ValueKind::Seq => path.try_iter()?.map(|p| p.to_string()).collect(),
        _ => return Err(invalid("get_var expects a path string or a list of path strings")),
    };
    let vars = all_vars(state);
    for p in &paths {
        if let Some(v) = lookup_path(&vars, &parse_path(p)?) {
            return Ok(v);
        }
    }
    Ok(default.unwrap_or(Value::from(())))
}

/// The `images` global: `images.get_image(name)` asks the caller's [`ImageLookup`].
struct Images(Arc<dyn ImageLookup>);

impl fmt::Debug for Images {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("images")
    }
}

impl Object for Images {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if method != "get_image" {
            return Err(Error::from(ErrorKind::UnknownMethod));
        }
        let (image, _rest): (&str, Rest<Value>) = minijinja::value::from_args(args)?;
        self.0
            .get_image(image)
            .map(Value::from)
            .map_err(|e| invalid(format!("failed to get image {image:?}: {e}")))
    }
}

/// A point in time as Kluctl's `time` extension returns it (naive for `now`/`utcnow`, aware
/// when parsed with an offset or converted with `as_timezone`).
#[derive(Debug, Clone)]
struct SimpleTime {
    civil: jiff::civil::DateTime,
    offset: Option<jiff::tz::Offset>,
}

impl SimpleTime {
    fn now(utc: bool) -> Value {
        let z = if utc {
            jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC)
        } else {
            jiff::Zoned::now()
        };
        Value::from_object(SimpleTime {
            civil: z.datetime(),
            offset: None,
        })
    }

    fn parse_iso(s: &str) -> Result<Value, Error> {
        let bad = |e: &dyn fmt::Display| invalid(format!("invalid isoformat string {s:?}: {e}"));
        if let Ok(ts) = s.parse::<jiff::Timestamp>() {
            // carries an offset; keep the written offset like Python's fromisoformat
            let offset = parse_trailing_offset(s).unwrap_or(jiff::tz::Offset::UTC);
            let civil = offset.to_datetime(ts);
            return Ok(Value::from_object(SimpleTime {
                civil,
                offset: Some(offset),
            }));
        }
        let civil: jiff::civil::DateTime = match s.parse() {
            Ok(dt) => dt,
            Err(e) => s
                .parse::<jiff::civil::Date>()
                .map_err(|_| bad(&e))?
                .to_datetime(jiff::civil::Time::midnight()),
        };
        Ok(Value::from_object(SimpleTime { civil, offset: None }))
    }

    fn instant(&self) -> i128 {
        let offset = self.offset.unwrap_or(jiff::tz::Offset::UTC);
        offset
            .to_timestamp(self.civil)
            .map_or(0, jiff::Timestamp::as_nanosecond)
    }
}

fn parse_trailing_offset(s: &str) -> Option<jiff::tz::Offset> {
    if s.ends_with('Z') || s.ends_with('z') {
        return Some(jiff::tz::Offset::UTC);
    }
    let tail = &s[s.len().saturating_sub(6)..];
    let sign = match tail.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let (h, m) = tail[1..].split_once(':')?;
    let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
    jiff::tz::Offset::from_seconds(secs).ok()
}

impl fmt::Display for SimpleTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.civil;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year(),
            c.month(),
            c.day(),
            c.hour(),
            c.minute(),
            c.second()
        )?;
        let micros = c.subsec_nanosecond() / 1000;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        if let Some(o) = self.offset {
            let secs = o.seconds();
            let sign = if secs < 0 { '-' } else { '+' };
            let secs = secs.abs();
            write!(f, "{sign}{:02}:{:02}", secs / 3600, (secs % 3600) / 60)?;
        }
        Ok(())
    }
}

impl Object for SimpleTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_ref(), f)
    }

    fn custom_cmp(self: &Arc<Self>, other: &minijinja::value::DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Self>()?;
        Some(self.instant().cmp(&other.instant()))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let c = self.civil;
        let no_args = || minijinja::value::from_args::<()>(args);
        match method {
            "weekday" => {
                no_args()?;
                Ok(Value::from(c.weekday().to_monday_zero_offset()))
            }
            "hour" => no_args().map(|()| Value::from(c.hour())),
            "minute" => no_args().map(|()| Value::from(c.minute())),
            "second" => no_args().map(|()| Value::from(c.second())),
            "nanosecond" => no_args().map(|()| Value::from((c.subsec_nanosecond() / 1000) * 1000)),
            "as_timezone" => {
                let (tz,): (&str,) = minijinja::value::from_args(args)?;
                let zone = jiff::tz::TimeZone::get(tz)
                    .map_err(|e| invalid(format!("unknown time zone {tz:?}: {e}")))?;
                // Python treats a naive time as local time when converting.
                let ts = match self.offset {
                    Some(o) => o.to_timestamp(c).map_err(|e| invalid(e.to_string()))?,
                    None => c
                        .to_zoned(jiff::tz::TimeZone::system())
                        .map_err(|e| invalid(e.to_string()))?
                        .timestamp(),
                };
                let offset = zone.to_offset(ts);
                Ok(Value::from_object(SimpleTime {
                    civil: offset.to_datetime(ts),
                    offset: Some(offset),
                }))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_path_supports_dots_brackets_and_indices() {
        assert_eq!(
            parse_path("$.a.b[0]['x-y']").unwrap(),
            vec![
                PathStep::Key("a".into()),
                PathStep::Key("b".into()),
                PathStep::Index(0),
                PathStep::Key("x-y".into())
            ]
        );
        assert!(parse_path("a[x").is_err());
    }

    #[test]
    fn sha256_truncates_to_digest_len() {
        assert_eq!(
            sha256_hex(b"abc", None),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex(b"abc", Some(6)), "ba7816");
    }

    #[test]
    fn merge_dict_merges_nested_dicts_and_replaces_the_rest() {
        let a: Value = serde_json::from_str(r#"{"x": {"a": 1, "b": 2}, "l": [1], "k": 1}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"x": {"b": 3, "c": 4}, "l": [2], "n": 5}"#).unwrap();
        let m = merge_dict(&a, &b).unwrap();
        assert_eq!(
            pyjson::dumps(&m).unwrap(),
            r#"{"x": {"a": 1, "b": 3, "c": 4}, "l": [2], "k": 1, "n": 5}"#
        );
        assert_eq!(
            pyjson::dumps(&a).unwrap(),
            r#"{"x": {"a": 1, "b": 2}, "l": [1], "k": 1}"#
        );
    }

    #[test]
    fn simple_time_prints_isoformat() {
        let v = SimpleTime::parse_iso("2024-03-01T10:20:30+02:00").unwrap();
        assert_eq!(v.to_string(), "2024-03-01T10:20:30+02:00");
        let v = SimpleTime::parse_iso("2024-03-01T10:20:30.5").unwrap();
        assert_eq!(v.to_string(), "2024-03-01T10:20:30.500000");
    }
}
