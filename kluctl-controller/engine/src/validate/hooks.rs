//! The hook annotations as validation reads them: which rendered objects are hooks that are not
//! expected to exist after a deploy (and are therefore not validated), plus the diagnostics
//! Kluctl reports for malformed hook annotations while doing so.
//!
//! A hook is an object with `kluctl.io/hook` values or Helm hooks mapped onto them
//! (`pre-install` → `pre-deploy-initial`, ...). It stays on the cluster ("persistent") when all
//! its delete policies are `before-hook-creation` (the default) or `hook-failed`; hooks that are
//! deleted after success, or that only run on delete/rollback, are skipped by validate.
//!
//! The deploy step (apply/) reads the same model for weights, waits and timeouts.

use std::collections::BTreeSet;

use serde_json::Value;

use super::annotation;
use crate::values::parse_go_bool;

const KLUCTL_HOOKS: [&str; 6] = [
    "pre-deploy",
    "post-deploy",
    "pre-deploy-initial",
    "post-deploy-initial",
    "pre-deploy-upgrade",
    "post-deploy-upgrade",
];

const DELETE_POLICIES: [&str; 3] = ["before-hook-creation", "hook-succeeded", "hook-failed"];

/// Helm hooks and the Kluctl hook each becomes; delete and rollback hooks are recognised but
/// never run.
const HELM_HOOKS: [(&str, &str); 8] = [
    ("pre-install", "pre-deploy-initial"),
    ("post-install", "post-deploy-initial"),
    ("pre-delete", "pre-delete"),
    ("post-delete", "post-delete"),
    ("pre-upgrade", "pre-deploy-upgrade"),
    ("post-upgrade", "post-deploy-upgrade"),
    ("pre-rollback", "pre-rollback"),
    ("post-rollback", "post-rollback"),
];

/// Helm hooks Kluctl supports without a warning.
const SUPPORTED_HELM_HOOKS: [&str; 4] = ["pre-install", "post-install", "pre-upgrade", "post-upgrade"];

/// A rendered object's hook annotations, as far as validation needs them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookInfo {
    /// Hook points (Kluctl names; Helm ones mapped). Empty: the object is not a hook.
    pub hooks: BTreeSet<String>,
    /// Delete policies (`before-hook-creation` when none is given).
    pub delete_policies: BTreeSet<String>,
    /// `kluctl.io/hook-weight` (or `helm.sh/hook-weight`): hooks run in ascending weight.
    pub weight: i32,
    /// `kluctl.io/hook-wait` (default true): wait for the hook to become ready.
    pub wait: bool,
    /// `kluctl.io/hook-timeout`: the readiness timeout of this hook (default: the command's).
    pub timeout: Option<std::time::Duration>,
    /// Problems with the annotations, reported as errors of the object.
    pub errors: Vec<String>,
    /// Problems reported as warnings (unsupported Helm hooks).
    pub warnings: Vec<String>,
}

impl HookInfo {
    /// Reads the hook annotations of `obj` (objects marked `kluctl.io/delete` are never hooks).
    pub fn of(obj: &Value) -> Self {
        let mut info = Self {
            wait: true,
            ..Self::default()
        };
        if crate::annotation_bool(obj, "kluctl.io/delete") == Some(true) {
            return info;
        }
        let set = |key: &str| -> BTreeSet<String> {
            annotation(obj, key)
                .map(|a| {
                    a.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        info.hooks = set("kluctl.io/hook");
        for h in &info.hooks {
            if !KLUCTL_HOOKS.contains(&h.as_str()) {
                info.errors.push(format!("unsupported kluctl.io/hook '{h}'"));
            }
        }
        let helm = set("helm.sh/hook");
        for h in &helm {
            if !SUPPORTED_HELM_HOOKS.contains(&h.as_str()) {
                info.warnings.push(format!("unsupported helm.sh/hook '{h}'"));
            }
        }
        for (helm_name, kluctl_name) in HELM_HOOKS {
            if helm.contains(helm_name) {
                info.hooks.insert(kluctl_name.to_owned());
            }
        }
        let weight =
            annotation(obj, "kluctl.io/hook-weight").or_else(|| annotation(obj, "helm.sh/hook-weight"));
        if let Some(w) = weight
            && let Err(e) = w.parse::<i32>().map(|w| info.weight = w)
        {
            let why = if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            info.errors.push(format!(
                "failed to parse hook weight: strconv.ParseInt: parsing \"{w}\": {why}"
            ));
        }
        info.delete_policies = set("kluctl.io/hook-delete-policy");
        info.delete_policies.extend(set("helm.sh/hook-delete-policy"));
        if info.delete_policies.is_empty() {
            info.delete_policies.insert("before-hook-creation".to_owned());
        }
        for p in &info.delete_policies {
            if !DELETE_POLICIES.contains(&p.as_str()) {
                info.errors
                    .push(format!("unsupported kluctl.io/hook-delete-policy '{p}'"));
            }
        }
        if let Some(w) = annotation(obj, "kluctl.io/hook-wait")
            && parse_go_bool(w).map(|w| info.wait = w).is_none()
        {
            info.errors.push(format!(
                "failed to parse annotation kluctl.io/hook-wait={w} as bool"
            ));
        }
        if let Some(t) = annotation(obj, "kluctl.io/hook-timeout")
            && let Err(e) = gitops_api::duration::parse(t).map(|t| info.timeout = Some(t))
        {
            info.errors.push(format!("failed to parse duration: {e}"));
        }
        info
    }

    /// The object is a hook.
    pub fn is_hook(&self) -> bool {
        !self.hooks.is_empty()
    }

    /// The hook stays on the cluster after it ran: no delete policy other than
    /// `before-hook-creation` and `hook-failed`.
    pub fn is_persistent(&self) -> bool {
        self.delete_policies
            .iter()
            .all(|p| p == "before-hook-creation" || p == "hook-failed")
    }

    fn only(&self, points: [&str; 2]) -> bool {
        self.is_hook() && self.hooks.iter().all(|h| points.contains(&h.as_str()))
    }

    /// Validation skips the object: a hook that is deleted after running, or that only runs on
    /// delete or rollback (never executed by Kluctl).
    pub fn skipped_by_validate(&self) -> bool {
        self.is_hook()
            && (!self.is_persistent()
                || self.only(["pre-delete", "post-delete"])
                || self.only(["pre-rollback", "post-rollback"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(annotations: Value) -> HookInfo {
        let mut o = json!({"kind": "Job", "metadata": {"name": "j"}});
        o["metadata"]["annotations"] = annotations;
        HookInfo::of(&o)
    }

    #[test]
    fn plain_objects_are_not_hooks_and_are_validated() {
        let h = with(json!({}));
        assert!(!h.is_hook());
        assert!(!h.skipped_by_validate());
        assert!(h.errors.is_empty() && h.warnings.is_empty());
    }

    #[test]
    fn persistent_hooks_are_validated_and_deleted_ones_skipped() {
        let h = with(json!({"kluctl.io/hook": "post-deploy"}));
        assert!(h.is_persistent());
        assert!(!h.skipped_by_validate());
        let h = with(json!({"kluctl.io/hook": "post-deploy", "kluctl.io/hook-delete-policy": "hook-failed"}));
        assert!(!h.skipped_by_validate());
        let h =
            with(json!({"kluctl.io/hook": "pre-deploy", "kluctl.io/hook-delete-policy": "hook-succeeded"}));
        assert!(h.skipped_by_validate());
        // Helm delete policies count too.
        let h = with(json!({"helm.sh/hook": "post-install", "helm.sh/hook-delete-policy": "hook-succeeded"}));
        assert!(h.hooks.contains("post-deploy-initial"));
        assert!(h.skipped_by_validate());
    }

    #[test]
    fn delete_and_rollback_only_hooks_are_skipped_with_a_warning() {
        let h = with(json!({"helm.sh/hook": "pre-delete"}));
        assert!(h.skipped_by_validate());
        assert_eq!(h.warnings, ["unsupported helm.sh/hook 'pre-delete'"]);
        let h = with(json!({"helm.sh/hook": "post-rollback,post-upgrade"}));
        assert!(!h.skipped_by_validate(), "also runs on upgrade");
    }

    #[test]
    fn malformed_hook_annotations_are_reported() {
        let h = with(json!({
            "kluctl.io/hook": "pre-deploy, sometimes",
            "kluctl.io/hook-weight": "heavy",
            "kluctl.io/hook-delete-policy": "never",
            "kluctl.io/hook-wait": "perhaps",
            "kluctl.io/hook-timeout": "soon",
        }));
        assert_eq!(h.errors.len(), 5, "{:?}", h.errors);
        assert_eq!(h.errors[0], "unsupported kluctl.io/hook 'sometimes'");
        assert_eq!(
            h.errors[1],
            "failed to parse hook weight: strconv.ParseInt: parsing \"heavy\": invalid syntax"
        );
        assert_eq!(h.errors[2], "unsupported kluctl.io/hook-delete-policy 'never'");
        assert_eq!(
            h.errors[3],
            "failed to parse annotation kluctl.io/hook-wait=perhaps as bool"
        );
        assert!(
            h.errors[4].starts_with("failed to parse duration: "),
            "{}",
            h.errors[4]
        );
    }

    #[test]
    fn objects_marked_for_deletion_are_never_hooks() {
        let h = with(json!({"kluctl.io/delete": "true", "kluctl.io/hook": "pre-deploy",
                            "kluctl.io/hook-delete-policy": "hook-succeeded"}));
        assert!(!h.is_hook());
        assert!(!h.skipped_by_validate());
    }
}
