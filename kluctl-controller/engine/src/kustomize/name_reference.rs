//! The native path's guard against kustomize's name-reference transformer: decides whether that
//! transformer would leave a native build unchanged, and names the field when it might not.
//!
//! kustomize 5.8.1 runs the transformer once over the whole build (after every kustomization of the
//! tree, before output), whatever the kustomization says. It walks every field listed in its default
//! `nameReference` configuration (a pod's `configMapRef`, `serviceAccountName`, a RoleBinding's
//! `subjects`, a webhook's `clientConfig.service`, ...) and points the reference at the object of the
//! build it names. The native path renames nothing a reference can target (only `v1` Namespaces,
//! which no reference field targets), so what can differ is:
//!
//! ```text
//! reference field value            kustomize                              native guard
//! ─────────────────────────────    ───────────────────────────────────    ───────────────────────────
//! scalar (or list of scalars)      name kept: the target's name is        accept
//!                                  unchanged
//! mapping {name, namespace?}       name AND namespace copied from the     decline when an object of a
//!   (subjects, webhook service)    target when that has a namespace       target kind with that name
//!                                                                         has a namespace
//! malformed path or mapping        error (or, for RoleBinding subjects,   decline
//!                                  a panic)
//! ```
//!
//! So a RoleBinding subject naming a ServiceAccount of the build follows it into the kustomization's
//! `namespace`, or gets that ServiceAccount's own namespace filled in: the native path declines and the
//! binary produces the result. The check over-approximates kustomize's candidate selection (it
//! matches referrers and targets by kind only, and ignores the namespace filters that narrow the
//! candidates): a needless decline only costs a binary run.

use super::native::{meta_str, str_field};
use crate::Object;
use serde_json::Value;
use std::collections::HashSet;

/// Where the pod spec sits in each kind that kustomize's configuration lists pod references for.
const POD_SPEC_AT: [(&str, &[&str]); 9] = [
    ("Pod", &["spec"]),
    ("PodTemplate", &["template", "spec"]),
    ("Deployment", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("ReplicationController", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    ("CronJob", &["spec", "jobTemplate", "spec", "template", "spec"]),
];

/// Reference fields inside a pod spec and the kind each names. kustomize lists a subset of these per
/// workload kind; walking all of them for every workload only adds needless declines.
const POD_SPEC_REFS: [(&[&str], &str); 16] = [
    (&["volumes", "configMap", "name"], "ConfigMap"),
    (
        &["volumes", "projected", "sources", "configMap", "name"],
        "ConfigMap",
    ),
    (
        &["containers", "env", "valueFrom", "configMapKeyRef", "name"],
        "ConfigMap",
    ),
    (
        &["initContainers", "env", "valueFrom", "configMapKeyRef", "name"],
        "ConfigMap",
    ),
    (&["containers", "envFrom", "configMapRef", "name"], "ConfigMap"),
    (
        &["initContainers", "envFrom", "configMapRef", "name"],
        "ConfigMap",
    ),
    (&["volumes", "secret", "secretName"], "Secret"),
    (&["volumes", "projected", "sources", "secret", "name"], "Secret"),
    (
        &["containers", "env", "valueFrom", "secretKeyRef", "name"],
        "Secret",
    ),
    (
        &["initContainers", "env", "valueFrom", "secretKeyRef", "name"],
        "Secret",
    ),
    (&["containers", "envFrom", "secretRef", "name"], "Secret"),
    (&["initContainers", "envFrom", "secretRef", "name"], "Secret"),
    (&["imagePullSecrets", "name"], "Secret"),
    (&["serviceAccountName"], "ServiceAccount"),
    (
        &["volumes", "persistentVolumeClaim", "claimName"],
        "PersistentVolumeClaim",
    ),
    (&["priorityClassName"], "PriorityClass"),
];

/// The remaining reference fields of kustomize 5.8.1's default `nameReference` configuration:
/// referrer kind, path, kinds the value may name.
const OTHER_REFS: [(&str, &[&str], &[&str]); 34] = [
    (
        "HorizontalPodAutoscaler",
        &["spec", "scaleTargetRef", "name"],
        &["Deployment", "ReplicationController", "ReplicaSet", "StatefulSet"],
    ),
    ("Node", &["spec", "configSource", "configMap"], &["ConfigMap"]),
    ("Role", &["rules", "resourceNames"], &["ConfigMap", "Secret"]),
    (
        "ClusterRole",
        &["rules", "resourceNames"],
        &["ConfigMap", "Secret", "PersistentVolume"],
    ),
    (
        "Ingress",
        &[
            "metadata",
            "annotations",
            "nginx.ingress.kubernetes.io/fastcgi-params-configmap",
        ],
        &["ConfigMap"],
    ),
    (
        "Ingress",
        &["metadata", "annotations", "ingress.kubernetes.io/auth-secret"],
        &["Secret"],
    ),
    (
        "Ingress",
        &[
            "metadata",
            "annotations",
            "nginx.ingress.kubernetes.io/auth-secret",
        ],
        &["Secret"],
    ),
    (
        "Ingress",
        &[
            "metadata",
            "annotations",
            "nginx.ingress.kubernetes.io/auth-tls-secret",
        ],
        &["Secret"],
    ),
    ("Ingress", &["spec", "tls", "secretName"], &["Secret"]),
    (
        "Ingress",
        &["spec", "rules", "http", "paths", "backend", "serviceName"],
        &["Service"],
    ),
    ("Ingress", &["spec", "backend", "serviceName"], &["Service"]),
    (
        "Ingress",
        &["spec", "rules", "http", "paths", "backend", "service", "name"],
        &["Service"],
    ),
    (
        "Ingress",
        &["spec", "defaultBackend", "service", "name"],
        &["Service"],
    ),
    ("Ingress", &["spec", "ingressClassName"], &["IngressClass"]),
    ("ServiceAccount", &["imagePullSecrets", "name"], &["Secret"]),
    ("StorageClass", &["parameters", "secretName"], &["Secret"]),
    ("StorageClass", &["parameters", "adminSecretName"], &["Secret"]),
    ("StorageClass", &["parameters", "userSecretName"], &["Secret"]),
    ("StorageClass", &["parameters", "secretRef"], &["Secret"]),
    // Knative's Service (serving.knative.dev/v1); walking it on core Services finds nothing.
    (
        "Service",
        &[
            "spec",
            "template",
            "spec",
            "containers",
            "env",
            "valueFrom",
            "secretKeyRef",
            "name",
        ],
        &["Secret"],
    ),
    (
        "PersistentVolume",
        &["spec", "azureFile", "secretName"],
        &["Secret"],
    ),
    (
        "PersistentVolume",
        &["spec", "storageClassName"],
        &["StorageClass"],
    ),
    (
        "PersistentVolumeClaim",
        &["spec", "storageClassName"],
        &["StorageClass"],
    ),
    (
        "PersistentVolumeClaim",
        &["spec", "volumeName"],
        &["PersistentVolume"],
    ),
    ("StatefulSet", &["spec", "serviceName"], &["Service"]),
    (
        "StatefulSet",
        &["spec", "volumeClaimTemplates", "spec", "storageClassName"],
        &["StorageClass"],
    ),
    ("APIService", &["spec", "service", "name"], &["Service"]),
    (
        "ValidatingWebhookConfiguration",
        &["webhooks", "clientConfig", "service"],
        &["Service"],
    ),
    (
        "MutatingWebhookConfiguration",
        &["webhooks", "clientConfig", "service"],
        &["Service"],
    ),
    (
        "ValidatingAdmissionPolicyBinding",
        &["spec", "policyName"],
        &["ValidatingAdmissionPolicy"],
    ),
    ("RoleBinding", &["roleRef", "name"], &["Role", "ClusterRole"]),
    ("ClusterRoleBinding", &["roleRef", "name"], &["ClusterRole"]),
    ("RoleBinding", &["subjects"], &["ServiceAccount"]),
    ("ClusterRoleBinding", &["subjects"], &["ServiceAccount"]),
];

/// `Ok` when kustomize's name-reference transformer leaves `objects` (a native build's output)
/// unchanged and succeeds on it; otherwise why not.
///
/// # Errors
/// The reason to decline, naming the object and field.
pub(super) fn check(objects: &[Object]) -> Result<(), String> {
    // (kind, name) of every object of the build that has a namespace: a mapping reference to one of
    // them gets that namespace written into it.
    let namespaced: HashSet<(&str, &str)> = objects
        .iter()
        .filter(|o| !meta_str(o, "namespace").is_empty())
        .map(|o| (str_field(o, "kind"), meta_str(o, "name")))
        .collect();
    for o in objects {
        let kind = str_field(o, "kind");
        if kind == "RoleBinding" {
            check_role_binding_subjects(o)?;
        }
        let referrer = Referrer {
            object: o,
            namespaced: &namespaced,
        };
        for (at_kind, prefix) in POD_SPEC_AT {
            if at_kind != kind {
                continue;
            }
            for (path, target) in POD_SPEC_REFS {
                let full: Vec<&str> = prefix.iter().chain(path).copied().collect();
                referrer.walk_field(&full, &[target])?;
            }
        }
        for (at_kind, path, targets) in &OTHER_REFS {
            if *at_kind == kind {
                referrer.walk_field(path, targets)?;
            }
        }
    }
    Ok(())
}

/// kustomize reads a RoleBinding's subjects with unchecked type assertions while choosing reference
/// candidates: a subject that is not a mapping, or whose `kind` is not a string, makes it panic.
fn check_role_binding_subjects(o: &Object) -> Result<(), String> {
    let Some(Value::Array(subjects)) = o.get("subjects") else {
        return Ok(());
    };
    for s in subjects {
        let Value::Object(s) = s else {
            return Err(format!(
                "RoleBinding '{}' has a subject that is not a mapping",
                meta_str(o, "name")
            ));
        };
        for key in ["kind", "namespace"] {
            if s.get(key).is_some_and(|v| !v.is_string()) {
                return Err(format!(
                    "RoleBinding '{}' has a subject whose '{key}' is not a string",
                    meta_str(o, "name")
                ));
            }
        }
    }
    Ok(())
}

/// One object checked as a possible referrer.
struct Referrer<'a> {
    object: &'a Object,
    namespaced: &'a HashSet<(&'a str, &'a str)>,
}

impl Referrer<'_> {
    /// Follows `path` the way kustomize's field-spec walk does: through mappings by key, through
    /// every element of a list with the same remaining path, stopping quietly at missing or null
    /// values and failing on a scalar in the way.
    fn walk_field(&self, path: &[&str], targets: &[&str]) -> Result<(), String> {
        let Some(first) = path.first() else {
            return Ok(());
        };
        match self.object.get(*first) {
            None | Some(Value::Null) => Ok(()),
            Some(v) => self.walk(v, &path[1..], path, targets),
        }
    }

    fn walk(&self, v: &Value, rest: &[&str], path: &[&str], targets: &[&str]) -> Result<(), String> {
        let Some((key, rest_after)) = rest.split_first() else {
            return self.leaf(v, path, targets);
        };
        match v {
            Value::Null => Ok(()),
            Value::Object(m) => match m.get(*key) {
                None | Some(Value::Null) => Ok(()),
                Some(next) => self.walk(next, rest_after, path, targets),
            },
            Value::Array(items) => items.iter().try_for_each(|e| self.walk(e, rest, path, targets)),
            _ => Err(self.describe(path, "has a scalar where kustomize expects a mapping or list")),
        }
    }

    /// kustomize's setter at the end of the path: scalars keep their (unchanged) name; lists are
    /// handled element by element; mappings take name and namespace from the referenced object.
    fn leaf(&self, v: &Value, path: &[&str], targets: &[&str]) -> Result<(), String> {
        match v {
            Value::Object(m) => self.mapping_leaf(m, path, targets),
            Value::Array(items) => items.iter().try_for_each(|e| match e {
                Value::Object(m) => self.mapping_leaf(m, path, targets),
                Value::Array(_) => Err(self.describe(path, "holds a nested list")),
                _ => Ok(()),
            }),
            _ => Ok(()),
        }
    }

    fn mapping_leaf(&self, m: &Object, path: &[&str], targets: &[&str]) -> Result<(), String> {
        let Some(Value::String(name)) = m.get("name") else {
            return Err(self.describe(path, "holds a mapping without a string 'name'"));
        };
        if let Some(target) = targets
            .iter()
            .find(|t| self.namespaced.contains(&(**t, name.as_str())))
        {
            return Err(self.describe(
                path,
                &format!(
                    "refers to {target} '{name}' of the build, whose namespace kustomize's name-reference rule copies into it"
                ),
            ));
        }
        Ok(())
    }

    fn describe(&self, path: &[&str], what: &str) -> String {
        format!(
            "{} '{}' field '{}' {what}",
            str_field(self.object, "kind"),
            meta_str(self.object, "name"),
            path.join(".")
        )
    }
}
