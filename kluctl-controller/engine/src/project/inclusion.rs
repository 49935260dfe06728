//! Which deployment items a command acts on: `-I/--include-tag`, `-E/--exclude-tag`,
//! `--include-deployment-dir`, `--exclude-deployment-dir`, and the item kinds that ignore them.
//!
//! Rules (Kluctl's): no rule at all includes everything; an excluded item is out even when an
//! include rule matches; when include rules exist, only matching items are in. Barrier,
//! `alwaysDeploy` and `onlyRender` items are always in.

use std::collections::BTreeSet;
use std::path::Path;

/// What an item is matched on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    /// A tag of the item (its own or inherited).
    Tag(String),
    /// The item's directory, relative to the source root, `/`-separated.
    DeploymentItemDir(String),
}

/// Include and exclude rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inclusion {
    includes: BTreeSet<Entry>,
    excludes: BTreeSet<Entry>,
}

/// Why inclusion flags are invalid.
#[derive(Debug, thiserror::Error)]
pub enum InclusionError {
    /// A deployment dir flag was absolute.
    #[error("--{0}-deployment-dir path must be relative")]
    AbsoluteDir(&'static str),
}

impl Inclusion {
    /// Builds the rules from the CLI flags (or the controller's spec fields).
    ///
    /// # Errors
    /// [`InclusionError::AbsoluteDir`] for an absolute deployment dir.
    pub fn from_flags(
        include_tags: &[String],
        exclude_tags: &[String],
        include_dirs: &[String],
        exclude_dirs: &[String],
    ) -> Result<Self, InclusionError> {
        let mut inc = Self::default();
        inc.includes.extend(include_tags.iter().cloned().map(Entry::Tag));
        inc.excludes.extend(exclude_tags.iter().cloned().map(Entry::Tag));
        for (dirs, set, which) in [
            (include_dirs, &mut inc.includes, "include"),
            (exclude_dirs, &mut inc.excludes, "exclude"),
        ] {
            for d in dirs {
                if Path::new(d).is_absolute() {
                    return Err(InclusionError::AbsoluteDir(which));
                }
                set.insert(Entry::DeploymentItemDir(d.replace('\\', "/")));
            }
        }
        Ok(inc)
    }

    /// Whether no rule is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.includes.is_empty() && self.excludes.is_empty()
    }

    /// Whether any include or exclude tag rule is set.
    #[must_use]
    pub fn has_tag_rules(&self) -> bool {
        self.includes
            .iter()
            .chain(&self.excludes)
            .any(|e| matches!(e, Entry::Tag(_)))
    }

    /// The include tags, sorted.
    pub fn include_tags(&self) -> impl Iterator<Item = &str> {
        self.includes.iter().filter_map(|e| match e {
            Entry::Tag(t) => Some(t.as_str()),
            Entry::DeploymentItemDir(_) => None,
        })
    }

    /// The exclude tags, sorted.
    pub fn exclude_tags(&self) -> impl Iterator<Item = &str> {
        self.excludes.iter().filter_map(|e| match e {
            Entry::Tag(t) => Some(t.as_str()),
            Entry::DeploymentItemDir(_) => None,
        })
    }

    /// Whether something described by `entries` is included. With `exclude_if_not_included`,
    /// a missing include match excludes even when no include rule exists.
    #[must_use]
    pub fn check(&self, entries: &[Entry], exclude_if_not_included: bool) -> bool {
        if self.is_empty() {
            return true;
        }
        let included = entries.iter().any(|e| self.includes.contains(e));
        let excluded = entries.iter().any(|e| self.excludes.contains(e));
        if (exclude_if_not_included && !included) || excluded {
            return false;
        }
        self.includes.is_empty() || included
    }
}

/// The inclusion entries of a deployment item: its tags, then its directory (for items that
/// have one).
#[must_use]
pub fn item_entries(tags: &[String], rel_dir: Option<&str>) -> Vec<Entry> {
    tags.iter()
        .cloned()
        .map(Entry::Tag)
        .chain(rel_dir.map(|d| Entry::DeploymentItemDir(d.to_owned())))
        .collect()
}

/// The default tag of an item without explicit tags: the base name of its `path` or
/// `include`, unless that is `.`, `..` or empty.
#[must_use]
pub fn default_tag(path_or_include: &str) -> Option<String> {
    let trimmed = path_or_include.trim_end_matches('/');
    let base = match trimmed.rsplit_once('/') {
        Some((_, b)) => b,
        None => trimmed,
    };
    // `filepath.Base` of "" is "." and of "/" is "/".
    match base {
        "" | "." | ".." => None,
        b => Some(b.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    fn rules(inc: &[&str], exc: &[&str]) -> Inclusion {
        Inclusion::from_flags(&tags(inc), &tags(exc), &[], &[]).unwrap()
    }

    #[test]
    fn no_rules_include_everything() {
        assert!(Inclusion::default().check(&item_entries(&tags(&["a"]), None), false));
    }

    #[test]
    fn include_rules_select_and_exclusion_wins() {
        let r = rules(&["a"], &["b"]);
        assert!(r.check(&item_entries(&tags(&["a"]), None), false));
        assert!(!r.check(&item_entries(&tags(&["c"]), None), false));
        assert!(
            !r.check(&item_entries(&tags(&["a", "b"]), None), false),
            "exclusion has precedence"
        );
        let only_exclude = rules(&[], &["b"]);
        assert!(only_exclude.check(&item_entries(&tags(&["c"]), None), false));
        assert!(!only_exclude.check(&item_entries(&tags(&["b"]), None), false));
        assert!(
            !only_exclude.check(&item_entries(&tags(&["c"]), None), true),
            "exclude_if_not_included needs an include match"
        );
    }

    #[test]
    fn deployment_dirs_match_the_item_dir() {
        let r = Inclusion::from_flags(&[], &[], &tags(&["apps/web"]), &[]).unwrap();
        assert!(r.check(&item_entries(&tags(&["web"]), Some("apps/web")), false));
        assert!(!r.check(&item_entries(&tags(&["web"]), Some("apps/db")), false));
        assert!(!r.has_tag_rules());
        let err = Inclusion::from_flags(&[], &[], &[], &tags(&["/abs"])).unwrap_err();
        assert_eq!(err.to_string(), "--exclude-deployment-dir path must be relative");
    }

    #[test]
    fn default_tags_are_base_names() {
        assert_eq!(default_tag("apps/web").as_deref(), Some("web"));
        assert_eq!(default_tag("web/").as_deref(), Some("web"));
        assert_eq!(default_tag("."), None);
        assert_eq!(default_tag("../.."), None);
        assert_eq!(default_tag("sub/.."), None);
    }
}
