//! What the status says, as pure functions of the results: the Ready condition's status, reason
//! and message (Kluctl's wording, word for word, so dashboards and `kubectl get` match), and
//! the condition list written at the start and at the end of a reconcile.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gitops_api::constants::{COMMIT_STATUS_ANNOTATION, KLUCTL_EVENT_REVISION_KEY};

use gitops_api::conditions::{self, reasons, status as cstatus, types};
use gitops_api::kluctl::results::{CommandResultSummary, ValidateResult};
use gitops_api::kluctl::v1beta1::{DeployMode, KluctlDeploymentSpec, KluctlDeploymentStatus};
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

/// The object counts Kluctl appends to a command message: ` 2 new objects. 1 changed
/// objects.` (zero counts omitted).
pub fn plural_counts(r: &CommandResultSummary) -> String {
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

/// Kluctl's base result message (`buildBaseResultMessage`): `deploy succeeded.`, `deploy
/// succeeded with 2 warnings.`, `deploy failed with 1 errors.`, `deploy failed with 1 errors and
/// 2 warnings.`
pub fn base_message(command: &str, errors: usize, warnings: usize) -> String {
    match (errors, warnings) {
        (0, 0) => format!("{command} succeeded."),
        (0, w) => format!("{command} succeeded with {w} warnings."),
        (e, 0) => format!("{command} failed with {e} errors."),
        (e, w) => format!("{command} failed with {e} errors and {w} warnings."),
    }
}

/// The message of a command result (Kluctl's `buildResultMessage`): the base message, then the
/// object counts, on failure too: `deploy succeeded. 2 new objects.`, `deploy failed with 1
/// errors. 1 changed objects.`
///
/// `command` is Kluctl's command name: `deploy` (a deploy request and the Ready message),
/// `full-deploy`/`poke-images` (a scheduled deploy: the `spec.deployMode`), `prune`, `diff`,
/// `delete`.
pub fn command_message(command: &str, r: &CommandResultSummary) -> String {
    base_message(command, r.errors.len(), r.warnings.len()) + &plural_counts(r)
}

/// [`command_message`] plus, for a failed command, its first error with the object it names:
/// the event text, so `kubectl describe` and notifications say what went wrong and where
/// (the Ready message keeps Kluctl's counts only). Kluctl's text stays the prefix, so alert
/// regexes written for Kluctl match.
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

/// The command name Kluctl gives a scheduled deploy in its event: the `spec.deployMode`.
pub fn scheduled_deploy_command(mode: DeployMode) -> &'static str {
    match mode {
        DeployMode::FullDeploy => "full-deploy",
        DeployMode::PokeImages => "poke-images",
    }
}

/// The message of a validate result: `validate succeeded.`, `validate failed with 1 errors.`,
/// ... ([`base_message`]). Kluctl counts the last *deploy's* warnings here (a slip in its
/// `buildFinalStatus`); we count the validate result's own.
pub fn validate_message(v: &ValidateResult) -> String {
    base_message("validate", v.errors.len(), v.warnings.len())
}

/// The metadata of a KluctlDeployment event, keys prefixed with its API group as Flux's
/// notification-controller expects: `gitops.kluctl.io/revision` (the fetched source revision,
/// when known) and, on the event ending a successful reconcile, `gitops.kluctl.io/commit_status:
/// update` (what commit-status providers act on).
pub fn event_metadata(revision: &str, success: bool) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    if !revision.is_empty() {
        metadata.insert(KLUCTL_EVENT_REVISION_KEY.to_owned(), revision.to_owned());
    }
    if success {
        metadata.insert(COMMIT_STATUS_ANNOTATION.to_owned(), "update".to_owned());
    }
    metadata
}

/// The message of the event that ends a successful reconcile (Kluctl's and Flux's wording).
pub fn finished_message(took: std::time::Duration, next: std::time::Duration) -> String {
    format!(
        "Reconciliation finished in {}, next run in {}",
        gitops_api::duration::format(took),
        gitops_api::duration::format(next)
    )
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
                // Kluctl: the validate errors decide (a not-ready object is an error there).
                if ready.ok && !v.errors.is_empty() {
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
            "deploy failed with 1 errors and 2 warnings. 2 new objects. 1 orphan objects.",
            "Kluctl appends the counts to failures too"
        );
        r.warnings.clear();
        assert_eq!(
            command_message("full-deploy", &r),
            "full-deploy failed with 1 errors. 2 new objects. 1 orphan objects."
        );
        let r = CommandResultSummary {
            changed_objects: 3,
            applied_hook_objects: 1,
            deleted_objects: 2,
            ..CommandResultSummary::default()
        };
        assert_eq!(
            command_message("prune", &r),
            "prune succeeded. 3 changed objects. 1 hooks run. 2 deleted objects."
        );
    }

    #[test]
    fn base_messages_have_kluctls_four_forms() {
        assert_eq!(base_message("deploy", 0, 0), "deploy succeeded.");
        assert_eq!(base_message("deploy", 0, 2), "deploy succeeded with 2 warnings.");
        assert_eq!(base_message("prune", 1, 0), "prune failed with 1 errors.");
        assert_eq!(
            base_message("diff", 3, 1),
            "diff failed with 3 errors and 1 warnings."
        );
    }

    #[test]
    fn a_scheduled_deploy_is_named_by_its_deploy_mode() {
        assert_eq!(scheduled_deploy_command(DeployMode::FullDeploy), "full-deploy");
        assert_eq!(scheduled_deploy_command(DeployMode::PokeImages), "poke-images");
        let r = CommandResultSummary {
            new_objects: 1,
            ..CommandResultSummary::default()
        };
        assert_eq!(
            command_event(scheduled_deploy_command(DeployMode::FullDeploy), &r),
            "full-deploy succeeded. 1 new objects."
        );
    }

    #[test]
    fn validate_messages_count_the_validate_results_own_entries() {
        let mut v = ValidateResult {
            ready: true,
            ..ValidateResult::default()
        };
        assert_eq!(validate_message(&v), "validate succeeded.");
        v.warnings = vec![err()];
        assert_eq!(validate_message(&v), "validate succeeded with 1 warnings.");
        v.errors = vec![err(), err()];
        v.ready = false;
        assert_eq!(
            validate_message(&v),
            "validate failed with 2 errors and 1 warnings."
        );
    }

    #[test]
    fn event_metadata_keys_carry_the_kluctl_group() {
        assert_eq!(
            event_metadata("main@sha1:abc", true),
            BTreeMap::from([
                ("gitops.kluctl.io/commit_status".to_string(), "update".to_string()),
                (
                    "gitops.kluctl.io/revision".to_string(),
                    "main@sha1:abc".to_string()
                ),
            ])
        );
        assert_eq!(
            event_metadata("sha1:abc", false),
            BTreeMap::from([("gitops.kluctl.io/revision".to_string(), "sha1:abc".to_string())])
        );
        assert!(
            event_metadata("", false).is_empty(),
            "no revision before the fetch"
        );
    }

    #[test]
    fn the_finished_message_uses_go_durations() {
        assert_eq!(
            finished_message(
                std::time::Duration::from_millis(1500),
                std::time::Duration::from_secs(300)
            ),
            "Reconciliation finished in 1.5s, next run in 5m0s"
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
        let r = CommandResultSummary { new_objects: 1, ..r };
        assert_eq!(
            command_event("deploy", &r),
            "deploy failed with 1 errors. 1 new objects. First error: ns/ConfigMap/a: configmaps \"a\" is forbidden",
            "Kluctl's message stays the prefix"
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
