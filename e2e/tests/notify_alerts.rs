//! Alert/Provider dispatch of `kluctl-controller` end to end, against the real apiserver and real
//! HTTP sinks inside the test ([`RecordingSink`]):
//!
//! - events POSTed to the controller's event endpoint (as source-controller's `--events-addr`
//!   does) reach generic, generic-hmac, slack and msteams Providers with Flux's payloads; repeats
//!   within the rate-limit interval are answered 429 and delivered once; `exclusionList`, a
//!   suspended Alert and a suspended Provider hold events back;
//! - a sink answering 500 then 200 gets the event once more after a retry; a dead sink turns the
//!   Alert's and the Provider's `Ready` False with the error in `status.lastDispatchError`;
//! - a KluctlDeployment's own events (in-process) arrive with unprefixed metadata, an error event
//!   for a broken template, while a dead sink on another Alert does not hold up reconciles;
//! - source-controller's GitRepository events arrive through `--events-addr`.
//!
//! Needs `cargo build -p kluctl-controller -p source-controller` and the environment of
//! `make e2e-up`.

#![allow(clippy::too_many_lines)]

use std::time::Duration;

use anyhow::Context as _;
use e2e::kluctl_deployment as kd;
use e2e::sink::{Received, RecordingSink};
use e2e::source::{apply, ready};
use e2e::{GitRepo, KluctlController, SourceController, TestNs, poll_for, unique_name};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::notification::v1beta3::{Alert, Provider};
use gitops_api::source::v1::GitRepository;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;
use sha2::{Digest as _, Sha256};

const WAIT: Duration = Duration::from_secs(60);

/// The retry of a 5xx waits 2 s at least; a dead sink is retried 4 times within the timeout.
const DELIVERY_WAIT: Duration = Duration::from_secs(90);

async fn provider(ns: &TestNs, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    let api: Api<Provider> = Api::namespaced(ns.client.clone(), &ns.name);
    apply(
        &api,
        &json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider",
                "metadata": {"name": name, "namespace": ns.name}, "spec": spec}),
    )
    .await
    .with_context(|| format!("applying Provider {name}"))
}

async fn alert(ns: &TestNs, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    let api: Api<Alert> = Api::namespaced(ns.client.clone(), &ns.name);
    apply(
        &api,
        &json!({"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert",
                "metadata": {"name": name, "namespace": ns.name}, "spec": spec}),
    )
    .await
    .with_context(|| format!("applying Alert {name}"))
}

async fn secret(ns: &TestNs, name: &str, data: serde_json::Value) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(ns.client.clone(), &ns.name);
    apply(
        &api,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns.name},
                "stringData": data}),
    )
    .await
}

/// Waits until the Alert's Ready condition has `status` (and `reason`, when given).
async fn wait_alert_ready(
    ns: &TestNs,
    name: &str,
    status: &str,
    reason: Option<&str>,
) -> anyhow::Result<Alert> {
    let api: Api<Alert> = Api::namespaced(ns.client.clone(), &ns.name);
    poll_for(
        &format!("Alert {name} Ready={status} {reason:?}"),
        DELIVERY_WAIT,
        || async {
            let a = api.get(name).await?;
            let (s, r, _) = ready(&a);
            Ok((s == status && reason.is_none_or(|want| r == want)).then_some(a))
        },
    )
    .await
}

/// A Flux event about KluctlDeployment `name` in `ns`, as a controller POSTs it.
fn kd_event(ns: &str, name: &str, severity: &str, message: &str, revision: &str) -> serde_json::Value {
    json!({
        "involvedObject": {"kind": "KluctlDeployment", "namespace": ns, "name": name,
                           "uid": "5c3d6f6e-1111-2222-3333-444455556666", "apiVersion": "gitops.kluctl.io/v1beta1"},
        "severity": severity,
        "timestamp": "2026-12-07T03:00:00Z",
        "message": message,
        "reason": if severity == "error" { "DeployFailed" } else { "ReconciliationSucceeded" },
        "metadata": {"gitops.kluctl.io/revision": revision, "event.toolkit.fluxcd.io/team": "platform",
                     "gitops.kluctl.io/checksum": "dropped"},
        "reportingController": "kluctl-controller",
        "reportingInstance": "test",
    })
}

async fn post(ctl: &KluctlController, event: &serde_json::Value) -> anyhow::Result<u16> {
    let r = reqwest::Client::new()
        .post(format!("http://{}/", ctl.events_addr))
        .header("content-type", "application/json")
        .body(event.to_string())
        .send()
        .await?;
    Ok(r.status().as_u16())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(data.iter().copied()).collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner.iter().copied()).collect();
    Sha256::digest(&outer).iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn message_of(r: &Received) -> String {
    r.json()["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn events_reach_each_provider_type_once_and_filters_hold_back_the_rest() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("notify_providers", |t| async move {
        let ctl = KluctlController::start(&t.env, &t.name, &[])?;
        let generic = RecordingSink::start(vec![]).await?;
        let hmac = RecordingSink::start(vec![]).await?;
        let slack = RecordingSink::start(vec![]).await?;
        let teams = RecordingSink::start(vec![]).await?;
        let held = RecordingSink::start(vec![]).await?;
        let token = "s3cr3t-hmac-token";
        secret(&t, "hmac", json!({"token": token})).await?;
        provider(&t, "generic", json!({"type": "generic", "address": generic.url})).await?;
        provider(
            &t,
            "hmac",
            json!({"type": "generic-hmac", "address": hmac.url, "secretRef": {"name": "hmac"}}),
        )
        .await?;
        provider(
            &t,
            "slack",
            json!({"type": "slack", "address": slack.url, "channel": "ops", "username": "flux"}),
        )
        .await?;
        provider(&t, "teams", json!({"type": "msteams", "address": teams.url})).await?;
        provider(&t, "held", json!({"type": "generic", "address": held.url})).await?;
        provider(
            &t,
            "suspended",
            json!({"type": "generic", "address": held.url, "suspend": true}),
        )
        .await?;
        let app = [json!({"kind": "KluctlDeployment", "name": "app"})];
        alert(
            &t,
            "generic",
            json!({"providerRef": {"name": "generic"}, "eventSources": app,
                                     "exclusionList": ["^ignored"], "eventMetadata": {"cluster": "e2e"}}),
        )
        .await?;
        alert(
            &t,
            "hmac",
            json!({"providerRef": {"name": "hmac"}, "eventSources": app}),
        )
        .await?;
        alert(
            &t,
            "slack",
            json!({"providerRef": {"name": "slack"}, "eventSources": app}),
        )
        .await?;
        alert(
            &t,
            "teams",
            json!({"providerRef": {"name": "teams"}, "eventSources": app, "summary": "e2e cluster"}),
        )
        .await?;
        alert(
            &t,
            "suspended-alert",
            json!({"providerRef": {"name": "held"}, "eventSources": app, "suspend": true}),
        )
        .await?;
        alert(
            &t,
            "suspended-provider",
            json!({"providerRef": {"name": "suspended"}, "eventSources": app}),
        )
        .await?;
        alert(
            &t,
            "errors-only",
            json!({"providerRef": {"name": "held"}, "eventSources": app, "eventSeverity": "error"}),
        )
        .await?;
        alert(
            &t,
            "other-object",
            json!({"providerRef": {"name": "held"},
                                          "eventSources": [{"kind": "KluctlDeployment", "name": "other"}]}),
        )
        .await?;
        for name in ["generic", "hmac", "slack", "teams"] {
            wait_alert_ready(&t, name, "True", Some("Succeeded")).await?;
        }

        let first = kd_event(&t.name, "app", "info", "deploy succeeded.", "main@sha1:aaaa");
        assert_eq!(post(&ctl, &first).await?, 202);
        assert_eq!(
            post(&ctl, &first).await?,
            429,
            "a repeat within the interval is a duplicate"
        );

        // generic: the event with unprefixed metadata, the Alert's eventMetadata, gotk-component
        let got = generic
            .wait_for(WAIT, |r| message_of(r) == "deploy succeeded.")
            .await?;
        let body = got.json();
        assert_eq!(body["involvedObject"]["kind"], "KluctlDeployment", "{body}");
        assert_eq!(body["involvedObject"]["name"], "app");
        assert_eq!(body["severity"], "info");
        assert_eq!(body["reason"], "ReconciliationSucceeded");
        assert_eq!(body["metadata"]["revision"], "main@sha1:aaaa", "{body}");
        assert_eq!(body["metadata"]["team"], "platform");
        assert_eq!(body["metadata"]["cluster"], "e2e");
        assert!(
            body["metadata"].get("checksum").is_none(),
            "checksum is dropped: {body}"
        );
        assert!(
            body["metadata"]
                .as_object()
                .is_some_and(|m| m.keys().all(|k| !k.contains('/'))),
            "prefixes are stripped: {body}"
        );
        assert_eq!(
            got.headers.get("gotk-component").map(String::as_str),
            Some("kluctl-controller")
        );
        assert_eq!(
            got.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );

        // generic-hmac: X-Signature over the exact body
        let got = hmac
            .wait_for(WAIT, |r| message_of(r) == "deploy succeeded.")
            .await?;
        let signature = got.headers.get("x-signature").context("no X-Signature header")?;
        assert_eq!(
            signature,
            &format!("sha256={}", hmac_sha256(token.as_bytes(), &got.body))
        );

        // slack: one attachment, good colour, author kind/name.namespace, a field per metadata key
        let got = slack
            .wait_for(WAIT, |r| {
                r.json()["attachments"][0]["text"] == "deploy succeeded."
            })
            .await?;
        let body = got.json();
        assert_eq!(body["channel"], "ops", "{body}");
        assert_eq!(body["username"], "flux");
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], "good", "{body}");
        assert_eq!(
            attachment["author_name"],
            format!("kluctldeployment/app.{}", t.name)
        );
        let fields = attachment["fields"].as_array().context("slack fields")?;
        assert!(
            fields
                .iter()
                .any(|f| f["title"] == "revision" && f["value"] == "main@sha1:aaaa"),
            "{body}"
        );

        // msteams (not a webhook.office.com host): the Adaptive Card with the summary first
        let got = teams.wait_for(WAIT, |r| r.json()["type"] == "message").await?;
        let body = got.json();
        let card = &body["attachments"][0];
        assert_eq!(
            card["contentType"], "application/vnd.microsoft.card.adaptive",
            "{body}"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert!(body.to_string().contains("deploy succeeded."), "{body}");
        assert!(body.to_string().contains("e2e cluster"), "{body}");

        // exclusionList: 'ignored ...' skips the generic sink but reaches the others
        assert_eq!(
            post(
                &ctl,
                &kd_event(&t.name, "app", "info", "ignored event", "main@sha1:aaaa")
            )
            .await?,
            202
        );
        hmac.wait_for(WAIT, |r| message_of(r) == "ignored event").await?;
        // an error event reaches the errors-only Alert (and everyone else)
        let failed = kd_event(
            &t.name,
            "app",
            "error",
            "deploy failed with 1 errors.",
            "main@sha1:bbbb",
        );
        assert_eq!(post(&ctl, &failed).await?, 202);
        held.wait_for(WAIT, |r| message_of(r) == "deploy failed with 1 errors.")
            .await?;
        generic
            .wait_for(WAIT, |r| r.json()["severity"] == "error")
            .await?;
        let slack_error = slack
            .wait_for(WAIT, |r| r.json()["attachments"][0]["color"] == "danger")
            .await?;
        assert!(slack_error.json().to_string().contains("deploy failed"));

        assert!(
            generic
                .requests()
                .iter()
                .all(|r| message_of(r) != "ignored event"),
            "exclusionList let an event through"
        );
        assert_eq!(
            generic
                .requests()
                .iter()
                .filter(|r| message_of(r) == "deploy succeeded.")
                .count(),
            1,
            "the duplicate was delivered"
        );
        // The held sink only ever saw the error event: not the info events (errors-only), nothing
        // through the suspended Alert or Provider, nothing for the other object.
        let held_messages: Vec<String> = held.requests().iter().map(message_of).collect();
        assert_eq!(
            held_messages,
            ["deploy failed with 1 errors."],
            "held sink got {held_messages:?}"
        );

        // an unparsable body is refused
        let r = reqwest::Client::new()
            .post(format!("http://{}/", ctl.events_addr))
            .body("not json")
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 400);

        let a = wait_alert_ready(&t, "generic", "True", Some("Succeeded")).await?;
        let status = serde_json::to_value(&a)?["status"].clone();
        assert!(
            status["lastDispatchTime"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z')),
            "{status}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_retried_sink_gets_the_event_once_and_a_dead_sink_shows_in_status() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("notify_retry", |t| async move {
        let ctl = KluctlController::start(&t.env, &t.name, &[])?;
        let flaky = RecordingSink::start(vec![500]).await?;
        // A port nothing listens on: connection refused on every attempt.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            format!("http://{}", l.local_addr()?)
        };
        provider(&t, "flaky", json!({"type": "generic", "address": flaky.url})).await?;
        provider(
            &t,
            "dead",
            json!({"type": "generic", "address": dead, "timeout": "5s"}),
        )
        .await?;
        provider(
            &t,
            "unsupported",
            json!({"type": "webex", "address": "https://webex.invalid"}),
        )
        .await?;
        let app = [json!({"kind": "KluctlDeployment", "name": "app"})];
        alert(
            &t,
            "flaky",
            json!({"providerRef": {"name": "flaky"}, "eventSources": app}),
        )
        .await?;
        alert(
            &t,
            "dead",
            json!({"providerRef": {"name": "dead"}, "eventSources": app}),
        )
        .await?;
        alert(
            &t,
            "missing",
            json!({"providerRef": {"name": "nope"}, "eventSources": app}),
        )
        .await?;
        alert(
            &t,
            "bad-regex",
            json!({"providerRef": {"name": "flaky"}, "eventSources": app, "inclusionList": ["("]}),
        )
        .await?;
        wait_alert_ready(&t, "flaky", "True", None).await?;

        assert_eq!(
            post(
                &ctl,
                &kd_event(&t.name, "app", "info", "deploy succeeded.", "main@sha1:cccc")
            )
            .await?,
            202
        );
        flaky.wait_for(DELIVERY_WAIT, |r| r.answered == 200).await?;
        let answered: Vec<u16> = flaky.requests().iter().map(|r| r.answered).collect();
        assert_eq!(answered, [500, 200], "one failure, one retry, then done");

        let a = wait_alert_ready(&t, "dead", "False", Some("NotificationDispatchFailed")).await?;
        let status = serde_json::to_value(&a)?["status"].clone();
        let error = status["lastDispatchError"].as_str().unwrap_or_default();
        assert!(error.contains("dead"), "the error names the Provider: {status}");
        let providers: Api<Provider> = Api::namespaced(t.client.clone(), &t.name);
        poll_for("Provider dead Ready=False", WAIT, || async {
            let p = providers.get("dead").await?;
            Ok((ready(&p).1 == "NotificationDispatchFailed").then_some(()))
        })
        .await?;
        let p = poll_for("Provider unsupported Ready=False", WAIT, || async {
            let p = providers.get("unsupported").await?;
            Ok((ready(&p).0 == "False").then_some(p))
        })
        .await?;
        let (_, reason, message) = ready(&p);
        assert_eq!(reason, "UnsupportedConfiguration", "{message}");
        assert!(message.contains("webex"), "{message}");

        let a = wait_alert_ready(&t, "missing", "False", Some("ProviderNotFound")).await?;
        assert!(ready(&a).2.contains("spec.providerRef.name"), "{:?}", ready(&a));
        let a = wait_alert_ready(&t, "bad-regex", "False", Some("InvalidConfig")).await?;
        assert!(ready(&a).2.contains("spec.inclusionList[0]"), "{:?}", ready(&a));
        // Creating the missing Provider makes the Alert Ready.
        provider(&t, "nope", json!({"type": "generic", "address": flaky.url})).await?;
        wait_alert_ready(&t, "missing", "True", None).await?;
        Ok(())
    })
    .await
}

/// A project with one ConfigMap whose value comes from a template variable.
fn project(ns: &str, value: &str) -> Vec<(String, String)> {
    vec![
        (
            ".kluctl.yaml".into(),
            format!("discriminator: notify-{ns}\ntargets:\n  - name: test\n"),
        ),
        ("deployment.yaml".into(), "deployments:\n  - path: app\n".into()),
        (
            "app/cm.yaml".into(),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notified\n  namespace: {ns}\ndata:\n  value: \"{value}\"\n"
            ),
        ),
    ]
}

#[tokio::test]
async fn kluctl_deployment_events_are_dispatched_in_process() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("notify_kd_events", |t| async move {
        let ctl = KluctlController::start(&t.env, &t.name, &[])?;
        let sink = RecordingSink::start(vec![]).await?;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            format!("http://{}", l.local_addr()?)
        };
        provider(&t, "sink", json!({"type": "generic", "address": sink.url})).await?;
        provider(&t, "dead", json!({"type": "generic", "address": dead})).await?;
        let all = [json!({"kind": "KluctlDeployment", "name": "*"})];
        alert(&t, "sink", json!({"providerRef": {"name": "sink"}, "eventSources": all})).await?;
        alert(&t, "dead", json!({"providerRef": {"name": "dead"}, "eventSources": all})).await?;
        wait_alert_ready(&t, "sink", "True", None).await?;

        let repo = GitRepo::create(&t.env, &unique_name("notify"))?;
        let files = project(&t.name, "one");
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        let first = repo.commit(&files, "first")?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        let api: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), &t.name);
        kd::apply(
            &api,
            "app",
            json!({"source": {"git": {"url": url, "ref": {"branch": "main"}}}, "target": "test", "interval": "1h", "prune": true, "validate": false}),
        )
        .await?;
        let got = sink
            .wait_for(WAIT, |r| r.json()["reason"] == "ReconciliationSucceeded" && r.json()["message"].as_str().is_some_and(|m| m.contains("deploy succeeded")))
            .await?;
        let body = got.json();
        assert_eq!(body["involvedObject"]["kind"], "KluctlDeployment", "{body}");
        assert_eq!(body["involvedObject"]["apiVersion"], "gitops.kluctl.io/v1beta1");
        assert_eq!(body["involvedObject"]["namespace"], t.name);
        assert_eq!(body["severity"], "info");
        assert_eq!(body["reportingController"], "kluctl-controller");
        let revision = body["metadata"]["revision"].as_str().unwrap_or_default();
        assert!(revision.contains(&first), "revision {revision:?} names commit {first}: {body}");

        // A broken template: an error event naming the file, and reconciles go on.
        let broken = [("app/cm.yaml", "data: {{ broken\n")];
        repo.commit(&broken, "broken")?;
        kd::request(&api, &ctl, "app", "reconcile", "broken").await?;
        let got = sink.wait_for(WAIT, |r| r.json()["severity"] == "error").await?;
        let body = got.json();
        assert!(body["message"].as_str().is_some_and(|m| m.contains("cm.yaml")), "names the file: {body}");

        // The dead sink's Alert failed meanwhile, and a fixed commit still deploys promptly.
        wait_alert_ready(&t, "dead", "False", Some("NotificationDispatchFailed")).await?;
        let fixed = project(&t.name, "two");
        let fixed: Vec<(&str, &str)> = fixed.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        repo.commit(&fixed, "fixed")?;
        kd::request(&api, &ctl, "app", "reconcile", "fixed").await?;
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(t.client.clone(), &t.name);
        poll_for("the fixed commit deployed", WAIT, || async {
            let cm = cms.get_opt("notified").await?;
            Ok(cm
                .and_then(|c| c.data)
                .is_some_and(|d| d.get("value").map(String::as_str) == Some("two"))
                .then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn git_repository_events_arrive_through_events_addr() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("notify_source_events", |t| async move {
        let ctl = KluctlController::start(&t.env, &t.name, &[])?;
        let events_addr = format!("http://{}/", ctl.events_addr);
        let _source = SourceController::start(&t.env, &t.name, &["--events-addr", &events_addr])?;
        let sink = RecordingSink::start(vec![]).await?;
        provider(&t, "sink", json!({"type": "generic", "address": sink.url})).await?;
        alert(
            &t,
            "sources",
            json!({"providerRef": {"name": "sink"}, "eventSources": [{"kind": "GitRepository", "name": "*"}]}),
        )
        .await?;
        wait_alert_ready(&t, "sources", "True", None).await?;
        let repo = GitRepo::create(&t.env, &unique_name("notify-src"))?;
        let sha = repo.commit(&[("README.md", "hello\n")], "first")?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        let api: Api<GitRepository> = Api::namespaced(t.client.clone(), &t.name);
        apply(
            &api,
            &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "repo", "namespace": t.name, "labels": {"e2e.kluctl-gitops/ns": t.name}},
                    "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}}}),
        )
        .await?;
        let got = sink.wait_for(WAIT, |r| r.json()["involvedObject"]["kind"] == "GitRepository").await?;
        let body = got.json();
        assert_eq!(body["reportingController"], "source-controller", "{body}");
        assert_eq!(body["involvedObject"]["name"], "repo");
        let revision = body["metadata"]["revision"].as_str().unwrap_or_default();
        assert!(revision.ends_with(&sha), "revision {revision:?} is the commit {sha}: {body}");
        Ok(())
    })
    .await
}
