//! Where a KluctlDeployment's project comes from, before the engine sees it.
//!
//! A KluctlDeployment with `spec.sourceRef` (legacy `flux.kluctl.io` objects, and `gitops.kluctl.io`
//! objects pointing at a Flux source) deploys the project inside the artifact that the source-controller
//! publishes in the source's `status.artifact`. [`artifact`] turns that status field into a directory
//! on disk; the reconciler then hands the directory (joined with `spec.path`) to the engine.
//!
//! [`cache`] is the process-wide, size-capped home of those trees and of git checkouts
//! (`spec.source.git`, git includes, git vars): one fetch per commit or digest, pinned while in
//! use. [`credentials`] reads the Secrets of `spec.credentials.git` (and of a referenced
//! GitRepository) into the credential rules the git checkouts use.

pub mod artifact;
pub mod cache;
pub mod credentials;
