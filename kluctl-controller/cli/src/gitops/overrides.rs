//! The `overridesPatch` of a request: the override flags the user gave, as the `spec` part of a
//! JSON merge patch (`{"spec": {...}}`, see `request::annotation_value`) that the controller
//! applies to its in-memory copy of the object for this one request.
//!
//! ```text
//! OverrideFlags ──► Overrides::resolve (reads -F/--fixed-images-file, -a/--args-from-file;
//!                   no cluster yet, so a bad file fails first)
//!               ──► Overrides::patch(current spec) ──► {"dryRun": true, "images": [...], ...}
//! ```
//!
//! Merge patches replace lists, so the list overrides (images, tags, deployment dirs) carry the
//! object's current list with the new entries appended; `args` carries the current args with the
//! new ones deep-merged over them (as Kluctl builds it). A flag not given is not in the patch.

use serde_json::{Map, Value};

use crate::flags::gitops::{DeployOverrideFlags, OverrideFlags};
use crate::prepare::{external_args, fixed_images};
use gitops_api::kluctl::v1beta1::{FixedImage, KluctlDeploymentSpec};

/// The override flags, resolved (files read) and ready to patch any object's spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Overrides {
    /// Boolean spec fields given, by their JSON name, in flag order.
    bools: Vec<(&'static str, bool)>,
    /// String spec fields given (`target`, `targetNameOverride`, `context`).
    strings: Vec<(&'static str, String)>,
    /// Images to append to `spec.images`.
    images: Vec<FixedImage>,
    /// Args to merge into `spec.args` (`None`: no `-a` / `--args-from-file`).
    args: Option<Map<String, Value>>,
    /// Entries to append to the list fields, by JSON name (only non-empty ones).
    lists: Vec<(&'static str, Vec<String>)>,
}

impl Overrides {
    /// Resolves `flags` (and `deploy` for `deploy`/`reconcile`): reads the fixed-images and args
    /// files.
    ///
    /// # Errors
    /// A malformed `-a`, an unreadable or malformed file (named).
    pub(crate) fn resolve(
        flags: &OverrideFlags,
        deploy: Option<&DeployOverrideFlags>,
    ) -> anyhow::Result<Self> {
        let mut bools = Vec::new();
        let given = [
            ("dryRun", flags.dry_run),
            ("forceApply", flags.force_apply),
            ("replaceOnError", flags.replace_on_error),
            ("forceReplaceOnError", flags.force_replace_on_error),
            ("abortOnError", flags.abort_on_error),
            ("noWait", deploy.and_then(|d| d.no_wait)),
            ("prune", deploy.and_then(|d| d.prune)),
        ];
        for (field, value) in given {
            if let Some(v) = value {
                bools.push((field, v));
            }
        }
        let strings = [
            ("target", &flags.target),
            ("targetNameOverride", &flags.target_name_override),
            ("context", &flags.target_context),
        ]
        .into_iter()
        .filter_map(|(field, v)| v.clone().map(|v| (field, v)))
        .collect();
        let args = if flags.args.arg.is_empty() && flags.args.args_from_file.is_empty() {
            None
        } else {
            match external_args(&flags.args)? {
                Value::Object(m) => Some(m),
                _ => Some(Map::new()),
            }
        };
        let inclusion = &flags.inclusion;
        let lists = [
            ("includeTags", &inclusion.include_tag),
            ("excludeTags", &inclusion.exclude_tag),
            ("includeDeploymentDirs", &inclusion.include_deployment_dir),
            ("excludeDeploymentDirs", &inclusion.exclude_deployment_dir),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(field, v)| (field, v.clone()))
        .collect();
        Ok(Self {
            bools,
            strings,
            images: fixed_images(&flags.images)?,
            args,
            lists,
        })
    }

    /// The `overridesPatch` for an object whose spec is `spec`; empty when no override was given.
    pub(crate) fn patch(&self, spec: &KluctlDeploymentSpec) -> Map<String, Value> {
        let mut patch = Map::new();
        for (field, v) in &self.bools {
            patch.insert((*field).to_owned(), Value::Bool(*v));
        }
        for (field, v) in &self.strings {
            patch.insert((*field).to_owned(), Value::String(v.clone()));
        }
        if !self.images.is_empty() {
            let images = spec.images.iter().chain(&self.images).map(to_json).collect();
            patch.insert("images".to_owned(), Value::Array(images));
        }
        if let Some(args) = &self.args {
            let mut merged = Value::Object(spec.args.clone().unwrap_or_default());
            kluctl_engine::values::merge(&mut merged, Value::Object(args.clone()));
            patch.insert("args".to_owned(), merged);
        }
        for (field, new) in &self.lists {
            let current = match *field {
                "includeTags" => &spec.include_tags,
                "excludeTags" => &spec.exclude_tags,
                "includeDeploymentDirs" => &spec.include_deployment_dirs,
                _ => &spec.exclude_deployment_dirs,
            };
            let all = current.iter().chain(new).cloned().map(Value::String).collect();
            patch.insert((*field).to_owned(), Value::Array(all));
        }
        patch
    }
}

fn to_json(image: &FixedImage) -> Value {
    // A FixedImage is plain strings and lists: serializing it cannot fail.
    serde_json::to_value(image).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::gitops::GitopsDeployCmd;
    use clap::{Args as _, FromArgMatches as _};
    use serde_json::json;

    fn parse(args: &[&str]) -> GitopsDeployCmd {
        let cmd = GitopsDeployCmd::augment_args(clap::Command::new("deploy"));
        let m = cmd
            .try_get_matches_from(std::iter::once("deploy").chain(args.iter().copied()))
            .unwrap();
        GitopsDeployCmd::from_arg_matches(&m).unwrap()
    }

    fn patch_of(args: &[&str], spec: &Value) -> Value {
        let cmd = parse(args);
        let o = Overrides::resolve(&cmd.overrides, Some(&cmd.deploy)).unwrap();
        let spec: KluctlDeploymentSpec = serde_json::from_value(spec.clone()).unwrap();
        Value::Object(o.patch(&spec))
    }

    fn spec() -> Value {
        json!({
            "interval": "5m",
            "source": {"git": {"url": "https://example.com/org/repo.git"}},
            "dryRun": true,
            "images": [{"image": "nginx", "resultImage": "nginx:1"}],
            "args": {"env": "prod", "db": {"host": "a", "port": 5432}},
            "includeTags": ["web"],
        })
    }

    #[test]
    fn no_flags_give_an_empty_patch() {
        assert_eq!(patch_of(&[], &spec()), json!({}));
        assert_eq!(
            patch_of(&["--name", "x", "-n", "ns", "-o", "yaml"], &spec()),
            json!({})
        );
    }

    #[test]
    fn only_the_given_flags_are_in_the_patch_with_their_go_boolean_values() {
        assert_eq!(
            patch_of(
                &["--force-apply", "--dry-run=false", "--prune=0", "-t", "prod"],
                &spec()
            ),
            json!({"forceApply": true, "dryRun": false, "prune": false, "target": "prod"})
        );
        assert_eq!(
            patch_of(
                &[
                    "-T",
                    "renamed",
                    "--target-context",
                    "kind",
                    "--no-wait",
                    "--abort-on-error=true"
                ],
                &spec()
            ),
            json!({"targetNameOverride": "renamed", "context": "kind", "noWait": true, "abortOnError": true})
        );
        let cmd = GitopsDeployCmd::augment_args(clap::Command::new("deploy"));
        assert!(
            cmd.try_get_matches_from(["deploy", "--dry-run=maybe"]).is_err(),
            "a value Go's ParseBool rejects is a usage error"
        );
    }

    #[test]
    fn images_are_appended_to_the_objects_list() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("images.yaml");
        fs_err::write(&file, "images:\n  - image: redis\n    resultImage: redis:7\n").unwrap();
        let file_arg = file.display().to_string();
        assert_eq!(
            patch_of(
                &["-F", "busybox=busybox:2", "--fixed-images-file", &file_arg],
                &spec()
            ),
            json!({"images": [
                {"image": "nginx", "resultImage": "nginx:1"},
                {"image": "redis", "resultImage": "redis:7"},
                {"image": "busybox", "resultImage": "busybox:2"},
            ]})
        );
        let mut no_images = spec();
        no_images["images"] = json!([]);
        assert_eq!(
            patch_of(&["-F", "a=b"], &no_images),
            json!({"images": [{"image": "a", "resultImage": "b"}]})
        );
    }

    #[test]
    fn args_are_merged_into_the_objects_args() {
        assert_eq!(
            patch_of(&["-a", "db.port=6543", "-a", "debug=true"], &spec()),
            json!({"args": {"env": "prod", "db": {"host": "a", "port": 6543}, "debug": true}})
        );
        let mut no_args = spec();
        no_args.as_object_mut().unwrap().remove("args");
        assert_eq!(patch_of(&["-a", "x=1"], &no_args), json!({"args": {"x": 1}}));
    }

    #[test]
    fn tags_and_deployment_dirs_are_appended() {
        assert_eq!(
            patch_of(
                &["-I", "db", "-E", "slow", "--include-deployment-dir", "apps/a"],
                &spec()
            ),
            json!({
                "includeTags": ["web", "db"],
                "excludeTags": ["slow"],
                "includeDeploymentDirs": ["apps/a"],
            })
        );
    }

    #[test]
    fn a_missing_fixed_images_file_fails_while_resolving() {
        let cmd = parse(&["--fixed-images-file", "/nonexistent/images.yaml"]);
        let e = Overrides::resolve(&cmd.overrides, None).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/images.yaml"), "{e:#}");
    }
}
