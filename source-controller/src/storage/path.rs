//! Artifact paths: `<lowercase kind>/<namespace>/<name>/<file>`, each part one plain path component.
//!
//! Flux clamps bad paths into the root (`securejoin`); we reject them instead, so a name that
//! would escape the root is an error that names it rather than a silently different file.

use super::StorageError;

/// Checks that `value` is one plain path component: non-empty, not `.`/`..`, no `/`, `\` or NUL.
pub(super) fn check_component(what: &str, value: &str) -> Result<(), StorageError> {
    let reason = if value.is_empty() {
        "is empty"
    } else if value == "." || value == ".." {
        "is a relative directory reference"
    } else if value.contains(['/', '\\']) {
        "contains a path separator"
    } else if value.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(StorageError::InvalidPath {
        path: value.to_string(),
        reason: format!("{what} '{value}' {reason}"),
    })
}

/// The object directory relative to the root: `<lowercase kind>/<namespace>/<name>`.
///
/// # Errors
/// [`StorageError::InvalidPath`] when a part is empty, `.`/`..`, or contains `/`, `\` or NUL.
///
/// ```
/// use source_controller::storage::object_dir;
/// assert_eq!(object_dir("GitRepository", "flux-system", "podinfo").unwrap(),
///            "gitrepository/flux-system/podinfo");
/// assert!(object_dir("GitRepository", "..", "podinfo").is_err());
/// ```
pub fn object_dir(kind: &str, namespace: &str, name: &str) -> Result<String, StorageError> {
    let kind = kind.to_ascii_lowercase();
    check_component("kind", &kind)?;
    check_component("namespace", namespace)?;
    check_component("name", name)?;
    Ok(format!("{kind}/{namespace}/{name}"))
}

/// The artifact path relative to the root, as written to `status.artifact.path`:
/// `<lowercase kind>/<namespace>/<name>/<file>`.
///
/// # Errors
/// [`StorageError::InvalidPath`] as for [`object_dir`], and for a `file` that is not one component.
///
/// ```
/// use source_controller::storage::artifact_path;
/// assert_eq!(
///     artifact_path("Bucket", "default", "podinfo", "abc.tar.gz").unwrap(),
///     "bucket/default/podinfo/abc.tar.gz"
/// );
/// assert!(artifact_path("Bucket", "default", "podinfo", "../x.tar.gz").is_err());
/// ```
pub fn artifact_path(kind: &str, namespace: &str, name: &str, file: &str) -> Result<String, StorageError> {
    let dir = object_dir(kind, namespace, name)?;
    check_component("file", file)?;
    Ok(format!("{dir}/{file}"))
}

/// Splits a relative storage path into checked components.
pub(super) fn split_relative(rel_path: &str) -> Result<Vec<&str>, StorageError> {
    let invalid = |reason: String| StorageError::InvalidPath {
        path: rel_path.to_string(),
        reason,
    };
    if rel_path.is_empty() {
        return Err(invalid("the path is empty".into()));
    }
    if rel_path.starts_with('/') {
        return Err(invalid("the path is absolute".into()));
    }
    rel_path
        .split('/')
        .map(|part| {
            check_component("path segment", part).map_err(|e| match e {
                StorageError::InvalidPath { reason, .. } => invalid(reason),
                other => other,
            })?;
            Ok(part)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_lowercased() {
        assert_eq!(
            artifact_path("GitRepository", "flux-system", "flux-system", "0a1b.tar.gz").unwrap(),
            "gitrepository/flux-system/flux-system/0a1b.tar.gz"
        );
    }

    #[test]
    fn traversal_in_any_part_is_rejected() {
        for (kind, ns, name, file) in [
            ("GitRepository", "..", "x", "a.tar.gz"),
            ("GitRepository", "ns", "..", "a.tar.gz"),
            ("GitRepository", "ns", "x", ".."),
            ("GitRepository", "ns/../..", "x", "a.tar.gz"),
            ("GitRepository", "ns", "x", "..\\..\\a.tar.gz"),
            ("GitRepository", "ns", "x", "/etc/passwd"),
            ("..", "ns", "x", "a.tar.gz"),
            ("GitRepository", "", "x", "a.tar.gz"),
            ("GitRepository", "ns", "x", "a\0b"),
        ] {
            let err = artifact_path(kind, ns, name, file).unwrap_err();
            assert_eq!(err.reason(), "InvalidPath", "{err}");
        }
    }

    #[test]
    fn relative_paths_are_split_and_checked() {
        assert_eq!(
            split_relative("gitrepository/ns/x/a.tar.gz").unwrap(),
            ["gitrepository", "ns", "x", "a.tar.gz"]
        );
        for bad in [
            "",
            "/abs/a.tar.gz",
            "a/../../b",
            "a//b",
            "a/./b",
            "a/b/",
            "a\\..\\b",
        ] {
            let err = split_relative(bad).unwrap_err();
            assert!(err.to_string().contains("invalid artifact path"), "{bad}: {err}");
        }
    }
}
