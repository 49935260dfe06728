//! The file tree a deployment item is rendered into and its kustomization prepared and built from:
//! the rendered item directory on disk ([`Disk`]), or the same files still in memory
//! ([`MemTree`]).
//!
//! ```text
//!  template::render_directory_files ─► MemTree ─┬─ nothing needs a disk copy ─► kustomize (native, in memory)
//!                                               └─ otherwise: MemTree::write_to_disk ─► render dir ─► helm, kustomize
//! ```
//!
//! Writing a thousand small rendered files only to read them back and delete the directory cost
//! about a third of a render's CPU time on ext4 (create and unlink), so an item whose build
//! needs no disk (no Helm chart, no symlink, a kustomization the native path builds, a render
//! dir nobody reads afterwards) never touches it. The paths are the ones the files would have on
//! disk, so every message names the same place either way.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

/// Read and write access to a rendered tree, on disk or in memory.
pub trait Tree {
    /// A regular file (or a symlink to one) is at `path`.
    fn is_file(&self, path: &Path) -> bool;
    /// A directory is at `path`.
    fn is_dir(&self, path: &Path) -> bool;
    /// The file at `path` as UTF-8 text.
    ///
    /// # Errors
    /// When it does not exist, cannot be read or is not UTF-8.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// The entries of directory `dir` sorted by name, each with whether it is a directory (not
    /// following symlinks, as Go's `ReadDir`).
    ///
    /// # Errors
    /// When `dir` cannot be read.
    fn entries(&self, dir: &Path) -> io::Result<Vec<(String, bool)>>;
    /// Writes `text` to the file at `path` (its directory exists).
    ///
    /// # Errors
    /// When it cannot be written.
    fn write(&mut self, path: &Path, text: String) -> io::Result<()>;
}

/// The file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disk;

impl Tree for Disk {
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        fs_err::read_to_string(path)
    }

    fn entries(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        for e in fs_err::read_dir(dir)? {
            let e = e?;
            let is_dir = e.file_type()?.is_dir();
            out.push((e.file_name().to_string_lossy().into_owned(), is_dir));
        }
        out.sort();
        Ok(out)
    }

    fn write(&mut self, path: &Path, text: String) -> io::Result<()> {
        fs_err::write(path, text)
    }
}

/// A file of a [`MemTree`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum MemFile {
    /// Rendered content.
    Bytes(Vec<u8>),
    /// Copied verbatim from this source file (read when needed, not held).
    CopyOf(PathBuf),
}

/// A rendered directory tree held in memory, keyed by the absolute paths its files would have on
/// disk (lexically normalised; no symlinks are followed because none are held as such).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemTree {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, MemFile>,
    /// `(target, link)`: recreated by [`MemTree::write_to_disk`]; a tree with symlinks is built on disk.
    symlinks: Vec<(PathBuf, PathBuf)>,
}

impl MemTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records directory `path` (and, on [`MemTree::write_to_disk`], creates it with its parents).
    pub fn add_dir(&mut self, path: &Path) {
        self.dirs.insert(normalize(path));
    }

    /// Records a rendered file.
    pub fn add_file(&mut self, path: &Path, content: Vec<u8>) {
        self.files.insert(normalize(path), MemFile::Bytes(content));
    }

    /// Records a file copied verbatim from `from`.
    pub fn add_copy(&mut self, path: &Path, from: PathBuf) {
        self.files.insert(normalize(path), MemFile::CopyOf(from));
    }

    /// Records a symlink at `link` pointing to `target`.
    pub fn add_symlink(&mut self, target: PathBuf, link: PathBuf) {
        self.symlinks.push((target, link));
    }

    /// Whether the tree holds symlinks (which only the file system can resolve).
    pub fn has_symlinks(&self) -> bool {
        !self.symlinks.is_empty()
    }

    /// The names of the files held, for decisions made before building.
    pub fn file_names(&self) -> impl Iterator<Item = &std::ffi::OsStr> {
        self.files.keys().filter_map(|p| p.file_name())
    }

    /// Writes the tree to disk: directories, files (copies from their sources), symlinks.
    ///
    /// # Errors
    /// The first write that failed, naming its path.
    pub fn write_to_disk(&self) -> io::Result<()> {
        for d in &self.dirs {
            fs_err::create_dir_all(d)?;
        }
        for (path, f) in &self.files {
            match f {
                MemFile::Bytes(b) => fs_err::write(path, b)?,
                MemFile::CopyOf(from) => {
                    fs_err::copy(from, path)?;
                }
            }
        }
        for (target, link) in &self.symlinks {
            make_symlink(target, link)?;
        }
        Ok(())
    }
}

impl Tree for MemTree {
    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(&normalize(path))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains(&normalize(path))
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        match self.files.get(&normalize(path)) {
            Some(MemFile::Bytes(b)) => String::from_utf8(b.clone()).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("'{}': {e}", path.display()))
            }),
            Some(MemFile::CopyOf(from)) => fs_err::read_to_string(from),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("'{}': no such rendered file", path.display()),
            )),
        }
    }

    fn entries(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let dir = normalize(dir);
        if !self.dirs.contains(&dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("'{}': no such rendered directory", dir.display()),
            ));
        }
        let child_name = |p: &Path| {
            (p.parent() == Some(dir.as_path()))
                .then(|| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .flatten()
        };
        let mut out: Vec<(String, bool)> = self
            .dirs
            .iter()
            .filter_map(|d| child_name(d).map(|n| (n, true)))
            .chain(
                self.files
                    .keys()
                    .filter_map(|f| child_name(f).map(|n| (n, false))),
            )
            .collect();
        out.sort();
        Ok(out)
    }

    fn write(&mut self, path: &Path, text: String) -> io::Result<()> {
        self.add_file(path, text.into_bytes());
        Ok(())
    }
}

/// `path` without `.` components and with `..` applied to the component before it (lexically:
/// a [`MemTree`] holds no symlinks that could make the two differ).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(unix)]
fn make_symlink(target: &Path, link: &Path) -> io::Result<()> {
    fs_err::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn make_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let _ = (target, link);
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are only supported on unix",
    ))
}

#[cfg(test)]
mod tests {
    use super::{Disk, MemTree, Tree};
    use std::path::Path;

    fn sample(root: &Path) -> MemTree {
        let mut t = MemTree::new();
        t.add_dir(root);
        t.add_dir(&root.join("sub"));
        t.add_file(&root.join("b.yaml"), b"b: 1\n".to_vec());
        t.add_file(&root.join("a.yaml"), b"a: 1\n".to_vec());
        t.add_file(&root.join("sub/c.yaml"), b"c: 1\n".to_vec());
        t
    }

    #[test]
    fn memory_and_disk_answer_alike() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("item");
        let mem = sample(&root);
        mem.write_to_disk().unwrap();
        for (name, tree) in [("memory", &mem as &dyn Tree), ("disk", &Disk)] {
            assert_eq!(
                tree.entries(&root).unwrap(),
                vec![
                    ("a.yaml".to_string(), false),
                    ("b.yaml".to_string(), false),
                    ("sub".to_string(), true)
                ],
                "{name}"
            );
            assert!(tree.is_file(&root.join("sub/../a.yaml")), "{name}");
            assert!(tree.is_dir(&root.join("./sub")), "{name}");
            assert!(!tree.is_file(&root.join("sub")), "{name}");
            assert!(!tree.is_file(&root.join("missing.yaml")), "{name}");
            assert_eq!(
                tree.read_to_string(&root.join("sub/c.yaml")).unwrap(),
                "c: 1\n",
                "{name}"
            );
            assert!(tree.read_to_string(&root.join("missing.yaml")).is_err(), "{name}");
        }
    }

    #[test]
    fn writes_land_in_memory_and_copies_read_their_source() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("verbatim.txt");
        fs_err::write(&src, "{{ not templated }}").unwrap();
        let root = d.path().join("item");
        let mut t = sample(&root);
        t.add_copy(&root.join("v.txt"), src);
        t.write(&root.join("kustomization.yml"), "resources: []\n".into())
            .unwrap();
        assert_eq!(
            t.read_to_string(&root.join("v.txt")).unwrap(),
            "{{ not templated }}"
        );
        assert_eq!(
            t.read_to_string(&root.join("kustomization.yml")).unwrap(),
            "resources: []\n"
        );
        assert!(!root.exists(), "nothing is written until MemTree::write_to_disk");
        t.write_to_disk().unwrap();
        assert_eq!(
            fs_err::read_to_string(root.join("v.txt")).unwrap(),
            "{{ not templated }}"
        );
    }
}
