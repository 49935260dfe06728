//! Destinations end to end against the scripted local server: resolution errors, every type's
//! request, retries, timeouts, TLS, mTLS and proxies, and that no secret reaches a message.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::Sha256;

use super::test_support::{
    CA_CRT, CLIENT_CRT, CLIENT_KEY, Reply, SHA, TestServer, error_event, event, fast_retry, provider, secret,
};
use super::*;

fn destination(spec: serde_json::Value, secrets: &ProviderSecrets) -> Destination {
    Destination::from_parts(&provider(spec), secrets)
        .expect("destination")
        .with_retry(fast_retry())
}

fn with_secret(data: SecretData) -> ProviderSecrets {
    ProviderSecrets {
        secret: Some(data),
        ..ProviderSecrets::default()
    }
}

fn resolve_error(spec: serde_json::Value, secrets: &ProviderSecrets) -> ProviderError {
    Destination::from_parts(&provider(spec), secrets).expect_err("resolution fails")
}

// ---- resolution ----------------------------------------------------------------------------

#[test]
fn unsupported_types_are_refused_naming_the_field_and_the_supported_ones() {
    let err = resolve_error(
        json!({"type": "telegram", "channel": "x"}),
        &ProviderSecrets::default(),
    );
    assert_eq!(err.reason(), "UnsupportedConfiguration");
    let msg = err.to_string();
    assert!(
        msg.contains("Provider 'apps/hook'") && msg.contains("spec.type 'telegram'"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "generic, generic-hmac, slack, discord, msteams, googlechat, github, gitea, gitlab, alertmanager"
        ),
        "{msg}"
    );
    for t in gitops_api::notification::v1beta3::ProviderType::ALL {
        let supported = SUPPORTED_TYPES.contains(t);
        let result = Destination::from_parts(
            &provider(json!({"type": t.as_str()})),
            &ProviderSecrets::default(),
        );
        if !supported {
            assert_eq!(
                result.expect_err("unsupported").reason(),
                "UnsupportedConfiguration",
                "{t}"
            );
        }
    }
}

#[test]
fn commit_status_expr_is_refused_before_any_secret_is_needed() {
    let err = resolve_error(
        json!({"type": "github", "address": "https://github.com/o/r", "secretRef": {"name": "gh"},
               "commitStatusExpr": "event.involvedObject.name"}),
        &ProviderSecrets::default(),
    );
    assert_eq!(err.reason(), "UnsupportedConfiguration");
    assert!(err.to_string().contains("spec.commitStatusExpr"), "{err}");
}

#[test]
fn missing_secrets_and_keys_name_the_field_the_secret_and_the_key() {
    let err = resolve_error(
        json!({"type": "generic", "address": "http://h/", "secretRef": {"name": "missing"}}),
        &ProviderSecrets::default(),
    );
    assert_eq!(err.reason(), "SecretNotFound");
    assert!(
        err.to_string()
            .contains("Secret 'apps/missing' named by spec.secretRef.name"),
        "{err}"
    );

    let err = resolve_error(
        json!({"type": "generic-hmac", "address": "http://h/", "secretRef": {"name": "hmac"}}),
        &with_secret(secret(&[("username", "u")])),
    );
    assert_eq!(err.reason(), "MissingSecretKey");
    assert!(
        err.to_string()
            .contains("Secret 'apps/hmac' (spec.secretRef) has no key 'token'"),
        "{err}"
    );

    let err = resolve_error(
        json!({"type": "generic-hmac", "address": "http://h/"}),
        &ProviderSecrets::default(),
    );
    assert_eq!(err.reason(), "MissingSecretKey");
    assert!(err.to_string().contains("spec.secretRef is not set"), "{err}");

    let err = resolve_error(
        json!({"type": "gitlab", "address": "https://gitlab.com/g/p", "secretRef": {"name": "gl"}}),
        &with_secret(secret(&[("address", "https://gitlab.com/g/p")])),
    );
    assert_eq!(err.reason(), "MissingSecretKey");

    let err = resolve_error(
        json!({"type": "github", "address": "https://github.com/o/r", "secretRef": {"name": "app"}}),
        &with_secret(secret(&[("githubAppID", "1"), ("githubAppPrivateKey", "k")])),
    );
    assert_eq!(err.reason(), "UnsupportedConfiguration");
    assert!(err.to_string().contains("GitHub App"), "{err}");

    let err = resolve_error(
        json!({"type": "generic", "address": "http://h/", "proxySecretRef": {"name": "px"}}),
        &ProviderSecrets {
            proxy: Some(secret(&[("username", "u")])),
            ..ProviderSecrets::default()
        },
    );
    assert_eq!(err.reason(), "MissingSecretKey");
    assert!(
        err.to_string()
            .contains("Secret 'apps/px' (spec.proxySecretRef) has no key 'address'"),
        "{err}"
    );
}

#[test]
fn addresses_must_fit_the_type() {
    let err = resolve_error(json!({"type": "slack"}), &ProviderSecrets::default());
    assert_eq!(err.reason(), "InvalidAddress");
    assert!(err.to_string().contains("spec.address"), "{err}");

    let err = resolve_error(
        json!({"type": "generic", "address": "not a url"}),
        &ProviderSecrets::default(),
    );
    assert_eq!(err.reason(), "InvalidAddress");

    let err = resolve_error(
        json!({"type": "msteams", "secretRef": {"name": "teams"}}),
        &with_secret(secret(&[("address", "ftp://files.example.com/x")])),
    );
    assert_eq!(err.reason(), "InvalidAddress");
    assert!(
        err.to_string().contains("key 'address' of Secret 'apps/teams'"),
        "{err}"
    );
    assert!(!err.to_string().contains("files.example.com"), "{err}");

    let err = resolve_error(
        json!({"type": "github", "address": "https://github.com/only-owner", "secretRef": {"name": "gh"}}),
        &with_secret(secret(&[("token", "ghp_x")])),
    );
    assert_eq!(err.reason(), "InvalidAddress");
    assert!(err.to_string().contains("'<owner>/<repo>'"), "{err}");
}

#[test]
fn bad_headers_proxy_tls_and_timeout_have_their_reasons() {
    let err = resolve_error(
        json!({"type": "generic", "address": "http://h/", "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("headers", "- just\n- a list with hdr-s3cret\n")])),
    );
    assert_eq!(err.reason(), "InvalidSecret");
    assert!(
        err.to_string().contains("key 'headers' of Secret 'apps/s'"),
        "{err}"
    );
    assert!(!err.to_string().contains("hdr-s3cret"), "{err}");

    let err = resolve_error(
        json!({"type": "generic", "address": "http://h/", "proxy": "ftp://p/"}),
        &ProviderSecrets::default(),
    );
    assert_eq!(err.reason(), "InvalidProxy");
    assert!(err.to_string().contains("spec.proxy"), "{err}");

    let err = resolve_error(
        json!({"type": "generic", "address": "https://h/", "certSecretRef": {"name": "tls"}}),
        &ProviderSecrets {
            cert: Some(secret(&[("tls.crt", CLIENT_CRT)])),
            ..ProviderSecrets::default()
        },
    );
    assert_eq!(err.reason(), "InvalidTLSConfig");
    assert!(
        err.to_string()
            .contains("'tls.crt' and 'tls.key' must be set together"),
        "{err}"
    );
    assert!(
        err.to_string().contains("Secret 'apps/tls' (spec.certSecretRef)"),
        "{err}"
    );

    let err = resolve_error(
        json!({"type": "generic", "address": "https://h/", "certSecretRef": {"name": "tls"}}),
        &ProviderSecrets {
            cert: Some(secret(&[("ca.crt", "not pem")])),
            ..ProviderSecrets::default()
        },
    );
    assert_eq!(err.reason(), "InvalidTLSConfig");
    assert!(err.to_string().contains("ca.crt"), "{err}");

    let mut p = provider(json!({"type": "generic", "address": "http://h/"}));
    p.spec.timeout = Some("soon".into());
    let err = Destination::from_parts(&p, &ProviderSecrets::default()).expect_err("bad timeout");
    assert_eq!(err.reason(), "InvalidTimeout");
}

#[test]
fn no_resolution_message_or_debug_output_shows_a_secret() {
    let token = "tok-9f8e7d6c5b4a";
    let password = "pw-0a1b2c3d4e";
    let header_value = "hv-deadbeef42";
    let address = "https://user-x:addr-pass-77@hooks.example.com/services/T0/B0/path-key-55";
    let data = secret(&[
        ("address", address),
        ("token", token),
        ("password", password),
        ("headers", &format!("X-Api-Key: {header_value}\n")),
    ]);
    let secrets = with_secret(data.clone());
    let cases = [
        json!({"type": "generic", "secretRef": {"name": "s"}, "certSecretRef": {"name": "tls"}}),
        json!({"type": "generic", "secretRef": {"name": "s"}, "proxySecretRef": {"name": "px"}}),
        json!({"type": "github", "secretRef": {"name": "s"}}),
        json!({"type": "generic", "secretRef": {"name": "s"}, "timeout": "x"}),
    ];
    for spec in cases {
        let err = Destination::from_parts(&provider(spec.clone()), &secrets).expect_err("fails");
        let text = format!("{err} {err:?}");
        for s in [
            token,
            password,
            header_value,
            "addr-pass-77",
            "path-key-55",
            "user-x",
        ] {
            assert!(!text.contains(s), "{spec}: '{s}' in {text}");
        }
    }
    let d = destination(
        json!({"type": "generic-hmac", "secretRef": {"name": "s"}}),
        &secrets,
    );
    let debug = format!("{d:?}");
    assert!(
        debug.contains("https://hooks.example.com") && debug.contains("apps/hook"),
        "{debug}"
    );
    for s in [token, password, header_value, "addr-pass-77", "path-key-55"] {
        assert!(!debug.contains(s), "'{s}' in {debug}");
    }
}

// ---- delivery ------------------------------------------------------------------------------

#[tokio::test]
async fn generic_posts_the_event_with_component_and_secret_headers() {
    let server = TestServer::start(vec![Reply::status(202, "")]).await;
    let d = destination(
        json!({"type": "generic", "secretRef": {"name": "s"}}),
        &with_secret(secret(&[
            ("address", &format!("{}/hook?x=1", server.url)),
            ("headers", "X-Api-Key: k-123\nAuthorization: Bearer abc\n"),
        ])),
    );
    let ev = event(&[("revision", "main@sha1:abc"), ("summary", "prod")]);
    assert_eq!(d.send(&ev).await.expect("sent"), Sent::Delivered);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/hook?x=1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("gotk-component"), Some("kluctl-controller"));
    assert_eq!(r.header("x-api-key"), Some("k-123"));
    assert_eq!(r.header("authorization"), Some("Bearer abc"));
    assert_eq!(r.header("x-signature"), None);
    assert_eq!(r.json(), serde_json::to_value(&ev).expect("json"));
    assert_eq!(r.json()["metadata"]["revision"], "main@sha1:abc");
}

#[tokio::test]
async fn generic_hmac_signature_verifies_over_the_received_body() {
    let server = TestServer::start(vec![Reply::ok()]).await;
    let d = destination(
        json!({"type": "generic-hmac", "address": server.url, "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("token", "hmac-key-1")])),
    );
    d.send(&error_event()).await.expect("sent");
    let r = &server.seen()[0];
    let sig = r.header("x-signature").expect("signature");
    let hex = sig.strip_prefix("sha256=").expect("sha256=");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hmac-key-1").expect("key");
    mac.update(&r.body);
    assert_eq!(hex, gitops_api::revision::lower_hex(&mac.finalize().into_bytes()));
    assert_eq!(r.json()["severity"], "error");
}

#[tokio::test]
async fn a_500_then_200_is_delivered_once_after_a_retry() {
    let server = TestServer::start(vec![Reply::status(500, "busy"), Reply::ok()]).await;
    let d = destination(
        json!({"type": "generic", "address": server.url}),
        &ProviderSecrets::default(),
    );
    assert_eq!(d.send(&event(&[])).await.expect("sent"), Sent::Delivered);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn a_429_is_retried_and_a_501_is_not() {
    let server = TestServer::start(vec![Reply::status(429, ""), Reply::status(429, ""), Reply::ok()]).await;
    let d = destination(
        json!({"type": "generic", "address": server.url}),
        &ProviderSecrets::default(),
    );
    d.send(&event(&[])).await.expect("sent");
    assert_eq!(server.seen().len(), 3);

    let server = TestServer::start(vec![Reply::status(501, "no")]).await;
    let d = destination(
        json!({"type": "generic", "address": server.url}),
        &ProviderSecrets::default(),
    );
    let err = d.send(&event(&[])).await.expect_err("501");
    assert_eq!(err.status(), Some(501));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_400_fails_at_once_with_the_code_and_the_masked_body() {
    let token = "slack-tok-31337";
    let server = TestServer::start(vec![Reply::status(400, &format!("invalid_payload for {token}"))]).await;
    let d = destination(
        json!({"type": "slack", "address": format!("{}/services/T/B/secret-path", server.url),
               "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("token", token)])),
    );
    let err = d.send(&event(&[])).await.expect_err("400");
    assert_eq!(server.seen().len(), 1, "no retry");
    assert_eq!(err.status(), Some(400));
    let msg = err.to_string();
    assert!(
        msg.contains("request failed with status code 400: invalid_payload for ***"),
        "{msg}"
    );
    assert!(
        msg.contains("Provider 'apps/hook'") && msg.contains("1 attempt(s)"),
        "{msg}"
    );
    assert!(!msg.contains(token) && !msg.contains("secret-path"), "{msg}");
}

#[tokio::test]
async fn retries_stop_after_four_and_the_last_error_is_reported() {
    let server = TestServer::start(vec![Reply::status(503, "down for maintenance")]).await;
    let d = destination(
        json!({"type": "generic", "address": server.url}),
        &ProviderSecrets::default(),
    );
    let err = d.send(&event(&[])).await.expect_err("503");
    assert_eq!(server.seen().len(), 5);
    assert!(err.to_string().contains("5 attempt(s)"), "{err}");
    assert!(
        err.to_string().contains("status code 503: down for maintenance"),
        "{err}"
    );
}

#[tokio::test]
async fn connection_errors_are_retried() {
    // A port nobody listens on: bind, note, close.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let d = destination(
        json!({"type": "generic", "address": format!("http://{addr}/")}),
        &ProviderSecrets::default(),
    );
    let err = d.send(&event(&[])).await.expect_err("refused");
    assert_eq!(err.status(), None);
    assert!(err.to_string().contains("5 attempt(s)"), "{err}");
}

#[tokio::test]
async fn the_provider_timeout_bounds_a_hanging_server() {
    let server = TestServer::start(vec![Reply::Hang]).await;
    let d = destination(
        json!({"type": "generic", "address": server.url, "timeout": "300ms"}),
        &ProviderSecrets::default(),
    );
    let started = Instant::now();
    let err = d.send(&event(&[])).await.expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, SendError::Timeout { attempts: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("timeout of 300ms"), "{err}");
}

#[tokio::test]
async fn a_timeout_during_retries_reports_the_last_error() {
    let server = TestServer::start(vec![Reply::status(500, "still broken")]).await;
    let d = Destination::from_parts(
        &provider(json!({"type": "generic", "address": server.url, "timeout": "200ms"})),
        &ProviderSecrets::default(),
    )
    .expect("destination")
    .with_retry(RetryPolicy {
        max_retries: 4,
        min_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(30),
    });
    let err = d.send(&event(&[])).await.expect_err("timeout");
    assert!(matches!(err, SendError::Timeout { attempts: 1, .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("last error: request failed with status code 500: still broken"),
        "{err}"
    );
}

#[tokio::test]
async fn chat_types_post_their_payloads() {
    let server = TestServer::start(vec![Reply::ok()]).await;
    let ev = event(&[("revision", "r1")]);
    let slack = destination(
        json!({"type": "slack", "address": server.url, "channel": "#ops", "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("token", "xoxb-1"), ("username", "flux-bot")])),
    );
    slack.send(&ev).await.expect("slack");
    let discord = destination(
        json!({"type": "discord", "address": format!("{}/api/webhooks/1/t", server.url)}),
        &ProviderSecrets::default(),
    );
    discord.send(&ev).await.expect("discord");
    let teams = destination(
        json!({"type": "msteams", "address": format!("{}/workflows/x", server.url)}),
        &ProviderSecrets::default(),
    );
    teams.send(&ev).await.expect("msteams");
    let chat = destination(
        json!({"type": "googlechat", "address": format!("{}/v1/spaces/x", server.url)}),
        &ProviderSecrets::default(),
    );
    chat.send(&ev).await.expect("googlechat");

    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].header("authorization"), Some("Bearer xoxb-1"));
    assert_eq!(seen[0].json()["channel"], "#ops");
    assert_eq!(seen[0].json()["username"], "flux-bot");
    assert_eq!(
        seen[0].json()["attachments"][0]["author_name"],
        "kluctldeployment/podinfo.apps"
    );
    assert_eq!(seen[1].target, "/api/webhooks/1/t/slack");
    assert_eq!(seen[1].json()["attachments"][0]["fallback"], "");
    assert_eq!(
        seen[2].json()["attachments"][0]["content"]["type"],
        "AdaptiveCard"
    );
    assert_eq!(
        seen[3].json()["cards"][0]["header"]["title"],
        "kluctldeployment/podinfo.apps"
    );
    for r in &seen {
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn alertmanager_posts_one_alert_with_basic_auth() {
    let server = TestServer::start(vec![Reply::ok()]).await;
    let d = destination(
        json!({"type": "alertmanager", "address": format!("{}/api/v2/alerts", server.url), "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("username", "am"), ("password", "am-pass")])),
    );
    d.send(&error_event()).await.expect("sent");
    let r = &server.seen()[0];
    assert_eq!(r.target, "/api/v2/alerts");
    // base64("am:am-pass")
    assert_eq!(r.header("authorization"), Some("Basic YW06YW0tcGFzcw=="));
    assert_eq!(
        r.json()[0]["labels"]["alertname"],
        "FluxKluctlDeploymentHealthcheckfailed"
    );
    assert_eq!(r.json()[0]["status"], "firing");
}

#[tokio::test]
async fn the_secret_address_wins_over_spec_address() {
    let server = TestServer::start(vec![Reply::ok()]).await;
    let d = destination(
        json!({"type": "generic", "address": "http://127.0.0.1:1/unused", "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("address", &format!("  {}/from-secret\n", server.url))])),
    );
    d.send(&event(&[])).await.expect("sent");
    assert_eq!(server.seen()[0].target, "/from-secret");
}

#[tokio::test]
async fn a_proxy_from_proxy_secret_ref_carries_the_request_and_its_credentials() {
    let proxy = TestServer::start(vec![Reply::ok()]).await;
    let d = destination(
        json!({"type": "generic", "address": "http://hooks.invalid/path", "proxySecretRef": {"name": "px"},
               "proxy": "http://127.0.0.1:1"}),
        &ProviderSecrets {
            proxy: Some(secret(&[
                ("address", &proxy.url),
                ("username", "pu"),
                ("password", "pp"),
            ])),
            ..ProviderSecrets::default()
        },
    );
    d.send(&event(&[])).await.expect("sent through the proxy");
    let r = &proxy.seen()[0];
    assert_eq!(r.target, "http://hooks.invalid/path");
    // base64("pu:pp")
    assert_eq!(r.header("proxy-authorization"), Some("Basic cHU6cHA="));
}

// ---- commit statuses -------------------------------------------------------------------------

#[tokio::test]
async fn github_lists_then_creates_a_status_on_the_commit() {
    let server = TestServer::start(vec![
        Reply::status(
            200,
            r#"[{"context": "other", "state": "success", "description": "x"}]"#,
        ),
        Reply::status(201, "{}"),
    ])
    .await;
    let d = destination(
        json!({"type": "github", "address": format!("{}/org/app.git", server.url), "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("token", "ghp_tok")])),
    );
    let ev = event(&[("revision", &format!("main@sha1:{SHA}"))]);
    assert_eq!(d.send(&ev).await.expect("sent"), Sent::Delivered);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].target,
        format!("/api/v3/repos/org/app/commits/{SHA}/statuses?per_page=50")
    );
    assert_eq!(seen[0].header("authorization"), Some("Bearer ghp_tok"));
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].target, format!("/api/v3/repos/org/app/statuses/{SHA}"));
    assert_eq!(
        seen[1].json(),
        json!({"state": "success", "context": "kluctldeployment/podinfo/0c9c2e41",
               "description": "reconciliation succeeded"})
    );
}

#[tokio::test]
async fn github_skips_an_unchanged_status_progressing_events_and_fails_without_a_commit() {
    let listed = r#"[{"context": "kluctldeployment/podinfo/0c9c2e41", "state": "failure",
                      "description": "health check failed"}]"#;
    let server = TestServer::start(vec![Reply::status(200, listed)]).await;
    let d = destination(
        json!({"type": "github", "address": format!("{}/org/app", server.url), "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("password", "ghp_from_password")])),
    );
    let mut ev = error_event();
    ev.metadata.insert("originRevision".into(), SHA.into());
    assert!(matches!(d.send(&ev).await.expect("skipped"), Sent::Skipped(_)));
    assert_eq!(server.seen().len(), 1);
    assert_eq!(
        server.seen()[0].header("authorization"),
        Some("Bearer ghp_from_password")
    );

    ev.reason = "Progressing".into();
    assert!(matches!(d.send(&ev).await.expect("skipped"), Sent::Skipped(_)));
    assert_eq!(server.seen().len(), 1, "no request for Progressing");

    let err = d.send(&event(&[])).await.expect_err("no revision");
    assert!(matches!(err, SendError::Event { .. }), "{err:?}");
    assert!(
        err.to_string().contains("KluctlDeployment 'apps/podinfo'"),
        "{err}"
    );
    assert!(err.to_string().contains("missing revision metadata"), "{err}");
}

#[tokio::test]
async fn gitea_sets_pending_for_progressing_with_its_token_header() {
    let server = TestServer::start(vec![Reply::status(200, "[]"), Reply::status(201, "{}")]).await;
    let d = destination(
        json!({"type": "gitea", "address": format!("{}/org/app", server.url), "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("token", "gitea-tok")])),
    );
    let mut ev = event(&[("revision", &format!("main/{SHA}"))]);
    ev.reason = "Progressing".into();
    assert_eq!(d.send(&ev).await.expect("sent"), Sent::Delivered);
    let seen = server.seen();
    assert_eq!(
        seen[0].target,
        format!("/api/v1/repos/org/app/commits/{SHA}/statuses?page=1&limit=50")
    );
    assert_eq!(seen[0].header("authorization"), Some("token gitea-tok"));
    assert_eq!(seen[1].target, format!("/api/v1/repos/org/app/statuses/{SHA}"));
    assert_eq!(seen[1].json()["state"], "pending");
    assert_eq!(seen[1].json()["context"], "kluctldeployment/podinfo/0c9c2e41");
}

#[tokio::test]
async fn gitlab_sets_a_status_on_the_project_path() {
    let server = TestServer::start(vec![Reply::status(200, "[]"), Reply::status(201, "{}")]).await;
    let d = destination(
        json!({"type": "gitlab", "address": format!("{}/group/sub/app", server.url), "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("token", "glpat-1")])),
    );
    d.send(&error_event_with_commit()).await.expect("sent");
    let seen = server.seen();
    assert_eq!(
        seen[0].target,
        format!(
            "/api/v4/projects/group%2Fsub%2Fapp/repository/commits/{SHA}/statuses?name=kluctldeployment%2Fpodinfo%2F0c9c2e41"
        )
    );
    assert_eq!(seen[0].header("private-token"), Some("glpat-1"));
    assert_eq!(
        seen[1].target,
        format!("/api/v4/projects/group%2Fsub%2Fapp/statuses/{SHA}")
    );
    assert_eq!(
        seen[1].json(),
        json!({"state": "failed", "name": "kluctldeployment/podinfo/0c9c2e41", "description": "health check failed"})
    );
}

fn error_event_with_commit() -> gitops_runtime::FluxEvent {
    let mut ev = error_event();
    ev.metadata.insert("commit".into(), SHA.into());
    ev
}

// ---- TLS ---------------------------------------------------------------------------------------

#[tokio::test]
async fn https_with_the_ca_from_cert_secret_ref_is_trusted_and_without_it_is_not() {
    let server = TestServer::start_tls(vec![Reply::ok()], false).await;
    let spec = json!({"type": "generic", "address": server.url, "certSecretRef": {"name": "ca"}});
    let d = destination(
        spec,
        &ProviderSecrets {
            cert: Some(secret(&[("ca.crt", CA_CRT)])),
            ..ProviderSecrets::default()
        },
    );
    assert_eq!(d.send(&event(&[])).await.expect("trusted"), Sent::Delivered);
    assert_eq!(server.seen().len(), 1);

    let untrusted = destination(
        json!({"type": "generic", "address": server.url}),
        &ProviderSecrets::default(),
    );
    let err = untrusted.send(&event(&[])).await.expect_err("untrusted CA");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(
        err.to_string().contains("1 attempt(s)"),
        "a bad certificate is not retried: {err}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn mtls_sends_the_client_certificate() {
    let server = TestServer::start_tls(vec![Reply::ok()], true).await;
    let spec = json!({"type": "generic", "address": server.url, "certSecretRef": {"name": "tls"}});
    let d = destination(
        spec.clone(),
        &ProviderSecrets {
            cert: Some(secret(&[
                ("ca.crt", CA_CRT),
                ("tls.crt", CLIENT_CRT),
                ("tls.key", CLIENT_KEY),
            ])),
            ..ProviderSecrets::default()
        },
    );
    assert_eq!(d.send(&event(&[])).await.expect("mTLS"), Sent::Delivered);

    let without = destination(
        spec,
        &ProviderSecrets {
            cert: Some(secret(&[("caFile", CA_CRT)])),
            ..ProviderSecrets::default()
        },
    );
    without
        .send(&event(&[]))
        .await
        .expect_err("no client certificate");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn commit_status_types_take_the_ca_from_secret_ref() {
    let server = TestServer::start_tls(vec![Reply::status(200, "[]"), Reply::status(201, "{}")], false).await;
    let d = destination(
        json!({"type": "gitea", "address": format!("{}/org/app", server.url), "secretRef": {"name": "s"}}),
        &with_secret(secret(&[("token", "t-1"), ("ca.crt", CA_CRT)])),
    );
    assert_eq!(
        d.send(&error_event_with_commit()).await.expect("sent"),
        Sent::Delivered
    );
    assert_eq!(server.seen().len(), 2);
}
