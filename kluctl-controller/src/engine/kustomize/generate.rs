//! The `kustomization.yml` Kluctl generates for a deployment item without one.
//!
//! Sits between the helm step and the kustomize build: the render step calls
//! [`generate_kustomization`] on the rendered item directory when it has no `kustomization.yml` /
//! `kustomization.yaml`, sets `namespace` from `overrideNamespace`, and writes it with
//! [`write_kustomization`]. The rules follow Kluctl v2.28:
//! - files (not directories) of the item directory in name order (byte order); with `recursive`,
//!   all files below it in walk order (names sorted per directory, a directory's files at its place),
//!   and any nested `kustomization.yaml`/`kustomization.yml` is an error;
//! - names ending in `.yml`/`.yaml` (any case) are listed;
//! - `helm-values.yml/yaml` are skipped; a `helm-chart.yml/yaml` stands for its output file
//!   (`output`, default `helm-rendered.yaml`) when that file does not exist yet (when it exists, it is
//!   listed like any other YAML file);
//! - paths are cleaned and listed once.

use super::KustomizeError;
use crate::engine::helm::{ChartConfig, is_helm_chart_file, is_helm_values_file};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A generated kustomization: what Kluctl writes for an item without one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kustomization {
    /// Resources, relative to the item directory, `/`-separated.
    pub resources: Vec<String>,
    /// Namespace (from `overrideNamespace`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Generates the kustomization Kluctl would for the rendered item directory `dir`.
///
/// # Errors
/// When a directory cannot be read, `recursive` meets a kustomization file, or a `helm-chart.yaml`
/// is invalid.
pub fn generate_kustomization(dir: &Path, recursive: bool) -> Result<Kustomization, KustomizeError> {
    let mut files = Vec::new();
    if recursive {
        walk(dir, Path::new(""), &mut files)?;
    } else {
        for (name, is_dir) in sorted_entries(dir)? {
            if !is_dir {
                files.push(PathBuf::from(name));
            }
        }
    }

    let mut resources: Vec<String> = Vec::with_capacity(files.len());
    for file in files {
        let base = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = file.parent().unwrap_or(Path::new(""));
        let resource = if is_helm_values_file(&base) {
            continue;
        } else if is_helm_chart_file(&base) {
            let config = ChartConfig::load(&dir.join(&file)).map_err(|e| KustomizeError::HelmChart {
                dir: dir.to_path_buf(),
                source: Box::new(e),
            })?;
            let output = config.output();
            if dir.join(parent).join(output).is_file() {
                continue;
            }
            parent.join(output)
        } else if has_yaml_ext(&base) {
            file.clone()
        } else {
            continue;
        };
        let resource = clean_slash_path(&resource.to_string_lossy());
        if !resources.contains(&resource) {
            resources.push(resource);
        }
    }
    Ok(Kustomization {
        resources,
        namespace: None,
    })
}

/// Writes `k` as `kustomization.yml` into `dir` (or over `kustomization.yaml` if only that exists,
/// as Kluctl does) and returns the path written.
///
/// # Errors
/// When serialising or writing fails.
pub fn write_kustomization(dir: &Path, k: &Kustomization) -> Result<PathBuf, KustomizeError> {
    let short_ext = dir.join("kustomization.yml");
    let long_ext = dir.join("kustomization.yaml");
    let path = if !short_ext.exists() && long_ext.exists() {
        long_ext
    } else {
        short_ext
    };
    let text = serde_saphyr::to_string(k).map_err(|e| KustomizeError::Io {
        action: "serialise kustomization for",
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    fs_err::write(&path, text).map_err(|source| KustomizeError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn has_yaml_ext(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

/// Entries of `dir` sorted by name; `is_dir` does not follow symlinks (as Go's `ReadDir`).
fn sorted_entries(dir: &Path) -> Result<Vec<(String, bool)>, KustomizeError> {
    let io = |source| KustomizeError::Io {
        action: "read directory",
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let is_dir = e.file_type().map_err(io)?.is_dir();
        out.push((e.file_name().to_string_lossy().into_owned(), is_dir));
    }
    out.sort();
    Ok(out)
}

fn walk(base: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<(), KustomizeError> {
    for (name, is_dir) in sorted_entries(&base.join(rel))? {
        let child = rel.join(&name);
        if is_dir {
            walk(base, &child, files)?;
        } else {
            if name == "kustomization.yaml" || name == "kustomization.yml" {
                return Err(KustomizeError::RecursiveWithKustomization { path: child });
            }
            files.push(child);
        }
    }
    Ok(())
}

/// `path.Clean` for `/`-separated relative paths.
fn clean_slash_path(p: &str) -> String {
    let p = p.replace('\\', "/");
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_path_clean() {
        assert_eq!(clean_slash_path("a/./b"), "a/b");
        assert_eq!(clean_slash_path("a/../b.yaml"), "b.yaml");
        assert_eq!(clean_slash_path("../x.yaml"), "../x.yaml");
        assert_eq!(clean_slash_path("./helm-rendered.yaml"), "helm-rendered.yaml");
    }

    #[test]
    fn generated_kustomization_lists_yaml_files_sorted_and_replaces_helm_chart() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "b.yaml",
            "a.YML",
            "notes.txt",
            "helm-values.yaml",
            "Z.yaml",
            ".hidden.yaml",
        ] {
            fs_err::write(d.path().join(f), "").unwrap();
        }
        fs_err::write(
            d.path().join("helm-chart.yaml"),
            "helmChart:\n  path: chart\n  releaseName: r\n  output: out.yaml\n",
        )
        .unwrap();
        fs_err::create_dir(d.path().join("sub")).unwrap();
        fs_err::write(d.path().join("sub/c.yaml"), "").unwrap();
        let k = generate_kustomization(d.path(), false).unwrap();
        assert_eq!(
            k.resources,
            [".hidden.yaml", "Z.yaml", "a.YML", "b.yaml", "out.yaml"]
        );
        // Once the chart is rendered, the output file is listed at its own place.
        fs_err::write(d.path().join("out.yaml"), "").unwrap();
        let k = generate_kustomization(d.path(), false).unwrap();
        assert_eq!(
            k.resources,
            [".hidden.yaml", "Z.yaml", "a.YML", "b.yaml", "out.yaml"]
        );
        let k = generate_kustomization(d.path(), true).unwrap();
        assert_eq!(
            k.resources,
            [
                ".hidden.yaml",
                "Z.yaml",
                "a.YML",
                "b.yaml",
                "out.yaml",
                "sub/c.yaml"
            ]
        );
        fs_err::write(d.path().join("sub/kustomization.yml"), "").unwrap();
        let err = generate_kustomization(d.path(), true).unwrap_err().to_string();
        assert!(err.contains("'sub/kustomization.yml'"), "{err}");
    }
}
