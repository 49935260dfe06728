//! What the admin buttons do: each action is one merge patch of the KluctlDeployment, exactly
//! what `kluctl gitops <command>` sets, with field manager `kluctl`:
//!
//! | action | patch |
//! |---|---|
//! | `deploy`, `diff`, `prune`, `validate`, `reconcile` | annotation `kluctl.io/request-<x>` = `{"requestValue": <now>}` |
//! | `suspend` / `resume` | `spec.suspend` = true / false |
//! | `approve` | `spec.manualObjectsHash` = the hash the admin saw, which must still be `status.lastObjectsHash` (the rendered objects waiting) |
//! | `revoke` | `spec.manualObjectsHash` = null |
//!
//! Approving checks the hash the page showed against the object's current one: when the
//! rendered objects changed since the admin looked, nothing is approved (a 409 says so), so no
//! one approves objects they have not seen.

use serde_json::{Value, json};

use gitops_api::kluctl::request::{RequestKind, request_patch};
use gitops_api::kluctl::v1beta1::KluctlDeployment;

/// One button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A manual request (deploy, diff, prune, validate, reconcile).
    Request(RequestKind),
    /// Suspend.
    Suspend,
    /// Resume.
    Resume,
    /// Approve the objects hash shown.
    Approve(String),
    /// Revoke the approval.
    Revoke,
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    /// Not one of the actions.
    #[error(
        "unknown action '{0}': use deploy, diff, prune, validate, reconcile, suspend, resume, approve or revoke"
    )]
    Unknown(String),
    /// Approve without the hash the page showed.
    #[error("approve needs the objectsHash shown on the page")]
    MissingHash,
    /// Approve of a KluctlDeployment that is not manual.
    #[error(
        "KluctlDeployment {0} is not a manual deployment (spec.manual is false): there is nothing to approve"
    )]
    NotManual(String),
    /// The objects changed since the page showed them.
    #[error(
        "KluctlDeployment {key}: the objects waiting for approval changed (shown {shown}, now {current}); look at the new ones and approve again"
    )]
    HashChanged {
        /// namespace/name.
        key: String,
        /// The hash the page showed.
        shown: String,
        /// status.lastObjectsHash now (empty: none yet).
        current: String,
    },
}

impl Action {
    /// The action named `name` (the last path segment); `objects_hash` from the request body.
    pub fn parse(name: &str, objects_hash: Option<String>) -> Result<Self, ActionError> {
        if let Some(kind) = RequestKind::from_name(name) {
            return Ok(Self::Request(kind));
        }
        match name {
            "suspend" => Ok(Self::Suspend),
            "resume" => Ok(Self::Resume),
            "approve" => objects_hash
                .filter(|h| !h.is_empty())
                .map(Self::Approve)
                .ok_or(ActionError::MissingHash),
            "revoke" => Ok(Self::Revoke),
            other => Err(ActionError::Unknown(other.to_owned())),
        }
    }

    /// The merge patch of this action on `kd`; `request_value` is the new request's value.
    pub fn patch(&self, kd: &KluctlDeployment, request_value: &str) -> Result<Value, ActionError> {
        let key = format!(
            "{}/{}",
            kd.metadata.namespace.as_deref().unwrap_or_default(),
            kd.metadata.name.as_deref().unwrap_or_default()
        );
        Ok(match self {
            Self::Request(kind) => request_patch(*kind, request_value),
            Self::Suspend => json!({"spec": {"suspend": true}}),
            Self::Resume => json!({"spec": {"suspend": false}}),
            Self::Revoke => json!({"spec": {"manualObjectsHash": null}}),
            Self::Approve(shown) => {
                if !kd.spec.manual {
                    return Err(ActionError::NotManual(key));
                }
                let current = kd
                    .status
                    .as_ref()
                    .map(|s| s.last_objects_hash.clone())
                    .unwrap_or_default();
                if current != *shown {
                    return Err(ActionError::HashChanged {
                        key,
                        shown: shown.clone(),
                        current,
                    });
                }
                json!({"spec": {"manualObjectsHash": shown}})
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual_kd(pending: Option<&str>) -> KluctlDeployment {
        let mut kd: KluctlDeployment = serde_json::from_value(json!({
            "apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
            "metadata": {"name": "app", "namespace": "team"},
            "spec": {"interval": "5m", "manual": true, "source": {"git": {"url": "https://example.invalid/r.git"}}},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        kd.status = Some(gitops_api::kluctl::v1beta1::KluctlDeploymentStatus {
            last_objects_hash: pending.unwrap_or_default().to_owned(),
            ..Default::default()
        });
        kd
    }

    #[test]
    fn requests_set_the_same_annotation_as_the_cli() {
        let kd = manual_kd(None);
        let p = Action::parse("deploy", None).and_then(|a| a.patch(&kd, "2026-12-07T10:00:00Z"));
        assert_eq!(
            p,
            Ok(
                json!({"metadata": {"annotations": {"kluctl.io/request-deploy": "{\"requestValue\":\"2026-12-07T10:00:00Z\"}"}}})
            )
        );
        assert_eq!(
            Action::parse("suspend", None).and_then(|a| a.patch(&kd, "")),
            Ok(json!({"spec": {"suspend": true}}))
        );
        assert_eq!(
            Action::parse("explode", None),
            Err(ActionError::Unknown("explode".to_owned()))
        );
    }

    #[test]
    fn approval_needs_the_hash_the_page_showed_to_still_be_pending() {
        let kd = manual_kd(Some("abc"));
        assert_eq!(
            Action::parse("approve", Some("abc".to_owned())).and_then(|a| a.patch(&kd, "")),
            Ok(json!({"spec": {"manualObjectsHash": "abc"}}))
        );
        let changed = Action::parse("approve", Some("old".to_owned())).and_then(|a| a.patch(&kd, ""));
        assert!(
            matches!(changed, Err(ActionError::HashChanged { .. })),
            "{changed:?}"
        );
        assert_eq!(Action::parse("approve", None), Err(ActionError::MissingHash));
        let mut auto = manual_kd(Some("abc"));
        auto.spec.manual = false;
        assert!(matches!(
            Action::parse("approve", Some("abc".to_owned())).and_then(|a| a.patch(&auto, "")),
            Err(ActionError::NotManual(_))
        ));
    }
}
