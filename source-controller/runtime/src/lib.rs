//! What the controllers (source-controller, kluctl-controller) run on besides their reconcilers.
//!
//! ```text
//!  controller main ──► logging::init        controller-runtime JSON / console lines, stderr (+ file)
//!                  ──► leader::acquire      Lease election; Leadership::lost() ends the process
//!                  ──► probes::Probes       /metrics of its registry, /healthz, /readyz
//!  reconciler      ──► slots::Slots         --concurrency, first come first served
//!                  ──► events::Events::emit Kubernetes Event (recorder) + Flux event POST (--events-addr)
//! ```
//!
//! It lives under `source-controller/` because that is where it grew; it knows nothing of either
//! controller's objects, flags or metric definitions.

pub mod events;
pub mod leader;
pub mod logging;
pub mod probes;
pub mod recorder;
pub mod slots;

pub use events::{EventSink, Events, FluxEvent, Severity};
pub use leader::{Leadership, LeaseConfig};
pub use logging::LogFormat;
pub use probes::Probes;
pub use slots::Slots;
