//! Validation against the cluster: `kluctl validate` over the rendered objects, and the
//! per-object readiness wait used by deploy (`waitReadiness`).
//!
//! ```text
//! rendered objects ─► skip kluctl.io/delete (must be gone) and non-persistent hooks
//!                  ─► GET each live object (concurrently, 16 at a time)
//!                  ─► missing: "object not found" │ present: rules::validate_object
//!                  ─► ValidateResult (errors, warnings, results; ready)
//! ```
//!
//! Kinds resolve through the cluster's [`SharedApiIndex`], read anew on every lookup: when the
//! applier of the same deploy re-reads a group for a CRD it just applied, the readiness wait on
//! a custom resource of that CRD finds its kind from then on (with the discovery made at connect
//! it would wait for an unknown kind until the timeout).
//!
//! Whether a kind is expected to have a status (asked only when a live object has none) comes
//! from the cluster: a CRD's schema declaring `status`, else a `status` sub-resource in
//! discovery. Kluctl asks Go's type registry first for built-in kinds; for those the status
//! sub-resource gives the same answer. Answers are cached per group/version/kind for the life of
//! the [`ClusterValidator`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gitops_api::kluctl::v1beta1::ObjectRef;
use jiff::Timestamp;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value;

use super::hooks::HookInfo;
use super::rules::{ObjectValidation, StatusExpectation, status_map, validate_object};
use super::{DeploymentError, ValidateResult, annotation_bool, object_ref};
use crate::remote::{ApiEntry, SharedApiIndex};
use crate::result::push_unique;

/// How many live objects are read at the same time.
const CONCURRENT_GETS: usize = 16;

/// How often [`ClusterValidator::wait_ready`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How often a still-running wait is logged again.
const STILL_WAITING_LOG: Duration = Duration::from_secs(10);

/// Why an object could not be validated; the `Display` text is the message stored in the
/// result. The readiness-wait messages keep Kluctl's wording (users match on them).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Reading the live object failed (other than "not found").
    #[error("failed to get '{object}' from the cluster: {message}")]
    Get {
        /// The object.
        object: ObjectRef,
        /// The apiserver's or client's message.
        message: String,
    },
    /// Reading the CRD of a custom resource failed (deciding whether it has a status).
    #[error(
        "failed to read CustomResourceDefinition '{crd}' to check whether '{kind}' has a status: {message}"
    )]
    CrdLookup {
        /// The CRD name (`plural.group`).
        crd: String,
        /// The custom resource kind.
        kind: String,
        /// The apiserver's or client's message.
        message: String,
    },
    /// The readiness wait ran out of time.
    #[error("timed out while waiting for readiness of {object}")]
    Timeout {
        /// The object.
        object: ObjectRef,
    },
    /// The object was seen, then deleted while waiting for it.
    #[error("{object} disappeared while waiting for it to become ready")]
    Disappeared {
        /// The object.
        object: ObjectRef,
    },
}

/// A failed GET of a live object.
struct GetFailure {
    /// Forbidden or unauthorized (validate treats the object as not found).
    permission: bool,
    error: Box<ValidateError>,
}

/// How a readiness wait ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitOutcome {
    /// The object became ready in time.
    pub ready: bool,
    /// Errors to record for the object (validation errors, timeout, disappearance, GET errors).
    pub errors: Vec<DeploymentError>,
    /// Warnings of the last validation (reported when it ended ready or with errors).
    pub warnings: Vec<DeploymentError>,
}

/// Errors and warnings that are not tied to one validation (hook annotations, GET failures),
/// kept once each in first-seen order and appended after the per-object findings.
#[derive(Default)]
struct Collected {
    errors: Vec<DeploymentError>,
    warnings: Vec<DeploymentError>,
}

/// Validates live objects on one cluster; holds the client, the cluster's shared API index and
/// the cache of status expectations for one command run (or one reconcile).
pub struct ClusterValidator<'a> {
    client: &'a kube::Client,
    index: SharedApiIndex,
    expectations: Mutex<HashMap<(String, String, String), StatusExpectation>>,
}

impl std::fmt::Debug for ClusterValidator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterValidator").finish_non_exhaustive()
    }
}

impl<'a> ClusterValidator<'a> {
    /// A validator using `client` and the API resources of `index`, as they are at each lookup
    /// (pass the cluster's shared index, so kinds learned later by the apply count).
    ///
    /// ```no_run
    /// # async fn run(client: kube::Client) -> Result<(), kube::Error> {
    /// use kluctl_engine::remote::{ApiIndex, SharedApiIndex};
    /// use kluctl_engine::validate::ClusterValidator;
    /// let discovery = kube::Discovery::new(client.clone()).run().await?;
    /// let index = SharedApiIndex::new(ApiIndex::from_discovery(&discovery));
    /// let validator = ClusterValidator::new(&client, index);
    /// let rendered: Vec<serde_json::Value> = Vec::new();
    /// let result = validator.validate(&rendered, jiff::Timestamp::now()).await;
    /// assert!(result.errors.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn new(client: &'a kube::Client, index: SharedApiIndex) -> Self {
        Self {
            client,
            index,
            expectations: Mutex::new(HashMap::new()),
        }
    }

    /// `kluctl validate`: reads every rendered object from the cluster and validates it, with
    /// "not ready" findings as errors.
    ///
    /// Objects marked `kluctl.io/delete` must be gone (an error when they still exist); hooks
    /// that are deleted after running or only run on delete/rollback are skipped; a missing
    /// object is the error `object not found`. `start_time` is when the command started (Kluctl
    /// uses the project load time); `id`, `projectKey` and `targetKey` are left for the caller.
    ///
    /// # Caveats
    /// As in Kluctl, `ready` only reflects the readiness of objects that exist: a missing object
    /// adds an error but leaves `ready` alone. Callers decide success on `errors` (and
    /// `warnings` with `--warnings-as-errors`), as Kluctl does.
    pub async fn validate<'o>(
        &self,
        objects: impl IntoIterator<Item = &'o Value>,
        start_time: Timestamp,
    ) -> ValidateResult {
        let objects: Vec<(&Value, ObjectRef)> = objects
            .into_iter()
            .filter_map(|o| object_ref(o).map(|r| (o, r)))
            .collect();
        let mut refs: Vec<&ObjectRef> = objects.iter().map(|(_, r)| r).collect();
        refs.sort();
        refs.dedup();
        let fetched: Vec<(&ObjectRef, Result<Option<Value>, GetFailure>)> = futures::stream::iter(refs)
            .map(|r| async move { (r, self.get_live(r).await) })
            .buffer_unordered(CONCURRENT_GETS)
            .collect()
            .await;

        let mut collected = Collected::default();
        let mut live: HashMap<&ObjectRef, Value> = HashMap::new();
        let mut permission_errors = 0usize;
        let mut other_errors = 0usize;
        for (r, got) in fetched {
            match got {
                Ok(Some(v)) => {
                    live.insert(r, v);
                }
                Ok(None) => {}
                Err(GetFailure { permission: true, .. }) => permission_errors += 1,
                Err(GetFailure { error, .. }) => {
                    other_errors += 1;
                    push_unique(&mut collected.errors, r, error.to_string());
                }
            }
        }
        // Kluctl only mentions permission problems when some other read failed as well.
        if permission_errors != 0 && other_errors != 0 {
            push_unique(
                &mut collected.warnings,
                &ObjectRef::default(),
                "at least one permission error was encountered while gathering known objects. This might result in orphan object detection and diffs to not work properly".to_owned(),
            );
        }

        let mut result = ValidateResult {
            start_time: Some(Time(start_time)),
            ready: true,
            ..ValidateResult::default()
        };
        for (obj, r) in &objects {
            if annotation_bool(obj, "kluctl.io/delete") == Some(true) {
                if live.contains_key(r) {
                    push_unique(
                        &mut collected.errors,
                        r,
                        "object is marked for deletion but still exists on the target cluster".to_owned(),
                    );
                }
                continue;
            }
            let hook = HookInfo::of(obj);
            for e in &hook.errors {
                push_unique(&mut collected.errors, r, e.clone());
            }
            for w in &hook.warnings {
                push_unique(&mut collected.warnings, r, w.clone());
            }
            if hook.skipped_by_validate() {
                continue;
            }
            let Some(remote) = live.get(r) else {
                result.errors.push(DeploymentError {
                    object_ref: r.clone(),
                    message: "object not found".to_owned(),
                });
                continue;
            };
            let v = self.validate_live(remote, true).await;
            result.ready &= v.ready;
            result.errors.extend(v.errors);
            result.warnings.extend(v.warnings);
            result.results.extend(v.results);
        }
        result.errors.extend(collected.errors);
        result.warnings.extend(collected.warnings);
        result.end_time = Some(Time(Timestamp::now()));
        result
    }

    /// Validates an already read live object; asks the cluster whether its kind should have a
    /// status only when it has none.
    pub async fn validate_live(&self, live: &Value, not_ready_is_error: bool) -> ObjectValidation {
        let expectation = match (status_map(live), object_ref(live)) {
            (None, Some(r)) => self.status_expectation(&r).await,
            // Not consulted when a status is there.
            _ => StatusExpectation::Unknown,
        };
        validate_object(live, not_ready_is_error, &expectation, Timestamp::now())
    }

    /// Waits until `object` is ready (deploy's `waitReadiness`): reads and validates it every
    /// [`POLL_INTERVAL`], with "not ready" findings as warnings, until it is ready, validation
    /// reports an error, it disappears after having been seen, or `timeout` passes.
    ///
    /// An object that does not exist yet is waited for. Progress is logged (`tracing`, info)
    /// when waiting starts and every 10 s after.
    pub async fn wait_ready(&self, object: &ObjectRef, timeout: Duration) -> WaitOutcome {
        let start = Instant::now();
        let fail = |error: ValidateError| WaitOutcome {
            ready: false,
            errors: vec![DeploymentError {
                object_ref: object.clone(),
                message: error.to_string(),
            }],
            warnings: Vec::new(),
        };
        let poll = async {
            let mut seen = false;
            let mut last_log: Option<Instant> = None;
            loop {
                match self.get_live(object).await {
                    Err(f) => return fail(*f.error),
                    Ok(None) if seen => {
                        tracing::warn!(object = %object, elapsed_secs = start.elapsed().as_secs(), "object disappeared while waiting for readiness");
                        return fail(ValidateError::Disappeared {
                            object: object.clone(),
                        });
                    }
                    Ok(None) => {}
                    Ok(Some(live)) => {
                        seen = true;
                        let v = self.validate_live(&live, false).await;
                        if v.ready || !v.errors.is_empty() {
                            if last_log.is_some() {
                                tracing::info!(object = %object, ready = v.ready, elapsed_secs = start.elapsed().as_secs(), "finished waiting for readiness");
                            }
                            return WaitOutcome {
                                ready: v.ready,
                                errors: v.errors,
                                warnings: v.warnings,
                            };
                        }
                    }
                }
                if last_log.is_none_or(|t| t.elapsed() >= STILL_WAITING_LOG) {
                    tracing::info!(object = %object, elapsed_secs = start.elapsed().as_secs(), "waiting for readiness");
                    last_log = Some(Instant::now());
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        };
        if let Ok(outcome) = tokio::time::timeout(timeout, poll).await {
            outcome
        } else {
            tracing::warn!(object = %object, elapsed_secs = start.elapsed().as_secs(), "timed out while waiting for readiness");
            fail(ValidateError::Timeout {
                object: object.clone(),
            })
        }
    }

    /// The API for `object`'s kind and namespace and the index entry of the kind; `None` when
    /// the index does not know the kind (now: it may learn it later in the run).
    fn api(&self, object: &ObjectRef) -> Option<(Api<DynamicObject>, ApiEntry)> {
        let entry = self.index.current().resolve(object)?.clone();
        let api = if entry.namespaced {
            let ns = if object.namespace.is_empty() {
                "default"
            } else {
                &object.namespace
            };
            Api::namespaced_with(self.client.clone(), ns, &entry.resource)
        } else {
            Api::all_with(self.client.clone(), &entry.resource)
        };
        Some((api, entry))
    }

    /// The live object; `None` when it or its kind does not exist.
    async fn get_live(&self, object: &ObjectRef) -> Result<Option<Value>, GetFailure> {
        let Some((api, _)) = self.api(object) else {
            return Ok(None);
        };
        let found = api.get_opt(&object.name).await.map_err(|e| GetFailure {
            permission: matches!(&e, kube::Error::Api(s) if s.code == 401 || s.code == 403),
            error: Box::new(ValidateError::Get {
                object: object.clone(),
                message: kube_message(&e),
            }),
        })?;
        found
            .map(|o| {
                serde_json::to_value(o).map_err(|e| GetFailure {
                    permission: false,
                    error: Box::new(ValidateError::Get {
                        object: object.clone(),
                        message: e.to_string(),
                    }),
                })
            })
            .transpose()
    }

    /// Whether objects of `object`'s kind should have a status (cached per group/version/kind).
    pub async fn status_expectation(&self, object: &ObjectRef) -> StatusExpectation {
        let key = (object.group.clone(), object.version.clone(), object.kind.clone());
        if let Some(e) = self.cache().get(&key) {
            return e.clone();
        }
        let Some((_, entry)) = self.api(object) else {
            // Not cached: the apply may learn the kind later in the run.
            return StatusExpectation::Unknown;
        };
        let e = self.lookup_status_expectation(object, &entry).await;
        self.cache().insert(key, e.clone());
        e
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), StatusExpectation>> {
        // A poisoned cache only means another task panicked mid-insert; the map is still valid.
        self.expectations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn lookup_status_expectation(&self, object: &ObjectRef, entry: &ApiEntry) -> StatusExpectation {
        // Custom resources: the CRD schema decides (a declared status counts even without the
        // status sub-resource). Core groups have no dot and never come from CRDs.
        if object.group.contains('.') {
            let crd = format!("{}.{}", entry.resource.plural, object.group);
            let crds: Api<DynamicObject> = Api::all_with(
                self.client.clone(),
                &ApiResource::erase::<CustomResourceDefinition>(&()),
            );
            match crds.get_opt(&crd).await {
                Ok(Some(found)) => {
                    let versions = found
                        .data
                        .get("spec")
                        .and_then(|s| s.get("versions"))
                        .and_then(Value::as_array);
                    let schema = versions
                        .into_iter()
                        .flatten()
                        .find(|v| v.get("name").and_then(Value::as_str) == Some(object.version.as_str()))
                        .and_then(|v| v.get("schema")?.get("openAPIV3Schema"));
                    if let Some(schema) = schema {
                        let has_status = schema.get("properties").and_then(|p| p.get("status")).is_some();
                        return if has_status {
                            StatusExpectation::Required
                        } else {
                            StatusExpectation::NotRequired
                        };
                    }
                }
                Ok(None) => {}
                Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {}
                Err(e) => {
                    return StatusExpectation::LookupFailed(
                        ValidateError::CrdLookup {
                            crd,
                            kind: object.kind.clone(),
                            message: kube_message(&e),
                        }
                        .to_string(),
                    );
                }
            }
        }
        if entry.status_subresource {
            StatusExpectation::Required
        } else {
            StatusExpectation::NotRequired
        }
    }
}

/// The apiserver's own message for API errors (what `kubectl` shows), the client error otherwise.
fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::resources::test_support::{entry, index, learn_group, unreachable_client};

    #[test]
    fn wait_messages_keep_kluctl_wording() {
        let object = ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: "shop".into(),
        };
        assert_eq!(
            ValidateError::Timeout {
                object: object.clone()
            }
            .to_string(),
            "timed out while waiting for readiness of shop/Deployment/web"
        );
        assert_eq!(
            ValidateError::Disappeared { object }.to_string(),
            "shop/Deployment/web disappeared while waiting for it to become ready"
        );
    }

    fn thing(group: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: "v1".into(),
            kind: "Thing".into(),
            name: "t".into(),
            namespace: "ns".into(),
        }
    }

    /// The readiness wait of a deploy that applies a CRD and then a custom resource of it: the
    /// applier learns the new kind through the shared index after the validator was built,
    /// and the validator must see it (with the discovery of connect time it never did, and the
    /// wait ran into its timeout).
    #[tokio::test]
    async fn kinds_the_shared_index_learns_later_resolve_in_the_validator() {
        let client = unreachable_client();
        let shared = SharedApiIndex::new(index());
        let validator = ClusterValidator::new(&client, shared.clone());
        let custom = thing("crd.example.org");
        assert!(validator.api(&custom).is_none());
        // Unknown kind: no object yet, and no request (the client cannot connect).
        assert!(matches!(validator.get_live(&custom).await, Ok(None)));

        learn_group(
            &shared,
            "crd.example.org",
            vec![entry("crd.example.org", "v1", "Thing", "things", true)],
        );
        let (api, found) = validator.api(&custom).expect("the learned kind resolves");
        assert_eq!(
            api.resource_url(),
            "/apis/crd.example.org/v1/namespaces/ns/things"
        );
        assert_eq!(found.resource.plural, "things");
        // The live object is now asked for (and the unreachable cluster fails the GET).
        assert!(validator.get_live(&custom).await.is_err());
    }

    /// Kinds outside CRD groups: whether they should carry a status comes from the status
    /// sub-resource recorded in the index, without a request.
    #[tokio::test]
    async fn status_expectation_of_built_in_kinds_comes_from_the_status_subresource() {
        let client = unreachable_client();
        let shared = SharedApiIndex::new(index());
        let validator = ClusterValidator::new(&client, shared.clone());
        // Unknown for now, and not remembered: the group is learned below.
        assert_eq!(
            validator.status_expectation(&thing("builtin")).await,
            StatusExpectation::Unknown
        );
        learn_group(
            &shared,
            "builtin",
            vec![
                ApiEntry {
                    status_subresource: true,
                    ..entry("builtin", "v1", "Thing", "things", true)
                },
                entry("builtin", "v1", "Plain", "plains", true),
            ],
        );
        assert_eq!(
            validator.status_expectation(&thing("builtin")).await,
            StatusExpectation::Required
        );
        let plain = ObjectRef {
            kind: "Plain".into(),
            ..thing("builtin")
        };
        assert_eq!(
            validator.status_expectation(&plain).await,
            StatusExpectation::NotRequired
        );
        assert_eq!(
            validator.status_expectation(&thing("unknown")).await,
            StatusExpectation::Unknown
        );
    }

    #[test]
    fn collected_messages_are_kept_once() {
        let mut list = Vec::new();
        let r = ObjectRef::default();
        push_unique(&mut list, &r, "a".into());
        push_unique(&mut list, &r, "a".into());
        push_unique(&mut list, &r, "b".into());
        assert_eq!(list.len(), 2);
    }
}
