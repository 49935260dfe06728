//! The helm step (issue 6) with the pinned helm v4.2.3 binary (`E2E_HELM` from the e2e env): a local
//! chart rendered, an http chart repository (served by a small server inside the test) pulled and
//! cached, a pre-pulled `.helm-charts/` project, and error cases naming file and field.

use e2e::{ChildLog, Env};
use kluctl_engine::helm::{Capabilities, Helm, HelmBinary, RenderRequest, find_pre_pulled_dir};
use kluctl_engine::yaml::parse_multi_doc;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A helm binary isolated from the user's helm config and cache.
fn helm(tmp: &Path) -> anyhow::Result<Helm> {
    let env = Env::load()?;
    let mut bin = HelmBinary::new(env.get("E2E_HELM")?);
    for (k, d) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        bin.env.push((k.into(), tmp.join("helm-home").join(d).into()));
    }
    bin.check()?;
    Ok(Helm::new(bin, tmp.join("chart-cache")))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    fs_err::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    fs_err::write(path, text)?;
    Ok(())
}

/// A chart with a values-driven ConfigMap, a hook, a test hook (dropped) and a CRD.
fn make_chart(dir: &Path, name: &str, version: &str) -> anyhow::Result<()> {
    write(
        &dir.join("Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )?;
    write(&dir.join("values.yaml"), "greeting: hello\nreplicas: 1\n")?;
    write(
        &dir.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n  namespace: {{ .Release.Namespace }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  replicas: {{ .Values.replicas | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n",
    )?;
    write(
        &dir.join("templates/hook.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook\n  annotations:\n    helm.sh/hook: pre-install\n",
    )?;
    write(
        &dir.join("templates/test.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers: [{name: t, image: busybox}]\n",
    )?;
    write(
        &dir.join("crds/crd.yaml"),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n",
    )?;
    Ok(())
}

fn render(
    helm: &Helm,
    project: &Path,
    item: &str,
    caps: &Capabilities,
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let item_dir = project.join(item);
    let pre = find_pre_pulled_dir(project, Path::new(item));
    let req = RenderRequest {
        config_file: &item_dir.join("helm-chart.yaml"),
        project_root: project,
        item_source_dir: &item_dir,
        pre_pulled_dir: pre.as_deref(),
        capabilities: caps,
    };
    let out = helm.render(&req)?;
    parse_multi_doc(&fs_err::read_to_string(out)?).map_err(|e| anyhow::anyhow!(e))
}

fn names(objects: &[serde_json::Map<String, serde_json::Value>]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn local_chart_renders_with_values_namespace_crds_and_hooks() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let helm = helm(tmp.path())?;
    let project = tmp.path().join("project");
    make_chart(&project.join("charts/demo"), "demo", "0.1.0")?;
    write(
        &project.join("app/helm-chart.yaml"),
        "helmChart:\n  path: ../charts/demo\n  releaseName: rel\n  namespace: apps\n",
    )?;
    write(
        &project.join("app/helm-values.yaml"),
        "greeting: hi from values\n",
    )?;
    let caps = Capabilities {
        kube_version: Some("v1.30.0".into()),
        api_versions: vec!["example.com/v1".into()],
    };
    let objects = render(&helm, &project, "app", &caps)?;
    assert_eq!(
        names(&objects),
        [
            "CustomResourceDefinition/widgets.example.com",
            "ConfigMap/rel-cm",
            "ConfigMap/rel-hook"
        ]
    );
    let cm = &objects[1];
    assert_eq!(cm["metadata"]["namespace"], "apps");
    assert_eq!(cm["data"]["greeting"], "hi from values");
    assert_eq!(cm["data"]["replicas"], "1");
    assert_eq!(cm["data"]["kube"], "v1.30.0");
    for o in &objects {
        assert_eq!(
            o["metadata"]["annotations"]["kluctl.io/helm-install-namespace"], "apps",
            "{o:?}"
        );
    }
    assert!(project.join("app/helm-rendered.yaml").is_file());

    // skipCRDs, custom output, no namespace (no annotation).
    write(
        &project.join("app/helm-chart.yaml"),
        "helmChart:\n  path: ../charts/demo\n  releaseName: rel\n  skipCRDs: true\n  output: out.yaml\n",
    )?;
    let objects = render(&helm, &project, "app", &caps)?;
    assert_eq!(names(&objects), ["ConfigMap/rel-cm", "ConfigMap/rel-hook"]);
    assert_eq!(objects[0]["metadata"]["namespace"], "default");
    assert!(objects[0]["metadata"].get("annotations").is_none());
    assert!(project.join("app/out.yaml").is_file());
    Ok(())
}

/// Serves `dir` over HTTP on 127.0.0.1 and counts requests.
fn serve(dir: PathBuf) -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let mut s = &stream;
            match fs_err::read(dir.join(&path)) {
                Ok(body) if !path.contains("..") => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(&body);
                }
                _ => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        }
    });
    Ok((port, count))
}

fn run(helm: &Helm, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(&helm.binary.path)
        .args(args)
        .envs(helm.binary.env.iter().map(|(k, v)| (k, v)))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn http_repo_chart_is_pulled_once_then_cached_and_pre_pulled_layout_works() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let helm = helm(tmp.path())?;
    let repo = tmp.path().join("repo");
    make_chart(&tmp.path().join("src/remote"), "remote", "1.2.3")?;
    fs_err::create_dir_all(&repo)?;
    let repo_s = repo.to_string_lossy().to_string();
    run(
        &helm,
        &[
            "package",
            &tmp.path().join("src/remote").to_string_lossy(),
            "-d",
            &repo_s,
        ],
    )?;
    let (port, count) = serve(repo.clone())?;
    let url = format!("http://127.0.0.1:{port}/charts");
    // helm repo index with the served URL, files under /charts/.
    let charts = repo.join("charts");
    fs_err::create_dir_all(&charts)?;
    fs_err::rename(repo.join("remote-1.2.3.tgz"), charts.join("remote-1.2.3.tgz"))?;
    run(
        &helm,
        &["repo", "index", &charts.to_string_lossy(), "--url", &url],
    )?;

    let project = tmp.path().join("project");
    let chart_yaml = format!(
        "helmChart:\n  repo: {url}\n  chartName: remote\n  chartVersion: 1.2.3\n  releaseName: r\n  skipPrePull: true\n"
    );
    write(&project.join("item/helm-chart.yaml"), &chart_yaml)?;
    let caps = Capabilities::default();
    let objects = render(&helm, &project, "item", &caps)?;
    assert_eq!(
        names(&objects),
        [
            "CustomResourceDefinition/widgets.example.com",
            "ConfigMap/r-cm",
            "ConfigMap/r-hook"
        ]
    );
    let after_first = count.load(Ordering::SeqCst);
    assert!(
        after_first >= 2,
        "index and chart fetched, got {after_first} requests"
    );
    let cached = helm
        .cache_dir
        .join(format!("http_{port}_127.0.0.1/charts/remote/1.2.3/Chart.yaml"));
    assert!(cached.is_file(), "{} missing", cached.display());
    render(&helm, &project, "item", &caps)?;
    assert_eq!(
        count.load(Ordering::SeqCst),
        after_first,
        "second render must use the cache"
    );

    // Bad version: helm's error, naming the file.
    write(
        &project.join("bad/helm-chart.yaml"),
        &chart_yaml.replace("1.2.3", "9.9.9"),
    )?;
    let err = render(&helm, &project, "bad", &caps).unwrap_err().to_string();
    assert!(
        err.contains("failed to pull helm chart 'remote' version '9.9.9'")
            && err.contains("bad/helm-chart.yaml"),
        "{err}"
    );

    // Pre-pulled layout: .helm-charts/http_<port>_127.0.0.1/charts/remote/1.2.3 (skipPrePull: false).
    write(
        &project.join("pre/helm-chart.yaml"),
        &chart_yaml.replace("  skipPrePull: true\n", ""),
    )?;
    let err = render(&helm, &project, "pre", &caps).unwrap_err().to_string();
    assert!(
        err.contains("failed to find pre-pulled helm chart 'remote' version '1.2.3'"),
        "{err}"
    );
    let pre = project.join(format!(".helm-charts/http_{port}_127.0.0.1/charts/remote/1.2.3"));
    make_chart(&pre, "remote", "1.2.3")?;
    let requests = count.load(Ordering::SeqCst);
    let objects = render(&helm, &project, "pre", &caps)?;
    assert_eq!(objects.len(), 3);
    assert_eq!(
        count.load(Ordering::SeqCst),
        requests,
        "pre-pulled charts are not fetched"
    );
    Ok(())
}

#[test]
fn errors_name_file_and_field() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let helm = helm(tmp.path())?;
    let project = tmp.path().join("project");
    let caps = Capabilities::default();
    write(
        &project.join("a/helm-chart.yaml"),
        "helmChart:\n  path: missing\n  releaseName: r\n",
    )?;
    let err = render(&helm, &project, "a", &caps).unwrap_err().to_string();
    assert!(
        err.contains("failed to find local helm chart") && err.contains("a/helm-chart.yaml"),
        "{err}"
    );
    write(
        &project.join("b/helm-chart.yaml"),
        "helmChart:\n  repo: https://x.example\n  chartName: c\n  releaseName: r\n",
    )?;
    let err = render(&helm, &project, "b", &caps).unwrap_err().to_string();
    assert!(
        err.contains("b/helm-chart.yaml") && err.contains("helmChart.chartVersion"),
        "{err}"
    );
    write(&project.join("c/helm-chart.yaml"), "helmChart: {path: [\n")?;
    let err = render(&helm, &project, "c", &caps).unwrap_err().to_string();
    assert!(err.contains("c/helm-chart.yaml"), "{err}");
    // A template error surfaces helm's stderr.
    make_chart(&project.join("d/chart"), "broken", "0.1.0")?;
    write(
        &project.join("d/chart/templates/bad.yaml"),
        "{{ .Values.nope.deeper }}\n",
    )?;
    write(
        &project.join("d/helm-chart.yaml"),
        "helmChart:\n  path: chart\n  releaseName: r\n",
    )?;
    let err = render(&helm, &project, "d", &caps).unwrap_err().to_string();
    assert!(
        err.contains("failed to render helm chart") && err.contains("nil pointer"),
        "{err}"
    );
    let missing = Helm::new(HelmBinary::new("/nonexistent/helm"), tmp.path());
    let err = missing.binary.check().unwrap_err().to_string();
    assert!(
        err.starts_with("failed to run helm at '/nonexistent/helm'") && err.contains("hint:"),
        "{err}"
    );
    Ok(())
}

/// A `docker-registry` we started, stopped (by its own pid) when dropped.
struct Registry(std::process::Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry(tmp: &Path) -> anyhow::Result<(Registry, u16)> {
    let env = Env::load()?;
    let bin = match env.get("E2E_DOCKER_REGISTRY") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env.get("E2E_TOOLS_BIN")?).join("docker-registry"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "'{}' is missing\nhint: run 'e2e/scripts/servers.sh install' (or 'make e2e-up') to install Debian's docker-registry",
        bin.display()
    );
    let config = tmp.join("registry.yml");
    // Port 0: the registry binds a free port and logs it ("listening on 127.0.0.1:<port>", at info).
    write(
        &config,
        &format!(
            "version: 0.1\nlog: {{level: info}}\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:0\n",
            tmp.join("registry-data").display()
        ),
    )?;
    let mut child = std::process::Command::new(&bin)
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take();
    let registry = Registry(child);
    let log = ChildLog::follow(
        stderr.ok_or_else(|| anyhow::anyhow!("docker-registry has no stderr pipe"))?,
        &tmp.join("registry.log"),
    )?;
    let port = log.wait_for("its address", std::time::Duration::from_secs(20), |line| {
        let addr = line.split("listening on ").nth(1)?;
        let addr = addr.split(['"', ' ', ',']).next()?;
        addr.rsplit(':').next()?.parse::<u16>().ok()
    })?;
    Ok((registry, port))
}

#[test]
fn oci_chart_is_pulled_with_plain_http_and_cached() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut helm = helm(tmp.path())?;
    let (registry_process, port) = start_registry(tmp.path())?;
    make_chart(&tmp.path().join("src/ocichart"), "ocichart", "0.3.0")?;
    let pkg = tmp.path().join("pkg");
    run(
        &helm,
        &[
            "package",
            &tmp.path().join("src/ocichart").to_string_lossy(),
            "-d",
            &pkg.to_string_lossy(),
        ],
    )?;
    let registry = format!("127.0.0.1:{port}");
    run(
        &helm,
        &[
            "push",
            &pkg.join("ocichart-0.3.0.tgz").to_string_lossy(),
            &format!("oci://{registry}/charts"),
            "--plain-http",
        ],
    )?;

    let project = tmp.path().join("project");
    write(
        &project.join("item/helm-chart.yaml"),
        &format!(
            "helmChart:\n  repo: oci://{registry}/charts/ocichart\n  chartVersion: 0.3.0\n  releaseName: o\n  skipPrePull: true\n"
        ),
    )?;
    let caps = Capabilities::default();
    // Without plain http helm talks https to the registry and fails; the error names the file.
    let err = render(&helm, &project, "item", &caps).unwrap_err().to_string();
    assert!(
        err.contains("failed to pull helm chart 'ocichart' version '0.3.0'")
            && err.contains("item/helm-chart.yaml"),
        "{err}"
    );
    helm.plain_http_registries.push(registry.clone());
    let objects = render(&helm, &project, "item", &caps)?;
    assert_eq!(
        names(&objects),
        [
            "CustomResourceDefinition/widgets.example.com",
            "ConfigMap/o-cm",
            "ConfigMap/o-hook"
        ]
    );
    let cached = helm
        .cache_dir
        .join(format!("oci_{port}_127.0.0.1/charts/ocichart/0.3.0/Chart.yaml"));
    assert!(cached.is_file(), "{} missing", cached.display());
    // Cached: a second render works with the registry gone.
    drop(registry_process);
    render(&helm, &project, "item", &caps)?;
    Ok(())
}
