//! The artifact HTTP server on `--storage-addr`: serves what the `store` step
//! ([`crate::storage`]) wrote, for consumers that download `status.artifact.url`.
//!
//! ```text
//!  resolve → fetch → package → store ──► <storage root>/<kind>/<ns>/<name>/<file>.tar.gz
//!                                                    │
//!  kustomize-controller, kluctl ── GET status.artifact.url ──► this server (ServeDir)
//! ```
//!
//! Behaviour (tower-http `ServeDir` behind an axum router, HTTP/1.1 with keep-alive):
//! - `GET`/`HEAD` of a file: `Content-Length`, `Last-Modified`, `ETag`, `Content-Type` by extension
//!   (`application/gzip` for `.tar.gz`); a single `Range` gives 206, an unsatisfiable one 416;
//!   `If-Modified-Since` gives 304. Multi-range requests are answered with the whole file (200).
//! - Missing files and directories give 404: unlike Flux's `http.FileServer` we list no directory.
//! - `/` itself gives an empty 200, the readiness probe Flux's Deployment points at this port.
//! - Paths with `..` (also percent-encoded) or absolute components never leave the root: 404/400.
//!   Symlinks inside the root (Bucket's `latest.tar.gz`) are followed.
//!
//! Plain downloads of small artifacts are answered from memory (`cache`); everything else goes
//! to `ServeDir`.
//!
//! Flux starts this server only on the elected leader; that gating is the caller's.

mod cache;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt;
use std::future::{Future, IntoFuture};
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

/// How long in-flight downloads may finish after shutdown is signalled (Flux: 5s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A failure to listen on or serve the storage address.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `--storage-addr` could not be bound.
    #[error("failed to listen on storage address '{addr}'")]
    Bind {
        /// The address as given.
        addr: String,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("failed to serve artifacts on '{addr}'")]
    Serve {
        /// The local address being served.
        addr: String,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
}

/// The artifact router for storage root `root`: files under it, `/` for readiness, nothing else.
///
/// Use it with [`serve`], or drive it directly as a `tower::Service` in tests.
pub fn router(root: impl Into<PathBuf>) -> Router {
    let root: PathBuf = root.into();
    let files = ServeDir::new(root.clone())
        .append_index_html_on_directories(false)
        .redirect_to_trailing_slash(false)
        // Go's FileServer answers multi-range with multipart; we send the whole file instead of 416.
        .ignore_multi_range_requests(true)
        // Artifacts are large and read once per download: fewer, bigger reads (B5 in `make bench`).
        .with_buf_chunk_size(256 * 1024);
    let cache = std::sync::Arc::new(cache::Cache::default());
    let fallback = move |req: axum::extract::Request| {
        let (files, cache, root) = (files.clone(), cache.clone(), root.clone());
        async move {
            if let Some(resp) = cache
                .try_serve(&root, req.method(), req.uri().path(), req.headers())
                .await
            {
                return resp;
            }
            match tower::ServiceExt::oneshot(files, req).await {
                Ok(resp) => resp.map(axum::body::Body::new),
                Err(never) => match never {},
            }
        }
    };
    Router::new()
        .route("/", get(|| async { StatusCode::OK }))
        .fallback(fallback)
}

/// Binds a Go-style listen address: `:9090` means every interface (IPv6 and IPv4 where the host
/// allows dual-stack, else IPv4), `host:port` as given.
///
/// # Errors
/// [`ServerError::Bind`] when the address cannot be bound or resolved.
///
/// ```no_run
/// # async fn f() -> Result<(), source_controller::server::ServerError> {
/// let listener = source_controller::server::bind(":9090").await?;
/// # Ok(()) }
/// ```
pub async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    let failed = |source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    };
    match addr.strip_prefix(':') {
        Some(port) => match TcpListener::bind(format!("[::]:{port}")).await {
            Ok(listener) => Ok(listener),
            Err(_) => TcpListener::bind(format!("0.0.0.0:{port}")).await.map_err(failed),
        },
        None => TcpListener::bind(addr).await.map_err(failed),
    }
}

/// Serves the files under `root` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish for up to [`SHUTDOWN_GRACE`].
///
/// # Errors
/// [`ServerError::Serve`] when the server stops with an I/O error.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use source_controller::server;
/// let listener = server::bind(":9090").await?;
/// server::serve("/data".into(), listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
pub async fn serve(
    root: PathBuf,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "unknown".to_string(), |a| a.to_string());
    // Artifacts are small and often fit in one write; without NODELAY, Nagle + delayed ACK can
    // stall the body of a keep-alive response behind its headers.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "failed to set TCP_NODELAY on artifact connection");
        }
    });
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    };
    let server = axum::serve(listener, router(root))
        .with_graceful_shutdown(signal)
        .into_future();
    let grace_over = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            // The server ended without a shutdown signal; let its result win the race.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(|source| ServerError::Serve { addr, source }),
        () = grace_over => {
            tracing::info!(grace = ?SHUTDOWN_GRACE, "artifact server shutdown grace period over");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
