//! Tests of artifact fetching: URL override, digest parsing, every untar rule on hand-made
//! archives, and downloads from a minimal HTTP/1.1 server on 127.0.0.1:0.

use super::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncReadExt as _;

pub(crate) const REV: &str = "main@sha1:0123456789abcdef0123456789abcdef01234567";

// ---- archives -------------------------------------------------------------------------------

/// One hand-made tar entry; `name` is written raw into the header, so unsafe names are possible.
struct Entry {
    name: &'static str,
    kind: tar::EntryType,
    mode: u32,
    data: Vec<u8>,
    link: Option<&'static str>,
}

fn file(name: &'static str, data: &str) -> Entry {
    Entry {
        name,
        kind: tar::EntryType::Regular,
        mode: 0o600,
        data: data.as_bytes().to_vec(),
        link: None,
    }
}

fn dir(name: &'static str, mode: u32) -> Entry {
    Entry {
        name,
        kind: tar::EntryType::Directory,
        mode,
        data: Vec::new(),
        link: None,
    }
}

fn special(name: &'static str, kind: tar::EntryType, link: Option<&'static str>) -> Entry {
    Entry {
        name,
        kind,
        mode: 0o777,
        data: Vec::new(),
        link,
    }
}

fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        // Raw name bytes: `set_path` refuses `..` and absolute names, which these tests need.
        header.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_size(e.data.len() as u64);
        if let Some(link) = e.link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        builder.append(&header, e.data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn tar_gz(entries: &[Entry]) -> Vec<u8> {
    gzip(&tar_bytes(entries))
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    gitops_api::revision::lower_hex(&Sha256::digest(bytes))
}

/// Unpacks `archive` (written to a file) into `<tmp>/dest` with `limits`; returns the temp dir,
/// the destination and the result.
fn unpack(
    archive: &[u8],
    limits: UnpackLimits,
) -> (tempfile::TempDir, PathBuf, Result<Unpacked, ArtifactError>) {
    let tmp = tempfile::tempdir().unwrap();
    let archive_path = tmp.path().join("artifact.tar.gz");
    fs_err::write(&archive_path, archive).unwrap();
    let work = tmp.path().join("work");
    fs_err::create_dir(&work).unwrap();
    let dest = work.join("dest");
    let result = unpack_into_place(&archive_path, &dest, limits, REV);
    (tmp, dest, result)
}

/// Asserts that a failed unpack left nothing in the destination's directory (no destination,
/// no temporary directory).
fn assert_nothing_left(dest: &Path) {
    let left: Vec<_> = fs_err::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Regular files under `root`, relative, sorted, with contents.
fn tree(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in fs_err::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let meta = fs_err::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                assert!(meta.is_file(), "{} is not a regular file", path.display());
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, fs_err::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn mode_of(path: &Path) -> u32 {
    fs_err::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chain(e: &dyn std::error::Error) -> String {
    error_chain(e)
}

// ---- URL override ---------------------------------------------------------------------------

#[test]
fn effective_url_without_override_is_the_artifact_url() {
    let url = "http://source-controller.flux-system.svc.cluster.local./gitrepository/ns/app/abc.tar.gz";
    assert_eq!(effective_url(url, None).unwrap().as_str(), url);
    assert_eq!(effective_url(url, Some("")).unwrap().as_str(), url);
}

#[test]
fn effective_url_override_replaces_host_and_port() {
    let url =
        "http://source-controller.flux-system.svc.cluster.local.:8080/gitrepository/ns/app/abc.tar.gz?x=1";
    assert_eq!(
        effective_url(url, Some("localhost:9090")).unwrap().as_str(),
        "http://localhost:9090/gitrepository/ns/app/abc.tar.gz?x=1"
    );
    // Without a port the URL's port goes too, as Go's `u.Host = override` does.
    assert_eq!(
        effective_url(url, Some("127.0.0.1")).unwrap().as_str(),
        "http://127.0.0.1/gitrepository/ns/app/abc.tar.gz?x=1"
    );
    assert_eq!(
        effective_url(url, Some("[::1]:9090")).unwrap().as_str(),
        "http://[::1]:9090/gitrepository/ns/app/abc.tar.gz?x=1"
    );
}

#[test]
fn effective_url_refuses_bad_urls_and_overrides_without_leaking_credentials() {
    let e = effective_url("http://user:hunter2@exa mple/a.tar.gz", None).unwrap_err();
    assert!(matches!(e, UrlError::Artifact { .. }), "{e:?}");
    assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
    assert!(e.to_string().contains(URL_FIELD), "{e}");

    let e = effective_url("file:///etc/passwd", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported scheme 'file' in status.artifact.url 'file:///etc/passwd'; want http or https"
    );

    for bad in ["host/path", "user@host", "host:notaport", "host?q"] {
        let e = effective_url("http://a/b.tar.gz", Some(bad)).unwrap_err();
        assert!(matches!(e, UrlError::Override { .. }), "{bad}: {e:?}");
        assert!(e.to_string().contains(ENV_SOURCE_CONTROLLER_LOCALHOST), "{e}");
    }
}

#[test]
fn redact_drops_user_and_password() {
    assert_eq!(redact("http://u:p@host:1/a?b"), "http://host:1/a?b");
    assert_eq!(redact("http://u:p@ho st/a"), "http://ho st/a");
    assert_eq!(redact("http://host/a"), "http://host/a");
}

// ---- digest ---------------------------------------------------------------------------------

#[test]
fn parse_digest_accepts_sha256_with_or_without_algorithm() {
    let hex = sha256(b"x");
    assert_eq!(parse_digest(&format!("sha256:{hex}")), Ok(hex.clone()));
    assert_eq!(parse_digest(&hex), Ok(hex));
}

#[test]
fn parse_digest_refuses_empty_other_algorithms_and_bad_hex() {
    let hex = sha256(b"x");
    assert_eq!(parse_digest(""), Err(DigestProblem::Empty));
    assert_eq!(
        parse_digest(&format!("sha512:{hex}")),
        Err(DigestProblem::UnsupportedAlgorithm("sha512".into()))
    );
    assert_eq!(parse_digest("sha256:abc"), Err(DigestProblem::InvalidEncoding));
    assert_eq!(
        parse_digest(&format!("sha256:{}", hex.to_uppercase())),
        Err(DigestProblem::InvalidEncoding)
    );
    assert_eq!(parse_digest(&"g".repeat(64)), Err(DigestProblem::InvalidEncoding));
}

#[test]
fn retry_waits_double_up_to_the_maximum() {
    let policy = RetryPolicy::default();
    let waits: Vec<u64> = (0..6).map(|r| policy.wait(r).as_secs()).collect();
    assert_eq!(waits, [5, 10, 20, 30, 30, 30]);
    assert_eq!(policy.wait(u32::MAX), Duration::from_secs(30));
}

// ---- untar rules ----------------------------------------------------------------------------

#[test]
fn unpack_writes_files_and_dirs_with_flux_modes() {
    let mut exec = file("bin/run.sh", "#!/bin/sh\n");
    exec.mode = 0o755;
    let mut setuid = file("bin/suid", "s");
    setuid.mode = 0o4755;
    let archive = tar_gz(&[
        dir(".", 0o750),
        dir("bin", 0o500),
        exec,
        setuid,
        dir("deploy", 0o750),
        file("deploy/app.yaml", "a: 1\n"),
        // No directory entry for `nested/`: created on the way.
        file("./nested/deep/x.txt", "x"),
    ]);
    let (_tmp, dest, result) = unpack(&archive, UnpackLimits::default());
    let unpacked = result.unwrap();
    assert_eq!(unpacked, Unpacked { files: 4, bytes: 17 });
    assert_eq!(
        tree(&dest),
        [
            ("bin/run.sh".to_string(), "#!/bin/sh\n".to_string()),
            ("bin/suid".into(), "s".into()),
            ("deploy/app.yaml".into(), "a: 1\n".into()),
            ("nested/deep/x.txt".into(), "x".into()),
        ]
    );
    assert_eq!(mode_of(&dest), 0o750, "root takes the '.' entry's mode");
    assert_eq!(mode_of(&dest.join("bin")), 0o700, "dirs are 0700 | header mode");
    assert_eq!(mode_of(&dest.join("deploy")), 0o750);
    assert_eq!(mode_of(&dest.join("bin/run.sh")), 0o755);
    assert_eq!(mode_of(&dest.join("bin/suid")), 0o755, "setuid is dropped");
    assert_eq!(mode_of(&dest.join("deploy/app.yaml")), 0o600);
}

#[test]
fn unpack_refuses_names_escaping_the_destination_and_leaves_nothing() {
    for (name, problem) in [
        ("../escape", EntryProblem::Escapes),
        ("a/../../escape", EntryProblem::Escapes),
        ("..", EntryProblem::Escapes),
        ("a\\..\\escape", EntryProblem::Escapes),
        ("/etc/escape", EntryProblem::Absolute),
    ] {
        let archive = tar_gz(&[file("ok.txt", "fine"), file(name, "evil")]);
        let (tmp, dest, result) = unpack(&archive, UnpackLimits::default());
        match result {
            Err(ArtifactError::UnsafeEntry {
                entry,
                problem: got,
                revision,
            }) => {
                assert_eq!((entry.as_str(), got), (name, problem));
                assert_eq!(revision, REV);
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_nothing_left(&dest);
        assert!(!tmp.path().join("escape").exists());
    }
}

#[test]
fn unpack_skips_symlinks_and_pax_global_headers() {
    let mut global = special("pax_global_header", tar::EntryType::XGlobalHeader, None);
    global.data = b"52 comment=0123456789abcdef0123456789abcdef01234567\n".to_vec();
    let archive = tar_gz(&[
        global,
        special("link", tar::EntryType::Symlink, Some("/etc/passwd")),
        special("../outside-link", tar::EntryType::Symlink, Some("x")),
        file("real.txt", "r"),
    ]);
    let (_tmp, dest, result) = unpack(&archive, UnpackLimits::default());
    assert_eq!(result.unwrap().files, 1);
    assert!(fs_err::symlink_metadata(dest.join("link")).is_err());
    assert_eq!(tree(&dest), [("real.txt".to_string(), "r".to_string())]);
}

#[test]
fn unpack_refuses_hardlinks_devices_and_fifos() {
    for kind in [
        tar::EntryType::Link,
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        let link = (kind == tar::EntryType::Link).then_some("real.txt");
        let archive = tar_gz(&[file("real.txt", "r"), special("odd", kind, link)]);
        let (_tmp, dest, result) = unpack(&archive, UnpackLimits::default());
        let e = result.unwrap_err();
        assert!(
            matches!(&e, ArtifactError::UnsafeEntry { entry, problem: EntryProblem::UnsupportedType(_), .. } if entry == "odd"),
            "{kind:?}: {e:?}"
        );
        assert_eq!(e.reason(), "ArtifactFailed");
        assert_nothing_left(&dest);
    }
}

/// Found by the bad-input suite: a directory entry over an unpacked file failed with "failed to
/// write the unpacked tree", naming neither the entry nor the cause. Now the entry and the
/// operating system's words, without the temporary path.
#[test]
fn unpack_names_the_entry_that_cannot_be_written() {
    let archive = tar_gz(&[file("real.txt", "r"), dir("real.txt", 0o755)]);
    let (tmp, dest, result) = unpack(&archive, UnpackLimits::default());
    let e = result.unwrap_err();
    assert!(
        matches!(&e, ArtifactError::EntryWrite { entry, .. } if entry == "real.txt"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("entry 'real.txt' cannot be written: entity already exists"),
        "{text}"
    );
    assert!(!text.contains(&tmp.path().display().to_string()), "{text}");
    assert_eq!(e.reason(), "ArtifactFailed");
    assert_nothing_left(&dest);
}

#[test]
fn unpack_enforces_the_size_limit_across_files() {
    let archive = tar_gz(&[file("a", "123456"), file("b", "123456")]);
    let limits = UnpackLimits {
        max_bytes: 10,
        ..UnpackLimits::default()
    };
    let (_tmp, dest, result) = unpack(&archive, limits);
    let e = result.unwrap_err();
    assert!(
        matches!(&e, ArtifactError::TooLarge { entry, limit: 10, .. } if entry == "b"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "failed to unpack artifact of revision '{REV}': entry 'b' takes the unpacked size over the limit of 10 bytes"
        )
    );
    assert_nothing_left(&dest);

    // Exactly at the limit is fine.
    let limits = UnpackLimits {
        max_bytes: 12,
        ..UnpackLimits::default()
    };
    let (_tmp, _dest, result) = unpack(&archive, limits);
    assert_eq!(result.unwrap(), Unpacked { files: 2, bytes: 12 });
}

#[test]
fn unpack_caps_what_the_stream_expands_to_also_for_long_names_and_skipped_entries() {
    // A 1 MiB GNU long name is read whole by the tar reader before any per-file limit sees it;
    // the stream cap stops it (and a symlink's data, which is skipped, counts the same way).
    let long_name = Entry {
        name: "././@LongLink",
        kind: tar::EntryType::GNULongName,
        mode: 0o644,
        data: vec![b'a'; 1 << 20],
        link: None,
    };
    let archive = tar_gz(&[long_name, file("a", "x")]);
    let limits = UnpackLimits {
        max_bytes: 100,
        max_entries: 10,
    };
    assert!(limits.stream_bytes() < 1 << 20);
    let (_tmp, dest, result) = unpack(&archive, limits);
    let e = result.unwrap_err();
    assert!(chain(&e).contains("over the unpack limits"), "{}", chain(&e));
    assert_nothing_left(&dest);
}

#[test]
fn unpack_enforces_the_entry_limit() {
    let archive = tar_gz(&[dir("d", 0o755), file("d/a", "a"), file("d/b", "b")]);
    let limits = UnpackLimits {
        max_entries: 2,
        ..UnpackLimits::default()
    };
    let (_tmp, dest, result) = unpack(&archive, limits);
    assert!(
        matches!(result, Err(ArtifactError::TooManyEntries { limit: 2, .. })),
        "{result:?}"
    );
    assert_nothing_left(&dest);
}

#[test]
fn unpack_requires_gzip() {
    let plain = tar_bytes(&[file("a", "a")]);
    let (_tmp, dest, result) = unpack(&plain, UnpackLimits::default());
    assert!(matches!(result, Err(ArtifactError::NotGzip { .. })), "{result:?}");
    assert_nothing_left(&dest);

    let (_tmp, dest, result) = unpack(b"", UnpackLimits::default());
    assert!(matches!(result, Err(ArtifactError::NotGzip { .. })), "{result:?}");
    assert_nothing_left(&dest);
}

#[test]
fn unpack_refuses_a_truncated_gzip() {
    let archive = tar_gz(&[file("a", &"a".repeat(10_000)), file("b", "b")]);
    // Cut inside the data, and cut only the gzip trailer (CRC + length).
    for cut in [archive.len() / 2, archive.len() - 4] {
        let (_tmp, dest, result) = unpack(&archive[..cut], UnpackLimits::default());
        assert!(
            matches!(result, Err(ArtifactError::Corrupt { .. })),
            "cut at {cut}: {result:?}"
        );
        assert_nothing_left(&dest);
    }
}

#[test]
fn unpack_refuses_a_non_empty_destination_and_fills_an_empty_one() {
    let archive = tar_gz(&[file("a", "a")]);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("artifact.tar.gz");
    fs_err::write(&path, &archive).unwrap();

    let full = tmp.path().join("full");
    fs_err::create_dir(&full).unwrap();
    fs_err::write(full.join("keep"), "mine").unwrap();
    let e = unpack_into_place(&path, &full, UnpackLimits::default(), REV).unwrap_err();
    assert!(matches!(e, ArtifactError::DestinationExists { .. }), "{e:?}");
    assert_eq!(tree(&full), [("keep".to_string(), "mine".to_string())]);

    let empty = tmp.path().join("empty");
    fs_err::create_dir(&empty).unwrap();
    unpack_into_place(&path, &empty, UnpackLimits::default(), REV).unwrap();
    assert_eq!(tree(&empty), [("a".to_string(), "a".to_string())]);
}

// ---- downloads ------------------------------------------------------------------------------

/// One scripted HTTP answer.
#[derive(Clone)]
pub(crate) struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 server on 127.0.0.1:0 answering request n with `replies[n]` (the last one
/// repeats), one request per connection; returns its address and the request counter.
pub(crate) async fn serve(replies: Vec<Reply>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let reply = &replies[n.min(replies.len() - 1)];
            let head = format!(
                "HTTP/1.1 {} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reply.status,
                reply.body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&reply.body).await;
            let _ = socket.shutdown().await;
        }
    });
    (addr, count)
}

pub(crate) fn ok(body: &[u8]) -> Reply {
    Reply {
        status: 200,
        body: body.to_vec(),
    }
}

fn status(code: u16) -> Reply {
    Reply {
        status: code,
        body: b"nope".to_vec(),
    }
}

pub(crate) fn artifact(url: String, digest: String) -> Artifact {
    Artifact {
        digest,
        last_update_time: gitops_api::meta::Time(std::time::UNIX_EPOCH.try_into().unwrap()),
        metadata: None,
        path: "gitrepository/ns/app/0123.tar.gz".into(),
        revision: REV.into(),
        size: None,
        url,
    }
}

/// Fast retries: two, 1 ms apart.
pub(crate) fn fast() -> FetchOptions {
    FetchOptions {
        retry: RetryPolicy {
            max_retries: 2,
            min_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(1),
            deadline: Duration::from_secs(30),
        },
        ..FetchOptions::default()
    }
}

pub(crate) fn project() -> Vec<u8> {
    tar_gz(&[
        dir(".", 0o750),
        file(".kluctl.yaml", "targets: []\n"),
        file("deploy/deployment.yaml", "deployments: []\n"),
    ])
}

#[tokio::test]
async fn fetch_downloads_verifies_and_unpacks() {
    let body = project();
    let (addr, count) = serve(vec![ok(&body)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("source");
    let a = artifact(
        format!("http://{addr}/gitrepository/ns/app/0123.tar.gz"),
        format!("sha256:{}", sha256(&body)),
    );
    let fetched = fetch(&a, &dest, &fast()).await.unwrap();
    assert_eq!(
        fetched,
        Fetched {
            dir: dest.clone(),
            revision: REV.into(),
            digest: format!("sha256:{}", sha256(&body)),
            archive_bytes: body.len() as u64,
            files: 2,
            unpacked_bytes: 28,
        }
    );
    assert_eq!(
        tree(&dest),
        [
            (".kluctl.yaml".to_string(), "targets: []\n".to_string()),
            ("deploy/deployment.yaml".into(), "deployments: []\n".into()),
        ]
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // Only the destination is left beside it: no temporary download or directory.
    let beside: Vec<_> = fs_err::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["source"]);
}

#[tokio::test]
async fn fetch_through_the_localhost_override_and_a_bare_hex_digest() {
    let body = project();
    let (addr, _) = serve(vec![ok(&body)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let a = artifact(
        "http://source-controller.flux-system.svc.cluster.local./gitrepository/ns/app/0123.tar.gz".into(),
        sha256(&body),
    );
    let options = FetchOptions {
        localhost_override: Some(addr.to_string()),
        ..fast()
    };
    let fetched = fetch(&a, &tmp.path().join("source"), &options).await.unwrap();
    assert_eq!(fetched.files, 2);
}

#[tokio::test]
async fn fetch_maps_404_to_not_found_without_retrying() {
    let (addr, count) = serve(vec![status(404)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("source");
    let a = artifact(format!("http://{addr}/gone.tar.gz"), sha256(b"x"));
    let e = fetch(&a, &dest, &fast()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "failed to fetch artifact of revision '{REV}': 'http://{addr}/gone.tar.gz' answered 404 Not Found"
        )
    );
    assert!(matches!(e, ArtifactError::NotFound { .. }));
    assert_eq!(e.reason(), "ArtifactFailed");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_nothing_left(&dest);
}

#[tokio::test]
async fn fetch_retries_a_500_then_succeeds() {
    let body = project();
    let (addr, count) = serve(vec![status(500), status(503), ok(&body)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let a = artifact(format!("http://{addr}/a.tar.gz"), sha256(&body));
    let fetched = fetch(&a, &tmp.path().join("source"), &fast()).await.unwrap();
    assert_eq!(fetched.files, 2);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn fetch_gives_up_after_the_retry_count_and_does_not_retry_client_errors() {
    let (addr, count) = serve(vec![status(500)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("source");
    let a = artifact(format!("http://{addr}/a.tar.gz"), sha256(b"x"));
    let e = fetch(&a, &dest, &fast()).await.unwrap_err();
    assert!(
        matches!(&e, ArtifactError::Download { attempts: 3, source: DownloadError::Status(s), .. } if s.as_u16() == 500),
        "{e:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_nothing_left(&dest);

    let (addr, count) = serve(vec![status(403)]).await;
    let a = artifact(format!("http://{addr}/a.tar.gz"), sha256(b"x"));
    let e = fetch(&a, &dest, &fast()).await.unwrap_err();
    assert!(matches!(&e, ArtifactError::Download { attempts: 1, .. }), "{e:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn fetch_retries_connection_errors_within_the_deadline() {
    // A port that was just free: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let a = artifact(format!("http://user:hunter2@{addr}/a.tar.gz"), sha256(b"x"));
    let e = fetch(&a, &tmp.path().join("source"), &fast()).await.unwrap_err();
    assert!(
        matches!(
            &e,
            ArtifactError::Download {
                attempts: 3,
                source: DownloadError::Http(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
    assert!(
        chain(&e).contains(&format!("'http://{addr}/a.tar.gz'")),
        "{}",
        chain(&e)
    );

    // A deadline shorter than the first wait stops after one attempt.
    let mut options = fast();
    options.retry.min_wait = Duration::from_secs(60);
    options.retry.max_wait = Duration::from_secs(60);
    options.retry.deadline = Duration::from_secs(10);
    let e = fetch(&a, &tmp.path().join("source"), &options).await.unwrap_err();
    assert!(matches!(&e, ArtifactError::Download { attempts: 1, .. }), "{e:?}");
}

#[tokio::test]
async fn fetch_refuses_a_digest_mismatch_and_leaves_nothing() {
    let body = project();
    let (addr, _) = serve(vec![ok(&body)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("source");
    let wrong = sha256(b"something else");
    let a = artifact(format!("http://{addr}/a.tar.gz"), format!("sha256:{wrong}"));
    let e = fetch(&a, &dest, &fast()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "failed to verify artifact 'http://{addr}/a.tar.gz' of revision '{REV}': status.artifact.digest is 'sha256:{wrong}' but the downloaded bytes hash to 'sha256:{}'",
            sha256(&body)
        )
    );
    assert_nothing_left(&dest);
}

#[tokio::test]
async fn fetch_refuses_an_unusable_digest_before_downloading() {
    let (addr, count) = serve(vec![ok(b"")]).await;
    let tmp = tempfile::tempdir().unwrap();
    for (digest, problem) in [
        ("", DigestProblem::Empty),
        ("sha512:abc", DigestProblem::UnsupportedAlgorithm("sha512".into())),
    ] {
        let a = artifact(format!("http://{addr}/a.tar.gz"), digest.into());
        let e = fetch(&a, &tmp.path().join("source"), &fast()).await.unwrap_err();
        assert!(e.to_string().contains("invalid status.artifact.digest"), "{e}");
        assert!(
            matches!(&e, ArtifactError::InvalidDigest { problem: p, field: DIGEST_FIELD, .. } if *p == problem),
            "{e:?}"
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fetch_of_an_unsafe_archive_leaves_nothing() {
    let body = tar_gz(&[file("ok.txt", "fine"), file("../escape", "evil")]);
    let (addr, _) = serve(vec![ok(&body)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("work").join("source");
    fs_err::create_dir(tmp.path().join("work")).unwrap();
    let a = artifact(format!("http://{addr}/a.tar.gz"), sha256(&body));
    let e = fetch(&a, &dest, &fast()).await.unwrap_err();
    assert!(
        matches!(&e, ArtifactError::UnsafeEntry { entry, .. } if entry == "../escape"),
        "{e:?}"
    );
    assert_nothing_left(&dest);
    assert!(!tmp.path().join("escape").exists());
}
