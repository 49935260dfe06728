//! Leader election through a `coordination.k8s.io` Lease.
//!
//! The Lease is `<name>` in `<namespace>` (`default` when empty), with a hash of the watch label
//! selector appended when sharding so each shard elects its own leader. The Lease lasts
//! `duration`; renewal starts `duration - renew_deadline` before it expires.
//!
//! ```text
//!  acquire(client, LeaseConfig, identity) ──► waits until leader ──► Leadership
//!                                                                     └─ lost().await: the Lease is gone
//! ```

use anyhow::Context as _;
use kube_lease_manager::LeaseManagerBuilder;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Which Lease to hold and how.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Base name of the Lease (`source-controller-leader-election`, ...).
    pub name: String,
    /// Namespace of the Lease; empty means `default`.
    pub namespace: String,
    /// The controller's watch label selector; non-empty appends its hash to the name.
    pub label_selector: String,
    /// Lease duration.
    pub duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    pub renew_deadline: Duration,
    /// Field manager of the Lease writes.
    pub field_manager: String,
}

/// Held leadership: a channel that flips to `false` when the Lease is lost.
pub struct Leadership {
    rx: tokio::sync::watch::Receiver<bool>,
    _task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

impl Leadership {
    /// Resolves when leadership is lost (or the election task ends).
    pub async fn lost(&mut self) {
        let _ = self.rx.wait_for(|leader| !*leader).await;
        tracing::error!("leadership lost; shutting down");
    }
}

/// The Lease name for base name `base` and a label selector (empty: `base` itself).
pub fn lease_name(base: &str, selector: &str) -> String {
    if selector.is_empty() {
        return base.to_string();
    }
    let hash = Sha256::digest(selector.as_bytes());
    let short = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
    format!("{base}-{short:08x}")
}

/// Seconds before expiry at which renewal starts: `duration - renew_deadline`, kept within
/// `1..duration` so the Lease manager neither renews constantly nor too late.
fn grace_secs(duration: u64, renew_deadline: Duration) -> u64 {
    duration
        .saturating_sub(renew_deadline.as_secs())
        .max(1)
        .min(duration - 1)
        .max(1)
}

/// Blocks until this instance (`identity`, usually the pod name) holds the Lease.
///
/// # Errors
/// When the Lease cannot be read or created.
///
/// ```no_run
/// # async fn run(client: kube::Client) -> anyhow::Result<()> {
/// use gitops_runtime::leader::{self, LeaseConfig};
/// use std::time::Duration;
/// let config = LeaseConfig {
///     name: "kluctl-controller-leader-election".into(),
///     namespace: "kluctl-system".into(),
///     label_selector: String::new(),
///     duration: Duration::from_secs(35),
///     renew_deadline: Duration::from_secs(30),
///     field_manager: "kluctl-controller".into(),
/// };
/// let mut leadership = leader::acquire(client, config, "pod-1").await?;
/// // ... run the controllers until:
/// leadership.lost().await;
/// # Ok(())
/// # }
/// ```
pub async fn acquire(
    client: kube::Client,
    config: LeaseConfig,
    identity: &str,
) -> anyhow::Result<Leadership> {
    let namespace = if config.namespace.is_empty() {
        "default"
    } else {
        &config.namespace
    };
    let name = lease_name(&config.name, &config.label_selector);
    // Unique per process: two replicas on one host (or a restarted pod) must not share it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let identity = format!("{identity}_{}_{nanos:08x}", std::process::id());
    let identity = identity.as_str();
    let duration = config.duration.as_secs().max(1);
    let grace = grace_secs(duration, config.renew_deadline);
    let manager = LeaseManagerBuilder::new(client, &name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(duration)
        .with_grace(grace)
        .with_field_manager(config.field_manager.as_str())
        .build()
        .await
        .with_context(|| format!("failed to set up leader election Lease '{namespace}/{name}'"))?;
    let (mut rx, task) = manager.watch().await;
    tracing::info!(lease = %format!("{namespace}/{name}"), identity, "waiting to become leader");
    rx.wait_for(|leader| *leader)
        .await
        .context("leader election stopped")?;
    tracing::info!(lease = %format!("{namespace}/{name}"), identity, "became leader");
    Ok(Leadership { rx, _task: task })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "source-controller-leader-election";

    #[test]
    fn shards_get_their_own_lease() {
        assert_eq!(lease_name(BASE, ""), BASE);
        let a = lease_name(BASE, "sharding.fluxcd.io/key=shard1");
        let b = lease_name(BASE, "sharding.fluxcd.io/key=shard2");
        assert!(a.starts_with("source-controller-leader-election-") && a.len() == BASE.len() + 9);
        assert_ne!(a, b);
        assert_eq!(a, lease_name(BASE, "sharding.fluxcd.io/key=shard1"));
    }

    #[test]
    fn renewal_starts_renew_deadline_before_expiry_within_the_lease() {
        // Flux's defaults: 35s lease, 30s renew deadline.
        assert_eq!(grace_secs(35, Duration::from_secs(30)), 5);
        // A deadline as long as the lease still leaves one second to renew in.
        assert_eq!(grace_secs(35, Duration::from_secs(35)), 1);
        assert_eq!(grace_secs(10, Duration::ZERO), 9);
        assert_eq!(grace_secs(1, Duration::ZERO), 1);
    }
}
