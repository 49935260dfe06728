//! Notifications: Flux's Alert/Provider dispatch and Receiver webhooks, inside kluctl-controller.
//!
//! ```text
//!  source-controller ──POST Flux event JSON──► intake (--events-listen-addr) ─┐
//!  kluctl-controller's own events ──────────── in-process (EventSink) ────────┤
//!                                                                              ▼
//!        dispatch: cleanup metadata ─► dedup (--rate-limit-interval) ─► Alerts matching
//!                  (eventSources, severity, inclusion/exclusion) ─► metadata merge
//!                  ─► providers::Destination::send (async, provider timeout, retries)
//!                  ─► Alert/Provider status: Ready, last dispatch time and error
//!
//!  Git forge / CI ──POST /hook/<sha256>──► receiver (--receiver-listen-addr)
//!                  validate per type ─► annotate GitRepository / Bucket / KluctlDeployment
//! ```
//!
//! The pure parts (matching, dedup keys, payloads, signature checks) are functions with unit
//! tests; the HTTP edges and Kubernetes reads stay thin around them.

pub mod dedup;
pub mod dispatch;
pub mod intake;
pub mod matching;
pub mod providers;
pub mod receiver;
pub mod reconcile;
pub mod status;
