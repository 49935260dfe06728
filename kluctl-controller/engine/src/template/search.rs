//! Template name resolution: how `include`, `import`, `extends`, `load_template`, `load_base64`
//! and friends find files, mirroring Kluctl's Jinja2 loader.
//!
//! ```text
//! name "./x" or "../x"  --join with dirname(parent name), normalised-->  name
//! name == a root being rendered                                   -->  that file
//! absolute name inside one of the search dirs                     -->  that file
//! relative name (no ".." segment) under search dir 1, 2, ... (first regular file wins)
//! anything else                                                   -->  not found
//! ```
//! Search dirs come from the caller (Kluctl: the deployment item dir, then the project dir and its
//! parents up to the source root). A `..` segment in a relative name is refused and an absolute
//! name must stay below a search dir, so templates cannot read files outside the project.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// The ordered search dirs of one renderer plus the sources of root templates handed over to the
/// loader.
#[derive(Debug)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
    pending_roots: Mutex<HashMap<String, String>>,
}

/// Lexically normalises a path (`.` dropped, `..` pops; `..` above `/` stays at `/`), like
/// Python's `os.path.normpath`.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    out.iter().collect()
}

/// Kluctl's `join_path`: `./` and `../` names are relative to the including template's name.
pub fn join_name(name: &str, parent: &str) -> String {
    if name.starts_with("./") || name.starts_with("../") {
        let dir = parent.rfind('/').map_or("", |i| &parent[..i]);
        let joined = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        let n = normalize(Path::new(&joined));
        let s = n.to_string_lossy().replace('\\', "/");
        if s.is_empty() { ".".into() } else { s }
    } else {
        name.to_string()
    }
}

impl SearchPath {
    /// Builds a search path from absolute (or cwd-relative) dirs, in priority order.
    pub fn new(dirs: &[PathBuf]) -> Self {
        let dirs = dirs
            .iter()
            .map(|d| normalize(&std::path::absolute(d).unwrap_or_else(|_| d.clone())))
            .collect();
        Self {
            dirs,
            pending_roots: Mutex::new(HashMap::new()),
        }
    }

    /// The normalised search dirs.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Hands the already-read source of a root template to the loader (it is loaded once, under
    /// its absolute path as name, even when the file lies outside the search dirs).
    pub fn offer_root(&self, name: &str, source: String) {
        if let Ok(mut m) = self.pending_roots.lock() {
            m.insert(name.to_string(), source);
        }
    }

    /// Takes a root source handed over with [`Self::offer_root`].
    pub fn take_root(&self, name: &str) -> Option<String> {
        self.pending_roots.lock().ok().and_then(|mut m| m.remove(name))
    }

    /// Finds the file a template name refers to (see the module doc).
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let p = Path::new(name);
        if p.is_absolute() {
            let p = normalize(p);
            return self.dirs.iter().any(|d| p.starts_with(d) && p != *d).then_some(p);
        }
        let mut pieces = Vec::new();
        for piece in name.split('/') {
            if piece == ".." || piece.contains('\\') {
                return None;
            }
            if !piece.is_empty() && piece != "." {
                pieces.push(piece);
            }
        }
        if pieces.is_empty() {
            return None;
        }
        self.dirs
            .iter()
            .map(|d| pieces.iter().fold(d.clone(), |acc, p| acc.join(p)))
            .find(|f| f.is_file())
    }

    /// Resolves the path of a file to render the way Kluctl does before rendering: absolute paths
    /// as they are, relative ones against the search dirs (first regular file wins).
    pub fn resolve_root(&self, path: &Path) -> Option<PathBuf> {
        if path.is_absolute() {
            return Some(normalize(path));
        }
        self.dirs
            .iter()
            .map(|d| d.join(path))
            .find(|f| f.is_file())
            .map(|f| normalize(&f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_name_resolves_dot_prefixes_against_the_parent() {
        assert_eq!(join_name("./b.j2", "/p/x/a.yaml"), "/p/x/b.j2");
        assert_eq!(join_name("../b.j2", "/p/x/a.yaml"), "/p/b.j2");
        assert_eq!(join_name("b.j2", "/p/x/a.yaml"), "b.j2");
        assert_eq!(join_name("./c.j2", "lib/b.j2"), "lib/c.j2");
        assert_eq!(join_name("../../c.j2", "lib/b.j2"), "../c.j2");
    }

    #[test]
    fn find_refuses_parent_segments_and_paths_outside_search_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs_err::create_dir_all(a.join("sub")).unwrap();
        fs_err::write(a.join("sub/x.j2"), "x").unwrap();
        fs_err::write(dir.path().join("secret"), "s").unwrap();
        let sp = SearchPath::new(std::slice::from_ref(&a));
        assert_eq!(sp.find("sub/x.j2"), Some(a.join("sub/x.j2")));
        assert_eq!(sp.find("./sub/x.j2"), Some(a.join("sub/x.j2")));
        assert_eq!(sp.find("../secret"), None);
        assert_eq!(sp.find("sub/../../secret"), None);
        let outside = dir.path().join("secret");
        assert_eq!(sp.find(outside.to_str().unwrap()), None);
        let via_dotdot = format!("{}/sub/../../secret", a.display());
        assert_eq!(sp.find(&via_dotdot), None);
    }
}
