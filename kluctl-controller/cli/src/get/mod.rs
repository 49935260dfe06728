//! `kluctl get sources|deployments`, `kluctl events`, `kluctl trace`, `kluctl tree`: read-only
//! views of the source-controller's and kluctl-controller's objects, as Flux's `flux get`,
//! `flux events`, `flux trace` and `flux tree` show them.
//!
//! ```text
//! flags ─► connect (kubeconfig, context, namespace or all)
//!   get sources / deployments ─► list (or watch) ─► StatusRow ─► table      (table: pure)
//!   events                    ─► events.k8s.io Events of our kinds ─► sorted table
//!   trace                     ─► object ─► discriminator label ─► KluctlDeployment ─► source
//!   tree                      ─► KluctlDeployment ─► discriminator ─► every served kind
//!                                 listed by label ─► namespace / kind / name tree
//! ```

mod deployments;
mod events;
mod sources;
pub mod table;
mod trace;
mod tree;

use anyhow::Context as _;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use kube::runtime::watcher;

use crate::flags::get::{
    ClusterFlags, EventsCmd, GetCmd, GetCommand, ListFlags, TraceCmd, TreeCmd, TreeCommand,
};
use crate::gitops::load_config;
use crate::report::Hinted;
use table::StatusRow;

/// Runs `kluctl get <sources|deployments>`.
///
/// # Errors
/// A failed connection or list; with `-w`, a watch that fails.
pub fn run_get(cmd: &GetCmd) -> anyhow::Result<()> {
    block_on(async {
        match &cmd.command {
            GetCommand::Sources(c) => sources::run(c).await,
            GetCommand::Deployments(c) => deployments::run(c).await,
        }
    })
}

/// Runs `kluctl events`.
///
/// # Errors
/// An unknown `--for` kind, a failed connection or list; with `-w`, a watch that fails.
pub fn run_events(cmd: &EventsCmd) -> anyhow::Result<()> {
    block_on(events::run(cmd))
}

/// Runs `kluctl trace <kind> <name>`.
///
/// # Errors
/// An unknown kind, a missing object, an object no KluctlDeployment manages.
pub fn run_trace(cmd: &TraceCmd) -> anyhow::Result<()> {
    block_on(trace::run(cmd))
}

/// Runs `kluctl tree deployment <name>`.
///
/// # Errors
/// A missing KluctlDeployment, one that deployed nothing yet, a failed discovery or list.
pub fn run_tree(cmd: &TreeCmd) -> anyhow::Result<()> {
    match &cmd.command {
        TreeCommand::Deployment(c) => block_on(tree::run(c)),
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the client runtime")?
        .block_on(f)
}

/// A client and where to look: one namespace, or all of them (`None`).
pub(crate) struct Connection {
    pub client: kube::Client,
    pub namespace: Option<String>,
}

impl Connection {
    /// The namespaced or cluster-wide API of `K`.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        }
    }
}

/// Connects for `-n`/`-A`: the namespace is `-n`, else the context's, else `default`; `-A`
/// looks everywhere.
pub(crate) async fn connect_list(flags: &ListFlags) -> anyhow::Result<Connection> {
    let (client, default_ns) = connect(&flags.cluster).await?;
    let namespace = if flags.all_namespaces {
        None
    } else {
        Some(flags.namespace.clone().unwrap_or(default_ns))
    };
    Ok(Connection { client, namespace })
}

/// A client for `--kubeconfig`/`--context` and the context's namespace.
pub(crate) async fn connect(flags: &ClusterFlags) -> anyhow::Result<(kube::Client, String)> {
    let config = load_config(flags.kubeconfig.as_deref(), flags.context.as_deref())
        .await
        .map_err(|e| Hinted::new(e, "pass --kubeconfig or --context to choose the cluster"))?;
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).context("failed to create a Kubernetes client")?;
    Ok((client, namespace))
}

/// One step of a `-w` watch of a status table.
pub(crate) enum Change {
    /// An object of the (re-)listing that starts a watch.
    Listed(StatusRow),
    /// The listing is complete.
    ListDone,
    /// An object was added or changed.
    Changed(StatusRow),
    /// Nothing to show (a deletion, the start of a listing).
    Nothing,
}

/// The changes of the objects `api` sees, as rows.
pub(crate) fn changes<K>(
    api: kube::Api<K>,
    to_row: impl Fn(&K) -> StatusRow + Send + 'static,
) -> BoxStream<'static, anyhow::Result<Change>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    watcher(api, watcher::Config::default())
        .map(move |event| {
            Ok(match event.context("failed to watch")? {
                watcher::Event::InitApply(o) => Change::Listed(to_row(&o)),
                watcher::Event::InitDone => Change::ListDone,
                watcher::Event::Apply(o) => Change::Changed(to_row(&o)),
                watcher::Event::Init | watcher::Event::Delete(_) => Change::Nothing,
            })
        })
        .boxed()
}

/// `-w`: the table once every stream has listed its objects, then one line per change, until
/// interrupted (or a watch fails).
pub(crate) async fn print_watch(
    streams: Vec<BoxStream<'static, anyhow::Result<Change>>>,
    all_namespaces: bool,
) -> anyhow::Result<()> {
    let total = streams.len();
    let mut merged = futures::stream::select_all(streams);
    let headers = table::status_headers(all_namespaces);
    let mut listed = Vec::new();
    let mut done = 0;
    // The column widths once the table is printed; later lines keep them.
    let mut widths: Option<Vec<usize>> = None;
    while let Some(change) = merged.try_next().await? {
        let row = match change {
            Change::ListDone => {
                done += 1;
                if done == total && widths.is_none() {
                    let cells = table::status_cell_rows(&listed, all_namespaces, Timestamp::now());
                    print!("{}", table::render(&headers, &cells));
                    widths = Some(table::widths(&headers, &cells));
                }
                continue;
            }
            Change::Nothing => continue,
            // A re-listing after the watch restarted shows its objects as changes.
            Change::Listed(row) | Change::Changed(row) => row,
        };
        match &widths {
            None => listed.push(row),
            Some(w) => println!(
                "{}",
                table::render_row(w, &table::status_cells(&row, all_namespaces, Timestamp::now()))
            ),
        }
    }
    Ok(())
}
