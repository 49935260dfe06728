//! Who is asking: the role of a request.
//!
//! - [`Auth::Local`] (`kluctl webui run` on a workstation): the server acts with the user's own
//!   kubeconfig and listens on loopback, so every caller is an admin, as with `kubectl`.
//! - [`Auth::Passwords`] (in-cluster): the static `admin-password` / `viewer-password` of a
//!   Secret (Kluctl's `webui-secret`). A login (`POST /auth/login`) returns a session cookie
//!   signed with HMAC-SHA256 under a key made at start (sessions end with the process, or after
//!   [`SESSION_HOURS`]); API clients may send HTTP basic auth (`admin` / `viewer` as user name)
//!   instead. Passwords are compared in constant time and never logged.
//!
//! Cross-site requests: the cookie is `SameSite=Strict` and every action must carry the
//! [`ACTION_HEADER`] header, which a cross-site form cannot set.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::view::Role;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kluctl-webui-session";

/// Sessions last this long.
pub const SESSION_HOURS: i64 = 12;

/// The header every action request must carry (its value is not checked).
pub const ACTION_HEADER: &str = "x-kluctl-webui";

/// How callers are authenticated.
pub enum Auth {
    /// Everyone is an admin (local use with the user's kubeconfig).
    Local,
    /// Static passwords; a role whose password is `None` cannot log in.
    Passwords {
        /// The admin password.
        admin: Option<String>,
        /// The viewer password.
        viewer: Option<String>,
        /// The session signing key.
        key: [u8; 32],
    },
}

/// A fresh random signing key (from the OS's random source, through two v4 UUIDs).
pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    }
}

fn parse_role(name: &str) -> Option<Role> {
    match name {
        "admin" => Some(Role::Admin),
        "viewer" => Some(Role::Viewer),
        _ => None,
    }
}

fn sign(key: &[u8; 32], payload: &str) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(payload.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn password_matches(expected: Option<&String>, given: &str) -> bool {
    expected.is_some_and(|p| !p.is_empty() && bool::from(p.as_bytes().ct_eq(given.as_bytes())))
}

impl Auth {
    /// Whether logging in is needed at all.
    pub fn needs_login(&self) -> bool {
        matches!(self, Self::Passwords { .. })
    }

    /// The role `user` gets with `password`, if it matches.
    pub fn login(&self, user: &str, password: &str) -> Option<Role> {
        match self {
            Self::Local => Some(Role::Admin),
            Self::Passwords { admin, viewer, .. } => match parse_role(user)? {
                Role::Admin => password_matches(admin.as_ref(), password).then_some(Role::Admin),
                Role::Viewer => password_matches(viewer.as_ref(), password).then_some(Role::Viewer),
            },
        }
    }

    /// A session cookie value for `role`, valid until `now + SESSION_HOURS`.
    pub fn session(&self, role: Role, now: i64) -> String {
        match self {
            Self::Local => String::new(),
            Self::Passwords { key, .. } => {
                let payload = format!("{}.{}", role_name(role), now + SESSION_HOURS * 3600);
                format!("{payload}.{}", sign(key, &payload))
            }
        }
    }

    /// The role of a session cookie value at `now`; `None` if forged, expired or malformed.
    pub fn check_session(&self, value: &str, now: i64) -> Option<Role> {
        let Self::Passwords { key, .. } = self else {
            return Some(Role::Admin);
        };
        let (payload, signature) = value.rsplit_once('.')?;
        let expected = sign(key, payload);
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return None;
        }
        let (role, expiry) = payload.split_once('.')?;
        (expiry.parse::<i64>().ok()? > now).then_some(())?;
        parse_role(role)
    }

    /// The role of a request from its `Cookie` and `Authorization` headers.
    pub fn role_of(&self, headers: &axum::http::HeaderMap, now: i64) -> Option<Role> {
        if !self.needs_login() {
            return Some(Role::Admin);
        }
        if let Some(role) = cookie(headers, SESSION_COOKIE).and_then(|v| self.check_session(&v, now)) {
            return Some(role);
        }
        let basic = headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        self.login(user, password)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn passwords() -> Auth {
        Auth::Passwords {
            admin: Some("admin-pw".to_owned()),
            viewer: Some("viewer-pw".to_owned()),
            key: random_key(),
        }
    }

    #[test]
    fn each_password_gives_its_role_and_nothing_else() {
        let auth = passwords();
        assert_eq!(auth.login("admin", "admin-pw"), Some(Role::Admin));
        assert_eq!(auth.login("viewer", "viewer-pw"), Some(Role::Viewer));
        assert_eq!(auth.login("admin", "viewer-pw"), None);
        assert_eq!(auth.login("viewer", "admin-pw"), None);
        assert_eq!(auth.login("root", "admin-pw"), None);
        assert_eq!(auth.login("admin", ""), None);
        let no_viewer = Auth::Passwords {
            admin: Some("a".to_owned()),
            viewer: None,
            key: random_key(),
        };
        assert_eq!(no_viewer.login("viewer", ""), None);
    }

    #[test]
    fn sessions_expire_and_cannot_be_forged_or_promoted() {
        let auth = passwords();
        let now = 1_000_000;
        let s = auth.session(Role::Viewer, now);
        assert_eq!(auth.check_session(&s, now + 10), Some(Role::Viewer));
        assert_eq!(auth.check_session(&s, now + SESSION_HOURS * 3600 + 1), None);
        let promoted = s.replacen("viewer", "admin", 1);
        assert_eq!(auth.check_session(&promoted, now), None);
        let other = passwords();
        assert_eq!(other.check_session(&s, now), None, "another process's key");
        assert_eq!(auth.check_session("garbage", now), None);
    }

    #[test]
    fn requests_carry_the_role_by_cookie_or_basic_auth() {
        let auth = passwords();
        let now = 5;
        let mut h = HeaderMap::new();
        assert_eq!(auth.role_of(&h, now), None);
        let cookie = format!("a=b; {SESSION_COOKIE}={}", auth.session(Role::Admin, now));
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(auth.role_of(&h, now), Some(Role::Admin));
        let mut h = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("viewer:viewer-pw");
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(auth.role_of(&h, now), Some(Role::Viewer));
        assert_eq!(Auth::Local.role_of(&HeaderMap::new(), now), Some(Role::Admin));
    }
}
