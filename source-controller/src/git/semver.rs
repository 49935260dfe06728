//! Semantic-version constraints with the rules of Go's Masterminds/semver v3, which Flux uses for
//! `spec.ref.semver`, matched against [`semver::Version`].
//!
//! Hand-written because no Rust crate implements these rules: the `semver` crate follows Cargo
//! (a bare `1.2.3` means `^1.2.3`, prereleases only match on the same `major.minor.patch`), and the
//! npm-style crates differ in how wildcards, partial versions and prereleases behave. A user who
//! wrote `~1.2` or `1.2.x` for Flux must select the same tag here.
//!
//! ```text
//!   "1.2 - 1.4.5 || ^2.0, !=2.1.0"
//!     │               └─ AND group: ^2.0 and !=2.1.0 (comma or whitespace separates)
//!     └─ AND group: >=1.2 and <=1.4.5 (hyphen range rewritten)
//!   a version matches when any OR group matches; a prerelease version only matches a group
//!   that itself names a prerelease
//! ```
//!
//! The rules, as Masterminds documents and implements them:
//! - A bare version is `=`: `1.2.3` matches exactly that version. A partial or wildcard version
//!   (`1.2`, `1.2.x`, `1`, `*`) behaves like `~` over the missing parts.
//! - `!=`, `>`, `<`, `>=` (`=>`), `<=` (`=<`); with a partial version `>1.2` means "above every
//!   1.2.z" and `<=1.2` means "up to every 1.2.z".
//! - `~1.2.3` is `>=1.2.3 <1.3.0`; `~1` is `>=1.0.0 <2.0.0`; `~>` is the same as `~`.
//! - `^1.2.3` is `>=1.2.3 <2.0.0`; `^0.2.3` is `>=0.2.3 <0.3.0`; `^0.0.3` is `=0.0.3`.
//! - `v` prefixes are accepted on versions and tags; build metadata never affects ordering.
//!
//! One deliberate deviation: `^*` matches every release, as the Masterminds documentation says
//! (its code only accepts `0.0.0` there).

use std::cmp::Ordering;
use std::fmt;

use semver::{BuildMetadata, Prerelease, Version};

/// Why a constraint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("improper semver constraint '{constraint}': {reason}")]
pub struct ConstraintError {
    /// The constraint as written.
    pub constraint: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed constraint: OR groups of AND-ed comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraints {
    groups: Vec<Group>,
    original: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    comparators: Vec<Comparator>,
    /// True when a comparator of the group names a prerelease; only then do prerelease versions
    /// take part.
    includes_prerelease: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// No operator or `=`: exact, or `~` when the version is partial.
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    /// The version with missing parts filled with zeros.
    version: Version,
    /// Some part of the version was missing or a wildcard.
    dirty: bool,
    /// The major version was given and the minor was missing or a wildcard (`1`, `1.x`).
    minor_dirty: bool,
    /// Major and minor were given and the patch was missing or a wildcard (`1.2`, `1.2.x`).
    patch_dirty: bool,
    /// The major version itself was a wildcard (`*`, `x`).
    any: bool,
}

impl Constraints {
    /// Parses a Masterminds-style constraint such as `>=1.0.0 <2.0.0 || ~3.1`.
    ///
    /// # Errors
    /// When a group is empty or a comparison cannot be read.
    pub fn parse(input: &str) -> Result<Self, ConstraintError> {
        let fail = |reason: &str| ConstraintError {
            constraint: input.to_string(),
            reason: reason.to_string(),
        };
        let groups = input
            .split("||")
            .map(|group| parse_group(group).map_err(|reason| fail(&reason)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Constraints {
            groups,
            original: input.to_string(),
        })
    }

    /// True when `version` satisfies at least one OR group.
    pub fn matches(&self, version: &Version) -> bool {
        self.groups.iter().any(|group| {
            (version.pre.is_empty() || group.includes_prerelease)
                && group.comparators.iter().all(|c| c.matches(version))
        })
    }
}

impl fmt::Display for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl std::str::FromStr for Constraints {
    type Err = ConstraintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Constraints::parse(s)
    }
}

/// Parses a version the lenient way Masterminds' `NewVersion` does, as Flux reads tag names:
/// an optional `v`, one to three numeric parts (missing ones are zero, leading zeros are
/// tolerated), then an optional prerelease and build metadata. `None` for anything else.
pub fn parse_version(text: &str) -> Option<Version> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let (rest, build) = match text.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (text, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let mut numbers = [0_u64; 3];
    for (i, part) in core.split('.').enumerate() {
        if i == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        numbers[i] = part.parse().ok()?;
    }
    let mut version = Version::new(numbers[0], numbers[1], numbers[2]);
    if let Some(pre) = pre {
        version.pre = Prerelease::new(pre).ok().filter(|p| !p.is_empty())?;
    }
    if let Some(build) = build {
        version.build = BuildMetadata::new(build).ok().filter(|b| !b.is_empty())?;
    }
    Some(version)
}

fn parse_group(group: &str) -> Result<Group, String> {
    let mut comparators = Vec::new();
    let mut rest = group.trim_start();
    if rest.is_empty() {
        return Err("empty constraint group".to_string());
    }
    loop {
        let (op, after_op) = scan_op(rest);
        let (partial, after_version) = scan_version(after_op.trim_start())?;
        let mut after = after_version;
        // Hyphen range `A - B` (spaces around the hyphen required): `>=A, <=B`.
        let trimmed = after.trim_start();
        if op.is_none()
            && trimmed.len() < after.len()
            && let Some(upper_text) = trimmed.strip_prefix('-')
            && upper_text.starts_with(char::is_whitespace)
        {
            let (upper, after_upper) = scan_version(upper_text.trim_start())?;
            comparators.push(partial.comparator(Op::GreaterEqual));
            comparators.push(upper.comparator(Op::LessEqual));
            after = after_upper;
        } else {
            comparators.push(partial.comparator(op.unwrap_or(Op::Equal)));
        }
        let trimmed = after.trim_start();
        if trimmed.is_empty() {
            break;
        }
        if let Some(next) = trimmed.strip_prefix(',') {
            rest = next.trim_start();
            if rest.is_empty() {
                return Err("trailing comma".to_string());
            }
        } else if trimmed.len() < after.len() {
            rest = trimmed;
        } else {
            return Err(format!("unexpected text '{trimmed}'"));
        }
    }
    let includes_prerelease = comparators.iter().any(|c| !c.version.pre.is_empty());
    Ok(Group {
        comparators,
        includes_prerelease,
    })
}

fn scan_op(s: &str) -> (Option<Op>, &str) {
    for (token, op) in [
        ("!=", Op::NotEqual),
        (">=", Op::GreaterEqual),
        ("=>", Op::GreaterEqual),
        ("<=", Op::LessEqual),
        ("=<", Op::LessEqual),
        ("~>", Op::Tilde),
        ("=", Op::Equal),
        (">", Op::Greater),
        ("<", Op::Less),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ] {
        if let Some(rest) = s.strip_prefix(token) {
            return (Some(op), rest);
        }
    }
    (None, s)
}

/// A version as written in a constraint, before missing parts are filled in.
struct Partial {
    parts: Vec<Option<u64>>,
    pre: Prerelease,
}

impl Partial {
    fn comparator(&self, op: Op) -> Comparator {
        // Parts after the first wildcard are ignored, as in `1.x.3`.
        let given: Vec<u64> = self.parts.iter().map_while(|p| *p).collect();
        let get = |i: usize| given.get(i).copied().unwrap_or(0);
        let mut version = Version::new(get(0), get(1), get(2));
        version.pre = self.pre.clone();
        Comparator {
            op,
            version,
            dirty: given.len() < 3,
            any: given.is_empty(),
            minor_dirty: given.len() == 1,
            patch_dirty: given.len() == 2,
        }
    }
}

fn scan_version(s: &str) -> Result<(Partial, &str), String> {
    let body = s.strip_prefix('v').unwrap_or(s);
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '*')))
        .unwrap_or(body.len());
    let (text, rest) = body.split_at(end);
    if text.is_empty() {
        return Err(if s.is_empty() {
            "missing version".to_string()
        } else {
            format!("expected a version at '{s}'")
        });
    }
    let (without_build, build) = match text.split_once('+') {
        Some((t, b)) => (t, Some(b)),
        None => (text, None),
    };
    let (core, pre) = match without_build.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (without_build, None),
    };
    let mut parts = Vec::new();
    for part in core.split('.') {
        let value = match part {
            "x" | "X" | "*" => None,
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Some(
                digits
                    .parse::<u64>()
                    .map_err(|_| format!("version part '{digits}' is too large"))?,
            ),
            other => return Err(format!("invalid version part '{other}' in '{text}'")),
        };
        parts.push(value);
    }
    if parts.len() > 3 {
        return Err(format!("version '{text}' has more than three parts"));
    }
    let pre = match pre {
        Some(p) => Prerelease::new(p)
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("invalid prerelease '{p}' in '{text}'"))?,
        None => Prerelease::EMPTY,
    };
    if let Some(b) = build
        && BuildMetadata::new(b).map_or(true, |b| b.is_empty())
    {
        return Err(format!("invalid build metadata '{b}' in '{text}'"));
    }
    Ok((Partial { parts, pre }, rest))
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.op {
            Op::Equal if self.dirty => self.tilde(v),
            Op::Equal => cmp(v, c) == Ordering::Equal,
            Op::NotEqual => self.not_equal(v),
            Op::Greater => self.greater(v),
            Op::Less => cmp(v, c) == Ordering::Less,
            Op::GreaterEqual => cmp(v, c) != Ordering::Less,
            Op::LessEqual => self.less_equal(v),
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    fn not_equal(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.any {
            return false;
        }
        if self.dirty {
            if v.major != c.major {
                return true;
            }
            if self.minor_dirty {
                return false;
            }
            if v.minor != c.minor {
                return true;
            }
            // `!=1.2.x`: every 1.2.z release is excluded; prereleases differ by their tag.
            return v.pre != c.pre;
        }
        cmp(v, c) != Ordering::Equal
    }

    fn greater(&self, v: &Version) -> bool {
        let c = &self.version;
        if !self.dirty {
            return cmp(v, c) == Ordering::Greater;
        }
        if self.any {
            // `>*` is `>0.0.0`.
            return cmp(v, c) == Ordering::Greater;
        }
        match v.major.cmp(&c.major) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal if self.minor_dirty => false,
            Ordering::Equal => v.minor > c.minor,
        }
    }

    fn less_equal(&self, v: &Version) -> bool {
        let c = &self.version;
        if !self.dirty {
            return cmp(v, c) != Ordering::Greater;
        }
        if self.any {
            return true;
        }
        if v.major > c.major {
            return false;
        }
        !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.any {
            return true;
        }
        if cmp(v, c) == Ordering::Less {
            return false;
        }
        // `~0.0.0` accepts everything, like `>=0.0.0`.
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.dirty {
            return true;
        }
        v.major == c.major && (self.minor_dirty || v.minor == c.minor)
    }

    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.any {
            return true;
        }
        if cmp(v, c) == Ordering::Less {
            return false;
        }
        if c.major > 0 || self.minor_dirty {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        v.patch == c.patch
    }
}

/// Masterminds ordering: numbers, then prerelease; build metadata is ignored.
fn cmp(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_version(s).unwrap_or_else(|| panic!("test version '{s}' does not parse"))
    }

    /// (constraint, version, expected): cases taken from the behaviour Masterminds documents in
    /// its README and exercises in its tests, restated here.
    const CASES: &[(&str, &str, bool)] = &[
        // Bare versions are exact; `=` is the same.
        ("1.2.3", "1.2.3", true),
        ("1.2.3", "1.2.4", false),
        ("=1.2.3", "1.2.3", true),
        ("v1.2.3", "1.2.3", true),
        ("1.2.3", "v1.2.3", true),
        ("1.2.3", "1.2.3+build.5", true),
        // Partial and wildcard versions: a range over the missing parts.
        ("1.2", "1.2.0", true),
        ("1.2", "1.2.9", true),
        ("1.2", "1.3.0", false),
        ("1.2.x", "1.2.7", true),
        ("1.2.x", "1.3.0", false),
        ("1", "1.9.9", true),
        ("1", "2.0.0", false),
        ("1.x", "1.4.0", true),
        ("1.X", "0.9.0", false),
        ("*", "0.0.1", true),
        ("*", "12.3.4", true),
        ("x", "3.0.0", true),
        ("*", "1.0.0-alpha", false),
        // Not equal.
        ("!=1.2.3", "1.2.4", true),
        ("!=1.2.3", "1.2.3", false),
        ("!=1.2.x", "1.2.5", false),
        ("!=1.2.x", "1.3.0", true),
        ("!=1.x", "1.5.0", false),
        ("!=1.x", "2.0.0", true),
        // Ordering operators.
        (">1.2.3", "1.2.4", true),
        (">1.2.3", "1.2.3", false),
        (">1.2", "1.2.9", false),
        (">1.2", "1.3.0", true),
        (">1", "1.9.0", false),
        (">1", "2.0.0", true),
        ("<1.2.3", "1.2.2", true),
        ("<1.2.3", "1.2.3", false),
        ("<1.2", "1.1.9", true),
        ("<1.2", "1.2.0", false),
        (">=1.2.3", "1.2.3", true),
        (">=1.2.3", "1.2.2", false),
        ("=>1.2.3", "2.0.0", true),
        (">= 1.2", "1.2.0", true),
        ("<=1.2.3", "1.2.3", true),
        ("<=1.2.3", "1.2.4", false),
        ("<=1.2", "1.2.9", true),
        ("<=1.2", "1.3.0", false),
        ("=<1", "1.9.9", true),
        ("<=1", "2.0.0", false),
        // Tilde: patch-level changes (minor-level when only the major is given).
        ("~1.2.3", "1.2.3", true),
        ("~1.2.3", "1.2.9", true),
        ("~1.2.3", "1.3.0", false),
        ("~1.2.3", "1.2.2", false),
        ("~1.2", "1.2.0", true),
        ("~1.2", "1.3.0", false),
        ("~1", "1.9.0", true),
        ("~1", "2.0.0", false),
        ("~1.x", "1.5.5", true),
        ("~>2.1", "2.1.4", true),
        ("~>2.1", "2.2.0", false),
        ("~0.0.0", "5.0.0", true),
        ("~*", "5.0.0", true),
        // Caret: changes that do not modify the left-most non-zero part.
        ("^1.2.3", "1.2.3", true),
        ("^1.2.3", "1.9.0", true),
        ("^1.2.3", "2.0.0", false),
        ("^1.2.3", "1.2.2", false),
        ("^1.2", "1.2.0", true),
        ("^1.2", "1.9.9", true),
        ("^1", "1.0.0", true),
        ("^1", "2.0.0", false),
        ("^0.2.3", "0.2.3", true),
        ("^0.2.3", "0.2.9", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.2", "0.2.0", true),
        ("^0.2", "0.3.0", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^0.0", "0.0.9", true),
        ("^0.0", "0.1.0", false),
        ("^0", "0.9.9", true),
        ("^0", "1.0.0", false),
        ("^*", "7.1.0", true),
        // Hyphen ranges are inclusive; a partial upper bound covers its whole range.
        ("1.2 - 1.4.5", "1.2.0", true),
        ("1.2 - 1.4.5", "1.4.5", true),
        ("1.2 - 1.4.5", "1.4.6", false),
        ("1.2 - 1.4.5", "1.1.9", false),
        ("2.3.4 - 4.5", "4.5.9", true),
        ("2.3.4 - 4.5", "4.6.0", false),
        ("v1.0.0 - v2.0.0", "1.5.0", true),
        // AND (comma or whitespace) and OR.
        (">=1.2.3, <2.0.0", "1.9.0", true),
        (">=1.2.3, <2.0.0", "2.0.0", false),
        (">=1.2.3 <2.0.0", "1.5.0", true),
        (">= 1.2.3 , < 2.0.0", "2.1.0", false),
        (">=1.2.3 <2.0.0 !=1.5.0", "1.5.0", false),
        ("<1.0.0 || >=3.0.0", "0.9.0", true),
        ("<1.0.0 || >=3.0.0", "3.1.0", true),
        ("<1.0.0 || >=3.0.0", "2.0.0", false),
        ("1.2.3 || 1.2.5", "1.2.5", true),
        ("1.2.3||1.2.5", "1.2.4", false),
        // Prereleases only match when the constraint (its AND group) names one.
        (">=1.0.0", "1.2.0-beta.1", false),
        ("^1.0.0", "1.1.0-rc.1", false),
        (">=1.2.0-alpha", "1.2.0-beta.1", true),
        (">=1.2.0-alpha", "1.2.0", true),
        (">=1.2.0-alpha", "1.3.0-rc.1", true),
        (">=1.2.0-beta", "1.2.0-alpha", false),
        ("1.2.3-beta.2", "1.2.3-beta.2", true),
        ("1.2.3-beta.2", "1.2.3-beta.10", false),
        ("<1.2.3-beta.10", "1.2.3-beta.2", true),
        (">1.0.0-alpha <2.0.0", "1.5.0-rc.1", true),
        (">1.0.0-alpha <2.0.0 || >=3.0.0", "3.0.0-rc.1", false),
        ("~1.2.3-beta.2", "1.2.3-beta.4", true),
        ("~1.2.3-beta.2", "1.2.4-beta.1", true),
        ("^1.2.3-beta", "1.2.3", true),
        ("^1.2.3-beta", "1.2.2", false),
    ];

    #[test]
    fn constraints_match_like_masterminds() {
        let mut failures = Vec::new();
        for &(constraint, version, expected) in CASES {
            let parsed = Constraints::parse(constraint)
                .unwrap_or_else(|e| panic!("constraint '{constraint}' must parse: {e}"));
            if parsed.matches(&v(version)) != expected {
                failures.push(format!("'{constraint}' vs '{version}': expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    }

    #[test]
    fn improper_constraints_are_rejected() {
        for bad in [
            "",
            "   ",
            "||",
            "1.0.0 ||",
            ">= ",
            ">=1.0.0,",
            "1.2.3.4",
            "a.b.c",
            "1.2.3-",
            "1.2.3-01",
            ">=1.0.0 ;<2",
            "~~1.0",
            "1.0 -",
        ] {
            assert!(Constraints::parse(bad).is_err(), "'{bad}' should be rejected");
        }
    }

    #[test]
    fn errors_quote_the_constraint() {
        let err = Constraints::parse(">=1.0, foo").expect_err("invalid");
        assert_eq!(err.constraint, ">=1.0, foo");
        assert!(
            err.to_string()
                .starts_with("improper semver constraint '>=1.0, foo'"),
            "{err}"
        );
    }

    #[test]
    fn tag_names_parse_leniently() {
        for (tag, expected) in [
            ("v1.2.3", Some("1.2.3")),
            ("1.2.3", Some("1.2.3")),
            ("v1.2", Some("1.2.0")),
            ("1", Some("1.0.0")),
            ("v1.02.3", Some("1.2.3")),
            ("1.2.3-rc.1+build.7", Some("1.2.3-rc.1+build.7")),
            ("release-1.2.3", None),
            ("v1.2.3.4", None),
            ("V1.2.3", None),
            ("1.2.3-", None),
            ("latest", None),
            ("", None),
        ] {
            let parsed = parse_version(tag).map(|v| v.to_string());
            assert_eq!(parsed.as_deref(), expected, "tag '{tag}'");
        }
    }

    #[test]
    fn display_keeps_the_constraint_as_written() {
        let c: Constraints = ">= 1.0, <2".parse().expect("valid");
        assert_eq!(c.to_string(), ">= 1.0, <2");
    }
}
