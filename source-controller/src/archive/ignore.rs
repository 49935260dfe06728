//! Which files of a source tree go into the artifact: `.sourceignore` files, `spec.ignore` and the
//! default exclusions, evaluated the way Flux's source-controller does.
//!
//! ```text
//!  GitRepository  (.sourceignore in every dir but .git) + spec.ignore ─┐ user patterns
//!                   empty  ⇒ VCS + Ext + CI + Extra defaults           ├─► IgnoreRules::for_git
//!                   any    ⇒ VCS + user patterns                       ┘
//!  Bucket         root .sourceignore (downloaded) + spec.ignore, no defaults ─► IgnoreRules::for_bucket
//!                 (the Bucket's archive step itself filters nothing: IgnoreRules::none)
//! ```
//!
//! # Semantics (go-git's gitignore, as forked by Flux)
//!
//! - A pattern has a *domain*: the directory (path segments below the root) of the file it came
//!   from. It only matches paths strictly below that directory.
//! - `#` starts a comment line, whitespace-only lines are skipped, trailing spaces are trimmed
//!   unless escaped as `\ `. A leading `!` negates (re-includes); a trailing `/` matches
//!   directories only (and everything below them).
//! - A pattern without `/` matches any single path segment below the domain, at any depth; when
//!   that segment is a parent directory, the whole subtree matches.
//! - A pattern with a `/` is anchored to its domain (a leading `/` only adds the anchor) and
//!   matches segment by segment; once its segments are used up, deeper paths match too. `**`
//!   spans zero or more directories, a trailing `/**` also matches the directory itself, and a
//!   segment such as `a**` makes the pattern match nothing.
//! - Patterns are checked from last to first; the first that matches decides. Later files and
//!   `spec.ignore` therefore win over earlier ones.
//! - Every path is evaluated on its own. `/*` followed by `!/deploy` excludes every top-level
//!   entry except `deploy/`, whose contents are kept because `!/deploy` matches them too.
//!
//! # Why hand-written
//!
//! The rules above are go-git's, not git's: git cannot re-include a file below an excluded
//! directory, matches `**/b/c` by backtracking, and does not match `a` with `a/**`; go-git
//! evaluates each path alone, takes the first `**` fit, and does. The `ignore` crate implements
//! git's rules, and `globset` (which `ignore` builds on) adds `{a,b}` alternation and `[!x]`
//! negation that Go's `filepath.Match` lacks. Since consumers expect the same file set Flux
//! produces, this module ports the matching rules, with a Go-compatible component matcher in the
//! private `archive::glob` module. A table of cases taken from go-git's and Flux's tests pins the
//! behaviour (and the port was checked against Flux's Go code on random patterns and trees).

use super::ArchiveError;
use super::glob::Glob;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read as _};
use std::path::Path;

/// Name of the ignore file looked up in source trees and at a bucket's root.
pub const IGNORE_FILE: &str = ".sourceignore";

/// Version-control files, excluded from Git artifacts whatever the user patterns say.
pub const VCS_PATTERNS: &[&str] = &[".git/", ".gitignore", ".gitmodules", ".gitattributes"];

/// Binary and archive extensions, excluded only while no user pattern exists.
pub const EXT_PATTERNS: &[&str] = &[
    "*.jpg", "*.jpeg", "*.gif", "*.png", "*.wmv", "*.flv", "*.tar.gz", "*.zip",
];

/// CI configuration, excluded only while no user pattern exists.
pub const CI_PATTERNS: &[&str] = &[
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
];

/// Tool configuration, excluded only while no user pattern exists.
pub const EXTRA_PATTERNS: &[&str] = &["**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml"];

/// One ignore pattern, bound to the directory (domain) it applies below.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    domain: Vec<Vec<u8>>,
    body: Body,
    include: bool,
    dir_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    /// No `/` in the pattern: matches any one segment.
    Name(Glob),
    /// Anchored: matched segment by segment from the domain.
    Path(Vec<Segment>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// From a leading `/` or `//`: consumes nothing.
    Empty,
    /// `**`: zero or more directories.
    AnyDirs,
    /// A segment containing `**` next to other text: the pattern never matches.
    Never,
    Glob(Glob),
}

impl Pattern {
    /// Parses one pattern line (not a comment or blank line) for the directory `domain`.
    ///
    /// `domain` lists the directory's segments below the root; empty for the root.
    ///
    /// ```
    /// use source_controller::archive::ignore::{IgnoreRules, Pattern};
    /// let rules = IgnoreRules::from_patterns(vec![Pattern::parse(b"*.md", &["docs"])]);
    /// assert!(rules.is_excluded(&["docs", "api", "index.md"], false));
    /// assert!(!rules.is_excluded(&["README.md"], false));
    /// ```
    pub fn parse<S: AsRef<OsStr>>(line: &[u8], domain: &[S]) -> Self {
        let (include, mut text) = match line.strip_prefix(b"!") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if !text.ends_with(b"\\ ") {
            while let Some(rest) = text.strip_suffix(b" ") {
                text = rest;
            }
        }
        let dir_only = text.ends_with(b"/");
        if dir_only {
            text = &text[..text.len() - 1];
        }
        let body = if text.contains(&b'/') {
            Body::Path(text.split(|&b| b == b'/').map(Segment::parse).collect())
        } else {
            Body::Name(Glob::new(text))
        };
        Pattern {
            domain: domain.iter().map(|s| bytes(s).to_vec()).collect(),
            body,
            include,
            dir_only,
        }
    }

    /// `Some(true)` when the pattern excludes `path`, `Some(false)` when it re-includes it.
    fn decide<S: AsRef<OsStr>>(&self, path: &[S], is_dir: bool) -> Option<bool> {
        if path.len() <= self.domain.len() || !self.in_domain(path) {
            return None;
        }
        let rel = &path[self.domain.len()..];
        let hit = match &self.body {
            Body::Name(glob) => self.name_match(glob, rel, is_dir),
            Body::Path(segments) => self.path_match(segments, rel, is_dir),
        };
        hit.then_some(!self.include)
    }

    fn in_domain<S: AsRef<OsStr>>(&self, path: &[S]) -> bool {
        self.domain
            .iter()
            .zip(path)
            .all(|(d, p)| d.as_slice() == bytes(p))
    }

    fn name_match<S: AsRef<OsStr>>(&self, glob: &Glob, rel: &[S], is_dir: bool) -> bool {
        let Some(i) = rel.iter().position(|name| glob.matches(bytes(name))) else {
            return false;
        };
        // Matching a parent directory covers the subtree; the entry itself must be a directory.
        !(self.dir_only && !is_dir && i + 1 == rel.len())
    }

    fn path_match<S: AsRef<OsStr>>(&self, segments: &[Segment], mut rel: &[S], is_dir: bool) -> bool {
        let mut matched = false;
        let mut spanning = false;
        for (i, segment) in segments.iter().enumerate() {
            let glob = match segment {
                Segment::Empty => {
                    spanning = false;
                    continue;
                }
                Segment::AnyDirs if i + 1 == segments.len() => break,
                Segment::AnyDirs => {
                    spanning = true;
                    continue;
                }
                Segment::Never => return false,
                Segment::Glob(glob) => glob,
            };
            let Some((first, rest)) = rel.split_first() else {
                return false;
            };
            if spanning {
                // Skip ahead to the first segment that fits; go-git does not try later ones.
                spanning = false;
                let at = rel.iter().position(|name| glob.matches(bytes(name)));
                matched = at.is_some();
                rel = at.map_or(&[], |at| &rel[at + 1..]);
            } else {
                if !glob.matches(bytes(first)) {
                    return false;
                }
                matched = true;
                rel = rest;
            }
        }
        matched && !(self.dir_only && !is_dir && rel.is_empty())
    }

    /// Whether this pattern might match some path strictly below `dir` (conservative: `true`
    /// unless it provably cannot).
    fn may_match_below<S: AsRef<OsStr>>(&self, dir: &[S]) -> bool {
        if !self.in_domain(dir) {
            return false;
        }
        if self.domain.len() >= dir.len() {
            return true;
        }
        let Body::Path(segments) = &self.body else {
            return true;
        };
        let mut rel = dir[self.domain.len()..].iter();
        for segment in segments {
            match segment {
                Segment::Empty => {}
                Segment::AnyDirs => return true,
                Segment::Never => return false,
                Segment::Glob(glob) => match rel.next() {
                    None => return true,
                    Some(name) if glob.matches(bytes(name)) => {}
                    Some(_) => return false,
                },
            }
        }
        true
    }
}

impl Segment {
    fn parse(text: &[u8]) -> Self {
        if text.is_empty() {
            Segment::Empty
        } else if text == b"**" {
            Segment::AnyDirs
        } else if text.windows(2).any(|w| w == b"**") {
            Segment::Never
        } else {
            Segment::Glob(Glob::new(text))
        }
    }
}

/// Parses the lines of an ignore file (or `spec.ignore`) for the directory `domain`.
///
/// Lines end at `\n` (a `\r` before it is dropped); lines starting with `#` and lines of only
/// whitespace are skipped.
pub fn parse_patterns<S: AsRef<OsStr>>(text: &[u8], domain: &[S]) -> Vec<Pattern> {
    text.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.starts_with(b"#") && !String::from_utf8_lossy(line).trim().is_empty())
        .map(|line| Pattern::parse(line, domain))
        .collect()
}

/// An ordered set of ignore patterns: decides whether a path is left out of the artifact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

impl IgnoreRules {
    /// Rules that exclude nothing (Flux archives a Bucket's downloaded files unfiltered).
    pub fn none() -> Self {
        IgnoreRules::default()
    }

    /// Exactly `patterns`, in priority order (last wins), with no defaults added.
    pub fn from_patterns(patterns: Vec<Pattern>) -> Self {
        IgnoreRules { patterns }
    }

    /// The Git rule around the user patterns (all `.sourceignore` files, then `spec.ignore`).
    ///
    /// With no user pattern at all: the VCS, extension, CI and extra defaults. Otherwise: the VCS
    /// defaults, then the user patterns. Any `.sourceignore` anywhere therefore switches the
    /// extension/CI/extra defaults off.
    pub fn with_defaults(user: Vec<Pattern>) -> Self {
        let root: &[&str] = &[];
        let defaults: &[&[&str]] = if user.is_empty() {
            &[VCS_PATTERNS, EXT_PATTERNS, CI_PATTERNS, EXTRA_PATTERNS]
        } else {
            &[VCS_PATTERNS]
        };
        let mut patterns: Vec<Pattern> = defaults
            .iter()
            .flat_map(|set| set.iter())
            .map(|p| Pattern::parse(p.as_bytes(), root))
            .collect();
        patterns.extend(user);
        IgnoreRules { patterns }
    }

    /// The rules for a Git checkout at `root`: every `.sourceignore` below it (except inside
    /// `.git` directories), each scoped to its directory, then `spec_ignore` scoped to the root,
    /// wrapped by [`IgnoreRules::with_defaults`].
    ///
    /// Files load parent before children, siblings in byte order of their names, so deeper files
    /// and `spec.ignore` take precedence. Symlinked directories are not followed; a
    /// `.sourceignore` that is not a regular file (after following a symlink) is skipped.
    ///
    /// # Errors
    /// [`ArchiveError::ReadDir`], [`ArchiveError::Stat`] or [`ArchiveError::ReadIgnoreFile`]
    /// naming the directory or file that could not be read.
    ///
    /// ```no_run
    /// use source_controller::archive::ignore::IgnoreRules;
    /// # fn main() -> Result<(), source_controller::archive::ArchiveError> {
    /// let rules = IgnoreRules::for_git("/tmp/checkout".as_ref(), Some("/*\n!/deploy\n"))?;
    /// assert!(rules.is_excluded(&["README.md"], false));
    /// # Ok(()) }
    /// ```
    pub fn for_git(root: &Path, spec_ignore: Option<&str>) -> Result<Self, ArchiveError> {
        let mut user = Vec::new();
        load_tree(root, &mut Vec::new(), &mut user)?;
        Ok(Self::for_git_patterns(user, spec_ignore))
    }

    /// The Git rules from the patterns of the ignore files, in load order (each parsed for its
    /// directory with [`parse_patterns`]): `spec_ignore` is added, scoped to the root, and the
    /// whole wrapped by [`IgnoreRules::with_defaults`]. [`IgnoreRules::for_git`] reads the files
    /// from a checkout, [`IgnoreRules::for_git_tree`] from a fetched commit's blobs.
    ///
    /// ```
    /// use source_controller::archive::ignore::{IgnoreRules, parse_patterns};
    /// let files = parse_patterns(b"*.md\n", &["docs"]);
    /// let rules = IgnoreRules::for_git_patterns(files, Some("!docs/keep.md"));
    /// assert!(rules.is_excluded(&["docs", "a.md"], false));
    /// assert!(!rules.is_excluded(&["docs", "keep.md"], false));
    /// assert!(!rules.is_excluded(&["logo.png"], false), "a user pattern turns the defaults off");
    /// ```
    pub fn for_git_patterns(mut user: Vec<Pattern>, spec_ignore: Option<&str>) -> Self {
        if let Some(text) = spec_ignore {
            let root: &[&str] = &[];
            user.extend(parse_patterns(text.as_bytes(), root));
        }
        Self::with_defaults(user)
    }

    /// The rules for a Bucket's object keys: the bucket's root `.sourceignore` (as downloaded),
    /// then `spec_ignore`, both scoped to the root. No defaults, not even the VCS set.
    ///
    /// ```
    /// use source_controller::archive::ignore::IgnoreRules;
    /// let rules = IgnoreRules::for_bucket(Some(b"*.txt\n"), Some("!keep.txt"));
    /// assert!(rules.is_excluded_key("notes/todo.txt"));
    /// assert!(!rules.is_excluded_key("keep.txt"));
    /// assert!(!rules.is_excluded_key(".git/config"));
    /// ```
    pub fn for_bucket(root_ignore_file: Option<&[u8]>, spec_ignore: Option<&str>) -> Self {
        let root: &[&str] = &[];
        let mut patterns = root_ignore_file.map_or_else(Vec::new, |text| parse_patterns(text, root));
        if let Some(text) = spec_ignore {
            patterns.extend(parse_patterns(text.as_bytes(), root));
        }
        IgnoreRules { patterns }
    }

    /// Whether the entry at `path` (segments below the root; a directory if `is_dir`) is left
    /// out. The root itself (an empty path) is never excluded.
    pub fn is_excluded<S: AsRef<OsStr>>(&self, path: &[S], is_dir: bool) -> bool {
        self.patterns
            .iter()
            .rev()
            .find_map(|p| p.decide(path, is_dir))
            .unwrap_or(false)
    }

    /// Whether the bucket object `key` is left out (the key split at `/`, as a file).
    pub fn is_excluded_key(&self, key: &str) -> bool {
        let segments: Vec<&str> = key.split('/').collect();
        self.is_excluded(&segments, false)
    }

    /// Whether some entry below the excluded directory `dir` could still be re-included by a
    /// negated pattern; when not, the walk can skip the directory without changing the result.
    /// (Public, hidden, for the `ignore_rules` fuzz target, which checks exactly that promise.)
    #[doc(hidden)]
    pub fn may_include_below<S: AsRef<OsStr>>(&self, dir: &[S]) -> bool {
        self.patterns.iter().any(|p| p.include && p.may_match_below(dir))
    }
}

/// Loads `dir`'s ignore file, then its subdirectories' (sorted, `.git` skipped), depth first.
fn load_tree(dir: &Path, domain: &mut Vec<OsString>, out: &mut Vec<Pattern>) -> Result<(), ArchiveError> {
    if let Some(text) = read_ignore_file(&dir.join(IGNORE_FILE))? {
        out.extend(parse_patterns(&text, domain));
    }
    let read_dir_failed = |source| ArchiveError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir_failed)? {
        let entry = entry.map_err(read_dir_failed)?;
        let file_type = entry.file_type().map_err(|source| ArchiveError::Stat {
            path: entry.path(),
            source,
        })?;
        let name = entry.file_name();
        if file_type.is_dir() && name != ".git" {
            subdirs.push(name);
        }
    }
    subdirs.sort_unstable();
    for name in subdirs {
        let path = dir.join(&name);
        domain.push(name);
        load_tree(&path, domain, out)?;
        domain.pop();
    }
    Ok(())
}

/// The content of an ignore file; `None` when it does not exist or is not a regular file.
fn read_ignore_file(path: &Path) -> Result<Option<Vec<u8>>, ArchiveError> {
    let failed = |source| ArchiveError::ReadIgnoreFile {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e)),
    }
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_end(&mut text))
        .map_err(failed)?;
    Ok(Some(text))
}

fn bytes<S: AsRef<OsStr>>(s: &S) -> &[u8] {
    s.as_ref().as_encoded_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One matcher case: ignore files as `(domain, text)` in load order, a path, and the verdict.
    struct Case {
        files: &'static [(&'static str, &'static str)],
        path: &'static str,
        dir: bool,
        excluded: bool,
    }

    const fn case(
        files: &'static [(&'static str, &'static str)],
        path: &'static str,
        dir: bool,
        excluded: bool,
    ) -> Case {
        Case {
            files,
            path,
            dir,
            excluded,
        }
    }

    const F: bool = false;
    const D: bool = true;
    const OUT: bool = true;
    const IN: bool = false;

    /// go-git's and Flux's pattern tests, restated as data, plus the fact sheet's cases.
    const CASES: &[Case] = &[
        // A pattern without `/` matches any one segment; a matching parent covers its subtree.
        case(&[("", "value")], "value/tail", F, OUT),
        case(&[("", "value")], "head/value/tail", F, OUT),
        case(&[("", "value")], "head/value", F, OUT),
        case(&[("", "value")], "head/val/tail", F, IN),
        case(&[("", "val")], "head/value/tail", F, IN),
        case(&[("", "v*o")], "value/vulkano/tail", F, OUT),
        case(&[("", "vul?ano")], "value/vulkano/tail", F, OUT),
        case(&[("", "v[ou]l[kc]ano")], "value/volcano", F, OUT),
        case(&[("", "v[ou]l[")], "value/vol[", F, IN),
        case(&[("", "**.txt")], "foo.txt", F, OUT),
        case(&[("", "**.txt")], "dir/foo.txt", F, OUT),
        // Trailing `/`: directories only, and everything below a matching directory.
        case(&[("", "value/")], "value/tail", F, OUT),
        case(&[("", "value/")], "head/value/tail", F, OUT),
        case(&[("", "value/")], "head/value", D, OUT),
        case(&[("", "value/")], "head/value", F, IN),
        // Domains: a pattern only matches strictly below the directory of its file.
        case(&[("head/middle/tail", "value")], "head/middle", F, IN),
        case(&[("head/middle/tail", "value")], "head/middle/tail", F, IN),
        case(
            &[("head/middle/tail", "value")],
            "head/middle/_tail_/value",
            F,
            IN,
        ),
        case(
            &[("value/volcano", "middle/")],
            "value/volcano/middle/tail",
            F,
            OUT,
        ),
        case(&[("value/volcano", "volcano/")], "value/volcano/tail", D, IN),
        case(
            &[("value/volcano", "middle/tail/")],
            "value/volcano/middle/tail",
            D,
            OUT,
        ),
        case(&[("value/volcano", "volcano/tail")], "value/volcano/tail", F, IN),
        case(&[("a/b", "subdir.txt")], "a/b/c/subdir.txt", F, OUT),
        case(&[("a/b", "subdir.txt")], "a/c/subdir.txt", F, IN),
        case(&[("sub", "/only-here.yaml")], "sub/only-here.yaml", F, OUT),
        case(&[("sub", "/only-here.yaml")], "only-here.yaml", F, IN),
        case(&[("sub", "/only-here.yaml")], "sub/x/only-here.yaml", F, IN),
        // A `/` anywhere anchors the pattern to its domain; a leading `/` only anchors.
        case(&[("", "/value/vul?ano")], "value/vulkano/tail", F, OUT),
        case(&[("", "value/vul?ano")], "value/vulkano/tail", F, OUT),
        case(&[("", "value/vul?ano")], "head/value/vulkano", F, IN),
        case(&[("", "value/vulkano")], "value/volcano", F, IN),
        case(&[("", "value/vul?ano")], "value", F, IN),
        case(&[("", "/value/volcano")], "value/value/volcano", F, IN),
        case(&[("", "/")], "anything", F, IN),
        // `**` at the start, in the middle and at the end.
        case(&[("", "**/*lue/vol?ano")], "value/volcano/tail", F, OUT),
        case(&[("", "**/*lue/vol?ano")], "head/value/volcano/tail", F, OUT),
        case(&[("", "**/*lue/vol?ano")], "head/value/Volcano/tail", F, IN),
        case(&[("", "**/*lue/vol?ano/")], "head/value/volcano/tail", F, OUT),
        case(&[("", "**/*lue/vol?ano/")], "head/value/volcano", D, OUT),
        case(&[("", "**/*lue/vol?ano/")], "head/value/Colcano", D, IN),
        case(&[("", "**/*lue/vol?ano/")], "head/value/volcano", F, IN),
        case(&[("", "/*lue/vol?ano/**")], "value/volcano/tail/moretail", F, OUT),
        case(&[("", "/*lue/vol?ano/**")], "value/volcano", F, OUT),
        case(&[("", "/*lue/**/vol?ano")], "value/volcano", F, OUT),
        case(&[("", "/*lue/**/vol?ano")], "value/middle/volcano", F, OUT),
        case(
            &[("", "/*lue/**/vol?ano")],
            "value/middle1/middle2/volcano",
            F,
            OUT,
        ),
        case(
            &[("", "/*lue/**/vol?ano/")],
            "value/middle1/middle2/volcano",
            D,
            OUT,
        ),
        case(
            &[("", "/*lue/**/vol?ano/")],
            "value/middle1/middle2/volcano",
            F,
            IN,
        ),
        case(
            &[("", "/*lue/**/vol?ano/")],
            "value/middle1/middle2/volcano/tail",
            F,
            OUT,
        ),
        case(&[("", "/*lue/**foo/vol?ano")], "value/foo/volcano/tail", F, IN),
        case(&[("", "**/head/v[ou]l[kc]ano")], "value/head/volcano", F, OUT),
        case(&[("", "**/head/v[ou]l[")], "value/head/vol[", F, IN),
        case(&[("", "/value/**/v[ou]l[")], "value/head/vol[", F, IN),
        case(
            &[("", "**/android/**/GeneratedPluginRegistrant.java")],
            "packages/flutter_tools/lib/src/android/gradle.dart",
            F,
            IN,
        ),
        // go-git takes the first segment that fits after `**` and never retries (git would match).
        case(&[("", "**/b/c")], "b/b/c", F, IN),
        case(&[("", "**/b/c")], "x/b/c", F, OUT),
        // `/**` alone anchors nothing to match.
        case(&[("", "/**")], "a", F, IN),
        // Negation; the last matching pattern decides.
        case(
            &[("", "**/middle/v[uo]l?ano\n!volcano")],
            "head/middle/vulkano",
            F,
            OUT,
        ),
        case(
            &[("", "**/middle/v[uo]l?ano\n!volcano")],
            "head/middle/volcano",
            F,
            IN,
        ),
        case(&[("", "!vul?ano")], "value/vulkano/tail", F, IN),
        case(
            &[("", "ignore-dir/*\n!ignore-dir/include\n")],
            "ignore-dir/file.yaml",
            F,
            OUT,
        ),
        case(
            &[("", "ignore-dir/*\n!ignore-dir/include\n")],
            "ignore-dir/include",
            F,
            IN,
        ),
        case(&[("", "ignore-dir/*\n!ignore-dir/include\n")], "file.yaml", F, IN),
        case(
            &[("", "!ignore-dir/include\nignore-dir/*\n")],
            "ignore-dir/include",
            F,
            OUT,
        ),
        case(
            &[("", "ignore-dir/*\n# !ignore-dir/include")],
            "ignore-dir/include",
            F,
            OUT,
        ),
        // `/*` then `!/deploy`: only deploy/ survives, with all of its contents.
        case(&[("", "/*\n!/deploy\n")], "deploy", D, IN),
        case(&[("", "/*\n!/deploy\n")], "deploy/apps/app.yaml", F, IN),
        case(&[("", "/*\n!/deploy\n")], "other", D, OUT),
        case(&[("", "/*\n!/deploy\n")], "other/app.yaml", F, OUT),
        case(&[("", "/*\n!/deploy\n")], "root.yaml", F, OUT),
        case(
            &[("", "/*\n!/deploy\n/deploy/**/*.md\n")],
            "deploy/README.md",
            F,
            OUT,
        ),
        case(
            &[("", "/*\n!/deploy\n/deploy/**/*.md\n")],
            "deploy/sub/notes.md",
            F,
            OUT,
        ),
        case(
            &[("", "/*\n!/deploy\n/deploy/**/*.md\n")],
            "deploy/sub/app.yaml",
            F,
            IN,
        ),
        case(
            &[("", "# all\n/*\n\n!/apps/\n!/clusters/\n")],
            "apps/manifest.yaml",
            F,
            IN,
        ),
        case(&[("", "# all\n/*\n\n!/apps/\n!/clusters/\n")], "apps", D, IN),
        case(&[("", "# all\n/*\n\n!/apps/\n!/clusters/\n")], "foo.txt", F, OUT),
        // A file can be re-included below an excluded directory.
        case(&[("", "dir/\n!dir/keep.yaml\n")], "dir", D, OUT),
        case(&[("", "dir/\n!dir/keep.yaml\n")], "dir/keep.yaml", F, IN),
        case(&[("", "dir/\n!dir/keep.yaml\n")], "dir/other.yaml", F, OUT),
        // Nested files: later (deeper) files win inside their own directory only.
        case(&[("", "*.txt"), ("sub", "!keep.txt")], "sub/keep.txt", F, IN),
        case(&[("", "*.txt"), ("sub", "!keep.txt")], "keep.txt", F, OUT),
        case(&[("", "*.txt"), ("sub", "!keep.txt")], "other/keep.txt", F, OUT),
        // Line parsing: trailing spaces, escapes, CRLF, `#` only at the very start.
        case(&[("", "foo   ")], "foo", F, OUT),
        case(&[("", "foo\\ ")], "foo ", F, OUT),
        case(&[("", "foo\\ ")], "foo", F, IN),
        case(&[("", "\\#file")], "#file", F, OUT),
        case(&[("", "\\!important")], "!important", F, OUT),
        case(&[("", "a.yaml\r\nb.yaml\r\n")], "b.yaml", F, OUT),
        case(&[("", "  \t\n#b.yaml\n")], "b.yaml", F, IN),
        case(&[("", " #b.yaml")], " #b.yaml", F, OUT),
        // Go's `filepath.Match`, not shell syntax.
        case(&[("", "{a,b}.yaml")], "a.yaml", F, IN),
        case(&[("", "[!a].yaml")], "b.yaml", F, IN),
        case(&[("", "[^a].yaml")], "b.yaml", F, OUT),
    ];

    fn rules_of(files: &[(&str, &str)]) -> IgnoreRules {
        let patterns = files
            .iter()
            .flat_map(|(domain, text)| parse_patterns(text.as_bytes(), &split(domain)))
            .collect();
        IgnoreRules::from_patterns(patterns)
    }

    fn split(path: &str) -> Vec<&str> {
        if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        }
    }

    #[test]
    fn matcher_follows_go_git_semantics() {
        for c in CASES {
            let got = rules_of(c.files).is_excluded(&split(c.path), c.dir);
            assert_eq!(
                got, c.excluded,
                "rules {:?}, path {:?} (dir: {}): excluded = {got}",
                c.files, c.path, c.dir
            );
        }
    }

    #[test]
    fn root_is_never_excluded() {
        let rules = rules_of(&[("", "*\n**\n/")]);
        assert!(!rules.is_excluded::<&str>(&[], true));
    }

    /// `(user patterns for with_defaults, or None for none at all, path, dir, excluded)`.
    const GIT_DEFAULT_CASES: &[(Option<&str>, &str, bool, bool)] = &[
        // No user pattern: every default set applies.
        (None, ".git", D, OUT),
        (None, ".git/config", F, OUT),
        (None, ".gitignore", F, OUT),
        (None, "sub/.gitmodules", F, OUT),
        (None, "img.png", F, OUT),
        (None, "a/b/archive.tar.gz", F, OUT),
        (None, ".github/workflows/ci.yaml", F, OUT),
        (None, "cloudbuild.yaml", F, OUT),
        (None, ".flux.yaml", F, OUT),
        (None, "sub/.sops.yaml", F, OUT),
        (None, "app.yaml", F, IN),
        (None, ".sourceignore", F, IN),
        // A submodule's `.git` file is not a directory, so `.git/` does not match it.
        (None, "sub/.git", F, IN),
        // Any user pattern drops Ext/CI/Extra; VCS stays.
        (Some("foo"), "foo", F, OUT),
        (Some("foo"), "img.png", F, IN),
        (Some("foo"), ".github/workflows/ci.yaml", F, IN),
        (Some("foo"), "sub/.sops.yaml", F, IN),
        (Some("foo"), ".git/config", F, OUT),
        (Some("foo"), ".gitattributes", F, OUT),
        // User patterns come after the VCS set, so they can override it.
        (Some("!.gitignore"), ".gitignore", F, IN),
        (Some("!*.png"), "img.png", F, IN),
        // Comments alone are no patterns: defaults stay.
        (Some("# nothing\n\n"), "img.png", F, OUT),
    ];

    #[test]
    fn git_defaults_apply_only_without_user_patterns() {
        for &(user, path, dir, excluded) in GIT_DEFAULT_CASES {
            let root: &[&str] = &[];
            let patterns = user.map_or_else(Vec::new, |text| parse_patterns(text.as_bytes(), root));
            let got = IgnoreRules::with_defaults(patterns).is_excluded(&split(path), dir);
            assert_eq!(got, excluded, "user patterns {user:?}, path {path:?}");
        }
    }

    #[test]
    fn bucket_rules_have_no_defaults() {
        let nothing = IgnoreRules::for_bucket(None, None);
        for key in ["img.png", ".git/config", ".github/x.yaml", "a/.sops.yaml"] {
            assert!(!nothing.is_excluded_key(key), "{key}");
        }
        let rules = IgnoreRules::for_bucket(Some(b"*.txt\n/tmp/\n"), Some("!keep.txt"));
        assert!(rules.is_excluded_key("notes.txt"));
        assert!(rules.is_excluded_key("dir/notes.txt"));
        assert!(rules.is_excluded_key("tmp/a.yaml"));
        assert!(!rules.is_excluded_key("keep.txt"));
        assert!(!rules.is_excluded_key("img.png"));
        assert!(!rules.is_excluded_key(".git/config"));
        assert!(!IgnoreRules::none().is_excluded_key(".git/config"));
    }

    #[test]
    fn git_loads_every_sourceignore_scoped_to_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            (".sourceignore", "root.txt\n*.yaml\n"),
            ("a/b/.sourceignore", "subdir.txt"),
            ("z/.sourceignore", "last.txt"),
            ("keep/.sourceignore", "!important.yaml"),
            // Never loaded: inside .git, or not a .sourceignore.
            (".git/.sourceignore", "*"),
            ("d/.gitignore", "ignored"),
        ];
        for (path, text) in files {
            let path = dir.path().join(path);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, text).unwrap();
        }
        let rules = IgnoreRules::for_git(dir.path(), None).unwrap();
        let cases = [
            ("root.txt", OUT),
            ("a/b/subdir.txt", OUT),
            ("a/b/c/subdir.txt", OUT),
            ("a/c/subdir.txt", IN),
            ("z/last.txt", OUT),
            ("e/last.txt", IN),
            ("app.yaml", OUT),
            ("keep/important.yaml", IN),
            ("keep/other.yaml", OUT),
            ("d/ignored", IN),
            ("notes.md", IN),
            // User patterns exist: the extension defaults are off, VCS stays on.
            ("img.png", IN),
            (".git/config", OUT),
            (".sourceignore", IN),
        ];
        for (path, excluded) in cases {
            assert_eq!(rules.is_excluded(&split(path), false), excluded, "{path}");
        }

        let rules = IgnoreRules::for_git(dir.path(), Some("!root.txt\nnotes.md")).unwrap();
        assert!(
            !rules.is_excluded(&["root.txt"], false),
            "spec.ignore wins over files"
        );
        assert!(rules.is_excluded(&["notes.md"], false));
    }

    #[test]
    fn git_without_any_pattern_uses_all_defaults() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("app.yaml"), "").unwrap();
        let rules = IgnoreRules::for_git(dir.path(), Some("")).unwrap();
        assert!(rules.is_excluded(&["img.png"], false));
        assert!(rules.is_excluded(&[".git"], true));
        assert!(!rules.is_excluded(&["app.yaml"], false));
    }

    #[test]
    fn excluded_directories_are_skipped_only_when_nothing_below_can_be_reincluded() {
        let deploy = rules_of(&[("", "/*\n!/deploy\n")]);
        assert!(!deploy.may_include_below(&[".git"]));
        assert!(!deploy.may_include_below(&["other", "deep"]));
        assert!(deploy.may_include_below(&["deploy"]));
        assert!(deploy.may_include_below::<&str>(&[]));

        let any_depth = rules_of(&[("", "*.txt\n!keep.txt\n")]);
        assert!(any_depth.may_include_below(&[".git"]));

        let scoped = rules_of(&[("sub/inner", "!x")]);
        assert!(!scoped.may_include_below(&["other"]));
        assert!(scoped.may_include_below(&["sub"]));
        assert!(scoped.may_include_below(&["sub", "inner", "deeper"]));

        let spanning = rules_of(&[("", "!/a/**/keep.yaml\n!/b/c**/x\n")]);
        assert!(spanning.may_include_below(&["a", "x", "y"]));
        assert!(!spanning.may_include_below(&["b", "c"]));
        assert!(!spanning.may_include_below(&["z"]));

        assert!(!IgnoreRules::with_defaults(Vec::new()).may_include_below(&[".git"]));
    }
}
