//! kluctl-controller's artifact fetch (`kluctl_controller::source::artifact`) against our
//! source-controller: the artifact of a GitRepository on the real git HTTP server unpacks to the
//! repository's files; a tampered digest, a missing file and the host override behave as Flux
//! consumers expect.

use anyhow::Context as _;
use e2e::source::{apply, artifact, ready_is};
use e2e::{GitRepo, SourceController, TestNs, wait_for};
use gitops_api::source::v1::GitRepository;
use kluctl_controller::source::artifact::{ArtifactError, FetchOptions, fetch};
use kube::api::Api;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// Regular files under `root` (relative, sorted) with their contents.
fn tree(root: &Path) -> anyhow::Result<Vec<(String, String)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
        for entry in fs_err::read_dir(dir)? {
            let path = entry?.path();
            if fs_err::symlink_metadata(&path)?.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                out.push((rel, fs_err::read_to_string(&path)?));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn gitrepository_artifact_unpacks_to_the_repository_files_and_a_tampered_digest_is_refused()
-> anyhow::Result<()> {
    TestNs::run("kluctl_artifact", |t| async move {
        let files = [
            (".kluctl.yaml", "targets:\n  - name: test\n"),
            ("deployment.yaml", "deployments:\n  - path: app\n"),
            ("app/configmap.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n"),
            ("app/nested/values.yaml", "replicas: 2\n"),
        ];
        let repo = GitRepo::create(&t.env, &t.name)?;
        let sha = repo.commit(&files, "kluctl project")?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<GitRepository> = Api::namespaced(t.client.clone(), &t.name);
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        apply(
            &api,
            &json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "project", "namespace": t.name, "labels": {"e2e.kluctl-gitops/ns": t.name}},
                "spec": {"interval": "10m", "url": url, "ref": {"branch": "main"}},
            }),
        )
        .await?;
        let obj = wait_for(&api, "project", "Ready=True", WAIT, ready_is("True"))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\n--- controller log:\n{}", ctl.log_tail(30)))?;
        let published = artifact(&obj).context("GitRepository 'project' has no status.artifact")?;
        assert_eq!(published.revision, format!("main@sha1:{sha}"));

        let work = tempfile::tempdir()?;
        let options = FetchOptions::default();

        // The artifact unpacks to exactly the committed files.
        let dest = work.path().join("source");
        let fetched = fetch(&published, &dest, &options).await?;
        assert_eq!(fetched.revision, published.revision);
        assert_eq!(fetched.digest, published.digest);
        assert_eq!(Some(fetched.archive_bytes), published.size.and_then(|s| u64::try_from(s).ok()));
        let committed = repo.ls_tree("HEAD")?;
        let want: Vec<(String, String)> = {
            let mut want: Vec<_> = files.iter().map(|(p, c)| ((*p).to_string(), (*c).to_string())).collect();
            want.sort();
            want
        };
        assert_eq!(
            want.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            committed,
            "the test's file list is the repository's"
        );
        assert_eq!(tree(&dest)?, want);
        assert_eq!(fetched.files, files.len());

        // A tampered digest is refused and leaves no destination.
        let mut tampered = published.clone();
        let last = if tampered.digest.ends_with('0') { '1' } else { '0' };
        tampered.digest.pop();
        tampered.digest.push(last);
        let refused = work.path().join("tampered");
        let err = fetch(&tampered, &refused, &options).await.expect_err("tampered digest accepted");
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err:?}");
        assert_eq!(err.reason(), "ArtifactFailed");
        assert!(!refused.exists(), "a refused artifact left {}", refused.display());

        // With the in-cluster host of a Flux install in the URL, the override reaches the server.
        let mut in_cluster = published.clone();
        in_cluster.url = format!(
            "http://source-controller.flux-system.svc.cluster.local./{}",
            published.path
        );
        let overridden = FetchOptions {
            localhost_override: Some(ctl.storage_addr()?),
            ..FetchOptions::default()
        };
        let fetched = fetch(&in_cluster, &work.path().join("overridden"), &overridden).await?;
        assert_eq!(fetched.files, files.len());

        // A file the server does not have is NotFound, not a broken artifact.
        let mut missing = published.clone();
        missing.url = format!("{}.gone", published.url);
        let err = fetch(&missing, &work.path().join("missing"), &options)
            .await
            .expect_err("missing artifact fetched");
        assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
        Ok(())
    })
    .await
}
