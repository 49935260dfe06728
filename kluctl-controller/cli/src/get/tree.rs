//! `kluctl tree deployment <name>`: the objects a KluctlDeployment manages, found by its
//! discriminator label on every served kind that can be listed, printed as a tree of
//! namespace, kind and name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context as _;
use gitops_api::constants::DISCRIMINATOR_LABEL;
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{Scope, verbs};

use super::connect;
use super::trace::{discriminator_of, served_resources};
use crate::flags::get::TreeDeploymentCmd;

/// One managed object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Managed {
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

/// Heading of the cluster-scoped objects.
const CLUSTER: &str = "(cluster-scoped)";

/// The tree under `root`: namespaces (cluster-scoped objects first), then kinds, then names,
/// each level sorted.
pub(super) fn render(root: &str, objects: &[Managed]) -> String {
    let mut grouped: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for o in objects {
        grouped
            .entry(o.namespace.as_str())
            .or_default()
            .entry(o.kind.as_str())
            .or_default()
            .insert(o.name.as_str());
    }
    let mut out = format!("{root}\n");
    if grouped.is_empty() {
        out.push_str("└── (no objects)\n");
        return out;
    }
    let namespaces = grouped.len();
    for (i, (ns, kinds)) in grouped.iter().enumerate() {
        let (mark, indent) = branch(i + 1 == namespaces);
        let heading = if ns.is_empty() {
            CLUSTER.to_owned()
        } else {
            format!("Namespace/{ns}")
        };
        let _ = writeln!(out, "{mark}{heading}");
        for (j, (kind, names)) in kinds.iter().enumerate() {
            let (mark, indent2) = branch(j + 1 == kinds.len());
            let _ = writeln!(out, "{indent}{mark}{kind}");
            for (k, name) in names.iter().enumerate() {
                let (mark, _) = branch(k + 1 == names.len());
                let _ = writeln!(out, "{indent}{indent2}{mark}{name}");
            }
        }
    }
    out
}

/// The branch of an entry and the indent of its children.
fn branch(last: bool) -> (&'static str, &'static str) {
    if last {
        ("└── ", "    ")
    } else {
        ("├── ", "│   ")
    }
}

pub(super) async fn run(cmd: &TreeDeploymentCmd) -> anyhow::Result<()> {
    let (client, default_ns) = connect(&cmd.cluster).await?;
    let ns = cmd.namespace.clone().unwrap_or(default_ns);
    let api: Api<KluctlDeployment> = Api::namespaced(client.clone(), &ns);
    let kd = api
        .get_opt(&cmd.name)
        .await
        .with_context(|| format!("failed to get KluctlDeployment '{ns}/{}'", cmd.name))?
        .with_context(|| format!("KluctlDeployment '{ns}/{}' not found", cmd.name))?;
    let discriminator = discriminator_of(&kd).with_context(|| {
        format!(
            "KluctlDeployment '{ns}/{}' has not rendered its target yet: status.targetKey.discriminator is empty",
            cmd.name
        )
    })?;
    let selector = ListParams::default().labels(&format!("{DISCRIMINATOR_LABEL}={discriminator}"));
    let mut seen = BTreeSet::new();
    let mut objects = Vec::new();
    for (ar, caps) in served_resources(&client).await? {
        if !caps.supports_operation(verbs::LIST) {
            continue;
        }
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = match api.list_metadata(&selector).await {
            Ok(l) => l,
            // Kinds this user may not list cannot show up; the tree shows what is visible.
            Err(kube::Error::Api(e)) if [403, 404, 405].contains(&e.code) => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "failed to list {} with {DISCRIMINATOR_LABEL}={discriminator}",
                        ar.plural
                    )
                });
            }
        };
        for o in list.items {
            // The same object can be served by two groups (Ingress in extensions and
            // networking.k8s.io on old servers): its uid shows it once.
            if !seen.insert(o.metadata.uid.clone().unwrap_or_default()) {
                continue;
            }
            objects.push(Managed {
                namespace: match caps.scope {
                    Scope::Namespaced => o.metadata.namespace.clone().unwrap_or_default(),
                    Scope::Cluster => String::new(),
                },
                kind: ar.kind.clone(),
                name: o.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
    let root = format!(
        "KluctlDeployment/{} (namespace {ns}, discriminator {discriminator})",
        cmd.name
    );
    print!("{}", render(&root, &objects));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ns: &str, kind: &str, name: &str) -> Managed {
        Managed {
            namespace: ns.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn objects_are_grouped_by_namespace_then_kind_cluster_scoped_first() {
        let out = render(
            "KluctlDeployment/app",
            &[
                m("apps", "ConfigMap", "b"),
                m("apps", "ConfigMap", "a"),
                m("", "Namespace", "apps"),
                m("apps", "Deployment", "web"),
                m("other", "Secret", "s"),
            ],
        );
        assert_eq!(
            out,
            "KluctlDeployment/app
├── (cluster-scoped)
│   └── Namespace
│       └── apps
├── Namespace/apps
│   ├── ConfigMap
│   │   ├── a
│   │   └── b
│   └── Deployment
│       └── web
└── Namespace/other
    └── Secret
        └── s
"
        );
        assert_eq!(render("r", &[]), "r\n└── (no objects)\n");
    }
}
