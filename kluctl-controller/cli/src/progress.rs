//! The progress display of the cluster commands: one stderr line per item update; on a terminal
//! the running status is redrawn in place and only finished items stay.

use std::io::{IsTerminal as _, Write as _};

use kluctl_engine::apply::Progress;

/// Progress lines on stderr (colours only on a terminal without `NO_COLOR`).
pub(crate) struct LineProgress {
    tty: bool,
    color: bool,
}

impl LineProgress {
    /// Progress for the current stderr.
    pub(crate) fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            tty,
            color: tty && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

impl Progress for LineProgress {
    fn update(&self, item: &str, message: &str) {
        let mut err = std::io::stderr().lock();
        let line = if item.is_empty() {
            message.to_owned()
        } else {
            format!("{item}: {message}")
        };
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn finish(&self, item: &str, ok: bool, summary: &str) {
        let mut err = std::io::stderr().lock();
        let mark = match (ok, self.color) {
            (true, true) => "\x1b[32m✓\x1b[0m",
            (false, true) => "\x1b[31m✗\x1b[0m",
            (true, false) => "ok",
            (false, false) => "failed",
        };
        let clear = if self.tty { "\r\x1b[2K" } else { "" };
        let _ = writeln!(err, "{clear}{mark} {item}: {summary}");
    }
}
