//! Black-box tests of the artifact server over real TCP on 127.0.0.1.

use super::*;
use reqwest::header;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const PATH: &str = "gitrepository/flux-system/podinfo/0a1b2c.tar.gz";
const BODY: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A running server over `<tmp>/root` holding one artifact at [`PATH`], and a file outside the root.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fixture {
    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs_err::create_dir_all(root.join("gitrepository/flux-system/podinfo")).unwrap();
        fs_err::write(root.join(PATH), BODY).unwrap();
        fs_err::write(tmp.path().join("secret.txt"), b"do not serve").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(root.clone(), listener, async move {
            let _ = stopped.await;
        }));
        Fixture {
            _tmp: tmp,
            root,
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Sends `raw` request bytes on a fresh connection and returns the status code.
    async fn raw_status(&self, target: &str) -> u16 {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(
            !text.contains("do not serve"),
            "{target} leaked a file outside the root"
        );
        text.split(' ').nth(1).unwrap().parse().unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn get_returns_body_length_and_last_modified() {
    let fx = Fixture::start().await;
    let res = client().get(fx.url(PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        BODY.len().to_string().as_str()
    );
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/gzip");
    assert!(res.headers().contains_key(header::LAST_MODIFIED));
    assert_eq!(res.bytes().await.unwrap(), BODY);
    fx.stop().await;
}

#[tokio::test]
async fn head_returns_length_without_body() {
    let fx = Fixture::start().await;
    let res = client().head(fx.url(PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        BODY.len().to_string().as_str()
    );
    assert!(res.bytes().await.unwrap().is_empty());
    fx.stop().await;
}

#[tokio::test]
async fn single_range_returns_206_with_those_bytes() {
    let fx = Fixture::start().await;
    let res = client()
        .get(fx.url(PATH))
        .header(header::RANGE, "bytes=10-15")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE],
        format!("bytes 10-15/{}", BODY.len()).as_str()
    );
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "6");
    assert_eq!(res.bytes().await.unwrap(), &BODY[10..=15]);

    let suffix = client()
        .get(fx.url(PATH))
        .header(header::RANGE, "bytes=-4")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.bytes().await.unwrap(), &BODY[BODY.len() - 4..]);
    fx.stop().await;
}

#[tokio::test]
async fn unsatisfiable_range_returns_416() {
    let fx = Fixture::start().await;
    let res = client()
        .get(fx.url(PATH))
        .header(header::RANGE, "bytes=1000-2000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE],
        format!("bytes */{}", BODY.len()).as_str()
    );
    fx.stop().await;
}

#[tokio::test]
async fn multi_range_returns_the_whole_file() {
    let fx = Fixture::start().await;
    let res = client()
        .get(fx.url(PATH))
        .header(header::RANGE, "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), BODY);
    fx.stop().await;
}

#[tokio::test]
async fn if_modified_since_returns_304_when_unchanged() {
    let fx = Fixture::start().await;
    let first = client().get(fx.url(PATH)).send().await.unwrap();
    let last_modified = first.headers()[header::LAST_MODIFIED].clone();
    let res = client()
        .get(fx.url(PATH))
        .header(header::IF_MODIFIED_SINCE, last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()[header::ETAG], first.headers()[header::ETAG]);
    assert!(res.bytes().await.unwrap().is_empty());

    let stale = client()
        .get(fx.url(PATH))
        .header(header::IF_MODIFIED_SINCE, "Thu, 01 Jan 1970 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    fx.stop().await;
}

/// The validators and type of a cached answer (plain GET) and of a `ServeDir` one (a Range
/// request) are the same, so a client may use one's `ETag` in the other's conditional request.
#[tokio::test]
async fn cached_and_servedir_answers_carry_the_same_headers() {
    let fx = Fixture::start().await;
    fs_err::write(fx.root.join("notes.txt"), BODY).unwrap();
    for path in [PATH, "notes.txt"] {
        let cached = client().get(fx.url(path)).send().await.unwrap();
        let ranged = client()
            .get(fx.url(path))
            .header(header::RANGE, "bytes=0-")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (cached.status().as_u16(), ranged.status().as_u16()),
            (200, 206),
            "{path}"
        );
        for name in [
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_TYPE,
            header::ACCEPT_RANGES,
        ] {
            assert_eq!(
                cached.headers().get(&name),
                ranged.headers().get(&name),
                "{path} {name}"
            );
        }
        // ServeDir honours the cached answer's ETag.
        let revalidated = client()
            .get(fx.url(path))
            .header(header::IF_NONE_MATCH, cached.headers()[header::ETAG].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304, "{path}");
    }
    let text = client().get(fx.url("notes.txt")).send().await.unwrap();
    assert_eq!(text.headers()[header::CONTENT_TYPE], "text/plain");
    fx.stop().await;
}

/// The store replaces an artifact by renaming a new file over the path; the next request gets
/// the new bytes even when size and modification time are the old file's.
#[tokio::test]
async fn an_artifact_replaced_at_the_same_path_is_served_new_bytes() {
    let fx = Fixture::start().await;
    let target = fx.root.join(PATH);
    for _ in 0..2 {
        // The first fills the cache, the second is answered from it.
        assert_eq!(
            client()
                .get(fx.url(PATH))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
            BODY
        );
    }
    let modified = fs_err::metadata(&target).unwrap().modified().unwrap();
    let new_body: Vec<u8> = BODY.iter().rev().copied().collect();
    let tmp = fx.root.join("gitrepository/flux-system/podinfo/.new.tmp");
    fs_err::write(&tmp, &new_body).unwrap();
    fs_err::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .file()
        .set_modified(modified)
        .unwrap();
    fs_err::rename(&tmp, &target).unwrap();
    let res = client().get(fx.url(PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), new_body);
    let again = client().get(fx.url(PATH)).send().await.unwrap();
    assert_eq!(again.bytes().await.unwrap(), new_body);
    fx.stop().await;
}

#[tokio::test]
async fn missing_file_returns_404() {
    let fx = Fixture::start().await;
    let res = client()
        .get(fx.url("gitrepository/flux-system/podinfo/nope.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    fx.stop().await;
}

#[tokio::test]
async fn directories_are_not_listed() {
    let fx = Fixture::start().await;
    for dir in [
        "gitrepository",
        "gitrepository/",
        "gitrepository/flux-system/podinfo",
        "gitrepository/flux-system/podinfo/",
    ] {
        let res = client().get(fx.url(dir)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{dir}");
    }
    fx.stop().await;
}

#[tokio::test]
async fn root_answers_the_readiness_probe() {
    let fx = Fixture::start().await;
    let res = client().get(fx.url("")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty(), "no directory listing");
    fx.stop().await;
}

#[tokio::test]
async fn traversal_attempts_never_leave_the_root() {
    let fx = Fixture::start().await;
    for target in [
        "/../secret.txt",
        "/gitrepository/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/gitrepository/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/%2fetc%2fpasswd",
        "//etc/passwd",
        "/gitrepository/flux-system/podinfo/0a1b2c.tar.gz%00",
    ] {
        let status = fx.raw_status(target).await;
        assert!(status == 400 || status == 404, "{target}: {status}");
    }
    // Sanity: the raw client does reach real files.
    assert_eq!(fx.raw_status(&format!("/{PATH}")).await, 200);
    fx.stop().await;
}

#[tokio::test]
async fn deleted_file_returns_404() {
    let fx = Fixture::start().await;
    let res = client().get(fx.url(PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    fs_err::remove_file(fx.root.join(PATH)).unwrap();
    let res = client().get(fx.url(PATH)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    fx.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let fx = Fixture::start().await;
    let stream = TcpStream::connect(fx.addr).await.unwrap();
    let mut stream = BufReader::new(stream);
    for _ in 0..3 {
        let request = format!("GET /{PATH} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        stream.get_mut().write_all(request.as_bytes()).await.unwrap();
        let mut status = String::new();
        stream.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        assert_eq!(body, BODY);
    }
    fx.stop().await;
}

#[tokio::test]
async fn symlinked_latest_is_served() {
    let fx = Fixture::start().await;
    std::os::unix::fs::symlink(
        "0a1b2c.tar.gz",
        fx.root.join("gitrepository/flux-system/podinfo/latest.tar.gz"),
    )
    .unwrap();
    let res = client()
        .get(fx.url("gitrepository/flux-system/podinfo/latest.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), BODY);
    fx.stop().await;
}

#[tokio::test]
async fn shutdown_ends_serve_with_idle_keep_alive_connections_open() {
    let fx = Fixture::start().await;
    // An idle keep-alive connection must not hold shutdown past the grace period.
    let idle = TcpStream::connect(fx.addr).await.unwrap();
    let stopped = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(2), fx.stop()).await;
    assert!(stopped.is_ok(), "serve did not return after shutdown");
    drop(idle);
}

#[tokio::test]
async fn bind_accepts_go_style_addresses() {
    let listener = bind("127.0.0.1:0").await.unwrap();
    assert!(listener.local_addr().unwrap().ip().is_loopback());
    let any = bind(":0").await.unwrap();
    assert!(any.local_addr().unwrap().ip().is_unspecified());
    let err = bind("not an address").await.unwrap_err();
    assert!(err.to_string().contains("not an address"), "{err}");
}
