//! `config/rbac/`: each controller's ServiceAccount can do what it needs and nothing more.
//! Shown by impersonating the ServiceAccount against the real apiserver.

use e2e::{Env, project_root};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, ListParams, PostParams};

fn forbidden<T>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(e)) if e.code == 403)
}

fn apply_rbac(env: &Env) -> anyhow::Result<()> {
    let dir = project_root().join("config/rbac");
    for f in [
        "namespaces.yaml",
        "source-controller.yaml",
        "kluctl-controller.yaml",
    ] {
        let path = dir.join(f);
        env.kubectl(&[
            "apply",
            "--server-side",
            // `make run` applies the same files as manager `kubectl`: these are the files to test.
            "--force-conflicts",
            "--field-manager",
            "e2e-rbac",
            "-f",
            &path.to_string_lossy(),
        ])?;
    }
    Ok(())
}

async fn list_kind(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    ns: &str,
) -> Result<(), kube::Error> {
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let (ar, _) = kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    api.list(&ListParams::default()).await.map(|_| ())
}

#[tokio::test]
async fn source_controller_reads_sources_but_cannot_write_secrets() -> anyhow::Result<()> {
    let env = Env::load()?;
    apply_rbac(&env)?;
    let sa = env
        .impersonating_client("system:serviceaccount:flux-system:source-controller")
        .await?;
    list_kind(&sa, "source.toolkit.fluxcd.io", "v1", "GitRepository", "default").await?;
    list_kind(&sa, "source.toolkit.fluxcd.io", "v1", "Bucket", "default").await?;
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "default");
    secrets.list(&ListParams::default()).await?;
    let mut s = Secret::default();
    s.metadata.name = Some("should-not-exist".into());
    assert!(
        forbidden(&secrets.create(&PostParams::default(), &s).await),
        "source-controller may create secrets"
    );
    assert!(
        forbidden(&list_kind(&sa, "gitops.kluctl.io", "v1beta1", "KluctlDeployment", "default").await),
        "source-controller may list KluctlDeployments"
    );
    Ok(())
}

#[tokio::test]
async fn kluctl_controller_reads_deployments_but_cannot_apply_workloads_itself() -> anyhow::Result<()> {
    let env = Env::load()?;
    apply_rbac(&env)?;
    let sa = env
        .impersonating_client("system:serviceaccount:kluctl-system:kluctl-controller")
        .await?;
    list_kind(&sa, "gitops.kluctl.io", "v1beta1", "KluctlDeployment", "default").await?;
    list_kind(&sa, "flux.kluctl.io", "v1alpha1", "KluctlDeployment", "default").await?;
    list_kind(&sa, "source.toolkit.fluxcd.io", "v1", "GitRepository", "default").await?;
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("should-not-exist".into());
    assert!(
        forbidden(&cms.create(&PostParams::default(), &cm).await),
        "kluctl-controller may create configmaps as itself"
    );
    // Its results store is the one namespace where it writes Secrets.
    let results: Api<Secret> = Api::namespaced(sa.clone(), "kluctl-results");
    results.list(&ListParams::default()).await?;
    let other: Api<Secret> = Api::namespaced(sa, "default");
    let mut s = Secret::default();
    s.metadata.name = Some("should-not-exist".into());
    assert!(
        forbidden(&other.create(&PostParams::default(), &s).await),
        "kluctl-controller may create secrets outside kluctl-results"
    );
    Ok(())
}
