//! Fast path for the common download: a plain `GET`/`HEAD` of an artifact file, answered from
//! memory with headers built once per file.
//!
//! ```text
//!  request ── plain GET/HEAD? ──► entry for the path? ──► stat(path) == entry's stamp? ──► 200/304
//!                 │ no                   │ no                       │ no
//!                 ▼                      ▼                          ▼
//!              ServeDir       small regular file? ──► fill: open, fstat, read the same fd
//! ```
//!
//! Validity: every request stats the path (one `statx`, following symlinks) and compares the
//! file's identity with the entry's: device, inode, size, modification and change time. The store
//! writes a new artifact as a new file renamed over the path (`storage::write`), so a replaced
//! artifact is a different inode and the next request reads the new one, even when the size and
//! the modification time (a clock tick of a few ms) are equal; a retargeted `latest.tar.gz`
//! symlink resolves to another inode too. An entry is filled from one open file (`fstat` and
//! `read` of the same descriptor), so its bytes and its stamp belong to the same inode. Files
//! rewritten in place (not something the store does) are caught by their modification/change
//! time.
//!
//! What is NOT handled here, and falls through to `ServeDir` unchanged: any method but GET/HEAD,
//! `Range`/`If-Range`/`If-Match`/`If-None-Match`/`If-Unmodified-Since`, paths with `%`, `\`, empty,
//! `.` or `..` segments, directories, missing files, and files over [`MAX_ENTRY`]. The path check is
//! deliberately stricter than `ServeDir`'s: anything unusual takes the general path. The headers
//! are `ServeDir`'s (same `ETag`, `Last-Modified`, `Content-Type` by extension), so a client may
//! mix both paths, e.g. a `Range` request with the `ETag` of a cached answer in `If-Range`.
//!
//! Why not just `ServeDir`: it sends every open, stat and 256 KiB read through tokio's blocking
//! pool; `make bench` (B5) measured that hop as most of the server's CPU time.
//!
//! Every new revision is a new file and garbage collection deletes the old ones, so entries of
//! deleted files are dropped by a sweep (a stat per entry, at most every [`SWEEP_EVERY`], on
//! insert): without it the cache kept every artifact ever served until the budget was full,
//! which `make soak` showed as source-controller's RSS rising with every push.

use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use bytes::Bytes;
use http_body_util::Full;
use std::collections::HashMap;
use std::fs::Metadata;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Largest file kept in memory.
pub const MAX_ENTRY: u64 = 1024 * 1024;
/// Memory budget of the cache.
pub const BUDGET: u64 = 64 * 1024 * 1024;
/// How often at most inserting also drops the entries whose file is gone or changed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The identity of a file's content as `stat` reports it: a new file renamed over the path has
/// another inode; a file rewritten in place has another size or modification/change time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// One cached file: its bytes and the headers of a `200` for it.
#[derive(Debug)]
struct Entry {
    /// The file under the root (the request path joined to it), stat'ed on every hit.
    path: PathBuf,
    stamp: Stamp,
    body: Bytes,
    /// `Content-Type`, `Content-Length`, `Last-Modified`, `ETag`, `Accept-Ranges`.
    headers: HeaderMap,
    /// The modification time in whole seconds since the epoch, for `If-Modified-Since`.
    modified_secs: u64,
}

impl Entry {
    /// The entry for `body`, read from the file `path` whose metadata is `meta`.
    fn new(path: PathBuf, meta: &Metadata, body: Bytes) -> Option<Self> {
        let modified = meta.modified().ok()?;
        let since_epoch = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(header::CONTENT_TYPE, content_type(&path));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::try_from(httpdate::fmt_http_date(modified)).ok()?,
        );
        headers.insert(header::ETAG, etag(since_epoch, meta.len())?);
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        Some(Entry {
            path,
            stamp: Stamp::of(meta),
            body,
            headers,
            modified_secs: since_epoch.as_secs(),
        })
    }
}

/// `ServeDir`'s `Content-Type`: by the last extension (`.tar.gz` is `application/gzip`).
fn content_type(path: &Path) -> HeaderValue {
    mime_guess::from_path(path).first_raw().map_or(
        HeaderValue::from_static("application/octet-stream"),
        HeaderValue::from_static,
    )
}

/// `ServeDir`'s strong `ETag` (tower-http 0.7: `"<secs hex>.<nanos 8 hex>-<size hex>"`), so a tag
/// from this path matches in a conditional request `ServeDir` answers; a test compares the two.
fn etag(since_epoch: Duration, len: u64) -> Option<HeaderValue> {
    let tag = format!(
        "\"{:x}.{:08x}-{len:x}\"",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    );
    HeaderValue::try_from(tag).ok()
}

/// What the cache makes of a request.
pub enum Lookup {
    /// Answered from memory.
    Hit(Response<Full<Bytes>>),
    /// A small regular file not (or no longer) cached: [`Cache::fill`] it.
    Fill {
        /// The request path without the leading `/`: the key.
        key: Box<str>,
        /// The file under the root.
        path: PathBuf,
    },
    /// Not for this path: `ServeDir` answers.
    Pass,
}

/// Recently served small artifacts, keyed by request path.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    entries: Mutex<HashMap<Box<str>, Arc<Entry>>>,
    /// When the last sweep ran (`None`: not yet).
    swept: Mutex<Option<Instant>>,
}

/// The relative file path of a request this fast path may serve, or `None`.
fn plain_path(path: &str) -> Option<&str> {
    let rel = path.strip_prefix('/')?;
    let ok = !rel.is_empty()
        && !rel.contains(['%', '\\', '\0'])
        && rel
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    ok.then_some(rel)
}

fn conditional_or_ranged(headers: &HeaderMap) -> bool {
    [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|h| headers.contains_key(h))
}

/// A small regular file: one the cache may hold.
fn cacheable(m: &Metadata) -> bool {
    m.is_file() && m.len() <= MAX_ENTRY
}

impl Cache {
    /// An empty cache of the files under `root`.
    pub fn new(root: PathBuf) -> Self {
        Cache {
            root,
            entries: Mutex::default(),
            swept: Mutex::default(),
        }
    }

    /// Answers a plain download of a cached file whose stamp still matches, without blocking
    /// beyond one `stat`.
    pub fn lookup(&self, method: &Method, uri_path: &str, headers: &HeaderMap) -> Lookup {
        if (method != Method::GET && method != Method::HEAD) || conditional_or_ranged(headers) {
            return Lookup::Pass;
        }
        let Some(rel) = plain_path(uri_path) else {
            return Lookup::Pass;
        };
        let cached = self.entries.lock().ok().and_then(|e| e.get(rel).cloned());
        // A stat of a page-cached inode takes about a microsecond: cheaper than a thread hop.
        let (path, meta) = if let Some(entry) = cached {
            let Ok(meta) = fs_err::metadata(&entry.path) else {
                return Lookup::Pass;
            };
            if Stamp::of(&meta) == entry.stamp {
                return Lookup::Hit(respond(&entry, method, headers));
            }
            (entry.path.clone(), meta)
        } else {
            let path = self.root.join(rel);
            let Ok(meta) = fs_err::metadata(&path) else {
                return Lookup::Pass;
            };
            (path, meta)
        };
        if cacheable(&meta) {
            Lookup::Fill {
                key: rel.into(),
                path,
            }
        } else {
            Lookup::Pass
        }
    }

    /// Reads `path` into a new entry for `key` and answers from it; `None` when the file is no
    /// longer a small regular file (`ServeDir` answers then). Runs the file I/O on the blocking
    /// pool.
    pub async fn fill(
        &self,
        key: Box<str>,
        path: PathBuf,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<Response<Full<Bytes>>> {
        let entry = tokio::task::spawn_blocking(move || read_entry(path))
            .await
            .ok()??;
        let entry = Arc::new(entry);
        let response = respond(&entry, method, headers);
        self.insert(key, entry);
        Some(response)
    }

    fn insert(&self, key: Box<str>, entry: Arc<Entry>) {
        let sweep = self.swept.lock().is_ok_and(|mut swept| {
            let due = swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
            if due {
                *swept = Some(Instant::now());
            }
            due
        });
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if sweep {
            entries.retain(|_, e| fs_err::metadata(&e.path).is_ok_and(|m| Stamp::of(&m) == e.stamp));
        }
        let mut used: u64 = entries.values().map(|e| e.stamp.len).sum();
        while used + entry.stamp.len > BUDGET {
            let Some(victim) = entries.keys().next().cloned() else {
                break;
            };
            used -= entries.remove(&victim).map_or(0, |e| e.stamp.len);
        }
        entries.insert(key, entry);
    }
}

/// Opens `path`, and when it is a small regular file reads it through the same descriptor, so the
/// bytes and the stamp are the same inode's.
fn read_entry(path: PathBuf) -> Option<Entry> {
    let mut file = fs_err::File::open(&path).ok()?;
    let meta = file.metadata().ok()?;
    if !cacheable(&meta) {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
    file.read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 != meta.len() {
        return None; // rewritten in place while reading: let the general path deal with it
    }
    Entry::new(path, &meta, Bytes::from(bytes))
}

/// The `200` (body for GET, none for HEAD) or, for a satisfied `If-Modified-Since`, the `304`
/// (`ETag` and `Last-Modified`, as `ServeDir` answers it).
fn respond(entry: &Entry, method: &Method, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let not_modified = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| {
            // HTTP dates have whole seconds: compare at that precision.
            let since = since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            entry.modified_secs <= since
        });
    let mut response = Response::new(Full::default());
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let out = response.headers_mut();
        for name in [header::ETAG, header::LAST_MODIFIED] {
            if let Some(value) = entry.headers.get(&name) {
                out.insert(name, value.clone());
            }
        }
        return response;
    }
    *response.headers_mut() = entry.headers.clone();
    if method != Method::HEAD {
        *response.body_mut() = Full::new(entry.body.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_take_the_fast_path() {
        assert_eq!(
            plain_path("/gitrepository/ns/app/abc.tar.gz"),
            Some("gitrepository/ns/app/abc.tar.gz")
        );
        for bad in [
            "/",
            "",
            "x",
            "/a//b",
            "/a/../b",
            "/./a",
            "/a/%2e%2e/b",
            "/a\\b",
            "/..",
            "/a/.",
        ] {
            assert_eq!(plain_path(bad), None, "{bad:?}");
        }
    }

    fn entry(path: &Path) -> Arc<Entry> {
        Arc::new(read_entry(path.to_path_buf()).unwrap())
    }

    #[test]
    fn entries_of_deleted_files_are_swept_on_insert() {
        let dir = tempfile::tempdir().unwrap();
        let (old, kept, new) = (
            dir.path().join("old"),
            dir.path().join("kept"),
            dir.path().join("new"),
        );
        for p in [&old, &kept, &new] {
            fs_err::write(p, b"artifact").unwrap();
        }
        let cache = Cache::new(dir.path().to_path_buf());
        cache.insert("old".into(), entry(&old));
        cache.insert("kept".into(), entry(&kept));
        fs_err::remove_file(&old).unwrap();
        // Not yet due: the entry of the deleted file stays until the next sweep.
        cache.insert("new".into(), entry(&new));
        assert_eq!(cache.entries.lock().unwrap().len(), 3);
        *cache.swept.lock().unwrap() = Instant::now().checked_sub(SWEEP_EVERY);
        cache.insert("new".into(), entry(&new));
        let mut left: Vec<Box<str>> = cache.entries.lock().unwrap().keys().cloned().collect();
        left.sort();
        assert_eq!(left, vec!["kept".into(), "new".into()]);
    }

    #[test]
    fn budget_is_respected() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        fs_err::write(&big, vec![0u8; usize::try_from(MAX_ENTRY).unwrap()]).unwrap();
        let big = entry(&big);
        let cache = Cache::new(dir.path().to_path_buf());
        for i in 0..80 {
            cache.insert(format!("f{i}").into(), big.clone());
        }
        let used: u64 = cache.entries.lock().unwrap().values().map(|e| e.stamp.len).sum();
        assert!(used <= BUDGET, "{used}");
    }

    /// The store's way of replacing a file: a new file renamed over the path.
    fn replace(path: &Path, body: &[u8], modified: SystemTime) {
        let tmp = path.with_extension("tmp");
        let mut file = fs_err::File::create(&tmp).unwrap();
        std::io::Write::write_all(&mut file, body).unwrap();
        file.file().set_modified(modified).unwrap();
        drop(file);
        fs_err::rename(&tmp, path).unwrap();
    }

    fn body_of(lookup: Lookup) -> Option<Bytes> {
        match lookup {
            Lookup::Hit(r) => r.into_body().into_inner(),
            Lookup::Fill { .. } | Lookup::Pass => None,
        }
    }

    #[tokio::test]
    async fn a_file_renamed_over_the_path_is_never_served_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        replace(&path, b"old bytes", when);
        let cache = Cache::new(dir.path().to_path_buf());
        let (get, none) = (Method::GET, HeaderMap::new());
        let Lookup::Fill { key, path: p } = cache.lookup(&get, "/a.tar.gz", &none) else {
            panic!("first request must fill");
        };
        let first = cache.fill(key, p, &get, &none).await.unwrap();
        assert_eq!(first.into_body().into_inner().unwrap(), "old bytes");
        assert_eq!(
            body_of(cache.lookup(&get, "/a.tar.gz", &none)).unwrap(),
            "old bytes"
        );
        // Same size, same modification time to the nanosecond: only the inode tells them apart.
        replace(&path, b"new bytes", when);
        let Lookup::Fill { key, path: p } = cache.lookup(&get, "/a.tar.gz", &none) else {
            panic!("a replaced file must be read again");
        };
        let second = cache.fill(key, p, &get, &none).await.unwrap();
        assert_eq!(second.into_body().into_inner().unwrap(), "new bytes");
        assert_eq!(
            body_of(cache.lookup(&get, "/a.tar.gz", &none)).unwrap(),
            "new bytes"
        );
    }

    #[test]
    fn directories_large_and_missing_files_pass() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("d")).unwrap();
        let big = vec![0u8; usize::try_from(MAX_ENTRY + 1).unwrap()];
        fs_err::write(dir.path().join("big"), big).unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        for path in ["/d", "/big", "/missing"] {
            let lookup = cache.lookup(&Method::GET, path, &HeaderMap::new());
            assert!(matches!(lookup, Lookup::Pass), "{path}");
        }
    }
}
