//! The git module of the source-controller against the real local git servers started by
//! `e2e/scripts/servers.sh`: lighttpd + git-http-backend (http, basic auth, https with the test
//! CA, mTLS), git daemon and sshd.
//!
//! Each test builds its own bare repository in `$E2E_GIT_REPOS` with the git CLI and checks
//! revision strings byte for byte against `git rev-parse`, and checked-out file sets against
//! `git ls-tree`.
//!
//! ```text
//!   main:      c1 ── c2 ── c4          v1.0.0 (lightweight) = c1, v1.1.0 (annotated) = c2,
//!                     \                v2.0.0-rc.1 = c4, refs/pull/1/head = c3
//!   feature/x:         c3
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use e2e::{Env, git};
use gitops_api::source::v1::GitRepositoryRef;
use source_controller::credentials::Credentials;
use source_controller::git::{self, GitError, GitRef, Resolved};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A bare repository served by every test server; removed on drop.
struct Repo {
    name: String,
    bare: PathBuf,
    _work: tempfile::TempDir,
    /// Commit ids by label (c1..c4) and the annotated tag object.
    ids: BTreeMap<&'static str, String>,
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir_all(&self.bare);
    }
}

impl Repo {
    /// The history in the module doc, pushed to `$E2E_GIT_REPOS/<unique>.git`.
    fn create(env: &Env, prefix: &str) -> anyhow::Result<Repo> {
        let work = tempfile::tempdir()?;
        let w = work.path();
        let write = |rel: &str, content: &str| -> anyhow::Result<()> {
            let path = w.join(rel);
            if let Some(parent) = path.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::write(path, content)?;
            Ok(())
        };
        let mut ids = BTreeMap::new();
        git(w, &["init", "-q", "."])?;
        write("README.md", "# demo\n")?;
        write("deploy/app.yaml", "kind: ConfigMap\n")?;
        std::os::unix::fs::symlink("README.md", w.join("link.md"))?;
        git(w, &["add", "-A"])?;
        git(w, &["commit", "-q", "-m", "first commit"])?;
        ids.insert("c1", git(w, &["rev-parse", "HEAD"])?);
        git(w, &["tag", "v1.0.0"])?;

        write("deploy/more.yaml", "kind: Secret\n")?;
        git(w, &["add", "-A"])?;
        git(w, &["commit", "-q", "-m", "second commit"])?;
        ids.insert("c2", git(w, &["rev-parse", "HEAD"])?);
        git(w, &["tag", "-a", "v1.1.0", "-m", "release 1.1.0"])?;
        ids.insert("v1.1.0-object", git(w, &["rev-parse", "v1.1.0"])?);

        git(w, &["checkout", "-q", "-b", "feature/x"])?;
        write("feature.txt", "feature\n")?;
        git(w, &["add", "-A"])?;
        git(w, &["commit", "-q", "-m", "feature commit"])?;
        ids.insert("c3", git(w, &["rev-parse", "HEAD"])?);
        git(w, &["update-ref", "refs/pull/1/head", "HEAD"])?;

        git(w, &["checkout", "-q", "main"])?;
        write("README.md", "# demo, updated\n")?;
        git(
            w,
            &[
                "commit",
                "-q",
                "-am",
                "fourth commit with a subject line that is longer than fifty characters",
            ],
        )?;
        ids.insert("c4", git(w, &["rev-parse", "HEAD"])?);
        git(w, &["tag", "v2.0.0-rc.1"])?;

        let name = format!("{}.git", e2e::unique_name(prefix));
        let bare = Path::new(env.get("E2E_GIT_REPOS")?).join(&name);
        git(w, &["init", "-q", "--bare", &bare.to_string_lossy()])?;
        git(w, &["push", "-q", &bare.to_string_lossy(), "refs/*:refs/*"])?;
        Ok(Repo {
            name,
            bare,
            _work: work,
            ids,
        })
    }

    fn id(&self, label: &str) -> &str {
        &self.ids[label]
    }

    /// The repository URL under the base URL in env variable `base`.
    fn url(&self, env: &Env, base: &str) -> anyhow::Result<String> {
        Ok(format!("{}/{}", env.get(base)?, self.name))
    }

    /// `git ls-tree -r --name-only <commit>`, as a set.
    fn tree(&self, commit: &str) -> anyhow::Result<BTreeSet<String>> {
        Ok(git(&self.bare, &["ls-tree", "-r", "--name-only", commit])?
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// Every file and symlink below `dir` (relative, `/`-separated), without `.git/`.
fn files_in(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> anyhow::Result<()> {
        for entry in fs_err::read_dir(dir)? {
            let path = entry?.path();
            let rel = path.strip_prefix(root)?.to_string_lossy().to_string();
            if rel == ".git" {
                continue;
            }
            let meta = fs_err::symlink_metadata(&path)?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else {
                out.insert(rel);
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

fn data(pairs: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
}

fn file(env: &Env, var: &str) -> anyhow::Result<Vec<u8>> {
    Ok(fs_err::read(env.get(var)?)?)
}

fn spec(f: impl FnOnce(&mut GitRepositoryRef)) -> GitRepositoryRef {
    let mut s = GitRepositoryRef::default();
    f(&mut s);
    s
}

fn resolve(url: &str, s: Option<&GitRepositoryRef>, auth: &Credentials) -> Result<Resolved, GitError> {
    git::resolve(url, &GitRef::from_spec(s)?, auth, TIMEOUT)
}

/// Resolves `s`, checks out the commit and compares the file set with `git ls-tree`; returns
/// the revision.
fn resolve_and_check_out(
    repo: &Repo,
    url: &str,
    s: Option<&GitRepositoryRef>,
    auth: &Credentials,
) -> anyhow::Result<String> {
    let resolved = resolve(url, s, auth).with_context(|| format!("resolving {s:?} at {url}"))?;
    let dest = tempfile::tempdir()?;
    let dest = dest.path().join("checkout");
    let done = git::checkout(url, &resolved, auth, &dest, TIMEOUT)
        .with_context(|| format!("checking out {} from {url}", resolved.commit))?;
    assert_eq!(done.commit, resolved.commit);
    assert_eq!(
        files_in(&dest)?,
        repo.tree(&resolved.commit)?,
        "files of {}",
        resolved.commit
    );
    Ok(resolved.revision())
}

#[test]
fn revisions_over_anonymous_http_match_flux_byte_for_byte() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "revisions")?;
    let url = repo.url(&env, "E2E_GIT_HTTP_URL")?;
    let auth = Credentials::none();
    let (c1, c2, c3, c4) = (repo.id("c1"), repo.id("c2"), repo.id("c3"), repo.id("c4"));
    let cases: Vec<(GitRepositoryRef, String)> = vec![
        (
            spec(|s| s.branch = Some("main".into())),
            format!("main@sha1:{c4}"),
        ),
        (
            spec(|s| s.branch = Some("feature/x".into())),
            format!("feature/x@sha1:{c3}"),
        ),
        (
            spec(|s| s.tag = Some("v1.0.0".into())),
            format!("v1.0.0@sha1:{c1}"),
        ),
        (
            spec(|s| s.tag = Some("v1.1.0".into())),
            format!("v1.1.0@sha1:{c2}"),
        ),
        (
            spec(|s| s.semver = Some(">=1.0.0".into())),
            format!("v1.1.0@sha1:{c2}"),
        ),
        (
            spec(|s| s.semver = Some("~1.0".into())),
            format!("v1.0.0@sha1:{c1}"),
        ),
        (
            spec(|s| s.semver = Some(">=2.0.0-0".into())),
            format!("v2.0.0-rc.1@sha1:{c4}"),
        ),
        (
            spec(|s| s.name = Some("refs/heads/main".into())),
            format!("refs/heads/main@sha1:{c4}"),
        ),
        (
            spec(|s| s.name = Some("refs/tags/v1.1.0".into())),
            format!("refs/tags/v1.1.0@sha1:{c2}"),
        ),
        (
            spec(|s| s.name = Some("refs/pull/1/head".into())),
            format!("refs/pull/1/head@sha1:{c3}"),
        ),
        (spec(|s| s.commit = Some(c2.into())), format!("sha1:{c2}")),
        (
            spec(|s| {
                s.commit = Some(c2.into());
                s.branch = Some("main".into());
            }),
            format!("main@sha1:{c2}"),
        ),
    ];
    for (s, expected) in &cases {
        let revision = resolve_and_check_out(&repo, &url, Some(s), &auth)?;
        assert_eq!(&revision, expected, "spec.ref {s:?}");
        println!("e2e: {s:?} -> {revision}");
    }
    // The annotated tag resolves to its commit, not to the tag object.
    assert_ne!(repo.id("v1.1.0-object"), c2);
    Ok(())
}

#[test]
fn checkout_message_is_the_flux_short_message() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "message")?;
    let url = repo.url(&env, "E2E_GIT_HTTP_URL")?;
    let resolved = resolve(
        &url,
        Some(&spec(|s| s.branch = Some("main".into()))),
        &Credentials::none(),
    )?;
    let dest = tempfile::tempdir()?;
    let done = git::checkout(
        &url,
        &resolved,
        &Credentials::none(),
        &dest.path().join("c"),
        TIMEOUT,
    )?;
    assert_eq!(
        done.message.as_deref(),
        Some("fourth commit with a subject line that is longer t...")
    );
    Ok(())
}

#[test]
fn missing_refs_name_the_ref_and_the_url() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "missing")?;
    let url = repo.url(&env, "E2E_GIT_HTTP_URL")?;
    let auth = Credentials::none();

    // No spec.ref means branch master, which this repository does not have.
    let err = resolve(&url, None, &auth).expect_err("no master branch");
    println!("e2e: expected error: {err}");
    assert!(matches!(err, GitError::RefNotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("branch 'master' not found in '{url}'"));
    assert_eq!(err.reason(), "GitOperationFailed");

    let err = resolve(&url, Some(&spec(|s| s.tag = Some("v9.9.9".into()))), &auth).expect_err("no tag");
    println!("e2e: expected error: {err}");
    assert_eq!(err.to_string(), format!("tag 'v9.9.9' not found in '{url}'"));

    let err = resolve(&url, Some(&spec(|s| s.semver = Some(">=5".into()))), &auth).expect_err("no match");
    println!("e2e: expected error: {err}");
    assert!(matches!(err, GitError::NoSemverMatch { .. }), "{err:?}");

    let err = resolve(
        &url,
        Some(&spec(|s| {
            s.commit = Some(repo.id("c1").into());
            s.branch = Some("gone".into());
        })),
        &auth,
    )
    .expect_err("no such branch");
    println!("e2e: expected error: {err}");
    assert_eq!(err.to_string(), format!("branch 'gone' not found in '{url}'"));

    // A commit the server does not have fails at checkout.
    let unknown = Resolved {
        reference: None,
        commit: "0123456789abcdef0123456789abcdef01234567".to_string(),
    };
    let dest = tempfile::tempdir()?;
    let err =
        git::checkout(&url, &unknown, &auth, &dest.path().join("c"), TIMEOUT).expect_err("unknown commit");
    println!("e2e: expected error: {err}");
    assert_eq!(err.reason(), "GitOperationFailed", "{err}");
    Ok(())
}

#[test]
fn empty_repository_is_reported_as_such() -> anyhow::Result<()> {
    let env = Env::load()?;
    let name = format!("{}.git", e2e::unique_name("empty"));
    let bare = Path::new(env.get("E2E_GIT_REPOS")?).join(&name);
    git(Path::new("/"), &["init", "-q", "--bare", &bare.to_string_lossy()])?;
    let url = format!("{}/{name}", env.get("E2E_GIT_HTTP_URL")?);
    let result = resolve(
        &url,
        Some(&spec(|s| s.branch = Some("main".into()))),
        &Credentials::none(),
    );
    let _ = fs_err::remove_dir_all(&bare);
    let err = result.expect_err("empty");
    println!("e2e: expected error: {err}");
    assert!(matches!(err, GitError::EmptyRepository { .. }), "{err:?}");
    assert_eq!(err.reason(), "EmptyGitRepository");
    Ok(())
}

#[test]
fn basic_auth_over_http_works_and_wrong_passwords_fail_as_authentication() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "basic")?;
    let url = repo.url(&env, "E2E_GIT_HTTP_AUTH_URL")?;
    let user = env.get("E2E_GIT_USERNAME")?.as_bytes().to_vec();
    let password = env.get("E2E_GIT_PASSWORD")?;
    let main = spec(|s| s.branch = Some("main".into()));

    let auth = Credentials::from_secret_data(
        &url,
        &data(&[("username", user.clone()), ("password", password.into())]),
    )?;
    assert!(!format!("{auth:?}").contains(password));
    let revision = resolve_and_check_out(&repo, &url, Some(&main), &auth)?;
    assert_eq!(revision, format!("main@sha1:{}", repo.id("c4")));

    let wrong = "definitely-wrong-password";
    let bad = Credentials::from_secret_data(&url, &data(&[("username", user), ("password", wrong.into())]))?;
    let err = resolve(&url, Some(&main), &bad).expect_err("wrong password");
    println!("e2e: expected error: {err}");
    assert!(
        matches!(err, GitError::Remote(gitops_git::Error::Authentication { .. })),
        "{err:?}"
    );
    assert_eq!(err.reason(), "AuthenticationFailed");
    assert!(!err.to_string().contains(wrong), "{err}");
    assert!(!format!("{err:?}").contains(wrong), "{err:?}");

    let err = resolve(&url, Some(&main), &Credentials::none()).expect_err("no credentials");
    println!("e2e: expected error: {err}");
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");

    let dest = tempfile::tempdir()?;
    let resolved = Resolved {
        reference: Some("main".into()),
        commit: repo.id("c4").to_string(),
    };
    let err =
        git::checkout(&url, &resolved, &bad, &dest.path().join("c"), TIMEOUT).expect_err("wrong password");
    println!("e2e: expected error: {err}");
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    Ok(())
}

#[test]
fn https_trusts_only_the_ca_from_the_secret() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "https")?;
    let url = repo.url(&env, "E2E_GIT_HTTPS_URL")?;
    let main = spec(|s| s.branch = Some("main".into()));

    let with_ca = Credentials::from_secret_data(&url, &data(&[("ca.crt", file(&env, "E2E_TEST_CA")?)]))?;
    let revision = resolve_and_check_out(&repo, &url, Some(&main), &with_ca)?;
    assert_eq!(revision, format!("main@sha1:{}", repo.id("c4")));

    let legacy = Credentials::from_secret_data(&url, &data(&[("caFile", file(&env, "E2E_TEST_CA")?)]))?;
    resolve(&url, Some(&main), &legacy)?;

    let err = resolve(&url, Some(&main), &Credentials::none()).expect_err("test CA is not a platform root");
    println!("e2e: expected error: {err}");
    assert_eq!(err.reason(), "GitOperationFailed", "{err}");

    let other = Credentials::from_secret_data(&url, &data(&[("ca.crt", file(&env, "E2E_TEST_OTHER_CA")?)]))?;
    let err = resolve(&url, Some(&main), &other).expect_err("unrelated CA");
    println!("e2e: expected error: {err}");
    assert_eq!(err.reason(), "GitOperationFailed", "{err}");

    // Basic auth over https with the CA.
    let auth_url = repo.url(&env, "E2E_GIT_HTTPS_AUTH_URL")?;
    let auth = Credentials::from_secret_data(
        &auth_url,
        &data(&[
            ("ca.crt", file(&env, "E2E_TEST_CA")?),
            ("username", env.get("E2E_GIT_USERNAME")?.into()),
            ("password", env.get("E2E_GIT_PASSWORD")?.into()),
        ]),
    )?;
    resolve_and_check_out(&repo, &auth_url, Some(&main), &auth)?;
    Ok(())
}

#[test]
fn mtls_needs_the_client_certificate() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "mtls")?;
    let url = repo.url(&env, "E2E_GIT_MTLS_URL")?;
    let tag = spec(|s| s.tag = Some("v1.1.0".into()));
    let auth = Credentials::from_secret_data(
        &url,
        &data(&[
            ("ca.crt", file(&env, "E2E_TEST_CA")?),
            ("tls.crt", file(&env, "E2E_TLS_CLIENT_CERT")?),
            ("tls.key", file(&env, "E2E_TLS_CLIENT_KEY")?),
        ]),
    )?;
    let revision = resolve_and_check_out(&repo, &url, Some(&tag), &auth)?;
    assert_eq!(revision, format!("v1.1.0@sha1:{}", repo.id("c2")));

    let ca_only = Credentials::from_secret_data(&url, &data(&[("ca.crt", file(&env, "E2E_TEST_CA")?)]))?;
    let err = resolve(&url, Some(&tag), &ca_only).expect_err("no client certificate");
    println!("e2e: expected error: {err}");
    assert_eq!(err.reason(), "GitOperationFailed", "{err}");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    Ok(())
}

#[test]
fn git_daemon_serves_anonymous_fetches() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "daemon")?;
    let url = repo.url(&env, "E2E_GIT_DAEMON_URL")?;
    let revision = resolve_and_check_out(
        &repo,
        &url,
        Some(&spec(|s| s.semver = Some("^1".into()))),
        &Credentials::none(),
    )?;
    assert_eq!(revision, format!("v1.1.0@sha1:{}", repo.id("c2")));
    let revision = resolve_and_check_out(
        &repo,
        &url,
        Some(&spec(|s| s.commit = Some(repo.id("c3").into()))),
        &Credentials::none(),
    )?;
    assert_eq!(revision, format!("sha1:{}", repo.id("c3")));
    Ok(())
}

#[test]
fn ssh_checks_the_host_key_against_known_hosts() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "ssh")?;
    let url = repo.url(&env, "E2E_GIT_SSH_URL")?;
    let main = spec(|s| s.branch = Some("main".into()));
    let identity = file(&env, "E2E_SSH_IDENTITY")?;
    let auth = Credentials::from_secret_data(
        &url,
        &data(&[
            ("identity", identity.clone()),
            ("known_hosts", file(&env, "E2E_SSH_KNOWN_HOSTS")?),
        ]),
    )?;
    let revision = resolve_and_check_out(&repo, &url, Some(&main), &auth)?;
    assert_eq!(revision, format!("main@sha1:{}", repo.id("c4")));

    let wrong = Credentials::from_secret_data(
        &url,
        &data(&[
            ("identity", identity),
            ("known_hosts", file(&env, "E2E_SSH_KNOWN_HOSTS_WRONG")?),
        ]),
    )?;
    let err = resolve(&url, Some(&main), &wrong).expect_err("unknown host key");
    println!("e2e: expected error: {err}");
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    assert!(err.to_string().contains("Host key verification failed"), "{err}");
    Ok(())
}

#[test]
fn ssh_keys_with_a_passphrase_are_decrypted_without_prompting() -> anyhow::Result<()> {
    let env = Env::load()?;
    let repo = Repo::create(&env, "ssh-pass")?;
    let url = repo.url(&env, "E2E_GIT_SSH_URL")?;
    // The same key the server trusts, re-encrypted with a passphrase.
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("id");
    fs_err::write(&key, file(&env, "E2E_SSH_IDENTITY")?)?;
    // ssh-keygen refuses to touch a key file others can read.
    fs_err::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let status = Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "e2e passphrase", "-f"])
        .arg(&key)
        .status()?;
    assert!(status.success(), "ssh-keygen -p failed");
    let encrypted = fs_err::read(&key)?;
    let known_hosts = file(&env, "E2E_SSH_KNOWN_HOSTS")?;

    let auth = Credentials::from_secret_data(
        &url,
        &data(&[
            ("identity", encrypted.clone()),
            ("known_hosts", known_hosts.clone()),
            ("password", b"e2e passphrase".to_vec()),
        ]),
    )?;
    let revision = resolve_and_check_out(&repo, &url, Some(&spec(|s| s.tag = Some("v1.0.0".into()))), &auth)?;
    assert_eq!(revision, format!("v1.0.0@sha1:{}", repo.id("c1")));

    let err = Credentials::from_secret_data(
        &url,
        &data(&[("identity", encrypted), ("known_hosts", known_hosts)]),
    )
    .expect_err("passphrase missing");
    println!("e2e: expected error: {err}");
    assert_eq!(GitError::from(err).reason(), "AuthenticationFailed");
    Ok(())
}
