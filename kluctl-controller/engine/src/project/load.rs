//! Loading a Kluctl project for one target: `.kluctl.yaml` and its targets, the args, then the
//! `deployment.yaml` tree with its vars and includes, flattened into deployment items in
//! deployment order.
//!
//! ```text
//! .kluctl.yaml ──targets rendered with {target, args} until stable (≤ 10 passes)──► Target
//! root vars {target, args}
//!   └─ deployment.yaml (rendered with the vars of its parents) ─► its vars[] ─► items
//!        ├─ path items ─► Item (vars ⊕ item vars[], tags, labels, annotations, namespace)
//!        ├─ include ─► .kluctl-library.yaml? (own args, passVars) : parent vars ─► recurse
//!        └─ barrier-only / deleteObjects-only items ─► Item without dir
//! ```
//!
//! Conditions (`when`) are evaluated as Kluctl does: `{% if <when> %} True {% else %} False
//! {% endif %}` must render to `True`, `False` or nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::args::{self, ArgsError};
use super::config::{
    self, ConfigError, ConflictResolutionItem, DeploymentItemConfig, DeploymentProjectConfig,
    IgnoreForDiffItem, KluctlProjectConfig, Target,
};
use super::inclusion::default_tag;
use super::vars::{VarsError, VarsLoader};
use crate::template::{TemplateEngine, TemplateError};
use crate::values;

/// Why a project could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A project file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A project file failed to render.
    #[error("failed to render '{file}'")]
    Template {
        /// The file (relative to the project root).
        file: String,
        /// The template error.
        #[source]
        source: Box<TemplateError>,
    },
    /// A vars source failed.
    #[error(transparent)]
    Vars(#[from] VarsError),
    /// Arguments are invalid or missing.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// The selected target does not exist, or none was selected where one must be.
    #[error("{0}")]
    Target(String),
    /// A deployment item or include points to something unusable.
    #[error("invalid '{file}': {field}: {message}")]
    Item {
        /// The `deployment.yaml` (relative to the project root).
        file: String,
        /// The item, e.g. `deployments[3].path`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("failed to read '{path}'")]
    Io {
        /// The file (relative to the project root).
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `.kluctl.yaml` with its targets rendered.
#[derive(Clone, Debug, Default)]
pub struct KluctlProject {
    /// The project directory (absolute).
    pub dir: PathBuf,
    /// The file as parsed (targets unrendered).
    pub config: KluctlProjectConfig,
    /// Rendered targets, sorted by name; broken ones are left out (see `warnings`).
    pub targets: Vec<Target>,
    /// Problems that dropped a target.
    pub warnings: Vec<String>,
}

/// Loads `.kluctl.yaml` (or `.kluctl.yml`; none = target-less) from `dir` and renders its
/// targets with `external_args`.
///
/// # Errors
/// [`LoadError::Io`] or [`LoadError::Config`] for an unreadable or invalid file.
pub fn load_kluctl_project(
    engine: &TemplateEngine,
    dir: &Path,
    external_args: &Value,
) -> Result<KluctlProject, LoadError> {
    let mut project = KluctlProject {
        dir: dir.to_path_buf(),
        ..KluctlProject::default()
    };
    if let Some(path) = existing_yaml(dir, ".kluctl") {
        let name = display(dir, &path);
        let text = fs_err::read_to_string(&path).map_err(|source| LoadError::Io {
            path: name.clone(),
            source,
        })?;
        project.config = config::parse_kluctl_project(&text, &name)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in project.config.targets.iter().enumerate() {
        match render_target(engine, &project.config, t, external_args, i) {
            Ok(t) if seen.insert(t.name.clone()) => project.targets.push(t),
            Ok(t) => project.warnings.push(format!("Duplicate target {}", t.name)),
            Err(e) => project.warnings.push(format!(
                "Failed to load target {}: {}",
                t.name,
                crate::error_chain(&e)
            )),
        }
    }
    project.targets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(project)
}

impl KluctlProject {
    /// The target to render: `name`'s target, or the target-less one when the project has no
    /// targets; then `-T` renames it, and a CLI discriminator replaces the rendered one.
    ///
    /// # Errors
    /// [`LoadError::Target`] when `name` does not exist, or when targets exist but none was named.
    pub fn select_target(
        &self,
        engine: &TemplateEngine,
        name: Option<&str>,
        name_override: Option<&str>,
        discriminator: Option<&str>,
        external_args: &Value,
    ) -> Result<Target, LoadError> {
        let mut target = match name {
            Some(n) => self
                .targets
                .iter()
                .find(|t| t.name == n)
                .cloned()
                .ok_or_else(|| {
                    // A target that failed to render is dropped (as in Kluctl); say why.
                    let why = self
                        .warnings
                        .iter()
                        .find(|w| w.starts_with(&format!("Failed to load target {n}: ")))
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default();
                    LoadError::Target(format!("target {n} not existent in kluctl project config{why}"))
                })?,
            None if !self.config.targets.is_empty() => {
                return Err(LoadError::Target(
                    "a target must be explicitly selected when targets are defined in the Kluctl project"
                        .to_owned(),
                ));
            }
            None => render_target(engine, &self.config, &Target::default(), external_args, 0)?,
        };
        if let Some(n) = name_override.filter(|n| !n.is_empty()) {
            n.clone_into(&mut target.name);
        }
        if let Some(d) = discriminator.filter(|d| !d.is_empty()) {
            d.clone_into(&mut target.discriminator);
        }
        Ok(target)
    }

    /// The root template context of a target: `{target, args}` with args = target args ⊕
    /// external args, then defaults and required args from `.kluctl.yaml`.
    ///
    /// # Errors
    /// [`LoadError::Args`] for a missing required argument.
    pub fn build_vars(&self, target: &Target, external_args: &Value) -> Result<Value, LoadError> {
        build_vars(&self.config, target, external_args)
    }
}

fn build_vars(
    config: &KluctlProjectConfig,
    target: &Target,
    external_args: &Value,
) -> Result<Value, LoadError> {
    let mut all_args = Value::Object(Map::new());
    if let Some(a) = &target.args {
        values::merge(&mut all_args, a.clone());
    }
    values::merge(&mut all_args, external_args.clone());
    let all_args = args::apply_defaults(&config.args, all_args)?;
    let mut vars = Map::new();
    vars.insert(
        "target".to_owned(),
        serde_json::to_value(target).unwrap_or(Value::Null),
    );
    vars.insert("args".to_owned(), all_args);
    Ok(Value::Object(vars))
}

/// Fills a target's defaults from the project and renders its strings until they are stable.
fn render_target(
    engine: &TemplateEngine,
    config: &KluctlProjectConfig,
    t: &Target,
    external_args: &Value,
    index: usize,
) -> Result<Target, LoadError> {
    let mut target = t.clone();
    if target.discriminator.is_empty() {
        target.discriminator.clone_from(&config.discriminator);
    }
    // Kluctl always gives a target an `aws` object (empty when nothing is configured), so
    // `target.aws` exists in templates and `list-targets` prints `aws: {}`.
    match (&mut target.aws, &config.aws) {
        (None, Some(a)) => target.aws = Some(a.clone()),
        (None, None) => target.aws = Some(config::AwsConfig::default()),
        (Some(t), Some(a)) => {
            if t.profile.is_none() {
                t.profile.clone_from(&a.profile);
            }
            if t.service_account.is_none() {
                t.service_account.clone_from(&a.service_account);
            }
        }
        _ => {}
    }
    let file = ".kluctl.yaml";
    let mut last_err = None;
    for _ in 0..10 {
        let vars = build_vars(config, &target, external_args)?;
        let raw = serde_json::to_value(&target).unwrap_or(Value::Null);
        match engine.render_value(&format!("{file}: targets[{index}]"), &raw, &vars) {
            Ok((rendered, changed)) => {
                target = serde_json::from_value(rendered).map_err(|e| LoadError::Item {
                    file: file.to_owned(),
                    field: format!("targets[{index}]"),
                    message: format!("invalid after rendering: {e}"),
                })?;
                if !changed {
                    return Ok(target);
                }
                last_err = None;
            }
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(source) => Err(LoadError::Template {
            file: file.to_owned(),
            source: Box::new(source),
        }),
        None => Ok(target),
    }
}

/// One deployment item, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The item as written (rendered `deployment.yaml`).
    pub config: DeploymentItemConfig,
    /// The item's directory (absolute) for `path` items.
    pub dir: Option<PathBuf>,
    /// The root of the source the item comes from: the project directory, or the checkout of a
    /// `git` include.
    pub source_root: PathBuf,
    /// The directory relative to its source root, `/`-separated (`kluctl.io/deployment-item-dir`).
    pub rel_dir: String,
    /// Where the item renders to, relative to the render root (`rel_dir`, or `rel_dir-N` for
    /// the N-th repeated use of the same directory).
    pub rendered_rel_dir: String,
    /// The template context of the item.
    pub vars: Value,
    /// The directories templates are searched in (the item's project, then its parents).
    pub search_dirs: Vec<PathBuf>,
    /// Tags: the projects' and includes' tags (inner first), then the item's.
    pub tags: Vec<String>,
    /// `commonLabels` from the root down (inner wins).
    pub common_labels: BTreeMap<String, String>,
    /// `commonAnnotations` from the root down (inner wins).
    pub common_annotations: BTreeMap<String, String>,
    /// `overrideNamespace` of the nearest project that sets one.
    pub override_namespace: Option<String>,
    /// The `deployment.yaml` that declares the item (relative to the source root).
    pub file: String,
    /// `ignoreForDiff` of the item's project and its parents (inner first).
    pub ignore_for_diff: Vec<IgnoreForDiffItem>,
    /// `conflictResolution` of the item's project and its parents (inner first).
    pub conflict_resolution: Vec<ConflictResolutionItem>,
}

/// One project level of the include chain.
#[derive(Clone, Debug)]
struct Level {
    abs_dir: PathBuf,
    config: DeploymentProjectConfig,
    /// Tags of the include item through which this project was included.
    include_tags: Vec<String>,
}

/// Loads the deployment tree of `rel_dir` below `source_root` with the root context
/// `root_vars` (see [`KluctlProject::build_vars`]) and returns its items in order.
///
/// # Errors
/// [`LoadError`] naming the file (and item) that failed.
pub fn load_deployment(
    engine: &TemplateEngine,
    vars_loader: &VarsLoader<'_>,
    source_root: &Path,
    rel_dir: &str,
    root_vars: Value,
) -> Result<Vec<Item>, LoadError> {
    let mut loader = TreeLoader {
        engine,
        vars_loader,
        source: Source {
            root: normalize(source_root),
            label: String::new(),
            render_prefix: String::new(),
        },
        sources: 0,
        indexes: HashMap::new(),
        items: Vec::new(),
    };
    let dir = normalize(&loader.source.root.join(rel_dir));
    loader.load_project(&dir, root_vars, &mut Vec::new(), Vec::new())?;
    Ok(loader.items)
}

/// Where a deployment item is declared.
struct Site<'s> {
    dir: &'s Path,
    file: &'s str,
    field: &'s str,
    search_dirs: &'s [PathBuf],
}

/// Where the files being loaded come from.
#[derive(Clone, Debug)]
struct Source {
    /// The source's root directory (absolute).
    root: PathBuf,
    /// How files of this source are named in messages: empty for the project itself,
    /// `<url>@<ref>` for a `git` include.
    label: String,
    /// Where the source's items render, below the render root: empty for the project itself.
    render_prefix: String,
}

struct TreeLoader<'a, 'b> {
    engine: &'a TemplateEngine,
    vars_loader: &'a VarsLoader<'b>,
    source: Source,
    /// How many `git` include sources were opened (numbers their render directories).
    sources: usize,
    indexes: HashMap<PathBuf, usize>,
    items: Vec<Item>,
}

impl TreeLoader<'_, '_> {
    /// `p` as named in messages: relative to its source root, prefixed by the source's label.
    fn rel(&self, p: &Path) -> String {
        let rel = display(&self.source.root, p);
        if self.source.label.is_empty() {
            rel
        } else {
            format!("{}:{rel}", self.source.label)
        }
    }

    fn load_project(
        &mut self,
        dir: &Path,
        mut vars: Value,
        chain: &mut Vec<Level>,
        include_tags: Vec<String>,
    ) -> Result<(), LoadError> {
        let is_root = chain.is_empty();
        let mut search_dirs = vec![dir.to_path_buf()];
        search_dirs.extend(chain.iter().rev().map(|l| l.abs_dir.clone()));
        let (file, mut config) = match existing_yaml(dir, "deployment") {
            Some(path) => {
                let file = self.rel(&path);
                let text = self
                    .engine
                    .render_file(&path, &search_dirs, &vars)
                    .map_err(|source| LoadError::Template {
                        file: file.clone(),
                        source: Box::new(source),
                    })?;
                let config = config::parse_deployment_project(&text, &file, is_root)?;
                (file, config)
            }
            None if is_root => (
                self.rel(&dir.join("deployment.yaml")),
                DeploymentProjectConfig {
                    deployments: vec![DeploymentItemConfig {
                        path: Some(".".to_owned()),
                        ..DeploymentItemConfig::default()
                    }],
                    ..DeploymentProjectConfig::default()
                },
            ),
            None => {
                let parent_file = chain
                    .last()
                    .map(|l| self.rel(&l.abs_dir.join("deployment.yaml")))
                    .unwrap_or_default();
                let message = if existing_yaml(dir, "kustomization").is_some() {
                    format!(
                        "deployment.yml not found but folder {} contains a kustomization.yml",
                        self.rel(dir)
                    )
                } else {
                    format!("{} not found", self.rel(&dir.join("deployment.yml")))
                };
                return Err(LoadError::Item {
                    file: parent_file,
                    field: "include".to_owned(),
                    message,
                });
            }
        };
        if !check_condition(self.engine, &config.when, &vars).map_err(|source| LoadError::Template {
            file: file.clone(),
            source: Box::new(source),
        })? {
            return Ok(());
        }
        self.vars_loader
            .load_list(&mut vars, &config.vars, &search_dirs, &file, "vars")?;
        for item in &mut config.deployments {
            if item.tags.is_empty()
                && let Some(tag) = item
                    .path
                    .as_deref()
                    .or(item.include.as_deref())
                    .and_then(default_tag)
            {
                item.tags = vec![tag];
            }
        }
        chain.push(Level {
            abs_dir: dir.to_path_buf(),
            config: config.clone(),
            include_tags,
        });
        let result = self.load_items(dir, &file, &config, &vars, chain, &search_dirs);
        chain.pop();
        result
    }

    fn load_items(
        &mut self,
        dir: &Path,
        file: &str,
        config: &DeploymentProjectConfig,
        vars: &Value,
        chain: &mut Vec<Level>,
        search_dirs: &[PathBuf],
    ) -> Result<(), LoadError> {
        let template_err = |source| LoadError::Template {
            file: file.to_owned(),
            source: Box::new(source),
        };
        for (i, item) in config.deployments.iter().enumerate() {
            if !check_condition(self.engine, &item.when, vars).map_err(template_err)? {
                continue;
            }
            let field = format!("deployments[{i}]");
            let at = Site {
                dir,
                file,
                field: &field,
                search_dirs,
            };
            if let Some(include) = &item.include {
                self.load_include(&at, include, item, vars, chain)?;
                continue;
            }
            if let Some(git) = &item.git {
                self.load_git_include(&at, git, item, vars, chain)?;
                continue;
            }
            if item.oci.is_some() {
                return Err(LoadError::Item {
                    file: file.to_owned(),
                    field: format!("{field}.oci"),
                    message: "oci includes are not supported by this build".to_owned(),
                });
            }
            let item_dir = match &item.path {
                Some(p) => {
                    let d = self.join_inside(dir, p).ok_or_else(|| LoadError::Item {
                        file: file.to_owned(),
                        field: format!("{field}.path"),
                        message: format!("path/include is not part of the deployment project: {p}"),
                    })?;
                    if !d.exists() {
                        return Err(LoadError::Item {
                            file: file.to_owned(),
                            field: format!("{field}.path"),
                            message: format!("deployment directory does not exist: {p}"),
                        });
                    }
                    if !d.is_dir() {
                        return Err(LoadError::Item {
                            file: file.to_owned(),
                            field: format!("{field}.path"),
                            message: format!("deployment path is not a directory: {p}"),
                        });
                    }
                    Some(d)
                }
                None => None,
            };
            let mut item_vars = vars.clone();
            self.vars_loader.load_list(
                &mut item_vars,
                &item.vars,
                search_dirs,
                file,
                &format!("{field}.vars"),
            )?;
            self.push_item(item.clone(), item_dir, item_vars, chain, search_dirs, file);
        }
        Ok(())
    }

    /// Loads an included project (local `include`) and its items.
    fn load_include(
        &mut self,
        at: &Site<'_>,
        include: &str,
        item: &DeploymentItemConfig,
        vars: &Value,
        chain: &mut Vec<Level>,
    ) -> Result<(), LoadError> {
        let inc_dir = self.join_inside(at.dir, include).ok_or_else(|| LoadError::Item {
            file: at.file.to_owned(),
            field: format!("{}.include", at.field),
            message: format!("path/include is not part of the deployment project: {include}"),
        })?;
        if !inc_dir.is_dir() {
            return Err(LoadError::Item {
                file: at.file.to_owned(),
                field: format!("{}.include", at.field),
                message: format!("{} does not exist or is not a directory", self.rel(&inc_dir)),
            });
        }
        if let Some(pos) = chain.iter().position(|l| l.abs_dir == inc_dir) {
            let cycle: Vec<String> = chain[pos..]
                .iter()
                .map(|l| self.rel(&l.abs_dir))
                .chain(std::iter::once(self.rel(&inc_dir)))
                .collect();
            return Err(LoadError::Item {
                file: at.file.to_owned(),
                field: format!("{}.include", at.field),
                message: format!("include cycle: {}", cycle.join(" -> ")),
            });
        }
        self.load_included_project(at, &inc_dir, item, vars, chain)
    }

    /// Loads a `git` include: the referenced commit's checkout becomes the source of the
    /// included project (its items' directories are relative to the checkout).
    fn load_git_include(
        &mut self,
        at: &Site<'_>,
        git: &super::config::GitProject,
        item: &DeploymentItemConfig,
        vars: &Value,
        chain: &mut Vec<Level>,
    ) -> Result<(), LoadError> {
        let fail = |message: String| LoadError::Item {
            file: at.file.to_owned(),
            field: format!("{}.git", at.field),
            message,
        };
        let cache = self.vars_loader.git().map_err(fail)?;
        let (checkout, commit) = cache
            .checkout(&git.url, git.r#ref.as_ref())
            .map_err(|e| fail(e.to_string()))?;
        let root = normalize(&checkout);
        let inc_dir = normalize(&root.join(&git.sub_dir));
        if !inc_dir.starts_with(&root) || !inc_dir.is_dir() {
            return Err(fail(format!(
                "subDir '{}' does not exist in {} at commit {commit}",
                git.sub_dir, git.url
            )));
        }
        let reference = git.r#ref.as_ref().map_or_else(
            || "HEAD".to_owned(),
            |r| {
                r.branch
                    .clone()
                    .or_else(|| r.tag.clone())
                    .or_else(|| r.commit.clone())
                    .unwrap_or_default()
            },
        );
        self.sources += 1;
        let source = Source {
            root,
            label: format!("{}@{reference}", git.url),
            render_prefix: format!(".git-includes/{}", self.sources),
        };
        let parent = std::mem::replace(&mut self.source, source);
        let result = self.load_included_project(at, &inc_dir, item, vars, chain);
        self.source = parent;
        result
    }

    /// The part of loading an include shared by local and `git` includes.
    fn load_included_project(
        &mut self,
        at: &Site<'_>,
        inc_dir: &Path,
        item: &DeploymentItemConfig,
        vars: &Value,
        chain: &mut Vec<Level>,
    ) -> Result<(), LoadError> {
        let mut inc_vars = self.include_vars(inc_dir, item, vars, at.file, at.field)?;
        self.vars_loader.load_list(
            &mut inc_vars,
            &item.vars,
            at.search_dirs,
            at.file,
            &format!("{}.vars", at.field),
        )?;
        self.load_project(inc_dir, inc_vars, chain, item.tags.clone())?;
        if item.barrier {
            self.push_item(
                DeploymentItemConfig {
                    barrier: true,
                    ..DeploymentItemConfig::default()
                },
                None,
                vars.clone(),
                chain,
                at.search_dirs,
                at.file,
            );
        }
        Ok(())
    }

    /// The starting vars of an included project: a library gets only its args (plus the
    /// parent's vars with `passVars`), any other project the parent's vars.
    fn include_vars(
        &self,
        inc_dir: &Path,
        item: &DeploymentItemConfig,
        vars: &Value,
        file: &str,
        field: &str,
    ) -> Result<Value, LoadError> {
        let Some(lib_path) = existing_yaml(inc_dir, ".kluctl-library") else {
            return Ok(vars.clone());
        };
        let lib_file = self.rel(&lib_path);
        let text = fs_err::read_to_string(&lib_path).map_err(|source| LoadError::Io {
            path: lib_file.clone(),
            source,
        })?;
        let lib = config::parse_kluctl_library(&text, &lib_file)?;
        let mut out = if item.pass_vars {
            let mut v = vars.clone();
            if let Value::Object(m) = &mut v {
                m.remove("args");
            }
            v
        } else {
            Value::Object(Map::new())
        };
        let inc_args = item.args.clone().unwrap_or(Value::Object(Map::new()));
        let inc_args = args::apply_defaults(&lib.args, inc_args).map_err(|e| LoadError::Item {
            file: file.to_owned(),
            field: format!("{field}.args"),
            message: format!("{e} (declared in '{lib_file}')"),
        })?;
        values::merge(
            &mut out,
            Value::Object(std::iter::once(("args".to_owned(), inc_args)).collect()),
        );
        Ok(out)
    }

    fn push_item(
        &mut self,
        config: DeploymentItemConfig,
        dir: Option<PathBuf>,
        vars: Value,
        chain: &[Level],
        search_dirs: &[PathBuf],
        file: &str,
    ) {
        let mut tags: Vec<String> = Vec::new();
        let mut add = |t: &[String]| {
            for t in t {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        };
        for level in chain.iter().rev() {
            add(&level.config.tags);
            add(&level.include_tags);
        }
        add(&config.tags);
        let mut common_labels = BTreeMap::new();
        let mut common_annotations = BTreeMap::new();
        for level in chain {
            common_labels.extend(level.config.common_labels.clone());
            common_annotations.extend(level.config.common_annotations.clone());
        }
        let override_namespace = chain
            .iter()
            .rev()
            .find_map(|l| l.config.override_namespace.clone());
        let ignore_for_diff = chain
            .iter()
            .rev()
            .flat_map(|l| l.config.ignore_for_diff.iter().cloned())
            .collect();
        let conflict_resolution = chain
            .iter()
            .rev()
            .flat_map(|l| l.config.conflict_resolution.iter().cloned())
            .collect();
        let (rel_dir, rendered_rel_dir) = match &dir {
            Some(d) => {
                let rel = display(&self.source.root, d);
                let index = self.indexes.entry(d.clone()).or_insert(0);
                let mut rendered = if *index == 0 {
                    rel.clone()
                } else {
                    format!("{rel}-{index}")
                };
                if !self.source.render_prefix.is_empty() {
                    rendered = format!("{}/{rendered}", self.source.render_prefix);
                }
                *index += 1;
                (rel, rendered)
            }
            None => (String::new(), String::new()),
        };
        self.items.push(Item {
            config,
            dir,
            source_root: self.source.root.clone(),
            rel_dir,
            rendered_rel_dir,
            vars,
            search_dirs: search_dirs.to_vec(),
            tags,
            common_labels,
            common_annotations,
            override_namespace,
            file: file.to_owned(),
            ignore_for_diff,
            conflict_resolution,
        });
    }

    /// `base/rel` normalised, if it stays inside the source root.
    fn join_inside(&self, base: &Path, rel: &str) -> Option<PathBuf> {
        let joined = normalize(&base.join(rel));
        joined.starts_with(&self.source.root).then_some(joined)
    }
}

/// Evaluates a `when` condition; an empty condition is true.
///
/// # Errors
/// When the expression fails to render or yields something other than `True`/`False`.
pub fn check_condition(
    engine: &TemplateEngine,
    condition: &str,
    vars: &Value,
) -> Result<bool, TemplateError> {
    if condition.is_empty() || condition == "True" {
        return Ok(true);
    }
    let template = format!("{{% if {condition} %}} True {{% else %}} False {{% endif %}}");
    let rendered = engine.render_string(&format!("when: {condition}"), &template, vars)?;
    match rendered.trim() {
        "" | "True" => Ok(true),
        "False" => Ok(false),
        other => Err(TemplateError::Render {
            file: format!("when: {condition}"),
            location: "line 1".to_owned(),
            template: condition.to_owned(),
            line: Some(1),
            message: format!("unable to evaluate conditional: {other}"),
        }),
    }
}

/// `dir/<stem>.yaml`, else `dir/<stem>.yml`, if one exists.
fn existing_yaml(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// `p` relative to `root` with `/` separators (`.` for the root itself), else `p` as is.
fn display(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_owned(),
        Ok(r) => r.to_string_lossy().replace('\\', "/"),
        Err(_) => p.display().to_string(),
    }
}

/// Lexical normalisation: removes `.` and resolves `..` without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::template::PlaceholderImages;
    use serde_json::json;
    use std::sync::Arc;

    /// Writes `files` (path relative to `root`, content) with their directories.
    pub(crate) fn write(root: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let p = root.join(path);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(p, text).unwrap();
        }
    }

    fn engine(root: &Path) -> TemplateEngine {
        TemplateEngine::new(root, Arc::new(PlaceholderImages))
    }

    fn load(root: &Path, target: Option<&str>, args: &Value) -> Result<(Target, Vec<Item>), LoadError> {
        load_env(root, target, args, BTreeMap::new())
    }

    fn load_env(
        root: &Path,
        target: Option<&str>,
        args: &Value,
        env: BTreeMap<String, String>,
    ) -> Result<(Target, Vec<Item>), LoadError> {
        let engine = engine(root);
        let project = load_kluctl_project(&engine, root, args)?;
        let target = project.select_target(&engine, target, None, None, args)?;
        let vars = project.build_vars(&target, args)?;
        let loader = VarsLoader::new(&engine, None, None, env);
        let items = load_deployment(&engine, &loader, root, ".", vars)?;
        Ok((target, items))
    }

    #[test]
    fn a_bare_directory_is_one_item_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("cm.yaml", "kind: ConfigMap\n")]);
        let (target, items) = load(dir.path(), None, &json!({})).unwrap();
        assert_eq!(target.name, "");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].rel_dir, ".");
        assert!(items[0].tags.is_empty(), "'.' gives no default tag");
    }

    #[test]
    fn targets_render_against_themselves_and_args() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[(
                ".kluctl.yaml",
                "discriminator: 'kluctl-{{ target.name }}-{{ args.env }}'\n\
                 args:\n  - name: env\n    default: dev\n  - name: region\n\
                 targets:\n\
                 \x20 - name: prod\n    context: '{{ target.name }}-ctx'\n    args: {env: production, region: eu}\n\
                 \x20 - name: broken\n    context: '{{ nope.x }}'\n\
                 \x20 - name: dev\n    args: {region: us}\n",
            )],
        );
        let engine = engine(dir.path());
        let project = load_kluctl_project(&engine, dir.path(), &json!({})).unwrap();
        let names: Vec<_> = project.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["dev", "prod"], "sorted, broken target dropped");
        assert!(
            project.warnings[0].starts_with("Failed to load target broken"),
            "{:?}",
            project.warnings
        );
        let prod = &project.targets[1];
        assert_eq!(prod.context.as_deref(), Some("prod-ctx"));
        assert_eq!(prod.discriminator, "kluctl-prod-production");
        assert_eq!(project.targets[0].discriminator, "kluctl-dev-dev", "arg default");
        let vars = project.build_vars(prod, &json!({"env": "cli"})).unwrap();
        assert_eq!(
            vars["args"],
            json!({"env": "cli", "region": "eu"}),
            "external args win"
        );
        let err = project
            .select_target(&engine, Some("nope"), None, None, &json!({}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "target nope not existent in kluctl project config"
        );
        let err = project
            .select_target(&engine, None, None, None, &json!({}))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("a target must be explicitly selected")
        );
        let renamed = project
            .select_target(&engine, Some("prod"), Some("other"), Some("fixed"), &json!({}))
            .unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.discriminator.as_str()),
            ("other", "fixed")
        );
    }

    #[test]
    fn required_args_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[(".kluctl.yaml", "args:\n  - name: cluster_name\n")]);
        let err = load(dir.path(), None, &json!({})).unwrap_err();
        assert_eq!(err.to_string(), "required argument cluster_name not set");
        assert!(load(dir.path(), None, &json!({"cluster_name": "x"})).is_ok());
    }

    #[test]
    fn the_tree_loads_vars_includes_tags_labels_and_namespaces_in_order() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "deployment.yaml",
                    "vars:\n  - values: {a: 1, shared: root}\n  - file: vars.yaml\n\
                     \x20 - systemEnvVars: {home: TEST_HOME, missing: 'NOT_SET:fallback'}\n\
                     commonLabels: {team: root, layer: root}\ntags: [all]\noverrideNamespace: root-ns\n\
                     deployments:\n\
                     \x20 - path: apps/web\n\
                     \x20 - include: sub\n    barrier: true\n    vars: [{values: {from_include: yes}}]\n\
                     \x20 - path: apps/web\n    tags: [again]\n\
                     \x20 - path: skipped\n    when: args.env == 'prod'\n\
                     \x20 - barrier: true\n",
                ),
                ("vars.yaml", "b: '{{ a + 1 }}'\n"),
                ("apps/web/cm.yaml", "kind: ConfigMap\n"),
                (
                    "sub/deployment.yaml",
                    "vars: [{values: {shared: sub}}]\ncommonLabels: {layer: sub}\noverrideNamespace: sub-ns\n\
                     deployments:\n  - path: db\n    vars: [{values: {item: '{% raw %}{{ shared }}{% endraw %}', early: '{{ shared }}'}}]\n",
                ),
                ("sub/db/x.yaml", "kind: ConfigMap\n"),
            ],
        );
        let env = BTreeMap::from([("TEST_HOME".to_owned(), "/home/u".to_owned())]);
        let (_, items) = load_env(dir.path(), None, &json!({"env": "dev"}), env).unwrap();
        let dirs: Vec<_> = items.iter().map(|i| i.rendered_rel_dir.as_str()).collect();
        assert_eq!(
            dirs,
            ["apps/web", "sub/db", "", "apps/web-1", ""],
            "includes inline, barrier dummy, duplicate index"
        );
        let web = &items[0];
        assert_eq!(web.vars["a"], 1);
        assert_eq!(web.vars["b"], "2", "file vars render with earlier vars");
        assert_eq!(web.vars["home"], "/home/u");
        assert_eq!(web.vars["missing"], "fallback");
        assert_eq!(web.tags, ["all", "web"]);
        assert_eq!(web.override_namespace.as_deref(), Some("root-ns"));
        let db = &items[1];
        assert_eq!(
            db.tags,
            ["sub", "all", "db"],
            "inner project first, then include item, then parents"
        );
        assert_eq!(db.vars["item"], "sub", "item vars see the sub project's vars");
        assert_eq!(
            db.vars["early"], "root",
            "deployment.yaml is rendered before its own vars load (Kluctl's order)"
        );
        assert_eq!(db.vars["from_include"], true);
        assert_eq!(db.common_labels["layer"], "sub");
        assert_eq!(db.common_labels["team"], "root");
        assert_eq!(db.override_namespace.as_deref(), Some("sub-ns"));
        assert_eq!(db.file, "sub/deployment.yaml");
        assert!(items[2].config.barrier && items[2].dir.is_none());
        assert_eq!(items[3].tags, ["all", "again"]);
    }

    #[test]
    fn libraries_get_their_own_args_and_pass_vars_on_request() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "deployment.yaml",
                    "vars: [{values: {parent_var: p}}]\ndeployments:\n\
                     \x20 - include: lib\n    args: {name: one}\n\
                     \x20 - include: lib\n    args: {name: two}\n    passVars: true\n",
                ),
                (
                    "lib/.kluctl-library.yaml",
                    "args:\n  - name: name\n  - name: size\n    default: small\n",
                ),
                ("lib/deployment.yaml", "deployments: [{path: res}]\n"),
                ("lib/res/x.yaml", "kind: ConfigMap\n"),
            ],
        );
        let (_, items) = load(dir.path(), None, &json!({"outer": 1})).unwrap();
        assert_eq!(items[0].vars, json!({"args": {"name": "one", "size": "small"}}));
        assert_eq!(items[1].vars["args"], json!({"name": "two", "size": "small"}));
        assert_eq!(items[1].vars["parent_var"], "p");
        assert!(
            items[1].vars.get("target").is_some(),
            "passVars passes target too"
        );
        let lib_err = {
            write(
                dir.path(),
                &[("deployment.yaml", "deployments: [{include: lib}]\n")],
            );
            load(dir.path(), None, &json!({})).unwrap_err().to_string()
        };
        assert_eq!(
            lib_err,
            "invalid 'deployment.yaml': deployments[0].args: required argument name not set (declared in 'lib/.kluctl-library.yaml')"
        );
    }

    #[test]
    fn broken_trees_name_the_file_and_item() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("deployment.yaml", "deployments: [{path: nope}]\n")],
                "invalid 'deployment.yaml': deployments[0].path: deployment directory does not exist: nope",
            ),
            (
                &[("deployment.yaml", "deployments: [{path: ../..}]\n")],
                "invalid 'deployment.yaml': deployments[0].path: path/include is not part of the deployment project: ../..",
            ),
            (
                &[
                    ("deployment.yaml", "deployments: [{include: a}]\n"),
                    ("a/deployment.yaml", "deployments: [{include: ../b}]\n"),
                    ("b/deployment.yaml", "deployments: [{include: ../a}]\n"),
                ],
                "invalid 'b/deployment.yaml': deployments[0].include: include cycle: a -> b -> a",
            ),
            (
                &[
                    ("deployment.yaml", "deployments: [{include: k}]\n"),
                    ("k/kustomization.yaml", "resources: []\n"),
                ],
                "invalid 'deployment.yaml': include: deployment.yml not found but folder k contains a kustomization.yml",
            ),
        ];
        for (files, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), files);
            assert_eq!(load(dir.path(), None, &json!({})).unwrap_err().to_string(), *want);
        }
    }

    #[test]
    fn template_errors_in_deployment_yaml_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[("deployment.yaml", "deployments:\n  - path: '{{ args.nope }}'\n")],
        );
        let err = load(dir.path(), None, &json!({})).unwrap_err();
        assert_eq!(err.to_string(), "failed to render 'deployment.yaml'");
        let inner = std::error::Error::source(&err).unwrap().to_string();
        assert!(inner.contains("line 2"), "{inner}");
        assert!(inner.contains("nope"), "{inner}");
    }

    /// A one-thread HTTP server answering every request from `respond(request head)`.
    fn http_server(respond: fn(&str) -> (u16, String)) -> String {
        use std::io::{BufRead as _, BufReader, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let (code, body) = respond(&head);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn http_vars_load_yaml_json_paths_and_honour_ignore_missing() {
        let base = http_server(|head| {
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            match path.as_str() {
                "/vars.yaml" => (200, "a: 1\nnested: {b: two}\n".to_owned()),
                "/wrapped.json" if head.to_lowercase().contains("x-token: t0ken") => {
                    (200, r#"{"data": {"values": "x: 5\ny: [1, 2]\n"}}"#.to_owned())
                }
                "/wrapped.json" => (401, String::new()),
                _ => (404, String::new()),
            }
        });
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "deployment.yaml",
                    &format!(
                        "vars:\n  - http: {{url: '{base}/vars.yaml'}}\n\
                     \x20 - http: {{url: '{base}/wrapped.json', jsonPath: '$.data.values', headers: {{X-Token: t0ken}}}}\n\
                     \x20 - http: {{url: '{base}/missing'}}\n    ignoreMissing: true\n\
                     deployments: [{{path: app}}]\n"
                    ),
                ),
                ("app/cm.yaml", "kind: ConfigMap\n"),
            ],
        );
        let (_, items) = load(dir.path(), None, &json!({})).unwrap();
        assert_eq!(items[0].vars["a"], 1);
        assert_eq!(items[0].vars["nested"]["b"], "two");
        assert_eq!(items[0].vars["x"], 5, "jsonPath string parsed as YAML");
        assert_eq!(items[0].vars["y"], json!([1, 2]));

        for (source, want) in [
            (
                format!("{{url: '{base}/missing'}}"),
                "failed with status code 404",
            ),
            (
                format!("{{url: '{base}/wrapped.json'}}"),
                "failed with status code 401 (credentials are never prompted for",
            ),
            (
                format!("{{url: '{base}/vars.yaml', jsonPath: 'nope'}}"),
                "nope not found in result from http request",
            ),
        ] {
            write(
                dir.path(),
                &[(
                    "deployment.yaml",
                    &format!("vars:\n  - http: {source}\ndeployments: [{{path: app}}]\n"),
                )],
            );
            let err = load(dir.path(), None, &json!({})).unwrap_err().to_string();
            assert!(
                err.starts_with("failed to load vars[0] (http) of 'deployment.yaml'"),
                "{err}"
            );
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn conditions_follow_kluctls_rules() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let vars = json!({"args": {"env": "prod"}});
        assert!(check_condition(&engine, "", &vars).unwrap());
        assert!(check_condition(&engine, "args.env == 'prod'", &vars).unwrap());
        assert!(!check_condition(&engine, "args.env == 'dev'", &vars).unwrap());
        assert!(check_condition(&engine, "args.nope", &vars).is_err());
    }
}
