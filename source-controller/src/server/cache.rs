//! Fast path for the common download: a plain `GET`/`HEAD` of an artifact file, answered from
//! memory.
//!
//! Artifacts never change in place: a new one is a new file (atomic rename), so an entry keyed by
//! path and validated by modification time and size on every request is never stale. A deleted or
//! replaced file fails validation and the request falls through to `ServeDir`.
//!
//! What is NOT handled here, and falls through to `ServeDir` unchanged: any method but GET/HEAD,
//! `Range`/`If-Range`/`If-Match`/`If-None-Match`/`If-Unmodified-Since`, paths with `%`, `\`, empty,
//! `.` or `..` segments, directories, missing files, and files over [`MAX_ENTRY`]. The path check is
//! deliberately stricter than `ServeDir`'s: anything unusual takes the general path.
//!
//! Why not just `ServeDir`: it sends every open, stat and 64 KiB read through tokio's blocking
//! pool; `make bench` (B5) measured that hop as most of the server's CPU time.
//!
//! Every new revision is a new file and garbage collection deletes the old ones, so entries of
//! deleted files are dropped by a sweep (a stat per entry, at most every [`SWEEP_EVERY`], on
//! insert): without it the cache kept every artifact ever served until the budget was full,
//! which `make soak` showed as source-controller's RSS rising with every push.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Largest file kept in memory.
pub const MAX_ENTRY: u64 = 1024 * 1024;
/// Memory budget of the cache.
pub const BUDGET: u64 = 64 * 1024 * 1024;
/// How often at most inserting also drops the entries whose file is gone or changed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Entry {
    modified: SystemTime,
    len: u64,
    body: Bytes,
}

/// Recently served small artifacts.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
    /// When the last sweep ran (`None`: not yet).
    swept: Mutex<Option<Instant>>,
}

/// The entry still describes the file at `path`.
fn current(path: &Path, e: &Entry) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|m| m.is_file() && m.len() == e.len && m.modified().is_ok_and(|t| t == e.modified))
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

impl Cache {
    /// Answers the request from memory when it is a plain download of a small file under `root`;
    /// `None` means "not mine, let `ServeDir` answer".
    pub async fn try_serve(
        &self,
        root: &Path,
        method: &Method,
        uri_path: &str,
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        if (method != Method::GET && method != Method::HEAD) || conditional_or_ranged(headers) {
            return None;
        }
        let path = root.join(plain_path(uri_path)?);
        // A stat on a page-cached inode takes microseconds; doing it here avoids a thread hop.
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_ENTRY {
            return None;
        }
        let modified = meta.modified().ok()?;
        let cached = self.entries.lock().ok()?.get(&path).cloned();
        let body = match cached {
            Some(e) if e.modified == modified && e.len == meta.len() => e.body,
            _ => {
                let read_path = path.clone();
                let bytes = tokio::task::spawn_blocking(move || fs_err::read(read_path))
                    .await
                    .ok()?
                    .ok()?;
                if bytes.len() as u64 != meta.len() {
                    return None; // changed while reading: let the general path deal with it
                }
                let body = Bytes::from(bytes);
                self.insert(
                    path,
                    Entry {
                        modified,
                        len: meta.len(),
                        body: body.clone(),
                    },
                );
                body
            }
        };
        Some(respond(method, headers, modified, body))
    }

    fn insert(&self, path: PathBuf, entry: Entry) {
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
            entries.retain(|p, e| current(p, e));
        }
        let mut used: u64 = entries.values().map(|e| e.len).sum();
        while used + entry.len > BUDGET {
            let Some(victim) = entries.keys().next().cloned() else {
                break;
            };
            used -= entries.remove(&victim).map_or(0, |e| e.len);
        }
        entries.insert(path, entry);
    }
}

fn respond(method: &Method, headers: &HeaderMap, modified: SystemTime, body: Bytes) -> Response<Body> {
    let last_modified = httpdate::fmt_http_date(modified);
    let not_modified = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| {
            // HTTP dates have whole seconds: compare at that precision.
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            };
            secs(modified) <= secs(since)
        });
    let mut builder = Response::builder()
        .header(header::LAST_MODIFIED, last_modified)
        .header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if not_modified {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    builder = builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"))
        .header(header::CONTENT_LENGTH, body.len());
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    builder.body(body).unwrap_or_default()
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

    #[test]
    fn entries_of_deleted_files_are_swept_on_insert() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |path: &Path| {
            let m = std::fs::metadata(path).unwrap();
            Entry {
                modified: m.modified().unwrap(),
                len: m.len(),
                body: Bytes::from(fs_err::read(path).unwrap()),
            }
        };
        let (old, kept, new) = (
            dir.path().join("old"),
            dir.path().join("kept"),
            dir.path().join("new"),
        );
        for p in [&old, &kept, &new] {
            fs_err::write(p, b"artifact").unwrap();
        }
        let cache = Cache::default();
        cache.insert(old.clone(), entry(&old));
        cache.insert(kept.clone(), entry(&kept));
        fs_err::remove_file(&old).unwrap();
        // Not yet due: the entry of the deleted file stays until the next sweep.
        cache.insert(new.clone(), entry(&new));
        assert_eq!(cache.entries.lock().unwrap().len(), 3);
        *cache.swept.lock().unwrap() = Instant::now().checked_sub(SWEEP_EVERY);
        cache.insert(new.clone(), entry(&new));
        let mut left: Vec<PathBuf> = cache.entries.lock().unwrap().keys().cloned().collect();
        left.sort();
        assert_eq!(left, vec![kept, new]);
    }

    #[test]
    fn budget_is_respected() {
        let cache = Cache::default();
        let big = Bytes::from(vec![0u8; usize::try_from(MAX_ENTRY).unwrap()]);
        for i in 0..80 {
            let e = Entry {
                modified: SystemTime::UNIX_EPOCH,
                len: MAX_ENTRY,
                body: big.clone(),
            };
            cache.insert(PathBuf::from(format!("/f{i}")), e);
        }
        let used: u64 = cache.entries.lock().unwrap().values().map(|e| e.len).sum();
        assert!(used <= BUDGET, "{used}");
    }
}
