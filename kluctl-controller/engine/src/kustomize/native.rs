//! Native kustomize fast path: builds kustomizations that use only `resources` (local files and
//! directories with their own kustomization) and `namespace`, exactly as kustomize 5.8.1 does, without
//! starting a process.
//!
//! What it reproduces, per kustomization (depth first, in `resources` order):
//! - documents of each file; empty, `null` and `{}` documents dropped;
//! - resource ids must be unique (group, version, kind, name, effective namespace);
//! - the namespace transformer: `metadata.namespace` set on every kind not known to kustomize's
//!   built-in OpenAPI data (Kubernetes 1.21.2) as cluster-scoped; `metadata.name` of `v1` Namespaces
//!   renamed; `subjects[].namespace` of (Cluster)RoleBindings set where the subject's name is
//!   `default`; `APIService` `spec.service.namespace` created; webhook conversion service
//!   namespace of CRDs replaced where present;
//! - no reordering: Kluctl builds with kustomize's reorder option left empty, so objects come out
//!   in resource input order (FIFO); a kustomization with `sortOptions` goes to the binary.
//!
//! - kustomize's name-reference transformer, which runs on every build: the native path renames
//!   nothing a reference can name, so the transformer changes only mapping references
//!   (`{name, namespace}`: RoleBinding subjects, webhook services) that name an object of the build
//!   with a namespace; [`super::name_reference`] declines those and every reference field kustomize
//!   would fail on.
//!
//! The principle is a whitelist: only the kustomization fields above are read, so every transformer
//! that renames or re-labels (`namePrefix`, `nameSuffix`, generators and their hash suffixes,
//! `commonLabels`, `labels`, `images`, patches, `replacements`, ...) sends the build to the binary,
//! and with it every back-reference those renames would need fixed.
//!
//! Anything it does not reproduce makes it decline ([`Declined`]) so the binary runs instead and
//! produces both the output and kustomize's own error messages: other kustomization fields, remote or
//! missing resources, list kinds (kustomize inlines them with a JSON round trip), kustomize's own
//! annotations, null list entries, duplicate ids, YAML it cannot parse, non-string names, references
//! the name-reference transformer would rewrite.

use crate::Object;
use crate::files::Tree;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

/// Why the native path declined a directory; the binary takes over.
#[derive(Debug)]
pub struct Declined(pub String);

fn decline<T>(msg: impl Into<String>) -> Result<T, Declined> {
    Err(Declined(msg.into()))
}

/// Kustomization file names in the order kustomize looks for them.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields of a kustomization the native path understands.
const NATIVE_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "resources", "namespace"];

/// Nesting limit; deeper (or cyclic) trees go to the binary, which reports cycles itself.
const MAX_DEPTH: usize = 64;

/// `(apiVersion, kind)` pairs kustomize 5.8.1 treats as cluster-scoped (its precomputed table for the
/// built-in Kubernetes 1.21.2 OpenAPI data). Every other kind is namespaced to kustomize, CRD kinds
/// included.
const CLUSTER_SCOPED: [(&str, &str); 36] = [
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"),
    ("apiregistration.k8s.io/v1", "APIService"),
    ("apiregistration.k8s.io/v1beta1", "APIService"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
    ),
    ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1beta1", "IngressClass"),
    ("node.k8s.io/v1", "RuntimeClass"),
    ("node.k8s.io/v1beta1", "RuntimeClass"),
    ("policy/v1beta1", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("scheduling.k8s.io/v1beta1", "PriorityClass"),
    ("storage.k8s.io/v1", "CSIDriver"),
    ("storage.k8s.io/v1", "CSINode"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("storage.k8s.io/v1", "VolumeAttachment"),
    ("storage.k8s.io/v1beta1", "CSIDriver"),
    ("storage.k8s.io/v1beta1", "CSINode"),
    ("storage.k8s.io/v1beta1", "StorageClass"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment"),
    ("v1", "ComponentStatus"),
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "NodeProxyOptions"),
    ("v1", "PersistentVolume"),
];

/// Annotation prefixes kustomize itself reads or strips; objects carrying them go to the binary.
const KUSTOMIZE_ANNOTATION_PREFIXES: [&str; 3] = [
    "config.kubernetes.io/",
    "internal.config.kubernetes.io/",
    "kustomize.config.k8s.io/",
];

/// Builds `dir` natively, or declines.
pub fn build(tree: &dyn Tree, dir: &Path) -> Result<Vec<Object>, Declined> {
    let objects = build_dir(tree, dir, 0)?;
    // kustomize runs its name-reference transformer once, over the whole build, after every
    // kustomization of the tree has been accumulated.
    super::name_reference::check(&objects).map_err(Declined)?;
    Ok(objects)
}

fn build_dir(tree: &dyn Tree, dir: &Path, depth: usize) -> Result<Vec<Object>, Declined> {
    if depth > MAX_DEPTH {
        return decline("kustomizations nested too deep");
    }
    let found: Vec<_> = KUSTOMIZATION_FILES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| tree.is_file(p))
        .collect();
    let [file] = found.as_slice() else {
        return decline(format!(
            "{} kustomization files in '{}'",
            found.len(),
            dir.display()
        ));
    };
    let text = read(tree, file)?;
    let k: Value = serde_saphyr::from_str_with_options(&text, crate::yaml::go_yaml_options())
        .map_err(|e| Declined(format!("kustomization: {e}")))?;
    let Value::Object(k) = k else {
        return decline("kustomization is not a mapping");
    };
    if let Some(field) = k.keys().find(|f| !NATIVE_FIELDS.contains(&f.as_str())) {
        return decline(format!("kustomization field '{field}'"));
    }
    match k.get("apiVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v == "kustomize.config.k8s.io/v1beta1" => {}
        Some(v) => return decline(format!("kustomization apiVersion {v}")),
    }
    match k.get("kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v == "Kustomization" => {}
        Some(v) => return decline(format!("kustomization kind {v}")),
    }
    let namespace = match k.get("namespace") {
        None | Some(Value::Null) => String::new(),
        // kustomize reads its kustomization with YAML 1.1 rules, where these are booleans.
        Some(Value::String(ns)) if is_yaml11_bool(ns) => return decline(format!("namespace '{ns}'")),
        Some(Value::String(ns)) => ns.clone(),
        Some(v) => return decline(format!("kustomization namespace {v}")),
    };
    let resources: Vec<&str> = match k.get("resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().ok_or_else(|| Declined(format!("resource entry {i}"))))
            .collect::<Result<_, _>>()?,
        Some(v) => return decline(format!("resources {v}")),
    };

    let mut objects = Vec::new();
    let mut ids = HashSet::new();
    for r in resources {
        if r.contains("://") || r.starts_with("git@") || r.is_empty() || is_yaml11_bool(r) {
            return decline(format!("remote resource '{r}'"));
        }
        let path = dir.join(r);
        let loaded = if tree.is_file(&path) {
            load_file(tree, &path)?
        } else if tree.is_dir(&path) {
            build_dir(tree, &path, depth + 1)?
        } else {
            return decline(format!("resource '{r}' is neither a file nor a directory"));
        };
        for o in loaded {
            if !ids.insert(ResId::of(&o)) {
                return decline("duplicate resource id");
            }
            objects.push(o);
        }
    }

    if !namespace.is_empty() {
        let mut ids = HashSet::new();
        for o in &mut objects {
            set_namespace(o, &namespace)?;
            if !ids.insert(ResId::of(o)) {
                return decline("namespace transformation produces an id conflict");
            }
        }
    }
    Ok(objects)
}

/// YAML 1.1 boolean spellings (go-yaml v2, which kustomize uses for the kustomization file).
fn is_yaml11_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn read(tree: &dyn Tree, path: &Path) -> Result<String, Declined> {
    tree.read_to_string(path).map_err(|e| Declined(e.to_string()))
}

/// The objects of one resource file, validated the way kustomize's resource factory validates them.
fn load_file(tree: &dyn Tree, path: &Path) -> Result<Vec<Object>, Declined> {
    let text = read(tree, path)?;
    if has_plain_timestamp(&text) {
        // go-yaml turns these into timestamps that kustomize prints in RFC 3339 form.
        return decline(format!("plain timestamp scalar in '{}'", path.display()));
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, crate::yaml::go_yaml_options())
        .map_err(|e| Declined(format!("'{}': {e}", path.display())))?;
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let o = match doc {
            Value::Null => continue,
            Value::Object(o) if o.is_empty() => continue,
            Value::Object(o) => o,
            _ => return decline(format!("a document in '{}' is not a mapping", path.display())),
        };
        let mut o = o;
        validate(&mut o)?;
        let mut v = Value::Object(o);
        whole_floats_to_ints(&mut v)?;
        let Value::Object(o) = v else {
            unreachable!("still an object")
        };
        out.push(o);
    }
    Ok(out)
}

fn validate(o: &mut Object) -> Result<(), Declined> {
    let kind = match o.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => k,
        _ => return decline("object without kind"),
    };
    if kind.ends_with("List") || kind == "Kustomization" || kind == "Component" {
        return decline(format!("kind '{kind}'"));
    }
    match o.get("apiVersion") {
        None | Some(Value::String(_)) => {}
        Some(_) => return decline("non-string apiVersion"),
    }
    let Some(Value::Object(meta)) = o.get("metadata") else {
        return decline("object without metadata");
    };
    match meta.get("name") {
        Some(Value::String(n)) if !n.is_empty() => {}
        _ => return decline("object without a string metadata.name"),
    }
    match meta.get("namespace") {
        None | Some(Value::String(_)) => {}
        Some(_) => return decline("non-string metadata.namespace"),
    }
    match meta.get("annotations") {
        Some(Value::Object(a))
            if a.keys()
                .any(|k| KUSTOMIZE_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p))) =>
        {
            return decline("kustomize annotation");
        }
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => return decline("non-mapping metadata.annotations"),
    }
    if o.values().any(has_null_list_entry) {
        return decline("null entry in a list");
    }
    // kustomize adds its own annotations while reading and strips them again on output, removing
    // the field when nothing else is left: `annotations: null` and `annotations: {}` disappear
    // (`labels` are left alone).
    if let Some(Value::Object(meta)) = o.get_mut("metadata")
        && meta
            .get("annotations")
            .is_some_and(|a| a.is_null() || a.as_object().is_some_and(Object::is_empty))
    {
        meta.remove("annotations");
    }
    Ok(())
}

/// kustomize round-trips objects through JSON, so a float with no fraction (`1.0`, `1e3`) comes out
/// as an integer.
fn whole_floats_to_ints(v: &mut Value) -> Result<(), Declined> {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.is_finite() && f.fract() == 0.0 {
                if f.abs() >= 9.0e18 {
                    return decline("huge whole float");
                }
                // Exact: |f| < 2^63 and integral.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *v = Value::from(i);
            } else if !f.is_finite() {
                return decline("non-finite float");
            }
        }
        Value::Array(a) => a.iter_mut().try_for_each(whole_floats_to_ints)?,
        Value::Object(m) => m.values_mut().try_for_each(whole_floats_to_ints)?,
        _ => {}
    }
    Ok(())
}

/// True when a line holds a plain (unquoted) scalar starting like a YAML timestamp (`2024-1-2...`)
/// as a mapping value or sequence item. Over-approximates; a false hit only costs a binary run.
fn has_plain_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    (2..b.len().saturating_sub(5)).any(|i| {
        b[i - 1] == b' '
            && (b[i - 2] == b':' || b[i - 2] == b'-')
            && (0..4).all(|k| digit(i + k))
            && b.get(i + 4) == Some(&b'-')
            && digit(i + 5)
    })
}

fn has_null_list_entry(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().any(has_null_list_entry),
        Value::Array(a) => a.iter().any(|e| e.is_null() || has_null_list_entry(e)),
        _ => false,
    }
}

pub(super) fn str_field<'a>(o: &'a Object, key: &str) -> &'a str {
    o.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn meta_str<'a>(o: &'a Object, key: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(a, k)| *a == api_version && *k == kind)
}

fn group_of(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// kustomize's namespace transformer with its default field specs.
fn set_namespace(o: &mut Object, ns: &str) -> Result<(), Declined> {
    let api_version = str_field(o, "apiVersion").to_string();
    let kind = str_field(o, "kind").to_string();
    let (group, _) = group_of(&api_version);
    let group = group.to_string();
    let ns_value = || Value::String(ns.to_string());

    let meta = o
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Declined("metadata".into()))?;
    if !is_cluster_scoped(&api_version, &kind) {
        meta.insert("namespace".into(), ns_value());
    }
    if kind == "Namespace" && api_version == "v1" {
        meta.insert("name".into(), ns_value());
    }
    if kind == "RoleBinding" || kind == "ClusterRoleBinding" {
        match o.get_mut("subjects") {
            None | Some(Value::Null) => {}
            Some(Value::Array(subjects)) => {
                for s in subjects {
                    let Value::Object(s) = s else {
                        return decline("non-mapping subject");
                    };
                    if s.get("name").and_then(Value::as_str) == Some("default") {
                        s.insert("namespace".into(), ns_value());
                    }
                }
            }
            Some(_) => return decline("non-list subjects"),
        }
    }
    if kind == "APIService" && group == "apiregistration.k8s.io" {
        let service = create_path(o, &["spec", "service"])?;
        service.insert("namespace".into(), ns_value());
    }
    if kind == "CustomResourceDefinition" && group == "apiextensions.k8s.io" {
        let mut cur: &mut Object = o;
        for key in ["spec", "conversion", "webhook", "clientConfig", "service"] {
            match cur.get_mut(key) {
                None => return Ok(()),
                Some(Value::Object(next)) => cur = next,
                Some(_) => return decline("CRD conversion webhook is not a mapping"),
            }
        }
        match cur.get("namespace") {
            None => {}
            Some(Value::String(_)) => {
                cur.insert("namespace".into(), ns_value());
            }
            Some(_) => return decline("CRD conversion webhook namespace is not a string"),
        }
    }
    Ok(())
}

/// Walks `path`, creating missing mappings; declines on a non-mapping value in the way.
fn create_path<'a>(o: &'a mut Object, path: &[&str]) -> Result<&'a mut Object, Declined> {
    let mut cur = o;
    for key in path {
        let next = cur
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Object::new()));
        match next {
            Value::Object(m) => cur = m,
            _ => return decline(format!("'{key}' is not a mapping")),
        }
    }
    Ok(cur)
}

/// kustomize's resource id, used for its uniqueness checks.
#[derive(Hash, PartialEq, Eq)]
struct ResId {
    api_version: String,
    kind: String,
    name: String,
    /// Effective namespace: `None` for cluster-scoped kinds, `default` for an empty namespace.
    namespace: Option<String>,
}

impl ResId {
    fn of(o: &Object) -> Self {
        let api_version = str_field(o, "apiVersion").to_string();
        let kind = str_field(o, "kind").to_string();
        let namespace = if is_cluster_scoped(&api_version, &kind) {
            None
        } else {
            match meta_str(o, "namespace") {
                "" => Some("default".to_string()),
                ns => Some(ns.to_string()),
            }
        };
        Self {
            api_version,
            kind,
            name: meta_str(o, "name").to_string(),
            namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a kustomization made of `files` (name, content) natively.
    fn build_files(files: &[(&str, &str)]) -> Result<Vec<Object>, String> {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs_err::write(d.path().join(name), text).unwrap();
        }
        build(&crate::files::Disk, d.path()).map_err(|d| d.0)
    }

    const SA_APP: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app}\n";
    const RB_TO_APP: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects:\n- {kind: ServiceAccount, name: app, namespace: old}\n";

    /// Issue 6: with `namespace:` kustomize moves a subject naming a ServiceAccount of the build
    /// into that namespace; the native path must leave such builds to the binary.
    #[test]
    fn subject_naming_a_service_account_of_the_build_declines_with_namespace() {
        let why = build_files(&[
            (
                "kustomization.yaml",
                "namespace: new\nresources: [sa.yaml, rb.yaml]\n",
            ),
            ("sa.yaml", SA_APP),
            ("rb.yaml", RB_TO_APP),
        ])
        .unwrap_err();
        assert_eq!(
            why,
            "RoleBinding 'rb' field 'subjects' refers to ServiceAccount 'app' of the build, whose namespace kustomize's name-reference rule copies into it"
        );
    }

    #[test]
    fn subject_naming_a_service_account_with_its_own_namespace_declines_without_namespace() {
        // kustomize fills the subject's namespace from the ServiceAccount even with no transformer.
        let why = build_files(&[
            ("kustomization.yaml", "resources: [sa.yaml, rb.yaml]\n"),
            (
                "sa.yaml",
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app, namespace: own}\n",
            ),
            (
                "rb.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: crb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}\nsubjects:\n- {kind: ServiceAccount, name: app}\n",
            ),
        ])
        .unwrap_err();
        assert!(
            why.starts_with("ClusterRoleBinding 'crb' field 'subjects' refers to ServiceAccount 'app'"),
            "{why}"
        );
    }

    #[test]
    fn references_kustomize_leaves_unchanged_stay_native() {
        // No namespace anywhere: the subject keeps its name and gets no namespace.
        let objects = build_files(&[
            ("kustomization.yaml", "resources: [sa.yaml, rb.yaml]\n"),
            ("sa.yaml", SA_APP),
            ("rb.yaml", RB_TO_APP),
        ])
        .unwrap();
        assert_eq!(objects[1]["subjects"][0]["namespace"], "old");
        // A subject naming a ServiceAccount outside the build, and scalar references (names are
        // never changed natively), stay native with a namespace.
        let objects = build_files(&[
            ("kustomization.yaml", "namespace: new\nresources: [rb.yaml, app.yaml]\n"),
            ("rb.yaml", RB_TO_APP),
            (
                "app.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      serviceAccountName: app\n      containers:\n      - name: c\n        envFrom: [{configMapRef: {name: cfg}}]\n",
            ),
        ])
        .unwrap();
        assert_eq!(objects[0]["subjects"][0]["namespace"], "old");
        assert_eq!(meta_str(&objects[2], "namespace"), "new");
    }

    #[test]
    fn webhook_service_of_the_build_declines() {
        let why = build_files(&[
            ("kustomization.yaml", "namespace: new\nresources: [w.yaml]\n"),
            (
                "w.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: hook}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: m}\nwebhooks:\n- name: m.example.com\n  clientConfig: {service: {name: hook, namespace: old}}\n",
            ),
        ])
        .unwrap_err();
        assert!(why.starts_with("MutatingWebhookConfiguration 'm' field 'webhooks.clientConfig.service' refers to Service 'hook'"), "{why}");
    }

    #[test]
    fn reference_fields_kustomize_fails_on_decline() {
        let rb = |subjects: &str| {
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: rb}}\nsubjects: {subjects}\n"
            )
        };
        for (subjects, want) in [
            ("[app]", "RoleBinding 'rb' has a subject that is not a mapping"),
            (
                "[{kind: 1, name: a}]",
                "RoleBinding 'rb' has a subject whose 'kind' is not a string",
            ),
            (
                "[{kind: User}]",
                "RoleBinding 'rb' field 'subjects' holds a mapping without a string 'name'",
            ),
            ("[[a]]", "RoleBinding 'rb' has a subject that is not a mapping"),
        ] {
            let why = build_files(&[
                ("kustomization.yaml", "resources: [rb.yaml]\n"),
                ("rb.yaml", &rb(subjects)),
            ])
            .unwrap_err();
            assert_eq!(why, want, "subjects {subjects}");
        }
        let why = build_files(&[
            ("kustomization.yaml", "resources: [d.yaml]\n"),
            ("d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: [c]}}}\n"),
        ])
        .unwrap_err();
        assert!(
            why.starts_with("Deployment 'd' field 'spec.template.spec.containers."),
            "{why}"
        );
        assert!(
            why.ends_with("has a scalar where kustomize expects a mapping or list"),
            "{why}"
        );
    }

    #[test]
    fn renaming_fields_decline_before_any_reference_check() {
        for field in [
            "namePrefix: p-",
            "nameSuffix: -s",
            "configMapGenerator: [{name: c, literals: [a=b]}]",
        ] {
            let why = build_files(&[
                ("kustomization.yaml", &format!("{field}\nresources: [sa.yaml]\n")),
                ("sa.yaml", SA_APP),
            ])
            .unwrap_err();
            assert!(why.starts_with("kustomization field '"), "{field}: {why}");
        }
    }

    fn obj(y: &str) -> Object {
        serde_saphyr::from_str(y).unwrap()
    }

    #[test]
    fn namespace_is_set_on_namespaced_kinds_only() {
        let mut cm = obj("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: old}\n");
        set_namespace(&mut cm, "new").unwrap();
        assert_eq!(meta_str(&cm, "namespace"), "new");
        let mut cr =
            obj("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: a}\n");
        set_namespace(&mut cr, "new").unwrap();
        assert_eq!(meta_str(&cr, "namespace"), "");
        // v1alpha1 is not in kustomize's table, so it is namespaced to kustomize.
        let mut cr =
            obj("apiVersion: rbac.authorization.k8s.io/v1alpha1\nkind: ClusterRole\nmetadata: {name: a}\n");
        set_namespace(&mut cr, "new").unwrap();
        assert_eq!(meta_str(&cr, "namespace"), "new");
    }

    #[test]
    fn namespace_objects_are_renamed_and_default_subjects_moved() {
        let mut ns = obj("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
        set_namespace(&mut ns, "new").unwrap();
        assert_eq!(meta_str(&ns, "name"), "new");
        let mut rb = obj(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: a}\nsubjects:\n- {kind: ServiceAccount, name: default, namespace: x}\n- {kind: ServiceAccount, name: other, namespace: x}\n",
        );
        set_namespace(&mut rb, "new").unwrap();
        assert_eq!(rb["subjects"][0]["namespace"], "new");
        assert_eq!(rb["subjects"][1]["namespace"], "x");
    }
}
