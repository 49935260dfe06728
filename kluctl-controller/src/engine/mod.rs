//! The Kluctl engine as a library, shared by the `kluctl` CLI and the controller: it turns a
//! project checkout plus target/args into rendered Kubernetes objects (and later plans, applies
//! and prunes them). It knows nothing of the CLI or the controller.

pub mod template;
