//! From flags to a rendered target: everything that can be checked without a cluster (project
//! dir, `-a` args, inclusion rules, fixed images) is resolved first, then the cluster is
//! connected (unless offline) and the target rendered.
//!
//! ```text
//! ClusterRenderFlags ──► resolve (no I/O but reading the named files) ──► connect ──► render
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::Value;

use crate::flags::{ArgsFlags, ClusterRenderFlags, ImageFlags, OfflineFlags, ProjectFlags};
use crate::report::Hinted;
use kluctl_engine::cluster::Cluster;
use kluctl_engine::helm::{Capabilities, Helm};
use kluctl_engine::kustomize::Kustomizer;
use kluctl_engine::project::args as project_args;
use kluctl_engine::project::config::FixedImage;
use kluctl_engine::project::inclusion::Inclusion;
use kluctl_engine::project::vars::ClusterReader;
use kluctl_engine::render::namespaces::ScopeLookup;
use kluctl_engine::source::{GitCache, GitSourceOptions};
use kluctl_engine::target::{self, RenderedTarget, TargetOptions};

/// The project directory (`--project-dir` or the current one), absolute.
///
/// # Errors
/// When it is not a directory.
pub(crate) fn project_dir(flags: &ProjectFlags) -> anyhow::Result<PathBuf> {
    let dir = match &flags.project_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("failed to get the current directory")?,
    };
    let dir = std::path::absolute(&dir)
        .with_context(|| format!("failed to resolve project dir '{}'", dir.display()))?;
    anyhow::ensure!(dir.is_dir(), "project dir '{}' is not a directory", dir.display());
    Ok(dir)
}

/// The external args of `-a` and `--args-from-file`.
///
/// # Errors
/// A malformed `-a` or an unreadable file.
pub(crate) fn external_args(flags: &ArgsFlags) -> anyhow::Result<Value> {
    let parsed = project_args::parse_cli_args(&flags.arg)?;
    let cwd = std::env::current_dir().context("failed to get the current directory")?;
    let mut args = project_args::args_to_values(&parsed, true, &cwd)?;
    project_args::merge_args_files(&mut args, &flags.args_from_file)?;
    Ok(args)
}

/// The images of `--fixed-images-file` (its `images:` list) followed by those of `-F`.
///
/// # Errors
/// An unreadable or malformed file, naming it.
pub(crate) fn fixed_images(flags: &ImageFlags) -> anyhow::Result<Vec<FixedImage>> {
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
    out.extend(flags.fixed_image.iter().cloned());
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
    /// The temporary render dir (none with `--render-output-dir`).
    pub guard: Option<tempfile::TempDir>,
}

/// Renders the selected target (`discriminator`: `--discriminator`); the render dir is
/// `--render-output-dir` or a temporary dir that lives as long as the result.
///
/// # Errors
/// A flag value that does not resolve (before connecting), a failed connection (with a hint),
/// or a load or render error.
pub(crate) fn prepare(
    c: &ClusterRenderFlags,
    offline: &OfflineFlags,
    discriminator: Option<String>,
    keep_render_dir: bool,
) -> anyhow::Result<Prepared> {
    let project_dir = project_dir(&c.project)?;
    let external_args = external_args(&c.args)?;
    let inclusion = Inclusion::from_flags(
        &c.inclusion.include_tag,
        &c.inclusion.exclude_tag,
        &c.inclusion.include_deployment_dir,
        &c.inclusion.exclude_deployment_dir,
    )?;
    let fixed_images = fixed_images(&c.images)?;
    let cluster = if offline.offline_kubernetes {
        None
    } else {
        let context = match &c.target.context {
            Some(ctx) => Some(ctx.clone()),
            None => target::target_context(&project_dir, c.target.target.as_deref(), &external_args)?,
        };
        let cache = c.discovery_cache.options();
        let cluster = Cluster::connect(c.target.kubeconfig.as_deref(), context.as_deref(), cache.as_ref())
            .map_err(|e| {
            Hinted::new(
                e,
                "pass --context to choose another context, or --offline-kubernetes to render without a cluster",
            )
        })?;
        Some(cluster)
    };
    let (render_dir, guard) = if let Some(d) = &c.render_output.render_output_dir {
        fs_err::create_dir_all(d)?;
        (d.clone(), None)
    } else {
        let t = tempfile::Builder::new().prefix("rendered-").tempdir()?;
        (t.path().to_path_buf(), Some(t))
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
    let options = TargetOptions {
        project_dir: project_dir.clone(),
        target: c.target.target.clone(),
        target_name_override: c.target.target_name_override.clone(),
        discriminator,
        context: cluster.as_ref().map(|k| k.context.clone()),
        external_args: external_args.clone(),
        inclusion: inclusion.clone(),
        fixed_images,
        write_rendered_objects: keep_render_dir || c.render_output.render_output_dir.is_some(),
        render_dir,
        kustomizer: Kustomizer::default(),
        helm: Helm::default(),
        capabilities,
        env: std::env::vars().collect::<BTreeMap<_, _>>(),
        git_cache_dir: GitCache::default_dir(),
        git: GitSourceOptions::default(),
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
