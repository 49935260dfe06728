//! The pack unpacker of the git layer (`gitops_git`'s `unpack.rs`): what a Git server sends for
//! one commit, turned into files.
//!
//! Input: a first byte choosing the form, then the pack.
//! - Form bit 0 clear, *structured*: the rest describes objects (blobs, trees, commits), which
//!   the target hashes, links (tree entries and commits point at earlier objects by index),
//!   stores as bases, offset deltas or reference deltas, and packs with a valid checksum; the
//!   last commit is the one checked out. This reaches the delta resolver and the tree walk,
//!   which random bytes never would (every object id is a SHA-1 of its content).
//! - Form bit 0 set, *raw*: the rest is a pack without its trailing checksum, which the target
//!   appends; the smallest commit id in it is checked out.
//!
//! Checked beyond "no panic", whether the checkout succeeds or not: nothing is written outside
//! the git dir and the destination (a sibling directory stays empty, the parent holds only the
//! three).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use libfuzzer_sys::fuzz_target;
use sha1::{Digest as _, Sha1};
use std::io::Write as _;

/// Names the tree entries draw from: plain, colliding, hostile.
const NAMES: &[&[u8]] = &[
    b"a", b"b", b"f", b"..", b".", b".git", b".GIT", b"x/y", b"", b"a\0b", b"dir",
];
/// Symlink targets the blobs draw from: inside, and at the sibling directory from various depths.
const LINKS: &[&[u8]] = &[
    b"a",
    b"../outside",
    b"../outside/pwn",
    b"../../outside/pwn",
    b"/tmp",
    b"dir",
];
const MODES: &[&[u8]] = &[
    b"100644", b"100755", b"120000", b"40000", b"160000", b"100664", b"777777",
];

#[derive(Arbitrary, Debug)]
enum Obj {
    Blob(Vec<u8>),
    /// A blob holding one of [`LINKS`].
    Link(u8),
    Tree(Vec<TreeEntry>),
    Commit {
        tree: u8,
        message: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct TreeEntry {
    mode: u8,
    /// An index into [`NAMES`], or (when out of range) the bytes in `raw`.
    name: u8,
    raw: Vec<u8>,
    /// The object it points at, by index among the earlier objects.
    target: u8,
}

#[derive(Arbitrary, Debug)]
enum Store {
    Base,
    /// An offset delta against the entry this many entries back.
    OfsDelta(u8),
    /// A reference delta against an earlier object (by index).
    RefDelta(u8),
}

fn kind_name(o: &Obj) -> (&'static str, u8) {
    match o {
        Obj::Blob(_) | Obj::Link(_) => ("blob", 3),
        Obj::Tree(_) => ("tree", 2),
        Obj::Commit { .. } => ("commit", 1),
    }
}

fn object_id(kind: &str, content: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(format!("{kind} {}\0", content.len()).as_bytes());
    h.update(content);
    h.finalize().into()
}

fn hex(id: &[u8; 20]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry header: type and size (little-endian base-128 after the first 4 bits).
fn entry_header(out: &mut Vec<u8>, kind: u8, mut size: usize) {
    let mut byte = (kind << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        out.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(byte);
}

fn varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A delta that copies the longest common prefix from `base` and inserts the rest of `target`.
fn delta(base: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, base.len());
    varint(&mut out, target.len());
    let common = base
        .iter()
        .zip(target)
        .take_while(|(a, b)| a == b)
        .count()
        .min(0xffff);
    if common > 0 {
        out.extend_from_slice(&[0x80 | 0x10 | 0x20, (common & 0xff) as u8, (common >> 8) as u8]);
    }
    for chunk in target[common..].chunks(127) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
    z.write_all(data).expect("zlib in memory");
    z.finish().expect("zlib in memory")
}

/// Builds a pack (without its checksum) from `u`; the id of the last commit, if any.
fn structured(u: &mut Unstructured<'_>) -> arbitrary::Result<(Vec<u8>, Option<[u8; 20]>)> {
    let objects: Vec<(Obj, Store)> = u.arbitrary_iter()?.take(24).collect::<arbitrary::Result<_>>()?;
    let mut contents: Vec<(Vec<u8>, u8, [u8; 20])> = Vec::new();
    let mut want = None;
    let pick = |contents: &[(Vec<u8>, u8, [u8; 20])], i: u8| {
        if contents.is_empty() {
            [0x11; 20]
        } else {
            contents[usize::from(i) % contents.len()].2
        }
    };
    for (obj, _) in &objects {
        let content = match obj {
            Obj::Blob(b) => b.clone(),
            Obj::Link(i) => LINKS[usize::from(*i) % LINKS.len()].to_vec(),
            Obj::Tree(entries) => {
                let mut t = Vec::new();
                for e in entries.iter().take(16) {
                    t.extend_from_slice(MODES[usize::from(e.mode) % MODES.len()]);
                    t.push(b' ');
                    match NAMES.get(usize::from(e.name)) {
                        Some(n) => t.extend_from_slice(n),
                        None => t.extend_from_slice(&e.raw),
                    }
                    t.push(0);
                    t.extend_from_slice(&pick(&contents, e.target));
                }
                t
            }
            Obj::Commit { tree, message } => {
                let mut c = format!("tree {}\n", hex(&pick(&contents, *tree))).into_bytes();
                c.extend_from_slice(
                    b"author A <a@example.com> 0 +0000\ncommitter A <a@example.com> 0 +0000\n\n",
                );
                c.extend_from_slice(message);
                c
            }
        };
        let (kind, type_bits) = kind_name(obj);
        let id = object_id(kind, &content);
        if type_bits == 1 {
            want = Some(id);
        }
        contents.push((content, type_bits, id));
    }
    let mut pack = b"PACK\0\0\0\x02".to_vec();
    pack.extend_from_slice(&(objects.len() as u32).to_be_bytes());
    let mut offsets = Vec::new();
    for (i, (_, store)) in objects.iter().enumerate() {
        let offset = pack.len();
        let (content, type_bits, _) = &contents[i];
        match store {
            Store::OfsDelta(back) if i > 0 => {
                let base = i - 1 - usize::from(*back) % i;
                let d = delta(&contents[base].0, content);
                entry_header(&mut pack, 6, d.len());
                // The distance, in git's offset encoding (each continuation adds one).
                let mut n = offset - offsets[base];
                let mut enc = vec![(n & 0x7f) as u8];
                n >>= 7;
                while n > 0 {
                    n -= 1;
                    enc.push(0x80 | (n & 0x7f) as u8);
                    n >>= 7;
                }
                enc.reverse();
                pack.extend_from_slice(&enc);
                pack.extend_from_slice(&zlib(&d));
            }
            Store::RefDelta(b) if i > 0 => {
                let base = usize::from(*b) % i;
                let d = delta(&contents[base].0, content);
                entry_header(&mut pack, 7, d.len());
                pack.extend_from_slice(&contents[base].2);
                pack.extend_from_slice(&zlib(&d));
            }
            _ => {
                entry_header(&mut pack, *type_bits, content.len());
                pack.extend_from_slice(&zlib(content));
            }
        }
        offsets.push(offset);
    }
    Ok((pack, want))
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let (mut pack, want) = if form & 1 == 0 {
        match structured(&mut Unstructured::new(rest)) {
            Ok(built) => built,
            Err(_) => return,
        }
    } else {
        (rest.to_vec(), None)
    };
    let checksum: [u8; 20] = Sha1::digest(&pack).into();
    pack.extend_from_slice(&checksum);

    let work = tempfile::tempdir().expect("a temporary directory");
    let (git_dir, dest, outside) = (
        work.path().join("git"),
        work.path().join("dest"),
        work.path().join("outside"),
    );
    for dir in [&git_dir, &dest, &outside] {
        std::fs::create_dir(dir).expect("create a directory");
    }
    let _ = gitops_git::fuzz_unpack(&pack, &git_dir, &dest, want);

    let mut beside: Vec<_> = std::fs::read_dir(work.path())
        .expect("read the parent")
        .map(|e| e.expect("read a parent entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["dest", "git", "outside"],
        "something was written beside the destination"
    );
    assert!(
        std::fs::read_dir(&outside)
            .expect("read the sibling")
            .next()
            .is_none(),
        "something was written outside the destination"
    );
});
