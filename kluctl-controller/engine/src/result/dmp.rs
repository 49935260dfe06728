//! The diff-match-patch delta text Kluctl's Go library reads (tab-separated `=n` keep, `-n` drop,
//! `+text` insert, counts in characters), written and read here: no crate writes that format.

use std::fmt::Write as _;

/// Characters diff-match-patch leaves unescaped in delta inserts (besides letters, digits and
/// `-_.`), matching Go's `url.QueryEscape` plus the library's unescape list; space stays a space.
const DELTA_PLAIN: &str = "-_.!~'();/?:@&=+$,#* ";

/// How many units (characters, words or segments) the differing middle of the two texts may
/// have, both sides together, for a diff in those units; beyond it the next coarser unit is
/// tried, and beyond the coarsest the middle is replaced whole. Myers' diff costs (N+M)·D (D the
/// edit distance, at most N+M), so this keeps the worst case (unrelated texts) at about 30
/// million steps.
const UNIT_LIMIT: usize = 8_192;

/// The diff-match-patch delta that turns `from` into `to`.
///
/// Deterministic: the same texts give the same delta on any machine under any load (stored
/// results must not depend on either). The work is bounded by the size of the part that differs
/// (the texts without their common prefix and suffix), not by a clock: a character diff while
/// that middle has at most 8192 characters, else a diff of words (runs of letters and digits,
/// every other character alone), else of segments (text up to and including each `,` `{` `}`
/// `[` `]`: the members of compact JSON) while there are at most 8192 of them, else the middle
/// replaced whole. Counts are always in characters, so every mode gives a delta Kluctl reads.
pub fn encode_delta(from: &str, to: &str) -> String {
    use similar::{Algorithm, capture_diff_slices};
    let a: Vec<char> = from.chars().collect();
    let b: Vec<char> = to.chars().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut delta = Delta::default();
    if a_mid.len() + b_mid.len() <= UNIT_LIMIT {
        // Over the whole texts: Myers trims the common ends itself, so this is the edit script
        // of the middle, the one earlier versions stored.
        let (a_units, b_units): (Vec<&[char]>, Vec<&[char]>) = (a.chunks(1).collect(), b.chunks(1).collect());
        delta.diff(&a_units, &b_units, capture_diff_slices(Algorithm::Myers, &a, &b));
        return delta.finish();
    }
    delta.keep(prefix);
    let splits: [fn(&[char], usize) -> usize; 2] = [word_len, segment_len];
    let coarsest = splits.iter().find_map(|split| {
        let (a_units, b_units) = (units(a_mid, *split), units(b_mid, *split));
        (a_units.len() + b_units.len() <= UNIT_LIMIT).then_some((a_units, b_units))
    });
    if let Some((a_units, b_units)) = coarsest {
        let ops = capture_diff_slices(Algorithm::Myers, &a_units, &b_units);
        delta.diff(&a_units, &b_units, ops);
    } else {
        delta.drop(a_mid.len());
        delta.insert(b_mid);
    }
    delta.keep(suffix);
    delta.finish()
}

/// The length of the word at the start of `text`: a run of letters and digits, or one other
/// character.
fn word_len(text: &[char], start: usize) -> usize {
    if text[start].is_alphanumeric() {
        text[start..].iter().take_while(|c| c.is_alphanumeric()).count()
    } else {
        1
    }
}

/// The length of the segment at `start`: up to and including the next `,` `{` `}` `[` `]`.
fn segment_len(text: &[char], start: usize) -> usize {
    text[start..]
        .iter()
        .position(|c| matches!(c, ',' | '{' | '}' | '[' | ']'))
        .map_or(text.len() - start, |i| i + 1)
}

/// `text` cut into units by `len` (the length of the unit at an index).
fn units(text: &[char], len: fn(&[char], usize) -> usize) -> Vec<&[char]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let n = len(text, start);
        out.push(&text[start..start + n]);
        start += n;
    }
    out
}

/// One operation of a delta.
enum Part {
    /// `=n`: keep `n` characters.
    Keep(usize),
    /// `-n`: drop `n` characters.
    Drop(usize),
    /// `+text`: insert text (already escaped).
    Insert(String),
}

/// A delta being written: adjacent operations of one kind are merged, empty ones left out.
#[derive(Default)]
struct Delta {
    parts: Vec<Part>,
}

impl Delta {
    /// Adds the edit script `ops` of units `a` into units `b`, counted in characters.
    fn diff(&mut self, a: &[&[char]], b: &[&[char]], ops: Vec<similar::DiffOp>) {
        let chars = |units: &[&[char]]| units.iter().map(|u| u.len()).sum::<usize>();
        for op in ops {
            let (tag, old, new) = op.as_tag_tuple();
            if tag == similar::DiffTag::Equal {
                self.keep(chars(&a[old]));
                continue;
            }
            self.drop(chars(&a[old]));
            self.insert(&b[new].concat());
        }
    }

    fn keep(&mut self, n: usize) {
        match self.parts.last_mut() {
            _ if n == 0 => {}
            Some(Part::Keep(k)) => *k += n,
            _ => self.parts.push(Part::Keep(n)),
        }
    }

    fn drop(&mut self, n: usize) {
        match self.parts.last_mut() {
            _ if n == 0 => {}
            Some(Part::Drop(k)) => *k += n,
            _ => self.parts.push(Part::Drop(n)),
        }
    }

    fn insert(&mut self, chars: &[char]) {
        if chars.is_empty() {
            return;
        }
        if !matches!(self.parts.last(), Some(Part::Insert(_))) {
            self.parts.push(Part::Insert(String::new()));
        }
        let Some(Part::Insert(s)) = self.parts.last_mut() else {
            return;
        };
        for c in chars {
            if c.is_ascii_alphanumeric() || DELTA_PLAIN.contains(*c) {
                s.push(*c);
            } else {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(s, "%{byte:02X}");
                }
            }
        }
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            let _ = match part {
                Part::Keep(n) => write!(out, "={n}"),
                Part::Drop(n) => write!(out, "-{n}"),
                Part::Insert(s) => write!(out, "+{s}"),
            };
        }
        out
    }
}

/// Applies a diff-match-patch delta to `from`.
///
/// # Errors
/// A malformed token or counts that do not fit `from` (as a message).
pub fn decode_delta(from: &str, delta: &str) -> Result<String, String> {
    let src: Vec<char> = from.chars().collect();
    let mut pos = 0usize;
    let mut out = String::with_capacity(from.len());
    for token in delta.split('\t').filter(|t| !t.is_empty()) {
        let mut chars = token.chars();
        let op = chars.next().unwrap_or_default();
        let rest = chars.as_str();
        match op {
            '+' => out.push_str(&percent_decode(rest)?),
            '=' | '-' => {
                let n: usize = rest
                    .parse()
                    .map_err(|_| format!("invalid count in delta token {token:?}"))?;
                let end = pos
                    .checked_add(n)
                    .filter(|&end| end <= src.len())
                    .ok_or_else(|| format!("delta token {token:?} runs past the end of the text"))?;
                if op == '=' {
                    out.extend(&src[pos..end]);
                }
                pos = end;
            }
            _ => return Err(format!("invalid delta operation in token {token:?}")),
        }
    }
    if pos != src.len() {
        return Err(format!("delta covers {pos} of {} characters", src.len()));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("truncated escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("invalid escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escaped text is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_round_trips_and_rejects_mismatched_text() {
        let a = "hello wörld {\"k\": 1}";
        let b = "hallo wörld! {\"k\": 22}\n";
        let d = encode_delta(a, b);
        assert_eq!(decode_delta(a, &d).unwrap(), b);
        assert!(decode_delta("short", &d).is_err());
        assert!(decode_delta(a, "?3").is_err());
        // Malformed stored deltas are errors, not panics.
        assert!(decode_delta(a, "\u{e9}3").is_err());
        assert!(decode_delta(a, &format!("=1\t={}", usize::MAX)).is_err());
    }

    /// The deltas earlier versions (character diff under a wall-clock deadline) stored for
    /// small texts are unchanged.
    #[test]
    fn small_texts_give_the_character_diff_delta_as_before() {
        let cases = [
            (
                "hello wörld {\"k\": 1}",
                "hallo wörld! {\"k\": 22}\n",
                "=1\t-1\t+a\t=9\t+!\t=7\t-1\t+22\t=1\t+%0A",
            ),
            (
                "{\"a\":\"1\",\"b\":[1,2,3]}",
                "{\"a\":\"2\",\"b\":[1,3],\"c\":\"ü x\"}",
                "=6\t-1\t+2\t=8\t-2\t=3\t+,%22c%22:%22%C3%BC x%22\t=1",
            ),
            ("abcabba", "cbabac", "-2\t=1\t-1\t=1\t+a\t=2\t+c"),
        ];
        for (a, b, want) in cases {
            assert_eq!(encode_delta(a, b), want, "{a:?} -> {b:?}");
            assert_eq!(decode_delta(a, want).unwrap(), b);
        }
    }

    /// A compact JSON object of `n` members `"kI":"value-I-<tag>"`, with the tag `changed`
    /// for every 97th member.
    fn members(n: usize, changed: &str) -> String {
        let body: Vec<String> = (0..n)
            .map(|i| {
                let tag = if i % 97 == 50 { changed } else { "same" };
                format!("\"k{i}\":\"value-{i}-{tag}\"")
            })
            .collect();
        format!("{{{}}}", body.join(","))
    }

    #[test]
    fn larger_texts_diff_by_words_then_segments_and_the_same_every_time() {
        for (n, want_insert) in [
            (400, "+newtag\t"),
            (3_000, "+%22k147%22:%22value-147-newtag%22,\t"),
        ] {
            let (a, b) = (members(n, "oldtag"), members(n, "newtag"));
            assert!(a.chars().count() > UNIT_LIMIT);
            let d = encode_delta(&a, &b);
            assert_eq!(decode_delta(&a, &d).unwrap(), b, "{n} members");
            assert!(d.contains(want_insert), "{n} members: {}", &d[..80.min(d.len())]);
            assert!(
                d.len() < b.len() / 10,
                "{n} members: delta {} for {}",
                d.len(),
                b.len()
            );
            assert_eq!(encode_delta(&a, &b), d, "same input, same delta");
        }
    }

    #[test]
    fn unrelated_huge_texts_replace_the_middle_whole() {
        let (a, b) = ("x".repeat(20 * UNIT_LIMIT), "y".repeat(20 * UNIT_LIMIT));
        let (a, b) = (format!("[1,{a}]"), format!("[1,{b}]"));
        let d = encode_delta(&a, &b);
        assert_eq!(decode_delta(&a, &d).unwrap(), b);
        assert_eq!(
            d,
            format!("=3\t-{}\t+{}\t=1", 20 * UNIT_LIMIT, "y".repeat(20 * UNIT_LIMIT))
        );
    }
}
