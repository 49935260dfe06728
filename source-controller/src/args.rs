//! Command-line flags of the `source-controller` binary: the flags of Flux's source-controller
//! that apply to GitRepository and Bucket, with the same names, defaults and environment variables,
//! so existing Deployment manifests keep working.
//!
//! Boolean flags read as Go's flag package reads them: bare (`--enable-leader-election`), or
//! `--flag=<value>` with any `strconv.ParseBool` spelling ([`gitops_api::flags::parse_bool`]); each
//! is also read from its environment variable. Flux's own Deployment arguments parse unchanged
//! (pinned by a test below).

use clap::{Parser, ValueEnum};
use gitops_api::flags::parse_bool;
use std::time::Duration;

/// Log output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogEncoding {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Console,
}

/// Log verbosity.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, including per-request details.
    Trace,
    /// Debugging details.
    Debug,
    /// Normal operation.
    Info,
    /// Errors only.
    Error,
}

fn duration(s: &str) -> Result<Duration, String> {
    gitops_api::duration::parse(s).map_err(|e| e.to_string())
}

fn jitter(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(p) if p < 100 => Ok(p),
        _ => Err(format!("'{s}' must be a whole percentage below 100")),
    }
}

/// Command-line arguments of the `source-controller` binary.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "source-controller",
    version,
    about = "Reconciles Flux GitRepository and Bucket objects into tar.gz artifacts served over HTTP"
)]
pub struct Args {
    /// Directory where artifacts are stored.
    #[arg(long, env = "STORAGE_PATH", default_value = "/data")]
    pub storage_path: String,
    /// Address the artifact HTTP server binds to.
    #[arg(long, env = "STORAGE_ADDRESS", default_value = ":9090")]
    pub storage_addr: String,
    /// Address advertised in `status.artifact.url`; derived from --storage-addr when empty.
    #[arg(long, env = "STORAGE_ADV_ADDR", default_value = "")]
    pub storage_adv_addr: String,
    /// Age after which superseded artifacts are garbage-collected.
    #[arg(long, default_value = "1m", value_parser = duration)]
    pub artifact_retention_ttl: Duration,
    /// How many artifacts (the current one included) to keep per object.
    #[arg(long, default_value_t = 2)]
    pub artifact_retention_records: usize,
    /// Digest algorithm of artifacts; only sha256 is supported.
    #[arg(long, default_value = "sha256", value_parser = ["sha256"])]
    pub artifact_digest_algo: String,
    /// Concurrent reconciles per kind.
    #[arg(long, default_value_t = 2)]
    pub concurrent: u16,
    /// Requeue delay when a dependency (e.g. an included repository) is not ready.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub requeue_dependency: Duration,
    /// Address of the Prometheus metrics endpoint (`/metrics`).
    #[arg(long, env = "METRICS_ADDR", default_value = ":8080")]
    pub metrics_addr: String,
    /// Address of the health endpoints (`/healthz`, `/readyz`).
    #[arg(long, default_value = ":9440")]
    pub health_addr: String,
    /// Address of a Flux notification receiver events are POSTed to; empty disables it.
    #[arg(long, env = "EVENTS_ADDR", default_value = "")]
    pub events_addr: String,
    /// Watch every namespace; when false only `$RUNTIME_NAMESPACE`.
    #[arg(
        long,
        env = "WATCH_ALL_NAMESPACES",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = parse_bool,
    )]
    pub watch_all_namespaces: bool,
    /// Only reconcile objects matching this label selector (sharding).
    #[arg(long, default_value = "")]
    pub watch_label_selector: String,
    /// Elect a leader through a Lease; only the leader reconciles, serves artifacts and is ready.
    #[arg(
        long,
        env = "ENABLE_LEADER_ELECTION",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = parse_bool,
    )]
    pub enable_leader_election: bool,
    /// Lease duration of the leader election.
    #[arg(long, default_value = "35s", value_parser = duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub leader_election_renew_deadline: Duration,
    /// Delay between leader-election attempts.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub leader_election_retry_period: Duration,
    /// Shortest backoff after a failed reconcile.
    #[arg(long, default_value = "750ms", value_parser = duration)]
    pub min_retry_delay: Duration,
    /// Longest backoff after repeated failures.
    #[arg(long, default_value = "15m", value_parser = duration)]
    pub max_retry_delay: Duration,
    /// Random spread (percent) added to `spec.interval` requeues.
    #[arg(long, default_value = "5", value_parser = jitter)]
    pub interval_jitter_percentage: u8,
    /// Log verbosity.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogEncoding::Json)]
    pub log_encoding: LogEncoding,
    /// Namespace the controller runs in (leader-election Lease, single-namespace mode).
    #[arg(long, env = "RUNTIME_NAMESPACE", default_value = "")]
    pub runtime_namespace: String,
    /// Kubeconfig file; in-cluster configuration or `$KUBECONFIG` when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_flux() {
        let a = Args::try_parse_from(["source-controller"]).unwrap();
        assert_eq!(a.storage_path, "/data");
        assert_eq!(a.storage_addr, ":9090");
        assert_eq!(a.artifact_retention_ttl, Duration::from_secs(60));
        assert_eq!(a.artifact_retention_records, 2);
        assert_eq!(a.concurrent, 2);
        assert_eq!(a.requeue_dependency, Duration::from_secs(30));
        assert_eq!(
            (a.min_retry_delay, a.max_retry_delay),
            (Duration::from_millis(750), Duration::from_secs(900))
        );
        assert_eq!(a.interval_jitter_percentage, 5);
        assert!(a.watch_all_namespaces);
        assert!(!a.enable_leader_election);
        assert_eq!((a.log_level, a.log_encoding), (LogLevel::Info, LogEncoding::Json));
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_named() {
        let e =
            Args::try_parse_from(["source-controller", "--artifact-retention-ttl", "1 minute"]).unwrap_err();
        assert!(e.to_string().contains("--artifact-retention-ttl"), "{e}");
        assert!(Args::try_parse_from(["source-controller", "--interval-jitter-percentage", "100"]).is_err());
        assert!(Args::try_parse_from(["source-controller", "--artifact-digest-algo", "md5"]).is_err());
        let a = Args::try_parse_from(["source-controller", "--watch-all-namespaces=false"]).unwrap();
        assert!(!a.watch_all_namespaces);
        let e = Args::try_parse_from(["source-controller", "--enable-leader-election=yes"]).unwrap_err();
        assert!(e.to_string().contains("--enable-leader-election"), "{e}");
    }

    /// The arguments of Flux's source-controller Deployment (install manifests), verbatim: the
    /// kubelet expands `$(RUNTIME_NAMESPACE)` before the process sees it.
    #[test]
    fn flux_deployment_arguments_parse() {
        let a = Args::try_parse_from([
            "source-controller",
            "--events-addr=http://notification-controller.flux-system.svc.cluster.local./",
            "--watch-all-namespaces",
            "--log-level=info",
            "--log-encoding=json",
            "--enable-leader-election",
            "--storage-path=/data",
            "--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local.",
        ])
        .unwrap();
        assert_eq!(
            a.events_addr,
            "http://notification-controller.flux-system.svc.cluster.local./"
        );
        assert!(a.watch_all_namespaces);
        assert!(a.enable_leader_election);
        assert_eq!((a.log_level, a.log_encoding), (LogLevel::Info, LogEncoding::Json));
        assert_eq!(a.storage_path, "/data");
        assert_eq!(
            a.storage_adv_addr,
            "source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local."
        );
    }

    #[test]
    fn boolean_flags_take_go_forms_bare_or_after_equals() {
        let parse = |flag: &str| {
            let a = Args::try_parse_from(["source-controller", flag]).unwrap();
            (a.watch_all_namespaces, a.enable_leader_election)
        };
        assert_eq!(parse("--enable-leader-election"), (true, true));
        assert_eq!(parse("--watch-all-namespaces"), (true, false));
        for off in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(
                parse(&format!("--watch-all-namespaces={off}")),
                (false, false),
                "{off}"
            );
            assert_eq!(
                parse(&format!("--enable-leader-election={off}")),
                (true, false),
                "{off}"
            );
        }
        for on in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(
                parse(&format!("--enable-leader-election={on}")),
                (true, true),
                "{on}"
            );
        }
        // A bare boolean flag does not swallow the flag after it.
        let a = Args::try_parse_from([
            "source-controller",
            "--enable-leader-election",
            "--watch-all-namespaces=false",
        ])
        .unwrap();
        assert!(a.enable_leader_election && !a.watch_all_namespaces);
    }
}
