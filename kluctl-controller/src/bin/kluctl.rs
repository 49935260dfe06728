//! `kluctl` binary: parse flags (command line + `KLUCTL_*` environment), run.
use clap::{CommandFactory, Parser};
use kluctl_controller::cli::{self, KluctlArgs};

fn main() -> anyhow::Result<()> {
    let env = std::env::vars().collect();
    let argv = cli::env::with_env_flags(&KluctlArgs::command(), std::env::args_os().collect(), &env);
    cli::run_kluctl(&KluctlArgs::parse_from(argv))
}
