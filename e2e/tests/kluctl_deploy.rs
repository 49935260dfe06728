//! `kluctl deploy|diff|prune|delete|validate` run as a user runs them, against the real local
//! apiserver + kube-controller-manager: the life cycle of a project, barriers, hooks, conflicts
//! with other field managers, CRDs with their CRs in one deploy, dry runs, the command-result
//! store, and the safety invariants (nothing is pruned after a failed render or apply; foreign
//! objects are never touched).
//!
//! The local cluster has no kubelet or scheduler: tests that need a ready Deployment patch its
//! `/status` as the admin identity, and say so.
//!
//! Needs the `kluctl` binary (`cargo build -p kluctl --bin kluctl`, which `make
//! e2e-test` does) and the cluster of `make e2e-up`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context as _, bail};
use e2e::{
    DeleteOnDrop, Env, make_deployment_ready, run_kluctl, unique_name, wait_for, wait_gone, write_file,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

/// How long a wait on the cluster may take.
const WAIT: Duration = Duration::from_secs(60);

/// Writes a project: `.kluctl.yaml` with target `test` and discriminator `disc`, and `files`.
fn project(disc: &str, files: &[(&str, String)]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("kluctl-deploy-").tempdir()?;
    let kluctl_yaml = if disc.is_empty() {
        "targets:\n  - name: test\n".to_owned()
    } else {
        format!("discriminator: {disc}\ntargets:\n  - name: test\n")
    };
    write_file(dir.path(), ".kluctl.yaml", &kluctl_yaml)?;
    for (path, content) in files {
        write_file(dir.path(), path, content)?;
    }
    Ok(dir)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs kluctl and requires success; returns stdout + stderr.
/// `kluctl <verb> -y -t test <extra> --write-command-result=false`: the arguments of most runs
/// here (results are stored only where a test looks at the store).
fn cmd<'a>(verb: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![verb, "-y", "-t", "test"];
    args.extend_from_slice(extra);
    args.push("--write-command-result=false");
    args
}

fn ok(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = run_kluctl(dir, args, &[])?;
    let t = text(&out);
    if !out.status.success() {
        bail!("kluctl {args:?} failed:\n{t}");
    }
    Ok(t)
}

/// Runs kluctl and requires failure; returns stdout + stderr.
fn fails(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = run_kluctl(dir, args, &[])?;
    let t = text(&out);
    if out.status.success() {
        bail!("kluctl {args:?} succeeded, expected a failure:\n{t}");
    }
    Ok(t)
}

/// `kubectl get` of one field (`None` when the object does not exist).
fn get(env: &Env, ns: &str, what: &str, jsonpath: &str) -> Option<String> {
    let mut args = vec!["get", what, "-o"];
    let jp = format!("jsonpath={jsonpath}");
    args.push(&jp);
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    env.kubectl(&args).ok()
}

fn rv(env: &Env, ns: &str, what: &str) -> Option<String> {
    get(env, ns, what, "{.metadata.resourceVersion}")
}

fn namespace_yaml(ns: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
}

fn configmap(ns: &str, name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n{data}\n")
}

fn deployment(ns: &str, name: &str, extra_annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations: {{{extra_annotations}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n        ports: [{{containerPort: 80}}]\n"
    )
}

/// CRD `widgets.<group>` (kind `Widget`, namespaced, version `v1`); its schema declares no
/// status, so a Widget is ready as soon as it exists.
fn widget_crd(group: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
    )
}

/// A project with item `app` (the namespace and ConfigMap `app`) and, behind a barrier, item
/// `old` (ConfigMap `old`, which the tests then turn into an orphan).
fn app_and_old_project(ns: &str, disc: &str) -> anyhow::Result<tempfile::TempDir> {
    project(
        disc,
        &[
            (
                "deployment.yaml",
                "deployments:\n  - path: app\n  - barrier: true\n  - path: old\n".to_owned(),
            ),
            ("app/0-ns.yaml", namespace_yaml(ns)),
            ("app/cm.yaml", configmap(ns, "app", "  a: \"1\"")),
            ("old/cm.yaml", configmap(ns, "old", "  a: \"1\"")),
        ],
    )
}

/// ConfigMaps that are not ours, applied by field manager `other`: one with our discriminator
/// label (but no `kluctl` managed fields), one with another discriminator, one with none.
fn apply_foreign_objects(env: &Env, ns: &str, disc: &str) -> anyhow::Result<()> {
    for (name, labels) in [
        ("theirs-same-disc", format!("kluctl.io/discriminator: {disc}")),
        (
            "theirs-other-disc",
            "kluctl.io/discriminator: someone-else".to_owned(),
        ),
        ("theirs-no-disc", "x: z".to_owned()),
    ] {
        env.kubectl_with_input(
            &["apply", "--server-side", "--field-manager", "other", "-f", "-"],
            Some(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\ndata: {{k: v}}\n"
            )),
        )?;
    }
    Ok(())
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one scenario, step by step")]
async fn lifecycle_deploy_redeploy_change_orphan_prune_delete() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-life");
    let _cleanup = [
        DeleteOnDrop::namespace(&env, &ns),
        DeleteOnDrop::namespace(&env, &format!("{ns}-results")),
    ];
    let disc = format!("disc-{ns}");
    let files = |a: &str, with_extra: bool| {
        let mut f = vec![
            (
                "deployment.yaml",
                if with_extra {
                    "deployments:\n  - path: ns\n  - barrier: true\n  - path: app\n  - path: extra\n"
                        .to_owned()
                } else {
                    "deployments:\n  - path: ns\n  - barrier: true\n  - path: app\n".to_owned()
                },
            ),
            ("ns/ns.yaml", namespace_yaml(&ns)),
            (
                "app/cm.yaml",
                configmap(&ns, "app", &format!("  a: \"{a}\"\n  b: fixed")),
            ),
            (
                "app/secret.yaml",
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: {ns}\nstringData:\n  password: hunter2-{a}\n"
                ),
            ),
        ];
        if with_extra {
            f.push(("extra/cm.yaml", configmap(&ns, "extra", "  x: \"1\"")));
        }
        f
    };
    let dir = project(&disc, &files("1", true))?;
    let d = dir.path();
    let out = ok(
        d,
        &[
            "deploy",
            "-y",
            "-t",
            "test",
            "--command-result-namespace",
            &format!("{ns}-results"),
        ],
    )?;
    assert!(out.contains("New objects:"), "{out}");
    assert!(out.contains(&format!("{ns}/ConfigMap/app")), "{out}");
    assert!(!out.contains("hunter2"), "a Secret value was printed:\n{out}");
    assert_eq!(get(&env, &ns, "configmap/app", "{.data.a}").as_deref(), Some("1"));
    // The result was stored, with the Secret value obfuscated (checked by the store tests).
    let stored = env.kubectl(&[
        "get",
        "secrets",
        "-n",
        &format!("{ns}-results"),
        "-l",
        "kluctl.io/result=true",
        "-o",
        "name",
    ])?;
    assert_eq!(stored.lines().count(), 1, "{stored}");

    // Unchanged redeploy: no changes, and no object was written again (the Secret with
    // stringData is rewritten by the apiserver on every apply, so it is left out).
    let before: Vec<_> = ["configmap/app", "configmap/extra"]
        .iter()
        .map(|w| rv(&env, &ns, w))
        .collect();
    let out = ok(d, &cmd("deploy", &[]))?;
    assert!(
        !out.contains("Changed objects:") && !out.contains("New objects:"),
        "{out}"
    );
    let after: Vec<_> = ["configmap/app", "configmap/extra"]
        .iter()
        .map(|w| rv(&env, &ns, w))
        .collect();
    assert_eq!(before, after, "an unchanged redeploy wrote objects");

    // One changed value: diff shows exactly it, deploy applies it.
    for (p, c) in files("2", true) {
        write_file(d, p, &c)?;
    }
    let out = ok(d, &["diff", "-t", "test"])?;
    assert!(out.contains("Changed objects:"), "{out}");
    assert!(
        out.contains("data[\"a\"]") && out.contains("-1") && out.contains("+2"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "a Secret value was printed:\n{out}");
    assert_eq!(
        get(&env, &ns, "configmap/app", "{.data.a}").as_deref(),
        Some("1"),
        "diff changed the cluster"
    );
    let out = ok(d, &cmd("deploy", &[]))?;
    assert!(out.contains(&format!("{ns}/ConfigMap/app")), "{out}");
    assert_eq!(get(&env, &ns, "configmap/app", "{.data.a}").as_deref(), Some("2"));

    // Remove an item: it becomes an orphan; deploy --prune deletes it.
    fs_err::remove_dir_all(d.join("extra"))?;
    for (p, c) in files("2", false) {
        write_file(d, p, &c)?;
    }
    let out = ok(d, &["diff", "-t", "test"])?;
    assert!(
        out.contains("Orphan objects:") && out.contains(&format!("{ns}/ConfigMap/extra")),
        "{out}"
    );
    let out = ok(d, &cmd("deploy", &["--prune"]))?;
    assert!(
        out.contains("Deleted objects:") && out.contains(&format!("{ns}/ConfigMap/extra")),
        "{out}"
    );
    assert!(rv(&env, &ns, "configmap/extra").is_none(), "orphan still there");
    assert!(rv(&env, &ns, "configmap/app").is_some());

    // delete: everything of the discriminator goes, the namespace too.
    let out = ok(d, &cmd("delete", &[]))?;
    assert!(out.contains(&format!("Namespace/{ns}")), "{out}");
    let namespaces: Api<Namespace> = Api::all(env.admin_client().await?);
    wait_gone(&namespaces, &ns, WAIT).await?;
    Ok(())
}

#[tokio::test]
async fn barriers_order_items_and_readiness_is_waited_for() -> anyhow::Result<()> {
    let env = Env::load()?;
    let client = env.admin_client().await?;
    let ns = unique_name("kd-barrier");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let dir = project(&disc, &[
        ("deployment.yaml", "deployments:\n  - path: ns\n  - barrier: true\n  - path: slow\n    waitReadiness: true\n  - barrier: true\n  - path: after\n".to_owned()),
        ("ns/ns.yaml", namespace_yaml(&ns)),
        ("slow/d.yaml", deployment(&ns, "slow", "")),
        ("after/cm.yaml", configmap(&ns, "after", "  x: \"1\"")),
    ])?;
    let d = dir.path().to_owned();
    let run = std::thread::spawn(move || run_kluctl(&d, &cmd("deploy", &[]), &[]));
    // Kluctl applies `slow` and then waits for its readiness before the barrier lets `after` go.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &deployments,
        "slow",
        "its creation by kluctl",
        WAIT,
        |d: Option<&Deployment>| d.is_some(),
    )
    .await?;
    assert!(
        rv(&env, &ns, "configmap/after").is_none(),
        "the item after the barrier started before readiness"
    );
    // No kubelet here: its pod's status is patched as admin. The resource versions below show
    // that `after` was written only once the Deployment counted the ready pod.
    make_deployment_ready(&client, &ns, "slow", WAIT).await?;
    let ready_rv: u64 = rv(&env, &ns, "deployment/slow").context("rv")?.parse()?;
    let out = run
        .join()
        .map_err(|_| anyhow::anyhow!("kluctl thread panicked"))??;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let after_rv: u64 = rv(&env, &ns, "configmap/after")
        .context("after missing")?
        .parse()?;
    assert!(
        after_rv > ready_rv,
        "item after the barrier created before the wait ended ({after_rv} <= {ready_rv})"
    );
    Ok(())
}

#[test]
fn hooks_run_by_weight_and_are_deleted_per_policy() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-hooks");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let hook = |name: &str, weight: i32, policy: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    kluctl.io/hook: pre-deploy\n    kluctl.io/hook-weight: \"{weight}\"\n{policy}data:\n  x: \"1\"\n"
        )
    };
    let dir = project(
        &disc,
        &[
            (
                "deployment.yaml",
                "deployments:\n  - path: ns\n  - barrier: true\n  - path: app\n".to_owned(),
            ),
            ("ns/ns.yaml", namespace_yaml(&ns)),
            (
                "app/hooks.yaml",
                format!(
                    "{}---\n{}---\n{}",
                    hook("second", 2, ""),
                    hook("first", 1, ""),
                    hook(
                        "temporary",
                        3,
                        "    kluctl.io/hook-delete-policy: hook-succeeded\n"
                    )
                ),
            ),
            ("app/cm.yaml", configmap(&ns, "main", "  x: \"1\"")),
        ],
    )?;
    let out = ok(dir.path(), &cmd("deploy", &[]))?;
    assert!(out.contains("Applied hooks:"), "{out}");
    let first: u64 = rv(&env, &ns, "configmap/first")
        .context("first hook missing")?
        .parse()?;
    let second: u64 = rv(&env, &ns, "configmap/second")
        .context("second hook missing")?
        .parse()?;
    let main: u64 = rv(&env, &ns, "configmap/main").context("main missing")?.parse()?;
    assert!(first < second, "weight 1 ran after weight 2");
    assert!(second < main, "a pre-deploy hook ran after the item's objects");
    assert!(
        rv(&env, &ns, "configmap/temporary").is_none(),
        "hook-succeeded hook was not deleted"
    );
    Ok(())
}

#[test]
fn conflicts_keep_the_other_managers_value_with_a_warning() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-conflict");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    env.kubectl(&["create", "namespace", &ns])?;
    env.kubectl_with_input(
        &["apply", "--server-side", "--field-manager", "other", "-f", "-"],
        Some(&configmap(&ns, "shared", "  a: theirs")),
    )?;
    let dir = project(
        &disc,
        &[
            ("deployment.yaml", "deployments:\n  - path: app\n".to_owned()),
            ("app/cm.yaml", configmap(&ns, "shared", "  a: ours\n  b: ours")),
        ],
    )?;
    let out = ok(dir.path(), &cmd("deploy", &[]))?;
    assert!(
        out.contains("Warnings:") && out.contains("data.a") && out.contains("lost field ownership"),
        "{out}"
    );
    assert_eq!(
        get(&env, &ns, "configmap/shared", "{.data.a}").as_deref(),
        Some("theirs")
    );
    assert_eq!(
        get(&env, &ns, "configmap/shared", "{.data.b}").as_deref(),
        Some("ours")
    );
    // --force-apply takes the field over.
    ok(dir.path(), &cmd("deploy", &["--force-apply"]))?;
    assert_eq!(
        get(&env, &ns, "configmap/shared", "{.data.a}").as_deref(),
        Some("ours")
    );
    Ok(())
}

#[test]
fn crd_and_cr_in_one_deploy_and_dry_run_changes_nothing() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-crd");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let group = format!("{ns}.example.com");
    let _crd = DeleteOnDrop::object(&env, "crd", &format!("widgets.{group}"));
    let disc = format!("disc-{ns}");
    let crd = widget_crd(&group);
    let cr = |size: u32| {
        format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: {ns}\nspec:\n  size: {size}\n"
        )
    };
    let dir = project(
        &disc,
        &[
            ("deployment.yaml", "deployments:\n  - path: app\n".to_owned()),
            // Objects apply in file order (as in Kluctl): the CRD before its CR.
            ("app/a-ns.yaml", namespace_yaml(&ns)),
            ("app/b-crd.yaml", crd.clone()),
            ("app/c-cr.yaml", cr(1)),
        ],
    )?;
    // A dry run of a new project: nothing is created, the CR is a warning.
    let out = ok(dir.path(), &["deploy", "-y", "--dry-run", "-t", "test"])?;
    assert!(
        out.contains("has not been applied yet as Kluctl is running in dry-run mode"),
        "{out}"
    );
    assert!(
        rv(&env, "", &format!("crd/widgets.{group}")).is_none(),
        "dry run created the CRD"
    );
    assert!(
        rv(&env, "", &format!("namespace/{ns}")).is_none(),
        "dry run created the namespace"
    );

    let out = ok(dir.path(), &cmd("deploy", &[]))?;
    assert!(out.contains(&format!("{ns}/Widget/w")), "{out}");
    assert_eq!(
        get(&env, &ns, &format!("widgets.{group}/w"), "{.spec.size}").as_deref(),
        Some("1")
    );

    // A dry run of a change reports it and changes nothing.
    write_file(dir.path(), "app/c-cr.yaml", &cr(2))?;
    let before = rv(&env, &ns, &format!("widgets.{group}/w"));
    let out = ok(dir.path(), &["deploy", "-y", "--dry-run", "-t", "test"])?;
    assert!(out.contains("spec.size"), "{out}");
    assert_eq!(
        rv(&env, &ns, &format!("widgets.{group}/w")),
        before,
        "dry run changed the CR"
    );
    ok(dir.path(), &cmd("delete", &[]))?;
    Ok(())
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, step by step")]
fn failed_render_or_apply_never_prunes_and_foreign_objects_are_untouched() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-safe");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let dir = app_and_old_project(&ns, &disc)?;
    let d = dir.path();
    // "kept" asks to survive pruning (kluctl#436: such orphans are listed with the reason).
    write_file(
        d,
        "app/kept.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: {ns}\n  annotations: {{kluctl.io/skip-delete: \"true\"}}\ndata:\n  a: \"1\"\n"
        ),
    )?;
    ok(d, &cmd("deploy", &[]))?;
    fs_err::remove_file(d.join("app/kept.yaml"))?;
    // Foreign objects: our discriminator but created by another manager, another
    // discriminator, no discriminator.
    apply_foreign_objects(&env, &ns, &disc)?;
    // "old" becomes an orphan.
    write_file(d, "deployment.yaml", "deployments:\n  - path: app\n")?;

    // 1. A render error: nothing applied, nothing pruned.
    write_file(d, "app/broken.yaml", "{{ undefined_variable.x }}")?;
    let out = fails(d, &cmd("deploy", &["--prune"]))?;
    assert!(
        out.contains("broken.yaml"),
        "the render error does not name the file:\n{out}"
    );
    assert!(
        rv(&env, &ns, "configmap/old").is_some(),
        "pruned after a failed render"
    );
    fs_err::remove_file(d.join("app/broken.yaml"))?;

    // 2. One object fails to apply: the prune is skipped.
    write_file(
        d,
        "app/bad.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: {ns}\nspec:\n  type: NoSuchType\n  ports: [{{port: 80}}]\n"
        ),
    )?;
    let out = fails(d, &cmd("deploy", &["--prune"]))?;
    assert!(out.contains("prune skipped"), "{out}");
    assert!(
        rv(&env, &ns, "configmap/old").is_some(),
        "pruned after a failed apply"
    );
    fs_err::remove_file(d.join("app/bad.yaml"))?;

    // 3. A readiness timeout: the prune is skipped.
    write_file(
        d,
        "app/d.yaml",
        &deployment(&ns, "never-ready", "kluctl.io/wait-readiness: \"true\""),
    )?;
    let out = fails(d, &cmd("deploy", &["--prune", "--readiness-timeout", "2s"]))?;
    assert!(out.contains("timed out") || out.contains("timeout"), "{out}");
    assert!(
        rv(&env, &ns, "configmap/old").is_some(),
        "pruned after a readiness timeout"
    );
    fs_err::remove_file(d.join("app/d.yaml"))?;

    // Without a terminal and without -y, deploy refuses before touching anything.
    let out = fails(d, &["deploy", "-t", "test", "--prune"])?;
    assert!(out.contains("pass -y"), "{out}");

    // A successful prune deletes the orphans, but never the foreign objects.
    let out = ok(d, &cmd("prune", &[]))?;
    assert!(out.contains(&format!("{ns}/ConfigMap/old")), "{out}");
    assert!(out.contains(&format!("{ns}/Deployment/never-ready")), "{out}");
    assert!(rv(&env, &ns, "configmap/old").is_none());
    assert!(
        out.contains("orphan object not deleted: annotation kluctl.io/skip-delete is set"),
        "the kept orphan is not listed with its reason:\n{out}"
    );
    for name in [
        "theirs-same-disc",
        "theirs-other-disc",
        "theirs-no-disc",
        "app",
        "kept",
    ] {
        assert!(
            rv(&env, &ns, &format!("configmap/{name}")).is_some(),
            "{name} was deleted by prune"
        );
    }
    Ok(())
}

#[test]
fn foreign_objects_survive_delete_and_no_discriminator_refuses() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-foreign");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    // The namespace is not ours: delete removes our objects one by one inside it.
    env.kubectl(&["create", "namespace", &ns])?;
    let dir = project(
        &disc,
        &[
            ("deployment.yaml", "deployments:\n  - path: app\n".to_owned()),
            ("app/cm.yaml", configmap(&ns, "ours", "  a: \"1\"")),
        ],
    )?;
    ok(dir.path(), &cmd("deploy", &[]))?;
    apply_foreign_objects(&env, &ns, &disc)?;
    let before: Vec<_> = ["theirs-same-disc", "theirs-other-disc", "theirs-no-disc"]
        .iter()
        .map(|n| rv(&env, &ns, &format!("configmap/{n}")))
        .collect();
    let out = ok(dir.path(), &cmd("delete", &[]))?;
    assert!(out.contains(&format!("{ns}/ConfigMap/ours")), "{out}");
    assert!(
        !out.contains("theirs"),
        "a foreign object was listed for deletion:\n{out}"
    );
    assert!(rv(&env, &ns, "configmap/ours").is_none());
    let after: Vec<_> = ["theirs-same-disc", "theirs-other-disc", "theirs-no-disc"]
        .iter()
        .map(|n| rv(&env, &ns, &format!("configmap/{n}")))
        .collect();
    assert_eq!(before, after, "a foreign object was modified or deleted");
    assert!(after.iter().all(Option::is_some));

    // Without a discriminator: prune and delete refuse, deploy warns.
    let nodisc = project(
        "",
        &[
            ("deployment.yaml", "deployments:\n  - path: app\n".to_owned()),
            ("app/cm.yaml", configmap(&ns, "nodisc", "  a: \"1\"")),
        ],
    )?;
    let out = ok(nodisc.path(), &cmd("deploy", &[]))?;
    assert!(out.contains("no discriminator configured"), "{out}");
    let out = fails(nodisc.path(), &cmd("prune", &[]))?;
    assert!(
        out.contains("pruning without a discriminator is not supported"),
        "{out}"
    );
    let out = fails(nodisc.path(), &cmd("delete", &[]))?;
    assert!(out.contains("without a discriminator is not supported"), "{out}");
    assert!(rv(&env, &ns, "configmap/nodisc").is_some());
    Ok(())
}

#[tokio::test]
async fn validate_reports_not_ready_until_the_status_says_ready() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-validate");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let dir = project(
        &disc,
        &[
            ("deployment.yaml", "deployments:\n  - path: app\n".to_owned()),
            ("app/0-ns.yaml", namespace_yaml(&ns)),
            ("app/d.yaml", deployment(&ns, "web", "")),
        ],
    )?;
    ok(dir.path(), &cmd("deploy", &[]))?;
    let out = fails(dir.path(), &["validate", "-t", "test"])?;
    assert!(out.contains(&format!("{ns}/Deployment/web")), "{out}");
    // No kubelet here: the Deployment is made ready by patching its status as admin.
    make_deployment_ready(&env.admin_client().await?, &ns, "web", WAIT).await?;
    let out = ok(dir.path(), &["validate", "-t", "test"])?;
    assert!(out.contains("Validation succeeded"), "{out}");
    Ok(())
}

#[test]
fn poke_images_changes_only_the_images() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-poke");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let dep = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: main\n        image: '{{{{ images.get_image(\"nginx\") }}}}'\n"
        )
    };
    let dir = project(
        &disc,
        &[
            ("deployment.yaml", "deployments:\n  - path: app\n".to_owned()),
            ("app/0-ns.yaml", namespace_yaml(&ns)),
            ("app/d.yaml", dep(0)),
            ("app/cm.yaml", configmap(&ns, "cfg", "  a: \"1\"")),
        ],
    )?;
    ok(dir.path(), &cmd("deploy", &["-F", "nginx=nginx:1.0"]))?;
    let image = "{.spec.template.spec.containers[0].image}";
    assert_eq!(
        get(&env, &ns, "deployment/web", image).as_deref(),
        Some("nginx:1.0")
    );
    // Other changes in the project are not applied by poke-images.
    write_file(dir.path(), "app/d.yaml", &dep(3))?;
    write_file(dir.path(), "app/cm.yaml", &configmap(&ns, "cfg", "  a: \"2\""))?;
    ok(
        dir.path(),
        &[
            "poke-images",
            "-y",
            "-t",
            "test",
            "-F",
            "nginx=nginx:2.0",
            "--write-command-result=false",
        ],
    )?;
    assert_eq!(
        get(&env, &ns, "deployment/web", image).as_deref(),
        Some("nginx:2.0")
    );
    assert_eq!(
        get(&env, &ns, "deployment/web", "{.spec.replicas}").as_deref(),
        Some("0")
    );
    assert_eq!(get(&env, &ns, "configmap/cfg", "{.data.a}").as_deref(), Some("1"));
    Ok(())
}

#[test]
fn an_apiserver_500_during_apply_never_prunes() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-500");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let label = format!("e2e-fail-{ns}");
    // A validating webhook that cannot be reached, with failurePolicy Fail: the apiserver
    // answers every write of a labelled object with 500 InternalError ("failed calling webhook").
    let webhook = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: {label}\nwebhooks:\n- name: fail.{ns}.example.com\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 2\n  clientConfig:\n    url: https://127.0.0.1:1/fail\n  objectSelector:\n    matchLabels: {{{label}: \"true\"}}\n  rules:\n  - apiGroups: [\"\"]\n    apiVersions: [v1]\n    operations: [CREATE, UPDATE]\n    resources: [configmaps]\n"
    );
    let dir = app_and_old_project(&ns, &disc)?;
    let d = dir.path();
    ok(d, &cmd("deploy", &[]))?;
    // Dropped before the namespace guard: the webhook fails every labelled write cluster-wide.
    let _webhook = DeleteOnDrop::object(&env, "validatingwebhookconfiguration", &label);
    env.kubectl_with_input(&["apply", "-f", "-"], Some(&webhook))?;
    write_file(d, "deployment.yaml", "deployments:\n  - path: app\n")?;
    write_file(
        d,
        "app/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: {ns}\n  labels: {{{label}: \"true\"}}\ndata: {{a: \"2\"}}\n"
        ),
    )?;
    let out = fails(d, &cmd("deploy", &["--prune"]))?;
    assert!(
        out.contains("failed calling webhook"),
        "not the apiserver's 500:\n{out}"
    );
    assert!(out.contains("prune skipped"), "{out}");
    assert!(
        rv(&env, &ns, "configmap/old").is_some(),
        "pruned after an apiserver 500"
    );
    Ok(())
}

#[test]
fn immutable_changes_need_force_replace_and_skip_delete_objects_are_never_replaced() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-replace");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let dep = |name: &str, app: &str, annotations: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations: {{{annotations}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n"
        )
    };
    let dir = project(
        &disc,
        &[
            (
                "deployment.yaml",
                "deployments:\n  - path: ns\n  - barrier: true\n  - path: app\n".to_owned(),
            ),
            ("ns/ns.yaml", namespace_yaml(&ns)),
            ("app/web.yaml", dep("web", "a", "")),
            (
                "app/kept.yaml",
                dep("kept", "a", "kluctl.io/skip-delete: \"true\""),
            ),
        ],
    )?;
    let d = dir.path();
    ok(d, &cmd("deploy", &[]))?;
    let uid = |name: &str| get(&env, &ns, &format!("deployment/{name}"), "{.metadata.uid}");
    let (web_uid, kept_uid) = (uid("web"), uid("kept"));
    // The selector is immutable: apply and replace fail, only delete + re-create works.
    write_file(d, "app/web.yaml", &dep("web", "b", ""))?;
    write_file(
        d,
        "app/kept.yaml",
        &dep("kept", "b", "kluctl.io/skip-delete: \"true\""),
    )?;
    let out = fails(d, &cmd("deploy", &[]))?;
    assert!(out.contains("field is immutable"), "{out}");
    let out = fails(d, &cmd("deploy", &["--replace-on-error"]))?;
    assert!(out.contains("retrying with replace instead of patch"), "{out}");
    assert_eq!(uid("web"), web_uid, "--replace-on-error deleted the object");
    let out = fails(d, &cmd("deploy", &["--force-replace-on-error"]))?;
    assert!(out.contains("retrying by deleting and re-applying"), "{out}");
    assert!(
        out.contains(&format!("skipped forced replace of {ns}/Deployment/kept")),
        "{out}"
    );
    assert_ne!(uid("web"), web_uid, "web was not re-created");
    assert_eq!(
        get(&env, &ns, "deployment/web", "{.spec.selector.matchLabels.app}").as_deref(),
        Some("b")
    );
    assert_eq!(
        uid("kept"),
        kept_uid,
        "a skip-delete object was deleted for a forced replace"
    );
    Ok(())
}

#[test]
fn diff_of_a_new_project_simulates_objects_in_its_new_namespace() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique_name("kd-newns");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let disc = format!("disc-{ns}");
    let dir = project(
        &disc,
        &[
            (
                "deployment.yaml",
                "deployments:\n  - path: ns\n  - barrier: true\n  - path: app\n".to_owned(),
            ),
            ("ns/ns.yaml", namespace_yaml(&ns)),
            ("app/cm.yaml", configmap(&ns, "app", "  a: \"1\"")),
        ],
    )?;
    // The namespace does not exist: the dry run applies the ConfigMap under a temporary name in
    // `default` and reports it under its real identity.
    let out = ok(dir.path(), &["diff", "-t", "test"])?;
    assert!(
        out.contains(&format!("{ns}/ConfigMap/app")) && !out.contains("Errors:"),
        "{out}"
    );
    assert!(
        rv(&env, "", &format!("namespace/{ns}")).is_none(),
        "diff created the namespace"
    );
    Ok(())
}

/// A readiness wait on a custom resource whose CRD the same deploy applies (before a barrier)
/// ends as soon as the resource exists: the wait resolves the kind through the cluster's API
/// index, which the apply refreshed when it met the new kind. (It used the discovery made at
/// connect, which never knew the kind, so the deploy waited for the readiness timeout and failed.)
#[test]
fn readiness_wait_on_a_cr_of_a_crd_applied_in_the_same_deploy_ends_without_the_timeout() -> anyhow::Result<()>
{
    let env = Env::load()?;
    let ns = unique_name("kd-crdwait");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let group = format!("{ns}.example.com");
    let _crd = DeleteOnDrop::object(&env, "crd", &format!("widgets.{group}"));
    let disc = format!("disc-{ns}");
    let cr = format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: {ns}\n  annotations:\n    kluctl.io/wait-readiness: \"true\"\nspec:\n  size: 1\n"
    );
    let dir = project(
        &disc,
        &[
            (
                "deployment.yaml",
                "deployments:\n  - path: crd\n  - barrier: true\n  - path: app\n".to_owned(),
            ),
            ("crd/a-ns.yaml", namespace_yaml(&ns)),
            ("crd/b-crd.yaml", widget_crd(&group)),
            ("app/cr.yaml", cr),
        ],
    )?;
    let readiness_timeout = Duration::from_secs(300);
    let started = std::time::Instant::now();
    let out = ok(dir.path(), &cmd("deploy", &["--readiness-timeout", "5m"]))?;
    let took = started.elapsed();
    assert!(!out.contains("timed out while waiting for readiness"), "{out}");
    // A correctness check of "did not wait for the timeout", not a performance bound: the whole
    // deploy takes a few seconds, the readiness timeout is five minutes.
    assert!(
        took < readiness_timeout / 5,
        "the deploy took {took:?} with a readiness timeout of {readiness_timeout:?}:\n{out}"
    );
    assert_eq!(
        get(&env, &ns, &format!("widgets.{group}/w"), "{.spec.size}").as_deref(),
        Some("1")
    );
    ok(dir.path(), &cmd("delete", &[]))?;
    Ok(())
}
