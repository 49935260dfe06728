//! The page, built into the binary: one HTML file, one script, one style sheet, no build step
//! and no third-party code.
//!
//! Why no framework: the page is a few views over one JSON snapshot kept current by an event
//! stream; plain DOM code does that in a few hundred lines, loads with nothing to fetch but these
//! three files (the cluster may be offline: no CDN, no web fonts, system font stack), and leaves
//! nothing to update when a framework moves on. The server injects `<base href>` for
//! `--path-prefix`, so every URL in the page is relative.

/// `index.html`.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
/// `app.js`.
pub const APP_JS: &str = include_str!("../assets/app.js");
/// `app.css`.
pub const APP_CSS: &str = include_str!("../assets/app.css");
