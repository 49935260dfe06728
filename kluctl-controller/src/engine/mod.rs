//! The Kluctl engine, shared by the `kluctl` CLI and the controller: it never imports either.
//!
//! ```text
//! project   .kluctl.yaml / deployment.yaml model, args, vars sources, inclusion
//! values    deep merge and dotted paths with Kluctl's semantics
//! ```

pub mod project;
pub mod values;
