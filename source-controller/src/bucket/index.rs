//! The etag index of a bucket and the revision derived from it: the fetch step's pure core.
//!
//! ```text
//!  listing (key, etag) ──► EtagIndex (sorted by key bytes) ──► revision "sha256:<hex>"
//!                                     ▲
//!  downloads ── changed etag / vanished object ──┘ (revision recomputed after the downloads)
//! ```
//!
//! The revision is byte-compatible with Flux: for each key in byte-wise ascending order the line
//! `"<key> <etag>\n"` is hashed with sha256; an empty index hashes nothing.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// Object key → etag, in byte-wise key order (`String`'s `Ord` compares the UTF-8 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtagIndex {
    entries: BTreeMap<String, String>,
}

impl EtagIndex {
    /// An empty index.
    pub fn new() -> Self {
        EtagIndex::default()
    }

    /// Adds or replaces the etag of `key`.
    pub fn insert(&mut self, key: impl Into<String>, etag: impl Into<String>) {
        self.entries.insert(key.into(), etag.into());
    }

    /// Removes `key` (an object that vanished during the download).
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// The etag of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no object is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(key, etag)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The revision: `sha256:<hex>` over the lines `"<key> <etag>\n"` in key order.
    ///
    /// ```
    /// use source_controller::bucket::EtagIndex;
    /// let empty = EtagIndex::new();
    /// assert_eq!(
    ///     empty.revision(),
    ///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// );
    /// ```
    pub fn revision(&self) -> String {
        let mut h = Sha256::new();
        for (key, etag) in &self.entries {
            h.update(key.as_bytes());
            h.update(b" ");
            h.update(etag.as_bytes());
            h.update(b"\n");
        }
        format!("sha256:{}", gitops_api::revision::lower_hex(&h.finalize()))
    }
}

/// An S3 etag as Flux's index holds it: without the surrounding double quotes the HTTP header and
/// the XML listing carry.
pub fn s3_etag(raw: &str) -> String {
    raw.trim_matches('"').to_string()
}

/// An Azure etag as Flux's stored revision holds it: quoted, the way the download response header
/// carries it (`"0x8D..."`). The listing carries it unquoted; quoting it here makes the listing's
/// index equal the index Flux stores after downloading, so an unchanged container is not
/// downloaded again (Flux hex-encodes the listing etag and re-downloads every interval).
pub fn azure_etag(raw: &str) -> String {
    format!("\"{}\"", raw.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(bytes: &[u8]) -> String {
        gitops_api::revision::lower_hex(&Sha256::digest(bytes))
    }

    #[test]
    fn revision_hashes_sorted_lines_of_key_and_etag() {
        let mut idx = EtagIndex::new();
        idx.insert("b/two.yaml", "e2");
        idx.insert("a.yaml", "e1");
        idx.insert("B.yaml", "e3");
        let expected = sha256_hex(b"B.yaml e3\na.yaml e1\nb/two.yaml e2\n");
        assert_eq!(idx.revision(), format!("sha256:{expected}"));
    }

    #[test]
    fn keys_sort_by_bytes_not_by_locale() {
        let mut idx = EtagIndex::new();
        idx.insert("é.txt", "1");
        idx.insert("z.txt", "2");
        idx.insert("Z.txt", "3");
        let keys: Vec<&str> = idx.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["Z.txt", "z.txt", "é.txt"]);
    }

    #[test]
    fn replacing_and_removing_entries_changes_the_revision() {
        let mut idx = EtagIndex::new();
        idx.insert("a", "1");
        let before = idx.revision();
        idx.insert("a", "2");
        assert_ne!(idx.revision(), before);
        idx.remove("a");
        assert!(idx.is_empty());
        assert_eq!(idx.revision(), format!("sha256:{}", sha256_hex(b"")));
    }

    #[test]
    fn etags_are_normalised_per_provider() {
        assert_eq!(s3_etag("\"abc\""), "abc");
        assert_eq!(s3_etag("abc-2"), "abc-2");
        assert_eq!(azure_etag("0x8D1"), "\"0x8D1\"");
        assert_eq!(azure_etag("\"0x8D1\""), "\"0x8D1\"");
    }
}
