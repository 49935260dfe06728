//! The KluctlDeployment controller's source cache against the real local git server (lighttpd +
//! git-http-backend with basic auth, started by `e2e/scripts/servers.sh`): many concurrent
//! checkouts of one commit cost one fetch, the refs are listed on every call, and the
//! credentials come from Kluctl's `spec.credentials.git` rules.
//!
//! Request counts come from the server's request log (`upload_pack_posts`): with protocol v2
//! over HTTP both ls-refs and fetch are POSTs to `git-upload-pack`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use e2e::{Env, GitRepo, unique_name, upload_pack_posts};
use gitops_git::{GitCredentialRule, GitCredentialRules, KluctlGitSecret};
use kluctl_controller::source::cache::{DEFAULT_MAX_BYTES, SourceCache};

/// Removes the bare repository and its work tree when the test ends.
struct RemoveRepo(Vec<PathBuf>);

impl Drop for RemoveRepo {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs_err::remove_dir_all(path);
        }
    }
}

fn create_repo(env: &Env, prefix: &str) -> anyhow::Result<(GitRepo, RemoveRepo)> {
    let name = unique_name(prefix);
    let repos = PathBuf::from(env.get("E2E_GIT_REPOS")?);
    let guard = RemoveRepo(vec![
        repos.join(format!("{name}.git")),
        repos.join(format!(".work-{name}")),
    ]);
    Ok((GitRepo::create(env, &name)?, guard))
}

/// The rule a KluctlDeployment with `credentials.git: [{host: <auth server>, secretRef}]` gets.
fn rules_for(env: &Env, url: &str) -> anyhow::Result<GitCredentialRules> {
    let data = BTreeMap::from([
        (
            "username".to_owned(),
            env.get("E2E_GIT_USERNAME")?.as_bytes().to_vec(),
        ),
        (
            "password".to_owned(),
            env.get("E2E_GIT_PASSWORD")?.as_bytes().to_vec(),
        ),
    ]);
    let host = GitCredentialRule::host_of(url).expect("the URL has a host");
    let rule = GitCredentialRule::kluctl(&host, None, KluctlGitSecret::parse(&data)?)?;
    Ok([rule].into_iter().collect())
}

#[test]
fn concurrent_checkouts_of_one_commit_fetch_it_once_with_kluctl_credentials() -> anyhow::Result<()> {
    let env = Env::load()?;
    let (repo, _cleanup) = create_repo(&env, "src-cache")?;
    let first = repo.commit(&[("deploy/values.yaml", "color: red\n")], "red")?;
    let url = format!("{}/{}.git", env.get("E2E_GIT_HTTP_AUTH_URL")?, repo.name);
    let rules = rules_for(&env, &url)?;
    let dir = tempfile::tempdir()?;
    let cache = SourceCache::new(dir.path(), DEFAULT_MAX_BYTES);

    // Without credentials the server refuses, and the error names the URL, not a password.
    let err = cache
        .git_checkout(&url, None, &GitCredentialRules::default())
        .expect_err("the repository needs credentials");
    println!("e2e: expected error: {err}");
    assert!(err.to_string().contains(&repo.name), "{err}");
    assert!(!err.to_string().contains(env.get("E2E_GIT_PASSWORD")?), "{err}");

    // Cost of one cold checkout (ls-refs + fetch) and of a warm one (ls-refs only).
    let before = upload_pack_posts(&env, &repo.name)?;
    let cold = cache.git_checkout(&url, None, &rules)?;
    let after_cold = upload_pack_posts(&env, &repo.name)?;
    let warm = cache.git_checkout(&url, None, &rules)?;
    let after_warm = upload_pack_posts(&env, &repo.name)?;
    assert_eq!(
        (cold.revision.as_str(), warm.dir.as_path()),
        (first.as_str(), cold.dir.as_path())
    );
    let list_cost = after_warm - after_cold;
    let fetch_cost = (after_cold - before) - list_cost;
    assert!(fetch_cost >= 1, "a cold checkout fetches");

    // A new commit: the refs are listed on every call, and N concurrent callers fetch it once.
    let second = repo.commit(&[("deploy/values.yaml", "color: blue\n")], "blue")?;
    let threads = 8;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let before = upload_pack_posts(&env, &repo.name)?;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (cache, url, rules, barrier) = (cache.clone(), url.clone(), rules.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.git_checkout(&url, None, &rules)
            })
        })
        .collect();
    let checkouts = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect::<Result<Vec<_>, _>>()?;
    let posts = upload_pack_posts(&env, &repo.name)? - before;
    for c in &checkouts {
        assert_eq!(c.revision, second);
        assert_eq!(c.dir, checkouts[0].dir);
    }
    assert_eq!(
        fs_err::read_to_string(checkouts[0].dir.join("deploy/values.yaml"))?,
        "color: blue\n"
    );
    assert_eq!(
        posts,
        threads * list_cost + fetch_cost,
        "{threads} concurrent checkouts: one ref listing each, one fetch in all"
    );

    // After a restart (a new cache over the same directory) the entries are found on disk and
    // collected under a cap of zero: nothing pins them in the new process.
    drop((cold, warm, checkouts));
    let stats = SourceCache::new(dir.path(), 0).gc();
    assert_eq!(stats.removed, 2, "{stats:?}");
    Ok(())
}
