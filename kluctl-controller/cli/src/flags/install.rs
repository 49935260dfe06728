//! Flags of `kluctl install`, `kluctl uninstall` and `kluctl check`: the controllers' own
//! installation (CRDs, RBAC, Deployments), not a Kluctl project.

use std::time::Duration;

use clap::Args;

/// The namespace the controllers run in unless `--namespace` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "kluctl-system";

/// `--namespace`, `--context`, `--kubeconfig`.
#[derive(Args, Debug, Clone)]
pub struct InstallClusterFlags {
    /// Run the controllers in this namespace
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// `--context`, `--kubeconfig`, as `kluctl get` takes them.
    #[command(flatten)]
    pub connection: super::get::ClusterFlags,
}

/// `kluctl install`.
#[derive(Args, Debug, Clone)]
pub struct InstallCmd {
    #[command(flatten)]
    pub(crate) cluster: InstallClusterFlags,
    /// Print the manifests (a YAML stream, CRDs first) instead of applying them
    #[arg(long = "export")]
    pub export: bool,
    /// Also install the legacy flux.kluctl.io KluctlDeployment CRD (then `kubectl get
    /// kluctldeployments` resolves to the legacy group)
    #[arg(long = "legacy")]
    pub legacy: bool,
    /// Let the controllers reconcile the objects of every namespace (=false: only those of
    /// their own namespace)
    #[arg(
        long = "watch-all-namespaces",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = super::parse_bool_flag,
    )]
    pub watch_all_namespaces: bool,
    /// Also install the web UI (`kluctl webui run --in-cluster`: Deployment and Service
    /// kluctl-webui); it needs the Secret webui-secret with its passwords, created separately
    #[arg(long = "webui")]
    pub webui: bool,
    /// Assume this Kubernetes version instead of asking the server (before 1.25 the CRDs' CEL
    /// validation rules are left out; --export without it keeps them)
    #[arg(long = "kubernetes-version", value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Wait this long for each CRD to become Established
    #[arg(long = "timeout", value_name = "DURATION", default_value = "1m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

/// `kluctl uninstall`.
#[derive(Args, Debug, Clone)]
pub struct UninstallCmd {
    #[command(flatten)]
    pub(crate) cluster: InstallClusterFlags,
    /// Keep the namespace (by default it is deleted once the controllers are gone, unless it
    /// still holds KluctlDeployments)
    #[arg(long = "keep-namespace")]
    pub keep_namespace: bool,
    /// Also delete the CRDs: this deletes EVERY KluctlDeployment, GitRepository, Bucket, Alert,
    /// Provider and Receiver of the cluster (the objects they deployed stay)
    #[arg(long = "delete-crds")]
    pub delete_crds: bool,
    /// With --delete-crds: also delete the legacy flux.kluctl.io KluctlDeployment CRD
    #[arg(long = "legacy")]
    pub legacy: bool,
    /// Proceed without asking
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Wait this long for the KluctlDeployments to be suspended and the objects to be gone
    #[arg(long = "timeout", value_name = "DURATION", default_value = "1m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

/// `kluctl check`.
#[derive(Args, Debug, Clone)]
pub struct CheckCmd {
    #[command(flatten)]
    pub(crate) cluster: InstallClusterFlags,
    /// Check only the prerequisites of an installation: the server version and the rights to
    /// install
    #[arg(long = "pre")]
    pub pre: bool,
}

#[cfg(test)]
mod tests {
    use crate::KluctlArgs;
    use crate::KluctlCommand;
    use clap::Parser;

    #[test]
    fn install_flags_parse_with_kluctl_defaults() {
        let parse =
            |a: &[&str]| KluctlArgs::try_parse_from(std::iter::once("kluctl").chain(a.iter().copied()));
        let KluctlCommand::Install(i) = parse(&["install"]).unwrap().command else {
            panic!("not install");
        };
        assert_eq!(i.cluster.namespace, "kluctl-system");
        assert!(i.watch_all_namespaces && !i.export && !i.legacy && !i.webui);
        let KluctlCommand::Install(i) = parse(&[
            "install",
            "-n",
            "ops",
            "--watch-all-namespaces=false",
            "--export",
            "--webui",
        ])
        .unwrap()
        .command
        else {
            panic!("not install");
        };
        assert_eq!(i.cluster.namespace, "ops");
        assert!(!i.watch_all_namespaces && i.export && i.webui);
        let KluctlCommand::Uninstall(u) = parse(&["uninstall", "--keep-namespace", "-y"]).unwrap().command
        else {
            panic!("not uninstall");
        };
        assert!(u.keep_namespace && u.yes && !u.delete_crds);
        for bad in [
            &["install", "--timeout", "soon"][..],
            &["install", "--watch-all-namespaces=maybe"],
            &["check", "--yes"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
