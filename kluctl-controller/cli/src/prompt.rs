//! The questions the cluster commands ask before changing anything (on the terminal, unless
//! `-y`), and what happens when one cannot be asked: the engine calls the confirmation hooks
//! deep inside a command and only takes a yes or no, so a [`Prompt`] keeps the failure (no
//! terminal, an obfuscation error while showing the diff) and the runner reports that failure
//! once the engine returns, instead of the engine's "aborted by user".

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::report::Hinted;

/// Whether questions can be asked: stdin and stderr are a terminal.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The failure of a run that needs a question answered without a terminal to ask on.
pub(crate) fn no_terminal(what: &str, hint: &str) -> anyhow::Error {
    Hinted::new(
        anyhow::anyhow!("refusing to {what} without confirmation: stdin is not a terminal"),
        hint,
    )
    .into()
}

/// Asks `question` on the terminal (y/N).
///
/// # Errors
/// Without a terminal, or when reading the answer fails.
pub(crate) fn ask(question: &str, what: &str) -> anyhow::Result<bool> {
    if !interactive() {
        return Err(no_terminal(what, "pass -y (--yes) to proceed without asking"));
    }
    eprint!("{question} (y/N) ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Questions asked from inside an engine command: answers yes or no, and keeps the first
/// failure for [`Prompt::finish`].
#[derive(Default)]
pub(crate) struct Prompt {
    failure: Option<anyhow::Error>,
}

impl Prompt {
    /// Asks `question` (`what` names the action for the no-terminal error); a failure is kept
    /// and answers no.
    pub(crate) fn ask(&mut self, question: &str, what: &str) -> bool {
        ask(question, what).unwrap_or_else(|e| {
            self.fail(e);
            false
        })
    }

    /// Keeps `e` (the first failure wins) so that the command reports it.
    pub(crate) fn fail(&mut self, e: anyhow::Error) {
        self.failure.get_or_insert(e);
    }

    /// The kept failure, if any.
    ///
    /// # Errors
    /// The first failure kept.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        self.failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::Prompt;

    #[test]
    fn the_first_failure_is_reported_not_a_refusal() {
        let mut p = Prompt::default();
        p.fail(anyhow::anyhow!("failed to obfuscate the diff"));
        p.fail(anyhow::anyhow!("later"));
        let e = p.finish().unwrap_err();
        assert_eq!(e.to_string(), "failed to obfuscate the diff");
        assert!(Prompt::default().finish().is_ok());
    }
}
