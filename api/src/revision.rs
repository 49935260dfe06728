//! Artifact revision strings: formatting, parsing, and the legacy forms consumers still meet.
//!
//! The forms, as Flux consumers read them:
//!
//! ```text
//!   main@sha1:132f4e71…          branch, tag or semver match + commit   (short ref: refs/heads/ stripped)
//!   refs/pull/420/head@sha1:…    spec.ref.name: the full ref is kept
//!   sha1:132f4e71…               spec.ref.commit alone
//!   sha256:e3b0c442…             Bucket: digest of the etag index
//!   main/132f4e71…, HEAD/…, 132f4e71…   legacy (pre-v1 Flux), parsed, never written
//! ```
//!
//! Parsing is total: any string yields a [`Revision`]; fields that cannot be recognised stay empty,
//! so a consumer can still compare revisions byte for byte.

use std::fmt;

/// A revision split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// The named reference (`main`, `v1.0.0`, `refs/pull/1/head`), if any.
    pub reference: Option<String>,
    /// The digest algorithm (`sha1`, `sha256`), if recognised.
    pub algorithm: Option<String>,
    /// The hash (hex), if recognised.
    pub hash: Option<String>,
}

impl Revision {
    /// A Git revision for `commit` reached through `reference` (`None` for `spec.ref.commit` alone).
    pub fn git(reference: Option<&str>, commit: &str) -> Self {
        Revision {
            reference: reference.map(str::to_string),
            algorithm: Some(sha_algorithm(commit).unwrap_or("sha1").to_string()),
            hash: Some(commit.to_string()),
        }
    }

    /// Parses a revision string in the current or a legacy form.
    pub fn parse(rev: &str) -> Self {
        let normalized = transform_legacy(rev);
        let (reference, digest) = match normalized.rsplit_once('@') {
            Some((r, d)) if d.contains(':') => (Some(r.to_string()), d),
            _ => (None, normalized.as_str()),
        };
        match digest.split_once(':') {
            Some((algo, hash)) if is_algorithm(algo) && !hash.is_empty() => Revision {
                reference,
                algorithm: Some(algo.to_string()),
                hash: Some(hash.to_string()),
            },
            _ => Revision {
                reference: (!rev.is_empty()).then(|| rev.to_string()),
                algorithm: None,
                hash: None,
            },
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.reference, &self.algorithm, &self.hash) {
            (Some(r), Some(a), Some(h)) => write!(f, "{r}@{a}:{h}"),
            (None, Some(a), Some(h)) => write!(f, "{a}:{h}"),
            (Some(r), _, _) => f.write_str(r),
            _ => Ok(()),
        }
    }
}

/// Strips the first two path segments of a full Git ref: `refs/heads/main` → `main`,
/// `refs/tags/v1.0.0` → `v1.0.0`. Other strings are returned unchanged.
pub fn short_ref(full: &str) -> &str {
    let mut parts = full.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("refs"), Some(_), Some(rest)) if !rest.is_empty() => rest,
        _ => full,
    }
}

/// Rewrites a legacy revision (`main/<sha>`, `HEAD/<sha>`, bare `<sha>`) into the current form;
/// current forms and unrecognised strings are returned unchanged.
pub fn transform_legacy(rev: &str) -> String {
    if rev.is_empty() || rev.contains(':') {
        return rev.to_string();
    }
    if let Some((name, sha)) = rev.rsplit_once('/')
        && let Some(algo) = sha_algorithm(sha)
    {
        return if name == "HEAD" {
            format!("{algo}:{sha}")
        } else {
            format!("{name}@{algo}:{sha}")
        };
    }
    match sha_algorithm(rev) {
        Some(algo) => format!("{algo}:{rev}"),
        None => rev.to_string(),
    }
}

/// The hash part of a revision: the text after the last `:` once legacy forms are transformed.
/// This is how Flux consumers (commit-status notifications, HelmChart revisions) read it.
pub fn extract_hash(rev: &str) -> String {
    let normalized = transform_legacy(rev);
    match normalized.rsplit_once(':') {
        Some((_, hash)) => hash.to_string(),
        None => normalized,
    }
}

/// A parsed `<algorithm>:<hex>` digest, as in `status.artifact.digest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Algorithm name, e.g. `sha256`.
    pub algorithm: String,
    /// Lowercase hex encoding of the hash.
    pub hex: String,
}

/// Why a digest string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The string has no `:` separator.
    #[error("digest '{0}' is not of the form '<algorithm>:<hex>'")]
    Format(String),
    /// The algorithm is not one we can verify.
    #[error("digest '{0}' uses unsupported algorithm '{1}' (supported: sha1, sha256, sha384, sha512)")]
    Algorithm(String, String),
    /// The encoded part has the wrong length or non-hex characters.
    #[error("digest '{0}' has an invalid {1} hex encoding")]
    Encoding(String, String),
}

impl Digest {
    /// A sha256 digest from its hex encoding.
    pub fn sha256(hex: impl Into<String>) -> Self {
        Digest {
            algorithm: "sha256".into(),
            hex: hex.into(),
        }
    }

    /// Parses and checks `<algorithm>:<hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Format(s.to_string()))?;
        let len = match algorithm {
            "sha1" => 40,
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            other => return Err(DigestError::Algorithm(s.to_string(), other.to_string())),
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Encoding(s.to_string(), algorithm.to_string()));
        }
        Ok(Digest {
            algorithm: algorithm.to_string(),
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// Lowercase hex encoding of `bytes`, as digests are written (`sha256:<hex>`).
pub fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn is_algorithm(s: &str) -> bool {
    matches!(s, "sha1" | "sha256" | "sha384" | "sha512" | "blake3")
}

/// `sha1` for 40 hex digits, `sha256` for 64, `None` otherwise.
fn sha_algorithm(hex: &str) -> Option<&'static str> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        40 => Some("sha1"),
        64 => Some("sha256"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "132f4e719209eb10b9485302f8593fc0e680f4fc";
    const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn git_revisions_format_as_flux_writes_them() {
        assert_eq!(
            Revision::git(Some("master"), SHA1).to_string(),
            format!("master@sha1:{SHA1}")
        );
        assert_eq!(
            Revision::git(Some("feature/x"), SHA1).to_string(),
            format!("feature/x@sha1:{SHA1}")
        );
        assert_eq!(
            Revision::git(Some("refs/pull/420/head"), SHA1).to_string(),
            format!("refs/pull/420/head@sha1:{SHA1}")
        );
        assert_eq!(Revision::git(None, SHA1).to_string(), format!("sha1:{SHA1}"));
    }

    #[test]
    fn parse_splits_reference_algorithm_and_hash() {
        let r = Revision::parse(&format!("feature/x@sha1:{SHA1}"));
        assert_eq!(r.reference.as_deref(), Some("feature/x"));
        assert_eq!(r.algorithm.as_deref(), Some("sha1"));
        assert_eq!(r.hash.as_deref(), Some(SHA1));
        let b = Revision::parse(&format!("sha256:{SHA256}"));
        assert_eq!(
            (b.reference.as_deref(), b.algorithm.as_deref()),
            (None, Some("sha256"))
        );
    }

    #[test]
    fn parse_round_trips_every_current_form() {
        for rev in [
            format!("main@sha1:{SHA1}"),
            format!("v1.0.0@sha1:{SHA1}"),
            format!("refs/heads/main@sha1:{SHA1}"),
            format!("sha1:{SHA1}"),
            format!("sha256:{SHA256}"),
        ] {
            assert_eq!(Revision::parse(&rev).to_string(), rev);
        }
    }

    #[test]
    fn legacy_forms_transform_like_flux() {
        assert_eq!(
            transform_legacy(&format!("main/{SHA1}")),
            format!("main@sha1:{SHA1}")
        );
        assert_eq!(
            transform_legacy(&format!("feature/x/{SHA1}")),
            format!("feature/x@sha1:{SHA1}")
        );
        assert_eq!(transform_legacy(&format!("HEAD/{SHA1}")), format!("sha1:{SHA1}"));
        assert_eq!(transform_legacy(SHA1), format!("sha1:{SHA1}"));
        assert_eq!(transform_legacy(SHA256), format!("sha256:{SHA256}"));
        // not a hash: unchanged
        assert_eq!(transform_legacy("main/notahash"), "main/notahash");
        assert_eq!(transform_legacy(""), "");
        // current form: unchanged
        assert_eq!(
            transform_legacy(&format!("main@sha1:{SHA1}")),
            format!("main@sha1:{SHA1}")
        );
    }

    #[test]
    fn extract_hash_takes_text_after_last_colon() {
        assert_eq!(extract_hash(&format!("main@sha1:{SHA1}")), SHA1);
        assert_eq!(extract_hash(&format!("main/{SHA1}")), SHA1);
        assert_eq!(extract_hash(&format!("sha256:{SHA256}")), SHA256);
        assert_eq!(extract_hash("opaque"), "opaque");
    }

    #[test]
    fn unrecognised_revisions_keep_their_text() {
        let r = Revision::parse("something-else");
        assert_eq!((r.algorithm.as_deref(), r.hash.as_deref()), (None, None));
        assert_eq!(r.to_string(), "something-else");
    }

    #[test]
    fn short_ref_strips_two_segments() {
        assert_eq!(short_ref("refs/heads/main"), "main");
        assert_eq!(short_ref("refs/heads/feature/x"), "feature/x");
        assert_eq!(short_ref("refs/tags/v1.0.0"), "v1.0.0");
        assert_eq!(short_ref("main"), "main");
        assert_eq!(short_ref("refs/heads/"), "refs/heads/");
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xab]), "000fab");
    }

    #[test]
    fn digests_are_checked() {
        assert_eq!(Digest::parse(&format!("sha256:{SHA256}")).unwrap().hex, SHA256);
        assert_eq!(
            Digest::parse(&format!("sha256:{SHA256}")).unwrap().to_string(),
            format!("sha256:{SHA256}")
        );
        assert!(matches!(Digest::parse("sha256"), Err(DigestError::Format(_))));
        assert!(matches!(
            Digest::parse("md5:abcd"),
            Err(DigestError::Algorithm(..))
        ));
        assert!(matches!(
            Digest::parse("sha256:abcd"),
            Err(DigestError::Encoding(..))
        ));
        assert!(matches!(
            Digest::parse(&format!("sha256:{}", SHA256.to_uppercase())),
            Err(DigestError::Encoding(..))
        ));
    }
}
