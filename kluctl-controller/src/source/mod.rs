//! Where a KluctlDeployment's project comes from, before the engine sees it.
//!
//! A KluctlDeployment with `spec.sourceRef` (legacy `flux.kluctl.io` objects, and `gitops.kluctl.io`
//! objects pointing at a Flux source) deploys the project inside the artifact that the source-controller
//! publishes in the source's `status.artifact`. [`artifact`] turns that status field into a directory
//! on disk; the reconciler then hands the directory (joined with `spec.path`) to the engine.

pub mod artifact;
