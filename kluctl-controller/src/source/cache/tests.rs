//! Tests of the source cache: pins, LRU order, the cap and the TTL on hand-made entries; one
//! download per artifact digest against a loopback HTTP server; fresh refs and pinned git
//! checkouts against a local repository.

use super::*;
use crate::source::artifact::tests::{REV, artifact, fast, ok, project, serve, sha256};
use std::sync::atomic::Ordering;

/// An artifact entry of `size` bytes (one file) named by a digest made of `c`.
fn entry(cache: &SourceCache, c: char, size: usize) -> PathBuf {
    let path = cache.artifacts_dir().join(c.to_string().repeat(64));
    fs_err::create_dir_all(&path).unwrap();
    fs_err::write(path.join("data"), vec![b'x'; size]).unwrap();
    path
}

/// Records `path` as last used at `at`.
fn used_at(cache: &SourceCache, path: &Path, at: SystemTime) {
    let mut state = cache.inner.state.lock().unwrap();
    state.entry(path.to_path_buf()).or_default().last_used = Some(at);
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

#[test]
fn gc_removes_least_recently_used_entries_until_under_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), 250);
    let (a, b, c) = (
        entry(&cache, 'a', 100),
        entry(&cache, 'b', 100),
        entry(&cache, 'c', 100),
    );
    used_at(&cache, &b, ago(30));
    used_at(&cache, &a, ago(20));
    used_at(&cache, &c, ago(10));

    let stats = cache.gc();
    assert_eq!(
        stats,
        GcStats {
            removed: 1,
            freed_bytes: 100,
            kept: 2,
            kept_bytes: 200
        }
    );
    assert!(!b.exists(), "the least recently used entry goes first");
    assert!(a.exists() && c.exists());
    assert_eq!(cache.gc().removed, 0, "under the cap nothing more goes");
}

#[test]
fn pinned_entries_survive_any_cap_and_go_once_released() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), 0);
    let (a, b) = (entry(&cache, 'a', 10), entry(&cache, 'b', 10));
    let pin_a = cache.pin(&a);
    let pin_a_again = cache.pin(&a);

    let stats = cache.gc();
    assert_eq!((stats.removed, stats.kept, stats.kept_bytes), (1, 1, 10));
    assert!(a.exists() && !b.exists());
    drop(pin_a);
    assert_eq!(cache.gc().removed, 0, "one of two pins is still held");
    drop(pin_a_again);
    assert_eq!(cache.gc().removed, 1);
    assert!(!a.exists());
}

#[test]
fn entries_unused_longer_than_the_ttl_go_even_under_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), u64::MAX).with_ttl(Duration::from_secs(60));
    let (old, fresh) = (entry(&cache, 'a', 10), entry(&cache, 'b', 10));
    used_at(&cache, &old, ago(120));
    used_at(&cache, &fresh, ago(5));
    let stats = cache.gc();
    assert_eq!((stats.removed, stats.kept), (1, 1));
    assert!(!old.exists() && fresh.exists());
}

#[test]
fn old_leftovers_are_removed_and_work_in_progress_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), u64::MAX).with_ttl(Duration::from_secs(60));
    let key_dir = cache.git_dir().join("example.com-repo-0123456789abcdef");
    let stale = key_dir.join(".checkout-stale");
    let busy = key_dir.join(".checkout-busy");
    let stale_file = cache.artifacts_dir().join(".artifact-stale");
    fs_err::create_dir_all(&stale).unwrap();
    fs_err::create_dir_all(&busy).unwrap();
    fs_err::create_dir_all(cache.artifacts_dir()).unwrap();
    fs_err::write(&stale_file, "partial").unwrap();
    for old in [&stale, &stale_file] {
        fs_err::File::open(old)
            .unwrap()
            .file()
            .set_modified(ago(3600))
            .unwrap();
    }
    let stats = cache.gc();
    assert_eq!(stats.freed_bytes, 7);
    assert!(!stale.exists() && !stale_file.exists());
    assert!(busy.exists(), "a young temporary may be a fetch in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_one_digest_download_it_once() {
    let body = project();
    let (addr, count) = serve(vec![ok(&body)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), 0);
    let a = artifact(
        format!("http://{addr}/gitrepository/ns/app/0123.tar.gz"),
        format!("sha256:{}", sha256(&body)),
    );
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (cache, a) = (cache.clone(), a.clone());
            tokio::spawn(async move { cache.artifact(&a, &fast()).await })
        })
        .collect();
    let mut checkouts = Vec::new();
    for task in tasks {
        checkouts.push(task.await.unwrap().unwrap());
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "one download for six callers");
    let expected = cache.artifacts_dir().join(sha256(&body));
    for c in &checkouts {
        assert_eq!(c.dir, expected);
        assert_eq!(c.revision, REV);
    }
    assert_eq!(
        fs_err::read_to_string(expected.join(".kluctl.yaml")).unwrap(),
        "targets: []\n"
    );
    // A cap of zero bytes: only the pins keep the entry.
    let last = checkouts.pop();
    drop(checkouts);
    assert_eq!(cache.gc().removed, 0, "one checkout still holds it");
    drop(last);
    assert_eq!(cache.gc().removed, 1);
    assert!(!expected.exists());
}

#[tokio::test]
async fn an_unusable_digest_fails_before_any_download() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), u64::MAX);
    let a = artifact("http://127.0.0.1:9/x.tar.gz".into(), "md5:abc".into());
    let err = cache.artifact(&a, &fast()).await.unwrap_err();
    assert!(matches!(err, ArtifactError::InvalidDigest { .. }), "{err:?}");
    assert_eq!(err.reason(), "ArtifactFailed");
}

/// Runs the git CLI (a test dependency, as for the git layer's own tests) in `dir`.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git must be installed for this test");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit(repo: &Path, color: &str) -> String {
    fs_err::write(repo.join("values.yaml"), format!("color: {color}\n")).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", color]);
    git(repo, &["rev-parse", "HEAD"])
}

#[test]
fn git_checkouts_see_new_commits_and_stay_pinned_while_held() {
    let origin = tempfile::tempdir().unwrap();
    git(origin.path(), &["init", "-q", "-b", "main"]);
    let red = commit(origin.path(), "red");
    let url = origin.path().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), 0);
    let rules = GitCredentialRules::default();

    let first = cache.git_checkout(&url, None, &rules).unwrap();
    assert_eq!(first.revision, red);
    assert_eq!(first.reference.as_deref(), Some("refs/heads/main"));
    assert_eq!(
        fs_err::read_to_string(first.dir.join("values.yaml")).unwrap(),
        "color: red\n"
    );

    let blue = commit(origin.path(), "blue");
    let second = cache.git_checkout(&url, None, &rules).unwrap();
    assert_eq!(second.revision, blue, "the refs are listed again on every call");
    assert_ne!(first.dir, second.dir);

    let by_commit = GitRef {
        commit: Some(red.clone()),
        ..GitRef::default()
    };
    let again = cache.git_checkout(&url, Some(&by_commit), &rules).unwrap();
    assert_eq!(
        (again.dir.clone(), again.reference.clone()),
        (first.dir.clone(), None)
    );

    // Cap zero: only pins keep entries.
    assert_eq!(cache.gc().removed, 0);
    drop((first, again));
    let stats = cache.gc();
    assert_eq!(stats.removed, 1);
    assert!(second.dir.exists());
    drop(second);
    assert_eq!(cache.gc().removed, 1);
}

#[test]
fn renders_with_git_options_pin_their_checkouts() {
    let origin = tempfile::tempdir().unwrap();
    git(origin.path(), &["init", "-q", "-b", "main"]);
    let red = commit(origin.path(), "red");
    let url = origin.path().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), 0);

    let render = GitCache::new(cache.git_dir(), &BTreeMap::new())
        .with_options(cache.git_options(GitCredentialRules::default()));
    let dir = render.checkout_commit(&url, &red).unwrap();
    assert_eq!(cache.gc().removed, 0, "pinned by the render's cache");
    drop(render);
    assert_eq!(cache.gc().removed, 1);
    assert!(!dir.exists());
}
