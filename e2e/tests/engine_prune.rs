//! The safety core of the Kluctl engine against the real apiserver: finding our objects by
//! discriminator, orphans, prune, delete-all, dry run, and the uid guard. Every test uses its
//! own discriminator (the test namespace's name), so parallel tests never see each other.
//!
//! Fixture per test, applied with server-side apply:
//!
//! ```text
//! ns/ConfigMap ours-orphan     discriminator D, manager kluctl          -> orphan, deleted by prune
//! ns/ConfigMap ours-rendered   discriminator D, manager kluctl          -> rendered, kept
//! ns/ConfigMap ours-skip       D, kluctl, kluctl.io/skip-delete=true    -> kept
//! ns/ConfigMap foreign         D, only manager "helm"                   -> listed, never deleted
//! ns/ConfigMap other-disc      discriminator D-other, manager kluctl    -> never listed
//! ns/ConfigMap no-disc         no discriminator, manager kluctl         -> never listed
//! ClusterRole  <ns>-orphan     D, kluctl (cluster-scoped)               -> orphan
//! Namespace    <ns>-sub        D, kluctl; holds ConfigMap inner (D)     -> delete-all: namespace first
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use e2e::{DeleteOnDrop, Env, TestNs, api_for, init_logging};
use gitops_api::kluctl::v1beta1::ObjectRef;
use kluctl_engine::project::inclusion::Inclusion;
use kluctl_engine::prune::{self, DeleteOptions};
use kluctl_engine::remote::{self, ApiIndex, Discriminator, ListOptions, object_ref};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

fn cm(ns: &str, name: &str, labels: &Value, annotations: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "data": {"k": name},
    })
}

/// The fixture objects with the field manager that applies each.
fn fixture(ns: &str) -> Vec<(Value, &'static str)> {
    let d = json!({"kluctl.io/discriminator": ns});
    let other = json!({"kluctl.io/discriminator": format!("{ns}-other")});
    let none = json!({});
    let sub = format!("{ns}-sub");
    vec![
        (cm(ns, "ours-orphan", &d, &none), "kluctl"),
        (cm(ns, "ours-rendered", &d, &none), "kluctl"),
        (
            cm(ns, "ours-skip", &d, &json!({"kluctl.io/skip-delete": "true"})),
            "kluctl",
        ),
        (cm(ns, "foreign", &d, &none), "helm"),
        (cm(ns, "other-disc", &other, &none), "kluctl"),
        (cm(ns, "no-disc", &json!({"app": "x"}), &none), "kluctl"),
        (
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": format!("{ns}-orphan"), "labels": d},
                "rules": [],
            }),
            "kluctl",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": sub, "labels": d}}),
            "kluctl",
        ),
        (cm(&sub, "inner", &d, &none), "kluctl"),
    ]
}

fn r(v: &Value) -> ObjectRef {
    object_ref(v).expect("fixture objects have refs")
}

fn names(refs: impl IntoIterator<Item = ObjectRef>) -> BTreeSet<String> {
    refs.into_iter().map(|r| r.to_string()).collect()
}

async fn apply(client: &kube::Client, object: &Value, manager: &str) -> anyhow::Result<()> {
    let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
    let api = api_for(client, &dynamic).await?;
    api.patch(
        dynamic.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
    .with_context(|| format!("applying {} as {manager}", r(object)))?;
    Ok(())
}

/// `resourceVersion` of `object` on the cluster, `None` when it does not exist.
async fn resource_version(client: &kube::Client, object: &Value) -> anyhow::Result<Option<String>> {
    let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
    let api = api_for(client, &dynamic).await?;
    let name = dynamic.metadata.name.as_deref().unwrap_or_default();
    Ok(api
        .get_metadata_opt(name)
        .await?
        .and_then(|m| m.metadata.resource_version))
}

/// Our objects as the engine lists them: by the namespace's discriminator, default options.
async fn list_ours(
    client: &kube::Client,
    index: &remote::ApiIndex,
    ns: &str,
) -> anyhow::Result<remote::RemoteObjects> {
    let d = Discriminator::new(ns.to_owned())?;
    Ok(remote::list_by_discriminator(client, index, &d, &ListOptions::default()).await?)
}

/// Exactly the objects named in `expected` are gone (or terminating); the others still exist.
async fn ensure_gone_exactly(
    client: &kube::Client,
    objects: &[(Value, &'static str)],
    expected: &BTreeSet<String>,
) -> anyhow::Result<()> {
    for (o, _) in objects {
        let gone = expected.contains(&r(o).to_string());
        ensure!(exists(client, o).await? != gone, "{} gone={gone}", r(o));
    }
    Ok(())
}

/// A namespace in deletion still answers GET; only "gone or terminating" matters for it.
async fn exists(client: &kube::Client, object: &Value) -> anyhow::Result<bool> {
    let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
    let api = api_for(client, &dynamic).await?;
    let name = dynamic.metadata.name.as_deref().unwrap_or_default();
    Ok(api
        .get_metadata_opt(name)
        .await?
        .is_some_and(|m| m.metadata.deletion_timestamp.is_none()))
}

/// Runs `body` with the fixture applied; the cluster-scoped fixture objects are removed by drop
/// guards (the test namespace itself by `TestNs`).
async fn with_fixture<F, Fut>(test: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Env, kube::Client, String, ApiIndex, Vec<(Value, &'static str)>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logging();
    TestNs::run(test, |t| async move {
        let objects = fixture(&t.name);
        // Cluster-scoped objects outlive the test namespace; the guards delete them, also when
        // the body panics.
        let _cluster_scoped: Vec<DeleteOnDrop> = objects
            .iter()
            .filter(|(o, _)| o["metadata"]["namespace"].is_null())
            .map(|(o, _)| {
                let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
                DeleteOnDrop::object(&t.env, &field(&o["kind"]), &field(&o["metadata"]["name"]))
            })
            .collect();
        for (o, manager) in &objects {
            apply(&t.client, o, manager).await?;
        }
        let discovery = kube::discovery::Discovery::new(t.client.clone()).run().await?;
        let index = ApiIndex::from_discovery(&discovery);
        body(
            t.env.clone(),
            t.client.clone(),
            t.name.clone(),
            index,
            objects.clone(),
        )
        .await
    })
    .await
}

fn expected_ours(ns: &str) -> BTreeSet<String> {
    [
        format!("{ns}/ConfigMap/ours-orphan"),
        format!("{ns}/ConfigMap/ours-rendered"),
        format!("{ns}/ConfigMap/ours-skip"),
        format!("{ns}/ConfigMap/foreign"),
        format!("ClusterRole/{ns}-orphan"),
        format!("Namespace/{ns}-sub"),
        format!("{ns}-sub/ConfigMap/inner"),
    ]
    .into()
}

#[tokio::test]
async fn listing_by_discriminator_finds_exactly_our_objects() -> anyhow::Result<()> {
    with_fixture("prune_listing", |_env, client, ns, index, objects| async move {
        let remote = list_ours(&client, &index, &ns).await?;
        ensure!(
            remote.warnings.is_empty(),
            "admin lists everything: {:?}",
            remote.warnings
        );
        let found = names(remote.objects.keys().cloned());
        ensure!(found == expected_ours(&ns), "found {found:#?}");
        // Metadata carries what the deletable rules need.
        let foreign = remote
            .objects
            .iter()
            .find(|(r, _)| r.name == "foreign")
            .map(|(_, m)| m)
            .context("foreign listed")?;
        let managers: Vec<_> = foreign
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|f| f.manager.clone())
            .collect();
        ensure!(managers == ["helm"], "{managers:?}");

        // GET by ref: existing objects come back in full, missing ones are absent.
        let rendered = r(&objects[1].0);
        let absent = ObjectRef {
            name: "never-applied".into(),
            ..rendered.clone()
        };
        let not_served = ObjectRef {
            group: "nothing.example.com".into(),
            ..rendered.clone()
        };
        let fetched = remote::fetch_objects(
            &client,
            &index,
            &[rendered.clone(), absent.clone(), not_served],
            4,
        )
        .await;
        ensure!(
            fetched.errors.is_empty() && fetched.warnings.is_empty(),
            "{fetched:?}"
        );
        ensure!(fetched.objects.len() == 1, "{:?}", fetched.objects.keys());
        ensure!(fetched.objects[&rendered]["data"]["k"] == "ours-rendered");
        ensure!(remote.missing(&[rendered, absent.clone()]) == [absent]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn prune_deletes_exactly_the_orphans() -> anyhow::Result<()> {
    with_fixture("prune_orphans", |_env, client, ns, index, objects| async move {
        let remote = list_ours(&client, &index, &ns).await?;
        // Rendered: everything except ours-orphan, the ClusterRole, and the two objects that
        // must survive even as non-rendered discriminator objects (foreign manager, skip-delete).
        let rendered: Vec<ObjectRef> = objects
            .iter()
            .map(|(o, _)| r(o))
            .filter(|r| {
                !["ours-orphan", "foreign", "ours-skip"].contains(&r.name.as_str()) && r.kind != "ClusterRole"
            })
            .collect();
        let orphans = prune::find_orphans(&remote, &index, &rendered, &Inclusion::default());
        let expected: BTreeSet<String> = [
            format!("{ns}/ConfigMap/ours-orphan"),
            format!("ClusterRole/{ns}-orphan"),
        ]
        .into();
        ensure!(names(orphans.clone()) == expected, "orphans {orphans:?}");

        let options = DeleteOptions {
            wait: Some(Duration::from_secs(60)),
            ..DeleteOptions::default()
        };
        let outcome = prune::delete_objects(&client, &index, &orphans, &options).await;
        ensure!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        ensure!(names(outcome.deleted) == expected);
        ensure_gone_exactly(&client, &objects, &expected).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dry_run_delete_all_changes_nothing() -> anyhow::Result<()> {
    with_fixture("prune_dry_run", |_env, client, ns, index, objects| async move {
        let mut before = Vec::new();
        for (o, _) in &objects {
            before.push(resource_version(&client, o).await?);
        }
        let remote = list_ours(&client, &index, &ns).await?;
        let plan = prune::plan_delete_all(&remote, &index, &Inclusion::default());
        let options = DeleteOptions {
            dry_run: true,
            wait: Some(Duration::from_secs(60)),
            ..DeleteOptions::default()
        };
        let outcome = prune::execute(&client, &index, &plan, &options).await;
        ensure!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        ensure!(
            !outcome.deleted.is_empty(),
            "a dry run reports what it would delete"
        );
        for ((o, _), rv) in objects.iter().zip(before) {
            let now = resource_version(&client, o).await?;
            ensure!(now.is_some() && now == rv, "{} changed: {rv:?} -> {now:?}", r(o));
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn delete_all_deletes_ours_namespace_first_and_never_the_others() -> anyhow::Result<()> {
    with_fixture(
        "prune_delete_all",
        |_env, client, ns, index, objects| async move {
            let remote = list_ours(&client, &index, &ns).await?;
            let plan = prune::plan_delete_all(&remote, &index, &Inclusion::default());
            let planned: Vec<String> = plan.refs().map(ToString::to_string).collect();
            ensure!(
                planned.first() == Some(&format!("Namespace/{ns}-sub")),
                "{planned:?}"
            );
            let expected: BTreeSet<String> = [
                format!("Namespace/{ns}-sub"),
                format!("{ns}-sub/ConfigMap/inner"),
                format!("{ns}/ConfigMap/ours-orphan"),
                format!("{ns}/ConfigMap/ours-rendered"),
                format!("ClusterRole/{ns}-orphan"),
            ]
            .into();
            ensure!(
                planned.iter().cloned().collect::<BTreeSet<_>>() == expected,
                "{planned:?}"
            );

            let options = DeleteOptions {
                wait: Some(Duration::from_secs(90)),
                ..DeleteOptions::default()
            };
            let outcome = prune::execute(&client, &index, &plan, &options).await;
            ensure!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            ensure!(
                names(outcome.skipped_in_deleted_namespaces.clone())
                    == [format!("{ns}-sub/ConfigMap/inner")].into(),
                "{outcome:?}"
            );
            // With waiting, the namespace (and so its content) is gone before anything else went.
            ensure!(outcome.deleted.first().map(ToString::to_string) == Some(format!("Namespace/{ns}-sub")));
            ensure_gone_exactly(&client, &objects, &expected).await?;
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn object_replaced_after_listing_is_not_deleted() -> anyhow::Result<()> {
    with_fixture("prune_uid_guard", |_env, client, ns, index, objects| async move {
        let remote = list_ours(&client, &index, &ns).await?;
        let plan = prune::plan_delete_all(&remote, &index, &Inclusion::default());
        // Someone deletes and recreates ours-orphan between listing and deleting.
        let (orphan, manager) = &objects[0];
        let dynamic: DynamicObject = serde_json::from_value(orphan.clone())?;
        let api = api_for(&client, &dynamic).await?;
        api.delete("ours-orphan", &DeleteParams::default()).await?;
        apply(&client, orphan, manager).await?;

        let outcome = prune::execute(&client, &index, &plan, &DeleteOptions::default()).await;
        ensure!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        ensure!(
            names(outcome.warnings.iter().map(|w| w.object_ref.clone()))
                == [format!("{ns}/ConfigMap/ours-orphan")].into(),
            "{:?}",
            outcome.warnings
        );
        ensure!(outcome.warnings[0].message.contains("uid precondition"));
        ensure!(exists(&client, orphan).await?, "the replacement survived");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn forbidden_lists_become_warnings_and_fall_back_to_the_named_namespaces() -> anyhow::Result<()> {
    with_fixture("prune_forbidden", |env, client, ns, index, _objects| async move {
        // dev-user may list ConfigMaps in the test namespace only, nothing cluster-wide.
        for o in [
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "list-configmaps", "namespace": ns},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "dev-list-configmaps", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "list-configmaps"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev-user"}],
            }),
        ] {
            apply(&client, &o, "e2e").await?;
        }
        let dev = env.dev_client().await?;
        let d = Discriminator::new(ns.clone())?;
        let options = ListOptions {
            fallback_namespaces: [ns.clone()].into(),
            ..ListOptions::default()
        };
        // The RoleBinding may take a moment to be seen by the authorizer.
        let remote = e2e::poll_for("the dev user to list the ConfigMaps", Duration::from_secs(30), || async {
            let remote = remote::list_by_discriminator(&dev, &index, &d, &options).await?;
            Ok((!remote.objects.is_empty()).then_some(remote))
        })
        .await?;
        let found = names(remote.objects.keys().cloned());
        let expected: BTreeSet<String> = ["ours-orphan", "ours-rendered", "ours-skip", "foreign"]
            .iter()
            .map(|n| format!("{ns}/ConfigMap/{n}"))
            .collect();
        ensure!(found == expected, "found {found:#?}");
        let cm_warning = remote
            .warnings
            .iter()
            .find(|w| w.object_ref.kind == "ConfigMap")
            .context("a warning for the ConfigMap fallback")?;
        ensure!(cm_warning.message.contains("listed the deployment's namespaces instead"), "{}", cm_warning.message);
        ensure!(
            remote
                .warnings
                .iter()
                .any(|w| w.object_ref.kind == "ClusterRole" && w.message.contains("permission denied")),
            "{:?}",
            remote.warnings
        );
        Ok(())
    })
    .await
}
