//! The `slugify` filter: python-slugify 8's `slugify(text)` with its default arguments, which
//! Kluctl exposes as a template filter (typically for object names derived from branch names).
//!
//! Steps, in python-slugify's order: apostrophes become `-`, NFKD + ASCII transliteration
//! (`deunicode` stands in for `text-unidecode`; both derive from Text::Unidecode), HTML
//! entity / decimal / hex character references are decoded, NFKD again, lowercase, remaining
//! apostrophes dropped, commas between digits dropped, every run of characters outside
//! `[-a-zA-Z0-9]` becomes `-`, repeated dashes collapse and leading/trailing dashes go.
//! Optional keyword arguments supported: `separator`, `lowercase`, `max_length` (hard cut).
//!
//! Known gap: only the HTML entities `amp`, `lt`, `gt`, `quot` and `nbsp` are decoded (the
//! others produce non-ASCII letters that python-slugify keeps only partially after NFKD).

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// Options of python-slugify that templates may pass as keyword arguments.
#[derive(Debug, Clone)]
pub struct SlugifyOptions {
    /// Word separator (default `-`).
    pub separator: String,
    /// Lowercase the result (default true).
    pub lowercase: bool,
    /// Cut the result to this many characters (0 = no limit).
    pub max_length: usize,
}

impl Default for SlugifyOptions {
    fn default() -> Self {
        Self {
            separator: "-".into(),
            lowercase: true,
            max_length: 0,
        }
    }
}

static ENTITY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"&(amp|lt|gt|quot|nbsp);").unwrap_or_else(|e| panic!("{e}")));
static DECIMAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"&#(\d+);").unwrap_or_else(|e| panic!("{e}")));
static HEX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"&#x([\da-fA-F]+);").unwrap_or_else(|e| panic!("{e}")));
static DISALLOWED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[^-a-zA-Z0-9]+").unwrap_or_else(|e| panic!("{e}")));
static DUP_DASH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"-{2,}").unwrap_or_else(|e| panic!("{e}")));
static QUOTES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"'+").unwrap_or_else(|e| panic!("{e}")));

/// Slugifies `text` like python-slugify.
pub fn slugify(text: &str, opts: &SlugifyOptions) -> String {
    let text = QUOTES.replace_all(text, "-");
    let text: String = text.nfkd().collect();
    let mut text = deunicode::deunicode_with_tofu(&text, "");
    text = ENTITY
        .replace_all(&text, |c: &regex::Captures<'_>| match &c[1] {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "quot" => "\"",
            _ => "\u{a0}",
        })
        .into_owned();
    // Python ignores a failing conversion (out-of-range code point) by leaving the text alone.
    let decode = |digits: &str, radix: u32| u32::from_str_radix(digits, radix).ok().and_then(char::from_u32);
    if DECIMAL
        .find_iter(&text)
        .all(|m| decode(&m.as_str()[2..m.as_str().len() - 1], 10).is_some())
    {
        text = DECIMAL
            .replace_all(&text, |c: &regex::Captures<'_>| {
                decode(&c[1], 10).map(String::from).unwrap_or_default()
            })
            .into_owned();
    }
    if HEX
        .find_iter(&text)
        .all(|m| decode(&m.as_str()[3..m.as_str().len() - 1], 16).is_some())
    {
        text = HEX
            .replace_all(&text, |c: &regex::Captures<'_>| {
                decode(&c[1], 16).map(String::from).unwrap_or_default()
            })
            .into_owned();
    }
    let mut text: String = text.nfkd().collect();
    if opts.lowercase {
        text = text.to_lowercase();
    }
    let text = QUOTES.replace_all(&text, "");
    let text = drop_commas_between_digits(&text);
    let text = DISALLOWED.replace_all(&text, "-");
    let text = DUP_DASH.replace_all(&text, "-");
    let mut text = text.trim_matches('-').to_string();
    if opts.max_length > 0 {
        text = text
            .chars()
            .take(opts.max_length)
            .collect::<String>()
            .trim_matches('-')
            .to_string();
    }
    if opts.separator != "-" {
        text = text.replace('-', &opts.separator);
    }
    text
}

fn drop_commas_between_digits(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = c == ','
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if !between_digits {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> String {
        slugify(t, &SlugifyOptions::default())
    }

    #[test]
    fn slugify_matches_python_slugify_defaults() {
        assert_eq!(s("Hello World!"), "hello-world");
        assert_eq!(s("feature/ABC-123_fix"), "feature-abc-123-fix");
        assert_eq!(s("Ça va très bien"), "ca-va-tres-bien");
        assert_eq!(s("it's 1,000 items"), "it-s-1000-items");
        assert_eq!(s("  --a--b--  "), "a-b");
        assert_eq!(s("a &amp; b"), "a-b");
        assert_eq!(s("&#65;&#x42;c"), "abc");
    }

    #[test]
    fn slugify_honours_separator_and_lowercase() {
        let o = SlugifyOptions {
            separator: "_".into(),
            lowercase: false,
            max_length: 0,
        };
        assert_eq!(slugify("Hello World", &o), "Hello_World");
    }
}
