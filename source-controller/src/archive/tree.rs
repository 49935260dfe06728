//! Packaging a fetched commit straight from its objects, without a checkout directory: the same
//! archive bytes [`super::write_tar_gz`] writes for a checkout of that commit.
//!
//! ```text
//!  CommitTree (trees in memory, blobs in files) ─► IgnoreRules::for_git_tree (.sourceignore blobs)
//!                                               ─► write_tree_tar_gz: walk, entries re-sorted by
//!                                                  name bytes ─► tar ─► parallel gzip ─► out
//! ```
//!
//! What a checkout directory would hold, and so what this walk emits: a directory per tree, a
//! file per blob (mode `0700` when git marks it executable, `0600` otherwise), nothing for a
//! symlink (the directory walk drops symlinks), an empty directory per submodule. Git's tree
//! order sorts a directory `a` as `a/` (after `a-b` and `a.yaml`); the archive wants plain byte
//! order, which [`CommitTree::entries`] already gives.
//!
//! `.sourceignore` files are read from their blobs in the order [`IgnoreRules::for_git`] reads
//! them from a checkout. One that is a symlink is followed inside the tree as the file system
//! would follow it; a link that leaves the tree (an absolute target, or `..` above the root)
//! counts as missing, where a checkout would read whatever the host has at that path.
//!
//! Memory: the tree's entries (already in memory) and one copy buffer; blob contents are streamed
//! from the blob files into the compressor.

use super::ignore::{IGNORE_FILE, parse_patterns};
use super::{ArchiveError, ArchiveSummary, IgnoreRules, Packer, file_mode, write_compressed};
use gitops_git::{CommitTree, EntryKind, TreeId};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// Symlinks followed while resolving one path, as Linux's limit (`ELOOP` beyond).
const MAX_LINK_HOPS: u32 = 40;

/// Writes the tree of `tree`, minus what `rules` exclude, to `out` as a normalized tar.gz: byte
/// for byte what [`super::write_tar_gz`] writes for a checkout of the same commit.
///
/// # Errors
/// An [`ArchiveError`] naming the entry (its path in the tree) and the action that failed; `out`
/// then holds a partial, unusable stream that the caller must discard.
pub fn write_tree_tar_gz<W: Write>(
    tree: &CommitTree,
    rules: &IgnoreRules,
    out: W,
) -> Result<ArchiveSummary, ArchiveError> {
    write_compressed(rules, out, |packer| packer.pack_tree(tree))
}

impl<W: Write> Packer<'_, W> {
    /// The root entry `.`, then every entry of the commit's tree.
    pub(super) fn pack_tree(&mut self, tree: &CommitTree) -> Result<(), ArchiveError> {
        self.append_dir(Path::new("."), &[] as &[&OsStr])?;
        self.walk_tree(tree, tree.root(), &mut Vec::new())
    }

    /// Appends the entries below tree `dir` (whose segments below the root are `rel`), as
    /// [`Packer::walk`] does for the directory a checkout would leave.
    fn walk_tree<'t>(
        &mut self,
        tree: &'t CommitTree,
        dir: TreeId,
        rel: &mut Vec<&'t OsStr>,
    ) -> Result<(), ArchiveError> {
        for entry in tree.entries(dir) {
            rel.push(entry.name());
            match entry.kind() {
                kind @ (EntryKind::Dir(_) | EntryKind::Submodule) => {
                    let excluded = self.rules.is_excluded(rel, true);
                    if !excluded {
                        self.append_dir(&rel_path(rel), rel)?;
                    }
                    // A submodule's directory is empty: nothing below it to visit.
                    if let EntryKind::Dir(sub) = kind
                        && (!excluded || self.rules.may_include_below(rel))
                    {
                        self.walk_tree(tree, sub, rel)?;
                    }
                }
                EntryKind::File { blob, executable } => {
                    if !self.rules.is_excluded(rel, false) {
                        let path = rel_path(rel);
                        let open = |source| ArchiveError::Open {
                            path: path.clone(),
                            source,
                        };
                        let content = tree.open_blob(blob).map_err(open)?;
                        let size = content.len();
                        let mode = file_mode(if executable { 0o755 } else { 0o644 });
                        self.append_file(&path, rel, mode, size, content)?;
                    }
                }
                // The directory walk drops symlinks (never followed).
                EntryKind::Link(_) => {}
            }
            rel.pop();
        }
        Ok(())
    }
}

/// An entry's path in the tree, for error messages.
fn rel_path(rel: &[&OsStr]) -> PathBuf {
    rel.iter().collect()
}

impl IgnoreRules {
    /// [`IgnoreRules::for_git`] for a fetched commit: every `.sourceignore` of its tree (read
    /// from the blobs, parent before children, siblings in byte order of their names), then
    /// `spec_ignore`, wrapped by [`IgnoreRules::with_defaults`].
    ///
    /// # Errors
    /// [`ArchiveError::ReadIgnoreFile`] naming the `.sourceignore` (its path in the tree) that
    /// could not be read or whose symlinks cannot be resolved (a loop, a file used as a
    /// directory), as reading it from a checkout would fail.
    pub fn for_git_tree(tree: &CommitTree, spec_ignore: Option<&str>) -> Result<Self, ArchiveError> {
        let mut user = Vec::new();
        load_tree(tree, &mut vec![Some(tree.root())], &mut Vec::new(), &mut user)?;
        Ok(Self::for_git_patterns(user, spec_ignore))
    }
}

/// Loads the ignore file of the directory at the end of `dirs` (its chain from the root; `None`
/// for a submodule's empty directory), then its subdirectories', depth first.
fn load_tree<'t>(
    tree: &'t CommitTree,
    dirs: &mut Vec<Option<TreeId>>,
    domain: &mut Vec<&'t OsStr>,
    out: &mut Vec<super::ignore::Pattern>,
) -> Result<(), ArchiveError> {
    let Some(Some(dir)) = dirs.last().copied() else {
        return Ok(());
    };
    let entries = tree.entries(dir);
    let ignore_file = entries
        .binary_search_by(|e| e.name().as_bytes().cmp(IGNORE_FILE.as_bytes()))
        .ok()
        .map(|i| entries[i].kind());
    if let Some(kind) = ignore_file {
        let path = || {
            let mut path = rel_path(domain);
            path.push(IGNORE_FILE);
            path
        };
        let failed = |source| ArchiveError::ReadIgnoreFile { path: path(), source };
        let blob = match kind {
            EntryKind::File { blob, .. } => Some(blob),
            EntryKind::Link(link) => {
                let mut at = dirs.clone();
                let mut resolver = Resolver { tree, hops: 0 };
                match resolver.follow(&mut at, link, true).map_err(failed)? {
                    Found::File(blob) => Some(blob),
                    Found::Dir | Found::Missing => None,
                }
            }
            // Not a regular file: skipped, as a checkout's directory or submodule would be.
            EntryKind::Dir(_) | EntryKind::Submodule => None,
        };
        if let Some(blob) = blob {
            let text = tree.read_blob(blob).map_err(failed)?;
            out.extend(parse_patterns(&text, domain));
        }
    }
    for entry in entries {
        let sub = match entry.kind() {
            EntryKind::Dir(sub) => Some(sub),
            EntryKind::Submodule => None,
            EntryKind::File { .. } | EntryKind::Link(_) => continue,
        };
        dirs.push(sub);
        domain.push(entry.name());
        load_tree(tree, dirs, domain, out)?;
        domain.pop();
        dirs.pop();
    }
    Ok(())
}

/// Where a path in the tree leads.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// A directory (the resolver's chain now ends at it).
    Dir,
    File(gitops_git::BlobId),
    /// Nothing there, or outside the tree.
    Missing,
}

/// Follows symlinks inside a [`CommitTree`] the way a file system follows them in a checkout.
struct Resolver<'t> {
    tree: &'t CommitTree,
    hops: u32,
}

impl Resolver<'_> {
    /// Resolves the symlink whose target is blob `link`, found in the directory at the end of
    /// `dirs`; `last` when nothing follows the link in the path being resolved.
    fn follow(
        &mut self,
        dirs: &mut Vec<Option<TreeId>>,
        link: gitops_git::BlobId,
        last: bool,
    ) -> io::Result<Found> {
        self.hops += 1;
        if self.hops > MAX_LINK_HOPS {
            return Err(io::Error::other("too many levels of symbolic links"));
        }
        let target = self.tree.read_blob(link)?;
        let found = self.lookup(dirs, &target)?;
        if !last && matches!(found, Found::File(_)) {
            return Err(not_a_directory());
        }
        Ok(found)
    }

    /// Resolves `path` relative to the directory at the end of `dirs`.
    fn lookup(&mut self, dirs: &mut Vec<Option<TreeId>>, path: &[u8]) -> io::Result<Found> {
        if path.is_empty() || path.starts_with(b"/") {
            // An empty target names nothing; an absolute one leaves the tree.
            return Ok(Found::Missing);
        }
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .collect();
        // `dir/` must name a directory.
        let wants_dir = path.ends_with(b"/");
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len() && !wants_dir;
            if *part == b".." {
                if dirs.len() == 1 {
                    return Ok(Found::Missing);
                }
                dirs.pop();
                continue;
            }
            let Some(Some(dir)) = dirs.last().copied() else {
                // Inside a submodule's empty directory.
                return Ok(Found::Missing);
            };
            let entries = self.tree.entries(dir);
            let Ok(at) = entries.binary_search_by(|e| e.name().as_bytes().cmp(part)) else {
                return Ok(Found::Missing);
            };
            match entries[at].kind() {
                EntryKind::Dir(sub) => dirs.push(Some(sub)),
                EntryKind::Submodule => dirs.push(None),
                EntryKind::File { blob, .. } if last => return Ok(Found::File(blob)),
                EntryKind::File { .. } => return Err(not_a_directory()),
                EntryKind::Link(link) => match self.follow(dirs, link, last)? {
                    Found::Dir => {}
                    other => return Ok(other),
                },
            }
        }
        Ok(Found::Dir)
    }
}

fn not_a_directory() -> io::Error {
    io::Error::new(io::ErrorKind::NotADirectory, "not a directory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::write_tar_gz;
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::{Command, Stdio};

    /// Runs git (a test dependency, like the e2e servers) in `dir`; `input` goes to stdin.
    fn git(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "core.symlinks=true",
            ])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git must be installed for these tests (Debian: apt-get install git)");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A work tree being built up: files, executables, symlinks, submodule entries.
    struct Repo {
        dir: tempfile::TempDir,
        gitlinks: Vec<String>,
    }

    impl Repo {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            git(dir.path(), &["init", "-q", "-b", "main"], b"");
            Repo {
                dir,
                gitlinks: Vec::new(),
            }
        }

        fn file(&self, path: &str, content: &str) -> &Self {
            let path = self.dir.path().join(path);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, content).unwrap();
            self
        }

        fn exec(&self, path: &str, content: &str) -> &Self {
            self.file(path, content);
            let path = self.dir.path().join(path);
            fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
            self
        }

        fn link(&self, path: &str, target: &str) -> &Self {
            let path = self.dir.path().join(path);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::os::unix::fs::symlink(target, path).unwrap();
            self
        }

        fn submodule(&mut self, path: &str) -> &mut Self {
            self.gitlinks.push(path.to_string());
            self
        }

        /// Commits everything; returns the pack `git` would send for a depth-1 fetch and the
        /// commit id.
        fn pack(&self) -> (Vec<u8>, [u8; 20]) {
            let d = self.dir.path();
            git(d, &["add", "-A"], b"");
            for (i, path) in self.gitlinks.iter().enumerate() {
                let id = format!("{:040x}", i + 1);
                git(
                    d,
                    &[
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        &format!("160000,{id},{path}"),
                    ],
                    b"",
                );
            }
            git(d, &["commit", "-q", "--allow-empty", "-m", "test"], b"");
            let head = String::from_utf8(git(d, &["rev-parse", "HEAD"], b"")).unwrap();
            let pack = git(
                d,
                &["pack-objects", "--stdout", "--revs", "-q", "--delta-base-offset"],
                format!("{}\n", head.trim()).as_bytes(),
            );
            let mut id = [0u8; 20];
            for (i, byte) in id.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&head.trim()[2 * i..2 * i + 2], 16).unwrap();
            }
            (pack, id)
        }
    }

    /// One way of packaging: the archive bytes and summary, or the error message.
    type Packaged = Result<(Vec<u8>, ArchiveSummary), String>;

    /// The directory path: a checkout (the unpacker behind `Remote::fetch_commit`), then
    /// `IgnoreRules::for_git` + `write_tar_gz`.
    fn via_checkout(pack: &[u8], want: [u8; 20], spec: Option<&str>) -> Packaged {
        let scratch = tempfile::tempdir().unwrap();
        let (git_dir, dest) = (scratch.path().join("git"), scratch.path().join("tree"));
        fs_err::create_dir_all(&git_dir).unwrap();
        fs_err::create_dir_all(&dest).unwrap();
        gitops_git::fuzz_unpack(pack, &git_dir, &dest, Some(want)).expect("checkout");
        let mut out = Vec::new();
        let summary = IgnoreRules::for_git(&dest, spec)
            .and_then(|rules| write_tar_gz(&dest, &rules, &mut out))
            .map_err(|e| e.to_string())?;
        Ok((out, summary))
    }

    /// The streaming path: the fetched tree (as `Remote::fetch_tree` returns it), then
    /// `IgnoreRules::for_git_tree` + `write_tree_tar_gz`.
    fn via_tree(pack: &[u8], want: [u8; 20], spec: Option<&str>) -> Packaged {
        let scratch = tempfile::tempdir().unwrap();
        let tree = gitops_git::tree_from_pack(pack, scratch.path(), want).expect("tree");
        let mut out = Vec::new();
        let summary = IgnoreRules::for_git_tree(&tree, spec)
            .and_then(|rules| write_tree_tar_gz(&tree, &rules, &mut out))
            .map_err(|e| e.to_string())?;
        Ok((out, summary))
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut tar).unwrap();
        tar
    }

    fn names(gz: &[u8]) -> Vec<String> {
        let tar = gunzip(gz);
        let mut archive = tar::Archive::new(&tar[..]);
        archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect()
    }

    /// Packages the repository both ways under each of `specs` and asserts the same tar bytes
    /// (and so the same gzip bytes and summary); returns the entry names per spec.
    fn same_both_ways(repo: &Repo, specs: &[Option<&str>]) -> Vec<Vec<String>> {
        let (pack, want) = repo.pack();
        specs
            .iter()
            .map(|spec| {
                let (dir_gz, dir_summary) = via_checkout(&pack, want, *spec).expect("directory path");
                let (tree_gz, tree_summary) = via_tree(&pack, want, *spec).expect("streaming path");
                assert!(
                    gunzip(&tree_gz) == gunzip(&dir_gz),
                    "spec {spec:?}: the tar streams differ:\n  checkout: {:?}\n  tree:     {:?}",
                    names(&dir_gz),
                    names(&tree_gz)
                );
                assert!(tree_gz == dir_gz, "spec {spec:?}: the gzip bytes differ");
                assert_eq!(tree_summary, dir_summary, "spec {spec:?}");
                names(&tree_gz)
            })
            .collect()
    }

    /// Specs exercising the default rules, anchored patterns, negations below excluded
    /// directories and directory-only patterns.
    const SPECS: &[Option<&str>] = &[
        None,
        Some("/*\n!/deploy\n/deploy/**/*.md\n"),
        Some("dir/\n!dir/keep.yaml\n"),
        Some("a*\n!a/x/\n"),
        Some("*.yaml\n!**/keep.yaml\n"),
    ];

    #[test]
    fn the_tree_packs_to_the_bytes_of_its_checkout() {
        let mut repo = Repo::new();
        let long = format!(
            "{}/{}.yaml",
            ["segment-of-a-long-path"; 8].join("/"),
            "x".repeat(120)
        );
        repo.file("a/x/one.yaml", "one\n")
            .file("a/y.yaml", "y\n")
            .file("a-b/z.yaml", "z\n")
            .file("a.yaml", "a\n")
            .file("a0", "zero\n")
            .file("B.yaml", "upper case sorts first\n")
            .file("empty", "")
            .exec("run.sh", "#!/bin/sh\necho hi\n")
            .exec("bin/tool", "#!/bin/sh\n")
            .file("same.yaml", "same\n")
            .file("copy/same.yaml", "same\n")
            .file("deploy/app.yaml", "kind: ConfigMap\n")
            .file("deploy/docs/README.md", "docs\n")
            .file("dir/keep.yaml", "keep\n")
            .file("dir/drop.yaml", "drop\n")
            .file(".gitignore", "ignored by the defaults\n")
            .file(".github/workflows/ci.yaml", "ci\n")
            .file("logo.png", "png\n")
            .file("nested/.sops.yaml", "sops\n")
            .file(&long, "deep\n")
            .link("link.yaml", "same.yaml")
            .link("linkdir", "a")
            .link("dangling", "missing");
        repo.submodule("vendor/sub").submodule("a/sub");
        let names = same_both_ways(&repo, SPECS);
        // The defaults dropped VCS, CI, image and tool files; symlinks are left out; the
        // submodule is an empty directory.
        assert!(names[0].contains(&"vendor/sub".to_string()), "{:?}", names[0]);
        for absent in [
            ".gitignore",
            ".github",
            "logo.png",
            "nested/.sops.yaml",
            "link.yaml",
            "linkdir",
        ] {
            assert!(
                !names[0].contains(&absent.to_string()),
                "{absent}: {:?}",
                names[0]
            );
        }
        assert!(names[0].contains(&long), "{:?}", names[0]);
        assert_eq!(names[1], [".", "deploy", "deploy/app.yaml", "deploy/docs"]);
        assert!(names[2].contains(&"dir/keep.yaml".to_string()) && !names[2].contains(&"dir".to_string()));
    }

    #[test]
    fn sourceignore_files_are_read_from_the_tree() {
        let mut repo = Repo::new();
        repo.file(".sourceignore", "/*\n!/deploy\n!/apps\n")
            .file("deploy/app.yaml", "app\n")
            .file("deploy/.sourceignore", "*.md\n!keep.md\n")
            .file("deploy/docs/README.md", "readme\n")
            .file("deploy/docs/keep.md", "kept\n")
            .file("apps/.sourceignore", "secret/\n!secret/public.yaml\n")
            .file("apps/secret/private.yaml", "private\n")
            .file("apps/secret/public.yaml", "public\n")
            .file(
                "apps/logo.png",
                "png: kept, a .sourceignore turns the defaults off\n",
            )
            .file("other/app.yaml", "excluded by the root file\n")
            .file("root.yaml", "excluded\n");
        repo.submodule("apps/vendored");
        let names = same_both_ways(&repo, SPECS);
        assert_eq!(
            names[0],
            [
                ".",
                "apps",
                "apps/.sourceignore",
                "apps/logo.png",
                "apps/secret/public.yaml",
                "apps/vendored",
                "deploy",
                "deploy/.sourceignore",
                "deploy/app.yaml",
                "deploy/docs",
                "deploy/docs/keep.md",
            ]
        );
    }

    #[test]
    fn symlinked_sourceignore_files_are_followed_inside_the_tree() {
        let mut repo = Repo::new();
        repo.file("patterns/common", "*.txt\n")
            .file("real/inner/patterns", "*.md\n")
            .link("real/link-to-inner", "inner")
            .link(".sourceignore", "patterns/common")
            .link("a/.sourceignore", "../real/link-to-inner/patterns")
            .link("b/.sourceignore", "../patterns")
            .link("c/.sourceignore", "/nonexistent-kluctl-test/patterns")
            .link("d/.sourceignore", "../../outside")
            .link("e/.sourceignore", "missing")
            .file("a/x.md", "md\n")
            .file("a/x.txt", "txt\n")
            .file("b/y.txt", "txt\n")
            .file("c/y.md", "md\n")
            .file("d/y.md", "md\n")
            .file("e/y.md", "md\n")
            .file("readme.txt", "txt\n");
        repo.submodule("sub");
        repo.link("g/.sourceignore", "../sub/patterns");
        let names = same_both_ways(&repo, &[None, Some("!*.txt\n")])
            .into_iter()
            .next()
            .unwrap();
        assert!(!names.contains(&"a/x.md".to_string()), "{names:?}");
        assert!(!names.contains(&"readme.txt".to_string()), "{names:?}");
        assert!(names.contains(&"c/y.md".to_string()), "{names:?}");
    }

    #[test]
    fn an_unresolvable_sourceignore_link_fails_both_ways_alike() {
        for (link, target) in [
            ("loop/.sourceignore", "../loop/.sourceignore"),
            ("file/.sourceignore", "../plain/x"),
            ("slash/.sourceignore", "../plain/"),
        ] {
            let repo = Repo::new();
            repo.file("plain", "a file\n")
                .link(link, target)
                .file("app.yaml", "app\n");
            let (pack, want) = repo.pack();
            let dir = via_checkout(&pack, want, None).expect_err("the checkout's read fails");
            let tree = via_tree(&pack, want, None).expect_err("the tree's read fails");
            let expected = format!("failed to read ignore file '{link}'");
            assert!(tree.starts_with(&expected), "{tree}");
            assert!(dir.starts_with("failed to read ignore file '"), "{dir}");
        }
    }

    #[test]
    fn an_empty_tree_is_the_root_alone() {
        let repo = Repo::new();
        let names = same_both_ways(&repo, &[None]);
        assert_eq!(names[0], ["."]);
    }
}
