//! The ignore-pattern matcher of source-controller (`.sourceignore` files, `spec.ignore`):
//! `source_controller::archive::ignore`.
//!
//! Input: ignore-file text, then a NUL byte, then paths one a line (`a/b/c`, a trailing `/` makes
//! a directory). A first line `@x/y` scopes the patterns to the directory `x/y`.
//!
//! Checked beyond "no panic": the root is never excluded; a directory that is excluded and below
//! which no negated pattern may match (`may_include_below`, which lets the archive walk skip the
//! directory) has every descendant excluded too; `is_excluded_key` is `is_excluded` of the key's
//! segments as a file; a Bucket's rules (`for_bucket`) decide as the same patterns do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use source_controller::archive::ignore::{IgnoreRules, parse_patterns};

fuzz_target!(|data: &[u8]| {
    let (text, paths) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let (domain, text): (Vec<&str>, &[u8]) = match text.strip_prefix(b"@") {
        Some(rest) => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let Ok(dir) = std::str::from_utf8(&rest[..end]) else {
                return;
            };
            let domain = dir.split('/').filter(|s| !s.is_empty()).collect();
            (domain, rest.get(end + 1..).unwrap_or_default())
        }
        None => (Vec::new(), text),
    };
    let rules = IgnoreRules::from_patterns(parse_patterns(text, &domain));
    let root: &[&str] = &[];
    assert!(!rules.is_excluded(root, true), "the root is excluded");

    let bucket = domain
        .is_empty()
        .then(|| IgnoreRules::for_bucket(Some(text), None));
    let Ok(paths) = std::str::from_utf8(paths) else {
        return;
    };
    for line in paths.lines().take(64) {
        let is_dir = line.ends_with('/');
        let segments: Vec<&str> = line.split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            continue;
        }
        let excluded = rules.is_excluded(&segments, is_dir);
        if let Some(bucket) = &bucket {
            assert_eq!(
                bucket.is_excluded(&segments, is_dir),
                excluded,
                "for_bucket differs on {line:?}"
            );
        }
        if !is_dir && !line.contains("//") && !line.starts_with('/') {
            assert_eq!(
                rules.is_excluded_key(line),
                excluded,
                "is_excluded_key differs on {line:?}"
            );
        }
        if is_dir && excluded && !rules.may_include_below(&segments) {
            // Children named like any segment of the input, and one more level.
            let names: Vec<&str> = ["x", ".git", "a.txt"]
                .into_iter()
                .chain(segments.iter().copied())
                .collect();
            for name in &names {
                for child_is_dir in [false, true] {
                    let mut child = segments.clone();
                    child.push(name);
                    assert!(
                        rules.is_excluded(&child, child_is_dir),
                        "{line:?} is excluded and may_include_below says nothing below is re-included, \
                         but {child:?} (dir: {child_is_dir}) is not excluded"
                    );
                    child.push("z");
                    assert!(
                        rules.is_excluded(&child, child_is_dir),
                        "{line:?} is excluded and may_include_below says nothing below is re-included, \
                         but {child:?} (dir: {child_is_dir}) is not excluded"
                    );
                }
            }
        }
    }
});
