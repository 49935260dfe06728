//! The Kluctl engine as a library, shared by the `kluctl` CLI and the controller: it turns a
//! project checkout plus target/args into rendered Kubernetes objects (and later plans, applies
//! and prunes them). It is a crate of its own so that it cannot know the CLI or the controller:
//! both depend on it, never the reverse.
//!
//! ```text
//! apply      server-side apply: field-manager conflict resolution
//! commands   deploy, diff, prune, delete, validate: remote read ─► apply ─► diff ─► prune
//! controller_logs  the kluctl-controller's log lines (pods or --log-file), filtered per object
//! cluster    kubeconfig context, server version, discovery, reads for cluster vars
//! remote     our objects on the cluster: discriminator lists (metadata only), GETs by ref
//! prune      orphans, deletable rules, ordered deletion; prune needs an Applied token
//! diff       normalise + ignore rules, changes with unified diffs, obfuscation, result text
//! files      a rendered item's tree on disk or still in memory (what kustomize reads)
//! result     Kluctl's CommandResult model (JSON shape, summary, compacted form, builder)
//! project    .kluctl.yaml / deployment.yaml model, args, vars sources, inclusion
//! render     per item: template ─► helm ─► kustomize ─► post-process; namespace fix-up
//!   template   minijinja configured like Kluctl's Jinja2, filters/functions, directory rendering
//!   helm       helm-chart.yaml: pull (cached), template with the pinned helm binary
//!   kustomize  native fast path + the pinned kustomize binary for the rest
//! source     Git repositories for git includes and git vars (cached checkouts)
//! store      command/validate results as Secrets in kluctl-results (Kluctl's format), retention
//! target     one call: project dir + options ─► rendered objects of a target
//! values     deep merge and dotted paths with Kluctl's semantics
//! yaml       YAML read as Go's yaml reads it (helm, kustomize and render share it)
//! validate   readiness rules per kind, `kluctl validate`, the readiness wait of deploy
//! ```

pub mod apply;
pub mod cluster;
pub mod commands;
pub mod controller_logs;
pub mod diff;
pub mod files;
pub mod helm;
pub mod kustomize;
pub mod project;
pub mod prune;
pub mod remote;
pub mod render;
pub mod result;
pub mod source;
pub mod store;
pub mod target;
pub mod template;
pub mod validate;
pub mod values;
pub mod yaml;

/// An error and its sources, joined with `: ` (one helper, the git layer's).
pub use gitops_git::error_chain;

/// A rendered Kubernetes object: always a JSON object (`apiVersion`, `kind`, `metadata`, ...).
pub type Object = serde_json::Map<String, serde_json::Value>;

/// The reference of an object (`apiVersion` split into group and version; empty namespace for
/// cluster-scoped objects), or `None` when `apiVersion`, `kind` or `metadata.name` is missing.
#[must_use]
pub fn object_ref(object: &serde_json::Value) -> Option<gitops_api::kluctl::v1beta1::ObjectRef> {
    use serde_json::Value;
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let meta = object.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Some(gitops_api::kluctl::v1beta1::ObjectRef {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace: meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// The annotation `key` of a rendered or live object, when present and a string.
pub(crate) fn annotation<'a>(obj: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// An annotation read as a Go bool (`strconv.ParseBool`); `None` when absent or unparsable, as
/// Kluctl ignores unparsable values of the annotations it reads this way.
pub(crate) fn annotation_bool(obj: &serde_json::Value, key: &str) -> Option<bool> {
    annotation(obj, key).and_then(values::parse_go_bool)
}
