//! Who is asking: the role of a request.
//!
//! - [`Auth::Local`] (`kluctl webui run` on a workstation): the server acts with the user's own
//!   kubeconfig and listens on loopback, so every caller is an admin, as with `kubectl`.
//! - [`Auth::Login`] (in-cluster): callers log in, with one or both of
//!   - static passwords ([`Passwords`]): the `admin-password` / `viewer-password` of a Secret
//!     (Kluctl's `webui-secret`), sent to `POST /auth/login`, or as HTTP basic auth (`admin` /
//!     `viewer` as user name) by API clients. Compared in constant time, never logged.
//!   - OIDC ([`crate::oidc`]): the groups of the provider's ID token give the role.
//!
//!   Either way the browser gets a session cookie: role, user and expiry, signed with
//!   HMAC-SHA256 under a key made at start (sessions end with the process, or after
//!   [`SESSION_HOURS`]).
//!
//! Cookies and cross-site requests: the session cookie is `SameSite=Strict`. The page itself is
//! a static shell and everything else is fetched by its script, same-site, so the session need
//! not ride on the cross-site navigation back from the OIDC provider. The OIDC login-state
//! cookie must: it is `SameSite=Lax` (sent on top-level GET navigations), lives ten minutes,
//! is scoped to `PREFIX/auth` and only holds random values. Every action must also carry the
//! [`ACTION_HEADER`] header, which a cross-site form cannot set.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::oidc::Oidc;
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
    /// Callers log in with a password, through OIDC, or either.
    Login(Logins),
}

/// The logins of [`Auth::Login`]; at least one of `passwords` and `oidc` should be set.
pub struct Logins {
    /// Static passwords (`--auth-static-login-enabled`); `None`: off.
    pub passwords: Option<Passwords>,
    /// OIDC; `None`: off.
    pub oidc: Option<Box<Oidc>>,
    /// The session signing key.
    pub key: [u8; 32],
}

/// Static passwords; a role whose password is `None` cannot log in.
pub struct Passwords {
    /// The admin password.
    pub admin: Option<String>,
    /// The viewer password.
    pub viewer: Option<String>,
}

/// A caller with a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The role.
    pub role: Role,
    /// The user name (`admin` / `viewer` for passwords, the user claim for OIDC).
    pub user: String,
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

/// The HMAC-SHA256 of `payload` under `key`, base64url.
pub(crate) fn sign(key: &[u8; 32], payload: &str) -> String {
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
        matches!(self, Self::Login(_))
    }

    /// Whether password logins are on.
    pub fn static_login(&self) -> bool {
        matches!(
            self,
            Self::Login(Logins {
                passwords: Some(_),
                ..
            })
        )
    }

    /// The OIDC provider, if OIDC logins are on.
    pub fn oidc(&self) -> Option<&Oidc> {
        match self {
            Self::Login(l) => l.oidc.as_deref(),
            Self::Local => None,
        }
    }

    /// The session signing key (`None` locally).
    pub fn key(&self) -> Option<&[u8; 32]> {
        match self {
            Self::Login(l) => Some(&l.key),
            Self::Local => None,
        }
    }

    /// The role `user` gets with `password`, if it matches (never with password logins off).
    pub fn login(&self, user: &str, password: &str) -> Option<Role> {
        match self {
            Self::Local => Some(Role::Admin),
            Self::Login(Logins { passwords: None, .. }) => None,
            Self::Login(Logins {
                passwords: Some(Passwords { admin, viewer }),
                ..
            }) => match parse_role(user)? {
                Role::Admin => password_matches(admin.as_ref(), password).then_some(Role::Admin),
                Role::Viewer => password_matches(viewer.as_ref(), password).then_some(Role::Viewer),
            },
        }
    }

    /// A session cookie value for `user` with `role`, valid until `now + SESSION_HOURS`.
    pub fn session(&self, role: Role, user: &str, now: i64) -> String {
        let Some(key) = self.key() else {
            return String::new();
        };
        let user = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user);
        let payload = format!("{}.{}.{user}", role_name(role), now + SESSION_HOURS * 3600);
        format!("{payload}.{}", sign(key, &format!("session.{payload}")))
    }

    /// The caller of a session cookie value at `now`; `None` if forged, expired or malformed.
    pub fn check_session(&self, value: &str, now: i64) -> Option<Caller> {
        let Some(key) = self.key() else {
            return Some(local_caller());
        };
        let (payload, signature) = value.rsplit_once('.')?;
        let expected = sign(key, &format!("session.{payload}"));
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return None;
        }
        let mut parts = payload.split('.');
        let (Some(role), Some(expiry), Some(user), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        (expiry.parse::<i64>().ok()? > now).then_some(())?;
        let user = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(user)
            .ok()?;
        Some(Caller {
            role: parse_role(role)?,
            user: String::from_utf8(user).ok()?,
        })
    }

    /// The role of a request from its `Cookie` and `Authorization` headers.
    pub fn role_of(&self, headers: &axum::http::HeaderMap, now: i64) -> Option<Role> {
        self.caller_of(headers, now).map(|c| c.role)
    }

    /// The caller of a request from its `Cookie` and `Authorization` headers.
    pub fn caller_of(&self, headers: &axum::http::HeaderMap, now: i64) -> Option<Caller> {
        if !self.needs_login() {
            return Some(local_caller());
        }
        if let Some(caller) = cookie(headers, SESSION_COOKIE).and_then(|v| self.check_session(&v, now)) {
            return Some(caller);
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
        self.login(user, password).map(|role| Caller {
            role,
            user: user.to_owned(),
        })
    }
}

fn local_caller() -> Caller {
    Caller {
        role: Role::Admin,
        user: "local".to_owned(),
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
        Auth::Login(Logins {
            passwords: Some(Passwords {
                admin: Some("admin-pw".to_owned()),
                viewer: Some("viewer-pw".to_owned()),
            }),
            oidc: None,
            key: random_key(),
        })
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
        let no_viewer = Auth::Login(Logins {
            passwords: Some(Passwords {
                admin: Some("a".to_owned()),
                viewer: None,
            }),
            oidc: None,
            key: random_key(),
        });
        assert_eq!(no_viewer.login("viewer", ""), None);
        let oidc_only = Auth::Login(Logins {
            passwords: None,
            oidc: None,
            key: random_key(),
        });
        assert_eq!(oidc_only.login("admin", "admin-pw"), None, "password logins off");
        assert!(!oidc_only.static_login());
    }

    #[test]
    fn sessions_expire_and_cannot_be_forged_or_promoted() {
        let auth = passwords();
        let now = 1_000_000;
        let s = auth.session(Role::Viewer, "jane@example.com", now);
        let caller = auth.check_session(&s, now + 10);
        assert_eq!(caller.as_ref().map(|c| c.role), Some(Role::Viewer));
        assert_eq!(caller.map(|c| c.user).as_deref(), Some("jane@example.com"));
        assert_eq!(auth.check_session(&s, now + SESSION_HOURS * 3600 + 1), None);
        let promoted = s.replacen("viewer", "admin", 1);
        assert_eq!(auth.check_session(&promoted, now), None);
        let original = auth.session(Role::Admin, "a", now);
        let renamed = original.replacen(".YQ.", ".Yg.", 1);
        assert_ne!(renamed, original);
        assert!(auth.check_session(&original, now).is_some());
        assert_eq!(auth.check_session(&renamed, now), None, "another user name");
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
        let cookie = format!(
            "a=b; {SESSION_COOKIE}={}",
            auth.session(Role::Admin, "admin", now)
        );
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
