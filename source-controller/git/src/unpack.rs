//! Turning the pack a server sends for one commit into that commit's files, or into its tree
//! to walk, without mapping the pack into memory.
//!
//! ```text
//!  pack stream ─► receive: entries parsed as they arrive (gix-pack's BytesToEntriesIter);
//!                 compressed bytes appended to <git dir>/pack.data, 40 bytes of bookkeeping
//!                 kept per entry; the trailing checksum verified
//!             ─► resolve: every delta family walked from its base, each object inflated
//!                 (positioned reads of pack.data) and hashed exactly once, on up to 4 threads;
//!                 trees and the commit kept in memory; blobs written out (BlobSink):
//!     check_out   ├─ to <git dir>/objects/<id>, one file each
//!                 │   ─► place: the commit's tree walked; directories created, blobs renamed
//!                 │      into place (copied when a blob appears at several paths), symlinks
//!                 │      created, an empty directory for each submodule (as Flux's go-git
//!                 │      checkout leaves it)
//!     into_tree   └─ appended to <git dir>/blobs-<thread>, their places indexed; pack.data removed
//!                     ─► crate::tree::CommitTree::build: the tree checked path by path as place
//!                        would walk it, nothing written; the caller streams blobs from there
//! ```
//!
//! Why by hand, on gix-pack's parts: gix's bundle writer resolves deltas through a memory map
//! of the whole pack, and its object database reads the checkout through another. Every page
//! touched stays in the process's resident set, so a 17 MB pack costs 17 MB of RSS twice over
//! (index, then checkout), which is most of a reconcile's peak. Here the pack is only read with
//! `pread` into buffers the size of one object, and a delta's base lives on a stack only while
//! its children are resolved; memory grows with the largest object and the chain depth, not with
//! the pack. It also inflates each object once (gix inflates it for the index and again for the
//! checkout). gix-pack keeps its delta decoder crate-private, so [`apply_delta`] is ours too.
//!
//! Trust: the pack checksum is verified, every object's id is computed from its content, the
//! commit must be the one requested, and tree entry names must be plain file names (no `/`,
//! `.`, `..`, `.git`), so a hostile server cannot write outside the destination. Both ways out
//! (`check_out`, `into_tree`) apply the same checks: names, no name twice in a tree, nesting
//! depth, every tree and blob present.

use std::collections::HashMap;
use std::io::{self, BufRead, BufWriter, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use flate2::{Decompress, FlushDecompress, Status};
use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice as _};
use gix::objs::Kind;
use gix::objs::tree::EntryKind;
use gix::odb::pack::data::entry::Header;
use gix::odb::pack::data::input::{BytesToEntriesIter, EntryDataMode, Mode};

use crate::tree::CommitTree;

pub(crate) const HASH: gix::hash::Kind = gix::hash::Kind::Sha1;
/// The compressed entries, in the git dir.
const PACK_DATA: &str = "pack.data";
/// Resolver threads at most (the machine may offer fewer).
const MAX_THREADS: usize = 4;
/// Deepest tree nesting accepted; far beyond any real repository, well below a stack overflow.
pub(crate) const MAX_TREE_DEPTH: usize = 512;

/// Why a pack could not be turned into files.
#[derive(Debug)]
pub(crate) enum UnpackError {
    /// A file-system operation failed (fs-err's message names the path).
    Io(io::Error),
    /// The pack or an object in it is malformed, incomplete or not what was asked for.
    Invalid(String),
    /// The interrupt flag was raised.
    Interrupted,
}

impl From<io::Error> for UnpackError {
    fn from(e: io::Error) -> Self {
        UnpackError::Io(e)
    }
}

pub(crate) type Result<T> = std::result::Result<T, UnpackError>;

pub(crate) fn invalid(message: impl Into<String>) -> UnpackError {
    UnpackError::Invalid(message.into())
}

/// How one entry's object is stored.
#[derive(Clone, Copy, Debug)]
enum Stored {
    /// The object itself.
    Base(Kind),
    /// A delta against the entry at this index.
    Delta(u32),
    /// A delta against the object with the id at this index of [`Received::ref_bases`].
    RefDelta(u32),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Start of the compressed bytes in `pack.data`.
    data: u64,
    compressed: u64,
    /// Size after inflating: the object, or the delta instructions.
    size: u64,
    stored: Stored,
}

/// A received pack: compressed entries on disk, their bookkeeping in memory.
pub(crate) struct Received {
    git_dir: PathBuf,
    entries: Vec<Entry>,
    ref_bases: Vec<ObjectId>,
}

/// Reads a pack from `reader` into `git_dir` (which must exist). Verifies the pack's checksum.
pub(crate) fn receive(reader: &mut dyn BufRead, git_dir: &Path, interrupt: &AtomicBool) -> Result<Received> {
    let file = fs_err::File::create(git_dir.join(PACK_DATA))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let iter = BytesToEntriesIter::new_from_header(reader, Mode::Verify, EntryDataMode::Keep, HASH)
        .map_err(|e| invalid(format!("the pack header is invalid: {e}")))?;
    // The count comes from the server: trust it for a first allocation only up to a point.
    let expected = iter.size_hint().0.min(1 << 20);
    let mut entries: Vec<Entry> = Vec::with_capacity(expected);
    // Pack offsets of the entries, ascending, to find the base of an offset delta.
    let mut offsets: Vec<u64> = Vec::with_capacity(expected);
    let mut ref_bases = Vec::new();
    let mut written = 0u64;
    for (n, entry) in iter.enumerate() {
        if n % 256 == 0 && interrupt.load(Ordering::Relaxed) {
            return Err(UnpackError::Interrupted);
        }
        let entry = entry.map_err(|e| invalid(format!("the pack is corrupt: {e}")))?;
        let compressed = entry.compressed.as_deref().unwrap_or_default();
        let stored = match entry.header {
            Header::OfsDelta { base_distance } => {
                let base = Header::verified_base_pack_offset(entry.pack_offset, base_distance)
                    .and_then(|offset| offsets.binary_search(&offset).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "the delta at pack offset {} points at no earlier entry",
                            entry.pack_offset
                        ))
                    })?;
                Stored::Delta(index(base))
            }
            Header::RefDelta { base_id } => {
                ref_bases.push(base_id);
                Stored::RefDelta(index(ref_bases.len() - 1))
            }
            ref base => Stored::Base(base.as_kind().ok_or_else(|| invalid("unknown pack entry type"))?),
        };
        out.write_all(compressed)?;
        entries.push(Entry {
            data: written,
            compressed: compressed.len() as u64,
            size: entry.decompressed_size,
            stored,
        });
        offsets.push(entry.pack_offset);
        written += compressed.len() as u64;
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(Received {
        git_dir: git_dir.to_path_buf(),
        entries,
        ref_bases,
    })
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// What [`Received::check_out`] found out about the commit.
pub(crate) struct CheckedOut {
    /// The commit message (everything after the headers).
    pub message: Vec<u8>,
}

/// The objects resolution keeps: everything but blobs, which go to files.
#[derive(Default)]
pub(crate) struct Kept {
    pub trees: HashMap<ObjectId, Vec<u8>>,
    pub commits: HashMap<ObjectId, Vec<u8>>,
    /// Ids of the bases of reference deltas, once resolved (entry index, id).
    ids: Vec<(u32, ObjectId)>,
    /// With [`BlobSink::Packed`]: where each blob went.
    pub blobs: Vec<(ObjectId, BlobLoc)>,
    /// With [`BlobSink::Packed`]: this thread's blob file, while resolving.
    blob_file: Option<BlobFile>,
}

impl Kept {
    /// Adds what another thread kept, after finishing its blob file.
    fn merge(&mut self, mut other: Kept) -> Result<()> {
        other.close_blob_file()?;
        self.trees.extend(other.trees);
        self.commits.extend(other.commits);
        self.ids.extend(other.ids);
        self.blobs.extend(other.blobs);
        Ok(())
    }

    /// Writes out the buffered end of this thread's blob file.
    fn close_blob_file(&mut self) -> Result<()> {
        if let Some(file) = self.blob_file.take() {
            file.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        }
        Ok(())
    }
}

/// Where resolution puts blob contents.
#[derive(Clone, Copy)]
enum BlobSink<'a> {
    /// One file per blob, `<dir>/<id>`: a checkout renames them into place.
    Files(&'a Path),
    /// Appended to `<dir>/blobs-<n>`, one file per resolving thread, each blob located by
    /// [`Kept::blobs`]: no file per blob to create, open and remove.
    Packed(&'a Path),
}

/// Where a blob's content is with [`BlobSink::Packed`]: file `blobs-<file>`, at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobLoc {
    pub file: u32,
    pub offset: u64,
    pub len: u64,
}

/// The name of packed blob file `n`.
pub(crate) fn blob_file_name(n: u32) -> String {
    format!("blobs-{n}")
}

/// One thread's packed blob file being written.
struct BlobFile {
    index: u32,
    out: BufWriter<fs_err::File>,
    offset: u64,
}

impl Received {
    /// Resolves every object and writes the tree of commit `want` into `dest` (which must be
    /// empty). Blobs not reachable from that tree are left in the git dir.
    pub(crate) fn check_out(self, want: ObjectId, dest: &Path, interrupt: &AtomicBool) -> Result<CheckedOut> {
        let objects = self.git_dir.join("objects");
        fs_err::create_dir_all(&objects)?;
        let (kept, _) = self.resolve(BlobSink::Files(&objects), interrupt)?;
        place_commit(&kept, &objects, want, dest, interrupt)
    }

    /// Resolves every object and keeps the tree of commit `want` for walking, without writing
    /// it out: blob contents packed into a few `<git dir>/blobs-<n>` files, the received pack
    /// removed. The tree is checked as [`Received::check_out`] checks it.
    pub(crate) fn into_tree(self, want: ObjectId, interrupt: &AtomicBool) -> Result<CommitTree> {
        let (kept, files) = self.resolve(BlobSink::Packed(&self.git_dir), interrupt)?;
        // Every object is in a blob file or in memory now; the pack is of no further use.
        fs_err::remove_file(self.git_dir.join(PACK_DATA))?;
        CommitTree::build(kept, &self.git_dir, files, want, interrupt)
    }

    /// Inflates and hashes every entry once, family by family. Returns what was kept and, with
    /// [`BlobSink::Packed`], the number of blob files written.
    fn resolve(&self, sink: BlobSink<'_>, interrupt: &AtomicBool) -> Result<(Kept, u32)> {
        let n = self.entries.len();
        // Children of each entry in compressed-row form: children[starts[i]..starts[i + 1]].
        let mut starts = vec![0u32; n + 1];
        for e in &self.entries {
            if let Stored::Delta(base) = e.stored {
                starts[base as usize + 1] += 1;
            }
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut cursor = starts.clone();
        let mut children = vec![0u32; starts[n] as usize];
        for (i, e) in self.entries.iter().enumerate() {
            if let Stored::Delta(base) = e.stored {
                children[cursor[base as usize] as usize] = index(i);
                cursor[base as usize] += 1;
            }
        }
        drop(cursor);
        let family = Family {
            received: self,
            starts: &starts,
            children: &children,
            sink,
            files: AtomicU32::new(0),
            interrupt,
            want_ids: !self.ref_bases.is_empty(),
        };
        let pack = fs_err::File::open(self.git_dir.join(PACK_DATA))?;
        let file = pack.file();

        let roots: Vec<(u32, Kind)> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e.stored {
                Stored::Base(kind) => Some((index(i), kind)),
                _ => None,
            })
            .collect();
        let kept = Mutex::new(Kept::default());
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, MAX_THREADS)
            .min(roots.len().max(1));
        let failed: Mutex<Option<UnpackError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut worker = Worker::new(file);
                    let mut local = Kept::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(root, kind)) = roots.get(i) else { break };
                        if failed.lock().is_ok_and(|f| f.is_some()) {
                            return;
                        }
                        let result = worker
                            .read(family.received.entries[root as usize])
                            .and_then(|content| family.walk(&mut worker, &mut local, root, kind, content));
                        if let Err(e) = result {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                    let merged = match kept.lock() {
                        Ok(mut all) => all.merge(local),
                        Err(_) => Err(invalid("a resolver thread panicked")),
                    };
                    if let Err(e) = merged
                        && let Ok(mut f) = failed.lock()
                    {
                        f.get_or_insert(e);
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().ok().flatten() {
            return Err(e);
        }
        let mut kept = kept
            .into_inner()
            .map_err(|_| invalid("a resolver thread panicked"))?;
        if !self.ref_bases.is_empty() {
            self.resolve_ref_deltas(&family, file, &mut kept)?;
            kept.close_blob_file()?;
        }
        Ok((kept, family.files.load(Ordering::Relaxed)))
    }

    /// Reference deltas (rare in what servers send): resolved in rounds once their base's id is
    /// known, the base re-read by following its own chain.
    fn resolve_ref_deltas(&self, family: &Family<'_>, file: &std::fs::File, kept: &mut Kept) -> Result<()> {
        let mut worker = Worker::new(file);
        let mut pending: Vec<u32> = (0..self.entries.len())
            .filter(|&i| matches!(self.entries[i].stored, Stored::RefDelta(_)))
            .map(index)
            .collect();
        while !pending.is_empty() {
            let by_id: HashMap<ObjectId, u32> = kept.ids.iter().map(|&(i, id)| (id, i)).collect();
            let before = pending.len();
            let mut still = Vec::new();
            for delta in pending {
                let Stored::RefDelta(r) = self.entries[delta as usize].stored else {
                    continue;
                };
                let Some(&base) = by_id.get(&self.ref_bases[r as usize]) else {
                    still.push(delta);
                    continue;
                };
                let (kind, base_content) = self.decode_chain(&mut worker, base, &by_id)?;
                let instructions = worker.read(self.entries[delta as usize])?;
                let content = apply_delta(&base_content, &instructions)?;
                family.walk(&mut worker, kept, delta, kind, content)?;
            }
            if still.len() == before {
                return Err(invalid(format!(
                    "{} deltas in the pack refer to objects the pack does not hold",
                    still.len()
                )));
            }
            pending = still;
        }
        Ok(())
    }

    /// An entry's kind and content, following its delta chain down to a base.
    fn decode_chain(
        &self,
        worker: &mut Worker<'_>,
        at: u32,
        by_id: &HashMap<ObjectId, u32>,
    ) -> Result<(Kind, Vec<u8>)> {
        let mut chain = Vec::new();
        let mut i = at;
        let (kind, mut content) = loop {
            let entry = self.entries[i as usize];
            i = match entry.stored {
                Stored::Base(kind) => break (kind, worker.read(entry)?),
                Stored::Delta(base) => base,
                Stored::RefDelta(r) => *by_id
                    .get(&self.ref_bases[r as usize])
                    .ok_or_else(|| invalid("a delta chain refers to an object the pack does not hold"))?,
            };
            chain.push(entry);
            if chain.len() > self.entries.len() {
                return Err(invalid("the pack has a delta cycle"));
            }
        };
        for entry in chain.into_iter().rev() {
            content = apply_delta(&content, &worker.read(entry)?)?;
        }
        Ok((kind, content))
    }
}

/// The root tree id and the message of commit `want`, which the server must have sent.
pub(crate) fn commit_root(
    commits: &HashMap<ObjectId, Vec<u8>>,
    want: ObjectId,
) -> Result<(ObjectId, Vec<u8>)> {
    let commit = commits
        .get(&want)
        .ok_or_else(|| invalid(format!("the server did not send commit {want}")))?;
    let root = gix::objs::CommitRefIter::from_bytes(commit, HASH)
        .tree_id()
        .map_err(|e| invalid(format!("commit {want} cannot be parsed: {e}")))?;
    let message = gix::objs::CommitRef::from_bytes(commit, HASH)
        .map(|c| c.message.to_vec())
        .unwrap_or_default();
    Ok((root, message))
}

/// Writes the tree of commit `want` (resolved into `kept`, blobs in `objects`) into `dest`.
fn place_commit(
    kept: &Kept,
    objects: &Path,
    want: ObjectId,
    dest: &Path,
    interrupt: &AtomicBool,
) -> Result<CheckedOut> {
    let (root, message) = commit_root(&kept.commits, want)?;
    let mut place = Place {
        trees: &kept.trees,
        objects,
        placed: HashMap::new(),
        interrupt,
    };
    let tree = place.tree(root)?;
    place.dir(tree, dest, 0)?;
    Ok(CheckedOut { message })
}

/// For the `pack_unpack` fuzz target only (not an API): receives `pack` (its checksum included)
/// into the empty directory `git_dir`, resolves it and checks out commit `want` (by default the
/// smallest commit id the pack holds) into the empty directory `dest`.
#[doc(hidden)]
pub fn fuzz_unpack(
    pack: &[u8],
    git_dir: &Path,
    dest: &Path,
    want: Option<[u8; 20]>,
) -> std::result::Result<(), String> {
    let interrupt = AtomicBool::new(false);
    let message = |e: UnpackError| match e {
        UnpackError::Io(e) => e.to_string(),
        UnpackError::Invalid(m) => m,
        UnpackError::Interrupted => "interrupted".into(),
    };
    let received = receive(&mut &pack[..], git_dir, &interrupt).map_err(message)?;
    let objects = git_dir.join("objects");
    fs_err::create_dir_all(&objects).map_err(|e| e.to_string())?;
    let (kept, _) = received
        .resolve(BlobSink::Files(&objects), &interrupt)
        .map_err(message)?;
    let Some(want) = want
        .map(ObjectId::from)
        .or_else(|| kept.commits.keys().min().copied())
    else {
        return Err("the pack holds no commit".into());
    };
    place_commit(&kept, &objects, want, dest, &interrupt)
        .map(drop)
        .map_err(message)
}

/// For tests only (not an API): receives `pack` into the empty directory `git_dir` and returns
/// the checked tree of commit `want`, its blobs in `git_dir`, as [`crate::Remote::fetch_tree`]
/// does after a fetch.
#[doc(hidden)]
pub fn tree_from_pack(
    pack: &[u8],
    git_dir: &Path,
    want: [u8; 20],
) -> std::result::Result<CommitTree, String> {
    let interrupt = AtomicBool::new(false);
    let message = |e: UnpackError| match e {
        UnpackError::Io(e) => e.to_string(),
        UnpackError::Invalid(m) => m,
        UnpackError::Interrupted => "interrupted".into(),
    };
    receive(&mut &pack[..], git_dir, &interrupt)
        .and_then(|received| received.into_tree(ObjectId::from(want), &interrupt))
        .map_err(message)
}

/// One delta family's shared context.
struct Family<'a> {
    received: &'a Received,
    starts: &'a [u32],
    children: &'a [u32],
    sink: BlobSink<'a>,
    /// Packed blob files started so far.
    files: AtomicU32,
    interrupt: &'a AtomicBool,
    want_ids: bool,
}

impl Family<'_> {
    /// Visits `root` (already decoded) and every delta below it, depth first; a base's content
    /// is held only while its children are resolved.
    fn walk(
        &self,
        worker: &mut Worker<'_>,
        kept: &mut Kept,
        root: u32,
        kind: Kind,
        content: Vec<u8>,
    ) -> Result<()> {
        // (entry, content, next child position)
        let mut stack: Vec<(u32, Vec<u8>, u32)> = Vec::new();
        self.visit(kept, root, kind, &content)?;
        stack.push((root, content, self.starts[root as usize]));
        while let Some((at, base, next)) = stack.last_mut() {
            if *next >= self.starts[*at as usize + 1] {
                stack.pop();
                continue;
            }
            let child = self.children[*next as usize];
            *next += 1;
            let instructions = worker.read(self.received.entries[child as usize])?;
            let content = apply_delta(base, &instructions)?;
            self.visit(kept, child, kind, &content)?;
            if self.starts[child as usize] < self.starts[child as usize + 1] {
                stack.push((child, content, self.starts[child as usize]));
            }
        }
        Ok(())
    }

    fn visit(&self, kept: &mut Kept, at: u32, kind: Kind, content: &[u8]) -> Result<()> {
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(UnpackError::Interrupted);
        }
        let id = gix::objs::compute_hash(HASH, kind, content)
            .map_err(|e| invalid(format!("hashing an object failed: {e}")))?;
        if self.want_ids {
            kept.ids.push((at, id));
        }
        match kind {
            Kind::Blob => match self.sink {
                BlobSink::Files(dir) => fs_err::write(dir.join(id.to_hex().to_string()), content)?,
                BlobSink::Packed(dir) => {
                    let file = match &mut kept.blob_file {
                        Some(file) => file,
                        empty @ None => {
                            let index = self.files.fetch_add(1, Ordering::Relaxed);
                            let out = fs_err::File::create(dir.join(blob_file_name(index)))?;
                            empty.insert(BlobFile {
                                index,
                                out: BufWriter::with_capacity(1 << 16, out),
                                offset: 0,
                            })
                        }
                    };
                    file.out.write_all(content)?;
                    let len = content.len() as u64;
                    kept.blobs.push((
                        id,
                        BlobLoc {
                            file: file.index,
                            offset: file.offset,
                            len,
                        },
                    ));
                    file.offset += len;
                }
            },
            Kind::Tree => {
                kept.trees.insert(id, content.to_vec());
            }
            Kind::Commit => {
                kept.commits.insert(id, content.to_vec());
            }
            Kind::Tag => {}
        }
        Ok(())
    }
}

/// Per-thread reading state: the pack file, a zlib stream and a buffer for compressed bytes.
struct Worker<'f> {
    file: &'f std::fs::File,
    inflate: Decompress,
    compressed: Vec<u8>,
}

impl<'f> Worker<'f> {
    fn new(file: &'f std::fs::File) -> Self {
        Worker {
            file,
            inflate: Decompress::new(true),
            compressed: Vec::new(),
        }
    }

    /// An entry's inflated bytes: the object, or a delta's instructions.
    fn read(&mut self, entry: Entry) -> Result<Vec<u8>> {
        let compressed =
            usize::try_from(entry.compressed).map_err(|_| invalid("a pack entry is too large"))?;
        let size = usize::try_from(entry.size).map_err(|_| invalid("a pack entry is too large"))?;
        self.compressed.resize(compressed, 0);
        self.file
            .read_exact_at(&mut self.compressed, entry.data)
            .map_err(|e| invalid(format!("reading back the received pack failed: {e}")))?;
        let mut out = vec![0u8; size];
        self.inflate.reset(true);
        let status = self
            .inflate
            .decompress(&self.compressed, &mut out, FlushDecompress::Finish)
            .map_err(|e| invalid(format!("a pack entry does not inflate: {e}")))?;
        if status != Status::StreamEnd || self.inflate.total_out() != entry.size {
            return Err(invalid(
                "a pack entry inflates to a size other than its header says",
            ));
        }
        Ok(out)
    }
}

/// Applies git's delta `instructions` to `base`: a header with the base and result sizes, then
/// copy-from-base and insert commands.
fn apply_delta(base: &[u8], instructions: &[u8]) -> Result<Vec<u8>> {
    let corrupt = |what: &str| invalid(format!("a delta in the pack is corrupt: {what}"));
    let mut at = 0usize;
    let varint = |at: &mut usize| -> Result<u64> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = *instructions.get(*at).ok_or_else(|| corrupt("truncated header"))?;
            *at += 1;
            if shift > 63 {
                return Err(corrupt("oversized header"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
    };
    let base_size = varint(&mut at)?;
    let result_size = varint(&mut at)?;
    if base_size != base.len() as u64 {
        return Err(corrupt("base size mismatch"));
    }
    let result_size = usize::try_from(result_size).map_err(|_| corrupt("oversized result"))?;
    // The announced size comes from the pack; the check below stops growth past it.
    let mut out = Vec::with_capacity(result_size.min(1 << 26));
    while let Some(&cmd) = instructions.get(at) {
        at += 1;
        if cmd & 0x80 != 0 {
            let arg = |bit: u8, shift: u32, at: &mut usize| -> Result<usize> {
                if cmd & bit == 0 {
                    return Ok(0);
                }
                let byte = *instructions.get(*at).ok_or_else(|| corrupt("truncated copy"))?;
                *at += 1;
                Ok(usize::from(byte) << shift)
            };
            let offset = arg(0x01, 0, &mut at)?
                | arg(0x02, 8, &mut at)?
                | arg(0x04, 16, &mut at)?
                | arg(0x08, 24, &mut at)?;
            let mut len = arg(0x10, 0, &mut at)? | arg(0x20, 8, &mut at)? | arg(0x40, 16, &mut at)?;
            if len == 0 {
                len = 0x10000;
            }
            let end = offset
                .checked_add(len)
                .ok_or_else(|| corrupt("copy out of range"))?;
            out.extend_from_slice(
                base.get(offset..end)
                    .ok_or_else(|| corrupt("copy out of range"))?,
            );
        } else if cmd != 0 {
            let len = usize::from(cmd);
            let data = instructions
                .get(at..at + len)
                .ok_or_else(|| corrupt("truncated insert"))?;
            out.extend_from_slice(data);
            at += len;
        } else {
            return Err(corrupt("reserved command 0"));
        }
        if out.len() > result_size {
            return Err(corrupt("result larger than announced"));
        }
    }
    if out.len() != result_size {
        return Err(corrupt("result smaller than announced"));
    }
    Ok(out)
}

/// Writing a tree into a directory.
struct Place<'a> {
    trees: &'a HashMap<ObjectId, Vec<u8>>,
    objects: &'a Path,
    /// Where each blob went first, for blobs that appear at several paths.
    placed: HashMap<ObjectId, PathBuf>,
    interrupt: &'a AtomicBool,
}

impl<'a> Place<'a> {
    fn tree(&self, id: ObjectId) -> Result<&'a [u8]> {
        self.trees
            .get(&id)
            .map(Vec::as_slice)
            .ok_or_else(|| invalid(format!("the server did not send tree {id}")))
    }

    fn dir(&mut self, tree: &[u8], dir: &Path, depth: usize) -> Result<()> {
        if depth > MAX_TREE_DEPTH {
            return Err(invalid(format!("trees nest deeper than {MAX_TREE_DEPTH} levels")));
        }
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(UnpackError::Interrupted);
        }
        // Git refuses trees naming an entry twice; here a second entry would land on the first
        // (a symlink, say) and could be written through it.
        let mut names = std::collections::HashSet::new();
        for entry in gix::objs::TreeRefIter::from_bytes(tree, HASH) {
            let entry = entry.map_err(|e| invalid(format!("a tree cannot be parsed: {e}")))?;
            let name = safe_name(entry.filename)?;
            if !names.insert(name) {
                return Err(invalid(format!(
                    "the tree has two entries named '{}'",
                    entry.filename.to_str_lossy()
                )));
            }
            let path = dir.join(name);
            let id = entry.oid.to_owned();
            match entry.mode.kind() {
                EntryKind::Tree => {
                    fs_err::create_dir(&path)?;
                    let sub = self.tree(id)?;
                    self.dir(sub, &path, depth + 1)?;
                }
                EntryKind::Blob => self.file(id, &path, false)?,
                EntryKind::BlobExecutable => self.file(id, &path, true)?,
                EntryKind::Link => {
                    let target = fs_err::read(self.blob(id)).map_err(missing_blob(id))?;
                    fs_err::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path)?;
                }
                // A submodule is not checked out (no recurseSubmodules yet); its path becomes
                // an empty directory, as in Flux's go-git checkout.
                EntryKind::Commit => fs_err::create_dir(&path)?,
            }
        }
        Ok(())
    }

    /// Where blob `id` is now: its first path, or its file from resolution.
    fn blob(&self, id: ObjectId) -> PathBuf {
        self.placed
            .get(&id)
            .cloned()
            .unwrap_or_else(|| self.objects.join(id.to_hex().to_string()))
    }

    fn file(&mut self, id: ObjectId, path: &Path, executable: bool) -> Result<()> {
        if let Some(first) = self.placed.get(&id) {
            // A new file, never an existing path: nothing is written through a symlink.
            let mode = if executable { 0o755 } else { 0o644 };
            let mut out = fs_err::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            io::copy(&mut fs_err::File::open(first)?, &mut out)?;
            fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        } else {
            fs_err::rename(self.blob(id), path).map_err(missing_blob(id))?;
            if executable {
                fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
            }
            self.placed.insert(id, path.to_path_buf());
        }
        Ok(())
    }
}

/// A blob file that is not there means the pack lacked the blob.
fn missing_blob(id: ObjectId) -> impl FnOnce(io::Error) -> UnpackError {
    move |e| {
        if e.kind() == io::ErrorKind::NotFound {
            invalid(format!("the server did not send blob {id}"))
        } else {
            UnpackError::Io(e)
        }
    }
}

/// A tree entry name that is a plain file name: not empty, no `/` or NUL, not `.`, `..` or
/// `.git` (in any case).
pub(crate) fn safe_name(name: &BStr) -> Result<&std::ffi::OsStr> {
    let bytes: &[u8] = name.as_ref();
    if bytes.is_empty()
        || bytes == b"."
        || bytes == b".."
        || bytes.eq_ignore_ascii_case(b".git")
        || bytes.contains(&b'/')
        || bytes.contains(&0)
    {
        return Err(invalid(format!(
            "the tree has an entry named '{}', which is not a safe file name",
            name.to_str_lossy()
        )));
    }
    Ok(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A delta as git writes it: header sizes as varints, then commands.
    fn delta(base_len: usize, result_len: usize, commands: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for mut v in [base_len, result_len] {
            loop {
                let byte = u8::try_from(v & 0x7f).unwrap();
                v >>= 7;
                if v == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
        out.extend_from_slice(commands);
        out
    }

    #[test]
    fn deltas_copy_from_the_base_and_insert_new_bytes() {
        let base = b"apiVersion: v1\nkind: ConfigMap\n";
        // copy 15 bytes at offset 0, insert "kind: Secret\n"
        let mut commands = vec![0x80 | 0x10, 15];
        commands.push(13);
        commands.extend_from_slice(b"kind: Secret\n");
        let out = apply_delta(base, &delta(base.len(), 28, &commands)).expect("valid delta");
        assert_eq!(out, b"apiVersion: v1\nkind: Secret\n");
    }

    #[test]
    fn a_copy_without_size_bytes_copies_64_kib() {
        let base = vec![7u8; 0x10000 + 3];
        let out = apply_delta(&base, &delta(base.len(), 0x10000, &[0x80 | 0x01, 3])).expect("valid delta");
        assert_eq!(out.len(), 0x10000);
    }

    #[test]
    fn corrupt_deltas_are_errors_not_panics() {
        let base = b"0123456789";
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("base size mismatch", delta(11, 1, &[1, b'x'])),
            ("copy out of range", delta(10, 5, &[0x80 | 0x01 | 0x10, 8, 5])),
            ("truncated insert", delta(10, 5, &[5, b'a'])),
            ("reserved command 0", delta(10, 0, &[0])),
            ("result smaller than announced", delta(10, 5, &[1, b'a'])),
            ("result larger than announced", delta(10, 1, &[2, b'a', b'b'])),
            ("truncated header", vec![0x80]),
        ];
        for (what, d) in cases {
            let err = apply_delta(base, &d).expect_err(what);
            assert!(
                matches!(&err, UnpackError::Invalid(m) if m.contains(what)),
                "{what}: {err:?}"
            );
        }
    }

    /// Runs git (a test dependency like the e2e servers) in `dir`; `input` goes to stdin.
    pub(crate) fn git(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
        use std::process::{Command, Stdio};
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

    /// A repository with similar YAML files (so the pack has deltas), an executable, a
    /// symlink, one blob at two paths and a submodule entry; returns its dir and HEAD.
    pub(crate) fn repo() -> (tempfile::TempDir, ObjectId) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"], b"");
        for i in 0..40 {
            let sub = d.join(format!("apps/app-{}", i % 4));
            fs_err::create_dir_all(&sub).unwrap();
            let body = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n{}",
                "  key: a fairly long value that repeats\n".repeat(20)
            );
            fs_err::write(sub.join(format!("cm-{i}.yaml")), body).unwrap();
        }
        fs_err::write(d.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs_err::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        fs_err::write(d.join("same.yaml"), "same\n").unwrap();
        fs_err::create_dir_all(d.join("copy")).unwrap();
        fs_err::write(d.join("copy/same.yaml"), "same\n").unwrap();
        fs_err::os::unix::fs::symlink("same.yaml", d.join("link")).unwrap();
        git(d, &["add", "-A"], b"");
        git(
            d,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{},vendor/sub", "1".repeat(40)),
            ],
            b"",
        );
        git(d, &["commit", "-q", "-m", "first line\n\nbody"], b"");
        let head = String::from_utf8(git(d, &["rev-parse", "HEAD"], b"")).unwrap();
        (dir, ObjectId::from_hex(head.trim().as_bytes()).unwrap())
    }

    pub(crate) fn pack(dir: &Path, commit: ObjectId, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["pack-objects", "--stdout", "--revs", "-q"];
        args.extend_from_slice(extra);
        git(dir, &args, format!("{commit}\n").as_bytes())
    }

    fn unpack(pack: &[u8], want: ObjectId) -> (tempfile::TempDir, Result<CheckedOut>, usize) {
        let out = tempfile::tempdir().unwrap();
        let git_dir = out.path().join("git");
        let dest = out.path().join("tree");
        fs_err::create_dir_all(&git_dir).unwrap();
        fs_err::create_dir_all(&dest).unwrap();
        let stop = AtomicBool::new(false);
        let received = receive(&mut &pack[..], &git_dir, &stop).expect("pack received");
        let deltas = received
            .entries
            .iter()
            .filter(|e| !matches!(e.stored, Stored::Base(_)))
            .count();
        let result = received.check_out(want, &dest, &stop);
        (out, result, deltas)
    }

    /// Every path under `root` with its kind, mode and content (symlinks: their target).
    fn listing(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs_err::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let meta = fs_err::symlink_metadata(&path).unwrap();
                if rel == ".git" {
                    continue;
                }
                if meta.is_dir() {
                    stack.push(path);
                } else if meta.file_type().is_symlink() {
                    out.push((
                        rel,
                        format!("link {}", fs_err::read_link(&path).unwrap().display()),
                    ));
                } else {
                    let exec = meta.permissions().mode() & 0o111 != 0;
                    out.push((
                        rel,
                        format!("exec={exec} {}", fs_err::read_to_string(&path).unwrap()),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn packs_with_offset_and_reference_deltas_check_out_the_commit_tree() {
        let (repo, head) = repo();
        let expected = listing(repo.path());
        assert_eq!(expected.len(), 44, "{expected:?}");
        for extra in [&["--delta-base-offset"][..], &[][..]] {
            let (out, result, deltas) = unpack(&pack(repo.path(), head, extra), head);
            let done = result.unwrap_or_else(|e| panic!("{extra:?}: {e:?}"));
            assert!(
                deltas > 10,
                "{extra:?}: the pack should hold deltas, has {deltas}"
            );
            assert_eq!(done.message, b"first line\n\nbody\n");
            assert_eq!(listing(&out.path().join("tree")), expected, "{extra:?}");
            // The submodule's path is an empty directory, as go-git leaves it.
            let sub = out.path().join("tree/vendor/sub");
            assert!(sub.is_dir() && fs_err::read_dir(&sub).unwrap().next().is_none());
        }
    }

    #[test]
    fn a_commit_missing_from_the_pack_is_an_error() {
        let (repo, head) = repo();
        let other = ObjectId::from_hex(b"2222222222222222222222222222222222222222").unwrap();
        let (_out, result, _) = unpack(&pack(repo.path(), head, &[]), other);
        let err = result.err().expect("the commit is not in the pack");
        assert!(
            matches!(&err, UnpackError::Invalid(m) if m.contains("did not send commit 2222")),
            "{err:?}"
        );
    }

    #[test]
    fn a_corrupted_pack_is_refused_before_anything_is_written() {
        let (repo, head) = repo();
        let mut bytes = pack(repo.path(), head, &[]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let out = tempfile::tempdir().unwrap();
        let err = receive(&mut &bytes[..], out.path(), &AtomicBool::new(false))
            .err()
            .expect("bad checksum");
        assert!(
            matches!(&err, UnpackError::Invalid(m) if m.contains("corrupt")),
            "{err:?}"
        );
    }

    #[test]
    fn trees_with_unsafe_names_are_refused() {
        for name in ["..", ".git", ".Git"] {
            let (repo, _) = repo();
            let d = repo.path();
            let blob = String::from_utf8(git(d, &["hash-object", "-w", "--stdin"], b"evil\n")).unwrap();
            let mut tree = format!("100644 {name}\0").into_bytes();
            tree.extend_from_slice(ObjectId::from_hex(blob.trim().as_bytes()).unwrap().as_bytes());
            let tree = String::from_utf8(git(
                d,
                &["hash-object", "-t", "tree", "-w", "--literally", "--stdin"],
                &tree,
            ))
            .unwrap();
            let commit = String::from_utf8(git(d, &["commit-tree", tree.trim(), "-m", "evil"], b"")).unwrap();
            let commit = ObjectId::from_hex(commit.trim().as_bytes()).unwrap();
            let (out, result, _) = unpack(&pack(d, commit, &[]), commit);
            let err = result.err().expect("unsafe name");
            assert!(
                matches!(&err, UnpackError::Invalid(m) if m.contains("not a safe file name")),
                "{name}: {err:?}"
            );
            assert!(
                !out.path().join("evil").exists() && !out.path().join("tree/.git").exists(),
                "{name}"
            );
        }
    }

    /// Found by the `pack_unpack` fuzz target: a tree naming a symlink and then, under the same
    /// name, a blob already placed elsewhere made the copy write through the link, outside the
    /// destination. Duplicate names are refused, and nothing is written through a link.
    #[test]
    fn a_tree_with_a_duplicate_name_cannot_write_through_a_symlink() {
        let (repo, _) = repo();
        let d = repo.path();
        let hash = |kind: &str, content: &[u8]| {
            let mut args = vec!["hash-object", "-w", "--stdin"];
            if kind != "blob" {
                args.extend(["-t", kind, "--literally"]);
            }
            let id = String::from_utf8(git(d, &args, content)).unwrap();
            ObjectId::from_hex(id.trim().as_bytes()).unwrap()
        };
        let blob = hash("blob", b"written outside\n");
        let link = hash("blob", b"../pwn");
        let mut tree = Vec::new();
        for (mode, name, id) in [
            ("100644", "a", blob),
            ("120000", "b", link),
            ("100644", "b", blob),
        ] {
            tree.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            tree.extend_from_slice(id.as_bytes());
        }
        let tree = hash("tree", &tree);
        let commit =
            String::from_utf8(git(d, &["commit-tree", &tree.to_string(), "-m", "evil"], b"")).unwrap();
        let commit = ObjectId::from_hex(commit.trim().as_bytes()).unwrap();
        let (out, result, _) = unpack(&pack(d, commit, &[]), commit);
        let err = result.err().expect("a duplicate name");
        assert!(
            matches!(&err, UnpackError::Invalid(m) if m.contains("two entries named 'b'")),
            "{err:?}"
        );
        // The link's target, beside the destination: never created.
        assert!(!out.path().join("pwn").exists(), "written through the symlink");
    }

    #[test]
    fn only_plain_file_names_are_accepted() {
        for bad in ["", ".", "..", ".git", ".GIT", "a/b", "a\0b"] {
            assert!(safe_name(BStr::new(bad)).is_err(), "{bad:?}");
        }
        for good in ["a", ".gitignore", "..a", "x.yaml", ".sourceignore"] {
            assert!(safe_name(BStr::new(good)).is_ok(), "{good:?}");
        }
    }
}
