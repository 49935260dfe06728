//! The Kluctl templating step: a minijinja environment configured like Kluctl's Jinja2, with
//! Kluctl's filters and functions, its include search path and `.templateignore` handling.
//!
//! Pipeline position: the project loader renders `.kluctl.yaml`, `deployment.yaml` and vars
//! files through [`TemplateEngine::render_file`] / [`TemplateEngine::render_string`]; the render
//! step then calls [`TemplateEngine::render_directory`] for every `path` item before Helm and
//! kustomize run on the output.
//!
//! ```text
//! TemplateEngine (one per project render: project root, image lookup)
//!   └─ Renderer per search-dir list (cached): minijinja Environment + compiled templates
//!        ├─ functions.rs  b64encode … load_template, time.*, images.get_image
//!        ├─ pyyaml.rs / pyjson.rs  to_yaml / to_json / printing of dicts, byte-equal to Python
//!        ├─ search.rs     include/import name resolution
//!        └─ directory.rs  render a whole item dir (.templateignore, Chart.yaml dirs)
//! ```
//!
//! Jinja2 options Kluctl uses and their equivalents here: `StrictUndefined` →
//! [`UndefinedBehavior::Strict`]; `trim_blocks`/`lstrip_blocks` off and
//! `keep_trailing_newline` off (minijinja's defaults, like Jinja2's); no autoescape (minijinja
//! would escape `.json`/`.yaml`/`.html` names by default, so it is switched off); extension
//! `loopcontrols` → feature `loop_controls`; Python methods (`.items()`, `.upper()`, …) through
//! `minijinja_contrib::pycompat`. As in Kluctl, a file or string without any `{` is passed
//! through untouched (its trailing newline is kept), everything else is rendered.
//!
//! A renderer caches compiled templates by name, so a [`TemplateEngine`] must not outlive the
//! checkout it renders: build one per project render.

mod directory;
mod functions;
pub mod pyjson;
pub mod pyyaml;
pub mod pyyaml_load;
mod search;
pub mod slugify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::files::MemTree;
use base64::Engine as _;
use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

pub use functions::merge_dict;
pub use search::SearchPath;

/// Start of the placeholder Kluctl writes for `images.get_image(...)`.
pub const IMAGE_PLACEHOLDER_BEGIN: &str = "XXXXXbegin_get_image_";
/// End of the placeholder Kluctl writes for `images.get_image(...)`.
pub const IMAGE_PLACEHOLDER_END: &str = "_end_get_imageXXXXX";

/// Answers `images.get_image(image)` calls made by templates.
///
/// Kluctl itself emits a placeholder ([`PlaceholderImages`]) that the render step resolves after
/// kustomize, when the object and container using the image are known.
pub trait ImageLookup: Send + Sync {
    /// Returns the text to insert for `image`, or an error message.
    fn get_image(&self, image: &str) -> Result<String, String>;
}

/// Kluctl's behaviour: `images.get_image(x)` yields
/// `XXXXXbegin_get_image_<base64 of {"image": x}>_end_get_imageXXXXX`.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlaceholderImages;

impl ImageLookup for PlaceholderImages {
    fn get_image(&self, image: &str) -> Result<String, String> {
        let json = pyjson::dumps(&functions::map_value([(
            Value::from("image"),
            Value::from(image),
        )]))
        .map_err(|e| e.to_string())?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(json.as_bytes());
        Ok(format!("{IMAGE_PLACEHOLDER_BEGIN}{b64}{IMAGE_PLACEHOLDER_END}"))
    }
}

/// Errors of the templating step.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template failed to compile or render.
    #[error("failed to render template {file:?}: {location}: {message}")]
    Render {
        /// The template that was rendered (project-relative when possible).
        file: String,
        /// Where it failed: `line N` in the file, followed by the include/import chain.
        location: String,
        /// The innermost template that failed (project-relative when possible).
        template: String,
        /// The line in `template` (1-based), when known.
        line: Option<usize>,
        /// What went wrong (e.g. "undefined value: `args.foo` is undefined").
        message: String,
    },
    /// A file to render was not found in the search dirs.
    #[error("failed to find template {path:?} in the search dirs {search_dirs:?}")]
    NotFound {
        /// The path asked for.
        path: String,
        /// The search dirs (project-relative when possible).
        search_dirs: Vec<String>,
    },
    /// A file or directory could not be read or written.
    #[error("failed to {action} {path:?}")]
    Io {
        /// What was attempted ("read template", "write rendered file", ...).
        action: &'static str,
        /// The path (project-relative when possible).
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `.templateignore` file could not be parsed.
    #[error("failed to parse {path:?}: {message}")]
    Ignore {
        /// The `.templateignore` file (project-relative when possible).
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The context handed to the engine is not a JSON object.
    #[error("failed to use the template context: it must be an object, got {kind}")]
    Context {
        /// The JSON type that was passed.
        kind: &'static str,
    },
    /// One or more strings of a structured value failed to render (all failures are listed).
    #[error("failed to render {} string(s) of a value:\n{}", errors.len(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Value {
        /// One error per failed string.
        errors: Vec<TemplateError>,
    },
    /// One or more files of a directory failed to render (all failures are listed).
    #[error("failed to render {} template(s) in {dir:?}:\n{}", errors.len(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Directory {
        /// The directory rendered (project-relative when possible).
        dir: String,
        /// One error per failed file, sorted by path.
        errors: Vec<TemplateError>,
    },
}

/// The template engine of one project render.
pub struct TemplateEngine {
    project_root: PathBuf,
    images: Arc<dyn ImageLookup>,
    renderers: Mutex<HashMap<Vec<PathBuf>, Arc<Renderer>>>,
}

impl std::fmt::Debug for TemplateEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateEngine")
            .field("project_root", &self.project_root)
            .finish_non_exhaustive()
    }
}

impl TemplateEngine {
    /// Creates an engine for the project (source root) at `project_root`; paths in errors are
    /// shown relative to it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kluctl_engine::template::{PlaceholderImages, TemplateEngine};
    /// let engine = TemplateEngine::new("/tmp/project", Arc::new(PlaceholderImages));
    /// let ctx = serde_json::json!({"args": {"env": "prod"}});
    /// let out = engine.render_string("inline", "env={{ args.env | upper }}", &ctx).unwrap();
    /// assert_eq!(out, "env=PROD");
    /// ```
    pub fn new(project_root: impl Into<PathBuf>, images: Arc<dyn ImageLookup>) -> Self {
        let root = project_root.into();
        let root = search::normalize(&std::path::absolute(&root).unwrap_or(root));
        Self {
            project_root: root,
            images,
            renderers: Mutex::new(HashMap::new()),
        }
    }

    /// The project root paths are shown relative to.
    pub fn project_root(&self) -> &Path {
        &self.project_root
    }

    /// The (cached) renderer for a list of search dirs.
    pub fn renderer(&self, search_dirs: &[PathBuf]) -> Arc<Renderer> {
        let key: Vec<PathBuf> = search_dirs.to_vec();
        let mut map = self
            .renderers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            map.entry(key)
                .or_insert_with(|| Arc::new(Renderer::new(&self.project_root, search_dirs, &self.images))),
        )
    }

    /// Renders a template string (no search dirs, so it cannot include files).
    pub fn render_string(
        &self,
        name: &str,
        source: &str,
        ctx: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        self.renderer(&[]).render_string(name, source, ctx)
    }

    /// Renders a file (absolute, or relative to the first search dir that has it).
    pub fn render_file(
        &self,
        path: &Path,
        search_dirs: &[PathBuf],
        ctx: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        self.renderer(search_dirs).render_file(path, ctx)
    }

    /// Renders every string (map values, map keys and list items, recursively) of `value` that
    /// contains `{`, like Kluctl renders targets and vars-source definitions (no search dirs).
    /// Returns the rendered value and whether any string changed; all failures are reported
    /// together. `name` names the value in errors; each string is named by its field path
    /// below it (e.g. `.kluctl.yaml: targets[0].context`).
    ///
    /// # Errors
    /// [`TemplateError::Directory`] with one error per string that failed.
    pub fn render_value(
        &self,
        name: &str,
        value: &serde_json::Value,
        ctx: &serde_json::Value,
    ) -> Result<(serde_json::Value, bool), TemplateError> {
        let renderer = self.renderer(&[]);
        let mut errors = Vec::new();
        let mut changed = false;
        let out = render_value_rec(&renderer, name, value, ctx, &mut changed, &mut errors);
        if errors.is_empty() {
            Ok((out, changed))
        } else {
            Err(TemplateError::Directory {
                dir: name.into(),
                errors,
            })
        }
    }

    /// Renders every file below `src_dir` into `dst_dir` (see [`Renderer::render_directory`]).
    pub fn render_directory(
        &self,
        src_dir: &Path,
        dst_dir: &Path,
        search_dirs: &[PathBuf],
        ctx: &serde_json::Value,
    ) -> Result<(), TemplateError> {
        self.renderer(search_dirs).render_directory(src_dir, dst_dir, ctx)
    }

    /// Renders every file below `src_dir` into memory (see [`Renderer::render_directory_files`]).
    ///
    /// # Errors
    /// As [`TemplateEngine::render_directory`].
    pub fn render_directory_files(
        &self,
        src_dir: &Path,
        dst_dir: &Path,
        search_dirs: &[PathBuf],
        ctx: &serde_json::Value,
    ) -> Result<MemTree, TemplateError> {
        self.renderer(search_dirs)
            .render_directory_files(src_dir, dst_dir, ctx)
    }
}

/// Renders one string of a value, recording a change or the error.
fn render_one(
    r: &Renderer,
    s: &str,
    name: &str,
    ctx: &serde_json::Value,
    changed: &mut bool,
    errors: &mut Vec<TemplateError>,
) -> String {
    if !s.contains('{') {
        return s.to_string();
    }
    match r.render_string(name, s, ctx) {
        Ok(out) => {
            *changed |= out != s;
            out
        }
        Err(e) => {
            errors.push(e);
            s.to_string()
        }
    }
}

fn render_value_rec(
    r: &Renderer,
    name: &str,
    v: &serde_json::Value,
    ctx: &serde_json::Value,
    changed: &mut bool,
    errors: &mut Vec<TemplateError>,
) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => {
            serde_json::Value::String(render_one(r, s, name, ctx, changed, errors))
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_value_rec(r, &format!("{name}[{i}]"), item, ctx, changed, errors))
                .collect(),
        ),
        serde_json::Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, item) in map {
                let key = render_one(r, k, &format!("{name} (key '{k}')"), ctx, changed, errors);
                let child = render_value_rec(r, &format!("{name}.{k}"), item, ctx, changed, errors);
                out.insert(key, child);
            }
            serde_json::Value::Object(out)
        }
        other => other.clone(),
    }
}

/// A minijinja environment bound to one list of search dirs; compiled templates are cached.
pub struct Renderer {
    env: Environment<'static>,
    search: Arc<SearchPath>,
    project_root: PathBuf,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("search_dirs", &self.search.dirs())
            .finish_non_exhaustive()
    }
}

/// Jinja2 turns `\r\n` and lone `\r` in template text into `\n` (its `newline_sequence`).
fn normalize_newlines(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        s.into()
    }
}

fn context_value(ctx: &serde_json::Value) -> Result<Value, TemplateError> {
    match ctx {
        serde_json::Value::Object(_) => Ok(Value::from(minijinja::value::Serde(ctx))),
        serde_json::Value::Null => Ok(functions::map_value([])),
        serde_json::Value::Bool(_) => Err(TemplateError::Context { kind: "bool" }),
        serde_json::Value::Number(_) => Err(TemplateError::Context { kind: "number" }),
        serde_json::Value::String(_) => Err(TemplateError::Context { kind: "string" }),
        serde_json::Value::Array(_) => Err(TemplateError::Context { kind: "array" }),
    }
}

impl Renderer {
    fn new(project_root: &Path, search_dirs: &[PathBuf], images: &Arc<dyn ImageLookup>) -> Self {
        let search = Arc::new(SearchPath::new(search_dirs));
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Jinja2's defaults, which Kluctl keeps: no trim_blocks/lstrip_blocks, one trailing
        // newline dropped, default delimiters.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(false)
            .lstrip_blocks(false)
            .keep_trailing_newline(false)
            .build();
        if let Ok(syntax) = syntax {
            env.set_syntax(syntax);
        }
        env.set_debug(true);
        env.set_auto_reload(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_path_join_callback(|name, parent| search::join_name(name, parent).into());
        let sp = Arc::clone(&search);
        env.set_loader(move |name| {
            if let Some(src) = sp.take_root(name) {
                return Ok(Some(src));
            }
            let Some(path) = sp.find(name) else {
                return Ok(None);
            };
            match fs_err::read_to_string(&path) {
                Ok(s) => Ok(Some(normalize_newlines(&s).into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("failed to read template {name:?}: {e}"),
                )),
            }
        });
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::Map | ValueKind::Seq => out
                .write_str(&pyjson::repr(value))
                .map_err(minijinja::Error::from),
            ValueKind::Number if pyjson::is_float(value) => out
                .write_str(&pyjson::float_repr(pyjson::as_f64(value)))
                .map_err(minijinja::Error::from),
            _ => minijinja::escape_formatter(out, state, value),
        });
        functions::register(&mut env, &search, images);
        Self {
            env,
            search,
            project_root: project_root.to_path_buf(),
        }
    }

    /// A path for messages: relative to the project root when below it.
    fn display(&self, p: &Path) -> String {
        p.strip_prefix(&self.project_root)
            .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
    }

    fn display_name(&self, name: &str) -> String {
        if Path::new(name).is_absolute() {
            self.display(Path::new(name))
        } else {
            name.to_string()
        }
    }

    fn render_error(&self, file: &str, err: &minijinja::Error) -> TemplateError {
        let mut frames: Vec<String> = Vec::new();
        let mut cur = err;
        loop {
            let next = (cur.kind() == ErrorKind::BadInclude)
                .then(|| std::error::Error::source(cur).and_then(|s| s.downcast_ref::<minijinja::Error>()))
                .flatten();
            match next {
                Some(inner) => {
                    frames.push(format!(
                        "{} line {}",
                        cur.name()
                            .map(|n| format!("{:?}", self.display_name(n)))
                            .unwrap_or_default(),
                        cur.line().unwrap_or(0)
                    ));
                    cur = inner;
                }
                None => break,
            }
        }
        let template = cur
            .name()
            .map_or_else(|| file.to_string(), |n| self.display_name(n));
        let line = cur.line();
        let mut location = match line {
            Some(l) if template == file => format!("line {l}"),
            Some(l) => format!("{template:?} line {l}"),
            None => format!("{template:?}"),
        };
        if !frames.is_empty() {
            frames.reverse();
            location = format!("{location} (included via {})", frames.join(" <- "));
        }
        let message = match cur.detail() {
            Some(d) => format!("{}: {d}", cur.kind()),
            None => cur.kind().to_string(),
        };
        TemplateError::Render {
            file: file.to_string(),
            location,
            template,
            line,
            message,
        }
    }

    /// Renders a template string. A string without `{` is returned unchanged.
    pub fn render_string(
        &self,
        name: &str,
        source: &str,
        ctx: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        if !source.contains('{') {
            return Ok(source.to_string());
        }
        let ctx = context_value(ctx)?;
        self.env
            .render_named_str(name, &normalize_newlines(source), ctx)
            .map_err(|e| self.render_error(name, &e))
    }

    /// Renders a file: absolute paths as they are, relative ones from the first search dir that
    /// holds them. A file without `{` is returned unchanged.
    pub fn render_file(&self, path: &Path, ctx: &serde_json::Value) -> Result<String, TemplateError> {
        let ctx = context_value(ctx)?;
        let abs = self
            .search
            .resolve_root(path)
            .ok_or_else(|| TemplateError::NotFound {
                path: path.display().to_string(),
                search_dirs: self.search.dirs().iter().map(|d| self.display(d)).collect(),
            })?;
        let source = fs_err::read_to_string(&abs).map_err(|source| TemplateError::Io {
            action: "read template",
            path: self.display(&abs),
            source,
        })?;
        self.render_source(&abs, source, &ctx)
    }

    fn render_source(&self, abs: &Path, source: String, ctx: &Value) -> Result<String, TemplateError> {
        if !source.contains('{') {
            return Ok(source);
        }
        let name = abs.to_string_lossy().replace('\\', "/");
        self.search
            .offer_root(&name, normalize_newlines(&source).into_owned());
        let display = self.display(abs);
        let tmpl = self
            .env
            .get_template(&name)
            .map_err(|e| self.render_error(&display, &e))?;
        tmpl.render(ctx).map_err(|e| self.render_error(&display, &e))
    }

    /// Renders all files below `src_dir` into `dst_dir` like Kluctl renders a deployment item:
    ///
    /// - files matched by a `.templateignore` (gitignore syntax; files in the project root down
    ///   to `src_dir` and in every subdirectory of it apply, deeper and later lines win), files
    ///   below a `.git` dir and every directory holding a `Chart.yaml` are copied verbatim;
    /// - files without `{` are copied verbatim; all others are rendered;
    /// - symlinks are recreated as symlinks.
    ///
    /// Files are rendered in parallel; all failures are reported together.
    pub fn render_directory(
        &self,
        src_dir: &Path,
        dst_dir: &Path,
        ctx: &serde_json::Value,
    ) -> Result<(), TemplateError> {
        let ctx = context_value(ctx)?;
        directory::render_directory(self, src_dir, dst_dir, &ctx)
    }

    /// Like [`Renderer::render_directory`], but the result stays in memory (at the paths the
    /// files would have below `dst_dir`) until [`MemTree::write_to_disk`].
    ///
    /// # Errors
    /// As [`Renderer::render_directory`].
    pub fn render_directory_files(
        &self,
        src_dir: &Path,
        dst_dir: &Path,
        ctx: &serde_json::Value,
    ) -> Result<MemTree, TemplateError> {
        let ctx = context_value(ctx)?;
        directory::render_directory_files(self, src_dir, dst_dir, &ctx)
    }
}

#[cfg(test)]
mod tests;
