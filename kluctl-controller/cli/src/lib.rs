//! The `kluctl` command line.
//!
//! ```text
//! flags     every flag: shared groups, one struct per command (clap checks values up front)
//! env       KLUCTL_* environment variables as flags, Kluctl's way
//! prepare   flags ─► resolved settings ─► cluster connection ─► rendered target
//! render    render, list-targets, list-images
//! cluster   deploy, diff, prune, delete, poke-images, validate (one module per runner)
//! gitops    gitops suspend/resume/reconcile/deploy/diff/prune/validate/logs: the controller's
//!           KluctlDeployments, through the Kubernetes API
//! get       get sources/deployments, events, trace, tree: read-only views of the
//!           controllers' objects, like flux get/events/trace/tree
//! install   install, check, uninstall: the controllers' own CRDs, RBAC and Deployments
//! output    -o values and the writers for stdout and files
//! progress  the progress lines on stderr
//! prompt    the questions asked before changing a cluster
//! report    a failure ─► stderr lines (error, first error, hint) and the exit status
//! webui     webui run: the kluctl-webui server with this command line's cluster connection
//! ```

pub mod bootstrap;
pub mod cluster;
pub mod env;
pub mod flags;
pub mod get;
pub mod gitops;
pub mod install;
pub mod output;
mod prepare;
mod progress;
mod prompt;
pub mod render;
pub mod report;
pub mod webui;

use clap::{Parser, Subcommand};

use flags::commands::{
    DeleteCmd, DeployCmd, DiffCmd, ListImagesCmd, ListTargetsCmd, PokeImagesCmd, PruneCmd, RenderCmd,
    ValidateCmd,
};

/// The `kluctl` command line.
#[derive(Parser, Debug)]
#[command(
    name = "kluctl",
    version,
    about = "Render, diff, deploy, prune and validate Kluctl projects",
    arg_required_else_help = true,
    after_help = report::EXIT_STATUS_HELP
)]
pub struct KluctlArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KluctlCommand,
}

/// Subcommands of `kluctl`.
#[derive(Subcommand, Debug)]
pub enum KluctlCommand {
    /// Print the version of this build
    Version,
    /// Render the target's objects into a directory, or with --print-all to stdout
    Render(RenderCmd),
    /// Print the targets of .kluctl.yaml as a YAML list
    ListTargets(ListTargetsCmd),
    /// Render the target and print the images images.get_image resolved (the
    /// --fixed-images-file format)
    ListImages(ListImagesCmd),
    /// Deploy the target to its cluster: show the diff, ask, apply, wait for readiness
    Deploy(DeployCmd),
    /// Show what a deploy would change: a server-side dry run diffed against the cluster
    Diff(DiffCmd),
    /// Delete the target's orphans: objects with its discriminator that are no longer rendered
    Prune(PruneCmd),
    /// Delete the target's objects from its cluster (all of them, or those -I/-E select)
    Delete(DeleteCmd),
    /// Check that the target's deployed objects are ready and valid
    Validate(ValidateCmd),
    /// Set the images images.get_image resolved on the live objects, changing nothing else
    PokeImages(PokeImagesCmd),
    /// Drive the kluctl-controller's KluctlDeployments: suspend, resume, request a reconcile,
    /// deploy, diff, prune or validate and print its result, show the controller's logs
    Gitops(flags::gitops::GitopsCmd),
    /// List sources or KluctlDeployments with their revision and Ready status, like `flux get`
    Get(flags::get::GetCmd),
    /// List the Kubernetes Events of the sources, KluctlDeployments, Alerts, Providers, Receivers
    Events(flags::get::EventsCmd),
    /// Show which KluctlDeployment and source manage an object (from its discriminator label)
    Trace(flags::get::TraceCmd),
    /// Show the objects a KluctlDeployment manages, grouped by namespace and kind
    Tree(flags::get::TreeCmd),
    /// Install the controllers (CRDs, RBAC, Deployments), or with --export print the manifests
    Install(flags::install::InstallCmd),
    /// Check the prerequisites (--pre) or the health of an installation
    Check(flags::install::CheckCmd),
    /// Remove the controllers (never what KluctlDeployments deployed; CRDs only with --delete-crds)
    Uninstall(flags::install::UninstallCmd),
    /// Push the controllers and a sync to a Git repository, install them, and wait until the
    /// cluster deploys itself from it
    Bootstrap(flags::bootstrap::BootstrapCmd),
    /// Serve the web UI: watch and steer every KluctlDeployment from a browser
    Webui(flags::webui::WebuiCmd),
}

/// Runs `kluctl` with parsed arguments.
///
/// # Errors
/// The command's failure; [`report::report`] turns it into stderr lines.
pub fn run_kluctl(args: &KluctlArgs) -> anyhow::Result<()> {
    match &args.command {
        KluctlCommand::Version => {
            println!("kluctl {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        KluctlCommand::Render(cmd) => render::run_render(cmd),
        KluctlCommand::ListTargets(cmd) => render::run_list_targets(cmd),
        KluctlCommand::ListImages(cmd) => render::run_list_images(cmd),
        KluctlCommand::Deploy(cmd) => cluster::run_deploy(cmd),
        KluctlCommand::Diff(cmd) => cluster::run_diff(cmd),
        KluctlCommand::Prune(cmd) => cluster::run_prune(cmd),
        KluctlCommand::Delete(cmd) => cluster::run_delete(cmd),
        KluctlCommand::Validate(cmd) => cluster::run_validate(cmd),
        KluctlCommand::PokeImages(cmd) => cluster::run_poke_images(cmd),
        KluctlCommand::Gitops(cmd) => gitops::run_gitops(cmd),
        KluctlCommand::Get(cmd) => get::run_get(cmd),
        KluctlCommand::Events(cmd) => get::run_events(cmd),
        KluctlCommand::Trace(cmd) => get::run_trace(cmd),
        KluctlCommand::Tree(cmd) => get::run_tree(cmd),
        KluctlCommand::Install(cmd) => install::run_install(cmd),
        KluctlCommand::Check(cmd) => install::run_check(cmd),
        KluctlCommand::Uninstall(cmd) => install::run_uninstall(cmd),
        KluctlCommand::Bootstrap(cmd) => bootstrap::run_bootstrap(cmd),
        KluctlCommand::Webui(cmd) => webui::run_webui(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::{KluctlArgs, KluctlCommand};
    use crate::output::{Destination, Format, ListFormat};
    use clap::Parser;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<KluctlArgs, clap::Error> {
        KluctlArgs::try_parse_from(std::iter::once("kluctl").chain(args.iter().copied()))
    }

    #[test]
    fn no_command_is_a_usage_error_that_shows_the_help() {
        let e = parse(&[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("Exit status:"), "{e}");
    }

    #[test]
    fn a_bad_output_format_fails_while_parsing_before_any_work() {
        for args in [
            &["deploy", "-y", "-o", "xml"][..],
            &["diff", "-o", "xml=out.xml"],
            &["prune", "-o", "yaml="],
            &["validate", "-o", "json"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}");
            assert_eq!(e.exit_code(), 2);
        }
        let e = parse(&["deploy", "-o", "xml"]).unwrap_err().to_string();
        assert!(e.contains("unknown format 'xml'"), "{e}");
        assert!(
            parse(&["deploy", "-F", "a=b=c"]).is_err(),
            "-F is checked up front too"
        );
        assert!(parse(&["deploy", "--readiness-timeout", "soon"]).is_err());
    }

    #[test]
    fn output_flags_resolve_into_formats_and_destinations() {
        let KluctlCommand::Deploy(d) = parse(&["deploy", "-o", "yaml=r.yaml", "-o", "text"])
            .unwrap()
            .command
        else {
            panic!("not deploy");
        };
        let got: Vec<_> = d
            .output
            .output_format
            .iter()
            .map(|o| (o.format, o.to.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (Format::Yaml, Destination::File("r.yaml".into())),
                (Format::Text, Destination::Stdout)
            ]
        );
        let KluctlCommand::ListTargets(l) = parse(&["list-targets", "--only-names", "-o", "a", "-o", "json"])
            .unwrap()
            .command
        else {
            panic!("not list-targets");
        };
        let got: Vec<_> = l.output.output.iter().map(|o| (o.format, o.to.clone())).collect();
        assert_eq!(
            got,
            [
                (ListFormat::Kluctl, Destination::File("a".into())),
                (ListFormat::Json, Destination::Stdout)
            ]
        );
    }

    #[test]
    fn gitops_selection_flags_exclude_each_other_and_bad_values_are_usage_errors() {
        for args in [
            &["gitops", "deploy", "--name", "a", "-l", "x=y"][..],
            &["gitops", "suspend", "--name", "a", "--all"],
            &["gitops", "diff", "-l", "x=y", "--all"],
            &["gitops", "deploy", "--prune=maybe"],
            &["gitops", "diff", "--prune"],
            &["gitops", "validate", "-o", "json"],
            &["gitops", "logs", "--timeout", "1m"],
            &["gitops", "reconcile", "--timeout", "soon"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
        let KluctlCommand::Gitops(g) = parse(&["gitops", "logs", "--all", "-f"]).unwrap().command else {
            panic!("not gitops");
        };
        assert!(matches!(g.command, crate::flags::gitops::GitopsCommand::Logs(_)));
    }

    #[test]
    fn help_texts_point_nowhere_without_a_link() {
        use clap::CommandFactory;
        let mut cmd = KluctlArgs::command();
        for sub in cmd.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            assert!(!help.contains("See documentation"), "{}: {help}", sub.get_name());
        }
    }
}
