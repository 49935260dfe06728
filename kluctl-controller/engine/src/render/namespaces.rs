//! Namespace fix-up after post-processing: namespaced objects without a namespace get `default`
//! (or the Helm release namespace recorded in `kluctl.io/helm-install-namespace`), cluster-scoped
//! objects lose theirs. Scope comes from CRDs in the rendered set first, then from the cluster.
//!
//! Without a cluster (offline render) nothing is changed, as in Kluctl: the scope of a kind is
//! unknown then, and guessing would make offline and online renders differ in a worse way.

use std::collections::BTreeMap;

use serde_json::Value;

/// The annotation Helm rendering leaves on objects of a release with a `namespace`.
pub const HELM_INSTALL_NAMESPACE_ANNOTATION: &str = "kluctl.io/helm-install-namespace";

/// Answers whether a kind is namespaced (from API discovery).
pub trait ScopeLookup {
    /// `Some(true)` for namespaced, `Some(false)` for cluster-scoped, `None` when unknown.
    fn is_namespaced(&self, api_version: &str, kind: &str) -> Option<bool>;
}

/// Fixes the namespaces of all rendered objects; `scope` is `None` for offline renders.
pub fn fix_namespaces(objects: &mut [&mut Value], scope: Option<&dyn ScopeLookup>) {
    let Some(scope) = scope else { return };
    let from_crds = scopes_from_crds(objects.iter().map(|o| &**o));
    for o in objects.iter_mut() {
        let mut default = "default".to_owned();
        if let Some(Value::Object(annotations)) = o.pointer_mut("/metadata/annotations")
            && let Some(Value::String(ns)) = annotations.remove(HELM_INSTALL_NAMESPACE_ANNOTATION)
        {
            default = ns;
        }
        let api_version = str_at(o, "/apiVersion");
        let kind = str_at(o, "/kind");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        let namespaced = from_crds
            .get(&(group.to_owned(), kind.to_owned()))
            .copied()
            .or_else(|| scope.is_namespaced(api_version, kind));
        let current = str_at(o, "/metadata/namespace").to_owned();
        let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        match namespaced {
            Some(false) if !current.is_empty() => {
                meta.remove("namespace");
            }
            Some(true) if current.is_empty() => {
                meta.insert("namespace".to_owned(), Value::String(default));
            }
            _ => {}
        }
    }
}

/// `(group, kind) → namespaced` for every CRD in the set with scope, group and kind.
fn scopes_from_crds<'a>(objects: impl Iterator<Item = &'a Value>) -> BTreeMap<(String, String), bool> {
    objects
        .filter(|o| {
            str_at(o, "/kind") == "CustomResourceDefinition"
                && str_at(o, "/apiVersion").starts_with("apiextensions.k8s.io/")
        })
        .filter_map(|o| {
            let scope = str_at(o, "/spec/scope");
            let group = str_at(o, "/spec/group");
            let kind = str_at(o, "/spec/names/kind");
            (!scope.is_empty() && !group.is_empty() && !kind.is_empty())
                .then(|| ((group.to_owned(), kind.to_owned()), scope == "Namespaced"))
        })
        .collect()
}

fn str_at<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Builtin;
    impl ScopeLookup for Builtin {
        fn is_namespaced(&self, _api_version: &str, kind: &str) -> Option<bool> {
            match kind {
                "ConfigMap" => Some(true),
                "Namespace" | "ClusterRole" => Some(false),
                _ => None,
            }
        }
    }

    #[test]
    fn namespaced_objects_get_default_and_cluster_scoped_lose_theirs() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let mut helm_cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b",
            "annotations": {"kluctl.io/helm-install-namespace": "apps", "x": "y"}}});
        let mut ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "oops"}});
        let mut unknown = json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"}});
        let mut crd_backed =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        let mut crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget"}}});
        let mut all = [
            &mut cm,
            &mut helm_cm,
            &mut ns,
            &mut unknown,
            &mut crd_backed,
            &mut crd,
        ];
        fix_namespaces(&mut all, Some(&Builtin));
        assert_eq!(cm["metadata"]["namespace"], "default");
        assert_eq!(helm_cm["metadata"]["namespace"], "apps");
        assert_eq!(helm_cm["metadata"]["annotations"], json!({"x": "y"}));
        assert!(ns["metadata"].get("namespace").is_none());
        assert!(
            unknown["metadata"].get("namespace").is_none(),
            "unknown scope: untouched"
        );
        assert_eq!(crd_backed["metadata"]["namespace"], "default");
    }

    #[test]
    fn offline_renders_change_nothing() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a",
            "annotations": {"kluctl.io/helm-install-namespace": "apps"}}});
        let before = cm.clone();
        fix_namespaces(&mut [&mut cm], None);
        assert_eq!(cm, before);
    }
}
