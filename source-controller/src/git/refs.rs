//! Reference resolution: `spec.ref` → which remote ref to list → `(reference, commit)` → the
//! artifact revision string.
//!
//! ```text
//!   GitRepositoryRef ──GitRef::from_spec──► GitRef (one variant; precedence applied)
//!        │                                    │ ls-refs (protocol v2, prefix-filtered)
//!        │                                    ▼
//!        │                              [RemoteRef] ──select──► Resolved { reference, commit }
//!        │                                                          │
//!        └─ revision: Revision::git(reference, commit) ◄────────────┘  e.g. main@sha1:<hex>
//! ```
//!
//! Precedence (Flux §1.1): `commit` > `name` > `semver` > `tag` > `branch`; no field set means
//! branch `master`. `commit` may be combined with `branch`: the branch must exist and names the
//! revision, the commit is checked out. Empty strings count as unset, as in Go.
//!
//! Differences from Flux, all on purpose: a bare `commit` is resolved without contacting the
//! remote (its revision is already known; a bad commit fails in the fetch step); with
//! `commit` + `branch` the commit is not checked to be an ancestor of the branch tip (that would
//! need the branch history, while we fetch one commit at depth 1).
//!
//! Annotated tags resolve to the commit they peel to, never to the tag object. Semver picks the
//! highest version among the tags that parse (Masterminds' lenient parser) and match; when two
//! tags denote the same version (`v1.0.0` and `1.0.0`), Flux prefers the newer commit, which
//! ls-refs cannot tell, so the greater tag name wins here instead.

use std::time::Duration;

use gitops_api::revision::Revision;
use gitops_api::source::v1::GitRepositoryRef;
use gitops_git::{RefListing, Remote, RemoteRef};

use super::GitError;
use super::semver::{Constraints, parse_version};
use crate::credentials::Credentials;

/// The branch used when `spec.ref` is absent or empty.
pub const DEFAULT_BRANCH: &str = "master";

/// The reference to follow, after applying Flux's precedence to `spec.ref`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitRef {
    /// The tip of a branch.
    Branch(String),
    /// The commit a tag points to (peeled).
    Tag(String),
    /// The highest tag matching the constraint.
    Semver(Constraints),
    /// A full reference name such as `refs/pull/7/head`; kept absolute in the revision.
    Name(String),
    /// A fixed commit; with `branch`, the branch must exist and names the revision.
    Commit {
        /// Full, lowercase 40-hex SHA-1.
        commit: String,
        /// The branch given alongside, if any.
        branch: Option<String>,
    },
}

/// The outcome of resolution: what the revision names and which commit to check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The reference as written into the revision: `main`, `v1.2.3`, `refs/pull/7/head`, or
    /// `None` for a bare commit.
    pub reference: Option<String>,
    /// The commit, 40 lowercase hex digits.
    pub commit: String,
}

impl Resolved {
    /// The artifact revision, byte for byte as Flux writes it: `main@sha1:<hex>`,
    /// `refs/heads/main@sha1:<hex>`, `sha1:<hex>`.
    pub fn revision(&self) -> String {
        Revision::git(self.reference.as_deref(), &self.commit).to_string()
    }
}

/// What [`select`] could not find.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    Ref { kind: &'static str, name: String },
    Semver,
}

impl GitRef {
    /// Applies Flux's precedence to `spec.ref` (`None` ⇒ branch `master`) and checks the values.
    ///
    /// # Errors
    /// [`GitError::InvalidReference`] for a commit that is not a full SHA-1, a semver
    /// constraint that does not parse, or a name that cannot be a git ref.
    ///
    /// ```
    /// use gitops_api::source::v1::GitRepositoryRef;
    /// use source_controller::git::GitRef;
    ///
    /// let spec = GitRepositoryRef {
    ///     branch: Some("main".into()),
    ///     tag: Some("v1.0.0".into()),
    ///     ..Default::default()
    /// };
    /// assert_eq!(GitRef::from_spec(Some(&spec)).unwrap(), GitRef::Tag("v1.0.0".into()));
    /// assert_eq!(GitRef::from_spec(None).unwrap(), GitRef::Branch("master".into()));
    /// ```
    pub fn from_spec(spec: Option<&GitRepositoryRef>) -> Result<Self, GitError> {
        let field = |v: Option<&String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let Some(spec) = spec else {
            return Ok(GitRef::Branch(DEFAULT_BRANCH.to_string()));
        };
        let branch = field(spec.branch.as_ref());
        if let Some(commit) = field(spec.commit.as_ref()) {
            if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(GitError::InvalidReference {
                    field: "commit",
                    value: commit,
                    reason: "must be a full 40-character SHA-1".to_string(),
                });
            }
            if let Some(b) = &branch {
                check_name("branch", b)?;
            }
            return Ok(GitRef::Commit {
                commit: commit.to_ascii_lowercase(),
                branch,
            });
        }
        if let Some(name) = field(spec.name.as_ref()) {
            check_name("name", &name)?;
            return Ok(GitRef::Name(name));
        }
        if let Some(semver) = field(spec.semver.as_ref()) {
            let constraints = Constraints::parse(&semver).map_err(|e| GitError::InvalidReference {
                field: "semver",
                value: semver.clone(),
                reason: e.reason,
            })?;
            return Ok(GitRef::Semver(constraints));
        }
        if let Some(tag) = field(spec.tag.as_ref()) {
            check_name("tag", &tag)?;
            return Ok(GitRef::Tag(tag));
        }
        let branch = branch.unwrap_or_else(|| DEFAULT_BRANCH.to_string());
        check_name("branch", &branch)?;
        Ok(GitRef::Branch(branch))
    }

    /// The fetch refspec whose two-component prefix filters the ls-refs answer.
    fn listing_spec(&self) -> Option<String> {
        match self {
            GitRef::Branch(b) | GitRef::Commit { branch: Some(b), .. } => Some(format!("refs/heads/{b}")),
            GitRef::Tag(t) => Some(format!("refs/tags/{t}")),
            // A glob needs both sides; nothing is written locally by a listing anyway.
            GitRef::Semver(_) => Some("refs/tags/*:refs/tags/*".to_string()),
            GitRef::Name(n) => Some(n.clone()),
            GitRef::Commit { branch: None, .. } => None,
        }
    }
}

/// Rejects names git would refuse as refs or that would act as refspec patterns.
fn check_name(field: &'static str, name: &str) -> Result<(), GitError> {
    let bad = name.starts_with('/')
        || name.ends_with('/')
        || name.starts_with('-')
        || name.ends_with('.')
        || std::path::Path::new(name)
            .extension()
            .is_some_and(|e| e == "lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '*' | '?' | '[' | '\\' | '^' | '~' | ':')
        });
    if bad {
        return Err(GitError::InvalidReference {
            field,
            value: name.to_string(),
            reason: "not a valid git reference name".to_string(),
        });
    }
    Ok(())
}

/// Picks the ref and commit for `reference` among the advertised `refs`.
pub(crate) fn select(reference: &GitRef, refs: &[RemoteRef]) -> Result<Resolved, Missing> {
    let find = |full: &str| refs.iter().find(|r| r.name == full);
    match reference {
        GitRef::Branch(branch) => find(&format!("refs/heads/{branch}"))
            .map(|r| Resolved {
                reference: Some(branch.clone()),
                commit: r.commit.clone(),
            })
            .ok_or_else(|| Missing::Ref {
                kind: "branch",
                name: branch.clone(),
            }),
        GitRef::Tag(tag) => find(&format!("refs/tags/{tag}"))
            .map(|r| Resolved {
                reference: Some(tag.clone()),
                commit: r.commit.clone(),
            })
            .ok_or_else(|| Missing::Ref {
                kind: "tag",
                name: tag.clone(),
            }),
        GitRef::Name(name) => find(name)
            .map(|r| Resolved {
                reference: Some(name.clone()),
                commit: r.commit.clone(),
            })
            .ok_or_else(|| Missing::Ref {
                kind: "ref",
                name: name.clone(),
            }),
        GitRef::Commit { commit, branch } => match branch {
            Some(branch) if find(&format!("refs/heads/{branch}")).is_none() => Err(Missing::Ref {
                kind: "branch",
                name: branch.clone(),
            }),
            _ => Ok(Resolved {
                reference: branch.clone(),
                commit: commit.clone(),
            }),
        },
        GitRef::Semver(constraints) => refs
            .iter()
            .filter_map(|r| {
                let tag = r.name.strip_prefix("refs/tags/")?;
                let version = parse_version(tag).filter(|v| constraints.matches(v))?;
                Some((version, tag, r))
            })
            .max_by(|(va, ta, _), (vb, tb, _)| va.cmp_precedence(vb).then_with(|| ta.cmp(tb)))
            .map(|(_, tag, r)| Resolved {
                reference: Some(tag.to_string()),
                commit: r.commit.clone(),
            })
            .ok_or(Missing::Semver),
    }
}

/// Lists the remote refs and resolves `reference` to a commit, without fetching objects.
///
/// A bare `commit` needs no listing: the revision is known, so nothing is sent over the wire
/// (an unreachable or bad commit surfaces in [`super::checkout`]). When the ref is missing, a
/// second, unfiltered listing tells an empty repository apart; each listing runs on a worker
/// thread and gives up after `timeout`.
///
/// # Errors
/// [`GitError::RefNotFound`] / [`GitError::NoSemverMatch`] naming the ref and URL,
/// [`GitError::EmptyRepository`] when the remote has no refs at all, and the git layer's
/// [`gitops_git::Error`] (authentication, timeout, URL, operation) as [`GitError::Remote`].
///
/// ```no_run
/// use std::time::Duration;
/// use source_controller::credentials::Credentials;
/// use source_controller::git::{self, GitRef};
///
/// let reference = GitRef::from_spec(None)?;
/// let resolved = git::resolve(
///     "https://example.com/repo.git",
///     &reference,
///     &Credentials::none(),
///     Duration::from_secs(60),
/// )?;
/// println!("{}", resolved.revision()); // master@sha1:…
/// # Ok::<(), git::GitError>(())
/// ```
pub fn resolve(
    url: &str,
    reference: &GitRef,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<Resolved, GitError> {
    let started = std::time::Instant::now();
    let remote = Remote::new(url, credentials, timeout)?;
    let listing = match reference.listing_spec() {
        Some(spec) => remote.list_refs(&[spec.as_str()])?,
        // A bare commit: `select` needs no refs for it.
        None => RefListing::default(),
    };
    let missing = match select(reference, &listing.refs) {
        Ok(resolved) => return Ok(resolved),
        Err(missing) => missing,
    };
    let display_url = remote.display_url().to_string();
    // The prefix-filtered answer cannot tell a missing ref from an empty repository; an
    // unfiltered listing can. Both listings share the one timeout of the resolve.
    let remaining = timeout.saturating_sub(started.elapsed());
    if remaining.is_zero() {
        return Err(GitError::Remote(gitops_git::Error::Timeout {
            op: "list references of",
            url: display_url,
            timeout,
        }));
    }
    let unfiltered = remote.list_refs_within(&[], remaining)?;
    let url = display_url;
    if unfiltered.refs.is_empty() {
        return Err(GitError::EmptyRepository { url });
    }
    Err(match missing {
        Missing::Ref { kind, name } => GitError::RefNotFound { kind, name, url },
        Missing::Semver => GitError::NoSemverMatch {
            constraint: match reference {
                GitRef::Semver(c) => c.to_string(),
                _ => String::new(),
            },
            url,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";
    const D: &str = "4444444444444444444444444444444444444444";

    fn spec(f: impl FnOnce(&mut GitRepositoryRef)) -> GitRepositoryRef {
        let mut s = GitRepositoryRef::default();
        f(&mut s);
        s
    }

    fn refs() -> Vec<RemoteRef> {
        [
            ("HEAD", A),
            ("refs/heads/main", A),
            ("refs/heads/feature/x", B),
            ("refs/tags/v1.0.0", B),
            ("refs/tags/v1.1.0", C),
            ("refs/tags/1.1.0", C),
            ("refs/tags/v2.0.0-rc.1", D),
            ("refs/tags/latest", D),
            ("refs/pull/7/head", D),
        ]
        .into_iter()
        .map(|(name, commit)| RemoteRef {
            name: name.to_string(),
            commit: commit.to_string(),
        })
        .collect()
    }

    fn resolve_spec(s: Option<&GitRepositoryRef>) -> Result<Resolved, Missing> {
        select(&GitRef::from_spec(s).expect("valid spec"), &refs())
    }

    #[test]
    fn precedence_is_commit_name_semver_tag_branch() {
        let all = spec(|s| {
            s.branch = Some("main".into());
            s.tag = Some("v1.0.0".into());
            s.semver = Some(">=1.0.0".into());
            s.name = Some("refs/pull/7/head".into());
            s.commit = Some(A.to_uppercase());
        });
        assert_eq!(
            GitRef::from_spec(Some(&all)).expect("valid"),
            GitRef::Commit {
                commit: A.to_string(),
                branch: Some("main".into())
            }
        );
        let no_commit = spec(|s| {
            s.commit = Some(String::new());
            s.name = all.name.clone();
            s.semver = all.semver.clone();
            s.tag = all.tag.clone();
            s.branch = all.branch.clone();
        });
        assert_eq!(
            GitRef::from_spec(Some(&no_commit)).expect("valid"),
            GitRef::Name("refs/pull/7/head".into())
        );
        let semver_tag_branch = spec(|s| {
            s.semver = all.semver.clone();
            s.tag = all.tag.clone();
            s.branch = all.branch.clone();
        });
        assert!(matches!(
            GitRef::from_spec(Some(&semver_tag_branch)).expect("valid"),
            GitRef::Semver(_)
        ));
        let tag_branch = spec(|s| {
            s.tag = all.tag.clone();
            s.branch = all.branch.clone();
        });
        assert_eq!(
            GitRef::from_spec(Some(&tag_branch)).expect("valid"),
            GitRef::Tag("v1.0.0".into())
        );
    }

    #[test]
    fn no_reference_means_branch_master() {
        assert_eq!(
            GitRef::from_spec(None).expect("valid"),
            GitRef::Branch("master".into())
        );
        assert_eq!(
            GitRef::from_spec(Some(&GitRepositoryRef::default())).expect("valid"),
            GitRef::Branch("master".into())
        );
        let empty_strings = spec(|s| {
            s.branch = Some(String::new());
            s.tag = Some(String::new());
        });
        assert_eq!(
            GitRef::from_spec(Some(&empty_strings)).expect("valid"),
            GitRef::Branch("master".into())
        );
    }

    #[test]
    fn each_kind_resolves_to_the_flux_revision() {
        let cases: Vec<(GitRepositoryRef, String)> = vec![
            (spec(|s| s.branch = Some("main".into())), format!("main@sha1:{A}")),
            (
                spec(|s| s.branch = Some("feature/x".into())),
                format!("feature/x@sha1:{B}"),
            ),
            (
                spec(|s| s.tag = Some("v1.0.0".into())),
                format!("v1.0.0@sha1:{B}"),
            ),
            (
                spec(|s| s.semver = Some("~1.0".into())),
                format!("v1.0.0@sha1:{B}"),
            ),
            (
                spec(|s| s.semver = Some(">=1.0.0".into())),
                format!("v1.1.0@sha1:{C}"),
            ),
            (
                spec(|s| s.semver = Some(">=2.0.0-0".into())),
                format!("v2.0.0-rc.1@sha1:{D}"),
            ),
            (
                spec(|s| s.name = Some("refs/heads/main".into())),
                format!("refs/heads/main@sha1:{A}"),
            ),
            (
                spec(|s| s.name = Some("refs/pull/7/head".into())),
                format!("refs/pull/7/head@sha1:{D}"),
            ),
            (spec(|s| s.commit = Some(C.into())), format!("sha1:{C}")),
            (
                spec(|s| {
                    s.commit = Some(C.into());
                    s.branch = Some("main".into());
                }),
                format!("main@sha1:{C}"),
            ),
        ];
        for (s, expected) in cases {
            let resolved = resolve_spec(Some(&s)).unwrap_or_else(|m| panic!("{s:?}: {m:?}"));
            assert_eq!(resolved.revision(), expected, "{s:?}");
        }
    }

    #[test]
    fn semver_prefers_the_greater_tag_name_for_equal_versions() {
        let resolved = resolve_spec(Some(&spec(|s| s.semver = Some("1.1.x".into())))).expect("match");
        assert_eq!(resolved.reference.as_deref(), Some("v1.1.0"));
    }

    #[test]
    fn missing_refs_are_reported_by_kind_and_name() {
        assert_eq!(
            resolve_spec(Some(&spec(|s| s.branch = Some("nope".into())))),
            Err(Missing::Ref {
                kind: "branch",
                name: "nope".into()
            })
        );
        assert_eq!(
            resolve_spec(Some(&spec(|s| s.tag = Some("v9".into())))),
            Err(Missing::Ref {
                kind: "tag",
                name: "v9".into()
            })
        );
        assert_eq!(
            resolve_spec(Some(&spec(|s| s.name = Some("refs/heads/nope".into())))),
            Err(Missing::Ref {
                kind: "ref",
                name: "refs/heads/nope".into()
            })
        );
        assert_eq!(
            resolve_spec(Some(&spec(|s| s.semver = Some(">=3.0.0".into())))),
            Err(Missing::Semver)
        );
        assert_eq!(
            resolve_spec(Some(&spec(|s| {
                s.commit = Some(A.into());
                s.branch = Some("gone".into());
            }))),
            Err(Missing::Ref {
                kind: "branch",
                name: "gone".into()
            })
        );
    }

    #[test]
    fn invalid_references_are_rejected_with_their_field() {
        for (s, field) in [
            (spec(|s| s.commit = Some("abc123".into())), "commit"),
            (spec(|s| s.commit = Some("z".repeat(40))), "commit"),
            (spec(|s| s.semver = Some(">=x.y".into())), "semver"),
            (spec(|s| s.semver = Some("latest".into())), "semver"),
            (spec(|s| s.branch = Some("a b".into())), "branch"),
            (spec(|s| s.branch = Some("feature/*".into())), "branch"),
            (spec(|s| s.tag = Some("v1..0".into())), "tag"),
            (spec(|s| s.name = Some("/refs/heads/main".into())), "name"),
        ] {
            match GitRef::from_spec(Some(&s)) {
                Err(GitError::InvalidReference { field: f, .. }) => assert_eq!(f, field, "{s:?}"),
                other => panic!("{s:?}: expected an invalid {field}, got {other:?}"),
            }
        }
    }
}
