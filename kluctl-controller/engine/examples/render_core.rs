//! The render engine without the CLI around it, for benchmarks: renders a project offline and
//! prints the object count to stdout and, to stderr, the time each render step took summed
//! over all items (items render in parallel, so the sum can exceed the wall time) and the peak
//! RSS of the process.
//!
//! ```text
//! render_core <project-dir> [-t <target>] [-a name=value ...]
//! ```
//!
//! ```sh
//! cargo run --release -p kluctl-engine --example render_core -- e2e/fixtures/kluctl-examples/simple -t simple
//! ```

use std::process::ExitCode;

use kluctl_engine::helm::{Capabilities, Helm};
use kluctl_engine::kustomize::Kustomizer;
use kluctl_engine::project::args;
use kluctl_engine::project::inclusion::Inclusion;
use kluctl_engine::render::StepTimings;
use kluctl_engine::target::{TargetOptions, render_target};

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

fn run() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let dir = argv
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: render_core <project-dir> [-t target] [-a name=value ...]"))?;
    let (mut target, mut raw_args) = (None, Vec::new());
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "-t" => target = Some(value),
            "-a" => raw_args.push(value),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let parsed = args::parse_cli_args(&raw_args)?;
    let external_args = args::args_to_values(&parsed, true, &std::env::current_dir()?)?;
    let render_dir = tempfile::tempdir()?;
    let start = std::time::Instant::now();
    let rendered = render_target(
        TargetOptions {
            project_dir: std::path::absolute(&dir)?,
            target,
            target_name_override: None,
            discriminator: None,
            context: None,
            external_args,
            inclusion: Inclusion::default(),
            fixed_images: Vec::new(),
            render_dir: render_dir.path().to_path_buf(),
            write_rendered_objects: false,
            kustomizer: Kustomizer::default(),
            helm: Helm::default(),
            capabilities: Capabilities::default(),
            env: std::env::vars().collect(),
            git_cache_dir: kluctl_engine::source::GitCache::default_dir(),
            git: kluctl_engine::source::GitSourceOptions::default(),
        },
        None,
        None,
    )?;
    let wall = start.elapsed();
    let mut sum = StepTimings::default();
    for item in &rendered.items {
        sum += item.timings;
    }
    println!("{}", rendered.objects().count());
    eprintln!(
        "render_core: wall {:.3}s template {:.3}s helm {:.3}s kustomize {:.3}s postprocess {:.3}s peak-rss {}KiB",
        wall.as_secs_f64(),
        sum.template.as_secs_f64(),
        sum.helm.as_secs_f64(),
        sum.kustomize.as_secs_f64(),
        sum.postprocess.as_secs_f64(),
        peak_rss_kib()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("render_core: {e:#}");
            ExitCode::FAILURE
        }
    }
}
