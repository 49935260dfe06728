//! The legacy reconcile's decisions, as pure functions of the spec, the status, the request
//! annotation and the clock (flux-kluctl-controller v0.16 rules, reference `kluctl.md` §2):
//!
//! - deploy when there is no deploy result yet, the last deploy failed (it is retried every
//!   `retryInterval`), `deployOnChanges` and the rendered objects' hash differs from the last
//!   deploy's, the `deploy.flux.kluctl.io/requestedAt` annotation differs from
//!   `status.lastHandledDeployAt`, the generation changed, or `deployInterval` (unless `never`)
//!   has passed since the last deploy;
//! - validate (when `spec.validate`) when there is no validate result, after a deploy, or when
//!   `validateInterval` (default `interval`; `never` disables it) has passed since the last one;
//! - come back at the earliest of `interval`, the next forced deploy and the next validation.

use std::time::Duration;

use gitops_api::flux_kluctl::v1alpha1::{KluctlDeploymentSpec, KluctlDeploymentStatus, NEVER};
use jiff::Timestamp;

use crate::controller::decide::{TimingError, plus};

/// The intervals of a legacy KluctlDeployment, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `spec.interval`.
    pub interval: Duration,
    /// `spec.retryInterval`, default `interval`.
    pub retry_interval: Duration,
    /// `spec.deployInterval`; `None`: unset or `never`.
    pub deploy_interval: Option<Duration>,
    /// `spec.validateInterval`, default `interval`; `None`: `never`.
    pub validate_interval: Option<Duration>,
    /// `spec.timeout`, default `interval` (flux-kluctl-controller has no floor).
    pub timeout: Duration,
}

fn parse(field: &'static str, value: &str) -> Result<Duration, TimingError> {
    gitops_api::duration::parse(value).map_err(|e| TimingError {
        field,
        value: value.to_owned(),
        message: e.to_string(),
    })
}

/// A duration or `never` (`None`).
fn parse_or_never(field: &'static str, value: &str) -> Result<Option<Duration>, TimingError> {
    if value == NEVER {
        Ok(None)
    } else {
        parse(field, value).map(Some)
    }
}

impl Timing {
    /// The intervals of `spec`.
    ///
    /// # Errors
    /// A duration that does not parse (the CRD's pattern normally rejects it first).
    pub fn from_spec(spec: &KluctlDeploymentSpec) -> Result<Self, TimingError> {
        let interval = parse("interval", &spec.interval)?;
        let opt = |field, v: Option<&String>| v.map(|v| parse(field, v)).transpose();
        Ok(Self {
            interval,
            retry_interval: opt("retryInterval", spec.retry_interval.as_ref())?.unwrap_or(interval),
            deploy_interval: match &spec.deploy_interval {
                Some(v) => parse_or_never("deployInterval", v)?,
                None => None,
            },
            validate_interval: match &spec.validate_interval {
                Some(v) => parse_or_never("validateInterval", v)?,
                None => Some(interval),
            },
            timeout: opt("timeout", spec.timeout.as_ref())?.unwrap_or(interval),
        })
    }
}

/// Why a deploy is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeployReason {
    /// No deploy result yet.
    Initial,
    /// The last deploy failed.
    LastFailed,
    /// The rendered objects changed (`deployOnChanges`).
    ObjectsChanged,
    /// `deploy.flux.kluctl.io/requestedAt` has a value not handled yet.
    Requested,
    /// The spec changed (`metadata.generation`).
    GenerationChanged,
    /// `deployInterval` passed.
    Interval,
}

impl DeployReason {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "first deploy",
            Self::LastFailed => "the last deploy failed",
            Self::ObjectsChanged => "rendered objects changed",
            Self::Requested => "deploy requested",
            Self::GenerationChanged => "spec changed",
            Self::Interval => "deployInterval passed",
        }
    }
}

/// Whether (and why) this reconcile deploys; `None`: nothing to do.
///
/// `deploy_requested` is the value of the `deploy.flux.kluctl.io/requestedAt` annotation.
pub fn decide_deploy(
    spec: &KluctlDeploymentSpec,
    status: &KluctlDeploymentStatus,
    generation: Option<i64>,
    objects_hash: &str,
    deploy_requested: Option<&str>,
    timing: &Timing,
    now: Timestamp,
) -> Option<DeployReason> {
    let Some(last) = &status.last_deploy_result else {
        return Some(DeployReason::Initial);
    };
    if !last.error.is_empty() {
        Some(DeployReason::LastFailed)
    } else if spec.deploy_on_changes && last.objects_hash != objects_hash {
        Some(DeployReason::ObjectsChanged)
    } else if deploy_requested.is_some_and(|v| !v.is_empty() && v != status.last_handled_deploy_at) {
        Some(DeployReason::Requested)
    } else if status.observed_generation != generation {
        Some(DeployReason::GenerationChanged)
    } else if timing
        .deploy_interval
        .is_some_and(|every| plus(last.time.0, every) <= now)
    {
        Some(DeployReason::Interval)
    } else {
        None
    }
}

/// Whether this reconcile validates (only with `spec.validate`).
pub fn decide_validate(
    spec: &KluctlDeploymentSpec,
    status: &KluctlDeploymentStatus,
    deployed: bool,
    timing: &Timing,
    now: Timestamp,
) -> bool {
    if !spec.validate {
        return false;
    }
    let Some(last) = &status.last_validate_result else {
        return true;
    };
    deployed
        || timing
            .validate_interval
            .is_some_and(|every| plus(last.time.0, every) <= now)
}

/// How long until the next reconcile: the earliest of `interval`, the next forced deploy and
/// (with `spec.validate`) the next validation, from the status after this reconcile.
pub fn requeue_after(
    spec: &KluctlDeploymentSpec,
    status: &KluctlDeploymentStatus,
    timing: &Timing,
    now: Timestamp,
) -> Duration {
    let mut next = plus(now, timing.interval);
    if let (Some(every), Some(last)) = (timing.deploy_interval, &status.last_deploy_result) {
        next = next.min(plus(last.time.0, every));
    }
    if spec.validate
        && let (Some(every), Some(last)) = (timing.validate_interval, &status.last_validate_result)
    {
        next = next.min(plus(last.time.0, every));
    }
    // A time already passed: come back soon, not in a busy loop.
    Duration::try_from(next.duration_since(now))
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::flux_kluctl::v1alpha1::LastCommandResult;
    use gitops_api::meta::Time;
    use serde_json::json;

    fn spec(extra: &serde_json::Value) -> KluctlDeploymentSpec {
        let mut v = json!({"interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "r"}});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn result(time: &str, hash: &str, error: &str) -> LastCommandResult {
        LastCommandResult {
            time: Time(at(time)),
            revision: "main@sha1:abc".into(),
            target: None,
            target_name_override: None,
            objects_hash: hash.into(),
            raw_result: None,
            error: error.into(),
        }
    }

    fn deployed(time: &str, hash: &str, generation: i64) -> KluctlDeploymentStatus {
        KluctlDeploymentStatus {
            last_deploy_result: Some(result(time, hash, "")),
            observed_generation: Some(generation),
            ..KluctlDeploymentStatus::default()
        }
    }

    #[test]
    fn never_disables_the_periodic_actions() {
        let t = Timing::from_spec(&spec(&json!({}))).unwrap();
        assert_eq!(t.interval, Duration::from_secs(300));
        assert_eq!((t.retry_interval, t.timeout), (t.interval, t.interval));
        assert_eq!((t.deploy_interval, t.validate_interval), (None, Some(t.interval)));
        let t = Timing::from_spec(&spec(
            &json!({"deployInterval": "never", "validateInterval": "never"}),
        ))
        .unwrap();
        assert_eq!((t.deploy_interval, t.validate_interval), (None, None));
        let t = Timing::from_spec(&spec(&json!({"deployInterval": "1h", "timeout": "2m"}))).unwrap();
        assert_eq!(t.deploy_interval, Some(Duration::from_secs(3600)));
        assert_eq!(t.timeout, Duration::from_secs(120));
        let e = Timing::from_spec(&spec(&json!({"validateInterval": "sometimes"}))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid spec.validateInterval 'sometimes'"),
            "{e}"
        );
    }

    #[test]
    fn deploys_follow_the_legacy_triggers() {
        let s = spec(&json!({}));
        let t = Timing::from_spec(&s).unwrap();
        let now = at("2026-01-01T00:10:00Z");
        let none = KluctlDeploymentStatus::default();
        assert_eq!(
            decide_deploy(&s, &none, Some(1), "h", None, &t, now),
            Some(DeployReason::Initial)
        );
        let st = deployed("2026-01-01T00:00:00Z", "h", 1);
        assert_eq!(decide_deploy(&s, &st, Some(1), "h", None, &t, now), None);
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "other", None, &t, now),
            Some(DeployReason::ObjectsChanged)
        );
        assert_eq!(
            decide_deploy(&s, &st, Some(2), "h", None, &t, now),
            Some(DeployReason::GenerationChanged)
        );
        let mut failed = st.clone();
        failed.last_deploy_result = Some(result(
            "2026-01-01T00:00:00Z",
            "h",
            "deploy failed with 1 errors.",
        ));
        assert_eq!(
            decide_deploy(&s, &failed, Some(1), "h", None, &t, now),
            Some(DeployReason::LastFailed)
        );
    }

    #[test]
    fn without_deploy_on_changes_a_new_hash_waits() {
        let s = spec(&json!({"deployOnChanges": false}));
        let t = Timing::from_spec(&s).unwrap();
        let st = deployed("2026-01-01T00:00:00Z", "h", 1);
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "other", None, &t, at("2026-01-01T00:10:00Z")),
            None
        );
    }

    #[test]
    fn the_deploy_annotation_deploys_once_per_value() {
        let s = spec(&json!({}));
        let t = Timing::from_spec(&s).unwrap();
        let now = at("2026-01-01T00:10:00Z");
        let mut st = deployed("2026-01-01T00:00:00Z", "h", 1);
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "h", Some("2026-01-01T00:05:00Z"), &t, now),
            Some(DeployReason::Requested)
        );
        st.last_handled_deploy_at = "2026-01-01T00:05:00Z".into();
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "h", Some("2026-01-01T00:05:00Z"), &t, now),
            None
        );
        assert_eq!(decide_deploy(&s, &st, Some(1), "h", Some(""), &t, now), None);
    }

    #[test]
    fn deploy_interval_forces_a_deploy_unless_never() {
        let s = spec(&json!({"deployInterval": "10m"}));
        let t = Timing::from_spec(&s).unwrap();
        let st = deployed("2026-01-01T00:00:00Z", "h", 1);
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "h", None, &t, at("2026-01-01T00:09:59Z")),
            None
        );
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "h", None, &t, at("2026-01-01T00:10:00Z")),
            Some(DeployReason::Interval)
        );
        let never = spec(&json!({"deployInterval": "never"}));
        let t = Timing::from_spec(&never).unwrap();
        assert_eq!(
            decide_deploy(&never, &st, Some(1), "h", None, &t, at("2027-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn validation_runs_after_deploys_and_on_its_interval() {
        let s = spec(&json!({"validateInterval": "1m"}));
        let t = Timing::from_spec(&s).unwrap();
        let mut st = deployed("2026-01-01T00:00:00Z", "h", 1);
        assert!(
            decide_validate(&s, &st, false, &t, at("2026-01-01T00:00:10Z")),
            "no result yet"
        );
        st.last_validate_result = Some(result("2026-01-01T00:00:00Z", "h", ""));
        assert!(!decide_validate(&s, &st, false, &t, at("2026-01-01T00:00:30Z")));
        assert!(
            decide_validate(&s, &st, true, &t, at("2026-01-01T00:00:30Z")),
            "after a deploy"
        );
        assert!(decide_validate(&s, &st, false, &t, at("2026-01-01T00:01:30Z")));
        let never = spec(&json!({"validateInterval": "never"}));
        let t = Timing::from_spec(&never).unwrap();
        assert!(!decide_validate(
            &never,
            &st,
            false,
            &t,
            at("2027-01-01T00:00:00Z")
        ));
        assert!(decide_validate(&never, &st, true, &t, at("2027-01-01T00:00:00Z")));
        let off = spec(&json!({"validate": false}));
        assert!(!decide_validate(&off, &st, true, &t, at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn requeue_is_the_earliest_next_time() {
        let s = spec(&json!({"interval": "10m", "deployInterval": "15m", "validateInterval": "2m"}));
        let t = Timing::from_spec(&s).unwrap();
        let mut st = deployed("2026-01-01T00:00:00Z", "h", 1);
        st.last_validate_result = Some(result("2026-01-01T00:00:00Z", "h", ""));
        let now = at("2026-01-01T00:00:30Z");
        assert_eq!(requeue_after(&s, &st, &t, now), Duration::from_secs(90));
        let never = spec(&json!({"interval": "10m", "deployInterval": "never", "validateInterval": "never"}));
        let t = Timing::from_spec(&never).unwrap();
        assert_eq!(requeue_after(&never, &st, &t, now), Duration::from_secs(600));
    }
}
