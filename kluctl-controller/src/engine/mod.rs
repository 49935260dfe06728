//! The Kluctl engine as a library, shared by the `kluctl` CLI and the controller: it turns a
//! project checkout plus target/args into rendered Kubernetes objects (and later plans, applies
//! and prunes them). It knows nothing of the CLI or the controller.
//!
//! ```text
//! project   .kluctl.yaml / deployment.yaml model, args, vars sources, inclusion
//! template  minijinja configured like Kluctl's Jinja2, filters/functions, directory rendering
//! render    per-item post-processing, image placeholders, namespace fix-up
//! values    deep merge and dotted paths with Kluctl's semantics
//! ```

pub mod project;
pub mod render;
pub mod template;
pub mod values;
