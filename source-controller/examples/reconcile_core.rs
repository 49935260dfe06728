//! Benchmark driver for `make bench` (B1, B2 in `e2e/bench/`): runs the core of one GitRepository
//! reconcile once against a URL, with the same library calls and in the same order as
//! `reconcile::gitrepository` (`fetch` + `store_tree` of a spec without `include` or
//! `recurseSubmodules`), minus the Kubernetes API.
//!
//! ```text
//!  reconcile_core <url> <storage-dir> [--branch NAME] [--resolve-only]
//!
//!  git::resolve (ls-refs)                         --resolve-only stops here (B2)
//!   └─ git::fetch_tree (depth 1): trees in memory, blobs in a temp dir, no checkout
//!       └─ archive::IgnoreRules::for_git_tree ─► archive::write_tree_tar_gz (parallel gzip)
//!           ─► storage writer ─► commit (B1)
//! ```
//!
//! Prints one line to stdout: `revision=… digest=… size=… files=… path=…` (only `revision=…` with
//! `--resolve-only`), and to stderr the time of each step with the peak RSS after it. Exits
//! non-zero on any failure.
//!
//! ```sh
//! cargo run --release -p source-controller --example reconcile_core -- \
//!     http://127.0.0.1:18080/git/demo.git /tmp/storage --branch main
//! ```

use source_controller::reconcile::gitrepository::KIND_DIR;
use source_controller::{archive, git, storage};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Generous: the benchmark wants a number, not a timeout.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Object namespace and name of the artifact path, as if reconciling `bench/<name>`.
const NAMESPACE: &str = "bench";

struct Options {
    url: String,
    storage: PathBuf,
    branch: String,
    resolve_only: bool,
}

fn usage() -> String {
    "usage: reconcile_core <url> <storage-dir> [--branch NAME] [--resolve-only]".to_string()
}

fn parse_args() -> Result<Options, String> {
    let mut positional = Vec::new();
    let mut branch = "main".to_string();
    let mut resolve_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--resolve-only" => resolve_only = true,
            "--branch" => branch = args.next().ok_or_else(usage)?,
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with("--") => return Err(format!("unknown option '{s}'\n{}", usage())),
            _ => positional.push(arg),
        }
    }
    let [url, storage] = <[String; 2]>::try_from(positional).map_err(|_| usage())?;
    Ok(Options {
        url,
        storage: PathBuf::from(storage),
        branch,
        resolve_only,
    })
}

/// The process's peak resident set so far (`VmHWM`), in KiB; 0 where /proc is not there.
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

/// Runs `f`, printing to stderr how long it took and the peak RSS after it, under `step`.
fn timed<T>(step: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    eprintln!(
        "step {step}: {:.3}s peak-rss {}KiB",
        started.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
    out
}

fn run(opts: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let auth = source_controller::credentials::Credentials::none();
    let reference = git::GitRef::Branch(opts.branch.clone());
    let resolved = timed("resolve", || git::resolve(&opts.url, &reference, &auth, TIMEOUT))?;
    let revision = resolved.revision();
    if opts.resolve_only {
        println!("revision={revision}");
        return Ok(());
    }

    let name = opts
        .url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .to_string();
    let store = storage::Storage::new(&opts.storage, "http://127.0.0.1:9090")?;
    let rel = storage::artifact_path(KIND_DIR, NAMESPACE, &name, &format!("{}.tar.gz", resolved.commit))?;
    store.create_object_dir(KIND_DIR, NAMESPACE, &name)?;

    // As the reconcile's fetch + package steps: the commit's objects into a temp dir → ignore
    // rules from its tree → tar.gz streamed from the blobs into the storage writer → commit.
    let tmp = tempfile::tempdir()?;
    let fetched = timed("fetch", || {
        git::fetch_tree(&opts.url, &resolved, &auth, tmp.path(), TIMEOUT)
    })?;
    let mut writer = store.writer(&rel)?;
    let summary = timed("archive", || {
        let rules = archive::IgnoreRules::for_git_tree(&fetched.tree, None)?;
        archive::write_tree_tar_gz(&fetched.tree, &rules, &mut writer)
    })?;
    let stored = timed("commit", || writer.commit())?;
    timed("cleanup", || {
        drop(fetched);
        tmp.close()
    })?;
    println!(
        "revision={revision} digest={} size={} files={} path={}",
        stored.digest, stored.size, summary.files, stored.path
    );
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reconcile_core: {}", gitops_git::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}
