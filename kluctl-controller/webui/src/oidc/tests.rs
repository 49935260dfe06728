//! ID token checks, role mapping and the login-state cookie, with keys generated in-process.

use super::*;
use aws_lc_rs::encoding::AsDer as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const ISSUER: &str = "https://idp.example.com/realms/main";
const CLIENT: &str = "kluctl-webui";
const JWKS: &str = "https://idp.example.com/realms/main/certs";

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: the content of its OCTET STRING,
/// the third element of the outer SEQUENCE. jsonwebtoken's aws-lc backend signs RSA with PKCS#1.
fn pkcs1_of_pkcs8(der: &[u8]) -> &[u8] {
    // (tag, header length, content length) of the DER element at `at`.
    fn element(der: &[u8], at: usize) -> (u8, usize, usize) {
        let first = der[at + 1];
        if first < 0x80 {
            return (der[at], 2, usize::from(first));
        }
        let n = usize::from(first & 0x7f);
        let len = der[at + 2..at + 2 + n]
            .iter()
            .fold(0, |acc, b| (acc << 8) | usize::from(*b));
        (der[at], 2 + n, len)
    }
    let (tag, outer_header, _) = element(der, 0);
    assert_eq!(tag, 0x30, "a SEQUENCE");
    let mut at = outer_header;
    for _ in 0..2 {
        let (_, h, l) = element(der, at);
        at += h + l;
    }
    let (tag, h, l) = element(der, at);
    assert_eq!(tag, 0x04, "an OCTET STRING");
    &der[at + h..at + h + l]
}

fn rsa_key(kid: &str) -> (EncodingKey, Jwk) {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = pair.as_der().unwrap();
    let key = EncodingKey::from_rsa_der(pkcs1_of_pkcs8(pkcs8.as_ref()));
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (key, jwk)
}

fn ec_key(kid: &str) -> (EncodingKey, Jwk) {
    let pair =
        aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .unwrap();
    let key = EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (key, jwk)
}

fn claims(now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "u-1",
        "exp": now + 300,
        "iat": now,
        "nonce": "n-123",
        "email": "jane@example.com",
        "groups": ["devs", "ops"],
    })
}

fn token(key: &EncodingKey, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: "n-123",
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn invalid_kind(r: Result<Map<String, Value>, TokenError>) -> jsonwebtoken::errors::ErrorKind {
    match r {
        Err(TokenError::Invalid(e)) => e.kind().clone(),
        other => panic!("expected an invalid-token error, got {other:?}"),
    }
}

#[test]
fn a_good_token_verifies_with_rs256_and_es256() {
    let (rsa, rsa_jwk) = rsa_key("r1");
    let (ec, ec_jwk) = ec_key("e1");
    let keys = JwkSet {
        keys: vec![rsa_jwk, ec_jwk],
    };
    let c = verify_id_token(
        &token(&rsa, Algorithm::RS256, "r1", &claims(now())),
        &keys,
        JWKS,
        expected(),
    )
    .unwrap();
    assert_eq!(c["email"], "jane@example.com");
    let c = verify_id_token(
        &token(&ec, Algorithm::ES256, "e1", &claims(now())),
        &keys,
        JWKS,
        expected(),
    )
    .unwrap();
    assert_eq!(c["sub"], "u-1");
}

#[test]
fn wrong_issuer_audience_or_expiry_are_refused() {
    use jsonwebtoken::errors::ErrorKind;
    let (key, jwk) = rsa_key("k");
    let keys = JwkSet { keys: vec![jwk] };
    let verify = |c: &Value| verify_id_token(&token(&key, Algorithm::RS256, "k", c), &keys, JWKS, expected());

    let mut c = claims(now());
    c["iss"] = json!("https://evil.example.com");
    assert_eq!(invalid_kind(verify(&c)), ErrorKind::InvalidIssuer);

    let mut c = claims(now());
    c["aud"] = json!(["another-client"]);
    assert_eq!(invalid_kind(verify(&c)), ErrorKind::InvalidAudience);

    let mut c = claims(now());
    c["aud"] = json!(["another-client", CLIENT]);
    c["azp"] = json!("another-client");
    assert!(matches!(verify(&c), Err(TokenError::AuthorizedParty(p)) if p == "another-client"));

    let mut c = claims(now());
    c["exp"] = json!(now() - 3600);
    assert_eq!(invalid_kind(verify(&c)), ErrorKind::ExpiredSignature);

    let mut c = claims(now());
    c.as_object_mut().unwrap().remove("aud");
    assert!(matches!(invalid_kind(verify(&c)), ErrorKind::MissingRequiredClaim(n) if n == "aud"));
}

#[test]
fn a_wrong_or_missing_nonce_is_refused() {
    let (key, jwk) = rsa_key("k");
    let keys = JwkSet { keys: vec![jwk] };
    let mut c = claims(now());
    c["nonce"] = json!("n-other");
    let t = token(&key, Algorithm::RS256, "k", &c);
    assert!(matches!(
        verify_id_token(&t, &keys, JWKS, expected()),
        Err(TokenError::Nonce)
    ));
    c.as_object_mut().unwrap().remove("nonce");
    let t = token(&key, Algorithm::RS256, "k", &c);
    assert!(matches!(
        verify_id_token(&t, &keys, JWKS, expected()),
        Err(TokenError::Nonce)
    ));
}

#[test]
fn a_bad_signature_or_an_unknown_key_is_refused() {
    use jsonwebtoken::errors::ErrorKind;
    let (key, jwk) = rsa_key("k");
    let (other, _) = rsa_key("k");
    let keys = JwkSet { keys: vec![jwk] };
    // Signed by another key under the same kid.
    let forged = token(&other, Algorithm::RS256, "k", &claims(now()));
    assert_eq!(
        invalid_kind(verify_id_token(&forged, &keys, JWKS, expected())),
        ErrorKind::InvalidSignature
    );
    // Claims changed after signing.
    let good = token(&key, Algorithm::RS256, "k", &claims(now()));
    let mut c = claims(now());
    c["groups"] = json!(["admins"]);
    let swapped_claims = token(&other, Algorithm::RS256, "k", &c);
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let body = swapped_claims.split('.').nth(1).unwrap();
    let tampered = format!("{head}.{body}.{sig}");
    assert_eq!(
        invalid_kind(verify_id_token(&tampered, &keys, JWKS, expected())),
        ErrorKind::InvalidSignature
    );
    // A kid the key set does not hold.
    let unknown = token(&key, Algorithm::RS256, "rotated", &claims(now()));
    match verify_id_token(&unknown, &keys, JWKS, expected()) {
        Err(TokenError::UnknownKey { kid, url }) => {
            assert_eq!(kid.as_deref(), Some("rotated"));
            assert_eq!(url, JWKS);
        }
        other => panic!("expected an unknown key, got {other:?}"),
    }
}

#[test]
fn symmetric_algorithms_and_mismatched_keys_are_refused() {
    // A token "signed" with HS256 using a public key as the secret: the classic confusion.
    let hs = jsonwebtoken::encode(
        &Header {
            kid: Some("k".to_owned()),
            ..Header::new(Algorithm::HS256)
        },
        &claims(now()),
        &EncodingKey::from_secret(b"public").unwrap(),
    )
    .unwrap();
    let (_, jwk) = rsa_key("k");
    let keys = JwkSet { keys: vec![jwk] };
    assert!(matches!(
        verify_id_token(&hs, &keys, JWKS, expected()),
        Err(TokenError::Algorithm(Algorithm::HS256))
    ));
    // An ES256 token whose kid names an RSA key.
    let (ec, _) = ec_key("k");
    let t = token(&ec, Algorithm::ES256, "k", &claims(now()));
    assert!(matches!(
        verify_id_token(&t, &keys, JWKS, expected()),
        Err(TokenError::KeyMismatch { .. })
    ));
}

#[test]
fn groups_map_to_roles_admin_first() {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let admins = s(&["kluctl-admins"]);
    let viewers = s(&["kluctl-viewers", "devs"]);
    assert_eq!(
        role_for(&s(&["devs", "kluctl-admins"]), &admins, &viewers),
        Some(Role::Admin)
    );
    assert_eq!(role_for(&s(&["devs"]), &admins, &viewers), Some(Role::Viewer));
    assert_eq!(role_for(&s(&["ops"]), &admins, &viewers), None);
    assert_eq!(role_for(&[], &admins, &viewers), None);
    assert_eq!(
        role_for(&s(&["Kluctl-Admins"]), &admins, &viewers),
        None,
        "names match exactly"
    );
}

#[test]
fn user_and_groups_come_from_the_configured_claims() {
    let c = claims(now());
    let c = c.as_object().unwrap();
    let (user, groups) = user_and_groups(c, "email", "groups").unwrap();
    assert_eq!(user, "jane@example.com");
    assert_eq!(groups, ["devs", "ops"]);
    let (_, groups) = user_and_groups(c, "sub", "roles").unwrap();
    assert!(groups.is_empty(), "a missing group claim is no groups");
    let err = user_and_groups(c, "preferred_username", "groups").unwrap_err();
    assert!(err.to_string().contains("\"preferred_username\""), "{err}");
    let err = user_and_groups(c, "email", "sub").unwrap_err();
    assert!(err.to_string().contains("not a list of strings"), "{err}");
}

#[test]
fn login_state_cookies_cannot_be_forged_reused_elsewhere_or_kept() {
    let key = random_key();
    let now = 1_000_000;
    let login = LoginState::new(now);
    let sealed = login.seal(&key);
    assert_eq!(LoginState::open(&sealed, &key, now + 5).unwrap(), login);
    assert!(matches!(
        LoginState::open(&sealed, &key, now + LOGIN_STATE_SECONDS),
        Err(LoginError::StateInvalid)
    ));
    assert!(matches!(
        LoginState::open(&sealed, &random_key(), now),
        Err(LoginError::StateInvalid)
    ));
    let other_state = sealed.replacen(&login.state, &LoginState::new(now).state, 1);
    assert_ne!(other_state, sealed);
    assert!(matches!(
        LoginState::open(&other_state, &key, now),
        Err(LoginError::StateInvalid)
    ));
    let longer = sealed.replacen(
        &format!(".{}.", login.expires),
        &format!(".{}.", login.expires + 9999),
        1,
    );
    assert_ne!(longer, sealed);
    assert!(matches!(
        LoginState::open(&longer, &key, now),
        Err(LoginError::StateInvalid)
    ));
    assert!(matches!(
        LoginState::open("x", &key, now),
        Err(LoginError::StateInvalid)
    ));
    // A session cookie signed with the same key is no login state.
    let auth = crate::Auth::Login(crate::Logins {
        passwords: None,
        oidc: None,
        key,
    });
    let session = auth.session(Role::Admin, "a.b.c.d", now);
    assert!(matches!(
        LoginState::open(&session, &key, now),
        Err(LoginError::StateInvalid)
    ));
}

#[test]
fn the_pkce_challenge_is_the_s256_of_the_verifier() {
    // RFC 7636, appendix B.
    let login = LoginState {
        state: String::new(),
        nonce: String::new(),
        verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned(),
        expires: 0,
    };
    assert_eq!(login.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

fn config() -> OidcConfig {
    OidcConfig {
        issuer_url: ISSUER.to_owned(),
        display_name: "Keycloak".to_owned(),
        client_id: CLIENT.to_owned(),
        client_secret: ClientSecret::new("very-secret".to_owned()),
        redirect_url: "https://kluctl.example.com/ui/auth/callback".to_owned(),
        scopes: vec!["email".to_owned(), "groups".to_owned()],
        params: vec![("prompt".to_owned(), "login".to_owned())],
        user_claim: "email".to_owned(),
        group_claim: "groups".to_owned(),
        admins_groups: vec!["kluctl-admins".to_owned()],
        viewers_groups: vec![],
    }
}

#[test]
fn the_authorize_url_carries_pkce_state_nonce_openid_and_extra_params() {
    let oidc = Oidc {
        config: config(),
        discovery: Discovery {
            issuer: ISSUER.to_owned(),
            authorization_endpoint: format!("{ISSUER}/auth?kc_idp_hint=x"),
            token_endpoint: format!("{ISSUER}/token"),
            jwks_uri: JWKS.to_owned(),
            token_endpoint_auth_methods_supported: None,
        },
        client_auth: ClientAuth::Basic,
        http: reqwest::Client::new(),
        keys: Mutex::new(JwkSet { keys: vec![] }),
    };
    let login = LoginState::new(now());
    let url = url::Url::parse(&oidc.authorize_url(&login)).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["kc_idp_hint"], "x", "the endpoint's own query stays");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["redirect_uri"], "https://kluctl.example.com/ui/auth/callback");
    assert_eq!(q["scope"], "openid email groups");
    assert_eq!(q["state"], login.state);
    assert_eq!(q["nonce"], login.nonce);
    assert_eq!(q["code_challenge"], login.challenge());
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["prompt"], "login");
    assert!(!url.as_str().contains("very-secret"));
    assert!(oidc.secure());
    assert!(
        !format!("{oidc:?}").contains("very-secret"),
        "Debug redacts the secret"
    );
}

#[test]
fn redirect_urls_must_end_with_a_callback_path() {
    assert!(check_redirect_url("https://k.example.com/auth/callback").is_ok());
    assert!(check_redirect_url("https://k.example.com/kluctl/auth/oidc/callback").is_ok());
    let err = check_redirect_url("https://k.example.com/callback").unwrap_err();
    assert!(err.to_string().contains("/auth/oidc/callback"), "{err}");
    assert!(check_redirect_url("/auth/callback").is_err(), "relative");
}

#[tokio::test]
async fn a_failing_discovery_names_the_issuer() {
    // Nothing listens on a port we bound and closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = config();
    c.issuer_url = format!("http://{addr}/realms/main");
    let err = Oidc::discover(c).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "http://{addr}/realms/main/.well-known/openid-configuration"
        )),
        "{text}"
    );
    assert!(text.contains("issuer"), "{text}");
}
