//! `helm-chart.yaml` (`helmChart:`): parsing and the validation rules of Kluctl v2.28.
//!
//! Read by the helm step (to pull and render) and by kustomization generation (for `output`).

use super::HelmError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default output file of a rendered chart.
pub const DEFAULT_OUTPUT: &str = "helm-rendered.yaml";

/// Default release namespace.
pub const DEFAULT_NAMESPACE: &str = "default";

/// True for `helm-chart.yml` / `helm-chart.yaml` (any case).
pub fn is_helm_chart_file(name: &str) -> bool {
    let n = name.to_lowercase();
    n == "helm-chart.yml" || n == "helm-chart.yaml"
}

/// True for `helm-values.yml` / `helm-values.yaml` (any case).
pub fn is_helm_values_file(name: &str) -> bool {
    let n = name.to_lowercase();
    n == "helm-values.yml" || n == "helm-values.yaml"
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "helmChart")]
    helm_chart: Option<ChartSpec>,
}

/// The `helmChart` block of a `helm-chart.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartSpec {
    /// Chart repository: `http(s)://...` (with `chartName`) or `oci://.../name`.
    #[serde(default)]
    pub repo: String,
    /// Local chart directory, relative to the deployment item directory in the source.
    #[serde(default)]
    pub path: String,
    /// Git chart source (not supported yet; present so that using it is a clear error).
    #[serde(default)]
    pub git: Option<serde_json::Value>,
    /// Chart name in an http(s) repository.
    #[serde(default)]
    pub chart_name: String,
    /// Chart version (required with `repo`).
    #[serde(default)]
    pub chart_version: Option<String>,
    /// Semver constraint used by `helm-update`.
    #[serde(default)]
    pub update_constraints: Option<String>,
    /// Release name (required).
    #[serde(default)]
    pub release_name: String,
    /// Release namespace (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Output file name in the item directory (default `helm-rendered.yaml`).
    #[serde(default)]
    pub output: Option<String>,
    /// Pass `--skip-crds` instead of `--include-crds`.
    #[serde(default, rename = "skipCRDs")]
    pub skip_crds: bool,
    /// Exclude from `helm-update`.
    #[serde(default)]
    pub skip_update: bool,
    /// Pull on demand (into the cache) instead of requiring a pre-pulled chart.
    #[serde(default)]
    pub skip_pre_pull: bool,
}

/// Where a chart comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChartSource {
    /// A local chart directory (absolute, inside the project).
    Local(PathBuf),
    /// An http(s) repository with a chart name.
    Repo {
        /// Repository URL.
        url: String,
        /// Chart name.
        name: String,
    },
    /// An OCI reference (`oci://host/path/name`); the name is its last segment.
    Oci {
        /// The reference.
        url: String,
        /// Chart name.
        name: String,
    },
}

/// A loaded and validated `helm-chart.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartConfig {
    /// The file it was read from.
    pub file: PathBuf,
    /// Its `helmChart` block.
    pub spec: ChartSpec,
}

impl ChartConfig {
    /// Reads and validates `file`.
    ///
    /// # Errors
    /// [`HelmError::Config`] naming the file and field.
    pub fn load(file: &Path) -> Result<Self, HelmError> {
        let text = fs_err::read_to_string(file).map_err(|source| HelmError::Io {
            action: "read",
            path: file.to_path_buf(),
            source,
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates `text` as the content of `file`.
    ///
    /// # Errors
    /// [`HelmError::Config`] naming the file and field.
    pub fn parse(file: &Path, text: &str) -> Result<Self, HelmError> {
        let err = |field: &str, message: String| HelmError::Config {
            file: file.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let parsed: File = serde_saphyr::from_str(text).map_err(|e| err("helmChart", e.to_string()))?;
        let spec = parsed
            .helm_chart
            .ok_or_else(|| err("helmChart", "missing required field".into()))?;
        if spec.release_name.is_empty() {
            return Err(err("helmChart.releaseName", "missing required field".into()));
        }
        let sources = usize::from(!spec.repo.is_empty())
            + usize::from(!spec.path.is_empty())
            + usize::from(spec.git.is_some());
        if sources == 0 {
            return Err(err(
                "helmChart.repo",
                "either repo, path or git must be specified".into(),
            ));
        }
        if sources > 1 {
            return Err(err(
                "helmChart.repo",
                "only one of repo, path and git can be specified".into(),
            ));
        }
        if !spec.repo.is_empty() {
            if spec.chart_version.as_deref().unwrap_or("").is_empty() {
                return Err(err(
                    "helmChart.chartVersion",
                    "chartVersion must be specified when repo is specified".into(),
                ));
            }
            if is_oci(&spec.repo) {
                if !spec.chart_name.is_empty() {
                    return Err(err(
                        "helmChart.chartName",
                        "chartName can not be specified when repo is a OCI url".into(),
                    ));
                }
            } else if spec.chart_name.is_empty() {
                return Err(err(
                    "helmChart.chartName",
                    "chartName must be specified when repo is normal Helm repo".into(),
                ));
            } else if !(spec.repo.starts_with("http://") || spec.repo.starts_with("https://")) {
                return Err(err(
                    "helmChart.repo",
                    format!("unsupported scheme in '{}'", spec.repo),
                ));
            }
        } else if !spec.path.is_empty() {
            for (field, set) in [
                ("chartName", !spec.chart_name.is_empty()),
                ("chartVersion", spec.chart_version.is_some()),
                ("updateConstraints", spec.update_constraints.is_some()),
            ] {
                if set {
                    return Err(err(
                        &format!("helmChart.{field}"),
                        format!("{field} can not be specified for local Helm charts"),
                    ));
                }
            }
            if Path::new(&spec.path).is_absolute() {
                return Err(err(
                    "helmChart.path",
                    "absolute path is not allowed in helm-chart.yaml".into(),
                ));
            }
        } else {
            return Err(err(
                "helmChart.git",
                "git Helm charts are not supported yet".into(),
            ));
        }
        Ok(Self {
            file: file.to_path_buf(),
            spec,
        })
    }

    /// The output file name (`output`, default `helm-rendered.yaml`).
    pub fn output(&self) -> &str {
        self.spec.output.as_deref().unwrap_or(DEFAULT_OUTPUT)
    }

    /// The release namespace (`namespace`, default `default`).
    pub fn namespace(&self) -> &str {
        self.spec.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// Where the chart comes from; `item_source_dir` resolves local `path` charts, which must stay
    /// inside `project_root`.
    ///
    /// # Errors
    /// [`HelmError::Config`] for a local path leaving the project or an OCI URL without a name.
    pub fn source(&self, project_root: &Path, item_source_dir: &Path) -> Result<ChartSource, HelmError> {
        let s = &self.spec;
        if !s.path.is_empty() {
            let joined = normalize(&item_source_dir.join(&s.path));
            if !joined.starts_with(normalize(project_root)) {
                return Err(HelmError::Config {
                    file: self.file.clone(),
                    field: "helmChart.path".into(),
                    message: format!("'{}' is not inside the project", s.path),
                });
            }
            return Ok(ChartSource::Local(joined));
        }
        if is_oci(&s.repo) {
            let name = s
                .repo
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            if !name
                .chars()
                .any(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
            {
                return Err(HelmError::Config {
                    file: self.file.clone(),
                    field: "helmChart.repo".into(),
                    message: format!("invalid oci chart url: '{}'", s.repo),
                });
            }
            return Ok(ChartSource::Oci {
                url: s.repo.clone(),
                name,
            });
        }
        Ok(ChartSource::Repo {
            url: s.repo.clone(),
            name: s.chart_name.clone(),
        })
    }
}

/// True for `oci://` references.
pub fn is_oci(repo: &str) -> bool {
    repo.starts_with("oci://")
}

/// Lexical normalisation (`.` and `..` removed) without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<ChartConfig, String> {
        ChartConfig::parse(Path::new("item/helm-chart.yaml"), y).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_kluctl() {
        let c = parse("helmChart:\n  repo: https://charts.example.com\n  chartName: x\n  chartVersion: 1.0.0\n  releaseName: r\n")
            .unwrap();
        assert_eq!(c.output(), "helm-rendered.yaml");
        assert_eq!(c.namespace(), "default");
        assert!(!c.spec.skip_crds);
    }

    #[test]
    fn validation_errors_name_file_and_field() {
        let e = parse("helmChart:\n  repo: https://x\n  chartName: x\n  releaseName: r\n").unwrap_err();
        assert!(
            e.contains("'item/helm-chart.yaml'") && e.contains("helmChart.chartVersion"),
            "{e}"
        );
        let e =
            parse("helmChart:\n  repo: oci://x/y\n  chartName: y\n  chartVersion: '1'\n  releaseName: r\n")
                .unwrap_err();
        assert!(e.contains("helmChart.chartName"), "{e}");
        let e = parse("helmChart:\n  path: c\n").unwrap_err();
        assert!(e.contains("helmChart.releaseName"), "{e}");
        let e = parse("helmChart:\n  path: c\n  repo: https://x\n  releaseName: r\n").unwrap_err();
        assert!(e.contains("only one of repo, path and git"), "{e}");
        let e = parse("helmChart: [").unwrap_err();
        assert!(e.contains("'item/helm-chart.yaml'"), "{e}");
    }

    #[test]
    fn local_path_must_stay_in_project() {
        let c = parse("helmChart:\n  path: ../../../elsewhere\n  releaseName: r\n").unwrap();
        let e = c
            .source(Path::new("/p"), Path::new("/p/a"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not inside the project"), "{e}");
        let c = parse("helmChart:\n  path: ../charts/c\n  releaseName: r\n").unwrap();
        assert_eq!(
            c.source(Path::new("/p"), Path::new("/p/a")).unwrap(),
            ChartSource::Local("/p/charts/c".into())
        );
    }
}
