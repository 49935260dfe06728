//! The command-result store: results of `deploy`, `prune`, `delete`, `poke-images` (and the
//! controller's validate results) kept as Secrets in one namespace (`kluctl-results` by
//! default), written exactly as Kluctl v2.28 writes them so Kluctl's webui and `kluctl gitops`
//! tooling can read ours and we can read theirs. It is the last step of a command: the finished
//! [`CommandResult`] comes in, nothing else in the engine depends on this module.
//!
//! ```text
//! CommandResult ─► obfuscate (always) ─► Secret cr-<repo>-<id>          ─► SSA "kluctl-results"
//!                                          labels      kluctl.io/result, kluctl.io/command-result-id
//!                                          annotations summary JSON, project repo key / subdir,
//!                                                      KluctlDeployment name / namespace
//!                                          data        reducedResult    gzip JSON (objects cut to identity)
//!                                                      compactedObjects gzip JSON ("full:"/"delta:" texts)
//!               ─► retention: list this namespace's result Secrets (metadata only), same project
//!                  and same target key, newest first; delete all beyond the keep count
//! ValidateResult ─► Secret vr-<repo>-<id>, label kluctl.io/validate-result-id, data `result`
//! ```
//!
//! - [`encode`]: pure: Secret names, labels, annotations, gzip JSON, decoding, obfuscation
//! - [`reduce`]: pure: a result too large for one Secret is cut until it fits (kluctl#1324)
//! - [`retention`]: pure: Kluctl's summary order, project filter, which results expire
//!
//! Differences from Kluctl, each on purpose:
//! - Rendered/remote/applied Secret values are obfuscated before storing, always (Kluctl skips
//!   that for `--no-obfuscate` and in the controller); `--no-obfuscate` only affects what the
//!   CLI prints. Invariant: Secret values never reach a stored result.
//! - The repository part of a Secret name is lower-cased (Kluctl keeps upper case, which the
//!   apiserver rejects as a Secret name).
//! - A command result too large for one Secret is stored cut (object bodies first, see
//!   [`reduce`]) with an annotation and a warning saying so; Kluctl fails the command.
//! - Only result Secrets in the store's own namespace are listed and deleted (Kluctl lists
//!   results of all namespaces but deletes only in its own).

pub mod encode;
pub mod reduce;
pub mod retention;

use gitops_api::constants::KLUCTL_RESULTS_FIELD_MANAGER;
use gitops_api::kluctl::results::{ProjectKey, ValidateResult};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;

use crate::diff::DiffError;
use crate::result::{CommandResult, CommandResultSummary, ResultError};

pub use encode::ValidateResultSummary;
pub use reduce::{ObjectCut, Reduction};

/// Namespace results are written to unless `--command-result-namespace` says otherwise.
pub const DEFAULT_RESULTS_NAMESPACE: &str = "kluctl-results";
/// Command results kept per project and target (`--keep-command-results-count`).
pub const DEFAULT_KEEP_COMMAND_RESULTS: usize = 5;
/// Validate results kept per project and target (`--keep-validate-results-count`).
pub const DEFAULT_KEEP_VALIDATE_RESULTS: usize = 2;

/// Label on every result Secret (value `"true"`).
pub const RESULT_LABEL: &str = "kluctl.io/result";
/// Label holding a command result's id.
pub const COMMAND_RESULT_ID_LABEL: &str = "kluctl.io/command-result-id";
/// Label holding a validate result's id.
pub const VALIDATE_RESULT_ID_LABEL: &str = "kluctl.io/validate-result-id";
/// Label holding a hash of a result's project and target ([`encode::target_label_value`]), so
/// that retention lists only that target's results instead of every result in the namespace
/// (which made every write list and parse them all: megabytes per write with hundreds of
/// KluctlDeployments). Ours, not Kluctl's: results without it (written by Kluctl, or by us
/// before it existed) are found by full listings, which a process does for a target until none
/// of them is left.
pub const RESULT_TARGET_LABEL: &str = "kluctl.io/result-target-hash";
/// Annotation holding the command result summary as JSON.
pub const COMMAND_RESULT_SUMMARY_ANNOTATION: &str = "kluctl.io/command-result-summary";
/// Annotation holding the validate result summary as JSON.
pub const VALIDATE_RESULT_SUMMARY_ANNOTATION: &str = "kluctl.io/validate-result-summary";
/// Annotation holding the project's repository key (`git://host/path`), when there is one.
pub const PROJECT_REPO_KEY_ANNOTATION: &str = "kluctl.io/result-project-repo-key";
/// Annotation holding the project's directory inside its repository, when not the root.
pub const PROJECT_SUBDIR_ANNOTATION: &str = "kluctl.io/result-project-subdir";
/// Annotation holding the KluctlDeployment's name (controller results).
pub const DEPLOYMENT_NAME_ANNOTATION: &str = "kluctl.io/result-deployment-name";
/// Annotation holding the KluctlDeployment's namespace (controller results).
pub const DEPLOYMENT_NAMESPACE_ANNOTATION: &str = "kluctl.io/result-deployment-namespace";
/// Annotation on a command result Secret cut to fit: what was cut, `,`-joined from `objects`,
/// `diffs`, `object-list`, `messages` ([`Reduction::annotation_value`]). Absent when whole.
pub const RESULT_REDUCED_ANNOTATION: &str = "kluctl.io/result-reduced";
/// Data key of the gzip JSON command result with reduced objects.
pub const REDUCED_RESULT_KEY: &str = "reducedResult";
/// Data key of the gzip JSON compacted objects.
pub const COMPACTED_OBJECTS_KEY: &str = "compactedObjects";
/// Data key of the gzip JSON validate result.
pub const VALIDATE_RESULT_KEY: &str = "result";

/// Errors of the result store. Messages name the Secret and namespace; they never carry data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The result has no id, so it could not be found again.
    #[error("failed to store {kind} result: its id is empty")]
    MissingId {
        /// `command` or `validate`.
        kind: &'static str,
    },
    /// Obfuscating the Secrets inside the result failed.
    #[error("failed to obfuscate command result {id:?} before storing it")]
    Obfuscate {
        /// Result id.
        id: String,
        /// What was wrong.
        #[source]
        source: DiffError,
    },
    /// Serialising or compressing a part of the result failed.
    #[error("failed to encode {what} of Secret {secret:?} in namespace {namespace:?}: {reason}")]
    Encode {
        /// Secret name.
        secret: String,
        /// Namespace.
        namespace: String,
        /// Which part (`reducedResult`, the summary annotation, ...).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Looking up or creating the results namespace failed.
    #[error("failed to ensure the results namespace {namespace:?} exists")]
    Namespace {
        /// Namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The server-side apply of the result Secret failed.
    #[error("failed to write result Secret {secret:?} in namespace {namespace:?}")]
    Write {
        /// Secret name.
        secret: String,
        /// Namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Listing result Secrets failed.
    #[error("failed to list result Secrets with labels {selector:?} in namespace {namespace:?}")]
    List {
        /// Label selector used.
        selector: String,
        /// Namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting a result Secret failed.
    #[error("failed to delete result Secret {secret:?} in namespace {namespace:?}")]
    Delete {
        /// Secret name.
        secret: String,
        /// Namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// No result Secret carries the id.
    #[error("failed to find {kind} result {id:?} in namespace {namespace:?}")]
    NotFound {
        /// `command` or `validate`.
        kind: &'static str,
        /// Result id.
        id: String,
        /// Namespace.
        namespace: String,
    },
    /// A stored Secret lacks one of its data keys.
    #[error(
        "failed to read result Secret {secret:?} in namespace {namespace:?}: data key {key:?} is missing"
    )]
    MissingKey {
        /// Secret name.
        secret: String,
        /// Namespace.
        namespace: String,
        /// The data key.
        key: &'static str,
    },
    /// A stored data key is not gzip JSON of the expected shape.
    #[error(
        "failed to decode data key {key:?} of result Secret {secret:?} in namespace {namespace:?}: {reason}"
    )]
    Decode {
        /// Secret name.
        secret: String,
        /// Namespace.
        namespace: String,
        /// The data key.
        key: &'static str,
        /// Why (gzip or JSON error; never the data).
        reason: String,
    },
    /// The compacted objects do not expand.
    #[error("failed to expand the compacted objects of result Secret {secret:?} in namespace {namespace:?}")]
    Expand {
        /// Secret name.
        secret: String,
        /// Namespace.
        namespace: String,
        /// What did not fit.
        #[source]
        source: ResultError,
    },
}

/// A command result written to the store.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Name of the result Secret.
    pub secret: String,
    /// What was cut to fit the result into one Secret; `None` when it is stored whole.
    pub reduction: Option<Reduction>,
}

/// One listed result: the Secret's name and the summary from its annotation.
struct Listed<S> {
    /// Name of the Secret.
    name: String,
    /// The parsed summary annotation.
    summary: S,
    /// Carries [`RESULT_TARGET_LABEL`].
    target_labelled: bool,
}

/// Writes a command result: obfuscates every Secret value in it, cuts it to fit one Secret
/// when it is too large ([`reduce`]), creates `namespace` if missing, applies the result
/// Secret (field manager `kluctl-results`), then deletes the oldest command results of the
/// same project and target beyond `keep_count` (Kluctl's default is
/// [`DEFAULT_KEEP_COMMAND_RESULTS`]; `0` keeps none, not even this one, as Kluctl).
///
/// A cut result is no error: [`Stored::reduction`] says what was cut (its text is also a
/// warning in the stored result), for the caller to show.
///
/// # Errors
/// An empty id, a failed obfuscation or encoding, or an API error of the namespace or the
/// apply. A failed list or delete during retention is logged, not returned (as Kluctl).
///
/// ```no_run
/// # async fn demo(client: kube::Client, result: kluctl_engine::result::CommandResult) {
/// use kluctl_engine::store;
/// let stored = store::write_command_result(&client, store::DEFAULT_RESULTS_NAMESPACE, &result, 5)
///     .await
///     .unwrap();
/// if let Some(cut) = stored.reduction {
///     eprintln!("warning: {cut}");
/// }
/// # }
/// ```
pub async fn write_command_result(
    client: &kube::Client,
    namespace: &str,
    result: &CommandResult,
    keep_count: usize,
) -> Result<Stored, StoreError> {
    if result.id.is_empty() {
        return Err(StoreError::MissingId { kind: "command" });
    }
    let stored = encode::obfuscated_for_store(result).map_err(|source| StoreError::Obfuscate {
        id: result.id.clone(),
        source,
    })?;
    write_obfuscated(client, namespace, &stored, keep_count).await
}

/// [`write_command_result`] without a copy of the result: `result` is obfuscated in place first
/// (as [`encode::obfuscate_for_store`] does), so it stays obfuscated afterwards. For callers
/// that would obfuscate it anyway (the CLI prints it obfuscated unless `--no-obfuscate`).
///
/// # Errors
/// As [`write_command_result`].
pub async fn write_command_result_obfuscating(
    client: &kube::Client,
    namespace: &str,
    result: &mut CommandResult,
    keep_count: usize,
) -> Result<Stored, StoreError> {
    if result.id.is_empty() {
        return Err(StoreError::MissingId { kind: "command" });
    }
    encode::obfuscate_for_store(result).map_err(|source| StoreError::Obfuscate {
        id: result.id.clone(),
        source,
    })?;
    write_obfuscated(client, namespace, result, keep_count).await
}

/// The write of an already obfuscated result, its retention after.
async fn write_obfuscated(
    client: &kube::Client,
    namespace: &str,
    result: &CommandResult,
    keep_count: usize,
) -> Result<Stored, StoreError> {
    let reduce::Fitted { secret, reduction } = reduce::fit_command_result(namespace, result)?;
    let name = secret.metadata.name.clone().unwrap_or_default();
    if let Some(r) = &reduction {
        tracing::warn!(id = %result.id, secret = %name, cut = %r.annotation_value(), "{r}");
    }
    write_and_expire::<CommandResultSummary>(
        client,
        namespace,
        &secret,
        &result.project_key,
        &result.target_key,
        keep_count,
    )
    .await?;
    Ok(Stored {
        secret: name,
        reduction,
    })
}

/// Writes a validate result like [`write_command_result`] (no obfuscation needed: it holds no
/// objects); retention keeps `keep_count` per project and target (Kluctl's default is
/// [`DEFAULT_KEEP_VALIDATE_RESULTS`]).
///
/// # Errors
/// An empty id, a failed encoding, or an API error of the namespace or the apply.
pub async fn write_validate_result(
    client: &kube::Client,
    namespace: &str,
    result: &ValidateResult,
    keep_count: usize,
) -> Result<(), StoreError> {
    if result.id.is_empty() {
        return Err(StoreError::MissingId { kind: "validate" });
    }
    let secret = encode::validate_result_secret(namespace, result)?;
    write_and_expire::<ValidateResultSummary>(
        client,
        namespace,
        &secret,
        &result.project_key,
        &result.target_key,
        keep_count,
    )
    .await
}

/// Creates `namespace` if missing, applies `secret`, then deletes the results of the same
/// project and target beyond the newest `keep_count` (a failed listing is only logged).
async fn write_and_expire<S: Summary>(
    client: &kube::Client,
    namespace: &str,
    secret: &Secret,
    project: &ProjectKey,
    target: &gitops_api::kluctl::results::TargetKey,
    keep_count: usize,
) -> Result<(), StoreError> {
    ensure_namespace(client, namespace).await?;
    apply_secret(client, namespace, secret).await?;
    // The listing keeps only `project`'s results; retention counts those of `target`. A
    // target's writes list every result of the kind until one finds none of the target's
    // results without the target label left after expiring (results from before the label);
    // from then on this process lists only the target's label. (Kluctl's own later results of
    // the same target are expired by Kluctl, as they would be without us.)
    let key = (
        namespace.to_owned(),
        S::KIND,
        encode::target_label_value(project, target),
    );
    let labelled_only = LABELLED_ONLY.lock().is_ok_and(|m| m.contains(&key));
    let target_selector = labelled_only.then(|| format!("{RESULT_TARGET_LABEL}={}", key.2));
    match list_summaries_where::<S>(client, namespace, Some(project), target_selector.as_deref()).await {
        Ok(listed) => {
            let of_target = |l: &Listed<S>| l.summary.keys().1 == target;
            let expired = retention::beyond_keep(&listed, keep_count, of_target);
            delete_expired(client, namespace, &expired).await;
            let unlabelled_left = listed
                .iter()
                .filter(|l| of_target(l) && !l.target_labelled)
                .any(|l| !expired.iter().any(|e| e.name == l.name));
            if !labelled_only
                && !unlabelled_left
                && let Ok(mut m) = LABELLED_ONLY.lock()
            {
                m.insert(key);
            }
        }
        Err(e) => log_retention_list_failure(&e),
    }
    Ok(())
}

/// The summaries of the command results in `namespace`, newest first (Kluctl's order: start
/// time, end time, command, id), optionally only those of one project (empty fields of the
/// filter match anything). Secrets whose summary annotation is missing or unreadable are
/// skipped.
///
/// # Errors
/// The list request failed.
pub async fn list_command_result_summaries(
    client: &kube::Client,
    namespace: &str,
    project: Option<&ProjectKey>,
) -> Result<Vec<CommandResultSummary>, StoreError> {
    Ok(list_summaries::<CommandResultSummary>(client, namespace, project)
        .await?
        .into_iter()
        .map(|l| l.summary)
        .collect())
}

/// The summaries of the validate results in `namespace`, newest first.
///
/// # Errors
/// The list request failed.
pub async fn list_validate_result_summaries(
    client: &kube::Client,
    namespace: &str,
    project: Option<&ProjectKey>,
) -> Result<Vec<ValidateResultSummary>, StoreError> {
    Ok(
        list_summaries::<ValidateResultSummary>(client, namespace, project)
            .await?
            .into_iter()
            .map(|l| l.summary)
            .collect(),
    )
}

/// Reads a command result back: the reduced result with its objects replaced by the expanded
/// compacted objects (so `rendered`/`remote`/`applied` are complete, Secret values obfuscated).
/// A result cut to fit its Secret ([`RESULT_REDUCED_ANNOTATION`]) reads back as stored: objects
/// with identity bodies, or none, and the warning saying so.
///
/// # Errors
/// No Secret with the id, a missing data key, data that is not gzip JSON, or compacted
/// objects that do not expand.
pub async fn get_command_result(
    client: &kube::Client,
    namespace: &str,
    id: &str,
) -> Result<CommandResult, StoreError> {
    let secret = find_by_id(client, namespace, "command", COMMAND_RESULT_ID_LABEL, id).await?;
    encode::decode_command_result(&secret)
}

/// Reads a validate result back.
///
/// # Errors
/// No Secret with the id, a missing data key or data that is not gzip JSON.
pub async fn get_validate_result(
    client: &kube::Client,
    namespace: &str,
    id: &str,
) -> Result<ValidateResult, StoreError> {
    let secret = find_by_id(client, namespace, "validate", VALIDATE_RESULT_ID_LABEL, id).await?;
    encode::decode_validate_result(&secret)
}

/// Deletes the command result with `id` (the webui's "delete result"); absent is fine.
///
/// # Errors
/// The list or a delete request failed.
pub async fn delete_command_result(
    client: &kube::Client,
    namespace: &str,
    id: &str,
) -> Result<(), StoreError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let selector = id_selector(COMMAND_RESULT_ID_LABEL, id);
    let list = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| StoreError::List {
            selector: selector.clone(),
            namespace: namespace.to_owned(),
            source,
        })?;
    for item in list.items {
        let name = item.metadata.name.unwrap_or_default();
        delete_secret(&api, namespace, &name).await?;
    }
    Ok(())
}

async fn ensure_namespace(client: &kube::Client, namespace: &str) -> Result<(), StoreError> {
    let err = |source| StoreError::Namespace {
        namespace: namespace.to_owned(),
        source,
    };
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_metadata_opt(namespace).await.map_err(err)?.is_some() {
        return Ok(());
    }
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.to_owned());
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(e) => Err(err(e)),
    }
}

async fn apply_secret(client: &kube::Client, namespace: &str, secret: &Secret) -> Result<(), StoreError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(KLUCTL_RESULTS_FIELD_MANAGER),
        &Patch::Apply(secret),
    )
    .await
    .map_err(|source| StoreError::Write {
        secret: name.clone(),
        namespace: namespace.to_owned(),
        source,
    })?;
    Ok(())
}

/// `kluctl.io/result,<id label>`: only Secrets carrying both store labels are ever touched.
fn kind_selector(id_label: &str) -> String {
    format!("{RESULT_LABEL},{id_label}")
}

fn id_selector(id_label: &str, id: &str) -> String {
    format!("{RESULT_LABEL},{id_label}={id}")
}

/// `(namespace, kind, target hash)` whose results without the target label are all gone:
/// retention lists only the target's label.
static LABELLED_ONLY: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<TargetOfKind>>> =
    std::sync::LazyLock::new(std::sync::Mutex::default);

/// `(namespace, kind, target hash)`.
type TargetOfKind = (String, &'static str, String);

async fn list_annotated(
    client: &kube::Client,
    namespace: &str,
    id_label: &str,
    extra_selector: Option<&str>,
) -> Result<Vec<(String, std::collections::BTreeMap<String, String>, bool)>, StoreError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut selector = kind_selector(id_label);
    if let Some(extra) = extra_selector {
        selector = format!("{selector},{extra}");
    }
    let list = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| StoreError::List {
            selector: selector.clone(),
            namespace: namespace.to_owned(),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .map(|m| {
            let labelled = m
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(RESULT_TARGET_LABEL));
            (
                m.metadata.name.unwrap_or_default(),
                m.metadata.annotations.unwrap_or_default(),
                labelled,
            )
        })
        .collect())
}

/// What the store needs of a result summary kind to list and expire results.
trait Summary: Sized {
    /// `command` or `validate` (for messages).
    const KIND: &'static str;
    /// The label carrying the result id.
    const ID_LABEL: &'static str;
    /// Reads the summary annotation of a result Secret.
    fn parse(annotations: &BTreeMap<String, String>) -> Option<Self>;
    /// Newest first.
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering;
    /// The project and target the result belongs to.
    fn keys(&self) -> (&ProjectKey, &gitops_api::kluctl::results::TargetKey);
    /// The result id (for logs).
    fn id(&self) -> &str;
}

impl Summary for CommandResultSummary {
    fn id(&self) -> &str {
        &self.id
    }
    const KIND: &'static str = "command";
    const ID_LABEL: &'static str = COMMAND_RESULT_ID_LABEL;
    fn parse(annotations: &BTreeMap<String, String>) -> Option<Self> {
        encode::parse_command_summary(annotations)
    }
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        retention::command_order(a, b)
    }
    fn keys(&self) -> (&ProjectKey, &gitops_api::kluctl::results::TargetKey) {
        (&self.project_key, &self.target_key)
    }
}

impl Summary for ValidateResultSummary {
    fn id(&self) -> &str {
        &self.id
    }
    const KIND: &'static str = "validate";
    const ID_LABEL: &'static str = VALIDATE_RESULT_ID_LABEL;
    fn parse(annotations: &BTreeMap<String, String>) -> Option<Self> {
        encode::parse_validate_summary(annotations)
    }
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        retention::validate_order(a, b)
    }
    fn keys(&self) -> (&ProjectKey, &gitops_api::kluctl::results::TargetKey) {
        (&self.project_key, &self.target_key)
    }
}

/// The results of one kind in `namespace`, newest first, optionally of one project.
async fn list_summaries<S: Summary>(
    client: &kube::Client,
    namespace: &str,
    project: Option<&ProjectKey>,
) -> Result<Vec<Listed<S>>, StoreError> {
    list_summaries_where(client, namespace, project, None).await
}

/// [`list_summaries`] of the Secrets that also match `extra_selector`.
async fn list_summaries_where<S: Summary>(
    client: &kube::Client,
    namespace: &str,
    project: Option<&ProjectKey>,
    extra_selector: Option<&str>,
) -> Result<Vec<Listed<S>>, StoreError> {
    let mut out: Vec<Listed<S>> = list_annotated(client, namespace, S::ID_LABEL, extra_selector)
        .await?
        .into_iter()
        .filter_map(|(name, annotations, target_labelled)| {
            let summary = S::parse(&annotations)?;
            retention::project_matches(summary.keys().0, project).then_some(Listed {
                name,
                summary,
                target_labelled,
            })
        })
        .collect();
    out.sort_by(|a, b| S::order(&a.summary, &b.summary));
    Ok(out)
}

async fn find_by_id(
    client: &kube::Client,
    namespace: &str,
    kind: &'static str,
    id_label: &str,
    id: &str,
) -> Result<Secret, StoreError> {
    let not_found = || StoreError::NotFound {
        kind,
        id: id.to_owned(),
        namespace: namespace.to_owned(),
    };
    // An id that is no label value cannot be stored, so it cannot be found either; asking the
    // apiserver with it would only produce a selector parse error.
    if !encode::is_label_value(id) {
        return Err(not_found());
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let selector = id_selector(id_label, id);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| StoreError::List {
            selector,
            namespace: namespace.to_owned(),
            source,
        })?;
    list.items.into_iter().next().ok_or_else(not_found)
}

async fn delete_secret(api: &Api<Secret>, namespace: &str, name: &str) -> Result<(), StoreError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(source) => Err(StoreError::Delete {
            secret: name.to_owned(),
            namespace: namespace.to_owned(),
            source,
        }),
    }
}

async fn delete_expired<S: Summary>(client: &kube::Client, namespace: &str, expired: &[&Listed<S>]) {
    let kind = S::KIND;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for l in expired {
        match delete_secret(&api, namespace, &l.name).await {
            Ok(()) => tracing::info!(kind, id = l.summary.id(), secret = %l.name, "deleted old result"),
            Err(e) => warn_chain(
                &e,
                &format!("failed to delete old {kind} result {:?}", l.summary.id()),
            ),
        }
    }
}

fn log_retention_list_failure(e: &StoreError) {
    // Kluctl stays quiet when it may not list results (403); any other failure is a warning.
    // Either way the result itself is stored, so the write succeeds.
    if let StoreError::List {
        source: kube::Error::Api(status),
        ..
    } = e
        && status.is_forbidden()
    {
        return;
    }
    warn_chain(e, "failed to clean up old results");
}

fn warn_chain(e: &dyn std::error::Error, what: &str) {
    tracing::warn!(error = %crate::error_chain(e), "{what}");
}
