//! Manual requests: the five `kluctl.io/request-*` annotations (set by `kluctl gitops`, the web
//! UI, or `kubectl annotate`) with Kluctl's JSON value `{"requestValue": ..., "overridesPatch":
//! {...}}`.
//!
//! The controller handles at most one per reconcile, in Kluctl's order (diff, deploy, prune,
//! validate; a reconcile request is the full reconcile itself), also while suspended. It removes
//! the annotation first, but only if it still holds the value read (a JSON patch `test` + `remove`,
//! so a newer request set meanwhile survives), records `status.<kind>RequestResult` with the
//! start time and reconcile id, runs the command with the `overridesPatch` merged into an
//! in-memory copy of the object (only `spec` may change), and finally records end time, result
//! id and error.

use gitops_api::constants::{
    KLUCTL_REQUEST_DEPLOY_ANNOTATION, KLUCTL_REQUEST_DIFF_ANNOTATION, KLUCTL_REQUEST_PRUNE_ANNOTATION,
    KLUCTL_REQUEST_RECONCILE_ANNOTATION, KLUCTL_REQUEST_VALIDATE_ANNOTATION,
};
use gitops_api::kluctl::v1beta1::{KluctlDeployment, KluctlDeploymentSpec, ManualRequest};
use serde_json::{Map, Value, json};

/// A kind of manual request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `kluctl.io/request-reconcile`: a full reconcile, even when suspended.
    Reconcile,
    /// `kluctl.io/request-diff`.
    Diff,
    /// `kluctl.io/request-deploy`: a deploy regardless of the hash gate and manual approval.
    Deploy,
    /// `kluctl.io/request-prune`.
    Prune,
    /// `kluctl.io/request-validate`.
    Validate,
}

impl RequestKind {
    /// The command requests in the order Kluctl handles them (one per reconcile).
    pub const COMMANDS: [Self; 4] = [Self::Diff, Self::Deploy, Self::Prune, Self::Validate];

    /// The annotation carrying the request.
    pub fn annotation(self) -> &'static str {
        match self {
            Self::Reconcile => KLUCTL_REQUEST_RECONCILE_ANNOTATION,
            Self::Diff => KLUCTL_REQUEST_DIFF_ANNOTATION,
            Self::Deploy => KLUCTL_REQUEST_DEPLOY_ANNOTATION,
            Self::Prune => KLUCTL_REQUEST_PRUNE_ANNOTATION,
            Self::Validate => KLUCTL_REQUEST_VALIDATE_ANNOTATION,
        }
    }

    /// The status field recording its progress (`status.<x>RequestResult`).
    pub fn status_field(self) -> &'static str {
        match self {
            Self::Reconcile => "reconcileRequestResult",
            Self::Diff => "diffRequestResult",
            Self::Deploy => "deployRequestResult",
            Self::Prune => "pruneRequestResult",
            Self::Validate => "validateRequestResult",
        }
    }

    /// The command name (logs, events, results).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reconcile => "reconcile",
            Self::Diff => "diff",
            Self::Deploy => "deploy",
            Self::Prune => "prune",
            Self::Validate => "validate",
        }
    }
}

/// Why a request annotation could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// The value is not the JSON Kluctl's clients write.
    #[error("annotation '{annotation}': invalid request: {message}")]
    Invalid {
        /// The annotation.
        annotation: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The overrides patch touches more than `spec`.
    #[error("override patch tried to modify non-spec fields")]
    NonSpec,
    /// The patched spec is not a valid KluctlDeployment spec.
    #[error("override patch produced an invalid spec: {0}")]
    InvalidSpec(String),
}

/// A request found on the object.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// Which request.
    pub kind: RequestKind,
    /// The annotation value as read (the removal tests for it).
    pub raw: String,
    /// The parsed request.
    pub request: ManualRequest,
}

/// The request of `kind` on `kd`, if its annotation is set: parsed, or the parse error.
pub fn find(kd: &KluctlDeployment, kind: RequestKind) -> Option<Result<Pending, (String, RequestError)>> {
    let raw = kd.metadata.annotations.as_ref()?.get(kind.annotation())?.clone();
    Some(parse(kind, &raw).map_err(|e| (raw, e)))
}

/// Parses an annotation value.
pub fn parse(kind: RequestKind, raw: &str) -> Result<Pending, RequestError> {
    let invalid = |message: String| RequestError::Invalid {
        annotation: kind.annotation(),
        message,
    };
    let request: ManualRequest = serde_json::from_str(raw).map_err(|e| invalid(e.to_string()))?;
    if request.request_value.is_empty() {
        return Err(invalid("requestValue is empty".to_owned()));
    }
    Ok(Pending {
        kind,
        raw: raw.to_owned(),
        request,
    })
}

/// The JSON patch that removes the annotation only if it still holds `raw`.
pub fn removal_patch(kind: RequestKind, raw: &str) -> Value {
    let path = format!(
        "/metadata/annotations/{}",
        kind.annotation().replace('~', "~0").replace('/', "~1")
    );
    json!([
        {"op": "test", "path": path, "value": raw},
        {"op": "remove", "path": path},
    ])
}

/// `spec` with a request's `overridesPatch` (a JSON merge patch over the whole object) applied.
///
/// # Errors
/// [`RequestError::NonSpec`] when the patch names anything but `spec`;
/// [`RequestError::InvalidSpec`] when the result is not a valid spec.
pub fn apply_overrides(
    spec: &KluctlDeploymentSpec,
    patch: Option<&Map<String, Value>>,
) -> Result<KluctlDeploymentSpec, RequestError> {
    let Some(patch) = patch else {
        return Ok(spec.clone());
    };
    if patch.keys().any(|k| k != "spec") {
        return Err(RequestError::NonSpec);
    }
    let Some(spec_patch) = patch.get("spec") else {
        return Ok(spec.clone());
    };
    let mut value = serde_json::to_value(spec).map_err(|e| RequestError::InvalidSpec(e.to_string()))?;
    merge_patch(&mut value, spec_patch);
    serde_json::from_value(value).map_err(|e| RequestError::InvalidSpec(e.to_string()))
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes, anything else replaces.
/// (Eight lines; a crate for it would bring a JSON-patch implementation we do not need.)
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> KluctlDeploymentSpec {
        serde_json::from_value(json!({
            "interval": "5m", "source": {"git": {"url": "u"}}, "target": "prod", "args": {"a": 1, "b": {"c": 2}}
        }))
        .unwrap()
    }

    #[test]
    fn requests_parse_as_kluctl_writes_them() {
        let p = parse(
            RequestKind::Deploy,
            r#"{"requestValue":"2026-01-01T00:00:00.123456789Z","overridesPatch":{"spec":{"dryRun":true}}}"#,
        )
        .unwrap();
        assert_eq!(p.request.request_value, "2026-01-01T00:00:00.123456789Z");
        assert!(p.request.overrides_patch.is_some());
        let e = parse(RequestKind::Diff, r#"{"requestValue":""}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation 'kluctl.io/request-diff': invalid request: requestValue is empty"
        );
        assert!(
            parse(RequestKind::Diff, "2026-01-01").is_err(),
            "a bare timestamp is not the protocol"
        );
    }

    #[test]
    fn the_removal_tests_the_value_read() {
        let p = removal_patch(RequestKind::Prune, "v");
        assert_eq!(p[0]["op"], "test");
        assert_eq!(p[0]["path"], "/metadata/annotations/kluctl.io~1request-prune");
        assert_eq!(p[0]["value"], "v");
        assert_eq!(p[1]["op"], "remove");
    }

    #[test]
    fn overrides_merge_into_the_spec_only() {
        let patch = json!({"spec": {"dryRun": true, "target": null, "args": {"b": {"d": 3}}}});
        let s = apply_overrides(&spec(), patch.as_object()).unwrap();
        assert!(s.dry_run);
        assert_eq!(s.target, None);
        assert_eq!(
            serde_json::to_value(&s.args).unwrap(),
            json!({"a": 1, "b": {"c": 2, "d": 3}})
        );
        let bad = json!({"metadata": {"labels": {"x": "y"}}});
        assert_eq!(
            apply_overrides(&spec(), bad.as_object()).unwrap_err(),
            RequestError::NonSpec
        );
        let invalid = json!({"spec": {"interval": 5}});
        assert!(matches!(
            apply_overrides(&spec(), invalid.as_object()),
            Err(RequestError::InvalidSpec(_))
        ));
    }
}
