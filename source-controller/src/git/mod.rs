//! Git access for GitRepository: resolve `spec.ref` against the remote with one ls-refs call,
//! then fetch exactly that commit (depth 1) and check its tree out for the archive step.
//!
//! ```text
//!   reconcile: resolve step                         fetch step (only when the revision changed)
//!   ────────────────────────────────────            ───────────────────────────────────────────
//!   Secret data ──Credentials::from_secret_data─┐
//!   spec.ref ─────GitRef::from_spec─────────────┼──► resolve(url, &GitRef, &Credentials, timeout)
//!                                               │      ls-refs → Resolved { reference, commit }
//!                                               │      revision() == status.artifact.revision ? no-op
//!                                               ├──► fetch_tree(url, &Resolved, &Credentials, scratch, timeout)
//!                                               │      single-commit fetch → CommitTree (blobs in
//!                                               │      scratch) → FetchedTree { tree, message }
//!                                               └──► checkout(url, &Resolved, &Credentials, dest, timeout)
//!                                                      single-commit fetch → worktree in dest
//!                                                      → Checkout { commit, message }
//! ```
//!
//! The reconcile streams the tree into the archive ([`fetch_tree`]); [`checkout`] is for what
//! needs a directory (`spec.include`, `recurseSubmodules`, once supported).
//!
//! What is Flux's lives here: [`refs`] (precedence, selection, revision strings), [`semver`]
//! (Masterminds-compatible constraints), [`fetch`] (tree or checkout + Flux's short message),
//! [`GitError`] (Flux reasons). Talking to the remote (credentials, connection, timeout,
//! ls-refs, the lean single-commit fetch, redaction) is the shared git layer, the `gitops-git`
//! crate in `source-controller/git/`, which the Kluctl engine uses too.
//!
//! Both entry points block; the reconciler calls them through `tokio::task::spawn_blocking`.
//! Each honours its own `timeout` (Flux: per git operation).

mod error;
pub mod fetch;
pub mod refs;
pub mod semver;

pub use error::GitError;
pub use fetch::{Checkout, FetchedTree, checkout, fetch_tree};
pub use refs::{DEFAULT_BRANCH, GitRef, Resolved, resolve};
