//! Rendering a whole deployment-item directory into the render dir, with Kluctl's rules for what
//! is templated and what is copied verbatim (see [`super::Renderer::render_directory`]).
//!
//! `.templateignore` files are read like Kluctl reads them: first those of the project root and
//! each directory down to (not including) the item dir, then the item dir's and those of all its
//! subdirectories (depth first, names sorted); each file's patterns are relative to its own
//! directory and a later matching pattern (including `!negations`) overrides earlier ones. The
//! `ignore` crate provides the gitignore pattern semantics.

use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use minijinja::Value;

use super::{Renderer, TemplateError, search};

const TEMPLATE_IGNORE: &str = ".templateignore";
/// Below this many files to render, a directory is rendered on the calling thread.
const PARALLEL_FILES_MIN: usize = 8;

enum Entry {
    Copy(PathBuf, PathBuf),
    Render(PathBuf, PathBuf),
    Symlink(PathBuf, PathBuf),
}

fn io_err(r: &Renderer, action: &'static str, path: &Path, source: std::io::Error) -> TemplateError {
    TemplateError::Io {
        action,
        path: r.display(path),
        source,
    }
}

fn load_ignore(r: &Renderer, dir: &Path, out: &mut Vec<Gitignore>) -> Result<(), TemplateError> {
    let file = dir.join(TEMPLATE_IGNORE);
    if !file.is_file() {
        return Ok(());
    }
    let mut b = GitignoreBuilder::new(dir);
    if let Some(e) = b.add(&file) {
        return Err(TemplateError::Ignore {
            path: r.display(&file),
            message: e.to_string(),
        });
    }
    let gi = b.build().map_err(|e| TemplateError::Ignore {
        path: r.display(&file),
        message: e.to_string(),
    })?;
    out.push(gi);
    Ok(())
}

fn sorted_entries(r: &Renderer, dir: &Path) -> Result<Vec<fs_err::DirEntry>, TemplateError> {
    let mut entries = fs_err::read_dir(dir)
        .map_err(|e| io_err(r, "read directory", dir, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io_err(r, "read directory", dir, e))?;
    entries.sort_by_key(fs_err::DirEntry::file_name);
    Ok(entries)
}

fn load_ignores_recursive(r: &Renderer, dir: &Path, out: &mut Vec<Gitignore>) -> Result<(), TemplateError> {
    load_ignore(r, dir, out)?;
    for e in sorted_entries(r, dir)? {
        let ft = e
            .file_type()
            .map_err(|err| io_err(r, "read directory", &e.path(), err))?;
        if ft.is_dir() {
            load_ignores_recursive(r, &e.path(), out)?;
        }
    }
    Ok(())
}

fn is_ignored(ignores: &[Gitignore], path: &Path) -> bool {
    for gi in ignores.iter().rev() {
        if !path.starts_with(gi.path()) {
            continue;
        }
        match gi.matched_path_or_any_parents(path, false) {
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
            Match::None => {}
        }
    }
    false
}

fn collect(
    r: &Renderer,
    src: &Path,
    dst: &Path,
    verbatim: bool,
    root: bool,
    ignores: &[Gitignore],
    out: &mut Vec<Entry>,
) -> Result<(), TemplateError> {
    fs_err::create_dir_all(dst).map_err(|e| io_err(r, "create directory", dst, e))?;
    // Kluctl never templates Helm charts kept in the item (any subdirectory with a Chart.yaml),
    // nor anything inside `.git`.
    let verbatim = verbatim
        || (!root && (src.join("Chart.yaml").is_file() || src.file_name().is_some_and(|n| n == ".git")));
    for e in sorted_entries(r, src)? {
        let path = e.path();
        let target = dst.join(e.file_name());
        let ft = e
            .file_type()
            .map_err(|err| io_err(r, "read directory", &path, err))?;
        if ft.is_symlink() {
            out.push(Entry::Symlink(path, target));
        } else if ft.is_dir() {
            collect(r, &path, &target, verbatim, false, ignores, out)?;
        } else if verbatim || is_ignored(ignores, &path) {
            out.push(Entry::Copy(path, target));
        } else {
            out.push(Entry::Render(path, target));
        }
    }
    Ok(())
}

fn render_one(r: &Renderer, src: &Path, dst: &Path, ctx: &Value) -> Result<(), TemplateError> {
    let bytes = fs_err::read(src).map_err(|e| io_err(r, "read template", src, e))?;
    let out = if bytes.contains(&b'{') {
        let source = String::from_utf8(bytes).map_err(|e| {
            io_err(
                r,
                "read template",
                src,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        r.render_source(src, source, ctx)?.into_bytes()
    } else {
        bytes
    };
    fs_err::write(dst, out).map_err(|e| io_err(r, "write rendered file", dst, e))
}

pub(super) fn render_directory(
    r: &Renderer,
    src_dir: &Path,
    dst_dir: &Path,
    ctx: &Value,
) -> Result<(), TemplateError> {
    let src = search::normalize(&std::path::absolute(src_dir).map_err(|e| io_err(r, "resolve", src_dir, e))?);
    let mut ignores = Vec::new();
    if let Ok(rel) = src.strip_prefix(&r.project_root) {
        let mut dir = r.project_root.clone();
        for c in rel.components() {
            load_ignore(r, &dir, &mut ignores)?;
            dir.push(c);
        }
    }
    load_ignores_recursive(r, &src, &mut ignores)?;

    let mut entries = Vec::new();
    collect(r, &src, dst_dir, false, true, &ignores, &mut entries)?;

    let mut jobs = Vec::new();
    let mut links = Vec::new();
    for e in entries {
        match e {
            Entry::Copy(from, to) => {
                fs_err::copy(&from, &to).map_err(|err| io_err(r, "copy", &from, err))?;
            }
            Entry::Render(from, to) => jobs.push((from, to)),
            Entry::Symlink(from, to) => links.push((from, to)),
        }
    }

    // Items are already rendered in parallel (`render::render_items`); threads of its own pay
    // off only for a directory with many files.
    let workers = if jobs.len() < PARALLEL_FILES_MIN {
        1
    } else {
        crate::render::parallelism().clamp(1, 4).min(jobs.len())
    };
    let mut errors: Vec<(PathBuf, TemplateError)> = Vec::new();
    if workers <= 1 {
        for (from, to) in &jobs {
            if let Err(e) = render_one(r, from, to, ctx) {
                errors.push((from.clone(), e));
            }
        }
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((from, to)) = jobs.get(i) else { break };
                        if let Err(e) = render_one(r, from, to, ctx) {
                            results
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((from.clone(), e));
                        }
                    }
                });
            }
        });
        errors = results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.0.cmp(&b.0));
        return Err(TemplateError::Directory {
            dir: r.display(&src),
            errors: errors.into_iter().map(|(_, e)| e).collect(),
        });
    }

    for (from, to) in links {
        let target = fs_err::read_link(&from).map_err(|e| io_err(r, "read symlink", &from, e))?;
        make_symlink(&target, &to).map_err(|e| io_err(r, "create symlink", &to, e))?;
    }
    Ok(())
}

#[cfg(unix)]
fn make_symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    fs_err::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn make_symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    let _ = (target, link);
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "symlinks are only supported on unix",
    ))
}
