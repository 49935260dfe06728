//! The manual request protocol's shared half: which annotation asks for which command, how its
//! JSON value is built, and where the controller reports it. The CLI (`kluctl gitops ...`) and the
//! web UI's buttons both set requests through this module, so they ask in exactly the same way.

use serde_json::{Map, Value};

use super::v1beta1::{KluctlDeploymentStatus, ManualRequest, ManualRequestResult};
use crate::constants::{
    KLUCTL_REQUEST_DEPLOY_ANNOTATION, KLUCTL_REQUEST_DIFF_ANNOTATION, KLUCTL_REQUEST_PRUNE_ANNOTATION,
    KLUCTL_REQUEST_RECONCILE_ANNOTATION, KLUCTL_REQUEST_VALIDATE_ANNOTATION,
};

/// The five requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A full reconciliation (also when suspended).
    Reconcile,
    /// A deploy.
    Deploy,
    /// A diff.
    Diff,
    /// A prune.
    Prune,
    /// A validation.
    Validate,
}

impl RequestKind {
    /// All five, in the order buttons show them.
    pub const ALL: [Self; 5] = [
        Self::Reconcile,
        Self::Deploy,
        Self::Diff,
        Self::Prune,
        Self::Validate,
    ];

    /// The command's name (`deploy`, ...), as results and messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reconcile => "reconcile",
            Self::Deploy => "deploy",
            Self::Diff => "diff",
            Self::Prune => "prune",
            Self::Validate => "validate",
        }
    }

    /// The kind named `name` (`deploy`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The request annotation.
    pub fn annotation(self) -> &'static str {
        match self {
            Self::Reconcile => KLUCTL_REQUEST_RECONCILE_ANNOTATION,
            Self::Deploy => KLUCTL_REQUEST_DEPLOY_ANNOTATION,
            Self::Diff => KLUCTL_REQUEST_DIFF_ANNOTATION,
            Self::Prune => KLUCTL_REQUEST_PRUNE_ANNOTATION,
            Self::Validate => KLUCTL_REQUEST_VALIDATE_ANNOTATION,
        }
    }

    /// The status field the controller reports this request in.
    pub fn result(self, status: &KluctlDeploymentStatus) -> Option<&ManualRequestResult> {
        match self {
            Self::Reconcile => status.reconcile_request_result.as_ref(),
            Self::Deploy => status.deploy_request_result.as_ref(),
            Self::Diff => status.diff_request_result.as_ref(),
            Self::Prune => status.prune_request_result.as_ref(),
            Self::Validate => status.validate_request_result.as_ref(),
        }
    }
}

/// The annotation value of a request: `overridesPatch` only when there are overrides. The patch
/// is a merge patch of the whole object (the controller merges it over the object), so the spec
/// fields go under `spec`.
pub fn annotation_value(request_value: &str, overrides: &Map<String, Value>) -> String {
    let request = ManualRequest {
        request_value: request_value.to_owned(),
        overrides_patch: (!overrides.is_empty())
            .then(|| Map::from_iter([("spec".to_owned(), Value::Object(overrides.clone()))])),
    };
    // Strings and JSON values only: serializing cannot fail.
    serde_json::to_string(&request).unwrap_or_default()
}

/// The merge patch that sets the request annotation of `kind` to `request_value` (no overrides).
pub fn request_patch(kind: RequestKind, request_value: &str) -> Value {
    serde_json::json!({"metadata": {"annotations": {kind.annotation(): annotation_value(request_value, &Map::new())}}})
}
