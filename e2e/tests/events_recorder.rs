//! The controllers' Kubernetes Events against the real apiserver: a repeated event about an
//! object folds into one `events.k8s.io/v1` Event with a series, also when the object changed
//! (a new resourceVersion) in between, and a different message is an Event of its own.
//!
//! Needs the environment of `make e2e-up`.

use std::collections::BTreeMap;

use e2e::TestNs;
use gitops_runtime::{Events, Severity};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};

#[tokio::test]
async fn a_repeated_event_folds_into_a_series_across_status_changes() -> anyhow::Result<()> {
    e2e::init_logging();
    TestNs::run("events_series", |t| async move {
        let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.name);
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("subject".to_owned());
        let cm = cms.create(&PostParams::default(), &cm).await?;
        let events = Events::new(t.client.clone(), "e2e-controller", "e2e-instance", "");
        events
            .emit(
                &cm,
                Severity::Info,
                "Stored",
                "stored artifact for revision a",
                BTreeMap::new(),
            )
            .await;
        // The object changes between two events, as a status patch does.
        let cm = cms
            .patch(
                "subject",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"data": {"k": "v"}})),
            )
            .await?;
        events
            .emit(
                &cm,
                Severity::Info,
                "Stored",
                "stored artifact for revision a",
                BTreeMap::new(),
            )
            .await;
        events
            .emit(&cm, Severity::Error, "Failed", "fetch failed", BTreeMap::new())
            .await;

        let api: Api<Event> = Api::namespaced(t.client.clone(), &t.name);
        let mut listed = api.list(&ListParams::default()).await?.items;
        listed.sort_by_key(|e| e.reason.clone());
        let seen: Vec<(Option<String>, Option<String>, Option<i32>)> = listed
            .iter()
            .map(|e| {
                (
                    e.reason.clone(),
                    e.type_.clone(),
                    e.series.as_ref().map(|s| s.count),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Some("Failed".to_owned()), Some("Warning".to_owned()), None),
                (Some("Stored".to_owned()), Some("Normal".to_owned()), Some(2)),
            ],
            "{listed:#?}"
        );
        let stored = &listed[1];
        assert_eq!(stored.note.as_deref(), Some("stored artifact for revision a"));
        assert_eq!(stored.reporting_controller.as_deref(), Some("e2e-controller"));
        assert_eq!(
            stored.regarding.as_ref().and_then(|r| r.name.as_deref()),
            Some("subject")
        );
        Ok(())
    })
    .await
}
