//! Leader election through a `coordination.k8s.io` Lease (`--enable-leader-election`).
//!
//! Lease name `source-controller-leader-election` in `$RUNTIME_NAMESPACE` (or `default`), with a
//! hash of `--watch-label-selector` appended when sharding so each shard elects its own leader.
//! The Lease duration is `--leader-election-lease-duration`; renewal starts
//! `lease-duration - renew-deadline` before it expires.

use crate::Args;
use anyhow::Context as _;
use kube_lease_manager::LeaseManagerBuilder;
use sha2::{Digest, Sha256};

/// Base name of the Lease.
pub const LEASE_NAME: &str = "source-controller-leader-election";

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

/// The Lease name for a label selector (empty: the base name).
pub fn lease_name(selector: &str) -> String {
    if selector.is_empty() {
        return LEASE_NAME.to_string();
    }
    let hash = Sha256::digest(selector.as_bytes());
    let short = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
    format!("{LEASE_NAME}-{short:08x}")
}

/// Blocks until this instance holds the Lease.
///
/// # Errors
/// When the Lease cannot be read or created.
pub async fn acquire(client: kube::Client, args: &Args, identity: &str) -> anyhow::Result<Leadership> {
    let namespace = if args.runtime_namespace.is_empty() {
        "default"
    } else {
        &args.runtime_namespace
    };
    let name = lease_name(&args.watch_label_selector);
    // Unique per process: two replicas on one host (or a restarted pod) must not share it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let identity = format!("{identity}_{}_{nanos:08x}", std::process::id());
    let identity = identity.as_str();
    let duration = args.leader_election_lease_duration.as_secs().max(1);
    let grace = duration
        .saturating_sub(args.leader_election_renew_deadline.as_secs())
        .max(1)
        .min(duration - 1)
        .max(1);
    let manager = LeaseManagerBuilder::new(client, &name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(duration)
        .with_grace(grace)
        .with_field_manager("source-controller")
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

    #[test]
    fn shards_get_their_own_lease() {
        assert_eq!(lease_name(""), LEASE_NAME);
        let a = lease_name("sharding.fluxcd.io/key=shard1");
        let b = lease_name("sharding.fluxcd.io/key=shard2");
        assert!(a.starts_with("source-controller-leader-election-") && a.len() == LEASE_NAME.len() + 9);
        assert_ne!(a, b);
    }
}
