//! `kluctl render --offline-kubernetes --print-all` (and `list-targets`, `list-images`) run as a
//! user runs them, on the public kluctl-examples projects (copied into
//! `e2e/fixtures/kluctl-examples`) and on error fixtures: the objects, labels and annotations
//! must be the ones Kluctl derives from these projects, and failures must name file and line.
//!
//! Needs the `kluctl` binary (`cargo build -p kluctl --bin kluctl`, which `make
//! e2e-test` does) and the pinned kustomize/helm from `make e2e-up`; the cluster only for the
//! cluster-vars test, the Git servers of `make e2e-up` for the git include/vars tests.

use std::path::Path;
use std::process::Output;

use anyhow::{Context as _, bail};
use e2e::{Env, project_root};
use serde_json::Value;

/// Runs `kluctl <args>` in `dir` with the pinned tools and a private Helm cache.
fn kluctl(dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    e2e::run_kluctl(dir, args, &[])
}

/// [`kluctl`] with extra environment variables.
fn kluctl_env(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> anyhow::Result<Output> {
    e2e::run_kluctl(dir, args, vars)
}

fn render(project: &str, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let dir = project_root().join("e2e/fixtures/kluctl-examples").join(project);
    let mut all = vec!["render", "--offline-kubernetes", "--print-all"];
    all.extend_from_slice(args);
    let out = kluctl(&dir, &all)?;
    if !out.status.success() {
        bail!(
            "kluctl {all:?} in {project} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)?;
    Ok(docs)
}

fn s<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn label<'a>(o: &'a Value, name: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get(name))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn annotation<'a>(o: &'a Value, name: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|l| l.get(name))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn tags(o: &Value) -> Vec<&str> {
    (0..64)
        .map(|i| label(o, &format!("kluctl.io/tag-{i}")))
        .take_while(|t| !t.is_empty())
        .collect()
}

/// `Kind/name` of every object, in output order.
fn ids(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", s(o, "/kind"), s(o, "/metadata/name")))
        .collect()
}

#[test]
fn simple_renders_with_discriminator_tags_and_item_dir() -> anyhow::Result<()> {
    let objects = render("simple", &["-t", "simple"])?;
    assert_eq!(
        ids(&objects),
        [
            "Namespace/simple-simple",
            "Deployment/nginx-deployment",
            "Service/nginx"
        ]
    );
    for o in &objects {
        assert_eq!(
            label(o, "kluctl.io/discriminator"),
            "kluctl-examples-simple-simple"
        );
        assert_eq!(tags(o), ["deployment", "nginx"], "include tag, then item tag");
        assert_eq!(annotation(o, "kluctl.io/deployment-item-dir"), "deployment/nginx");
    }
    assert_eq!(s(&objects[1], "/metadata/namespace"), "simple-simple");
    assert_eq!(objects[1]["spec"]["replicas"], 3);
    Ok(())
}

#[test]
fn simple_helm_renders_the_pre_pulled_chart() -> anyhow::Result<()> {
    let objects = render("simple-helm", &["-t", "simple-helm"])?;
    assert_eq!(
        ids(&objects),
        [
            "Namespace/simple-helm-simple-helm",
            "NetworkPolicy/nginx",
            "PodDisruptionBudget/nginx",
            "ServiceAccount/nginx",
            "Secret/nginx-tls",
            "Service/nginx",
            "Deployment/nginx",
        ],
        "helm's install order inside the chart output, files in name order"
    );
    for o in &objects[1..] {
        assert_eq!(s(o, "/metadata/namespace"), "simple-helm-simple-helm");
        assert_eq!(label(o, "app.kubernetes.io/instance"), "nginx", "{o}");
        assert_eq!(
            label(o, "kluctl.io/discriminator"),
            "kluctl-examples-simple-helm-simple-helm"
        );
    }
    Ok(())
}

#[test]
fn gitops_deployment_includes_the_cluster_specific_items() -> anyhow::Result<()> {
    let objects = render(
        "gitops-deployment",
        &["-t", "gitops", "-a", "cluster_name=test.example.com"],
    )?;
    assert_eq!(
        ids(&objects),
        [
            "Namespace/kluctl-gitops",
            "KluctlDeployment/gitops",
            "KluctlDeployment/app1",
            "KluctlDeployment/app2",
        ]
    );
    for o in &objects {
        assert_eq!(
            label(o, "kluctl.io/discriminator"),
            "gitops-test-example-com",
            "slugify"
        );
    }
    assert_eq!(tags(&objects[2]), ["clusters", "test.example.com"]);
    assert_eq!(
        annotation(&objects[2], "kluctl.io/deployment-item-dir"),
        "clusters/test.example.com"
    );
    let missing = kluctl(
        &project_root().join("e2e/fixtures/kluctl-examples/gitops-deployment"),
        &["render", "--offline-kubernetes", "-t", "gitops"],
    )?;
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains(
            "error: target gitops not existent in kluctl project config (Failed to load target gitops: required argument cluster_name not set)"
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn basic_microservices_project_renders_every_service_offline_without_namespaces() -> anyhow::Result<()> {
    let objects = render("microservices-demo/1-basic-project", &["-t", "local"])?;
    assert_eq!(objects.len(), 24);
    assert_eq!(
        ids(&objects)[..2],
        ["Deployment/redis-cart", "Service/redis-cart"]
    );
    for o in &objects {
        assert_eq!(
            label(o, "kluctl.io/discriminator"),
            "kluctl-examples-microservices-demo-local"
        );
        assert!(
            o.pointer("/metadata/namespace").is_none(),
            "offline renders add no default namespace: {o}"
        );
        let dir = annotation(o, "kluctl.io/deployment-item-dir");
        assert_eq!(tags(o), [dir], "default tag = item dir base name");
    }
    Ok(())
}

#[test]
fn templated_multi_env_project_differs_per_target() -> anyhow::Result<()> {
    for (target, count, redis_sts, redis_addr) in [
        ("local", 27, "cart-redis-master", "cart-redis-master:6379"),
        ("test", 30, "cart-redis-node", "cart-redis:6379"),
        ("prod", 30, "cart-redis-node", "cart-redis:6379"),
    ] {
        let objects = render("microservices-demo/3-templating-and-multi-env", &["-t", target])?;
        assert_eq!(objects.len(), count, "target {target}");
        let ns = format!("ms-demo-{target}");
        let ids = ids(&objects);
        assert_eq!(ids[0], format!("Namespace/{ns}"));
        assert!(
            ids.contains(&format!("StatefulSet/{redis_sts}")),
            "{target}: {ids:?}"
        );
        assert_eq!(
            ids.contains(&"Deployment/emailservice".to_owned()),
            target != "local",
            "emailservice only where vars enable it"
        );
        for o in &objects {
            assert_eq!(label(o, "examples.kluctl.io/deployment-target"), target);
            assert_eq!(
                label(o, "examples.kluctl.io/deployment-project"),
                "microservices-demo"
            );
            if s(o, "/kind") != "Namespace" {
                assert_eq!(s(o, "/metadata/namespace"), ns, "overrideNamespace: {o}");
            }
        }
        let cart = objects
            .iter()
            .find(|o| ids_of(o) == "Deployment/cartservice")
            .context("cartservice")?;
        let env = &cart["spec"]["template"]["spec"]["containers"][0]["env"];
        let addr = env
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == "REDIS_ADDR"))
            .context("REDIS_ADDR")?;
        assert_eq!(addr["value"], redis_addr, "vars file per env_type");
        let redis = objects
            .iter()
            .find(|o| ids_of(o) == format!("StatefulSet/{redis_sts}"))
            .context("redis")?;
        assert_eq!(tags(redis), ["third-party", "redis"]);
        assert_eq!(
            annotation(redis, "kluctl.io/helm-install-namespace"),
            ns,
            "offline renders keep the Helm namespace marker, as Kluctl does"
        );
    }
    Ok(())
}

fn ids_of(o: &Value) -> String {
    format!("{}/{}", s(o, "/kind"), s(o, "/metadata/name"))
}

#[test]
fn list_targets_and_list_images_print_yaml() -> anyhow::Result<()> {
    let dir =
        project_root().join("e2e/fixtures/kluctl-examples/microservices-demo/3-templating-and-multi-env");
    let out = kluctl(&dir, &["list-targets", "--only-names"])?;
    assert_eq!(String::from_utf8(out.stdout)?, "local\nprod\ntest\n");
    let out = kluctl(&dir, &["list-targets", "-o", "json"])?;
    let targets: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        targets[0]["discriminator"],
        "kluctl-examples-microservices-demo-local"
    );
    assert_eq!(targets[0]["args"]["env_type"], "local");
    assert_eq!(targets[0]["aws"], serde_json::json!({}));
    let out = kluctl(&dir, &["list-images", "--offline-kubernetes", "-t", "local"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout)?.trim(), "images: []");
    Ok(())
}

/// Writes a small project with the given files into a temp dir.
fn project(files: &[(&str, &str)]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (path, text) in files {
        let p = dir.path().join(path);
        fs_err::create_dir_all(p.parent().context("parent")?)?;
        fs_err::write(p, text)?;
    }
    Ok(dir)
}

#[test]
fn images_resolve_from_fixed_images_and_a_miss_names_the_image() -> anyhow::Result<()> {
    let dir = project(&[
        ("deployment.yaml", "deployments:\n  - path: app\n"),
        (
            "app/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          image: '{{ images.get_image(\"nginx\") }}'\n",
        ),
    ])?;
    let out = kluctl(
        dir.path(),
        &[
            "render",
            "--offline-kubernetes",
            "--print-all",
            "-F",
            "nginx=nginx:1.27",
        ],
    )?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout)?)?;
    assert_eq!(
        docs[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let out = kluctl(
        dir.path(),
        &[
            "list-images",
            "--offline-kubernetes",
            "-F",
            "nginx=nginx:1.27",
            "-o",
            "json",
        ],
    )?;
    let images: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(images["images"][0]["image"], "nginx");
    assert_eq!(images["images"][0]["resultImage"], "nginx:1.27");
    assert_eq!(images["images"][0]["deployment"], "Deployment/web");
    assert_eq!(images["images"][0]["container"], "main");
    let out = kluctl(dir.path(), &["render", "--offline-kubernetes", "--print-all"])?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to find fixed image for nginx"), "{err}");
    assert!(err.contains("'app'"), "names the item: {err}");
    Ok(())
}

#[test]
fn errors_name_the_file_and_line() -> anyhow::Result<()> {
    // (project files, extra args, texts the error must contain)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            &[
                ("deployment.yaml", "deployments:\n  - path: app\n"),
                (
                    "app/cm.yaml",
                    "kind: ConfigMap\nmetadata:\n  name: '{{ args.missing }}'\n",
                ),
            ],
            &[],
            &["app/cm.yaml", "line 3", "missing"],
        ),
        (
            &[("deployment.yaml", "deployments:\n  - path: '{% if %}'\n")],
            &[],
            &["deployment.yaml", "line 2", "syntax"],
        ),
        (
            &[("deployment.yaml", "deployments:\n  - path: [unclosed\n")],
            &[],
            &["deployment.yaml", "failed to parse"],
        ),
        (
            &[(".kluctl.yaml", "targets: [{name: a}]\n")],
            &["-t", "b"],
            &["target b not existent in kluctl project config"],
        ),
        (
            &[
                ("deployment.yaml", "deployments: [{include: a}]\n"),
                ("a/deployment.yaml", "deployments: [{include: ../a}]\n"),
            ],
            &[],
            &["a/deployment.yaml", "include cycle: a -> a"],
        ),
        (
            &[("deployment.yaml", "deployments: [{include: nope}]\n")],
            &[],
            &["deployment.yaml", "nope does not exist"],
        ),
        (
            &[
                ("deployment.yaml", "deployments: [{path: app}]\n"),
                ("app/kustomization.yaml", "resources: [missing.yaml]\n"),
            ],
            &[],
            &["building kustomize objects for 'app' failed", "missing.yaml"],
        ),
    ];
    for (files, args, wants) in cases {
        let dir = project(files)?;
        let mut all = vec!["render", "--offline-kubernetes"];
        all.extend_from_slice(args);
        let out = kluctl(dir.path(), &all)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{files:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        for want in *wants {
            assert!(err.contains(want), "{files:?}: '{want}' not in: {err}");
        }
    }
    Ok(())
}

#[test]
fn rendering_against_the_cluster_reads_cluster_vars_and_fixes_namespaces() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = e2e::unique_name("render");
    let _cleanup = e2e::DeleteOnDrop::namespace(&env, &ns);
    env.kubectl(&["create", "namespace", &ns])?;
    env.kubectl(&[
        "-n",
        &ns,
        "create",
        "configmap",
        "settings",
        "--from-literal=values.yaml=replicas: 4\nowner: team-a\n",
    ])?;
    let dir = project(&[
        (
            "deployment.yaml",
            &format!(
                "vars:\n  - clusterConfigMap: {{name: settings, namespace: {ns}, key: values.yaml}}\n\
                 \x20 - clusterConfigMap: {{name: absent, namespace: {ns}, key: x}}\n    ignoreMissing: true\n\
                 deployments:\n  - path: app\n"
            ),
        ),
        (
            "app/objects.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  owner: '{{ owner }}'\n  replicas: '{{ replicas }}'\n  context: '{{ target.context }}'\n\
             ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\n  namespace: wrong\n\
             ---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n\
             ---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
        ),
    ])?;
    let kubeconfig = env.get("E2E_KUBECONFIG_ADMIN")?;
    let out = kluctl(dir.path(), &["render", "--print-all", "--kubeconfig", kubeconfig])?;
    anyhow::ensure!(
        out.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout)?)?;
    let cm = &docs[0];
    assert_eq!(cm["data"]["owner"], "team-a", "clusterConfigMap vars");
    assert_eq!(cm["data"]["replicas"], "4");
    assert!(
        !s(cm, "/data/context").is_empty(),
        "target.context is the context used"
    );
    assert_eq!(
        s(cm, "/metadata/namespace"),
        "default",
        "namespaced kinds get default"
    );
    assert!(
        docs[1].pointer("/metadata/namespace").is_none(),
        "cluster-scoped loses it"
    );
    assert_eq!(
        s(&docs[3], "/metadata/namespace"),
        "default",
        "scope of a CRD in the rendered set"
    );
    let offline = kluctl(dir.path(), &["render", "--offline-kubernetes", "--print-all"])?;
    let err = String::from_utf8_lossy(&offline.stderr);
    assert_eq!(offline.status.code(), Some(1));
    assert!(err.contains("loading vars from cluster is disabled"), "{err}");
    assert!(err.contains("deployment.yaml"), "{err}");
    Ok(())
}

#[test]
fn inclusion_flags_env_args_and_render_output_dir_work_from_the_command_line() -> anyhow::Result<()> {
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  env: '{{{{ args.env }}}}'\n  level: '{{{{ args.deep.level }}}}'\n"
        )
    };
    let dir = project(&[
        (
            "deployment.yaml",
            "deployments:\n  - path: web\n    tags: [frontend]\n  - path: db\n  - path: always\n    alwaysDeploy: true\n  - barrier: true\n",
        ),
        ("web/cm.yaml", &cm("web")),
        ("db/cm.yaml", &cm("db")),
        ("always/cm.yaml", &cm("always")),
    ])?;
    let names = |out: &Output| -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout.clone())?)?;
        Ok(docs.iter().map(|d| s(d, "/metadata/name").to_owned()).collect())
    };
    let base = [
        "render",
        "--offline-kubernetes",
        "--print-all",
        "-a",
        "env=dev",
        "-a",
        "deep.level=3",
    ];
    let run = |extra: &[&str]| -> anyhow::Result<Output> {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        kluctl(dir.path(), &all)
    };
    assert_eq!(names(&run(&[])?)?, ["web", "db", "always"]);
    assert_eq!(
        names(&run(&["-I", "frontend"])?)?,
        ["web", "always"],
        "alwaysDeploy ignores inclusion"
    );
    assert_eq!(
        names(&run(&["-E", "db"])?)?,
        ["web", "always"],
        "default tag = dir name"
    );
    assert_eq!(
        names(&run(&["-I", "frontend", "-E", "frontend"])?)?,
        ["always"],
        "exclusion wins"
    );
    assert_eq!(
        names(&run(&["--exclude-deployment-dir", "web"])?)?,
        ["db", "always"]
    );

    // KLUCTL_ARG_<n> values come before -a values, so the command line wins.
    let out = kluctl_env(
        dir.path(),
        &["render", "--offline-kubernetes", "--print-all", "-a", "env=cli"],
        &[("KLUCTL_ARG_1", "env=from-env"), ("KLUCTL_ARG_2", "deep.level=7")],
    )?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout)?)?;
    assert_eq!(docs[0]["data"], serde_json::json!({"env": "cli", "level": "7"}));

    let rendered = tempfile::tempdir()?;
    let target = rendered.path().join("out");
    let out = kluctl(
        dir.path(),
        &[
            "render",
            "--offline-kubernetes",
            "-a",
            "env=x",
            "-a",
            "deep.level=1",
            "--render-output-dir",
            target.to_str().context("utf-8 path")?,
        ],
    )?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = fs_err::read_to_string(target.join("web/cm.yaml"))?;
    assert!(
        text.contains("env: 'x'"),
        "the templated file is in the render dir: {text}"
    );
    assert!(
        target.join("web/kustomization.yml").is_file(),
        "the generated kustomization too"
    );
    let objects: Vec<Value> =
        serde_saphyr::from_multiple(&fs_err::read_to_string(target.join("web/.rendered.yml"))?)?;
    assert_eq!(
        objects[0]["metadata"]["annotations"]["kluctl.io/deployment-item-dir"], "web",
        "post-processed objects are written per item"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Rendered into"));
    Ok(())
}

/// A Git repository on the e2e servers holding a small Kluctl project: `app/` renders a
/// ConfigMap from its own vars file; tag `v1` and a later `main` differ in that file.
fn git_library(env: &Env, name: &str) -> anyhow::Result<(e2e::GitRepo, String, String)> {
    let repo = e2e::GitRepo::create(env, name)?;
    let v1 = repo.commit(
        &[
            ("deployment.yaml", "vars:\n  - file: vars/values.yaml\ndeployments:\n  - path: app\n"),
            (
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-git\n  namespace: default\ndata:\n  color: \"{{ color }}\"\n",
            ),
            ("vars/values.yaml", "color: blue\n"),
            ("vars/other.yaml", "size: 1\n"),
        ],
        "v1",
    )?;
    repo.tag("v1")?;
    let main = repo.commit(&[("vars/values.yaml", "color: red\n")], "red")?;
    Ok((repo, v1, main))
}

#[test]
fn git_includes_and_git_vars_read_the_referenced_commits() -> anyhow::Result<()> {
    let env = Env::load()?;
    let (repo, v1, main) = git_library(&env, "kluctl-git-include")?;
    let url = format!("{}/{}.git", env.get("E2E_GIT_HTTP_URL")?, repo.name);
    let deployment = format!(
        "vars:\n\
         \x20 - git: {{url: '{url}', path: vars/values.yaml}}\n\
         \x20   targetPath: fromMain\n\
         \x20 - gitFiles:\n\
         \x20     url: '{url}'\n\
         \x20     ref: {{tag: 'v.*'}}\n\
         \x20     files: [{{glob: 'vars/*.yaml', parseYaml: true}}]\n\
         \x20   targetPath: releases\n\
         deployments:\n\
         \x20 - git: {{url: '{url}', ref: {{tag: v1}}}}\n\
         \x20 - path: local\n"
    );
    let local = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\n  namespace: default\ndata:\n\
                 \x20 main: \"{{ fromMain.color }}\"\n\
                 \x20 refs: \"{{ releases | map(attribute='refStr') | join(',') }}\"\n\
                 \x20 files: \"{{ releases[0].files | map(attribute='path') | join(',') }}\"\n\
                 \x20 parsed: \"{{ releases[0].filesByPath['vars/values.yaml'].parsed.color }}\"\n\
                 \x20 tree: \"{{ releases[0].filesTree.vars['other.yaml'].parsed.size }}\"\n";
    let dir = project(&[("deployment.yaml", &deployment), ("local/cm.yaml", local)])?;
    let out = kluctl(dir.path(), &["render", "--offline-kubernetes", "--print-all"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout)?)?;
    assert_eq!(ids(&docs), ["ConfigMap/from-git", "ConfigMap/local"]);
    // The include is pinned to tag v1 (blue); its item dir is relative to the checkout.
    assert_eq!(
        s(&docs[0], "/data/color"),
        "blue",
        "the include must be at {v1}, not {main}"
    );
    assert_eq!(annotation(&docs[0], "kluctl.io/deployment-item-dir"), "app");
    // `git` vars follow the default branch (red); `gitFiles` the refs matching the regex.
    assert_eq!(s(&docs[1], "/data/main"), "red");
    assert_eq!(s(&docs[1], "/data/refs"), "refs/tags/v1");
    assert_eq!(s(&docs[1], "/data/files"), "vars/other.yaml,vars/values.yaml");
    assert_eq!(s(&docs[1], "/data/parsed"), "blue");
    assert_eq!(s(&docs[1], "/data/tree"), "1");

    // A ref that does not exist names the file, the item and the ref.
    let bad = format!("deployments:\n  - git: {{url: '{url}', ref: {{branch: nope}}}}\n");
    let dir = project(&[("deployment.yaml", &bad)])?;
    let out = kluctl(dir.path(), &["render", "--offline-kubernetes"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for want in [
        "deployment.yaml",
        "deployments[0].git",
        "ref 'refs/heads/nope' not found",
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    Ok(())
}

#[test]
fn git_credentials_come_from_kluctl_git_env_and_never_show() -> anyhow::Result<()> {
    let env = Env::load()?;
    let (repo, _, _) = git_library(&env, "kluctl-git-auth")?;
    let url = format!("{}/{}.git", env.get("E2E_GIT_HTTP_AUTH_URL")?, repo.name);
    let deployment = format!("deployments:\n  - git: '{url}'\n");
    let dir = project(&[("deployment.yaml", &deployment)])?;
    let password = env.get("E2E_GIT_PASSWORD")?;
    // Without credentials the server's 401 is reported.
    let out = kluctl(dir.path(), &["render", "--offline-kubernetes", "--print-all"])?;
    assert!(
        !out.status.success(),
        "an auth-protected repository must not render anonymously"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("credentials"), "{err}");
    // With a matching KLUCTL_GIT_* set it renders; a wrong password fails without showing it.
    let creds = |pw| {
        [
            ("KLUCTL_GIT_HOST", "127.0.0.1"),
            ("KLUCTL_GIT_USERNAME", "flux"),
            ("KLUCTL_GIT_PASSWORD", pw),
        ]
    };
    let out = kluctl_env(
        dir.path(),
        &["render", "--offline-kubernetes", "--print-all"],
        &creds(password),
    )?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout)?.contains("color: red"));
    let out = kluctl_env(
        dir.path(),
        &["render", "--offline-kubernetes", "--print-all"],
        &creds("wrong-secret-value"),
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("wrong-secret-value") && !err.contains(password),
        "{err}"
    );
    Ok(())
}

/// `kluctl render --print-all` keeps an item's rendered files in memory when nothing needs them
/// on disk, and writes them out with `--render-output-dir`: both must print the same bytes. The
/// project mixes what stays in memory (a generated kustomization, an own one with `namespace`
/// and a nested directory, `recursive`, a `.templateignore`d file) with what goes to disk on the
/// way (a kustomization the native path declines: `commonLabels`, a symlink).
#[test]
fn rendering_in_memory_prints_what_rendering_to_disk_prints() -> anyhow::Result<()> {
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: \"{{{{ args.v }}}}\"\n"
        )
    };
    let p = project(&[
        (".kluctl.yaml", "targets:\n  - name: t\n    args:\n      v: x\n"),
        (
            "deployment.yaml",
            "deployments:\n  - path: generated\n  - path: own\n  - path: deep\n    recursive: true\n  - path: declined\n  - path: linked\n  - path: ignored\n",
        ),
        ("generated/b.yaml", &cm("b")),
        ("generated/a.yml", &cm("a")),
        ("generated/notes.txt", "not a resource"),
        (
            "own/kustomization.yaml",
            "namespace: ns1\nresources:\n  - cm.yaml\n  - sub\n",
        ),
        ("own/cm.yaml", &cm("own")),
        ("own/sub/kustomization.yml", "resources:\n  - ../other.yaml\n"),
        ("own/other.yaml", &cm("other")),
        ("deep/x/one.yaml", &cm("one")),
        ("deep/y/two.yaml", &cm("two")),
        (
            "declined/kustomization.yaml",
            "commonLabels:\n  app: declined\nresources:\n  - cm.yaml\n",
        ),
        ("declined/cm.yaml", &cm("declined")),
        ("linked/cm.yaml", &cm("linked")),
        ("linked/target.txt", &cm("linked-alias")),
        ("ignored/.templateignore", "raw.yaml\n"),
        (
            "ignored/raw.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: raw\ndata:\n  v: \"{{ untouched }}\"\n",
        ),
    ])?;
    std::os::unix::fs::symlink("target.txt", p.path().join("linked/alias.yaml"))?;
    let out_dir = tempfile::tempdir()?;
    let print = |extra: &[&str]| -> anyhow::Result<String> {
        let mut args = vec!["render", "--offline-kubernetes", "--print-all", "-t", "t"];
        args.extend_from_slice(extra);
        let out = kluctl(p.path(), &args)?;
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    let in_memory = print(&[])?;
    let on_disk = print(&[
        "--render-output-dir",
        out_dir.path().to_str().context("utf-8 path")?,
    ])?;
    assert_eq!(in_memory, on_disk);
    let objects: Vec<Value> = serde_saphyr::from_multiple(&in_memory)?;
    assert_eq!(
        ids(&objects),
        [
            "ConfigMap/a",
            "ConfigMap/b",
            "ConfigMap/own",
            "ConfigMap/other",
            "ConfigMap/one",
            "ConfigMap/two",
            "ConfigMap/declined",
            "ConfigMap/linked-alias",
            "ConfigMap/linked",
            "ConfigMap/raw"
        ],
        "{in_memory}"
    );
    assert_eq!(s(&objects[2], "/metadata/namespace"), "ns1");
    assert_eq!(s(&objects[3], "/metadata/namespace"), "ns1");
    assert_eq!(label(&objects[6], "app"), "declined");
    assert_eq!(s(&objects[0], "/data/v"), "x");
    assert_eq!(s(&objects[9], "/data/v"), "{{ untouched }}");
    Ok(())
}
