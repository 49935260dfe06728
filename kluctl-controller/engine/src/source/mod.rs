//! Where project content comes from besides the project directory itself: Git repositories
//! (`git` includes, `git`/`gitFiles` vars). Flux artifacts and OCI come with the controller.

pub mod git;

pub use git::{CheckoutPin, CheckoutPinner, GitCache, GitError, GitSourceOptions, RepoInfo, repo_key};

use serde::{Deserialize, Serialize};

/// A Git ref: exactly one of branch, tag or commit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRef {
    /// Branch name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Tag name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}
