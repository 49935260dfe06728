//! What the status says, as pure functions of the results: the Ready condition's status, reason
//! and message (Kluctl's wording, word for word, so dashboards and `kubectl get` match), and
//! the condition list written at the start and at the end of a reconcile.

use std::fmt::Write as _;

use gitops_api::conditions::{self, reasons, status as cstatus, types};
use gitops_api::kluctl::results::{CommandResultSummary, ValidateResult};
use gitops_api::kluctl::v1beta1::{KluctlDeploymentSpec, KluctlDeploymentStatus};
use gitops_api::meta::{Condition, Time};

/// Kluctl caps condition messages at this many characters.
pub const MAX_MESSAGE: usize = 20_000;

/// The Ready condition's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// `True` or `False`.
    pub ok: bool,
    /// A stable reason.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

fn plural_counts(r: &CommandResultSummary) -> String {
    let mut s = String::new();
    for (n, what) in [
        (r.new_objects, "new objects"),
        (r.changed_objects, "changed objects"),
        (r.applied_hook_objects, "hooks run"),
        (r.deleted_objects, "deleted objects"),
        (r.orphan_objects, "orphan objects"),
    ] {
        if n > 0 {
            let _ = write!(s, " {n} {what}.");
        }
    }
    s
}

fn errors_and_warnings(errors: usize, warnings: usize) -> String {
    if warnings > 0 {
        format!("{errors} errors and {warnings} warnings")
    } else {
        format!("{errors} errors")
    }
}

/// The message of a deploy (or poke-images, or prune) result: `deploy succeeded. 2 new
/// objects.`, `deploy failed with 1 errors.`, `deploy succeeded with 2 warnings.`
pub fn command_message(command: &str, r: &CommandResultSummary) -> String {
    if !r.errors.is_empty() {
        format!(
            "{command} failed with {}.",
            errors_and_warnings(r.errors.len(), r.warnings.len())
        )
    } else if !r.warnings.is_empty() {
        format!(
            "{command} succeeded with {} warnings.{}",
            r.warnings.len(),
            plural_counts(r)
        )
    } else {
        format!("{command} succeeded.{}", plural_counts(r))
    }
}

/// [`command_message`] plus, for a failed command, its first error with the object it names:
/// the event text, so `kubectl describe` and notifications say what went wrong and where
/// (the Ready message keeps Kluctl's counts only).
pub fn command_event(command: &str, r: &CommandResultSummary) -> String {
    let mut message = command_message(command, r);
    if let Some(first) = r.errors.first() {
        let at = first.object_ref.to_string();
        if at.is_empty() {
            let _ = write!(message, " First error: {}", first.message);
        } else {
            let _ = write!(message, " First error: {at}: {}", first.message);
        }
    }
    message
}

/// The message of a validate result.
pub fn validate_message(v: &ValidateResult) -> String {
    if v.ready && v.errors.is_empty() {
        "validate succeeded.".to_owned()
    } else {
        format!(
            "validate failed with {}.",
            errors_and_warnings(v.errors.len(), v.warnings.len())
        )
    }
}

/// Ready after a full reconcile, from the last deploy and validate results.
pub fn ready_from_results(spec: &KluctlDeploymentSpec, status: &KluctlDeploymentStatus) -> Ready {
    let Some(deploy) = &status.last_deploy_result else {
        return Ready {
            ok: false,
            reason: reasons::DEPLOY_FAILED,
            message: "deployment status unknown".to_owned(),
        };
    };
    let mut ready = Ready {
        ok: deploy.errors.is_empty(),
        reason: if deploy.errors.is_empty() {
            reasons::RECONCILIATION_SUCCEEDED
        } else {
            reasons::DEPLOY_FAILED
        },
        message: command_message("deploy", deploy),
    };
    if spec.validate {
        match &status.last_validate_result {
            None => {
                ready.message.push_str(" Validation status unknown.");
                if ready.ok {
                    ready.ok = false;
                    ready.reason = reasons::VALIDATE_FAILED;
                }
            }
            Some(v) => {
                ready.message.push(' ');
                ready.message.push_str(&validate_message(v));
                if ready.ok && !(v.ready && v.errors.is_empty()) {
                    ready.ok = false;
                    ready.reason = reasons::VALIDATE_FAILED;
                }
            }
        }
    }
    ready
}

/// The Ready message for a failed load or render (the full text goes to
/// `status.lastPrepareError`).
pub fn prepare_failed_message() -> String {
    "prepare failed. Check status.lastPrepareError for details".to_owned()
}

/// `message` cut to [`MAX_MESSAGE`] characters (on a character boundary).
pub fn capped(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The conditions while a reconcile works: Reconciling=True (Progressing, `what`), and Ready
/// Unknown "Reconciliation in progress" unless only initializing (then Ready is kept).
pub fn progressing(
    conditions: &[Condition],
    what: &str,
    keep_ready: bool,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut c = conditions::set(
        conditions,
        types::RECONCILING,
        cstatus::TRUE,
        reasons::PROGRESSING,
        what,
        generation,
        now,
    );
    if !keep_ready {
        c = conditions::set(
            &c,
            types::READY,
            cstatus::UNKNOWN,
            reasons::PROGRESSING,
            "Reconciliation in progress",
            generation,
            now,
        );
    }
    c
}

/// The conditions at the end of a reconcile: Ready as given, Reconciling removed.
pub fn finished(
    conditions: &[Condition],
    ready: &Ready,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let c = conditions::remove(conditions, types::RECONCILING);
    let mut c = conditions::set(
        &c,
        types::READY,
        if ready.ok { cstatus::TRUE } else { cstatus::FALSE },
        ready.reason,
        &capped(&ready.message),
        generation,
        now,
    );
    // Ready first, as kstatus readers and `kubectl get` expect.
    c.sort_by_key(|x| x.type_ != types::READY);
    c
}

/// The merge patch that writes each field of `fields` (status fields, each a whole new value)
/// over `current` (the status as stored).
///
/// Why: a JSON merge patch keeps every key it leaves out, and results serialize their empty parts
/// as absent (`errors` of a clean validate, `endTime`/`resultId`/`commandError` of a request just
/// started). Sent as they are, they would keep the previous value's errors or end time: a clean
/// validate still failing Ready, a new request looking finished with the last one's result. So
/// keys the stored value has and the new one lacks become `null`.
pub fn replacing_patch(current: &serde_json::Value, fields: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn diff(old: &Value, new: &Value) -> Value {
        match (old, new) {
            (Value::Object(o), Value::Object(n)) => {
                let mut p = serde_json::Map::new();
                for (k, v) in n {
                    match o.get(k) {
                        Some(ov) if ov == v => {}
                        Some(ov) => {
                            p.insert(k.clone(), diff(ov, v));
                        }
                        None => {
                            p.insert(k.clone(), v.clone());
                        }
                    }
                }
                for k in o.keys().filter(|k| !n.contains_key(*k)) {
                    p.insert(k.clone(), Value::Null);
                }
                Value::Object(p)
            }
            _ => new.clone(),
        }
    }
    let Value::Object(fields) = fields else {
        return fields;
    };
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| {
                let patch = match current.get(&k) {
                    Some(old) => diff(old, &v),
                    None => v,
                };
                (k, patch)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::kluctl::results::DeploymentError;
    use serde_json::json;

    #[test]
    fn written_fields_replace_the_stored_values_and_other_fields_stay() {
        let current = json!({
            "observedGeneration": 3,
            "lastValidateResult": {"id": "v1", "ready": false, "errors": [{"message": "object not found"}]},
            "deployRequestResult": {"request": {"requestValue": "t1"}, "endTime": "e1", "resultId": "r1"},
        });
        let patch = replacing_patch(
            &current,
            json!({
                "lastValidateResult": {"id": "v2", "ready": true},
                "deployRequestResult": {"request": {"requestValue": "t2"}},
                "lastDriftDetectionResultMessage": "no drift",
            }),
        );
        assert_eq!(
            patch,
            json!({
                "lastValidateResult": {"id": "v2", "ready": true, "errors": null},
                "deployRequestResult": {"request": {"requestValue": "t2"}, "endTime": null, "resultId": null},
                "lastDriftDetectionResultMessage": "no drift",
            })
        );
    }

    fn spec(validate: bool) -> KluctlDeploymentSpec {
        serde_json::from_value(
            json!({"interval": "5m", "validate": validate, "source": {"git": {"url": "u"}}}),
        )
        .unwrap()
    }

    fn err() -> DeploymentError {
        DeploymentError::default()
    }

    #[test]
    fn deploy_messages_use_kluctl_wording() {
        let mut r = CommandResultSummary {
            new_objects: 2,
            orphan_objects: 1,
            ..CommandResultSummary::default()
        };
        assert_eq!(
            command_message("deploy", &r),
            "deploy succeeded. 2 new objects. 1 orphan objects."
        );
        r.warnings = vec![err(), err()];
        assert_eq!(
            command_message("deploy", &r),
            "deploy succeeded with 2 warnings. 2 new objects. 1 orphan objects."
        );
        r.errors = vec![err()];
        assert_eq!(
            command_message("deploy", &r),
            "deploy failed with 1 errors and 2 warnings."
        );
    }

    #[test]
    fn failure_events_name_the_first_error_and_its_object() {
        let r = CommandResultSummary {
            errors: vec![DeploymentError {
                object_ref: gitops_api::kluctl::v1beta1::ObjectRef {
                    kind: "ConfigMap".into(),
                    name: "a".into(),
                    namespace: "ns".into(),
                    ..Default::default()
                },
                message: "configmaps \"a\" is forbidden".into(),
            }],
            ..CommandResultSummary::default()
        };
        assert_eq!(
            command_event("deploy", &r),
            "deploy failed with 1 errors. First error: ns/ConfigMap/a: configmaps \"a\" is forbidden"
        );
        assert_eq!(
            command_event("deploy", &CommandResultSummary::default()),
            "deploy succeeded."
        );
    }

    #[test]
    fn ready_combines_deploy_and_validate() {
        let mut st = KluctlDeploymentStatus::default();
        let r = ready_from_results(&spec(true), &st);
        assert_eq!(
            (r.ok, r.reason, r.message.as_str()),
            (false, "DeployFailed", "deployment status unknown")
        );
        st.last_deploy_result = Some(CommandResultSummary {
            new_objects: 1,
            ..CommandResultSummary::default()
        });
        let r = ready_from_results(&spec(true), &st);
        assert_eq!(
            (r.ok, r.reason, r.message.as_str()),
            (
                false,
                "ValidateFailed",
                "deploy succeeded. 1 new objects. Validation status unknown."
            )
        );
        st.last_validate_result = Some(ValidateResult {
            ready: true,
            ..ValidateResult::default()
        });
        let r = ready_from_results(&spec(true), &st);
        assert_eq!(
            (r.ok, r.reason, r.message.as_str()),
            (
                true,
                "ReconciliationSucceeded",
                "deploy succeeded. 1 new objects. validate succeeded."
            )
        );
        st.last_validate_result = Some(ValidateResult {
            ready: false,
            errors: vec![err()],
            ..ValidateResult::default()
        });
        let r = ready_from_results(&spec(true), &st);
        assert_eq!(
            (r.ok, r.reason, r.message.as_str()),
            (
                false,
                "ValidateFailed",
                "deploy succeeded. 1 new objects. validate failed with 1 errors."
            )
        );
        let r = ready_from_results(&spec(false), &st);
        assert_eq!(
            (r.ok, r.reason),
            (true, "ReconciliationSucceeded"),
            "validate off ignores the result"
        );
    }

    #[test]
    fn finished_puts_ready_first_and_drops_reconciling() {
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let c = progressing(&[], "Performing kluctl full-deploy", false, Some(1), &now);
        assert_eq!(c.len(), 2);
        let ready = Ready {
            ok: true,
            reason: "ReconciliationSucceeded",
            message: "x".repeat(MAX_MESSAGE + 10),
        };
        let c = finished(&c, &ready, Some(1), &now);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].type_, "Ready");
        assert_eq!(c[0].message.chars().count(), MAX_MESSAGE);
    }
}
