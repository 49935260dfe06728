//! API types of the GitOps controller pair, and the CRDs generated from them.
//!
//! ```text
//!  source.toolkit.fluxcd.io         GitRepository, Bucket        (v1 storage; v1beta2, v1beta1 served)
//!  gitops.kluctl.io                 KluctlDeployment             (v1beta1, plus our sourceRef/path)
//!  flux.kluctl.io                   KluctlDeployment             (legacy v1alpha1)
//!  notification.toolkit.fluxcd.io   Alert, Provider (v1beta3), Receiver (v1)
//! ```
//!
//! This crate holds types and pure helpers only: no client calls, no I/O besides what `crdgen` writes.
//! Both controllers and the CLI depend on it; it depends on none of them.

pub mod conditions;
pub mod constants;
pub mod crds;
pub mod docs;
pub mod duration;
pub mod flags;
pub mod flux_kluctl;
pub mod kluctl;
pub mod meta;
pub mod notification;
pub mod revision;
mod schema;
pub mod source;
