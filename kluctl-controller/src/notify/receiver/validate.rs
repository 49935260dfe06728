//! Request validation per Receiver type, as pure functions of the headers, the body, the token and
//! `spec.events`: what the webhook server calls after finding the Receiver of a path and before
//! requesting any reconcile.
//!
//! ```text
//!  generic        nothing beyond the secret path
//!  generic-hmac   X-Signature: <sha1|sha256|sha512>=<hex HMAC of the body, keyed by the token>
//!  github         X-Hub-Signature-256 (else X-Hub-Signature, sha1) as above; event X-GitHub-Event
//!  gitlab         X-Gitlab-Token equals the token; event X-Gitlab-Event
//!  bitbucket      (Bitbucket Server) signed like github; event X-Event-Key
//! ```
//!
//! Signatures and tokens are compared in constant time, and no error carries either of them.

use axum::http::HeaderMap;
use gitops_api::notification::v1::ReceiverType;
use hmac::{Hmac, Mac as _};
use subtle::ConstantTimeEq as _;

/// Signature header of `generic-hmac` requests.
pub const X_SIGNATURE: &str = "X-Signature";
/// GitHub's (and Bitbucket Server's) SHA-256 signature header.
pub const X_HUB_SIGNATURE_256: &str = "X-Hub-Signature-256";
/// GitHub's legacy SHA-1 signature header (Bitbucket Server sends `sha256=` in it).
pub const X_HUB_SIGNATURE: &str = "X-Hub-Signature";
/// GitHub's event type header.
pub const X_GITHUB_EVENT: &str = "X-GitHub-Event";
/// GitLab's secret token header.
pub const X_GITLAB_TOKEN: &str = "X-Gitlab-Token";
/// GitLab's event type header.
pub const X_GITLAB_EVENT: &str = "X-Gitlab-Event";
/// Bitbucket Server's event type header.
pub const X_EVENT_KEY: &str = "X-Event-Key";

/// The GitHub event sent when a webhook is created or tested.
pub const GITHUB_PING: &str = "ping";

/// The Receiver types this build serves.
pub const SUPPORTED_TYPES: [ReceiverType; 5] = [
    ReceiverType::Generic,
    ReceiverType::GenericHmac,
    ReceiverType::Github,
    ReceiverType::Gitlab,
    ReceiverType::Bitbucket,
];

/// What an authentic request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Reconcile the Receiver's resources; `event` is the event type the request named, for the
    /// types that carry one.
    Trigger {
        /// The event type header's value.
        event: Option<String>,
    },
    /// A GitHub `ping` (sent when the webhook is created): answered 200, nothing reconciled, as
    /// it announces no change. It passes whatever `spec.events` lists, so the forge shows a
    /// working webhook.
    Ping,
}

/// Why a request was refused (the server answers 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidateError {
    /// A header the type requires is absent (or not text).
    #[error("missing header '{header}'")]
    MissingHeader {
        /// The header's name.
        header: &'static str,
    },
    /// A signature header is not `<algorithm>=<hex>`.
    #[error("malformed header '{header}': expected '<algorithm>=<hex digest>'")]
    MalformedSignature {
        /// The header's name.
        header: &'static str,
    },
    /// A signature header names a hash other than sha1, sha256 and sha512.
    #[error("unsupported hash '{algorithm}' in header '{header}' (use sha1, sha256 or sha512)")]
    UnsupportedHash {
        /// The header's name.
        header: &'static str,
        /// The algorithm it named.
        algorithm: String,
    },
    /// The signature does not match the body and the token.
    #[error("the signature in header '{header}' does not match the request body")]
    SignatureMismatch {
        /// The header's name.
        header: &'static str,
    },
    /// A token header does not equal the Receiver's token.
    #[error("header '{header}' does not match the Receiver's token")]
    TokenMismatch {
        /// The header's name.
        header: &'static str,
    },
    /// The event type is not one of `spec.events`.
    #[error("event '{event}' (header '{header}') is not in spec.events")]
    EventNotAccepted {
        /// The header's name.
        header: &'static str,
        /// Its value (empty when absent).
        event: String,
    },
    /// The Receiver's type is not served by this build.
    #[error("spec.type '{0}' is not supported")]
    UnsupportedType(ReceiverType),
}

/// Checks one request against a Receiver of `receiver_type` with `token` (its Secret's `token`)
/// and `events` (its `spec.events`; empty accepts every event).
///
/// # Errors
/// A [`ValidateError`] saying which header failed and how (never with its value, unless it is
/// the event type).
pub fn validate(
    receiver_type: ReceiverType,
    token: &str,
    events: &[String],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verdict, ValidateError> {
    match receiver_type {
        ReceiverType::Generic => Ok(Verdict::Trigger { event: None }),
        ReceiverType::GenericHmac => {
            let signature =
                header(headers, X_SIGNATURE).ok_or(ValidateError::MissingHeader { header: X_SIGNATURE })?;
            verify_signature(X_SIGNATURE, signature, token, body)?;
            Ok(Verdict::Trigger { event: None })
        }
        ReceiverType::Github => {
            verify_hub_signature(headers, token, body)?;
            let event = header(headers, X_GITHUB_EVENT);
            if event == Some(GITHUB_PING) {
                return Ok(Verdict::Ping);
            }
            accept_event(events, X_GITHUB_EVENT, event)
        }
        ReceiverType::Gitlab => {
            let got = header(headers, X_GITLAB_TOKEN).ok_or(ValidateError::MissingHeader {
                header: X_GITLAB_TOKEN,
            })?;
            if !bool::from(got.as_bytes().ct_eq(token.as_bytes())) {
                return Err(ValidateError::TokenMismatch {
                    header: X_GITLAB_TOKEN,
                });
            }
            accept_event(events, X_GITLAB_EVENT, header(headers, X_GITLAB_EVENT))
        }
        ReceiverType::Bitbucket => {
            verify_hub_signature(headers, token, body)?;
            accept_event(events, X_EVENT_KEY, header(headers, X_EVENT_KEY))
        }
        other => Err(ValidateError::UnsupportedType(other)),
    }
}

/// A header's value, when present and text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// GitHub's rule (go-github `ValidatePayload`): `X-Hub-Signature-256` when present, else
/// `X-Hub-Signature`.
fn verify_hub_signature(headers: &HeaderMap, token: &str, body: &[u8]) -> Result<(), ValidateError> {
    let (name, signature) = match header(headers, X_HUB_SIGNATURE_256) {
        Some(s) => (X_HUB_SIGNATURE_256, s),
        None => (
            X_HUB_SIGNATURE,
            header(headers, X_HUB_SIGNATURE).ok_or(ValidateError::MissingHeader {
                header: X_HUB_SIGNATURE_256,
            })?,
        ),
    };
    verify_signature(name, signature, token, body)
}

/// Verifies `<algorithm>=<hex>` (header `name`) as the HMAC of `body` keyed by `token`.
fn verify_signature(
    name: &'static str,
    signature: &str,
    token: &str,
    body: &[u8],
) -> Result<(), ValidateError> {
    let (algorithm, hex) = signature
        .split_once('=')
        .ok_or(ValidateError::MalformedSignature { header: name })?;
    let mac = decode_hex(hex).ok_or(ValidateError::MalformedSignature { header: name })?;
    let key = token.as_bytes();
    // `new_from_slice` cannot fail for HMAC (any key length is valid); a failure counts as a
    // mismatch rather than a panic.
    let matches = match algorithm {
        "sha1" => Hmac::<sha1::Sha1>::new_from_slice(key)
            .is_ok_and(|m| m.chain_update(body).verify_slice(&mac).is_ok()),
        "sha256" => Hmac::<sha2::Sha256>::new_from_slice(key)
            .is_ok_and(|m| m.chain_update(body).verify_slice(&mac).is_ok()),
        "sha512" => Hmac::<sha2::Sha512>::new_from_slice(key)
            .is_ok_and(|m| m.chain_update(body).verify_slice(&mac).is_ok()),
        _ => {
            return Err(ValidateError::UnsupportedHash {
                header: name,
                algorithm: algorithm.chars().take(32).collect(),
            });
        }
    };
    if matches {
        Ok(())
    } else {
        Err(ValidateError::SignatureMismatch { header: name })
    }
}

/// Lower- or upper-case hex to bytes.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

/// `spec.events` compared case-insensitively, as Flux does; an empty list accepts every event.
fn accept_event(
    events: &[String],
    name: &'static str,
    event: Option<&str>,
) -> Result<Verdict, ValidateError> {
    let event = event.unwrap_or_default();
    if events.is_empty() || events.iter().any(|e| e.eq_ignore_ascii_case(event)) {
        return Ok(Verdict::Trigger {
            event: (!event.is_empty()).then(|| event.to_owned()),
        });
    }
    Err(ValidateError::EventNotAccepted {
        header: name,
        event: event.chars().take(100).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "s3cr3t";
    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn sign(algorithm: &str, key: &str, body: &[u8]) -> String {
        let key = key.as_bytes();
        let mac = match algorithm {
            "sha1" => format!(
                "{:x}",
                Hmac::<sha1::Sha1>::new_from_slice(key)
                    .unwrap()
                    .chain_update(body)
                    .finalize()
                    .into_bytes()
            ),
            "sha256" => format!(
                "{:x}",
                Hmac::<sha2::Sha256>::new_from_slice(key)
                    .unwrap()
                    .chain_update(body)
                    .finalize()
                    .into_bytes()
            ),
            _ => format!(
                "{:x}",
                Hmac::<sha2::Sha512>::new_from_slice(key)
                    .unwrap()
                    .chain_update(body)
                    .finalize()
                    .into_bytes()
            ),
        };
        format!("{algorithm}={mac}")
    }

    fn events(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hmac_signatures_match_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let want = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign("sha256", "Jefe", b"what do ya want for nothing?"), want);
        assert_eq!(
            verify_signature(X_SIGNATURE, want, "Jefe", b"what do ya want for nothing?"),
            Ok(())
        );
    }

    #[test]
    fn generic_accepts_any_request() {
        assert_eq!(
            validate(ReceiverType::Generic, TOKEN, &[], &HeaderMap::new(), b""),
            Ok(Verdict::Trigger { event: None })
        );
    }

    #[test]
    fn generic_hmac_checks_x_signature_with_each_hash() {
        for algorithm in ["sha1", "sha256", "sha512"] {
            let h = headers(&[(X_SIGNATURE, &sign(algorithm, TOKEN, BODY))]);
            assert_eq!(
                validate(ReceiverType::GenericHmac, TOKEN, &[], &h, BODY),
                Ok(Verdict::Trigger { event: None }),
                "{algorithm}"
            );
        }
        let upper = sign("sha256", TOKEN, BODY)
            .to_uppercase()
            .replace("SHA256", "sha256");
        assert!(
            validate(
                ReceiverType::GenericHmac,
                TOKEN,
                &[],
                &headers(&[(X_SIGNATURE, &upper)]),
                BODY
            )
            .is_ok()
        );
    }

    #[test]
    fn generic_hmac_refuses_bad_missing_and_malformed_signatures() {
        let wrong_key = headers(&[(X_SIGNATURE, &sign("sha256", "other", BODY))]);
        assert_eq!(
            validate(ReceiverType::GenericHmac, TOKEN, &[], &wrong_key, BODY),
            Err(ValidateError::SignatureMismatch { header: X_SIGNATURE })
        );
        let signed = headers(&[(X_SIGNATURE, &sign("sha256", TOKEN, BODY))]);
        assert_eq!(
            validate(ReceiverType::GenericHmac, TOKEN, &[], &signed, b"tampered"),
            Err(ValidateError::SignatureMismatch { header: X_SIGNATURE }),
            "another body"
        );
        assert_eq!(
            validate(ReceiverType::GenericHmac, TOKEN, &[], &HeaderMap::new(), BODY),
            Err(ValidateError::MissingHeader { header: X_SIGNATURE })
        );
        for bad in ["sha256", "sha256=xyz", "sha256=abc"] {
            assert_eq!(
                validate(
                    ReceiverType::GenericHmac,
                    TOKEN,
                    &[],
                    &headers(&[(X_SIGNATURE, bad)]),
                    BODY
                ),
                Err(ValidateError::MalformedSignature { header: X_SIGNATURE }),
                "{bad}"
            );
        }
        assert_eq!(
            validate(
                ReceiverType::GenericHmac,
                TOKEN,
                &[],
                &headers(&[(X_SIGNATURE, "md5=00")]),
                BODY
            ),
            Err(ValidateError::UnsupportedHash {
                header: X_SIGNATURE,
                algorithm: "md5".into()
            })
        );
    }

    #[test]
    fn github_prefers_x_hub_signature_256_and_falls_back_to_sha1() {
        let good = headers(&[
            (X_HUB_SIGNATURE_256, &sign("sha256", TOKEN, BODY)),
            (X_HUB_SIGNATURE, "sha1=00"),
            (X_GITHUB_EVENT, "push"),
        ]);
        assert_eq!(
            validate(ReceiverType::Github, TOKEN, &[], &good, BODY),
            Ok(Verdict::Trigger {
                event: Some("push".into())
            }),
            "the sha1 header is not looked at when the sha256 one is there"
        );
        let bad_256 = headers(&[
            (X_HUB_SIGNATURE_256, &sign("sha256", "other", BODY)),
            (X_HUB_SIGNATURE, &sign("sha1", TOKEN, BODY)),
        ]);
        assert_eq!(
            validate(ReceiverType::Github, TOKEN, &[], &bad_256, BODY),
            Err(ValidateError::SignatureMismatch {
                header: X_HUB_SIGNATURE_256
            })
        );
        let sha1 = headers(&[
            (X_HUB_SIGNATURE, &sign("sha1", TOKEN, BODY)),
            (X_GITHUB_EVENT, "push"),
        ]);
        assert!(validate(ReceiverType::Github, TOKEN, &[], &sha1, BODY).is_ok());
        assert_eq!(
            validate(
                ReceiverType::Github,
                TOKEN,
                &[],
                &headers(&[(X_GITHUB_EVENT, "push")]),
                BODY
            ),
            Err(ValidateError::MissingHeader {
                header: X_HUB_SIGNATURE_256
            })
        );
    }

    #[test]
    fn github_filters_events_case_insensitively_and_answers_ping_without_a_trigger() {
        let signed = |event: &str| {
            headers(&[
                (X_HUB_SIGNATURE_256, &sign("sha256", TOKEN, BODY)),
                (X_GITHUB_EVENT, event),
            ])
        };
        let only_push = events(&["Push"]);
        assert_eq!(
            validate(ReceiverType::Github, TOKEN, &only_push, &signed("push"), BODY),
            Ok(Verdict::Trigger {
                event: Some("push".into())
            })
        );
        assert_eq!(
            validate(ReceiverType::Github, TOKEN, &only_push, &signed("release"), BODY),
            Err(ValidateError::EventNotAccepted {
                header: X_GITHUB_EVENT,
                event: "release".into()
            })
        );
        assert_eq!(
            validate(ReceiverType::Github, TOKEN, &only_push, &signed("ping"), BODY),
            Ok(Verdict::Ping)
        );
        let unsigned_ping = headers(&[(X_GITHUB_EVENT, "ping")]);
        assert!(
            validate(ReceiverType::Github, TOKEN, &[], &unsigned_ping, BODY).is_err(),
            "a ping is authenticated like any other event"
        );
        let no_event = headers(&[(X_HUB_SIGNATURE_256, &sign("sha256", TOKEN, BODY))]);
        assert_eq!(
            validate(ReceiverType::Github, TOKEN, &only_push, &no_event, BODY),
            Err(ValidateError::EventNotAccepted {
                header: X_GITHUB_EVENT,
                event: String::new()
            }),
            "no event header passes no filter"
        );
    }

    #[test]
    fn gitlab_compares_the_token_header_and_filters_events() {
        let h = |token: &str, event: &str| headers(&[(X_GITLAB_TOKEN, token), (X_GITLAB_EVENT, event)]);
        let tags = events(&["tag push hook"]);
        assert_eq!(
            validate(
                ReceiverType::Gitlab,
                TOKEN,
                &tags,
                &h(TOKEN, "Tag Push Hook"),
                b""
            ),
            Ok(Verdict::Trigger {
                event: Some("Tag Push Hook".into())
            })
        );
        assert_eq!(
            validate(ReceiverType::Gitlab, TOKEN, &tags, &h(TOKEN, "Push Hook"), b""),
            Err(ValidateError::EventNotAccepted {
                header: X_GITLAB_EVENT,
                event: "Push Hook".into()
            })
        );
        for wrong in ["s3cr3", "s3cr3t!", "S3CR3T"] {
            assert_eq!(
                validate(ReceiverType::Gitlab, TOKEN, &[], &h(wrong, "Push Hook"), b""),
                Err(ValidateError::TokenMismatch {
                    header: X_GITLAB_TOKEN
                }),
                "{wrong}"
            );
        }
        assert_eq!(
            validate(
                ReceiverType::Gitlab,
                TOKEN,
                &[],
                &headers(&[(X_GITLAB_EVENT, "Push Hook")]),
                b""
            ),
            Err(ValidateError::MissingHeader {
                header: X_GITLAB_TOKEN
            })
        );
    }

    #[test]
    fn bitbucket_server_is_signed_like_github_with_its_own_event_header() {
        // Bitbucket Server puts `sha256=` in `X-Hub-Signature`.
        let h = |signature: &str, event: &str| headers(&[(X_HUB_SIGNATURE, signature), (X_EVENT_KEY, event)]);
        let pushes = events(&["repo:refs_changed"]);
        assert_eq!(
            validate(
                ReceiverType::Bitbucket,
                TOKEN,
                &pushes,
                &h(&sign("sha256", TOKEN, BODY), "repo:refs_changed"),
                BODY
            ),
            Ok(Verdict::Trigger {
                event: Some("repo:refs_changed".into())
            })
        );
        assert_eq!(
            validate(
                ReceiverType::Bitbucket,
                TOKEN,
                &pushes,
                &h(&sign("sha256", "other", BODY), "repo:refs_changed"),
                BODY
            ),
            Err(ValidateError::SignatureMismatch {
                header: X_HUB_SIGNATURE
            })
        );
        assert_eq!(
            validate(
                ReceiverType::Bitbucket,
                TOKEN,
                &pushes,
                &h(&sign("sha256", TOKEN, BODY), "pr:opened"),
                BODY
            ),
            Err(ValidateError::EventNotAccepted {
                header: X_EVENT_KEY,
                event: "pr:opened".into()
            })
        );
        assert_eq!(
            validate(
                ReceiverType::Bitbucket,
                TOKEN,
                &[],
                &headers(&[(X_EVENT_KEY, "x")]),
                BODY
            ),
            Err(ValidateError::MissingHeader {
                header: X_HUB_SIGNATURE_256
            })
        );
    }

    #[test]
    fn other_types_are_refused() {
        assert_eq!(
            validate(ReceiverType::Harbor, TOKEN, &[], &HeaderMap::new(), b""),
            Err(ValidateError::UnsupportedType(ReceiverType::Harbor))
        );
    }

    #[test]
    fn errors_never_carry_the_token_or_the_signature() {
        let signature = sign("sha256", "other", BODY);
        let h = headers(&[(X_SIGNATURE, &signature)]);
        let text = validate(ReceiverType::GenericHmac, TOKEN, &[], &h, BODY)
            .unwrap_err()
            .to_string();
        assert!(!text.contains(TOKEN) && !text.contains(&signature[7..]), "{text}");
        let h = headers(&[(X_GITLAB_TOKEN, "guess")]);
        let text = validate(ReceiverType::Gitlab, TOKEN, &[], &h, b"")
            .unwrap_err()
            .to_string();
        assert!(!text.contains(TOKEN) && !text.contains("guess"), "{text}");
    }
}
