//! Command-line flags of `kluctl-controller`: Kluctl's `kluctl controller run` flags with the same
//! names and defaults, so existing controller manifests keep working, plus the few this build
//! adds (kubeconfig, log format and file, cache directory and size, events address).
//!
//! Boolean flags read as Go's flag package reads them: bare (`--leader-elect`) or
//! `--flag=<value>` with any `strconv.ParseBool` spelling ([`gitops_api::flags::parse_bool`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use gitops_api::flags::parse_bool;

/// Log output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (`level`, `ts`, `msg`, `name`, `namespace`, `reconcileID`, ...).
    Json,
    /// Human-readable text.
    Console,
}

fn duration(s: &str) -> Result<Duration, String> {
    gitops_api::duration::parse(s).map_err(|e| e.to_string())
}

fn size(s: &str) -> Result<u64, String> {
    let (digits, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size '{s}': expected a number with an optional unit (Ki, Mi, Gi)"))?;
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size '{s}': unknown unit '{unit}' (use Ki, Mi, Gi or Ti)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("invalid size '{s}': too large"))
}

/// The `kluctl-controller` command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "kluctl-controller",
    version,
    about = "Reconciles KluctlDeployment objects: render, apply, prune, validate, detect drift"
)]
#[allow(clippy::struct_excessive_bools)] // flags
pub struct ControllerArgs {
    /// Namespace the controller runs in (leader election Lease, `kluctl gitops logs`).
    #[arg(long, env = "KLUCTL_CONTROLLER_NAMESPACE", default_value = "kluctl-system")]
    pub controller_namespace: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, default_value = "")]
    pub namespace: String,
    /// KluctlDeployments reconciled at the same time (of both API versions together), in the
    /// order they fell due.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
    /// Service account impersonated when a KluctlDeployment names none (default: the
    /// controller's own identity).
    #[arg(long, default_value = "")]
    pub default_service_account: String,
    /// Run every command as a dry run, whatever the objects say.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_bool)]
    pub dry_run: bool,
    /// Reconcile only while holding the `kluctl-controller-leader-election` Lease.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_bool)]
    pub leader_elect: bool,
    /// Address of the Prometheus metrics endpoint (`/metrics`).
    #[arg(long, default_value = ":8080")]
    pub metrics_bind_address: String,
    /// Address of the health (`/healthz`) and readiness (`/readyz`) probes.
    #[arg(long, default_value = ":8081")]
    pub health_probe_bind_address: String,
    /// Address of the Receiver webhook server (`/hook/<sha256>`); empty: no webhooks served.
    #[arg(long, default_value = ":9292")]
    pub receiver_listen_addr: String,
    /// Reconcile only KluctlDeployments matching this label selector.
    #[arg(long, default_value = "")]
    pub watch_label_selector: String,
    /// Refuse `sourceRef`s to objects in other namespaces.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_bool)]
    pub no_cross_namespace_refs: bool,
    /// Where Flux-format events are POSTed (a notification receiver); empty: Kubernetes events only.
    #[arg(long, env = "EVENTS_ADDR", default_value = "")]
    pub events_addr: String,
    /// Address of the Flux event endpoint (`source-controller --events-addr` points here);
    /// empty: no endpoint (this controller's own events are still dispatched in-process).
    #[arg(long, default_value = ":9090")]
    pub events_listen_addr: String,
    /// Dispatch the Alerts of the watched namespaces through their Providers. Set it to false when
    /// Flux's notification-controller serves the cluster's Alerts (then point `--events-addr` at
    /// it), so no event is sent twice.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true", value_parser = parse_bool)]
    pub notification_dispatch: bool,
    /// One delivery per event (object, message, revision) per interval; repeats are dropped.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub rate_limit_interval: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Log level (`error`, `info`, `debug`, `trace`); `RUST_LOG` wins when set.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Also append every log line to this file (for a controller running as a local process:
    /// `kluctl gitops logs --controller-log-file` reads it).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Kubeconfig of the cluster the controller watches (default: `$KUBECONFIG`, `~/.kube/config`,
    /// then the in-cluster configuration).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Directory of the source and render caches.
    #[arg(long, env = "KLUCTL_CONTROLLER_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Hard size cap of the source cache (checkouts and artifacts); the least recently used
    /// entries not in use are removed beyond it.
    #[arg(long, default_value = "2Gi", value_parser = size)]
    pub cache_max_size: u64,
    /// Namespace of the command and validate results.
    #[arg(long, default_value = "kluctl-results")]
    pub command_result_namespace: String,
    /// Command results kept per project and target.
    #[arg(long, default_value_t = 5)]
    pub keep_command_results_count: usize,
    /// Validate results kept per project and target.
    #[arg(long, default_value_t = 2)]
    pub keep_validate_results_count: usize,
    /// Lease duration of the leader election.
    #[arg(long, default_value = "35s", value_parser = duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub leader_election_renew_deadline: Duration,
}

impl ControllerArgs {
    /// The cache directory: the flag, else `<tmp>/kluctl-controller`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("kluctl-controller"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kluctl_defaults_and_go_style_bools() {
        let a = ControllerArgs::try_parse_from(["kluctl-controller"]).unwrap();
        assert_eq!(a.controller_namespace, "kluctl-system");
        assert_eq!(a.concurrency, 4);
        assert_eq!(a.metrics_bind_address, ":8080");
        assert_eq!(a.health_probe_bind_address, ":8081");
        assert_eq!(a.receiver_listen_addr, ":9292");
        assert!(!a.leader_elect && !a.dry_run);
        let a = ControllerArgs::try_parse_from([
            "kluctl-controller",
            "--leader-elect",
            "--dry-run=T",
            "--no-cross-namespace-refs=false",
            "--cache-max-size=512Mi",
        ])
        .unwrap();
        assert!(a.leader_elect && a.dry_run && !a.no_cross_namespace_refs);
        assert_eq!(a.cache_max_size, 512 << 20);
    }

    #[test]
    fn sizes_name_the_bad_unit() {
        assert_eq!(size("10").unwrap(), 10);
        assert_eq!(size("2Gi").unwrap(), 2 << 30);
        assert!(size("2GB").unwrap_err().contains("unknown unit 'GB'"));
        assert!(size("x").unwrap_err().contains("invalid size 'x'"));
    }
}
