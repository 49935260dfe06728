//! Which remote objects may be deleted, and in which order: Kluctl's "deletable" rules and its
//! candidate ordering, as pure functions over listed metadata.
//!
//! ```text
//! RemoteObjects ─► inclusion (tag labels, item-dir annotation) ─► deletable? ─► not rendered?
//!               ─► ordered: Namespaces, CRD-heavy groups, workloads/services, everything else
//! ```
//!
//! An object is deletable when none of these hold (first match wins, see [`KeepReason`]):
//! `kluctl.io/skip-delete` is true; `helm.sh/resource-policy` is `keep`; unless
//! `kluctl.io/force-managed` is true, it has ownerReferences, no managedFields, or no
//! managedFields entry of manager `kluctl`; tag inclusion rules are active and
//! `kluctl.io/skip-delete-if-tags` is true.
//!
//! Deviation, on purpose: Kluctl v2.28 asks for inclusion rules of type "tags" while its rules
//! are of type "tag", so `skip-delete-if-tags` never takes effect there. We honour it as Kluctl
//! documents it (active whenever `-I`/`-E` tag rules are given); this can only keep objects.

use std::collections::BTreeSet;

use gitops_api::constants::{FORCE_MANAGED_ANNOTATION, KLUCTL_FIELD_MANAGER, SKIP_DELETE_ANNOTATION};
use gitops_api::kluctl::v1beta1::ObjectRef;
use kube::core::ObjectMeta;

use crate::project::inclusion::{Entry, Inclusion};
use crate::remote::{ApiIndex, RemoteObjects, versionless};
use crate::values::parse_go_bool;

/// Annotation keeping an object when tag inclusion rules are active.
pub const SKIP_DELETE_IF_TAGS_ANNOTATION: &str = "kluctl.io/skip-delete-if-tags";
/// Helm's annotation; `keep` keeps the object.
pub const HELM_RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";
/// Annotation naming the deployment item directory of an object.
pub const DEPLOYMENT_ITEM_DIR_ANNOTATION: &str = "kluctl.io/deployment-item-dir";
/// Prefix of the tag labels (`kluctl.io/tag-0`, `kluctl.io/tag-1`, ...).
const TAG_LABEL_PREFIX: &str = "kluctl.io/tag-";

/// Delete order, as Kluctl has it: each stage names kinds, API groups or resource plurals; the
/// last stage (empty) takes everything left.
const DELETE_ORDER: &[&[&str]] = &[
    &["Namespace"],
    &[
        "monitoring.coreos.com",
        "kafka.strimzi.io",
        "zookeeper.pravega.io",
        "elasticsearch.k8s.elastic.co",
        "cert-manager.io",
        "bitnami.com",
        "acid.zalan.do",
    ],
    &["Deployment", "StatefulSet", "DaemonSet", "Service", "Ingress"],
    &[],
];

/// Why an object is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// `kluctl.io/skip-delete: "true"`.
    SkipDelete,
    /// `helm.sh/resource-policy: keep`.
    HelmKeep,
    /// It has ownerReferences: its owner manages its life.
    Owned,
    /// No managedFields: nobody can tell who manages it.
    NoManagedFields,
    /// No managedFields entry of manager `kluctl`.
    NotManagedByKluctl,
    /// `kluctl.io/skip-delete-if-tags: "true"` while tag inclusion rules are active.
    SkipDeleteIfTags,
}

impl KeepReason {
    /// Why the object stays, for the warning that lists kept orphans.
    pub fn message(self) -> &'static str {
        match self {
            Self::SkipDelete => "annotation kluctl.io/skip-delete is set",
            Self::HelmKeep => "annotation helm.sh/resource-policy is keep",
            Self::Owned => "it has ownerReferences",
            Self::NoManagedFields => "it has no managedFields",
            Self::NotManagedByKluctl => "kluctl does not manage any of its fields",
            Self::SkipDeleteIfTags => {
                "annotation kluctl.io/skip-delete-if-tags is set and tags are included or excluded"
            }
        }
    }

    /// Whether the user asked for the object to stay (an annotation), as opposed to objects
    /// that are not ours to delete at all (owned, unmanaged).
    pub fn is_requested(self) -> bool {
        matches!(self, Self::SkipDelete | Self::HelmKeep | Self::SkipDeleteIfTags)
    }
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn annotation_true(meta: &ObjectMeta, key: &str) -> bool {
    annotation(meta, key).and_then(parse_go_bool).unwrap_or(false)
}

/// Whether the object with `meta` may be deleted; `Err` says why not.
///
/// # Errors
/// The [`KeepReason`] of the first rule that keeps the object.
pub fn deletable(meta: &ObjectMeta, tag_rules_active: bool) -> Result<(), KeepReason> {
    if annotation_true(meta, SKIP_DELETE_ANNOTATION) {
        return Err(KeepReason::SkipDelete);
    }
    if annotation(meta, HELM_RESOURCE_POLICY_ANNOTATION) == Some("keep") {
        return Err(KeepReason::HelmKeep);
    }
    if !annotation_true(meta, FORCE_MANAGED_ANNOTATION) {
        if meta.owner_references.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(KeepReason::Owned);
        }
        let fields = meta.managed_fields.as_deref().unwrap_or_default();
        if fields.is_empty() {
            return Err(KeepReason::NoManagedFields);
        }
        if !fields
            .iter()
            .any(|f| f.manager.as_deref() == Some(KLUCTL_FIELD_MANAGER))
        {
            return Err(KeepReason::NotManagedByKluctl);
        }
    }
    if tag_rules_active && annotation_true(meta, SKIP_DELETE_IF_TAGS_ANNOTATION) {
        return Err(KeepReason::SkipDeleteIfTags);
    }
    Ok(())
}

/// The inclusion entries of a remote object: its `kluctl.io/tag-<n>` label values and its
/// `kluctl.io/deployment-item-dir` annotation.
pub fn inclusion_entries(meta: &ObjectMeta) -> Vec<Entry> {
    let mut entries: Vec<Entry> = meta
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            k.strip_prefix(TAG_LABEL_PREFIX)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|(_, v)| Entry::Tag(v.clone()))
        .collect();
    if let Some(dir) = annotation(meta, DEPLOYMENT_ITEM_DIR_ANNOTATION) {
        entries.push(Entry::DeploymentItemDir(dir.to_owned()));
    }
    entries
}

/// `reference` as compared against remote objects: no version, no namespace for cluster-scoped
/// kinds, `default` for namespaced kinds without one (unknown kinds stay as they are).
fn exclusion_key(index: &ApiIndex, reference: &ObjectRef) -> ObjectRef {
    let mut key = versionless(reference);
    match index.is_namespaced(&reference.group, &reference.kind) {
        Some(false) => key.namespace.clear(),
        Some(true) if key.namespace.is_empty() => "default".clone_into(&mut key.namespace),
        _ => {}
    }
    key
}

/// The remote objects to delete, in Kluctl's order: remote objects inside `inclusion`, minus
/// `excluded` (the rendered objects when pruning; nothing for delete-all), kept only when
/// [`deletable`] and when their kind is served by the cluster. Within a stage, objects are
/// sorted by reference so the order is stable.
pub fn objects_for_delete(
    remote: &RemoteObjects,
    index: &ApiIndex,
    inclusion: &Inclusion,
    excluded: &[ObjectRef],
) -> Vec<ObjectRef> {
    let tag_rules_active = inclusion.has_tag_rules();
    let mut seen: BTreeSet<ObjectRef> = excluded.iter().map(|r| exclusion_key(index, r)).collect();
    let candidates: Vec<(&ObjectRef, &ObjectMeta)> = remote
        .objects
        .iter()
        .filter(|(_, meta)| inclusion.check(&inclusion_entries(meta), false))
        .filter(|(_, meta)| deletable(meta, tag_rules_active).is_ok())
        .collect();
    let preferred = index.preferred();
    let mut out = Vec::new();
    for stage in DELETE_ORDER {
        let kinds: BTreeSet<(&str, &str)> = preferred
            .iter()
            .filter(|e| {
                stage.is_empty()
                    || stage
                        .iter()
                        .any(|f| e.resource.plural == *f || e.resource.group == *f || e.resource.kind == *f)
            })
            .map(|e| (e.resource.group.as_str(), e.resource.kind.as_str()))
            .collect();
        for (reference, _) in &candidates {
            if !kinds.contains(&(reference.group.as_str(), reference.kind.as_str())) {
                continue;
            }
            if seen.insert(exclusion_key(index, reference)) {
                out.push((*reference).clone());
            }
        }
    }
    out
}

/// The orphans a prune keeps because an annotation asks for it (`kluctl.io/skip-delete`,
/// `helm.sh/resource-policy: keep`, `kluctl.io/skip-delete-if-tags`), with the reason, so
/// results can list them instead of leaving the user to wonder why an object stayed.
pub fn kept_orphans(
    remote: &RemoteObjects,
    index: &ApiIndex,
    rendered: &[ObjectRef],
    inclusion: &Inclusion,
) -> Vec<(ObjectRef, KeepReason)> {
    let tag_rules_active = inclusion.has_tag_rules();
    let rendered: BTreeSet<ObjectRef> = rendered.iter().map(|r| exclusion_key(index, r)).collect();
    remote
        .objects
        .iter()
        .filter(|(_, meta)| inclusion.check(&inclusion_entries(meta), false))
        .filter(|(reference, _)| !rendered.contains(&exclusion_key(index, reference)))
        .filter_map(|(reference, meta)| match deletable(meta, tag_rules_active) {
            Err(reason) if reason.is_requested() => Some((reference.clone(), reason)),
            _ => None,
        })
        .collect()
}

/// The orphans of a deployment: deletable remote objects inside `inclusion` that are not among
/// `rendered` (what diff and deploy report; [`super::plan_prune`] deletes them).
pub fn find_orphans(
    remote: &RemoteObjects,
    index: &ApiIndex,
    rendered: &[ObjectRef],
    inclusion: &Inclusion,
) -> Vec<ObjectRef> {
    objects_for_delete(remote, index, inclusion, rendered)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Remote objects built from JSON metadata fixtures.
    use super::*;
    use crate::remote::Discriminator;

    /// A reference `group/version` `kind` `namespace/name`.
    pub fn reference(group: &str, version: &str, kind: &str, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    /// Metadata managed by `kluctl` with extra JSON merged in.
    pub fn meta(extra: serde_json::Value) -> ObjectMeta {
        let mut base = serde_json::json!({
            "labels": {"kluctl.io/discriminator": "d"},
            "managedFields": [{"manager": "kluctl", "operation": "Apply", "apiVersion": "v1"}],
        });
        if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
            b.extend(e);
        }
        serde_json::from_value(base).expect("valid ObjectMeta fixture")
    }

    /// Remote objects of discriminator `d`.
    pub fn remote(objects: Vec<(ObjectRef, ObjectMeta)>) -> RemoteObjects {
        let mut r = RemoteObjects::new(Discriminator::new("d").expect("valid"));
        r.objects.extend(objects);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{meta, reference, remote};
    use super::*;
    use crate::remote::resources::test_support::index;
    use serde_json::json;

    fn strings(refs: &[ObjectRef]) -> Vec<String> {
        refs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn kluctl_managed_object_without_marks_is_deletable() {
        assert_eq!(deletable(&meta(json!({})), false), Ok(()));
        assert_eq!(deletable(&meta(json!({})), true), Ok(()));
    }

    #[test]
    fn skip_delete_and_helm_keep_keep_objects_even_when_force_managed() {
        let skip = meta(
            json!({"annotations": {"kluctl.io/skip-delete": "true", "kluctl.io/force-managed": "true"}}),
        );
        assert_eq!(deletable(&skip, false), Err(KeepReason::SkipDelete));
        // Go's ParseBool spellings count; anything else is the default (false).
        assert_eq!(
            deletable(
                &meta(json!({"annotations": {"kluctl.io/skip-delete": "T"}})),
                false
            ),
            Err(KeepReason::SkipDelete)
        );
        assert_eq!(
            deletable(
                &meta(json!({"annotations": {"kluctl.io/skip-delete": "yes"}})),
                false
            ),
            Ok(())
        );
        let keep = meta(json!({"annotations": {"helm.sh/resource-policy": "keep"}}));
        assert_eq!(deletable(&keep, false), Err(KeepReason::HelmKeep));
        let other_policy = meta(json!({"annotations": {"helm.sh/resource-policy": "delete"}}));
        assert_eq!(deletable(&other_policy, false), Ok(()));
    }

    #[test]
    fn owned_unmanaged_and_foreign_managed_objects_are_kept_unless_force_managed() {
        let owned = meta(
            json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1"}]}),
        );
        assert_eq!(deletable(&owned, false), Err(KeepReason::Owned));
        let no_fields = meta(json!({"managedFields": []}));
        assert_eq!(deletable(&no_fields, false), Err(KeepReason::NoManagedFields));
        let foreign = meta(json!({"managedFields": [
            {"manager": "kubectl", "operation": "Apply"},
            {"manager": "kluctl-controller", "operation": "Update"},
        ]}));
        assert_eq!(deletable(&foreign, false), Err(KeepReason::NotManagedByKluctl));
        let mixed = meta(json!({"managedFields": [{"manager": "kubectl"}, {"manager": "kluctl"}]}));
        assert_eq!(deletable(&mixed, false), Ok(()));
        for m in [owned, no_fields, foreign] {
            let mut forced = m.clone();
            forced
                .annotations
                .get_or_insert_with(Default::default)
                .insert("kluctl.io/force-managed".into(), "true".into());
            assert_eq!(deletable(&forced, false), Ok(()), "{m:?}");
        }
    }

    #[test]
    fn kept_orphans_name_the_annotation_and_skip_rendered_and_unmanaged_objects() {
        let cm = |n: &str| reference("", "v1", "ConfigMap", "ns", n);
        let mut owned = meta(json!({}));
        owned.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference::default(),
        ]);
        let remote = remote(vec![
            (
                cm("kept"),
                meta(json!({"annotations": {"kluctl.io/skip-delete": "true"}})),
            ),
            (
                cm("rendered"),
                meta(json!({"annotations": {"kluctl.io/skip-delete": "true"}})),
            ),
            (cm("orphan"), meta(json!({}))),
            (cm("owned"), owned),
        ]);
        let index = index();
        let kept = kept_orphans(&remote, &index, &[cm("rendered")], &Inclusion::default());
        assert_eq!(kept, vec![(cm("kept"), KeepReason::SkipDelete)]);
        assert_eq!(kept[0].1.message(), "annotation kluctl.io/skip-delete is set");
    }

    #[test]
    fn skip_delete_if_tags_only_counts_with_tag_rules() {
        let m = meta(json!({"annotations": {"kluctl.io/skip-delete-if-tags": "true"}}));
        assert_eq!(deletable(&m, false), Ok(()));
        assert_eq!(deletable(&m, true), Err(KeepReason::SkipDeleteIfTags));
    }

    #[test]
    fn inclusion_entries_read_numbered_tag_labels_and_the_item_dir() {
        let m = meta(json!({
            "labels": {"kluctl.io/tag-0": "web", "kluctl.io/tag-12": "apps", "kluctl.io/tag-x": "no", "kluctl.io/tag-": "no"},
            "annotations": {"kluctl.io/deployment-item-dir": "apps/web"},
        }));
        let mut entries = inclusion_entries(&m);
        entries.sort();
        assert_eq!(
            entries,
            [
                Entry::Tag("apps".into()),
                Entry::Tag("web".into()),
                Entry::DeploymentItemDir("apps/web".into())
            ]
        );
    }

    #[test]
    fn delete_order_is_namespaces_then_crd_groups_then_workloads_then_rest() {
        let objects = vec![
            (reference("", "v1", "ConfigMap", "app", "cm"), meta(json!({}))),
            (
                reference("apps", "v1", "Deployment", "app", "web"),
                meta(json!({})),
            ),
            (reference("", "v1", "Service", "app", "web"), meta(json!({}))),
            (
                reference("monitoring.coreos.com", "v1", "ServiceMonitor", "app", "web"),
                meta(json!({})),
            ),
            (reference("", "v1", "Namespace", "", "app"), meta(json!({}))),
            (
                reference("rbac.authorization.k8s.io", "v1", "ClusterRole", "", "reader"),
                meta(json!({})),
            ),
            (
                reference("networking.k8s.io", "v1", "Ingress", "app", "web"),
                meta(json!({})),
            ),
            (reference("", "v1", "Namespace", "", "aaa"), meta(json!({}))),
        ];
        let out = objects_for_delete(&remote(objects), &index(), &Inclusion::default(), &[]);
        assert_eq!(
            strings(&out),
            [
                "Namespace/aaa",
                "Namespace/app",
                "app/ServiceMonitor/web",
                // Within a stage: sorted by reference (group first).
                "app/Service/web",
                "app/Deployment/web",
                "app/Ingress/web",
                "app/ConfigMap/cm",
                "ClusterRole/reader",
            ]
        );
    }

    #[test]
    fn orphans_exclude_rendered_objects_whatever_their_version_or_namespace_spelling() {
        let objects = vec![
            (
                reference("example.com", "v1beta2", "Widget", "default", "kept"),
                meta(json!({})),
            ),
            (
                reference("rbac.authorization.k8s.io", "v1", "ClusterRole", "", "kept"),
                meta(json!({})),
            ),
            (reference("", "v1", "ConfigMap", "app", "gone"), meta(json!({}))),
            (
                reference("", "v1", "ConfigMap", "app", "skipped"),
                meta(json!({"annotations": {"kluctl.io/skip-delete": "true"}})),
            ),
            (
                reference("", "v1", "ConfigMap", "app", "foreign"),
                meta(json!({"managedFields": [{"manager": "helm"}]})),
            ),
            // A kind the cluster no longer serves is never a candidate.
            (
                reference("gone.example.com", "v1", "Thing", "app", "t"),
                meta(json!({})),
            ),
        ];
        let rendered = [
            // Rendered at another version and without a namespace (the render left it to default).
            reference("example.com", "v1alpha1", "Widget", "", "kept"),
            // Cluster-scoped kind rendered with a stray namespace.
            reference("rbac.authorization.k8s.io", "v1", "ClusterRole", "app", "kept"),
        ];
        let out = find_orphans(&remote(objects), &index(), &rendered, &Inclusion::default());
        assert_eq!(strings(&out), ["app/ConfigMap/gone"]);
    }

    #[test]
    fn inclusion_limits_candidates_to_included_items() {
        let tagged = |tag: &str, name: &str| {
            (
                reference("", "v1", "ConfigMap", "app", name),
                meta(json!({"labels": {"kluctl.io/tag-0": tag}})),
            )
        };
        let objects = vec![
            tagged("web", "web"),
            tagged("db", "db"),
            (
                reference("", "v1", "ConfigMap", "app", "web-keep"),
                meta(json!({
                    "labels": {"kluctl.io/tag-0": "web"},
                    "annotations": {"kluctl.io/skip-delete-if-tags": "true"},
                })),
            ),
        ];
        let r = remote(objects);
        let include_web = Inclusion::from_flags(&["web".into()], &[], &[], &[]).unwrap();
        assert_eq!(
            strings(&objects_for_delete(&r, &index(), &include_web, &[])),
            ["app/ConfigMap/web"]
        );
        let exclude_web = Inclusion::from_flags(&[], &["web".into()], &[], &[]).unwrap();
        assert_eq!(
            strings(&objects_for_delete(&r, &index(), &exclude_web, &[])),
            ["app/ConfigMap/db"]
        );
        assert_eq!(
            strings(&objects_for_delete(&r, &index(), &Inclusion::default(), &[])),
            ["app/ConfigMap/db", "app/ConfigMap/web", "app/ConfigMap/web-keep"]
        );
    }
}
