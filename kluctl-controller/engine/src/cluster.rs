//! The target cluster as the render sees it: which kubeconfig context, the server version and
//! API resources (for Helm's capabilities and the namespace fix-up), and read access for the
//! `clusterConfigMap` / `clusterSecret` / `clusterObject` vars sources.
//!
//! The engine is synchronous (templating and rendering run on worker threads), kube's client is
//! async: this type owns a small runtime and blocks on it, so it must not be called from inside
//! an async task (the controller calls the engine from a blocking thread).

use std::collections::BTreeMap;
use std::path::Path;

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
    /// and `context` (default: the current context), and runs API discovery.
    ///
    /// # Errors
    /// [`ClusterError`] when the configuration is unusable or the server does not answer.
    pub fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Self, ClusterError> {
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
        Self::connect_with(runtime, config, used_context)
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
        let api = |action| {
            move |e: kube::Error| ClusterError::Api {
                action,
                message: e.to_string(),
            }
        };
        let client = Self::client_on(&runtime, config)?;
        let (version, discovery) = runtime.block_on(async {
            let version = client
                .apiserver_version()
                .await
                .map_err(api("read the server version"))?;
            let discovery = discover(&client).await.map_err(api("discover API resources"))?;
            Ok::<_, ClusterError>((version, discovery))
        })?;
        let mut api_versions = Vec::new();
        for group in discovery.groups() {
            for version in group.versions() {
                let gv = if group.name().is_empty() {
                    version.to_owned()
                } else {
                    format!("{}/{version}", group.name())
                };
                api_versions.push(gv.clone());
                for (ar, _) in group.versioned_resources(version) {
                    if !ar.plural.contains('/') {
                        api_versions.push(format!("{gv}/{}", ar.kind));
                    }
                }
            }
        }
        api_versions.sort();
        api_versions.dedup();
        Ok(Self {
            runtime,
            client,
            context: used_context,
            server_version: version.git_version,
            api_versions,
            index: SharedApiIndex::new(ApiIndex::from_discovery(&discovery)),
        })
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
        let index = self.index.current();
        let entry = index.resolve(&reference).ok_or_else(|| {
            format!("failed to find resource {api_version}/{kind}: not served by the cluster")
        })?;
        Ok(api_for(&self.client, entry, namespace))
    }
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
        self.index.current().is_namespaced(group, kind)
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
