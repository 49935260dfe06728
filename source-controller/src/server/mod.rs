//! The artifact HTTP server on `--storage-addr`: serves what the `store` step
//! ([`crate::storage`]) wrote, for consumers that download `status.artifact.url`.
//!
//! ```text
//!  resolve → fetch → package → store ──► <storage root>/<kind>/<ns>/<name>/<file>.tar.gz
//!                                                    │
//!  kustomize-controller, kluctl ── GET status.artifact.url ──► this server (ServeDir)
//! ```
//!
//! Behaviour (HTTP/1.1 with keep-alive, hyper's server connection):
//! - `GET`/`HEAD` of a file: `Content-Length`, `Last-Modified`, `ETag`, `Content-Type` by extension
//!   (`application/gzip` for `.tar.gz`); a single `Range` gives 206, an unsatisfiable one 416;
//!   `If-Modified-Since` gives 304. Multi-range requests are answered with the whole file (200).
//! - Missing files and directories give 404: unlike Flux's `http.FileServer` we list no directory.
//! - `/` itself gives an empty 200, the readiness probe Flux's Deployment points at this port.
//! - Paths with `..` (also percent-encoded) or absolute components never leave the root: 404/400.
//!   Symlinks inside the root (Bucket's `latest.tar.gz`) are followed.
//!
//! ```text
//!  accept ─► hyper HTTP/1 connection (TCP_NODELAY) ─► Artifacts::call
//!              ├─ plain GET/HEAD of a small file ─► cache (memory, stat-validated)
//!              └─ anything else ─► axum Router: `/` → 200, else tower-http ServeDir
//! ```
//!
//! Plain downloads of small artifacts are answered from memory (`cache`) without leaving the
//! connection's task; everything else goes to `ServeDir`. The connections are hyper's own,
//! without axum's `serve`: a cached answer then costs no boxed future, no boxed request or
//! response body and no HTTP version sniffing (`make bench` B5).
//!
//! Flux starts this server only on the elected leader; that gating is the caller's.

mod cache;

use axum::Router;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use cache::{Cache, Lookup};
use futures::FutureExt as _;
use futures::future::{BoxFuture, Either as EitherFuture, Ready, ready};
use http_body_util::{Either, Full};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

/// How long in-flight downloads may finish after shutdown is signalled (Flux: 5s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A failure to listen on the storage address.
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
}

/// The body of an artifact response: bytes from the cache, or what the router streams.
pub type ArtifactBody = Either<Full<Bytes>, axum::body::Body>;

/// The artifact service for one storage root: the cache first, then the router (`/` for
/// readiness, files by `ServeDir`, nothing else).
///
/// A [`hyper::service::Service`]; [`serve`] runs it on every connection.
#[derive(Clone, Debug)]
pub struct Artifacts {
    cache: Arc<Cache>,
    fallback: Router,
}

impl Artifacts {
    /// The service for the files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root: PathBuf = root.into();
        let files = ServeDir::new(&root)
            .append_index_html_on_directories(false)
            .redirect_to_trailing_slash(false)
            // Go's FileServer answers multi-range with multipart; we send the whole file instead of 416.
            .ignore_multi_range_requests(true)
            // Artifacts are large and read once per download: fewer, bigger reads (B5 in `make bench`).
            .with_buf_chunk_size(256 * 1024);
        let fallback = Router::new()
            .route("/", get(|| async { StatusCode::OK }))
            .fallback_service(files);
        Artifacts {
            cache: Arc::new(Cache::new(root)),
            fallback,
        }
    }

    /// The router's answer (`/`, `ServeDir`).
    async fn fallback<B>(mut router: Router, req: Request<B>) -> Response<ArtifactBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        match tower::Service::call(&mut router, req).await {
            Ok(resp) => resp.map(Either::Right),
            Err(never) => match never {},
        }
    }
}

type Answer = Result<Response<ArtifactBody>, Infallible>;

impl<B> hyper::service::Service<Request<B>> for Artifacts
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<ArtifactBody>;
    type Error = Infallible;
    /// A cache hit is answered in `call`; the rest is boxed.
    type Future = EitherFuture<Ready<Answer>, BoxFuture<'static, Answer>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        match self.cache.lookup(req.method(), req.uri().path(), req.headers()) {
            Lookup::Hit(resp) => EitherFuture::Left(ready(Ok(resp.map(Either::Left)))),
            Lookup::Fill { key, path } => {
                let (cache, router) = (self.cache.clone(), self.fallback.clone());
                EitherFuture::Right(Box::pin(async move {
                    match cache.fill(key, path, req.method(), req.headers()).await {
                        Some(resp) => Ok(resp.map(Either::Left)),
                        None => Ok(Self::fallback(router, req).await),
                    }
                }))
            }
            Lookup::Pass => EitherFuture::Right(Box::pin(Self::fallback(self.fallback.clone(), req).map(Ok))),
        }
    }
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
/// requests finish for up to [`SHUTDOWN_GRACE`] (idle keep-alive connections close at once).
///
/// Errors accepting a connection do not stop it: a reset before the accept is skipped, anything
/// else (out of file descriptors) is logged and accepting resumes a second later.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use source_controller::server;
/// let listener = server::bind(":9090").await?;
/// server::serve("/data".into(), listener, async { let _ = tokio::signal::ctrl_c().await; }).await;
/// # Ok(()) }
/// ```
pub async fn serve(root: PathBuf, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
    let service = Artifacts::new(root);
    let http = hyper::server::conn::http1::Builder::new();
    // Every connection holds a receiver: `send` asks them to finish, `closed` is all of them gone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        // Artifacts are small and often fit in one write; without NODELAY, Nagle + delayed ACK can
        // stall the body of a keep-alive response behind its headers.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "failed to set TCP_NODELAY on artifact connection");
        }
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            tokio::select! {
                biased;
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "artifact connection failed");
                    }
                    return;
                }
                _ = stop.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
            drop(stop);
        });
    }
    drop((listener, stop_rx));
    let _ = stop_tx.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::info!(grace = ?SHUTDOWN_GRACE, "artifact server shutdown grace period over");
    }
}

/// Waits out a failed `accept`: at once for a connection reset before it was accepted, a second
/// for anything else (`EMFILE`: other connections have to close first), as hyper 0.14 and axum do.
async fn accept_failed(error: &io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "failed to accept an artifact connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests;
