//! `source-controller` binary: parse flags, run.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    source_controller::run(&source_controller::Args::parse())
}
