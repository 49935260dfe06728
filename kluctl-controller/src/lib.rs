//! The `KluctlDeployment` controller: reconciles KluctlDeployment objects with the Kluctl engine
//! (`kluctl-engine`, the crate beside this one). The `kluctl` CLI is its own crate
//! (`kluctl-controller/cli`), so neither depends on the other.

use clap::Parser;

pub mod source;

/// The `kluctl-controller` command line.
#[derive(Parser, Debug)]
#[command(
    name = "kluctl-controller",
    version,
    about = "Reconciles KluctlDeployment objects: render, apply, prune, validate, detect drift, notify"
)]
pub struct ControllerArgs {}

/// Runs `kluctl-controller` with parsed arguments.
///
/// # Errors
/// Always, for now: the reconciler is not part of this build, and saying so beats idling silently.
pub fn run_controller(args: &ControllerArgs) -> anyhow::Result<()> {
    let ControllerArgs {} = args;
    anyhow::bail!("the KluctlDeployment reconciler is not part of this build yet")
}
