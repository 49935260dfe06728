//! Readiness of deployed objects, with Kluctl's rules and messages: the last step of a deploy
//! (`waitReadiness`) and the whole of `kluctl validate`.
//!
//! ```text
//! rules     one live object ─► ObjectValidation (ready, warnings, errors, results); pure
//! hooks     which rendered objects validate skips (non-persistent, delete/rollback-only hooks)
//! command   rendered objects + kube client ─► GET each live object ─► ValidateResult;
//!           wait_ready (poll one object until ready, error or timeout); status expectations
//! ```
//!
//! The result types are the ones stored in `KluctlDeployment.status` and command results:
//! [`ValidateResult`], [`ValidateResultEntry`] and [`DeploymentError`] from `gitops_api`
//! (Kluctl's JSON shape: `ref` + `message` / `annotation`, camelCase, empty lists omitted).
//!
//! Message texts (`readyReplicas (1) is less then replicas (2)`, `Volume is not bound`, ...)
//! are Kluctl's, spelling included: users and alerting rules match on them.

pub mod command;
pub mod hooks;
pub mod output;
pub mod rules;

pub use command::{ClusterValidator, ValidateError, WaitOutcome};
pub use gitops_api::kluctl::results::{DeploymentError, ValidateResult, ValidateResultEntry};
pub use output::format_validate_text;
pub use rules::{ObjectValidation, StatusExpectation, validate_object};

pub use crate::object_ref;

use crate::{annotation, annotation_bool};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_ref_of_core_and_cluster_scoped_objects() {
        let r =
            object_ref(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})).unwrap();
        assert_eq!(r.group, "");
        assert_eq!(r.version, "v1");
        assert_eq!(r.to_string(), "Namespace/a");
        assert!(object_ref(&json!({"apiVersion": "v1"})).is_none());
        assert!(object_ref(&json!("x")).is_none());
    }

    #[test]
    fn annotation_bool_accepts_go_spellings_and_ignores_garbage() {
        let o = |v: &str| json!({"metadata": {"annotations": {"k": v}}});
        assert_eq!(annotation_bool(&o("True"), "k"), Some(true));
        assert_eq!(annotation_bool(&o("0"), "k"), Some(false));
        assert_eq!(annotation_bool(&o("yes"), "k"), None);
        assert_eq!(annotation_bool(&json!({}), "k"), None);
    }
}
