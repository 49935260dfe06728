//! [`ResultBuilder`]: collects what deploy, diff, prune and delete find, object by object, and
//! turns it into a [`CommandResult`]'s objects, errors and warnings with Kluctl's merge rules.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Change, CommandResult, DeploymentError, ObjectRef, ResultObject};

/// Collects what deploy/diff/prune/delete find, object by object, and turns it into the
/// objects, errors and warnings of a [`CommandResult`] with Kluctl's merge rules.
///
/// All references given here are diff references (the `kluctl.io/diff-name` applied, see
/// [`crate::diff::diff_ref`]).
#[derive(Debug, Default)]
pub struct ResultBuilder {
    objects: BTreeMap<ObjectRef, ResultObject>,
    errors: Vec<DeploymentError>,
    warnings: Vec<DeploymentError>,
}

impl ResultBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, r: &ObjectRef) -> &mut ResultObject {
        self.objects.entry(r.clone()).or_insert_with(|| ResultObject {
            object: r.clone(),
            ..ResultObject::default()
        })
    }

    /// Records the rendered object.
    pub fn set_rendered(&mut self, r: &ObjectRef, o: Value) {
        self.entry(r).rendered = Some(o);
    }

    /// Records the live object as found before the command.
    pub fn set_remote(&mut self, r: &ObjectRef, o: Value) {
        self.entry(r).remote = Some(o);
    }

    /// Records the object as the apply returned it.
    pub fn set_applied(&mut self, r: &ObjectRef, o: Value) {
        self.entry(r).applied = Some(o);
    }

    /// Marks the object as newly created (ignored at [`Self::finish`] if it also has changes).
    pub fn add_new(&mut self, r: &ObjectRef) {
        self.entry(r).new = true;
    }

    /// Records the changes of an object (an empty list records nothing).
    pub fn add_changed(&mut self, r: &ObjectRef, changes: Vec<Change>) {
        if !changes.is_empty() {
            self.entry(r).changes = changes;
        }
    }

    /// Marks the object as orphan (ignored at [`Self::finish`] if it was also deleted).
    pub fn add_orphan(&mut self, r: &ObjectRef) {
        self.entry(r).orphan = true;
    }

    /// Marks the object as deleted.
    pub fn add_deleted(&mut self, r: &ObjectRef) {
        self.entry(r).deleted = true;
    }

    /// Marks the object as an applied hook.
    pub fn add_hook(&mut self, r: &ObjectRef) {
        self.entry(r).hook = true;
    }

    /// Adds an error (duplicates are dropped); use `ObjectRef::default()` for run-wide errors.
    pub fn add_error(&mut self, r: &ObjectRef, message: impl Into<String>) {
        push_unique(&mut self.errors, r, message.into());
    }

    /// Adds a warning (duplicates are dropped).
    pub fn add_warning(&mut self, r: &ObjectRef, message: impl Into<String>) {
        push_unique(&mut self.warnings, r, message.into());
    }

    /// Moves the collected objects, errors and warnings into `result` (appending to its errors
    /// and warnings).
    ///
    /// Rules (Kluctl's): an object with changes is not also "new"; an orphan that was deleted is
    /// no longer an orphan; objects that were neither rendered, applied, deleted nor orphan (seen
    /// only because something copied our labels) are dropped. Objects are sorted by
    /// `group/version, Kind=kind` and then by reference so output is stable.
    pub fn finish(self, result: &mut CommandResult) {
        let mut objects: Vec<ResultObject> = self
            .objects
            .into_values()
            .filter_map(|mut o| {
                if !o.changes.is_empty() {
                    o.new = false;
                }
                if o.deleted {
                    o.orphan = false;
                }
                let keep = o.rendered.is_some() || o.applied.is_some() || o.deleted || o.orphan;
                keep.then_some(o)
            })
            .collect();
        objects.sort_by_cached_key(|o| (gvk_string(&o.object), o.object.clone()));
        result.objects = objects;
        result.errors.extend(self.errors);
        result.warnings.extend(self.warnings);
    }
}

pub(crate) fn push_unique(list: &mut Vec<DeploymentError>, r: &ObjectRef, message: String) {
    let e = DeploymentError {
        object_ref: r.clone(),
        message,
    };
    if !list.contains(&e) {
        list.push(e);
    }
}

/// Go's `schema.GroupVersionKind.String()`: `group/version, Kind=kind`.
fn gvk_string(r: &ObjectRef) -> String {
    format!("{}/{}, Kind={}", r.group, r.version, r.kind)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{change, cm};
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_applies_kluctls_merge_rules_and_sorts_by_gvk_then_ref() {
        let mut b = ResultBuilder::new();
        let deploy = ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            name: "d".into(),
            namespace: "ns".into(),
        };
        b.set_rendered(&deploy, json!({}));
        b.set_rendered(&cm("b"), json!({}));
        b.add_new(&cm("b"));
        b.add_changed(&cm("b"), vec![change()]);
        b.set_rendered(&cm("a"), json!({}));
        b.add_new(&cm("a"));
        b.add_orphan(&cm("gone"));
        b.add_deleted(&cm("gone"));
        b.set_remote(&cm("foreign"), json!({}));
        b.add_error(&cm("a"), "failed");
        b.add_error(&cm("a"), "failed");
        let mut r = CommandResult::default();
        b.finish(&mut r);
        let refs: Vec<String> = r.objects.iter().map(|o| o.object.to_string()).collect();
        assert_eq!(
            refs,
            [
                "ns/ConfigMap/a",
                "ns/ConfigMap/b",
                "ns/ConfigMap/gone",
                "ns/Deployment/d"
            ]
        );
        assert!(r.objects[0].new);
        assert!(!r.objects[1].new, "an object with changes is not also new");
        assert!(r.objects[2].deleted && !r.objects[2].orphan);
        assert_eq!(r.errors.len(), 1);
        let s = r.summary();
        assert_eq!(
            (
                s.new_objects,
                s.changed_objects,
                s.deleted_objects,
                s.orphan_objects
            ),
            (1, 1, 1, 0)
        );
        assert_eq!((s.rendered_objects, s.total_changes), (3, 1));
    }
}
