//! `kluctl-controller` binary: parse flags, run.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    kluctl_controller::run_controller(&kluctl_controller::ControllerArgs::parse())
}
