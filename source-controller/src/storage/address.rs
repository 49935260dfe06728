//! The advertised base URL: where consumers download what the server on `--storage-addr` serves.
//!
//! Rules (Flux's `GetAdvertisedAddress` + `SetArtifactURL`):
//!
//! ```text
//!  --storage-adv-addr  http(s)://…      → used as the URL prefix as-is
//!  --storage-adv-addr  host[:port]      → http://host[:port]
//!  (empty) --storage-addr :9090         → http://localhost:9090
//!  (empty) --storage-addr 0.0.0.0:9090  → http://$HOSTNAME:9090 (or the OS hostname)
//!  (empty) --storage-addr host:9090     → http://host:9090
//! ```

use super::StorageError;
use std::io;

/// The base URL artifacts are advertised under, from `--storage-addr` and `--storage-adv-addr`.
///
/// A trailing `/` is dropped so `<base>/<path>` never has a double slash.
///
/// # Errors
/// [`StorageError::InvalidAddress`] when `--storage-adv-addr` is empty and `--storage-addr` has no
/// port; [`StorageError::Hostname`] when it binds `0.0.0.0` and neither `$HOSTNAME` nor the OS
/// hostname is available.
///
/// ```
/// use source_controller::storage::advertised_base_url;
/// assert_eq!(advertised_base_url(":9090", "").unwrap(), "http://localhost:9090");
/// assert_eq!(
///     advertised_base_url(":9090", "source-controller.flux-system.svc.cluster.local.").unwrap(),
///     "http://source-controller.flux-system.svc.cluster.local."
/// );
/// ```
pub fn advertised_base_url(storage_addr: &str, storage_adv_addr: &str) -> Result<String, StorageError> {
    base_url_with(storage_addr, storage_adv_addr, hostname)
}

/// [`advertised_base_url`] with the hostname lookup injected, so tests do not depend on the machine.
pub(super) fn base_url_with(
    storage_addr: &str,
    storage_adv_addr: &str,
    hostname: impl FnOnce() -> io::Result<String>,
) -> Result<String, StorageError> {
    let address = if storage_adv_addr.is_empty() {
        derive_address(storage_addr, hostname)?
    } else {
        storage_adv_addr.to_string()
    };
    let base = if address.starts_with("http://") || address.starts_with("https://") {
        address
    } else {
        format!("http://{address}")
    };
    Ok(base.trim_end_matches('/').to_string())
}

/// `host:port` to advertise when no explicit address is given (Go's `net.SplitHostPort` rules).
fn derive_address(
    storage_addr: &str,
    hostname: impl FnOnce() -> io::Result<String>,
) -> Result<String, StorageError> {
    let invalid = |reason: &str| StorageError::InvalidAddress {
        addr: storage_addr.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = if let Some(rest) = storage_addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid("missing ']' in address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid("missing port in address"))?;
        (host, port)
    } else {
        let (host, port) = storage_addr
            .rsplit_once(':')
            .ok_or_else(|| invalid("missing port in address"))?;
        if host.contains(':') {
            return Err(invalid("too many colons in address"));
        }
        (host, port)
    };
    let host = match host {
        "" => "localhost".to_string(),
        "0.0.0.0" => hostname().map_err(|source| StorageError::Hostname {
            addr: storage_addr.to_string(),
            source,
        })?,
        other => other.to_string(),
    };
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// `$HOSTNAME` if set and non-empty, else the OS hostname (what Flux does for `0.0.0.0`).
fn hostname() -> io::Result<String> {
    if let Some(name) = std::env::var_os("HOSTNAME").filter(|n| !n.is_empty()) {
        return name
            .into_string()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "$HOSTNAME is not valid UTF-8"));
    }
    hostname::get()?
        .into_string()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the hostname is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_hostname() -> io::Result<String> {
        Err(io::Error::other("no hostname in this test"))
    }

    #[test]
    fn explicit_adv_addr_gets_http_scheme() {
        assert_eq!(
            base_url_with(
                ":9090",
                "source-controller.flux-system.svc.cluster.local.",
                no_hostname
            )
            .unwrap(),
            "http://source-controller.flux-system.svc.cluster.local."
        );
        assert_eq!(
            base_url_with(":9090", "10.0.0.1:8080", no_hostname).unwrap(),
            "http://10.0.0.1:8080"
        );
    }

    #[test]
    fn adv_addr_with_scheme_is_used_as_prefix() {
        assert_eq!(
            base_url_with(":9090", "https://artifacts.example.com/flux", no_hostname).unwrap(),
            "https://artifacts.example.com/flux"
        );
        assert_eq!(
            base_url_with(":9090", "http://artifacts.example.com/", no_hostname).unwrap(),
            "http://artifacts.example.com"
        );
    }

    #[test]
    fn empty_host_advertises_localhost() {
        assert_eq!(
            base_url_with(":9090", "", no_hostname).unwrap(),
            "http://localhost:9090"
        );
    }

    #[test]
    fn wildcard_host_advertises_the_hostname() {
        let url = base_url_with("0.0.0.0:9090", "", || Ok("source-controller-7d9f".into())).unwrap();
        assert_eq!(url, "http://source-controller-7d9f:9090");
        let err = base_url_with("0.0.0.0:9090", "", no_hostname).unwrap_err();
        assert!(matches!(err, StorageError::Hostname { .. }), "{err}");
    }

    #[test]
    fn concrete_hosts_are_kept_and_ipv6_is_bracketed() {
        assert_eq!(
            base_url_with("127.0.0.1:9090", "", no_hostname).unwrap(),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            base_url_with("[::1]:9090", "", no_hostname).unwrap(),
            "http://[::1]:9090"
        );
    }

    #[test]
    fn address_without_port_is_rejected() {
        for addr in ["9090", "localhost", "[::1]", "::1:9090"] {
            let err = base_url_with(addr, "", no_hostname).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidAddress { .. }),
                "{addr}: {err}"
            );
        }
    }
}
