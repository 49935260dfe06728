//! The Receiver reconcile: check the spec, read the token, publish `status.webhookPath`.
//!
//! ```text
//!  suspended? ─► stop (nothing served: the server answers 503)
//!  check spec (pure) ──► terminal: Ready=False + Stalled (UnsupportedConfiguration, ValidationFailed),
//!       │                wait for a spec change
//!  token (Secret spec.secretRef.name, key `token`) ──► Ready=False TokenNotFound, path cleared, retry
//!       ▼
//!  Ready=True Succeeded "Receiver initialized for path: /hook/<sha256>", requeue after spec.interval
//! ```
//!
//! The status is a pure function of the old status and the outcome ([`next_status`]); it is
//! written in one merge patch, and only when it changed.

use std::sync::Arc;
use std::time::Duration;

use gitops_api::conditions::{self, reasons, status as cstatus, types};
use gitops_api::constants::RECONCILE_REQUESTED_AT_ANNOTATION;
use gitops_api::meta::Time;
use gitops_api::notification::v1::{Receiver, ReceiverSpec, ReceiverStatus, ReceiverType};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use tracing::Instrument as _;

use super::validate::SUPPORTED_TYPES;
use super::{FIELD_MANAGER, webhook_path};

/// The longest wait before a Receiver whose token could not be read is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// The Secret key holding the token.
pub const TOKEN_KEY: &str = "token";

/// What every Receiver reconcile shares.
pub struct Context {
    /// The controller's client.
    pub client: kube::Client,
}

/// The error kube-runtime sees (only API failures; the others are written to status).
#[derive(Debug, thiserror::Error)]
#[error("failed to write the status of Receiver '{namespace}/{name}'")]
pub struct Error {
    namespace: String,
    name: String,
    #[source]
    source: kube::Error,
}

/// Why a Receiver is not ready.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// `spec.type` is not served by this build.
    #[error(
        "spec.type '{0}' is not supported by this controller (supported: generic, generic-hmac, github, gitlab, bitbucket)"
    )]
    UnsupportedType(ReceiverType),
    /// A CEL expression, which this build cannot evaluate.
    #[error("{field}: CEL expressions are not supported by this controller")]
    CelFilter {
        /// The field holding it (`spec.resourceFilter`, `spec.resources[i].filter`).
        field: String,
    },
    /// `spec.interval` is not a duration.
    #[error("spec.interval '{value}' is invalid: {reason}")]
    Interval {
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// No `spec.secretRef`.
    #[error("spec.secretRef is required for type '{0}'")]
    NoSecretRef(ReceiverType),
    /// The Secret does not exist.
    #[error("Secret '{namespace}/{name}' of spec.secretRef not found")]
    SecretNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The Secret could not be read.
    #[error("failed to read Secret '{namespace}/{name}' of spec.secretRef")]
    SecretRead {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The Secret has no `token` key.
    #[error("Secret '{namespace}/{name}' of spec.secretRef has no key 'token'")]
    NoTokenKey {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl ReceiverError {
    /// The Ready reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ReceiverError::UnsupportedType(_) | ReceiverError::CelFilter { .. } => {
                reasons::UNSUPPORTED_CONFIGURATION
            }
            ReceiverError::Interval { .. } | ReceiverError::NoSecretRef(_) => reasons::VALIDATION_FAILED,
            ReceiverError::SecretNotFound { .. }
            | ReceiverError::SecretRead { .. }
            | ReceiverError::NoTokenKey { .. } => reasons::TOKEN_NOT_FOUND,
        }
    }

    /// True for errors only a spec change can fix.
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            ReceiverError::SecretNotFound { .. }
                | ReceiverError::SecretRead { .. }
                | ReceiverError::NoTokenKey { .. }
        )
    }
}

/// Checks what this build can serve: the type, no CEL, a valid interval; returns the interval.
///
/// # Errors
/// The first unsupported or invalid field.
pub fn check(spec: &ReceiverSpec) -> Result<Duration, ReceiverError> {
    if !SUPPORTED_TYPES.contains(&spec.receiver_type) {
        return Err(ReceiverError::UnsupportedType(spec.receiver_type));
    }
    if !spec.resource_filter.is_empty() {
        return Err(ReceiverError::CelFilter {
            field: "spec.resourceFilter".into(),
        });
    }
    if let Some(i) = spec.resources.iter().position(|r| !r.filter.is_empty()) {
        return Err(ReceiverError::CelFilter {
            field: format!("spec.resources[{i}].filter"),
        });
    }
    let interval = gitops_api::duration::parse(&spec.interval).map_err(|e| ReceiverError::Interval {
        value: spec.interval.clone(),
        reason: e.to_string(),
    })?;
    if spec.secret_ref.is_none() {
        return Err(ReceiverError::NoSecretRef(spec.receiver_type));
    }
    Ok(interval)
}

/// The new status after a reconcile of `generation` that found `outcome` (the webhook path, or
/// why there is none); `requested_at` is the `reconcile.fluxcd.io/requestedAt` annotation.
pub fn next_status(
    old: &ReceiverStatus,
    generation: Option<i64>,
    outcome: &Result<String, ReceiverError>,
    requested_at: Option<&str>,
    now: &Time,
) -> ReceiverStatus {
    let mut s = old.clone();
    if let Some(v) = requested_at {
        v.clone_into(&mut s.last_handled_reconcile_at);
    }
    match outcome {
        Ok(path) => {
            let message = format!("Receiver initialized for path: {path}");
            s.conditions = conditions::set(
                &s.conditions,
                types::READY,
                cstatus::TRUE,
                reasons::SUCCEEDED,
                &message,
                generation,
                now,
            );
            s.conditions = conditions::remove(&s.conditions, types::STALLED);
            s.conditions = conditions::remove(&s.conditions, types::RECONCILING);
            path.clone_into(&mut s.webhook_path);
            s.observed_generation = generation;
        }
        Err(e) => {
            let message = kluctl_engine::error_chain(e);
            s.conditions = conditions::set(
                &s.conditions,
                types::READY,
                cstatus::FALSE,
                e.reason(),
                &message,
                generation,
                now,
            );
            if e.is_terminal() {
                // As Flux: the generation was handled (it cannot work), the path stays (and
                // answers 503 while Ready is False).
                s.conditions = conditions::set(
                    &s.conditions,
                    types::STALLED,
                    cstatus::TRUE,
                    e.reason(),
                    &message,
                    generation,
                    now,
                );
                s.observed_generation = generation;
            } else {
                // The old token may be gone: stop serving the path computed from it.
                s.conditions = conditions::remove(&s.conditions, types::STALLED);
                s.webhook_path.clear();
            }
        }
    }
    s
}

/// `status` as a merge patch that also removes the fields it leaves empty.
fn status_patch(s: &ReceiverStatus) -> serde_json::Value {
    let or_null = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    json!({"status": {
        "conditions": s.conditions,
        "webhookPath": or_null(&s.webhook_path),
        "observedGeneration": s.observed_generation,
        "lastHandledReconcileAt": or_null(&s.last_handled_reconcile_at),
    }})
}

/// Reconciles one Receiver (kube-runtime entry point).
///
/// # Errors
/// Only when the status cannot be written; every other failure is recorded in the status.
pub async fn reconcile(obj: Arc<Receiver>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let span = tracing::info_span!("reconcile", kind = "Receiver", name = %name, namespace = %namespace);
    async move {
        if obj.meta().deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        if obj.spec.suspend {
            tracing::info!("Reconciliation is suspended for this object");
            return Ok(Action::await_change());
        }
        let (outcome, next) = match check(&obj.spec) {
            Err(e) => (Err(e), None),
            Ok(interval) => match token(&ctx.client, &obj).await {
                Ok(token) => (Ok(webhook_path(&token, &name, &namespace)), Some(interval)),
                Err(e) => (Err(e), Some(interval.min(RETRY))),
            },
        };
        let old = obj.status.clone().unwrap_or_default();
        let requested_at = obj
            .annotations()
            .get(RECONCILE_REQUESTED_AT_ANNOTATION)
            .map(String::as_str);
        let new = next_status(
            &old,
            obj.meta().generation,
            &outcome,
            requested_at,
            &Time(jiff::Timestamp::now()),
        );
        match &outcome {
            // The path itself stays out of the log: it is all a `generic` Receiver asks of a caller
            // (status shows it to those who may read the Receiver).
            Ok(path) if old.webhook_path != *path => tracing::info!("Receiver initialized"),
            Ok(_) => {}
            Err(e) => tracing::warn!(reason = e.reason(), error = %new_message(&new), "Receiver not ready"),
        }
        if new != old {
            let api: Api<Receiver> = Api::namespaced(ctx.client.clone(), &namespace);
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            api.patch_status(&name, &params, &Patch::Merge(status_patch(&new)))
                .await
                .map_err(|source| Error {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
        }
        Ok(next.map_or_else(Action::await_change, Action::requeue))
    }
    .instrument(span)
    .await
}

/// The Ready message of a status.
fn new_message(s: &ReceiverStatus) -> &str {
    conditions::find(&s.conditions, types::READY).map_or("", |c| c.message.as_str())
}

/// Requeue after an API failure.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime requires
pub fn error_policy(_obj: Arc<Receiver>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %kluctl_engine::error_chain(err), "Receiver reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

/// The token of the Receiver's Secret (never logged).
async fn token(client: &kube::Client, receiver: &Receiver) -> Result<String, ReceiverError> {
    let namespace = receiver.namespace().unwrap_or_default();
    let name = receiver
        .spec
        .secret_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret = api
        .get_opt(&name)
        .await
        .map_err(|source| ReceiverError::SecretRead {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?
        .ok_or_else(|| ReceiverError::SecretNotFound {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .ok_or(ReceiverError::NoTokenKey { namespace, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &serde_json::Value) -> ReceiverSpec {
        let mut v = json!({
            "type": "github",
            "secretRef": {"name": "token"},
            "resources": [{"kind": "GitRepository", "name": "app"}],
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn supported_specs_pass_with_their_interval() {
        assert_eq!(
            check(&spec(&json!({}))).unwrap(),
            Duration::from_secs(600),
            "default 10m"
        );
        assert_eq!(
            check(&spec(&json!({"type": "generic-hmac", "interval": "1m30s"}))).unwrap(),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn unsupported_types_and_cel_filters_are_unsupported_configuration_naming_the_field() {
        let e = check(&spec(&json!({"type": "harbor"}))).unwrap_err();
        assert_eq!(e.reason(), "UnsupportedConfiguration");
        assert!(e.to_string().contains("spec.type 'harbor'"), "{e}");
        let e = check(&spec(&json!({"resourceFilter": "res.metadata.name == 'a'"}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.resourceFilter: CEL expressions are not supported by this controller"
        );
        let e = check(&spec(&json!({"resources": [
            {"kind": "GitRepository", "name": "a"},
            {"kind": "GitRepository", "name": "b", "filter": "true"},
        ]})))
        .unwrap_err();
        assert!(e.to_string().starts_with("spec.resources[1].filter:"), "{e}");
        assert!(e.is_terminal());
        let e = check(&spec(&json!({"secretRef": null}))).unwrap_err();
        assert_eq!(
            (e.reason(), e.to_string().as_str()),
            ("ValidationFailed", "spec.secretRef is required for type 'github'")
        );
    }

    #[test]
    fn ready_status_carries_the_path_and_the_handled_generation() {
        let path = webhook_path("t", "r", "n");
        let s = next_status(
            &ReceiverStatus::default(),
            Some(3),
            &Ok(path.clone()),
            Some("now"),
            &at(10),
        );
        assert_eq!(s.webhook_path, path);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.last_handled_reconcile_at, "now");
        let ready = conditions::find(&s.conditions, types::READY).unwrap();
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.clone()
            ),
            (
                "True",
                "Succeeded",
                format!("Receiver initialized for path: {path}")
            )
        );
        let again = next_status(&s, Some(3), &Ok(path), None, &at(20));
        assert_eq!(again, s, "an unchanged outcome changes nothing (no status write)");
    }

    #[test]
    fn a_missing_token_clears_the_path_and_a_terminal_error_stalls() {
        let ready = next_status(
            &ReceiverStatus::default(),
            Some(1),
            &Ok(webhook_path("t", "r", "n")),
            None,
            &at(10),
        );
        let missing = ReceiverError::SecretNotFound {
            namespace: "n".into(),
            name: "token".into(),
        };
        let s = next_status(&ready, Some(2), &Err(missing), None, &at(20));
        assert_eq!(s.webhook_path, "", "no path from a token that is gone");
        assert_eq!(s.observed_generation, Some(1), "generation 2 not handled yet");
        let c = conditions::find(&s.conditions, types::READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            (
                "False",
                "TokenNotFound",
                "Secret 'n/token' of spec.secretRef not found"
            )
        );
        assert!(conditions::find(&s.conditions, types::STALLED).is_none());

        let s = next_status(
            &ready,
            Some(2),
            &Err(ReceiverError::UnsupportedType(ReceiverType::Harbor)),
            None,
            &at(20),
        );
        assert!(conditions::is_true(&s.conditions, types::STALLED));
        assert_eq!(s.observed_generation, Some(2));
        let recovered = next_status(&s, Some(3), &Ok(webhook_path("t", "r", "n")), None, &at(30));
        assert!(conditions::find(&recovered.conditions, types::STALLED).is_none());
        assert!(conditions::is_true(&recovered.conditions, types::READY));
    }

    #[test]
    fn the_status_patch_removes_empty_fields() {
        let p = status_patch(&ReceiverStatus::default());
        assert_eq!(p["status"]["webhookPath"], serde_json::Value::Null);
        assert!(p["status"].as_object().unwrap().contains_key("webhookPath"));
    }
}
