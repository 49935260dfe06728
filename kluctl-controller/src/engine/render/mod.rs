//! Rendering one target: per deployment item, template → Helm → kustomize → post-process.
//!
//! ```text
//! images       images.get_image placeholders and their resolution
//! namespaces   namespace fix-up from CRDs in the set and cluster discovery
//! postprocess  ignore, common labels/annotations, discriminator, tags, item dir, images
//! ```

pub mod images;
pub mod namespaces;
pub mod postprocess;
