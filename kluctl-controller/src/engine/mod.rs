//! The Kluctl engine as a library, shared by the `kluctl` CLI and the controller: it turns a
//! project checkout plus target/args into rendered Kubernetes objects (and later plans, applies
//! and prunes them). It knows nothing of the CLI or the controller.
//!
//! ```text
//! cluster    kubeconfig context, server version, discovery, reads for cluster vars
//! diff       normalise + ignore rules, changes with unified diffs, obfuscation, result text
//! result     Kluctl's CommandResult model (JSON shape, summary, compacted form, builder)
//! project    .kluctl.yaml / deployment.yaml model, args, vars sources, inclusion
//! render     per item: template ─► helm ─► kustomize ─► post-process; namespace fix-up
//!   template   minijinja configured like Kluctl's Jinja2, filters/functions, directory rendering
//!   helm       helm-chart.yaml: pull (cached), template with the pinned helm binary
//!   kustomize  native fast path + the pinned kustomize binary for the rest
//! target     one call: project dir + options ─► rendered objects of a target
//! values     deep merge and dotted paths with Kluctl's semantics
//! ```

pub mod cluster;
pub mod diff;
pub mod helm;
pub mod kustomize;
pub mod project;
pub mod render;
pub mod result;
pub mod target;
pub mod template;
pub mod values;

/// A rendered Kubernetes object: always a JSON object (`apiVersion`, `kind`, `metadata`, ...).
pub type Object = serde_json::Map<String, serde_json::Value>;
