//! `notification.toolkit.fluxcd.io`: Alert and Provider (`v1beta3`), Receiver (`v1`).
//!
//! Alert and Provider have a status subresource (beyond Flux, where they are static objects):
//! `Ready`, the last dispatch time and error ([`v1beta3::DispatchStatus`]), with `Ready` and
//! `Status` printer columns. The Receiver has a status with the webhook path it is served under.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::json;

use crate::constants::SUBSTITUTE_ANNOTATION;
use crate::crds;
use crate::schema::controller_gen_shape;

/// Declares a string enum whose variants serialize to the given literals, with `ALL`, `as_str` and
/// `Display`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vattr:meta])* $variant:ident = $value:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(
            serde::Serialize, serde::Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash,
        )]
        $vis enum $name {
            $( $(#[$vattr])* #[serde(rename = $value)] $variant, )*
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The value as written in manifests.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod v1;
pub mod v1beta3;

#[cfg(test)]
mod tests;

/// The `alerts.notification.toolkit.fluxcd.io` CRD.
pub fn alert_crd() -> CustomResourceDefinition {
    finish(&v1beta3::Alert::crd())
}

/// The `providers.notification.toolkit.fluxcd.io` CRD.
pub fn provider_crd() -> CustomResourceDefinition {
    finish(&v1beta3::Provider::crd())
}

/// The `receivers.notification.toolkit.fluxcd.io` CRD; a new status starts with `observedGeneration: -1`.
pub fn receiver_crd() -> CustomResourceDefinition {
    let crd = finish(&v1::Receiver::crd());
    crds::with_status_default(&crd, &json!({ "observedGeneration": -1 }))
}

/// What every notification CRD has upstream: the controller-gen root shape and the annotation that
/// keeps Flux's kustomize-controller from substituting variables inside the CRD.
fn finish(crd: &CustomResourceDefinition) -> CustomResourceDefinition {
    let crd = controller_gen_shape(crd, false);
    crds::with_annotation(&crd, SUBSTITUTE_ANNOTATION, "disabled")
}
