//! The target cluster as the render sees it: which kubeconfig context, the server version and
//! API resources (for Helm's capabilities and the namespace fix-up), and read access for the
//! `clusterConfigMap` / `clusterSecret` / `clusterObject` vars sources.
//!
//! The engine is synchronous (templating and rendering run on worker threads), kube's client is
//! async: this type owns a small runtime and blocks on it, so it must not be called from inside
//! an async task (the controller calls the engine from a blocking thread).
//!
//! Discovery comes from one of three places: a full discovery at connect; what an earlier
//! connection found ([`Cluster::from_config_discovered`], the controller's in-memory cache);
//! or the CLI's cache on disk ([`disk_cache`], checked against `/version` and `/apis` at
//! connect and written back at the end when the run learned or forgot resources).

pub mod disk_cache;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

pub use disk_cache::DiscoveryCacheOptions;
use disk_cache::{CachedDiscovery, GroupVersions};

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::Discovery;
use serde_json::Value;

use crate::project::vars::ClusterReader;
use crate::remote::{ApiIndex, SharedApiIndex, api_for};
use crate::render::namespaces::ScopeLookup;

/// Why the cluster could not be reached or read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be loaded or has no such context.
    #[error("failed to load kubeconfig{}: {message}", context.as_ref().map(|c| format!(" for context '{c}'")).unwrap_or_default())]
    Config {
        /// The requested context.
        context: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// The API server did not answer as expected.
    #[error("failed to {action} on the cluster: {message}")]
    Api {
        /// What was attempted.
        action: &'static str,
        /// The error.
        message: String,
    },
}

/// What API discovery found on a cluster: the server version, Helm's API versions and the
/// shared index of served kinds. Cheap to clone (the index is shared, not copied).
#[derive(Clone, Debug)]
pub struct Discovered {
    /// `gitVersion` of the API server.
    pub server_version: String,
    /// `group/version` and `group/version/Kind` strings.
    pub api_versions: Vec<String>,
    /// The served kinds.
    pub index: SharedApiIndex,
}

/// A connected cluster.
pub struct Cluster {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    /// The context used (empty for in-cluster configuration).
    pub context: String,
    /// `gitVersion` of the API server, e.g. `v1.20.2`.
    pub server_version: String,
    /// `group/version` and `group/version/Kind` strings (Helm's `--api-versions`).
    pub api_versions: Vec<String>,
    /// The served resources: from the discovery at connect, plus the groups the commands read
    /// again since (CRDs applied by a deploy).
    index: SharedApiIndex,
    /// The disk cache entry of this cluster (CLI only).
    disk: Option<DiskEntry>,
}

/// A [`Cluster`]'s entry in the disk cache.
struct DiskEntry {
    path: PathBuf,
    server_url: String,
    /// When the full discovery the entry grew from was made (kept when it is written back).
    fetched_at: u64,
    /// Groups and versions as `/apis` listed them at connect.
    groups: BTreeMap<String, GroupVersions>,
    /// The index as it was last written (`None`: not written yet).
    saved: Mutex<Option<Arc<ApiIndex>>>,
    /// Whether the index came from the file: then a kind it lacks may be new on the server.
    from_cache: bool,
    /// Groups read again in this run for a kind the cached index lacked (once each).
    relearned: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("context", &self.context)
            .field("server_version", &self.server_version)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects with `kubeconfig` (default: `$KUBECONFIG` / `~/.kube/config`, then in-cluster)
    /// and `context` (default: the current context), and runs API discovery — or, with
    /// `discovery_cache`, reads it from that cache on disk when it is fresh and still matches
    /// the server's `/version` and `/apis` (see [`disk_cache`]).
    ///
    /// # Errors
    /// [`ClusterError`] when the configuration is unusable or the server does not answer. A
    /// cache that cannot be read or written is never an error (debug log only).
    ///
    /// ```no_run
    /// use kluctl_engine::cluster::{Cluster, DiscoveryCacheOptions, disk_cache::DEFAULT_TTL};
    /// let cache = DiscoveryCacheOptions { dir: "/tmp/kluctl-discovery".into(), ttl: DEFAULT_TTL };
    /// let cluster = Cluster::connect(None, Some("kind-dev"), Some(&cache))?;
    /// println!("{}", cluster.server_version);
    /// # Ok::<(), kluctl_engine::cluster::ClusterError>(())
    /// ```
    pub fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        discovery_cache: Option<&DiscoveryCacheOptions>,
    ) -> Result<Self, ClusterError> {
        let runtime = new_runtime()?;
        let config_err = |message: String| ClusterError::Config {
            context: context.map(str::to_owned),
            message,
        };
        let (config, used_context) = runtime.block_on(async {
            let options = kube::config::KubeConfigOptions {
                context: context.map(str::to_owned),
                ..Default::default()
            };
            let kc = match kubeconfig {
                Some(path) => Some(
                    kube::config::Kubeconfig::read_from(path)
                        .map_err(|e| config_err(format!("{}: {e}", path.display())))?,
                ),
                None => kube::config::Kubeconfig::read().ok(),
            };
            match kc {
                Some(kc) => {
                    let used = context
                        .map(str::to_owned)
                        .or_else(|| kc.current_context.clone())
                        .unwrap_or_default();
                    let config = kube::Config::from_custom_kubeconfig(kc, &options)
                        .await
                        .map_err(|e| config_err(e.to_string()))?;
                    Ok((config, used))
                }
                None if context.is_none() => kube::Config::incluster()
                    .map(|c| (c, String::new()))
                    .map_err(|e| config_err(format!("no kubeconfig and not in a cluster: {e}"))),
                None => Err(config_err("no kubeconfig found".to_owned())),
            }
        })?;
        match discovery_cache {
            Some(options) => Self::connect_cached(runtime, config, used_context, options),
            None => Self::connect_with(runtime, config, used_context),
        }
    }

    /// Connects with a client configuration built by the caller (the controller's own, with
    /// impersonation, or one from a kubeconfig Secret); `context` is what templates see as
    /// `target.context`.
    ///
    /// # Errors
    /// [`ClusterError`] when the server does not answer.
    pub fn from_config(config: kube::Config, context: &str) -> Result<Self, ClusterError> {
        Self::connect_with(new_runtime()?, config, context.to_owned())
    }

    /// Connects like [`Self::from_config`] but reuses what an earlier connection to the same
    /// cluster discovered ([`Self::discovered`]): no discovery requests. The index is shared, so
    /// kinds a CRD added during one command are known to every connection holding it.
    ///
    /// # Errors
    /// [`ClusterError`] when the client cannot be built.
    pub fn from_config_discovered(
        config: kube::Config,
        context: &str,
        discovered: Discovered,
    ) -> Result<Self, ClusterError> {
        let runtime = new_runtime()?;
        let client = Self::client_on(&runtime, config)?;
        Ok(Self {
            runtime,
            client,
            context: context.to_owned(),
            server_version: discovered.server_version,
            api_versions: discovered.api_versions,
            index: discovered.index,
            disk: None,
        })
    }

    /// What this connection discovered, for [`Self::from_config_discovered`].
    pub fn discovered(&self) -> Discovered {
        Discovered {
            server_version: self.server_version.clone(),
            api_versions: self.api_versions.clone(),
            index: self.index.clone(),
        }
    }

    fn client_on(
        runtime: &tokio::runtime::Runtime,
        config: kube::Config,
    ) -> Result<kube::Client, ClusterError> {
        // The client's buffer service spawns onto the runtime it is created in.
        let _entered = runtime.enter();
        kube::Client::try_from(config).map_err(|e| ClusterError::Api {
            action: "create a client",
            message: e.to_string(),
        })
    }

    fn connect_with(
        runtime: tokio::runtime::Runtime,
        config: kube::Config,
        used_context: String,
    ) -> Result<Self, ClusterError> {
        let client = Self::client_on(&runtime, config)?;
        let full = runtime.block_on(full_discovery(&client))?;
        Ok(Self {
            runtime,
            client,
            context: used_context,
            server_version: full.server_version.clone(),
            api_versions: full.api_versions(),
            index: SharedApiIndex::new(full.index),
            disk: None,
        })
    }

    /// [`Self::connect_with`] through the disk cache of `options`.
    fn connect_cached(
        runtime: tokio::runtime::Runtime,
        config: kube::Config,
        used_context: String,
        options: &DiscoveryCacheOptions,
    ) -> Result<Self, ClusterError> {
        let server_url = config.cluster_url.to_string();
        let path = options.file_for(&server_url, config.root_cert.as_deref().unwrap_or_default());
        let client = Self::client_on(&runtime, config)?;
        let now = SystemTime::now();
        let cached = disk_cache::load(&path, now, options.ttl).and_then(|cached| {
            match runtime.block_on(revalidate(&client, cached)) {
                Ok(Some(found)) => Some(found),
                Ok(None) => {
                    tracing::debug!(path = %path.display(), "server version changed, discovery cache ignored");
                    None
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "discovery cache not usable, discovering");
                    None
                }
            }
        });
        let (found, from_cache, changed) = match cached {
            Some((found, changed)) => (found, true, changed),
            None => (runtime.block_on(full_discovery(&client))?, false, true),
        };
        let index = Arc::new(found.index.clone());
        let cluster = Self {
            runtime,
            client,
            context: used_context,
            server_version: found.server_version.clone(),
            api_versions: found.api_versions(),
            index: SharedApiIndex::from_arc(Arc::clone(&index)),
            disk: Some(DiskEntry {
                path,
                server_url,
                fetched_at: if from_cache {
                    found.fetched_at
                } else {
                    disk_cache::unix_secs(now)
                },
                groups: found.groups,
                saved: Mutex::new((!changed).then_some(index)),
                from_cache,
                relearned: Mutex::default(),
            }),
        };
        cluster.save_discovery();
        Ok(cluster)
    }

    /// Writes the discovery to the disk cache when this connection has one and the index
    /// differs from what was last written (it grew by a CRD's group or lost a resource that
    /// answered 404). Failures are logged at debug level only: the cache is an optimisation.
    /// Also done when the cluster is dropped.
    pub fn save_discovery(&self) {
        let Some(disk) = &self.disk else { return };
        let index = self.index.current();
        let mut saved = disk.saved.lock().unwrap_or_else(PoisonError::into_inner);
        if saved
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &index) || **s == *index)
        {
            return;
        }
        let cached = CachedDiscovery {
            format: disk_cache::FORMAT,
            fetched_at: disk.fetched_at,
            server_url: disk.server_url.clone(),
            server_version: self.server_version.clone(),
            groups: groups_with_learned(&disk.groups, &index),
            index: (*index).clone(),
        };
        match disk_cache::store(&disk.path, &cached) {
            Ok(()) => *saved = Some(index),
            Err(e) => tracing::debug!(error = %e, "failed to write the discovery cache"),
        }
    }

    /// With a cached index: reads the API group of `api_version` again (once per group and
    /// run) because a kind of it is missing — kubectl's REST mapper resets its cache on a kind
    /// it cannot map. `false` when nothing was read (no cache, a fresh discovery, the core
    /// group, or the group was read already).
    fn relearn(&self, api_version: &str) -> bool {
        let Some(disk) = self.disk.as_ref().filter(|d| d.from_cache) else {
            return false;
        };
        let Some((group, _)) = api_version.rsplit_once('/') else {
            return false;
        };
        if !disk
            .relearned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group.to_owned())
        {
            return false;
        }
        tracing::debug!(group, "kind not in the cached discovery, reading its group again");
        self.runtime
            .block_on(self.index.refresh_group(&self.client, group));
        true
    }

    /// The client (for the engine's async cluster steps; run them with [`Self::block_on`]).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The served kinds: from the discovery made when connecting, shared with (and grown by)
    /// the commands run on this cluster, so a kind a deploy's CRD added stays known to the
    /// steps after it.
    pub fn index(&self) -> &SharedApiIndex {
        &self.index
    }

    /// Runs an async engine step on this cluster's runtime (not from inside an async task).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The API of a kind from the index (no request).
    fn api_for(&self, api_version: &str, kind: &str, namespace: &str) -> Result<Api<DynamicObject>, String> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let reference = gitops_api::kluctl::v1beta1::ObjectRef {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            ..Default::default()
        };
        if self.index.current().resolve(&reference).is_none() {
            self.relearn(api_version);
        }
        let index = self.index.current();
        let entry = index.resolve(&reference).ok_or_else(|| {
            format!("failed to find resource {api_version}/{kind}: not served by the cluster")
        })?;
        Ok(api_for(&self.client, entry, namespace))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.save_discovery();
    }
}

/// `/version` and a full discovery, as the disk cache holds them.
async fn full_discovery(client: &kube::Client) -> Result<CachedDiscovery, ClusterError> {
    let api = |action| {
        move |e: kube::Error| ClusterError::Api {
            action,
            message: e.to_string(),
        }
    };
    let version = client
        .apiserver_version()
        .await
        .map_err(api("read the server version"))?;
    let discovery = discover(client).await.map_err(api("discover API resources"))?;
    let groups = discovery
        .groups()
        .map(|g| {
            (
                g.name().to_owned(),
                GroupVersions {
                    versions: g.versions().map(str::to_owned).collect(),
                    preferred: g.preferred_version().map(str::to_owned),
                },
            )
        })
        .collect();
    Ok(CachedDiscovery {
        format: disk_cache::FORMAT,
        fetched_at: 0,
        server_url: String::new(),
        server_version: version.git_version,
        groups,
        index: ApiIndex::from_discovery(&discovery),
    })
}

/// Checks a cached discovery against the server: two requests (`/version`, `/apis`), plus one
/// per version of each group that was added or changed since. `None` when the server version
/// changed (then everything is discovered again); otherwise the updated entry and whether it
/// changed.
async fn revalidate(
    client: &kube::Client,
    mut cached: CachedDiscovery,
) -> Result<Option<(CachedDiscovery, bool)>, kube::Error> {
    let (version, list) = futures::try_join!(client.apiserver_version(), client.list_api_groups())?;
    if version.git_version != cached.server_version {
        return Ok(None);
    }
    let served: BTreeMap<String, GroupVersions> = list
        .groups
        .into_iter()
        .map(|g| {
            (
                g.name,
                GroupVersions {
                    versions: g.versions.into_iter().map(|v| v.version).collect(),
                    preferred: g.preferred_version.map(|v| v.version),
                },
            )
        })
        .collect();
    let (changed, removed) = disk_cache::changed_groups(&cached.groups, &served);
    for group in &removed {
        cached.index.remove_group(group);
        cached.groups.remove(group);
    }
    let reads =
        changed.iter().map(|group| {
            let versions = served[group].clone();
            async move {
                let lists =
                    futures::future::try_join_all(versions.versions.iter().map(|v| async move {
                        client.list_api_group_resources(&format!("{group}/{v}")).await
                    }))
                    .await?;
                Ok::<_, kube::Error>((group, versions, lists))
            }
        });
    for (group, versions, lists) in futures::future::try_join_all(reads).await? {
        cached
            .index
            .add_resource_lists(group, versions.preferred.as_deref(), &lists);
        cached.groups.insert(group.clone(), versions);
    }
    Ok(Some((cached, !changed.is_empty() || !removed.is_empty())))
}

/// `groups`, plus the groups `index` holds that `groups` does not list with those versions
/// (groups a CRD of the run added, read by the apply): their versions from the index entries.
fn groups_with_learned(
    groups: &BTreeMap<String, GroupVersions>,
    index: &ApiIndex,
) -> BTreeMap<String, GroupVersions> {
    let mut out = groups.clone();
    let mut learned: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in index.entries() {
        let versions = learned.entry(e.resource.group.as_str()).or_default();
        if !versions.contains(&e.resource.version) {
            versions.push(e.resource.version.clone());
        }
    }
    for (group, versions) in learned {
        let known = groups
            .get(group)
            .is_some_and(|g| versions.iter().all(|v| g.versions.contains(v)));
        if !known {
            out.insert(
                group.to_owned(),
                GroupVersions {
                    versions,
                    preferred: index.preferred_version(group).map(str::to_owned),
                },
            );
        }
    }
    out
}

/// The small runtime a [`Cluster`] blocks on.
fn new_runtime() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClusterError::Api {
            action: "start the client runtime",
            message: e.to_string(),
        })
}

/// Runs API discovery: the aggregated form first (two requests on Kubernetes 1.26+), else one
/// request per group version, retrying while a group disappears in between (a CRD being
/// deleted answers 404 for its group for a moment; Kubernetes clients tolerate that, a single
/// discovery run does not).
///
/// # Errors
/// The last error when discovery keeps failing for about five seconds, or any other error.
pub async fn discover(client: &kube::Client) -> Result<Discovery, kube::Error> {
    // Older servers ignore the aggregated media type and answer with plain group lists, which
    // parse into groups without resources: only a result with core resources is trusted.
    if let Ok(d) = Discovery::new(client.clone()).run_aggregated().await
        && d.groups().any(|g| {
            g.name().is_empty()
                && g.recommended_resources()
                    .iter()
                    .any(|(r, _)| r.kind == "Namespace")
        })
    {
        return Ok(d);
    }
    let mut attempt = 0;
    loop {
        match Discovery::new(client.clone()).run().await {
            Err(kube::Error::Api(s)) if s.code == 404 && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

impl ScopeLookup for Cluster {
    fn is_namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        self.index.current().is_namespaced(group, kind).or_else(|| {
            self.relearn(api_version)
                .then(|| self.index.current().is_namespaced(group, kind))
                .flatten()
        })
    }
}

impl ClusterReader for Cluster {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, String> {
        let api = self.api_for(api_version, kind, namespace)?;
        let found = self
            .runtime
            .block_on(api.get_opt(name))
            .map_err(|e| format!("failed to get {kind} {namespace}/{name}: {e}"))?;
        found
            .map(|o| serde_json::to_value(o).map_err(|e| e.to_string()))
            .transpose()
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, String> {
        let api = self.api_for(api_version, kind, namespace)?;
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let list = self
            .runtime
            .block_on(api.list(&ListParams::default().labels(&selector.join(","))))
            .map_err(|e| format!("failed to list {kind} in {namespace}: {e}"))?;
        list.items
            .into_iter()
            .map(|o| serde_json::to_value(o).map_err(|e| e.to_string()))
            .collect()
    }
}

#[cfg(any(test, feature = "test-support"))]
#[allow(clippy::missing_panics_doc)] // test scaffolding: a failed bind or lock fails the test
pub mod test_server {
    //! A fake API server for unit tests (this crate's, and the controller's through the
    //! `test-support` feature): a thread answering fixed JSON by path (a 404 Status otherwise)
    //! and recording every path asked, so tests assert which requests were made.
    use std::collections::HashMap;
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::json;

    /// A fake API server; `paths` holds every request path in order.
    pub struct FakeServer {
        url: String,
        paths: Arc<Mutex<Vec<String>>>,
    }

    impl FakeServer {
        /// Serves `answers` (path → JSON body).
        pub fn start(answers: HashMap<String, serde_json::Value>) -> Self {
            Self::start_slow(answers, None)
        }

        /// Like [`Self::start`], answering the path of `slow` only after its delay (so
        /// concurrent clients overlap on it).
        pub fn start_slow(
            answers: HashMap<String, serde_json::Value>,
            slow: Option<(&str, Duration)>,
        ) -> Self {
            let slow = slow.map(|(path, delay)| (path.to_owned(), delay));
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            let paths = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&paths);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let (answers, slow) = (answers.clone(), slow.clone());
                    let seen = Arc::clone(&seen);
                    std::thread::spawn(move || {
                        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                            // The rest of the head (GET requests have no body).
                            loop {
                                let mut h = String::new();
                                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                    break;
                                }
                            }
                            seen.lock().expect("lock").push(path.clone());
                            if let Some((_, delay)) = slow.as_ref().filter(|(p, _)| *p == path) {
                                std::thread::sleep(*delay);
                            }
                            let (status, body) = match answers.get(&path) {
                                Some(v) => ("200 OK", v.to_string()),
                                None => ("404 Not Found", json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound", "message": "not found"}).to_string()),
                            };
                            let reply = format!(
                                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if stream.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            Self { url, paths }
        }

        /// The paths asked since the last call, in order.
        pub fn take_paths(&self) -> Vec<String> {
            std::mem::take(&mut *self.paths.lock().expect("lock"))
        }

        /// A client configuration naming the server.
        pub fn config(&self) -> kube::Config {
            kube::Config::new(self.url.parse().expect("url"))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Discovery through the disk cache against a [`FakeServer`], asserting which requests a
    //! connection makes.
    use std::collections::HashMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::test_server::FakeServer;
    use super::*;
    use crate::remote::resources::test_support::entry;

    fn group_json(name: &str, versions: &[&str]) -> serde_json::Value {
        json!({
            "name": name,
            "versions": versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect::<Vec<_>>(),
            "preferredVersion": {"groupVersion": format!("{name}/{}", versions[0]), "version": versions[0]},
        })
    }

    fn resource_list(gv: &str, resources: &[(&str, &str, bool)]) -> serde_json::Value {
        json!({
            "kind": "APIResourceList",
            "groupVersion": gv,
            "resources": resources.iter().map(|(name, kind, namespaced)| json!({
                "name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list", "create", "patch", "delete"],
            })).collect::<Vec<_>>(),
        })
    }

    /// A cache entry as an earlier run would have written it: core + apps + `old.example.com`.
    fn cached_entry(fetched_at: u64) -> CachedDiscovery {
        let gv = |v: &str| GroupVersions {
            versions: vec![v.to_owned()],
            preferred: Some(v.to_owned()),
        };
        CachedDiscovery {
            format: disk_cache::FORMAT,
            fetched_at,
            server_url: String::new(),
            server_version: "v1.20.2".into(),
            groups: [
                (String::new(), gv("v1")),
                ("apps".to_owned(), gv("v1")),
                ("old.example.com".to_owned(), gv("v1")),
            ]
            .into_iter()
            .collect(),
            index: ApiIndex::from_entries(
                vec![
                    entry("", "v1", "ConfigMap", "configmaps", true),
                    entry("apps", "v1", "Deployment", "deployments", true),
                    entry("old.example.com", "v1", "Old", "olds", true),
                ],
                [("", "v1"), ("apps", "v1"), ("old.example.com", "v1")]
                    .into_iter()
                    .map(|(g, v)| (g.to_owned(), v.to_owned()))
                    .collect(),
            ),
        }
    }

    fn server(groups: &[serde_json::Value], more: &[(&str, serde_json::Value)]) -> FakeServer {
        let mut answers: HashMap<String, serde_json::Value> = HashMap::new();
        answers.insert(
            "/version".into(),
            json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2", "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}),
        );
        answers.insert("/apis".into(), json!({"kind": "APIGroupList", "groups": groups}));
        for (path, body) in more {
            answers.insert((*path).to_owned(), body.clone());
        }
        FakeServer::start(answers)
    }

    fn options(dir: &Path) -> DiscoveryCacheOptions {
        DiscoveryCacheOptions {
            dir: dir.to_path_buf(),
            ttl: disk_cache::DEFAULT_TTL,
        }
    }

    fn connect(server: &FakeServer, options: &DiscoveryCacheOptions) -> Cluster {
        Cluster::connect_cached(
            new_runtime().expect("runtime"),
            server.config(),
            String::new(),
            options,
        )
        .expect("connect")
    }

    #[test]
    fn a_matching_cache_costs_two_requests_and_a_new_group_only_its_own_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = options(dir.path());
        // The server: `old.example.com` is gone, `new.example.com` (a CRD applied elsewhere)
        // is new.
        let server = server(
            &[
                group_json("apps", &["v1"]),
                group_json("new.example.com", &["v1"]),
            ],
            &[(
                "/apis/new.example.com/v1",
                resource_list("new.example.com/v1", &[("widgets", "Widget", false)]),
            )],
        );
        let path = options.file_for(&server.config().cluster_url.to_string(), &[]);
        disk_cache::store(&path, &cached_entry(disk_cache::unix_secs(SystemTime::now()))).expect("store");

        let cluster = connect(&server, &options);
        let mut paths = server.take_paths();
        paths.sort();
        assert_eq!(paths, ["/apis", "/apis/new.example.com/v1", "/version"]);
        let index = cluster.index().current();
        assert_eq!(index.is_namespaced("new.example.com", "Widget"), Some(false));
        assert_eq!(index.is_namespaced("old.example.com", "Old"), None);
        assert!(
            cluster
                .api_versions
                .contains(&"new.example.com/v1/Widget".to_owned())
        );
        drop(cluster);

        // The file now matches the server: the next connection makes only the two requests.
        let cluster = connect(&server, &options);
        let mut paths = server.take_paths();
        paths.sort();
        assert_eq!(paths, ["/apis", "/version"]);
        assert_eq!(
            cluster.index().current().is_namespaced("apps", "Deployment"),
            Some(true)
        );
    }

    #[test]
    fn a_kind_missing_from_the_cache_reads_its_group_once_per_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = options(dir.path());
        // `apps` got a new kind since the cache was written (same group and version: `/apis`
        // cannot tell).
        let server = server(
            &[
                group_json("apps", &["v1"]),
                group_json("old.example.com", &["v1"]),
            ],
            &[(
                "/apis/apps/v1",
                resource_list(
                    "apps/v1",
                    &[("deployments", "Deployment", true), ("gizmos", "Gizmo", true)],
                ),
            )],
        );
        let path = options.file_for(&server.config().cluster_url.to_string(), &[]);
        disk_cache::store(&path, &cached_entry(disk_cache::unix_secs(SystemTime::now()))).expect("store");
        let cluster = connect(&server, &options);
        server.take_paths();

        assert_eq!(cluster.is_namespaced("apps/v1", "Gizmo"), Some(true));
        let reads = server.take_paths();
        assert!(reads.contains(&"/apis/apps/v1".to_owned()), "{reads:?}");
        // Known kinds, a second unknown kind of the same group, the core group: no request.
        assert_eq!(cluster.is_namespaced("apps/v1", "Deployment"), Some(true));
        assert_eq!(cluster.is_namespaced("apps/v1", "Nothing"), None);
        assert_eq!(cluster.is_namespaced("v1", "Nothing"), None);
        assert_eq!(server.take_paths(), Vec::<String>::new());
        drop(cluster);

        // The learned kind was written back.
        let cached = disk_cache::load(&path, SystemTime::now(), options.ttl).expect("cache");
        assert_eq!(cached.index.is_namespaced("apps", "Gizmo"), Some(true));
    }

    #[test]
    fn a_fresh_discovery_reads_no_group_again_for_an_unknown_kind() {
        let server = server(&[], &[]);
        let mut cluster = Cluster::from_config_discovered(
            server.config(),
            "",
            Discovered {
                server_version: "v1.20.2".into(),
                api_versions: Vec::new(),
                index: SharedApiIndex::new(cached_entry(0).index),
            },
        )
        .expect("cluster");
        assert_eq!(cluster.is_namespaced("apps/v1", "Gizmo"), None);
        // A disk entry from a discovery of this run (not from the file) trusts it too.
        cluster.disk = Some(DiskEntry {
            path: PathBuf::from("/nonexistent/discovery.json"),
            server_url: String::new(),
            fetched_at: 0,
            groups: BTreeMap::new(),
            saved: Mutex::new(Some(cluster.index.current())),
            from_cache: false,
            relearned: Mutex::default(),
        });
        assert_eq!(cluster.is_namespaced("apps/v1", "Gizmo"), None);
        assert_eq!(server.take_paths(), Vec::<String>::new());
    }

    #[test]
    fn an_expired_or_corrupt_cache_or_another_server_version_means_a_full_discovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = options(dir.path());
        let server = server(
            &[group_json("apps", &["v1"])],
            &[
                (
                    "/api",
                    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
                ),
                (
                    "/api/v1",
                    resource_list("v1", &[("configmaps", "ConfigMap", true)]),
                ),
                (
                    "/apis/apps/v1",
                    resource_list("apps/v1", &[("deployments", "Deployment", true)]),
                ),
            ],
        );
        let path = options.file_for(&server.config().cluster_url.to_string(), &[]);
        let now = disk_cache::unix_secs(SystemTime::now());
        let expired = cached_entry(now - disk_cache::DEFAULT_TTL.as_secs() - 1);
        let other_version = CachedDiscovery {
            server_version: "v1.19.0".into(),
            ..cached_entry(now)
        };
        fs_err::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        for (what, content) in [
            ("expired", serde_json::to_vec(&expired).expect("json")),
            ("other version", serde_json::to_vec(&other_version).expect("json")),
            ("corrupt", b"{\"format\": 1, \"groups\": [".to_vec()),
        ] {
            fs_err::write(&path, content).expect("write");
            let cluster = connect(&server, &options);
            let paths = server.take_paths();
            assert!(paths.contains(&"/api/v1".to_owned()), "{what}: {paths:?}");
            assert_eq!(
                cluster.index().current().is_namespaced("", "ConfigMap"),
                Some(true),
                "{what}"
            );
            assert_eq!(
                cluster.index().current().is_namespaced("old.example.com", "Old"),
                None,
                "{what}"
            );
            drop(cluster);
            // Rewritten with what the server serves now.
            let cached = disk_cache::load(&path, SystemTime::now(), options.ttl).expect(what);
            assert_eq!(
                cached.index.is_namespaced("apps", "Deployment"),
                Some(true),
                "{what}"
            );
            assert_eq!(cached.server_version, "v1.20.2", "{what}");
        }
    }

    #[test]
    fn a_resource_forgotten_after_a_404_is_written_back_without_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = options(dir.path());
        let server = server(
            &[
                group_json("apps", &["v1"]),
                group_json("old.example.com", &["v1"]),
            ],
            &[],
        );
        let path = options.file_for(&server.config().cluster_url.to_string(), &[]);
        disk_cache::store(&path, &cached_entry(disk_cache::unix_secs(SystemTime::now()))).expect("store");
        let cluster = connect(&server, &options);
        let old = cluster
            .index()
            .current()
            .entries()
            .iter()
            .find(|e| e.resource.group == "old.example.com")
            .expect("old")
            .resource
            .clone();
        cluster.index().forget(&[old]);
        drop(cluster);
        let cached = disk_cache::load(&path, SystemTime::now(), options.ttl).expect("cache");
        assert_eq!(cached.index.is_namespaced("old.example.com", "Old"), None);
        assert_eq!(cached.index.is_namespaced("apps", "Deployment"), Some(true));
    }
}
