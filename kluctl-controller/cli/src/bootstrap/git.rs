//! The repository side of `kluctl bootstrap git`: clone, check push rights, commit, push.
//!
//! It runs the `git` binary. The project's Git layer (gix) fetches but cannot push, and no
//! well-kept pure-Rust crate pushes over smart HTTP and SSH yet; bootstrap runs once, on a
//! machine where the user has Git. Credentials never reach the command line or a file in the
//! checkout: git reads them from `GIT_CONFIG_*` environment variables of its own process
//! (`http.extraHeader` scoped to the URL, `http.sslCAInfo`), SSH gets its key and known_hosts
//! through `GIT_SSH_COMMAND`, and the user's credential helpers are switched off so nothing is
//! stored. Git's messages are read in the C locale and turned into errors that name the flag
//! to change.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Context as _;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;

/// How git authenticates.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// HTTP basic auth `(username, password)`.
    pub basic: Option<(String, String)>,
    /// PEM CA bundle for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// SSH private key.
    pub private_key_file: Option<PathBuf>,
    /// SSH known_hosts.
    pub known_hosts_file: Option<PathBuf>,
}

/// A shallow checkout of one branch.
pub struct Checkout {
    dir: tempfile::TempDir,
    url: String,
    branch: String,
    auth: Auth,
    /// Whether the remote had the branch when cloned.
    pub branch_existed: bool,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("dir", &self.dir.path())
            .field("url", &self.url)
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

impl Checkout {
    /// Clones `branch` of `url` at depth 1; a repository without that branch (or an empty one)
    /// gives an empty checkout on a new branch of that name.
    ///
    /// # Errors
    /// git is missing, the server is unreachable, or the credentials are refused.
    pub fn clone(url: &str, branch: &str, auth: Auth) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kluctl-bootstrap-")
            .tempdir()
            .context("failed to create a temporary directory for the checkout")?;
        let mut c = Self {
            dir,
            url: url.to_owned(),
            branch: branch.to_owned(),
            auth,
            branch_existed: false,
        };
        let heads = c.run_remote(&["ls-remote", "--heads", url, &format!("refs/heads/{branch}")])?;
        c.branch_existed = !String::from_utf8_lossy(&heads.stdout).trim().is_empty();
        if c.branch_existed {
            let path = c.path().to_owned();
            c.run_remote(&[
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--single-branch",
                "--branch",
                branch,
                url,
                path.to_str().context("temporary directory is not UTF-8")?,
            ])?;
        } else {
            c.run(&["init", "--quiet", "--initial-branch", branch])?;
            c.run(&["remote", "add", "origin", url])?;
        }
        Ok(c)
    }

    /// The checkout's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The commit the branch is at (`None` before the first commit).
    ///
    /// # Errors
    /// git fails.
    pub fn head(&self) -> anyhow::Result<Option<String>> {
        let out = self.git(&["rev-parse", "--verify", "--quiet", "HEAD"]).output();
        let out = out.context("failed to run git")?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    /// Checks that the credentials may push to the branch, before anything is changed: a dry run
    /// asks the server for its receive-pack service, which it grants only to writers.
    ///
    /// # Errors
    /// The server refuses.
    pub fn check_push_rights(&self) -> anyhow::Result<()> {
        if self.head()?.is_none() {
            // Nothing to push yet: the real push finds out.
            return Ok(());
        }
        self.run_remote(&["push", "--dry-run", "--quiet", "origin", &self.refspec()])
            .map(drop)
    }

    /// Writes the files (paths relative to the checkout) and commits them when anything
    /// changed; returns whether it committed.
    ///
    /// # Errors
    /// A file cannot be written or git fails.
    pub fn commit(
        &self,
        files: &[(String, String)],
        message: &str,
        author: (&str, &str),
    ) -> anyhow::Result<bool> {
        for (rel, text) in files {
            let p = self.path().join(rel);
            if let Some(parent) = p.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::write(&p, text)?;
        }
        let mut add = vec!["add", "--"];
        add.extend(files.iter().map(|(rel, _)| rel.as_str()));
        self.run(&add)?;
        let staged = self
            .git(&["diff", "--cached", "--quiet"])
            .status()
            .context("failed to run git")?;
        if staged.success() {
            return Ok(false);
        }
        let (name, email) = author;
        self.git(&["commit", "--quiet", "--no-verify", "-m", message])
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email)
            .output()
            .context("failed to run git")
            .and_then(|o| self.checked(&["commit"], o))?;
        Ok(true)
    }

    /// Pushes the branch.
    ///
    /// # Errors
    /// The server refuses (a protected branch names `--branch`), or the branch moved meanwhile.
    pub fn push(&self) -> anyhow::Result<()> {
        self.run_remote(&["push", "--quiet", "origin", &self.refspec()])
            .map(drop)
    }

    fn refspec(&self) -> String {
        format!("HEAD:refs/heads/{}", self.branch)
    }

    /// `git` in the checkout, with the credentials in its environment and nothing of the user's
    /// credential helpers, prompts or hooks.
    fn git(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.current_dir(self.path())
            .args(args)
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS");
        let mut config: Vec<(String, String)> = vec![
            ("credential.helper".to_owned(), String::new()),
            ("core.hooksPath".to_owned(), "/dev/null".to_owned()),
            ("advice.detachedHead".to_owned(), "false".to_owned()),
        ];
        if let Some((user, password)) = &self.auth.basic {
            let token = BASE64_STANDARD.encode(format!("{user}:{password}"));
            config.push((
                format!("http.{}.extraHeader", self.url),
                format!("Authorization: Basic {token}"),
            ));
        }
        if let Some(ca) = &self.auth.ca_file {
            config.push(("http.sslCAInfo".to_owned(), ca.display().to_string()));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        if let Some(key) = &self.auth.private_key_file {
            let mut ssh = format!(
                "ssh -o BatchMode=yes -o IdentitiesOnly=yes -i {}",
                shell_quote(&key.display().to_string())
            );
            if let Some(kh) = &self.auth.known_hosts_file {
                let _ = write!(
                    ssh,
                    " -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
                    shell_quote(&kh.display().to_string())
                );
            }
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = self.git(args).output().map_err(|e| missing_git(&e))?;
        self.checked(args, out)
    }

    /// Like [`Self::run`], for commands that talk to the server: their failures are explained.
    fn run_remote(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = self.git(args).output().map_err(|e| missing_git(&e))?;
        if out.status.success() {
            return Ok(out);
        }
        let stderr = redact(&String::from_utf8_lossy(&out.stderr), &self.auth);
        Err(explain(&self.url, &self.branch, args[0], &stderr))
    }

    fn checked(&self, args: &[&str], out: Output) -> anyhow::Result<Output> {
        anyhow::ensure!(
            out.status.success(),
            "git {} failed: {}",
            args.join(" "),
            redact(String::from_utf8_lossy(&out.stderr).trim(), &self.auth)
        );
        Ok(out)
    }
}

fn missing_git(e: &std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "kluctl bootstrap git runs the git binary to push, and there is no 'git' on PATH: \
             install Git (e.g. 'apt install git') and run again"
        )
    } else {
        anyhow::anyhow!("failed to run git: {e}")
    }
}

/// The error for a failed `op` (ls-remote, clone, push) against `url`, from git's stderr.
fn explain(url: &str, branch: &str, op: &str, stderr: &str) -> anyhow::Error {
    let detail = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .collect::<Vec<_>>()
        .join("; ");
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("[remote rejected]")
        || lower.contains("protected branch")
        || lower.contains("pre-receive hook declined")
    {
        return anyhow::anyhow!(
            "{url} refused the push to branch '{branch}' (--branch {branch}): {detail}. The branch \
             is probably protected: allow these credentials to push to it, or bootstrap onto \
             another branch with --branch. Nothing was changed in the cluster"
        );
    }
    if lower.contains("[rejected]") || lower.contains("non-fast-forward") || lower.contains("fetch first") {
        return anyhow::anyhow!(
            "branch '{branch}' of {url} moved while bootstrapping (someone pushed meanwhile): run \
             kluctl bootstrap git again. Nothing was changed in the cluster"
        );
    }
    if lower.contains("authentication failed")
        || lower.contains("could not read username")
        || lower.contains("could not read password")
        || lower.contains("returned error: 401")
        || lower.contains("permission denied")
    {
        return anyhow::anyhow!(
            "{url} refused the credentials ({op}): {detail}. Check --username/--password (or \
             KLUCTL_PASSWORD) for HTTP(S), --private-key-file for SSH"
        );
    }
    if lower.contains("returned error: 403") {
        let what = if op == "push" { "push to" } else { "read" };
        return anyhow::anyhow!(
            "{url} does not let these credentials {what} the repository ({op}): {detail}. \
             bootstrap needs rights to push to branch '{branch}'"
        );
    }
    if lower.contains("certificate") || lower.contains("ssl") {
        return anyhow::anyhow!(
            "the TLS connection to {url} failed ({op}): {detail}. Pass the CA that signs the \
             server's certificate with --ca-file"
        );
    }
    if lower.contains("host key verification failed") {
        return anyhow::anyhow!(
            "the SSH host key of {url} is not in the known hosts ({op}): {detail}. Pass them with \
             --known-hosts-file"
        );
    }
    anyhow::anyhow!("git {op} of {url} failed: {detail}")
}

/// `text` without the password (git does not print it, but a server's message might echo it).
fn redact(text: &str, auth: &Auth) -> String {
    match &auth.basic {
        Some((_, p)) if !p.is_empty() => text.replace(p.as_str(), "***"),
        _ => text.to_owned(),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_push_names_the_branch_flag() {
        let e = explain(
            "https://h/r.git",
            "main",
            "push",
            " ! [remote rejected] HEAD -> main (pre-receive hook declined)\nerror: failed to push some refs",
        );
        let msg = e.to_string();
        assert!(
            msg.contains("--branch main") && msg.contains("protected"),
            "{msg}"
        );
        assert!(msg.contains("Nothing was changed in the cluster"), "{msg}");
    }

    #[test]
    fn refused_credentials_name_the_credential_flags() {
        let e = explain(
            "https://h/r.git",
            "main",
            "ls-remote",
            "fatal: Authentication failed for 'https://h/r.git/'",
        );
        assert!(e.to_string().contains("--username/--password"), "{e}");
        let e = explain(
            "https://h/r.git",
            "main",
            "push",
            "fatal: unable to access: The requested URL returned error: 403",
        );
        assert!(e.to_string().contains("push to"), "{e}");
    }

    #[test]
    fn passwords_are_redacted_from_git_messages() {
        let auth = Auth {
            basic: Some(("u".to_owned(), "s3cret".to_owned())),
            ..Auth::default()
        };
        assert_eq!(
            redact("remote: bad password s3cret", &auth),
            "remote: bad password ***"
        );
    }
}
