//! The Kluctl engine, shared by the `kluctl` CLI and the controller: it never imports either.
//!
//! ```text
//! project   .kluctl.yaml / deployment.yaml model, args, vars sources, inclusion
//! render    per-item post-processing and image placeholders
//! values    deep merge and dotted paths with Kluctl's semantics
//! ```

pub mod project;
pub mod render;
pub mod values;
