//! The environment itself: a real kube-apiserver answers, and the test servers later issues use
//! are up and behave (auth accepted, wrong credentials and unknown host keys refused).

use e2e::{Env, project_root};

#[tokio::test]
async fn apiserver_is_real_and_reports_its_version() -> anyhow::Result<()> {
    let env = Env::load()?;
    let client = env.admin_client().await?;
    let version = client.apiserver_version().await?;
    println!(
        "e2e: kube-apiserver {} ({}, built {}) at {}; CRDs with CEL enforced: {}",
        version.git_version,
        version.platform,
        version.build_date,
        env.get("E2E_APISERVER_URL")?,
        if env.cel_enforced() {
            "yes (apiextensions-apiserver v1.36 aggregated)"
        } else {
            "no (CEL rules removed)"
        }
    );
    assert_eq!(version.major, "1");
    assert!(version.git_version.starts_with("v1."), "{}", version.git_version);
    assert_eq!(
        env.get("E2E_KUBE_VERSION")?,
        version.git_version,
        "env file and server agree"
    );
    Ok(())
}

#[tokio::test]
async fn non_admin_identity_is_denied_by_rbac() -> anyhow::Result<()> {
    let env = Env::load()?;
    let dev = env.dev_client().await?;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(dev, "default");
    match secrets.list(&kube::api::ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => anyhow::bail!("dev-user listed secrets: {other:?}"),
    }
    Ok(())
}

#[test]
fn test_servers_accept_good_and_refuse_bad_credentials() -> anyhow::Result<()> {
    let script = project_root().join("e2e/scripts/servers.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("check")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "servers.sh check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count() >= 8,
        "expected at least 8 checks"
    );
    assert!(!stdout.lines().any(|l| l.starts_with("FAIL")));
    Ok(())
}
