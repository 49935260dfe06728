//! Names shared by the controllers, the CLI and the tests: API groups, finalizers, field managers,
//! labels and annotations. One place, so a rename cannot miss a use.

/// API group of the Flux source kinds.
pub const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";
/// API group of the Flux notification kinds.
pub const NOTIFICATION_GROUP: &str = "notification.toolkit.fluxcd.io";
/// API group of the current KluctlDeployment.
pub const KLUCTL_GROUP: &str = "gitops.kluctl.io";
/// API group of the legacy KluctlDeployment.
pub const FLUX_KLUCTL_GROUP: &str = "flux.kluctl.io";

/// Finalizer put on GitRepository and Bucket objects by the source-controller.
pub const SOURCE_FINALIZER: &str = "finalizers.fluxcd.io";
/// Finalizer put on `gitops.kluctl.io` KluctlDeployments.
pub const KLUCTL_FINALIZER: &str = "finalizers.gitops.kluctl.io";
/// Finalizer put on legacy `flux.kluctl.io` KluctlDeployments.
pub const FLUX_KLUCTL_FINALIZER: &str = "finalizers.flux.kluctl.io";

/// Field manager of the source-controller's status patches.
pub const SOURCE_FIELD_MANAGER: &str = "source-controller";
/// Field manager of objects applied by the Kluctl engine (CLI and controller alike).
pub const KLUCTL_FIELD_MANAGER: &str = "kluctl";
/// Field manager of the command-result Secrets.
pub const KLUCTL_RESULTS_FIELD_MANAGER: &str = "kluctl-results";
/// Field manager of the kluctl-controller's status patches.
pub const KLUCTL_CONTROLLER_FIELD_MANAGER: &str = "kluctl-controller";

/// Annotation whose change requests an immediate reconcile (Flux convention).
pub const RECONCILE_REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";
/// Annotation that forces a deploy of a legacy KluctlDeployment.
pub const FLUX_KLUCTL_DEPLOY_REQUESTED_AT_ANNOTATION: &str = "deploy.flux.kluctl.io/requestedAt";
/// Annotation requesting a manual reconcile of a KluctlDeployment.
pub const KLUCTL_REQUEST_RECONCILE_ANNOTATION: &str = "kluctl.io/request-reconcile";
/// Annotation requesting a manual deploy of a KluctlDeployment.
pub const KLUCTL_REQUEST_DEPLOY_ANNOTATION: &str = "kluctl.io/request-deploy";
/// Annotation requesting a manual diff of a KluctlDeployment.
pub const KLUCTL_REQUEST_DIFF_ANNOTATION: &str = "kluctl.io/request-diff";
/// Annotation requesting a manual prune of a KluctlDeployment.
pub const KLUCTL_REQUEST_PRUNE_ANNOTATION: &str = "kluctl.io/request-prune";
/// Annotation requesting a manual validate of a KluctlDeployment.
pub const KLUCTL_REQUEST_VALIDATE_ANNOTATION: &str = "kluctl.io/request-validate";

/// Label holding the discriminator of every object the Kluctl engine applies.
pub const DISCRIMINATOR_LABEL: &str = "kluctl.io/discriminator";
/// Annotation marking an object the engine must never delete.
pub const SKIP_DELETE_ANNOTATION: &str = "kluctl.io/skip-delete";
/// Annotation letting the engine delete an object it does not own through managed fields.
pub const FORCE_MANAGED_ANNOTATION: &str = "kluctl.io/force-managed";
/// Event annotation asking notification providers to update a commit status.
pub const COMMIT_STATUS_ANNOTATION: &str = "gitops.kluctl.io/commit_status";
/// Event metadata key carrying the source revision of a `gitops.kluctl.io` KluctlDeployment
/// (keys are prefixed with the involved object's API group: Flux's notification-controller
/// drops other groups' keys).
pub const KLUCTL_EVENT_REVISION_KEY: &str = "gitops.kluctl.io/revision";
/// Event metadata key carrying the source revision of a legacy `flux.kluctl.io` KluctlDeployment.
pub const FLUX_KLUCTL_EVENT_REVISION_KEY: &str = "flux.kluctl.io/revision";
/// Event metadata key asking notification providers to update a commit status, for a legacy
/// `flux.kluctl.io` KluctlDeployment.
pub const FLUX_KLUCTL_COMMIT_STATUS_KEY: &str = "flux.kluctl.io/commit_status";

/// Event metadata key carrying the artifact revision of a source (Flux event wire format).
pub const EVENT_REVISION_KEY: &str = "source.toolkit.fluxcd.io/revision";
/// Event metadata key carrying the artifact digest (Flux event wire format).
pub const EVENT_DIGEST_KEY: &str = "source.toolkit.fluxcd.io/digest";

/// CRD annotation telling Flux's kustomize-controller not to substitute variables in the CRD.
pub const SUBSTITUTE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";
/// Label put on every CRD we generate, naming the product it belongs to.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
