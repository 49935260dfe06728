//! `kluctl` binary: parse flags (command line + `KLUCTL_*` environment; clap exits 2 on a usage
//! error), run, and on failure print the report (error, first error, hint) and exit 1.
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kluctl::{self as cli, KluctlArgs};

fn main() -> ExitCode {
    let env = std::env::vars().collect();
    let argv = cli::env::with_env_flags(&KluctlArgs::command(), std::env::args_os().collect(), &env);
    match cli::run_kluctl(&KluctlArgs::parse_from(argv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in cli::report::report(&e) {
                eprintln!("{line}");
            }
            ExitCode::from(cli::report::EXIT_FAILURE)
        }
    }
}
