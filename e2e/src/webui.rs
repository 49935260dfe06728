//! `kluctl webui run` (the built CLI, as a user starts it) as a child process on a free port:
//! started with the given arguments after `webui run --port 0`, its address read from the line it
//! prints, its stderr kept in a log file, killed when dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::{ChildLog, kluctl_bin};

/// A running `kluctl webui run`.
pub struct Webui {
    child: Child,
    /// Its address, `http://127.0.0.1:PORT/` (with the path prefix, if one was given).
    pub url: String,
    _log: ChildLog,
    _dir: tempfile::TempDir,
}

impl Webui {
    /// Starts `kluctl webui run --port 0 ARGS...` and waits until it prints its address.
    ///
    /// # Errors
    /// The binary is missing (build it with `cargo build -p kluctl --bin kluctl`), or it exited
    /// or printed no address within 30 s.
    pub fn start<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(kluctl_bin()?)
            .args(["webui", "run", "--port", "0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kluctl webui run")?;
        let log = ChildLog::follow(
            child.stderr.take().context("stderr")?,
            &dir.path().join("webui.log"),
        )?;
        let url = log.wait_for("its address", Duration::from_secs(30), |line| {
            line.split("Serving the kluctl web UI at ")
                .nth(1)
                .map(str::to_owned)
        });
        match url {
            Ok(url) => Ok(Self {
                child,
                url,
                _log: log,
                _dir: dir,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

impl Drop for Webui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of the kubeconfig `admin` with its current context twice, as `ctx-a` (current) and
/// `ctx-b`: two names for one cluster, for `--context` and `--all-contexts`. Written to
/// `dir/kubeconfig`.
///
/// # Errors
/// `admin` is unreadable or has no current context.
pub fn two_context_kubeconfig(admin: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut kc = kube::config::Kubeconfig::read_from(admin)?;
    let current = kc
        .current_context
        .clone()
        .context("the admin kubeconfig has no current context")?;
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .context("the admin kubeconfig's current context")?
        .clone();
    kc.contexts = ["ctx-a", "ctx-b"]
        .iter()
        .map(|name| {
            let mut c = context.clone();
            (*name).clone_into(&mut c.name);
            c
        })
        .collect();
    kc.current_context = Some("ctx-a".to_owned());
    let path = dir.join("kubeconfig");
    // JSON is YAML: the kubeconfig loader reads it.
    fs_err::write(&path, serde_json::to_vec(&kc)?)?;
    Ok(path)
}
