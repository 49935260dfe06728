//! Helm step of the render pipeline: for a `helm-chart.yaml` in a rendered item directory, find the
//! chart (local `path`, Kluctl's pre-pulled `.helm-charts/`, or pulled into a cache), run the pinned
//! `helm template`, and write the objects to the chart's `output` file beside it, where the
//! kustomize step picks them up.
//!
//! ```text
//! helm-chart.yaml ─► ChartConfig ─► chart dir ─┬─ local path (inside the project)
//!                                              ├─ .helm-charts/<layout>/<version>   (skipPrePull: false)
//!                                              └─ cache/<layout>/<version> ◄─ helm pull (skipPrePull: true)
//!                    chart dir + helm-values.yaml ─► helm template ─► <output> (default helm-rendered.yaml)
//! ```
//!
//! `<layout>` is Kluctl's: `<http|https|oci>[_<port>]_<host>/<lowercased url path>[/<chartName>]`
//! (the port only when not the scheme's default; OCI URLs already end in the chart name).
//! The helm binary is located like kustomize's: explicit path, `KLUCTL_HELM` ([`ENV_HELM`]), then
//! `helm` on `$PATH`. Kluctl embeds the Helm v4 SDK; the CLI of helm v4.2.3 gives the same output.

mod config;

pub use config::{
    ChartConfig, ChartSource, ChartSpec, DEFAULT_NAMESPACE, DEFAULT_OUTPUT, is_helm_chart_file,
    is_helm_values_file, is_oci,
};

use crate::Object;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the helm binary.
pub const ENV_HELM: &str = "KLUCTL_HELM";

/// The helm release whose output the engine reproduces.
pub const PINNED_HELM_VERSION: &str = "v4.2.3";

/// Annotation Kluctl puts on rendered objects when `namespace` is set, for the later namespace fix-up.
pub const INSTALL_NAMESPACE_ANNOTATION: &str = "kluctl.io/helm-install-namespace";

/// Directory name of Kluctl's pre-pulled charts.
pub const PRE_PULLED_DIR: &str = ".helm-charts";

/// Failures of the helm step.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// `helm-chart.yaml` is invalid.
    #[error("failed to load helm chart config '{}': field '{field}': {message}", file.display())]
    Config {
        /// The file.
        file: PathBuf,
        /// The field (`helmChart.chartVersion`, ...).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The helm binary could not be run at all.
    #[error(
        "failed to run helm at '{path}': {message}\nhint: install helm {ver} and put it on $PATH, or set {env} to its path",
        ver = PINNED_HELM_VERSION,
        env = ENV_HELM
    )]
    Binary {
        /// Path of the binary.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A chart is neither local nor pre-pulled and may not be pulled on demand.
    #[error(
        "failed to find pre-pulled helm chart '{chart}' version '{version}' for '{}' (looked in '{}')\nhint: run 'kluctl helm-pull' or set skipPrePull: true",
        file.display(),
        dir.display()
    )]
    NotPrePulled {
        /// The `helm-chart.yaml`.
        file: PathBuf,
        /// Chart name.
        chart: String,
        /// Wanted version.
        version: String,
        /// Where it was expected.
        dir: PathBuf,
    },
    /// A local chart directory has no `Chart.yaml`.
    #[error("failed to find local helm chart for '{}': '{}' has no Chart.yaml", file.display(), dir.display())]
    MissingLocalChart {
        /// The `helm-chart.yaml`.
        file: PathBuf,
        /// The chart directory.
        dir: PathBuf,
    },
    /// `helm pull` failed.
    #[error("failed to pull helm chart '{chart}' version '{version}' from '{repo}' for '{}': {stderr}", file.display())]
    Pull {
        /// The `helm-chart.yaml`.
        file: PathBuf,
        /// Repository or OCI URL.
        repo: String,
        /// Chart name.
        chart: String,
        /// Version.
        version: String,
        /// helm's stderr.
        stderr: String,
    },
    /// `helm template` failed.
    #[error("failed to render helm chart '{chart}' for release '{release}' of '{}': {stderr}", file.display())]
    Template {
        /// The `helm-chart.yaml`.
        file: PathBuf,
        /// Chart name or directory.
        chart: String,
        /// Release name.
        release: String,
        /// helm's stderr (or the parse error of its output).
        stderr: String,
    },
    /// Reading or writing a file failed.
    #[error("failed to {action} '{}'", path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How to reach the pinned helm binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelmBinary {
    /// Path of the binary (a bare name is looked up on `$PATH`).
    pub path: PathBuf,
    /// Extra environment for every helm invocation (e.g. `HELM_CACHE_HOME`, `HELM_CONFIG_HOME`).
    pub env: Vec<(OsString, OsString)>,
}

impl Default for HelmBinary {
    fn default() -> Self {
        Self::from_env()
    }
}

impl HelmBinary {
    /// A binary at an explicit path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            env: Vec::new(),
        }
    }

    /// `$KLUCTL_HELM` when set and non-empty, otherwise `helm` from `$PATH`.
    pub fn from_env() -> Self {
        match std::env::var_os(ENV_HELM) {
            Some(p) if !p.is_empty() => Self::new(p),
            _ => Self::new("helm"),
        }
    }

    /// Runs `helm version --short` and returns its output (e.g. `v4.2.3+g43e8b7f`).
    ///
    /// # Errors
    /// [`HelmError::Binary`] with an install hint.
    pub fn check(&self) -> Result<String, HelmError> {
        let out = self.run(&["version".into(), "--short".into()])?;
        if !out.status.success() {
            return Err(HelmError::Binary {
                path: self.path.display().to_string(),
                message: format!("'helm version' exited with {}: {}", out.status, text(&out.stderr)),
            });
        }
        Ok(text(&out.stdout))
    }

    fn run(&self, args: &[OsString]) -> Result<std::process::Output, HelmError> {
        Command::new(&self.path)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| HelmError::Binary {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// Kubernetes capabilities handed to `helm template`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `--kube-version` (from the cluster or `--kubernetes-version`); helm's default when `None`.
    pub kube_version: Option<String>,
    /// `--api-versions` (group/version and group/version/Kind strings from discovery).
    pub api_versions: Vec<String>,
}

/// One chart to render.
#[derive(Clone, Debug)]
pub struct RenderRequest<'a> {
    /// The rendered (templated) `helm-chart.yaml`; output and values live beside it.
    pub config_file: &'a Path,
    /// Root of the project source (local chart paths must stay inside it).
    pub project_root: &'a Path,
    /// The item directory in the (untemplated) source, against which local `path` resolves.
    pub item_source_dir: &'a Path,
    /// The `.helm-charts` directory found for the item ([`find_pre_pulled_dir`]).
    pub pre_pulled_dir: Option<&'a Path>,
    /// Kubernetes capabilities.
    pub capabilities: &'a Capabilities,
}

/// The helm step: binary plus the cache for charts pulled on demand.
#[derive(Clone, Debug)]
pub struct Helm {
    /// The helm binary.
    pub binary: HelmBinary,
    /// Cache of pulled charts, laid out like `.helm-charts/` (default `~/.cache/kluctl/helm-charts`).
    pub cache_dir: PathBuf,
    /// OCI registries reached over plain http (Kluctl's `--registry-plain-http=<registry>/<repo>`):
    /// an `oci://` chart whose reference starts with one of these gets `helm pull --plain-http`.
    pub plain_http_registries: Vec<String>,
}

impl Default for Helm {
    fn default() -> Self {
        Self {
            binary: HelmBinary::from_env(),
            cache_dir: default_cache_dir(),
            plain_http_registries: Vec::new(),
        }
    }
}

/// `$XDG_CACHE_HOME/kluctl/helm-charts`, else `~/.cache/kluctl/helm-charts`, else a temp dir.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kluctl").join("helm-charts")
}

/// The nearest `.helm-charts` directory from `item_rel_dir` (relative to `source_root`) up to the root.
pub fn find_pre_pulled_dir(source_root: &Path, item_rel_dir: &Path) -> Option<PathBuf> {
    let mut rel = Some(item_rel_dir);
    while let Some(r) = rel {
        let p = source_root.join(r).join(PRE_PULLED_DIR);
        if p.is_dir() {
            return Some(p);
        }
        rel = r.parent();
    }
    None
}

/// The directory of a pulled chart below `base` in Kluctl's layout (without the version).
///
/// # Errors
/// [`HelmError::Config`] for an unsupported URL scheme.
pub fn pulled_chart_dir(base: &Path, source: &ChartSource, file: &Path) -> Result<PathBuf, HelmError> {
    let (url, name, oci) = match source {
        ChartSource::Local(p) => return Ok(p.clone()),
        ChartSource::Repo { url, name } => (url, name, false),
        ChartSource::Oci { url, name } => (url, name, true),
    };
    let bad = || HelmError::Config {
        file: file.to_path_buf(),
        field: "helmChart.repo".into(),
        message: format!("unsupported scheme in '{url}'"),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let default_port = match scheme {
        "oci" => "",
        "http" => "80",
        "https" => "443",
        _ => return Err(bad()),
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || p.chars().all(|c| c.is_ascii_digit()) => (h, p),
        _ => (host_port, ""),
    };
    let mut prefix = scheme.to_string();
    if !port.is_empty() && port != default_port {
        prefix = format!("{prefix}_{port}");
    }
    let mut dir = base.join(format!("{prefix}_{}", host.to_lowercase()));
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == ".." || seg == "." {
            return Err(bad());
        }
        dir.push(seg.to_lowercase());
    }
    if !oci {
        dir.push(name);
    }
    Ok(dir)
}

impl Helm {
    /// A helm step with an explicit binary and cache directory.
    pub fn new(binary: HelmBinary, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            binary,
            cache_dir: cache_dir.into(),
            plain_http_registries: Vec::new(),
        }
    }

    /// Finds (and, for `skipPrePull`, pulls) the chart of `config`; returns its directory.
    ///
    /// # Errors
    /// Missing local or pre-pulled charts, pull failures.
    pub fn chart_dir(&self, config: &ChartConfig, req: &RenderRequest<'_>) -> Result<PathBuf, HelmError> {
        let source = config.source(req.project_root, req.item_source_dir)?;
        if let ChartSource::Local(dir) = &source {
            if !dir.join("Chart.yaml").is_file() {
                return Err(HelmError::MissingLocalChart {
                    file: config.file.clone(),
                    dir: dir.clone(),
                });
            }
            return Ok(dir.clone());
        }
        let version = config.spec.chart_version.clone().unwrap_or_default();
        if !config.spec.skip_pre_pull {
            let base = req.pre_pulled_dir.map(Path::to_path_buf).unwrap_or_default();
            let dir = pulled_chart_dir(&base, &source, &config.file)?.join(&version);
            if req.pre_pulled_dir.is_none() || !dir.join("Chart.yaml").is_file() {
                let (ChartSource::Repo { name, .. } | ChartSource::Oci { name, .. }) = &source else {
                    unreachable!("local charts returned above")
                };
                return Err(HelmError::NotPrePulled {
                    file: config.file.clone(),
                    chart: name.clone(),
                    version,
                    dir,
                });
            }
            return Ok(dir);
        }
        self.pull_cached(config, &source, &version)
    }

    /// Pulls into the cache unless `<cache>/<layout>/<version>/Chart.yaml` exists.
    fn pull_cached(
        &self,
        config: &ChartConfig,
        source: &ChartSource,
        version: &str,
    ) -> Result<PathBuf, HelmError> {
        let dir = pulled_chart_dir(&self.cache_dir, source, &config.file)?.join(version);
        if dir.join("Chart.yaml").is_file() {
            return Ok(dir);
        }
        let (repo, name) = match source {
            ChartSource::Repo { url, name } | ChartSource::Oci { url, name } => (url.clone(), name.clone()),
            ChartSource::Local(d) => return Ok(d.clone()),
        };
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| HelmError::Io { action, path, source }
        };
        let parent = dir.parent().unwrap_or(&self.cache_dir).to_path_buf();
        fs_err::create_dir_all(&parent).map_err(io("create directory", &parent))?;
        let tmp = tempfile::Builder::new()
            .prefix(".pull-")
            .tempdir_in(&parent)
            .map_err(io("create temp dir in", &parent))?;
        let mut args: Vec<OsString> = vec!["pull".into()];
        if matches!(source, ChartSource::Oci { .. }) {
            args.push(repo.clone().into());
            let reference = repo.trim_start_matches("oci://");
            if self.plain_http_registries.iter().any(|r| is_under(reference, r)) {
                args.push("--plain-http".into());
            }
        } else {
            args.extend([name.clone().into(), "--repo".into(), repo.clone().into()]);
        }
        args.extend([
            "--version".into(),
            version.into(),
            "--untar".into(),
            "--untardir".into(),
        ]);
        args.push(tmp.path().into());
        let out = self.binary.run(&args)?;
        if !out.status.success() {
            return Err(HelmError::Pull {
                file: config.file.clone(),
                repo,
                chart: name,
                version: version.to_string(),
                stderr: text(&out.stderr),
            });
        }
        let pulled = tmp.path().join(&name);
        match fs_err::rename(&pulled, &dir) {
            Ok(()) => {}
            // Another render pulled the same chart meanwhile; theirs is as good as ours.
            Err(_) if dir.join("Chart.yaml").is_file() => {}
            Err(source) => {
                return Err(HelmError::Io {
                    action: "move pulled chart to",
                    path: dir,
                    source,
                });
            }
        }
        Ok(dir)
    }

    /// Renders the chart of `req.config_file` and writes its objects to the `output` file beside it.
    /// Returns the path written.
    ///
    /// # Errors
    /// Invalid config, missing chart, helm failures (with helm's stderr), unwritable output.
    pub fn render(&self, req: &RenderRequest<'_>) -> Result<PathBuf, HelmError> {
        let config = ChartConfig::load(req.config_file)?;
        let objects = self.template(&config, req)?;
        let dir = req.config_file.parent().unwrap_or(Path::new("."));
        let output = config.output();
        if Path::new(output)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(HelmError::Config {
                file: config.file.clone(),
                field: "helmChart.output".into(),
                message: format!("'{output}' must be a relative path inside the item directory"),
            });
        }
        let path = dir.join(output);
        let text = if objects.is_empty() {
            String::new()
        } else {
            serde_saphyr::to_string_multiple(&objects).map_err(|e| HelmError::Template {
                file: config.file.clone(),
                chart: String::new(),
                release: config.spec.release_name.clone(),
                stderr: e.to_string(),
            })?
        };
        fs_err::write(&path, text).map_err(|source| HelmError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Runs `helm template` for `config` and returns the objects (manifests, then hooks; no tests),
    /// annotated with [`INSTALL_NAMESPACE_ANNOTATION`] when `namespace` is set, as Kluctl does.
    ///
    /// # Errors
    /// As [`Helm::render`].
    pub fn template(&self, config: &ChartConfig, req: &RenderRequest<'_>) -> Result<Vec<Object>, HelmError> {
        let chart_dir = self.chart_dir(config, req)?;
        let dir = req.config_file.parent().unwrap_or(Path::new("."));
        let spec = &config.spec;
        let mut args: Vec<OsString> = vec![
            "template".into(),
            spec.release_name.clone().into(),
            chart_dir.clone().into(),
            "--namespace".into(),
            config.namespace().into(),
            if spec.skip_crds {
                "--skip-crds"
            } else {
                "--include-crds"
            }
            .into(),
            "--skip-tests".into(),
        ];
        let values = ["helm-values.yml", "helm-values.yaml"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file());
        if let Some(values) = values {
            args.extend(["--values".into(), values.into()]);
        }
        if let Some(v) = &req.capabilities.kube_version {
            args.extend(["--kube-version".into(), v.into()]);
        }
        for a in &req.capabilities.api_versions {
            args.extend(["--api-versions".into(), a.into()]);
        }
        let out = self.binary.run(&args)?;
        let fail = |stderr: String| HelmError::Template {
            file: config.file.clone(),
            chart: chart_dir.display().to_string(),
            release: spec.release_name.clone(),
            stderr,
        };
        if !out.status.success() {
            return Err(fail(text(&out.stderr)));
        }
        let mut objects = parse_manifests(&String::from_utf8_lossy(&out.stdout)).map_err(fail)?;
        if let Some(ns) = &spec.namespace {
            for o in &mut objects {
                set_annotation(o, INSTALL_NAMESPACE_ANNOTATION, ns);
            }
        }
        Ok(objects)
    }
}

/// Sets `metadata.annotations[name]`, creating `metadata`/`annotations` where missing or `null`
/// (charts often render `annotations: null`).
fn set_annotation(o: &mut Object, name: &str, value: &str) {
    let mut slot = o.entry("metadata").or_insert(serde_json::Value::Null);
    for key in ["annotations", name] {
        if !slot.is_object() {
            *slot = serde_json::Value::Object(Object::new());
        }
        let serde_json::Value::Object(map) = slot else {
            unreachable!("just made an object")
        };
        slot = map.entry(key).or_insert(serde_json::Value::Null);
    }
    *slot = serde_json::Value::String(value.to_string());
}

/// True when `reference` (`host[:port]/path`) is `prefix` or below it (whole path segments).
fn is_under(reference: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_start_matches("oci://").trim_end_matches('/');
    !prefix.is_empty()
        && reference
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Parses helm's manifest stream: duplicate keys keep the last value (as Kluctl's parser does),
/// empty documents are skipped, every other document must be a mapping.
fn parse_manifests(text: &str) -> Result<Vec<Object>, String> {
    let mut options = crate::yaml::go_yaml_options();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| e.to_string())?;
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|d| match d {
            serde_json::Value::Object(m) => Ok(m),
            _ => Err("yaml object is not a map".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(url: &str, name: &str) -> ChartSource {
        if is_oci(url) {
            ChartSource::Oci {
                url: url.into(),
                name: name.into(),
            }
        } else {
            ChartSource::Repo {
                url: url.into(),
                name: name.into(),
            }
        }
    }

    #[test]
    fn pulled_chart_layout_matches_kluctl() {
        let f = Path::new("helm-chart.yaml");
        let b = Path::new("/c");
        let d = |u, n| pulled_chart_dir(b, &src(u, n), f).unwrap();
        assert_eq!(
            d("https://Charts.Bitnami.com/Bitnami", "redis"),
            Path::new("/c/https_charts.bitnami.com/bitnami/redis")
        );
        assert_eq!(d("https://h:443/x", "c"), Path::new("/c/https_h/x/c"));
        assert_eq!(
            d("http://127.0.0.1:8080/", "c"),
            Path::new("/c/http_8080_127.0.0.1/c")
        );
        assert_eq!(
            d("oci://ghcr.io/org/Chart", "Chart"),
            Path::new("/c/oci_ghcr.io/org/chart")
        );
        assert_eq!(
            d("oci://localhost:5000/c", "c"),
            Path::new("/c/oci_5000_localhost/c")
        );
        assert!(pulled_chart_dir(b, &src("ftp://x", "c"), f).is_err());
    }

    #[test]
    fn install_namespace_annotation_replaces_null_annotations() {
        let mut o: Object = serde_json::from_str(r#"{"metadata":{"name":"a","annotations":null}}"#).unwrap();
        set_annotation(&mut o, INSTALL_NAMESPACE_ANNOTATION, "ns");
        assert_eq!(o["metadata"]["annotations"][INSTALL_NAMESPACE_ANNOTATION], "ns");
        let mut o: Object = serde_json::from_str(r#"{"metadata":{"annotations":{"x":"1"}}}"#).unwrap();
        set_annotation(&mut o, INSTALL_NAMESPACE_ANNOTATION, "ns");
        assert_eq!(o["metadata"]["annotations"]["x"], "1");
        assert_eq!(o["metadata"]["annotations"][INSTALL_NAMESPACE_ANNOTATION], "ns");
    }

    #[test]
    fn plain_http_registries_match_whole_segments() {
        assert!(is_under("127.0.0.1:5000/charts/c", "127.0.0.1:5000"));
        assert!(is_under(
            "127.0.0.1:5000/charts/c",
            "oci://127.0.0.1:5000/charts/"
        ));
        assert!(!is_under("127.0.0.1:50001/charts/c", "127.0.0.1:5000"));
        assert!(!is_under("127.0.0.1:5000/chartsx/c", "127.0.0.1:5000/charts"));
    }

    #[test]
    fn manifests_keep_last_duplicate_key_and_reject_scalars() {
        let o = parse_manifests("---\n# Source: x\na: 1\na: 2\n---\n").unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0]["a"], 2);
        assert!(parse_manifests("--- 3\n").is_err());
    }

    #[test]
    fn pre_pulled_dir_is_searched_upwards() {
        let d = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(d.path().join("a/b")).unwrap();
        assert_eq!(find_pre_pulled_dir(d.path(), Path::new("a/b")), None);
        fs_err::create_dir_all(d.path().join(".helm-charts")).unwrap();
        assert_eq!(
            find_pre_pulled_dir(d.path(), Path::new("a/b")),
            Some(d.path().join(".helm-charts"))
        );
        fs_err::create_dir_all(d.path().join("a/.helm-charts")).unwrap();
        assert_eq!(
            find_pre_pulled_dir(d.path(), Path::new("a/b")),
            Some(d.path().join("a/.helm-charts"))
        );
    }
}
