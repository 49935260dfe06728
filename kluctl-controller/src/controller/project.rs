//! The engine's part of a reconcile, on a blocking thread: render the target, then run the
//! commands the pipeline asks for (deploy or poke-images, prune, validate, diff, delete) with the
//! same engine calls and options the CLI uses, and store their results.
//!
//! The engine is synchronous where it templates and renders and owns a small runtime for its
//! cluster steps ([`kluctl_engine::cluster::Cluster`]); running it here keeps the controller's
//! async workers free. Every result gets the reconcile id, the KluctlDeployment's identity and
//! the rendered objects' hash before it is stored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use gitops_api::kluctl::results::{
    CommandResultSummary, DriftDetectionResult, DriftedObject, GitInfo, KluctlDeploymentInfo, ProjectKey,
    ValidateResult,
};
use gitops_api::kluctl::v1beta1::{DeployMode, KluctlDeploymentSpec};
use kluctl_engine::apply::{ApplyOptions, InSyncVersions, NoProgress, in_sync_versions};
use kluctl_engine::cluster::{Cluster, Discovered};
use kluctl_engine::commands::{CommandContext, DeployOptions};
use kluctl_engine::helm::{Capabilities, Helm};
use kluctl_engine::kustomize::Kustomizer;
use kluctl_engine::project::inclusion::Inclusion;
use kluctl_engine::project::vars::ClusterReader;
use kluctl_engine::render::namespaces::ScopeLookup;
use kluctl_engine::result::{CommandInfo, CommandInitiator, CommandResult};
use kluctl_engine::target::{self, RenderedTarget, TargetOptions};

/// Kluctl's controller waits this long for objects to become ready during a deploy.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(600);

/// Everything the engine needs for one KluctlDeployment.
pub struct Job {
    /// The object's name.
    pub name: String,
    /// The object's namespace.
    pub namespace: String,
    /// The spec in effect (with a request's overrides applied).
    pub spec: KluctlDeploymentSpec,
    /// The request's overrides patch, recorded in the results.
    pub overrides_patch: Option<serde_json::Value>,
    /// The project directory.
    pub project_dir: PathBuf,
    /// The project's identity.
    pub project_key: ProjectKey,
    /// Git state for the results.
    pub git_info: GitInfo,
    /// The target cluster's client configuration (impersonating).
    pub config: kube::Config,
    /// The context name templates see.
    pub context: String,
    /// `--dry-run` of the controller.
    pub controller_dry_run: bool,
    /// This reconcile's id.
    pub reconcile_id: String,
    /// Where rendered files go (a temporary directory is made inside).
    pub work_dir: PathBuf,
    /// Where Git includes and vars are cached.
    pub git_cache_dir: PathBuf,
    /// Credentials and cache sharing of the Git includes and vars.
    pub git: kluctl_engine::source::GitSourceOptions,
    /// The result store.
    pub results: ResultStore,
    /// When the reconcile must be done.
    pub deadline: std::time::Instant,
    /// Discovery results shared between reconciles.
    pub discovery: std::sync::Arc<DiscoveryCache>,
    /// Objects known to be in sync, per KluctlDeployment (drift detection skips them).
    pub in_sync: std::sync::Arc<InSyncCache>,
}

/// Per KluctlDeployment (namespace/name): the resourceVersions at which its objects were last
/// seen in sync with their rendered form, by the last deploy (the objects it applied) or the
/// last drift detection (the objects its dry run found unchanged). Drift detection does not
/// dry-run-apply an object that is still at that version ([`InSyncVersions`]), so a reconcile
/// where nothing changed costs the listing per kind instead of one request per object.
///
/// The versions hold only for the rendered objects' hash and the target cluster they were
/// recorded for: another hash without a deploy, a dry-run deploy, or another cluster start
/// them afresh (Kluctl's rule). The known kinds ([`KnownKinds`]) hold for the target cluster
/// and discriminator, whatever is rendered: deploys of a new render use them too. It all lives
/// in memory only; after a restart the first deploy or drift detection lists every kind and
/// dry-runs everything once.
#[derive(Debug, Default)]
pub struct InSyncCache {
    entries: std::sync::Mutex<std::collections::HashMap<(String, String), InSyncEntry>>,
}

#[derive(Debug)]
struct InSyncEntry {
    /// What the versions hold for: rendered objects' hash and target cluster URL.
    valid_for: (String, String),
    versions: InSyncVersions,
    /// What the kinds hold for: target cluster URL and discriminator.
    kinds_for: (String, String),
    /// The kinds the target's objects were found in (rendered, orphans, kept objects) by the
    /// last full discriminator listing and the listings since, and when the full one was.
    kinds: KnownKinds,
}

/// Kinds a full discriminator listing found objects of, and when it ran.
#[derive(Clone, Debug)]
struct KnownKinds {
    kinds: std::collections::BTreeSet<(String, String)>,
    listed_at: std::time::Instant,
}

/// How long deploys and drift detection list only the kinds the last full listing found
/// objects of (plus the kinds rendered since), instead of every served kind: one LIST per kind
/// is most of what a reconcile costs (about 45 of a 3-object deploy's 80 requests on
/// Kubernetes 1.20). The narrowed listing still sees every object this controller applied for
/// the target, since their kinds were rendered; what it misses are objects of another kind
/// that someone else labelled with the discriminator since (another tool, a `kluctl deploy`
/// by hand). Those are neither reported as orphans nor pruned until the next full listing,
/// once this has passed or after a restart: a prune that comes late, never one that deletes
/// more. Nothing is deleted that the full listing would not have deleted too.
pub const FULL_LISTING_EVERY: Duration = Duration::from_secs(30 * 60);

/// The `(group, kind)` of every object a result names (objects and warnings, which list the
/// orphans kept by annotation).
fn result_kinds(r: &CommandResult) -> std::collections::BTreeSet<(String, String)> {
    r.objects
        .iter()
        .map(|o| &o.object)
        .chain(r.warnings.iter().map(|w| &w.object_ref))
        .filter(|x| !x.kind.is_empty())
        .map(|x| (x.group.clone(), x.kind.clone()))
        .collect()
}

/// The kinds to list when the last full listing of an entry is recent enough.
fn recent_kinds(
    e: &InSyncEntry,
    kinds_for: &(String, String),
) -> Option<std::collections::BTreeSet<(String, String)>> {
    (e.kinds_for == *kinds_for && e.kinds.listed_at.elapsed() < FULL_LISTING_EVERY)
        .then(|| e.kinds.kinds.clone())
}

/// Which KluctlDeployment (namespace, name) and target cluster (API server URL) an
/// [`InSyncCache`] entry is for.
#[derive(Clone, Debug)]
struct Scope {
    key: (String, String),
    cluster: String,
}

impl Scope {
    fn of(job: &Job) -> Self {
        Self {
            key: (job.namespace.clone(), job.name.clone()),
            cluster: job.config.cluster_url.to_string(),
        }
    }

    fn valid_for(&self, objects_hash: &str) -> (String, String) {
        (objects_hash.to_owned(), self.cluster.clone())
    }

    fn kinds_for(&self, discriminator: &str) -> (String, String) {
        (self.cluster.clone(), discriminator.to_owned())
    }
}

impl InSyncCache {
    fn entry<T>(&self, scope: &Scope, f: impl FnOnce(&InSyncEntry) -> T) -> Option<T> {
        self.entries.lock().ok().and_then(|m| m.get(&scope.key).map(f))
    }

    /// The versions known in sync for `job`'s objects rendered with `objects_hash` (empty when
    /// none were recorded for that hash and cluster), and the kinds to list when the last full
    /// listing for `discriminator` is recent enough (`None`: list every kind).
    fn get(
        &self,
        scope: &Scope,
        objects_hash: &str,
        discriminator: &str,
    ) -> (
        InSyncVersions,
        Option<std::collections::BTreeSet<(String, String)>>,
    ) {
        let valid_for = scope.valid_for(objects_hash);
        let kinds_for = scope.kinds_for(discriminator);
        self.entry(scope, |e| {
            let versions = if e.valid_for == valid_for {
                e.versions.clone()
            } else {
                InSyncVersions::default()
            };
            (versions, recent_kinds(e, &kinds_for))
        })
        .unwrap_or_default()
    }

    /// The kinds a deploy for `discriminator` lists (`None`: every kind).
    fn kinds(
        &self,
        scope: &Scope,
        discriminator: &str,
    ) -> Option<std::collections::BTreeSet<(String, String)>> {
        let kinds_for = scope.kinds_for(discriminator);
        self.entry(scope, |e| recent_kinds(e, &kinds_for)).flatten()
    }

    /// Replaces what is known for `job` (rendered with `objects_hash`, for `discriminator`) by
    /// `versions`; `r` is the result they come from, `full_listing` whether it listed every
    /// kind (else the kinds and time of the last full listing are kept, with `r`'s added).
    fn set(
        &self,
        scope: &Scope,
        (objects_hash, discriminator): (&str, &str),
        versions: InSyncVersions,
        r: &CommandResult,
        full_listing: bool,
    ) {
        if let Ok(mut m) = self.entries.lock() {
            let kinds_for = scope.kinds_for(discriminator);
            let kinds = match m.get(&scope.key) {
                // A result that failed as a whole (a timeout, a failed listing) found nothing:
                // its kinds prove nothing, so the next listing lists every kind.
                _ if r.errors.iter().any(|e| e.object_ref.kind.is_empty()) => KnownKinds {
                    kinds: result_kinds(r),
                    listed_at: std::time::Instant::now()
                        .checked_sub(FULL_LISTING_EVERY)
                        .unwrap_or_else(std::time::Instant::now),
                },
                Some(e) if !full_listing && e.kinds_for == kinds_for => KnownKinds {
                    kinds: e.kinds.kinds.union(&result_kinds(r)).cloned().collect(),
                    listed_at: e.kinds.listed_at,
                },
                _ => KnownKinds {
                    kinds: result_kinds(r),
                    listed_at: std::time::Instant::now(),
                },
            };
            m.insert(
                scope.key.clone(),
                InSyncEntry {
                    valid_for: scope.valid_for(objects_hash),
                    versions,
                    kinds_for,
                    kinds,
                },
            );
        }
    }

    /// Forgets the KluctlDeployment `namespace/name` (deleted, or after a dry-run deploy).
    pub fn forget(&self, namespace: &str, name: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(&(namespace.to_owned(), name.to_owned()));
        }
    }
}

/// What API discovery found, per cluster (API server URL), reused for [`DISCOVERY_TTL`] by every
/// reconcile: without it every reconcile would repeat discovery, one request per API group
/// version on servers without aggregated discovery (Kubernetes before 1.26). A kind that a
/// deploy's CRD adds is read into the shared index by the engine when it is first needed, and
/// every reconcile holding the index sees it.
///
/// One discovery per cluster at a time: when the entry is missing or expired, the first
/// reconcile discovers while the others for that cluster wait for its result (with
/// `--concurrency` N, N reconciles starting together would otherwise run N discoveries).
#[derive(Debug, Default)]
pub struct DiscoveryCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<DiscoverySlot>>>,
}

/// One cluster's entry; its lock is held while discovering.
type DiscoverySlot = std::sync::Mutex<Option<(std::time::Instant, Discovered)>>;

/// How long discovery results are reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(300);

impl DiscoveryCache {
    /// A connection to the cluster of `config`, discovering only when the cached results are
    /// missing or older than [`DISCOVERY_TTL`].
    fn connect(
        &self,
        config: &kube::Config,
        context: &str,
    ) -> Result<Cluster, kluctl_engine::cluster::ClusterError> {
        let key = config.cluster_url.to_string();
        let slot = {
            let mut m = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::sync::Arc::clone(m.entry(key).or_default())
        };
        let mut entry = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, d)) = entry.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Cluster::from_config_discovered(config.clone(), context, d.clone());
        }
        let cluster = Cluster::from_config(config.clone(), context)?;
        *entry = Some((std::time::Instant::now(), cluster.discovered()));
        Ok(cluster)
    }
}

/// Where results go.
#[derive(Clone, Debug)]
pub struct ResultStore {
    /// Namespace of the result Secrets.
    pub namespace: String,
    /// Command results kept per project and target.
    pub keep_command: usize,
    /// Validate results kept per project and target.
    pub keep_validate: usize,
}

/// A failed load or render: the full text for `status.lastPrepareError`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PrepareError(pub String);

/// A rendered target, connected.
pub struct Prepared {
    cluster: Cluster,
    /// The rendered target.
    pub rendered: RenderedTarget,
    inclusion: Inclusion,
    /// Hash of the rendered objects.
    pub objects_hash: String,
    /// The discriminator of the target.
    pub discriminator: String,
    _render_dir: tempfile::TempDir,
}

fn api_to_engine<T: serde::Serialize, U: serde::de::DeserializeOwned + Default>(v: &T) -> U {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Renders the target of `job` (connecting to its cluster for `cluster*` vars, Helm
/// capabilities and namespace scopes).
///
/// # Errors
/// [`PrepareError`] with the full error text (file, item and field named by the engine).
pub fn prepare(job: &Job) -> Result<Prepared, PrepareError> {
    let spec = &job.spec;
    let cluster = job
        .discovery
        .connect(&job.config, &job.context)
        .map_err(|e| PrepareError(kluctl_engine::error_chain(&e)))?;
    let inclusion = Inclusion::from_flags(
        &spec.include_tags,
        &spec.exclude_tags,
        &spec.include_deployment_dirs,
        &spec.exclude_deployment_dirs,
    )
    .map_err(|e| PrepareError(format!("spec.includeTags/excludeTags/...: {e}")))?;
    fs_err::create_dir_all(&job.work_dir).map_err(|e| PrepareError(e.to_string()))?;
    let render_dir = tempfile::Builder::new()
        .prefix("render-")
        .tempdir_in(&job.work_dir)
        .map_err(|e| PrepareError(format!("failed to create a render directory: {e}")))?;
    let external_args = spec.args.clone().map_or_else(
        || serde_json::Value::Object(serde_json::Map::new()),
        serde_json::Value::Object,
    );
    let options = TargetOptions {
        project_dir: job.project_dir.clone(),
        target: spec.target.clone(),
        target_name_override: spec.target_name_override.clone(),
        discriminator: None,
        context: Some(job.context.clone()),
        external_args,
        inclusion: inclusion.clone(),
        fixed_images: spec.images.iter().map(api_to_engine).collect(),
        render_dir: render_dir.path().to_path_buf(),
        write_rendered_objects: false,
        kustomizer: Kustomizer::default(),
        helm: Helm::default(),
        capabilities: Capabilities {
            kube_version: Some(cluster.server_version.clone()),
            api_versions: cluster.api_versions.clone(),
        },
        env: BTreeMap::new(),
        git_cache_dir: job.git_cache_dir.clone(),
        git: job.git.clone(),
    };
    let rendered = target::render_target(
        options,
        Some(&cluster as &dyn ClusterReader),
        Some(&cluster as &dyn ScopeLookup),
    )
    .map_err(|e| PrepareError(kluctl_engine::error_chain(&e)))?;
    let objects_hash = super::decide::objects_hash(rendered.objects());
    let discriminator = rendered.target.discriminator.clone();
    Ok(Prepared {
        cluster,
        rendered,
        inclusion,
        objects_hash,
        discriminator,
        _render_dir: render_dir,
    })
}

/// A target for `delete` when the KluctlDeployment goes away: nothing rendered, only the
/// discriminator recorded in `status.targetKey` (Kluctl deletes by discriminator, not by the
/// project's current content, which may be gone).
///
/// # Errors
/// [`PrepareError`] when the cluster cannot be reached or the inclusion rules do not parse.
pub fn prepare_delete(job: &Job, target_name: &str, discriminator: &str) -> Result<Prepared, PrepareError> {
    let spec = &job.spec;
    let cluster = job
        .discovery
        .connect(&job.config, &job.context)
        .map_err(|e| PrepareError(kluctl_engine::error_chain(&e)))?;
    let inclusion = Inclusion::from_flags(
        &spec.include_tags,
        &spec.exclude_tags,
        &spec.include_deployment_dirs,
        &spec.exclude_deployment_dirs,
    )
    .map_err(|e| PrepareError(format!("spec.includeTags/excludeTags/...: {e}")))?;
    let render_dir = tempfile::tempdir().map_err(|e| PrepareError(e.to_string()))?;
    let target = kluctl_engine::project::config::Target {
        name: target_name.to_owned(),
        discriminator: discriminator.to_owned(),
        ..Default::default()
    };
    Ok(Prepared {
        cluster,
        rendered: RenderedTarget {
            target,
            warnings: Vec::new(),
            items: Vec::new(),
            images: kluctl_engine::render::images::Images::new(Vec::new()),
        },
        inclusion,
        objects_hash: String::new(),
        discriminator: discriminator.to_owned(),
        _render_dir: render_dir,
    })
}

/// A stored (or skipped) command result.
#[derive(Debug)]
pub struct Ran {
    /// The summary for the status.
    pub summary: CommandResultSummary,
    /// The id of the stored result; empty when not stored.
    pub stored_id: String,
    /// Why storing failed (the command itself ran).
    pub store_error: Option<String>,
    /// What the store cut to fit the result into one Secret (a warning worth logging).
    pub store_note: Option<String>,
}

impl Prepared {
    fn context(&self, job: &Job, command: &str) -> CommandContext<'_> {
        let spec = &job.spec;
        let info = CommandInfo {
            initiator: CommandInitiator::KluctlDeployment,
            start_time: Some(jiff::Timestamp::now()),
            command: command.to_owned(),
            target: spec.target.clone().unwrap_or_default(),
            target_name_override: spec.target_name_override.clone().unwrap_or_default(),
            context_override: spec.context.clone().unwrap_or_default(),
            args: spec.args.clone().map(serde_json::Value::Object),
            images: spec.images.iter().map(api_to_engine).collect(),
            dry_run: Self::dry_run(job),
            no_wait: spec.no_wait,
            force_apply: spec.force_apply,
            replace_on_error: spec.replace_on_error,
            force_replace_on_error: spec.force_replace_on_error,
            abort_on_error: spec.abort_on_error,
            include_tags: spec.include_tags.clone(),
            exclude_tags: spec.exclude_tags.clone(),
            include_deployment_dirs: spec.include_deployment_dirs.clone(),
            exclude_deployment_dirs: spec.exclude_deployment_dirs.clone(),
            ..CommandInfo::default()
        };
        CommandContext {
            client: self.cluster.client(),
            index: self.cluster.index(),
            rendered: &self.rendered,
            inclusion: &self.inclusion,
            info,
            project_key: job.project_key.clone(),
            git_info: job.git_info.clone(),
            ignore: kluctl_engine::diff::IgnoreOptions::default(),
        }
    }

    fn dry_run(job: &Job) -> bool {
        job.controller_dry_run || job.spec.dry_run
    }

    fn apply_options(job: &Job) -> ApplyOptions {
        let spec = &job.spec;
        ApplyOptions {
            force_apply: spec.force_apply,
            replace_on_error: spec.replace_on_error,
            force_replace_on_error: spec.force_replace_on_error,
            dry_run: Self::dry_run(job),
            abort_on_error: spec.abort_on_error,
            readiness_timeout: READINESS_TIMEOUT,
            no_wait: spec.no_wait,
        }
    }

    fn remaining(job: &Job) -> Duration {
        job.deadline.saturating_duration_since(std::time::Instant::now())
    }

    /// Runs `future` on the cluster's runtime within the reconcile's deadline.
    fn run<T>(&self, job: &Job, what: &str, future: impl Future<Output = T>) -> Result<T, String> {
        let remaining = Self::remaining(job);
        self.cluster
            .block_on(async { tokio::time::timeout(remaining, future).await })
            .map_err(|_| format!("{what} did not finish within the reconcile timeout"))
    }

    fn finish(&self, job: &Job, mut r: CommandResult) -> CommandResult {
        r.reconcile_id.clone_from(&job.reconcile_id);
        r.rendered_objects_hash.clone_from(&self.objects_hash);
        r.overrides_patch.clone_from(&job.overrides_patch);
        r.kluctl_deployment = Some(KluctlDeploymentInfo {
            name: job.name.clone(),
            namespace: job.namespace.clone(),
            cluster_id: r.cluster_info.cluster_id.clone(),
        });
        r
    }

    fn timed_out(&self, job: &Job, command: &str, message: String) -> CommandResult {
        let ctx = self.context(job, command);
        let mut r = CommandResult {
            id: uuid::Uuid::new_v4().to_string(),
            project_key: ctx.project_key.clone(),
            target: self.rendered.target.clone(),
            command: ctx.info.clone(),
            git_info: ctx.git_info.clone(),
            ..CommandResult::default()
        };
        r.command.end_time = Some(jiff::Timestamp::now());
        r.target_key.target_name.clone_from(&self.rendered.target.name);
        r.target_key.discriminator.clone_from(&self.discriminator);
        r.errors.push(gitops_api::kluctl::results::DeploymentError {
            object_ref: gitops_api::kluctl::v1beta1::ObjectRef::default(),
            message,
        });
        self.finish(job, r)
    }

    /// Stores `r` (unless it is empty and `always` is off) and summarises it.
    fn store(&self, job: &Job, r: &CommandResult, always: bool) -> Ran {
        let summary: CommandResultSummary = api_to_engine(&r.summary());
        let empty = summary.new_objects == 0
            && summary.changed_objects == 0
            && summary.orphan_objects == 0
            && summary.deleted_objects == 0
            && summary.errors.is_empty()
            && summary.warnings.is_empty();
        if empty && !always {
            return Ran {
                summary,
                stored_id: String::new(),
                store_error: None,
                store_note: None,
            };
        }
        let stored = self.cluster.block_on(kluctl_engine::store::write_command_result(
            self.cluster.client(),
            &job.results.namespace,
            r,
            job.results.keep_command,
        ));
        match stored {
            Ok(stored) => {
                let mut summary = summary;
                let store_note = stored.reduction.map(|cut| cut.to_string());
                // Say so where users look: the status summary gets the store's warning too.
                if let Some(note) = &store_note {
                    summary
                        .warnings
                        .push(gitops_api::kluctl::results::DeploymentError {
                            object_ref: gitops_api::kluctl::v1beta1::ObjectRef::default(),
                            message: note.clone(),
                        });
                }
                Ran {
                    summary,
                    stored_id: r.id.clone(),
                    store_error: None,
                    store_note,
                }
            }
            Err(e) => Ran {
                summary,
                stored_id: String::new(),
                store_error: Some(kluctl_engine::error_chain(&e)),
                store_note: None,
            },
        }
    }

    /// `deploy` (with `spec.prune`) or `poke-images`, per `spec.deployMode`.
    pub fn deploy(&self, job: &Job, requested: bool) -> Ran {
        self.deploy_full(job, requested).0
    }

    /// [`Self::deploy`], also returning the full command result (the legacy
    /// `flux.kluctl.io` status carries it as `rawResult`).
    pub fn deploy_full(&self, job: &Job, requested: bool) -> (Ran, CommandResult) {
        let r = if job.spec.deploy_mode == DeployMode::PokeImages {
            let ctx = self.context(job, "poke-images");
            if Self::dry_run(job) {
                job.in_sync.forget(&job.namespace, &job.name);
            }
            self.run(job, "poke-images", ctx.poke_images(Self::dry_run(job)))
                .unwrap_or_else(|m| self.timed_out(job, "poke-images", m))
        } else {
            let ctx = self.context(job, "deploy");
            let options = DeployOptions {
                apply: Self::apply_options(job),
                prune: job.spec.prune,
                wait_prune: false,
                only_kinds: job.in_sync.kinds(&Scope::of(job), &self.discriminator),
            };
            let full_listing = options.only_kinds.is_none();
            let r = self
                .run(job, "deploy", ctx.deploy(&options, &NoProgress, None))
                .unwrap_or_else(|m| self.timed_out(job, "deploy", m));
            // What this deploy applied is in sync at the versions the apiserver returned; a
            // dry run changed nothing, so what was known before no longer counts (Kluctl's rule).
            if options.apply.dry_run {
                job.in_sync.forget(&job.namespace, &job.name);
            } else {
                job.in_sync.set(
                    &Scope::of(job),
                    (&self.objects_hash, &self.discriminator),
                    in_sync_versions(&r, false),
                    &r,
                    full_listing,
                );
            }
            r
        };
        let r = self.finish(job, r);
        (self.store(job, &r, requested), r)
    }

    /// `prune` (a request): deletes the orphans of this render.
    pub fn prune(&self, job: &Job) -> Ran {
        let ctx = self.context(job, "prune");
        let r = self
            .run(job, "prune", ctx.prune(Self::dry_run(job), None))
            .unwrap_or_else(|m| self.timed_out(job, "prune", m));
        let r = self.finish(job, r);
        self.store(job, &r, true)
    }

    /// `diff` (a request).
    pub fn diff(&self, job: &Job) -> Ran {
        let ctx = self.context(job, "diff");
        let r = self
            .run(job, "diff", ctx.diff(&Self::apply_options(job)))
            .unwrap_or_else(|m| self.timed_out(job, "diff", m));
        let r = self.finish(job, r);
        self.store(job, &r, true)
    }

    /// `delete`: every object of the discriminator, no waiting.
    pub fn delete(&self, job: &Job) -> Ran {
        let ctx = self.context(job, "delete");
        let r = self
            .run(job, "delete", ctx.delete(Self::dry_run(job), false, None))
            .unwrap_or_else(|m| self.timed_out(job, "delete", m));
        let r = self.finish(job, r);
        self.store(job, &r, true)
    }

    /// `validate`, stored.
    pub fn validate(&self, job: &Job) -> (ValidateResult, Option<String>) {
        let ctx = self.context(job, "validate");
        let mut v = match self.run(job, "validate", ctx.validate()) {
            Ok(v) => v,
            Err(m) => ValidateResult {
                id: uuid::Uuid::new_v4().to_string(),
                project_key: job.project_key.clone(),
                errors: vec![gitops_api::kluctl::results::DeploymentError {
                    object_ref: gitops_api::kluctl::v1beta1::ObjectRef::default(),
                    message: m,
                }],
                ..ValidateResult::default()
            },
        };
        v.reconcile_id.clone_from(&job.reconcile_id);
        v.rendered_objects_hash.clone_from(&self.objects_hash);
        v.overrides_patch = job.overrides_patch.as_ref().and_then(|p| p.as_object().cloned());
        v.kluctl_deployment = Some(KluctlDeploymentInfo {
            name: job.name.clone(),
            namespace: job.namespace.clone(),
            cluster_id: v.target_key.cluster_id.clone(),
        });
        let stored = self.cluster.block_on(kluctl_engine::store::write_validate_result(
            self.cluster.client(),
            &job.results.namespace,
            &v,
            job.results.keep_validate,
        ));
        (v, stored.err().map(|e| kluctl_engine::error_chain(&e)))
    }

    /// Drift detection: a server-side dry-run diff of everything, as a drift result (not stored).
    pub fn drift(&self, job: &Job) -> DriftDetectionResult {
        let start = jiff::Timestamp::now();
        let ctx = self.context(job, "diff");
        let options = ApplyOptions {
            dry_run: true,
            ..Self::apply_options(job)
        };
        let (known, kinds) = job
            .in_sync
            .get(&Scope::of(job), &self.objects_hash, &self.discriminator);
        let full_listing = kinds.is_none();
        let r = self
            .run(
                job,
                "drift detection",
                ctx.diff_in_sync(&options, &known, kinds.as_ref()),
            )
            .unwrap_or_else(|m| self.timed_out(job, "diff", m));
        let versions = in_sync_versions(&r, true);
        tracing::debug!(
            known = known.len(),
            in_sync = versions.len(),
            "drift detection: objects known in sync before and after"
        );
        job.in_sync.set(
            &Scope::of(job),
            (&self.objects_hash, &self.discriminator),
            versions,
            &r,
            full_listing,
        );
        let objects = r
            .objects
            .iter()
            .filter(|o| o.new || o.orphan || o.deleted || !o.changes.is_empty())
            .map(|o| DriftedObject {
                object_ref: o.object.clone(),
                changes: api_to_engine(&o.changes),
                new: o.new,
                orphan: o.orphan,
                deleted: o.deleted,
                hook: o.hook,
                last_resource_version: o
                    .remote
                    .as_ref()
                    .and_then(|x| x.pointer("/metadata/resourceVersion"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        DriftDetectionResult {
            id: uuid::Uuid::new_v4().to_string(),
            reconcile_id: job.reconcile_id.clone(),
            project_key: job.project_key.clone(),
            target_key: r.target_key.clone(),
            kluctl_deployment: Some(KluctlDeploymentInfo {
                name: job.name.clone(),
                namespace: job.namespace.clone(),
                cluster_id: r.cluster_info.cluster_id.clone(),
            }),
            rendered_objects_hash: self.objects_hash.clone(),
            start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(start)),
            end_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            )),
            warnings: r.warnings.clone(),
            errors: r.errors.clone(),
            objects,
        }
    }

    /// The target key with the cluster id, for `status.targetKey`: `known` (the key a command
    /// of this run already reported, cluster id included), else read from the cluster.
    pub fn target_key(
        &self,
        known: &gitops_api::kluctl::results::TargetKey,
    ) -> gitops_api::kluctl::results::TargetKey {
        if !known.cluster_id.is_empty() {
            return known.clone();
        }
        let cluster_id = self.cluster.block_on(async {
            let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(self.cluster.client().clone());
            api.get("kube-system")
                .await
                .ok()
                .and_then(|ns| ns.metadata.uid)
                .unwrap_or_default()
        });
        gitops_api::kluctl::results::TargetKey {
            target_name: self.rendered.target.name.clone(),
            cluster_id,
            discriminator: self.discriminator.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! [`DiscoveryCache`] against the engine's fake API server, counting `/version` requests
    //! (one per discovery).
    use std::collections::HashMap;
    use std::sync::Arc;

    use kluctl_engine::cluster::test_server::FakeServer;
    use serde_json::json;

    use super::*;

    /// A server with only ConfigMaps, whose `/version` answers slowly enough that concurrent
    /// connects overlap.
    fn fake_server() -> FakeServer {
        let answers = HashMap::from([
            (
                "/version".to_owned(),
                json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2", "gitCommit": "", "gitTreeState": "",
                       "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}),
            ),
            (
                "/api".to_owned(),
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ),
            ("/apis".to_owned(), json!({"kind": "APIGroupList", "groups": []})),
            (
                "/api/v1".to_owned(),
                json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    {"name": "configmaps", "singularName": "", "namespaced": true, "kind": "ConfigMap", "verbs": ["get", "list"]}]}),
            ),
        ]);
        FakeServer::start_slow(answers, Some(("/version", Duration::from_millis(100))))
    }

    /// `/version` requests since the last call.
    fn discoveries(server: &FakeServer) -> usize {
        server.take_paths().iter().filter(|p| *p == "/version").count()
    }

    fn scope(cluster: &str) -> Scope {
        Scope {
            key: ("ns".to_owned(), "kd".to_owned()),
            cluster: cluster.to_owned(),
        }
    }

    /// A result naming one object of each `(group, kind)`.
    fn result_of(kinds: &[(&str, &str)]) -> CommandResult {
        CommandResult {
            objects: kinds
                .iter()
                .map(|(group, kind)| kluctl_engine::result::ResultObject {
                    object: gitops_api::kluctl::v1beta1::ObjectRef {
                        group: (*group).to_owned(),
                        kind: (*kind).to_owned(),
                        name: "x".to_owned(),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .collect(),
            ..CommandResult::default()
        }
    }

    fn set_of(kinds: &[(&str, &str)]) -> std::collections::BTreeSet<(String, String)> {
        kinds
            .iter()
            .map(|(g, k)| ((*g).to_owned(), (*k).to_owned()))
            .collect()
    }

    /// A deploy of render `h1` for discriminator `d` whose full listing found ConfigMaps.
    fn full_listing_of_configmaps(cache: &InSyncCache, s: &Scope) {
        cache.set(
            s,
            ("h1", "d"),
            InSyncVersions::new(),
            &result_of(&[("", "ConfigMap")]),
            true,
        );
    }

    #[test]
    fn known_kinds_hold_per_cluster_and_discriminator_across_renders() {
        let cache = InSyncCache::default();
        let s = scope("https://a");
        assert_eq!(cache.kinds(&s, "d"), None, "nothing listed yet: every kind");
        full_listing_of_configmaps(&cache, &s);
        // A new render (another hash) of the same target lists only the known kinds.
        assert_eq!(cache.kinds(&s, "d"), Some(set_of(&[("", "ConfigMap")])));
        assert_eq!(cache.get(&s, "h2", "d").1, Some(set_of(&[("", "ConfigMap")])));
        // Another discriminator or cluster: every kind.
        assert_eq!(cache.kinds(&s, "other"), None);
        assert_eq!(cache.kinds(&scope("https://b"), "d"), None);
        // A narrowed listing adds the kinds it saw and keeps the time of the full one.
        let listed_at = cache.entry(&s, |e| e.kinds.listed_at).unwrap();
        cache.set(
            &s,
            ("h2", "d"),
            InSyncVersions::new(),
            &result_of(&[("apps", "Deployment")]),
            false,
        );
        assert_eq!(
            cache.kinds(&s, "d"),
            Some(set_of(&[("", "ConfigMap"), ("apps", "Deployment")]))
        );
        assert_eq!(cache.entry(&s, |e| e.kinds.listed_at).unwrap(), listed_at);
        // Dropped after FULL_LISTING_EVERY.
        if let Some(e) = cache.entries.lock().unwrap().get_mut(&s.key) {
            e.kinds.listed_at = std::time::Instant::now().checked_sub(FULL_LISTING_EVERY).unwrap();
        }
        assert_eq!(cache.kinds(&s, "d"), None, "a full listing is due");
    }

    #[test]
    fn a_failed_result_or_a_forgotten_deployment_lists_every_kind_next() {
        let cache = InSyncCache::default();
        let s = scope("https://a");
        full_listing_of_configmaps(&cache, &s);
        let mut failed = result_of(&[]);
        failed.errors.push(gitops_api::kluctl::results::DeploymentError {
            object_ref: gitops_api::kluctl::v1beta1::ObjectRef::default(),
            message: "deploy did not finish within the reconcile timeout".to_owned(),
        });
        cache.set(&s, ("h1", "d"), InSyncVersions::new(), &failed, false);
        assert_eq!(cache.kinds(&s, "d"), None, "after a failed listing");
        full_listing_of_configmaps(&cache, &s);
        cache.forget("ns", "kd");
        assert_eq!(cache.kinds(&s, "d"), None, "after forget");
    }

    #[test]
    fn concurrent_reconciles_of_one_cluster_share_a_single_discovery() {
        let server = fake_server();
        let config = server.config();
        let cache = Arc::new(DiscoveryCache::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (cache, config) = (Arc::clone(&cache), config.clone());
                std::thread::spawn(move || {
                    let cluster = cache.connect(&config, "").expect("connect");
                    cluster.index().current().is_namespaced("", "ConfigMap")
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), Some(true));
        }
        let first = discoveries(&server);
        assert_eq!(first, 1);
        // Later reconciles within the TTL: still one.
        let _again = cache.connect(&config, "").expect("connect");
        assert_eq!(first + discoveries(&server), 1);
    }
}
