//! `source.toolkit.fluxcd.io`: the GitRepository and Bucket kinds.
//!
//! Three API versions are served, all backed by the same stored object:
//!
//! ```text
//!  v1        storage version; the types controllers read and write      (source::v1)
//!  v1beta2   served, deprecated; kept so old manifests still apply      (source::v1beta2)
//!  v1beta1   served, deprecated; oldest shape, same purpose              (source::v1beta1)
//! ```
//!
//! There is no conversion webhook (strategy `None`): the apiserver only rewrites `apiVersion`,
//! so every version's schema must accept what the others store. The schemas follow the published
//! Flux source-controller CRDs field for field; what the derive cannot express (the `status`
//! default, `listKind`, the implicit `apiVersion`/`kind`/`metadata` properties, no root `title`)
//! is patched in here after generation, and `metav1.Condition` gets the validation the k8s-openapi
//! schema lacks through the crate's shared `schema::conditions`.

// Doc comments here become CRD descriptions, where kind names such as GitRepository read better bare.
#![allow(clippy::doc_markdown)]

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::constants::SUBSTITUTE_ANNOTATION;
use crate::crds;

pub mod v1;
pub mod v1beta1;
pub mod v1beta2;

/// Duration pattern of `spec.interval` (Go duration units up to hours).
pub const INTERVAL_PATTERN: &str = crate::schema::DURATION_PATTERN;
/// Duration pattern of `spec.timeout` (Go duration units up to minutes).
pub const TIMEOUT_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$";
/// Value the apiserver fills into an unset `spec.timeout`.
pub const DEFAULT_TIMEOUT: &str = "60s";
/// Pattern of an artifact digest, `<algorithm>:<encoded hash>`.
pub const DIGEST_PATTERN: &str = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$";

/// Serde/schema default of `spec.timeout`.
pub(crate) fn default_timeout() -> String {
    DEFAULT_TIMEOUT.to_string()
}

/// `skip_serializing_if` for flags that Go serializes with `omitempty`; it also keeps the schema
/// free of a `default: false`.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde hands the value over by reference
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// Cross-namespace access list of the deprecated `v1beta1`/`v1beta2` APIs (`spec.accessFrom`).
///
/// Never acted upon by the controllers of this project; kept so that manifests using it still apply.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessFrom {
    /// Selectors of the namespaces whose objects may refer to this source; an empty list means
    /// no other namespace.
    pub namespace_selectors: Vec<NamespaceSelector>,
}

/// Label selector for namespaces, one entry of [`AccessFrom::namespace_selectors`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Labels a namespace must carry, all of them, to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// GitRepository CRD, all versions: `v1` (storage), `v1beta2` and `v1beta1` (served, deprecated).
pub fn gitrepository_crd() -> CustomResourceDefinition {
    finish(&crds::merge(
        vec![
            v1::GitRepository::crd(),
            v1beta2::GitRepository::crd(),
            v1beta1::GitRepository::crd(),
        ],
        "v1",
    ))
}

/// Bucket CRD, all versions: `v1` (storage), `v1beta2` and `v1beta1` (served, deprecated).
pub fn bucket_crd() -> CustomResourceDefinition {
    finish(&crds::merge(
        vec![v1::Bucket::crd(), v1beta2::Bucket::crd(), v1beta1::Bucket::crd()],
        "v1",
    ))
}

/// The post-processing shared by both kinds, see the module docs.
fn finish(crd: &CustomResourceDefinition) -> CustomResourceDefinition {
    let crd = crate::schema::controller_gen_shape(crd, false);
    let crd = crds::with_annotation(&crd, SUBSTITUTE_ANNOTATION, "disabled");
    crds::with_status_default(&crd, &json!({"observedGeneration": -1}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion;
    use serde_json::Value;

    fn version<'a>(crd: &'a CustomResourceDefinition, name: &str) -> &'a CustomResourceDefinitionVersion {
        crd.spec.versions.iter().find(|v| v.name == name).unwrap()
    }

    fn columns(crd: &CustomResourceDefinition, name: &str) -> Vec<(String, String, String)> {
        version(crd, name)
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
            .collect()
    }

    fn col(name: &str, ty: &str, path: &str) -> (String, String, String) {
        (name.into(), ty.into(), path.into())
    }

    const READY: &str = r#".status.conditions[?(@.type=="Ready")].status"#;
    const MESSAGE: &str = r#".status.conditions[?(@.type=="Ready")].message"#;
    const AGE: &str = ".metadata.creationTimestamp";

    /// `(rule, message)` pairs of the CEL rules on `spec` of one version.
    fn spec_rules(crd: &CustomResourceDefinition, name: &str) -> Vec<(String, String)> {
        let v = serde_json::to_value(version(crd, name)).unwrap();
        v.pointer("/schema/openAPIV3Schema/properties/spec/x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["rule"].as_str().unwrap().to_string(),
                    r["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn assert_common(crd: &CustomResourceDefinition, kind: &str) {
        assert_eq!(crd.spec.group, "source.toolkit.fluxcd.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(
            crd.spec.names.list_kind.as_deref(),
            Some(format!("{kind}List").as_str())
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["all".to_string(), "fluxcd".into(), "fluxcd-sources".into()][..])
        );
        assert!(crd.spec.conversion.is_none(), "no conversion webhook");
        let names: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["v1", "v1beta1", "v1beta2"]);
        for v in &crd.spec.versions {
            assert!(v.served, "{} served", v.name);
            assert_eq!(v.storage, v.name == "v1", "{} storage", v.name);
            assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
            let schema = serde_json::to_value(&v.schema).unwrap();
            assert_eq!(
                schema.pointer("/openAPIV3Schema/properties/status/default"),
                Some(&json!({"observedGeneration": -1})),
                "{} status default",
                v.name
            );
            for p in ["apiVersion", "kind", "metadata"] {
                assert!(
                    schema
                        .pointer(&format!("/openAPIV3Schema/properties/{p}"))
                        .is_some()
                );
            }
        }
        let v1 = version(crd, "v1");
        assert_eq!(v1.deprecated, None);
        for beta in ["v1beta1", "v1beta2"] {
            let v = version(crd, beta);
            assert_eq!(v.deprecated, Some(true));
            assert_eq!(
                v.deprecation_warning.as_deref(),
                Some(format!("{beta} {kind} is deprecated, upgrade to v1").as_str())
            );
        }
        let annotations = crd.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get(SUBSTITUTE_ANNOTATION).map(String::as_str),
            Some("disabled")
        );
        assert!(crd.metadata.labels.is_none(), "no labels beyond upstream");
        // The YAML renders (crdgen uses this path).
        assert!(
            serde_saphyr::to_string(crd)
                .unwrap()
                .contains("x-kubernetes-validations")
        );
    }

    #[test]
    fn gitrepository_crd_shape() {
        let crd = gitrepository_crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("gitrepositories.source.toolkit.fluxcd.io")
        );
        assert_eq!(crd.spec.names.plural, "gitrepositories");
        assert_eq!(crd.spec.names.singular.as_deref(), Some("gitrepository"));
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&["gitrepo".to_string()][..])
        );
        assert_common(&crd, "GitRepository");

        let url = ".spec.url";
        let new_order = vec![
            col("URL", "string", url),
            col("Age", "date", AGE),
            col("Ready", "string", READY),
            col("Status", "string", MESSAGE),
        ];
        assert_eq!(columns(&crd, "v1"), new_order);
        assert_eq!(columns(&crd, "v1beta2"), new_order);
        assert_eq!(
            columns(&crd, "v1beta1"),
            vec![
                col("URL", "string", url),
                col("Ready", "string", READY),
                col("Status", "string", MESSAGE),
                col("Age", "date", AGE),
            ]
        );

        assert_eq!(
            spec_rules(&crd, "v1"),
            vec![(
                "!has(self.serviceAccountName) || (has(self.provider) && (self.provider == 'azure' || self.provider == 'aws'))"
                    .to_string(),
                "serviceAccountName can only be set when provider is 'azure' or 'aws'".to_string()
            )]
        );
        assert!(spec_rules(&crd, "v1beta2").is_empty());
        assert!(spec_rules(&crd, "v1beta1").is_empty());
        assert_eq!(crds::cel_rule_count(&crd), 1);
    }

    #[test]
    fn bucket_crd_shape() {
        let crd = bucket_crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("buckets.source.toolkit.fluxcd.io")
        );
        assert_eq!(crd.spec.names.plural, "buckets");
        assert_eq!(crd.spec.names.singular.as_deref(), Some("bucket"));
        assert!(crd.spec.names.short_names.as_ref().is_none_or(Vec::is_empty));
        assert_common(&crd, "Bucket");

        let endpoint = ".spec.endpoint";
        let new_order = vec![
            col("Endpoint", "string", endpoint),
            col("Age", "date", AGE),
            col("Ready", "string", READY),
            col("Status", "string", MESSAGE),
        ];
        assert_eq!(columns(&crd, "v1"), new_order);
        assert_eq!(columns(&crd, "v1beta2"), new_order);
        assert_eq!(
            columns(&crd, "v1beta1"),
            vec![
                col("Endpoint", "string", endpoint),
                col("Ready", "string", READY),
                col("Status", "string", MESSAGE),
                col("Age", "date", AGE),
            ]
        );

        let expected: Vec<(String, String)> = [
            (
                "self.provider == 'aws' || self.provider == 'generic' || !has(self.sts)",
                "STS configuration is only supported for the 'aws' and 'generic' Bucket providers",
            ),
            (
                "self.provider != 'aws' || !has(self.sts) || self.sts.provider == 'aws'",
                "'aws' is the only supported STS provider for the 'aws' Bucket provider",
            ),
            (
                "self.provider != 'generic' || !has(self.sts) || self.sts.provider == 'ldap'",
                "'ldap' is the only supported STS provider for the 'generic' Bucket provider",
            ),
            (
                "!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.secretRef)",
                "spec.sts.secretRef is not required for the 'aws' STS provider",
            ),
            (
                "!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.certSecretRef)",
                "spec.sts.certSecretRef is not required for the 'aws' STS provider",
            ),
            (
                "self.provider != 'generic' || !has(self.serviceAccountName)",
                "ServiceAccountName is not supported for the 'generic' Bucket provider",
            ),
            (
                "!has(self.secretRef) || !has(self.serviceAccountName)",
                "cannot set both .spec.secretRef and .spec.serviceAccountName",
            ),
        ]
        .iter()
        .map(|(r, m)| ((*r).to_string(), (*m).to_string()))
        .collect();
        assert_eq!(spec_rules(&crd, "v1"), expected);
        assert_eq!(spec_rules(&crd, "v1beta2"), expected[..5].to_vec());
        assert!(spec_rules(&crd, "v1beta1").is_empty());
        assert_eq!(crds::cel_rule_count(&crd), 12);
    }

    #[test]
    fn schema_defaults_and_patterns() {
        let git = serde_json::to_value(gitrepository_crd()).unwrap();
        let bucket = serde_json::to_value(bucket_crd()).unwrap();
        let spec = |crd: &Value, idx: usize, path: &str| {
            crd.pointer(&format!(
                "/spec/versions/{idx}/schema/openAPIV3Schema/properties/spec/properties/{path}"
            ))
            .cloned()
            .unwrap_or(Value::Null)
        };
        // versions are ordered v1, v1beta1, v1beta2
        for idx in 0..3 {
            assert_eq!(spec(&git, idx, "timeout/default"), json!("60s"));
            assert_eq!(spec(&bucket, idx, "timeout/default"), json!("60s"));
            assert_eq!(spec(&bucket, idx, "provider/default"), json!("generic"));
            assert_eq!(spec(&git, idx, "url/pattern"), json!("^(http|https|ssh)://.*$"));
            assert_eq!(spec(&git, idx, "suspend/default"), Value::Null);
        }
        for idx in [0, 2] {
            assert_eq!(spec(&git, idx, "interval/pattern"), json!(INTERVAL_PATTERN));
            assert_eq!(spec(&git, idx, "timeout/pattern"), json!(TIMEOUT_PATTERN));
            assert_eq!(spec(&bucket, idx, "interval/pattern"), json!(INTERVAL_PATTERN));
            assert_eq!(spec(&bucket, idx, "timeout/pattern"), json!(TIMEOUT_PATTERN));
        }
        assert_eq!(spec(&git, 0, "verify/properties/mode/default"), json!("HEAD"));
        assert_eq!(
            spec(&git, 0, "verify/properties/mode/enum"),
            json!(["head", "HEAD", "Tag", "TagAndHEAD"])
        );
        assert_eq!(
            spec(&git, 0, "provider/enum"),
            json!(["generic", "aws", "azure", "github"])
        );
        assert_eq!(
            spec(&bucket, 0, "provider/enum"),
            json!(["generic", "aws", "gcp", "azure"])
        );
        assert_eq!(
            spec(&bucket, 1, "provider/enum"),
            json!(["generic", "aws", "gcp"])
        );
        assert_eq!(spec(&git, 1, "gitImplementation/default"), json!("go-git"));
        assert_eq!(spec(&git, 2, "verify/properties/mode/enum"), json!(["head"]));
        let reason = git
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status/properties/conditions/items/properties/reason/minLength")
            .cloned();
        assert_eq!(reason, Some(json!(1)));
    }

    #[test]
    fn helpers() {
        assert!(is_false(&false));
        assert!(!is_false(&true));
        assert_eq!(default_timeout(), "60s");
    }
}
