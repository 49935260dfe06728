//! Requests to the real `kluctl-controller`, end to end: every `kluctl gitops` command run as a
//! user runs it (the built CLI, `--controller-log-file` = the controller's log), manual approval
//! through `spec.manualObjectsHash`, a service account without RBAC, and an object the apiserver
//! refuses.
//!
//! Every test pushes a small project to its own repository (ConfigMaps `app-a` and `app-b` in the
//! test's namespace, discriminator `e2e-<namespace>`) and starts its own controller for its
//! namespace, with the command results stored there too. KluctlDeployments use `interval: 1h`, so
//! whatever happens after the first reconcile was asked for.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p kluctl --bin kluctl` and the
//! environment of `make e2e-up`.

// Each test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use anyhow::Context as _;
use e2e::kluctl_deployment as kd;
use e2e::{GitRepo, KluctlController, TestNs, run_kluctl, wait_gone};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// The project's files: item `a` (ConfigMap `app-a` with `data.message: <message>` and a
/// validate-result annotation, plus `extra_a` files) and, with `with_b`, item `b` (ConfigMap
/// `app-b`).
fn project(message: &str, with_b: bool, extra_a: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut files = vec![
        (
            ".kluctl.yaml".to_owned(),
            "discriminator: e2e-{{ args.ns }}\nargs:\n  - name: ns\ntargets:\n  - name: test\n".to_owned(),
        ),
        (
            "deployment.yaml".to_owned(),
            format!(
                "deployments:\n  - path: a\n{}",
                if with_b { "  - path: b\n" } else { "" }
            ),
        ),
        (
            "a/configmap.yaml".to_owned(),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-a\n  namespace: {{{{ args.ns }}}}\n  annotations:\n    validate-result.kluctl.io/note: checked by e2e\ndata:\n  message: {message}\n"
            ),
        ),
        (
            "b/configmap.yaml".to_owned(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-b\n  namespace: \"{{ args.ns }}\"\ndata:\n  message: b\n"
                .to_owned(),
        ),
    ];
    files.extend(extra_a.iter().map(|(p, c)| (format!("a/{p}"), (*c).to_owned())));
    files
}

/// One test's setup: the repository with the project, the controller, the KluctlDeployment API.
struct Setup {
    repo: GitRepo,
    url: String,
    ctl: KluctlController,
    api: Api<KluctlDeployment>,
    ns: String,
    client: kube::Client,
}

impl Setup {
    fn start(t: &TestNs, files: &[(String, String)]) -> anyhow::Result<(Self, String)> {
        let repo = GitRepo::create(&t.env, &t.name)?;
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        let sha = repo.commit(&files, "project")?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        let ctl = KluctlController::start(&t.env, &t.name, &["--command-result-namespace", &t.name])?;
        Ok((
            Setup {
                repo,
                url,
                ctl,
                api: Api::namespaced(t.client.clone(), &t.name),
                ns: t.name.clone(),
                client: t.client.clone(),
            },
            sha,
        ))
    }

    /// Applies KluctlDeployment `name` of target `test` from `main`, with `extra` over the
    /// defaults.
    async fn apply(&self, name: &str, extra: &serde_json::Value) -> anyhow::Result<()> {
        let mut spec = json!({
            "interval": "1h",
            "source": {"git": {"url": self.url, "ref": {"branch": "main"}}},
            "target": "test",
            "args": {"ns": self.ns},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        kd::apply(&self.api, name, spec).await
    }

    fn push(&self, files: &[(String, String)], message: &str) -> anyhow::Result<String> {
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        self.repo.commit(&files, message)
    }

    /// `data.message` of ConfigMap `name` (`None` when it does not exist).
    async fn message(&self, name: &str) -> anyhow::Result<Option<String>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(api
            .get_opt(name)
            .await?
            .and_then(|cm| cm.data.and_then(|d| d.get("message").cloned())))
    }

    /// Runs `kluctl gitops <command> --name <name> -n <ns> <args>` (with the results namespace,
    /// and for request commands the controller's log file and a timeout); returns exit code,
    /// stdout, stderr.
    fn gitops(
        &self,
        command: &str,
        name: &str,
        args: &[&str],
    ) -> anyhow::Result<(Option<i32>, String, String)> {
        let log = self.ctl.log_file.display().to_string();
        let mut full = vec!["gitops", command, "--name", name, "-n", &self.ns];
        full.extend(["--command-result-namespace", &self.ns]);
        if !matches!(command, "suspend" | "resume" | "logs") {
            full.extend(["--timeout", "60s"]);
        }
        if command != "suspend" && command != "resume" {
            full.extend(["--controller-log-file", &log]);
        }
        full.extend_from_slice(args);
        let dir = tempfile::tempdir()?;
        let out = run_kluctl(dir.path(), &full, &[])?;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        println!(
            "e2e: kluctl {} -> {:?}\n{stdout}{stderr}",
            full.join(" "),
            out.status.code()
        );
        Ok((out.status.code(), stdout, stderr))
    }

    /// Like [`Setup::gitops`], failing unless it exits 0; returns stdout and stderr.
    fn gitops_ok(&self, command: &str, name: &str, args: &[&str]) -> anyhow::Result<(String, String)> {
        let (code, stdout, stderr) = self.gitops(command, name, args)?;
        anyhow::ensure!(
            code == Some(0),
            "kluctl gitops {command} {args:?} exited {code:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
            self.ctl.log_tail(30)
        );
        Ok((stdout, stderr))
    }
}

#[tokio::test]
async fn every_gitops_command_is_served_by_the_controller() -> anyhow::Result<()> {
    TestNs::run("kd_req_cli", |t| {
        Box::pin(async move {
            let (s, _) = Setup::start(&t, &project("one", true, &[]))?;
            let ns = s.ns.clone();
            // Manual: nothing is deployed without approval, only by request.
            s.apply("app", &json!({"manual": true})).await?;
            let waiting = kd::wait(&s.api, &s.ctl, "app", "the rendered objects' hash", |k| {
                kd::reconciled(k) && !kd::status(k).last_objects_hash.is_empty()
            })
            .await?;
            assert_eq!(kd::deploy_id(&waiting), None, "manual: no deploy without approval");
            assert_eq!(s.message("app-a").await?, None, "manual: nothing applied");

            // deploy: applied, printed as `kluctl deploy` prints it.
            let (stdout, _) = s.gitops_ok("deploy", "app", &[])?;
            assert!(
                stdout.contains(&format!("New objects:\n  {ns}/ConfigMap/app-a\n  {ns}/ConfigMap/app-b\n")),
                "{stdout}"
            );
            assert_eq!(s.message("app-a").await?.as_deref(), Some("one"));

            // A pushed commit changes app-a and drops item b.
            s.push(&project("two", false, &[]), "two, without b")?;

            // diff: the pending change, nothing applied.
            let (stdout, _) = s.gitops_ok("diff", "app", &[])?;
            for want in [
                format!("Changed objects:\n  {ns}/ConfigMap/app-a\n"),
                format!("Diff for object {ns}/ConfigMap/app-a\n"),
                "-one".to_owned(),
                "+two".to_owned(),
                format!("Orphan objects:\n  {ns}/ConfigMap/app-b\n"),
            ] {
                assert!(stdout.contains(&want), "diff output must contain {want:?}:\n{stdout}");
            }
            assert_eq!(s.message("app-a").await?.as_deref(), Some("one"), "a diff applies nothing");
            let k = s.api.get("app").await?;
            assert!(kd::status(&k).last_diff_result.is_some(), "status.lastDiffResult");

            // A request the controller refuses (its patch touches more than the spec) records
            // only its error: no result id of the deploy before it.
            let bad = json!({"requestValue": "bad-override", "overridesPatch": {"metadata": {"labels": {"x": "y"}}}});
            s.api
                .patch(
                    "app",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {"kluctl.io/request-deploy": bad.to_string()}}})),
                )
                .await?;
            let refused = kd::wait(&s.api, &s.ctl, "app", "the refused deploy request to end", |k| {
                kd::request_result(k, "deploy")
                    .is_some_and(|r| r.request.request_value == "bad-override" && r.end_time.is_some())
            })
            .await?;
            let r = kd::request_result(&refused, "deploy").context("status.deployRequestResult")?;
            assert_eq!(
                (r.command_error.as_str(), r.result_id.as_str()),
                ("override patch tried to modify non-spec fields", ""),
                "{r:?}"
            );

            // deploy --dry-run: the same change reported, nothing applied; the spec unchanged.
            // (It succeeds: the error of the refused request before it is not carried over.)
            let (stdout, _) = s.gitops_ok("deploy", "app", &["--dry-run"])?;
            assert!(
                stdout.contains(&format!("Changed objects:\n  {ns}/ConfigMap/app-a\n")),
                "{stdout}"
            );
            assert_eq!(s.message("app-a").await?.as_deref(), Some("one"), "a dry run applies nothing");
            assert!(!s.api.get("app").await?.spec.dry_run, "the override was for that request only");

            // deploy: applied; app-b is an orphan, kept (prune: false).
            let (stdout, _) = s.gitops_ok("deploy", "app", &[])?;
            assert!(
                stdout.contains(&format!("Orphan objects:\n  {ns}/ConfigMap/app-b\n")),
                "{stdout}"
            );
            assert_eq!(s.message("app-a").await?.as_deref(), Some("two"));
            assert_eq!(s.message("app-b").await?.as_deref(), Some("b"), "prune: false keeps it");

            // prune: the orphan goes.
            let (stdout, _) = s.gitops_ok("prune", "app", &[])?;
            assert!(
                stdout.contains(&format!("Deleted objects:\n  {ns}/ConfigMap/app-b\n")),
                "{stdout}"
            );
            let configmaps: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
            wait_gone(&configmaps, "app-b", kd::WAIT).await?;

            // validate: the object's validate-result annotation is in the printed result.
            let (stdout, stderr) = s.gitops_ok("validate", "app", &[])?;
            assert!(
                stdout.contains(&format!("Results:\n  {ns}/ConfigMap/app-a: checked by e2e\n")),
                "{stdout}"
            );
            assert!(stderr.contains("Validation succeeded"), "{stderr}");
            let k = s.api.get("app").await?;
            let validate_id = kd::status(&k).last_validate_result.map(|v| v.id);
            assert_eq!(
                validate_id,
                kd::request_result(&k, "validate").map(|r| r.result_id),
                "status.lastValidateResult is the request's result"
            );

            // reconcile: a full reconcile; the printed line is the Ready condition after it.
            let (stdout, _) = s.gitops_ok("reconcile", "app", &[])?;
            let k = s.api.get("app").await?;
            let ready = kd::ready(&k).context("Ready")?;
            assert_eq!(
                stdout,
                format!(
                    "KluctlDeployment {ns}/app: Ready={} ({}): {}\n",
                    ready.status, ready.reason, ready.message
                )
            );
            assert!(
                kd::request_result(&k, "reconcile").is_some_and(|r| r.end_time.is_some()),
                "status.reconcileRequestResult"
            );

            // suspend / resume: they return once the controller observed the generation.
            for (command, done, suspended) in [("suspend", "suspended", true), ("resume", "resumed", false)] {
                let (stdout, _) = s.gitops_ok(command, "app", &[])?;
                assert_eq!(stdout, format!("KluctlDeployment {ns}/app {done}\n"));
                let k = s.api.get("app").await?;
                assert_eq!(k.spec.suspend, suspended, "{command}: spec.suspend");
                assert!(kd::reconciled(&k), "{command}: observedGeneration {:?}", k.status);
            }

            // logs: the controller's lines of this object; by reconcile id, one request's.
            let (stdout, _) = s.gitops_ok("logs", "app", &["--log-since", "10m"])?;
            for want in [" info handling request", " info suspended: nothing deployed"] {
                assert!(
                    stdout.lines().any(|l| l.ends_with(want)),
                    "logs must have a line ending with {want:?}:\n{stdout}"
                );
            }
            let prune_id = kd::request_result(&s.api.get("app").await?, "prune")
                .map(|r| r.reconcile_id)
                .context("status.pruneRequestResult")?;
            let (stdout, _) = s.gitops_ok("logs", "app", &["--log-since", "10m", "--reconcile-id", &prune_id])?;
            assert!(
                stdout.lines().any(|l| l.ends_with(" info handling request")),
                "{stdout}"
            );
            assert!(
                !stdout.contains("suspended") && !stdout.contains("Reconciliation finished"),
                "only the prune request's lines:\n{stdout}"
            );
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn a_manual_deployment_applies_a_pushed_change_only_once_its_hash_is_approved() -> anyhow::Result<()> {
    TestNs::run("kd_req_manual", |t| {
        Box::pin(async move {
            let (s, _) = Setup::start(&t, &project("one", true, &[]))?;
            s.apply("app", &json!({"manual": true, "validate": false}))
                .await?;
            let waiting = kd::wait(&s.api, &s.ctl, "app", "the rendered objects' hash", |k| {
                kd::reconciled(k) && !kd::status(k).last_objects_hash.is_empty()
            })
            .await?;
            assert_eq!(s.message("app-a").await?, None, "not approved: nothing applied");

            // Approving the first render deploys it.
            let first_hash = kd::status(&waiting).last_objects_hash;
            let generation = s
                .api
                .patch(
                    "app",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"manualObjectsHash": first_hash}})),
                )
                .await?
                .metadata
                .generation;
            let approved = kd::wait(&s.api, &s.ctl, "app", "the approved deploy", move |k| {
                k.status.as_ref().and_then(|s| s.observed_generation) == generation
                    && kd::deploy_id(k).is_some()
            })
            .await?;
            let first_id = kd::deploy_id(&approved);
            assert_eq!(
                kd::status(&approved).last_manual_objects_hash.as_deref(),
                Some(first_hash.as_str())
            );
            assert_eq!(s.message("app-a").await?.as_deref(), Some("one"));

            // A pushed change is rendered and waits: its hash is shown, nothing applied.
            let second = s.push(&project("two", true, &[]), "two")?;
            let pending = kd::request(&s.api, &s.ctl, "app", "reconcile", "after-push").await?;
            let st = kd::status(&pending);
            assert_eq!(st.observed_commit, second);
            assert_ne!(
                st.last_objects_hash, first_hash,
                "the new render's hash is pending"
            );
            assert_eq!(kd::deploy_id(&pending), first_id, "not approved: no deploy");
            assert_eq!(
                s.message("app-a").await?.as_deref(),
                Some("one"),
                "not approved: not applied"
            );

            // Approving the pending hash applies it.
            let pending_hash = st.last_objects_hash.clone();
            s.api
                .patch(
                    "app",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"manualObjectsHash": pending_hash}})),
                )
                .await?;
            let want = second.clone();
            let deployed = kd::wait(
                &s.api,
                &s.ctl,
                "app",
                "the deploy of the approved hash",
                move |k| kd::deployed_commit(k, &want),
            )
            .await?;
            let st = kd::status(&deployed);
            assert_eq!(
                st.last_manual_objects_hash.as_deref(),
                Some(pending_hash.as_str())
            );
            assert_eq!(
                st.last_deploy_result.map(|d| d.rendered_objects_hash),
                Some(pending_hash),
                "the approved objects were deployed"
            );
            assert_eq!(s.message("app-a").await?.as_deref(), Some("two"));
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn a_service_account_without_rbac_fails_with_forbidden() -> anyhow::Result<()> {
    TestNs::run("kd_req_forbidden", |t| {
        Box::pin(async move {
            let (s, _) = Setup::start(&t, &project("one", true, &[]))?;
            let accounts: Api<ServiceAccount> = Api::namespaced(t.client.clone(), &t.name);
            let mut sa = ServiceAccount::default();
            sa.metadata.name = Some("nobody".to_owned());
            accounts.create(&PostParams::default(), &sa).await?;
            s.apply("app", &json!({"serviceAccountName": "nobody"})).await?;
            let failed = kd::wait(&s.api, &s.ctl, "app", "Ready=False", |k| {
                kd::reconciled(k) && kd::ready(k).is_some_and(|c| c.status == "False")
            })
            .await?;
            // The apiserver refuses every write of the impersonated account. The Ready message is
            // Kluctl's (counts only); the refusals, with the account, are in the deploy result.
            let ready = kd::ready(&failed).context("Ready")?;
            assert_eq!(ready.reason, "DeployFailed", "{ready:?}");
            assert!(
                ready.message.starts_with("deploy failed with 2 errors"),
                "{ready:?}"
            );
            let summary = kd::status(&failed)
                .last_deploy_result
                .context("status.lastDeployResult")?;
            let refused: Vec<String> = summary
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.object_ref, e.message))
                .collect();
            let user = format!("User \"system:serviceaccount:{}:nobody\"", s.ns);
            assert_eq!(refused.len(), 2, "{refused:#?}");
            for (error, name) in refused.iter().zip(["app-a", "app-b"]) {
                assert!(
                    error.starts_with(&format!("{}/ConfigMap/{name}: ", s.ns))
                        && error.contains("forbidden")
                        && error.contains(&user),
                    "each error names the object, 'forbidden' and the account: {error}"
                );
            }
            assert_eq!(s.message("app-a").await?, None, "nothing applied");
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn an_object_the_apiserver_refuses_fails_the_deploy_and_the_rest_is_applied_and_nothing_pruned()
-> anyhow::Result<()> {
    TestNs::run("kd_req_refused", |t| {
        Box::pin(async move {
            let (s, _) = Setup::start(&t, &project("one", true, &[]))?;
            let ns = s.ns.clone();
            // prune: true, so a deploy that pruned despite the error would delete app-b.
            s.apply("app", &json!({"prune": true, "validate": false})).await?;
            let good = kd::wait_ready(&s.api, &s.ctl, "app", "True", "ReconciliationSucceeded").await?;
            let good_id = kd::deploy_id(&good);

            let bad = "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: \"{{ args.ns }}\"\nspec:\n  type: NoSuchType\n  ports:\n    - port: 80\n";
            let second = s.push(&project("two", false, &[("service.yaml", bad)]), "bad service, without b")?;
            let failed = kd::request(&s.api, &s.ctl, "app", "reconcile", "bad-service").await?;
            assert!(
                kd::ready_is(&failed, "False", "DeployFailed"),
                "Ready: {:?}",
                kd::ready(&failed)
            );
            let summary = kd::status(&failed)
                .last_deploy_result
                .context("status.lastDeployResult")?;
            assert_ne!(Some(summary.id.clone()), good_id, "a new deploy ran");
            assert_eq!(summary.git_info.commit, second);
            let errors: Vec<String> = summary
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.object_ref, e.message))
                .collect();
            // The refused object, and the prune this controller skips after a failed apply
            // (Kluctl would prune anyway), reported without an object.
            assert_eq!(errors.len(), 2, "{errors:#?}");
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("{ns}/Service/bad: ")) && e.contains("NoSuchType")),
                "an error names the object and the apiserver's reason: {errors:#?}"
            );
            assert!(
                errors.iter().any(|e| e.contains("prune skipped")),
                "an error says the prune was skipped: {errors:#?}"
            );
            assert!(
                kd::ready(&failed).is_some_and(|c| c.message.starts_with("deploy failed with 2 errors")),
                "{:?}",
                kd::ready(&failed)
            );
            assert_eq!(summary.deleted_objects, 0, "nothing pruned: {summary:#?}");
            assert_eq!(s.message("app-a").await?.as_deref(), Some("two"), "the other objects are applied");
            assert_eq!(s.message("app-b").await?.as_deref(), Some("b"), "nothing pruned");
            let services: Api<Service> = Api::namespaced(s.client.clone(), &ns);
            assert!(services.get_opt("bad").await?.is_none(), "the refused object does not exist");
            Ok(())
        })
    })
    .await
}
