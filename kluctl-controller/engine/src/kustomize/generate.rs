//! The `kustomization.yml` Kluctl generates for a deployment item without one, and the preparation
//! of an item's kustomization before the build.
//!
//! Sits between the helm step and the kustomize build: the render step calls
//! [`prepare_kustomization`] on the rendered item directory, which uses the existing
//! `kustomization.yml` / `kustomization.yaml` or [`generate_kustomization`]s one, sets `namespace` from
//! `overrideNamespace` when the kustomization has none, writes it, and reads the `kluctl.io/barrier`
//! and `kluctl.io/wait-readiness` annotations. Generation rules follow Kluctl v2.28:
//! - files (not directories) of the item directory in name order (byte order); with `recursive`,
//!   all files below it in walk order (names sorted per directory, a directory's files at its place),
//!   and any nested `kustomization.yaml`/`kustomization.yml` is an error;
//! - names ending in `.yml`/`.yaml` (any case) are listed;
//! - `helm-values.yml/yaml` are skipped; a `helm-chart.yml/yaml` stands for its output file
//!   (`output`, default `helm-rendered.yaml`) when that file does not exist yet (when it exists, it is
//!   listed like any other YAML file);
//! - paths are cleaned and listed once.

use super::KustomizeError;
use crate::files::{Disk, Tree};
use crate::helm::{ChartConfig, is_helm_chart_file, is_helm_values_file};
use crate::values::parse_go_bool;
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

/// What [`prepare_kustomization`] learned from an item's kustomization.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreparedKustomization {
    /// The kustomization file (existing or generated).
    pub path: PathBuf,
    /// True when it was generated.
    pub generated: bool,
    /// `metadata.annotations["kluctl.io/barrier"]` parsed as a Go bool (default false).
    pub barrier: bool,
    /// `metadata.annotations["kluctl.io/wait-readiness"]` parsed as a Go bool (default false).
    pub wait_readiness: bool,
}

/// Prepares the kustomization of the rendered item directory `dir` as Kluctl does before building:
/// existing `kustomization.yml` (or `.yaml`) or a generated one; `override_namespace` applied when it
/// has no `namespace` key; barrier/wait-readiness annotations read. `item_dir_for_errors` names the
/// item in messages (relative to the source root).
///
/// An existing kustomization is rewritten only when `namespace` was added (Kluctl rewrites it
/// always; the content is the same).
///
/// # Errors
/// `recursive` with an existing kustomization, unreadable/invalid files, generation failures.
pub fn prepare_kustomization(
    dir: &Path,
    recursive: bool,
    override_namespace: Option<&str>,
    item_dir_for_errors: &Path,
) -> Result<PreparedKustomization, KustomizeError> {
    prepare_kustomization_in(&mut Disk, dir, recursive, override_namespace, item_dir_for_errors)
}

/// [`prepare_kustomization`] on a rendered tree on disk or in memory.
///
/// # Errors
/// As [`prepare_kustomization`].
pub fn prepare_kustomization_in(
    tree: &mut dyn Tree,
    dir: &Path,
    recursive: bool,
    override_namespace: Option<&str>,
    item_dir_for_errors: &Path,
) -> Result<PreparedKustomization, KustomizeError> {
    let existing = ["kustomization.yml", "kustomization.yaml"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| tree.is_file(p));
    let Some(path) = existing else {
        let mut k = generate_in(&*tree, dir, recursive)?;
        k.namespace = override_namespace.map(str::to_string);
        let path = write_in(tree, dir, &k)?;
        return Ok(PreparedKustomization {
            path,
            generated: true,
            barrier: false,
            wait_readiness: false,
        });
    };
    if recursive {
        return Err(KustomizeError::RecursiveWithOwnKustomization {
            dir: item_dir_for_errors.to_path_buf(),
        });
    }
    let text = tree.read_to_string(&path).map_err(|source| KustomizeError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let parse_err = |message: String| KustomizeError::ParseKustomization {
        path: path.clone(),
        message,
    };
    let value: serde_json::Value = serde_saphyr::from_str_with_options(&text, crate::yaml::go_yaml_options())
        .map_err(|e| parse_err(e.to_string()))?;
    let mut k = match value {
        serde_json::Value::Object(k) => k,
        serde_json::Value::Null => crate::Object::new(),
        _ => return Err(parse_err("not a mapping".into())),
    };
    let annotation = |name: &str| {
        k.get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(name))
            .and_then(serde_json::Value::as_str)
            .and_then(parse_go_bool)
            .unwrap_or(false)
    };
    let barrier = annotation("kluctl.io/barrier");
    let wait_readiness = annotation("kluctl.io/wait-readiness");
    if let Some(ns) = override_namespace
        && !k.contains_key("namespace")
    {
        k.insert("namespace".into(), serde_json::Value::String(ns.to_string()));
        let text = serde_saphyr::to_string(&k).map_err(|e| parse_err(e.to_string()))?;
        tree.write(&path, text).map_err(|source| KustomizeError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
    }
    Ok(PreparedKustomization {
        path,
        generated: false,
        barrier,
        wait_readiness,
    })
}

/// Generates the kustomization Kluctl would for the rendered item directory `dir`.
///
/// # Errors
/// When a directory cannot be read, `recursive` meets a kustomization file, or a `helm-chart.yaml`
/// is invalid.
pub fn generate_kustomization(dir: &Path, recursive: bool) -> Result<Kustomization, KustomizeError> {
    generate_in(&Disk, dir, recursive)
}

fn generate_in(tree: &dyn Tree, dir: &Path, recursive: bool) -> Result<Kustomization, KustomizeError> {
    let mut files = Vec::new();
    if recursive {
        walk(tree, dir, Path::new(""), &mut files)?;
    } else {
        for (name, is_dir) in sorted_entries(tree, dir)? {
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
            if tree.is_file(&dir.join(parent).join(output)) {
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
    write_in(&mut Disk, dir, k)
}

fn write_in(tree: &mut dyn Tree, dir: &Path, k: &Kustomization) -> Result<PathBuf, KustomizeError> {
    let short_ext = dir.join("kustomization.yml");
    let long_ext = dir.join("kustomization.yaml");
    let exists = |p: &Path| tree.is_file(p) || tree.is_dir(p);
    let path = if !exists(&short_ext) && exists(&long_ext) {
        long_ext
    } else {
        short_ext
    };
    let text = serde_saphyr::to_string(k).map_err(|e| KustomizeError::Io {
        action: "serialise kustomization for",
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    tree.write(&path, text).map_err(|source| KustomizeError::Io {
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
fn sorted_entries(tree: &dyn Tree, dir: &Path) -> Result<Vec<(String, bool)>, KustomizeError> {
    tree.entries(dir).map_err(|source| KustomizeError::Io {
        action: "read directory",
        path: dir.to_path_buf(),
        source,
    })
}

fn walk(tree: &dyn Tree, base: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<(), KustomizeError> {
    for (name, is_dir) in sorted_entries(tree, &base.join(rel))? {
        let child = rel.join(&name);
        if is_dir {
            walk(tree, base, &child, files)?;
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
    fn prepare_uses_existing_kustomization_sets_missing_namespace_and_reads_annotations() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("kustomization.yaml");
        fs_err::write(&k, "metadata:\n  annotations:\n    kluctl.io/barrier: \"True\"\n    kluctl.io/wait-readiness: \"yes\"\nresources: [a.yaml]\n").unwrap();
        let p = prepare_kustomization(d.path(), false, Some("ns1"), Path::new("item")).unwrap();
        assert_eq!((p.generated, p.barrier, p.wait_readiness), (false, true, false));
        assert_eq!(p.path, k);
        let v: serde_json::Value = serde_saphyr::from_str(&fs_err::read_to_string(&k).unwrap()).unwrap();
        assert_eq!(v["namespace"], "ns1");
        assert_eq!(v["resources"][0], "a.yaml");
        // An explicit namespace (even empty) wins over overrideNamespace.
        fs_err::write(&k, "namespace: \"\"\nresources: []\n").unwrap();
        prepare_kustomization(d.path(), false, Some("ns2"), Path::new("item")).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&fs_err::read_to_string(&k).unwrap()).unwrap();
        assert_eq!(v["namespace"], "");
        let err = prepare_kustomization(d.path(), true, None, Path::new("item"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("recursive: true cannot be used") && err.contains("'item'"),
            "{err}"
        );
    }

    #[test]
    fn prepare_generates_when_missing() {
        let d = tempfile::tempdir().unwrap();
        fs_err::write(d.path().join("a.yaml"), "").unwrap();
        let p = prepare_kustomization(d.path(), false, Some("ns"), Path::new("item")).unwrap();
        assert!(p.generated);
        assert_eq!(p.path, d.path().join("kustomization.yml"));
        let k: Kustomization = serde_saphyr::from_str(&fs_err::read_to_string(&p.path).unwrap()).unwrap();
        assert_eq!(
            k,
            Kustomization {
                resources: vec!["a.yaml".into()],
                namespace: Some("ns".into())
            }
        );
    }

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
