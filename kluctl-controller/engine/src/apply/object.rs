//! One object onto the cluster: server-side apply with field manager `kluctl`, and Kluctl's
//! fall-backs when that fails.
//!
//! ```text
//! unchanged? (dry run at a version known in sync, or noop) ─► done, no request
//! SSA ─ok─► done
//!     ├ kind not served ─► refresh discovery, retry (a CRD of this run); dry run: warn
//!     ├ 409 conflict ─► conflicts::resolve (or --force-apply) ─► SSA with force ─┐
//!     └ other error ─► --replace-on-error: PUT with the live resourceVersion ─────┤
//!                                           failed ─► --force-replace-on-error: ◄─┘
//!                                                      delete + SSA (never for skip-delete objects)
//! ```

use std::collections::BTreeMap;
use std::future::Future;

use gitops_api::kluctl::v1beta1::ObjectRef;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use super::conflicts;
use super::noop::apply_is_noop;
use super::{Applier, FIELD_MANAGER};
use crate::project::config::ConflictResolutionItem;
use crate::prune::{DeleteOptions, delete_objects};
use crate::remote::api_for;

/// The message of a client error: the apiserver's own text for API errors (it names the
/// object), the error otherwise.
pub(crate) fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// `(field, message)` of each cause of a 409 apply conflict.
fn conflict_causes(e: &kube::Error) -> Vec<(String, String)> {
    let kube::Error::Api(s) = e else {
        return Vec::new();
    };
    s.details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| (c.field.clone(), c.message.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// `kluctl.io/skip-delete` (or `helm.sh/resource-policy: keep`) on an object.
fn is_skip_delete(o: &Value) -> bool {
    use crate::prune::rules::HELM_RESOURCE_POLICY_ANNOTATION;
    use gitops_api::constants::SKIP_DELETE_ANNOTATION;
    crate::annotation_bool(o, SKIP_DELETE_ANNOTATION) == Some(true)
        || crate::annotation(o, HELM_RESOURCE_POLICY_ANNOTATION) == Some("keep")
}

/// Kluctl's fix-ups before a patch: port protocols the server would default (server-side apply
/// of older servers fails on omitted defaults in list keys) and CPU quantities given as numbers.
pub(crate) fn fix_object_for_patch(o: &Value) -> Value {
    let mut o = o.clone();
    let fix_ports = |ports: Option<&mut Value>| {
        for port in ports.and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(p) = port.as_object_mut() {
                p.entry("protocol")
                    .or_insert_with(|| Value::String("TCP".to_owned()));
            }
        }
    };
    let fix_cpu = |m: Option<&mut Value>| {
        if let Some(m) = m.and_then(Value::as_object_mut)
            && let Some(v @ Value::Number(_)) = m.get_mut("cpu")
        {
            *v = Value::String(v.to_string());
        }
    };
    if let Some(containers) = o
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for c in containers {
            fix_ports(c.get_mut("ports"));
            fix_cpu(c.pointer_mut("/resources/limits"));
            fix_cpu(c.pointer_mut("/resources/requests"));
        }
    }
    fix_ports(o.pointer_mut("/spec/ports"));
    if let Some(limits) = o.pointer_mut("/spec/limits").and_then(Value::as_array_mut) {
        for l in limits {
            fix_cpu(l.get_mut("default"));
            fix_cpu(l.get_mut("defaultRequest"));
        }
    }
    o
}

impl Applier<'_> {
    /// Applies one rendered object (`hook`: as a hook; `replaced`: it was deleted before in
    /// this run, which a dry run only simulated). Errors and warnings are recorded in the run.
    pub(crate) async fn apply_object(
        &self,
        rules: &[ConflictResolutionItem],
        reference: &ObjectRef,
        object: &Value,
        replaced: bool,
        hook: bool,
    ) -> bool {
        let object = fix_object_for_patch(object);
        let remote = self.remote_object(reference);
        if !hook
            && !replaced
            && let Some(remote) = remote
            && (self.known_in_sync(reference, remote) || apply_is_noop(&object, remote))
        {
            self.record_applied(reference, remote.clone(), hook);
            return true;
        }

        // A dry run simulates creation under a temporary name (and, for a namespace that only
        // this dry run creates, in `default`), then gives the result the real identity back.
        let mut target = (reference.name.clone(), reference.namespace.clone());
        if self.options.dry_run && !reference.namespace.is_empty() {
            let renamed = replaced && remote.is_some();
            let namespace_pending = !renamed
                && self.namespace_created_in_dry_run(&reference.namespace)
                && !self.namespace_exists(&reference.namespace).await;
            if renamed || namespace_pending {
                target.0 = random_suffix(&reference.name);
                if namespace_pending {
                    "default".clone_into(&mut target.1);
                }
            }
        }
        let simulated = target.0 != reference.name;

        let api = match self.api(reference, &target.1).await {
            Ok(api) => api,
            Err(message) => {
                if self.options.dry_run && self.crd_applied_in_run(&reference.group, &reference.kind) {
                    self.warning(
                        reference,
                        format!(
                            "the underlying custom resource definition for {reference} has not been applied yet as Kluctl is running in dry-run mode. It is not guaranteed that the object will actually successfully apply"
                        ),
                    );
                    self.record_applied(reference, object, hook);
                    return true;
                }
                self.error(reference, message);
                return false;
            }
        };
        let result = if simulated {
            let mut renamed = object.clone();
            renamed["metadata"]["name"] = Value::String(target.0.clone());
            renamed["metadata"]["namespace"] = Value::String(target.1.clone());
            api.patch(&target.0, &self.patch_params(false), &Patch::Apply(&renamed))
                .await
                .map(|r| {
                    let mut v = to_value(r);
                    replace_strings(&mut v, &target.0, &reference.name);
                    v["metadata"]["namespace"] = Value::String(reference.namespace.clone());
                    v
                })
        } else {
            api.patch(&reference.name, &self.patch_params(false), &Patch::Apply(&object))
                .await
                .map(to_value)
        };
        match result {
            Ok(r) => {
                self.record_applied(reference, r, hook);
                true
            }
            Err(e) if status_code(&e) == Some(409) => {
                self.retry_with_conflicts(rules, &api, reference, &object, remote, hook, &e)
                    .await
            }
            Err(e) => {
                self.retry_with_replace(&api, reference, &object, remote, hook, &e)
                    .await
            }
        }
    }

    fn patch_params(&self, force: bool) -> PatchParams {
        let mut p = PatchParams::apply(FIELD_MANAGER);
        p.force = force;
        p.dry_run = self.options.dry_run;
        p
    }

    /// Records the server's answer to an apply or replace; a failure goes to `fallback`.
    async fn record_or<F: Future<Output = bool>>(
        &self,
        reference: &ObjectRef,
        result: Result<DynamicObject, kube::Error>,
        hook: bool,
        fallback: impl FnOnce(kube::Error) -> F,
    ) -> bool {
        match result {
            Ok(r) => {
                self.record_applied(reference, to_value(r), hook);
                true
            }
            Err(e) => fallback(e).await,
        }
    }

    #[allow(clippy::too_many_arguments, reason = "the state of one apply attempt")]
    async fn retry_with_conflicts(
        &self,
        rules: &[ConflictResolutionItem],
        api: &Api<DynamicObject>,
        reference: &ObjectRef,
        object: &Value,
        remote: Option<&Value>,
        hook: bool,
        error: &kube::Error,
    ) -> bool {
        // The live object as it is now: the one listed before the run may predate the
        // conflicting write.
        let live = match api.get_opt(&reference.name).await {
            Ok(Some(l)) => to_value(l),
            Ok(None) => {
                let Some(r) = remote else {
                    self.error(reference, api_message(error));
                    return false;
                };
                r.clone()
            }
            Err(e) => {
                self.error(reference, api_message(&e));
                return false;
            }
        };
        let forced = if self.options.force_apply {
            object.clone()
        } else {
            match conflicts::resolve(object, &live, &conflict_causes(error), rules) {
                Ok(resolution) => {
                    for lost in &resolution.lost {
                        self.warning(reference, lost.to_string());
                    }
                    resolution.object
                }
                Err(e) => {
                    self.error(reference, e.to_string());
                    return false;
                }
            }
        };
        let result = api
            .patch(&reference.name, &self.patch_params(true), &Patch::Apply(&forced))
            .await;
        self.record_or(reference, result, hook, |e| async move {
            self.retry_force_replace(api, reference, object, Some(&live), hook, &e)
                .await
        })
        .await
    }

    async fn retry_with_replace(
        &self,
        api: &Api<DynamicObject>,
        reference: &ObjectRef,
        object: &Value,
        remote: Option<&Value>,
        hook: bool,
        error: &kube::Error,
    ) -> bool {
        let Some(remote) =
            remote.filter(|_| self.options.replace_on_error || self.options.force_replace_on_error)
        else {
            self.error(reference, api_message(error));
            return false;
        };
        self.warning(
            reference,
            format!("patching {reference} failed, retrying with replace instead of patch"),
        );
        let mut replacement = object.clone();
        replacement["metadata"]["resourceVersion"] = remote
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        let params = PostParams {
            dry_run: self.options.dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let typed: DynamicObject = match serde_json::from_value(replacement) {
            Ok(t) => t,
            Err(e) => {
                self.error(reference, format!("failed to replace {reference}: {e}"));
                return false;
            }
        };
        let result = api.replace(&reference.name, &params, &typed).await;
        self.record_or(reference, result, hook, |e| async move {
            self.retry_force_replace(api, reference, object, Some(remote), hook, &e)
                .await
        })
        .await
    }

    async fn retry_force_replace(
        &self,
        api: &Api<DynamicObject>,
        reference: &ObjectRef,
        object: &Value,
        remote: Option<&Value>,
        hook: bool,
        error: &kube::Error,
    ) -> bool {
        if !self.options.force_replace_on_error {
            self.error(reference, api_message(error));
            return false;
        }
        if is_skip_delete(object) || remote.is_some_and(is_skip_delete) {
            self.warning(reference, format!("skipped forced replace of {reference}"));
            self.error(reference, api_message(error));
            return false;
        }
        self.warning(
            reference,
            format!("patching {reference} failed, retrying by deleting and re-applying"),
        );
        if !self.delete_object(reference, hook).await {
            return false;
        }
        if self.options.dry_run {
            self.record_applied(reference, object.clone(), hook);
            return true;
        }
        let result = api
            .patch(&reference.name, &self.patch_params(false), &Patch::Apply(object))
            .await;
        self.record_or(reference, result, hook, |e| async move {
            self.error(reference, api_message(&e));
            false
        })
        .await
    }

    /// Deletes one object (`deleteObjects`, `kluctl.io/delete`, hook delete policies). Returns
    /// whether it existed and was deleted (a dry run: would be).
    pub(crate) async fn delete_object(&self, reference: &ObjectRef, hook: bool) -> bool {
        // The deletion awaits: it keeps this version of the index.
        let index = self.index();
        let outcome = delete_objects(
            self.client,
            &index,
            std::slice::from_ref(reference),
            &DeleteOptions {
                dry_run: self.options.dry_run,
                wait: None,
                concurrency: 1,
            },
        )
        .await;
        for e in outcome.errors {
            self.error(&e.object_ref, e.message);
        }
        for w in outcome.warnings {
            self.warning(&w.object_ref, w.message);
        }
        // "Not found" counts as deleted for the delete step; here only objects that existed
        // (before the run, or applied by it) are reported.
        let existed = self.remote_object(reference).is_some() || self.was_applied(reference);
        let deleted = outcome.deleted.contains(reference) && existed;
        if deleted {
            self.record_deleted(reference, hook);
        }
        deleted
    }

    /// The API of `reference`'s kind; reads its API group again when the kind is unknown (a
    /// CRD applied earlier in this run), waiting a little for a CRD of this run to be served.
    async fn api(&self, reference: &ObjectRef, namespace: &str) -> Result<Api<DynamicObject>, String> {
        if let Some(api) = self.resolve(reference, namespace) {
            return Ok(api);
        }
        if !self.options.dry_run {
            let waits = if self.crd_applied_in_run(&reference.group, &reference.kind) {
                30
            } else {
                1
            };
            for attempt in 0..waits {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                self.refresh_group(&reference.group).await;
                if let Some(api) = self.resolve(reference, namespace) {
                    return Ok(api);
                }
            }
        }
        let api_version = kube::core::GroupVersion::gv(&reference.group, &reference.version).api_version();
        Err(format!(
            "no matches for kind \"{}\" in version \"{api_version}\"",
            reference.kind
        ))
    }

    /// The API of `reference`'s kind in `namespace`, from the current index (no request).
    fn resolve(&self, reference: &ObjectRef, namespace: &str) -> Option<Api<DynamicObject>> {
        self.index()
            .resolve(reference)
            .map(|entry| api_for(self.client, entry, namespace))
    }

    /// Remembers what later objects of the run depend on: namespaces and CRDs created.
    pub(crate) fn observe(&self, reference: &ObjectRef, applied: &Value) {
        if reference.group.is_empty() && reference.kind == "Namespace" {
            self.state().dry_run_namespaces.insert(reference.name.clone());
        }
        if reference.group == "apiextensions.k8s.io" && reference.kind == "CustomResourceDefinition" {
            let group = applied.pointer("/spec/group").and_then(Value::as_str);
            let kind = applied.pointer("/spec/names/kind").and_then(Value::as_str);
            if let (Some(g), Some(k)) = (group, kind) {
                self.state().crds.insert((g.to_owned(), k.to_owned()));
            }
        }
    }
}

fn to_value(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// `name` with a random 8-character suffix, at most 63 characters.
fn random_suffix(name: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(name.as_bytes());
    let suffix = format!("{:08x}", h.finish() & 0xffff_ffff);
    let prefix: String = name.chars().take(63 - 9).collect();
    format!("{prefix}-{suffix}")
}

/// Replaces `from` by `to` in every string and key of `v` (undoing a temporary dry-run name).
fn replace_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_strings(x, from, to)),
        Value::Object(m) => {
            let entries: BTreeMap<String, Value> = std::mem::take(m).into_iter().collect();
            for (k, mut x) in entries {
                replace_strings(&mut x, from, to);
                m.insert(k.replace(from, to), x);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_get_protocols_and_cpu_numbers_become_strings() {
        let o = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
            "template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}],
                "resources": {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": 0.5}}}]}},
            "limits": [{"default": {"cpu": 2}, "defaultRequest": {"cpu": "100m"}}]}});
        let f = fix_object_for_patch(&o);
        assert_eq!(f["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(f["spec"]["ports"][1]["protocol"], "UDP");
        let c = &f["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"]["limits"]["cpu"], "1");
        assert_eq!(c["resources"]["requests"]["cpu"], "0.5");
        assert_eq!(f["spec"]["limits"][0]["default"]["cpu"], "2");
        assert_eq!(f["spec"]["limits"][0]["defaultRequest"]["cpu"], "100m");
    }

    #[test]
    fn temporary_names_are_random_bounded_and_undone() {
        let long = "x".repeat(70);
        let t = random_suffix(&long);
        assert_eq!(t.len(), 63);
        assert_ne!(random_suffix("a"), random_suffix("a"));
        let tmp = random_suffix("web");
        let mut v = json!({"metadata": {"name": tmp.clone(), "labels": {tmp.clone(): "x"}}, "spec": ["a", tmp.clone()]});
        replace_strings(&mut v, &tmp, "web");
        assert_eq!(
            v,
            json!({"metadata": {"name": "web", "labels": {"web": "x"}}, "spec": ["a", "web"]})
        );
    }

    #[test]
    fn skip_delete_marks() {
        assert!(is_skip_delete(
            &json!({"metadata": {"annotations": {"kluctl.io/skip-delete": "true"}}})
        ));
        assert!(is_skip_delete(
            &json!({"metadata": {"annotations": {"helm.sh/resource-policy": "keep"}}})
        ));
        assert!(!is_skip_delete(&json!({"metadata": {}})));
    }
}
