//! The artifact packager: the `package` step of `resolve → fetch → package → store → status`.
//!
//! Pure apart from reading the source tree: a directory (or a fetched commit's tree) and its
//! [`IgnoreRules`] go in, a normalized tar.gz stream (written to any [`Write`]) and its sha256
//! digest come out. It knows nothing of Kubernetes objects or storage paths; [`crate::storage`]
//! decides where the bytes land.
//!
//! ```text
//!  checkout / download dir ─► walk (byte order, lstat) ───────┐
//!    IgnoreRules::for_git (.sourceignore files)   write_tar_gz │
//!  fetched commit (gitops_git::CommitTree) ─► walk of its trees ┼─► ignore rules ─► tar (normalized)
//!    IgnoreRules::for_git_tree (.sourceignore blobs)            │                      │
//!    write_tree_tar_gz: the same bytes, blobs streamed, no checkout (tree module)      │
//!                                              gzip: 128 KiB blocks deflated on every core,
//!                                              one gzip member (pgzip)               │
//!  ArchiveSummary { digest, size, files } ◄── sha256 + byte count ◄─────────────────┴──► out
//! ```
//!
//! # Archive layout (what Flux's `storage.Archive` emits; consumers untar with Flux's rules)
//!
//! - Entries in `filepath.Walk` order: the root first as a directory named `.`, then each
//!   directory's entries sorted by the bytes of their names, depth first (`a`, `a/x`, `a-b`, `a.yaml`).
//! - Names relative to the root with `/`, no `./` prefix, no trailing `/` on directories. Names
//!   too long for a ustar header are carried by a GNU long-name entry, which Go's reader accepts.
//! - Only regular files and directories; symlinks, sockets, FIFOs and devices are left out
//!   without error (symlinks are never followed).
//! - uid/gid 0, empty user/group names, mtime 0; mode `0750` for directories, `0700` for files
//!   with any execute bit, `0600` for other files.
//! - gzip at the default level (6), no file name, mtime 0: one gzip member, compressed in
//!   parallel blocks ([`pgzip`]) whose bytes do not depend on the number of threads. The digest
//!   and size cover the gzip bytes. The bytes differ from Go's gzip output, which is fine:
//!   consumers verify the digest advertised in status, and the revision, not the digest, drives
//!   their change detection.
//!
//! Ignore rules are applied to every path on its own, as Flux does, so an excluded directory's
//! entries can still be re-included by a negated pattern (the directory entry itself is then
//! missing; untar creates it). An excluded directory is only read when a negated pattern could
//! re-include something below it; otherwise its subtree is skipped unread.
//!
//! File contents are streamed from disk (or the blob files) into the compressor; memory use does
//! not grow with file size.

mod glob;
pub mod ignore;
pub mod pgzip;
mod tree;

pub use ignore::IgnoreRules;

use gitops_api::revision::{Digest, lower_hex};
use sha2::{Digest as _, Sha256};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use pgzip::ParGzEncoder;
pub use tree::write_tree_tar_gz;

/// Mode of every directory entry in an artifact.
pub const DIR_MODE: u32 = 0o750;
/// Mode of regular files without any execute bit.
pub const FILE_MODE: u32 = 0o600;
/// Mode of regular files with at least one execute bit.
pub const EXEC_FILE_MODE: u32 = 0o700;

/// Why a source tree could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The root to archive is not a directory.
    #[error("failed to archive '{}': not a directory", path.display())]
    NotADirectory {
        /// The root given.
        path: PathBuf,
    },
    /// An entry's metadata could not be read.
    #[error("failed to stat '{}'", path.display())]
    Stat {
        /// The entry.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A directory could not be listed.
    #[error("failed to read directory '{}'", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A `.sourceignore` file exists but could not be read.
    #[error("failed to read ignore file '{}'", path.display())]
    ReadIgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file could not be opened for archiving.
    #[error("failed to open '{}'", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Reading a file's content failed.
    #[error("failed to read '{}'", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file shrank or grew between its stat and the end of its copy.
    #[error(
        "failed to archive '{}': its size changed while it was read (expected {expected} bytes)",
        path.display()
    )]
    SizeChanged {
        /// The file.
        path: PathBuf,
        /// The size its header announced.
        expected: u64,
    },
    /// Writing an entry to the output (or compressing it) failed.
    #[error("failed to write '{}' to the archive", path.display())]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing the archive trailer or the gzip footer failed.
    #[error("failed to finish the archive")]
    Finish {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    /// The Flux condition/event reason: every packaging failure is `ArchiveOperationFailed`, as
    /// Flux reports a failed `storage.Archive`.
    pub fn reason(&self) -> &'static str {
        match self {
            ArchiveError::NotADirectory { .. }
            | ArchiveError::Stat { .. }
            | ArchiveError::ReadDir { .. }
            | ArchiveError::ReadIgnoreFile { .. }
            | ArchiveError::Open { .. }
            | ArchiveError::Read { .. }
            | ArchiveError::SizeChanged { .. }
            | ArchiveError::Write { .. }
            | ArchiveError::Finish { .. } => gitops_api::conditions::reasons::ARCHIVE_OPERATION_FAILED,
        }
    }
}

/// What [`write_tar_gz`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// sha256 of the gzip bytes written (`status.artifact.digest`).
    pub digest: Digest,
    /// Number of gzip bytes written (`status.artifact.size`).
    pub size: u64,
    /// Number of regular files in the archive.
    pub files: usize,
}

/// Writes the tree at `root`, minus what `rules` exclude, to `out` as a normalized tar.gz.
///
/// Pass `&mut writer` to keep using the writer afterwards (for example to commit a storage temp
/// file). `out` receives the bytes in order and nothing else; it is flushed at the end.
///
/// # Guarantees
/// The same tree and rules give the same bytes, whatever the files' owners, times and the walk
/// order of the file system. The summary's digest is the sha256 of exactly the bytes written.
///
/// # Errors
/// An [`ArchiveError`] naming the path and the action that failed; `out` then holds a partial,
/// unusable stream that the caller must discard.
///
/// ```no_run
/// use source_controller::archive::{IgnoreRules, write_tar_gz};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let checkout = std::path::Path::new("/tmp/checkout");
/// let rules = IgnoreRules::for_git(checkout, None)?;
/// let mut out = std::fs::File::create("/tmp/artifact.tar.gz")?;
/// let summary = write_tar_gz(checkout, &rules, &mut out)?;
/// println!("{} ({} bytes, {} files)", summary.digest, summary.size, summary.files);
/// # Ok(()) }
/// ```
pub fn write_tar_gz<W: Write>(
    root: &Path,
    rules: &IgnoreRules,
    out: W,
) -> Result<ArchiveSummary, ArchiveError> {
    let meta = std::fs::metadata(root).map_err(|source| ArchiveError::Stat {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ArchiveError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    write_compressed(rules, out, |packer| packer.pack_dir(root))
}

/// Runs `fill` on a packer whose tar stream is gzipped (in parallel) and hashed into `out`.
fn write_compressed<W: Write>(
    rules: &IgnoreRules,
    out: W,
    fill: impl FnOnce(&mut Packer<'_, ParGzEncoder<HashingWriter<W>>>) -> Result<(), ArchiveError>,
) -> Result<ArchiveSummary, ArchiveError> {
    let hashing = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
        size: 0,
    };
    // No file name, mtime 0, OS byte 255 ("unknown"), as Go writes them; compressed in parallel.
    let mut packer = Packer::new(ParGzEncoder::new(hashing), rules);
    fill(&mut packer)?;
    let Packer { tar, files, .. } = packer;
    let finish = |source| ArchiveError::Finish { source };
    let mut hashing = tar.into_inner().and_then(ParGzEncoder::finish).map_err(finish)?;
    hashing.flush().map_err(finish)?;
    Ok(ArchiveSummary {
        digest: Digest::sha256(lower_hex(&hashing.hasher.finalize())),
        size: hashing.size,
        files,
    })
}

/// The walk state: the tar stream being written and the rules deciding what goes in.
struct Packer<'a, W: Write> {
    tar: tar::Builder<W>,
    rules: &'a IgnoreRules,
    files: usize,
}

impl<'a, W: Write> Packer<'a, W> {
    fn new(out: W, rules: &'a IgnoreRules) -> Self {
        Packer {
            tar: tar::Builder::new(out),
            rules,
            files: 0,
        }
    }

    /// The root entry `.`, then everything below the directory `root`.
    fn pack_dir(&mut self, root: &Path) -> Result<(), ArchiveError> {
        self.append_dir(root, &[] as &[OsString])?;
        self.walk(&mut root.to_path_buf(), &mut Vec::new())
    }

    /// Appends the entries below the directory `dir` (whose segments below the root are `rel`).
    fn walk(&mut self, dir: &mut PathBuf, rel: &mut Vec<OsString>) -> Result<(), ArchiveError> {
        let read_dir_failed = |source| ArchiveError::ReadDir {
            path: dir.clone(),
            source,
        };
        let mut entries = std::fs::read_dir(&*dir)
            .map_err(read_dir_failed)?
            .map(|entry| entry.map(|e| (e.file_name(), e)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_dir_failed)?;
        // Byte order of the names, like Go's sort.Strings in filepath.Walk.
        entries.sort_unstable_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));

        for (name, entry) in entries {
            dir.push(&name);
            rel.push(name);
            // lstat: a symlink is reported as a symlink and dropped below, never followed.
            let meta = entry.metadata().map_err(|source| ArchiveError::Stat {
                path: dir.clone(),
                source,
            })?;
            if meta.is_dir() {
                let excluded = self.rules.is_excluded(rel, true);
                if !excluded {
                    self.append_dir(dir, rel)?;
                }
                if !excluded || self.rules.may_include_below(rel) {
                    self.walk(dir, rel)?;
                }
            } else if meta.is_file() && !self.rules.is_excluded(rel, false) {
                let file = std::fs::File::open(&*dir).map_err(|source| ArchiveError::Open {
                    path: dir.clone(),
                    source,
                })?;
                self.append_file(dir, rel, file_mode(meta.permissions().mode()), meta.len(), file)?;
            }
            dir.pop();
            rel.pop();
        }
        Ok(())
    }

    /// A directory entry; `path` names it in errors.
    fn append_dir<S: AsRef<OsStr>>(&mut self, path: &Path, rel: &[S]) -> Result<(), ArchiveError> {
        let mut header = header(tar::EntryType::Directory, DIR_MODE, 0);
        self.tar
            .append_data(&mut header, entry_name(rel), io::empty())
            .map_err(|source| ArchiveError::Write {
                path: path.to_path_buf(),
                source,
            })
    }

    /// A regular file of `size` bytes read from `content`; `path` names it in errors. Fails
    /// when `content` ends early or holds more than `size` bytes.
    fn append_file<S: AsRef<OsStr>, R: Read>(
        &mut self,
        path: &Path,
        rel: &[S],
        mode: u32,
        size: u64,
        content: R,
    ) -> Result<(), ArchiveError> {
        let mut source = Source {
            inner: content.take(size),
            read: 0,
            failed: false,
        };
        let mut header = header(tar::EntryType::Regular, mode, size);
        if let Err(error) = self.tar.append_data(&mut header, entry_name(rel), &mut source) {
            let path = path.to_path_buf();
            return Err(if source.failed {
                ArchiveError::Read { path, source: error }
            } else {
                ArchiveError::Write { path, source: error }
            });
        }
        // The header announced `size` bytes: a shorter copy or a longer file breaks the stream.
        let mut probe = [0u8; 1];
        let grew = source
            .inner
            .into_inner()
            .read(&mut probe)
            .map_err(|error| ArchiveError::Read {
                path: path.to_path_buf(),
                source: error,
            })?;
        if source.read != size || grew != 0 {
            return Err(ArchiveError::SizeChanged {
                path: path.to_path_buf(),
                expected: size,
            });
        }
        self.files += 1;
        Ok(())
    }
}

/// The artifact mode of a regular file with permission bits `mode`.
fn file_mode(mode: u32) -> u32 {
    if mode & 0o111 == 0 {
        FILE_MODE
    } else {
        EXEC_FILE_MODE
    }
}

/// A header with Flux's normalization: owner 0:0, no names, mtime 0, the given mode.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// The entry name for the segments below the root: `.` for the root, else `a/b/c`.
fn entry_name<S: AsRef<OsStr>>(rel: &[S]) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(".")
    } else {
        rel.iter().map(AsRef::as_ref).collect()
    }
}

/// A file's content, capped at the size in its header, remembering whether reading failed.
struct Source<R> {
    inner: io::Take<R>,
    read: u64,
    failed: bool,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                Err(e)
            }
        }
    }
}

/// Passes bytes through to `inner`, hashing and counting what `inner` accepted.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// One entry read back from an archive.
    #[derive(Debug, PartialEq)]
    struct Entry {
        name: String,
        kind: tar::EntryType,
        mode: u32,
        content: Vec<u8>,
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, content).unwrap();
        }
        dir
    }

    fn archive(root: &Path, rules: &IgnoreRules) -> (Vec<u8>, ArchiveSummary) {
        let mut out = Vec::new();
        let summary = write_tar_gz(root, rules, &mut out).unwrap();
        (out, summary)
    }

    fn entries(gz: &[u8]) -> Vec<Entry> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header();
                assert_eq!(header.uid().unwrap(), 0);
                assert_eq!(header.gid().unwrap(), 0);
                assert_eq!(header.mtime().unwrap(), 0);
                assert_eq!(header.username().unwrap(), Some(""));
                assert_eq!(header.groupname().unwrap(), Some(""));
                let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
                let kind = header.entry_type();
                let mode = header.mode().unwrap();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                Entry {
                    name,
                    kind,
                    mode,
                    content,
                }
            })
            .collect()
    }

    fn names(gz: &[u8]) -> Vec<String> {
        entries(gz).into_iter().map(|e| e.name).collect()
    }

    #[test]
    fn same_tree_gives_identical_bytes_and_digest() {
        let files = [("b.yaml", "b"), ("a/x.yaml", "x"), ("a/y/z.yaml", "z")];
        let first = tree(&files);
        let (bytes1, summary1) = archive(first.path(), &IgnoreRules::none());
        let (bytes2, summary2) = archive(first.path(), &IgnoreRules::none());
        assert_eq!(bytes1, bytes2);
        assert_eq!(summary1, summary2);

        // Another copy created in another order, with other mtimes and modes, packs the same.
        let second = tree(&[files[2], files[0], files[1]]);
        fs_err::set_permissions(
            second.path().join("b.yaml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let (bytes3, summary3) = archive(second.path(), &IgnoreRules::none());
        assert_eq!(bytes1, bytes3);
        assert_eq!(summary1, summary3);
    }

    /// The tar stream of `root` as the walk writes it, before compression.
    fn plain_tar(root: &Path, rules: &IgnoreRules) -> Vec<u8> {
        let mut packer = Packer::new(Vec::new(), rules);
        packer.pack_dir(root).unwrap();
        packer.tar.into_inner().unwrap()
    }

    #[test]
    fn the_parallel_gzip_holds_exactly_the_tar_stream() {
        // Several compression blocks of text, a file of noise and many small entries.
        let mut files: Vec<(String, String)> = (0..300)
            .map(|i| {
                (
                    format!("apps/app-{}/cm-{i}.yaml", i % 7),
                    format!("name: cm-{i}\n").repeat(40),
                )
            })
            .collect();
        let noise = noise_text(300_000);
        files.push(("noise.bin".into(), noise));
        let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        let dir = tree(&borrowed);
        let (gz, summary) = archive(dir.path(), &IgnoreRules::none());
        let expected = plain_tar(dir.path(), &IgnoreRules::none());
        assert!(expected.len() > 4 * pgzip::BLOCK, "{} bytes", expected.len());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert!(
            decoded == expected,
            "flate2 decodes other bytes than the tar stream"
        );
        let mut gunzip = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip must be installed for these tests (Debian: apt-get install gzip)");
        let mut stdin = gunzip.stdin.take().unwrap();
        let input = gz.clone();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = gunzip.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success() && out.stdout == expected,
            "gzip -dc disagrees"
        );
        assert_eq!(summary.files, 301);
    }

    #[test]
    fn digest_and_size_describe_the_bytes_written() {
        let dir = tree(&[("app.yaml", "kind: ConfigMap\n")]);
        let (bytes, summary) = archive(dir.path(), &IgnoreRules::none());
        assert_eq!(summary.size, bytes.len() as u64);
        assert_eq!(summary.digest, Digest::sha256(lower_hex(&Sha256::digest(&bytes))));
        assert_eq!(summary.files, 1);
    }

    #[test]
    fn gzip_header_has_no_name_and_zero_mtime() {
        let dir = tree(&[("app.yaml", "x")]);
        let (bytes, _) = archive(dir.path(), &IgnoreRules::none());
        // magic, deflate, no flags (so no FNAME), mtime 0, XFL 0 (default level), OS unknown.
        assert_eq!(bytes[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn headers_are_normalized_and_in_walk_order() {
        let dir = tree(&[
            ("a.yaml", "a"),
            ("a-b/x.yaml", "x"),
            ("a/z.yaml", "z"),
            ("a/b/y.yaml", "y"),
            ("B.yaml", "upper sorts first"),
            ("run.sh", "#!/bin/sh"),
        ]);
        fs_err::set_permissions(dir.path().join("run.sh"), std::fs::Permissions::from_mode(0o751)).unwrap();
        fs_err::set_permissions(dir.path().join("a.yaml"), std::fs::Permissions::from_mode(0o666)).unwrap();
        fs_err::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let (bytes, summary) = archive(dir.path(), &IgnoreRules::none());
        let dir_entry = |name: &str| Entry {
            name: name.into(),
            kind: tar::EntryType::Directory,
            mode: DIR_MODE,
            content: Vec::new(),
        };
        let file_entry = |name: &str, mode: u32, content: &str| Entry {
            name: name.into(),
            kind: tar::EntryType::Regular,
            mode,
            content: content.into(),
        };
        assert_eq!(
            entries(&bytes),
            [
                dir_entry("."),
                file_entry("B.yaml", FILE_MODE, "upper sorts first"),
                dir_entry("a"),
                dir_entry("a/b"),
                file_entry("a/b/y.yaml", FILE_MODE, "y"),
                file_entry("a/z.yaml", FILE_MODE, "z"),
                dir_entry("a-b"),
                file_entry("a-b/x.yaml", FILE_MODE, "x"),
                file_entry("a.yaml", FILE_MODE, "a"),
                file_entry("run.sh", EXEC_FILE_MODE, "#!/bin/sh"),
            ]
        );
        assert_eq!(summary.files, 6);
    }

    #[test]
    fn any_exec_bit_gives_0700() {
        let dir = tree(&[("u", ""), ("g", ""), ("o", ""), ("none", "")]);
        for (name, mode) in [("u", 0o744), ("g", 0o654), ("o", 0o645), ("none", 0o666)] {
            fs_err::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let (bytes, _) = archive(dir.path(), &IgnoreRules::none());
        let modes: Vec<(String, u32)> = entries(&bytes).into_iter().map(|e| (e.name, e.mode)).collect();
        assert_eq!(
            modes,
            [
                (".".to_string(), DIR_MODE),
                ("g".to_string(), EXEC_FILE_MODE),
                ("none".to_string(), FILE_MODE),
                ("o".to_string(), EXEC_FILE_MODE),
                ("u".to_string(), EXEC_FILE_MODE),
            ]
        );
    }

    #[test]
    fn symlinks_and_special_files_are_dropped() {
        let dir = tree(&[("real.yaml", "r"), ("sub/inner.yaml", "i")]);
        symlink("real.yaml", dir.path().join("link.yaml")).unwrap();
        symlink("sub", dir.path().join("linkdir")).unwrap();
        symlink("/etc/passwd", dir.path().join("outside")).unwrap();
        symlink("missing", dir.path().join("dangling")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
        let (bytes, summary) = archive(dir.path(), &IgnoreRules::none());
        assert_eq!(names(&bytes), [".", "real.yaml", "sub", "sub/inner.yaml"]);
        assert_eq!(summary.files, 2);
    }

    #[test]
    fn empty_directories_are_kept() {
        let dir = tree(&[("app.yaml", "")]);
        fs_err::create_dir_all(dir.path().join("empty/nested")).unwrap();
        let (bytes, _) = archive(dir.path(), &IgnoreRules::none());
        assert_eq!(names(&bytes), [".", "app.yaml", "empty", "empty/nested"]);
    }

    #[test]
    fn default_rules_drop_vcs_and_binary_files() {
        let dir = tree(&[
            (".git/config", ""),
            (".git/objects/pack/p.pack", ""),
            (".gitignore", ""),
            (".github/workflows/ci.yaml", ""),
            ("logo.png", ""),
            ("deploy/app.yaml", ""),
            ("deploy/.sops.yaml", ""),
        ]);
        let rules = IgnoreRules::for_git(dir.path(), None).unwrap();
        let (bytes, _) = archive(dir.path(), &rules);
        assert_eq!(names(&bytes), [".", "deploy", "deploy/app.yaml"]);
    }

    #[test]
    fn a_sourceignore_switches_the_extension_defaults_off() {
        let dir = tree(&[
            (".git/config", ""),
            (".sourceignore", "*.md\n"),
            ("README.md", ""),
            ("logo.png", ""),
            ("app.yaml", ""),
        ]);
        let rules = IgnoreRules::for_git(dir.path(), None).unwrap();
        let (bytes, _) = archive(dir.path(), &rules);
        assert_eq!(names(&bytes), [".", ".sourceignore", "app.yaml", "logo.png"]);
    }

    #[test]
    fn negation_reincludes_below_excluded_directories() {
        let dir = tree(&[
            ("deploy/app.yaml", ""),
            ("deploy/docs/README.md", ""),
            ("other/app.yaml", ""),
            ("root.yaml", ""),
            ("dir/keep.yaml", ""),
            ("dir/drop.yaml", ""),
        ]);
        let rules = IgnoreRules::for_git(dir.path(), Some("/*\n!/deploy\n/deploy/**/*.md\n")).unwrap();
        let (bytes, _) = archive(dir.path(), &rules);
        assert_eq!(names(&bytes), [".", "deploy", "deploy/app.yaml", "deploy/docs"]);

        // The file comes back without its excluded parent's entry, as in Flux.
        let rules = IgnoreRules::for_git(dir.path(), Some("dir/\n!dir/keep.yaml\n")).unwrap();
        let (bytes, _) = archive(dir.path(), &rules);
        assert!(names(&bytes).contains(&"dir/keep.yaml".to_string()));
        assert!(!names(&bytes).contains(&"dir".to_string()));
        assert!(!names(&bytes).contains(&"dir/drop.yaml".to_string()));
    }

    #[test]
    fn long_names_survive_the_round_trip() {
        let deep = format!("{}/{}.yaml", ["segment"; 40].join("/"), "x".repeat(120));
        let dir = tree(&[(deep.as_str(), "deep")]);
        let (bytes, _) = archive(dir.path(), &IgnoreRules::none());
        let last = entries(&bytes).pop().unwrap();
        assert_eq!(last.name, deep);
        assert_eq!(last.content, b"deep");
    }

    #[test]
    fn a_file_root_is_rejected() {
        let dir = tree(&[("file", "")]);
        let err = write_tar_gz(&dir.path().join("file"), &IgnoreRules::none(), io::sink()).unwrap_err();
        assert!(matches!(err, ArchiveError::NotADirectory { .. }), "{err}");
        assert!(err.to_string().starts_with("failed to archive '"), "{err}");
    }

    #[test]
    fn a_missing_root_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = write_tar_gz(&missing, &IgnoreRules::none(), io::sink()).unwrap_err();
        assert_eq!(err.to_string(), format!("failed to stat '{}'", missing.display()));
        assert!(std::error::Error::source(&err).is_some());
    }

    /// Accepts `limit` bytes, then fails every write.
    struct FullDisk {
        limit: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if buf.len() > self.limit {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.limit -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Printable xorshift noise: incompressible text of `len` characters.
    fn noise_text(len: usize) -> String {
        let mut state = 0x2545_f491_u32;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect()
    }

    #[test]
    fn a_failing_output_is_reported_with_the_entry_being_written() {
        // Incompressible content forces the compressor to emit bytes while the file is copied.
        let noise = noise_text(1 << 20);
        let dir = tree(&[("noise.txt", noise.as_str())]);
        let err = write_tar_gz(dir.path(), &IgnoreRules::none(), FullDisk { limit: 4096 }).unwrap_err();
        let file = dir.path().join("noise.txt");
        assert_eq!(
            err.to_string(),
            format!("failed to write '{}' to the archive", file.display())
        );
    }
}
