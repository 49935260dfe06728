//! What `kluctl bootstrap git` writes into the repository (pure: the checkout's current files in,
//! the files to write out).
//!
//! ```text
//! <path>/
//!   .kluctl.yaml          written when missing: the discriminator prune needs
//!   deployment.yaml       written when missing; an existing one gets the `<ns>` item added
//!   <ns>/
//!     components.yaml     the controllers' installation (`kluctl install --export`)
//!     sync.yaml           GitRepository <ns> + KluctlDeployment <ns> over <path>
//!     .templateignore     components.yaml is applied as is, never rendered as a template
//! ```
//!
//! The KluctlDeployment deploys `<path>` as a Kluctl project, so the controllers, the sync itself
//! and whatever else the project holds are managed from Git. It prunes (orphans of its
//! discriminator only) but never deletes on removal: deleting it must not take the controllers
//! with it.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::gitops::request::format_duration;
use kluctl_engine::project::config::parse_kluctl_project;

/// How often the sync KluctlDeployment renders the project (Flux's Kustomization: 10m).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(600);

/// The sync's settings.
#[derive(Debug, Clone)]
pub struct Sync {
    /// The namespace of the controllers; also the name of the GitRepository, the
    /// KluctlDeployment, the credentials Secret and the directory under `path`.
    pub namespace: String,
    /// The repository URL as the GitRepository needs it (ssh:// for SSH).
    pub url: String,
    /// The branch.
    pub branch: String,
    /// The synced directory, normalized (`.` for the root).
    pub path: String,
    /// The GitRepository's interval.
    pub interval: Duration,
    /// The KluctlDeployment's target.
    pub target: Option<String>,
    /// Whether a credentials Secret is referenced.
    pub secret: bool,
}

/// `--path` as the repository and the KluctlDeployment name it: relative, `/`-separated, no
/// `.`/`..` segments; `.` for the root.
///
/// # Errors
/// An absolute path or one with `..`.
pub fn normalize_path(path: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !path.starts_with('/'),
        "invalid --path '{path}': it is a directory of the repository, relative to its root"
    );
    let mut parts = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => anyhow::bail!("invalid --path '{path}': '..' leaves the repository"),
            s => parts.push(s),
        }
    }
    Ok(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

/// `dir` joined under the synced path (the root stays implicit).
pub fn under(path: &str, rel: &str) -> String {
    if path == "." {
        rel.to_owned()
    } else {
        format!("{path}/{rel}")
    }
}

/// The URL the GitRepository uses: scp-like `user@host:path` becomes `ssh://user@host/path`
/// (the form source-controller reads); everything else stays.
pub fn source_url(url: &str) -> String {
    if url.contains("://") {
        return url.to_owned();
    }
    match url.split_once(':') {
        Some((host, path)) if host.contains('@') && !host.contains('/') => {
            format!("ssh://{host}/{}", path.trim_start_matches('/'))
        }
        _ => url.to_owned(),
    }
}

/// The GitRepository and the KluctlDeployment of the sync.
pub fn sync_objects(s: &Sync) -> Vec<Value> {
    let mut repo_spec = json!({
        "interval": format_duration(s.interval),
        "ref": {"branch": s.branch},
        "url": s.url,
    });
    if s.secret {
        repo_spec["secretRef"] = json!({"name": s.namespace});
    }
    let mut kd_spec = json!({
        "interval": format_duration(SYNC_INTERVAL),
        "sourceRef": {"kind": "GitRepository", "name": s.namespace},
        "prune": true,
    });
    if s.path != "." {
        kd_spec["path"] = json!(s.path);
    }
    if let Some(t) = &s.target {
        kd_spec["target"] = json!(t);
    }
    let meta = json!({"name": s.namespace, "namespace": s.namespace});
    vec![
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": meta,
            "spec": repo_spec,
        }),
        json!({
            "apiVersion": "gitops.kluctl.io/v1beta1",
            "kind": "KluctlDeployment",
            "metadata": meta,
            "spec": kd_spec,
        }),
    ]
}

/// `sync.yaml`: a header and the two objects.
///
/// # Errors
/// Not expected (the objects are plain JSON).
pub fn sync_yaml(s: &Sync) -> anyhow::Result<String> {
    let mut out = format!(
        "# The sync of this cluster, written by `kluctl bootstrap git`: source-controller fetches\n\
         # branch {branch} of this repository, kluctl-controller deploys {path} from it (this file\n\
         # and the controllers included) and prunes what is removed from Git.\n",
        branch = s.branch,
        path = if s.path == "." { "its root" } else { &s.path },
    );
    for o in sync_objects(s) {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&o).context("failed to write sync.yaml")?);
    }
    Ok(out)
}

/// The files to write, `(path relative to the repository root, content)`, given the contents of
/// `<path>/deployment.yaml` (or `.yml`) and `<path>/.kluctl.yaml` (or `.yml`) in the checkout.
///
/// # Errors
/// An existing `.kluctl.yaml` that gives the sync no discriminator, or names no such target.
pub fn plan(
    s: &Sync,
    components: &str,
    deployment: Option<(&str, &str)>,
    kluctl_project: Option<(&str, &str)>,
) -> anyhow::Result<Vec<(String, String)>> {
    let ns = &s.namespace;
    let mut files = vec![
        (
            under(&s.path, &format!("{ns}/components.yaml")),
            components.to_owned(),
        ),
        (under(&s.path, &format!("{ns}/sync.yaml")), sync_yaml(s)?),
        (
            under(&s.path, &format!("{ns}/.templateignore")),
            "# The installation manifests are applied as they are, never rendered as templates.\n\
             components.yaml\n"
                .to_owned(),
        ),
    ];
    match deployment {
        None => files.push((
            under(&s.path, "deployment.yaml"),
            format!(
                "# The project this cluster deploys from Git (kluctl bootstrap git): item {ns} holds\n\
                 # the controllers and the sync; add your own items below it.\n\
                 deployments:\n  - path: {ns}\n"
            ),
        )),
        Some((file, text)) => {
            if let Some(new) = with_item(text, ns) {
                files.push((file.to_owned(), new));
            }
        }
    }
    match kluctl_project {
        None => files.push((
            under(&s.path, ".kluctl.yaml"),
            format!(
                "# Every object this project deploys carries this discriminator, so prune deletes\n\
                 # only the project's own orphans.\n\
                 discriminator: kluctl-bootstrap-{ns}\n"
            ),
        )),
        Some((file, text)) => check_discriminator(file, text, s.target.as_deref())?,
    }
    Ok(files)
}

/// `text` (a deployment.yaml) with a `- path: <item>` entry added to `deployments:`, or `None`
/// when it has one. Edited as text so the user's comments and layout stay.
fn with_item(text: &str, item: &str) -> Option<String> {
    let has = text.lines().any(|l| {
        let l = l.trim().trim_start_matches('-').trim();
        l.strip_prefix("path:").is_some_and(|v| {
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            v.trim_start_matches("./").trim_end_matches('/') == item
        })
    });
    if has {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines.iter().position(|l| l.trim_end() == "deployments:") else {
        let mut out = text.to_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let _ = write!(out, "deployments:\n  - path: {item}\n");
        return Some(out);
    };
    // The indentation of the list's first entry, so the new one lines up with it.
    let indent = lines[at + 1..]
        .iter()
        .find(|l| l.trim_start().starts_with("- "))
        .map_or("  ", |l| &l[..l.len() - l.trim_start().len()]);
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(l);
        out.push('\n');
        if i == at {
            let _ = writeln!(out, "{indent}- path: {item}");
        }
    }
    Some(out)
}

/// An existing `.kluctl.yaml` must give the sync a discriminator: the top-level one or the
/// target's. A file that does not parse as plain YAML (a template) is left to the controller.
fn check_discriminator(file: &str, text: &str, target: Option<&str>) -> anyhow::Result<()> {
    let Ok(p) = parse_kluctl_project(text, file) else {
        return Ok(());
    };
    let target_discriminator = match target {
        None => None,
        Some(t) => {
            let found = p.targets.iter().find(|x| x.name == t).with_context(|| {
                format!(
                    "--target '{t}' is not a target of {file} (it has: {})",
                    p.targets
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            Some(found.discriminator.clone())
        }
    };
    let has = !p.discriminator.is_empty() || target_discriminator.is_some_and(|d| !d.is_empty());
    anyhow::ensure!(
        has,
        "{file} sets no discriminator{}: the sync prunes, and pruning needs one; add \
         'discriminator: kluctl-bootstrap-<name>' to {file}",
        target
            .map(|t| format!(" (neither at the top nor in target '{t}')"))
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(path: &str) -> Sync {
        Sync {
            namespace: "kluctl-system".to_owned(),
            url: "https://git.example.com/fleet.git".to_owned(),
            branch: "main".to_owned(),
            path: path.to_owned(),
            interval: Duration::from_secs(60),
            target: None,
            secret: true,
        }
    }

    #[test]
    fn paths_are_normalized_and_must_stay_inside_the_repository() {
        assert_eq!(normalize_path(".").unwrap(), ".");
        assert_eq!(normalize_path("").unwrap(), ".");
        assert_eq!(normalize_path("./clusters//prod/").unwrap(), "clusters/prod");
        assert!(
            normalize_path("/clusters")
                .unwrap_err()
                .to_string()
                .contains("--path")
        );
        assert!(
            normalize_path("a/../../b")
                .unwrap_err()
                .to_string()
                .contains("'..'")
        );
        assert_eq!(under(".", "x/y"), "x/y");
        assert_eq!(under("c/p", "x"), "c/p/x");
    }

    #[test]
    fn scp_like_urls_become_ssh_urls_for_the_git_repository() {
        assert_eq!(
            source_url("git@github.com:org/fleet.git"),
            "ssh://git@github.com/org/fleet.git"
        );
        assert_eq!(source_url("https://h/r.git"), "https://h/r.git");
        assert_eq!(source_url("ssh://git@h:2222/r.git"), "ssh://git@h:2222/r.git");
        assert_eq!(source_url("/srv/git/r.git"), "/srv/git/r.git");
    }

    #[test]
    fn the_sync_is_a_git_repository_and_a_pruning_kluctl_deployment_over_the_path() {
        let objs = sync_objects(&sync("clusters/prod"));
        assert_eq!(objs[0]["kind"], "GitRepository");
        assert_eq!(objs[0]["spec"]["ref"]["branch"], "main");
        assert_eq!(objs[0]["spec"]["interval"], "1m");
        assert_eq!(objs[0]["spec"]["secretRef"]["name"], "kluctl-system");
        assert_eq!(objs[1]["kind"], "KluctlDeployment");
        assert_eq!(objs[1]["spec"]["path"], "clusters/prod");
        assert_eq!(objs[1]["spec"]["prune"], true);
        assert!(
            objs[1]["spec"].get("delete").is_none(),
            "deleting the sync must not delete the controllers"
        );
        let root = sync_objects(&Sync {
            secret: false,
            ..sync(".")
        });
        assert!(root[1]["spec"].get("path").is_none());
        assert!(root[0]["spec"].get("secretRef").is_none());
        let text = sync_yaml(&sync(".")).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(docs.len(), 2, "{text}");
    }

    #[test]
    fn a_fresh_path_gets_a_project_with_the_controllers_item_and_a_discriminator() {
        let files = plan(&sync("clusters/prod"), "# c\n", None, None).unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "clusters/prod/kluctl-system/components.yaml",
                "clusters/prod/kluctl-system/sync.yaml",
                "clusters/prod/kluctl-system/.templateignore",
                "clusters/prod/deployment.yaml",
                "clusters/prod/.kluctl.yaml",
            ]
        );
        let dep = &files[3].1;
        let parsed: Value = serde_saphyr::from_str(dep).unwrap();
        assert_eq!(parsed["deployments"][0]["path"], "kluctl-system");
        assert!(
            files[4]
                .1
                .contains("discriminator: kluctl-bootstrap-kluctl-system")
        );
    }

    #[test]
    fn an_existing_deployment_yaml_gets_the_item_once_and_keeps_its_comments() {
        let text = "# mine\ndeployments:\n    - path: apps   # the apps\n    - include: infra\n";
        let new = with_item(text, "kluctl-system").unwrap();
        assert_eq!(
            new,
            "# mine\ndeployments:\n    - path: kluctl-system\n    - path: apps   # the apps\n    - include: infra\n"
        );
        assert_eq!(with_item(&new, "kluctl-system"), None);
        assert_eq!(
            with_item("deployments:\n- path: './kluctl-system/'\n", "kluctl-system"),
            None
        );
        let none = with_item("vars: []", "kluctl-system").unwrap();
        assert_eq!(none, "vars: []\ndeployments:\n  - path: kluctl-system\n");
    }

    #[test]
    fn an_existing_kluctl_yaml_must_give_a_discriminator() {
        let s = sync(".");
        let dep = Some(("deployment.yaml", "deployments:\n- path: kluctl-system\n"));
        let files = plan(&s, "", dep, Some((".kluctl.yaml", "discriminator: mine\n"))).unwrap();
        assert_eq!(files.len(), 3, "nothing but the item's files: {files:?}");
        let e = plan(&s, "", dep, Some((".kluctl.yaml", "targets: [{name: prod}]\n"))).unwrap_err();
        assert!(
            e.to_string().contains(".kluctl.yaml sets no discriminator"),
            "{e}"
        );
        let with_target = Sync {
            target: Some("prod".to_owned()),
            ..sync(".")
        };
        let ok = ".kluctl.yaml";
        plan(
            &with_target,
            "",
            dep,
            Some((ok, "targets: [{name: prod, discriminator: p}]\n")),
        )
        .unwrap();
        let e = plan(&with_target, "", dep, Some((ok, "targets: [{name: test}]\n"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("--target 'prod' is not a target of .kluctl.yaml"),
            "{e}"
        );
    }
}
