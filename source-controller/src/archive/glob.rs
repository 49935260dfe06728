//! Shell patterns for one path component, with Go's `path/filepath.Match` semantics.
//!
//! Flux's ignore matcher (a fork of go-git's gitignore) hands every `/`-free piece of a pattern to
//! Go's `filepath.Match`. Rust glob crates differ from it in ways users can hit in `.sourceignore`
//! files: `globset` adds `{a,b}` alternation and `[!x]` negation and rejects `a**b`, `glob` treats
//! `**` specially. So this module implements Go's rules directly:
//!
//! ```text
//!   *        any run of bytes except `/`          [abc] [a-z]  one character in the class
//!   ?        one character except `/`             [^a-z]       one character not in it
//!   \c       the literal c (also inside classes)  anything else matches itself
//! ```
//!
//! A malformed pattern (unclosed or empty class, trailing `\`, bad range) never matches: Go reports
//! `ErrBadPattern` for it and go-git treats that error as "no match". Patterns and names are bytes;
//! `?` and classes consume one UTF-8 character, or one byte of invalid UTF-8 (read as U+FFFD), as
//! Go's decoder does.

/// A compiled component pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Glob {
    /// `None` when the pattern is malformed: it matches nothing.
    chunks: Option<Vec<Chunk>>,
}

/// A run of single-character items, optionally preceded by `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Chunk {
    star: bool,
    items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Byte(u8),
    AnyChar,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Go's decoder result for bytes that are not valid UTF-8.
const REPLACEMENT: char = '\u{FFFD}';

impl Glob {
    /// Compiles `pattern`; a malformed pattern compiles to one that matches nothing.
    pub(super) fn new(pattern: &[u8]) -> Self {
        Glob {
            chunks: compile(pattern),
        }
    }

    /// Whether `name` matches the whole pattern.
    pub(super) fn matches(&self, name: &[u8]) -> bool {
        let Some(chunks) = &self.chunks else {
            return false;
        };
        let mut name = name;
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            if chunk.star && chunk.items.is_empty() {
                // A trailing `*` takes the rest, unless the rest crosses a separator.
                return !name.contains(&b'/');
            }
            // As in Go: each chunk takes its leftmost fit (no backtracking into earlier chunks);
            // only the last chunk must also reach the end of the name.
            if let Some(rest) = chunk.match_prefix(name)
                && (rest.is_empty() || !last)
            {
                name = rest;
                continue;
            }
            if !chunk.star {
                return false;
            }
            let mut placed = None;
            for skip in 1..=name.len() {
                if name[skip - 1] == b'/' {
                    break;
                }
                if let Some(rest) = chunk.match_prefix(&name[skip..])
                    && (rest.is_empty() || !last)
                {
                    placed = Some(rest);
                    break;
                }
            }
            match placed {
                Some(rest) => name = rest,
                None => return false,
            }
        }
        name.is_empty()
    }
}

impl Chunk {
    /// Matches the items against the start of `s`; returns what is left.
    fn match_prefix<'a>(&self, mut s: &'a [u8]) -> Option<&'a [u8]> {
        for item in &self.items {
            let (&first, _) = s.split_first()?;
            match item {
                Item::Byte(b) => {
                    if first != *b {
                        return None;
                    }
                    s = &s[1..];
                }
                Item::AnyChar => {
                    if first == b'/' {
                        return None;
                    }
                    s = &s[decode(s).1..];
                }
                Item::Class { negated, ranges } => {
                    let (c, width) = decode(s);
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    if inside == *negated {
                        return None;
                    }
                    s = &s[width..];
                }
            }
        }
        Some(s)
    }
}

/// Splits a pattern into chunks (`*` runs separate them) and parses each; `None` if malformed.
fn compile(mut pattern: &[u8]) -> Option<Vec<Chunk>> {
    let mut chunks = Vec::new();
    while !pattern.is_empty() {
        let stars = pattern.iter().take_while(|&&b| b == b'*').count();
        pattern = &pattern[stars..];
        let end = chunk_end(pattern);
        chunks.push(Chunk {
            star: stars > 0,
            items: parse_items(&pattern[..end])?,
        });
        pattern = &pattern[end..];
    }
    Some(chunks)
}

/// Length of the chunk at the start of `pattern`: up to the next `*` outside a class.
fn chunk_end(pattern: &[u8]) -> usize {
    let mut in_class = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            // The escaped byte is part of the chunk; a trailing `\` is caught by the parser.
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'*' if !in_class => return i,
            _ => {}
        }
        i += 1;
    }
    pattern.len()
}

fn parse_items(mut chunk: &[u8]) -> Option<Vec<Item>> {
    let mut items = Vec::new();
    while let Some((&first, rest)) = chunk.split_first() {
        chunk = rest;
        match first {
            b'[' => {
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut ranges = Vec::new();
                loop {
                    if chunk.first() == Some(&b']') && !ranges.is_empty() {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        (hi, chunk) = class_char(&chunk[1..])?;
                    }
                    ranges.push((lo, hi));
                }
                items.push(Item::Class { negated, ranges });
            }
            b'?' => items.push(Item::AnyChar),
            b'\\' => {
                let (&escaped, rest) = chunk.split_first()?;
                chunk = rest;
                items.push(Item::Byte(escaped));
            }
            other => items.push(Item::Byte(other)),
        }
    }
    Some(items)
}

/// One (possibly escaped) character of a class; the class must continue after it.
fn class_char(chunk: &[u8]) -> Option<(char, &[u8])> {
    let chunk = match chunk.first() {
        None | Some(b'-' | b']') => return None,
        Some(b'\\') => &chunk[1..],
        Some(_) => chunk,
    };
    if chunk.is_empty() {
        return None;
    }
    let (c, width) = decode(chunk);
    if c == REPLACEMENT && width == 1 {
        return None;
    }
    let rest = &chunk[width..];
    if rest.is_empty() {
        return None;
    }
    Some((c, rest))
}

/// The first character of a non-empty `s` and its width; invalid UTF-8 is U+FFFD of width 1.
fn decode(s: &[u8]) -> (char, usize) {
    let head = &s[..s.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
    };
    valid
        .chars()
        .next()
        .map_or((REPLACEMENT, 1), |c| (c, c.len_utf8()))
}

#[cfg(test)]
mod tests {
    use super::Glob;

    /// (pattern, name, matches): Go's own `filepath.Match` table plus byte/escape edge cases.
    const CASES: &[(&str, &str, bool)] = &[
        ("abc", "abc", true),
        ("*", "abc", true),
        ("*c", "abc", true),
        ("a*", "a", true),
        ("a*", "abc", true),
        ("a*", "ab/c", false),
        ("a*/b", "abc/b", true),
        ("a*/b", "a/c/b", false),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true),
        ("a*b?c*x", "abxbbxdbxebxczzy", false),
        ("ab[c]", "abc", true),
        ("ab[b-d]", "abc", true),
        ("ab[e-g]", "abc", false),
        ("ab[^c]", "abc", false),
        ("ab[^b-d]", "abc", false),
        ("ab[^e-g]", "abc", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "ab", false),
        ("a?b", "a☺b", true),
        ("a[^a]b", "a☺b", true),
        ("a???b", "a☺b", false),
        ("a[^a][^a][^a]b", "a☺b", false),
        ("[a-ζ]*", "α", true),
        ("*[a-ζ]", "A", false),
        ("a?b", "a/b", false),
        ("a*b", "a/b", false),
        ("[\\]a]", "]", true),
        ("[\\-]", "-", true),
        ("[x\\-]", "x", true),
        ("[x\\-]", "-", true),
        ("[x\\-]", "z", false),
        ("[\\-x]", "x", true),
        ("[\\-x]", "-", true),
        ("[\\-x]", "a", false),
        // Malformed patterns never match, whatever the name.
        ("[]a]", "]", false),
        ("[-]", "-", false),
        ("[x-]", "x", false),
        ("[x-]", "-", false),
        ("[x-]", "z", false),
        ("[-x]", "x", false),
        ("[-x]", "-", false),
        ("[-x]", "a", false),
        ("\\", "a", false),
        ("[a-b-c]", "a", false),
        ("[", "a", false),
        ("[^", "a", false),
        ("[^bc", "a", false),
        ("a[", "a", false),
        ("a[", "ab", false),
        ("a[", "x", false),
        ("a/b[", "x", false),
        ("*x", "xxx", true),
        // Go syntax, not shell/globset syntax: no `{}` alternation, `!` is not class negation.
        ("{a,b}", "a", false),
        ("{a,b}", "{a,b}", true),
        ("[!a]", "!", true),
        ("[!a]", "b", false),
        // `**` inside one component is just two stars.
        ("**.txt", "foo.txt", true),
        ("foo**", "foobar", true),
        ("**", "anything", true),
        ("", "", true),
        ("", "a", false),
        // A space escaped by `\ ` is literal.
        ("a\\ ", "a ", true),
    ];

    #[test]
    fn go_filepath_match_table() {
        for &(pattern, name, want) in CASES {
            let got = Glob::new(pattern.as_bytes()).matches(name.as_bytes());
            assert_eq!(got, want, "pattern {pattern:?} against {name:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_one_replacement_character() {
        assert!(Glob::new(b"a?b").matches(b"a\xffb"));
        assert!(Glob::new(b"a[^x]b").matches(b"a\xffb"));
        assert!(Glob::new("a[\u{FFFD}]b".as_bytes()).matches(b"a\xffb"));
        assert!(!Glob::new(b"a?b").matches(b"a\xff\xffb"));
        // An invalid byte inside a class is a malformed pattern.
        assert!(!Glob::new(b"[\xff]").matches(b"\xff"));
    }
}
