//! Rendering one target: per deployment item, template → Helm → kustomize → post-process, then
//! the namespace fix-up over all objects.
//!
//! ```text
//! Item (from project::load)
//!   ├─ template  item dir ─► files at <render dir>/<rendered_rel_dir> (search: item dir,
//!   │            project dirs), held in memory (files::MemTree)
//!   ├─ written to the render dir only when something reads it: a Helm chart, a symlink,
//!   │            onlyRender, --render-output-dir, or a kustomization the native path declines
//!   ├─ helm      every helm-chart.yaml in the rendered dir ─► its output file
//!   ├─ kustomize existing or generated kustomization (overrideNamespace) ─► objects
//!   └─ postprocess ignore, labels, annotations, image placeholders
//! all items ─► namespaces (CRDs in the set, then discovery; offline: untouched)
//! ```
//!
//! Items render in parallel (one worker per core); errors are reported for the first failing
//! item in deployment order, so the message does not depend on scheduling.
//!
//! ```text
//! images       images.get_image placeholders and their resolution
//! namespaces   namespace fix-up from CRDs in the set and cluster discovery
//! postprocess  ignore, common labels/annotations, discriminator, tags, item dir, images
//! ```

pub mod images;
pub mod namespaces;
pub mod postprocess;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::files::{Disk, MemTree, Tree};
use crate::helm::{self, Capabilities, Helm, HelmError, RenderRequest};
use crate::kustomize::{KustomizeError, Kustomizer, prepare_kustomization_in};
use crate::project::config::FixedImage;
use crate::project::load::Item;
use crate::template::{TemplateEngine, TemplateError};

use images::{ImageError, Images};
use namespaces::ScopeLookup;
use postprocess::ItemMetadata;

/// Why rendering failed; every variant names the item directory.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Templating the item directory failed.
    #[error("failed to render templates of deployment item '{item}'")]
    Template {
        /// The item dir (relative to the source root).
        item: String,
        /// The template error.
        #[source]
        source: Box<TemplateError>,
    },
    /// A Helm chart of the item failed.
    #[error("failed to render helm chart of deployment item '{item}'")]
    Helm {
        /// The item dir.
        item: String,
        /// The Helm error.
        #[source]
        source: Box<HelmError>,
    },
    /// kustomize failed.
    #[error("building kustomize objects for '{item}' failed")]
    Kustomize {
        /// The item dir.
        item: String,
        /// The kustomize error.
        #[source]
        source: Box<KustomizeError>,
    },
    /// The kustomization does not list the output of a chart it holds.
    #[error("{item}/kustomization.yaml does not include the rendered helm chart: {output}")]
    HelmOutputNotListed {
        /// The item's rendered dir.
        item: String,
        /// The chart's output file.
        output: String,
    },
    /// The worker rendering the item stopped without a result (it panicked).
    #[error("failed to render deployment item '{item}': the render worker stopped")]
    Worker {
        /// The item dir.
        item: String,
    },
    /// A rendered file could not be written.
    #[error("failed to write '{}': {message}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Image placeholders could not be resolved.
    #[error("postprocessing kustomize objects for '{item}' failed: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Images {
        /// The item dir.
        item: String,
        /// One error per placeholder.
        errors: Vec<ImageError>,
    },
}

/// What a render needs besides the items.
#[derive(Debug)]
pub struct RenderOptions {
    /// Root of the rendered files (`--render-output-dir` or a temporary directory).
    pub render_dir: PathBuf,
    /// Write `.rendered.yml` per item (see `TargetOptions::write_rendered_objects`).
    pub write_rendered_objects: bool,
    /// The rendered target discriminator (empty: none).
    pub discriminator: String,
    /// The kustomize step.
    pub kustomizer: Kustomizer,
    /// The Helm step.
    pub helm: Helm,
    /// Kubernetes version and API versions for Helm.
    pub capabilities: Capabilities,
}

/// One rendered deployment item.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedItem {
    /// The item as loaded.
    pub item: Item,
    /// Its objects after post-processing (empty for items without a directory and for
    /// `onlyRender` items).
    pub objects: Vec<Value>,
    /// `kluctl.io/barrier` on the item's kustomization, or the item's `barrier`.
    pub barrier: bool,
    /// `kluctl.io/wait-readiness` on the kustomization, or the item's `waitReadiness`.
    pub wait_readiness: bool,
    /// How long each step took for this item (for progress output and benchmarks).
    pub timings: StepTimings,
}

/// Time spent per render step of one item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepTimings {
    /// Templating the item directory.
    pub template: Duration,
    /// Rendering Helm charts.
    pub helm: Duration,
    /// Preparing the kustomization and building it.
    pub kustomize: Duration,
    /// Post-processing the objects.
    pub postprocess: Duration,
}

impl std::ops::AddAssign for StepTimings {
    fn add_assign(&mut self, o: Self) {
        self.template += o.template;
        self.helm += o.helm;
        self.kustomize += o.kustomize;
        self.postprocess += o.postprocess;
    }
}

/// Renders `items` in parallel and fixes namespaces over all objects (`scope` is `None` when
/// offline). `images` resolves placeholders and records seen images.
///
/// # Errors
/// The error of the first failing item, in deployment order.
pub fn render_items(
    engine: &TemplateEngine,
    items: &[Item],
    images: &Images,
    options: &RenderOptions,
    scope: Option<&dyn ScopeLookup>,
) -> Result<Vec<RenderedItem>, RenderError> {
    let workers = parallelism().min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<RenderedItem, RenderError>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = render_item(engine, item, images, options);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    let mut rendered = Vec::with_capacity(results.len());
    for (slot, item) in results.into_iter().zip(items) {
        // A slot is empty only if its worker panicked; report that item instead of panicking.
        let r = slot
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| RenderError::Worker {
                item: item.rel_dir.clone(),
            })?;
        rendered.push(r?);
    }
    let mut all: Vec<&mut Value> = rendered.iter_mut().flat_map(|r| r.objects.iter_mut()).collect();
    namespaces::fix_namespaces(&mut all, scope);
    Ok(rendered)
}

fn render_item(
    engine: &TemplateEngine,
    item: &Item,
    images: &Images,
    options: &RenderOptions,
) -> Result<RenderedItem, RenderError> {
    let mut out = RenderedItem {
        item: item.clone(),
        objects: Vec::new(),
        barrier: item.config.barrier,
        wait_readiness: item.config.wait_readiness,
        timings: StepTimings::default(),
    };
    let Some(src) = &item.dir else {
        return Ok(out);
    };
    let name = item.rel_dir.clone();
    let dst = options.render_dir.join(&item.rendered_rel_dir);
    let mut search_dirs = vec![src.clone()];
    search_dirs.extend(item.search_dirs.iter().cloned());
    let t = Instant::now();
    let mut tree = engine
        .render_directory_files(src, &dst, &search_dirs, &item.vars)
        .map_err(|e| RenderError::Template {
            item: name.clone(),
            source: Box::new(e),
        })?;
    out.timings.template = t.elapsed();
    let kustomize_error = |e: KustomizeError| RenderError::Kustomize {
        item: name.clone(),
        source: Box::new(e),
    };
    let write_tree = |tree: &MemTree| {
        tree.write_to_disk().map_err(|e| RenderError::Write {
            path: dst.clone(),
            message: e.to_string(),
        })
    };
    let in_memory = builds_in_memory(item, &tree, options);
    if !in_memory {
        write_tree(&tree)?;
        tree = MemTree::new();
        let t = Instant::now();
        render_helm_charts(item, &dst, options)?;
        out.timings.helm = t.elapsed();
        if item.config.only_render {
            return Ok(out);
        }
    }
    let t = Instant::now();
    let files: &mut dyn Tree = if in_memory { &mut tree } else { &mut Disk };
    let prepared = prepare_kustomization_in(
        files,
        &dst,
        item.config.recursive,
        item.override_namespace.as_deref(),
        Path::new(&item.rel_dir),
    )
    .map_err(kustomize_error)?;
    out.barrier |= prepared.barrier;
    out.wait_readiness |= prepared.wait_readiness;
    // In memory and declined: the files go to disk as they are now (kustomization prepared), and
    // the build decides again there, the binary doing what the native path does not.
    let native = if in_memory {
        options.kustomizer.build_native_in(&tree, &dst)
    } else {
        None
    };
    let objects = if let Some(Ok(objects)) = native {
        objects
    } else {
        if in_memory {
            write_tree(&tree)?;
        }
        options.kustomizer.build(&dst).map_err(kustomize_error)?
    };
    out.timings.kustomize = t.elapsed();
    finish_item(out, objects, item, images, options, &dst)
}

/// Whether an item's rendered files can stay in memory for the build: nobody reads the render
/// dir afterwards, the item renders no Helm chart, holds no symlink (only the file system
/// resolves those), builds its objects (`onlyRender` items exist for other items to read), and
/// native builds are on. Decided on the rendered tree, before building.
fn builds_in_memory(item: &Item, tree: &MemTree, options: &RenderOptions) -> bool {
    !options.write_rendered_objects
        && !options.kustomizer.native_disabled
        && !item.config.only_render
        && !tree.has_symlinks()
        && !tree
            .file_names()
            .any(|n| n.to_str().is_some_and(crate::helm::is_helm_chart_file))
}

/// Post-processes an item's built objects and, when asked, writes them to `.rendered.yml`.
fn finish_item(
    mut out: RenderedItem,
    objects: Vec<crate::Object>,
    item: &Item,
    images: &Images,
    options: &RenderOptions,
    dst: &Path,
) -> Result<RenderedItem, RenderError> {
    let name = item.rel_dir.clone();
    let t = Instant::now();
    out.objects = objects.into_iter().map(Value::Object).collect();
    let meta = ItemMetadata {
        common_labels: item.common_labels.clone(),
        common_annotations: item.common_annotations.clone(),
        discriminator: options.discriminator.clone(),
        tags: item.tags.clone(),
        item_dir: item.rel_dir.clone(),
        skip_delete_if_tags: item.config.skip_delete_if_tags,
    };
    let vars_images: Vec<FixedImage> = item
        .vars
        .get("images")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    postprocess::postprocess(&mut out.objects, &meta, images, &vars_images).map_err(|errors| {
        RenderError::Images {
            item: name.clone(),
            errors,
        }
    })?;
    if options.write_rendered_objects {
        // Like Kluctl, the post-processed objects (before the namespace fix-up) are written next
        // to the item's rendered files, for tools that read the render dir.
        let rendered = dst.join(".rendered.yml");
        let text = to_yaml_documents(&out.objects).map_err(|message| RenderError::Write {
            path: rendered.clone(),
            message,
        })?;
        fs_err::write(&rendered, text).map_err(|e| RenderError::Write {
            path: rendered,
            message: e.to_string(),
        })?;
    }
    out.timings.postprocess = t.elapsed();
    Ok(out)
}

/// Renders every `helm-chart.yaml` below the rendered item dir into its output file.
fn render_helm_charts(item: &Item, dst: &Path, options: &RenderOptions) -> Result<(), RenderError> {
    let name = || item.rel_dir.clone();
    let mut charts = Vec::new();
    find_chart_files(dst, &mut charts);
    charts.sort();
    for config_file in charts {
        let chart_dir = config_file.parent().unwrap_or(dst);
        let sub_dir = chart_dir.strip_prefix(dst).unwrap_or(Path::new(""));
        let config = helm::ChartConfig::load(&config_file).map_err(|e| RenderError::Helm {
            item: name(),
            source: Box::new(e),
        })?;
        if let Some(listed) = kustomization_resources(chart_dir)
            && !listed.iter().any(|r| r == config.output())
        {
            return Err(RenderError::HelmOutputNotListed {
                item: item.rendered_rel_dir.clone(),
                output: config.output().to_owned(),
            });
        }
        let item_rel = Path::new(&item.rel_dir).join(sub_dir);
        let pre_pulled = helm::find_pre_pulled_dir(&item.source_root, &item_rel);
        let source_dir = item.source_root.join(&item_rel);
        let req = RenderRequest {
            config_file: &config_file,
            project_root: &item.source_root,
            item_source_dir: &source_dir,
            pre_pulled_dir: pre_pulled.as_deref(),
            capabilities: &options.capabilities,
        };
        options.helm.render(&req).map_err(|e| RenderError::Helm {
            item: name(),
            source: Box::new(e),
        })?;
    }
    Ok(())
}

fn find_chart_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            find_chart_files(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(helm::is_helm_chart_file)
        {
            out.push(p);
        }
    }
}

/// The `resources` of an existing kustomization in `dir`, if there is one.
fn kustomization_resources(dir: &Path) -> Option<Vec<String>> {
    let path = ["kustomization.yml", "kustomization.yaml"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())?;
    let text = fs_err::read_to_string(path).ok()?;
    let v: Value = serde_saphyr::from_str(&text).ok()?;
    Some(
        v.get("resources")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    )
}

/// The threads this process may run at once (cgroup quota included), read once: the standard
/// library reads the cgroup files again on every call, which showed up in render profiles.
pub fn parallelism() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
}

/// Below this many objects, [`to_yaml_documents`] writes on the calling thread.
const PARALLEL_YAML_MIN: usize = 64;

/// Objects as multi-document YAML (`---` between documents). Keys come out sorted, as Kluctl
/// writes them, because `serde_json` maps are ordered by key (its `preserve_order` is off).
/// Large inputs are written in contiguous chunks on [`parallelism`] threads and joined in order.
///
/// # Errors
/// When an object cannot be serialized.
pub fn to_yaml_documents<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Result<String, String> {
    let objects: Vec<&Value> = objects.into_iter().collect();
    let threads = parallelism().min(objects.len() / PARALLEL_YAML_MIN).max(1);
    if threads == 1 {
        return yaml_chunk(&objects);
    }
    let chunk = objects.len().div_ceil(threads);
    let parts: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .map(|c| s.spawn(move || yaml_chunk(c)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("failed to write YAML: a writer thread panicked".to_string()))
            })
            .collect()
    });
    let mut out = String::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&part?);
    }
    Ok(out)
}

fn yaml_chunk(objects: &[&Value]) -> Result<String, String> {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(o).map_err(|e| format!("failed to write YAML: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod yaml_tests {
    use super::to_yaml_documents;

    #[test]
    fn documents_are_separated_and_keys_sorted() {
        let objects = [
            serde_json::json!({"kind": "B", "apiVersion": "v1", "metadata": {"name": "b", "labels": {"z": "1", "a": "2"}}}),
            serde_json::json!({"kind": "A"}),
        ];
        assert_eq!(
            to_yaml_documents(&objects).unwrap(),
            "apiVersion: v1\nkind: B\nmetadata:\n  labels:\n    a: \"2\"\n    z: \"1\"\n  name: b\n---\nkind: A\n"
        );
    }

    #[test]
    fn many_documents_come_out_in_order_as_written_one_by_one() {
        let objects: Vec<_> = (0..1000)
            .map(|i| serde_json::json!({"kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"i": i}}))
            .collect();
        let mut expected = String::new();
        for (i, o) in objects.iter().enumerate() {
            if i > 0 {
                expected.push_str("---\n");
            }
            expected.push_str(&serde_saphyr::to_string(o).unwrap());
        }
        assert_eq!(to_yaml_documents(&objects).unwrap(), expected);
    }
}
