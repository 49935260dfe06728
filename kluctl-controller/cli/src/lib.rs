//! The `kluctl` command line: flag definitions (`flags`, `env`) apart from the commands that
//! drive the engine (`render`, `cluster`).

pub mod cluster;
pub mod env;
pub mod flags;
pub mod render;

use clap::{Parser, Subcommand};

/// The `kluctl` command line.
#[derive(Parser, Debug)]
#[command(
    name = "kluctl",
    version,
    about = "Render, diff, deploy, prune and validate Kluctl projects; drive the kluctl-controller"
)]
pub struct KluctlArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<KluctlCommand>,
}

/// Subcommands of `kluctl`.
#[derive(Subcommand, Debug)]
pub enum KluctlCommand {
    /// Print the version of this build.
    Version,
    /// Renders all resources and configuration files into a directory; --print-all writes
    /// every object to stdout (--offline-kubernetes: without connecting to the cluster).
    Render(render::RenderCmd),
    /// Outputs a YAML list with all targets.
    ListTargets(render::ListTargetsCmd),
    /// Renders and outputs the images used via images.get_image (the --fixed-images-file format).
    ListImages(render::ListImagesCmd),
    /// Deploys a target to the corresponding cluster.
    Deploy(cluster::DeployCmd),
    /// Perform a diff between the locally rendered target and the already deployed target.
    Diff(cluster::DiffCmd),
    /// Searches the target cluster for prunable objects and deletes them.
    Prune(cluster::PruneCmd),
    /// Delete a target (or parts of it) from the corresponding cluster.
    Delete(cluster::DeleteCmd),
    /// Validates the already deployed deployment.
    Validate(cluster::ValidateCmd),
    /// Replace all images in target: only the images resolved by images.get_image are changed
    /// on the live objects.
    PokeImages(cluster::PokeImagesCmd),
}

/// Runs `kluctl` with parsed arguments.
///
/// # Errors
/// When no subcommand is given.
pub fn run_kluctl(args: &KluctlArgs) -> anyhow::Result<()> {
    match &args.command {
        Some(KluctlCommand::Version) => {
            println!("kluctl {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(KluctlCommand::Render(cmd)) => render::run_render(cmd),
        Some(KluctlCommand::ListTargets(cmd)) => render::run_list_targets(cmd),
        Some(KluctlCommand::ListImages(cmd)) => render::run_list_images(cmd),
        Some(KluctlCommand::Deploy(cmd)) => cluster::run_deploy(cmd),
        Some(KluctlCommand::Diff(cmd)) => cluster::run_diff(cmd),
        Some(KluctlCommand::Prune(cmd)) => cluster::run_prune(cmd),
        Some(KluctlCommand::Delete(cmd)) => cluster::run_delete(cmd),
        Some(KluctlCommand::Validate(cmd)) => cluster::run_validate(cmd),
        Some(KluctlCommand::PokeImages(cmd)) => cluster::run_poke_images(cmd),
        None => anyhow::bail!("no command given; see 'kluctl --help'"),
    }
}
