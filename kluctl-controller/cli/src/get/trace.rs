//! `kluctl trace <kind> <name>`: which KluctlDeployment and which source manage an object.
//!
//! ```text
//! kind (discovery) ─► object ─► label kluctl.io/discriminator
//!   ─► KluctlDeployments (all namespaces) whose status.targetKey has that discriminator
//!   ─► spec.sourceRef ─► the GitRepository / Bucket and its artifact revision
//!      or spec.source   ─► the Git / OCI URL and ref
//! ```
//!
//! The sections are printed as `flux trace` prints them (Object, KluctlDeployment, source),
//! separated by `---`. Resolution and formatting are pure functions of the objects.

use std::fmt::Write as _;

use anyhow::Context as _;
use gitops_api::constants::DISCRIMINATOR_LABEL;
use gitops_api::kluctl::v1beta1::{KluctlDeployment, SourceKind};
use gitops_api::meta::Condition;
use gitops_api::source::v1::{Bucket, GitRepository};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kluctl_engine::result::{CommandInitiator, CommandResultSummary};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, Discovery, Scope};
use kube::{Api, Resource as _, ResourceExt as _};

use super::connect;
use super::deployments::deployed_revision;
use crate::flags::get::TraceCmd;

/// Finds the served resource a kubectl-style kind names: `configmap`, `ConfigMap`,
/// `configmaps`, or qualified by group (`deployments.apps`, `kluctldeployment.gitops.kluctl.io`).
/// The core group wins over others, then the first group discovery lists.
pub(super) fn find_resource<'a>(
    resources: &'a [(ApiResource, ApiCapabilities)],
    arg: &str,
) -> Option<&'a (ApiResource, ApiCapabilities)> {
    let lower = arg.to_lowercase();
    let (name, group) = match lower.split_once('.') {
        Some((n, g)) => (n.to_owned(), Some(g.to_owned())),
        None => (lower.clone(), None),
    };
    let matches = |ar: &ApiResource| {
        (ar.kind.to_lowercase() == name || ar.plural == name)
            && group.as_deref().is_none_or(|g| ar.group == g)
    };
    resources
        .iter()
        .filter(|(ar, _)| matches(ar))
        .min_by_key(|(ar, _)| !ar.group.is_empty())
}

/// The `plural.group` (or plural for the core group) of the resource whose short name is `arg`
/// (`cm`, `deploy`, `kd`), from the raw resource lists: kube's discovery drops short names.
pub(super) fn by_short_name(lists: &[APIResourceList], arg: &str) -> Option<String> {
    let lower = arg.to_lowercase();
    lists.iter().find_map(|list| {
        let group = list.group_version.rsplit_once('/').map_or("", |(g, _)| g);
        list.resources
            .iter()
            .filter(|r| !r.name.contains('/'))
            .find(|r| r.short_names.as_ref().is_some_and(|s| s.contains(&lower)))
            .map(|r| {
                if group.is_empty() {
                    r.name.clone()
                } else {
                    format!("{}.{group}", r.name)
                }
            })
    })
}

/// The resource lists of the core group and of every group's preferred version; groups whose
/// list fails are left out (as in [`served_resources`]).
async fn resource_lists(client: &kube::Client) -> anyhow::Result<Vec<APIResourceList>> {
    let mut lists = vec![
        client
            .list_core_api_resources("v1")
            .await
            .context("failed to list the core API resources")?,
    ];
    let groups = client
        .list_api_groups()
        .await
        .context("failed to discover the served API groups")?;
    for g in groups.groups {
        let Some(version) = g.preferred_version.or_else(|| g.versions.into_iter().next()) else {
            continue;
        };
        if let Ok(list) = client.list_api_group_resources(&version.group_version).await {
            lists.push(list);
        }
    }
    Ok(lists)
}

/// Every resource the apiserver serves, one version per group (the preferred one), through the
/// engine's discovery (aggregated where the server has it).
///
/// One unavailable group (an aggregated API whose backend is down) fails a whole discovery run,
/// so then each group is discovered alone and the unavailable ones are named on stderr and
/// skipped: the objects of the others can still be traced.
pub(super) async fn served_resources(
    client: &kube::Client,
) -> anyhow::Result<Vec<(ApiResource, ApiCapabilities)>> {
    let collect = |d: &Discovery| -> Vec<(ApiResource, ApiCapabilities)> {
        d.groups()
            .flat_map(kube::discovery::ApiGroup::recommended_resources)
            .collect()
    };
    if let Ok(discovery) = kluctl_engine::cluster::discover(client).await {
        return Ok(collect(&discovery));
    }
    let groups = client
        .list_api_groups()
        .await
        .context("failed to discover the served API groups")?;
    let mut names: Vec<String> = groups.groups.into_iter().map(|g| g.name).collect();
    names.push(String::new());
    let mut resources = Vec::new();
    for name in names {
        match Discovery::new(client.clone()).filter(&[&name]).run().await {
            Ok(d) => resources.extend(collect(&d)),
            Err(e) => eprintln!("warning: skipping API group '{name}': {e}"),
        }
    }
    Ok(resources)
}

/// The KluctlDeployments whose last deploy used `discriminator` (`status.targetKey`, else the
/// target key of `status.lastDeployResult`).
pub(super) fn managing<'a>(
    discriminator: &str,
    deployments: &'a [KluctlDeployment],
) -> Vec<&'a KluctlDeployment> {
    deployments
        .iter()
        .filter(|kd| discriminator_of(kd).as_deref() == Some(discriminator))
        .collect()
}

/// The discriminator a KluctlDeployment's objects carry, once it has rendered its target.
pub(super) fn discriminator_of(kd: &KluctlDeployment) -> Option<String> {
    let status = kd.status.as_ref()?;
    status
        .target_key
        .as_ref()
        .map(|t| t.discriminator.clone())
        .or_else(|| {
            status
                .last_deploy_result
                .as_ref()
                .map(|r| r.target_key.discriminator.clone())
        })
        .filter(|d| !d.is_empty())
}

/// Where a KluctlDeployment's project comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// `spec.sourceRef`: a GitRepository or Bucket (namespace defaulted to the deployment's).
    Ref {
        kind: SourceKind,
        name: String,
        namespace: String,
    },
    /// `spec.source.git` (or the older `spec.source.url`).
    Git {
        url: String,
        git_ref: String,
        path: String,
    },
    /// `spec.source.oci`.
    Oci {
        url: String,
        oci_ref: String,
        path: String,
    },
    /// No source in the spec.
    None,
}

/// The source of `kd`.
pub(super) fn source_of(kd: &KluctlDeployment) -> Source {
    let ns = kd.meta().namespace.clone().unwrap_or_default();
    if let Some(r) = &kd.spec.source_ref {
        return Source::Ref {
            kind: r.kind,
            name: r.name.clone(),
            namespace: r.namespace.clone().filter(|n| !n.is_empty()).unwrap_or(ns),
        };
    }
    let Some(src) = &kd.spec.source else {
        return Source::None;
    };
    let describe = |r: Option<&gitops_api::kluctl::v1beta1::GitRef>| {
        r.map(|r| {
            [("branch", &r.branch), ("tag", &r.tag), ("commit", &r.commit)]
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    if let Some(git) = &src.git {
        return Source::Git {
            url: git.url.clone(),
            git_ref: describe(git.git_ref.as_ref()),
            path: git.path.clone(),
        };
    }
    if let Some(oci) = &src.oci {
        let oci_ref = oci
            .oci_ref
            .as_ref()
            .map(|r| {
                if r.digest.is_empty() {
                    r.tag.clone()
                } else {
                    r.digest.clone()
                }
            })
            .unwrap_or_default();
        return Source::Oci {
            url: oci.url.clone(),
            oci_ref,
            path: oci.path.clone(),
        };
    }
    match &src.url {
        Some(url) => Source::Git {
            url: url.clone(),
            git_ref: describe(src.git_ref.as_ref()),
            path: src.path.clone(),
        },
        None => Source::None,
    }
}

/// One section of the output: `Key:` / value lines.
pub(super) type Section = Vec<(&'static str, String)>;

/// Width of the key column: the longest key (`KluctlDeployment:`) and two spaces, so every
/// section and every trace lines up.
const KEY_WIDTH: usize = 19;

/// The sections, keys padded to one column, separated by `---`.
pub(super) fn render(sections: &[Section]) -> String {
    sections
        .iter()
        .map(|s| {
            s.iter().fold(String::new(), |mut out, (k, v)| {
                let _ = writeln!(out, "{:<KEY_WIDTH$}{v}", format!("{k}:"));
                out
            })
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `Status` and `Message` lines of an object with conditions, like `flux trace`.
fn status_lines(conditions: &[Condition], suspended: bool) -> Section {
    let ready = gitops_api::conditions::find(conditions, "Ready");
    let status = match ready {
        _ if suspended => "Suspended".to_owned(),
        Some(c) if c.status == "True" => format!("Last reconciled at {}", c.last_transition_time.0),
        Some(c) => format!(
            "Ready={} ({}) since {}",
            c.status, c.reason, c.last_transition_time.0
        ),
        None => "Waiting to be reconciled".to_owned(),
    };
    let mut lines = vec![("Status", status)];
    if let Some(c) = ready {
        lines.push(("Message", super::table::one_line(&c.message, 300)));
    }
    lines
}

/// The Object section; `managed_by` names the controller or the CLI.
pub(super) fn object_section(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    discriminator: &str,
    managed_by: &str,
) -> Section {
    let mut s = vec![("Object", format!("{}/{name}", kind.to_lowercase()))];
    if let Some(ns) = namespace {
        s.push(("Namespace", ns.to_owned()));
    }
    s.push(("Discriminator", discriminator.to_owned()));
    s.push(("Status", format!("Managed by {managed_by}")));
    s
}

/// The KluctlDeployment section.
pub(super) fn deployment_section(kd: &KluctlDeployment) -> Section {
    let status = kd.status.clone().unwrap_or_default();
    let mut s = vec![
        ("KluctlDeployment", kd.meta().name.clone().unwrap_or_default()),
        ("Namespace", kd.meta().namespace.clone().unwrap_or_default()),
    ];
    if let Some(t) = kd.spec.target.as_ref().filter(|t| !t.is_empty()) {
        s.push(("Target", t.clone()));
    }
    if let Some(p) = kd.spec.path.as_ref().filter(|p| !p.is_empty()) {
        s.push(("Path", p.clone()));
    }
    let revision = deployed_revision(kd);
    if !revision.is_empty() {
        s.push(("Revision", revision));
    }
    s.extend(status_lines(&status.conditions, kd.spec.suspend));
    s
}

/// The newest of `summaries` (newest first, as the store lists them) whose target has
/// `discriminator` and that changed the cluster (not a diff or a dry run).
pub(super) fn newest_with<'a>(
    discriminator: &str,
    summaries: &'a [CommandResultSummary],
) -> Option<&'a CommandResultSummary> {
    summaries.iter().find(|s| {
        s.target_key.discriminator == discriminator && !s.command.dry_run && s.command.command != "diff"
    })
}

/// The section of a stored command result: who ran which command on which project and commit.
pub(super) fn command_result_section(s: &CommandResultSummary) -> Section {
    let mut section = vec![
        ("Command", s.command.command.clone()),
        (
            "Initiator",
            match s.command.initiator {
                CommandInitiator::CommandLine => "kluctl CLI",
                CommandInitiator::KluctlDeployment => "KluctlDeployment",
            }
            .to_owned(),
        ),
    ];
    if let Some(end) = &s.command.end_time {
        section.push(("Finished", end.to_string()));
    }
    let project = match (s.project_key.repo_key.as_str(), s.project_key.sub_dir.as_str()) {
        ("", "") => String::new(),
        (repo, "") => repo.to_owned(),
        (repo, dir) => format!("{repo} {dir}"),
    };
    if !project.is_empty() {
        section.push(("Project", project));
    }
    if !s.target_key.target_name.is_empty() {
        section.push(("Target", s.target_key.target_name.clone()));
    }
    if !s.git_info.commit.is_empty() {
        section.push(("Revision", s.git_info.commit.clone()));
    }
    section.push(("Result", s.id.clone()));
    section
}

/// The section of an inline source, or `None` for a `sourceRef` (its object is read).
pub(super) fn inline_source_section(source: &Source) -> Option<Section> {
    let with_path = |mut s: Section, path: &str| {
        if !path.is_empty() {
            s.push(("Path", path.to_owned()));
        }
        s
    };
    match source {
        Source::Git { url, git_ref, path } => {
            let mut s = vec![("Source", "spec.source.git".to_owned()), ("URL", url.clone())];
            if !git_ref.is_empty() {
                s.push(("Ref", git_ref.clone()));
            }
            Some(with_path(s, path))
        }
        Source::Oci { url, oci_ref, path } => {
            let mut s = vec![("Source", "spec.source.oci".to_owned()), ("URL", url.clone())];
            if !oci_ref.is_empty() {
                s.push(("Ref", oci_ref.clone()));
            }
            Some(with_path(s, path))
        }
        Source::None => Some(vec![("Source", "none in the spec".to_owned())]),
        Source::Ref { .. } => None,
    }
}

/// The section of a GitRepository.
pub(super) fn git_repository_section(o: &GitRepository) -> Section {
    let status = o.status.clone().unwrap_or_default();
    let mut s = vec![
        ("GitRepository", o.meta().name.clone().unwrap_or_default()),
        ("Namespace", o.meta().namespace.clone().unwrap_or_default()),
        ("URL", o.spec.url.clone()),
    ];
    if let Some(r) = &o.spec.reference {
        for (key, value) in [
            ("Branch", &r.branch),
            ("Tag", &r.tag),
            ("Semver", &r.semver),
            ("Ref", &r.name),
            ("Commit", &r.commit),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                s.push((key, v.clone()));
            }
        }
    }
    if let Some(a) = &status.artifact {
        s.push(("Revision", a.revision.clone()));
    }
    s.extend(status_lines(
        &status.conditions.unwrap_or_default(),
        o.spec.suspend,
    ));
    s
}

/// The section of a Bucket.
pub(super) fn bucket_section(o: &Bucket) -> Section {
    let status = o.status.clone().unwrap_or_default();
    let mut s = vec![
        ("Bucket", o.meta().name.clone().unwrap_or_default()),
        ("Namespace", o.meta().namespace.clone().unwrap_or_default()),
        ("Endpoint", o.spec.endpoint.clone()),
        ("Bucket Name", o.spec.bucket_name.clone()),
    ];
    if let Some(a) = &status.artifact {
        s.push(("Revision", a.revision.clone()));
    }
    s.extend(status_lines(
        &status.conditions.unwrap_or_default(),
        o.spec.suspend,
    ));
    s
}

pub(super) async fn run(cmd: &TraceCmd) -> anyhow::Result<()> {
    let (client, default_ns) = connect(&cmd.cluster).await?;
    let resources = served_resources(&client).await?;
    let found = match find_resource(&resources, &cmd.kind) {
        Some(found) => Some(found),
        None => by_short_name(&resource_lists(&client).await?, &cmd.kind)
            .and_then(|name| find_resource(&resources, &name)),
    };
    let (ar, caps) =
        found.with_context(|| format!("the server does not serve a kind named '{}'", cmd.kind))?;
    let namespace = match caps.scope {
        Scope::Namespaced => Some(cmd.namespace.clone().unwrap_or(default_ns)),
        Scope::Cluster => None,
    };
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    let shown = match &namespace {
        Some(ns) => format!("{} '{ns}/{}'", ar.kind, cmd.name),
        None => format!("{} '{}'", ar.kind, cmd.name),
    };
    let object = api
        .get_opt(&cmd.name)
        .await
        .with_context(|| format!("failed to get {shown}"))?
        .with_context(|| format!("{shown} not found"))?;
    let Some(discriminator) = object
        .labels()
        .get(DISCRIMINATOR_LABEL)
        .filter(|d| !d.is_empty())
        .cloned()
    else {
        anyhow::bail!("{shown} has no '{DISCRIMINATOR_LABEL}' label: no KluctlDeployment manages it");
    };
    let all: Api<KluctlDeployment> = Api::all(client.clone());
    let deployments = all
        .list(&ListParams::default())
        .await
        .context("failed to list KluctlDeployments")?
        .items;
    let managing = managing(&discriminator, &deployments);
    if managing.is_empty() {
        // Not a KluctlDeployment's: the newest stored result of a CLI command says who deployed it.
        let summaries =
            kluctl_engine::store::list_command_result_summaries(&client, &cmd.command_result_namespace, None)
                .await
                // A store that cannot be read (no permission) is a store without the answer.
                .unwrap_or_default();
        let Some(last) = newest_with(&discriminator, &summaries) else {
            anyhow::bail!(
                "{shown} has discriminator '{discriminator}', but no KluctlDeployment deployed it and \
                 no command result in namespace '{}' has it (its KluctlDeployment is gone, or the \
                 result was not written)",
                cmd.command_result_namespace
            );
        };
        let object = object_section(
            &ar.kind,
            &cmd.name,
            namespace.as_deref(),
            &discriminator,
            "the kluctl CLI",
        );
        print!("{}", render(&[object, command_result_section(last)]));
        return Ok(());
    }
    let mut out = Vec::new();
    for kd in managing {
        let mut sections = vec![
            object_section(
                &ar.kind,
                &cmd.name,
                namespace.as_deref(),
                &discriminator,
                "kluctl-controller",
            ),
            deployment_section(kd),
        ];
        let source = source_of(kd);
        if let Some(s) = inline_source_section(&source) {
            sections.push(s);
        } else if let Source::Ref {
            kind,
            name,
            namespace,
        } = &source
        {
            sections.push(source_ref_section(&client, *kind, name, namespace).await?);
        }
        out.push(render(&sections));
    }
    print!("{}", out.join("\n"));
    Ok(())
}

/// The section of the GitRepository or Bucket a `sourceRef` names (or why it is missing).
async fn source_ref_section(
    client: &kube::Client,
    kind: SourceKind,
    name: &str,
    namespace: &str,
) -> anyhow::Result<Section> {
    let missing = || {
        vec![
            (kind.as_str(), name.to_owned()),
            ("Namespace", namespace.to_owned()),
            ("Status", "Not found".to_owned()),
        ]
    };
    let what = format!("{} '{namespace}/{name}'", kind.as_str());
    Ok(match kind {
        SourceKind::GitRepository => {
            let api: Api<GitRepository> = Api::namespaced(client.clone(), namespace);
            match api
                .get_opt(name)
                .await
                .with_context(|| format!("failed to get {what}"))?
            {
                Some(o) => git_repository_section(&o),
                None => missing(),
            }
        }
        SourceKind::Bucket => {
            let api: Api<Bucket> = Api::namespaced(client.clone(), namespace);
            match api
                .get_opt(name)
                .await
                .with_context(|| format!("failed to get {what}"))?
            {
                Some(o) => bucket_section(&o),
                None => missing(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kd(name: &str, spec: serde_json::Value, status: serde_json::Value) -> KluctlDeployment {
        let mut o = json!({
            "apiVersion": "gitops.kluctl.io/v1beta1",
            "kind": "KluctlDeployment",
            "metadata": {"name": name, "namespace": "flux"},
        });
        o["spec"] = spec;
        o["status"] = status;
        serde_json::from_value(o).unwrap()
    }

    fn ready(message: &str) -> serde_json::Value {
        json!([{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
            "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    }

    #[test]
    fn the_deployment_with_the_objects_discriminator_manages_it() {
        let deployments = vec![
            kd(
                "other",
                json!({"interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "r"}}),
                json!({"targetKey": {"clusterId": "c", "discriminator": "d-other"}}),
            ),
            kd(
                "app",
                json!({"interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "repo"}, "target": "test"}),
                json!({"targetKey": {"clusterId": "c", "discriminator": "d-app"}, "observedCommit": "abc",
                    "conditions": ready("deploy: ok")}),
            ),
            kd("never", json!({"interval": "5m"}), json!({})),
        ];
        let found = managing("d-app", &deployments);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].meta().name.as_deref(), Some("app"));
        assert!(managing("d-none", &deployments).is_empty());
        assert!(
            managing("", &deployments).is_empty(),
            "an empty discriminator matches nothing"
        );
        assert_eq!(
            source_of(found[0]),
            Source::Ref {
                kind: SourceKind::GitRepository,
                name: "repo".into(),
                namespace: "flux".into()
            }
        );
        let section = deployment_section(found[0]);
        assert!(
            section.contains(&("KluctlDeployment", "app".into())),
            "{section:?}"
        );
        assert!(section.contains(&("Target", "test".into())));
        assert!(section.contains(&("Revision", "abc".into())));
        assert!(section.contains(&("Status", "Last reconciled at 2026-01-01T00:00:00Z".into())));
        assert!(section.contains(&("Message", "deploy: ok".into())));
    }

    #[test]
    fn inline_and_cross_namespace_sources_are_described() {
        let git = kd(
            "g",
            json!({"interval": "5m", "source": {"git": {"url": "http://git/p.git",
            "ref": {"branch": "main"}, "path": "deploy"}}}),
            json!({}),
        );
        assert_eq!(
            source_of(&git),
            Source::Git {
                url: "http://git/p.git".into(),
                git_ref: "branch main".into(),
                path: "deploy".into()
            }
        );
        let section = inline_source_section(&source_of(&git)).unwrap();
        assert_eq!(section[1], ("URL", "http://git/p.git".to_owned()));
        let old = kd(
            "u",
            json!({"interval": "5m", "source": {"url": "http://git/q.git", "ref": {"tag": "v1"}}}),
            json!({}),
        );
        assert!(matches!(source_of(&old), Source::Git { git_ref, .. } if git_ref == "tag v1"));
        let cross = kd(
            "x",
            json!({"interval": "5m", "sourceRef": {"kind": "Bucket", "name": "b", "namespace": "src"}}),
            json!({}),
        );
        assert_eq!(
            source_of(&cross),
            Source::Ref {
                kind: SourceKind::Bucket,
                name: "b".into(),
                namespace: "src".into()
            }
        );
        assert!(inline_source_section(&source_of(&cross)).is_none());
    }

    #[test]
    fn sections_are_aligned_and_separated_like_flux_trace() {
        let repo: GitRepository = serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "repo", "namespace": "flux"},
            "spec": {"interval": "1m", "url": "http://git/p.git", "ref": {"branch": "main"}},
            "status": {"artifact": {"revision": "main@sha1:abc", "path": "p", "url": "u",
                "digest": "sha256:x", "lastUpdateTime": "2026-01-01T00:00:00Z"},
                "conditions": ready("stored artifact")},
        }))
        .unwrap();
        let out = render(&[
            object_section("ConfigMap", "app", Some("apps"), "d-app", "kluctl-controller"),
            git_repository_section(&repo),
        ]);
        assert_eq!(
            out,
            "Object:            configmap/app
Namespace:         apps
Discriminator:     d-app
Status:            Managed by kluctl-controller
---
GitRepository:     repo
Namespace:         flux
URL:               http://git/p.git
Branch:            main
Revision:          main@sha1:abc
Status:            Last reconciled at 2026-01-01T00:00:00Z
Message:           stored artifact
"
        );
    }

    #[test]
    fn kinds_resolve_like_kubectl_with_the_core_group_first() {
        let res = |group: &str, kind: &str, plural: &str| {
            (
                ApiResource {
                    group: group.into(),
                    version: "v1".into(),
                    api_version: if group.is_empty() {
                        "v1".into()
                    } else {
                        format!("{group}/v1")
                    },
                    kind: kind.into(),
                    plural: plural.into(),
                },
                ApiCapabilities {
                    scope: Scope::Namespaced,
                    subresources: vec![],
                    operations: vec![],
                },
            )
        };
        let served = vec![
            res("events.k8s.io", "Event", "events"),
            res("", "Event", "events"),
            res("", "ConfigMap", "configmaps"),
            res("apps", "Deployment", "deployments"),
            res("gitops.kluctl.io", "KluctlDeployment", "kluctldeployments"),
        ];
        let kind_of =
            |arg: &str| find_resource(&served, arg).map(|(ar, _)| (ar.group.clone(), ar.kind.clone()));
        assert_eq!(kind_of("configmap"), Some((String::new(), "ConfigMap".into())));
        assert_eq!(kind_of("ConfigMaps"), Some((String::new(), "ConfigMap".into())));
        assert_eq!(kind_of("events"), Some((String::new(), "Event".into())));
        assert_eq!(
            kind_of("events.events.k8s.io"),
            Some(("events.k8s.io".into(), "Event".into()))
        );
        assert_eq!(
            kind_of("deployments.apps"),
            Some(("apps".into(), "Deployment".into()))
        );
        assert_eq!(
            kind_of("kluctldeployment"),
            Some(("gitops.kluctl.io".into(), "KluctlDeployment".into()))
        );
        assert_eq!(kind_of("pods"), None);
    }

    #[test]
    fn an_object_of_the_cli_is_traced_to_its_newest_stored_deploy() {
        let summary = |id: &str, d: &str, command: &str, dry_run: bool| {
            let mut s = CommandResultSummary {
                id: id.into(),
                ..CommandResultSummary::default()
            };
            s.target_key.discriminator = d.into();
            s.target_key.target_name = "prod".into();
            s.command.command = command.into();
            s.command.dry_run = dry_run;
            s.project_key.repo_key = "git.example.com/org/app".into();
            s.git_info.commit = "abc".into();
            s
        };
        // Newest first, as the store lists them.
        let stored = vec![
            summary("diff", "d", "diff", false),
            summary("dry", "d", "deploy", true),
            summary("other", "x", "deploy", false),
            summary("deploy", "d", "deploy", false),
            summary("older", "d", "deploy", false),
        ];
        let last = newest_with("d", &stored).unwrap();
        assert_eq!(last.id, "deploy");
        assert!(newest_with("none", &stored).is_none());
        let section = command_result_section(last);
        assert_eq!(
            section,
            [
                ("Command", "deploy".to_owned()),
                ("Initiator", "kluctl CLI".to_owned()),
                ("Project", "git.example.com/org/app".to_owned()),
                ("Target", "prod".to_owned()),
                ("Revision", "abc".to_owned()),
                ("Result", "deploy".to_owned()),
            ]
        );
    }

    #[test]
    fn short_names_name_their_plural_and_group() {
        let lists: Vec<APIResourceList> = serde_json::from_value(json!([
            {"groupVersion": "v1", "resources": [
                {"name": "configmaps", "singularName": "", "namespaced": true, "kind": "ConfigMap",
                    "verbs": ["get"], "shortNames": ["cm"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            ]},
            {"groupVersion": "gitops.kluctl.io/v1beta1", "resources": [
                {"name": "kluctldeployments", "singularName": "", "namespaced": true,
                    "kind": "KluctlDeployment", "verbs": ["get"], "shortNames": ["kd"]},
            ]},
        ]))
        .unwrap();
        assert_eq!(by_short_name(&lists, "CM").as_deref(), Some("configmaps"));
        assert_eq!(
            by_short_name(&lists, "kd").as_deref(),
            Some("kluctldeployments.gitops.kluctl.io")
        );
        assert_eq!(by_short_name(&lists, "po"), None);
    }
}
