//! Benchmark driver for `make bench` (B5 in `e2e/bench/`): serves a directory with the artifact
//! server exactly as the controller does (`server::bind` + `server::serve`), until SIGTERM/SIGINT.
//!
//! ```sh
//! cargo run --release -p source-controller --example serve_dir -- /tmp/files 127.0.0.1:18090 \
//!     [--max-blocking-threads N]
//! ```
//!
//! The runtime is the controller's (multi-threaded, tokio's defaults) unless
//! `--max-blocking-threads` caps tokio's blocking pool, where `ServeDir` does its file I/O: a
//! what-if knob for tuning, not what the controller runs with. Prints `listening on <addr>` to
//! stdout once the socket is bound.

use source_controller::server;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(root: PathBuf, addr: String) -> Result<(), Box<dyn std::error::Error>> {
    let listener = server::bind(&addr).await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    server::serve(root, listener, shutdown_signal()).await;
    Ok(())
}

const USAGE: &str = "usage: serve_dir <dir> <host:port> [--max-blocking-threads N]";

fn main() -> ExitCode {
    let mut positional = Vec::new();
    let mut max_blocking = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--max-blocking-threads" {
            let n = args
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0);
            if n.is_none() {
                eprintln!("--max-blocking-threads needs a positive number\n{USAGE}");
                return ExitCode::from(2);
            }
            max_blocking = n;
        } else {
            positional.push(arg);
        }
    }
    let Ok([root, addr]) = <[String; 2]>::try_from(positional) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // The controller's own runtime (lib.rs `runtime`), unless a blocking-pool size is given.
    let rt = match max_blocking {
        None => source_controller::runtime(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .max_blocking_threads(n)
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve_dir: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(PathBuf::from(root), addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_dir: {e}");
            ExitCode::FAILURE
        }
    }
}
