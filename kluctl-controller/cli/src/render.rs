//! `kluctl render`, `kluctl list-targets` and `kluctl list-images`: the commands that only
//! load and render, never touch a cluster's objects.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use super::flags::{
    ArgsFlags, ImageFlags, InclusionFlags, OfflineFlags, OutputFlags, ProjectFlags, RenderOutputFlags,
    TargetFlags, parse_fixed_image,
};
use kluctl_engine::cluster::Cluster;
use kluctl_engine::helm::{Capabilities, Helm};
use kluctl_engine::kustomize::Kustomizer;
use kluctl_engine::project::args as project_args;
use kluctl_engine::project::config::FixedImage;
use kluctl_engine::project::inclusion::Inclusion;
use kluctl_engine::project::load;
use kluctl_engine::project::vars::ClusterReader;
use kluctl_engine::render::namespaces::ScopeLookup;
use kluctl_engine::source::GitCache;
use kluctl_engine::target::{self, RenderedTarget, TargetOptions};
use kluctl_engine::template::{PlaceholderImages, TemplateEngine};

/// The flags of every command that renders a target and may work on its cluster.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterRenderFlags {
    #[command(flatten)]
    pub(crate) project: ProjectFlags,
    #[command(flatten)]
    pub(crate) target: TargetFlags,
    #[command(flatten)]
    pub(crate) args: ArgsFlags,
    #[command(flatten)]
    pub(crate) images: ImageFlags,
    #[command(flatten)]
    pub(crate) inclusion: InclusionFlags,
    #[command(flatten)]
    pub(crate) render_output: RenderOutputFlags,
}

/// The flags of the commands that only render (they may also run without a cluster).
#[derive(Args, Debug, Clone, Default)]
pub struct RenderFlags {
    #[command(flatten)]
    pub(crate) common: ClusterRenderFlags,
    #[command(flatten)]
    pub(crate) offline: OfflineFlags,
}

/// `kluctl render`.
#[derive(Args, Debug, Clone, Default)]
pub struct RenderCmd {
    #[command(flatten)]
    flags: RenderFlags,
    /// Write all rendered manifests to stdout.
    #[arg(long = "print-all")]
    print_all: bool,
}

/// `kluctl list-images`.
#[derive(Args, Debug, Clone, Default)]
pub struct ListImagesCmd {
    #[command(flatten)]
    flags: RenderFlags,
    #[command(flatten)]
    output: OutputFlags,
    /// Output a simplified version of the images list.
    #[arg(long = "simple")]
    simple: bool,
}

/// `kluctl list-targets`.
#[derive(Args, Debug, Clone, Default)]
pub struct ListTargetsCmd {
    #[command(flatten)]
    project: ProjectFlags,
    #[command(flatten)]
    args: ArgsFlags,
    #[command(flatten)]
    output: OutputFlags,
    /// Only output the target names, one per line.
    #[arg(long = "only-names")]
    only_names: bool,
}

fn project_dir(flags: &ProjectFlags) -> anyhow::Result<PathBuf> {
    let dir = match &flags.project_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("failed to get the current directory")?,
    };
    let dir = std::path::absolute(&dir)
        .with_context(|| format!("failed to resolve project dir '{}'", dir.display()))?;
    anyhow::ensure!(dir.is_dir(), "project dir '{}' is not a directory", dir.display());
    Ok(dir)
}

fn external_args(flags: &ArgsFlags) -> anyhow::Result<Value> {
    let parsed = project_args::parse_cli_args(&flags.arg)?;
    let cwd = std::env::current_dir().context("failed to get the current directory")?;
    let mut args = project_args::args_to_values(&parsed, true, &cwd)?;
    project_args::merge_args_files(&mut args, &flags.args_from_file)?;
    Ok(args)
}

fn fixed_images(flags: &ImageFlags) -> anyhow::Result<Vec<FixedImage>> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        images: Vec<FixedImage>,
    }
    let mut out = Vec::new();
    if let Some(path) = &flags.fixed_images_file {
        let text = fs_err::read_to_string(path)?;
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_saphyr::from_str(&text)
                .map_err(|e| anyhow::anyhow!("failed to parse '{}': {e}", path.display()))?
        };
        out.extend(file.images);
    }
    for f in &flags.fixed_image {
        out.push(parse_fixed_image(f).map_err(anyhow::Error::msg)?);
    }
    Ok(out)
}

/// A rendered target with what rendering it took: the cluster connection (unless offline),
/// the inclusion rules and the temporary render dir (removed when this is dropped).
pub(crate) struct Prepared {
    /// The rendered target.
    pub rendered: RenderedTarget,
    /// The connected cluster (`None` offline).
    pub cluster: Option<Cluster>,
    /// The inclusion rules of `-I`/`-E`/dirs.
    pub inclusion: Inclusion,
    /// The external args (`-a`, `--args-from-file`).
    pub external_args: Value,
    /// The project directory.
    pub project_dir: PathBuf,
    guard: Option<tempfile::TempDir>,
}

/// Renders the selected target (`discriminator`: `--discriminator`); the render dir is
/// `--render-output-dir` or a temporary dir that lives as long as the result.
pub(crate) fn prepare(
    c: &ClusterRenderFlags,
    offline: &OfflineFlags,
    discriminator: Option<String>,
) -> anyhow::Result<Prepared> {
    let (render_dir, guard) = if let Some(d) = &c.render_output.render_output_dir {
        fs_err::create_dir_all(d)?;
        (d.clone(), None)
    } else {
        let t = tempfile::Builder::new().prefix("rendered-").tempdir()?;
        (t.path().to_path_buf(), Some(t))
    };
    let project_dir = project_dir(&c.project)?;
    let external_args = external_args(&c.args)?;
    let cluster = if offline.offline_kubernetes {
        None
    } else {
        let context = match &c.target.context {
            Some(ctx) => Some(ctx.clone()),
            None => target::target_context(&project_dir, c.target.target.as_deref(), &external_args)?,
        };
        Some(
            Cluster::connect(c.target.kubeconfig.as_deref(), context.as_deref()).map_err(|e| {
                anyhow::anyhow!(
                    "{e}\nhint: pass --context to choose another context, or --offline-kubernetes to render without a cluster"
                )
            })?,
        )
    };
    let capabilities = Capabilities {
        kube_version: offline
            .kubernetes_version
            .clone()
            .or_else(|| cluster.as_ref().map(|k| k.server_version.clone())),
        api_versions: cluster
            .as_ref()
            .map(|k| k.api_versions.clone())
            .unwrap_or_default(),
    };
    let inclusion = Inclusion::from_flags(
        &c.inclusion.include_tag,
        &c.inclusion.exclude_tag,
        &c.inclusion.include_deployment_dir,
        &c.inclusion.exclude_deployment_dir,
    )?;
    let options = TargetOptions {
        project_dir: project_dir.clone(),
        target: c.target.target.clone(),
        target_name_override: c.target.target_name_override.clone(),
        discriminator,
        context: cluster.as_ref().map(|k| k.context.clone()),
        external_args: external_args.clone(),
        inclusion: inclusion.clone(),
        fixed_images: fixed_images(&c.images)?,
        render_dir,
        kustomizer: Kustomizer::default(),
        helm: Helm::default(),
        capabilities,
        env: std::env::vars().collect::<BTreeMap<_, _>>(),
        git_cache_dir: GitCache::default_dir(),
    };
    let rendered = target::render_target(
        options,
        cluster.as_ref().map(|k| k as &dyn ClusterReader),
        cluster.as_ref().map(|k| k as &dyn ScopeLookup),
    )?;
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Prepared {
        rendered,
        cluster,
        inclusion,
        external_args,
        project_dir,
        guard,
    })
}

fn render(c: &RenderFlags) -> anyhow::Result<(RenderedTarget, Option<tempfile::TempDir>)> {
    let p = prepare(&c.common, &c.offline, None)?;
    Ok((p.rendered, p.guard))
}

/// Runs `kluctl render`.
///
/// # Errors
/// Any load or render error, with its chain.
pub fn run_render(cmd: &RenderCmd) -> anyhow::Result<()> {
    let (rendered, guard) = render(&cmd.flags)?;
    if cmd.print_all {
        let mut out = std::io::stdout().lock();
        out.write_all(
            kluctl_engine::render::to_yaml_documents(rendered.objects())
                .map_err(anyhow::Error::msg)?
                .as_bytes(),
        )?;
        out.flush()?;
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
    let (rendered, _guard) = render(&cmd.flags)?;
    let images = rendered.images.seen(cmd.simple);
    let result = serde_json::json!({ "images": images });
    write_output(&cmd.output.output, &result)
}

/// Runs `kluctl list-targets`.
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
        let mut text = String::new();
        for t in &project.targets {
            text.push_str(&t.name);
            text.push('\n');
        }
        if cmd.output.output.is_empty() {
            print!("{text}");
            return Ok(());
        }
        for o in &cmd.output.output {
            if o == "-" || o == "yaml" || o == "json" {
                print!("{text}");
            } else {
                fs_err::write(o, std::mem::take(&mut text).as_bytes())?;
            }
        }
        return Ok(());
    }
    let targets = serde_json::to_value(&project.targets)?;
    write_output(&cmd.output.output, &targets)
}

/// Writes `value` to every `-o` destination: `yaml`/`json` on stdout, or a file as YAML
/// (`-` is stdout); YAML on stdout without `-o`.
fn write_output(outputs: &[String], value: &Value) -> anyhow::Result<()> {
    let yaml = || -> anyhow::Result<String> {
        serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("failed to write YAML: {e}"))
    };
    if outputs.is_empty() {
        print!("{}", yaml()?);
        return Ok(());
    }
    for o in outputs {
        match o.as_str() {
            "json" => println!("{}", serde_json::to_string_pretty(value)?),
            "yaml" | "-" => print!("{}", yaml()?),
            path => fs_err::write(Path::new(path), yaml()?)?,
        }
    }
    Ok(())
}
