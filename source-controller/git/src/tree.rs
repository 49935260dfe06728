//! A fetched commit's tree without a checkout: trees parsed in memory, blob contents in a few
//! files of a scratch directory, read on demand. What [`crate::Remote::fetch_tree`] returns.
//!
//! ```text
//!  unpack: receive ─► resolve (blobs appended to <scratch>/blobs-<thread>, their place indexed;
//!                     trees + commit in memory)
//!                  ─► CommitTree::build: the commit's tree walked path by path (as a checkout
//!                     would), every name checked, each tree parsed once and sorted by the bytes
//!                     of its names, every blob checked to be there
//!  caller: root() / entries(tree) ─► walk;  open_blob(id) ─► stream the content (pread)
//! ```
//!
//! One file per resolving thread rather than one per blob: a 10,000-file tree costs 2 files to
//! create, keep open and remove instead of 10,000 of each (about a fifth of a second on tmpfs).
//!
//! Every tree has passed the checks of a checkout (see `unpack`): names are plain file names, no
//! name twice in one tree, nesting bounded, every tree and blob present. A caller can therefore
//! use names as path segments as they are.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use fs_err::os::unix::fs::FileExt as _;

use gix::ObjectId;
use gix::bstr::ByteSlice as _;
use gix::objs::tree::EntryKind as GitKind;

use crate::unpack::{
    BlobLoc, HASH, Kept, MAX_TREE_DEPTH, Result, UnpackError, blob_file_name, invalid, safe_name,
};

/// A tree of a [`CommitTree`]; only meaningful for the tree it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TreeId(ObjectId);

/// A blob (file content or symlink target) of a [`CommitTree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobId(ObjectId);

impl std::fmt::Display for TreeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a tree entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir(TreeId),
    /// A regular file; `executable` for git's mode 100755.
    File {
        /// Its content.
        blob: BlobId,
        /// Whether git records it as executable.
        executable: bool,
    },
    /// A symbolic link; the blob holds its target.
    Link(BlobId),
    /// A submodule (gitlink): not fetched; a checkout leaves an empty directory at its path.
    Submodule,
}

/// One entry of a tree: a plain file name (no `/`, not `.`, `..` or `.git`) and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    name: Box<[u8]>,
    kind: EntryKind,
}

impl TreeEntry {
    /// The entry's name.
    pub fn name(&self) -> &OsStr {
        OsStr::from_bytes(&self.name)
    }

    /// What the entry is.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }
}

/// A commit's tree, checked and ready to walk; see the module docs.
///
/// The blob files live in the scratch directory given to [`crate::Remote::fetch_tree`] and are
/// held open; a blob can be read any number of times, also concurrently.
#[derive(Debug)]
pub struct CommitTree {
    commit: ObjectId,
    message: Vec<u8>,
    root: TreeId,
    trees: HashMap<ObjectId, Box<[TreeEntry]>>,
    /// Every blob's place, sorted by id.
    blobs: Vec<(ObjectId, BlobLoc)>,
    files: Vec<fs_err::File>,
}

/// A blob's content, read from its place in a blob file; see [`CommitTree::open_blob`].
#[derive(Debug)]
pub struct BlobReader<'t> {
    file: &'t fs_err::File,
    at: u64,
    end: u64,
}

impl BlobReader<'_> {
    /// The blob's size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.at
    }

    /// Whether the blob is empty (or fully read).
    pub fn is_empty(&self) -> bool {
        self.at == self.end
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.at).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob file ends before the blob",
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}

impl CommitTree {
    /// The commit, 40 lowercase hex digits.
    pub fn commit(&self) -> String {
        self.commit.to_hex().to_string()
    }

    /// The full commit message (everything after the headers), lossily as UTF-8.
    pub fn message(&self) -> String {
        self.message.to_str_lossy().into_owned()
    }

    /// The commit's root tree.
    pub fn root(&self) -> TreeId {
        self.root
    }

    /// The entries of `tree`, sorted by the bytes of their names (not in git's tree order, which
    /// sorts a directory `a` as `a/`). Empty for an id that is not from this tree.
    pub fn entries(&self, tree: TreeId) -> &[TreeEntry] {
        self.trees.get(&tree.0).map_or(&[], |entries| entries)
    }

    /// A reader of `blob`'s content; [`BlobReader::len`] is its size.
    ///
    /// # Errors
    /// `NotFound` for a blob of another tree.
    pub fn open_blob(&self, blob: BlobId) -> io::Result<BlobReader<'_>> {
        let not_here = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {blob} is not in this tree"),
            )
        };
        let at = self
            .blobs
            .binary_search_by(|(id, _)| id.cmp(&blob.0))
            .map_err(|_| not_here())?;
        let place = self.blobs[at].1;
        let file = self.files.get(place.file as usize).ok_or_else(not_here)?;
        Ok(BlobReader {
            file,
            at: place.offset,
            end: place.offset + place.len,
        })
    }

    /// `blob`'s whole content (for small blobs: ignore files, symlink targets).
    ///
    /// # Errors
    /// As [`CommitTree::open_blob`], or the I/O error of reading (fs-err's message names the
    /// file).
    pub fn read_blob(&self, blob: BlobId) -> io::Result<Vec<u8>> {
        let mut reader = self.open_blob(blob)?;
        let mut out = Vec::with_capacity(usize::try_from(reader.len()).unwrap_or(0).min(1 << 20));
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Checks the tree of commit `want` (resolved into `kept`, blobs in the `files` packed blob
    /// files of `dir`) the way a checkout would, and keeps it parsed.
    pub(crate) fn build(
        kept: Kept,
        dir: &Path,
        files: u32,
        want: ObjectId,
        interrupt: &AtomicBool,
    ) -> Result<CommitTree> {
        let Kept {
            trees,
            commits,
            mut blobs,
            ..
        } = kept;
        blobs.sort_unstable_by_key(|(id, _)| *id);
        let (root, message) = super::unpack::commit_root(&commits, want)?;
        let mut check = Check {
            raw: trees,
            parsed: HashMap::new(),
            blobs: &blobs,
            interrupt,
        };
        check.tree(root, 0)?;
        let parsed = check.parsed;
        let files = (0..files)
            .map(|n| fs_err::File::open(dir.join(blob_file_name(n))))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(CommitTree {
            commit: want,
            message,
            root: TreeId(root),
            trees: parsed,
            blobs,
            files,
        })
    }
}

/// The checks of [`CommitTree::build`].
struct Check<'a> {
    /// Trees not parsed yet.
    raw: HashMap<ObjectId, Vec<u8>>,
    parsed: HashMap<ObjectId, Box<[TreeEntry]>>,
    /// The blobs resolution found, sorted by id.
    blobs: &'a [(ObjectId, BlobLoc)],
    interrupt: &'a AtomicBool,
}

impl Check<'_> {
    /// Checks tree `id` and, path by path, everything below it. A tree used at several paths is
    /// parsed once but walked at each, as a checkout writes it at each: the time this takes grows
    /// with the size of the checkout, and the fetch's deadline bounds it the same way.
    fn tree(&mut self, id: ObjectId, depth: usize) -> Result<()> {
        if depth > MAX_TREE_DEPTH {
            return Err(invalid(format!("trees nest deeper than {MAX_TREE_DEPTH} levels")));
        }
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(UnpackError::Interrupted);
        }
        if !self.parsed.contains_key(&id) {
            let raw = self
                .raw
                .remove(&id)
                .ok_or_else(|| invalid(format!("the server did not send tree {id}")))?;
            let entries = self.parse(&raw)?;
            self.parsed.insert(id, entries);
        }
        let subtrees: Vec<ObjectId> = self.parsed[&id]
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::Dir(TreeId(sub)) => Some(sub),
                _ => None,
            })
            .collect();
        for sub in subtrees {
            self.tree(sub, depth + 1)?;
        }
        Ok(())
    }

    /// One tree's entries: names checked, no name twice, blobs present; sorted by name bytes.
    fn parse(&mut self, raw: &[u8]) -> Result<Box<[TreeEntry]>> {
        let mut entries = Vec::new();
        for entry in gix::objs::TreeRefIter::from_bytes(raw, HASH) {
            let entry = entry.map_err(|e| invalid(format!("a tree cannot be parsed: {e}")))?;
            let name = safe_name(entry.filename)?;
            let id = entry.oid.to_owned();
            let kind = match entry.mode.kind() {
                GitKind::Tree => EntryKind::Dir(TreeId(id)),
                GitKind::Blob => EntryKind::File {
                    blob: self.blob(id)?,
                    executable: false,
                },
                GitKind::BlobExecutable => EntryKind::File {
                    blob: self.blob(id)?,
                    executable: true,
                },
                GitKind::Link => EntryKind::Link(self.blob(id)?),
                GitKind::Commit => EntryKind::Submodule,
            };
            entries.push(TreeEntry {
                name: name.as_bytes().into(),
                kind,
            });
        }
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        // Git refuses trees naming an entry twice; a checkout would write the second over the
        // first (a symlink, say), so they are refused here as there.
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(invalid(format!(
                "the tree has two entries named '{}'",
                pair[0].name.to_str_lossy()
            )));
        }
        Ok(entries.into_boxed_slice())
    }

    /// A blob the tree refers to, after checking the pack held it.
    fn blob(&self, id: ObjectId) -> Result<BlobId> {
        if self.blobs.binary_search_by(|(b, _)| b.cmp(&id)).is_err() {
            return Err(invalid(format!("the server did not send blob {id}")));
        }
        Ok(BlobId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::tests::{git, pack, repo};
    use crate::{Credentials, Remote, SshMode};

    fn tree_of(pack: &[u8], want: ObjectId) -> (tempfile::TempDir, std::result::Result<CommitTree, String>) {
        let scratch = tempfile::tempdir().unwrap();
        let mut id = [0u8; 20];
        id.copy_from_slice(want.as_bytes());
        let tree = crate::unpack::tree_from_pack(pack, scratch.path(), id);
        (scratch, tree)
    }

    /// Every path below `dir` with what it holds, as a checkout would show it.
    fn listing(tree: &CommitTree, dir: TreeId, prefix: &str, out: &mut Vec<String>) {
        for entry in tree.entries(dir) {
            let path = format!("{prefix}{}", entry.name().to_string_lossy());
            match entry.kind() {
                EntryKind::Dir(sub) => listing(tree, sub, &format!("{path}/"), out),
                EntryKind::File { blob, executable } => {
                    let content = String::from_utf8(tree.read_blob(blob).unwrap()).unwrap();
                    out.push(format!("{path} exec={executable} {}", content.len()));
                }
                EntryKind::Link(target) => {
                    let target = String::from_utf8(tree.read_blob(target).unwrap()).unwrap();
                    out.push(format!("{path} -> {target}"));
                }
                EntryKind::Submodule => out.push(format!("{path} submodule")),
            }
        }
    }

    #[test]
    fn the_tree_of_a_pack_holds_every_entry_in_byte_order_with_its_content() {
        let (repo, head) = repo();
        let d = repo.path();
        for name in ["a/x", "a-b", "a.yaml", "a0"] {
            fs_err::create_dir_all(d.join(name).parent().unwrap()).unwrap();
            fs_err::write(d.join(name), name).unwrap();
        }
        git(d, &["add", "-A"], b"");
        // `add -A` drops the submodule entry (nothing is checked out there): add it back.
        let gitlink = format!("160000,{},vendor/sub", "1".repeat(40));
        git(d, &["update-index", "--add", "--cacheinfo", &gitlink], b"");
        git(d, &["commit", "-q", "-m", "names"], b"");
        let head2 = ObjectId::from_hex(
            String::from_utf8(git(d, &["rev-parse", "HEAD"], b""))
                .unwrap()
                .trim()
                .as_bytes(),
        )
        .unwrap();
        assert_ne!(head, head2);
        for extra in [&["--delta-base-offset"][..], &[][..]] {
            let (scratch, tree) = tree_of(&pack(d, head2, extra), head2);
            let tree = tree.unwrap_or_else(|e| panic!("{extra:?}: {e}"));
            assert_eq!(tree.commit(), head2.to_hex().to_string());
            assert_eq!(tree.message(), "names\n");
            let root: Vec<&OsStr> = tree.entries(tree.root()).iter().map(TreeEntry::name).collect();
            // Byte order: git's tree order would put the directory `a` after `a.yaml`.
            assert_eq!(
                root,
                [
                    "a",
                    "a-b",
                    "a.yaml",
                    "a0",
                    "apps",
                    "copy",
                    "link",
                    "run.sh",
                    "same.yaml",
                    "vendor"
                ]
            );
            let mut paths = Vec::new();
            listing(&tree, tree.root(), "", &mut paths);
            assert_eq!(paths.len(), 40 + 9, "{paths:?}");
            for expected in [
                "a/x exec=false 3",
                "run.sh exec=true 18",
                "link -> same.yaml",
                "copy/same.yaml exec=false 5",
                "vendor/sub submodule",
            ] {
                assert!(paths.contains(&expected.to_string()), "{expected}: {paths:?}");
            }
            // Blob contents stream from a few packed files; the pack itself is gone.
            let mut left: Vec<String> = fs_err::read_dir(scratch.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert!(left.iter().all(|n| n.starts_with("blobs-")), "{left:?}");
            let cm = tree
                .entries(tree.root())
                .iter()
                .find(|e| e.name() == "same.yaml")
                .map(TreeEntry::kind);
            let Some(EntryKind::File { blob, .. }) = cm else {
                panic!("same.yaml is a file")
            };
            let mut reader = tree.open_blob(blob).unwrap();
            assert_eq!(reader.len(), 5);
            let mut content = String::new();
            reader.read_to_string(&mut content).unwrap();
            assert_eq!(content, "same\n");
            assert!(reader.is_empty());
        }
    }

    /// Tree entries `(mode, name, blob content)`.
    type Entries<'a> = &'a [(&'a str, &'a str, &'a [u8])];

    /// A commit whose tree has entries `(mode, name, blob content)` (a `040000` entry names a
    /// tree that does not exist), and a pack of the commit, its tree and the blobs, except the
    /// blob of `left_out`.
    fn crafted(d: &Path, entries: &[(&str, &str, &[u8])], left_out: Option<&str>) -> (ObjectId, Vec<u8>) {
        let hash = |kind: &str, content: &[u8]| {
            let mut args = vec!["hash-object", "-w", "--stdin"];
            if kind != "blob" {
                args.extend(["-t", kind, "--literally"]);
            }
            let id = String::from_utf8(git(d, &args, content)).unwrap();
            ObjectId::from_hex(id.trim().as_bytes()).unwrap()
        };
        let mut tree = Vec::new();
        let mut objects = Vec::new();
        for (mode, name, content) in entries {
            tree.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            let id = if *mode == "040000" {
                ObjectId::from([2u8; 20])
            } else {
                let blob = hash("blob", content);
                if left_out != Some(*name) {
                    objects.push(blob);
                }
                blob
            };
            tree.extend_from_slice(id.as_bytes());
        }
        let tree = hash("tree", &tree);
        let commit = git(d, &["commit-tree", &tree.to_string(), "-m", "crafted"], b"");
        let commit = ObjectId::from_hex(String::from_utf8(commit).unwrap().trim().as_bytes()).unwrap();
        objects.extend([tree, commit]);
        let list = objects
            .iter()
            .map(ObjectId::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        (
            commit,
            git(d, &["pack-objects", "--stdout", "-q"], list.as_bytes()),
        )
    }

    #[test]
    fn trees_a_checkout_would_refuse_are_refused() {
        let (repo, _) = repo();
        let d = repo.path();
        let link: &[(&str, &str, &[u8])] = &[
            ("100644", "a", b"x"),
            ("120000", "b", b"../pwn"),
            ("100644", "b", b"y"),
        ];
        let cases: [(Entries<'_>, Option<&str>, &str); 6] = [
            (&[("100644", "..", b"x")], None, "not a safe file name"),
            (&[("100644", ".git", b"x")], None, "not a safe file name"),
            (&[("100644", ".GIT", b"x")], None, "not a safe file name"),
            (link, None, "two entries named 'b'"),
            (
                &[("100644", "ok", b"x"), ("040000", "sub", b"")],
                None,
                "did not send tree 0202",
            ),
            (
                &[("100644", "ok", b"x"), ("100755", "gone", b"y")],
                Some("gone"),
                "did not send blob",
            ),
        ];
        for (entries, left_out, message) in cases {
            let (commit, pack) = crafted(d, entries, left_out);
            let (_scratch, tree) = tree_of(&pack, commit);
            let err = tree.expect_err(message);
            assert!(err.contains(message), "{message}: {err}");
        }
        let (_, pack) = crafted(d, &[("100644", "a", b"x")], None);
        let (_scratch, tree) = tree_of(&pack, ObjectId::from([7u8; 20]));
        assert!(
            tree.expect_err("other commit")
                .contains("did not send commit 0707")
        );
    }

    #[test]
    fn fetch_tree_over_a_transport_gives_the_tree_fetch_commit_checks_out() {
        let (repo, head) = repo();
        // A local path through `git upload-pack`, as the user's own git would reach it.
        let url = repo.path().join(".git").display().to_string();
        let credentials = Credentials {
            ssh: Some(SshMode::System { command: None }),
            ..Credentials::default()
        };
        let remote = Remote::new(&url, &credentials, std::time::Duration::from_secs(60)).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let tree = remote
            .fetch_tree(&head.to_hex().to_string(), &scratch.path().join("objects"))
            .unwrap();
        let checkout = tempfile::tempdir().unwrap();
        let fetched = remote
            .fetch_commit(&head.to_hex().to_string(), checkout.path())
            .unwrap();
        assert_eq!((tree.commit(), tree.message()), (fetched.commit, fetched.message));
        let mut from_tree = Vec::new();
        listing(&tree, tree.root(), "", &mut from_tree);
        from_tree.sort();
        let mut from_checkout = Vec::new();
        let mut stack = vec![checkout.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs_err::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                let rel = path.strip_prefix(checkout.path()).unwrap().display().to_string();
                let meta = fs_err::symlink_metadata(&path).unwrap();
                if meta.file_type().is_symlink() {
                    from_checkout.push(format!(
                        "{rel} -> {}",
                        fs_err::read_link(&path).unwrap().display()
                    ));
                } else if meta.is_dir() && fs_err::read_dir(&path).unwrap().next().is_none() {
                    from_checkout.push(format!("{rel} submodule"));
                } else if meta.is_dir() {
                    stack.push(path);
                } else {
                    use std::os::unix::fs::PermissionsExt as _;
                    let exec = meta.permissions().mode() & 0o111 != 0;
                    from_checkout.push(format!("{rel} exec={exec} {}", meta.len()));
                }
            }
        }
        from_checkout.sort();
        assert_eq!(from_tree, from_checkout);
        // A used scratch directory is refused, as a used checkout destination is.
        let err = remote
            .fetch_tree(&head.to_hex().to_string(), &scratch.path().join("objects"))
            .expect_err("not empty");
        assert!(err.to_string().contains("is not empty"), "{err}");
    }
}
