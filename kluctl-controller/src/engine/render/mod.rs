//! Rendering one target: per deployment item, template → Helm → kustomize → post-process.
//!
//! ```text
//! images       images.get_image placeholders and their resolution
//! postprocess  ignore, common labels/annotations, discriminator, tags, item dir, images
//! ```

pub mod images;
pub mod postprocess;
