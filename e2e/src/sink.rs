//! An HTTP endpoint on 127.0.0.1:0 standing in for a webhook (Slack, Teams, a generic sink, a Git
//! forge): it records every request (method, path, headers, body) and answers from a script of
//! status codes, then 200. Notification tests assert on what arrived and how often.
//!
//! ```text
//!  RecordingSink::start(vec![500]) ─► 1st request: 500, then 200 ... ─► requests(), wait_for(pred)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use axum::http::StatusCode;

/// One request the sink received.
#[derive(Clone, Debug)]
pub struct Received {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased (the last value of a repeated header).
    pub headers: BTreeMap<String, String>,
    /// Raw body.
    pub body: Vec<u8>,
    /// The status code the sink answered.
    pub answered: u16,
}

impl Received {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
    count: tokio::sync::watch::Sender<usize>,
}

/// A recording webhook endpoint; stops when dropped.
pub struct RecordingSink {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingSink {
    /// Starts a sink answering the codes of `script` in turn, then 200.
    ///
    /// # Errors
    /// When it cannot bind.
    pub async fn start(script: Vec<u16>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            received: Mutex::default(),
            script: Mutex::new(script.into()),
            count: tokio::sync::watch::channel(0).0,
        });
        let state = shared.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let state = state.clone();
            async move { record(&state, req).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RecordingSink { url, shared, task })
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until a received request satisfies `pred`; fails after `timeout` listing what came.
    ///
    /// # Errors
    /// On timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Received> {
        let mut rx = self.shared.count.subscribe();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                    return r;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        found.map_err(|_| {
            anyhow!(
                "no matching request at {} within {timeout:?}; received: {:?}",
                self.url,
                self.requests()
                    .iter()
                    .map(|r| format!(
                        "{} {} -> {}: {}",
                        r.method,
                        r.path,
                        r.answered,
                        String::from_utf8_lossy(&r.body)
                    ))
                    .collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for RecordingSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(shared: &Shared, req: axum::extract::Request) -> StatusCode {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let answered = shared
        .script
        .lock()
        .ok()
        .and_then(|mut s| s.pop_front())
        .unwrap_or(200);
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let n = shared.received.lock().map_or(0, |mut r| {
        r.push(Received {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(String::new, |p| p.as_str().to_owned()),
            headers,
            body,
            answered,
        });
        r.len()
    });
    let _ = shared.count.send(n);
    StatusCode::from_u16(answered).unwrap_or(StatusCode::OK)
}
