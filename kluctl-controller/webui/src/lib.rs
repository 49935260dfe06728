//! The web UI of `kluctl webui run`: every KluctlDeployment of a cluster grouped by project and
//! target, the history of stored command and validate results (the controller's and the CLI's),
//! drift, validation, and for admins the same buttons as `kluctl gitops` (deploy, diff, prune,
//! validate, reconcile, suspend/resume, approve/revoke a manual deployment).
//!
//! ```text
//!  apiserver ──watch KluctlDeployments──┐
//!            ──watch result Secrets ────┴─► model (in memory) ─► snapshot + change feed
//!                 (metadata only)                                   │
//!  browser ◄── page (built in) · /api/overview · /api/events (SSE) ◄┘
//!          ◄── /api/deployments/NS/NAME/logs (SSE) ◄── logs hub ◄── controller's log
//!                                                      (pods/log or --log-file, read once)
//!          ──► /api/deployments/NS/NAME/actions/X ─► merge patch (annotation / spec), as the CLI
//! ```
//!
//! - [`model`]: the shared picture and its change feed
//! - [`watch`]: the two watches feeding it
//! - [`view`]: slim views for the browser, roles, redaction for viewers
//! - [`auth`]: local (everyone admin), or logins (static passwords, OIDC) with signed session
//!   cookies
//! - [`oidc`]: OIDC logins (authorization code flow with PKCE)
//! - [`actions`]: what each button patches
//! - [`logs`]: the shared reader of the controller's log lines
//! - [`server`]: routes, the event stream
//! - [`assets`]: the page

pub mod actions;
pub mod assets;
pub mod auth;
pub mod logs;
pub mod model;
pub mod oidc;
pub mod server;
pub mod view;
pub mod watch;

pub use auth::{Auth, Logins, Passwords};
pub use server::{Cluster, Options, Running, start};
pub use view::Role;
