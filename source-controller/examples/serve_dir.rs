//! Benchmark driver for `make bench` (B5 in `e2e/bench/`): serves a directory with the artifact
//! server exactly as the controller does (`server::bind` + `server::serve`), until SIGTERM/SIGINT.
//!
//! ```sh
//! cargo run --release -p source-controller --example serve_dir -- /tmp/files 127.0.0.1:18090
//! ```
//!
//! Prints `listening on <addr>` to stdout once the socket is bound.

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
    server::serve(root, listener, shutdown_signal()).await?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, addr] = <[String; 2]>::try_from(args).unwrap_or_else(|_| {
        eprintln!("usage: serve_dir <dir> <host:port>");
        std::process::exit(2);
    });
    // The controller's runtime: multi-threaded, one worker per core (lib.rs `run`).
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
