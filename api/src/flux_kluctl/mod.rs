//! `flux.kluctl.io`: the legacy `KluctlDeployment` of the deprecated flux-kluctl-controller.
//!
//! Served so existing objects stay readable and can be migrated to `gitops.kluctl.io`; see
//! [`v1alpha1`].

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod v1alpha1;

#[cfg(test)]
mod tests;

/// The `kluctldeployments.flux.kluctl.io` CRD.
pub fn kluctldeployment_crd() -> CustomResourceDefinition {
    crate::schema::controller_gen_shape(&v1alpha1::KluctlDeployment::crd(), false)
}
