//! `kluctl bootstrap git`: a cluster that deploys itself from a Git repository.
//!
//! ```text
//! checks     cluster reachable, an existing sync over the same --path, the branch readable and
//!            writable with the credentials                       (nothing changed yet)
//! git        clone ─► write <path>/<ns>/{components,sync}.yaml (+ project files) ─► commit ─► push
//!            (a refused push, e.g. a protected branch, stops here: nothing changed in the cluster)
//! cluster    components: CRDs, wait Established, the rest   (skipped once the sync deployed them)
//!            Secret <ns>/<ns> with the credentials          (never in Git)
//!            GitRepository + KluctlDeployment <ns>/<ns>
//! wait       GitRepository Ready at the pushed commit ─► a reconcile request of the
//!            KluctlDeployment ─► Ready at that commit ─► controller Deployments available
//! ```
//!
//! Re-running with the same flags changes nothing (no commit when the files are unchanged; the
//! applies are idempotent). Everything is applied with the field manager the Kluctl engine uses,
//! so the sync's later deploys own the same fields and upgrades pushed to Git apply cleanly.

pub mod files;
pub mod git;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::flags::bootstrap::{BootstrapCmd, BootstrapCommand, BootstrapGitCmd};
use crate::gitops::request::{self, RequestKind};
use crate::install::{apply, check, manifests};
use gitops_api::constants::KLUCTL_FIELD_MANAGER;
use gitops_api::kluctl::v1beta1::KluctlDeployment;

/// How often the sync objects are read while waiting.
const POLL: Duration = Duration::from_secs(1);

/// The field manager of the credentials Secret (Git never holds it, so the sync never applies it).
const SECRET_FIELD_MANAGER: &str = "kluctl-bootstrap";

/// Runs `kluctl bootstrap`.
///
/// # Errors
/// A failed check, a refused push, an object the server refuses, or a sync that does not become
/// Ready within `--timeout`.
pub fn run_bootstrap(cmd: &BootstrapCmd) -> anyhow::Result<()> {
    match &cmd.command {
        BootstrapCommand::Git(g) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the client runtime")?
            .block_on(bootstrap_git(g)),
    }
}

async fn bootstrap_git(cmd: &BootstrapGitCmd) -> anyhow::Result<()> {
    let deadline = Instant::now() + cmd.timeout;
    let ns = cmd.cluster.namespace.clone();
    let path = files::normalize_path(&cmd.path)?;
    let (auth, _scanned) = auth(cmd)?;

    // ------------------------------------------------------------ checks (nothing changes)
    let client = crate::get::connect(&cmd.cluster.connection).await?.0;
    let version = client
        .apiserver_version()
        .await
        .context("failed to reach the cluster: check --kubeconfig/--context")?;
    let minor = manifests::parse_minor(&version.major, &version.minor).unwrap_or(u32::MAX);
    let kds: Api<KluctlDeployment> = Api::namespaced(client.clone(), &ns);
    let existing = existing_sync(&kds, &ns, &path).await?;
    println!("► cloning branch '{}' of {}", cmd.branch, cmd.url);
    let checkout = git::Checkout::clone(&cmd.url, &cmd.branch, auth.clone())?;
    if checkout.branch_existed {
        checkout.check_push_rights()?;
        println!("✔ the credentials can read and push to branch '{}'", cmd.branch);
    } else {
        println!("✔ branch '{}' does not exist yet: it is created", cmd.branch);
    }

    // ------------------------------------------------------------ git
    let (m, components, notes) = components(cmd, &client, minor).await?;
    let sync = files::Sync {
        namespace: ns.clone(),
        url: files::source_url(&cmd.url),
        branch: cmd.branch.clone(),
        path: path.clone(),
        interval: cmd.interval,
        target: cmd.target.clone(),
        secret: auth.basic.is_some() || auth.ca_file.is_some() || auth.private_key_file.is_some(),
    };
    let head = commit_and_push(cmd, &checkout, &sync, &components)?;
    for n in &notes {
        println!("  note: {n}");
    }

    // ------------------------------------------------------------ cluster
    let deployed_by_sync = existing
        .as_ref()
        .and_then(|kd| kd.status.as_ref())
        .is_some_and(|s| s.last_deploy_result.is_some());
    if deployed_by_sync {
        println!("✔ KluctlDeployment {ns}/{ns} already deploys the components from Git");
    } else {
        println!("► installing the components");
        let remaining = deadline.saturating_duration_since(Instant::now());
        apply::apply_as(&client, &m, remaining, KLUCTL_FIELD_MANAGER).await?;
    }
    if cmd.components_only {
        println!("✔ components installed (--components-only: no sync)");
        return Ok(());
    }
    if sync.secret {
        apply_secret(&client, &ns, &auth).await?;
        println!("✔ Secret {ns}/{ns} holds the Git credentials");
    }
    for o in files::sync_objects(&sync) {
        apply_sync_object(&client, &o).await?;
    }
    println!("✔ GitRepository and KluctlDeployment {ns}/{ns} applied");

    // ------------------------------------------------------------ wait
    wait_ready(cmd, &client, &kds, &head, deadline).await?;
    println!(
        "✔ bootstrap finished: the cluster deploys '{path}' of branch '{}' (kluctl get deployments -n {ns})",
        cmd.branch
    );
    Ok(())
}

/// The installation for this cluster: CRDs its server accepts and that no aggregated server
/// serves, without the Deployments when asked; and `components.yaml` with those notes.
async fn components(
    cmd: &BootstrapGitCmd,
    client: &Client,
    minor: u32,
) -> anyhow::Result<(manifests::Manifests, String, Vec<String>)> {
    let mut m = manifests::assemble(&manifests::Options {
        namespace: cmd.cluster.namespace.clone(),
        legacy: cmd.legacy,
        watch_all_namespaces: cmd.watch_all_namespaces,
        webui: false,
    })?;
    let mut notes = Vec::new();
    let aggregated = apply::aggregated_apis(client).await?;
    m.crds
        .retain(|crd| match apply::served_elsewhere(crd, &aggregated) {
            Some(service) => {
                notes.push(format!(
                    "CRD {} is left out: its API is served by {service}",
                    manifests::name(crd)
                ));
                false
            }
            None => true,
        });
    if minor < manifests::CEL_MINOR && m.strip_for_old_servers() > 0 {
        notes.push(format!(
            "Kubernetes 1.{minor}: the CRDs are written without their CEL rules, which it refuses"
        ));
    }
    if cmd.without_controller_deployments {
        m.objects.retain(|o| manifests::kind(o) != "Deployment");
        notes.push(
            "the controller Deployments are left out (--without-controller-deployments): run the \
             controllers yourself"
                .to_owned(),
        );
    }
    let mut components = format!(
        "# kluctl-gitops {} components, written by `kluctl bootstrap git`.\n",
        env!("CARGO_PKG_VERSION")
    );
    for n in &notes {
        let _ = writeln!(components, "# {n}.");
    }
    components.push_str(m.to_yaml()?.split_once('\n').map_or("", |(_, rest)| rest));
    Ok((m, components, notes))
}

/// Waits for the GitRepository, the KluctlDeployment (at `head`) and the controllers.
async fn wait_ready(
    cmd: &BootstrapGitCmd,
    client: &Client,
    kds: &Api<KluctlDeployment>,
    head: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    let ns = &cmd.cluster.namespace;
    let revision = format!("{}@sha1:{head}", cmd.branch);
    println!("◎ waiting for GitRepository {ns}/{ns} to fetch {revision}");
    wait_git_repository(client, ns, &revision, deadline).await?;
    println!("✔ GitRepository {ns}/{ns} is Ready at {revision}");
    println!("◎ waiting for KluctlDeployment {ns}/{ns} to deploy it");
    wait_kluctl_deployment(kds, ns, head, deadline).await?;
    println!("✔ KluctlDeployment {ns}/{ns} is Ready at {}", short(head));
    if !cmd.without_controller_deployments {
        println!("◎ waiting for the controller Deployments");
        loop {
            let rows = check::deployments(client, ns).await?;
            if rows.iter().all(|r| r.ok) {
                break;
            }
            if Instant::now() >= deadline {
                print!("{}", check::table(&rows));
                anyhow::bail!(
                    "the controller Deployments of namespace {ns} are not available after {}",
                    request::format_duration(cmd.timeout)
                );
            }
            tokio::time::sleep(POLL).await;
        }
        println!("✔ the controllers are available");
    }
    Ok(())
}

/// Writes the planned files into the checkout, commits and pushes them when they changed;
/// returns the branch's commit.
fn commit_and_push(
    cmd: &BootstrapGitCmd,
    checkout: &git::Checkout,
    sync: &files::Sync,
    components: &str,
) -> anyhow::Result<String> {
    let path = &sync.path;
    let read = |name: &str| {
        ["yaml", "yml"].iter().find_map(|ext| {
            let rel = files::under(path, &format!("{name}.{ext}"));
            fs_err::read_to_string(checkout.path().join(&rel))
                .ok()
                .map(|t| (rel, t))
        })
    };
    let deployment = read("deployment");
    let project = read(".kluctl");
    let mut planned = files::plan(
        sync,
        components,
        deployment.as_ref().map(|(f, t)| (f.as_str(), t.as_str())),
        project.as_ref().map(|(f, t)| (f.as_str(), t.as_str())),
    )?;
    if cmd.components_only {
        planned.retain(|(p, _)| p.ends_with("/components.yaml") || p.ends_with("/.templateignore"));
    }
    let committed = checkout.commit(
        &planned,
        &format!(
            "Add kluctl-gitops {} {}",
            env!("CARGO_PKG_VERSION"),
            if cmd.components_only {
                "component manifests"
            } else {
                "component and sync manifests"
            }
        ),
        (&cmd.author_name, &cmd.author_email),
    )?;
    let head = checkout.head()?.context("the checkout has no commit")?;
    if committed {
        checkout.push()?;
        println!("✔ pushed {} to branch '{}'", short(&head), cmd.branch);
    } else {
        println!(
            "✔ branch '{}' already holds these manifests ({})",
            cmd.branch,
            short(&head)
        );
    }
    Ok(head)
}

/// The sync KluctlDeployment `<ns>/<ns>` if there is one; an error when it syncs another path.
async fn existing_sync(
    kds: &Api<KluctlDeployment>,
    ns: &str,
    path: &str,
) -> anyhow::Result<Option<KluctlDeployment>> {
    let existing = match kds.get_opt(ns).await {
        Ok(kd) => kd,
        // The CRD is not installed yet: no sync exists.
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => return Err(e).with_context(|| format!("failed to read KluctlDeployment {ns}/{ns}")),
    };
    if let Some(kd) = &existing {
        let synced = files::normalize_path(kd.spec.path.as_deref().unwrap_or("."))?;
        anyhow::ensure!(
            synced == path,
            "KluctlDeployment {ns}/{ns} already syncs path '{synced}' of its repository, and this \
             bootstrap asks for --path '{path}': run it with --path '{synced}', or delete the \
             KluctlDeployment first (kubectl -n {ns} delete kluctldeployments.gitops.kluctl.io {ns}) \
             to move the sync"
        );
    }
    Ok(existing)
}

/// The git credentials of the flags; for SSH without `--known-hosts-file`, the server's host
/// keys read by `ssh-keyscan` (kept in a temporary file for the clone).
fn auth(cmd: &BootstrapGitCmd) -> anyhow::Result<(git::Auth, Option<tempfile::NamedTempFile>)> {
    let basic = match (&cmd.username, &cmd.password) {
        (_, Some(p)) => Some((
            cmd.username.clone().unwrap_or_else(|| "git".to_owned()),
            p.clone(),
        )),
        (Some(_), None) => {
            anyhow::bail!("--username needs a password: pass --password or set KLUCTL_PASSWORD")
        }
        (None, None) => None,
    };
    for (flag, file) in [
        ("--ca-file", &cmd.ca_file),
        ("--private-key-file", &cmd.private_key_file),
        ("--known-hosts-file", &cmd.known_hosts_file),
    ] {
        if let Some(f) = file {
            anyhow::ensure!(f.is_file(), "{flag} {}: no such file", f.display());
        }
    }
    let mut scanned = None;
    let mut known_hosts_file = cmd.known_hosts_file.clone();
    if cmd.private_key_file.is_some() && known_hosts_file.is_none() {
        let keys = keyscan(&cmd.url)?;
        let mut f = tempfile::NamedTempFile::new().context("failed to create a temporary file")?;
        std::io::Write::write_all(&mut f, keys.as_bytes())?;
        known_hosts_file = Some(f.path().to_owned());
        scanned = Some(f);
    }
    Ok((
        git::Auth {
            basic,
            ca_file: cmd.ca_file.clone(),
            private_key_file: cmd.private_key_file.clone(),
            known_hosts_file,
        },
        scanned,
    ))
}

/// The host keys of an ssh:// (or scp-like) URL's server, as known_hosts lines.
fn keyscan(url: &str) -> anyhow::Result<String> {
    let ssh = files::source_url(url);
    let rest = ssh
        .strip_prefix("ssh://")
        .with_context(|| format!("--private-key-file needs an SSH URL, and --url is {url}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (host_port, "22"),
    };
    let out = std::process::Command::new("ssh-keyscan")
        .args(["-p", port, host])
        .output()
        .context("failed to run ssh-keyscan (install OpenSSH's client, or pass --known-hosts-file)")?;
    let keys = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        !keys.trim().is_empty(),
        "ssh-keyscan read no host key from {host} port {port}: pass --known-hosts-file"
    );
    Ok(keys)
}

/// Secret `<ns>/<ns>` in the keys source-controller reads.
async fn apply_secret(client: &Client, ns: &str, auth: &git::Auth) -> anyhow::Result<()> {
    let mut data = serde_json::Map::new();
    if let Some((user, password)) = &auth.basic {
        data.insert("username".into(), json!(user));
        data.insert("password".into(), json!(password));
    }
    let read =
        |p: &PathBuf| fs_err::read_to_string(p).with_context(|| format!("failed to read {}", p.display()));
    if let Some(ca) = &auth.ca_file {
        data.insert("ca.crt".into(), json!(read(ca)?));
    }
    if let Some(key) = &auth.private_key_file {
        data.insert("identity".into(), json!(read(key)?));
    }
    if let Some(kh) = &auth.known_hosts_file {
        data.insert("known_hosts".into(), json!(read(kh)?));
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ns,
            "namespace": ns,
            "labels": {"app.kubernetes.io/part-of": manifests::PART_OF, "app.kubernetes.io/instance": ns},
        },
        "type": "Opaque",
        "stringData": data,
    });
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets"),
    );
    // The error names the Secret, never its content.
    api.patch(
        ns,
        &PatchParams::apply(SECRET_FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .map_err(|e| anyhow::anyhow!("failed to apply Secret {ns}/{ns}: {}", status_reason(&e)))?;
    Ok(())
}

fn status_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.reason, s.code),
        other => other.to_string(),
    }
}

async fn apply_sync_object(client: &Client, o: &Value) -> anyhow::Result<()> {
    let (group, version) = o["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .context("sync object without a group")?;
    let kind = manifests::kind(o);
    let plural = match kind {
        "GitRepository" => "gitrepositories",
        _ => "kluctldeployments",
    };
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let ns = manifests::namespace(o).unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    api.patch(
        manifests::name(o),
        &PatchParams::apply(KLUCTL_FIELD_MANAGER).force(),
        &Patch::Apply(o),
    )
    .await
    .with_context(|| format!("failed to apply {}", manifests::describe(o)))?;
    Ok(())
}

/// The Ready condition `(status, reason, message)` of an object, if it is for its generation.
fn ready(o: &Value) -> Option<(String, String, String)> {
    let generation = o["metadata"]["generation"].as_i64();
    let c = o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    let observed = c["observedGeneration"]
        .as_i64()
        .or_else(|| o["status"]["observedGeneration"].as_i64());
    if observed.is_some() && observed != generation {
        return None;
    }
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

async fn wait_git_repository(
    client: &Client,
    ns: &str,
    revision: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        "gitrepositories",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    loop {
        let o = serde_json::to_value(
            api.get(ns)
                .await
                .with_context(|| format!("failed to read GitRepository {ns}/{ns}"))?,
        )?;
        let at = o["status"]["artifact"]["revision"].as_str().unwrap_or_default();
        match ready(&o) {
            Some((s, _, _)) if s == "True" && at == revision => return Ok(()),
            Some((s, reason, message)) if s == "False" => {
                anyhow::bail!("GitRepository {ns}/{ns} is not Ready ({reason}): {message}")
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "GitRepository {ns}/{ns} did not fetch {revision} in time (its artifact: '{at}'; \
                 Ready: {:?}): is source-controller running? (kluctl check -n {ns})",
                ready(&o)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Asks for a reconcile (so a sync created before its source had the commit does not wait for
/// its retry interval) and checks the outcome.
async fn wait_kluctl_deployment(
    api: &Api<KluctlDeployment>,
    ns: &str,
    head: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    let kd = api
        .get(ns)
        .await
        .with_context(|| format!("failed to read KluctlDeployment {ns}/{ns}"))?;
    let sent = request::send(api, &kd, RequestKind::Reconcile, &serde_json::Map::new()).await?;
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let result = request::wait(api, &kd, RequestKind::Reconcile, &sent, remaining, None).await?;
    if !result.command_error.is_empty() {
        anyhow::bail!(
            "KluctlDeployment {ns}/{ns} failed to deploy {}: {}",
            short(head),
            result.command_error
        );
    }
    let kd = api
        .get(ns)
        .await
        .with_context(|| format!("failed to read KluctlDeployment {ns}/{ns}"))?;
    let value = serde_json::to_value(&kd)?;
    let observed = kd
        .status
        .as_ref()
        .map(|s| s.observed_commit.as_str())
        .unwrap_or_default();
    match ready(&value) {
        Some((s, _, _)) if s == "True" && observed == head => Ok(()),
        Some((s, reason, message)) if s != "True" => {
            anyhow::bail!("KluctlDeployment {ns}/{ns} is not Ready ({reason}): {message}")
        }
        _ => {
            anyhow::bail!("KluctlDeployment {ns}/{ns} reconciled commit '{observed}', not the pushed {head}")
        }
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
