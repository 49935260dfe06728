//! `kluctl` binary: parse flags, run.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    kluctl_controller::cli::run_kluctl(&kluctl_controller::cli::KluctlArgs::parse())
}
