//! Result <-> Secret, without a client: the Secret name Kluctl derives from the project's
//! repository, the labels and annotations, the gzip JSON data keys, reading them back, and the
//! obfuscation every stored command result goes through.
//!
//! ```text
//! name         <cr|vr>-<last path element of the repo key, [^a-z0-9-] dropped, cut to fit 63>-<id>
//! labels       kluctl.io/result: "true", kluctl.io/<command|validate>-result-id: <id>,
//!              kluctl.io/result-target-hash: <hash of project and target> (ours, for retention)
//! annotations  kluctl.io/<command|validate>-result-summary: <summary JSON>,
//!              kluctl.io/result-project-repo-key / -subdir, kluctl.io/result-deployment-name / -namespace
//! data         reducedResult, compactedObjects (command) | result (validate): gzip (best) of JSON
//! ```
//!
//! Kluctl v2.28 keeps the project and the KluctlDeployment in annotations, not labels (its
//! #1310 moved them), so no label value is derived from a project key and nothing needs hashing
//! to fit a label; only the Secret name is cut to 63 characters.

use std::collections::BTreeMap;
use std::io::Read as _;

use gitops_api::kluctl::results::{KluctlDeploymentInfo, ProjectKey, TargetKey, ValidateResult};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    COMMAND_RESULT_ID_LABEL, COMMAND_RESULT_SUMMARY_ANNOTATION, COMPACTED_OBJECTS_KEY,
    DEPLOYMENT_NAME_ANNOTATION, DEPLOYMENT_NAMESPACE_ANNOTATION, PROJECT_REPO_KEY_ANNOTATION,
    PROJECT_SUBDIR_ANNOTATION, REDUCED_RESULT_KEY, RESULT_LABEL, StoreError, VALIDATE_RESULT_ID_LABEL,
    VALIDATE_RESULT_KEY, VALIDATE_RESULT_SUMMARY_ANNOTATION,
};
use crate::diff::{DiffError, obfuscate, obfuscate_result};
use crate::result::{CommandResult, CommandResultSummary, CompactedObject, compact_object, expand_objects};

/// Longest Kubernetes object name the store builds.
const MAX_NAME_LEN: usize = 63;
/// Largest decompressed data key read back (a guard against a gzip bomb in the namespace).
const MAX_DECOMPRESSED: u64 = 256 << 20;
/// The annotation `kubectl apply` leaves on objects: for a Secret it holds the Secret's data.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The counts of a validate result, stored as the `kluctl.io/validate-result-summary`
/// annotation (Kluctl's `ValidateResultSummary`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ValidateResultSummary {
    /// Result id.
    pub id: String,
    /// Controller reconcile id.
    pub reconcile_id: String,
    /// The project.
    pub project_key: ProjectKey,
    /// The target on the cluster.
    pub target_key: TargetKey,
    /// The KluctlDeployment (controller runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Hash over all rendered objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// Start of the validation (`null` when unset).
    pub start_time: Option<Time>,
    /// End of the validation (`null` when unset).
    pub end_time: Option<Time>,
    /// Whether everything was ready.
    pub ready: bool,
    /// Number of warnings.
    pub warnings: usize,
    /// Number of errors.
    pub errors: usize,
    /// Number of validation findings.
    pub results: usize,
}

impl ValidateResultSummary {
    /// The summary of `vr`.
    pub fn of(vr: &ValidateResult) -> Self {
        Self {
            id: vr.id.clone(),
            reconcile_id: vr.reconcile_id.clone(),
            project_key: vr.project_key.clone(),
            target_key: vr.target_key.clone(),
            kluctl_deployment: vr.kluctl_deployment.clone(),
            rendered_objects_hash: vr.rendered_objects_hash.clone(),
            start_time: vr.start_time.clone(),
            end_time: vr.end_time.clone(),
            ready: vr.ready,
            warnings: vr.warnings.len(),
            errors: vr.errors.len(),
            results: vr.results.len(),
        }
    }
}

/// The Secret name Kluctl gives a result: `<prefix>-<repo>-<id>`, where `<repo>` is the last
/// path element of the project's repository key with `_` turned into `-`, every character
/// outside `[a-zA-Z0-9-]` dropped, lower-cased (our addition: Secret names must be lower
/// case), and cut so the whole name fits 63 characters; `<prefix>-<id>` without a repository.
pub fn secret_name(prefix: &str, id: &str, project: &ProjectKey) -> String {
    let base = repo_path_base(&project.repo_key);
    let mut name: String = base
        .replace('_', "-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let room = MAX_NAME_LEN.saturating_sub(id.len() + 1 + prefix.len() + 1);
    name.truncate(room);
    if name.is_empty() {
        format!("{prefix}-{id}")
    } else {
        format!("{prefix}-{name}-{id}")
    }
}

/// Go's `path.Base` of the path part of a repository key (`git://host/a/b` -> `b`); empty
/// when the key has no path.
fn repo_path_base(repo_key: &str) -> &str {
    let rest = repo_key.split_once("://").map_or(repo_key, |(_, r)| r);
    let Some((_host, path)) = rest.split_once('/') else {
        return "";
    };
    if path.is_empty() {
        return "";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Whether `s` is a valid, non-empty Kubernetes label value (what a result id must be to be
/// found again by label).
pub fn is_label_value(s: &str) -> bool {
    crate::remote::label_value_problem(s).is_none()
}

/// A copy of `result` fit to be stored: every Secret's `data`/`stringData` values and changes
/// obfuscated (as `kluctl diff` shows them), and a Secret's `kubectl apply` annotation (which
/// holds its data in clear) replaced by `*****` in its objects and its changes. (Diff
/// normalisation already drops that annotation; the store does not rely on it.)
///
/// # Errors
/// A Secret whose `data` or `stringData` is not a map.
pub fn obfuscated_for_store(result: &CommandResult) -> Result<CommandResult, DiffError> {
    let mut stored = result.clone();
    obfuscate_for_store(&mut stored)?;
    Ok(stored)
}

/// [`obfuscated_for_store`] in place: for callers that print the result obfuscated anyway (the
/// CLI without `--no-obfuscate`), so the store needs no copy of every object (on a large deploy
/// that copy was the largest single allocation of the command). Idempotent.
///
/// # Errors
/// A Secret whose `data` or `stringData` is not a map.
pub fn obfuscate_for_store(stored: &mut CommandResult) -> Result<(), DiffError> {
    obfuscate_result(stored)?;
    for o in &mut stored.objects {
        for v in [&mut o.rendered, &mut o.remote, &mut o.applied]
            .into_iter()
            .flatten()
        {
            mask_last_applied(v);
        }
        if obfuscate::is_secret_ref(&o.object) {
            for c in &mut o.changes {
                if c.json_path.contains(LAST_APPLIED_ANNOTATION) {
                    obfuscate::mask_change(c);
                }
            }
        }
    }
    Ok(())
}

fn mask_last_applied(o: &mut Value) {
    let is_secret = o.get("kind").and_then(Value::as_str) == Some("Secret")
        && o.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if !is_secret {
        return;
    }
    if let Some(v) = o
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.get_mut(LAST_APPLIED_ANNOTATION))
    {
        *v = Value::String("*****".to_owned());
    }
}

/// The Secret holding a command result, as Kluctl writes it. `stored` must already be the
/// obfuscated copy ([`obfuscated_for_store`]).
///
/// # Errors
/// Serialising or compressing a part failed.
pub fn command_result_secret(namespace: &str, stored: &CommandResult) -> Result<Secret, StoreError> {
    command_result_secret_with_summary(namespace, stored, &stored.summary())
}

/// [`command_result_secret`] with the summary annotation given: a reduced result keeps the
/// summary of the whole one ([`super::reduce`]).
pub(super) fn command_result_secret_with_summary(
    namespace: &str,
    stored: &CommandResult,
    summary: &CommandResultSummary,
) -> Result<Secret, StoreError> {
    let name = secret_name("cr", &stored.id, &stored.project_key);
    let enc = Encoder {
        secret: &name,
        namespace,
    };
    let summary = enc.json("the summary annotation", summary)?;
    let reduced = enc.gzip_json(REDUCED_RESULT_KEY, &stored.to_reduced_objects())?;
    // Compacted one object at a time while gzip consumes the JSON: neither every compacted
    // object nor the whole JSON text is held at once.
    let compacted = enc.gzip_json(COMPACTED_OBJECTS_KEY, &CompactedObjects(&stored.objects))?;
    let mut annotations = BTreeMap::from([(COMMAND_RESULT_SUMMARY_ANNOTATION.to_owned(), summary)]);
    project_annotations(
        &mut annotations,
        &stored.project_key,
        stored.kluctl_deployment.as_ref(),
    );
    Ok(result_secret(
        name.clone(),
        namespace,
        (COMMAND_RESULT_ID_LABEL, &stored.id),
        target_label_value(&stored.project_key, &stored.target_key),
        annotations,
        BTreeMap::from([
            (REDUCED_RESULT_KEY.to_owned(), ByteString(reduced)),
            (COMPACTED_OBJECTS_KEY.to_owned(), ByteString(compacted)),
        ]),
    ))
}

/// The Secret holding a validate result, as Kluctl writes it.
///
/// # Errors
/// Serialising or compressing a part failed.
pub fn validate_result_secret(namespace: &str, vr: &ValidateResult) -> Result<Secret, StoreError> {
    let name = secret_name("vr", &vr.id, &vr.project_key);
    let enc = Encoder {
        secret: &name,
        namespace,
    };
    let summary = enc.json("the summary annotation", &ValidateResultSummary::of(vr))?;
    let data = enc.gzip_json(VALIDATE_RESULT_KEY, vr)?;
    let mut annotations = BTreeMap::from([(VALIDATE_RESULT_SUMMARY_ANNOTATION.to_owned(), summary)]);
    project_annotations(&mut annotations, &vr.project_key, vr.kluctl_deployment.as_ref());
    Ok(result_secret(
        name.clone(),
        namespace,
        (VALIDATE_RESULT_ID_LABEL, &vr.id),
        target_label_value(&vr.project_key, &vr.target_key),
        annotations,
        BTreeMap::from([(VALIDATE_RESULT_KEY.to_owned(), ByteString(data))]),
    ))
}

fn project_annotations(
    annotations: &mut BTreeMap<String, String>,
    project: &ProjectKey,
    deployment: Option<&KluctlDeploymentInfo>,
) {
    if !project.repo_key.is_empty() {
        annotations.insert(PROJECT_REPO_KEY_ANNOTATION.to_owned(), project.repo_key.clone());
    }
    if !project.sub_dir.is_empty() {
        annotations.insert(PROJECT_SUBDIR_ANNOTATION.to_owned(), project.sub_dir.clone());
    }
    if let Some(d) = deployment {
        annotations.insert(DEPLOYMENT_NAME_ANNOTATION.to_owned(), d.name.clone());
        annotations.insert(DEPLOYMENT_NAMESPACE_ANNOTATION.to_owned(), d.namespace.clone());
    }
}

/// The value of [`super::RESULT_TARGET_LABEL`]: the first 40 hex digits of the SHA-256 of the
/// project (repository key, subdirectory) and the target key (name, cluster id,
/// discriminator), NUL-separated; a valid label value whatever the keys hold.
pub fn target_label_value(project: &ProjectKey, target: &TargetKey) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [
        &project.repo_key,
        &project.sub_dir,
        &target.target_name,
        &target.cluster_id,
        &target.discriminator,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    digest
        .iter()
        .take(20)
        .fold(String::with_capacity(40), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn result_secret(
    name: String,
    namespace: &str,
    (id_label, id): (&str, &str),
    target_hash: String,
    annotations: BTreeMap<String, String>,
    data: BTreeMap<String, ByteString>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (RESULT_LABEL.to_owned(), "true".to_owned()),
                (id_label.to_owned(), id.to_owned()),
                (super::RESULT_TARGET_LABEL.to_owned(), target_hash),
            ])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    }
}

/// The Secret being built, for error messages.
struct Encoder<'a> {
    secret: &'a str,
    namespace: &'a str,
}

impl Encoder<'_> {
    fn err(&self, what: &'static str, reason: String) -> StoreError {
        StoreError::Encode {
            secret: self.secret.to_owned(),
            namespace: self.namespace.to_owned(),
            what,
            reason,
        }
    }

    fn json<T: Serialize>(&self, what: &'static str, v: &T) -> Result<String, StoreError> {
        serde_json::to_string(v).map_err(|e| self.err(what, e.to_string()))
    }

    /// `v` as JSON, gzipped while it is serialised (the JSON text is never whole in memory).
    fn gzip_json<T: Serialize>(&self, what: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
        let mut enc = gzip_writer();
        serde_json::to_writer(&mut enc, v).map_err(|e| self.err(what, e.to_string()))?;
        enc.finish().map_err(|e| self.err(what, e.to_string()))
    }
}

/// Serialises like `compact_objects(objects)` (a JSON list of compacted objects), compacting
/// each object only when the serializer reaches it.
struct CompactedObjects<'a>(&'a [crate::result::ResultObject]);

impl Serialize for CompactedObjects<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(compact_object))
    }
}

/// A gzip writer at the best compression level, as Kluctl stores results.
fn gzip_writer() -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best())
}

/// Decompresses gzip data (all members, as Go's reader does), refusing more than 256 MiB.
///
/// # Errors
/// Not gzip, truncated, or too large once decompressed.
pub fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(std::io::Error::other("decompressed data exceeds 256 MiB"));
    }
    Ok(out)
}

/// The command result summary in a Secret's annotations; `None` when absent or unreadable
/// (such Secrets are skipped, as Kluctl does).
pub fn parse_command_summary(annotations: &BTreeMap<String, String>) -> Option<CommandResultSummary> {
    let text = annotations.get(COMMAND_RESULT_SUMMARY_ANNOTATION)?;
    serde_json::from_str(text).ok()
}

/// The validate result summary in a Secret's annotations; `None` when absent or unreadable.
pub fn parse_validate_summary(annotations: &BTreeMap<String, String>) -> Option<ValidateResultSummary> {
    let text = annotations.get(VALIDATE_RESULT_SUMMARY_ANNOTATION)?;
    serde_json::from_str(text).ok()
}

/// A stored Secret being read, for error messages.
struct Decoder<'a> {
    secret: &'a Secret,
}

impl Decoder<'_> {
    fn name(&self) -> String {
        self.secret.metadata.name.clone().unwrap_or_default()
    }

    fn namespace(&self) -> String {
        self.secret.metadata.namespace.clone().unwrap_or_default()
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &'static str) -> Result<T, StoreError> {
        let raw = self
            .secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| StoreError::MissingKey {
                secret: self.name(),
                namespace: self.namespace(),
                key,
            })?;
        let err = |reason: String| StoreError::Decode {
            secret: self.name(),
            namespace: self.namespace(),
            key,
            reason,
        };
        let json = gunzip(&raw.0).map_err(|e| err(format!("not gzip data: {e}")))?;
        // serde_json's messages name the position and the expected type, never the input text.
        serde_json::from_slice(&json).map_err(|e| err(format!("invalid JSON: {e}")))
    }
}

/// Reads a command result Secret: the reduced result with its objects replaced by the expanded
/// compacted objects.
///
/// # Errors
/// A missing data key, data that is not gzip JSON of the right shape, or compacted objects
/// that do not expand.
pub fn decode_command_result(secret: &Secret) -> Result<CommandResult, StoreError> {
    let d = Decoder { secret };
    let mut result: CommandResult = d.json(REDUCED_RESULT_KEY)?;
    let compacted: Vec<CompactedObject> = d.json(COMPACTED_OBJECTS_KEY)?;
    result.objects = expand_objects(&compacted).map_err(|source| StoreError::Expand {
        secret: d.name(),
        namespace: d.namespace(),
        source,
    })?;
    Ok(result)
}

/// Reads a validate result Secret.
///
/// # Errors
/// A missing `result` key or data that is not gzip JSON of a validate result.
pub fn decode_validate_result(secret: &Secret) -> Result<ValidateResult, StoreError> {
    Decoder { secret }.json(VALIDATE_RESULT_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write as _;
        let mut enc = gzip_writer();
        enc.write_all(data)?;
        enc.finish()
    }
    use crate::diff::diff_objects;
    use crate::result::ResultObject;
    use crate::result::compact_objects;
    use gitops_api::kluctl::results::DeploymentError;
    use gitops_api::kluctl::v1beta1::ObjectRef;
    use serde_json::json;

    const SECRET_VALUE: &str = "c3VwZXItc2VjcmV0LXZhbHVl"; // base64("super-secret-value")
    const PLAIN_SECRET: &str = "plain-text-password";

    fn project(repo: &str, sub_dir: &str) -> ProjectKey {
        ProjectKey {
            repo_key: repo.into(),
            sub_dir: sub_dir.into(),
        }
    }

    fn secret_ref() -> ObjectRef {
        ObjectRef {
            version: "v1".into(),
            kind: "Secret".into(),
            name: "db".into(),
            namespace: "app".into(),
            ..ObjectRef::default()
        }
    }

    fn secret_object(value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "db", "namespace": "app", "labels": {"app": "db"},
                            "annotations": {LAST_APPLIED_ANNOTATION: format!("{{\"data\":{{\"pw\":\"{value}\"}}}}")}},
               "data": {"pw": value}, "stringData": {"plain": PLAIN_SECRET}})
    }

    /// A deploy result with a changed Secret and a new ConfigMap.
    fn sample() -> CommandResult {
        let old = secret_object("b2xkLXZhbHVl");
        let new = secret_object(SECRET_VALUE);
        let mut r = CommandResult {
            id: "0f1e2d3c-aaaa-bbbb-cccc-000000000001".into(),
            project_key: project("git://example.com/org/My_Repo.x", "apps/web"),
            ..CommandResult::default()
        };
        r.target_key.target_name = "prod".into();
        r.target_key.cluster_id = "cluster-1".into();
        r.command.command = "deploy".into();
        r.command.start_time = Some("2025-01-02T03:04:05Z".parse().unwrap());
        r.kluctl_deployment = Some(KluctlDeploymentInfo {
            name: "web".into(),
            namespace: "flux".into(),
            cluster_id: "cluster-1".into(),
        });
        r.objects.push(ResultObject {
            object: secret_ref(),
            changes: diff_objects(&old, &new),
            rendered: Some(new.clone()),
            remote: Some(old),
            applied: Some(new),
            ..ResultObject::default()
        });
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "cfg", "namespace": "app"}, "data": {"k": "v"}});
        r.objects.push(ResultObject {
            object: crate::object_ref(&cm).unwrap(),
            new: true,
            rendered: Some(cm.clone()),
            applied: Some(cm),
            ..ResultObject::default()
        });
        r.warnings.push(DeploymentError {
            object_ref: ObjectRef::default(),
            message: "something to note".into(),
        });
        r
    }

    fn labels(s: &Secret) -> BTreeMap<String, String> {
        s.metadata.labels.clone().unwrap_or_default()
    }

    fn annotations(s: &Secret) -> BTreeMap<String, String> {
        s.metadata.annotations.clone().unwrap_or_default()
    }

    #[test]
    fn secret_names_follow_kluctls_rule_and_fit_63_characters() {
        let id = "0f1e2d3c-aaaa-bbbb-cccc-000000000001";
        assert_eq!(
            secret_name("cr", id, &project("git://github.com/org/my_repo", "")),
            format!("cr-my-repo-{id}")
        );
        // No repository: no middle part.
        assert_eq!(secret_name("vr", id, &ProjectKey::default()), format!("vr-{id}"));
        // Only the last path element; dots and other characters dropped; lower case.
        assert_eq!(
            secret_name("cr", "x", &project("oci://registry.io/a/b/My.Project", "")),
            "cr-myproject-x"
        );
        // Host only: no path, no middle part.
        assert_eq!(secret_name("cr", "x", &project("git://host", "")), "cr-x");
        // Long names are cut so the whole name is 63 characters.
        let long = format!("git://h/org/{}", "a".repeat(100));
        let n = secret_name("cr", id, &project(&long, ""));
        assert_eq!(n.len(), 63, "{n}");
        assert_eq!(n, format!("cr-{}-{id}", "a".repeat(63 - 3 - 1 - id.len())));
        // An id too long for any repository part does not panic (Go would).
        let huge = "i".repeat(70);
        assert_eq!(
            secret_name("cr", &huge, &project(&long, "")),
            format!("cr-{huge}")
        );
    }

    #[test]
    fn label_values_are_checked_like_the_apiserver() {
        assert!(is_label_value("0f1e2d3c-aaaa-bbbb-cccc-000000000001"));
        assert!(is_label_value("a.b_c"));
        for bad in ["", "-a", "a-", "a b", "a,b=c", &"x".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_target_hash_is_a_label_value_that_tells_targets_and_projects_apart() {
        let project = ProjectKey {
            repo_key: "git://example.com/org/repo".to_owned(),
            sub_dir: "apps".to_owned(),
        };
        let target = TargetKey {
            target_name: "prod".to_owned(),
            cluster_id: "uid-1".to_owned(),
            discriminator: "d".to_owned(),
        };
        let h = target_label_value(&project, &target);
        assert_eq!(h.len(), 40);
        assert!(is_label_value(&h), "{h}");
        assert_eq!(h, target_label_value(&project, &target.clone()), "stable");
        let other_target = TargetKey {
            target_name: "test".to_owned(),
            ..target.clone()
        };
        let other_project = ProjectKey {
            sub_dir: "app".to_owned(),
            ..project.clone()
        };
        // Fields are separated: "apps" + "prod" differs from "app" + "sprod".
        let shifted = TargetKey {
            target_name: "sprod".to_owned(),
            ..target.clone()
        };
        assert_ne!(h, target_label_value(&project, &other_target));
        assert_ne!(h, target_label_value(&other_project, &target));
        assert_ne!(h, target_label_value(&other_project, &shifted));
    }

    #[test]
    fn command_result_secret_has_kluctls_labels_annotations_and_keys() {
        let stored = obfuscated_for_store(&sample()).unwrap();
        let s = command_result_secret("kluctl-results", &stored).unwrap();
        assert_eq!(
            s.metadata.name.as_deref(),
            Some("cr-my-repox-0f1e2d3c-aaaa-bbbb-cccc-000000000001")
        );
        assert_eq!(s.metadata.namespace.as_deref(), Some("kluctl-results"));
        assert_eq!(
            labels(&s),
            BTreeMap::from([
                ("kluctl.io/result".to_owned(), "true".to_owned()),
                (
                    "kluctl.io/command-result-id".to_owned(),
                    "0f1e2d3c-aaaa-bbbb-cccc-000000000001".to_owned()
                ),
                (
                    "kluctl.io/result-target-hash".to_owned(),
                    target_label_value(&stored.project_key, &stored.target_key)
                ),
            ])
        );
        let a = annotations(&s);
        let keys: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "kluctl.io/command-result-summary",
                "kluctl.io/result-deployment-name",
                "kluctl.io/result-deployment-namespace",
                "kluctl.io/result-project-repo-key",
                "kluctl.io/result-project-subdir",
            ]
        );
        assert_eq!(
            a["kluctl.io/result-project-repo-key"],
            "git://example.com/org/My_Repo.x"
        );
        assert_eq!(a["kluctl.io/result-project-subdir"], "apps/web");
        assert_eq!(a["kluctl.io/result-deployment-name"], "web");
        assert_eq!(a["kluctl.io/result-deployment-namespace"], "flux");
        let summary: Value = serde_json::from_str(&a["kluctl.io/command-result-summary"]).unwrap();
        assert_eq!(summary["commandInfo"]["command"], json!("deploy"));
        assert_eq!(summary["changedObjects"], json!(1));
        assert_eq!(summary["newObjects"], json!(1));
        assert_eq!(summary["renderedObjects"], json!(2));
        assert_eq!(summary["errors"], Value::Null);
        assert_eq!(summary["warnings"][0]["message"], json!("something to note"));
        assert_eq!(parse_command_summary(&a), Some(stored.summary()));

        let data = s.data.as_ref().unwrap();
        let data_keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(data_keys, ["compactedObjects", "reducedResult"]);
        // reducedResult: the result with objects cut to identity, labels and annotations.
        let reduced: Value = serde_json::from_slice(&gunzip(&data["reducedResult"].0).unwrap()).unwrap();
        assert_eq!(reduced["id"], json!(stored.id));
        assert_eq!(
            reduced["objects"][1]["rendered"],
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "app"}})
        );
        assert!(reduced.get("compactedObjects").is_none());
        // compactedObjects: a list of "full:"/"delta:" objects.
        let compacted: Value = serde_json::from_slice(&gunzip(&data["compactedObjects"].0).unwrap()).unwrap();
        assert!(
            compacted[1]["rendered"].as_str().unwrap().starts_with("full: {"),
            "{compacted}"
        );
        assert_eq!(compacted[1]["new"], json!(true));
    }

    #[test]
    fn project_annotations_are_left_out_when_empty() {
        let mut r = sample();
        r.project_key = ProjectKey::default();
        r.kluctl_deployment = None;
        let s = command_result_secret("ns", &r).unwrap();
        let a = annotations(&s);
        assert_eq!(a.keys().collect::<Vec<_>>(), ["kluctl.io/command-result-summary"]);
    }

    #[test]
    fn command_result_round_trips_through_the_secret() {
        let stored = obfuscated_for_store(&sample()).unwrap();
        let s = command_result_secret("kluctl-results", &stored).unwrap();
        // Through the wire format too: base64 in JSON.
        let s: Secret = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        let back = decode_command_result(&s).unwrap();
        assert_eq!(back, stored);
    }

    #[test]
    fn stored_command_results_never_contain_secret_values() {
        let r = sample();
        let stored = obfuscated_for_store(&r).unwrap();
        let s = command_result_secret("kluctl-results", &stored).unwrap();
        let mut texts: Vec<String> = annotations(&s).into_values().collect();
        for v in s.data.as_ref().unwrap().values() {
            texts.push(String::from_utf8(gunzip(&v.0).unwrap()).unwrap());
        }
        for text in &texts {
            for secret in [SECRET_VALUE, "b2xkLXZhbHVl", PLAIN_SECRET] {
                assert!(!text.contains(secret), "{secret} stored in {text}");
            }
        }
        // The caller's result is untouched; the stored copy is masked.
        assert_eq!(
            r.objects[0].rendered.as_ref().unwrap()["data"]["pw"],
            json!(SECRET_VALUE)
        );
        let rendered = stored.objects[0].rendered.as_ref().unwrap();
        assert_eq!(rendered["data"]["pw"], json!("KioqKio="));
        assert_eq!(
            rendered["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
            json!("*****")
        );
        let annotation_change = stored.objects[0]
            .changes
            .iter()
            .find(|c| c.json_path.contains(LAST_APPLIED_ANNOTATION))
            .expect("the raw diff reports the annotation change");
        assert_eq!(annotation_change.old_value, Some(json!("*****")));
        assert_eq!(
            annotation_change.unified_diff,
            "-***** (obfuscated)\n+***** (obfuscated)"
        );
        // Non-Secrets keep their annotations and data.
        assert_eq!(stored.objects[1].rendered, r.objects[1].rendered);
    }

    #[test]
    fn validate_result_secret_round_trips_with_its_summary() {
        let vr = ValidateResult {
            id: "v-1".into(),
            reconcile_id: "rec".into(),
            project_key: project("git://example.com/org/repo", ""),
            ready: false,
            start_time: Some(Time("2025-01-02T03:04:05Z".parse().unwrap())),
            errors: vec![DeploymentError {
                object_ref: secret_ref(),
                message: "not ready".into(),
            }],
            ..ValidateResult::default()
        };
        let s = validate_result_secret("kluctl-results", &vr).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("vr-repo-v-1"));
        let l = labels(&s);
        assert_eq!(l["kluctl.io/validate-result-id"], "v-1");
        assert_eq!(l["kluctl.io/result"], "true");
        assert_eq!(
            l["kluctl.io/result-target-hash"],
            target_label_value(&vr.project_key, &vr.target_key)
        );
        let a = annotations(&s);
        let summary: Value = serde_json::from_str(&a["kluctl.io/validate-result-summary"]).unwrap();
        assert_eq!(
            summary,
            json!({"id": "v-1", "reconcileId": "rec", "projectKey": {"repoKey": "git://example.com/org/repo"},
                   "targetKey": {"clusterId": ""}, "startTime": "2025-01-02T03:04:05Z", "endTime": null,
                   "ready": false, "warnings": 0, "errors": 1, "results": 0})
        );
        assert_eq!(parse_validate_summary(&a), Some(ValidateResultSummary::of(&vr)));
        assert_eq!(s.data.as_ref().unwrap().keys().collect::<Vec<_>>(), ["result"]);
        assert_eq!(decode_validate_result(&s).unwrap(), vr);
    }

    #[test]
    fn damaged_secrets_give_errors_naming_secret_and_key() {
        let mut s = command_result_secret("ns", &sample()).unwrap();
        let data = s.data.as_mut().unwrap();
        data.insert(REDUCED_RESULT_KEY.into(), ByteString(b"not gzip".to_vec()));
        let e = decode_command_result(&s).unwrap_err().to_string();
        assert!(
            e.contains("reducedResult") && e.contains("cr-my-repox-") && e.contains("\"ns\""),
            "{e}"
        );
        s.data.as_mut().unwrap().remove(COMPACTED_OBJECTS_KEY);
        s.data
            .as_mut()
            .unwrap()
            .insert(REDUCED_RESULT_KEY.into(), ByteString(gzip(b"{}").unwrap()));
        let e = decode_command_result(&s).unwrap_err().to_string();
        assert!(e.contains("compactedObjects") && e.contains("missing"), "{e}");
        s.data.as_mut().unwrap().insert(
            COMPACTED_OBJECTS_KEY.into(),
            ByteString(
                gzip(br#"[{"ref":{"version":"v1","kind":"ConfigMap","name":"a"},"rendered":"bogus"}]"#)
                    .unwrap(),
            ),
        );
        let e = decode_command_result(&s).unwrap_err();
        assert!(matches!(e, StoreError::Expand { .. }), "{e}");
    }

    #[test]
    fn unreadable_summaries_are_skipped() {
        let a = BTreeMap::from([(COMMAND_RESULT_SUMMARY_ANNOTATION.to_owned(), "{".to_owned())]);
        assert_eq!(parse_command_summary(&a), None);
        assert_eq!(parse_command_summary(&BTreeMap::new()), None);
        assert_eq!(parse_validate_summary(&a), None);
    }

    #[test]
    fn gzip_round_trips_and_reads_concatenated_members() {
        let mut two = gzip(b"hello ").unwrap();
        two.extend(gzip(b"world").unwrap());
        assert_eq!(gunzip(&two).unwrap(), b"hello world");
        assert!(gunzip(b"plain").is_err());
        // Best compression: repetitive JSON shrinks a lot.
        let big = "{\"a\":1}".repeat(1000);
        assert!(gzip(big.as_bytes()).unwrap().len() < 200);
    }

    #[test]
    fn obfuscating_in_place_equals_the_copy_and_a_second_time_changes_nothing() {
        let copy = obfuscated_for_store(&sample()).unwrap();
        let mut in_place = sample();
        obfuscate_for_store(&mut in_place).unwrap();
        assert_eq!(in_place, copy);
        obfuscate_for_store(&mut in_place).unwrap();
        assert_eq!(in_place, copy);
        let json = serde_json::to_string(&in_place).unwrap();
        assert!(!json.contains(SECRET_VALUE), "{json}");
    }

    #[test]
    fn compacted_objects_streamed_into_gzip_equal_the_whole_list() {
        let stored = obfuscated_for_store(&sample()).unwrap();
        let s = command_result_secret("ns", &stored).unwrap();
        let data = s.data.as_ref().unwrap();
        let streamed = gunzip(&data[COMPACTED_OBJECTS_KEY].0).unwrap();
        let whole = serde_json::to_vec(&compact_objects(&stored.objects)).unwrap();
        assert_eq!(streamed, whole);
        assert!(!stored.objects.is_empty());
    }
}
