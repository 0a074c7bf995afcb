//! Scenarios of the status page's gate: Access tokens signed with a key pair made
//! here and checked by a native RS256 verifier against a strict keys endpoint; the
//! sign-in form's cookie and CSRF tokens; the rate limit on the real migrations.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::access::{self, AccessConfig, AccessError, Jwk, Jwks, KeyLookup, KeysCopy, RsaVerifier};
use super::limit::{self, Attempt, SignInLimits};
use super::session::{self, Hmac, PageKey, Session};
use super::signin::{location, safe_next};
use super::*;
use crate::http::HttpResponse;
use crate::testing::{block_on, FakeHttp, MemoryKv, SqliteSql};

const TEAM: &str = "e2e-team.cloudflareaccess.com";
const AUD: &str = "aud-tag-1234";
const CERTS: &str = "https://e2e-team.cloudflareaccess.com/cdn-cgi/access/certs";
/// 2026-12-04 02:00:00 UTC.
const NOW: Timestamp = Timestamp::from_millis(1_796_349_600_000);
const NOW_S: i64 = 1_796_349_600;

// ---- doubles ------------------------------------------------------------------

/// RS256 verification with RustCrypto, as WebCrypto does it in the Worker.
struct NativeVerifier;

impl RsaVerifier for NativeVerifier {
    async fn verify_rs256(&self, key: &Jwk, data: &[u8], signature: &[u8]) -> Result<bool, String> {
        let public = RsaPublicKey::new(
            BigUint::from_bytes_be(&key.modulus()),
            BigUint::from_bytes_be(&key.exponent()),
        )
        .map_err(|e| e.to_string())?;
        let digest = Sha256::digest(data);
        Ok(public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
            .is_ok())
    }
}

/// HMAC-SHA256 with RustCrypto, as WebCrypto does it in the Worker.
struct NativeHmac;

impl Hmac for NativeHmac {
    async fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

/// Two key pairs, made once per test run.
fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
    static KEYS: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand_core::OsRng;
        (
            RsaPrivateKey::new(&mut rng, 2048).expect("key a"),
            RsaPrivateKey::new(&mut rng, 2048).expect("key b"),
        )
    })
}

fn jwk(kid: &str, key: &RsaPrivateKey) -> Value {
    let public = key.to_public_key();
    json!({
        "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    })
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A compact JWS of `claims` under `header`, signed RS256 with `key`.
fn sign(header: Value, claims: Value, key: &RsaPrivateKey) -> String {
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn claims() -> Value {
    json!({
        "aud": [AUD], "iss": format!("https://{TEAM}"), "email": "Ops@Example.com",
        "sub": "7c5e-user", "iat": NOW_S - 60, "nbf": NOW_S - 60, "exp": NOW_S + 3600,
        "type": "app", "identity_nonce": "n0nce", "country": "NL",
    })
}

fn with(overrides: Value) -> Value {
    let mut c = claims();
    for (k, v) in overrides.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

fn token_a(claims: Value) -> String {
    sign(
        json!({"alg": "RS256", "kid": "a", "typ": "JWT"}),
        claims,
        &keys().0,
    )
}

fn config() -> AccessConfig {
    AccessConfig::from_settings(
        Some(TEAM.into()),
        Some(AUD.into()),
        None,
        Some("ops@example.com, lead@example.com".into()),
        &mut Vec::new(),
    )
    .expect("valid")
    .expect("on")
}

/// A keys endpoint that serves what `doc` holds and refuses any other URL.
fn endpoint(doc: &Rc<RefCell<Value>>) -> FakeHttp {
    let doc = Rc::clone(doc);
    FakeHttp::routed(move |req| {
        assert_eq!(req.url, CERTS, "only the certs URL is fetched");
        Ok(HttpResponse::new(200, doc.borrow().to_string()))
    })
}

fn jwks(keys: &[Value]) -> Rc<RefCell<Value>> {
    Rc::new(RefCell::new(
        json!({ "keys": keys, "public_cert": {"kid": "a", "cert": "..."} }),
    ))
}

fn verify(
    token: &str,
    http: &FakeHttp,
    kv: &MemoryKv,
) -> Result<access::AccessIdentity, AccessError> {
    verify_at(token, http, kv, NOW)
}

fn verify_at(
    token: &str,
    http: &FakeHttp,
    kv: &MemoryKv,
    now: Timestamp,
) -> Result<access::AccessIdentity, AccessError> {
    block_on(access::verify(
        Some(token),
        &config(),
        http,
        kv,
        &NativeVerifier,
        now,
    ))
}

/// The keys' cache entry in `kv`: its text and TTL.
fn cached_keys(kv: &MemoryKv) -> (String, u64) {
    kv.map
        .borrow()
        .get(access::CERTS_CACHE_KEY)
        .cloned()
        .expect("cached")
}

// ---- Access ---------------------------------------------------------------------

#[test]
fn a_valid_access_token_names_its_email_and_its_keys_are_cached() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let http = endpoint(&doc);
    let kv = MemoryKv::default();
    let who = verify(&token_a(claims()), &http, &kv).expect("valid");
    assert_eq!(who.email, "Ops@Example.com");
    assert_eq!(who.sub.as_deref(), Some("7c5e-user"));
    assert!(
        who.operator,
        "listed in ACCESS_OPERATORS, whatever the case"
    );
    assert_eq!(http.calls(), vec![format!("GET {CERTS}")]);
    let (_, ttl) = cached_keys(&kv);
    assert_eq!(ttl, access::CERTS_TTL_SECONDS);

    // The next token is checked against the cached keys: no second fetch.
    let other = token_a(with(json!({"email": "dev@example.com", "aud": AUD})));
    let who = verify(&other, &http, &kv).expect("valid, aud as a string");
    assert!(!who.operator, "not listed");
    assert_eq!(http.calls().len(), 1);
}

#[test]
fn times_are_checked_with_a_minute_of_leeway() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let (http, kv) = (endpoint(&doc), MemoryKv::default());
    let expired = token_a(with(json!({"exp": NOW_S - 61})));
    assert_eq!(verify(&expired, &http, &kv), Err(AccessError::Expired));
    let just = token_a(with(json!({"exp": NOW_S - 30})));
    assert!(verify(&just, &http, &kv).is_ok(), "within the leeway");
    let early = token_a(with(json!({"nbf": NOW_S + 300})));
    assert_eq!(verify(&early, &http, &kv), Err(AccessError::NotYetValid));
    let future_iat = token_a(with(json!({"iat": NOW_S + 300})));
    assert_eq!(
        verify(&future_iat, &http, &kv),
        Err(AccessError::NotYetValid)
    );
    let no_exp = token_a(with(json!({"exp": null})));
    assert_eq!(
        verify(&no_exp, &http, &kv),
        Err(AccessError::Malformed("no exp claim"))
    );
}

#[test]
fn a_token_for_another_application_or_team_is_refused() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let (http, kv) = (endpoint(&doc), MemoryKv::default());
    let aud = token_a(with(json!({"aud": ["someone-else"]})));
    assert_eq!(verify(&aud, &http, &kv), Err(AccessError::WrongAud));
    let no_aud = token_a(with(json!({"aud": []})));
    assert_eq!(verify(&no_aud, &http, &kv), Err(AccessError::WrongAud));
    let iss = token_a(with(json!({"iss": "https://evil.cloudflareaccess.com"})));
    assert_eq!(verify(&iss, &http, &kv), Err(AccessError::WrongIss));
    // Refused on their claims alone: the keys endpoint was never asked.
    assert!(http.calls().is_empty());
    let no_email = token_a(with(json!({"email": null, "common_name": "svc.access"})));
    assert_eq!(verify(&no_email, &http, &kv), Err(AccessError::NoEmail));
}

#[test]
fn an_unknown_kid_refreshes_the_keys_once_then_is_refused() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let (http, kv) = (endpoint(&doc), MemoryKv::default());
    verify(&token_a(claims()), &http, &kv).expect("warms the cache");
    assert_eq!(http.calls().len(), 1);

    let unknown = sign(json!({"alg": "RS256", "kid": "b"}), claims(), &keys().1);
    assert_eq!(verify(&unknown, &http, &kv), Err(AccessError::UnknownKid));
    assert_eq!(http.calls().len(), 2, "exactly one refresh");

    // The team rotates to key b, half a minute on: the first token under it
    // refreshes and is let in.
    *doc.borrow_mut() = json!({"keys": [jwk("a", &keys().0), jwk("b", &keys().1)]});
    let later = NOW.plus_seconds(access::REFRESH_COOLDOWN_SECONDS);
    assert_eq!(
        verify_at(&unknown, &http, &kv, later).map(|w| w.email),
        Ok("Ops@Example.com".into())
    );
    assert_eq!(http.calls().len(), 3);
    assert!(
        verify_at(&unknown, &http, &kv, later).is_ok(),
        "now from the refreshed cache"
    );
    assert_eq!(http.calls().len(), 3);
}

#[test]
fn a_flood_of_invented_kids_costs_one_fetch_per_cooldown() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let (http, kv) = (endpoint(&doc), MemoryKv::default());
    verify(&token_a(claims()), &http, &kv).expect("warms the cache");
    let invented = |kid: &str| sign(json!({"alg": "RS256", "kid": kid}), claims(), &keys().1);
    let cooldown = access::REFRESH_COOLDOWN_SECONDS;
    for (s, kid) in (0..cooldown).zip(["x1", "x2", "x3"].iter().cycle()) {
        let at = NOW.plus_seconds(s);
        assert_eq!(
            verify_at(&invented(kid), &http, &kv, at),
            Err(AccessError::UnknownKid)
        );
    }
    assert_eq!(
        http.calls().len(),
        2,
        "the warm-up and one refresh in the half minute"
    );
    // A known kid is let in meanwhile, from the cache.
    assert!(verify_at(&token_a(claims()), &http, &kv, NOW.plus_seconds(10)).is_ok());
    assert_eq!(http.calls().len(), 2);

    // A rotation inside the cooldown waits for its end: then its first token refreshes.
    *doc.borrow_mut() = json!({"keys": [jwk("a", &keys().0), jwk("b", &keys().1)]});
    let rotated = invented("b");
    let end = NOW.plus_seconds(cooldown);
    assert_eq!(
        verify_at(&rotated, &http, &kv, end.minus_seconds(1)),
        Err(AccessError::UnknownKid)
    );
    assert_eq!(http.calls().len(), 2);
    assert!(verify_at(&rotated, &http, &kv, end).is_ok());
    assert_eq!(http.calls().len(), 3);
}

#[test]
fn keys_cached_in_the_older_layout_or_garbled_are_fetched_again() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    for text in [
        doc.borrow().to_string(),
        "garbage".into(),
        "12 ttl\n{".into(),
        "x kid\n{}".into(),
    ] {
        let (http, kv) = (endpoint(&doc), MemoryKv::default());
        kv.map.borrow_mut().insert(
            access::CERTS_CACHE_KEY.into(),
            (text, access::CERTS_TTL_SECONDS),
        );
        assert!(verify(&token_a(claims()), &http, &kv).is_ok());
        assert_eq!(http.calls().len(), 1);
        let (cached, _) = cached_keys(&kv);
        assert!(
            cached.starts_with(&format!("{} ttl\n{{", NOW.millis())),
            "{cached}"
        );
    }
}

#[test]
fn the_cache_rule_refreshes_only_a_copy_not_fetched_for_this_token_nor_cooling_down() {
    let keys = Jwks::parse(&json!({"keys": [jwk("a", &keys().0)]}).to_string()).expect("keys");
    let cached = |ago: i64, for_unknown_kid| KeysCopy::Cached {
        at: NOW.minus_seconds(ago),
        for_unknown_kid,
    };
    let cooldown = access::REFRESH_COOLDOWN_SECONDS;
    assert!(
        matches!(access::lookup(&keys, "a", KeysCopy::Fetched, NOW), KeyLookup::Found(k) if k.kid == "a")
    );
    assert!(matches!(
        access::lookup(&keys, "a", cached(0, true), NOW),
        KeyLookup::Found(_)
    ));
    assert_eq!(
        access::lookup(&keys, "b", KeysCopy::Fetched, NOW),
        KeyLookup::Refuse
    );
    assert_eq!(
        access::lookup(&keys, "b", cached(0, false), NOW),
        KeyLookup::Refresh
    );
    assert_eq!(
        access::lookup(&keys, "b", cached(cooldown - 1, true), NOW),
        KeyLookup::Refuse
    );
    assert_eq!(
        access::lookup(&keys, "b", cached(cooldown, true), NOW),
        KeyLookup::Refresh
    );
    // A copy stamped in the future (another isolate's clock) cools down until then.
    assert_eq!(
        access::lookup(&keys, "b", cached(-5, true), NOW),
        KeyLookup::Refuse
    );
}

#[test]
fn a_bad_signature_is_refused() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let (http, kv) = (endpoint(&doc), MemoryKv::default());
    // Signed by key b but claiming key a.
    let forged = sign(json!({"alg": "RS256", "kid": "a"}), claims(), &keys().1);
    assert_eq!(verify(&forged, &http, &kv), Err(AccessError::BadSignature));
    // A valid token whose claims were changed after signing.
    let good = token_a(claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let edited = b64(&with(json!({"email": "lead@example.com"})));
    parts[1] = &edited;
    assert_eq!(
        verify(&parts.join("."), &http, &kv),
        Err(AccessError::BadSignature)
    );
}

#[test]
fn only_rs256_is_taken() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let (http, kv) = (endpoint(&doc), MemoryKv::default());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "a"})),
        b64(&claims())
    );
    assert_eq!(verify(&none, &http, &kv), Err(AccessError::WrongAlg));
    let hs = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "HS256", "kid": "a"})),
        b64(&claims())
    );
    assert_eq!(verify(&hs, &http, &kv), Err(AccessError::WrongAlg));
    let no_alg = format!("{}.{}.c2ln", b64(&json!({"kid": "a"})), b64(&claims()));
    assert_eq!(verify(&no_alg, &http, &kv), Err(AccessError::WrongAlg));
    assert!(http.calls().is_empty());
}

#[test]
fn garbage_and_oversized_tokens_are_malformed_not_panics() {
    let (http, kv) = (FakeHttp::answering(Vec::new()), MemoryKv::default());
    let header = b64(&json!({"alg": "RS256", "kid": "a"}));
    let body = b64(&claims());
    for bad in [
        "x".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "***.***.***".to_owned(),
        format!("{header}.{body}"),
        format!("{header}.{body}.{}", "A".repeat(5)),
        format!("{}.{body}.c2ln", URL_SAFE_NO_PAD.encode("not json")),
        format!("{}.{body}.c2ln", URL_SAFE_NO_PAD.encode("[1,2]")),
        format!("{}.{body}.c2ln", b64(&json!({"alg": "RS256"}))),
        format!("{header}.{}.c2ln", URL_SAFE_NO_PAD.encode([0xff, 0xfe])),
        format!("{header}.{}.c2ln", b64(&with(json!({"aud": 5})))),
        format!("{header}.{}.c2ln", b64(&with(json!({"exp": "tomorrow"})))),
        format!("{header}.{body}="),
        format!("{header}.{body}.{}", "A".repeat(access::MAX_TOKEN_BYTES)),
    ] {
        assert!(
            matches!(verify(&bad, &http, &kv), Err(AccessError::Malformed(_))),
            "{bad:.60}"
        );
    }
    assert_eq!(
        block_on(access::verify(
            None,
            &config(),
            &http,
            &kv,
            &NativeVerifier,
            NOW
        )),
        Err(AccessError::Missing)
    );
    assert_eq!(
        block_on(access::verify(
            Some("  "),
            &config(),
            &http,
            &kv,
            &NativeVerifier,
            NOW
        )),
        Err(AccessError::Missing)
    );
    assert!(http.calls().is_empty());
}

proptest::proptest! {
    #[test]
    fn any_header_value_is_answered_without_a_panic(token in "[ -~]{0,300}") {
        let (http, kv) = (FakeHttp::answering(Vec::new()), MemoryKv::default());
        let _ = verify(&token, &http, &kv);
    }
}

#[test]
fn a_broken_keys_endpoint_is_our_fault_not_the_viewers() {
    let kv = MemoryKv::default();
    let down = FakeHttp::answering(vec![Ok(HttpResponse::new(502, "bad gateway"))]);
    let e = verify(&token_a(claims()), &down, &kv).expect_err("no keys");
    assert_eq!(
        e,
        AccessError::Keys("the keys endpoint answered 502".into())
    );
    assert!(e.is_internal());
    assert_eq!(Denied::Access(e).status(), 503);
    let junk = FakeHttp::answering(vec![Ok(HttpResponse::new(
        200,
        "{\"keys\":[{\"kty\":\"EC\"}]}",
    ))]);
    assert!(matches!(
        verify(&token_a(claims()), &junk, &kv),
        Err(AccessError::Keys(_))
    ));
    assert!(kv.map.borrow().is_empty(), "nothing unusable is cached");
    assert_eq!(Denied::Access(AccessError::BadSignature).status(), 403);
}

#[test]
fn no_refusal_repeats_the_token() {
    let token = token_a(with(json!({"aud": "other"})));
    let doc = jwks(&[jwk("a", &keys().0)]);
    let e = verify(&token, &endpoint(&doc), &MemoryKv::default()).expect_err("refused");
    let denied = Denied::Access(e);
    for text in [
        denied.message(),
        denied.log().unwrap_or_default(),
        denied.to_string(),
    ] {
        assert!(
            !text.contains(&token[..20]) && !text.contains("Ops@"),
            "{text}"
        );
    }
}

#[test]
fn access_settings_are_validated() {
    let mut problems = Vec::new();
    let parse = |t: Option<&str>, a: Option<&str>, c: Option<&str>, problems: &mut Vec<String>| {
        AccessConfig::from_settings(
            t.map(Into::into),
            a.map(Into::into),
            c.map(Into::into),
            Some("a@x.io, nope".into()),
            problems,
        )
    };
    assert_eq!(parse(None, None, None, &mut problems), Ok(None));
    let on = parse(
        Some("https://Team.cloudflareaccess.com/"),
        Some(AUD),
        None,
        &mut problems,
    )
    .expect("valid")
    .expect("on");
    assert_eq!(on.team_domain, "team.cloudflareaccess.com");
    assert_eq!(on.issuer(), "https://team.cloudflareaccess.com");
    assert_eq!(
        on.certs_url,
        "https://team.cloudflareaccess.com/cdn-cgi/access/certs"
    );
    assert_eq!(on.operators, vec!["a@x.io"]);
    assert_eq!(
        problems,
        vec!["ACCESS_OPERATORS: \"nope\" is not an email; left out"]
    );
    let fake = parse(
        Some(TEAM),
        Some(AUD),
        Some("http://127.0.0.1:9/certs"),
        &mut problems,
    );
    assert_eq!(
        fake.expect("valid").expect("on").certs_url,
        "http://127.0.0.1:9/certs"
    );
    for (team, aud, certs) in [
        (Some("not a host"), Some(AUD), None),
        (Some("team.example.com/path"), Some(AUD), None),
        (Some("localhost"), Some(AUD), None),
        (Some("-x.example.com"), Some(AUD), None),
        (Some(TEAM), None, None),
        (None, Some(AUD), None),
        (Some(TEAM), Some("has space"), None),
        (Some(TEAM), Some(AUD), Some("ftp://x")),
    ] {
        assert!(
            parse(team, aud, certs, &mut problems).is_err(),
            "{team:?} {aud:?} {certs:?}"
        );
    }
}

#[test]
fn a_misconfigured_access_closes_the_pages_and_shows_in_health() {
    let c = crate::config::Config::from_lookup(|k| match k {
        "ACCESS_TEAM_DOMAIN" => Some("not a host name".into()),
        "ACCESS_AUD" => Some(AUD.into()),
        "ADMIN_TOKEN" => Some("t".into()),
        _ => None,
    });
    assert!(matches!(
        gate(&c.access, c.admin_token.as_ref()),
        Gate::Misconfigured(_)
    ));
    assert_eq!(
        c.problems,
        vec!["ACCESS_TEAM_DOMAIN must be a host name such as myteam.cloudflareaccess.com; the status page is closed"]
    );
    let off = crate::config::Config::from_lookup(|_| None);
    assert_eq!(
        gate(&off.access, off.admin_token.as_ref()),
        Gate::Unconfigured
    );
}

// ---- the gate --------------------------------------------------------------------

fn ports<'a>(
    http: &'a FakeHttp,
    kv: &'a MemoryKv,
) -> AuthPorts<'a, FakeHttp, MemoryKv, NativeVerifier, NativeHmac> {
    AuthPorts {
        http,
        kv,
        verifier: &NativeVerifier,
        mac: &NativeHmac,
    }
}

fn creds<'a>(jwt: Option<&'a str>, cookie: Option<&'a str>) -> Credentials<'a> {
    Credentials {
        access_jwt: jwt,
        cookie,
        path: "/jobs/7?before=3",
    }
}

#[test]
fn an_access_viewer_gets_a_daily_csrf_token() {
    let doc = jwks(&[jwk("a", &keys().0)]);
    let (http, kv) = (endpoint(&doc), MemoryKv::default());
    let access = Ok(Some(config()));
    let token = token_a(claims());
    let look = |now| {
        block_on(viewer(
            gate(&access, None),
            &ports(&http, &kv),
            creds(Some(&token), None),
            now,
        ))
    };
    let v = look(NOW).expect("let in");
    assert_eq!((v.name.as_str(), v.operator), ("Ops@Example.com", true));
    assert!(session::csrf_ok(&v, Some(&v.csrf)));
    assert_eq!(look(NOW.plus_seconds(60)).expect("same day").csrf, v.csrf);
    let tomorrow = look(NOW.plus_seconds(86_400 - 7_200 + 10));
    // The token is still valid only for an hour; tomorrow it has expired.
    assert_eq!(tomorrow, Err(Denied::Access(AccessError::Expired)));
    let missing = block_on(viewer_of(&access, &http, &kv, None));
    assert_eq!(missing, Err(Denied::Access(AccessError::Missing)));
    assert_eq!(Denied::Access(AccessError::Missing).status(), 403);
}

async fn viewer_of(
    access: &Result<Option<AccessConfig>, String>,
    http: &FakeHttp,
    kv: &MemoryKv,
    jwt: Option<&str>,
) -> Result<Viewer, Denied> {
    viewer(gate(access, None), &ports(http, kv), creds(jwt, None), NOW).await
}

fn admin() -> Secret {
    Secret::new("admin-token-e2e")
}

/// Signs in with the right token and returns the cookie pair `name=value`.
fn signed_in(db: &SqliteSql, at: Timestamp) -> String {
    let outcome = block_on(sign_in(
        db,
        &NativeHmac,
        &admin(),
        "192.0.2.7",
        Some("admin-token-e2e"),
        Some("/jobs/7"),
        [7; 16],
        at,
    ))
    .expect("signs in");
    let SignedIn::Welcome { cookie, to } = outcome else {
        panic!("expected a welcome, got {outcome:?}");
    };
    assert_eq!(to, "/jobs/7");
    assert!(
        cookie.ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=43200"),
        "{cookie}"
    );
    cookie.split(';').next().expect("pair").to_owned()
}

fn form_viewer(cookie: Option<&str>, now: Timestamp) -> Result<Viewer, Denied> {
    let (http, kv) = (FakeHttp::answering(Vec::new()), MemoryKv::default());
    let token = admin();
    block_on(viewer(
        gate(&Ok(None), Some(&token)),
        &ports(&http, &kv),
        creds(None, cookie),
        now,
    ))
}

#[test]
fn the_sign_in_form_sets_a_session_that_lets_the_admin_in() {
    let db = SqliteSql::migrated();
    let cookie = signed_in(&db, NOW);
    let header = format!("theme=dark; {cookie}; other=1");
    let v = form_viewer(Some(&header), NOW.plus_seconds(3_600)).expect("signed in");
    assert_eq!((v.name.as_str(), v.operator), (ADMIN_NAME, true));
    assert!(session::csrf_ok(&v, Some(&v.csrf)));
    assert!(!session::csrf_ok(&v, Some("forged")));
    assert!(!session::csrf_ok(&v, None));
    assert!(!session::csrf_ok(&v, Some("")));
}

#[test]
fn no_wrong_or_old_session_is_let_in() {
    let db = SqliteSql::migrated();
    let cookie = signed_in(&db, NOW);
    let back = Denied::SignIn {
        next: "/jobs/7?before=3".into(),
    };
    assert_eq!(form_viewer(None, NOW), Err(back.clone()));
    assert_eq!(form_viewer(Some("theme=dark"), NOW), Err(back.clone()));
    // Expired: twelve hours later.
    assert_eq!(
        form_viewer(Some(&cookie), NOW.plus_seconds(43_200)),
        Err(back.clone())
    );
    // Tampered: the expiry pushed out, or one character of the MAC changed.
    let parts: Vec<&str> = cookie.split('.').collect();
    let later = (NOW_S + 10 * 43_200).to_string();
    let pushed = [parts[0], parts[1], &later, parts[3], parts[4]].join(".");
    assert_eq!(form_viewer(Some(&pushed), NOW), Err(back.clone()));
    let mut flipped = cookie.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    assert_eq!(form_viewer(Some(&flipped), NOW), Err(back.clone()));
    // Under another key: the admin token was rotated.
    let other = key_of(&Secret::new("rotated"));
    let foreign = block_on(Session::new([9; 16], NOW).cookie(&NativeHmac, &other)).expect("cookie");
    let foreign = foreign.split(';').next().expect("pair").to_owned();
    assert_eq!(form_viewer(Some(&foreign), NOW), Err(back.clone()));
    for junk in [
        "__Host-edge-session=",
        "__Host-edge-session=v1.1.2.3.4",
        "__Host-edge-session=v2....",
        "__Host-edge-session=v1.-5.9.00.x",
    ] {
        assert_eq!(form_viewer(Some(junk), NOW), Err(back.clone()), "{junk}");
    }
    assert_eq!(back.status(), 303);
}

fn key_of(token: &Secret) -> PageKey {
    block_on(PageKey::from_admin_token(&NativeHmac, token)).expect("key")
}

#[test]
fn a_csrf_token_belongs_to_one_session() {
    let key = key_of(&admin());
    let one = Session::new([1; 16], NOW);
    let two = Session::new([2; 16], NOW);
    let csrf = |s: &Session| block_on(s.csrf(&NativeHmac, &key)).expect("csrf");
    assert_eq!(csrf(&one), csrf(&one));
    assert_ne!(csrf(&one), csrf(&two));
    let viewer = Viewer {
        name: ADMIN_NAME.into(),
        operator: true,
        csrf: csrf(&one),
    };
    assert!(session::csrf_ok(&viewer, Some(&csrf(&one))));
    assert!(!session::csrf_ok(&viewer, Some(&csrf(&two))));
    // Access tokens: per person and per day.
    let access =
        |who: &str, day| block_on(session::access_csrf(&NativeHmac, &key, who, day)).expect("csrf");
    let today = session::day_of(NOW);
    assert_eq!(
        access("Ops@Example.com", today),
        access("ops@example.com", today)
    );
    assert_ne!(
        access("ops@example.com", today),
        access("lead@example.com", today)
    );
    assert_ne!(
        access("ops@example.com", today),
        access("ops@example.com", today + 1)
    );
}

#[test]
fn the_session_key_is_not_the_admin_token_and_never_prints() {
    let key = key_of(&admin());
    assert_eq!(format!("{key:?}"), "PageKey(***)");
    let cookie = block_on(Session::new([3; 16], NOW).cookie(&NativeHmac, &key)).expect("cookie");
    assert!(!cookie.contains("admin-token-e2e"));
    assert_ne!(key, key_of(&Secret::new("admin-token-e2f")));
}

#[test]
fn a_wrong_token_is_refused_and_counted() {
    let db = SqliteSql::migrated();
    let attempt = |token: &str| {
        block_on(sign_in(
            &db,
            &NativeHmac,
            &admin(),
            "198.51.100.4",
            Some(token),
            None,
            [0; 16],
            NOW,
        ))
    };
    assert_eq!(attempt("admin-token-e2"), Ok(SignedIn::Wrong));
    assert_eq!(attempt(""), Ok(SignedIn::Wrong));
    assert!(
        matches!(attempt("admin-token-e2e"), Ok(SignedIn::Welcome { ref to, .. }) if to == "/")
    );
}

#[test]
fn the_sixth_attempt_in_fifteen_minutes_is_refused_until_the_window_ends() {
    let db = SqliteSql::migrated();
    let limits = SignInLimits::new(&db);
    let at = |s: i64| NOW.plus_seconds(s);
    for i in 0..limit::MAX_ATTEMPTS {
        assert_eq!(
            block_on(limits.attempt("203.0.113.9", at(i * 10))),
            Ok(Attempt::Allowed)
        );
    }
    assert_eq!(
        block_on(limits.attempt("203.0.113.9", at(100))),
        Ok(Attempt::Refused {
            retry_after_seconds: 800
        })
    );
    // Another address is counted on its own.
    assert_eq!(
        block_on(limits.attempt("203.0.113.10", at(100))),
        Ok(Attempt::Allowed)
    );
    // Even the right token is refused while the window lasts.
    let right = block_on(sign_in(
        &db,
        &NativeHmac,
        &admin(),
        "203.0.113.9",
        Some("admin-token-e2e"),
        None,
        [0; 16],
        at(200),
    ));
    assert_eq!(
        right,
        Err(Denied::Limited {
            retry_after_seconds: 700
        })
    );
    assert_eq!(right.expect_err("limited").status(), 429);
    // Once it has ended the count starts again.
    assert_eq!(
        block_on(limits.attempt("203.0.113.9", at(900))),
        Ok(Attempt::Allowed)
    );
}

#[test]
fn signing_in_starts_the_count_again_and_prunes_old_rows() {
    let db = SqliteSql::migrated();
    let limits = SignInLimits::new(&db);
    for _ in 0..4 {
        block_on(limits.attempt("192.0.2.7", NOW)).expect("counted");
    }
    block_on(limits.attempt("192.0.2.99", NOW.minus_seconds(3 * 3_600))).expect("old");
    signed_in(&db, NOW);
    let rows: i64 = db
        .conn_for_tests()
        .query_row("SELECT COUNT(*) FROM signin_attempts", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        rows, 0,
        "the signed-in client's row and the stale one are gone"
    );
    for _ in 0..limit::MAX_ATTEMPTS {
        assert_eq!(
            block_on(limits.attempt("192.0.2.7", NOW)),
            Ok(Attempt::Allowed)
        );
    }
}

#[test]
fn the_sweep_forgets_clients_whose_window_ended_and_keeps_the_counting_ones() {
    let db = SqliteSql::migrated();
    let limits = SignInLimits::new(&db);
    let window = limit::WINDOW_SECONDS;
    // A client guessing from many addresses, none of which ever signs in.
    for i in 0..50 {
        block_on(limits.attempt(&format!("198.51.100.{i}"), NOW.minus_seconds(window + 1)))
            .expect("counted");
    }
    for _ in 0..=limit::MAX_ATTEMPTS {
        block_on(limits.attempt("192.0.2.7", NOW.minus_seconds(window - 60))).expect("counted");
    }
    assert_eq!(block_on(limits.prune(NOW)), Ok(50));
    let rows: i64 = db
        .conn_for_tests()
        .query_row("SELECT COUNT(*) FROM signin_attempts", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 1, "the client still in its window stays");
    assert!(
        matches!(
            block_on(limits.attempt("192.0.2.7", NOW)),
            Ok(Attempt::Refused { .. })
        ),
        "and is still refused until its window ends"
    );
}

#[test]
fn clients_are_addresses_and_ipv6_blocks() {
    assert_eq!(limit::client(Some("203.0.113.9")), "203.0.113.9");
    assert_eq!(
        limit::client(Some("2001:db8:1:2:3:4:5:6")),
        "2001:db8:1:2::/64"
    );
    assert_eq!(
        limit::client(Some("2001:db8:1:2::ffff")),
        "2001:db8:1:2::/64"
    );
    assert_eq!(limit::client(Some("::1")), "0:0:0:0::/64");
    assert_eq!(limit::client(Some("fe80::")), "fe80:0:0:0::/64");
    assert_eq!(limit::client(Some("::ffff:192.0.2.1")), "0:0:0:0::/64");
    for bad in [
        "nonsense",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1..2.3",
        "1:2::3::4",
        "12345::",
        "1:2:3:4:5:6:7:8:9",
        "g::1",
        "",
    ] {
        assert_eq!(limit::client(Some(bad)), "unknown", "{bad}");
    }
    assert_eq!(limit::client(None), "unknown");
}

// ---- the way back and the origin ------------------------------------------------------

#[test]
fn next_is_only_ever_a_path_of_this_site() {
    assert_eq!(safe_next(Some("/jobs/7?before=3")), "/jobs/7?before=3");
    assert_eq!(safe_next(Some("/apps/web%20app")), "/apps/web%20app");
    for evil in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "evil",
        "",
        "/a b",
        "/\u{0}x",
        "/jobs/\u{e9}",
        "/signin",
        "/signin?next=/",
        "/signout",
        "javascript:alert(1)",
    ] {
        assert_eq!(safe_next(Some(evil)), "/", "{evil:?}");
    }
    assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(2_000)))), "/");
    assert_eq!(safe_next(None), "/");
    assert_eq!(
        location("/jobs/7?before=3"),
        "/signin?next=/jobs/7%3Fbefore%3D3"
    );
    assert_eq!(location("/"), "/signin");
}

#[test]
fn a_request_url_splits_into_its_origin_and_the_page_asked_for() {
    use super::signin::split_url;
    let split = |u: &str| split_url(u);
    assert_eq!(
        split("https://Status.example.com/jobs/7?before=3#x"),
        (
            "https://status.example.com".into(),
            "/jobs/7?before=3".into()
        )
    );
    assert_eq!(
        split("http://127.0.0.1:8787/"),
        ("http://127.0.0.1:8787".into(), "/".into())
    );
    assert_eq!(
        split("http://127.0.0.1:8787"),
        ("http://127.0.0.1:8787".into(), "/".into())
    );
    assert_eq!(
        split("http://h.example?next=/a/b"),
        ("http://h.example".into(), "/?next=/a/b".into())
    );
    assert_eq!(split("garbage"), (String::new(), "/".into()));
}

#[test]
fn a_form_post_must_come_from_this_origin() {
    let own = "https://status.example.com";
    assert!(same_origin(Some("same-origin"), Some(own), own));
    assert!(!same_origin(Some("cross-site"), Some(own), own));
    assert!(!same_origin(Some("same-site"), None, own));
    assert!(same_origin(None, Some("https://status.example.com"), own));
    assert!(!same_origin(None, Some("https://evil.example"), own));
    assert!(!same_origin(None, Some("null"), own));
    assert!(
        same_origin(None, None, own),
        "not a browser: the CSRF token decides"
    );
}

#[test]
fn the_sign_in_page_never_echoes_a_token_and_escapes_next() {
    let page = signin::page("/x\"><script>alert(1)</script>", true);
    assert!(page.contains("Wrong token."));
    assert!(!page.contains("<script>"));
    assert!(page.contains("type=\"password\" name=\"token\""));
    assert!(!page.contains("<script"));
}
