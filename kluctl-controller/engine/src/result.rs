//! Kluctl's command-result model: what one `deploy`, `diff`, `prune`, `delete` or `poke-images`
//! run found and did, in the JSON shape Kluctl writes (`-o yaml`, stored results, the webui), so
//! Kluctl's tools can read ours and the other way round.
//!
//! ```text
//! apply / diff / prune ──► ResultBuilder (new, changed, orphan, deleted, hook, errors, warnings)
//!                              │ finish()
//!                              ▼
//!                        CommandResult ──► summary()          (counts; stored as an annotation)
//!                              ├────────► to_reduced_objects() (objects cut to identity + labels)
//!                              └────────► to_compacted()       (objects as "full:"/"delta:" text)
//! ```
//!
//! Field names and omission rules follow Kluctl exactly: fields Kluctl always writes are always
//! written here (`reconcileId`, `projectKey.repoKey`, `gitInfo`, `clusterInfo`, the summary's
//! `errors`/`warnings` as `null` when empty), optional ones are left out when empty.
//!
//! The compacted form stores each object's `rendered`, `remote` and `applied` JSON as text: the
//! first present one as `full: <json>`, each later one as `delta: <diff>` against the previous
//! one when that is shorter. The delta is the diff-match-patch delta text Kluctl's Go library
//! reads (tab-separated `=n` keep, `-n` drop, `+text` insert, counts in characters). No crate
//! writes that format, so [`encode_delta`]/[`decode_delta`] are written here over `similar`'s
//! character diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use gitops_api::kluctl::results::{
    ClusterInfo, DeploymentError, GitInfo, KluctlDeploymentInfo, ProjectKey, TargetKey,
};
use gitops_api::kluctl::v1beta1::{FixedImage, ObjectRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::project::config::{DeploymentProjectConfig, Target, is_false, present_value};

/// Errors of reading a compacted result back.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// A compacted object field is neither `full: ...` nor `delta: ...`.
    #[error("failed to decode compacted object {object:?} field {field:?}: {reason}")]
    Compacted {
        /// The object reference (`ns/Kind/name`).
        object: String,
        /// `rendered`, `remote` or `applied`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The kind of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    /// The field exists only in the new object.
    Insert,
    /// The field exists only in the old object.
    Delete,
    /// The field exists in both with different values.
    Update,
}

/// One changed field of an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// `insert`, `delete` or `update`.
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    /// Kluctl's JSON path of the field (`spec.replicas`, `metadata.labels["a/b"]`, `$["x"]`).
    pub json_path: String,
    /// The value before; absent for inserts (a JSON `null` value is kept as `Some(Null)`).
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub old_value: Option<Value>,
    /// The value after; absent for deletes.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub new_value: Option<Value>,
    /// The change as unified-diff lines (without file headers).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unified_diff: String,
}

/// Who started the command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandInitiator {
    /// The `kluctl` CLI.
    #[default]
    CommandLine,
    /// The controller reconciling a KluctlDeployment.
    KluctlDeployment,
}

/// The command and the switches that shaped it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandInfo {
    /// Who ran it.
    #[serde(default)]
    pub initiator: CommandInitiator,
    /// Start time (RFC 3339, seconds); `null` when unset.
    #[serde(default, with = "k8s_time")]
    pub start_time: Option<jiff::Timestamp>,
    /// End time (RFC 3339, seconds); `null` when unset.
    #[serde(default, with = "k8s_time")]
    pub end_time: Option<jiff::Timestamp>,
    /// `deploy`, `diff`, `prune`, `delete`, `poke-images`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// Target name as requested.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// `--target-name-override`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_name_override: String,
    /// `--context`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_override: String,
    /// Arguments passed on the command line / in the KluctlDeployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Fixed images passed in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<FixedImage>,
    /// `--dry-run`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// `--no-wait`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_wait: bool,
    /// `--force-apply`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_apply: bool,
    /// `--replace-on-error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replace_on_error: bool,
    /// `--force-replace-on-error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_replace_on_error: bool,
    /// `--abort-on-error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub abort_on_error: bool,
    /// `--include-tag`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_tags: Vec<String>,
    /// `--exclude-tag`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tags: Vec<String>,
    /// `--include-deployment-dir`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_deployment_dirs: Vec<String>,
    /// `--exclude-deployment-dir`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_deployment_dirs: Vec<String>,
}

/// One object the command touched or looked at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultObject {
    /// The object (for `kluctl.io/diff-name` objects: the diff name).
    #[serde(rename = "ref")]
    pub object: ObjectRef,
    /// Field changes between the live object and the applied (or dry-run applied) one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Did not exist before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub new: bool,
    /// On the cluster with our discriminator but no longer rendered.
    #[serde(default, skip_serializing_if = "is_false")]
    pub orphan: bool,
    /// Deleted by this command.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Applied as a hook.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hook: bool,
    /// The rendered object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Value>,
    /// The live object before the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Value>,
    /// The object as the apiserver returned it from the apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Value>,
}

/// The result of one command.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// Result ID (a UUID).
    #[serde(default)]
    pub id: String,
    /// Controller reconcile ID; empty for the CLI.
    #[serde(default)]
    pub reconcile_id: String,
    /// The project.
    #[serde(default)]
    pub project_key: ProjectKey,
    /// The target on the cluster.
    #[serde(default)]
    pub target_key: TargetKey,
    /// The target as configured (after overrides).
    #[serde(default)]
    pub target: Target,
    /// The command.
    #[serde(default)]
    pub command: CommandInfo,
    /// The KluctlDeployment (controller runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Overrides the KluctlDeployment applied to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides_patch: Option<Value>,
    /// Git state of the project.
    #[serde(default)]
    pub git_info: GitInfo,
    /// The cluster.
    #[serde(default)]
    pub cluster_info: ClusterInfo,
    /// The root `deployment.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentProjectConfig>,
    /// Hash over all rendered objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// The objects, sorted by group/version/kind then reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ResultObject>,
    /// Errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<DeploymentError>,
    /// Warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<DeploymentError>,
    /// Images `images.get_image` resolved during rendering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen_images: Vec<FixedImage>,
}

/// The counts of a result, stored as the `kluctl.io/command-result-summary` annotation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResultSummary {
    /// Result ID.
    pub id: String,
    /// Controller reconcile ID.
    pub reconcile_id: String,
    /// The project.
    pub project_key: ProjectKey,
    /// The target on the cluster.
    pub target_key: TargetKey,
    /// The target.
    pub target: Target,
    /// The command (named `commandInfo` here, as Kluctl does).
    #[serde(rename = "commandInfo")]
    pub command: CommandInfo,
    /// The KluctlDeployment (controller runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kluctl_deployment: Option<KluctlDeploymentInfo>,
    /// Git state.
    pub git_info: GitInfo,
    /// The cluster.
    pub cluster_info: ClusterInfo,
    /// Hash over all rendered objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rendered_objects_hash: String,
    /// Objects with a rendered version.
    pub rendered_objects: usize,
    /// Objects found on the cluster.
    pub remote_objects: usize,
    /// Objects applied.
    pub applied_objects: usize,
    /// Hook objects applied.
    pub applied_hook_objects: usize,
    /// New objects.
    pub new_objects: usize,
    /// Objects with changes.
    pub changed_objects: usize,
    /// Orphan objects.
    pub orphan_objects: usize,
    /// Deleted objects.
    pub deleted_objects: usize,
    /// Errors (`null` when none, as Kluctl writes it).
    #[serde(default, serialize_with = "null_if_empty", deserialize_with = "null_as_empty")]
    pub errors: Vec<DeploymentError>,
    /// Warnings (`null` when none).
    #[serde(default, serialize_with = "null_if_empty", deserialize_with = "null_as_empty")]
    pub warnings: Vec<DeploymentError>,
    /// Sum of changes over all objects.
    pub total_changes: usize,
}

/// One object of the compacted form: flags plus `full:`/`delta:` texts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactedObject {
    /// The object.
    #[serde(rename = "ref")]
    pub object: ObjectRef,
    /// Field changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// New.
    #[serde(default, skip_serializing_if = "is_false")]
    pub new: bool,
    /// Orphan.
    #[serde(default, skip_serializing_if = "is_false")]
    pub orphan: bool,
    /// Deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Hook.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hook: bool,
    /// `full: <json>` or `delta: <delta>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rendered: String,
    /// `full: <json>` or `delta: <delta against rendered>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote: String,
    /// `full: <json>` or `delta: <delta against the previous one>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied: String,
}

/// A result whose objects are carried as [`CompactedObject`]s (`-o yaml`, the stored objects).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactedCommandResult {
    /// The result without `objects`.
    #[serde(flatten)]
    pub result: CommandResult,
    /// The objects, compacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compacted_objects: Vec<CompactedObject>,
}

impl CommandResult {
    /// The counts Kluctl stores next to a result.
    pub fn summary(&self) -> CommandResultSummary {
        let count = |f: fn(&ResultObject) -> bool| self.objects.iter().filter(|o| f(o)).count();
        CommandResultSummary {
            id: self.id.clone(),
            reconcile_id: self.reconcile_id.clone(),
            project_key: self.project_key.clone(),
            target_key: self.target_key.clone(),
            target: self.target.clone(),
            command: self.command.clone(),
            kluctl_deployment: self.kluctl_deployment.clone(),
            git_info: self.git_info.clone(),
            cluster_info: self.cluster_info.clone(),
            rendered_objects_hash: self.rendered_objects_hash.clone(),
            rendered_objects: count(|o| o.rendered.is_some()),
            remote_objects: count(|o| o.remote.is_some()),
            applied_objects: count(|o| o.applied.is_some()),
            applied_hook_objects: count(|o| o.hook),
            new_objects: count(|o| o.new),
            changed_objects: count(|o| !o.changes.is_empty()),
            orphan_objects: count(|o| o.orphan),
            deleted_objects: count(|o| o.deleted),
            errors: self.errors.clone(),
            warnings: self.warnings.clone(),
            total_changes: self.objects.iter().map(|o| o.changes.len()).sum(),
        }
    }

    /// A copy whose objects keep only identity, labels and annotations (the stored
    /// `reducedResult`).
    #[must_use]
    pub fn to_reduced_objects(&self) -> CommandResult {
        let mut ret = self.clone_without_objects();
        ret.objects = self
            .objects
            .iter()
            .map(|o| ResultObject {
                object: o.object.clone(),
                changes: o.changes.clone(),
                new: o.new,
                orphan: o.orphan,
                deleted: o.deleted,
                hook: o.hook,
                rendered: o.rendered.as_ref().map(reduced_object),
                remote: o.remote.as_ref().map(reduced_object),
                applied: o.applied.as_ref().map(reduced_object),
            })
            .collect();
        ret
    }

    /// The compacted form (`objects` moved to `compactedObjects`).
    pub fn to_compacted(&self) -> CompactedCommandResult {
        CompactedCommandResult {
            result: self.clone_without_objects(),
            compacted_objects: compact_objects(&self.objects),
        }
    }

    /// A copy of everything but the objects, which the callers rebuild their own way (every
    /// field is named, so a new one does not compile until it is considered here).
    fn clone_without_objects(&self) -> CommandResult {
        CommandResult {
            id: self.id.clone(),
            reconcile_id: self.reconcile_id.clone(),
            project_key: self.project_key.clone(),
            target_key: self.target_key.clone(),
            target: self.target.clone(),
            command: self.command.clone(),
            kluctl_deployment: self.kluctl_deployment.clone(),
            overrides_patch: self.overrides_patch.clone(),
            git_info: self.git_info.clone(),
            cluster_info: self.cluster_info.clone(),
            deployment: self.deployment.clone(),
            rendered_objects_hash: self.rendered_objects_hash.clone(),
            objects: Vec::new(),
            errors: self.errors.clone(),
            warnings: self.warnings.clone(),
            seen_images: self.seen_images.clone(),
        }
    }
}

impl CompactedCommandResult {
    /// Restores the full objects.
    ///
    /// # Errors
    /// A compacted field that is not `full: <json>` or a `delta: ` that does not fit.
    pub fn to_non_compacted(&self) -> Result<CommandResult, ResultError> {
        let mut ret = self.result.clone();
        if !self.compacted_objects.is_empty() {
            ret.objects = expand_objects(&self.compacted_objects)?;
        }
        Ok(ret)
    }
}

/// An object cut down to apiVersion, kind, name, namespace, labels and annotations.
pub fn reduced_object(o: &Value) -> Value {
    let meta = o.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k));
    let mut m = serde_json::Map::new();
    m.insert(
        "name".into(),
        get("name")
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
    );
    if let Some(ns) = get("namespace").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
        m.insert("namespace".into(), ns.clone());
    }
    for k in ["labels", "annotations"] {
        if let Some(v) = get(k).filter(|v| v.as_object().is_some_and(|x| !x.is_empty())) {
            m.insert(k.into(), v.clone());
        }
    }
    let mut r = serde_json::Map::new();
    r.insert(
        "apiVersion".into(),
        o.get("apiVersion")
            .cloned()
            .unwrap_or(Value::String(String::new())),
    );
    r.insert(
        "kind".into(),
        o.get("kind").cloned().unwrap_or(Value::String(String::new())),
    );
    r.insert("metadata".into(), Value::Object(m));
    Value::Object(r)
}

/// Compacts objects: per object the first present of rendered/remote/applied as `full: <json>`,
/// each later one as `delta: ` against the previous when that is shorter.
pub fn compact_objects(objects: &[ResultObject]) -> Vec<CompactedObject> {
    objects
        .iter()
        .map(|o| {
            let mut prev = String::new();
            let mut next = |v: &Option<Value>| -> String {
                let Some(v) = v else { return String::new() };
                let json = v.to_string();
                if prev.is_empty() {
                    let s = format!("full: {json}");
                    prev = json;
                    return s;
                }
                let delta = encode_delta(&prev, &json);
                let s = if delta.len() < json.len() {
                    format!("delta: {delta}")
                } else {
                    format!("full: {json}")
                };
                prev = json;
                s
            };
            CompactedObject {
                object: o.object.clone(),
                changes: o.changes.clone(),
                new: o.new,
                orphan: o.orphan,
                deleted: o.deleted,
                hook: o.hook,
                rendered: next(&o.rendered),
                remote: next(&o.remote),
                applied: next(&o.applied),
            }
        })
        .collect()
}

/// Restores objects from their compacted form.
///
/// # Errors
/// A field that is not `full: <json>`/`delta: <delta>` or a delta that does not fit.
pub fn expand_objects(objects: &[CompactedObject]) -> Result<Vec<ResultObject>, ResultError> {
    objects
        .iter()
        .map(|o| {
            let mut prev = String::new();
            let mut next = |field: &'static str, s: &str| -> Result<Option<Value>, ResultError> {
                let err = |reason: String| ResultError::Compacted {
                    object: o.object.to_string(),
                    field,
                    reason,
                };
                if s.is_empty() {
                    return Ok(None);
                }
                let json = if let Some(full) = s.strip_prefix("full: ") {
                    full.to_owned()
                } else if let Some(delta) = s.strip_prefix("delta: ") {
                    if prev.is_empty() {
                        return Err(err("a delta without a previous object".into()));
                    }
                    decode_delta(&prev, delta).map_err(err)?
                } else {
                    return Err(err("neither a \"full: \" nor a \"delta: \" text".into()));
                };
                let v = serde_json::from_str(&json).map_err(|e| err(format!("invalid JSON: {e}")))?;
                prev = json;
                Ok(Some(v))
            };
            Ok(ResultObject {
                object: o.object.clone(),
                changes: o.changes.clone(),
                new: o.new,
                orphan: o.orphan,
                deleted: o.deleted,
                hook: o.hook,
                rendered: next("rendered", &o.rendered)?,
                remote: next("remote", &o.remote)?,
                applied: next("applied", &o.applied)?,
            })
        })
        .collect()
}

/// Characters diff-match-patch leaves unescaped in delta inserts (besides letters, digits and
/// `-_.`), matching Go's `url.QueryEscape` plus the library's unescape list; space stays a space.
const DELTA_PLAIN: &str = "-_.!~'();/?:@&=+$,#* ";

/// The diff-match-patch delta that turns `from` into `to`.
pub fn encode_delta(from: &str, to: &str) -> String {
    use similar::{Algorithm, DiffOp, capture_diff_slices_deadline};
    let a: Vec<char> = from.chars().collect();
    let b: Vec<char> = to.chars().collect();
    let deadline = std::time::Instant::now().checked_add(std::time::Duration::from_millis(200));
    let ops = capture_diff_slices_deadline(Algorithm::Myers, &a, &b, deadline);
    let mut parts: Vec<String> = Vec::new();
    let insert = |parts: &mut Vec<String>, chars: &[char]| {
        let mut s = String::from("+");
        for c in chars {
            if c.is_ascii_alphanumeric() || DELTA_PLAIN.contains(*c) {
                s.push(*c);
            } else {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(s, "%{byte:02X}");
                }
            }
        }
        parts.push(s);
    };
    for op in ops {
        match op {
            DiffOp::Equal { len, .. } => parts.push(format!("={len}")),
            DiffOp::Delete { old_len, .. } => parts.push(format!("-{old_len}")),
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                insert(&mut parts, &b[new_index..new_index + new_len]);
            }
            DiffOp::Replace {
                old_len,
                new_index,
                new_len,
                ..
            } => {
                parts.push(format!("-{old_len}"));
                insert(&mut parts, &b[new_index..new_index + new_len]);
            }
        }
    }
    parts.join("\t")
}

/// Applies a diff-match-patch delta to `from`.
///
/// # Errors
/// A malformed token or counts that do not fit `from` (as a message).
pub fn decode_delta(from: &str, delta: &str) -> Result<String, String> {
    let src: Vec<char> = from.chars().collect();
    let mut pos = 0usize;
    let mut out = String::with_capacity(from.len());
    for token in delta.split('\t').filter(|t| !t.is_empty()) {
        let (op, rest) = token.split_at(1);
        match op {
            "+" => out.push_str(&percent_decode(rest)?),
            "=" | "-" => {
                let n: usize = rest
                    .parse()
                    .map_err(|_| format!("invalid count in delta token {token:?}"))?;
                let end = pos + n;
                if end > src.len() {
                    return Err(format!("delta token {token:?} runs past the end of the text"));
                }
                if op == "=" {
                    out.extend(&src[pos..end]);
                }
                pos = end;
            }
            _ => return Err(format!("invalid delta operation in token {token:?}")),
        }
    }
    if pos != src.len() {
        return Err(format!("delta covers {pos} of {} characters", src.len()));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("truncated escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("invalid escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escaped text is not UTF-8".to_owned())
}

/// Collects what deploy/diff/prune/delete find, object by object, and turns it into the
/// objects, errors and warnings of a [`CommandResult`] with Kluctl's merge rules.
///
/// All references given here are diff references (the `kluctl.io/diff-name` applied, see
/// [`crate::diff::diff_ref`]).
#[derive(Debug, Default)]
pub struct ResultBuilder {
    objects: BTreeMap<ObjectRef, ResultObject>,
    errors: Vec<DeploymentError>,
    warnings: Vec<DeploymentError>,
}

impl ResultBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, r: &ObjectRef) -> &mut ResultObject {
        self.objects.entry(r.clone()).or_insert_with(|| ResultObject {
            object: r.clone(),
            ..ResultObject::default()
        })
    }

    /// Records the rendered object.
    pub fn set_rendered(&mut self, r: &ObjectRef, o: Value) {
        self.entry(r).rendered = Some(o);
    }

    /// Records the live object as found before the command.
    pub fn set_remote(&mut self, r: &ObjectRef, o: Value) {
        self.entry(r).remote = Some(o);
    }

    /// Records the object as the apply returned it.
    pub fn set_applied(&mut self, r: &ObjectRef, o: Value) {
        self.entry(r).applied = Some(o);
    }

    /// Marks the object as newly created (ignored at [`Self::finish`] if it also has changes).
    pub fn add_new(&mut self, r: &ObjectRef) {
        self.entry(r).new = true;
    }

    /// Records the changes of an object (an empty list records nothing).
    pub fn add_changed(&mut self, r: &ObjectRef, changes: Vec<Change>) {
        if !changes.is_empty() {
            self.entry(r).changes = changes;
        }
    }

    /// Marks the object as orphan (ignored at [`Self::finish`] if it was also deleted).
    pub fn add_orphan(&mut self, r: &ObjectRef) {
        self.entry(r).orphan = true;
    }

    /// Marks the object as deleted.
    pub fn add_deleted(&mut self, r: &ObjectRef) {
        self.entry(r).deleted = true;
    }

    /// Marks the object as an applied hook.
    pub fn add_hook(&mut self, r: &ObjectRef) {
        self.entry(r).hook = true;
    }

    /// Adds an error (duplicates are dropped); use `ObjectRef::default()` for run-wide errors.
    pub fn add_error(&mut self, r: &ObjectRef, message: impl Into<String>) {
        push_unique(&mut self.errors, r, message.into());
    }

    /// Adds a warning (duplicates are dropped).
    pub fn add_warning(&mut self, r: &ObjectRef, message: impl Into<String>) {
        push_unique(&mut self.warnings, r, message.into());
    }

    /// Moves the collected objects, errors and warnings into `result` (appending to its errors
    /// and warnings).
    ///
    /// Rules (Kluctl's): an object with changes is not also "new"; an orphan that was deleted is
    /// no longer an orphan; objects that were neither rendered, applied, deleted nor orphan (seen
    /// only because something copied our labels) are dropped. Objects are sorted by
    /// `group/version, Kind=kind` and then by reference so output is stable.
    pub fn finish(self, result: &mut CommandResult) {
        let mut objects: Vec<ResultObject> = self
            .objects
            .into_values()
            .filter_map(|mut o| {
                if !o.changes.is_empty() {
                    o.new = false;
                }
                if o.deleted {
                    o.orphan = false;
                }
                let keep = o.rendered.is_some() || o.applied.is_some() || o.deleted || o.orphan;
                keep.then_some(o)
            })
            .collect();
        objects.sort_by_cached_key(|o| (gvk_string(&o.object), o.object.clone()));
        result.objects = objects;
        result.errors.extend(self.errors);
        result.warnings.extend(self.warnings);
    }
}

pub(crate) fn push_unique(list: &mut Vec<DeploymentError>, r: &ObjectRef, message: String) {
    let e = DeploymentError {
        object_ref: r.clone(),
        message,
    };
    if !list.contains(&e) {
        list.push(e);
    }
}

/// Go's `schema.GroupVersionKind.String()`: `group/version, Kind=kind`.
fn gvk_string(r: &ObjectRef) -> String {
    format!("{}/{}, Kind={}", r.group, r.version, r.kind)
}

fn null_if_empty<S: Serializer>(v: &[DeploymentError], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DeploymentError>, D::Error> {
    Ok(Option::<Vec<DeploymentError>>::deserialize(d)?.unwrap_or_default())
}

/// Kubernetes `metav1.Time` in JSON: RFC 3339 in UTC with seconds, `null` when unset.
mod k8s_time {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes the field by reference
    pub fn serialize<S: Serializer>(t: &Option<jiff::Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> ObjectRef {
        ObjectRef {
            version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            namespace: "ns".into(),
            ..ObjectRef::default()
        }
    }

    fn change() -> Change {
        Change {
            change_type: ChangeType::Update,
            json_path: "data.a".into(),
            old_value: Some(json!("x")),
            new_value: Some(json!("y")),
            unified_diff: "-x\n+y".into(),
        }
    }

    #[test]
    fn builder_applies_kluctls_merge_rules_and_sorts_by_gvk_then_ref() {
        let mut b = ResultBuilder::new();
        let deploy = ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            name: "d".into(),
            namespace: "ns".into(),
        };
        b.set_rendered(&deploy, json!({}));
        b.set_rendered(&cm("b"), json!({}));
        b.add_new(&cm("b"));
        b.add_changed(&cm("b"), vec![change()]);
        b.set_rendered(&cm("a"), json!({}));
        b.add_new(&cm("a"));
        b.add_orphan(&cm("gone"));
        b.add_deleted(&cm("gone"));
        b.set_remote(&cm("foreign"), json!({}));
        b.add_error(&cm("a"), "failed");
        b.add_error(&cm("a"), "failed");
        let mut r = CommandResult::default();
        b.finish(&mut r);
        let refs: Vec<String> = r.objects.iter().map(|o| o.object.to_string()).collect();
        assert_eq!(
            refs,
            [
                "ns/ConfigMap/a",
                "ns/ConfigMap/b",
                "ns/ConfigMap/gone",
                "ns/Deployment/d"
            ]
        );
        assert!(r.objects[0].new);
        assert!(!r.objects[1].new, "an object with changes is not also new");
        assert!(r.objects[2].deleted && !r.objects[2].orphan);
        assert_eq!(r.errors.len(), 1);
        let s = r.summary();
        assert_eq!(
            (
                s.new_objects,
                s.changed_objects,
                s.deleted_objects,
                s.orphan_objects
            ),
            (1, 1, 1, 0)
        );
        assert_eq!((s.rendered_objects, s.total_changes), (3, 1));
    }

    #[test]
    fn json_shape_matches_kluctls_field_names_and_omissions() {
        let mut r = CommandResult {
            id: "id1".into(),
            ..CommandResult::default()
        };
        r.command.command = "diff".into();
        r.command.start_time = Some("2024-05-01T10:00:00Z".parse().unwrap());
        r.objects.push(ResultObject {
            object: cm("a"),
            changes: vec![change()],
            ..ResultObject::default()
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["reconcileId"], json!(""));
        assert_eq!(v["projectKey"], json!({"repoKey": ""}));
        assert_eq!(v["targetKey"], json!({"clusterId": ""}));
        assert_eq!(
            v["gitInfo"],
            json!({"url": null, "ref": null, "subDir": "", "commit": "", "dirty": false})
        );
        assert_eq!(
            v["command"],
            json!({"initiator": "CommandLine", "startTime": "2024-05-01T10:00:00Z", "endTime": null, "command": "diff"})
        );
        assert_eq!(
            v["objects"][0],
            json!({"ref": {"version": "v1", "kind": "ConfigMap", "name": "a", "namespace": "ns"},
                   "changes": [{"type": "update", "jsonPath": "data.a", "oldValue": "x", "newValue": "y", "unifiedDiff": "-x\n+y"}]})
        );
        assert!(v.get("errors").is_none() && v.get("deployment").is_none());
        let s = serde_json::to_value(r.summary()).unwrap();
        assert_eq!(s["errors"], Value::Null);
        assert_eq!(s["commandInfo"]["command"], json!("diff"));
        assert_eq!(s["changedObjects"], json!(1));
        let back: CommandResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn null_change_values_survive_a_round_trip() {
        let c = Change {
            old_value: Some(Value::Null),
            new_value: None,
            ..change()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["oldValue"], Value::Null);
        assert!(v.get("newValue").is_none());
        let back: Change = serde_json::from_value(v).unwrap();
        assert_eq!(back.old_value, Some(Value::Null));
        assert_eq!(back.new_value, None);
    }

    #[test]
    fn reduced_objects_keep_identity_labels_and_annotations_only() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "labels": {"l": "1"}, "annotations": {}, "uid": "u"},
            "data": {"secret": "x"}});
        assert_eq!(
            reduced_object(&o),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns", "labels": {"l": "1"}}})
        );
    }

    #[test]
    fn compacted_objects_use_full_then_delta_and_expand_back() {
        let rendered = json!({"kind": "ConfigMap", "data": {"a": "1", "long": "x".repeat(200)}});
        let mut remote = rendered.clone();
        remote["data"]["a"] = json!("2 ü%\t");
        let obj = ResultObject {
            object: cm("a"),
            rendered: Some(rendered.clone()),
            remote: Some(remote.clone()),
            applied: None,
            ..ResultObject::default()
        };
        let r = CommandResult {
            objects: vec![obj.clone()],
            ..CommandResult::default()
        };
        let c = r.to_compacted();
        assert!(c.result.objects.is_empty());
        let co = &c.compacted_objects[0];
        assert!(co.rendered.starts_with("full: {"), "{}", co.rendered);
        assert!(co.remote.starts_with("delta: ="), "{}", co.remote);
        assert!(co.applied.is_empty());
        let v = serde_json::to_value(&c).unwrap();
        assert!(v.get("objects").is_none() && v.get("compactedObjects").is_some());
        let back: CompactedCommandResult = serde_json::from_value(v).unwrap();
        assert_eq!(back.to_non_compacted().unwrap().objects, vec![obj]);
    }

    #[test]
    fn delta_round_trips_and_rejects_mismatched_text() {
        let a = "hello wörld {\"k\": 1}";
        let b = "hallo wörld! {\"k\": 22}\n";
        let d = encode_delta(a, b);
        assert_eq!(decode_delta(a, &d).unwrap(), b);
        assert!(decode_delta("short", &d).is_err());
        assert!(decode_delta(a, "?3").is_err());
    }
}
