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
use crate::files::MemTree;

const TEMPLATE_IGNORE: &str = ".templateignore";
/// Below this many files to render, a directory is rendered on the calling thread.
const PARALLEL_FILES_MIN: usize = 8;

/// What [`collect`] found: the directories to create and the files to copy, render or link.
#[derive(Default)]
struct Collected {
    dirs: Vec<PathBuf>,
    entries: Vec<Entry>,
}

/// One render job's outcome, filled in by whichever thread took it.
type Slot = std::sync::Mutex<Option<Result<Vec<u8>, TemplateError>>>;

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
    out: &mut Collected,
) -> Result<(), TemplateError> {
    out.dirs.push(dst.to_path_buf());
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
            out.entries.push(Entry::Symlink(path, target));
        } else if ft.is_dir() {
            collect(r, &path, &target, verbatim, false, ignores, out)?;
        } else if verbatim || is_ignored(ignores, &path) {
            out.entries.push(Entry::Copy(path, target));
        } else {
            out.entries.push(Entry::Render(path, target));
        }
    }
    Ok(())
}

fn render_one(r: &Renderer, src: &Path, ctx: &Value) -> Result<Vec<u8>, TemplateError> {
    let bytes = fs_err::read(src).map_err(|e| io_err(r, "read template", src, e))?;
    if !bytes.contains(&b'{') {
        return Ok(bytes);
    }
    let source = String::from_utf8(bytes).map_err(|e| {
        io_err(
            r,
            "read template",
            src,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    Ok(r.render_source(src, source, ctx)?.into_bytes())
}

/// Renders `src_dir` into an in-memory tree at the paths the files get below `dst_dir`.
pub(super) fn render_directory_files(
    r: &Renderer,
    src_dir: &Path,
    dst_dir: &Path,
    ctx: &Value,
) -> Result<MemTree, TemplateError> {
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

    let mut found = Collected::default();
    collect(r, &src, dst_dir, false, true, &ignores, &mut found)?;

    let mut tree = MemTree::new();
    for d in &found.dirs {
        tree.add_dir(d);
    }
    let mut jobs = Vec::new();
    for e in found.entries {
        match e {
            Entry::Copy(from, to) => tree.add_copy(&to, from),
            Entry::Render(from, to) => jobs.push((from, to)),
            Entry::Symlink(from, to) => {
                let target = fs_err::read_link(&from).map_err(|e| io_err(r, "read symlink", &from, e))?;
                tree.add_symlink(target, to);
            }
        }
    }
    let rendered = render_all(r, &jobs, ctx).map_err(|errors| TemplateError::Directory {
        dir: r.display(&src),
        errors,
    })?;
    for ((_, to), content) in jobs.iter().zip(rendered) {
        tree.add_file(to, content);
    }
    Ok(tree)
}

/// Renders every `(source, _)` of `jobs`, in order; all failures together, sorted by source.
fn render_all(
    r: &Renderer,
    jobs: &[(PathBuf, PathBuf)],
    ctx: &Value,
) -> Result<Vec<Vec<u8>>, Vec<TemplateError>> {
    // Items are already rendered in parallel (`render::render_items`); threads of its own pay
    // off only for a directory with many files.
    let workers = if jobs.len() < PARALLEL_FILES_MIN {
        1
    } else {
        crate::render::parallelism().clamp(1, 4).min(jobs.len())
    };
    let slots: Vec<Slot> = jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((from, _)) = jobs.get(i) else { break };
            let out = render_one(r, from, ctx);
            *slots[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(out);
        }
    };
    if workers <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    }
    let mut rendered = Vec::with_capacity(jobs.len());
    let mut errors: Vec<(PathBuf, TemplateError)> = Vec::new();
    for (slot, (from, _)) in slots.into_iter().zip(jobs) {
        match slot
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(Ok(content)) => rendered.push(content),
            Some(Err(e)) => errors.push((from.clone(), e)),
            None => errors.push((
                from.clone(),
                io_err(
                    r,
                    "render",
                    from,
                    std::io::Error::other("a render thread stopped"),
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(rendered)
    } else {
        errors.sort_by(|a, b| a.0.cmp(&b.0));
        Err(errors.into_iter().map(|(_, e)| e).collect())
    }
}

/// Renders `src_dir` into `dst_dir` on disk.
pub(super) fn render_directory(
    r: &Renderer,
    src_dir: &Path,
    dst_dir: &Path,
    ctx: &Value,
) -> Result<(), TemplateError> {
    render_directory_files(r, src_dir, dst_dir, ctx)?
        .write_to_disk()
        .map_err(|e| io_err(r, "write rendered files to", dst_dir, e))
}
