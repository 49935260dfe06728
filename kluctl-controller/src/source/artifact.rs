//! Fetching a source-controller artifact the way Flux consumers do: download, verify, unpack.
//!
//! ```text
//! status.artifact ─► effective_url ─► download ──────────► verify ──────────► unpack ─────────► rename
//!                    (host from       (retries, sha256     (status.artifact.  (Flux's untar     (temp dir
//!                    SOURCE_CONTROLLER streamed to a       digest)            rules, size and   beside the
//!                    _LOCALHOST)      temp file)                              entry limits)     destination)
//! ```
//!
//! The rules are those of Flux's kustomize-controller (and of the legacy Kluctl controller, which
//! consumed the same artifacts): the digest in `status.artifact.digest` must match the bytes
//! served, the archive must be gzip, no entry may land outside the destination, symlinks are
//! skipped and any other entry that is neither a regular file nor a directory is refused. Every
//! failure is one [`ArtifactError`] whose [`reason`](ArtifactError::reason) is `ArtifactFailed`;
//! [`ArtifactError::NotFound`] is separate so the reconciler can wait for the source to publish
//! a new artifact instead of reporting a broken one.
//!
//! Nothing half-written reaches the destination: the download lives in a temporary file and the
//! extraction in a temporary directory, both beside the destination, and only a complete,
//! verified tree is renamed into place.

use std::io::{self, BufRead as _, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use gitops_api::conditions::reasons;
use gitops_api::meta::Artifact;
use kluctl_engine::error_chain;
use reqwest::{StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

/// Environment variable whose value (`host` or `host:port`) replaces the host of every artifact
/// URL, as in Flux's consumers; lets a controller running outside the cluster reach a
/// port-forwarded source-controller.
pub const ENV_SOURCE_CONTROLLER_LOCALHOST: &str = "SOURCE_CONTROLLER_LOCALHOST";
/// The status field holding the artifact's URL, as errors name it.
pub const URL_FIELD: &str = "status.artifact.url";
/// The status field holding the artifact's digest, as errors name it.
pub const DIGEST_FIELD: &str = "status.artifact.digest";
/// Default limit on the bytes of all files unpacked from one artifact (100 MiB, Flux's default).
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 100 << 20;
/// Default limit on the entries of one artifact.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// How long and how often a download is retried after a 5xx answer or a connection error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (Flux: `--http-retry`, default 9).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub min_wait: Duration,
    /// Upper bound of one wait.
    pub max_wait: Duration,
    /// Upper bound of the whole download, retries and waits included.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    /// Flux's consumer defaults (9 retries, waits from 5 s to 30 s), bounded to 5 minutes in all.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 9,
            min_wait: Duration::from_secs(5),
            max_wait: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first): `min_wait * 2^retry`, at most
    /// `max_wait`.
    pub fn wait(&self, retry: u32) -> Duration {
        let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
        self.min_wait.saturating_mul(factor).min(self.max_wait)
    }
}

/// Limits on what one artifact may unpack to, checked while extracting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of all regular files together.
    pub max_bytes: u64,
    /// Entries of the archive (files, directories and skipped symlinks).
    pub max_entries: usize,
}

impl UnpackLimits {
    /// The most bytes the tar stream may take, headers included: the file bytes plus one
    /// header block, long-name and padding allowance per entry. The gzip stream is read through
    /// this cap, so neither long names nor the data of skipped entries can expand without bound,
    /// and downloads are capped near it (compressed data is never much larger).
    pub fn stream_bytes(self) -> u64 {
        let per_entry = 4096u64.saturating_mul(u64::try_from(self.max_entries).unwrap_or(u64::MAX));
        self.max_bytes.saturating_add(per_entry)
    }

    /// The most bytes a download may take: the stream cap plus gzip's worst-case overhead.
    pub fn download_bytes(self) -> u64 {
        let stream = self.stream_bytes();
        stream.saturating_add(stream / 64).saturating_add(1024)
    }
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: DEFAULT_MAX_UNPACKED_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// How [`fetch`] downloads and unpacks.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// The HTTP client; `None` builds one for the call (share one client to reuse connections).
    pub client: Option<reqwest::Client>,
    /// Replacement for the host (and port) of artifact URLs; see
    /// [`ENV_SOURCE_CONTROLLER_LOCALHOST`].
    pub localhost_override: Option<String>,
    /// Retries of the download.
    pub retry: RetryPolicy,
    /// Limits of the extraction.
    pub limits: UnpackLimits,
}

impl FetchOptions {
    /// Defaults, with the host override read from [`ENV_SOURCE_CONTROLLER_LOCALHOST`] (an empty
    /// value counts as unset, as in Flux).
    pub fn from_env() -> Self {
        FetchOptions {
            localhost_override: std::env::var(ENV_SOURCE_CONTROLLER_LOCALHOST)
                .ok()
                .filter(|v| !v.is_empty()),
            ..FetchOptions::default()
        }
    }
}

/// A fetched, verified and unpacked artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The directory holding the artifact's tree (the destination passed to [`fetch`]).
    pub dir: PathBuf,
    /// `status.artifact.revision` of the artifact.
    pub revision: String,
    /// The verified digest, `sha256:<hex>`.
    pub digest: String,
    /// Bytes downloaded (the `.tar.gz`).
    pub archive_bytes: u64,
    /// Regular files unpacked.
    pub files: usize,
    /// Bytes of all unpacked files.
    pub unpacked_bytes: u64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A URL that cannot be used to download an artifact.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// `status.artifact.url` does not parse.
    #[error("invalid {URL_FIELD} '{url}'")]
    Artifact {
        /// The URL, without credentials.
        url: String,
        /// Why it does not parse.
        #[source]
        source: BoxError,
    },
    /// `status.artifact.url` is neither `http` nor `https`.
    #[error("unsupported scheme '{scheme}' in {URL_FIELD} '{url}'; want http or https")]
    Scheme {
        /// The URL, without credentials.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The host override is not `host` or `host:port`.
    #[error("invalid {ENV_SOURCE_CONTROLLER_LOCALHOST} '{value}'; want host or host:port")]
    Override {
        /// The override.
        value: String,
    },
}

/// Why `status.artifact.digest` cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestProblem {
    /// The field is empty.
    #[error("it is empty")]
    Empty,
    /// The algorithm is not sha256.
    #[error("unsupported algorithm '{0}'; want sha256")]
    UnsupportedAlgorithm(String),
    /// The encoded part is not 64 lowercase hex digits.
    #[error("the sha256 value is not 64 lowercase hex digits")]
    InvalidEncoding,
}

/// Why one download attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server answered with a status other than 200 and 404.
    #[error("the server answered {0}")]
    Status(StatusCode),
    /// The request or the body transfer failed (the URL is left out of this error).
    #[error("the request failed")]
    Http(#[source] reqwest::Error),
    /// The download could not be written to its temporary file.
    #[error("failed to write the download")]
    Write(#[source] io::Error),
    /// The body is larger than any archive within the unpack limits can be.
    #[error("the body is larger than {0} bytes, more than an archive within the unpack limits can take")]
    TooLarge(u64),
}

/// Why an archive entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// The name is absolute.
    #[error("absolute paths are not allowed")]
    Absolute,
    /// The name has a `..` component or a backslash.
    #[error("the path escapes the destination")]
    Escapes,
    /// A regular file without a name.
    #[error("a file entry has an empty name")]
    Empty,
    /// Neither a regular file, a directory nor a symlink.
    #[error("entries of type {0} are not allowed")]
    UnsupportedType(String),
}

/// A failure to fetch, verify or unpack an artifact. Each variant names the artifact's revision
/// and the URL, status field or archive entry at fault; none carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The artifact URL or the host override is unusable.
    #[error("failed to fetch artifact of revision '{revision}'")]
    Url {
        /// `status.artifact.revision`.
        revision: String,
        /// What is wrong with the URL.
        #[source]
        source: UrlError,
    },
    /// The server answered 404: the artifact is gone (garbage collected, or the source-controller
    /// lost its storage) and the source will publish another.
    #[error("failed to fetch artifact of revision '{revision}': '{url}' answered 404 Not Found")]
    NotFound {
        /// The URL requested, without credentials.
        url: String,
        /// `status.artifact.revision`.
        revision: String,
    },
    /// The download failed, after retries when the failure was transient.
    #[error("failed to download artifact '{url}' of revision '{revision}' after {attempts} attempt(s)")]
    Download {
        /// The URL requested, without credentials.
        url: String,
        /// `status.artifact.revision`.
        revision: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        #[source]
        source: DownloadError,
    },
    /// The advertised digest cannot be checked.
    #[error("failed to verify artifact of revision '{revision}': invalid {field} '{digest}'")]
    InvalidDigest {
        /// `status.artifact.revision`.
        revision: String,
        /// The field ([`DIGEST_FIELD`]).
        field: &'static str,
        /// Its value.
        digest: String,
        /// What is wrong with it.
        #[source]
        problem: DigestProblem,
    },
    /// The downloaded bytes do not hash to the advertised digest.
    #[error(
        "failed to verify artifact '{url}' of revision '{revision}': {field} is '{expected}' but the downloaded bytes hash to '{actual}'"
    )]
    DigestMismatch {
        /// The URL requested, without credentials.
        url: String,
        /// `status.artifact.revision`.
        revision: String,
        /// The field ([`DIGEST_FIELD`]).
        field: &'static str,
        /// The advertised digest, normalised to `sha256:<hex>`.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The download is not a gzip stream.
    #[error("failed to unpack artifact of revision '{revision}': it is not gzip-compressed")]
    NotGzip {
        /// `status.artifact.revision`.
        revision: String,
    },
    /// The gzip or tar stream is corrupt or truncated.
    #[error("failed to unpack artifact of revision '{revision}': unreadable archive{}", at_entry(.entry.as_deref()))]
    Corrupt {
        /// `status.artifact.revision`.
        revision: String,
        /// The entry being read, when known.
        entry: Option<String>,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// An entry breaks the untar rules.
    #[error("failed to unpack artifact of revision '{revision}': entry '{entry}' is not allowed")]
    UnsafeEntry {
        /// `status.artifact.revision`.
        revision: String,
        /// The entry's name as written in the archive.
        entry: String,
        /// The rule it breaks.
        #[source]
        problem: EntryProblem,
    },
    /// The files unpack to more than [`UnpackLimits::max_bytes`].
    #[error(
        "failed to unpack artifact of revision '{revision}': entry '{entry}' takes the unpacked size over the limit of {limit} bytes"
    )]
    TooLarge {
        /// `status.artifact.revision`.
        revision: String,
        /// The entry that crossed the limit.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// The archive has more than [`UnpackLimits::max_entries`] entries.
    #[error("failed to unpack artifact of revision '{revision}': more than {limit} entries")]
    TooManyEntries {
        /// `status.artifact.revision`.
        revision: String,
        /// The limit.
        limit: usize,
    },
    /// The destination exists and is not an empty directory.
    #[error(
        "failed to unpack artifact of revision '{revision}': destination '{}' already exists and is not an empty directory",
        .path.display()
    )]
    DestinationExists {
        /// `status.artifact.revision`.
        revision: String,
        /// The destination.
        path: PathBuf,
    },
    /// A local file operation failed (the source names the path).
    #[error("failed to {action} for artifact of revision '{revision}'")]
    Io {
        /// `status.artifact.revision`.
        revision: String,
        /// What was being done.
        action: &'static str,
        /// The error, naming the path.
        #[source]
        source: io::Error,
    },
    /// Writing an entry into the unpacked tree failed (e.g. a directory entry where a file of
    /// the same name was unpacked). Names the entry, not the temporary path.
    #[error(
        "failed to unpack artifact of revision '{revision}': entry '{entry}' cannot be written: {problem}"
    )]
    EntryWrite {
        /// `status.artifact.revision`.
        revision: String,
        /// The entry's name as written in the archive.
        entry: String,
        /// The operating system's words for the failure, without the path.
        problem: String,
    },
    /// The extraction task panicked or was cancelled.
    #[error("failed to unpack artifact of revision '{revision}': the extraction task failed")]
    Task {
        /// `status.artifact.revision`.
        revision: String,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

fn at_entry(entry: Option<&str>) -> String {
    entry.map(|e| format!(" at entry '{e}'")).unwrap_or_default()
}

impl ArtifactError {
    /// The condition and event reason for this failure: `ArtifactFailed` for every variant, the
    /// word Flux's kustomize-controller and Kluctl's controllers use.
    pub fn reason(&self) -> &'static str {
        reasons::ARTIFACT_FAILED
    }
}

/// The URL to download from: `url` with its host (and port) replaced by `localhost_override`
/// when that is set, as Flux consumers do with `SOURCE_CONTROLLER_LOCALHOST`. An override without
/// a port drops the URL's port.
///
/// # Errors
/// When `url` does not parse or is not http(s), or the override is not `host` or `host:port`.
///
/// ```
/// use kluctl_controller::source::artifact::effective_url;
/// let url = "http://source-controller.flux-system.svc.cluster.local./gitrepository/ns/app/abc.tar.gz";
/// let got = effective_url(url, Some("localhost:9090")).unwrap();
/// assert_eq!(got.as_str(), "http://localhost:9090/gitrepository/ns/app/abc.tar.gz");
/// ```
pub fn effective_url(url: &str, localhost_override: Option<&str>) -> Result<Url, UrlError> {
    let mut parsed = Url::parse(url).map_err(|e| UrlError::Artifact {
        url: redact(url),
        source: Box::new(e),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme {
            url: redact(url),
            scheme: parsed.scheme().to_string(),
        });
    }
    let Some(value) = localhost_override.filter(|v| !v.is_empty()) else {
        return Ok(parsed);
    };
    let invalid = || UrlError::Override {
        value: value.to_string(),
    };
    // Parsed as the authority of a URL of the same scheme, so `host`, `host:port` and `[::1]:port`
    // all work and anything with a path, user or query is refused.
    let authority = Url::parse(&format!("{}://{value}", parsed.scheme())).map_err(|_| invalid())?;
    if authority.path() != "/"
        || !authority.username().is_empty()
        || authority.password().is_some()
        || authority.query().is_some()
        || authority.fragment().is_some()
    {
        return Err(invalid());
    }
    let host = authority.host_str().ok_or_else(invalid)?;
    parsed.set_host(Some(host)).map_err(|_| invalid())?;
    parsed.set_port(authority.port()).map_err(|()| invalid())?;
    Ok(parsed)
}

/// `url` without user name and password, for messages and logs.
fn redact(url: &str) -> String {
    if let Ok(mut parsed) = Url::parse(url) {
        if parsed.password().is_some() || !parsed.username().is_empty() {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        return parsed.to_string();
    }
    // Unparseable: drop anything between `://` and the last `@` of the authority.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The sha256 hex of `status.artifact.digest`: `sha256:<hex>`, or bare `<hex>` (read as sha256, as
/// Flux does for a digest without `:`).
///
/// # Errors
/// When the digest is empty, names another algorithm, or its value is not 64 lowercase hex digits.
///
/// ```
/// use kluctl_controller::source::artifact::{parse_digest, DigestProblem};
/// let hex = "a".repeat(64);
/// assert_eq!(parse_digest(&format!("sha256:{hex}")).unwrap(), hex);
/// assert_eq!(parse_digest(&hex).unwrap(), hex);
/// assert_eq!(parse_digest(""), Err(DigestProblem::Empty));
/// ```
pub fn parse_digest(digest: &str) -> Result<String, DigestProblem> {
    if digest.is_empty() {
        return Err(DigestProblem::Empty);
    }
    let (algorithm, encoded) = digest.split_once(':').unwrap_or(("sha256", digest));
    if algorithm != "sha256" {
        return Err(DigestProblem::UnsupportedAlgorithm(algorithm.to_string()));
    }
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if encoded.len() != 64 || !encoded.bytes().all(lower_hex) {
        return Err(DigestProblem::InvalidEncoding);
    }
    Ok(encoded.to_string())
}

/// Downloads `artifact`, verifies it against `status.artifact.digest` and unpacks it into `dest`.
///
/// `dest` must not exist, or be an empty directory; its parent must exist. The download and the
/// extraction happen in temporary entries of that parent, and the tree is renamed to `dest` only
/// when it is complete, so on any error `dest` is left as it was.
///
/// # Errors
/// [`ArtifactError::NotFound`] for a 404; otherwise the [`ArtifactError`] naming what failed.
///
/// # Caveats
/// Unix only (file modes come from the archive). Modification times are those of the extraction.
///
/// ```no_run
/// # async fn run(artifact: &gitops_api::meta::Artifact) -> Result<(), Box<dyn std::error::Error>> {
/// use kluctl_controller::source::artifact::{fetch, FetchOptions};
/// let work = tempfile::tempdir()?;
/// let fetched = fetch(artifact, &work.path().join("source"), &FetchOptions::from_env()).await?;
/// println!("{} files of {}", fetched.files, fetched.revision);
/// # Ok(()) }
/// ```
pub async fn fetch(
    artifact: &Artifact,
    dest: &Path,
    options: &FetchOptions,
) -> Result<Fetched, ArtifactError> {
    let revision = artifact.revision.clone();
    let expected = parse_digest(&artifact.digest).map_err(|problem| ArtifactError::InvalidDigest {
        revision: revision.clone(),
        field: DIGEST_FIELD,
        digest: artifact.digest.clone(),
        problem,
    })?;
    let url = effective_url(&artifact.url, options.localhost_override.as_deref()).map_err(|source| {
        ArtifactError::Url {
            revision: revision.clone(),
            source,
        }
    })?;
    let shown = redact(url.as_str());
    let client = match &options.client {
        Some(client) => client.clone(),
        None => default_client().map_err(|e| ArtifactError::Download {
            url: shown.clone(),
            revision: revision.clone(),
            attempts: 0,
            source: DownloadError::Http(e),
        })?,
    };
    let parent = parent_dir(dest).to_path_buf();
    let download = download(
        &client,
        &url,
        &shown,
        &revision,
        &options.retry,
        &parent,
        options.limits.download_bytes(),
    )
    .await?;
    if download.sha256 != expected {
        return Err(ArtifactError::DigestMismatch {
            url: shown,
            revision,
            field: DIGEST_FIELD,
            expected: format!("sha256:{expected}"),
            actual: format!("sha256:{}", download.sha256),
        });
    }
    let limits = options.limits;
    let task_dest = dest.to_path_buf();
    let task_revision = revision.clone();
    let Download { file, size, .. } = download;
    let unpacked = tokio::task::spawn_blocking(move || {
        let unpacked = unpack_into_place(file.path(), &task_dest, limits, &task_revision);
        drop(file);
        unpacked
    })
    .await
    .map_err(|source| ArtifactError::Task {
        revision: revision.clone(),
        source,
    })??;
    Ok(Fetched {
        dir: dest.to_path_buf(),
        revision,
        digest: format!("sha256:{expected}"),
        archive_bytes: size,
        files: unpacked.files,
        unpacked_bytes: unpacked.bytes,
    })
}

fn default_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .build()
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A completed download: the bytes in a temporary file, their sha256 hex and size.
struct Download {
    file: tempfile::NamedTempFile,
    sha256: String,
    size: u64,
}

/// How one attempt ended when it did not deliver the file.
enum AttemptError {
    NotFound,
    Transient(DownloadError),
    Fatal(DownloadError),
}

async fn download(
    client: &reqwest::Client,
    url: &Url,
    shown: &str,
    revision: &str,
    retry: &RetryPolicy,
    dir: &Path,
    max_bytes: u64,
) -> Result<Download, ArtifactError> {
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = retry.deadline.saturating_sub(started.elapsed());
        let failed = |source| ArtifactError::Download {
            url: shown.to_string(),
            revision: revision.to_string(),
            attempts,
            source,
        };
        match attempt(client, url, remaining, dir, max_bytes).await {
            Ok(download) => return Ok(download),
            Err(AttemptError::NotFound) => {
                return Err(ArtifactError::NotFound {
                    url: shown.to_string(),
                    revision: revision.to_string(),
                });
            }
            Err(AttemptError::Fatal(e)) => return Err(failed(e)),
            Err(AttemptError::Transient(e)) => {
                let wait = retry.wait(attempts - 1);
                if attempts > retry.max_retries || started.elapsed() + wait >= retry.deadline {
                    return Err(failed(e));
                }
                tracing::warn!(
                    url = shown,
                    revision,
                    attempt = attempts,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %error_chain(&e),
                    "artifact download failed, retrying"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One GET into a fresh temporary file in `dir`, hashing while writing.
async fn attempt(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
    dir: &Path,
    max_bytes: u64,
) -> Result<Download, AttemptError> {
    let transient = |e: reqwest::Error| AttemptError::Transient(DownloadError::Http(e.without_url()));
    let write = |e: io::Error| AttemptError::Fatal(DownloadError::Write(e));
    let mut response = client
        .get(url.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(transient)?;
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Err(AttemptError::NotFound),
        s if s == StatusCode::TOO_MANY_REQUESTS
            || (s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED) =>
        {
            return Err(AttemptError::Transient(DownloadError::Status(s)));
        }
        s => return Err(AttemptError::Fatal(DownloadError::Status(s))),
    }
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(AttemptError::Fatal(DownloadError::TooLarge(max_bytes)));
    }
    let file = tempfile::Builder::new()
        .prefix(".artifact-")
        .suffix(".tar.gz")
        .tempfile_in(dir)
        .map_err(write)?;
    let mut out = tokio::fs::File::from_std(file.as_file().try_clone().map_err(write)?);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(transient)? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(AttemptError::Fatal(DownloadError::TooLarge(max_bytes)));
        }
        out.write_all(&chunk).await.map_err(write)?;
    }
    out.flush().await.map_err(write)?;
    Ok(Download {
        file,
        sha256: gitops_api::revision::lower_hex(&hasher.finalize()),
        size,
    })
}

/// What an extraction produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unpacked {
    files: usize,
    bytes: u64,
}

/// Extracts `archive` into a temporary directory beside `dest` and renames that to `dest`.
fn unpack_into_place(
    archive: &Path,
    dest: &Path,
    limits: UnpackLimits,
    revision: &str,
) -> Result<Unpacked, ArtifactError> {
    let io_err = |action| {
        move |source| ArtifactError::Io {
            revision: revision.to_string(),
            action,
            source,
        }
    };
    match fs_err::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect the destination")(e)),
        Ok(meta) => {
            let empty_dir = meta.is_dir()
                && fs_err::read_dir(dest)
                    .map_err(io_err("inspect the destination"))?
                    .next()
                    .is_none();
            if !empty_dir {
                return Err(ArtifactError::DestinationExists {
                    revision: revision.to_string(),
                    path: dest.to_path_buf(),
                });
            }
        }
    }
    let staging = tempfile::Builder::new()
        .prefix(".artifact-")
        .tempdir_in(parent_dir(dest))
        .map_err(io_err("create a temporary directory"))?;
    let reader = fs_err::File::open(archive).map_err(io_err("open the download"))?;
    let unpacked = extract(reader, staging.path(), limits, revision)?;
    let staged = staging.keep();
    if let Err(e) = fs_err::rename(&staged, dest) {
        let _ = fs_err::remove_dir_all(&staged);
        return Err(io_err("move the unpacked tree into place")(e));
    }
    Ok(unpacked)
}

/// Unpacks the tar.gz `reader` into the existing directory `root` with Flux's consumer rules.
///
/// Entry names are checked by [`relative_path`]; symlinks and pax global headers are skipped;
/// directories get their header mode | 0700, files their header mode (permission bits only, no
/// setuid/setgid/sticky); anything else is refused.
fn extract(
    reader: impl io::Read,
    root: &Path,
    limits: UnpackLimits,
    revision: &str,
) -> Result<Unpacked, ArtifactError> {
    let corrupt = |entry: Option<&str>| {
        let entry = entry.map(str::to_string);
        move |source| ArtifactError::Corrupt {
            revision: revision.to_string(),
            entry,
            source,
        }
    };
    let mut reader = io::BufReader::new(reader);
    if !reader
        .fill_buf()
        .map_err(corrupt(None))?
        .starts_with(&[0x1f, 0x8b])
    {
        return Err(ArtifactError::NotGzip {
            revision: revision.to_string(),
        });
    }
    // Multi-member, as Go's gzip reader is.
    let mut archive = tar::Archive::new(Capped {
        inner: flate2::read::MultiGzDecoder::new(reader),
        left: limits.stream_bytes(),
        cap: limits.stream_bytes(),
    });
    let mut unpacked = Unpacked::default();
    let mut entries = 0usize;
    for entry in archive.entries().map_err(corrupt(None))? {
        let mut entry = entry.map_err(corrupt(None))?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(ArtifactError::TooManyEntries {
                revision: revision.to_string(),
                limit: limits.max_entries,
            });
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refused = |problem| ArtifactError::UnsafeEntry {
            revision: revision.to_string(),
            entry: name.clone(),
            problem,
        };
        let write_err = |source: io::Error| ArtifactError::EntryWrite {
            revision: revision.to_string(),
            entry: name.clone(),
            problem: os_error_text(&source),
        };
        let kind = entry.header().entry_type();
        // Symlinks are skipped (Flux's consumers unpack with skip-symlinks); a pax global header
        // (as `git archive` writes) is metadata of the archive, not an entry of the tree.
        if kind.is_symlink() || kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let relative = relative_path(&name).map_err(refused)?;
        let mode = entry.header().mode().map_err(corrupt(Some(&name)))? & 0o777;
        let path = root.join(&relative);
        if kind.is_dir() {
            fs_err::create_dir_all(&path).map_err(write_err)?;
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(write_err)?;
        } else if kind.is_file() {
            if relative.as_os_str().is_empty() {
                return Err(refused(EntryProblem::Empty));
            }
            let too_large = || ArtifactError::TooLarge {
                revision: revision.to_string(),
                entry: name.clone(),
                limit: limits.max_bytes,
            };
            let mut budget = limits.max_bytes - unpacked.bytes;
            if entry.header().size().map_err(corrupt(Some(&name)))? > budget {
                return Err(too_large());
            }
            if let Some(parent) = path.parent() {
                fs_err::create_dir_all(parent).map_err(write_err)?;
            }
            let mut out = fs_err::File::create(&path).map_err(write_err)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buf).map_err(corrupt(Some(&name)))?;
                if n == 0 {
                    break;
                }
                // Checked on the bytes read too, not only on the header's size field.
                budget = budget.checked_sub(n as u64).ok_or_else(too_large)?;
                out.write_all(&buf[..n]).map_err(write_err)?;
            }
            drop(out);
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(write_err)?;
            unpacked.bytes = limits.max_bytes - budget;
            unpacked.files += 1;
        } else {
            return Err(refused(EntryProblem::UnsupportedType(format!("{kind:?}"))));
        }
    }
    // Read past the end-of-archive blocks so a truncated or corrupt gzip trailer is noticed;
    // bounded, so trailing zeros cannot keep us busy.
    let mut rest = archive.into_inner();
    io::copy(&mut (&mut rest).take(limits.max_bytes), &mut io::sink()).map_err(corrupt(None))?;
    Ok(unpacked)
}

/// For the `artifact_untar` fuzz target only (not an API): [`extract`] of the tar.gz bytes
/// `archive` into the existing directory `root`; the files and bytes written.
#[doc(hidden)]
pub fn fuzz_extract(
    archive: &[u8],
    root: &Path,
    limits: UnpackLimits,
) -> Result<(usize, u64), ArtifactError> {
    extract(archive, root, limits, "fuzz").map(|u| (u.files, u.bytes))
}

/// Words for `e` without a path: the OS error's for a plain io error ("File exists (os error
/// 17)"), the kind's for fs-err's (which put the temporary path in their text).
fn os_error_text(e: &io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.kind().to_string(),
        |code| io::Error::from_raw_os_error(code).to_string(),
    )
}

/// A reader that fails once more than `cap` bytes come out of `inner`. Stopping quietly would
/// not do: tar reads a stream that ends at a block boundary as a complete archive.
struct Capped<R> {
    inner: R,
    left: u64,
    cap: u64,
}

impl<R: io::Read> io::Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "the archive expands to more than {} bytes, over the unpack limits",
                    self.cap
                ))),
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The path under the destination for an entry name, refusing absolute names, `..` components
/// and backslashes (Flux refuses those too); `.` components are dropped, so `.` and `./` name the
/// root.
fn relative_path(name: &str) -> Result<PathBuf, EntryProblem> {
    if name.starts_with('/') {
        return Err(EntryProblem::Absolute);
    }
    if name.contains('\\') {
        return Err(EntryProblem::Escapes);
    }
    let mut relative = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(EntryProblem::Escapes),
            Component::RootDir | Component::Prefix(_) => return Err(EntryProblem::Absolute),
        }
    }
    Ok(relative)
}

#[cfg(test)]
pub(crate) mod tests;
