//! The Kluctl project model: `.kluctl.yaml` (targets, argument declarations, discriminator),
//! `.kluctl-library.yaml`, the `deployment.yaml` tree and its vars sources, and the arguments a
//! render receives.
//!
//! ```text
//! config         file formats as typed data + Kluctl's validation rules
//! args           -a / --args-from-file / spec.args parsing, defaults, required args, merge order
//! inclusion      -I/-E tags and deployment dirs
//! load           targets, root vars, deployment tree → items in deployment order
//! vars           vars sources (values, file, systemEnvVars, cluster*)
//! ```

pub mod args;
pub mod config;
pub mod inclusion;
pub mod load;
pub mod vars;
