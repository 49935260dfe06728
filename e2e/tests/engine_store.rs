//! The command-result store (issue 7) against the real apiserver: results written as Secrets by
//! server-side apply (manager `kluctl-results`), the results namespace created on demand,
//! retention per project + target (5 command, 2 validate results), reading results back, and no
//! Secret value in anything stored.
//!
//! Each test writes into its own results namespace, `<test namespace>-results`, which does not
//! exist beforehand (so every test also checks that the store creates it) and is deleted at the
//! end whether the test passes or fails.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Read as _;

use anyhow::{Context as _, ensure};
use e2e::{DeleteOnDrop, TestNs, init_logging};
use gitops_api::kluctl::results::{DeploymentError, ProjectKey, TargetKey, ValidateResult};
use gitops_api::kluctl::v1beta1::ObjectRef;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kluctl_engine::diff::diff_objects;
use kluctl_engine::object_ref;
use kluctl_engine::result::{CommandResult, ResultBuilder};
use kluctl_engine::store::{self, StoreError, encode::obfuscated_for_store};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

/// A base64 Secret value and a `stringData` value that must never be stored.
const SECRET_B64: &str = "ZTJlLXZlcnktc2VjcmV0LXZhbHVl"; // base64("e2e-very-secret-value")
const SECRET_PLAIN: &str = "e2e-plain-secret-value";

/// Runs `body` with a results namespace that does not exist yet; a guard deletes it afterwards.
async fn with_results_ns<F, Fut>(test: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client, String, String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    init_logging();
    TestNs::run(test, |t| async move {
        let results_ns = format!("{}-results", t.name);
        let namespaces: Api<Namespace> = Api::all(t.client.clone());
        ensure!(
            namespaces.get_opt(&results_ns).await?.is_none(),
            "results namespace {results_ns} exists before the test"
        );
        // Deleted also when the body panics.
        let _results = DeleteOnDrop::namespace(&t.env, &results_ns);
        let outcome = body(t.client.clone(), t.name.clone(), results_ns.clone()).await;
        // Names, labels and annotations only: the namespace also holds a service-account token,
        // and secret values never go to logs, not even a test's.
        if outcome.is_err()
            && let Ok(dump) = t.env.kubectl(&[
                "get",
                "secrets",
                "-n",
                &results_ns,
                "-o",
                "custom-columns=NAME:.metadata.name,TYPE:.type,LABELS:.metadata.labels,ANNOTATIONS:.metadata.annotations",
            ])
        {
            eprintln!("=== secrets in {results_ns}:\n{dump}");
        }
        outcome
    })
    .await
}

fn project(repo: &str) -> ProjectKey {
    ProjectKey {
        repo_key: repo.into(),
        sub_dir: String::new(),
    }
}

fn target(name: &str) -> TargetKey {
    TargetKey {
        target_name: name.into(),
        cluster_id: "e2e-cluster".into(),
        discriminator: format!("disc-{name}"),
    }
}

/// A result started on day 1 at `minute` minutes past midnight.
fn command_result(
    id: &str,
    project_key: ProjectKey,
    target_key: TargetKey,
    minute: u32,
) -> anyhow::Result<CommandResult> {
    let mut r = CommandResult {
        id: id.into(),
        project_key,
        target_key,
        ..CommandResult::default()
    };
    r.command.command = "deploy".into();
    r.command.start_time = Some(format!("2025-03-01T10:{minute:02}:00Z").parse()?);
    r.command.end_time = Some(format!("2025-03-01T10:{minute:02}:30Z").parse()?);
    Ok(r)
}

fn secret_api(client: &kube::Client, ns: &str) -> Api<Secret> {
    Api::namespaced(client.clone(), ns)
}

fn gunzip(data: &[u8]) -> anyhow::Result<String> {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data).read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test]
async fn retention_keeps_the_newest_five_per_project_and_target_and_nothing_else_is_touched()
-> anyhow::Result<()> {
    with_results_ns("store_retention", |client, _ns, results| async move {
        let api = secret_api(&client, &results);
        let app = project("git://git.example.com/org/app");
        let other = project("git://git.example.com/org/other");

        // The first write creates the namespace.
        let first = command_result("prod-0", app.clone(), target("prod"), 0)?;
        store::write_command_result(&client, &results, &first, 5).await?;

        // Secrets in the namespace that are not (fully) the store's: never listed, never deleted.
        let mut plain = Secret::default();
        plain.metadata.name = Some("not-a-result".into());
        plain.string_data = Some([("k".to_owned(), "v".to_owned())].into());
        api.create(&PostParams::default(), &plain).await?;
        let mut half = plain.clone();
        half.metadata.name = Some("id-label-only".into());
        half.metadata.labels = Some([("kluctl.io/command-result-id".to_owned(), "prod-x".to_owned())].into());
        api.create(&PostParams::default(), &half).await?;

        // 7 results for app/prod (written oldest first), 2 for app/staging, 1 for other/prod.
        for i in 1..7 {
            let r = command_result(&format!("prod-{i}"), app.clone(), target("prod"), i)?;
            store::write_command_result(&client, &results, &r, 5).await?;
        }
        for i in 0..2 {
            let r = command_result(&format!("staging-{i}"), app.clone(), target("staging"), 20 + i)?;
            store::write_command_result(&client, &results, &r, 5).await?;
        }
        let r = command_result("other-prod-0", other.clone(), target("prod"), 30)?;
        store::write_command_result(&client, &results, &r, 5).await?;

        let ids = |s: Vec<kluctl_engine::result::CommandResultSummary>| -> Vec<String> {
            s.into_iter().map(|s| s.id).collect()
        };
        let app_ids = ids(store::list_command_result_summaries(&client, &results, Some(&app)).await?);
        ensure!(
            app_ids
                == [
                    "staging-1",
                    "staging-0",
                    "prod-6",
                    "prod-5",
                    "prod-4",
                    "prod-3",
                    "prod-2"
                ],
            "app results, newest first: {app_ids:?}"
        );
        let all = ids(store::list_command_result_summaries(&client, &results, None).await?);
        ensure!(all.len() == 8 && all[0] == "other-prod-0", "all results: {all:?}");

        // (v1.20 also puts the default service account's token Secret in every namespace.)
        let names: BTreeSet<String> = api
            .list_metadata(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|m| m.metadata.name)
            .filter(|n| !n.starts_with("default-token-"))
            .collect();
        let mut expected: BTreeSet<String> = ["not-a-result", "id-label-only", "cr-other-other-prod-0"]
            .map(String::from)
            .into();
        expected.extend((2..7).map(|i| format!("cr-app-prod-{i}")));
        expected.extend((0..2).map(|i| format!("cr-app-staging-{i}")));
        ensure!(
            names == expected,
            "prod-0 and prod-1 expire, everything else stays: {names:?}"
        );

        // Delete by id removes exactly that result.
        store::delete_command_result(&client, &results, "prod-2").await?;
        let after = ids(store::list_command_result_summaries(&client, &results, Some(&app)).await?);
        ensure!(
            !after.contains(&"prod-2".to_owned()) && after.len() == 6,
            "{after:?}"
        );
        let missing = store::get_command_result(&client, &results, "prod-2").await;
        ensure!(
            matches!(missing, Err(StoreError::NotFound { .. })),
            "deleted result still readable: {missing:?}"
        );
        Ok(())
    })
    .await
}

/// The ids of `project`'s command results in `results`, newest first.
async fn app_ids(client: &kube::Client, results: &str, project: &ProjectKey) -> anyhow::Result<Vec<String>> {
    Ok(
        store::list_command_result_summaries(client, results, Some(project))
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect(),
    )
}

/// Results without the target-hash label (Kluctl's, or ours from before the label) are found
/// by full listings, which a target's writes do until none of them is left, and expired like
/// the others; then writes list only the target's label.
#[tokio::test]
async fn results_without_the_target_label_are_expired_by_full_listings_until_none_is_left()
-> anyhow::Result<()> {
    with_results_ns("store_unlabelled", |client, _ns, results| async move {
        let api = secret_api(&client, &results);
        let app = project("git://git.example.com/org/legacy-app");
        // Another project's write creates the namespace.
        let other = command_result(
            "other-0",
            project("git://git.example.com/org/x"),
            target("prod"),
            0,
        )?;
        store::write_command_result(&client, &results, &other, 2).await?;
        // Three old results of app/prod, stored as before the label existed.
        for i in 0..3 {
            let r = obfuscated_for_store(&command_result(
                &format!("old-{i}"),
                app.clone(),
                target("prod"),
                10 + i,
            )?)?;
            let mut secret = store::encode::command_result_secret(&results, &r)?;
            let labels = secret.metadata.labels.get_or_insert_default();
            ensure!(
                labels.remove(store::RESULT_TARGET_LABEL).is_some(),
                "the store labels results with the target hash"
            );
            api.create(&PostParams::default(), &secret).await?;
        }
        // The first write of app/prod in this process keeps the newest two of all four.
        let new = command_result("new-0", app.clone(), target("prod"), 20)?;
        store::write_command_result(&client, &results, &new, 2).await?;
        let ids = app_ids(&client, &results, &app).await?;
        ensure!(
            ids == ["new-0", "old-2"],
            "app/prod results after the first write: {ids:?}"
        );
        // Later writes list by label and keep expiring.
        let newer = command_result("new-1", app.clone(), target("prod"), 21)?;
        store::write_command_result(&client, &results, &newer, 2).await?;
        let ids = app_ids(&client, &results, &app).await?;
        ensure!(
            ids == ["new-1", "new-0"],
            "app/prod results after the second write: {ids:?}"
        );
        ensure!(
            store::list_command_result_summaries(&client, &results, None)
                .await?
                .len()
                == 3,
            "the other project's result stays"
        );
        Ok(())
    })
    .await
}

/// A deploy result with a changed Secret (values in `data` and `stringData`) and a new
/// ConfigMap, built like the engine builds it.
fn deploy_result(ns: &str) -> anyhow::Result<CommandResult> {
    let secret = |pw: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "db", "namespace": ns, "labels": {"app": "db"}},
               "data": {"password": pw}, "stringData": {"token": SECRET_PLAIN}})
    };
    let old = secret("b2xkLXZhbHVl");
    let new = secret(SECRET_B64);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "settings", "namespace": ns}, "data": {"mode": "fast"}});
    let secret_ref = object_ref(&new).context("secret ref")?;
    let cm_ref = object_ref(&cm).context("configmap ref")?;
    let mut b = ResultBuilder::new();
    b.set_rendered(&secret_ref, new.clone());
    b.set_remote(&secret_ref, old.clone());
    b.set_applied(&secret_ref, new.clone());
    b.add_changed(&secret_ref, diff_objects(&old, &new));
    b.set_rendered(&cm_ref, cm.clone());
    b.set_applied(&cm_ref, cm);
    b.add_new(&cm_ref);
    b.add_warning(&ObjectRef::default(), "a warning for the record");
    let mut r = command_result(
        "9b2c4e1a-0000-4000-8000-000000000001",
        ProjectKey {
            repo_key: "git://git.example.com/org/My_Project".into(),
            sub_dir: "deploy".into(),
        },
        target("prod"),
        5,
    )?;
    b.finish(&mut r);
    r.errors.push(DeploymentError {
        object_ref: cm_ref,
        message: "an error for the record".into(),
    });
    Ok(r)
}

#[tokio::test]
async fn command_result_round_trips_with_secret_values_obfuscated_and_manager_kluctl_results()
-> anyhow::Result<()> {
    with_results_ns("store_roundtrip", |client, ns, results| async move {
        let input = deploy_result(&ns)?;
        store::write_command_result(&client, &results, &input, 5).await?;

        // Read back: equal to the input with its Secret values obfuscated, nothing else changed.
        let back = store::get_command_result(&client, &results, &input.id).await?;
        ensure!(
            back == obfuscated_for_store(&input)?,
            "round trip differs:\n{back:#?}"
        );
        ensure!(back.objects.len() == 2 && back.errors.len() == 1 && back.warnings.len() == 1);
        let rendered = back.objects[1].rendered.as_ref().context("secret rendered")?;
        ensure!(rendered["data"]["password"] == json!("KioqKio="), "{rendered}");
        ensure!(
            back.objects[0] == input.objects[0],
            "the ConfigMap is stored as it was"
        );

        // A result without Secrets comes back exactly as written.
        let mut plain = command_result(
            "plain-1",
            project("git://git.example.com/org/plain"),
            target("t"),
            9,
        )?;
        plain.objects.push(input.objects[0].clone());
        store::write_command_result(&client, &results, &plain, 5).await?;
        let plain_back = store::get_command_result(&client, &results, "plain-1").await?;
        ensure!(plain_back == plain, "plain round trip differs:\n{plain_back:#?}");

        // The Secret itself: Kluctl's name, labels, annotations and keys, applied by kluctl-results.
        let name = format!("cr-my-project-{}", input.id);
        let stored = secret_api(&client, &results).get(&name).await?;
        let labels = stored.metadata.labels.clone().unwrap_or_default();
        ensure!(
            labels.get("kluctl.io/result").map(String::as_str) == Some("true"),
            "{labels:?}"
        );
        ensure!(
            labels.get("kluctl.io/command-result-id") == Some(&input.id),
            "{labels:?}"
        );
        let annotations = stored.metadata.annotations.clone().unwrap_or_default();
        ensure!(
            annotations
                .get("kluctl.io/result-project-repo-key")
                .map(String::as_str)
                == Some("git://git.example.com/org/My_Project"),
            "{annotations:?}"
        );
        ensure!(
            annotations
                .get("kluctl.io/result-project-subdir")
                .map(String::as_str)
                == Some("deploy")
        );
        let summary: Value = serde_json::from_str(
            annotations
                .get("kluctl.io/command-result-summary")
                .context("summary annotation")?,
        )?;
        ensure!(
            summary["changedObjects"] == json!(1) && summary["newObjects"] == json!(1),
            "{summary}"
        );
        let managers: Vec<(String, String)> = stored
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|f| {
                (
                    f.manager.clone().unwrap_or_default(),
                    f.operation.clone().unwrap_or_default(),
                )
            })
            .collect();
        ensure!(
            managers == [("kluctl-results".to_owned(), "Apply".to_owned())],
            "managed fields: {managers:?}"
        );

        // No Secret value anywhere in the stored Secret: decompress every key and search.
        let data = stored.data.clone().unwrap_or_default();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        ensure!(keys == ["compactedObjects", "reducedResult"], "{keys:?}");
        let mut texts: Vec<String> = annotations.values().cloned().collect();
        for v in data.values() {
            texts.push(gunzip(&v.0)?);
        }
        texts.push(serde_json::to_string(&stored)?);
        for text in &texts {
            for secret in [SECRET_B64, SECRET_PLAIN, "e2e-very-secret-value", "b2xkLXZhbHVl"] {
                ensure!(!text.contains(secret), "secret value {secret:?} stored");
            }
        }
        ensure!(
            texts.iter().any(|t| t.contains("***** (obfuscated)")),
            "the Secret's change is recorded, obfuscated"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn validate_results_keep_two_per_target_and_round_trip() -> anyhow::Result<()> {
    with_results_ns("store_validate", |client, _ns, results| async move {
        let app = project("git://git.example.com/org/app");
        let vr = |i: u32| -> anyhow::Result<ValidateResult> {
            Ok(ValidateResult {
                id: format!("vr-{i}"),
                project_key: app.clone(),
                target_key: target("prod"),
                start_time: Some(Time(format!("2025-03-01T11:0{i}:00Z").parse::<Timestamp>()?)),
                end_time: Some(Time(format!("2025-03-01T11:0{i}:10Z").parse::<Timestamp>()?)),
                ready: i.is_multiple_of(2),
                errors: vec![DeploymentError {
                    object_ref: ObjectRef::default(),
                    message: format!("finding {i}"),
                }],
                ..ValidateResult::default()
            })
        };
        for i in 0..4 {
            store::write_validate_result(&client, &results, &vr(i)?, 2).await?;
        }
        let ids: Vec<String> = store::list_validate_result_summaries(&client, &results, Some(&app))
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        ensure!(ids == ["vr-3", "vr-2"], "kept validate results: {ids:?}");
        let back = store::get_validate_result(&client, &results, "vr-3").await?;
        ensure!(back == vr(3)?, "validate round trip differs: {back:#?}");
        let gone = store::get_validate_result(&client, &results, "vr-0").await;
        ensure!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
        // Validate and command results do not count against each other.
        let cr = command_result("cr-1", app.clone(), target("prod"), 1)?;
        store::write_command_result(&client, &results, &cr, 5).await?;
        store::write_validate_result(&client, &results, &vr(5)?, 2).await?;
        let left: Vec<String> = store::list_validate_result_summaries(&client, &results, None)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        ensure!(left == ["vr-5", "vr-3"], "{left:?}");
        ensure!(store::get_command_result(&client, &results, "cr-1").await?.id == "cr-1");
        Ok(())
    })
    .await
}

/// Text that gzip cannot shrink much: alphanumerics from a fixed xorshift sequence.
fn noise(seed: u64, len: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(ALNUM[(x % 62) as usize])
        })
        .collect()
}

/// kluctl#1324: a result whose objects hold ~3 MB (too large for one Secret, as the apiserver
/// confirms) is stored without object bodies instead of failing, and says so.
#[tokio::test]
async fn command_result_too_large_for_one_secret_is_stored_without_object_bodies() -> anyhow::Result<()> {
    with_results_ns("store_too_large", |client, ns, results| async move {
        let mut b = ResultBuilder::new();
        for i in 0..60_u64 {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": format!("big-{i}"), "namespace": ns,
                                         "labels": {"app": "big"}},
                            "data": {"blob": noise(i, 50_000)}});
            let r = object_ref(&cm).context("configmap ref")?;
            b.set_rendered(&r, cm.clone());
            b.set_applied(&r, cm);
            b.add_new(&r);
        }
        let mut input = command_result(
            "big-1",
            project("git://git.example.com/org/big"),
            target("prod"),
            1,
        )?;
        b.finish(&mut input);
        let whole_summary = input.summary();

        // The whole result is more than the apiserver takes in one Secret.
        let whole = store::encode::command_result_secret(&results, &obfuscated_for_store(&input)?)?;
        let whole_bytes: usize = whole.data.iter().flatten().map(|(_, v)| v.0.len()).sum();
        ensure!(whole_bytes > 1 << 20, "whole result is only {whole_bytes} bytes");
        let api = secret_api(&client, &results);
        // (The namespace is created by the store; make it exist for this direct create.)
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut results_ns = Namespace::default();
        results_ns.metadata.name = Some(results.clone());
        namespaces.create(&PostParams::default(), &results_ns).await?;
        let refused = api.create(&PostParams::default(), &whole).await;
        ensure!(
            matches!(refused, Err(kube::Error::Api(_))),
            "the apiserver took a {whole_bytes} byte Secret: {refused:?}"
        );

        // The store writes it all the same, cut, and says what it cut.
        let stored = store::write_command_result(&client, &results, &input, 5).await?;
        let cut = stored.reduction.context("the store did not cut the result")?;
        ensure!(
            cut.objects == Some(store::ObjectCut::Bodies) && !cut.messages,
            "{cut:?}"
        );
        let warning = cut.to_string();
        ensure!(
            warning.starts_with("command result too large for one Secret (")
                && warning.ends_with(" bytes): stored without object bodies"),
            "{warning}"
        );

        let secret = api.get(&stored.secret).await?;
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        ensure!(
            annotations
                .get(store::RESULT_REDUCED_ANNOTATION)
                .map(String::as_str)
                == Some("objects"),
            "{annotations:?}"
        );
        let data_bytes: usize = secret.data.iter().flatten().map(|(_, v)| v.0.len()).sum();
        ensure!(
            data_bytes < store::reduce::MAX_SECRET_BYTES,
            "stored {data_bytes} bytes"
        );

        // Reading back works: every object with its identity, the warning last, counts whole.
        let back = store::get_command_result(&client, &results, "big-1").await?;
        ensure!(back.objects.len() == 60, "{} objects", back.objects.len());
        ensure!(back.objects.iter().all(|o| o.new));
        let seventh = back
            .objects
            .iter()
            .find(|o| o.object.name == "big-7")
            .context("big-7 read back")?;
        let rendered = seventh.rendered.as_ref().context("rendered identity")?;
        ensure!(
            *rendered
                == json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "big-7", "namespace": ns, "labels": {"app": "big"}}}),
            "{rendered}"
        );
        ensure!(
            back.warnings.last().map(|w| w.message.as_str()) == Some(warning.as_str()),
            "{:?}",
            back.warnings
        );
        let summaries = store::list_command_result_summaries(&client, &results, None).await?;
        let [summary] = summaries.as_slice() else {
            anyhow::bail!("{} summaries listed", summaries.len());
        };
        ensure!(
            summary.rendered_objects == whole_summary.rendered_objects
                && summary.applied_objects == 60
                && summary.new_objects == 60,
            "{summary:?}"
        );
        ensure!(summary.warnings.last().map(|w| w.message.as_str()) == Some(warning.as_str()));
        Ok(())
    })
    .await
}
