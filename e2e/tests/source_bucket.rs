//! source-controller end to end for Bucket objects: the real binary reconciles Buckets on the real
//! apiserver against SeaweedFS (S3). Fixtures are written and listed with boto3
//! (`e2e/scripts/s3ctl.py`), so expected revisions come from the server's own listing.

// Each test is one scenario told start to finish; splitting it would hide the story.
#![allow(clippy::too_many_lines)]

use anyhow::{Context as _, anyhow, bail};
use e2e::source::{apply, ready, ready_is, stalled};
use e2e::{SourceController, TestNs, poll_until, project_root, wait_for};
use gitops_api::conditions::reasons;
use gitops_api::source::v1::Bucket;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// boto3 through `e2e/scripts/s3ctl.py`, with the e2e environment's endpoint and keys.
struct S3 {
    python: String,
    env: BTreeMap<String, String>,
}

impl S3 {
    fn new(t: &TestNs) -> anyhow::Result<Self> {
        let mut env = BTreeMap::new();
        for k in ["E2E_S3_ENDPOINT", "E2E_S3_ACCESS_KEY", "E2E_S3_SECRET_KEY"] {
            env.insert(k.to_string(), t.env.get(k)?.to_string());
        }
        Ok(S3 {
            python: t.env.get("E2E_PYTHON")?.to_string(),
            env,
        })
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<String> {
        let script = project_root().join("e2e/scripts/s3ctl.py");
        let mut child = Command::new(&self.python)
            .arg(&script)
            .args(args)
            .envs(&self.env)
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("REQUESTS_CA_BUNDLE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} (boto3 venv from 'make e2e-up')", self.python))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.unwrap_or_default())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let hint = if err.contains("InternalError") {
                "\nhint: SeaweedFS may be out of volumes (every bucket needs its own, and `weed mini` \
                 sizes them by free disk space): free disk space or delete leftover buckets"
            } else {
                ""
            };
            bail!("s3ctl.py {args:?} failed: {err}{hint}");
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// The shared scratch bucket and a prefix of this test's own (`<namespace>/`), emptied when
    /// the guard drops. SeaweedFS gives every bucket volumes of its own and `weed mini` on a
    /// small disk has few, so only tests that need a bucket root create a bucket.
    fn scratch(&self, t: &TestNs) -> anyhow::Result<(String, String, Cleanup)> {
        let bucket = t.env.get("E2E_S3_BUCKET")?.to_string();
        let prefix = format!("{}/", t.name);
        let script = project_root().join("e2e/scripts/s3ctl.py");
        let mut cmd = Command::new(&self.python);
        cmd.arg(script)
            .args(["rmprefix", &bucket, &prefix])
            .envs(&self.env);
        Ok((bucket, prefix, Cleanup(cmd)))
    }

    /// `(key, etag as served)` of the keys under `prefix`, over all listing pages.
    fn list_prefix(&self, bucket: &str, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(serde_json::from_str(&self.run(&["list", bucket, prefix], None)?)?)
    }

    fn put(&self, bucket: &str, key: &str, data: &[u8]) -> anyhow::Result<()> {
        self.run(&["put", bucket, key], Some(data)).map(|_| ())
    }
}

/// Runs its command when dropped (removes a test bucket or container).
struct Cleanup(Command);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ok = self
            .0
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: cleanup {:?} failed", self.0);
        }
    }
}

/// Flux's revision computed here from a listing: keys kept by `keep`, etags unquoted, sorted.
fn expected_revision(listing: &[(String, String)], keep: impl Fn(&str) -> bool) -> String {
    let mut idx: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, e) in listing {
        if keep(k) {
            idx.insert(k, e.trim_matches('"'));
        }
    }
    let mut h = sha2::Sha256::new();
    for (k, e) in idx {
        h.update(format!("{k} {e}\n").as_bytes());
    }
    format!("sha256:{}", gitops_api::revision::lower_hex(&h.finalize()))
}

/// A TCP proxy in front of SeaweedFS that keeps every byte the controller sends, so a test can
/// count the HTTP requests (listing vs object GETs) a reconcile made.
struct CountingProxy {
    addr: String,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl CountingProxy {
    fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (log, upstream) = (sent.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let slot = {
                    let mut l = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    l.push(Vec::new());
                    l.len() - 1
                };
                let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let log2 = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        // Logged before forwarding: once the server has seen a request, so has
                        // the test.
                        log2.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[slot]
                            .extend_from_slice(&buf[..n]);
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Ok(CountingProxy { addr, sent })
    }

    /// Request lines (`GET /bucket/key HTTP/1.1`) seen so far.
    fn request_lines(&self) -> Vec<String> {
        let sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.iter()
            .flat_map(|conn| {
                String::from_utf8_lossy(conn)
                    .split("\r\n")
                    .filter(|l| {
                        ["GET ", "HEAD ", "PUT ", "POST ", "DELETE "]
                            .iter()
                            .any(|m| l.starts_with(m))
                    })
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// GETs of objects under `prefix` in `bucket` (the listing is a GET of the bucket itself).
    fn object_gets(&self, bucket: &str, prefix: &str) -> usize {
        let object = format!("GET /{bucket}/{prefix}");
        self.request_lines()
            .iter()
            .filter(|l| l.starts_with(&object) && !l.contains("list-type="))
            .count()
    }

    /// Listing requests of `bucket`.
    fn listings(&self) -> usize {
        self.request_lines()
            .iter()
            .filter(|l| l.starts_with("GET ") && l.contains("list-type="))
            .count()
    }
}

fn manifest(ns: &str, name: &str, spec: &serde_json::Value) -> serde_json::Value {
    let mut full = json!({"interval": "10m", "provider": "generic", "insecure": true});
    if let (Some(m), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        m.extend(extra.clone());
    }
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "Bucket",
        "metadata": {"name": name, "namespace": ns, "labels": {"e2e.kluctl-gitops/ns": ns}},
        "spec": full,
    })
}

async fn request_reconcile(api: &Api<Bucket>, name: &str, token: &str) -> anyhow::Result<Bucket> {
    e2e::source::request_reconcile(api, name, token, WAIT).await
}

/// Creates or replaces the Secret `name` with `string_data`.
async fn put_secret(t: &TestNs, name: &str, string_data: serde_json::Value) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &t.name);
    let s = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": t.name},
        "stringData": string_data,
    });
    secrets
        .patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&s))
        .await?;
    Ok(())
}

async fn s3_secret(t: &TestNs, name: &str, access: &str, secret: &str) -> anyhow::Result<()> {
    put_secret(t, name, json!({"accesskey": access, "secretkey": secret})).await
}

/// Downloads the artifact, checks the advertised digest, and returns file name → bytes.
async fn artifact_contents(url: &str, digest: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let bytes = reqwest::get(url).await?.error_for_status()?.bytes().await?;
    let actual = format!(
        "sha256:{}",
        gitops_api::revision::lower_hex(&sha2::Sha256::digest(&bytes))
    );
    if actual != digest {
        bail!("digest mismatch for {url}: advertised {digest}, got {actual}");
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut files = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() == tar::EntryType::Regular {
            let name = entry.path()?.to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            files.insert(name, data);
        }
    }
    Ok(files)
}

async fn event_messages(t: &TestNs, name: &str, reason: &str) -> anyhow::Result<Vec<String>> {
    e2e::source::event_messages(&t.client, &t.name, name, reason).await
}

fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    for (key, data) in files {
        let p = root.join(key);
        fs_err::create_dir_all(p.parent().ok_or_else(|| anyhow!("no parent"))?)?;
        fs_err::write(&p, data)?;
    }
    Ok(())
}

/// A bucket name S3 accepts, unique per test namespace.
fn bucket_name(t: &TestNs, suffix: &str) -> String {
    let mut n: String = format!("{}-{suffix}", t.name).chars().take(63).collect();
    while n.ends_with('-') {
        n.pop();
    }
    n
}

#[tokio::test]
async fn bucket_with_pages_nested_and_special_keys_yields_flux_revision_and_exact_artifact()
-> anyhow::Result<()> {
    TestNs::run("src_bucket_index", |t| async move {
        let s3 = S3::new(&t)?;
        // The shared scratch bucket, this test's prefix, and a .sourceignore at the bucket root
        // (Flux reads only that one). Other tests' keys there are all *.yaml, which it leaves alone.
        let (bucket, p, _cleanup) = s3.scratch(&t)?;
        s3.put(&bucket, ".sourceignore", b"*.txt\n")?;
        let script = project_root().join("e2e/scripts/s3ctl.py");
        let mut rm = Command::new(&s3.python);
        rm.arg(script)
            .args(["rm", &bucket, ".sourceignore"])
            .envs(&s3.env);
        let _root_ignore = Cleanup(rm);
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        // More than one listing page (S3 returns at most 1,000 keys per page).
        for i in 0..1050 {
            files.insert(format!("pages/p{i:04}.yaml"), format!("i: {i}\n").into_bytes());
        }
        for (k, v) in [
            ("a/b/c/deep.yaml", "deep: true\n"),
            ("special/sp ace+plus&amp=eq@at,comma;semi ü.yaml", "special: 1\n"),
            ("special/percent%41.yaml", "percent: 1\n"),
            ("notes.txt", "ignored by .sourceignore\n"),
            ("keep.txt", "re-included by spec.ignore\n"),
            ("skip/x.yaml", "ignored by spec.ignore\n"),
            ("sub/.sourceignore", "only the root file is special\n"),
            ("app/one.yaml", "one: 1\n"),
            ("apps/two.yaml", "two: 2\n"),
            ("other/app.yaml", "other: 1\n"),
        ] {
            files.insert(k.to_string(), v.as_bytes().to_vec());
        }
        let tree = tempfile::tempdir()?;
        write_tree(&tree.path().join(&t.name), &files)?;
        s3.run(&["putdir", &bucket, &tree.path().to_string_lossy()], None)?;
        let listing = s3.list_prefix(&bucket, &p)?;
        assert_eq!(listing.len(), files.len(), "the server lists every uploaded key");

        let secret = "s3-creds";
        s3_secret(
            &t,
            secret,
            t.env.get("E2E_S3_ACCESS_KEY")?,
            t.env.get("E2E_S3_SECRET_KEY")?,
        )
        .await?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<Bucket> = Api::namespaced(t.client.clone(), &t.name);
        let endpoint = t.env.get("E2E_S3_ENDPOINT")?;
        apply(
            &api,
            &manifest(
                &t.name,
                "all",
                &json!({"bucketName": bucket, "endpoint": endpoint, "secretRef": {"name": secret},
                        "ignore": "!keep.txt\nskip/\n", "prefix": p}),
            ),
        )
        .await?;
        apply(
            &api,
            &manifest(
                &t.name,
                "prefixed",
                &json!({"bucketName": bucket, "endpoint": endpoint, "secretRef": {"name": secret},
                        "prefix": format!("{p}app")}),
            ),
        )
        .await?;

        // Root .sourceignore + spec.ignore (the root ignore file lies outside the prefix).
        let keep_all = |k: &str| {
            k.strip_prefix(p.as_str())
                .is_some_and(|rel| !matches!(rel, "notes.txt" | "skip/x.yaml") && !rel.ends_with('/'))
        };
        let want = expected_revision(&listing, keep_all);
        let obj = wait_for(&api, "all", "Ready=True", WAIT, ready_is("True"))
            .await
            .with_context(|| ctl.log_tail(30))?;
        let status = obj.status.clone().unwrap_or_default();
        let artifact = status.artifact.clone().ok_or_else(|| anyhow!("no artifact"))?;
        assert_eq!(
            artifact.revision, want,
            "revision = etag index digest of the server's listing"
        );
        let (_, reason, message) = ready(&obj);
        assert_eq!(reason, reasons::SUCCEEDED);
        assert_eq!(message, format!("stored artifact: revision '{want}'"));
        let hex = want.trim_start_matches("sha256:");
        assert_eq!(artifact.path, format!("bucket/{}/all/{hex}.tar.gz", t.name));
        assert_eq!(
            status.url.as_deref(),
            Some(
                format!(
                    "http://{}/bucket/{}/all/latest.tar.gz",
                    ctl.storage_addr()?,
                    t.name
                )
                .as_str()
            )
        );
        let got = artifact_contents(&artifact.url, &artifact.digest).await?;
        let expected: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(k, v)| (format!("{p}{k}"), v.clone()))
            .filter(|(k, _)| keep_all(k))
            .collect();
        assert_eq!(got.len(), expected.len());
        assert!(
            got == expected,
            "artifact files and bytes equal the bucket's kept objects"
        );
        // latest.tar.gz serves the same bytes.
        let latest = artifact_contents(status.url.as_deref().unwrap_or_default(), &artifact.digest).await?;
        assert_eq!(latest.len(), expected.len());
        let news = event_messages(&t, "all", reasons::NEW_ARTIFACT).await?;
        assert!(
            news.contains(&format!(
                "stored artifact with {} fetched files from '{bucket}' bucket",
                expected.len()
            )),
            "{news:?}"
        );

        // Raw string prefix: "<p>app" matches app/ and apps/, keys keep the prefix in the tarball.
        let keep_prefixed = |k: &str| k.starts_with(&format!("{p}app"));
        let obj = wait_for(&api, "prefixed", "Ready=True", WAIT, ready_is("True")).await?;
        let artifact = obj
            .status
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("no artifact"))?;
        assert_eq!(artifact.revision, expected_revision(&listing, keep_prefixed));
        let got = artifact_contents(&artifact.url, &artifact.digest).await?;
        assert_eq!(
            got.keys().cloned().collect::<Vec<_>>(),
            [format!("{p}app/one.yaml"), format!("{p}apps/two.yaml")]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn changed_object_gives_new_artifact_and_unchanged_bucket_is_not_downloaded() -> anyhow::Result<()> {
    TestNs::run("src_bucket_change", |t| async move {
        let s3 = S3::new(&t)?;
        let (bucket, p, _cleanup) = s3.scratch(&t)?;
        for (k, v) in [
            ("a.yaml", "a: 1\n"),
            ("dir/b.yaml", "b: 1\n"),
            ("dir/c.yaml", "c: 1\n"),
        ] {
            s3.put(&bucket, &format!("{p}{k}"), v.as_bytes())?;
        }
        let proxy = CountingProxy::start(t.env.get("E2E_S3_ENDPOINT")?)?;
        s3_secret(
            &t,
            "creds",
            t.env.get("E2E_S3_ACCESS_KEY")?,
            t.env.get("E2E_S3_SECRET_KEY")?,
        )
        .await?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<Bucket> = Api::namespaced(t.client.clone(), &t.name);
        apply(
            &api,
            &manifest(
                &t.name,
                "b",
                &json!({"bucketName": bucket, "endpoint": proxy.addr, "secretRef": {"name": "creds"},
                        "prefix": p}),
            ),
        )
        .await?;
        let obj = wait_for(&api, "b", "Ready=True", WAIT, ready_is("True"))
            .await
            .with_context(|| ctl.log_tail(30))?;
        let first = obj
            .status
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("no artifact"))?;
        assert_eq!(
            first.revision,
            expected_revision(&s3.list_prefix(&bucket, &p)?, |_| true)
        );
        assert_eq!(proxy.object_gets(&bucket, &p), 3, "{:#?}", proxy.request_lines());

        // No change: a listing, and no GET of any indexed object. (The only other request is the
        // probe for the bucket root's .sourceignore, which lies outside the prefix; Flux makes it
        // on every run too.)
        let (gets, lists) = (proxy.object_gets(&bucket, &p), proxy.listings());
        let obj = request_reconcile(&api, "b", "t1").await?;
        assert_eq!(ready(&obj).0, "True");
        assert!(proxy.listings() > lists, "the reconcile listed the bucket");
        assert_eq!(
            proxy.object_gets(&bucket, &p),
            gets,
            "{:#?}",
            proxy.request_lines()
        );
        assert_eq!(
            obj.status.and_then(|s| s.artifact).map(|a| a.revision),
            Some(first.revision.clone())
        );

        // One object changes: new revision, new artifact with the new bytes.
        s3.put(&bucket, &format!("{p}dir/b.yaml"), b"b: 2\n")?;
        let obj = request_reconcile(&api, "b", "t2").await?;
        let second = obj
            .status
            .clone()
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("no artifact"))?;
        assert_ne!(second.revision, first.revision);
        assert_eq!(
            second.revision,
            expected_revision(&s3.list_prefix(&bucket, &p)?, |_| true)
        );
        let got = artifact_contents(&second.url, &second.digest).await?;
        assert_eq!(
            got.get(&format!("{p}dir/b.yaml")).map(Vec::as_slice),
            Some(&b"b: 2\n"[..])
        );
        let latest = obj.status.and_then(|s| s.url).unwrap_or_default();
        assert!(latest.ends_with("/latest.tar.gz"));
        let via_latest = artifact_contents(&latest, &second.digest).await?;
        assert_eq!(
            via_latest.get(&format!("{p}dir/b.yaml")).map(Vec::as_slice),
            Some(&b"b: 2\n"[..])
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bucket_failures_keep_the_previous_artifact_and_deletion_removes_storage() -> anyhow::Result<()> {
    TestNs::run("src_bucket_fail", |t| async move {
        let s3 = S3::new(&t)?;
        let (bucket, p, _cleanup) = s3.scratch(&t)?;
        s3.put(&bucket, &format!("{p}a.yaml"), b"a: 1\n")?;
        let (access, secret) = (t.env.get("E2E_S3_ACCESS_KEY")?, t.env.get("E2E_S3_SECRET_KEY")?);
        s3_secret(&t, "creds", access, secret).await?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<Bucket> = Api::namespaced(t.client.clone(), &t.name);
        let endpoint = t.env.get("E2E_S3_ENDPOINT")?.to_string();
        let spec =
            json!({"bucketName": bucket, "endpoint": endpoint, "secretRef": {"name": "creds"}, "prefix": p});
        apply(&api, &manifest(&t.name, "b", &spec)).await?;
        let obj = wait_for(&api, "b", "Ready=True", WAIT, ready_is("True"))
            .await
            .with_context(|| ctl.log_tail(30))?;
        let good = obj
            .status
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("no artifact"))?;

        // Wrong secret key: AuthenticationFailed, no secret in the message, artifact kept and served.
        let wrong = "0000000000wrongsecretkey0000000000000000";
        s3_secret(&t, "creds", access, wrong).await?;
        let obj = request_reconcile(&api, "b", "wrong-keys").await?;
        let (st, reason, message) = ready(&obj);
        assert_eq!(
            (st.as_str(), reason.as_str()),
            ("False", reasons::AUTHENTICATION_FAILED),
            "{message}"
        );
        assert!(!message.contains(wrong) && !message.contains(secret), "{message}");
        let kept = obj
            .status
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("artifact dropped"))?;
        assert_eq!(kept.revision, good.revision);
        assert!(
            artifact_contents(&kept.url, &kept.digest)
                .await?
                .contains_key(&format!("{p}a.yaml"))
        );
        s3_secret(&t, "creds", access, secret).await?;

        // Missing bucket.
        let missing =
            json!({"bucketName": "no-such-bucket-e2e", "endpoint": endpoint, "secretRef": {"name": "creds"}});
        apply(&api, &manifest(&t.name, "b", &missing)).await?;
        let obj = wait_for(&api, "b", "Ready=False", WAIT, ready_is("False")).await?;
        let (_, reason, message) = ready(&obj);
        assert_eq!(reason, reasons::BUCKET_OPERATION_FAILED);
        assert_eq!(message, "bucket 'no-such-bucket-e2e' not found");
        assert_eq!(
            obj.status.and_then(|s| s.artifact).map(|a| a.revision),
            Some(good.revision.clone())
        );

        // Endpoint down: a port this test holds without listening on it, so connections are refused.
        let closed = tokio::net::TcpSocket::new_v4()?;
        closed.bind("127.0.0.1:0".parse()?)?;
        let down = json!({"bucketName": bucket, "endpoint": closed.local_addr()?.to_string(),
                          "secretRef": {"name": "creds"}});
        apply(&api, &manifest(&t.name, "b", &down)).await?;
        let obj = wait_for(&api, "b", "Ready=False", WAIT, ready_is("False")).await?;
        let (_, reason, message) = ready(&obj);
        assert_eq!(reason, reasons::BUCKET_OPERATION_FAILED, "{message}");
        assert!(
            message.starts_with(&format!("failed to list objects from bucket '{bucket}'")),
            "{message}"
        );

        // gcp is not implemented: Stalled, naming the field.
        let gcp = json!({"provider": "gcp", "bucketName": bucket, "endpoint": "storage.googleapis.com"});
        apply(&api, &manifest(&t.name, "b", &gcp)).await?;
        let obj = wait_for(&api, "b", "Stalled", WAIT, stalled::<Bucket>).await?;
        let (_, reason, message) = ready(&obj);
        assert_eq!(reason, reasons::UNSUPPORTED_CONFIGURATION);
        assert!(message.contains("spec.provider 'gcp'"), "{message}");

        // Deleting the object removes its storage.
        let dir = ctl.storage_dir.join("bucket").join(&t.name).join("b");
        assert!(dir.exists());
        api.delete("b", &DeleteParams::default()).await?;
        poll_until("the Bucket to be gone", WAIT, || async {
            api.get_opt("b").await.ok().flatten().is_none()
        })
        .await?;
        assert!(!dir.exists(), "{} still exists", dir.display());
        Ok(())
    })
    .await
}

/// azure-storage-blob through `e2e/scripts/azctl.py`, against Azurite.
fn azctl(t: &TestNs, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<String> {
    let script = project_root().join("e2e/scripts/azctl.py");
    let mut child = Command::new(t.env.get("E2E_PYTHON")?)
        .arg(&script)
        .args(args)
        .env("E2E_AZURITE_ENDPOINT", t.env.get("E2E_AZURITE_ENDPOINT")?)
        .env("E2E_AZURITE_ACCOUNT", t.env.get("E2E_AZURITE_ACCOUNT")?)
        .env("E2E_AZURITE_KEY", t.env.get("E2E_AZURITE_KEY")?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the venv python ('make e2e-up' installs azure-storage-blob and Azurite)")?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or_default())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "azctl.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn azure_container_on_azurite_yields_flux_revision_and_is_not_downloaded_when_unchanged()
-> anyhow::Result<()> {
    TestNs::run("src_bucket_azure", |t| async move {
        let container = bucket_name(&t, "az");
        azctl(&t, &["mkcontainer", &container], None)?;
        let mut rm = Command::new(t.env.get("E2E_PYTHON")?);
        rm.arg(project_root().join("e2e/scripts/azctl.py"))
            .args(["rmcontainer", &container])
            .env("E2E_AZURITE_ENDPOINT", t.env.get("E2E_AZURITE_ENDPOINT")?)
            .env("E2E_AZURITE_ACCOUNT", t.env.get("E2E_AZURITE_ACCOUNT")?)
            .env("E2E_AZURITE_KEY", t.env.get("E2E_AZURITE_KEY")?);
        let _cleanup = Cleanup(rm);
        let files: BTreeMap<&str, &str> = [
            ("a.yaml", "a: 1\n"),
            ("nested/dir/b.yaml", "b: 1\n"),
            ("special/sp ace+ü.yaml", "s: 1\n"),
            ("notes.txt", "ignored by spec.ignore\n"),
        ]
        .into();
        for (k, v) in &files {
            azctl(&t, &["put", &container, k], Some(v.as_bytes()))?;
        }
        let account = t.env.get("E2E_AZURITE_ACCOUNT")?;
        let endpoint = t.env.get("E2E_AZURITE_ENDPOINT")?;
        let upstream = endpoint
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let proxy = CountingProxy::start(&upstream)?;
        put_secret(&t, "az-key", json!({"accountKey": t.env.get("E2E_AZURITE_KEY")?})).await?;
        let sas = azctl(&t, &["sas", &container], None)?.trim().to_string();
        put_secret(&t, "az-sas", json!({"sasKey": sas})).await?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<Bucket> = Api::namespaced(t.client.clone(), &t.name);
        let via_proxy = format!("http://{}/{account}", proxy.addr);
        apply(
            &api,
            &manifest(
                &t.name,
                "key",
                &json!({"provider": "azure", "bucketName": container, "endpoint": via_proxy,
                        "secretRef": {"name": "az-key"}, "ignore": "*.txt"}),
            ),
        )
        .await?;
        apply(
            &api,
            &manifest(
                &t.name,
                "sas",
                &json!({"provider": "azure", "bucketName": container, "endpoint": endpoint,
                        "secretRef": {"name": "az-sas"}, "prefix": "nested/"}),
            ),
        )
        .await?;

        // Flux stores the etags as the download header carries them: quoted.
        let listing: Vec<(String, String)> = serde_json::from_str(&azctl(&t, &["list", &container], None)?)?;
        let quoted: Vec<(String, String)> = listing
            .iter()
            .map(|(k, e)| (k.clone(), format!("\"{}\"", e.trim_matches('"'))))
            .collect();
        let revision_of = |keep: &dyn Fn(&str) -> bool| {
            let mut idx: BTreeMap<&str, &str> = BTreeMap::new();
            for (k, e) in &quoted {
                if keep(k) {
                    idx.insert(k, e);
                }
            }
            let mut h = sha2::Sha256::new();
            for (k, e) in idx {
                h.update(format!("{k} {e}\n").as_bytes());
            }
            format!("sha256:{}", gitops_api::revision::lower_hex(&h.finalize()))
        };
        let obj = wait_for(&api, "key", "Ready=True", WAIT, ready_is("True"))
            .await
            .with_context(|| ctl.log_tail(30))?;
        let artifact = obj
            .status
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("no artifact"))?;
        assert_eq!(artifact.revision, revision_of(&|k: &str| k != "notes.txt"));
        let got = artifact_contents(&artifact.url, &artifact.digest).await?;
        let want: BTreeMap<String, Vec<u8>> = files
            .iter()
            .filter(|(k, _)| **k != "notes.txt")
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .collect();
        assert!(
            got == want,
            "artifact equals the container's kept blobs: {:?}",
            got.keys()
        );
        let obj = wait_for(&api, "sas", "Ready=True", WAIT, ready_is("True"))
            .await
            .with_context(|| ctl.log_tail(30))?;
        let sas_artifact = obj
            .status
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("no artifact"))?;
        assert_eq!(
            sas_artifact.revision,
            revision_of(&|k: &str| k.starts_with("nested/"))
        );

        // Unchanged container: listed, nothing downloaded.
        let object_get = format!("GET /{account}/{container}/");
        let gets = || {
            proxy
                .request_lines()
                .iter()
                .filter(|l| l.starts_with(&object_get) && !l.contains("comp=list"))
                .count()
        };
        let before = gets();
        assert_eq!(before, 3, "{:#?}", proxy.request_lines());
        let obj = request_reconcile(&api, "key", "az1").await?;
        assert_eq!(ready(&obj).0, "True");
        assert_eq!(gets(), before, "{:#?}", proxy.request_lines());

        // Wrong account key: AuthenticationFailed, the key never shown.
        let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
        put_secret(&t, "az-key", json!({"accountKey": wrong})).await?;
        let obj = request_reconcile(&api, "key", "az2").await?;
        let (st, reason, message) = ready(&obj);
        assert_eq!(
            (st.as_str(), reason.as_str()),
            ("False", reasons::AUTHENTICATION_FAILED),
            "{message}"
        );
        assert!(!message.contains(wrong), "{message}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn proxy_secret_routes_bucket_requests_through_the_proxy_with_its_credentials() -> anyhow::Result<()> {
    TestNs::run("src_bucket_proxy", |t| async move {
        let s3 = S3::new(&t)?;
        let (bucket, p, _cleanup) = s3.scratch(&t)?;
        s3.put(&bucket, &format!("{p}a.yaml"), b"a: 1\n")?;
        // A TCP forwarder to SeaweedFS stands in for an HTTP proxy: Go's server accepts the
        // absolute-form request lines a client sends to a proxy. The endpoint's host does not
        // resolve, so only the proxy can have reached the server.
        let proxy = CountingProxy::start(t.env.get("E2E_S3_ENDPOINT")?)?;
        let port = t
            .env
            .get("E2E_S3_ENDPOINT")?
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        let endpoint = format!("s3.invalid:{port}");
        s3_secret(
            &t,
            "creds",
            t.env.get("E2E_S3_ACCESS_KEY")?,
            t.env.get("E2E_S3_SECRET_KEY")?,
        )
        .await?;
        put_secret(
            &t,
            "proxy",
            json!({"address": format!("http://{}", proxy.addr), "username": "pxuser", "password": "pxpass"}),
        )
        .await?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<Bucket> = Api::namespaced(t.client.clone(), &t.name);
        apply(
            &api,
            &manifest(
                &t.name,
                "b",
                &json!({"bucketName": bucket, "endpoint": endpoint, "secretRef": {"name": "creds"},
                        "proxySecretRef": {"name": "proxy"}, "prefix": p}),
            ),
        )
        .await?;
        let obj = wait_for(&api, "b", "Ready=True", WAIT, ready_is("True"))
            .await
            .with_context(|| ctl.log_tail(30))?;
        let artifact = obj
            .status
            .and_then(|s| s.artifact)
            .ok_or_else(|| anyhow!("no artifact"))?;
        assert_eq!(
            artifact.revision,
            expected_revision(&s3.list_prefix(&bucket, &p)?, |_| true)
        );
        let lines = proxy.request_lines();
        let via_proxy = format!("GET http://{endpoint}/{bucket}");
        assert!(lines.iter().any(|l| l.starts_with(&via_proxy)), "{lines:#?}");
        let sent = proxy
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text: String = sent
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        // base64("pxuser:pxpass")
        assert!(
            text.to_ascii_lowercase()
                .contains("proxy-authorization: basic chh1c2vyonb4cgfzcw=="),
            "no proxy credentials in the requests"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cert_secret_supplies_the_ca_and_client_certificate_for_https_endpoints() -> anyhow::Result<()> {
    TestNs::run("src_bucket_tls", |t| async move {
        // No S3 server speaks TLS here; lighttpd's HTTPS ports with the test CA
        // (E2E_HTTPS_ADDR) and with client certificates required (E2E_MTLS_ADDR) do. A completed handshake shows as the server's
        // HTTP answer (404: not an S3 API), a refused one as a TLS error.
        let read = |k: &str| -> anyhow::Result<String> { Ok(fs_err::read_to_string(t.env.get(k)?)?) };
        let (ca, cert, key) = (
            read("E2E_TEST_CA")?,
            read("E2E_TLS_CLIENT_CERT")?,
            read("E2E_TLS_CLIENT_KEY")?,
        );
        for (name, data) in [
            ("ca-only", json!({"ca.crt": ca})),
            ("mtls", json!({"ca.crt": ca, "tls.crt": cert, "tls.key": key})),
        ] {
            put_secret(&t, name, data).await?;
        }
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<Bucket> = Api::namespaced(t.client.clone(), &t.name);
        let (https, mtls) = (t.env.get("E2E_HTTPS_ADDR")?, t.env.get("E2E_MTLS_ADDR")?);
        let cases = [
            ("no-ca", https, None, false),
            ("ca", https, Some("ca-only"), true),
            ("mtls-no-cert", mtls, Some("ca-only"), false),
            ("mtls", mtls, Some("mtls"), true),
        ];
        for (name, endpoint, cert_secret, handshake) in cases {
            let mut spec = json!({"bucketName": "bucket", "endpoint": endpoint, "insecure": false});
            if let Some(s) = cert_secret {
                spec["certSecretRef"] = json!({"name": s});
            }
            apply(&api, &manifest(&t.name, name, &spec)).await?;
            let obj = wait_for(&api, name, "Ready=False", WAIT, ready_is("False"))
                .await
                .with_context(|| ctl.log_tail(30))?;
            let (_, reason, message) = ready(&obj);
            assert_eq!(reason, reasons::BUCKET_OPERATION_FAILED, "{name}: {message}");
            assert_eq!(message.contains("404 Not Found"), handshake, "{name}: {message}");
            if !handshake {
                // A missing CA fails in the client's certificate check. A missing client
                // certificate fails on the server: with TLS 1.3 its "certificate required"
                // alert comes after the client considers the handshake done, so the client sees
                // that alert, the connection closing, or its pooled connection going away before
                // the request ("connection was not ready"), depending on timing.
                let m = message.to_ascii_lowercase();
                let dropped = ["connection closed", "connection was not ready"]
                    .iter()
                    .any(|s| m.contains(s));
                assert!(
                    m.contains("certificate") || (name == "mtls-no-cert" && dropped),
                    "{name}: {message}"
                );
            }
        }
        Ok(())
    })
    .await
}

/// A restart on an empty storage path (a new pod's empty volume) rebuilds the Bucket artifact
/// without being asked: same revision, same digest, served again, `latest.tar.gz` too. Flux's
/// source-controller leaves such an object without a served artifact
/// (fluxcd/source-controller#936); we keep the rebuild.
#[tokio::test]
async fn a_restart_with_empty_storage_rebuilds_the_same_artifact() -> anyhow::Result<()> {
    TestNs::run("src_bucket_rebuild", |t| async move {
        let s3 = S3::new(&t)?;
        let (bucket, p, _cleanup) = s3.scratch(&t)?;
        s3.put(&bucket, &format!("{p}a.yaml"), b"a: 1\n")?;
        s3.put(&bucket, &format!("{p}dir/b.yaml"), b"b: 1\n")?;
        let (access, secret) = (t.env.get("E2E_S3_ACCESS_KEY")?, t.env.get("E2E_S3_SECRET_KEY")?);
        s3_secret(&t, "creds", access, secret).await?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let api: Api<Bucket> = Api::namespaced(t.client.clone(), &t.name);
        let spec = json!({"bucketName": bucket, "endpoint": t.env.get("E2E_S3_ENDPOINT")?,
                          "secretRef": {"name": "creds"}, "prefix": p});
        apply(&api, &manifest(&t.name, "b", &spec)).await?;
        let obj = wait_for(&api, "b", "Ready=True", WAIT, ready_is("True"))
            .await
            .with_context(|| ctl.log_tail(30))?;
        let built = e2e::source::artifact(&obj).ok_or_else(|| anyhow!("no artifact"))?;

        let storage_dir = ctl.storage_dir.clone();
        drop(ctl);
        fs_err::remove_dir_all(&storage_dir)?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let rebuilt = e2e::source::wait_until_served(&api, "b", &built.digest, WAIT)
            .await
            .with_context(|| ctl.log_tail(30))?;
        assert_eq!((&rebuilt.revision, &rebuilt.path), (&built.revision, &built.path));
        assert!(
            rebuilt.url.contains(&ctl.storage_addr()?),
            "the new instance serves it: {}",
            rebuilt.url
        );
        let obj = api.get("b").await?;
        assert_eq!(ready(&obj).0, "True", "{:?}", ready(&obj));
        let latest = obj.status.and_then(|s| s.url).unwrap_or_default();
        assert!(latest.ends_with("/latest.tar.gz"), "{latest}");
        let files = artifact_contents(&latest, &built.digest).await?;
        assert_eq!(
            files.keys().cloned().collect::<Vec<_>>(),
            [format!("{p}a.yaml"), format!("{p}dir/b.yaml")]
        );
        Ok(())
    })
    .await
}
