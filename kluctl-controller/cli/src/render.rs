//! `kluctl render`, `kluctl list-targets` and `kluctl list-images`: the commands that only
//! load and render, never touch a cluster's objects.

use std::io::Write as _;

use serde_json::Value;

use crate::flags::RenderFlags;
use crate::flags::commands::{ListImagesCmd, ListTargetsCmd, RenderCmd};
use crate::output::{ListFormat, write_outputs};
use crate::prepare::{external_args, prepare, project_dir};
use kluctl_engine::project::load;
use kluctl_engine::target::RenderedTarget;
use kluctl_engine::template::{PlaceholderImages, TemplateEngine};

/// `keep_render_dir`: the temporary render dir outlives the command (`kluctl render` without
/// `--print-all` names it), so it gets the per-item `.rendered.yml` too.
fn render(
    c: &RenderFlags,
    keep_render_dir: bool,
) -> anyhow::Result<(RenderedTarget, Option<tempfile::TempDir>)> {
    let p = prepare(&c.common, &c.offline, None, keep_render_dir)?;
    Ok((p.rendered, p.guard))
}

/// Runs `kluctl render`.
///
/// # Errors
/// Any load or render error, with its chain.
pub fn run_render(cmd: &RenderCmd) -> anyhow::Result<()> {
    let (rendered, guard) = render(&cmd.flags, !cmd.print_all)?;
    if cmd.print_all {
        // The temporary render dir is removed while the objects are written, and the rendered
        // target is left to the process exit: freeing a thousand objects one by one and removing
        // the dir took a fifth of a 1,000-object render's single-threaded tail.
        let cleanup = guard.map(|dir| std::thread::spawn(move || drop(dir)));
        let text =
            kluctl_engine::render::to_yaml_documents(rendered.objects()).map_err(anyhow::Error::msg)?;
        std::mem::forget(rendered);
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if let Some(cleanup) = cleanup {
            let _ = cleanup.join();
        }
    } else {
        let dir = guard
            .map(tempfile::TempDir::keep)
            .or_else(|| cmd.flags.common.render_output.render_output_dir.clone())
            .unwrap_or_default();
        eprintln!("Rendered into {}", dir.display());
    }
    Ok(())
}

/// Runs `kluctl list-images`.
///
/// # Errors
/// Any load or render error.
pub fn run_list_images(cmd: &ListImagesCmd) -> anyhow::Result<()> {
    let (rendered, _guard) = render(&cmd.flags, false)?;
    let images = rendered.images.seen(cmd.simple);
    let result = serde_json::json!({ "images": images });
    write_outputs(&cmd.output.output, ListFormat::Kluctl, &|format| {
        document(format, &result)
    })
}

/// Runs `kluctl list-targets`: the targets as a YAML list, or with `--only-names` one name per
/// line (Kluctl's outputs); `-o yaml` / `-o json` give either as YAML or JSON.
///
/// # Errors
/// When `.kluctl.yaml` cannot be loaded.
pub fn run_list_targets(cmd: &ListTargetsCmd) -> anyhow::Result<()> {
    let dir = project_dir(&cmd.project)?;
    let args = external_args(&cmd.args)?;
    let engine = TemplateEngine::new(&dir, std::sync::Arc::new(PlaceholderImages));
    let project = load::load_kluctl_project(&engine, &dir, &args)?;
    for w in &project.warnings {
        eprintln!("warning: {w}");
    }
    if cmd.only_names {
        let names: Vec<&str> = project.targets.iter().map(|t| t.name.as_str()).collect();
        return write_outputs(&cmd.output.output, ListFormat::Kluctl, &|format| match format {
            ListFormat::Kluctl => Ok(names.iter().flat_map(|n| [*n, "\n"]).collect()),
            _ => document(format, &serde_json::to_value(&names)?),
        });
    }
    let targets = serde_json::to_value(&project.targets)?;
    write_outputs(&cmd.output.output, ListFormat::Kluctl, &|format| {
        document(format, &targets)
    })
}

/// `value` as JSON (pretty) or YAML (Kluctl's format).
fn document(format: ListFormat, value: &Value) -> anyhow::Result<String> {
    match format {
        ListFormat::Json => Ok(serde_json::to_string_pretty(value)?),
        ListFormat::Yaml | ListFormat::Kluctl => {
            serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("failed to write YAML: {e}"))
        }
    }
}
