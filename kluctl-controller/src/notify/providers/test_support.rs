//! Fixtures of the provider tests: events, Providers, Secrets, and a scripted HTTP(S) server on
//! `127.0.0.1:0` that records every request before it answers (so a returned `send` has been
//! seen by the server; nothing needs polling).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitops_api::notification::v1beta3::{Provider, ProviderSpec};
use gitops_runtime::{FluxEvent, Severity};
use k8s_openapi::api::core::v1::ObjectReference;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::task::JoinSet;

use super::{RetryPolicy, SecretData};

/// An info event of KluctlDeployment `apps/podinfo` with the given (unprefixed) metadata.
pub(crate) fn event(metadata: &[(&str, &str)]) -> FluxEvent {
    FluxEvent {
        involved_object: ObjectReference {
            api_version: Some("gitops.kluctl.io/v1beta1".into()),
            kind: Some("KluctlDeployment".into()),
            name: Some("podinfo".into()),
            namespace: Some("apps".into()),
            uid: Some("5b6c1f2e-0000-4000-8000-000000000001".into()),
            resource_version: Some("42".into()),
            ..ObjectReference::default()
        },
        severity: Severity::Info,
        timestamp: "2026-01-02T03:04:05Z".into(),
        message: "deployed 3 objects\nall healthy".into(),
        reason: "ReconciliationSucceeded".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        reporting_controller: "kluctl-controller".into(),
        reporting_instance: "kluctl-controller-0".into(),
    }
}

/// An error event of the same object, without metadata.
pub(crate) fn error_event() -> FluxEvent {
    FluxEvent {
        severity: Severity::Error,
        reason: "HealthCheckFailed".into(),
        message: "apply failed: boom".into(),
        ..event(&[])
    }
}

/// A commit SHA for commit-status tests.
pub(crate) const SHA: &str = "a1afe267b54f38b46b487f6e938a6fd508278c07";

/// Provider `apps/hook` (UID `0c9c2e41-...`) from a spec given as JSON.
pub(crate) fn provider(spec: serde_json::Value) -> Provider {
    let spec: ProviderSpec = serde_json::from_value(spec).expect("provider spec");
    let mut p = Provider::new("hook", spec);
    p.metadata.namespace = Some("apps".into());
    p.metadata.uid = Some("0c9c2e41-d2f9-4f9b-9c41-2d4a7f8c9b1e".into());
    p
}

/// Secret data from text pairs.
pub(crate) fn secret(pairs: &[(&str, &str)]) -> SecretData {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Flux's retry count with millisecond waits.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        min_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(8),
    }
}

/// What the server answers to the n-th request (the last reply repeats).
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// This status and body.
    Status(u16, String),
    /// Read the request, never answer (the connection stays open).
    Hang,
}

impl Reply {
    pub(crate) fn ok() -> Reply {
        Reply::Status(200, String::new())
    }

    pub(crate) fn status(code: u16, body: &str) -> Reply {
        Reply::Status(code, body.to_string())
    }
}

/// One request as the server read it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub method: String,
    /// The request target: a path and query, or an absolute URL when sent to a proxy.
    pub target: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A scripted HTTP/1.1 server; stops when dropped.
pub(crate) struct TestServer {
    /// `http(s)://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Plain HTTP.
    pub(crate) async fn start(replies: Vec<Reply>) -> TestServer {
        TestServer::serve(replies, None).await
    }

    /// HTTPS with the test PKI's server certificate; `require_client_cert` asks for a client
    /// certificate signed by the test CA (mTLS).
    pub(crate) async fn start_tls(replies: Vec<Reply>, require_client_cert: bool) -> TestServer {
        TestServer::serve(replies, Some(tls_acceptor(require_client_cert))).await
    }

    async fn serve(replies: Vec<Reply>, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            // Dropping the set (when the server task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, replies, tls) = (Arc::clone(&recorded), replies.clone(), tls.clone());
                connections.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                handle(stream, &seen, &replies).await;
                            }
                        }
                        None => handle(stream, &seen, &replies).await,
                    }
                });
            }
        });
        TestServer {
            url: format!("{scheme}://{addr}"),
            seen,
            task,
        }
    }

    /// The requests received so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Reads one request, records it, answers the reply for its number and closes.
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    seen: &Mutex<Vec<Seen>>,
    replies: &[Reply],
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, content_length) = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            break (end + 4, len);
        }
    };
    while buf.len() < head_len + content_length {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_len - 4]).to_string();
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let request = Seen {
        method: request_line.next().unwrap_or_default().to_string(),
        target: request_line.next().unwrap_or_default().to_string(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        body: buf[head_len..head_len + content_length].to_vec(),
    };
    let reply = {
        let mut seen = seen.lock().expect("lock");
        seen.push(request);
        replies
            .get(seen.len() - 1)
            .or(replies.last())
            .cloned()
            .unwrap_or_else(Reply::ok)
    };
    match reply {
        Reply::Status(code, body) => {
            let response = format!(
                "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => std::future::pending::<()>().await,
    }
}

/// The test PKI (`testdata/gen.sh`): test-only keys, never used outside these tests.
pub(crate) const CA_CRT: &str = include_str!("testdata/ca.crt");
pub(crate) const CLIENT_CRT: &str = include_str!("testdata/client.crt");
pub(crate) const CLIENT_KEY: &str = include_str!("testdata/client.key");
const SERVER_CRT: &str = include_str!("testdata/server.crt");
const SERVER_KEY: &str = include_str!("testdata/server.key");

fn tls_acceptor(require_client_cert: bool) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(SERVER_CRT.as_bytes())
        .collect::<Result<_, _>>()
        .expect("server cert");
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("server key");
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("protocols");
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(CA_CRT.as_bytes()) {
            roots.add(ca.expect("ca cert")).expect("add ca");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key).expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
