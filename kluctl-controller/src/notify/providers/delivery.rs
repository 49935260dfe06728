//! Delivery of one HTTP request with Flux's retry policy (notification-controller's
//! go-retryablehttp client): retry on connection errors, `429` and `5xx` (but `501`), at most
//! [`RetryPolicy::max_retries`] times, waiting `min_backoff * 2^n` capped at `max_backoff`
//! (a `Retry-After` of a `429`/`503` answer wins). Any `2xx` is success; other answers fail at
//! once with their status and body.
//!
//! There is no time limit here: the caller bounds the whole delivery, retries and waits included,
//! with the provider timeout, so a delivery is cut wherever it is when the time is up. What it did
//! so far is kept in a [`Progress`] the caller owns, so a timeout can still say how many attempts
//! were made and how the last one failed.

use std::time::Duration;

use reqwest::{Client, Request, StatusCode};

/// When and how often a failed request is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (Flux: 4, so at most 5 attempts).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one (Flux: 2 s).
    pub min_backoff: Duration,
    /// Longest wait between two attempts (Flux: 30 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first): `min_backoff * 2^retry`, at most
    /// `max_backoff`; a server's `Retry-After` replaces it (capped the same way, the provider
    /// timeout bounds it anyway).
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_backoff);
        }
        gitops_runtime::events::Backoff {
            min: self.min_backoff,
            max: self.max_backoff,
        }
        .wait(retry)
    }
}

/// What one delivery did so far; owned by the caller so it survives a timeout.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Requests sent (retries included).
    pub attempts: u32,
    /// How the last failed attempt failed (not yet masked).
    pub last_error: Option<String>,
    /// What the request under way does (set by the caller, for a timeout's message).
    pub action: Option<&'static str>,
}

/// A `2xx` answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The body, at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
}

/// Why a delivery failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A non-`2xx` answer (the last one when retries ran out).
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The body, at most [`MAX_BODY`] bytes.
        body: Vec<u8>,
    },
    /// No answer: connection, TLS or protocol error (its URL removed).
    Transport(reqwest::Error),
}

impl Failure {
    /// One line: `request failed with status code 500: <body>` or the error chain.
    pub(crate) fn describe(&self) -> String {
        match self {
            Failure::Status { status, body } => {
                let body = String::from_utf8_lossy(body);
                format!(
                    "request failed with status code {}: {}",
                    status.as_u16(),
                    super::redact::truncate(body.trim(), MAX_SHOWN_BODY)
                )
            }
            Failure::Transport(e) => gitops_git::error_chain(e),
        }
    }
}

/// Bytes of a response body read at most (a commit status list is a few KiB).
pub(crate) const MAX_BODY: usize = 1 << 20;
/// Bytes of a response body shown in a message at most.
pub(crate) const MAX_SHOWN_BODY: usize = 1024;

/// Sends `request` until it succeeds, fails for good or the retries run out.
pub(crate) async fn execute(
    client: &Client,
    request: &Request,
    policy: &RetryPolicy,
    progress: &mut Progress,
) -> Result<Answer, Failure> {
    let mut retry = 0;
    loop {
        // Provider requests have in-memory bodies (or none), which always clone.
        let attempt = request
            .try_clone()
            .expect("provider requests have in-memory bodies");
        progress.attempts += 1;
        let (failure, retry_after) = match client.execute(attempt).await {
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(&response);
                match read_body(response).await {
                    Ok(body) if status.is_success() => return Ok(Answer { body }),
                    Ok(body) => {
                        let failure = Failure::Status { status, body };
                        if !retryable_status(status) {
                            return Err(failure);
                        }
                        (failure, retry_after)
                    }
                    Err(e) => (Failure::Transport(e.without_url()), None),
                }
            }
            Err(e) => {
                let failure = Failure::Transport(e.without_url());
                if !retryable_error(&failure) {
                    return Err(failure);
                }
                (failure, None)
            }
        };
        progress.last_error = Some(failure.describe());
        if retry >= policy.max_retries {
            return Err(failure);
        }
        // A backoff between attempts, not a wait for a condition: Flux's client does the same.
        tokio::time::sleep(policy.backoff(retry, retry_after)).await;
        retry += 1;
    }
}

/// go-retryablehttp's default policy: `429` and every `5xx` but `501 Not Implemented`.
fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

/// Connection errors are retried, except those no retry can fix: an untrusted server
/// certificate (go-retryablehttp does not retry x509 unknown-authority errors either) and a
/// request that cannot be built.
fn retryable_error(failure: &Failure) -> bool {
    match failure {
        Failure::Transport(e) => {
            if e.is_builder() || e.is_redirect() {
                return false;
            }
            // rustls reports verification failures as "invalid peer certificate: ..." inside the
            // connect error; there is no typed way to reach it through reqwest.
            !failure.describe().contains("certificate")
        }
        Failure::Status { status, .. } => retryable_status(*status),
    }
}

/// `Retry-After` in seconds of a `429` or `503` answer.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let status = response.status();
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The body, at most [`MAX_BODY`] bytes (the rest is not read).
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_maximum() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (0..6).map(|n| p.backoff(n, None).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
        assert_eq!(p.backoff(40, None), Duration::from_secs(30));
        assert_eq!(p.backoff(0, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(700))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn retries_429_and_5xx_but_not_501_or_4xx() {
        for code in [429, 500, 502, 503, 504] {
            assert!(
                retryable_status(StatusCode::from_u16(code).expect("code")),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 409, 422, 501] {
            assert!(
                !retryable_status(StatusCode::from_u16(code).expect("code")),
                "{code}"
            );
        }
    }
}
