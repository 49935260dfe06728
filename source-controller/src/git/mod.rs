//! Git access for GitRepository: resolve `spec.ref` against the remote with one ls-refs call,
//! then fetch exactly that commit (depth 1) and check its tree out for the archive step.
//!
//! ```text
//!   reconcile: resolve step               fetch step (only when the revision changed)
//!   ──────────────────────────            ───────────────────────────────────────────
//!   Secret data ──Auth::from_secret──┐
//!   spec.ref ─────GitRef::from_spec──┼──► resolve(url, &GitRef, &Auth, timeout)
//!                                    │      ls-refs (protocol v2) → Resolved { reference, commit }
//!                                    │      revision() == status.artifact.revision ? no-op
//!                                    └──► checkout(url, &Resolved, &Auth, dest, timeout)
//!                                           shallow fetch of the commit id → pack → worktree in dest
//!                                           → Checkout { commit, message }
//! ```
//!
//! Module map: [`auth`] (Secret keys → credentials, redacting), [`refs`] (precedence, selection,
//! revision strings), [`semver`] (Masterminds-compatible constraints), [`fetch`] (checkout),
//! `unpack` (pack → files without mapping the pack into memory), `transport` (gix setup per
//! auth mode, deadline, error mapping), [`GitError`] (one error type
//! with its Flux reason).
//!
//! Implementation: gix (pure Rust) for every transport and auth mode. HTTP(S) uses gix's reqwest
//! backend with our own client settings (secret CA only, client certificate, proxy, bearer
//! header); `ssh://` runs the system `ssh` binary through a generated wrapper (strict host-key
//! checking against the secret's `known_hosts`, `BatchMode`, key decrypted in-process);
//! `git://` is anonymous. Nothing ever prompts: a credentials callback answers gix, and no
//! machine-level git configuration or environment is read.
//!
//! Both entry points block; the reconciler calls them through `tokio::task::spawn_blocking`.
//! Each honours its own `timeout` (Flux: per git operation): the work runs on a worker thread,
//! the caller stops waiting at the deadline and raises gix's interrupt flag; HTTP requests also
//! carry the timeout, and `ssh` gets a `ConnectTimeout`.
//!
//! Not supported: submodules (`spec.recurseSubmodules`), sparse checkout, LFS, proxies for
//! `ssh://`/`git://`, passphrase-protected keys in the legacy PEM format (OpenSSH-format keys are
//! decrypted), SHA-256 repositories.

pub mod auth;
mod error;
pub mod fetch;
pub mod refs;
pub mod semver;
mod transport;
mod unpack;

pub use auth::{Auth, ProxyOptions, Secret};
pub use error::GitError;
pub use fetch::{Checkout, checkout};
pub use refs::{DEFAULT_BRANCH, GitRef, Resolved, resolve};
