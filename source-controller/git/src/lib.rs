//! The git layer shared by source-controller (GitRepository) and the Kluctl engine (git includes
//! and git vars): everything about talking to a git remote, nothing about what to follow.
//!
//! ```text
//!   Secret data ──Credentials::from_secret_data──┐   (controller: strict ssh, Flux's keys)
//!   KLUCTL_GIT_* ─Credentials::from_kluctl_env───┤   (CLI: the user's ssh, Kluctl's env sets)
//!   GitCredentialRules::credentials_for ─────────┤   (controller: spec.credentials.git, first match)
//!                                                ▼
//!   url ─────────────────────────────────► Remote::new(url, &credentials, timeout)
//!                                            ├─ list_refs(prefixes) ─► RefListing (ls-refs)
//!                                            ├─ fetch_commit(id, dest) ─► the tree in dest
//!                                            └─ fetch_tree(id, scratch) ─► CommitTree to walk
//!   every message: redact_url(url), secrets scrubbed; failures: Error
//! ```
//!
//! Module map: [`credentials`] (the [`Credentials`] type and its two sources, [`Secret`],
//! CA/client-identity parsing, [`SshMode`]), `url` ([`redact_url`], scheme classes), `session`
//! (gix set-up per credential kind, credentials callback, HTTP client settings, ssh wrapper,
//! deadline, error mapping), [`remote`] ([`Remote`]: ls-refs and the single-commit fetch),
//! [`rules`] (Kluctl's ordered `{host, path glob, Secret}` credential rules, first match wins),
//! `unpack` (pack → files without mapping the pack into memory), [`tree`] ([`CommitTree`]: a
//! fetched commit's checked tree, blobs read from files), [`Error`] and [`error_chain`].
//!
//! What stays with the callers: source-controller keeps Flux's ref precedence, semver selection,
//! revision strings and condition reasons; the engine keeps its checkout cache and Kluctl's ref
//! resolution. This crate has no Kubernetes, HTTP-server or metrics dependencies.
//!
//! Implementation: gix (pure Rust) for every transport. HTTP(S) uses gix's reqwest backend with
//! our client settings (given CA only, client certificate, proxy, bearer header, timeout);
//! `ssh://` runs the `ssh` binary; `git://` is anonymous. Nothing ever prompts: a credentials
//! callback answers gix, and no machine-level git configuration is read. Operations block and
//! honour their own timeout (worker thread + gix's interrupt flag; HTTP requests and `ssh`'s
//! `ConnectTimeout` carry it too); async callers use `spawn_blocking`.
//!
//! Not supported: submodules, sparse checkout, LFS, proxies for `ssh://`/`git://`,
//! passphrase-protected keys in the legacy PEM format (OpenSSH-format keys are decrypted),
//! SHA-256 repositories.

pub mod credentials;
mod error;
pub mod remote;
pub mod rules;
mod session;
pub mod tree;
mod unpack;
mod url;

pub use credentials::{Credentials, KluctlGitEnv, ProxyOptions, Secret, SshMode};
pub use error::{Error, error_chain};
pub use remote::{FetchedCommit, RefListing, Remote, RemoteRef};
pub use rules::{GitCredentialRule, GitCredentialRules, InvalidGlob, KluctlGitSecret};
pub use tree::{BlobId, BlobReader, CommitTree, EntryKind, TreeEntry, TreeId};
#[doc(hidden)]
pub use unpack::{fuzz_unpack, tree_from_pack};
pub use url::redact_url;
