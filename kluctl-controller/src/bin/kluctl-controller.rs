//! `kluctl-controller` binary: parse flags, run.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    kluctl_controller::cli::run_controller(&kluctl_controller::cli::ControllerArgs::parse())
}
