//! What the legacy status says, as pure functions of the step outcomes: the `LastCommandResult`
//! records (`lastDeployResult`, `lastPruneResult`, `lastValidateResult`) and the Ready condition
//! in flux-kluctl-controller's wording (`Deployed revision: <revision>`, reasons `DeployFailed`,
//! `PruneFailed`, `ValidateFailed`, ...).

use gitops_api::conditions::reasons;
use gitops_api::flux_kluctl::v1alpha1::{KluctlDeploymentSpec, KluctlDeploymentStatus, LastCommandResult};
use gitops_api::kluctl::results::{CommandResultSummary, DeploymentError, ValidateResult};
use gitops_api::meta::Time;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gitops_api::constants::{FLUX_KLUCTL_COMMIT_STATUS_KEY, FLUX_KLUCTL_EVENT_REVISION_KEY};

use crate::controller::status::{Ready, base_message, plural_counts, validate_message};

/// `rawResult` larger than this is written with reduced objects (identity, labels and
/// annotations only, Kluctl's stored `reducedResult`): the whole status must fit in one etcd
/// object.
pub const MAX_RAW_RESULT: usize = 256 * 1024;

/// Errors listed in a result's `error` text; the rest are counted.
const LISTED_ERRORS: usize = 5;

/// A `LastCommandResult` of this reconcile.
pub fn command_result(
    time: &Time,
    revision: &str,
    spec: &KluctlDeploymentSpec,
    objects_hash: &str,
    raw_result: Option<String>,
    error: String,
) -> LastCommandResult {
    LastCommandResult {
        time: time.clone(),
        revision: revision.to_owned(),
        target: spec.target.clone(),
        target_name_override: spec.target_name_override.clone(),
        objects_hash: objects_hash.to_owned(),
        raw_result,
        error,
    }
}

/// The JSON of `full`, or of `reduced()` when `full` exceeds [`MAX_RAW_RESULT`].
pub fn raw_result<T: serde::Serialize, R: serde::Serialize>(
    full: &T,
    reduced: impl FnOnce() -> R,
) -> Option<String> {
    let text = serde_json::to_string(full).ok()?;
    if text.len() <= MAX_RAW_RESULT {
        return Some(text);
    }
    serde_json::to_string(&reduced()).ok()
}

fn listed(errors: &[DeploymentError]) -> String {
    let mut parts: Vec<String> = errors
        .iter()
        .take(LISTED_ERRORS)
        .map(|e| {
            if e.object_ref.kind.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.object_ref, e.message)
            }
        })
        .collect();
    if errors.len() > LISTED_ERRORS {
        parts.push(format!("and {} more", errors.len() - LISTED_ERRORS));
    }
    parts.join("; ")
}

/// The `error` of a deploy (or poke-images) result: empty on success, else the Kluctl message
/// and the first errors.
pub fn command_error(command: &str, r: &CommandResultSummary) -> String {
    if r.errors.is_empty() {
        String::new()
    } else {
        format!(
            "{} {}",
            base_message(command, r.errors.len(), r.warnings.len()),
            listed(&r.errors)
        )
    }
}

/// The event of a command result in flux-kluctl-controller's wording (its
/// `handleCommandResult`): `deploy succeeded. 2 new objects. 1 errors. 3 warnings.` It says
/// "succeeded" and counts the errors even when there are some; the event's severity tells.
pub fn command_event(command: &str, r: &CommandResultSummary) -> String {
    let mut message = format!("{command} succeeded.{}", plural_counts(r));
    for (n, what) in [(r.errors.len(), "errors"), (r.warnings.len(), "warnings")] {
        if n > 0 {
            let _ = write!(message, " {n} {what}.");
        }
    }
    message
}

/// The metadata of a legacy KluctlDeployment event, keys prefixed with its API group
/// (`flux.kluctl.io`): the source revision when known, and `commit_status: update` on the
/// event ending a successful reconcile.
pub fn event_metadata(revision: &str, success: bool) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    if !revision.is_empty() {
        metadata.insert(FLUX_KLUCTL_EVENT_REVISION_KEY.to_owned(), revision.to_owned());
    }
    if success {
        metadata.insert(FLUX_KLUCTL_COMMIT_STATUS_KEY.to_owned(), "update".to_owned());
    }
    metadata
}

/// The `error` of a validate result: empty when every object is ready.
pub fn validate_error(v: &ValidateResult) -> String {
    if v.ready && v.errors.is_empty() {
        String::new()
    } else if v.errors.is_empty() {
        // Not ready without errors (a not-ready object is an error in Kluctl's validate): the
        // base message would say "succeeded".
        let warnings = if v.warnings.is_empty() {
            String::new()
        } else {
            format!(" and {} warnings", v.warnings.len())
        };
        format!("validate failed with 0 errors{warnings}. not all objects are ready")
    } else {
        format!("{} {}", validate_message(v), listed(&v.errors))
    }
}

/// Ready after a reconcile that reached the deploy decision: the last deploy, prune (with
/// `spec.prune`) and validate (with `spec.validate`) results, first failure wins.
pub fn ready(spec: &KluctlDeploymentSpec, status: &KluctlDeploymentStatus, revision: &str) -> Ready {
    let failed = |reason, message: &str| Ready {
        ok: false,
        reason,
        message: message.to_owned(),
    };
    let Some(deploy) = &status.last_deploy_result else {
        return failed(reasons::DEPLOY_FAILED, "deployment status unknown");
    };
    if !deploy.error.is_empty() {
        return failed(reasons::DEPLOY_FAILED, &deploy.error);
    }
    if spec.prune
        && let Some(prune) = status.last_prune_result.as_ref().filter(|p| !p.error.is_empty())
    {
        return failed(reasons::PRUNE_FAILED, &prune.error);
    }
    if spec.validate
        && let Some(v) = status
            .last_validate_result
            .as_ref()
            .filter(|v| !v.error.is_empty())
    {
        return failed(reasons::VALIDATE_FAILED, &v.error);
    }
    Ready {
        ok: true,
        reason: reasons::RECONCILIATION_SUCCEEDED,
        message: format!("Deployed revision: {revision}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::kluctl::v1beta1::ObjectRef;
    use serde_json::json;

    fn spec(extra: &serde_json::Value) -> KluctlDeploymentSpec {
        let mut v =
            json!({"interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "r"}, "target": "t"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn error(kind: &str, message: &str) -> DeploymentError {
        DeploymentError {
            object_ref: ObjectRef {
                kind: kind.into(),
                name: if kind.is_empty() {
                    String::new()
                } else {
                    "cm".into()
                },
                namespace: if kind.is_empty() {
                    String::new()
                } else {
                    "ns".into()
                },
                ..ObjectRef::default()
            },
            message: message.into(),
        }
    }

    fn time() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }

    #[test]
    fn a_command_result_has_the_legacy_json_shape() {
        let s = spec(&json!({"targetNameOverride": "o"}));
        let r = command_result(
            &time(),
            "main@sha1:abc",
            &s,
            "h",
            Some("{}".into()),
            String::new(),
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "time": "2026-01-01T00:00:00Z",
                "revision": "main@sha1:abc",
                "target": "t",
                "targetNameOverride": "o",
                "objectsHash": "h",
                "rawResult": "{}",
            })
        );
    }

    #[test]
    fn large_raw_results_fall_back_to_the_reduced_form() {
        assert_eq!(
            raw_result(&json!({"a": 1}), || json!({})).as_deref(),
            Some(r#"{"a":1}"#)
        );
        let big = json!({"a": "x".repeat(MAX_RAW_RESULT)});
        assert_eq!(
            raw_result(&big, || json!({"reduced": true})).as_deref(),
            Some(r#"{"reduced":true}"#)
        );
    }

    #[test]
    fn errors_name_their_objects_and_are_capped() {
        let mut r = CommandResultSummary::default();
        assert_eq!(command_error("deploy", &r), "");
        r.errors = vec![error("ConfigMap", "forbidden"), error("", "prune skipped")];
        assert_eq!(
            command_error("deploy", &r),
            "deploy failed with 2 errors. ns/ConfigMap/cm: forbidden; prune skipped"
        );
        r.errors = (0..7).map(|_| error("", "e")).collect();
        assert!(command_error("deploy", &r).ends_with("e; e; e; e; e; and 2 more"));
        let mut v = ValidateResult {
            ready: true,
            ..ValidateResult::default()
        };
        assert_eq!(validate_error(&v), "");
        v.ready = false;
        assert_eq!(
            validate_error(&v),
            "validate failed with 0 errors. not all objects are ready"
        );
        v.errors = vec![error("ConfigMap", "object not found")];
        assert_eq!(
            validate_error(&v),
            "validate failed with 1 errors. ns/ConfigMap/cm: object not found"
        );
    }

    #[test]
    fn command_events_use_flux_kluctl_controllers_wording() {
        let mut r = CommandResultSummary {
            new_objects: 2,
            deleted_objects: 1,
            ..CommandResultSummary::default()
        };
        assert_eq!(
            command_event("deploy", &r),
            "deploy succeeded. 2 new objects. 1 deleted objects."
        );
        r.errors = vec![error("ConfigMap", "forbidden")];
        r.warnings = vec![error("", "w"), error("", "w")];
        assert_eq!(
            command_event("poke-images", &r),
            "poke-images succeeded. 2 new objects. 1 deleted objects. 1 errors. 2 warnings.",
            "upstream says succeeded and counts the errors; the severity tells"
        );
        assert_eq!(
            command_event("delete", &CommandResultSummary::default()),
            "delete succeeded."
        );
    }

    #[test]
    fn event_metadata_keys_carry_the_legacy_group() {
        assert_eq!(
            event_metadata("main@sha1:abc", true),
            BTreeMap::from([
                ("flux.kluctl.io/commit_status".to_string(), "update".to_string()),
                ("flux.kluctl.io/revision".to_string(), "main@sha1:abc".to_string()),
            ])
        );
        assert_eq!(
            event_metadata("main@sha1:abc", false),
            BTreeMap::from([("flux.kluctl.io/revision".to_string(), "main@sha1:abc".to_string())])
        );
        assert!(event_metadata("", false).is_empty());
    }

    #[test]
    fn ready_reports_the_first_failed_step() {
        let s = spec(&json!({"prune": true}));
        let mut st = KluctlDeploymentStatus::default();
        let r = ready(&s, &st, "main@sha1:abc");
        assert_eq!((r.ok, r.reason), (false, "DeployFailed"));
        let ok = command_result(&time(), "main@sha1:abc", &s, "h", None, String::new());
        let bad = |e: &str| command_result(&time(), "main@sha1:abc", &s, "h", None, e.into());
        st.last_deploy_result = Some(ok.clone());
        st.last_prune_result = Some(ok.clone());
        st.last_validate_result = Some(ok.clone());
        let r = ready(&s, &st, "main@sha1:abc");
        assert_eq!(
            (r.ok, r.reason, r.message.as_str()),
            (
                true,
                "ReconciliationSucceeded",
                "Deployed revision: main@sha1:abc"
            )
        );
        st.last_validate_result = Some(bad("validate failed with 1 errors."));
        assert_eq!(ready(&s, &st, "r").reason, "ValidateFailed");
        assert!(
            ready(&spec(&json!({"validate": false})), &st, "r").ok,
            "validate off ignores the result"
        );
        st.last_prune_result = Some(bad("prune failed"));
        assert_eq!(ready(&s, &st, "r").reason, "PruneFailed");
        st.last_deploy_result = Some(bad("deploy failed with 1 errors."));
        let r = ready(&s, &st, "r");
        assert_eq!(
            (r.ok, r.reason, r.message.as_str()),
            (false, "DeployFailed", "deploy failed with 1 errors.")
        );
    }
}
