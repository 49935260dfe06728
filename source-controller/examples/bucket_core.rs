//! Benchmark driver for `make bench` (B4 in `e2e/bench/`): runs the core of one Bucket reconcile
//! once against an S3 endpoint, with the same library calls and in the same order as
//! `reconcile::bucket` (`run_steps` + `package_and_store`), minus the Kubernetes API.
//!
//! ```text
//!  BUCKET_ACCESS_KEY=… BUCKET_SECRET_KEY=… bucket_core <endpoint> <bucket> <storage-dir> [--prefix P] [--index-only]
//!
//!  bucket::index (list + ignore rules → etag index)     --index-only stops here
//!   └─ bucket::download into a temp dir
//!       └─ archive::write_tar_gz ─► storage writer ─► commit
//! ```
//!
//! Prints one line to stdout: `revision=… digest=… size=… files=… path=…` (only `revision=… files=…`
//! with `--index-only`), and to stderr the time of each step with the peak RSS after it. The keys
//! come from the environment so they never show in a process list. Exits non-zero on any failure.

use source_controller::bucket::{self, BucketClient, ClientConfig, Provider, SecretData};
use source_controller::credentials::Secret;
use source_controller::reconcile::bucket::KIND_DIR;
use source_controller::{archive, storage};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Generous: the benchmark wants a number, not a timeout.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Object namespace of the artifact path, as if reconciling `bench/<bucket>`.
const NAMESPACE: &str = "bench";

fn peak_rss_kib() -> u64 {
    fs_err::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn step(name: &str, started: Instant) {
    eprintln!(
        "step {name}: {:.3}s peak-rss {}KiB",
        started.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
}

async fn run(
    endpoint: &str,
    bucket_name: &str,
    storage_dir: PathBuf,
    prefix: Option<&str>,
    index_only: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let secret = match (
        std::env::var("BUCKET_ACCESS_KEY"),
        std::env::var("BUCKET_SECRET_KEY"),
    ) {
        (Ok(a), Ok(s)) => {
            let data: SecretData = [
                ("accesskey".to_string(), Secret::new(a)),
                ("secretkey".to_string(), Secret::new(s)),
            ]
            .into();
            Some(("bench/creds".to_string(), data))
        }
        _ => None,
    };
    let client = BucketClient::new(&ClientConfig {
        provider: Provider::Generic,
        bucket: bucket_name.to_string(),
        endpoint: endpoint.to_string(),
        insecure: true,
        region: None,
        secret,
        cert_secret: None,
        proxy: None,
    })?;
    let t = Instant::now();
    let indexed = bucket::index(&client, prefix, None, TIMEOUT).await?;
    step("index", t);
    if index_only {
        println!(
            "revision={} files={}",
            indexed.index.revision(),
            indexed.index.len()
        );
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let t = Instant::now();
    let fetched = bucket::download(&client, &indexed.index, tmp.path(), TIMEOUT).await?;
    step("download", t);
    let revision = fetched.revision();
    let file = format!("{}.tar.gz", revision.trim_start_matches("sha256:"));
    let store = storage::Storage::new(&storage_dir, "http://127.0.0.1:9090")?;
    let rel = storage::artifact_path(KIND_DIR, NAMESPACE, bucket_name, &file)?;
    store.create_object_dir(KIND_DIR, NAMESPACE, bucket_name)?;
    let t = Instant::now();
    let (stored, summary) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let mut writer = store.writer(&rel).map_err(|e| e.to_string())?;
        let summary = archive::write_tar_gz(tmp.path(), &archive::IgnoreRules::none(), &mut writer)
            .map_err(|e| e.to_string())?;
        let stored = writer.commit().map_err(|e| e.to_string())?;
        Ok((stored, summary))
    })
    .await??;
    step("archive", t);
    println!(
        "revision={revision} digest={} size={} files={} path={}",
        stored.digest, stored.size, summary.files, stored.path
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut positional = Vec::new();
    let (mut prefix, mut index_only) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--index-only" => index_only = true,
            "--prefix" => prefix = args.next(),
            _ => positional.push(arg),
        }
    }
    let [endpoint, bucket_name, storage_dir] = positional.as_slice() else {
        eprintln!("usage: bucket_core <endpoint> <bucket> <storage-dir> [--prefix P] [--index-only]");
        return ExitCode::from(2);
    };
    let rt = match source_controller::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bucket_core: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(
        endpoint,
        bucket_name,
        PathBuf::from(storage_dir),
        prefix.as_deref(),
        index_only,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bucket_core: {}", gitops_git::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}
