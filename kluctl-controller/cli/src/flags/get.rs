//! The flags of `kluctl get`, `kluctl events`, `kluctl trace` and `kluctl tree` (the code that
//! runs them is in [`crate::get`]): read-only views of the controllers' objects, like Flux's
//! `flux get`, `flux events`, `flux trace` and `flux tree`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Which cluster and which namespaces.
#[derive(Args, Debug, Clone, Default)]
pub struct ListFlags {
    /// Look in this namespace (default: the kubeconfig context's namespace, else 'default')
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Look in every namespace (adds a NAMESPACE column)
    #[arg(short = 'A', long = "all-namespaces", conflicts_with = "namespace")]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub(crate) cluster: ClusterFlags,
}

/// `--context`, `--kubeconfig`.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterFlags {
    /// Use this kube context instead of the current one
    #[arg(long = "context", value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Use this kubeconfig instead of $KUBECONFIG or ~/.kube/config
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `kluctl get`.
#[derive(Args, Debug, Clone)]
pub struct GetCmd {
    /// What to list.
    #[command(subcommand)]
    pub command: GetCommand,
}

/// Subcommands of `kluctl get`.
#[derive(Subcommand, Debug, Clone)]
pub enum GetCommand {
    /// List GitRepositories and Buckets with their artifact revision and Ready status
    Sources(GetSourcesCmd),
    /// List KluctlDeployments with their deployed revision and Ready status
    #[command(alias = "kd")]
    Deployments(GetDeploymentsCmd),
}

/// A source kind of `kluctl get sources`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKindArg {
    /// GitRepositories
    Git,
    /// Buckets
    Bucket,
}

/// `kluctl get sources [git|bucket]`.
#[derive(Args, Debug, Clone)]
pub struct GetSourcesCmd {
    /// Only this kind (default: both, named kind/name)
    #[arg(value_enum)]
    pub kind: Option<SourceKindArg>,
    #[command(flatten)]
    pub(crate) list: ListFlags,
    /// After the table, print a line for every change until interrupted
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
}

/// `kluctl get deployments`.
#[derive(Args, Debug, Clone)]
pub struct GetDeploymentsCmd {
    #[command(flatten)]
    pub(crate) list: ListFlags,
    /// After the table, print a line for every change until interrupted
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
}

/// `kluctl events`.
#[derive(Args, Debug, Clone)]
pub struct EventsCmd {
    #[command(flatten)]
    pub(crate) list: ListFlags,
    /// Only the events of this object, as KIND/NAME (e.g. GitRepository/app, kd/app)
    #[arg(long = "for", value_name = "KIND/NAME", value_parser = parse_kind_name)]
    pub for_object: Option<(String, String)>,
    /// After the list, print every new event until interrupted
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
}

/// `kluctl trace <kind> <name>`.
#[derive(Args, Debug, Clone)]
pub struct TraceCmd {
    /// The object's kind, as kubectl takes it (configmap, ConfigMap, deployments.apps, ...)
    pub kind: String,
    /// The object's name
    pub name: String,
    /// The object's namespace (default: the kubeconfig context's namespace, else 'default';
    /// ignored for cluster-scoped kinds)
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Look for results of the kluctl CLI in this namespace when no KluctlDeployment manages
    /// the object
    #[arg(long = "command-result-namespace", value_name = "NAMESPACE", default_value = kluctl_engine::store::DEFAULT_RESULTS_NAMESPACE)]
    pub command_result_namespace: String,
    #[command(flatten)]
    pub(crate) cluster: ClusterFlags,
}

/// `kluctl tree`.
#[derive(Args, Debug, Clone)]
pub struct TreeCmd {
    /// Whose objects to show.
    #[command(subcommand)]
    pub command: TreeCommand,
}

/// Subcommands of `kluctl tree`.
#[derive(Subcommand, Debug, Clone)]
pub enum TreeCommand {
    /// Show the objects a KluctlDeployment manages (by its discriminator), grouped by namespace
    /// and kind
    #[command(alias = "kd")]
    Deployment(TreeDeploymentCmd),
}

/// `kluctl tree deployment <name>`.
#[derive(Args, Debug, Clone)]
pub struct TreeDeploymentCmd {
    /// The KluctlDeployment's name
    pub name: String,
    /// Its namespace (default: the kubeconfig context's namespace, else 'default')
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub(crate) cluster: ClusterFlags,
}

/// `KIND/NAME`, both non-empty.
fn parse_kind_name(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((kind.to_owned(), name.to_owned()))
        }
        _ => Err(format!("expected KIND/NAME, got '{s}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::{GetCommand, TreeCommand, parse_kind_name};
    use crate::{KluctlArgs, KluctlCommand};
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<KluctlCommand, clap::Error> {
        KluctlArgs::try_parse_from(std::iter::once("kluctl").chain(args.iter().copied())).map(|a| a.command)
    }

    #[test]
    fn aliases_parse_and_namespace_excludes_all_namespaces() {
        let Ok(KluctlCommand::Get(g)) = parse(&["get", "kd", "-A", "-w"]) else {
            panic!("get kd");
        };
        let GetCommand::Deployments(d) = g.command else {
            panic!("kd is deployments");
        };
        assert!(d.list.all_namespaces && d.watch);
        assert!(matches!(
            parse(&["tree", "kd", "app", "-n", "ns"]),
            Ok(KluctlCommand::Tree(t)) if matches!(&t.command, TreeCommand::Deployment(c) if c.name == "app")
        ));
        for bad in [
            &["get", "sources", "-n", "a", "-A"][..],
            &["get", "sources", "oci"],
            &["events", "--for", "app"],
            &["trace", "configmap"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn for_takes_kind_slash_name() {
        assert_eq!(
            parse_kind_name("GitRepository/app"),
            Ok(("GitRepository".into(), "app".into()))
        );
        for bad in ["app", "/app", "kd/", "a/b/c"] {
            assert!(parse_kind_name(bad).is_err(), "{bad}");
        }
    }
}
