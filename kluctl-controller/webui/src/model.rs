//! The server's picture of the cluster: every KluctlDeployment and every stored result summary,
//! kept current by two watches ([`crate::watch`]) and shared by all browsers. A browser never
//! causes an apiserver request by looking: the overview, the deployment pages and the live
//! updates are all served from here; only opening one result reads its Secret.
//!
//! Every change is announced on a broadcast channel as a [`Change`] naming what changed; each
//! browser's event stream reads the current value from the model and renders it for its role.
//! A stream that falls behind (more than [`CHANGE_BUFFER`] changes unread) is ended; the browser
//! reconnects and starts from a new snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::broadcast;

use gitops_api::kluctl::v1beta1::KluctlDeployment;

use crate::view::{DeploymentView, ObjKey, ResultView};

/// Changes a browser stream may leave unread before it is ended (and reconnects).
pub const CHANGE_BUFFER: usize = 4096;

/// What changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A KluctlDeployment was added, changed or deleted.
    Deployment(ObjKey),
    /// A command or validate result was stored or deleted.
    Result(ResultKey),
    /// A watch started over (after an error or at start): everything may have changed.
    Resync,
}

/// A stored result: the cluster whose store holds it, and its id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResultKey {
    /// The cluster.
    pub cluster: String,
    /// The result id.
    pub id: String,
}

impl ResultKey {
    /// The key of `view`.
    pub fn of(view: &ResultView) -> Self {
        Self {
            cluster: view.cluster.clone(),
            id: view.id.clone(),
        }
    }
}

/// One KluctlDeployment as the model keeps it: its overview view and the object as compact JSON
/// (without managed fields). 1,000 deserialized objects with their statuses cost several times
/// their JSON; only the deployment page reads the object, and it sends it as JSON anyway.
#[derive(Debug)]
pub struct Stored {
    /// The overview's view.
    pub view: DeploymentView,
    /// The slimmed object, compact JSON.
    pub object: Box<str>,
}

impl Stored {
    /// Slims `kd` of `cluster` and keeps its view and JSON.
    pub fn of(cluster: &str, kd: KluctlDeployment) -> Self {
        let kd = slim(kd);
        let mut view = DeploymentView::of(&kd);
        cluster.clone_into(&mut view.cluster);
        Self {
            view,
            object: serde_json::to_string(&kd).unwrap_or_default().into_boxed_str(),
        }
    }

    /// Its key.
    pub fn key(&self) -> ObjKey {
        ObjKey {
            cluster: self.view.cluster.clone(),
            namespace: self.view.namespace.clone(),
            name: self.view.name.clone(),
        }
    }
}

#[derive(Default)]
struct State {
    deployments: BTreeMap<ObjKey, Arc<Stored>>,
    /// Stored results by id, only their slim views: 5,000 full summaries would cost about ten
    /// times as much memory, and nothing but the views is read.
    results: BTreeMap<ResultKey, ResultView>,
    /// The clusters shown, in the order given.
    clusters: Vec<String>,
    /// Which watches (cluster, `deployments` / `results`) have listed once.
    synced: BTreeSet<(String, &'static str)>,
    /// The snapshot as JSON, made once for every browser asking until the next change.
    snapshot: Option<Arc<str>>,
}

/// The shared picture; cheap to clone.
#[derive(Clone)]
pub struct Model {
    state: Arc<RwLock<State>>,
    changes: broadcast::Sender<Change>,
}

/// The overview: every deployment and every result, slim. Borrowed from the model while it is
/// written as JSON, so a snapshot copies nothing.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    /// Every watch has listed once.
    synced: bool,
    /// The clusters shown (kube context names), in the order given.
    clusters: &'a [String],
    /// Every KluctlDeployment.
    deployments: Vec<&'a DeploymentView>,
    /// Every stored result, newest first.
    results: Vec<&'a ResultView>,
}

fn newest_first<R: std::borrow::Borrow<ResultView>>(results: &mut [R]) {
    results.sort_by(|a, b| {
        let (a, b) = (a.borrow(), b.borrow());
        b.start_time.cmp(&a.start_time).then_with(|| b.id.cmp(&a.id))
    });
}

/// `kd` without what no page shows: managed fields and `kubectl apply`'s copy of the object
/// (together often more than the rest of the object).
pub fn slim(mut kd: KluctlDeployment) -> KluctlDeployment {
    kd.metadata.managed_fields = None;
    if let Some(a) = kd.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    kd
}

impl Model {
    /// An empty model of `clusters` (their names, in the order the overview shows them).
    pub fn new(clusters: Vec<String>) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let state = State {
            clusters,
            ..State::default()
        };
        Self {
            state: Arc::new(RwLock::new(state)),
            changes,
        }
    }

    /// The clusters shown.
    pub fn clusters(&self) -> Vec<String> {
        self.read().clusters.clone()
    }

    /// The change feed; subscribe before taking a snapshot so nothing falls between.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state for a change: the cached snapshot is dropped.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        let mut s = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.snapshot = None;
        s
    }

    fn announce(&self, change: Change) {
        // No receiver is fine: nobody is looking.
        let _ = self.changes.send(change);
    }

    /// A KluctlDeployment of `cluster` was added or changed.
    pub fn put_deployment(&self, cluster: &str, kd: KluctlDeployment) {
        let stored = Stored::of(cluster, kd);
        let key = stored.key();
        self.write().deployments.insert(key.clone(), Arc::new(stored));
        self.announce(Change::Deployment(key));
    }

    /// A KluctlDeployment was deleted.
    pub fn remove_deployment(&self, key: &ObjKey) {
        self.write().deployments.remove(key);
        self.announce(Change::Deployment(key.clone()));
    }

    /// The deployment watch of `cluster` listed anew: replace all its deployments.
    pub fn reset_deployments(&self, cluster: &str, all: Vec<Stored>) {
        {
            let mut s = self.write();
            s.deployments.retain(|k, _| k.cluster != cluster);
            s.deployments
                .extend(all.into_iter().map(|d| (d.key(), Arc::new(d))));
            s.synced.insert((cluster.to_owned(), "deployments"));
        }
        self.announce(Change::Resync);
    }

    /// A command or validate result was stored (its view names its cluster).
    pub fn put_result(&self, view: ResultView) {
        let key = ResultKey::of(&view);
        self.write().results.insert(key.clone(), view);
        self.announce(Change::Result(key));
    }

    /// A result Secret was deleted (either kind; the id is unique in its cluster).
    pub fn remove_result(&self, key: &ResultKey) {
        if self.write().results.remove(key).is_some() {
            self.announce(Change::Result(key.clone()));
        }
    }

    /// The result watch of `cluster` listed anew: replace all its results.
    pub fn reset_results(&self, cluster: &str, results: Vec<ResultView>) {
        {
            let mut s = self.write();
            s.results.retain(|k, _| k.cluster != cluster);
            s.results
                .extend(results.into_iter().map(|r| (ResultKey::of(&r), r)));
            s.synced.insert((cluster.to_owned(), "results"));
        }
        self.announce(Change::Resync);
    }

    /// One KluctlDeployment.
    pub fn deployment(&self, key: &ObjKey) -> Option<Arc<Stored>> {
        self.read().deployments.get(key).cloned()
    }

    /// The view of a stored result, whichever kind it is.
    pub fn result_view(&self, key: &ResultKey) -> Option<ResultView> {
        self.read().results.get(key).cloned()
    }

    /// Everything, for a new browser, as JSON: `{synced, clusters, deployments, results}` with the results
    /// newest first. Made once per change, whatever the number of browsers asking.
    pub fn snapshot_json(&self) -> Arc<str> {
        if let Some(json) = self.read().snapshot.clone() {
            return json;
        }
        let mut s = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(json) = s.snapshot.clone() {
            return json;
        }
        let mut results: Vec<&ResultView> = s.results.values().collect();
        newest_first(&mut results);
        let snapshot = Snapshot {
            synced: s.synced.len() == 2 * s.clusters.len(),
            clusters: &s.clusters,
            deployments: s.deployments.values().map(|d| &d.view).collect(),
            results,
        };
        let json: Arc<str> = serde_json::to_string(&snapshot)
            .unwrap_or_else(|_| "null".to_owned())
            .into();
        s.snapshot = Some(json.clone());
        json
    }

    /// The results of one KluctlDeployment's target: those it ran, and those of the same project
    /// and target key run by anyone else (the CLI), newest first.
    pub fn results_of(&self, kd: &DeploymentView) -> Vec<ResultView> {
        let own = format!("{}/{}", kd.namespace, kd.name);
        let (project, target) = (kd.project.as_ref(), kd.target_key.as_ref());
        let s = self.read();
        let mut results: Vec<ResultView> = s
            .results
            .values()
            .filter(|r| r.cluster == kd.cluster)
            .filter(|r| {
                r.deployment.as_deref() == Some(own.as_str())
                    || (r.deployment.is_none()
                        && Some(&r.project) == project
                        && Some(&r.target_key) == target)
            })
            .cloned()
            .collect();
        newest_first(&mut results);
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::kluctl::results::{CommandResultSummary, KluctlDeploymentInfo};

    fn kd(ns: &str, name: &str) -> KluctlDeployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"interval": "5m", "source": {"git": {"url": "https://example.invalid/r.git"}}},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn command(id: &str, start: &str, deployment: Option<(&str, &str)>) -> CommandResultSummary {
        let mut c = CommandResultSummary {
            id: id.to_owned(),
            ..Default::default()
        };
        c.command_info.command = "deploy".to_owned();
        c.command_info.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            start.parse().unwrap_or_default(),
        ));
        c.kluctl_deployment = deployment.map(|(ns, name)| KluctlDeploymentInfo {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            ..Default::default()
        });
        c
    }

    fn result(cluster: &str, id: &str, start: &str, deployment: Option<(&str, &str)>) -> ResultView {
        let mut v = ResultView::command(&command(id, start, deployment));
        v.cluster = cluster.to_owned();
        v
    }

    fn key(cluster: &str, ns: &str, name: &str) -> ObjKey {
        ObjKey {
            cluster: cluster.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        }
    }

    fn rkey(cluster: &str, id: &str) -> ResultKey {
        ResultKey {
            cluster: cluster.to_owned(),
            id: id.to_owned(),
        }
    }

    #[test]
    fn every_change_is_announced_after_the_model_holds_it() {
        let model = Model::new(vec!["c".to_owned()]);
        let mut rx = model.subscribe();
        model.put_deployment("c", kd("a", "one"));
        let key = key("c", "a", "one");
        assert_eq!(rx.try_recv().ok(), Some(Change::Deployment(key.clone())));
        assert!(model.deployment(&key).is_some());
        model.put_result(result("c", "c1", "2026-01-01T00:00:00Z", None));
        assert_eq!(rx.try_recv().ok(), Some(Change::Result(rkey("c", "c1"))));
        model.remove_result(&rkey("c", "c1"));
        assert_eq!(rx.try_recv().ok(), Some(Change::Result(rkey("c", "c1"))));
        assert!(model.result_view(&rkey("c", "c1")).is_none());
        model.remove_deployment(&key);
        assert_eq!(rx.try_recv().ok(), Some(Change::Deployment(key.clone())));
        assert!(model.deployment(&key).is_none());
    }

    #[test]
    fn a_deployment_page_lists_its_own_results_newest_first_and_not_others() {
        let model = Model::new(vec!["c".to_owned(), "d".to_owned()]);
        model.put_deployment("c", kd("a", "one"));
        model.put_result(result("c", "old", "2026-01-01T00:00:00Z", Some(("a", "one"))));
        model.put_result(result("c", "new", "2026-01-02T00:00:00Z", Some(("a", "one"))));
        model.put_result(result("c", "other", "2026-01-03T00:00:00Z", Some(("a", "two"))));
        // The same namespace and name in another cluster is another deployment.
        model.put_result(result(
            "d",
            "elsewhere",
            "2026-01-04T00:00:00Z",
            Some(("a", "one")),
        ));
        let one = model
            .deployment(&key("c", "a", "one"))
            .unwrap_or_else(|| panic!("deployment c/a/one"));
        let ids: Vec<String> = model.results_of(&one.view).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["new", "old"]);
        let snapshot: serde_json::Value =
            serde_json::from_str(&model.snapshot_json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(snapshot["synced"], false, "no watch has listed yet");
        assert_eq!(snapshot["clusters"], serde_json::json!(["c", "d"]));
        assert_eq!(snapshot["deployments"][0]["name"], "one");
        assert_eq!(snapshot["deployments"][0]["cluster"], "c");
        let ids: Vec<&str> = snapshot["results"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ids, ["elsewhere", "other", "new", "old"]);
    }

    #[test]
    fn a_clusters_listing_replaces_only_its_own_objects_and_synced_waits_for_every_watch() {
        let model = Model::new(vec!["c".to_owned(), "d".to_owned()]);
        model.put_deployment("c", kd("a", "gone"));
        model.reset_deployments("d", vec![Stored::of("d", kd("a", "one"))]);
        model.reset_results("d", vec![result("d", "r1", "2026-01-01T00:00:00Z", None)]);
        assert!(
            model.deployment(&key("c", "a", "gone")).is_some(),
            "d's listing left c alone"
        );
        model.reset_deployments("c", vec![Stored::of("c", kd("a", "one"))]);
        assert!(
            model.deployment(&key("c", "a", "gone")).is_none(),
            "c's listing replaced c's"
        );
        assert!(model.deployment(&key("d", "a", "one")).is_some());
        let synced = |m: &Model| {
            serde_json::from_str::<serde_json::Value>(&m.snapshot_json()).map(|v| v["synced"].clone())
        };
        assert_eq!(synced(&model).ok(), Some(serde_json::json!(false)));
        model.reset_results("c", Vec::new());
        assert_eq!(synced(&model).ok(), Some(serde_json::json!(true)));
        assert!(model.result_view(&rkey("d", "r1")).is_some());
    }
}
