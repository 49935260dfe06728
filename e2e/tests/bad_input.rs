//! Bad input, end to end on the real apiserver: every case first deploys a good one-ConfigMap
//! project (or gets a good artifact), then breaks one input, and asserts Ready=False with a stable
//! reason, a message naming the object, file and field, an event with that reason, and that
//! nothing was deleted (the ConfigMap, or the last good artifact, is still there).
//!
//! One `kluctl-controller` serves every KluctlDeployment and Provider case (one namespace, cases
//! run concurrently, each with its own discriminator), one `source-controller` every GitRepository
//! case. KluctlDeployments read their project from a GitRepository whose status this test writes
//! (no source-controller), pointing at an HTTP server inside the test: that is how a malicious
//! artifact reaches the controller. All KluctlDeployments have `prune: true`, so a deploy of a
//! partial render would delete.
//!
//! | case | input | reason | the message (or lastPrepareError) says |
//! |------|-------|--------|-------------------|
//! | `yaml-deployment` | deployment.yaml is not YAML | PrepareFailed | failed to parse 'deployment.yaml': error: line 3 column 4: … |
//! | `yaml-manifest` | a manifest is not YAML | PrepareFailed | building kustomize objects for 'app' failed: … MalformedYAMLError: yaml: line 2 … in File: configmap.yaml |
//! | `json-vars` | a vars file is malformed JSON | PrepareFailed | failed to load vars[0] (file) of 'deployment.yaml': failed to load vars from vars.json: … line 1 column 9 … |
//! | `jinja-syntax` | `{% if %}` in deployment.yaml | PrepareFailed | failed to render 'deployment.yaml': … line 2: syntax error … |
//! | `jinja-undefined` | undefined variable in a manifest | PrepareFailed | … failed to render template "app/configmap.yaml": line 7: undefined value: `nope` is undefined |
//! | `jinja-filter` | unknown filter in .kluctl.yaml | PrepareFailed | names `.kluctl.yaml` and `nosuchfilter` |
//! | `unknown-target` | `spec.target` not in .kluctl.yaml | PrepareFailed | target nope not existent in kluctl project config (Kluctl's words) |
//! | `missing-include` | `include:` of a missing dir | PrepareFailed | invalid 'deployment.yaml': deployments[1].include: missing does not exist or is not a directory |
//! | `missing-path` | `path:` of a missing dir | PrepareFailed | invalid 'deployment.yaml': deployments[1].path: deployment directory does not exist: gone |
//! | `kustomize-resource` | kustomization lists a missing file | PrepareFailed | building kustomize objects for 'app' failed: kustomize build failed: … accumulating resources from 'missing.yaml' … |
//! | `kustomize-invalid` | kustomization.yaml of the wrong shape | PrepareFailed | building kustomize objects for 'app' failed: … invalid Kustomization: … Kustomization.resources … |
//! | `helm-chart` | helm-chart.yaml without a chart source | PrepareFailed | failed to render helm chart of deployment item 'chart': failed to load helm chart config '…/chart/helm-chart.yaml': field 'helmChart.repo': … |
//! | `helm-values` | helm-values.yaml is not YAML | PrepareFailed | names item 'chart' and `helm-values.yaml` |
//! | `unknown-field` | an unknown field in deployment.yaml | PrepareFailed | failed to parse 'deployment.yaml': error: line 3 column 5: unknown field `nosuch` … |
//! | `duplicate-target` | two targets of one name | PrepareFailed | invalid '.kluctl.yaml': targets[1].name: duplicate target name 'test' |
//! | `not-a-mapping` | a manifest document is a list | PrepareFailed | building kustomize objects for 'app' failed: … accumulating resources from 'list.yaml': missing Resource metadata … |
//! | `no-kind` | a manifest without kind | PrepareFailed | building kustomize objects for 'app' failed: … accumulating resources from 'nokind.yaml': missing kind … |
//! | `spec-path` | `spec.path` not in the artifact | PrepareFailed | kluctlDeployment path not found: spec.path 'nothere' does not exist in the source |
//! | `missing-arg` | a required arg not given | PrepareFailed | … Failed to load target test: required argument needed not set |
//! | `missing-vars-file` | `vars: - file:` of a missing file | PrepareFailed | failed to load vars[0] of 'deployment.yaml': failed to find template "missing-vars.yaml" … |
//! | `spec-context` | `spec.context` not in the kubeconfig Secret's kubeconfig | PrepareFailed | names `nosuchcontext` |
//! | `kubeconfig-garbage` | kubeconfig Secret holds garbage | PrepareFailed | spec.kubeConfig.secretRef: the kubeconfig in Secret 'ns/kc-garbage' key 'value' is unusable: it does not parse as a kubeconfig (line 1 column 9) |
//! | `kubeconfig-missing` | kubeconfig Secret does not exist | PrepareFailed | spec.kubeConfig.secretRef: Secret 'ns/kc-missing' not found |
//! | `tar-dotdot` | artifact entry `../escape.yaml` | ArtifactFailed | failed to unpack artifact of revision '…': entry '../escape.yaml' is not allowed: the path escapes the destination |
//! | `tar-absolute` | artifact entry `/tmp/escape.yaml` | ArtifactFailed | … entry '/tmp/escape.yaml' is not allowed: … |
//! | `tar-symlink` | `project/app` is a symlink out of the tree (skipped, as Flux's consumers do) | PrepareFailed | invalid 'deployment.yaml': deployments[0].path: deployment directory does not exist: app |
//! | `tar-hardlink` | a hard link entry | ArtifactFailed | … entry 'project/app/link.yaml' is not allowed: entries of type Link are not allowed |
//! | `tar-device` | a character device entry | ArtifactFailed | … entry 'project/app/tty' is not allowed: entries of type Char are not allowed |
//! | `tar-fifo` | a FIFO entry | ArtifactFailed | … entry 'project/app/fifo' is not allowed: entries of type Fifo are not allowed |
//! | `tar-duplicate` | a file, then a directory of the same name | ArtifactFailed | … entry 'project/deployment.yaml' cannot be written: entity already exists |
//! | `gzip-bomb` | 1 GiB of zeros in about 1 MiB of gzip | ArtifactFailed | … entry 'project/bomb' takes the unpacked size over the limit of 104857600 bytes |
//! | `file-too-large` | one file over the unpack limit | ArtifactFailed | … entry 'project/app/big.txt' takes the unpacked size over the limit of 104857600 bytes |
//! | `not-gzip` | the artifact is not gzip | ArtifactFailed | failed to unpack artifact of revision '…': it is not gzip-compressed |
//! | `truncated-gzip` | the gzip stream is cut short | ArtifactFailed | … unreadable archive: incomplete deflate stream |
//! | `provider-address` | Provider `spec.address` not a URL | InvalidAddress (Provider) | Provider 'ns/not-a-url': invalid address in spec.address: it is not an absolute URL |
//! | `git-semver` | `spec.ref.semver` not a range | GitOperationFailed (GitRepository) | invalid spec.ref: invalid reference semver 'not a range >< 1': … |
//! | `git-branch` | `spec.ref.branch` does not exist | GitOperationFailed (GitRepository) | branch 'no-such-branch' not found in '<url>' |
//! | `git-tag` | `spec.ref.tag` does not exist | GitOperationFailed (GitRepository) | tag 'v9.9.9' not found in '<url>' |
//!
//! Covered elsewhere (not repeated): a wrong artifact digest
//! (`kluctl_controller_sources.rs`), a deleted source (same file), a broken template line
//! (`kluctl_controller.rs`), schema-invalid specs (`invalid.rs`).
//!
//! Needs `cargo build -p kluctl-controller --bin kluctl-controller -p source-controller --bin
//! source-controller` and the environment of `make e2e-up`.

// The case table and the one scenario per case read best as long lists.
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use e2e::kluctl_deployment as kd;
use e2e::source::{apply, artifact, event_messages};
use e2e::{GitRepo, KluctlController, SourceController, TestNs, poll_until};
use gitops_api::kluctl::v1beta1::KluctlDeployment;
use gitops_api::source::v1::GitRepository;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sha2::Digest as _;

const WAIT: Duration = Duration::from_secs(180);

/// Files of the good project (under `project/`): ConfigMap `app-<id>` in the test namespace.
fn good_files() -> Vec<(String, String)> {
    [
        (
            ".kluctl.yaml",
            "discriminator: e2e-{{ args.ns }}-{{ args.id }}\nargs:\n  - name: ns\n  - name: id\ntargets:\n  - name: test\n",
        ),
        ("deployment.yaml", "deployments:\n  - path: app\n"),
        (
            "app/configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{{ args.id }}\n  namespace: {{ args.ns }}\ndata:\n  message: good\n",
        ),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_owned(), c.to_owned()))
    .collect()
}

/// What a case breaks.
enum Bad {
    /// These project files replace (or add to) the good ones; an empty content removes the file.
    Files(&'static [(&'static str, &'static str)]),
    /// A merge patch of the KluctlDeployment's spec.
    Spec(serde_json::Value),
    /// The artifact bytes themselves.
    Archive(fn() -> anyhow::Result<Vec<u8>>),
}

struct Case {
    id: &'static str,
    bad: Bad,
    reason: &'static str,
    /// Substrings of the Ready message: the place (file, field, object).
    names: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    use Bad::{Archive, Files, Spec};
    vec![
        Case {
            id: "yaml-deployment",
            bad: Files(&[("deployment.yaml", "deployments:\n  - path: app\n   oops: [\n")]),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "line 3"],
        },
        Case {
            id: "yaml-manifest",
            bad: Files(&[(
                "app/configmap.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
            )]),
            reason: "PrepareFailed",
            names: &["'app'", "configmap.yaml", "line 2"],
        },
        Case {
            id: "json-vars",
            bad: Files(&[
                (
                    "deployment.yaml",
                    "vars:\n  - file: vars.json\ndeployments:\n  - path: app\n",
                ),
                ("vars.json", "{\"a\": 1,, }"),
            ]),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "vars[0]", "vars.json"],
        },
        Case {
            id: "jinja-syntax",
            bad: Files(&[("deployment.yaml", "deployments:\n{% if %}\n  - path: app\n")]),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "line 2"],
        },
        Case {
            id: "jinja-undefined",
            bad: Files(&[(
                "app/configmap.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{{ args.id }}\n  namespace: {{ args.ns }}\ndata:\n  message: {{ nope.deeper }}\n",
            )]),
            reason: "PrepareFailed",
            names: &["app/configmap.yaml", "line 7", "nope"],
        },
        Case {
            id: "jinja-filter",
            bad: Files(&[(
                ".kluctl.yaml",
                "discriminator: e2e-{{ args.ns | nosuchfilter }}-{{ args.id }}\nargs:\n  - name: ns\n  - name: id\ntargets:\n  - name: test\n",
            )]),
            reason: "PrepareFailed",
            names: &[".kluctl.yaml", "nosuchfilter"],
        },
        Case {
            id: "unknown-target",
            bad: Spec(json!({"target": "nope"})),
            reason: "PrepareFailed",
            names: &["target nope"],
        },
        Case {
            id: "missing-include",
            bad: Files(&[(
                "deployment.yaml",
                "deployments:\n  - path: app\n  - include: missing\n",
            )]),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "deployments[1].include", "missing"],
        },
        Case {
            id: "missing-path",
            bad: Files(&[("deployment.yaml", "deployments:\n  - path: app\n  - path: gone\n")]),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "deployments[1].path", "gone"],
        },
        Case {
            id: "kustomize-resource",
            bad: Files(&[(
                "app/kustomization.yaml",
                "resources:\n  - configmap.yaml\n  - missing.yaml\n",
            )]),
            reason: "PrepareFailed",
            names: &["'app'", "missing.yaml"],
        },
        Case {
            id: "kustomize-invalid",
            bad: Files(&[("app/kustomization.yaml", "resources: 5\n")]),
            reason: "PrepareFailed",
            names: &["'app'", "Kustomization.resources"],
        },
        Case {
            id: "helm-chart",
            bad: Files(&[
                (
                    "deployment.yaml",
                    "deployments:\n  - path: app\n  - path: chart\n",
                ),
                ("chart/helm-chart.yaml", "helmChart:\n  releaseName: x\n"),
            ]),
            reason: "PrepareFailed",
            names: &["'chart'", "helm-chart.yaml", "helmChart.repo"],
        },
        Case {
            id: "helm-values",
            bad: Files(&[
                (
                    "deployment.yaml",
                    "deployments:\n  - path: app\n  - path: chart\n",
                ),
                (
                    "chart/helm-chart.yaml",
                    "helmChart:\n  path: mychart\n  releaseName: x\n",
                ),
                (
                    "chart/mychart/Chart.yaml",
                    "apiVersion: v2\nname: mychart\nversion: 0.1.0\n",
                ),
                ("chart/helm-values.yaml", "a: [\n"),
            ]),
            reason: "PrepareFailed",
            names: &["'chart'", "helm-values.yaml"],
        },
        Case {
            id: "unknown-field",
            bad: Files(&[("deployment.yaml", "deployments:\n  - path: app\n    nosuch: 1\n")]),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "line 3", "nosuch"],
        },
        Case {
            id: "duplicate-target",
            bad: Files(&[(
                ".kluctl.yaml",
                "discriminator: e2e-{{ args.ns }}-{{ args.id }}\nargs:\n  - name: ns\n  - name: id\ntargets:\n  - name: test\n  - name: test\n",
            )]),
            reason: "PrepareFailed",
            names: &[".kluctl.yaml", "targets[1].name"],
        },
        Case {
            id: "not-a-mapping",
            bad: Files(&[("app/list.yaml", "- a\n- b\n")]),
            reason: "PrepareFailed",
            names: &["'app'", "list.yaml"],
        },
        Case {
            id: "no-kind",
            bad: Files(&[("app/nokind.yaml", "apiVersion: v1\nmetadata:\n  name: nokind\n")]),
            reason: "PrepareFailed",
            names: &["'app'", "nokind.yaml", "missing kind"],
        },
        Case {
            id: "spec-path",
            bad: Spec(json!({"path": "nothere"})),
            reason: "PrepareFailed",
            names: &["spec.path", "nothere"],
        },
        Case {
            id: "missing-arg",
            bad: Files(&[(
                ".kluctl.yaml",
                "discriminator: e2e-{{ args.ns }}-{{ args.id }}\nargs:\n  - name: ns\n  - name: id\n  - name: needed\ntargets:\n  - name: test\n",
            )]),
            reason: "PrepareFailed",
            names: &["needed"],
        },
        Case {
            id: "missing-vars-file",
            bad: Files(&[(
                "deployment.yaml",
                "vars:\n  - file: missing-vars.yaml\ndeployments:\n  - path: app\n",
            )]),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "vars[0]", "missing-vars.yaml"],
        },
        Case {
            id: "spec-context",
            bad: Spec(json!({"kubeConfig": {"secretRef": {"name": "kc-admin"}}, "context": "nosuchcontext"})),
            reason: "PrepareFailed",
            names: &["nosuchcontext"],
        },
        Case {
            id: "kubeconfig-garbage",
            bad: Spec(json!({"kubeConfig": {"secretRef": {"name": "kc-garbage"}}})),
            reason: "PrepareFailed",
            names: &[
                "spec.kubeConfig.secretRef",
                "kc-garbage",
                "key 'value'",
                "line 1 column",
            ],
        },
        Case {
            id: "kubeconfig-missing",
            bad: Spec(json!({"kubeConfig": {"secretRef": {"name": "kc-missing"}}})),
            reason: "PrepareFailed",
            names: &["spec.kubeConfig.secretRef", "kc-missing"],
        },
        Case {
            id: "tar-dotdot",
            bad: Archive(|| tar_gz_with(&[special("../escape.yaml", tar::EntryType::Regular, None)])),
            reason: "ArtifactFailed",
            names: &["../escape.yaml", "escapes"],
        },
        Case {
            id: "tar-absolute",
            bad: Archive(|| tar_gz_with(&[special("/tmp/escape.yaml", tar::EntryType::Regular, None)])),
            reason: "ArtifactFailed",
            names: &["/tmp/escape.yaml"],
        },
        Case {
            id: "tar-symlink",
            bad: Archive(|| {
                let mut files = good_files();
                files.retain(|(p, _)| !p.starts_with("app/"));
                tar_gz(
                    &files,
                    &[special(
                        "project/app",
                        tar::EntryType::Symlink,
                        Some("../../../../etc"),
                    )],
                )
            }),
            reason: "PrepareFailed",
            names: &["deployment.yaml", "deployments[0].path", "app"],
        },
        Case {
            id: "tar-hardlink",
            bad: Archive(|| {
                tar_gz_with(&[special(
                    "project/app/link.yaml",
                    tar::EntryType::Link,
                    Some("project/deployment.yaml"),
                )])
            }),
            reason: "ArtifactFailed",
            names: &["project/app/link.yaml", "type Link"],
        },
        Case {
            id: "tar-device",
            bad: Archive(|| tar_gz_with(&[special("project/app/tty", tar::EntryType::Char, None)])),
            reason: "ArtifactFailed",
            names: &["project/app/tty", "type Char"],
        },
        Case {
            id: "tar-fifo",
            bad: Archive(|| tar_gz_with(&[special("project/app/fifo", tar::EntryType::Fifo, None)])),
            reason: "ArtifactFailed",
            names: &["project/app/fifo", "type Fifo"],
        },
        Case {
            id: "tar-duplicate",
            bad: Archive(|| {
                tar_gz_with(&[special(
                    "project/deployment.yaml",
                    tar::EntryType::Directory,
                    None,
                )])
            }),
            reason: "ArtifactFailed",
            names: &["project/deployment.yaml", "already exists"],
        },
        Case {
            id: "gzip-bomb",
            bad: Archive(|| {
                // One GiB of tar stream (zeros after a header), gzipped to about a MiB.
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                let mut header = tar::Header::new_gnu();
                header.set_path("project/bomb")?;
                header.set_size(1 << 30);
                header.set_mode(0o644);
                header.set_cksum();
                gz.write_all(header.as_bytes())?;
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..1024 {
                    gz.write_all(&zeros)?;
                }
                Ok(gz.finish()?)
            }),
            reason: "ArtifactFailed",
            names: &["project/bomb", "104857600"],
        },
        Case {
            id: "file-too-large",
            bad: Archive(|| {
                let big = "x".repeat((100 << 20) + 1);
                let mut files = good_files();
                files.push(("app/big.txt".into(), big));
                tar_gz(&files, &[])
            }),
            reason: "ArtifactFailed",
            names: &["project/app/big.txt", "104857600"],
        },
        Case {
            id: "not-gzip",
            bad: Archive(|| Ok(b"PK\x03\x04 this is a zip, not a tar.gz".to_vec())),
            reason: "ArtifactFailed",
            names: &["not gzip-compressed"],
        },
        Case {
            id: "truncated-gzip",
            bad: Archive(|| {
                let full = tar_gz(&good_files(), &[])?;
                Ok(full[..full.len() / 2].to_vec())
            }),
            reason: "ArtifactFailed",
            names: &["unreadable archive", "incomplete deflate stream"],
        },
    ]
}

/// A tar entry that is not a plain project file.
struct Special {
    path: &'static str,
    kind: tar::EntryType,
    link: Option<&'static str>,
}

fn special(path: &'static str, kind: tar::EntryType, link: Option<&'static str>) -> Special {
    Special { path, kind, link }
}

/// The good project under `project/`, then `extra` entries, as a tar.gz.
fn tar_gz(files: &[(String, String)], extra: &[Special]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
        let mut archive = tar::Builder::new(gz);
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive.append_data(&mut header, format!("project/{path}"), content.as_bytes())?;
        }
        for s in extra {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(s.kind);
            header.set_mode(if s.kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            header.set_size(0);
            // Raw names: the tar crate's setters refuse `..` and absolute paths, which is the point.
            let name = &mut header.as_old_mut().name;
            name[..s.path.len()].copy_from_slice(s.path.as_bytes());
            if let Some(link) = s.link {
                let target = &mut header.as_old_mut().linkname;
                target[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_cksum();
            archive.append(&header, std::io::empty())?;
        }
        archive.into_inner()?.finish()?;
    }
    Ok(out)
}

fn tar_gz_with(extra: &[Special]) -> anyhow::Result<Vec<u8>> {
    tar_gz(&good_files(), extra)
}

/// Serves `/<path>` from a map the test fills; 404 for anything else.
struct Server {
    base: String,
    files: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
}

impl Server {
    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let files: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>> = Arc::default();
        let served = files.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let served = served.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    // The request head fits one read: a GET without a body.
                    let mut head = [0u8; 4096];
                    let n = stream.read(&mut head).unwrap_or(0);
                    let line = String::from_utf8_lossy(&head[..n]);
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let body = served.lock().ok().and_then(|m| m.get(&path).cloned());
                    let _ = match body {
                        Some(body) => stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                    body.len()
                                )
                                .as_bytes(),
                            )
                            .and_then(|()| stream.write_all(&body)),
                        None => stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
                    };
                });
            }
        });
        Ok(Server { base, files })
    }

    /// Serves `body` at `/<path>`; its URL and digest.
    fn put(&self, path: &str, body: Vec<u8>) -> (String, String) {
        let digest = format!(
            "sha256:{}",
            gitops_api::revision::lower_hex(&sha2::Sha256::digest(&body))
        );
        if let Ok(mut files) = self.files.lock() {
            files.insert(format!("/{path}"), Arc::new(body));
        }
        (format!("{}/{path}", self.base), digest)
    }
}

/// Writes GitRepository `name`'s `status.artifact` (revision of `commit`, served at `url`).
async fn publish(
    api: &Api<GitRepository>,
    ns: &str,
    name: &str,
    commit: &str,
    url: &str,
    digest: &str,
) -> anyhow::Result<()> {
    let status = json!({"status": {"artifact": {
        "digest": digest,
        "lastUpdateTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "path": format!("gitrepository/{ns}/{name}/{commit}.tar.gz"),
        "revision": format!("main@sha1:{commit}"),
        "url": url,
    }}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .with_context(|| format!("writing the status of GitRepository {ns}/{name}"))?;
    Ok(())
}

/// Polls `name` until `pred` holds (up to [`WAIT`]); polling, not a watch, so a dropped
/// connection to the shared apiserver only delays the check.
async fn poll<K>(api: &Api<K>, name: &str, what: &str, pred: impl Fn(&K) -> bool) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let last: Mutex<Option<K>> = Mutex::new(None);
    let waited = poll_until(&format!("{name}: {what}"), WAIT, || async {
        let Ok(Some(obj)) = api.get_opt(name).await else {
            return false;
        };
        let ok = pred(&obj);
        if let Ok(mut l) = last.lock() {
            *l = Some(obj);
        }
        ok
    })
    .await;
    let last = last.into_inner().ok().flatten();
    match (waited, last) {
        (Ok(()), Some(obj)) => Ok(obj),
        (Err(e), last) => Err(e.context(format!("last state: {last:#?}"))),
        (Ok(()), None) => bail!("{name}: {what}: never read"),
    }
}

/// Polls until an event with `reason` about `name` exists; its messages.
async fn wait_event(t: &TestNs, name: &str, reason: &str) -> anyhow::Result<Vec<String>> {
    let found: Mutex<Vec<String>> = Mutex::new(Vec::new());
    poll_until(&format!("an event {reason} about {name}"), WAIT, || async {
        let messages = event_messages(&t.client, &t.name, name, reason)
            .await
            .unwrap_or_default();
        let any = !messages.is_empty();
        if let Ok(mut f) = found.lock() {
            *f = messages;
        }
        any
    })
    .await?;
    Ok(found.into_inner().unwrap_or_default())
}

/// One case: deploy the good project, break it, check the failure and that nothing was deleted.
async fn run_case(t: &TestNs, ctl: &KluctlController, server: &Server, case: Case) -> anyhow::Result<()> {
    let ns = &t.name;
    let id = case.id;
    let git: Api<GitRepository> = Api::namespaced(t.client.clone(), ns);
    let kds: Api<KluctlDeployment> = Api::namespaced(t.client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), ns);
    // No source-controller watches this namespace: the GitRepository is only a status to read.
    apply(
        &git,
        &json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": id, "namespace": ns},
            "spec": {"interval": "10m", "url": format!("http://git.example.invalid/{id}.git")},
        }),
    )
    .await?;
    let (url, digest) = server.put(&format!("{id}/good.tar.gz"), tar_gz(&good_files(), &[])?);
    publish(&git, ns, id, &"1".repeat(40), &url, &digest).await?;
    kd::apply(
        &kds,
        id,
        json!({
            "interval": "1h",
            // No retries: each failure is the one reconcile its change triggers, so 35 failing
            // objects do not crowd the workers out.
            "retryInterval": "1h",
            "sourceRef": {"kind": "GitRepository", "name": id},
            "path": "project",
            "target": "test",
            "args": {"ns": ns, "id": id},
            "prune": true,
        }),
    )
    .await?;
    poll(
        &kds,
        id,
        "Ready=True for its generation (the good project)",
        |k| kd::reconciled(k) && kd::ready_is(k, "True", "ReconciliationSucceeded"),
    )
    .await
    .map_err(|e| e.context(ctl.log_tail(20)))?;
    let cm = format!("app-{id}");
    cms.get(&cm)
        .await
        .with_context(|| format!("case {id}: the good project's ConfigMap"))?;

    match case.bad {
        Bad::Files(changes) => {
            let mut files = good_files();
            for (path, content) in changes {
                files.retain(|(p, _)| p != path);
                if !content.is_empty() {
                    files.push(((*path).to_owned(), (*content).to_owned()));
                }
            }
            let (url, digest) = server.put(&format!("{id}/bad.tar.gz"), tar_gz(&files, &[])?);
            publish(&git, ns, id, &"2".repeat(40), &url, &digest).await?;
        }
        Bad::Archive(build) => {
            let body = tokio::task::spawn_blocking(build).await??;
            let (url, digest) = server.put(&format!("{id}/bad.tar.gz"), body);
            publish(&git, ns, id, &"2".repeat(40), &url, &digest).await?;
        }
        Bad::Spec(patch) => {
            kds.patch(id, &PatchParams::default(), &Patch::Merge(json!({"spec": patch})))
                .await?;
        }
    }
    let reason = case.reason;
    let failed = poll(
        &kds,
        id,
        &format!("Ready=False ({reason}) for its generation"),
        |k| kd::reconciled(k) && kd::ready_is(k, "False", reason),
    )
    .await
    .map_err(|e| e.context(ctl.log_tail(20)))?;
    let ready = kd::ready(&failed).map(|c| c.message.clone()).unwrap_or_default();
    // Kluctl's Ready message for prepare failures is fixed and points at lastPrepareError, which
    // holds the full text; other failures carry it in the Ready message itself.
    let text = if reason == "PrepareFailed" {
        if !ready.starts_with("prepare failed") {
            bail!("case {id}: Ready message {ready:?}");
        }
        kd::status(&failed).last_prepare_error
    } else {
        ready
    };
    for want in case.names {
        if !text.contains(want) {
            bail!("case {id}: the message does not name {want:?}: {text:?}");
        }
    }
    let events = wait_event(t, id, reason).await?;
    if !events
        .iter()
        .any(|m| case.names.iter().all(|want| m.contains(want)))
    {
        bail!("case {id}: no {reason} event names {:?}: {events:?}", case.names);
    }
    if cms.get_opt(&cm).await?.is_none() {
        bail!("case {id}: ConfigMap {cm} was deleted");
    }
    Ok(())
}

/// The Provider case: an address that is not a URL.
async fn provider_case(t: &TestNs, ctl: &KluctlController) -> anyhow::Result<()> {
    let ns = &t.name;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        t.client.clone(),
        ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "notification.toolkit.fluxcd.io",
            "v1beta3",
            "Provider",
        )),
    );
    let obj = json!({
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Provider",
        "metadata": {"name": "not-a-url", "namespace": ns},
        "spec": {"type": "generic", "address": "not a url at all"},
    });
    api.create(&PostParams::default(), &serde_json::from_value(obj)?)
        .await?;
    let got = poll(
        &api,
        "not-a-url",
        "Provider Ready=False",
        |o: &kube::api::DynamicObject| {
            o.data["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "False"))
        },
    )
    .await
    .map_err(|e| e.context(ctl.log_tail(40)))?;
    let ready = got.data["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
        .context("Provider Ready")?;
    let reason = ready["reason"].as_str().unwrap_or_default().to_owned();
    let message = ready["message"].as_str().unwrap_or_default();
    if reason != "InvalidAddress" || !message.contains("spec.address") || !message.contains("not-a-url") {
        bail!("case provider-address: Ready is {reason}: {message:?}");
    }
    // No event: Flux's Provider emits none, and neither does ours (the Ready condition is
    // the report).
    Ok(())
}

#[tokio::test]
async fn every_bad_kluctl_input_fails_with_a_reason_naming_the_place_and_deletes_nothing()
-> anyhow::Result<()> {
    Box::pin(TestNs::run("bad_input_kd", |t| async move {
        let ns = t.name.clone();
        let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &ns);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "kc-garbage", "namespace": ns},
                    "stringData": {"value": "this: is: not: a kubeconfig ["},
                }))?,
            )
            .await?;
        // A working kubeconfig, for the case whose spec.context it does not have.
        let admin = fs_err::read_to_string(t.env.get("E2E_KUBECONFIG_ADMIN")?)?;
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "kc-admin", "namespace": ns},
                    "stringData": {"value": admin},
                }))?,
            )
            .await?;
        let ctl = KluctlController::start(
            &t.env,
            &ns,
            &["--command-result-namespace", &ns, "--concurrency", "8"],
        )?;
        let server = Server::start()?;
        let all = cases();
        let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        let results =
            futures::future::join_all(all.into_iter().map(|c| run_case(&t, &ctl, &server, c))).await;
        let provider = provider_case(&t, &ctl).await;
        let mut failures: Vec<String> = ids
            .iter()
            .zip(results)
            .filter_map(|(id, r)| r.err().map(|e| format!("{id}: {e:#}")))
            .collect();
        if let Err(e) = provider {
            failures.push(format!("provider-address: {e:#}"));
        }
        if !failures.is_empty() {
            bail!(
                "{} of {} cases failed:\n{}",
                failures.len(),
                ids.len() + 1,
                failures.join("\n---\n")
            );
        }
        Ok(())
    }))
    .await
}

/// One GitRepository case: a good artifact first, then `spec.ref` broken.
async fn git_case(
    t: &TestNs,
    ctl: &SourceController,
    url: &str,
    name: &str,
    bad_ref: serde_json::Value,
    names: &[&str],
) -> anyhow::Result<()> {
    let ns = &t.name;
    let api: Api<GitRepository> = Api::namespaced(t.client.clone(), ns);
    let object = |r: &serde_json::Value| {
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": ns, "labels": {"e2e.kluctl-gitops/ns": ns}},
            "spec": {"interval": "10m", "url": url, "ref": r},
        })
    };
    apply(&api, &object(&json!({"branch": "main"}))).await?;
    let good = poll(&api, name, "Ready=True", |o| {
        e2e::source::ready_is("True")(Some(o))
    })
    .await
    .map_err(|e| e.context(ctl.log_tail(30)))?;
    let kept = artifact(&good).context("no artifact")?;
    apply(&api, &object(&bad_ref)).await?;
    let failed = poll(
        &api,
        name,
        "Ready=False for the new generation",
        // The Ready condition's observedGeneration: status.observedGeneration moves on success.
        |o: &GitRepository| e2e::source::ready_is("False")(Some(o)),
    )
    .await
    .map_err(|e| e.context(ctl.log_tail(30)))?;
    let status = failed.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .context("Ready")?;
    if ready.reason != "GitOperationFailed" {
        bail!("{name}: reason {} ({:?})", ready.reason, ready.message);
    }
    for want in names {
        if !ready.message.contains(want) {
            bail!(
                "{name}: the Ready message does not name {want:?}: {:?}",
                ready.message
            );
        }
    }
    wait_event(t, name, &ready.reason).await?;
    if artifact(&failed).as_ref() != Some(&kept) {
        bail!("{name}: the last good artifact was not kept");
    }
    Ok(())
}

#[tokio::test]
async fn every_bad_git_reference_fails_with_a_reason_naming_the_field_and_keeps_the_artifact()
-> anyhow::Result<()> {
    Box::pin(TestNs::run("bad_input_git", |t| async move {
        let repo = GitRepo::create(&t.env, &t.name)?;
        repo.commit(&[("a.yaml", "a: 1\n")], "one")?;
        repo.tag("v1.0.0")?;
        let ctl = SourceController::start(&t.env, &t.name, &[])?;
        let url = format!("{}/{}.git", t.env.get("E2E_GIT_HTTP_URL")?, repo.name);
        let (semver, branch, tag) = futures::join!(
            git_case(
                &t,
                &ctl,
                &url,
                "git-semver",
                json!({"semver": "not a range >< 1"}),
                &["spec.ref", "semver", "not a range >< 1"]
            ),
            git_case(
                &t,
                &ctl,
                &url,
                "git-branch",
                json!({"branch": "no-such-branch"}),
                &["no-such-branch"]
            ),
            git_case(&t, &ctl, &url, "git-tag", json!({"tag": "v9.9.9"}), &["v9.9.9"]),
        );
        let failures: Vec<String> = [semver, branch, tag]
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}")))
            .collect();
        if !failures.is_empty() {
            bail!(
                "{} of 3 cases failed:\n{}",
                failures.len(),
                failures.join("\n---\n")
            );
        }
        Ok(())
    }))
    .await
}
