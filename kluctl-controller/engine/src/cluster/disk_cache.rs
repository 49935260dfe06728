//! API discovery of the `kluctl` CLI, cached on disk between runs, as kubectl caches it in
//! `~/.kube/cache/discovery/<host>_<port>/`.
//!
//! Why: on servers without aggregated discovery (Kubernetes before 1.26) a full discovery is one
//! request per API group version — 60 and more on a small cluster, the largest share of an
//! unchanged redeploy's requests. kube-rs has no cached discovery client, and kubectl's cache
//! format (one `serverresources.json` per group version) is not ours to share, so this is a
//! small one-file cache of what [`super::Cluster`] needs.
//!
//! ```text
//! <dir>/<host>_<port>-<hash>/discovery.json     dir and key dirs 0700, file 0600
//!        │                   └ sha256 of the server URL and its CA data: two clusters
//!        │                     behind one address (tunnels, kind) never share an entry
//!        └ --discovery-cache-dir, else $XDG_CACHE_HOME/kluctl/discovery, else ~/.cache/kluctl/discovery
//!
//! connect ─► load (missing, corrupt, other format, older than the TTL: ignored, debug log)
//!        ─► GET /version + GET /apis: same server version? groups and versions as cached?
//!             same  ─► use the cache (2 requests)
//!             a group added, removed or changed ─► read only those groups' versions
//!             version changed ─► full discovery
//!        ─► at the end of the command: written back (temp file + rename) when the index changed
//! ```
//!
//! Invalidation within a run (kubectl's REST mapper resets its cache on a kind it cannot map):
//! a kind the render or the apply needs that the cached index lacks reads that kind's group
//! again, once per group and run (see [`super::Cluster`]); a resource whose listing answers 404
//! is forgotten. The TTL bounds what no `/apis` comparison can see: a kind added to a group
//! version that was already served.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::remote::ApiIndex;

/// How long a cached discovery is trusted, as kubectl's (6 hours).
pub const DEFAULT_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// The layout version of `discovery.json`; a file of another version is ignored and rewritten.
pub(crate) const FORMAT: u32 = 1;

/// The file name inside a server's cache directory.
const FILE_NAME: &str = "discovery.json";

/// Where and for how long the CLI caches discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryCacheOptions {
    /// The cache root (one sub-directory per server).
    pub dir: PathBuf,
    /// How long a cached discovery is used before a full discovery replaces it.
    pub ttl: Duration,
}

impl DiscoveryCacheOptions {
    /// The default root: `$XDG_CACHE_HOME/kluctl/discovery`, else `~/.cache/kluctl/discovery`
    /// (`None` without either variable).
    pub fn default_dir() -> Option<PathBuf> {
        let from = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        from("XDG_CACHE_HOME")
            .or_else(|| from("HOME").map(|h| h.join(".cache")))
            .map(|base| base.join("kluctl").join("discovery"))
    }

    /// The file of the server at `cluster_url` with CA certificates `ca` (DER).
    pub fn file_for(&self, cluster_url: &str, ca: &[Vec<u8>]) -> PathBuf {
        self.dir.join(cache_key(cluster_url, ca)).join(FILE_NAME)
    }
}

/// The versions of one API group as `/apis` lists them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersions {
    /// Served versions, in the server's order.
    pub versions: Vec<String>,
    /// The preferred version.
    pub preferred: Option<String>,
}

/// What the cache holds for one server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedDiscovery {
    /// [`FORMAT`].
    pub format: u32,
    /// When the full discovery this grew from was made (seconds since the Unix epoch).
    pub fetched_at: u64,
    /// The server URL (for people reading the file; the key already tells servers apart).
    pub server_url: String,
    /// `gitVersion` of the server.
    pub server_version: String,
    /// Every group (`""`: core) with its versions.
    pub groups: BTreeMap<String, GroupVersions>,
    /// The served resources.
    pub index: ApiIndex,
}

impl CachedDiscovery {
    /// Whether this entry is still within `ttl` at `now` (a time before `fetched_at`, a clock
    /// set back, counts as expired).
    pub fn is_fresh(&self, now: SystemTime, ttl: Duration) -> bool {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        now >= self.fetched_at && now - self.fetched_at < ttl.as_secs()
    }

    /// Helm's `--api-versions`: every `group/version` (`version` for core) and
    /// `group/version/Kind` of a resource that is not a sub-resource, sorted.
    pub fn api_versions(&self) -> Vec<String> {
        api_versions(&self.groups, &self.index)
    }
}

/// See [`CachedDiscovery::api_versions`].
pub(crate) fn api_versions(groups: &BTreeMap<String, GroupVersions>, index: &ApiIndex) -> Vec<String> {
    let mut out: Vec<String> = groups
        .iter()
        .flat_map(|(g, v)| v.versions.iter().map(move |v| gv(g, v)))
        .chain(
            index
                .entries()
                .iter()
                .filter(|e| !e.resource.plural.contains('/'))
                .map(|e| {
                    format!(
                        "{}/{}",
                        gv(&e.resource.group, &e.resource.version),
                        e.resource.kind
                    )
                }),
        )
        .collect();
    out.sort();
    out.dedup();
    out
}

fn gv(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// The directory name of a server: its `host_port` with every character other than letters,
/// digits, `.` and `-` replaced by `_` (kubectl's rule), then `-` and 16 hex digits of the
/// sha256 of the whole URL and the CA certificates.
pub fn cache_key(cluster_url: &str, ca: &[Vec<u8>]) -> String {
    let without_scheme = cluster_url
        .split_once("://")
        .map_or(cluster_url, |(_, rest)| rest);
    let host_port = without_scheme.split('/').next().unwrap_or_default();
    let host_port = host_port.replace(':', "_");
    let sanitized: String = host_port
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut hash = Sha256::new();
    hash.update(cluster_url.as_bytes());
    for cert in ca {
        hash.update(b"\0");
        hash.update(cert);
    }
    let digest = hash.finalize();
    let hex = digest.iter().take(8).fold(String::new(), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    });
    format!("{sanitized}-{hex}")
}

/// Reads the cached discovery at `path`: `None` (with a debug log saying why) when there is
/// none, it cannot be read or parsed, it has another format, or it is older than `ttl` at
/// `now`. Never an error: the caller then discovers and rewrites it.
pub fn load(path: &Path, now: SystemTime, ttl: Duration) -> Option<CachedDiscovery> {
    let bytes = match fs_err::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::debug!(error = %e, "discovery cache unreadable, ignored");
            return None;
        }
    };
    let cached: CachedDiscovery = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "discovery cache corrupt, ignored");
            return None;
        }
    };
    if cached.format != FORMAT {
        tracing::debug!(path = %path.display(), format = cached.format, "discovery cache of another format, ignored");
        return None;
    }
    if !cached.is_fresh(now, ttl) {
        tracing::debug!(path = %path.display(), "discovery cache expired");
        return None;
    }
    Some(cached)
}

/// Writes `cached` to `path` atomically (a temporary file in the same directory, renamed over
/// it): a reader sees the old file or the new one, never a part. Directories it creates are
/// 0700 and the file 0600 (the cache says which APIs a cluster serves; nobody else's business).
///
/// # Errors
/// The I/O error, naming the path.
pub fn store(path: &Path, cached: &CachedDiscovery) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    create_private_dir(dir)?;
    let bytes = serde_json::to_vec(cached).map_err(std::io::Error::other)?;
    // tempfile creates the file with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".discovery-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| with_path(&e, dir))?;
    tmp.write_all(&bytes).map_err(|e| with_path(&e, tmp.path()))?;
    tmp.persist(path).map_err(|e| with_path(&e.error, path))?;
    Ok(())
}

/// Creates `dir` and its missing parents; the ones it creates get mode 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| with_path(&e, dir))
}

fn with_path(e: &std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{e} (discovery cache '{}')", path.display()))
}

/// Seconds since the Unix epoch of `t` (0 before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The groups `/apis` (plus the cached core group) lists that differ from `cached`: added or
/// changed groups (read them again), and groups no longer served (drop them). The core group
/// is never compared (`/apis` does not list it; its version `v1` does not change).
pub fn changed_groups(
    cached: &BTreeMap<String, GroupVersions>,
    served: &BTreeMap<String, GroupVersions>,
) -> (Vec<String>, Vec<String>) {
    // Versions compare as sets: the order of a group read alone may differ from `/apis`'.
    let same = |a: &GroupVersions, b: &GroupVersions| {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        a.preferred == b.preferred && sorted(&a.versions) == sorted(&b.versions)
    };
    let changed = served
        .iter()
        .filter(|(g, v)| !g.is_empty() && !cached.get(*g).is_some_and(|c| same(c, v)))
        .map(|(g, _)| g.clone())
        .collect();
    let removed = cached
        .keys()
        .filter(|g| !g.is_empty() && !served.contains_key(*g))
        .cloned()
        .collect();
    (changed, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::resources::test_support::{entry, index};

    fn sample(fetched_at: u64) -> CachedDiscovery {
        let mut groups = BTreeMap::new();
        groups.insert(
            String::new(),
            GroupVersions {
                versions: vec!["v1".into()],
                preferred: Some("v1".into()),
            },
        );
        groups.insert(
            "apps".into(),
            GroupVersions {
                versions: vec!["v1".into()],
                preferred: Some("v1".into()),
            },
        );
        CachedDiscovery {
            format: FORMAT,
            fetched_at,
            server_url: "https://127.0.0.1:6443/".into(),
            server_version: "v1.20.2".into(),
            groups,
            index: index(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn key_is_the_sanitized_host_port_plus_a_hash_that_tells_cas_and_paths_apart() {
        let a = cache_key("https://127.0.0.1:6443/", &[b"ca-one".to_vec()]);
        assert!(a.starts_with("127.0.0.1_6443-"), "{a}");
        assert_eq!(a.len(), "127.0.0.1_6443-".len() + 16);
        // Same address, another CA: another cluster (a tunnel, a recreated kind cluster).
        let b = cache_key("https://127.0.0.1:6443/", &[b"ca-two".to_vec()]);
        assert_ne!(a, b);
        // Same address and CA, another path (a proxy serving several clusters).
        let c = cache_key("https://rancher.example.com/k8s/clusters/c-1", &[]);
        let d = cache_key("https://rancher.example.com/k8s/clusters/c-2", &[]);
        assert!(c.starts_with("rancher.example.com-"), "{c}");
        assert_ne!(c, d);
        // Stable: the same input gives the same key.
        assert_eq!(a, cache_key("https://127.0.0.1:6443/", &[b"ca-one".to_vec()]));
        // IPv6 brackets and other characters become `_`: never a path separator.
        let v6 = cache_key("https://[::1]:6443", &[]);
        assert!(v6.starts_with("___1__6443-"), "{v6}");
        assert!(!v6.contains('/'));
    }

    #[test]
    fn an_entry_is_fresh_for_the_ttl_and_never_when_the_clock_went_back() {
        let c = sample(1_000);
        let ttl = Duration::from_secs(100);
        assert!(c.is_fresh(at(1_000), ttl));
        assert!(c.is_fresh(at(1_099), ttl));
        assert!(!c.is_fresh(at(1_100), ttl));
        assert!(!c.is_fresh(at(999), ttl));
    }

    #[test]
    fn stored_entries_load_back_and_expire_after_the_ttl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DiscoveryCacheOptions {
            dir: dir.path().join("kluctl").join("discovery"),
            ttl: DEFAULT_TTL,
        };
        let path = options.file_for("https://127.0.0.1:6443/", &[]);
        let c = sample(unix_secs(SystemTime::now()));
        store(&path, &c).expect("store");
        assert_eq!(load(&path, SystemTime::now(), DEFAULT_TTL), Some(c.clone()));
        let later = SystemTime::now() + DEFAULT_TTL + Duration::from_secs(1);
        assert_eq!(load(&path, later, DEFAULT_TTL), None);
        // No temporary file is left next to it.
        let names: Vec<_> = fs_err::read_dir(path.parent().expect("parent"))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(FILE_NAME)]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| fs_err::metadata(p).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().expect("parent")), 0o700);
            assert_eq!(mode(&options.dir), 0o700);
        }
    }

    #[test]
    fn a_corrupt_truncated_or_foreign_file_is_ignored_and_then_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k").join(FILE_NAME);
        fs_err::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let now = SystemTime::now();
        let good = serde_json::to_vec(&sample(unix_secs(now))).expect("json");
        for bad in [
            b"not json at all".to_vec(),
            good[..good.len() / 2].to_vec(),
            Vec::new(),
            br#"{"format":99}"#.to_vec(),
            serde_json::to_vec(&CachedDiscovery {
                format: FORMAT + 1,
                ..sample(unix_secs(now))
            })
            .expect("json"),
        ] {
            fs_err::write(&path, &bad).expect("write");
            assert_eq!(load(&path, now, DEFAULT_TTL), None);
        }
        // A directory where the file should be: unreadable, ignored.
        let odd = dir.path().join("odd");
        fs_err::create_dir_all(odd.join(FILE_NAME)).expect("mkdir");
        assert_eq!(load(&odd.join(FILE_NAME), now, DEFAULT_TTL), None);
        // Rewriting replaces the corrupt file.
        store(&path, &sample(unix_secs(now))).expect("store");
        assert!(load(&path, now, DEFAULT_TTL).is_some());
    }

    #[test]
    fn changed_groups_finds_added_changed_and_removed_groups_but_ignores_core() {
        let gv = |v: &[&str], p: &str| GroupVersions {
            versions: v.iter().map(|s| (*s).to_owned()).collect(),
            preferred: Some(p.to_owned()),
        };
        let cached: BTreeMap<String, GroupVersions> = [
            (String::new(), gv(&["v1"], "v1")),
            ("apps".to_owned(), gv(&["v1"], "v1")),
            ("old.example.com".to_owned(), gv(&["v1"], "v1")),
            ("batch".to_owned(), gv(&["v1", "v1beta1"], "v1")),
            // The same versions in another order: unchanged.
            ("order.example.com".to_owned(), gv(&["v2", "v1"], "v2")),
        ]
        .into_iter()
        .collect();
        let served: BTreeMap<String, GroupVersions> = [
            ("apps".to_owned(), gv(&["v1"], "v1")),
            ("batch".to_owned(), gv(&["v1"], "v1")),
            ("new.example.com".to_owned(), gv(&["v1alpha1"], "v1alpha1")),
            ("order.example.com".to_owned(), gv(&["v1", "v2"], "v2")),
        ]
        .into_iter()
        .collect();
        let (changed, removed) = changed_groups(&cached, &served);
        assert_eq!(changed, ["batch", "new.example.com"]);
        assert_eq!(removed, ["old.example.com"]);
        assert_eq!(changed_groups(&served, &served), (Vec::new(), Vec::new()));
    }

    #[test]
    fn api_versions_list_group_versions_and_kinds_without_sub_resources() {
        let mut c = sample(0);
        c.index = ApiIndex::from_entries(
            vec![
                entry("", "v1", "Pod", "pods", true),
                entry("", "v1", "Pod", "pods/status", true),
                entry("apps", "v1", "Deployment", "deployments", true),
            ],
            BTreeMap::new(),
        );
        assert_eq!(
            c.api_versions(),
            ["apps/v1", "apps/v1/Deployment", "v1", "v1/Pod"]
        );
    }
}
