//! Every manifest of the seed documents applies unchanged with server-side apply and reads back
//! with the same fields (the apiserver may add defaults, nothing may be lost or changed).

use e2e::{Env, api_for, contains_fields, ensure_namespace, parse_manifest, project_root};
use kube::api::{DeleteParams, Patch, PatchParams};

#[tokio::test]
async fn seed_manifests_apply_unchanged_and_read_back() -> anyhow::Result<()> {
    let env = Env::load()?;
    let client = env.admin_client().await?;
    let dir = project_root().join("e2e/fixtures/seeds");
    let mut files: Vec<_> = fs_err::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9, "seed manifests in {}", dir.display());
    for file in &files {
        let yaml = fs_err::read_to_string(file)?;
        let obj = parse_manifest(&yaml)?;
        let name = obj.metadata.name.clone().unwrap_or_default();
        if let Some(ns) = &obj.metadata.namespace {
            ensure_namespace(&client, ns).await?;
        }
        let api = api_for(&client, &obj).await?;
        let applied = api
            .patch(&name, &PatchParams::apply("e2e-seeds"), &Patch::Apply(&obj))
            .await
            .map_err(|e| anyhow::anyhow!("{}: server-side apply failed: {e}", file.display()))?;
        let read = api.get(&name).await?;
        let want = serde_json::to_value(&obj)?;
        let got = serde_json::to_value(&read)?;
        contains_fields(&want["spec"], &got["spec"], "spec")
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        assert_eq!(applied.metadata.uid, read.metadata.uid);
        println!(
            "e2e: seed {} applied and read back ({} {})",
            file.file_name().unwrap_or_default().to_string_lossy(),
            got["apiVersion"],
            name
        );
        api.delete(&name, &DeleteParams::default()).await?;
    }
    Ok(())
}
