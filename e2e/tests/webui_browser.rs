//! The web UI in a real browser (headless Chromium through ChromeDriver) against the real
//! control plane, the kluctl-controller and `kluctl webui run` (the built CLI, as a user starts
//! it): a deployment appears, a push shows a new result without a reload, a drift made behind the
//! controller's back shows as pending changes, the deployment page shows the controller's log
//! lines of that deployment (`--controller-log-file`), suspend shows and takes effect, and the
//! approve button deploys a manual deployment. Screenshots of the overview, a deployment page (and
//! its log panel) and a result page go to `target/webui-screenshots/`.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p kluctl --bin kluctl`, the
//! environment of `make e2e-up`, and Debian's chromium + chromium-driver (installed by it).

// One scenario told start to finish.
#![allow(clippy::too_many_lines)]

use std::ffi::OsStr;
use std::time::Duration;

use e2e::browser::Browser;
use e2e::kluctl_deployment as kd;
use e2e::webui::Webui;
use e2e::{GitRepo, KluctlController, TestNs, log_value, project_root};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::{Value, json};

/// A project of one ConfigMap `<name>` in the test's namespace with `data.message`.
fn project(name: &str, message: &str) -> Vec<(String, String)> {
    vec![
        (
            ".kluctl.yaml".to_owned(),
            format!(
                "discriminator: webui-{name}-{{{{ args.ns }}}}\nargs:\n  - name: ns\ntargets:\n  - name: test\n"
            ),
        ),
        (
            "deployment.yaml".to_owned(),
            "deployments:\n  - path: app\n".to_owned(),
        ),
        (
            "app/configmap.yaml".to_owned(),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: \"{{{{ args.ns }}}}\"\ndata:\n  message: {message}\n"
            ),
        ),
    ]
}

fn push(repo: &GitRepo, files: &[(String, String)], message: &str) -> anyhow::Result<String> {
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    repo.commit(&files, message)
}

async fn message(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|cm| cm.data.and_then(|d| d.get("message").cloned())))
}

/// The ids of the history on the open deployment page.
const HISTORY_IDS: &str =
    "return [...document.querySelectorAll('[data-testid=history] li')].map(li => li.dataset.resultId)";

#[tokio::test]
async fn the_ui_shows_deployments_live_and_its_buttons_act() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("webui_browser", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let shots = project_root().join("target/webui-screenshots");
            let git = t.env.get("E2E_GIT_HTTP_URL")?.to_owned();
            let app_repo = GitRepo::create(&t.env, &format!("{ns}-app"))?;
            push(&app_repo, &project("app", "one"), "one")?;
            let gated_repo = GitRepo::create(&t.env, &format!("{ns}-gated"))?;
            push(&gated_repo, &project("gated", "approved"), "gated")?;
            let mut ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            let spec = |repo: &GitRepo, extra: Value| {
                let mut s = json!({
                    "interval": "5s",
                    "source": {"git": {"url": format!("{git}/{}.git", repo.name), "ref": {"branch": "main"}}},
                    "target": "test",
                    "args": {"ns": ns},
                });
                if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
                    s.extend(e.clone());
                }
                s
            };
            kd::apply(&api, "app", spec(&app_repo, json!({}))).await?;
            kd::apply(&api, "gated", spec(&gated_repo, json!({"manual": true}))).await?;

            let webui = Webui::start([
                OsStr::new("--command-result-namespace"),
                OsStr::new(&t.name),
                OsStr::new("--kubeconfig"),
                OsStr::new(t.env.get("E2E_KUBECONFIG_ADMIN")?),
                OsStr::new("--controller-log-file"),
                ctl.log_file.as_os_str(),
            ])?;
            let browser = Browser::start(1400, 900).await?;
            browser.goto(&webui.url).await?;

            // 1. The deployment appears on the overview, Ready.
            let row = format!("[data-testid=deployment-row][data-key=\"{ns}/app\"][data-ready=True]");
            browser
                .wait_for("app Ready on the overview", "return document.querySelector(arguments[0]) !== null", &[json!(row)])
                .await?;
            browser
                .wait_for(
                    "gated awaiting approval",
                    "const r = document.querySelector(arguments[0]); return r && r.querySelector('[data-testid=pending-approval]') !== null",
                    &[json!(format!("[data-testid=deployment-row][data-key=\"{ns}/gated\"]"))],
                )
                .await?;
            let overview = browser.screenshot(&shots.join("overview.png")).await?;
            eprintln!("screenshot: {}", overview.display());

            // 2. A push shows a new result on the open page, without a reload.
            browser.goto(&format!("{}#/d/{ns}/app", webui.url)).await?;
            browser.eval("window.__notReloaded = true; return true", &[]).await?;
            let before = browser
                .wait_for("the first deploy in the history", &format!("const ids = (() => {{ {HISTORY_IDS} }})(); return ids.length ? ids : null"), &[])
                .await?;
            let before: Vec<String> = serde_json::from_value(before)?;
            push(&app_repo, &project("app", "two"), "two")?;
            browser
                .wait_for(
                    "a new deploy result after the push",
                    &format!(
                        "const ids = (() => {{ {HISTORY_IDS} }})(); return ids.some(id => !arguments[0].includes(id)) && document.querySelector('[data-testid=history] li[data-command=deploy]') !== null"
                    ),
                    &[json!(before)],
                )
                .await?;
            assert_eq!(message(&t.client, &ns, "app").await?.as_deref(), Some("two"));

            // The page's log panel shows the controller's lines of app (every full reconcile logs
            // "Reconciliation finished"), not those of gated (which awaits approval).
            let panel = browser
                .wait_for(
                    "a reconcile of app in the controller log panel",
                    "const p = document.querySelector('[data-testid=controller-logs]'); return p && p.innerText.includes('Reconciliation finished') ? p.innerText : null",
                    &[],
                )
                .await?;
            let panel = panel.as_str().unwrap_or_default();
            assert!(!panel.contains("awaits manual approval"), "gated's lines on app's page:\n{panel}");
            browser
                .eval("document.querySelector('[data-testid=controller-logs]').scrollIntoView(); return true", &[])
                .await?;
            let logs = browser.screenshot(&shots.join("deployment-logs.png")).await?;
            eprintln!("screenshot: {}", logs.display());

            // 3. A change made with kubectl behind the controller's back shows as drift.
            t.env.kubectl(&["-n", &ns, "patch", "configmap", "app", "--type=merge", "-p", r#"{"data":{"message":"drifted"}}"#])?;
            browser
                .wait_for(
                    "the drift with its pending change",
                    "const d = document.querySelector('[data-testid=drift]'); return d && d.innerText.includes('differ') && d.innerText.includes('drifted')",
                    &[],
                )
                .await?;
            let page = browser.screenshot(&shots.join("deployment.png")).await?;
            eprintln!("screenshot: {}", page.display());

            // 4. Suspend: the badge shows, and the controller stops deploying.
            browser.click("the suspend button", "[data-action=suspend]").await?;
            browser
                .wait_for("the suspended badge", "return document.querySelector('h1 [data-testid=suspended]') !== null", &[])
                .await?;
            let suspended = kd::wait(&api, &ctl, "app", "suspended and observed", |k| k.spec.suspend && kd::reconciled(k)).await?;
            let name_is_app = |l: &Value| {
                (log_value(l, "msg").as_deref() == Some("suspended: nothing deployed")
                    && log_value(l, "name").as_deref() == Some("app"))
                .then_some(())
            };
            ctl.wait_for_log("a suspended reconcile of app", Duration::from_secs(60), name_is_app)?;
            assert!(suspended.spec.suspend);
            browser
                .wait_for("the resume button", "return document.querySelector('[data-action=resume]') !== null", &[])
                .await?;

            // 5. The approve button deploys the manual deployment.
            assert_eq!(message(&t.client, &ns, "gated").await?, None, "not approved: nothing applied");
            browser.goto(&format!("{}#/d/{ns}/gated", webui.url)).await?;
            browser.click("the approve button", "[data-action=approve]").await?;
            kd::wait(&api, &ctl, "gated", "the approved deploy", |k| kd::deploy_id(k).is_some()).await?;
            assert_eq!(message(&t.client, &ns, "gated").await?.as_deref(), Some("approved"));
            browser
                .wait_for("the approval badge gone", "return document.querySelector('h1 [data-testid=pending-approval]') === null && document.querySelector('[data-testid=history] li') !== null", &[])
                .await?;

            // 6. A result page: the object tree with its diff.
            browser.goto(&format!("{}#/d/{ns}/app", webui.url)).await?;
            browser
                .wait_for(
                    "app's page",
                    "const h = document.querySelector('h1'); return h && h.innerText.includes(arguments[0])",
                    &[json!(format!("{ns}/app"))],
                )
                .await?;
            browser.click("the newest deploy result", "[data-testid=history] li[data-command=deploy] a").await?;
            browser
                .wait_for(
                    "the result's changed object with its diff",
                    "const o = document.querySelector('[data-testid=result-object]'); return o && o.innerText.includes('data.message') && o.innerText.includes('+two')",
                    &[],
                )
                .await?;
            let result = browser.screenshot(&shots.join("result.png")).await?;
            eprintln!("screenshot: {}", result.display());
            assert_eq!(
                browser.eval("return window.__notReloaded === true", &[]).await?,
                json!(true),
                "the page was never reloaded"
            );

            // 7. One server for two contexts (two names for this cluster): a section per
            // cluster, and a deployment of the second opens its own page.
            let dir = tempfile::tempdir()?;
            let kubeconfig = e2e::webui::two_context_kubeconfig(
                std::path::Path::new(t.env.get("E2E_KUBECONFIG_ADMIN")?),
                dir.path(),
            )?;
            let both = Webui::start([
                OsStr::new("--all-contexts"),
                OsStr::new("--kubeconfig"),
                kubeconfig.as_os_str(),
                OsStr::new("--command-result-namespace"),
                OsStr::new(&t.name),
                OsStr::new("--controller-log-file"),
                ctl.log_file.as_os_str(),
            ])?;
            browser.goto(&both.url).await?;
            let row_b = format!("section[data-cluster=\"ctx-b\"] [data-testid=deployment-row][data-key=\"{ns}/app\"]");
            browser
                .wait_for(
                    "both clusters' sections with app",
                    "return document.querySelectorAll('section[data-testid=cluster]').length === 2 && document.querySelector(arguments[0]) !== null",
                    &[json!(row_b)],
                )
                .await?;
            let clusters = browser.screenshot(&shots.join("clusters.png")).await?;
            eprintln!("screenshot: {}", clusters.display());
            browser.click("app of ctx-b", &format!("{row_b} td:nth-child(2) a")).await?;
            browser
                .wait_for(
                    "app's page in ctx-b with its history",
                    "const h = document.querySelector('h1'); return location.hash.startsWith('#/c/ctx-b/d/') && h && h.innerText.includes('ctx-b') && document.querySelector('[data-testid=history] li') !== null",
                    &[],
                )
                .await?;
            Ok(())
        })
    })
    .await
}
