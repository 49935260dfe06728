//! Receiver webhooks of the `kluctl-controller`, end to end against the real apiserver: a GitHub
//! push signed with the Receiver's token makes the GitRepository fetch at once and the
//! KluctlDeployment on it deploy the new commit; bad signatures, pings, filtered events and
//! unknown paths request nothing; a Receiver without its Secret or with a CEL filter is not Ready
//! (and recovers when the Secret appears); a generic Receiver naming a KluctlDeployment makes it
//! reconcile and deploy the new commit (the request in the JSON Kluctl's controller takes).
//!
//! Every test starts its own controllers for its own namespace. GitRepositories and
//! KluctlDeployments use `interval: 1h`: a fetch or deploy the test sees was requested.
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p source-controller --bin
//! source-controller` and the environment of `make e2e-up`.

// Each test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use anyhow::Context as _;
use e2e::kluctl_deployment as kd;
use e2e::source::{apply, artifact, ready, ready_is};
use e2e::{GitRepo, KluctlController, SourceController, TestNs, log_value, poll_until, wait_for};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::notification::v1::Receiver;
use gitops_api::source::v1::GitRepository;
use hmac::{Hmac, Mac as _};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use sha2::Digest as _;

const WAIT: Duration = Duration::from_secs(60);

const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// A Kluctl project: ConfigMap `app` in namespace `<ns>` (the `ns` arg) with
/// `data.message: <message>`, discriminator `e2e-<ns>`.
fn project(message: &str) -> Vec<(String, String)> {
    vec![
        (
            ".kluctl.yaml".to_owned(),
            "discriminator: e2e-{{ args.ns }}\nargs:\n  - name: ns\ntargets:\n  - name: test\n".to_owned(),
        ),
        (
            "deployment.yaml".to_owned(),
            "deployments:\n  - path: app\n".to_owned(),
        ),
        (
            "app/configmap.yaml".to_owned(),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: {{{{ args.ns }}}}\ndata:\n  message: {message}\n"
            ),
        ),
    ]
}

fn commit(repo: &GitRepo, message: &str) -> anyhow::Result<String> {
    let files = project(message);
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    repo.commit(&refs, message)
}

/// `data.message` of ConfigMap `app` in `ns`.
async fn message(client: &kube::Client, ns: &str) -> anyhow::Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt("app")
        .await?
        .and_then(|cm| cm.data.and_then(|d| d.get("message").cloned())))
}

/// A token no other test uses.
fn token_for(ns: &str) -> String {
    format!("{:x}", sha2::Sha256::digest(format!("receiver-token-{ns}")))
}

/// Flux's webhook path, computed here independently of the controller.
fn expected_path(token: &str, name: &str, ns: &str) -> String {
    format!("/hook/{:x}", sha2::Sha256::digest(format!("{token}{name}{ns}")))
}

/// `sha256=<hex HMAC-SHA256 of body keyed by key>`, as GitHub signs its deliveries.
fn github_signature(key: &str, body: &[u8]) -> String {
    let mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
        .expect("HMAC takes any key length")
        .chain_update(body)
        .finalize()
        .into_bytes();
    format!("sha256={mac:x}")
}

/// POSTs `body` with `headers` to `http://<addr><path>`; returns the status code.
async fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> anyhow::Result<u16> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut request = client
        .post(format!("http://{addr}{path}"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    Ok(request.send().await?.status().as_u16())
}

/// Creates Secret `name` with key `token`.
async fn token_secret(t: &TestNs, name: &str, token: &str) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(t.client.clone(), &t.name);
    apply(
        &api,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": t.name},
            "stringData": {"token": token},
        }),
    )
    .await
}

/// Applies Receiver `name` with `spec`.
async fn receiver(api: &Api<Receiver>, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    let ns = api.namespace().context("namespaced API")?.to_owned();
    apply(
        api,
        &json!({
            "apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }),
    )
    .await
    .with_context(|| format!("applying Receiver {ns}/{name}"))
}

/// A wait condition: Ready is `status` with `reason`.
fn ready_with(status: &'static str, reason: &'static str) -> impl Fn(Option<&Receiver>) -> bool {
    move |r: Option<&Receiver>| {
        r.is_some_and(|r| {
            let (s, why, _) = ready(r);
            s == status && why == reason
        })
    }
}

fn webhook_path(r: &Receiver) -> String {
    r.status
        .as_ref()
        .map(|s| s.webhook_path.clone())
        .unwrap_or_default()
}

fn requested_at(o: &GitRepository) -> Option<String> {
    o.annotations().get(REQUESTED_AT).cloned()
}

#[tokio::test]
async fn a_signed_github_push_makes_the_gitrepository_fetch_at_once_and_the_kluctldeployment_deploy_it()
-> anyhow::Result<()> {
    TestNs::run("notify_receiver_github", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            let first = commit(&repo, "one")?;
            let source = SourceController::start(&t.env, &ns, &[])?;
            let git_api: Api<GitRepository> = Api::namespaced(t.client.clone(), &ns);
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            apply(
                &git_api,
                &json!({
                    "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "project", "namespace": ns, "labels": {"e2e.kluctl-gitops/ns": ns}},
                    "spec": {"interval": "1h", "url": url, "ref": {"branch": "main"}},
                }),
            )
            .await?;
            wait_for(
                &git_api,
                "project",
                "GitRepository Ready=True",
                WAIT,
                ready_is("True"),
            )
            .await
            .with_context(|| source.log_tail(30))?;

            let mut ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let addr = ctl.receiver_addr()?;
            let kd_api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &kd_api,
                "app",
                json!({
                    "interval": "1h",
                    "sourceRef": {"kind": "GitRepository", "name": "project"},
                    "target": "test",
                    "args": {"ns": ns},
                }),
            )
            .await?;
            let deployed = kd::wait_ready(&kd_api, &ctl, "app", "True", "ReconciliationSucceeded").await?;
            assert_eq!(kd::status(&deployed).observed_commit, first);
            assert_eq!(message(&t.client, &ns).await?.as_deref(), Some("one"));

            // The Receiver: GitHub pushes only.
            let token = token_for(&ns);
            token_secret(&t, "webhook-token", &token).await?;
            let receivers: Api<Receiver> = Api::namespaced(t.client.clone(), &ns);
            receiver(
                &receivers,
                "github",
                json!({
                    "type": "github",
                    "events": ["push"],
                    "secretRef": {"name": "webhook-token"},
                    "resources": [{"kind": "GitRepository", "name": "project"}],
                }),
            )
            .await?;
            let ready_receiver = wait_for(
                &receivers,
                "github",
                "Receiver Ready=True",
                WAIT,
                ready_is("True"),
            )
            .await
            .with_context(|| ctl.log_tail(30))?;
            let path = expected_path(&token, "github", &ns);
            assert_eq!(webhook_path(&ready_receiver), path, "Flux's formula");
            assert_eq!(
                ready(&ready_receiver),
                (
                    "True".to_owned(),
                    "Succeeded".to_owned(),
                    format!("Receiver initialized for path: {path}")
                )
            );
            assert_eq!(
                ready_receiver.status.as_ref().and_then(|s| s.observed_generation),
                ready_receiver.meta().generation
            );

            // A new commit the GitRepository will not fetch by itself within the hour.
            let second = commit(&repo, "two")?;
            let body = json!({"ref": "refs/heads/main", "after": second}).to_string();
            let body = body.as_bytes();
            let good = github_signature(&token, body);

            // Requests that must not trigger anything.
            assert_eq!(
                post(&addr, "/hook/0123", &[], body).await?,
                404,
                "a path no Receiver serves"
            );
            assert_eq!(post(&addr, "/other", &[], body).await?, 404, "not a hook path");
            let forged = github_signature("not-the-token", body);
            assert_eq!(
                post(
                    &addr,
                    &path,
                    &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &forged)],
                    body
                )
                .await?,
                400,
                "a bad signature"
            );
            assert_eq!(
                post(&addr, &path, &[("X-GitHub-Event", "push")], body).await?,
                400,
                "no signature"
            );
            assert_eq!(
                post(
                    &addr,
                    &path,
                    &[("X-GitHub-Event", "release"), ("X-Hub-Signature-256", &good)],
                    body
                )
                .await?,
                400,
                "an event not in spec.events"
            );
            assert_eq!(
                post(
                    &addr,
                    &path,
                    &[("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", &good)],
                    body
                )
                .await?,
                200,
                "a signed ping is answered"
            );
            let untouched = git_api.get("project").await?;
            assert_eq!(requested_at(&untouched), None, "nothing requested a reconcile");
            assert_eq!(
                artifact(&untouched).map(|a| a.revision),
                Some(format!("main@sha1:{first}"))
            );

            // The signed push.
            assert_eq!(
                post(
                    &addr,
                    &path,
                    &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good)],
                    body
                )
                .await?,
                200
            );
            // The annotation is set before the answer.
            let requested = requested_at(&git_api.get("project").await?)
                .context("reconcile.fluxcd.io/requestedAt after the push")?;
            assert!(
                requested.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
                "an RFC 3339 time: {requested}"
            );
            let want = format!("main@sha1:{second}");
            let handled = requested.clone();
            wait_for(
                &git_api,
                "project",
                "the artifact of the second commit, fetched for the request",
                WAIT,
                move |o: Option<&GitRepository>| {
                    o.is_some_and(|o| {
                        artifact(o).is_some_and(|a| a.revision == want)
                            && o.status.as_ref().is_some_and(|s| {
                                s.last_handled_reconcile_at.as_deref() == Some(handled.as_str())
                            })
                    })
                },
            )
            .await
            .with_context(|| source.log_tail(30))?;
            let want = second.clone();
            kd::wait(
                &kd_api,
                &ctl,
                "app",
                "the deploy of the second commit",
                move |k| kd::deployed_commit(k, &want) && kd::ready_is(k, "True", "ReconciliationSucceeded"),
            )
            .await?;
            assert_eq!(message(&t.client, &ns).await?.as_deref(), Some("two"));

            // The outcome is logged per request with the Receiver, the token never.
            let handled: Vec<(Option<String>, Option<String>, u64)> = ctl
                .log_lines()
                .iter()
                .filter(|l| l["msg"].as_str() == Some("handled webhook request"))
                .map(|l| {
                    (
                        log_value(l, "namespace"),
                        log_value(l, "name"),
                        l["status"].as_u64().unwrap_or_default(),
                    )
                })
                .collect();
            let of = |code: u64| (Some(ns.clone()), Some("github".to_owned()), code);
            assert_eq!(
                handled,
                vec![of(400), of(400), of(400), of(200), of(200)],
                "forged, unsigned, release, ping, push"
            );
            let log = fs_err::read_to_string(&ctl.log_file)?;
            assert!(!log.contains(&token), "the token is logged");
            assert!(!log.contains(&path[6..]), "the secret path is logged");
            Ok(())
        })
    })
    .await
}

/// The message of Ready.
fn ready_message(r: &Receiver) -> String {
    ready(r).2
}

#[tokio::test]
async fn a_receiver_without_its_secret_is_not_ready_until_the_secret_appears() -> anyhow::Result<()> {
    TestNs::run("notify_receiver_token", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let mut ctl = KluctlController::start(&t.env, &ns, &[])?;
            let addr = ctl.receiver_addr()?;
            let receivers: Api<Receiver> = Api::namespaced(t.client.clone(), &ns);
            receiver(
                &receivers,
                "generic",
                json!({
                    "type": "generic",
                    "secretRef": {"name": "later"},
                    "resources": [{"kind": "GitRepository", "name": "missing"}],
                }),
            )
            .await?;
            let not_ready = wait_for(
                &receivers,
                "generic",
                "Ready=False TokenNotFound",
                WAIT,
                ready_with("False", "TokenNotFound"),
            )
            .await
            .with_context(|| ctl.log_tail(30))?;
            assert_eq!(
                ready_message(&not_ready),
                format!("Secret '{ns}/later' of spec.secretRef not found")
            );
            assert_eq!(webhook_path(&not_ready), "", "no path without a token");

            // CEL filters cannot be evaluated here: refused, naming the field.
            receiver(
                &receivers,
                "cel",
                json!({
                    "type": "github",
                    "secretRef": {"name": "later"},
                    "resources": [{"kind": "GitRepository", "name": "missing"}],
                    "resourceFilter": "res.metadata.name == 'missing'",
                }),
            )
            .await?;
            let cel = wait_for(
                &receivers,
                "cel",
                "Ready=False UnsupportedConfiguration",
                WAIT,
                ready_with("False", "UnsupportedConfiguration"),
            )
            .await?;
            assert_eq!(
                ready_message(&cel),
                "spec.resourceFilter: CEL expressions are not supported by this controller"
            );

            // The Secret appears: the retry finds it.
            let token = token_for(&ns);
            token_secret(&t, "later", &token).await?;
            let ready_now = wait_for(&receivers, "generic", "Ready=True", WAIT, ready_is("True"))
                .await
                .with_context(|| ctl.log_tail(30))?;
            let path = expected_path(&token, "generic", &ns);
            assert_eq!(webhook_path(&ready_now), path);

            // A generic Receiver takes any request on its path; the GitRepository it names does
            // not exist, so the request fails (500).
            let served = format!("the server to know {path}");
            poll_until(&served, WAIT, || async {
                post(&addr, &path, &[], b"{}").await.is_ok_and(|c| c != 404)
            })
            .await?;
            assert_eq!(
                post(&addr, &path, &[], b"{}").await?,
                500,
                "a named object that is missing"
            );
            let big = vec![b' '; (3 << 20) + 1];
            assert_eq!(post(&addr, &path, &[], &big).await?, 413, "a body over 3 MiB");

            // Suspended: nothing served.
            receivers
                .patch(
                    "generic",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"suspend": true}})),
                )
                .await?;
            poll_until("503 from the suspended Receiver", WAIT, || async {
                post(&addr, &path, &[], b"{}").await.is_ok_and(|c| c == 503)
            })
            .await?;
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn a_receiver_naming_a_kluctldeployment_makes_it_deploy_the_new_commit() -> anyhow::Result<()> {
    use kluctl_controller::notify::receiver::trigger;

    TestNs::run("notify_receiver_kd", |t| {
        Box::pin(async move {
            let ns = t.name.clone();
            let repo = GitRepo::create(&t.env, &ns)?;
            commit(&repo, "one")?;
            let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
            let mut ctl = KluctlController::start(&t.env, &ns, &["--command-result-namespace", &ns])?;
            let kd_api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &ns);
            kd::apply(
                &kd_api,
                "app",
                json!({
                    "interval": "1h",
                    "source": {"git": {"url": url, "ref": {"branch": "main"}}},
                    "target": "test",
                    "args": {"ns": ns},
                }),
            )
            .await?;
            kd::wait_ready(&kd_api, &ctl, "app", "True", "ReconciliationSucceeded").await?;
            let second = commit(&repo, "two")?;

            // A generic Receiver naming the KluctlDeployment: its request is Kluctl's reconcile
            // request, which the controller takes and answers by deploying the new commit.
            let token = "kd-receiver-token";
            token_secret(&t, "kd-token", token).await?;
            let receivers: Api<Receiver> = Api::namespaced(t.client.clone(), &ns);
            receiver(
                &receivers,
                "kd",
                json!({
                    "type": "generic",
                    "secretRef": {"name": "kd-token"},
                    "resources": [{"kind": "KluctlDeployment", "name": "app"}],
                }),
            )
            .await?;
            let ready_receiver = wait_for(&receivers, "kd", "Receiver Ready=True", WAIT, ready_is("True"))
                .await
                .with_context(|| ctl.log_tail(30))?;
            let path = webhook_path(&ready_receiver);
            assert_eq!(path, expected_path(token, "kd", &ns));
            assert_eq!(post(&ctl.receiver_addr()?, &path, &[], b"{}").await?, 200);
            let want = second.clone();
            let done = kd::wait(
                &kd_api,
                &ctl,
                "app",
                "the reconcile the Receiver requested",
                move |k| {
                    kd::request_result(k, "reconcile").is_some_and(|r| r.end_time.is_some())
                        && kd::deployed_commit(k, &want)
                },
            )
            .await?;
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            assert!(kd::ready_is(&done, "True", "ReconciliationSucceeded"));
            assert_eq!(message(&t.client, &ns).await?.as_deref(), Some("two"));

            // A named object that does not exist is an error; a selector matching nothing is not.
            let missing = serde_json::from_value(json!({"kind": "KluctlDeployment", "name": "nope"}))?;
            let err = trigger::request(&t.client, &trigger::resolve(&missing, &ns, false)?, &now, "e2e")
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), format!("KluctlDeployment '{ns}/nope' not found"));
            let none = serde_json::from_value(
                json!({"kind": "KluctlDeployment", "name": "*", "matchLabels": {"no": "match"}}),
            )?;
            let annotated =
                trigger::request(&t.client, &trigger::resolve(&none, &ns, false)?, &now, "e2e").await?;
            assert!(annotated.is_empty());
            Ok(())
        })
    })
    .await
}
