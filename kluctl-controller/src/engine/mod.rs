//! The Kluctl engine: loads a project and renders its deployment items into Kubernetes objects.
//!
//! Pipeline per deployment item (the `render` step drives it):
//!
//! ```text
//! template ──► helm (helm-chart.yaml → output file) ──► kustomize (native fast path | binary) ──► post-process
//! ```
//!
//! This module only declares the steps; each lives in its own module.

pub mod helm;
pub mod kustomize;

/// A rendered Kubernetes object: always a JSON object (`apiVersion`, `kind`, `metadata`, ...).
pub type Object = serde_json::Map<String, serde_json::Value>;
