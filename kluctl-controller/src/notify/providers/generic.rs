//! `generic` and `generic-hmac`: the event JSON itself, POSTed to the address.
//!
//! Headers: `Content-Type: application/json`, `gotk-component: <reportingController>`, then the
//! Secret's `headers` (which may override both), and for `generic-hmac`
//! `X-Signature: sha256=<lowercase hex HMAC-SHA256(body, token)>` over the exact bytes sent, so a
//! receiver verifies what it got.

use gitops_runtime::FluxEvent;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The header naming the controller that emitted the event (Flux's `NotificationHeader`).
pub const COMPONENT_HEADER: &str = "gotk-component";
/// The header carrying the `generic-hmac` signature, `X-Signature` (lowercase, as `HeaderName`
/// stores names; HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-signature";

/// The request body: the event as JSON, in Flux's field order.
pub fn payload(event: &FluxEvent) -> Vec<u8> {
    // Serializing a FluxEvent (strings and string maps) cannot fail.
    serde_json::to_vec(event).unwrap_or_default()
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with the Secret's `token`.
pub fn signature(body: &[u8], key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!(
        "sha256={}",
        gitops_api::revision::lower_hex(&mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::providers::test_support::event;

    #[test]
    fn payload_is_the_event_json_with_unprefixed_metadata() {
        let ev = event(&[("revision", "main@sha1:abc"), ("summary", "prod")]);
        let body: serde_json::Value = serde_json::from_slice(&payload(&ev)).expect("json");
        assert_eq!(body["involvedObject"]["kind"], "KluctlDeployment");
        assert_eq!(body["involvedObject"]["name"], "podinfo");
        assert_eq!(body["severity"], "info");
        assert_eq!(body["reason"], "ReconciliationSucceeded");
        assert_eq!(body["metadata"]["revision"], "main@sha1:abc");
        assert_eq!(body["metadata"]["summary"], "prod");
        assert_eq!(body["reportingController"], "kluctl-controller");
        assert_eq!(body["timestamp"], "2026-01-02T03:04:05Z");
    }

    #[test]
    fn signature_verifies_with_the_token() {
        let body = payload(&event(&[]));
        let sig = signature(&body, b"s3cret-token");
        let hex = sig.strip_prefix("sha256=").expect("prefix");
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret-token").expect("key");
        mac.update(&body);
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        mac.verify_slice(&bytes).expect("signature verifies");
        assert_ne!(signature(&body, b"other"), sig);
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"what do ya want for nothing?", b"Jefe"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
