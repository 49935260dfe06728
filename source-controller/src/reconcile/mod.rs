//! The reconcilers of GitRepository and Bucket: each kind's steps, and what they share.
//!
//! ```text
//!  watch ──► finalizer   deleted ⇒ remove storage dir, forget state            finalizer.rs
//!        ──► driver      not due? suspended? run → record → emit → one patch    driver.rs
//!              ├─ gitrepository: resolve → fetch → package → store ─┐           gitrepository.rs
//!              └─ bucket:        resolve → fetch → package → store ─┴─► Run     bucket.rs
//!                    storage check before fetch; store step                     store.rs
//!                    referenced Secrets                                         crate::credentials
//!        ──► record      pure: Run + old status ⇒ conditions, events, next run  record.rs
//!        ──► requeue     jittered interval | backoff | on change                requeue.rs
//! ```
//!
//! Per-object state between runs lives in [`Context`] (context.rs); step failures are
//! [`StepError`]s with a Flux reason and a [`Category`] (error.rs). Only fetch, store and the
//! status patch do I/O; resolve, package and record are pure.

pub mod bucket;
mod context;
mod driver;
mod error;
mod finalizer;
pub mod gitrepository;
mod record;
mod requeue;
mod store;

pub use context::{Context, Settings};
pub(crate) use driver::SourceKind;
pub use error::{Category, Error, Failure, StepError};
pub use requeue::{backoff_delay, jitter};
