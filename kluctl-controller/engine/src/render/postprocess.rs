//! Post-processing of one deployment item's kustomize output, before objects leave the render:
//!
//! ```text
//! objects ─► drop `kluctl.io/ignore: "true"` (also inside List items)
//!         ─► set common labels (commonLabels root→leaf, kluctl.io/discriminator, kluctl.io/tag-N)
//!            and annotations (commonAnnotations, kluctl.io/deployment-item-dir,
//!            kluctl.io/skip-delete-if-tags) on every object and List item
//!         ─► resolve images.get_image placeholders (see [`super::images`])
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::project::config::FixedImage;

use super::images::{ImageError, Images};

/// The label Kluctl finds its objects by.
pub const DISCRIMINATOR_LABEL: &str = "kluctl.io/discriminator";
/// The annotation naming the item dir an object was rendered from.
pub const DEPLOYMENT_ITEM_DIR_ANNOTATION: &str = "kluctl.io/deployment-item-dir";
/// The annotation marking objects of `skipDeleteIfTags` items.
pub const SKIP_DELETE_IF_TAGS_ANNOTATION: &str = "kluctl.io/skip-delete-if-tags";
/// The annotation that drops an object from the render.
pub const IGNORE_ANNOTATION: &str = "kluctl.io/ignore";

/// What one deployment item stamps on its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemMetadata {
    /// `commonLabels` merged from the root project to this item (inner wins).
    pub common_labels: BTreeMap<String, String>,
    /// `commonAnnotations` merged the same way.
    pub common_annotations: BTreeMap<String, String>,
    /// The rendered target discriminator; empty means none.
    pub discriminator: String,
    /// The item's tags in order (inherited first, deduplicated).
    pub tags: Vec<String>,
    /// The item dir relative to the source root, `/`-separated.
    pub item_dir: String,
    /// Whether the item sets `skipDeleteIfTags`.
    pub skip_delete_if_tags: bool,
}

impl ItemMetadata {
    /// The labels set on every object of the item.
    #[must_use]
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.common_labels.clone();
        if !self.discriminator.is_empty() {
            l.insert(DISCRIMINATOR_LABEL.to_owned(), self.discriminator.clone());
        }
        for (i, t) in self.tags.iter().enumerate() {
            l.insert(format!("kluctl.io/tag-{i}"), t.clone());
        }
        l
    }

    /// The annotations set on every object of the item.
    #[must_use]
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut a = self.common_annotations.clone();
        a.insert(DEPLOYMENT_ITEM_DIR_ANNOTATION.to_owned(), self.item_dir.clone());
        if self.skip_delete_if_tags {
            a.insert(SKIP_DELETE_IF_TAGS_ANNOTATION.to_owned(), "true".to_owned());
        }
        a
    }
}

/// Post-processes the objects of one item in place.
///
/// `vars_images` are the fixed images from the item's `images` var (consulted after the
/// CLI/target ones held by `images`).
///
/// # Errors
/// Every unresolvable image placeholder, collected (the objects are still processed).
pub fn postprocess(
    objects: &mut Vec<Value>,
    meta: &ItemMetadata,
    images: &Images,
    vars_images: &[FixedImage],
) -> Result<(), Vec<ImageError>> {
    let labels = meta.labels();
    let annotations = meta.annotations();
    let mut errors = Vec::new();
    objects.retain(|o| !is_ignored(o));
    let mut handle = |o: &mut Value| {
        stamp(o, "labels", &labels);
        stamp(o, "annotations", &annotations);
        if let Err(e) = images.resolve_placeholders(o, meta, vars_images) {
            errors.push(e);
        }
    };
    for o in objects.iter_mut() {
        handle(o);
        if is_list(o)
            && let Some(Value::Array(items)) = o.get_mut("items")
        {
            items.retain(|i| !is_ignored(i));
            items.iter_mut().for_each(&mut handle);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Whether `o` is a `v1/List` (only that exact kind: Kluctl leaves `ConfigMapList` & co. alone).
fn is_list(o: &Value) -> bool {
    o.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && o.get("kind").and_then(Value::as_str) == Some("List")
}

/// An annotation read as a Go `strconv.ParseBool` value; anything unparsable is `false`.
#[must_use]
pub fn annotation_bool(o: &Value, name: &str) -> bool {
    crate::annotation_bool(o, name) == Some(true)
}

fn is_ignored(o: &Value) -> bool {
    annotation_bool(o, IGNORE_ANNOTATION)
}

/// Sets `metadata.<field>[k] = v` for every entry, creating the maps when missing.
fn stamp(o: &mut Value, field: &str, entries: &BTreeMap<String, String>) {
    if entries.is_empty() {
        return;
    }
    let Some(obj) = o.as_object_mut() else { return };
    let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Some(meta) = meta.as_object_mut() else { return };
    let target = meta.entry(field).or_insert_with(|| Value::Object(Map::new()));
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(target) = target.as_object_mut() {
        for (k, v) in entries {
            target.insert(k.clone(), Value::String(v.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> ItemMetadata {
        ItemMetadata {
            common_labels: BTreeMap::from([("app".to_owned(), "demo".to_owned())]),
            common_annotations: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
            discriminator: "kluctl-demo".to_owned(),
            tags: vec!["root".to_owned(), "web".to_owned()],
            item_dir: "apps/web".to_owned(),
            skip_delete_if_tags: true,
        }
    }

    #[test]
    fn labels_and_annotations_are_stamped_on_objects_and_list_items() {
        let mut objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "y", "app": "old"}}}),
            json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t", "annotations": {"kluctl.io/ignore": "true"}}}
            ]}),
        ];
        postprocess(&mut objects, &meta(), &Images::default(), &[]).unwrap();
        assert_eq!(
            objects[0]["metadata"]["labels"],
            json!({"x": "y", "app": "demo", "kluctl.io/discriminator": "kluctl-demo",
                   "kluctl.io/tag-0": "root", "kluctl.io/tag-1": "web"})
        );
        assert_eq!(
            objects[0]["metadata"]["annotations"],
            json!({"team": "a", "kluctl.io/deployment-item-dir": "apps/web",
                   "kluctl.io/skip-delete-if-tags": "true"})
        );
        let items = objects[1]["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "ignored list item dropped");
        assert_eq!(items[0]["metadata"]["labels"]["kluctl.io/tag-1"], "web");
        assert_eq!(
            objects[1]["metadata"]["labels"]["kluctl.io/discriminator"], "kluctl-demo",
            "the List itself is stamped too"
        );
    }

    #[test]
    fn only_v1_list_items_are_processed() {
        let mut objects = vec![json!({"apiVersion": "v1", "kind": "ConfigMapList", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        ]})];
        postprocess(&mut objects, &meta(), &Images::default(), &[]).unwrap();
        assert!(objects[0]["items"][0]["metadata"].get("labels").is_none());
    }

    #[test]
    fn ignored_objects_are_dropped_with_go_bool_parsing() {
        let mut objects = vec![
            json!({"kind": "A", "metadata": {"name": "1", "annotations": {"kluctl.io/ignore": "True"}}}),
            json!({"kind": "A", "metadata": {"name": "2", "annotations": {"kluctl.io/ignore": "1"}}}),
            json!({"kind": "A", "metadata": {"name": "3", "annotations": {"kluctl.io/ignore": "yes"}}}),
            json!({"kind": "A", "metadata": {"name": "4", "annotations": {"kluctl.io/ignore": "false"}}}),
        ];
        postprocess(&mut objects, &ItemMetadata::default(), &Images::default(), &[]).unwrap();
        let names: Vec<_> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["3", "4"]);
    }

    #[test]
    fn no_discriminator_means_no_discriminator_label() {
        let m = ItemMetadata {
            item_dir: ".".to_owned(),
            ..ItemMetadata::default()
        };
        assert!(m.labels().is_empty());
        assert_eq!(
            m.annotations(),
            BTreeMap::from([(DEPLOYMENT_ITEM_DIR_ANNOTATION.to_owned(), ".".to_owned())])
        );
    }
}
