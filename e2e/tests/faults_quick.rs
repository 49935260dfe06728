//! The quick faults of the reliability suite (run by `make test` and by `make faults`): every one
//! uses only proxies and the test's own controller processes, never stops a shared server.
//!
//! Each fault is injected, the invariants are checked (foreign objects untouched, no object of the
//! last successful render lost at any moment, no planted secret in any log, event, status or
//! stored result), the fault is removed, and recovery is timed until Ready=True with the end state
//! of an undisturbed run. Each writes one row of the `make faults` table ([`FaultReport`]).
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p source-controller --bin
//! source-controller` and the environment of `make e2e-up`.

// Each test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use e2e::faults::{
    self, AuditProxy, FaultProxy, FaultReport, ForeignObjects, LossWatch, Mode, SecretScan, controllers_dir,
    deployed_cms,
};
use e2e::kluctl_deployment as kd;
use e2e::source::{apply, ready};
use e2e::{GitRepo, KluctlController, SourceController, TestNs, poll_for, poll_until, wait_for};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::source::v1::GitRepository;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect()
}

/// Sets `kluctl.io/request-reconcile` without waiting for it to be handled.
async fn ask_reconcile(api: &Api<KluctlDeployment>, name: &str, token: &str) -> anyhow::Result<()> {
    let value = json!({"requestValue": token}).to_string();
    let patch = json!({"metadata": {"annotations": {"kluctl.io/request-reconcile": value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Polls until the number of `cm-*` ConfigMaps in `ns` satisfies `pred`.
async fn wait_count(
    t: &TestNs,
    what: &str,
    pred: impl Fn(usize) -> bool,
) -> anyhow::Result<BTreeSet<String>> {
    poll_for(what, WAIT, || async {
        let names = deployed_cms(&t.client, &t.name).await?;
        Ok(pred(names.len()).then_some(names))
    })
    .await
}

/// Waits until the KluctlDeployment has deployed `commit` and is Ready=True with exactly the
/// ConfigMaps `want`; returns the time since `from`.
async fn converged(
    t: &TestNs,
    api: &Api<KluctlDeployment>,
    ctl: &KluctlController,
    commit: &str,
    want: &BTreeSet<String>,
    from: Instant,
) -> anyhow::Result<Duration> {
    let commit = commit.to_owned();
    kd::wait(
        api,
        ctl,
        "app",
        &format!("the deploy of {commit}, Ready=True"),
        move |k| kd::deployed_commit(k, &commit) && kd::ready_is(k, "True", "ReconciliationSucceeded"),
    )
    .await?;
    wait_count(t, "exactly the rendered ConfigMaps", |_| true)
        .await
        .and_then(|got| {
            anyhow::ensure!(&got == want, "ConfigMaps {got:?}, want {want:?}");
            Ok(())
        })?;
    Ok(from.elapsed())
}

/// What the checks find now: (touched foreign objects, leaked secrets).
async fn checks(
    t: &TestNs,
    foreign: &ForeignObjects,
    scan: &SecretScan,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let touched = foreign.touched().await?;
    let leaked = scan
        .leaks(&t.env, &t.client, &[&t.name], &[&controllers_dir(&t.name)])
        .await?;
    Ok((touched, leaked))
}

/// kill -9 of kluctl-controller in the middle of a deploy, of a prune, of a delete-on-finalize;
/// each restart converges to the end state of an undisturbed run. The controller talks to the
/// apiserver through an [`AuditProxy`] that delays every write, so a deploy of 24 objects takes
/// seconds and the kill lands inside it.
#[tokio::test]
async fn kluctl_controller_killed_mid_deploy_prune_and_delete_converges() -> anyhow::Result<()> {
    TestNs::run("faults_kill_kluctl", |t| {
        Box::pin(async move {
            const ALL: usize = 24;
            const KEPT: usize = 12;
            let ns = t.name.clone();
            let secret = SecretScan::distinctive(1);
            let scan = SecretScan::new(&[&secret]);
            let repo = GitRepo::create(&t.env, &ns)?;
            let first = repo.commit(&refs(&faults::project(&ns, 0..ALL, "one", &secret)), "all")?;
            let foreign = ForeignObjects::plant(&t.client, &[&ns]).await?;
            let audit = AuditProxy::start(t.client.clone(), Duration::from_millis(150)).await?;
            let dir = tempfile::tempdir()?;
            let kubeconfig = audit.write_kubeconfig(&dir.path().join("kubeconfig"))?;
            let mut ctl =
                KluctlController::start_via(&t.env, &ns, &kubeconfig, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            let watch = LossWatch::start(&t.client, &ns, []);
            kd::apply(
                &api,
                "app",
                json!({"interval": "1h", "source": {"git": {"url": url, "ref": {"branch": "main"}}},
                       "target": "test", "prune": true, "delete": true}),
            )
            .await?;

            // 1. In the middle of the first deploy: nothing succeeded yet, nothing may be lost.
            let mut report = FaultReport::new("kluctl-controller kill -9 mid-deploy");
            let seen = wait_count(&t, "some but not all objects applied", |n| n > 0 && n < ALL).await?;
            ctl.kill9();
            eprintln!("killed mid-deploy with {} of {ALL} objects applied", seen.len());
            let restarted = Instant::now();
            ctl.restart()?;
            let took = converged(&t, &api, &ctl, &first, &faults::cm_names(0..ALL), restarted).await;
            watch.expect(faults::cm_names(0..ALL));
            let (touched, leaked) = checks(&t, &foreign, &scan).await?;
            report.run(&watch.lost(), &touched, &leaked, took.ok());
            report.finish()?;

            // 2. In the middle of a prune: the new render keeps KEPT objects, which must never go.
            let mut report = FaultReport::new("kluctl-controller kill -9 mid-prune");
            let second = repo.commit(&refs(&faults::project(&ns, 0..KEPT, "one", &secret)), "fewer")?;
            watch.expect(faults::cm_names(0..KEPT));
            ask_reconcile(&api, "app", "prune").await?;
            let seen = wait_count(&t, "some but not all orphans pruned", |n| n > KEPT && n < ALL).await?;
            ctl.kill9();
            eprintln!("killed mid-prune with {} objects left", seen.len());
            let restarted = Instant::now();
            ctl.restart()?;
            let took = converged(&t, &api, &ctl, &second, &faults::cm_names(0..KEPT), restarted).await;
            let (touched, leaked) = checks(&t, &foreign, &scan).await?;
            report.run(&watch.lost(), &touched, &leaked, took.ok());
            report.finish()?;

            // 3. In the middle of the delete of a `delete: true` deployment (its finalizer).
            let mut report = FaultReport::new("kluctl-controller kill -9 mid-delete");
            watch.expect([]);
            api.delete("app", &DeleteParams::default()).await?;
            let seen = wait_count(&t, "some but not all objects deleted", |n| n > 0 && n < KEPT).await?;
            ctl.kill9();
            eprintln!("killed mid-delete with {} objects left", seen.len());
            let restarted = Instant::now();
            ctl.restart()?;
            let gone = Box::pin(async {
                Box::pin(e2e::wait_gone(&api, "app", WAIT)).await?;
                wait_count(&t, "every object deleted", |n| n == 0).await?;
                anyhow::Ok(restarted.elapsed())
            })
            .await;
            let (touched, leaked) = checks(&t, &foreign, &scan).await?;
            report.run(&watch.lost(), &touched, &leaked, gone.ok());
            report.finish()
        })
    })
    .await
}

/// Two kluctl-controller instances with leader election, each behind its own [`AuditProxy`]: the
/// leader is killed in the middle of a deploy, the other takes over and converges, and no object
/// write of one overlaps in time with those of the other.
#[tokio::test]
async fn the_standby_takes_over_from_a_killed_leader_without_overlapping_writes() -> anyhow::Result<()> {
    TestNs::run("faults_leader", |t| {
        Box::pin(async move {
            const ALL: usize = 20;
            let ns = t.name.clone();
            let secret = SecretScan::distinctive(2);
            let scan = SecretScan::new(&[&secret]);
            let repo = GitRepo::create(&t.env, &ns)?;
            let first = repo.commit(&refs(&faults::project(&ns, 0..ALL, "one", &secret)), "all")?;
            let foreign = ForeignObjects::plant(&t.client, &[&ns]).await?;
            let dir = tempfile::tempdir()?;
            let election = [
                "--command-result-namespace",
                &ns,
                "--leader-elect",
                "--leader-election-lease-duration",
                "5s",
                "--leader-election-renew-deadline",
                "4s",
            ];
            let audit_a = AuditProxy::start(t.client.clone(), Duration::from_millis(150)).await?;
            let kc_a = audit_a.write_kubeconfig(&dir.path().join("a"))?;
            let mut a = KluctlController::start_via(&t.env, &ns, &kc_a, &election)?;
            let leases: Api<Lease> = Api::namespaced(t.client.clone(), &ns);
            wait_leader(&leases, a.pid()).await?;
            let audit_b = AuditProxy::start(t.client.clone(), Duration::from_millis(150)).await?;
            let kc_b = audit_b.write_kubeconfig(&dir.path().join("b"))?;
            let b = KluctlController::start_via(&t.env, &ns, &kc_b, &election)?;
            let watch = LossWatch::start(&t.client, &ns, []);
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            kd::apply(
                &api,
                "app",
                json!({"interval": "1h", "source": {"git": {"url": url, "ref": {"branch": "main"}}},
                       "target": "test", "prune": true}),
            )
            .await?;
            let mut report = FaultReport::new("leader kill -9 mid-deploy, standby takes over");
            let seen = wait_count(&t, "some but not all objects applied", |n| n > 0 && n < ALL).await?;
            a.kill9();
            let killed = Instant::now();
            eprintln!("killed the leader with {} of {ALL} objects applied", seen.len());
            wait_leader(&leases, b.pid()).await?;
            let took = converged(&t, &api, &b, &first, &faults::cm_names(0..ALL), killed).await;
            watch.expect(faults::cm_names(0..ALL));
            // Writes to the deployed objects, by instance.
            let writes = |audit: &AuditProxy| -> Vec<Instant> {
                let prefix = format!("/api/v1/namespaces/{ns}/configmaps");
                audit
                    .requests()
                    .into_iter()
                    .filter(|r| r.method != "GET" && r.target.starts_with(&prefix))
                    .map(|r| r.at)
                    .collect()
            };
            let (wa, wb) = (writes(&audit_a), writes(&audit_b));
            let mut findings = Vec::new();
            if let (Some(last_a), Some(first_b)) = (wa.iter().max(), wb.iter().min())
                && first_b <= last_a
            {
                findings.push(format!(
                    "the standby wrote {:?} before the leader's last write",
                    last_a.duration_since(*first_b)
                ));
            }
            anyhow::ensure!(
                !wa.is_empty() && !wb.is_empty(),
                "both instances wrote objects: {} {}",
                wa.len(),
                wb.len()
            );
            let (touched, leaked) = checks(&t, &foreign, &scan).await?;
            report.run(&watch.lost(), &touched, &leaked, took.ok());
            for f in findings {
                report.finding(f);
            }
            drop(b);
            report.finish()
        })
    })
    .await
}

/// Waits until the kluctl-controller Lease names the process `pid` (identities are
/// `<host>_<pid>_<nanos>`).
async fn wait_leader(leases: &Api<Lease>, pid: u32) -> anyhow::Result<()> {
    let mark = format!("_{pid}_");
    poll_until(&format!("process {pid} to hold the Lease"), WAIT, || async {
        leases
            .get_opt(kluctl_controller::LEASE_NAME)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .is_some_and(|h| h.contains(&mark))
    })
    .await
}

/// GitRepository `name` labelled for the test's source-controller, at `url`, with `extra` spec.
async fn git_repository(
    t: &TestNs,
    name: &str,
    url: &str,
    extra: serde_json::Value,
) -> anyhow::Result<Api<GitRepository>> {
    let api: Api<GitRepository> = Api::namespaced(t.client.clone(), &t.name);
    let mut spec = json!({"interval": "1h", "url": url, "ref": {"branch": "main"}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    apply(
        &api,
        &json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": t.name, "labels": {"e2e.kluctl-gitops/ns": t.name}},
            "spec": spec,
        }),
    )
    .await?;
    Ok(api)
}

/// The `.*.tmp` files in a directory (an interrupted artifact write leaves one).
fn temp_files(dir: &std::path::Path) -> Vec<String> {
    fs_err::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.starts_with('.') && std::path::Path::new(n).extension().is_some_and(|e| e == "tmp")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// sha256 (`sha256:<hex>`) of a file.
fn file_digest(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let bytes = fs_err::read(path)?;
    Ok(format!(
        "sha256:{}",
        gitops_api::revision::lower_hex(&sha2::Sha256::digest(&bytes))
    ))
}

/// kill -9 of source-controller while it writes an artifact (a commit of 3 MB of random bytes):
/// every artifact answer seen during the fault matches its advertised digest, the previous
/// artifact stays on disk intact, the temp file left behind is gone once the restarted controller
/// has started, and the new revision then becomes the artifact.
#[tokio::test]
async fn source_controller_killed_while_writing_an_artifact_serves_no_partial_artifact() -> anyhow::Result<()>
{
    TestNs::run("faults_kill_source", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            repo.commit(&[("README.md", "small\n")], "small")?;
            let mut source = SourceController::start(&t.env, &ns, &[])?;
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            let git_api = git_repository(&t, "big", &url, json!({})).await?;
            let first = wait_for(&git_api, "big", "Ready=True", WAIT, e2e::source::ready_is("True"))
                .await
                .with_context(|| source.log_tail(30))?;
            let old = e2e::source::artifact(&first).context("no artifact")?;
            let old_file = source.storage_dir.join(&old.path);
            let object_dir = old_file.parent().context("artifact path")?.to_path_buf();

            // Random (incompressible) content, so packaging it takes a while.
            let mut files = Vec::new();
            let mut seed = u64::from(std::process::id());
            for i in 0..6 {
                let mut data = String::with_capacity(1 << 19);
                while data.len() < 1 << 19 {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let _ = write!(data, "{seed:016x}");
                }
                files.push((format!("blob-{i}.txt"), data));
            }
            repo.commit(&refs(&files), "big")?;

            // Every artifact answer during the fault, checked against the digest advertised then.
            let mismatches = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
            let checker = {
                let (api, mismatches) = (git_api.clone(), mismatches.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    loop {
                        tick.tick().await;
                        let Some(a) = api
                            .get_opt("big")
                            .await
                            .ok()
                            .flatten()
                            .and_then(|g| e2e::source::artifact(&g))
                        else {
                            continue;
                        };
                        // Nothing answering while the controller is down is fine; a wrong body is not.
                        if let Err(e) = e2e::fetch_artifact_files(&a.url, &a.digest).await
                            && e.to_string().contains("digest mismatch")
                            && let Ok(mut m) = mismatches.lock()
                        {
                            m.push(e.to_string());
                        }
                    }
                })
            };
            let mut report = FaultReport::new("source-controller kill -9 while writing an artifact");
            let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "big"}}});
            git_api
                .patch("big", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            let leftover = poll_for("an artifact write in progress", WAIT, || async {
                let tmp = temp_files(&object_dir);
                Ok((!tmp.is_empty()).then_some(tmp))
            })
            .await?;
            source.kill9();
            eprintln!("killed source-controller while writing {leftover:?}");
            let mut findings = Vec::new();
            if file_digest(&old_file)? != old.digest {
                findings.push(format!("the previous artifact {} changed", old_file.display()));
            }
            let leftovers_after_kill = temp_files(&object_dir);
            let restarted = Instant::now();
            source.restart()?;
            // Leftovers are removed at start, before anything is reconciled.
            let cleaned = poll_until(
                "the leftover temp file removed",
                Duration::from_secs(10),
                || async { temp_files(&object_dir).is_empty() },
            )
            .await;
            if cleaned.is_err() {
                findings.push(format!(
                    "temp files left after the restart: {:?}",
                    temp_files(&object_dir)
                ));
            }
            eprintln!(
                "temp files after the kill: {leftovers_after_kill:?}; after the restart: {:?}",
                temp_files(&object_dir)
            );
            let took = Box::pin(async {
                let new = poll_for("the big revision's artifact", WAIT, || async {
                    let g = git_api.get("big").await?;
                    Ok(e2e::source::artifact(&g)
                        .filter(|a| a.revision != old.revision && ready(&g).0 == "True"))
                })
                .await?;
                e2e::fetch_artifact_files(&new.url, &new.digest).await?;
                anyhow::Ok(restarted.elapsed())
            })
            .await;
            checker.abort();
            findings.extend(mismatches.lock().map(|m| m.clone()).unwrap_or_default());
            let scan = SecretScan::new(&[]);
            let leaked = scan
                .leaks(&t.env, &t.client, &[&ns], &[&controllers_dir(&ns)])
                .await?;
            report.run(&BTreeSet::new(), &[], &leaked, took.ok());
            for f in findings {
                report.finding(f);
            }
            report.finish()
        })
    })
    .await
}

/// Waits until GitRepository `name` is Ready=`status` (with `reason`, when given).
async fn wait_git_ready(
    api: &Api<GitRepository>,
    name: &str,
    status: &str,
    reason: Option<&str>,
) -> anyhow::Result<GitRepository> {
    poll_for(
        &format!("GitRepository {name} Ready={status} {reason:?}"),
        WAIT,
        || async {
            let g = api.get(name).await?;
            let (s, r, _) = ready(&g);
            Ok((s == status && reason.is_none_or(|want| r == want)).then_some(g))
        },
    )
    .await
}

/// Asks source-controller to reconcile GitRepository `name` now (without waiting).
async fn poke(api: &Api<GitRepository>, name: &str, token: &str) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The git server down, answering 500, hanging past the GitRepository's timeout, then the
/// artifact server unreachable from kluctl-controller: each time the failing side turns
/// Ready=False with its reason, the last artifact stays served, and nothing is pruned although the
/// commit pushed meanwhile removes an object; once the fault is gone the commit deploys.
#[tokio::test]
async fn failing_sources_keep_the_last_artifact_and_prune_nothing() -> anyhow::Result<()> {
    TestNs::run("faults_sources", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let secret = SecretScan::distinctive(3);
            let scan = SecretScan::new(&[&secret]);
            let repo = GitRepo::create(&t.env, &ns)?;
            let mut items = 8usize;
            let mut commit = repo.commit(&refs(&faults::project(&ns, 0..items, "one", &secret)), "first")?;
            let foreign = ForeignObjects::plant(&t.client, &[&ns]).await?;
            let git_addr = t.env.get("E2E_GIT_HTTP_URL")?.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
            let git = FaultProxy::start(Some(&git_addr)).await?;
            let artifacts = FaultProxy::start(None).await?;
            let source = SourceController::start(&t.env, &ns, &["--storage-adv-addr", &artifacts.addr.to_string()])?;
            artifacts.set_target(&source.storage_addr()?);
            let url = format!("{}/git/{}.git", git.url(), repo.name);
            let git_api = git_repository(&t, "project", &url, json!({"timeout": "3s"})).await?;
            wait_git_ready(&git_api, "project", "True", None).await.with_context(|| source.log_tail(30))?;
            let ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &api,
                "app",
                json!({"interval": "1h", "retryInterval": "2s", "sourceRef": {"kind": "GitRepository", "name": "project"},
                       "target": "test", "prune": true}),
            )
            .await?;
            converged(&t, &api, &ctl, &commit, &faults::cm_names(0..items), Instant::now()).await?;
            let watch = LossWatch::start(&t.client, &ns, faults::cm_names(0..items));

            for (label, mode) in [("down", Mode::Refuse), ("answering 500", Mode::Http(500)), ("hanging past the timeout", Mode::Hang)] {
                let mut report = FaultReport::new(&format!("git server {label}"));
                let before = e2e::source::artifact(&git_api.get("project").await?).context("no artifact")?;
                git.set(mode);
                items -= 1;
                let next = repo.commit(&refs(&faults::project(&ns, 0..items, "one", &secret)), label)?;
                poke(&git_api, "project", &format!("{label}-fault")).await?;
                let failed = wait_git_ready(&git_api, "project", "False", Some("GitOperationFailed")).await?;
                eprintln!("git server {label}: {:?}", ready(&failed));
                let kept = e2e::source::artifact(&failed).context("the artifact is gone")?;
                if kept.revision != before.revision {
                    report.finding(format!("the artifact changed to {}", kept.revision));
                }
                if let Err(e) = e2e::fetch_artifact_files(&kept.url, &kept.digest).await {
                    report.finding(format!("the last artifact is not served: {e:#}"));
                }
                let k = api.get("app").await?;
                if !kd::deployed_commit(&k, &commit) {
                    report.finding("the deployment moved while its source failed".into());
                }
                git.set(Mode::Pass);
                let back = Instant::now();
                watch.expect(faults::cm_names(0..items));
                poke(&git_api, "project", &format!("{label}-fixed")).await?;
                let took = converged(&t, &api, &ctl, &next, &faults::cm_names(0..items), back).await;
                commit = next;
                let (touched, leaked) = checks(&t, &foreign, &scan).await?;
                report.run(&watch.lost(), &touched, &leaked, took.ok());
                report.finish()?;
            }

            let mut report = FaultReport::new("artifact server unreachable from kluctl-controller");
            artifacts.set(Mode::Refuse);
            items -= 1;
            let next = repo.commit(&refs(&faults::project(&ns, 0..items, "one", &secret)), "unreachable")?;
            poke(&git_api, "project", "artifact-fault").await?;
            // Polled, not watched: the download retries with backoff for a while, and a watch
            // with no event for 30 s times out on the test's side.
            let failed = poll_for("Ready=False ArtifactFailed", Duration::from_secs(240), || async {
                let k = api.get("app").await?;
                Ok(kd::ready_is(&k, "False", "ArtifactFailed").then_some(k))
            })
            .await
            .with_context(|| ctl.log_tail(20))?;
            eprintln!("artifact server unreachable: {:?}", kd::ready(&failed).map(|c| &c.message));
            artifacts.set(Mode::Pass);
            let back = Instant::now();
            watch.expect(faults::cm_names(0..items));
            // No request: the failed reconcile is retried (spec.retryInterval) on its own.
            let took = converged(&t, &api, &ctl, &next, &faults::cm_names(0..items), back).await;
            let (touched, leaked) = checks(&t, &foreign, &scan).await?;
            report.run(&watch.lost(), &touched, &leaked, took.ok());
            report.finish()
        })
    })
    .await
}

/// The apiserver away for both controllers (their kubeconfig goes through a [`FaultProxy`]):
/// connections reset, then hanging, while a commit that removes an object is pushed. Nothing is
/// pruned or deleted while it is away; once it is back the watches resume and the commit deploys.
#[tokio::test]
async fn the_apiserver_away_through_a_proxy_prunes_nothing_and_watches_resume() -> anyhow::Result<()> {
    TestNs::run("faults_api_away", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let secret = SecretScan::distinctive(4);
            let scan = SecretScan::new(&[&secret]);
            let repo = GitRepo::create(&t.env, &ns)?;
            let mut items = 6usize;
            let first = repo.commit(&refs(&faults::project(&ns, 0..items, "one", &secret)), "first")?;
            let foreign = ForeignObjects::plant(&t.client, &[&ns]).await?;
            let apiserver = FaultProxy::start(Some(&faults::apiserver_addr(&t.env)?)).await?;
            let dir = tempfile::tempdir()?;
            let kubeconfig = faults::kubeconfig_via(&t.env, apiserver.addr, &dir.path().join("kubeconfig"))?;
            let source = SourceController::start_via(&ns, &kubeconfig, &[])?;
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            let git_api = git_repository(&t, "project", &url, json!({})).await?;
            wait_git_ready(&git_api, "project", "True", None).await.with_context(|| source.log_tail(30))?;
            let ctl = KluctlController::start_via(&t.env, &ns, &kubeconfig, &["--command-result-namespace", &ns])?;
            let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &api,
                "app",
                json!({"interval": "1h", "retryInterval": "2s", "sourceRef": {"kind": "GitRepository", "name": "project"},
                       "target": "test", "prune": true}),
            )
            .await?;
            converged(&t, &api, &ctl, &first, &faults::cm_names(0..items), Instant::now()).await?;
            let watch = LossWatch::start(&t.client, &ns, faults::cm_names(0..items));

            let mut report = FaultReport::new("apiserver away (proxy: reset, then hanging)");
            let before = apiserver.accepted();
            apiserver.set(Mode::Reset);
            items -= 1;
            let next = repo.commit(&refs(&faults::project(&ns, 0..items, "two", &secret)), "while away")?;
            poke(&git_api, "project", "while-away").await?;
            poll_until("the controllers to retry against the reset apiserver", WAIT, || async {
                apiserver.accepted() >= before + 4
            })
            .await?;
            let before = apiserver.accepted();
            apiserver.set(Mode::Hang);
            poll_until("the controllers to retry against the hanging apiserver", WAIT, || async {
                apiserver.accepted() >= before + 2
            })
            .await?;
            if !deployed_cms(&t.client, &ns).await?.contains(&format!("cm-{items}")) {
                report.finding("an object was pruned while the apiserver was away".into());
            }
            apiserver.set(Mode::Pass);
            let back = Instant::now();
            watch.expect(faults::cm_names(0..items));
            let took = converged(&t, &api, &ctl, &next, &faults::cm_names(0..items), back).await;
            let (touched, leaked) = checks(&t, &foreign, &scan).await?;
            report.run(&watch.lost(), &touched, &leaked, took.ok());
            report.finish()
        })
    })
    .await
}
