//! `kluctl check [--pre]`: is the cluster ready for an installation (`--pre`: the server version
//! and the rights to install), and is the installation healthy (CRDs present, Established, with
//! stored versions; the controller Deployments available).
//!
//! The result is a table, one row per check naming its object; any failed row makes the command
//! fail (exit status 1) with the failed rows repeated as its error.

use std::fmt::Write as _;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

use super::apply::{aggregated_apis, api_for, condition_true, established, served_elsewhere};
use super::manifests::{LEGACY_CRD, Manifests, PART_OF, name, parse_minor};

/// The oldest Kubernetes minor version (1.x) the controllers support.
pub const MIN_MINOR: u32 = 20;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What was checked ("server version", "CRD", "Deployment", "permission").
    pub check: String,
    /// The object.
    pub object: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub message: String,
}

/// Runs the checks and prints the table.
///
/// # Errors
/// A failed check (all of them named in the message), or a failed API call.
pub async fn check(client: &Client, m: &Manifests, namespace: &str, pre: bool) -> anyhow::Result<()> {
    let mut rows = vec![server_version(client).await?];
    if pre {
        rows.extend(rights(client, m).await?);
    } else {
        rows.extend(crds(client, m).await?);
        rows.extend(deployments(client, namespace).await?);
    }
    print!("{}", table(&rows));
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{} {}: {}", r.check, r.object, r.message))
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{} check(s) failed:\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
    Ok(())
}

async fn server_version(client: &Client) -> anyhow::Result<Row> {
    let v = client
        .apiserver_version()
        .await
        .context("failed to read the server version")?;
    let minor = parse_minor(&v.major, &v.minor);
    let (ok, message) = match minor {
        Some(m) if m >= MIN_MINOR => (true, format!("{} (>= 1.{MIN_MINOR})", v.git_version)),
        Some(_) => (false, format!("{} is older than 1.{MIN_MINOR}", v.git_version)),
        None => (false, format!("cannot read the version {:?}", v.git_version)),
    };
    Ok(Row {
        check: "server version".into(),
        object: "kube-apiserver".into(),
        ok,
        message,
    })
}

/// Whether the current identity may create every kind of object the installation applies.
async fn rights(client: &Client, m: &Manifests) -> anyhow::Result<Vec<Row>> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for o in m.all() {
        let (group, resource) = group_resource(o);
        let qualified = if group.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{group}")
        };
        let ns = super::manifests::namespace(o).map(str::to_owned);
        if !seen.insert((group.clone(), resource.clone(), ns.clone())) {
            continue;
        }
        for verb in ["create", "patch", "delete"] {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(group.clone()),
                        resource: Some(resource.clone()),
                        namespace: ns.clone(),
                        verb: Some(verb.to_owned()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let r = reviews
                .create(&PostParams::default(), &review)
                .await
                .with_context(|| format!("failed to ask whether {verb} on {qualified} is allowed"))?;
            let status = r.status.unwrap_or_default();
            let object = match &ns {
                Some(ns) => format!("{qualified} in {ns}"),
                None => qualified.clone(),
            };
            rows.push(Row {
                check: "permission".into(),
                object,
                ok: status.allowed,
                message: if status.allowed {
                    format!("may {verb}")
                } else {
                    format!("may not {verb}{}", reason(status.reason.as_deref()))
                },
            });
        }
    }
    Ok(rows)
}

fn reason(r: Option<&str>) -> String {
    r.filter(|r| !r.is_empty())
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

fn group_resource(o: &serde_json::Value) -> (String, String) {
    let api_version = o["apiVersion"].as_str().unwrap_or_default();
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default()
        .to_owned();
    let resource = match super::manifests::kind(o) {
        "CustomResourceDefinition" => "customresourcedefinitions",
        "Namespace" => "namespaces",
        "ServiceAccount" => "serviceaccounts",
        "Service" => "services",
        "Deployment" => "deployments",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => other,
    };
    (group, resource.to_owned())
}

/// Every CRD of the installation: present, Established, with stored versions, or its API served
/// by an aggregated server. The legacy CRD is optional: reported only when present.
async fn crds(client: &Client, m: &Manifests) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let aggregated = aggregated_apis(client).await?;
    for o in &m.crds {
        if let Some(service) = served_elsewhere(o, &aggregated) {
            rows.push(Row {
                check: "CRD".into(),
                object: name(o).to_owned(),
                ok: true,
                message: format!("served by {service}"),
            });
            continue;
        }
        let api = api_for(client, o)?;
        let crd = api
            .get_opt(name(o))
            .await
            .with_context(|| format!("failed to read CustomResourceDefinition {}", name(o)))?;
        let row = |ok, message: String| Row {
            check: "CRD".into(),
            object: name(o).to_owned(),
            ok,
            message,
        };
        rows.push(match crd {
            None if name(o) == LEGACY_CRD => continue,
            None => row(false, "not installed".into()),
            Some(crd) if !established(&crd.data) => row(false, "not Established".into()),
            Some(crd) => match crd.data["status"]["storedVersions"]
                .as_array()
                .and_then(|v| v.last())
            {
                Some(v) => row(
                    true,
                    format!("Established, stored version {}", v.as_str().unwrap_or_default()),
                ),
                None => row(false, "Established, but no stored versions".into()),
            },
        });
    }
    Ok(rows)
}

/// The Deployments labelled as part of the installation in `namespace`: available or not.
pub(crate) async fn deployments(client: &Client, namespace: &str) -> anyhow::Result<Vec<Row>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/part-of={PART_OF}")))
        .await
        .with_context(|| format!("failed to list the Deployments of namespace {namespace}"))?;
    if list.items.is_empty() {
        return Ok(vec![Row {
            check: "Deployment".into(),
            object: format!("{namespace}/*"),
            ok: false,
            message: format!("the controllers are not installed in namespace {namespace}"),
        }]);
    }
    let mut rows = Vec::new();
    for d in list.items {
        let value = serde_json::to_value(&d).unwrap_or_default();
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
        let ok = condition_true(&value, "Available") && ready >= want;
        rows.push(Row {
            check: "Deployment".into(),
            object: format!("{namespace}/{}", d.metadata.name.unwrap_or_default()),
            ok,
            message: if ok {
                format!("available ({ready}/{want} replicas)")
            } else {
                format!("not available ({ready}/{want} replicas available)")
            },
        });
    }
    Ok(rows)
}

/// The rows as an aligned table with a header.
pub fn table(rows: &[Row]) -> String {
    let header = Row {
        check: "CHECK".into(),
        object: "OBJECT".into(),
        ok: true,
        message: "MESSAGE".into(),
    };
    let w_check = rows
        .iter()
        .chain([&header])
        .map(|r| r.check.len())
        .max()
        .unwrap_or(0);
    let w_object = rows
        .iter()
        .chain([&header])
        .map(|r| r.object.len())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "{:w_check$}  {:w_object$}  STATUS  MESSAGE\n",
        header.check, header.object
    );
    for r in rows {
        let status = if r.ok { "ok" } else { "FAILED" };
        let _ = writeln!(
            out,
            "{:w_check$}  {:w_object$}  {status:6}  {}",
            r.check, r.object, r.message
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_1_20_on_pass() {
        assert_eq!(parse_minor("1", "20"), Some(20));
        assert_eq!(parse_minor("1", "33+"), Some(33));
        assert_eq!(parse_minor("1", "x"), None);
        assert!(parse_minor("2", "0").unwrap() >= MIN_MINOR);
        assert!(parse_minor("1", "19").unwrap() < MIN_MINOR);
    }

    #[test]
    fn the_table_aligns_and_marks_failures() {
        let rows = [
            Row {
                check: "CRD".into(),
                object: "a.example.io".into(),
                ok: true,
                message: "Established".into(),
            },
            Row {
                check: "Deployment".into(),
                object: "ns/x".into(),
                ok: false,
                message: "not available".into(),
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "CHECK       OBJECT        STATUS  MESSAGE");
        assert_eq!(lines[1], "CRD         a.example.io  ok      Established");
        assert_eq!(lines[2], "Deployment  ns/x          FAILED  not available");
    }
}
