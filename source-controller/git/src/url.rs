//! Reading git URLs as text: the scheme class that decides which credentials apply, the user
//! name of the userinfo, and [`redact_url`], the one way a URL is shown in messages.
//!
//! ```text
//!   scheme://[user[:password]@]host[:port][/path][?query][#fragment]
//!            └──── userinfo ────┘└──── authority ends at the first '/', '?' or '#'
//! ```
//!
//! Only an `@` inside the authority separates userinfo from the host: `https://h:8080/a@b` has
//! no userinfo, its `@` is part of the path.

use std::fmt::Write as _;

/// The URL scheme classes that decide which credentials apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
    Ssh,
    Git,
}

impl Scheme {
    /// The scheme of a `scheme://` URL, when it is one of the four git transports.
    pub(crate) fn of(url: &str) -> Option<Scheme> {
        let (scheme, _) = url.split_once("://")?;
        match scheme.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            "ssh" => Some(Scheme::Ssh),
            "git" => Some(Scheme::Git),
            _ => None,
        }
    }

    pub(crate) fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
    }
}

/// Splits `scheme://authority rest` at the end of the authority; `None` without `://`.
///
/// The authority ends at the first `/` for every scheme, also where http would end it at `?` or
/// `#`: a password may hold a raw `?` or `#` (gix reads ssh:// and git:// userinfo that way), and
/// for redaction reading too much as userinfo is safe while reading too little leaks it.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    Some((scheme, authority, tail))
}

/// The user name in the URL's userinfo, if any.
pub(crate) fn url_username(url: &str) -> Option<String> {
    let (_, authority, _) = split_authority(url)?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let user = userinfo.split(':').next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// The URL with the password of its userinfo removed, for messages: `https://user:pw@host/r`
/// becomes `https://user@host/r`. Everything after the host (port, path, query) stays as it is,
/// `@` included; text without `scheme://` (SCP-like `git@host:path`, local paths) carries no
/// password and is returned unchanged.
///
/// ```
/// use gitops_git::redact_url;
///
/// assert_eq!(redact_url("https://flux:s3cret@example.com/r.git"), "https://flux@example.com/r.git");
/// assert_eq!(redact_url("https://h:8080/a@b"), "https://h:8080/a@b");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, authority, tail)) = split_authority(url) else {
        return url.to_string();
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if user.is_empty() {
                format!("{scheme}://{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        _ => url.to_string(),
    }
}

/// `s` with every byte but RFC 3986's unreserved characters percent-encoded.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_drops_the_password_of_the_userinfo_only() {
        for (url, shown) in [
            (
                "https://user:pw@example.com/a/b.git",
                "https://user@example.com/a/b.git",
            ),
            (
                "http://u:p%40ss@127.0.0.1:8080/r.git",
                "http://u@127.0.0.1:8080/r.git",
            ),
            ("https://:token@example.com/r.git", "https://example.com/r.git"),
            ("https://u:pw@example.com", "https://u@example.com"),
            ("https://u:pw@example.com?x=1", "https://u@example.com?x=1"),
            // No password: nothing to remove.
            ("ssh://git@example.com:22/a.git", "ssh://git@example.com:22/a.git"),
            ("https://example.com/r.git", "https://example.com/r.git"),
            // An `@` after the host belongs to the path, query or fragment.
            ("https://h:8080/a@b", "https://h:8080/a@b"),
            ("http://example.com/x@y", "http://example.com/x@y"),
            ("https://h/a:b@c", "https://h/a:b@c"),
            // A password with a raw `?` or `#` is still removed (gix reads ssh:// userinfo up
            // to the `@`); the price is that a query straight after the host, without a path,
            // loses a `:...` part before an `@`: over-redacting is safe, leaking is not.
            ("ssh://git:pa#ss@h/r", "ssh://git@h/r"),
            ("git://u:pa?ss@h/r", "git://u@h/r"),
            ("https://u:pa#ss@h/r", "https://u@h/r"),
            ("https://h?a=b:c@d", "https://h?a=b@d"),
            ("https://u:pw@h:8080/a@b", "https://u@h:8080/a@b"),
            // Not `scheme://`: returned as is.
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn the_user_name_comes_from_the_authority_only() {
        assert_eq!(
            url_username("http://flux@example.com/r.git").as_deref(),
            Some("flux")
        );
        assert_eq!(
            url_username("http://flux:pw@example.com/r.git").as_deref(),
            Some("flux")
        );
        assert_eq!(url_username("https://h:8080/a@b"), None);
        assert_eq!(url_username("https://example.com/r.git"), None);
    }

    #[test]
    fn schemes_are_classified_case_insensitively() {
        assert_eq!(Scheme::of("HTTPS://h/r"), Some(Scheme::Https));
        assert_eq!(Scheme::of("ssh://h/r"), Some(Scheme::Ssh));
        assert_eq!(Scheme::of("ftp://h/r"), None);
        assert_eq!(Scheme::of("git@h:r"), None);
    }
}
