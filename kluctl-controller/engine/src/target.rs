//! One call from a project directory to rendered objects for a target: what `kluctl render`,
//! `list-images`, `deploy` and the controller all run first.
//!
//! ```text
//! TargetOptions ─► load .kluctl.yaml ─► select target ─► root vars ─► deployment tree ─► inclusion
//!               ─► render items (template, helm, kustomize, post-process) ─► RenderedTarget
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::helm::{Capabilities, Helm};
use crate::kustomize::Kustomizer;
use crate::project::config::{FixedImage, Target};
use crate::project::inclusion::{Inclusion, item_entries};
use crate::project::load::{self, LoadError};
use crate::project::vars::{ClusterReader, VarsLoader};
use crate::render::images::Images;
use crate::render::namespaces::ScopeLookup;
use crate::render::{self, RenderError, RenderOptions, RenderedItem};
use crate::source::{GitCache, GitSourceOptions};
use crate::template::{PlaceholderImages, TemplateEngine};

/// Why a target could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Loading the project failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Rendering an item failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Everything a target render needs.
#[derive(Debug)]
pub struct TargetOptions {
    /// The project directory (also the source root).
    pub project_dir: PathBuf,
    /// `-t`: the target; `None` for target-less projects.
    pub target: Option<String>,
    /// `-T`: renames the target.
    pub target_name_override: Option<String>,
    /// `--discriminator`: replaces the target's discriminator.
    pub discriminator: Option<String>,
    /// The kubeconfig context actually used (`target.context` in templates); `None` offline.
    pub context: Option<String>,
    /// External args (`-a`, `--args-from-file`, or the controller's `spec.args`).
    pub external_args: Value,
    /// Inclusion rules (`-I`, `-E`, dirs).
    pub inclusion: Inclusion,
    /// Fixed images from `-F` / `--fixed-images-file` (later entries win).
    pub fixed_images: Vec<FixedImage>,
    /// Where rendered files go.
    pub render_dir: PathBuf,
    /// Also write each item's post-processed objects to `.rendered.yml` in its render dir, as
    /// Kluctl does; only worth it when someone reads the dir afterwards (`--render-output-dir`,
    /// `kluctl render` without `--print-all`), not for a temporary dir removed after the command.
    pub write_rendered_objects: bool,
    /// The kustomize step.
    pub kustomizer: Kustomizer,
    /// The Helm step.
    pub helm: Helm,
    /// Kubernetes version / API versions for Helm.
    pub capabilities: Capabilities,
    /// The environment `systemEnvVars` reads (also the `KLUCTL_GIT_*` credentials).
    pub env: BTreeMap<String, String>,
    /// Where Git checkouts for `git` includes and vars are cached.
    pub git_cache_dir: PathBuf,
    /// Credential rules, access check and pins for those checkouts; the default (the CLI's)
    /// uses only the `KLUCTL_GIT_*` sets of `env`.
    pub git: GitSourceOptions,
}

/// A rendered target.
#[derive(Debug)]
pub struct RenderedTarget {
    /// The selected (rendered) target.
    pub target: Target,
    /// All rendered targets of the project (for messages and `list-targets`).
    pub warnings: Vec<String>,
    /// The included items with their objects, in deployment order.
    pub items: Vec<RenderedItem>,
    /// The images resolved on the way (for `list-images`).
    pub images: Images,
}

impl RenderedTarget {
    /// Every rendered object, in deployment order.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.items.iter().flat_map(|i| i.objects.iter())
    }
}

/// Loads the project, selects the target and renders the included items.
///
/// `cluster` serves `cluster*` vars sources and `scope` the namespace fix-up; both are `None`
/// when rendering offline.
///
/// # Errors
/// [`TargetError`] naming the file, item and field that failed.
pub fn render_target(
    options: TargetOptions,
    cluster: Option<&dyn ClusterReader>,
    scope: Option<&dyn ScopeLookup>,
) -> Result<RenderedTarget, TargetError> {
    let engine = TemplateEngine::new(&options.project_dir, Arc::new(PlaceholderImages));
    let project = load::load_kluctl_project(&engine, &options.project_dir, &options.external_args)?;
    let mut target = project.select_target(
        &engine,
        options.target.as_deref(),
        options.target_name_override.as_deref(),
        options.discriminator.as_deref(),
        &options.external_args,
    )?;
    if let Some(context) = &options.context {
        target.context = Some(context.clone());
    }
    let vars = project.build_vars(&target, &options.external_args)?;
    let git = GitCache::new(&options.git_cache_dir, &options.env).with_options(options.git.clone());
    let loader = VarsLoader::new(&engine, cluster, Some(&git), options.env.clone());
    let items = load::load_deployment(&engine, &loader, &options.project_dir, ".", vars)?;
    let items: Vec<_> = items
        .into_iter()
        .filter(|i| {
            i.config.only_render
                || i.config.always_deploy
                || i.config.barrier
                || options.inclusion.check(
                    &item_entries(&i.tags, i.dir.as_ref().map(|_| i.rel_dir.as_str())),
                    false,
                )
        })
        .collect();
    // -F images come after the target's, so they win (last match wins).
    let mut fixed = target.images.clone();
    fixed.extend(options.fixed_images.iter().cloned());
    let images = Images::new(fixed);
    let render_options = RenderOptions {
        render_dir: options.render_dir.clone(),
        write_rendered_objects: options.write_rendered_objects,
        discriminator: target.discriminator.clone(),
        kustomizer: options.kustomizer,
        helm: options.helm,
        capabilities: options.capabilities,
    };
    let items = render::render_items(&engine, &items, &images, &render_options, scope)?;
    Ok(RenderedTarget {
        target,
        warnings: project.warnings,
        items,
        images,
    })
}

/// The kubeconfig context the selected target asks for (`None`: the current context).
///
/// # Errors
/// As [`render_target`] for loading `.kluctl.yaml` and selecting the target.
pub fn target_context(
    project_dir: &std::path::Path,
    target: Option<&str>,
    external_args: &Value,
) -> Result<Option<String>, TargetError> {
    let engine = TemplateEngine::new(project_dir, Arc::new(PlaceholderImages));
    let project = load::load_kluctl_project(&engine, project_dir, external_args)?;
    let target = project.select_target(&engine, target, None, None, external_args)?;
    Ok(target.context.filter(|c| !c.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::{TargetOptions, render_target};
    use crate::helm::{Capabilities, Helm};
    use crate::kustomize::Kustomizer;
    use crate::project::load::tests::write;
    use std::path::Path;

    fn options(project: &Path, render_dir: &Path, write_rendered_objects: bool) -> TargetOptions {
        TargetOptions {
            project_dir: project.to_path_buf(),
            target: None,
            target_name_override: None,
            discriminator: None,
            context: None,
            external_args: serde_json::json!({}),
            inclusion: crate::project::inclusion::Inclusion::default(),
            fixed_images: Vec::new(),
            render_dir: render_dir.to_path_buf(),
            write_rendered_objects,
            kustomizer: Kustomizer::default(),
            helm: Helm::default(),
            capabilities: Capabilities::default(),
            env: std::collections::BTreeMap::new(),
            git_cache_dir: render_dir.join("git-cache"),
            git: crate::source::GitSourceOptions::default(),
        }
    }

    /// An item the native path builds leaves nothing in the render dir (its files stayed in
    /// memory); `onlyRender` items and a dir someone reads afterwards are written as before.
    #[test]
    fn native_items_stay_in_memory_unless_the_render_dir_is_read() {
        let d = tempfile::tempdir().unwrap();
        let project = d.path().join("project");
        write(
            &project,
            &[
                (
                    "deployment.yaml",
                    "deployments:\n  - path: app\n  - path: shared\n    onlyRender: true\n",
                ),
                (
                    "app/cm.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
                ),
                ("shared/part.yaml", "x: 1\n"),
            ],
        );
        let discarded = d.path().join("discarded");
        fs_err::create_dir_all(&discarded).unwrap();
        let r = render_target(options(&project, &discarded, false), None, None).unwrap();
        assert_eq!(r.objects().count(), 1);
        assert!(!discarded.join("app").exists(), "nothing of app written");
        assert!(
            discarded.join("shared/part.yaml").is_file(),
            "onlyRender items are written"
        );

        let kept = d.path().join("kept");
        fs_err::create_dir_all(&kept).unwrap();
        let r2 = render_target(options(&project, &kept, true), None, None).unwrap();
        assert_eq!(r.items[0].objects, r2.items[0].objects);
        assert!(kept.join("app/cm.yaml").is_file());
        assert!(kept.join("app/kustomization.yml").is_file());
        assert!(kept.join("app/.rendered.yml").is_file());
    }
}
