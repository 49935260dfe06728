//! Keeping secrets out of messages: every text a destination puts into an error (response bodies,
//! transport errors) passes through [`Masks::apply`], and addresses are shown as their origin only.
//!
//! A Provider address is itself often a credential (a Slack or Teams webhook URL carries its key
//! in the path; `https://user:pass@host/` carries a password), so messages name
//! `scheme://host[:port]` and never the path, query or userinfo.

use reqwest::Url;

/// Secret values (tokens, passwords, header values, the address) to replace with `***`.
#[derive(Clone, Default)]
pub(crate) struct Masks(Vec<String>);

/// Values shorter than this are not masked: replacing every `a` of a message because a password
/// is `a` would destroy the message while hiding nothing.
const MIN_MASKED_LEN: usize = 3;

impl Masks {
    /// Adds a secret value (trimmed; short values are ignored).
    pub(crate) fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.len() >= MIN_MASKED_LEN && !self.0.iter().any(|v| v == value) {
            self.0.push(value.to_string());
            // Longest first, so a secret that contains another is replaced whole.
            self.0.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// Adds the userinfo (user and password) of a URL.
    pub(crate) fn add_userinfo(&mut self, url: &Url) {
        if !url.username().is_empty() {
            self.add(url.username());
        }
        if let Some(password) = url.password() {
            self.add(password);
        }
    }

    /// `text` with every secret replaced by `***` and the userinfo of any URL in it removed.
    pub(crate) fn apply(&self, text: &str) -> String {
        let mut out = strip_userinfo(text);
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// `scheme://host[:port]` of a URL, the only part of an address messages show.
pub(crate) fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// `text` with `user[:password]@` removed from every `scheme://user:password@host` in it.
pub(crate) fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

pub(crate) use gitops_runtime::events::truncate;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_replace_secrets_longest_first_and_ignore_short_values() {
        let mut m = Masks::default();
        m.add("tok");
        m.add("token-1234");
        m.add("a");
        assert_eq!(m.apply("bad token-1234 and tok, a"), "bad *** and ***, a");
    }

    #[test]
    fn userinfo_is_removed_from_urls_in_text() {
        assert_eq!(
            strip_userinfo("post https://u:p%40ss@h.example:8443/x?y failed; http://h2/ ok"),
            "post https://h.example:8443/x?y failed; http://h2/ ok"
        );
        assert_eq!(strip_userinfo("no urls here"), "no urls here");
        let mut m = Masks::default();
        let url = Url::parse("https://flux:s3cret-pw@h/").expect("url");
        m.add_userinfo(&url);
        assert_eq!(m.apply("user flux, pw s3cret-pw"), "user ***, pw ***");
    }

    #[test]
    fn origin_drops_path_query_and_userinfo() {
        let url = Url::parse("https://u:p@hooks.example.com:8443/services/T/B/key?x=1").expect("url");
        assert_eq!(origin(&url), "https://hooks.example.com:8443");
        let url = Url::parse("https://hooks.slack.com/services/T/B/key").expect("url");
        assert_eq!(origin(&url), "https://hooks.slack.com");
    }

    #[test]
    fn truncate_cuts_on_a_char_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let t = truncate(&"é".repeat(100), 11);
        assert!(t.len() <= 11 && t.ends_with("..."), "{t}");
    }
}
