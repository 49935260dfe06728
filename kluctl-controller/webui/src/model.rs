//! The server's picture of the cluster: every KluctlDeployment and every stored result summary,
//! kept current by two watches ([`crate::watch`]) and shared by all browsers. A browser never
//! causes an apiserver request by looking: the overview, the deployment pages and the live
//! updates are all served from here; only opening one result reads its Secret.
//!
//! Every change is announced on a broadcast channel as a [`Change`] naming what changed; each
//! browser's event stream reads the current value from the model and renders it for its role.
//! A stream that falls behind (more than [`CHANGE_BUFFER`] changes unread) is ended; the browser
//! reconnects and starts from a new snapshot.

use std::collections::BTreeMap;
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
    /// A command or validate result was stored or deleted (by id).
    Result(String),
    /// A watch started over (after an error or at start): everything may have changed.
    Resync,
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
    /// Slims `kd` and keeps its view and JSON.
    pub fn of(kd: KluctlDeployment) -> Self {
        let kd = slim(kd);
        Self {
            view: DeploymentView::of(&kd),
            object: serde_json::to_string(&kd).unwrap_or_default().into_boxed_str(),
        }
    }

    /// Its key.
    pub fn key(&self) -> ObjKey {
        ObjKey {
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
    results: BTreeMap<String, ResultView>,
    deployments_synced: bool,
    results_synced: bool,
    /// The snapshot as JSON, made once for every browser asking until the next change.
    snapshot: Option<Arc<str>>,
}

/// The shared picture; cheap to clone.
#[derive(Clone)]
pub struct Model {
    state: Arc<RwLock<State>>,
    changes: broadcast::Sender<Change>,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

/// The overview: every deployment and every result, slim. Borrowed from the model while it is
/// written as JSON, so a snapshot copies nothing.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    /// Both watches have listed once.
    synced: bool,
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
    /// An empty model.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        Self {
            state: Arc::default(),
            changes,
        }
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

    /// A KluctlDeployment was added or changed.
    pub fn put_deployment(&self, kd: KluctlDeployment) {
        let stored = Stored::of(kd);
        let key = stored.key();
        self.write().deployments.insert(key.clone(), Arc::new(stored));
        self.announce(Change::Deployment(key));
    }

    /// A KluctlDeployment was deleted.
    pub fn remove_deployment(&self, key: &ObjKey) {
        self.write().deployments.remove(key);
        self.announce(Change::Deployment(key.clone()));
    }

    /// The deployment watch listed anew: replace all deployments.
    pub fn reset_deployments(&self, all: Vec<Stored>) {
        {
            let mut s = self.write();
            s.deployments = all.into_iter().map(|d| (d.key(), Arc::new(d))).collect();
            s.deployments_synced = true;
        }
        self.announce(Change::Resync);
    }

    /// A command or validate result was stored.
    pub fn put_result(&self, view: ResultView) {
        let id = view.id.clone();
        self.write().results.insert(id.clone(), view);
        self.announce(Change::Result(id));
    }

    /// A result Secret was deleted (either kind; the id is unique).
    pub fn remove_result(&self, id: &str) {
        if self.write().results.remove(id).is_some() {
            self.announce(Change::Result(id.to_owned()));
        }
    }

    /// The result watch listed anew: replace all results.
    pub fn reset_results(&self, results: Vec<ResultView>) {
        {
            let mut s = self.write();
            s.results = results.into_iter().map(|r| (r.id.clone(), r)).collect();
            s.results_synced = true;
        }
        self.announce(Change::Resync);
    }

    /// One KluctlDeployment.
    pub fn deployment(&self, key: &ObjKey) -> Option<Arc<Stored>> {
        self.read().deployments.get(key).cloned()
    }

    /// The view of a stored result by id, whichever kind it is.
    pub fn result_view(&self, id: &str) -> Option<ResultView> {
        self.read().results.get(id).cloned()
    }

    /// Everything, for a new browser, as JSON: `{synced, deployments, results}` with the results
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
            synced: s.deployments_synced && s.results_synced,
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

    #[test]
    fn every_change_is_announced_after_the_model_holds_it() {
        let model = Model::new();
        let mut rx = model.subscribe();
        model.put_deployment(kd("a", "one"));
        let key = ObjKey {
            namespace: "a".to_owned(),
            name: "one".to_owned(),
        };
        assert_eq!(rx.try_recv().ok(), Some(Change::Deployment(key.clone())));
        assert!(model.deployment(&key).is_some());
        model.put_result(ResultView::command(&command("c1", "2026-01-01T00:00:00Z", None)));
        assert_eq!(rx.try_recv().ok(), Some(Change::Result("c1".to_owned())));
        model.remove_result("c1");
        assert_eq!(rx.try_recv().ok(), Some(Change::Result("c1".to_owned())));
        assert!(model.result_view("c1").is_none());
        model.remove_deployment(&key);
        assert_eq!(rx.try_recv().ok(), Some(Change::Deployment(key.clone())));
        assert!(model.deployment(&key).is_none());
    }

    #[test]
    fn a_deployment_page_lists_its_own_results_newest_first_and_not_others() {
        let model = Model::new();
        let one = kd("a", "one");
        model.put_deployment(one.clone());
        model.put_result(ResultView::command(&command(
            "old",
            "2026-01-01T00:00:00Z",
            Some(("a", "one")),
        )));
        model.put_result(ResultView::command(&command(
            "new",
            "2026-01-02T00:00:00Z",
            Some(("a", "one")),
        )));
        model.put_result(ResultView::command(&command(
            "other",
            "2026-01-03T00:00:00Z",
            Some(("a", "two")),
        )));
        let ids: Vec<String> = model
            .results_of(&DeploymentView::of(&one))
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["new", "old"]);
        let snapshot: serde_json::Value =
            serde_json::from_str(&model.snapshot_json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(snapshot["synced"], false, "no watch has listed yet");
        assert_eq!(snapshot["deployments"][0]["name"], "one");
        let ids: Vec<&str> = snapshot["results"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ids, ["other", "new", "old"]);
    }
}
