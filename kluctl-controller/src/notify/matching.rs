//! Which Alerts an event reaches, and what the event looks like when it gets there: pure
//! functions over the event, the Alert and (for commit statuses) the Provider type.
//!
//! ```text
//!  intake:   cleanup_metadata ─► dedup_key ─► strip_token
//!  per Alert: source_match (kind, namespace, name or '*', matchLabels) ─► severity
//!             ─► Filters (inclusionList / exclusionList) ─► provider_accepts (commit status,
//!             change request) ─► merge_metadata (prefixes stripped, conflicts reported)
//! ```
//!
//! Flux's rules, so an Alert written for Flux's notification-controller selects the same events
//! here: metadata keeps only keys prefixed with `event.toolkit.fluxcd.io/` or the involved object's
//! API group; the checksum and digest keys are dropped before anything else looks at them.

use std::collections::BTreeMap;

use gitops_api::notification::v1::CrossNamespaceObjectReference;
use gitops_api::notification::v1beta3::{AlertSpec, EventSeverity, ProviderType};
use gitops_runtime::{FluxEvent, Severity};
use sha2::{Digest as _, Sha256};

/// Prefix of the metadata keys users set through object annotations.
pub const EVENT_GROUP_PREFIX: &str = "event.toolkit.fluxcd.io/";

/// The API group of an `apiVersion` (`gitops.kluctl.io/v1beta1` → `gitops.kluctl.io`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The involved object's API group of an event.
pub fn event_group(event: &FluxEvent) -> &str {
    group_of(event.involved_object.api_version.as_deref().unwrap_or_default())
}

/// Drops the metadata keys that are neither `event.toolkit.fluxcd.io/*` nor prefixed with the
/// involved object's group, and the group's `checksum` and `digest` keys.
pub fn cleanup_metadata(event: &mut FluxEvent) {
    let group = event_group(event).to_owned();
    let own = format!("{group}/");
    let (checksum, digest) = (format!("{group}/checksum"), format!("{group}/digest"));
    event.metadata.retain(|k, _| {
        (k.starts_with(EVENT_GROUP_PREFIX) || (!group.is_empty() && k.starts_with(&own)))
            && *k != checksum
            && *k != digest
    });
}

/// The rate-limit key: one delivery per key per interval. Object, message and the revision-like
/// metadata values (so a new revision with the same message is a new event).
pub fn dedup_key(event: &FluxEvent) -> String {
    let obj = &event.involved_object;
    let mut parts = vec![
        "event".to_owned(),
        format!("name={}", obj.name.as_deref().unwrap_or_default()),
        format!("namespace={}", obj.namespace.as_deref().unwrap_or_default()),
        format!("kind={}", obj.kind.as_deref().unwrap_or_default()),
        format!("message={}", event.message),
    ];
    let group = event_group(event);
    for key in ["originRevision", "revision", "token"] {
        if let Some(v) = event.metadata.get(&format!("{group}/{key}")) {
            parts.push(format!("{key}={v}"));
        }
    }
    format!("{:x}", Sha256::digest(parts.join("/").as_bytes()))
}

/// Removes the internal `<group>/token` key (it only feeds the dedup key).
pub fn strip_token(event: &mut FluxEvent) {
    let key = format!("{}/token", event_group(event));
    event.metadata.remove(&key);
}

/// Outcome of comparing one `eventSources` entry with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum SourceMatch {
    /// Not this entry.
    No,
    /// Selected.
    Yes,
    /// Selected if the involved object carries these labels (the caller reads them).
    IfLabels(BTreeMap<String, String>),
}

/// Compares one `eventSources` entry of an Alert in `alert_namespace` with the event's object:
/// namespace (default: the Alert's), kind, name (`*` for all; then `matchLabels`).
pub fn source_match(
    alert_namespace: &str,
    source: &CrossNamespaceObjectReference,
    event: &FluxEvent,
) -> SourceMatch {
    let obj = &event.involved_object;
    let namespace = if source.namespace.is_empty() {
        alert_namespace
    } else {
        &source.namespace
    };
    if obj.namespace.as_deref() != Some(namespace) || obj.kind.as_deref() != Some(source.kind.as_str()) {
        return SourceMatch::No;
    }
    if source.name == "*" {
        if source.match_labels.is_empty() {
            SourceMatch::Yes
        } else {
            SourceMatch::IfLabels(source.match_labels.clone())
        }
    } else if obj.name.as_deref() == Some(source.name.as_str()) {
        SourceMatch::Yes
    } else {
        SourceMatch::No
    }
}

/// Whether an Alert of `severity` forwards an event of `event` severity (`info` forwards all).
pub fn severity_matches(severity: EventSeverity, event: Severity) -> bool {
    match severity {
        EventSeverity::Info => true,
        EventSeverity::Error => event == Severity::Error,
    }
}

/// `labels` carries every `selector` pair.
pub fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// An Alert's compiled `inclusionList` and `exclusionList`.
#[derive(Debug)]
pub struct Filters {
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
}

impl Filters {
    /// Compiles both lists.
    ///
    /// # Errors
    /// The first expression that does not compile, named by field and index.
    pub fn compile(spec: &AlertSpec) -> Result<Filters, String> {
        let compile = |field: &str, list: &[String]| -> Result<Vec<regex::Regex>, String> {
            list.iter()
                .enumerate()
                .map(|(i, re)| {
                    regex::Regex::new(re).map_err(|e| {
                        format!("spec.{field}[{i}] '{re}' is not a valid regular expression: {e}")
                    })
                })
                .collect()
        };
        Ok(Filters {
            include: compile("inclusionList", &spec.inclusion_list)?,
            exclude: compile("exclusionList", &spec.exclusion_list)?,
        })
    }

    /// Included (any inclusion matches, or there is none) and not excluded (exclusion wins).
    pub fn passes(&self, message: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(message)))
            && !self.exclude.iter().any(|r| r.is_match(message))
    }
}

/// Whether a Provider of `provider` type takes this event (metadata still prefixed):
/// `commit_status=update` events only go to commit-status and generic providers; commit-status
/// providers only take events with a commit, a commit-status update or an error; change-request
/// providers need `event.toolkit.fluxcd.io/change_request`.
pub fn provider_accepts(provider: ProviderType, event: &FluxEvent) -> bool {
    let group = event_group(event);
    let commit_status_update = event
        .metadata
        .get(&format!("{group}/commit_status"))
        .is_some_and(|v| v == "update");
    let generic = matches!(provider, ProviderType::Generic | ProviderType::GenericHmac);
    if commit_status_update && !generic && !provider.is_commit_status() {
        return false;
    }
    if provider.is_commit_status() {
        let has_commit = event
            .metadata
            .contains_key(&format!("{EVENT_GROUP_PREFIX}commit"));
        if !has_commit && !commit_status_update && event.severity != Severity::Error {
            return false;
        }
    }
    if matches!(
        provider,
        ProviderType::GithubPullRequestComment
            | ProviderType::GiteaPullRequestComment
            | ProviderType::GitlabMergeRequestComment
    ) && !event
        .metadata
        .contains_key(&format!("{EVENT_GROUP_PREFIX}change_request"))
    {
        return false;
    }
    true
}

/// The outgoing metadata, lowest precedence first: `event.toolkit.fluxcd.io/<k>` → `<k>`, the
/// Alert's `eventMetadata`, its `summary`, then `<group>/<k>` → `<k>`. Returns the merged map and
/// the keys a higher layer overwrote with a different value (reported on the Alert).
pub fn merge_metadata(event: &FluxEvent, alert: &AlertSpec) -> (BTreeMap<String, String>, Vec<String>) {
    let group = event_group(event);
    let own = format!("{group}/");
    let mut out = BTreeMap::new();
    let mut conflicts = Vec::new();
    let mut put = |k: &str, v: &str, out: &mut BTreeMap<String, String>| {
        if let Some(old) = out.insert(k.to_owned(), v.to_owned())
            && old != v
        {
            conflicts.push(k.to_owned());
        }
    };
    for (k, v) in &event.metadata {
        if let Some(short) = k.strip_prefix(EVENT_GROUP_PREFIX) {
            put(short, v, &mut out);
        }
    }
    for (k, v) in &alert.event_metadata {
        put(k, v, &mut out);
    }
    if !alert.summary.is_empty() {
        put("summary", &alert.summary, &mut out);
    }
    if !group.is_empty() {
        for (k, v) in &event.metadata {
            if let Some(short) = k.strip_prefix(&own) {
                put(short, v, &mut out);
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    (out, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_api::meta::LocalObjectReference;
    use gitops_api::notification::v1::ReferencedKind;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn event(kind: &str, api_version: &str, name: &str, ns: &str, md: &[(&str, &str)]) -> FluxEvent {
        FluxEvent {
            involved_object: ObjectReference {
                kind: Some(kind.into()),
                api_version: Some(api_version.into()),
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..ObjectReference::default()
            },
            severity: Severity::Info,
            timestamp: "2026-12-07T03:00:00Z".into(),
            message: "deployed".into(),
            reason: "ReconciliationSucceeded".into(),
            metadata: md
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            reporting_controller: "kluctl-controller".into(),
            reporting_instance: String::new(),
        }
    }

    fn kd_event(md: &[(&str, &str)]) -> FluxEvent {
        event("KluctlDeployment", "gitops.kluctl.io/v1beta1", "app", "apps", md)
    }

    fn alert() -> AlertSpec {
        AlertSpec {
            provider_ref: LocalObjectReference { name: "sink".into() },
            event_severity: EventSeverity::Info,
            event_sources: vec![],
            inclusion_list: vec![],
            event_metadata: BTreeMap::new(),
            exclusion_list: vec![],
            summary: String::new(),
            suspend: false,
        }
    }

    fn source(
        kind: ReferencedKind,
        name: &str,
        ns: &str,
        labels: &[(&str, &str)],
    ) -> CrossNamespaceObjectReference {
        CrossNamespaceObjectReference {
            api_version: String::new(),
            kind,
            name: name.into(),
            namespace: ns.into(),
            match_labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn cleanup_keeps_own_group_and_event_keys_and_drops_checksum_and_digest() {
        let mut e = kd_event(&[
            ("gitops.kluctl.io/revision", "main@sha1:abc"),
            ("gitops.kluctl.io/digest", "sha256:x"),
            ("gitops.kluctl.io/checksum", "y"),
            ("source.toolkit.fluxcd.io/revision", "other group"),
            ("event.toolkit.fluxcd.io/env", "prod"),
            ("plain", "dropped"),
        ]);
        cleanup_metadata(&mut e);
        let keys: Vec<_> = e.metadata.keys().cloned().collect();
        assert_eq!(keys, ["event.toolkit.fluxcd.io/env", "gitops.kluctl.io/revision"]);
    }

    #[test]
    fn core_group_objects_keep_only_event_keys() {
        let mut e = event(
            "Secret",
            "v1",
            "s",
            "ns",
            &[("/revision", "x"), ("event.toolkit.fluxcd.io/a", "b")],
        );
        cleanup_metadata(&mut e);
        assert_eq!(e.metadata.len(), 1, "{:?}", e.metadata);
    }

    #[test]
    fn dedup_key_changes_with_message_object_and_revision_but_not_timestamp_or_reason() {
        let a = kd_event(&[("gitops.kluctl.io/revision", "main@sha1:a")]);
        let mut later = a.clone();
        later.timestamp = "2026-12-07T04:00:00Z".into();
        later.reason = "Other".into();
        assert_eq!(dedup_key(&a), dedup_key(&later));
        let mut msg = a.clone();
        msg.message = "deployed again".into();
        assert_ne!(dedup_key(&a), dedup_key(&msg));
        let rev = kd_event(&[("gitops.kluctl.io/revision", "main@sha1:b")]);
        assert_ne!(dedup_key(&a), dedup_key(&rev));
        let mut other = a.clone();
        other.involved_object.name = Some("other".into());
        assert_ne!(dedup_key(&a), dedup_key(&other));
        let tok = kd_event(&[
            ("gitops.kluctl.io/revision", "main@sha1:a"),
            ("gitops.kluctl.io/token", "t"),
        ]);
        assert_ne!(dedup_key(&a), dedup_key(&tok));
        assert_eq!(dedup_key(&a).len(), 64);
    }

    #[test]
    fn token_is_removed_after_dedup() {
        let mut e = kd_event(&[
            ("gitops.kluctl.io/token", "t"),
            ("gitops.kluctl.io/revision", "r"),
        ]);
        strip_token(&mut e);
        assert_eq!(
            e.metadata.keys().collect::<Vec<_>>(),
            ["gitops.kluctl.io/revision"]
        );
    }

    #[test]
    fn sources_match_by_namespace_kind_and_name() {
        let e = kd_event(&[]);
        let kd = ReferencedKind::KluctlDeployment;
        assert_eq!(
            source_match("apps", &source(kd, "app", "", &[]), &e),
            SourceMatch::Yes
        );
        assert_eq!(
            source_match("other", &source(kd, "app", "", &[]), &e),
            SourceMatch::No
        );
        assert_eq!(
            source_match("other", &source(kd, "app", "apps", &[]), &e),
            SourceMatch::Yes
        );
        assert_eq!(
            source_match("apps", &source(kd, "*", "", &[]), &e),
            SourceMatch::Yes
        );
        assert_eq!(
            source_match("apps", &source(kd, "web", "", &[]), &e),
            SourceMatch::No
        );
        assert_eq!(
            source_match("apps", &source(ReferencedKind::GitRepository, "app", "", &[]), &e),
            SourceMatch::No
        );
        assert_eq!(
            source_match("apps", &source(kd, "*", "", &[("team", "a")]), &e),
            SourceMatch::IfLabels(BTreeMap::from([("team".into(), "a".into())]))
        );
    }

    #[test]
    fn labels_and_severity() {
        let sel = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        assert!(labels_match(
            &sel,
            &BTreeMap::from([("team".into(), "a".into()), ("x".into(), "y".into())])
        ));
        assert!(!labels_match(
            &sel,
            &BTreeMap::from([("team".into(), "b".into())])
        ));
        assert!(!labels_match(&sel, &BTreeMap::new()));
        assert!(severity_matches(EventSeverity::Info, Severity::Info));
        assert!(severity_matches(EventSeverity::Info, Severity::Error));
        assert!(severity_matches(EventSeverity::Error, Severity::Error));
        assert!(!severity_matches(EventSeverity::Error, Severity::Info));
    }

    #[test]
    fn exclusion_wins_over_inclusion() {
        let mut spec = alert();
        spec.inclusion_list = vec!["^deploy".into(), "failed".into()];
        spec.exclusion_list = vec!["dry.run".into()];
        let f = Filters::compile(&spec).expect("compiles");
        assert!(f.passes("deployed 3 objects"));
        assert!(f.passes("prune failed"));
        assert!(!f.passes("validated"));
        assert!(!f.passes("deployed (dry run)"));
        assert!(Filters::compile(&alert()).expect("empty").passes("anything"));
    }

    #[test]
    fn a_bad_regex_names_field_and_index() {
        let mut spec = alert();
        spec.exclusion_list = vec!["ok".into(), "(".into()];
        let err = Filters::compile(&spec).expect_err("invalid");
        assert!(
            err.contains("spec.exclusionList[1]") && err.contains("'('"),
            "{err}"
        );
    }

    #[test]
    fn commit_status_rules() {
        let update = kd_event(&[("gitops.kluctl.io/commit_status", "update")]);
        let plain = kd_event(&[]);
        let commit = kd_event(&[("event.toolkit.fluxcd.io/commit", "abc")]);
        let mut error = kd_event(&[]);
        error.severity = Severity::Error;
        assert!(provider_accepts(ProviderType::Generic, &update));
        assert!(provider_accepts(ProviderType::GenericHmac, &update));
        assert!(provider_accepts(ProviderType::Github, &update));
        assert!(!provider_accepts(ProviderType::Slack, &update));
        assert!(provider_accepts(ProviderType::Slack, &plain));
        assert!(!provider_accepts(ProviderType::Github, &plain));
        assert!(provider_accepts(ProviderType::Github, &commit));
        assert!(provider_accepts(ProviderType::Gitlab, &error));
        assert!(!provider_accepts(ProviderType::GithubPullRequestComment, &plain));
        let cr = kd_event(&[("event.toolkit.fluxcd.io/change_request", "12")]);
        assert!(provider_accepts(ProviderType::GithubPullRequestComment, &cr));
    }

    #[test]
    fn metadata_merge_strips_prefixes_in_precedence_order_and_reports_conflicts() {
        let e = kd_event(&[
            ("event.toolkit.fluxcd.io/env", "from-annotation"),
            ("event.toolkit.fluxcd.io/team", "a"),
            ("gitops.kluctl.io/revision", "main@sha1:abc"),
            ("gitops.kluctl.io/env", "from-controller"),
        ]);
        let mut spec = alert();
        spec.event_metadata =
            BTreeMap::from([("cluster".into(), "prod-1".into()), ("team".into(), "a".into())]);
        spec.summary = "prod cluster".into();
        let (md, conflicts) = merge_metadata(&e, &spec);
        assert_eq!(md["revision"], "main@sha1:abc");
        assert_eq!(md["env"], "from-controller");
        assert_eq!(md["cluster"], "prod-1");
        assert_eq!(md["summary"], "prod cluster");
        assert_eq!(md["team"], "a");
        assert!(md.keys().all(|k| !k.contains('/')), "{md:?}");
        assert_eq!(conflicts, ["env"], "same value is no conflict");
    }

    #[test]
    fn group_of_api_versions() {
        assert_eq!(group_of("gitops.kluctl.io/v1beta1"), "gitops.kluctl.io");
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of(""), "");
    }
}
