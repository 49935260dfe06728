//! The full reconcile's decisions, as pure functions of the spec, the status and the clock:
//! the intervals, whether to deploy (the objects-hash gate, manual approval, forced deploys),
//! whether to validate, and when to come back.
//!
//! Kluctl's rules (reference `kluctl.md` §3.1):
//! - deploy when there is no deploy result yet, the rendered objects' hash changed, the approved
//!   hash changed in manual mode, the generation changed, or `deployInterval` has passed since the
//!   last deploy ended;
//! - in manual mode such a deploy only happens when `spec.manualObjectsHash` equals this render's
//!   hash;
//! - validate (when `spec.validate`) when there is no validate result, after a deploy, or when
//!   `validateInterval` (default `interval`) has passed since the last one ended;
//! - come back at the earliest of `interval`, the next forced deploy and the next validation.

use std::time::Duration;

use gitops_api::kluctl::v1beta1::{KluctlDeploymentSpec, KluctlDeploymentStatus};
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

/// Kluctl never gives a reconcile less than this.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The intervals of a KluctlDeployment, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `spec.interval`.
    pub interval: Duration,
    /// `spec.retryInterval`, default `interval`.
    pub retry_interval: Duration,
    /// `spec.deployInterval`: forced deploys; `None` never.
    pub deploy_interval: Option<Duration>,
    /// `spec.validateInterval`, default `interval`.
    pub validate_interval: Duration,
    /// `spec.timeout`, default `deployInterval` else `interval`, at least [`MIN_TIMEOUT`].
    pub timeout: Duration,
}

/// A duration field that does not parse, named by its JSON path.
#[derive(Debug, thiserror::Error)]
#[error("invalid spec.{field} '{value}': {message}")]
pub struct TimingError {
    /// `interval`, `retryInterval`, ...
    pub field: &'static str,
    /// The value as written.
    pub value: String,
    /// Why it does not parse.
    pub message: String,
}

fn parse(field: &'static str, value: &str) -> Result<Duration, TimingError> {
    gitops_api::duration::parse(value).map_err(|e| TimingError {
        field,
        value: value.to_owned(),
        message: e.to_string(),
    })
}

fn parse_opt(field: &'static str, value: Option<&str>) -> Result<Option<Duration>, TimingError> {
    value.map(|v| parse(field, v)).transpose()
}

impl Timing {
    /// The intervals of `spec`.
    ///
    /// # Errors
    /// A duration that does not parse (the CRD's pattern normally rejects it first).
    pub fn from_spec(spec: &KluctlDeploymentSpec) -> Result<Self, TimingError> {
        let interval = parse("interval", &spec.interval)?;
        let deploy_interval = parse_opt("deployInterval", spec.deploy_interval.as_deref())?;
        let timeout = parse_opt("timeout", spec.timeout.as_deref())?
            .unwrap_or_else(|| deploy_interval.unwrap_or(interval))
            .max(MIN_TIMEOUT);
        Ok(Self {
            interval,
            retry_interval: parse_opt("retryInterval", spec.retry_interval.as_deref())?.unwrap_or(interval),
            deploy_interval,
            validate_interval: parse_opt("validateInterval", spec.validate_interval.as_deref())?
                .unwrap_or(interval),
            timeout,
        })
    }
}

/// Why a deploy is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeployReason {
    /// No deploy result yet.
    Initial,
    /// The rendered objects changed.
    ObjectsChanged,
    /// Manual mode: a different hash was approved.
    ApprovalChanged,
    /// The spec changed (`metadata.generation`).
    GenerationChanged,
    /// `deployInterval` passed.
    Interval,
}

impl DeployReason {
    /// For logs and the reconcile event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "first deploy",
            Self::ObjectsChanged => "rendered objects changed",
            Self::ApprovalChanged => "approved objects hash changed",
            Self::GenerationChanged => "spec changed",
            Self::Interval => "deployInterval passed",
        }
    }
}

/// What the full reconcile does with the rendered objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeployDecision {
    /// Nothing changed.
    UpToDate,
    /// Deploy now.
    Deploy(DeployReason),
    /// A deploy is due, but manual mode has not approved this render's hash.
    AwaitingApproval(DeployReason),
}

fn end_time_of_deploy(status: &KluctlDeploymentStatus) -> Option<Timestamp> {
    status
        .last_deploy_result
        .as_ref()
        .and_then(|r| r.command_info.end_time.as_ref())
        .map(|t| t.0)
}

fn end_time_of_validate(status: &KluctlDeploymentStatus) -> Option<Timestamp> {
    status
        .last_validate_result
        .as_ref()
        .and_then(|r| r.end_time.as_ref())
        .map(|t| t.0)
}

/// `t + d`, saturating (a huge interval means "never", not an overflow).
pub(crate) fn plus(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Whether (and why) the full reconcile deploys.
pub fn decide_deploy(
    spec: &KluctlDeploymentSpec,
    status: &KluctlDeploymentStatus,
    generation: Option<i64>,
    objects_hash: &str,
    timing: &Timing,
    now: Timestamp,
) -> DeployDecision {
    let reason = if status.last_deploy_result.is_none() {
        Some(DeployReason::Initial)
    } else if status.last_objects_hash != objects_hash {
        Some(DeployReason::ObjectsChanged)
    } else if spec.manual && status.last_manual_objects_hash != spec.manual_objects_hash {
        Some(DeployReason::ApprovalChanged)
    } else if status.observed_generation != generation {
        Some(DeployReason::GenerationChanged)
    } else if let (Some(every), Some(end)) = (timing.deploy_interval, end_time_of_deploy(status))
        && plus(end, every) < now
    {
        Some(DeployReason::Interval)
    } else {
        None
    };
    match reason {
        None => DeployDecision::UpToDate,
        Some(r) if spec.manual && spec.manual_objects_hash.as_deref() != Some(objects_hash) => {
            DeployDecision::AwaitingApproval(r)
        }
        Some(r) => DeployDecision::Deploy(r),
    }
}

/// Whether the full reconcile validates (only with `spec.validate`).
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
    deployed || end_time_of_validate(status).is_none_or(|end| plus(end, timing.validate_interval) < now)
}

/// How long until the next full reconcile: the earliest of `interval`, the next forced deploy
/// and (with `spec.validate`) the next validation, from the status after this reconcile.
pub fn requeue_after(
    spec: &KluctlDeploymentSpec,
    status: &KluctlDeploymentStatus,
    timing: &Timing,
    now: Timestamp,
) -> Duration {
    let mut next = plus(now, timing.interval);
    if let (Some(every), Some(end)) = (timing.deploy_interval, end_time_of_deploy(status)) {
        next = next.min(plus(end, every));
    }
    if spec.validate
        && let Some(end) = end_time_of_validate(status)
    {
        next = next.min(plus(end, timing.validate_interval));
    }
    let wait = next.duration_since(now);
    // A time already passed: come back soon, not in a busy loop.
    Duration::try_from(wait)
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_secs(1))
}

/// The hash of a render: sha256 over the sha256 of each object's JSON, in deployment order
/// (item order, then object order), hex-encoded.
pub fn objects_hash<'a>(objects: impl Iterator<Item = &'a serde_json::Value>) -> String {
    let mut outer = Sha256::new();
    for o in objects {
        let json = serde_json::to_vec(o).unwrap_or_default();
        outer.update(Sha256::digest(&json));
    }
    format!("{:x}", outer.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::kluctl::results::{CommandInfo, CommandResultSummary, ValidateResult};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn spec(extra: &serde_json::Value) -> KluctlDeploymentSpec {
        let mut v = json!({"interval": "5m", "source": {"git": {"url": "https://h/r.git"}}});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn deployed(end: &str, hash: &str, generation: i64) -> KluctlDeploymentStatus {
        KluctlDeploymentStatus {
            last_deploy_result: Some(CommandResultSummary {
                command_info: CommandInfo {
                    end_time: Some(Time(at(end))),
                    ..CommandInfo::default()
                },
                ..CommandResultSummary::default()
            }),
            last_objects_hash: hash.to_owned(),
            observed_generation: Some(generation),
            ..KluctlDeploymentStatus::default()
        }
    }

    #[test]
    fn timing_defaults_follow_kluctl() {
        let t = Timing::from_spec(&spec(&json!({}))).unwrap();
        assert_eq!(t.interval, Duration::from_secs(300));
        assert_eq!(t.retry_interval, t.interval);
        assert_eq!(t.validate_interval, t.interval);
        assert_eq!(t.timeout, t.interval);
        let t = Timing::from_spec(&spec(&json!({"interval": "10s", "deployInterval": "1h"}))).unwrap();
        assert_eq!(
            t.timeout,
            Duration::from_secs(3600),
            "timeout defaults to deployInterval"
        );
        let t = Timing::from_spec(&spec(&json!({"interval": "10s"}))).unwrap();
        assert_eq!(t.timeout, MIN_TIMEOUT, "timeout is floored to 30s");
        let e = Timing::from_spec(&spec(&json!({"retryInterval": "soon"}))).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid spec.retryInterval 'soon'"),
            "{e}"
        );
    }

    #[test]
    fn the_hash_gate_deploys_only_on_change() {
        let s = spec(&json!({}));
        let t = Timing::from_spec(&s).unwrap();
        let now = at("2026-01-01T00:10:00Z");
        assert_eq!(
            decide_deploy(&s, &KluctlDeploymentStatus::default(), Some(1), "h", &t, now),
            DeployDecision::Deploy(DeployReason::Initial)
        );
        let st = deployed("2026-01-01T00:00:00Z", "h", 1);
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "h", &t, now),
            DeployDecision::UpToDate
        );
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "other", &t, now),
            DeployDecision::Deploy(DeployReason::ObjectsChanged)
        );
        assert_eq!(
            decide_deploy(&s, &st, Some(2), "h", &t, now),
            DeployDecision::Deploy(DeployReason::GenerationChanged)
        );
    }

    #[test]
    fn deploy_interval_forces_a_deploy_once_passed() {
        let s = spec(&json!({"deployInterval": "10m"}));
        let t = Timing::from_spec(&s).unwrap();
        let st = deployed("2026-01-01T00:00:00Z", "h", 1);
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "h", &t, at("2026-01-01T00:09:59Z")),
            DeployDecision::UpToDate
        );
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "h", &t, at("2026-01-01T00:10:01Z")),
            DeployDecision::Deploy(DeployReason::Interval)
        );
    }

    #[test]
    fn manual_mode_waits_for_the_approved_hash() {
        let s = spec(&json!({"manual": true}));
        let t = Timing::from_spec(&s).unwrap();
        let now = at("2026-01-01T00:10:00Z");
        let st = deployed("2026-01-01T00:00:00Z", "old", 1);
        assert_eq!(
            decide_deploy(&s, &st, Some(1), "new", &t, now),
            DeployDecision::AwaitingApproval(DeployReason::ObjectsChanged)
        );
        let approved = spec(&json!({"manual": true, "manualObjectsHash": "new"}));
        assert_eq!(
            decide_deploy(&approved, &st, Some(1), "new", &t, now),
            DeployDecision::Deploy(DeployReason::ObjectsChanged)
        );
        // Approved and deployed: the recorded approval equals the spec, nothing to do.
        let mut done = deployed("2026-01-01T00:00:00Z", "new", 1);
        done.last_manual_objects_hash = Some("new".into());
        assert_eq!(
            decide_deploy(&approved, &done, Some(1), "new", &t, now),
            DeployDecision::UpToDate
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
        st.last_validate_result = Some(ValidateResult {
            end_time: Some(Time(at("2026-01-01T00:00:00Z"))),
            ..ValidateResult::default()
        });
        assert!(!decide_validate(&s, &st, false, &t, at("2026-01-01T00:00:30Z")));
        assert!(
            decide_validate(&s, &st, true, &t, at("2026-01-01T00:00:30Z")),
            "after a deploy"
        );
        assert!(decide_validate(&s, &st, false, &t, at("2026-01-01T00:01:30Z")));
        let off = spec(&json!({"validate": false}));
        assert!(!decide_validate(&off, &st, true, &t, at("2026-01-01T00:01:30Z")));
    }

    #[test]
    fn requeue_is_the_earliest_next_time() {
        let s = spec(&json!({"interval": "10m", "deployInterval": "15m", "validateInterval": "2m"}));
        let t = Timing::from_spec(&s).unwrap();
        let mut st = deployed("2026-01-01T00:00:00Z", "h", 1);
        st.last_validate_result = Some(ValidateResult {
            end_time: Some(Time(at("2026-01-01T00:00:00Z"))),
            ..ValidateResult::default()
        });
        let now = at("2026-01-01T00:00:30Z");
        assert_eq!(requeue_after(&s, &st, &t, now), Duration::from_secs(90));
        let no_validate = spec(&json!({"interval": "10m", "deployInterval": "5m", "validate": false}));
        let t = Timing::from_spec(&no_validate).unwrap();
        assert_eq!(
            requeue_after(&no_validate, &st, &t, now),
            Duration::from_secs(270)
        );
    }

    #[test]
    fn the_objects_hash_depends_on_content_and_order() {
        let a = json!({"kind": "ConfigMap", "metadata": {"name": "a"}});
        let b = json!({"kind": "ConfigMap", "metadata": {"name": "b"}});
        let ab = objects_hash([&a, &b].into_iter());
        assert_eq!(ab.len(), 64);
        assert_eq!(ab, objects_hash([&a, &b].into_iter()));
        assert_ne!(ab, objects_hash([&b, &a].into_iter()));
    }
}
