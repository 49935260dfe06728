//! `gitops.kluctl.io`: the `KluctlDeployment` kind served by the kluctl-controller.
//!
//! Only `v1beta1` exists. Its schema follows upstream Kluctl field for field, plus our `spec.sourceRef`
//! and `spec.path` (see [`v1beta1`]). The status result fields are typed here ([`results`]) but keep
//! the free-form schema upstream gives them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod request;
pub mod results;
pub mod v1beta1;
mod validate;

#[cfg(test)]
mod tests;

/// The `kluctldeployments.gitops.kluctl.io` CRD.
pub fn kluctldeployment_crd() -> CustomResourceDefinition {
    crate::schema::controller_gen_shape(&v1beta1::KluctlDeployment::crd(), false)
}
