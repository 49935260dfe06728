//! Where project content comes from besides the project directory itself: Git repositories
//! (`git` includes, `git`/`gitFiles` vars). Flux artifacts and OCI come with the controller.

pub mod git;

pub use git::{GitCache, GitError, RepoInfo};
