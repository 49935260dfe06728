//! Which KluctlDeployments a `gitops` command works on.
//!
//! ```text
//! --name N          the object N in the namespace (it must exist)
//! -l SELECTOR       the objects matching the label selector in the namespace (at least one)
//! --all             every object in the namespace (at least one)
//! none of these     the objects whose source is the local Git project: the project dir's
//!                   repoKey + subDir (engine::source::git::project_identity) against the
//!                   object's status.projectKey, else the key of spec.source (git url + path)
//! ```
//!
//! The namespace is `-n`, else the kubeconfig context's namespace, else `default`.

use anyhow::Context as _;
use kube::Api;
use kube::api::ListParams;

use crate::flags::gitops::GitopsFlags;
use crate::prepare::project_dir;
use crate::report::Hinted;
use gitops_api::kluctl::results::ProjectKey;
use gitops_api::kluctl::v1beta1::{KluctlDeployment, ProjectSource};
use kluctl_engine::source::git::{project_identity, repo_key};

/// `namespace/name` of an object, for messages.
pub(crate) fn key_of(kd: &KluctlDeployment) -> String {
    format!(
        "{}/{}",
        kd.metadata.namespace.as_deref().unwrap_or_default(),
        kd.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The KluctlDeployments `flags` select in `namespace`.
///
/// # Errors
/// An API error, `--name` not found, or nothing selected (with a hint naming the flags).
pub(crate) async fn select(
    api: &Api<KluctlDeployment>,
    namespace: &str,
    flags: &GitopsFlags,
) -> anyhow::Result<Vec<KluctlDeployment>> {
    if let Some(name) = &flags.name {
        let kd = api
            .get_opt(name)
            .await
            .with_context(|| format!("failed to get KluctlDeployment '{namespace}/{name}'"))?;
        return kd.map(|kd| vec![kd]).ok_or_else(|| {
            Hinted::new(
                anyhow::anyhow!("KluctlDeployment '{namespace}/{name}' not found"),
                "pass -n to choose the namespace",
            )
            .into()
        });
    }
    let list = |selector: Option<&str>| {
        let mut lp = ListParams::default();
        if let Some(s) = selector {
            lp = lp.labels(s);
        }
        async move {
            api.list(&lp)
                .await
                .map(|l| l.items)
                .with_context(|| format!("failed to list KluctlDeployments in namespace '{namespace}'"))
        }
    };
    if let Some(selector) = &flags.label_selector {
        let found = list(Some(selector)).await?;
        if found.is_empty() {
            anyhow::bail!(
                "no KluctlDeployment in namespace '{namespace}' matches the label selector '{selector}'"
            );
        }
        return Ok(found);
    }
    if flags.all {
        let found = list(None).await?;
        if found.is_empty() {
            anyhow::bail!("no KluctlDeployments in namespace '{namespace}'");
        }
        return Ok(found);
    }
    let dir = project_dir(&flags.project)?;
    let (local, _) = project_identity(&dir);
    if local.repo_key.is_empty() {
        return Err(Hinted::new(
            anyhow::anyhow!(
                "failed to find the KluctlDeployments of '{}': it is not in a Git repository with an 'origin' remote",
                dir.display()
            ),
            "pass --name, -l or --all to select KluctlDeployments",
        )
        .into());
    }
    let found: Vec<_> = list(None)
        .await?
        .into_iter()
        .filter(|kd| matches_project(kd, &local))
        .collect();
    if found.is_empty() {
        let sub_dir = if local.sub_dir.is_empty() {
            String::new()
        } else {
            format!(" and sub directory '{}'", local.sub_dir)
        };
        return Err(Hinted::new(
            anyhow::anyhow!(
                "no KluctlDeployment in namespace '{namespace}' deploys repo key '{}'{sub_dir}",
                local.repo_key
            ),
            "pass --name to choose one (and -n for another namespace)",
        )
        .into());
    }
    for kd in &found {
        eprintln!(
            "Auto-detected KluctlDeployment {} via repo key {}",
            key_of(kd),
            local.repo_key
        );
    }
    Ok(found)
}

/// Whether `kd` deploys the project `local` (repo key and sub directory).
pub(crate) fn matches_project(kd: &KluctlDeployment, local: &ProjectKey) -> bool {
    let Some(key) = project_key_of(kd) else {
        return false;
    };
    key.repo_key == local.repo_key && normalize_sub_dir(&key.sub_dir) == normalize_sub_dir(&local.sub_dir)
}

/// The project of `kd`: `status.projectKey` (what the controller saw), else the key of
/// `spec.source` (Git URL or deprecated URL, or OCI URL, plus its path).
pub(crate) fn project_key_of(kd: &KluctlDeployment) -> Option<ProjectKey> {
    if let Some(key) = kd.status.as_ref().and_then(|s| s.project_key.as_ref())
        && !key.repo_key.is_empty()
    {
        return Some(key.clone());
    }
    let source: &ProjectSource = kd.spec.source.as_ref()?;
    let (repo_key, sub_dir) = if let Some(git) = &source.git {
        (repo_key(&git.url)?, git.path.clone())
    } else if let Some(oci) = &source.oci {
        (oci_repo_key(&oci.url)?, oci.path.clone())
    } else {
        (repo_key(source.url.as_deref()?)?, source.path.clone())
    };
    Some(ProjectKey { repo_key, sub_dir })
}

/// `oci://host/path` of an OCI URL (no tag or digest in it, as the spec requires).
fn oci_repo_key(url: &str) -> Option<String> {
    let rest = url.strip_prefix("oci://")?;
    let rest = rest.trim_end_matches('/');
    (!rest.is_empty()).then(|| format!("oci://{rest}"))
}

/// A sub directory as a plain relative path: `./a/b/` and `a/b` are the same, `.` is the root.
fn normalize_sub_dir(s: &str) -> String {
    s.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kd(spec_source: &serde_json::Value, status: Option<serde_json::Value>) -> KluctlDeployment {
        let mut o = json!({
            "apiVersion": "gitops.kluctl.io/v1beta1",
            "kind": "KluctlDeployment",
            "metadata": {"name": "x", "namespace": "ns"},
            "spec": {"interval": "5m", "source": spec_source.clone()},
        });
        if let Some(s) = status {
            o["status"] = s;
        }
        serde_json::from_value(o).unwrap()
    }

    fn local(repo_key: &str, sub_dir: &str) -> ProjectKey {
        ProjectKey {
            repo_key: repo_key.to_owned(),
            sub_dir: sub_dir.to_owned(),
        }
    }

    #[test]
    fn a_git_source_matches_by_repo_key_and_path() {
        let k = kd(
            &json!({"git": {"url": "https://github.com/org/repo.git", "path": "./apps/web/"}}),
            None,
        );
        assert!(matches_project(
            &k,
            &local("git://github.com/org/repo", "apps/web")
        ));
        assert!(!matches_project(&k, &local("git://github.com/org/repo", "")));
        assert!(!matches_project(
            &k,
            &local("git://github.com/org/other", "apps/web")
        ));
        let ssh = kd(&json!({"git": {"url": "git@github.com:org/repo"}}), None);
        assert!(matches_project(&ssh, &local("git://github.com/org/repo", "")));
        let port = kd(&json!({"git": {"url": "http://127.0.0.1:18080/git/r.git"}}), None);
        assert!(matches_project(&port, &local("git://127.0.0.1:18080/git/r", "")));
        assert!(!matches_project(&port, &local("git://127.0.0.1/git/r", "")));
    }

    #[test]
    fn the_status_project_key_wins_over_the_spec() {
        let k = kd(
            &json!({"git": {"url": "https://github.com/org/repo.git"}}),
            Some(json!({"projectKey": {"repoKey": "git://mirror.example.com/org/repo", "subDir": "x"}})),
        );
        assert!(matches_project(
            &k,
            &local("git://mirror.example.com/org/repo", "x")
        ));
        assert!(!matches_project(&k, &local("git://github.com/org/repo", "")));
        let empty = kd(
            &json!({"git": {"url": "https://github.com/org/repo.git"}}),
            Some(json!({"projectKey": {"repoKey": ""}})),
        );
        assert!(matches_project(&empty, &local("git://github.com/org/repo", "")));
    }

    #[test]
    fn deprecated_and_oci_sources_have_keys_too() {
        let old = kd(&json!({"url": "https://h/org/repo", "path": "p"}), None);
        assert_eq!(project_key_of(&old), Some(local("git://h/org/repo", "p")));
        let oci = kd(&json!({"oci": {"url": "oci://registry/org/app/"}}), None);
        assert_eq!(project_key_of(&oci), Some(local("oci://registry/org/app", "")));
        let local_path = kd(&json!({"git": {"url": "/srv/repo"}}), None);
        assert_eq!(project_key_of(&local_path), None);
    }
}
