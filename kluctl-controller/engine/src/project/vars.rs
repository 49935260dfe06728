//! Vars sources: how each `vars[]` entry of a `deployment.yaml` (or of a deployment item / an
//! include) turns into values merged into the template context.
//!
//! ```text
//! source ─render its strings with the current vars─► when? ─► load (values | file | systemEnvVars
//!        | clusterConfigMap | clusterSecret | clusterObject) ─► targetPath? ─► merge (noOverride:
//!        existing values win)
//! ```
//!
//! `git` reads one file of a checked-out commit (see [`crate::source::git`]); `gitFiles`
//! lists the refs matching a pattern and yields, per ref, the files matching the globs (a list,
//! so it needs `targetPath`), sorted by ref name (Kluctl's order is random). SOPS-encrypted
//! files are not decrypted. Cloud secret managers and `vault` need their SDKs: this build names
//! the file and the source in an error instead of ignoring them. `http`
//! never prompts for credentials (Kluctl asks on a terminal after a 401): pass them in `headers`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::config::{
    ClusterConfigMapOrSecret, ClusterObject, GitFilesVarsSource, GitRef, HttpSource, VarsSource,
    VarsSourceKind,
};
use crate::source::{GitCache, RepoInfo};
use crate::template::{TemplateEngine, TemplateError};
use crate::values;

/// Read access to the target cluster for `cluster*` vars sources.
pub trait ClusterReader: Send + Sync {
    /// The object, or `None` when it does not exist.
    ///
    /// # Errors
    /// Any other API failure, as a message.
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, String>;

    /// The objects matching the labels.
    ///
    /// # Errors
    /// Any API failure, as a message.
    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, String>;
}

/// Why a vars source could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    /// Rendering the source's own fields or the vars file failed.
    #[error("failed to load {field} of '{file}'")]
    Template {
        /// The file holding the vars list.
        file: String,
        /// Which entry, e.g. `vars[1]`.
        field: String,
        /// The template error.
        #[source]
        source: Box<TemplateError>,
    },
    /// Loading failed for another reason.
    #[error("failed to load {field} ({kind}) of '{file}': {message}")]
    Load {
        /// The file holding the vars list.
        file: String,
        /// Which entry.
        field: String,
        /// The source kind.
        kind: VarsSourceKind,
        /// What went wrong.
        message: String,
    },
}

/// Why [`VarsLoader::load_value`] failed.
enum Failure {
    Template(TemplateError),
    Message(String),
}

/// Loads vars sources into a context.
pub struct VarsLoader<'a> {
    engine: &'a TemplateEngine,
    cluster: Option<&'a dyn ClusterReader>,
    git: Option<&'a GitCache>,
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for VarsLoader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VarsLoader")
            .field("cluster", &self.cluster.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> VarsLoader<'a> {
    /// A loader rendering with `engine`, reading the cluster through `cluster` (none: offline),
    /// Git repositories through `git` (none: git sources fail) and the environment from `env`
    /// (the process environment for the CLI).
    #[must_use]
    pub fn new(
        engine: &'a TemplateEngine,
        cluster: Option<&'a dyn ClusterReader>,
        git: Option<&'a GitCache>,
        env: BTreeMap<String, String>,
    ) -> Self {
        Self {
            engine,
            cluster,
            git,
            env,
        }
    }

    /// The Git cache, for `git` includes.
    ///
    /// # Errors
    /// When this loader has none.
    pub fn git(&self) -> Result<&'a GitCache, String> {
        self.git
            .ok_or_else(|| "loading from git repositories is disabled".to_owned())
    }

    /// Loads `sources` in order into `vars` (each may use the values of the ones before).
    /// `file` and `field` name where the list is written, for errors; `search_dirs` are where
    /// `file:` sources are looked up.
    ///
    /// # Errors
    /// The first source that fails, as [`VarsError`].
    pub fn load_list(
        &self,
        vars: &mut Value,
        sources: &[VarsSource],
        search_dirs: &[PathBuf],
        file: &str,
        field: &str,
    ) -> Result<(), VarsError> {
        for (i, source) in sources.iter().enumerate() {
            self.load(vars, source, search_dirs, file, &format!("{field}[{i}]"))?;
        }
        Ok(())
    }

    fn load(
        &self,
        vars: &mut Value,
        source_in: &VarsSource,
        search_dirs: &[PathBuf],
        file: &str,
        field: &str,
    ) -> Result<(), VarsError> {
        let template_err = |source| VarsError::Template {
            file: file.to_owned(),
            field: field.to_owned(),
            source: Box::new(source),
        };
        let raw = serde_json::to_value(source_in).unwrap_or(Value::Null);
        let (rendered, _) = self
            .engine
            .render_value(field, &raw, vars)
            .map_err(template_err)?;
        let source: VarsSource = serde_json::from_value(rendered).map_err(|e| VarsError::Load {
            file: file.to_owned(),
            field: field.to_owned(),
            kind: source_in
                .kinds()
                .first()
                .copied()
                .unwrap_or(VarsSourceKind::Values),
            message: format!("invalid after rendering: {e}"),
        })?;
        if !super::load::check_condition(self.engine, &source.when, vars).map_err(template_err)? {
            return Ok(());
        }
        let Some(kind) = source.kinds().first().copied() else {
            return Ok(());
        };
        let fail = |message: String| VarsError::Load {
            file: file.to_owned(),
            field: field.to_owned(),
            kind,
            message,
        };
        if source.multidoc == Some(true) && source.target_path.is_empty() {
            return Err(fail(
                "multidoc vars sources can only be used when targetPath is also specified".to_owned(),
            ));
        }
        let new_value = match self.load_value(kind, &source, search_dirs, vars) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(()),
            Err(Failure::Template(e)) => return Err(template_err(e)),
            Err(Failure::Message(m)) => return Err(fail(m)),
        };
        let new_vars = if source.target_path.is_empty() {
            match new_value {
                Value::Object(_) => new_value,
                Value::Null => Value::Object(Map::new()),
                _ => {
                    return Err(fail(
                        "'targetPath' is required for this variable source".to_owned(),
                    ));
                }
            }
        } else {
            let path = parse_target_path(&source.target_path)
                .map_err(|e| fail(format!("failed to parse targetPath: {e}")))?;
            let mut out = Value::Object(Map::new());
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            values::set_path(&mut out, &refs, new_value);
            out
        };
        if source.no_override == Some(true) {
            let mut merged = new_vars;
            values::merge(&mut merged, std::mem::take(vars));
            *vars = merged;
        } else {
            values::merge(vars, new_vars);
        }
        Ok(())
    }

    /// The value a source yields; `None` when an `ignoreMissing` cluster source found nothing
    /// (merging `{}` into a `targetPath` would wipe an earlier default).
    fn load_value(
        &self,
        kind: VarsSourceKind,
        source: &VarsSource,
        search_dirs: &[PathBuf],
        vars: &Value,
    ) -> Result<Option<Value>, Failure> {
        let ignore_missing = source.ignore_missing == Some(true);
        let multidoc = source.multidoc == Some(true);
        let missing = || Failure::Message("missing source".to_owned());
        Ok(Some(match kind {
            VarsSourceKind::Values => source.values.clone().unwrap_or(Value::Null),
            VarsSourceKind::File => {
                let path = source.file.as_deref().unwrap_or_default();
                self.file_vars(path, search_dirs, vars, multidoc, ignore_missing, path)?
            }
            VarsSourceKind::SystemEnvVars => self
                .system_env_vars(source.system_env_vars.as_ref(), ignore_missing)
                .map_err(Failure::Message)?,
            VarsSourceKind::ClusterConfigMap | VarsSourceKind::ClusterSecret => {
                let (spec, kind_name, decode) = match &source.cluster_config_map {
                    Some(s) => (s, "ConfigMap", false),
                    None => (
                        source.cluster_secret.as_ref().ok_or_else(missing)?,
                        "Secret",
                        true,
                    ),
                };
                let v = self
                    .config_map_or_secret(spec, kind_name, decode, ignore_missing, multidoc)
                    .map_err(Failure::Message)?;
                if ignore_missing && v.as_object().is_some_and(Map::is_empty) {
                    return Ok(None);
                }
                v
            }
            VarsSourceKind::ClusterObject => {
                let spec = source.cluster_object.as_ref().ok_or_else(missing)?;
                self.cluster_object(spec, ignore_missing)
                    .map_err(Failure::Message)?
            }
            VarsSourceKind::Http => {
                let spec = source.http.as_ref().ok_or_else(missing)?;
                match http_vars(spec, multidoc).map_err(Failure::Message)? {
                    Some(v) => v,
                    None if ignore_missing => Value::Object(Map::new()),
                    None => {
                        return Err(Failure::Message(format!(
                            "http request to {} failed with status code 404",
                            spec.url
                        )));
                    }
                }
            }
            VarsSourceKind::Git => {
                let spec = source.git.as_ref().ok_or_else(missing)?;
                let git = self.git().map_err(Failure::Message)?;
                let (dir, _) = git.checkout(&spec.url, spec.r#ref.as_ref()).map_err(|e| {
                    Failure::Message(format!(
                        "failed to load vars from git repository {}: {e}",
                        spec.url
                    ))
                })?;
                let what = format!("{} in {}", spec.path, spec.url);
                self.file_vars(&spec.path, &[dir], vars, multidoc, ignore_missing, &what)?
            }
            VarsSourceKind::GitFiles => {
                let spec = source.git_files.as_ref().ok_or_else(missing)?;
                let v = self.git_files(spec, vars)?;
                if ignore_missing && v.as_array().is_some_and(Vec::is_empty) {
                    return Ok(None);
                }
                v
            }
            other => {
                return Err(Failure::Message(format!(
                    "the '{other}' vars source is not supported by this build"
                )));
            }
        }))
    }

    /// A vars file (`file`, or `git` after its checkout): rendered from `dirs`, parsed as YAML;
    /// `{}` when it is missing and `ignoreMissing` is set. `what` names it in parse errors.
    fn file_vars(
        &self,
        path: &str,
        dirs: &[PathBuf],
        vars: &Value,
        multidoc: bool,
        ignore_missing: bool,
        what: &str,
    ) -> Result<Value, Failure> {
        match self.engine.render_file(Path::new(path), dirs, vars) {
            Ok(text) => parse_yaml(&text, multidoc)
                .map_err(|e| Failure::Message(format!("failed to load vars from {what}: {e}"))),
            Err(TemplateError::NotFound { .. }) if ignore_missing => Ok(Value::Object(Map::new())),
            Err(e) => Err(Failure::Template(e)),
        }
    }

    /// One entry per matching ref: `{ref, refStr, files, filesByPath, filesTree}`.
    fn git_files(&self, spec: &GitFilesVarsSource, vars: &Value) -> Result<Value, Failure> {
        let git = self.git().map_err(Failure::Message)?;
        let msg = |e: String| Failure::Message(format!("failed to load gitFiles from {}: {e}", spec.url));
        let info = git.repo_info(&spec.url).map_err(|e| msg(e.to_string()))?;
        let refs = match_git_refs(&info, spec.r#ref.as_ref()).map_err(msg)?;
        let mut globs = Vec::with_capacity(spec.files.len());
        // Each file spec as it appears in every entry it matches, converted once.
        let mut specs_json = Vec::with_capacity(spec.files.len());
        for f in &spec.files {
            let glob = globset::GlobBuilder::new(&f.glob)
                .literal_separator(true)
                .build()
                .map_err(|e| msg(format!("invalid glob '{}': {e}", f.glob)))?;
            globs.push(glob.compile_matcher());
            specs_json.push(serde_json::to_value(f).unwrap_or(Value::Null));
        }
        let mut results = Vec::with_capacity(refs.len());
        for (name, commit) in refs {
            let dir = git
                .checkout_commit(&spec.url, &commit)
                .map_err(|e| msg(e.to_string()))?;
            let mut paths = Vec::new();
            walk_sorted(&dir, &dir, &mut paths).map_err(msg)?;
            let mut files = Vec::new();
            for rel in paths {
                let Some(i) = globs.iter().position(|g| g.is_match(&rel)) else {
                    continue;
                };
                let file = &spec.files[i];
                let raw = fs_err::read(dir.join(&rel)).map_err(|e| msg(e.to_string()))?;
                let mut content = String::from_utf8_lossy(&raw).into_owned();
                if file.render {
                    content = self
                        .engine
                        .render_string(&rel, &content, vars)
                        .map_err(Failure::Template)?;
                }
                let mut entry = Map::new();
                entry.insert("file".to_owned(), specs_json[i].clone());
                entry.insert("path".to_owned(), Value::String(rel.clone()));
                // The size of the file as stored, also when rendered.
                entry.insert("size".to_owned(), Value::from(raw.len()));
                let parsed = if file.parse_yaml {
                    Some(
                        parse_yaml(&content, file.yaml_multi_doc)
                            .map_err(|e| msg(format!("failed to parse {rel}: {e}")))?,
                    )
                } else {
                    None
                };
                entry.insert("content".to_owned(), Value::String(content));
                if let Some(parsed) = parsed {
                    entry.insert("parsed".to_owned(), parsed);
                }
                files.push((rel, Value::Object(entry)));
            }
            let mut by_path = Map::new();
            let mut tree = Value::Object(Map::new());
            for (rel, entry) in &files {
                by_path.insert(rel.clone(), entry.clone());
                let keys: Vec<&str> = rel.split('/').collect();
                values::set_path(&mut tree, &keys, entry.clone());
            }
            let mut out = Map::new();
            out.insert(
                "ref".to_owned(),
                serde_json::to_value(parse_ref_name(&name)).unwrap_or(Value::Null),
            );
            out.insert("refStr".to_owned(), Value::String(name));
            out.insert(
                "files".to_owned(),
                Value::Array(files.into_iter().map(|(_, e)| e).collect()),
            );
            out.insert("filesByPath".to_owned(), Value::Object(by_path));
            out.insert("filesTree".to_owned(), tree);
            results.push(Value::Object(out));
        }
        Ok(Value::Array(results))
    }

    fn system_env_vars(&self, tree: Option<&Value>, ignore_missing: bool) -> Result<Value, String> {
        let mut out = Value::Object(Map::new());
        let mut leaves = Vec::new();
        collect_leaves(tree.unwrap_or(&Value::Null), &mut Vec::new(), &mut leaves);
        for (path, leaf) in leaves {
            let json_path = format!("$.{}", path.join("."));
            let Value::String(spec) = leaf else {
                return Err(format!("value at {json_path} is not a string"));
            };
            let (name, default) = match spec.split_once(':') {
                Some((n, d)) => (n, Some(d)),
                None => (spec.as_str(), None),
            };
            let text = match (self.env.get(name), default) {
                (Some(v), _) => v.clone(),
                // An empty default is the empty string, not null.
                (None, Some("")) => "\"\"".to_owned(),
                (None, Some(d)) => d.to_owned(),
                (None, None) if ignore_missing => continue,
                (None, None) => {
                    return Err(format!("environment variable {name} not found for {json_path}"));
                }
            };
            let value =
                parse_yaml(&text, false).map_err(|e| format!("failed to parse env value '{text}': {e}"))?;
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            values::set_path(&mut out, &refs, value);
        }
        Ok(out)
    }

    fn cluster(&self) -> Result<&dyn ClusterReader, String> {
        self.cluster
            .ok_or_else(|| "loading vars from cluster is disabled".to_owned())
    }

    fn config_map_or_secret(
        &self,
        spec: &ClusterConfigMapOrSecret,
        kind: &str,
        base64_decode: bool,
        ignore_missing: bool,
        multidoc: bool,
    ) -> Result<Value, String> {
        let cluster = self.cluster()?;
        let object = if spec.name.is_empty() {
            let found = cluster.list("v1", kind, &spec.namespace, &spec.labels)?;
            match found.len() {
                0 if ignore_missing => return Ok(Value::Object(Map::new())),
                0 => return Err(format!("no {kind} found with labels {:?}", spec.labels)),
                1 => found.into_iter().next(),
                _ => {
                    return Err(format!(
                        "found more than one {kind} with labels {:?}",
                        spec.labels
                    ));
                }
            }
        } else {
            cluster.get("v1", kind, &spec.namespace, &spec.name)?
        };
        let Some(object) = object else {
            if ignore_missing {
                return Ok(Value::Object(Map::new()));
            }
            return Err(format!("{kind} {}/{} not found", spec.namespace, spec.name));
        };
        let Some(raw) = object
            .pointer(&format!(
                "/data/{}",
                spec.key.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_str)
        else {
            if ignore_missing {
                return Ok(Value::Object(Map::new()));
            }
            return Err(format!("key {} not found in {kind}", spec.key));
        };
        let text = if base64_decode {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| format!("failed to decode key {}: {e}", spec.key))?;
            String::from_utf8(bytes).map_err(|_| format!("key {} is not UTF-8", spec.key))?
        } else {
            raw.to_owned()
        };
        let value =
            parse_yaml(&text, multidoc).map_err(|e| format!("failed to parse key {}: {e}", spec.key))?;
        Ok(if spec.target_path.is_empty() {
            value
        } else {
            let mut out = Value::Object(Map::new());
            let path = parse_target_path(&spec.target_path)?;
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            values::set_path(&mut out, &refs, value);
            out
        })
    }

    fn cluster_object(&self, spec: &ClusterObject, ignore_missing: bool) -> Result<Value, String> {
        let cluster = self.cluster()?;
        let api_version = if spec.api_version.is_empty() {
            "v1"
        } else {
            &spec.api_version
        };
        let objects = if spec.name.is_empty() {
            cluster.list(api_version, &spec.kind, &spec.namespace, &spec.labels)?
        } else {
            cluster
                .get(api_version, &spec.kind, &spec.namespace, &spec.name)?
                .into_iter()
                .collect()
        };
        if objects.is_empty() {
            if ignore_missing {
                return Ok(Value::Object(Map::new()));
            }
            return Err(format!(
                "{} {}/{} not found",
                spec.kind, spec.namespace, spec.name
            ));
        }
        let mut results = Vec::new();
        for o in &objects {
            let v = if spec.path == "$" {
                o.clone()
            } else {
                let path = parse_target_path(spec.path.trim_start_matches("$."))?;
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                values::get_path(o, &refs).cloned().unwrap_or(Value::Null)
            };
            let v = match (&v, spec.parse_yaml) {
                (Value::String(s), true) => parse_yaml(s, false)?,
                _ => v,
            };
            results.push(v);
        }
        Ok(if spec.list {
            Value::Array(results)
        } else {
            results.into_iter().next().unwrap_or(Value::Null)
        })
    }
}

/// Fetches an `http` vars source: the response parsed as YAML/JSON, or, with `jsonPath`, the
/// string found there parsed as YAML. `None` for a 404.
fn http_vars(spec: &HttpSource, multidoc: bool) -> Result<Option<Value>, String> {
    let method = spec.method.as_deref().unwrap_or("GET");
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("invalid http method '{method}'"))?;
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| format!("failed to build the http client: {e}"))?;
    let mut req = client.request(method, &spec.url);
    for (k, v) in &spec.headers {
        req = req.header(k, v);
    }
    if let Some(body) = &spec.body {
        req = req.body(body.clone());
    }
    // The URL may carry credentials; messages name only scheme, host and path.
    let shown = reqwest::Url::parse(&spec.url).map_or_else(
        |_| "<invalid url>".to_owned(),
        |u| {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or_default(),
                u.path()
            )
        },
    );
    let resp = req
        .send()
        .map_err(|e| format!("http request to {shown} failed: {}", e.without_url()))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (credentials are never prompted for; send them in 'headers')"
        } else {
            ""
        };
        return Err(format!(
            "http request to {shown} failed with status code {}{hint}",
            status.as_u16()
        ));
    }
    let body = resp
        .text()
        .map_err(|e| format!("failed to read the response of {shown}: {}", e.without_url()))?;
    let parsed = parse_yaml(&body, multidoc && spec.json_path.is_none())
        .map_err(|e| format!("failed to parse the response of {shown}: {e}"))?;
    let Some(path) = &spec.json_path else {
        return Ok(Some(parsed));
    };
    let keys = parse_target_path(path)?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    match values::get_path(&parsed, &refs) {
        Some(Value::String(s)) => parse_yaml(s, multidoc).map(Some),
        Some(_) => Err(format!(
            "{path} in result of http request {shown} is not a string"
        )),
        None => Err(format!("{path} not found in result from http request {shown}")),
    }
}

fn collect_leaves<'v>(v: &'v Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'v Value)>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            path.push(k.clone());
            collect_leaves(child, path, out);
            path.pop();
        }
    } else if !path.is_empty() {
        out.push((path.clone(), v));
    }
}

/// The refs `reference` selects for `gitFiles`, by full name: `branch`/`tag` are regular
/// expressions over the whole name, `commit` selects a ref pointing at it, none selects the
/// default branch.
fn match_git_refs(info: &RepoInfo, reference: Option<&GitRef>) -> Result<BTreeMap<String, String>, String> {
    let (prefix, kind, pattern) = match reference {
        None => {
            let name = format!(
                "refs/heads/{}",
                info.default_branch.as_deref().unwrap_or_default()
            );
            let commit = info
                .refs
                .get(&name)
                .ok_or_else(|| format!("default ref {name} not found"))?;
            return Ok(BTreeMap::from([(name, commit.clone())]));
        }
        Some(GitRef { commit: Some(c), .. }) => {
            return info
                .refs
                .iter()
                .find(|(_, h)| h.eq_ignore_ascii_case(c))
                .map(|(n, h)| BTreeMap::from([(n.clone(), h.clone())]))
                .ok_or_else(|| format!("commit {c} not found"));
        }
        Some(GitRef { tag: Some(t), .. }) => ("refs/tags/", "tag", t),
        Some(GitRef { branch: Some(b), .. }) => ("refs/heads/", "branch", b),
        Some(_) => return Err("ref is empty".to_owned()),
    };
    let re = regex::Regex::new(&format!("^{prefix}{pattern}$"))
        .map_err(|e| format!("invalid {kind} regex specified: {e}"))?;
    Ok(info
        .refs
        .iter()
        .filter(|(n, _)| re.is_match(n))
        .map(|(n, h)| (n.clone(), h.clone()))
        .collect())
}

/// `refs/heads/x` → `{branch: x}`, `refs/tags/y` → `{tag: y}`.
fn parse_ref_name(name: &str) -> GitRef {
    match (name.strip_prefix("refs/heads/"), name.strip_prefix("refs/tags/")) {
        (Some(b), _) => GitRef {
            branch: Some(b.to_owned()),
            ..GitRef::default()
        },
        (_, Some(t)) => GitRef {
            tag: Some(t.to_owned()),
            ..GitRef::default()
        },
        _ => GitRef::default(),
    }
}

/// Every file below `dir`, relative to `root` with `/`, in lexical order per directory (the
/// order Go's `filepath.Walk` visits).
fn walk_sorted(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) -> Result<(), String> {
    let mut entries: Vec<_> = fs_err::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(fs_err::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            walk_sorted(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// Parses YAML text into a value (`multidoc`: a list of all documents); empty text is `{}`.
/// (Public, hidden, for the `kluctl_yaml` fuzz target.)
#[doc(hidden)]
pub fn parse_yaml(text: &str, multidoc: bool) -> Result<Value, String> {
    if multidoc {
        return serde_saphyr::from_multiple::<Value>(text)
            .map(Value::Array)
            .map_err(|e| e.to_string());
    }
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// Parses a simple JSON path (`a.b`, `$.a.b`, `a["b.c"]`, `a['b']`) into keys.
///
/// # Errors
/// For empty segments or unterminated brackets.
pub fn parse_target_path(path: &str) -> Result<Vec<String>, String> {
    let path = path
        .strip_prefix("$.")
        .or_else(|| path.strip_prefix('$'))
        .unwrap_or(path);
    let mut keys = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let quote = r.chars().next().filter(|c| *c == '"' || *c == '\'');
            let Some(q) = quote else {
                return Err(format!("unsupported path segment in '{path}'"));
            };
            let body = &r[1..];
            let end = body
                .find(q)
                .ok_or_else(|| format!("unterminated quote in '{path}'"))?;
            keys.push(body[..end].to_owned());
            rest = body[end + 1..]
                .strip_prefix(']')
                .ok_or_else(|| format!("missing ']' in '{path}'"))?;
            rest = rest.strip_prefix('.').unwrap_or(rest);
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return Err(format!("empty path segment in '{path}'"));
            }
            keys.push(rest[..end].to_owned());
            rest = &rest[end..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        }
    }
    if keys.is_empty() {
        return Err("empty path".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RepoInfo {
        RepoInfo {
            default_branch: Some("main".to_owned()),
            refs: [
                ("refs/heads/main", "aa"),
                ("refs/heads/release-1", "bb"),
                ("refs/heads/release-2", "cc"),
                ("refs/tags/v1", "bb"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }

    fn names(m: &BTreeMap<String, String>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn git_files_refs_are_anchored_regexes_a_commit_or_the_default_branch() {
        let i = info();
        assert_eq!(names(&match_git_refs(&i, None).unwrap()), ["refs/heads/main"]);
        let branch = |b: &str| GitRef {
            branch: Some(b.to_owned()),
            ..GitRef::default()
        };
        assert_eq!(
            names(&match_git_refs(&i, Some(&branch("release-.*"))).unwrap()),
            ["refs/heads/release-1", "refs/heads/release-2"]
        );
        // Anchored: `release` alone matches nothing.
        assert!(match_git_refs(&i, Some(&branch("release"))).unwrap().is_empty());
        let commit = GitRef {
            commit: Some("CC".to_owned()),
            ..GitRef::default()
        };
        assert_eq!(
            names(&match_git_refs(&i, Some(&commit)).unwrap()),
            ["refs/heads/release-2"]
        );
        let e = match_git_refs(&i, Some(&branch("("))).unwrap_err();
        assert!(e.starts_with("invalid branch regex specified"), "{e}");
        assert_eq!(
            parse_ref_name("refs/tags/v1"),
            GitRef {
                tag: Some("v1".to_owned()),
                ..GitRef::default()
            }
        );
    }
}
