//! `kluctl bootstrap git` against the real apiserver and the local git server, with both
//! controllers running as processes that watch the test's namespace (no kubelet here, so the
//! bootstrap leaves the controller Deployments out, as `make run` does).
//!
//! - the happy path: a repository with a project under `clusters/test`, bootstrapped over HTTP
//!   with basic auth; the files land in Git (the password never does), the Secret in the
//!   cluster, and the sync deploys the components, itself and the user's items; a push is
//!   applied; a second run changes nothing; another `--path` is refused.
//! - refusals before anything changes: wrong credentials name `--username/--password`, a
//!   protected branch (a pre-receive hook that declines) names `--branch`, and the namespace is
//!   never created.
//!
//! Needs the `kluctl`, `source-controller` and `kluctl-controller` debug binaries and the
//! environment of `make e2e-up`.

// Each test is one story told start to finish; splitting it would hide the order that matters.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use e2e::{
    DeleteOnDrop, Env, GitRepo, KluctlController, SourceController, TestNs, git, installation_guards,
    poll_until, run_kluctl,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::Api;

const WAIT: Duration = Duration::from_secs(120);

/// `kluctl bootstrap git` with the test's flags (password through KLUCTL_PASSWORD, never argv).
fn bootstrap(
    ns: &str,
    url: &str,
    path: &str,
    password: Option<&str>,
    extra: &[&str],
) -> anyhow::Result<(bool, String, String)> {
    let mut args = vec![
        "bootstrap",
        "git",
        "-n",
        ns,
        "--url",
        url,
        "--path",
        path,
        "--interval",
        "2s",
        "--watch-all-namespaces=false",
        "--without-controller-deployments",
        "--timeout",
        "3m",
    ];
    args.extend_from_slice(extra);
    let vars: Vec<(&str, &str)> = password.map(|p| ("KLUCTL_PASSWORD", p)).into_iter().collect();
    let out = run_kluctl(Path::new("."), &args, &vars)?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn bare(env: &Env, repo: &GitRepo) -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(env.get("E2E_GIT_REPOS")?).join(format!("{}.git", repo.name)))
}

fn branch_head(env: &Env, repo: &GitRepo) -> anyhow::Result<String> {
    git(&bare(env, repo)?, &["rev-parse", "main"])
}

#[tokio::test]
async fn bootstrap_pushes_installs_and_the_cluster_deploys_itself_from_git() -> anyhow::Result<()> {
    TestNs::run("bootstrap_git", |t| async move {
        let ns = t.name.clone();
        let _guards = installation_guards(&t.env, &ns);
        let repo = GitRepo::create(&t.env, &format!("bootstrap-{ns}"))?;
        repo.commit(
            &[
                (
                    "clusters/test/deployment.yaml",
                    "# the cluster's project\ndeployments:\n  - path: app\n",
                ),
                (
                    "clusters/test/app/configmap.yaml",
                    &format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: {ns}\ndata:\n  message: hello\n"
                    ),
                ),
            ],
            "the cluster's project",
        )?;
        let user = t.env.get("E2E_GIT_USERNAME")?.to_owned();
        let password = t.env.get("E2E_GIT_PASSWORD")?.to_owned();
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_AUTH_URL")?, repo.name);
        let _source = SourceController::start(&t.env, &ns, &["--watch-all-namespaces=false", "--runtime-namespace", &ns])?;
        let kluctl_ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;

        let (ok, out, err) = bootstrap(&ns, &url, "clusters/test", Some(&password), &["-u", &user])?;
        anyhow::ensure!(
            ok,
            "bootstrap failed:\n{out}\n{err}\ncontroller log:\n{}",
            kluctl_ctl.log_tail(40)
        );
        assert!(out.contains("bootstrap finished"), "{out}");
        let head = branch_head(&t.env, &repo)?;

        // Git: the item with components and sync, the project files; never the password.
        let files = repo_files(&t.env, &repo)?;
        for f in [
            format!("clusters/test/{ns}/components.yaml"),
            format!("clusters/test/{ns}/sync.yaml"),
            "clusters/test/.kluctl.yaml".to_owned(),
        ] {
            assert!(files.contains(&f), "{f} not pushed: {files:?}");
        }
        let deployment = git(&bare(&t.env, &repo)?, &["show", "main:clusters/test/deployment.yaml"])?;
        assert!(deployment.contains(&format!("- path: {ns}")) && deployment.contains("- path: app"), "{deployment}");
        assert!(deployment.starts_with("# the cluster's project"), "the user's comment stays: {deployment}");
        let history = git(&bare(&t.env, &repo)?, &["log", "-p", "main"])?;
        assert!(!history.contains(&password), "the password is in the repository's history");
        let sync = git(&bare(&t.env, &repo)?, &["show", &format!("main:clusters/test/{ns}/sync.yaml")])?;
        assert!(sync.contains("path: clusters/test") && sync.contains("prune: true"), "{sync}");

        // Cluster: the Secret holds the credentials; the sync deployed the components (a
        // ServiceAccount of components.yaml), the user's item, with the bootstrap discriminator.
        let secret = Api::<Secret>::namespaced(t.client.clone(), &ns).get(&ns).await?;
        let data = secret.data.unwrap_or_default();
        assert_eq!(data.get("username").map(|b| b.0.as_slice()), Some(user.as_bytes()));
        assert_eq!(data.get("password").map(|b| b.0.as_slice()), Some(password.as_bytes()));
        let discriminator = format!("kluctl-bootstrap-{ns}");
        let sa = Api::<ServiceAccount>::namespaced(t.client.clone(), &ns).get("kluctl-controller").await?;
        assert_eq!(
            sa.metadata.labels.unwrap_or_default().get("kluctl.io/discriminator"),
            Some(&discriminator),
            "the components are deployed by the sync"
        );
        let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
        let cm = cms.get("greeting").await?;
        assert_eq!(cm.metadata.labels.unwrap_or_default().get("kluctl.io/discriminator"), Some(&discriminator));

        // A push to the synced path is applied.
        repo.pull()?;
        repo.commit(
            &[(
                "clusters/test/app/configmap.yaml",
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: {ns}\ndata:\n  message: hi\n"
                ),
            )],
            "new greeting",
        )?;
        poll_until("the pushed greeting", WAIT, || async {
            cms.get("greeting")
                .await
                .ok()
                .and_then(|c| c.data)
                .is_some_and(|d| d.get("message").map(String::as_str) == Some("hi"))
        })
        .await?;

        // A second run is idempotent: no commit, Ready again.
        let before = branch_head(&t.env, &repo)?;
        assert_ne!(before, head);
        let (ok, out, err) = bootstrap(&ns, &url, "clusters/test", Some(&password), &["-u", &user])?;
        anyhow::ensure!(ok, "second bootstrap failed:\n{out}\n{err}");
        assert!(out.contains("already holds these manifests"), "{out}");
        assert_eq!(branch_head(&t.env, &repo)?, before, "a second run must not commit");

        // Another path is refused before anything changes.
        let (ok, out, err) = bootstrap(&ns, &url, "clusters/other", Some(&password), &["-u", &user])?;
        assert!(!ok, "another --path must be refused:\n{out}");
        assert!(
            err.contains("already syncs path 'clusters/test'") && err.contains("--path 'clusters/other'"),
            "{err}"
        );
        assert_eq!(branch_head(&t.env, &repo)?, before, "a refused bootstrap must not push");
        Ok(())
    })
    .await
}

/// Every file of the branch.
fn repo_files(env: &Env, repo: &GitRepo) -> anyhow::Result<Vec<String>> {
    Ok(git(&bare(env, repo)?, &["ls-tree", "-r", "--name-only", "main"])?
        .lines()
        .map(str::to_owned)
        .collect())
}

#[tokio::test]
async fn bootstrap_refuses_bad_credentials_and_a_protected_branch_before_changing_anything()
-> anyhow::Result<()> {
    let env = Env::load()?;
    let client = env.admin_client().await?;
    let ns = e2e::unique_name("e2e-bootstrap-refused");
    let _ns_guard = DeleteOnDrop::namespace(&env, &ns);
    let _guards = installation_guards(&env, &ns);
    let repo = GitRepo::create(&env, &ns)?;
    repo.commit(&[("clusters/x/deployment.yaml", "deployments: []\n")], "start")?;
    let before = branch_head(&env, &repo)?;
    let user = env.get("E2E_GIT_USERNAME")?.to_owned();
    let url = format!("{}/{}.git", env.get("E2E_GIT_HTTP_AUTH_URL")?, repo.name);

    // Wrong password: the flags to fix are named; the wrong password itself is not printed.
    let (ok, out, err) = bootstrap(&ns, &url, "clusters/x", Some("not-the-password"), &["-u", &user])?;
    assert!(!ok, "{out}");
    assert!(err.contains("--username/--password"), "{err}");
    assert!(
        !err.contains("not-the-password") && !out.contains("not-the-password"),
        "{err}"
    );

    // A branch protected by the server: the push is declined, --branch is named.
    let hook = bare(&env, &repo)?.join("hooks/pre-receive");
    fs_err::write(
        &hook,
        "#!/bin/sh\necho 'main is a protected branch' >&2\nexit 1\n",
    )?;
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let password = env.get("E2E_GIT_PASSWORD")?.to_owned();
    let (ok, out, err) = bootstrap(&ns, &url, "clusters/x", Some(&password), &["-u", &user])?;
    assert!(!ok, "{out}");
    assert!(
        err.contains("--branch main") && err.contains("protected"),
        "{err}"
    );
    assert!(err.contains("Nothing was changed in the cluster"), "{err}");
    assert_eq!(branch_head(&env, &repo)?, before);

    // Nothing reached the cluster.
    let namespaces: Api<Namespace> = Api::all(client);
    assert!(
        namespaces
            .get_opt(&ns)
            .await
            .context("reading the namespace")?
            .is_none(),
        "a refused bootstrap created namespace {ns}"
    );
    Ok(())
}

#[tokio::test]
async fn components_only_over_ssh_pushes_and_installs_the_components_without_a_sync() -> anyhow::Result<()> {
    TestNs::run("bootstrap_components", |t| async move {
        let ns = t.name.clone();
        let _guards = installation_guards(&t.env, &ns);
        let repo = GitRepo::create(&t.env, &format!("bootstrap-{ns}"))?;
        repo.commit(&[("README.md", "fleet\n")], "start")?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_SSH_URL")?, repo.name);
        let identity = t.env.get("E2E_SSH_IDENTITY")?.to_owned();
        // No --known-hosts-file: the host keys come from ssh-keyscan.
        let (ok, out, err) = bootstrap(
            &ns,
            &url,
            "clusters/c1",
            None,
            &["--components-only", "--private-key-file", &identity],
        )?;
        anyhow::ensure!(ok, "bootstrap --components-only failed:\n{out}\n{err}");
        assert!(out.contains("--components-only: no sync"), "{out}");
        let files = repo_files(&t.env, &repo)?;
        assert!(
            files.contains(&format!("clusters/c1/{ns}/components.yaml")),
            "{files:?}"
        );
        assert!(
            !files
                .iter()
                .any(|f| f.ends_with("sync.yaml") || f.ends_with("deployment.yaml")),
            "no sync with --components-only: {files:?}"
        );
        let history = git(&bare(&t.env, &repo)?, &["log", "-p", "main"])?;
        assert!(
            !history.contains("PRIVATE KEY"),
            "the SSH key is in the repository"
        );
        Api::<ServiceAccount>::namespaced(t.client.clone(), &ns)
            .get("kluctl-controller")
            .await
            .context("the components were not applied")?;
        assert!(
            Api::<Secret>::namespaced(t.client.clone(), &ns)
                .get_opt(&ns)
                .await?
                .is_none(),
            "no credentials Secret without a sync"
        );
        Ok(())
    })
    .await
}
