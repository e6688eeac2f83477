//! Token rules (SPEC §4): purposes, keys, expiry leeway, claim shapes.

use std::time::Duration;

use authura_core::Secret;
use authura_core::keys::AccessKey;
use authura_core::token::{TokenSettings, Tokens};

use crate::flows::{PW, settings, world};

fn tokens_with(f: impl FnOnce(&mut TokenSettings)) -> Result<Tokens, String> {
    let mut s = settings();
    f(&mut s);
    Tokens::new(s)
}

#[test]
fn secrets_must_be_long_and_distinct() {
    assert!(tokens_with(|_| {}).is_ok());
    let short = tokens_with(|s| s.access_key = AccessKey::Hs256(Secret::new("short"))).unwrap_err();
    assert!(
        short.contains("JWT_SECRET must be at least 32 bytes"),
        "{short}"
    );
    let same = tokens_with(|s| s.verify_secret = s.refresh_secret.clone()).unwrap_err();
    assert!(
        same.contains("JWT_REFRESH_SECRET and JWT_VERIFY_SECRET must be different"),
        "{same}"
    );
}

#[tokio::test]
async fn access_token_claims() {
    let w = world();
    let s = w.user(None, "ann@example.com", PW).await;
    let payload = decode_payload(&s.tokens.access_token);
    assert_eq!(payload["purpose"], "access");
    assert_eq!(payload["email"], "ann@example.com");
    assert_eq!(payload["role"], "user");
    assert_eq!(payload["sub"], s.user.user.id.to_string());
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        300
    );
    assert!(uuid::Uuid::parse_str(payload["jti"].as_str().unwrap()).is_ok());
    let verified = payload["verified_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(verified).is_ok() && verified.ends_with("+00:00"),
        "{verified}"
    );
    // Absent claims are omitted, not null.
    for absent in ["tid", "hook_data", "act", "iss", "aud"] {
        assert!(payload.get(absent).is_none(), "{absent} should be absent");
    }
    let hasura = &payload["https://hasura.io/jwt/claims"];
    assert_eq!(hasura["x-hasura-user-id"], s.user.user.id.to_string());
    assert_eq!(
        hasura["x-hasura-allowed-roles"],
        serde_json::json!(["user"])
    );
    let header = decode_part(&s.tokens.access_token, 0);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(
        decode_payload(&s.tokens.refresh_token)["purpose"],
        "refresh"
    );
}

#[tokio::test]
async fn expiry_has_bounded_leeway() {
    let w = world();
    let s = w.user(None, "ann@example.com", PW).await;
    w.clock.advance(Duration::from_secs(300 + 29));
    authura_core::flows::current_user(&w.ctx, None, &s.tokens.access_token)
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(2));
    assert!(
        authura_core::flows::current_user(&w.ctx, None, &s.tokens.access_token)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn issuer_and_audience_are_set_and_required() {
    let w = world();
    let s = w.user(None, "ann@example.com", PW).await;
    let with_iss = tokens_with(|s| {
        s.issuer = Some("https://auth.example.com".into());
        s.audience = Some("api".into());
    })
    .unwrap();
    let now = chrono::Utc::now();
    // A token without iss/aud is refused by a verifier that requires them…
    assert!(with_iss.verify_access(&s.tokens.access_token, now).is_err());
    // …and one with them verifies.
    let pair = with_iss.issue_pair(&s.user.user, None, None, now).unwrap();
    let claims = with_iss.verify_access(&pair.access_token, now).unwrap();
    assert_eq!(
        (claims.iss.as_deref(), claims.aud.as_deref()),
        (Some("https://auth.example.com"), Some("api"))
    );
    let other_aud = tokens_with(|s| {
        s.issuer = Some("https://auth.example.com".into());
        s.audience = Some("other".into());
    })
    .unwrap();
    assert!(other_aud.verify_access(&pair.access_token, now).is_err());
}

#[test]
fn unsigned_and_foreign_tokens_are_refused() {
    use base64::Engine as _;
    let t = Tokens::new(settings()).unwrap();
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"sub": "1", "email": "a@b", "role": "admin", "iat": now, "exp": now + 60, "jti": "x", "purpose": "access"});
    let none = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    );
    assert!(t.verify_access(&none, chrono::Utc::now()).is_err());
    // Signed with the refresh key instead of the access key.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret("r".repeat(32).as_bytes()),
    )
    .unwrap();
    assert!(t.verify_access(&forged, chrono::Utc::now()).is_err());
    let genuine = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret("a".repeat(32).as_bytes()),
    )
    .unwrap();
    assert!(t.verify_access(&genuine, chrono::Utc::now()).is_ok());
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret("a".repeat(32).as_bytes()),
    )
    .unwrap();
    assert!(t.verify_access(&hs512, chrono::Utc::now()).is_err());
}

fn decode_part(token: &str, i: usize) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn decode_payload(token: &str) -> serde_json::Value {
    decode_part(token, 1)
}

#[test]
fn extension_namespaces_may_not_shadow_standard_claims() {
    use authura_core::extension::{EnvExtension, HasuraExtension};
    let env =
        |ns: &str| std::sync::Arc::new(EnvExtension::parse(ns, r#"{"a": "{{.ID}}"}"#).unwrap());
    let err = tokens_with(|s| s.extensions = vec![env("sub")]).unwrap_err();
    assert!(err.contains("\"sub\" is a standard claim"), "{err}");
    let err = tokens_with(|s| {
        s.extensions = vec![
            std::sync::Arc::new(HasuraExtension),
            env("https://hasura.io/jwt/claims"),
        ]
    })
    .unwrap_err();
    assert!(err.contains("two claims extensions"), "{err}");
    // Every problem at once.
    let err = tokens_with(|s| {
        s.access_key = AccessKey::Hs256(Secret::new("short"));
        s.extensions = vec![env("exp")];
    })
    .unwrap_err();
    assert!(
        err.contains("JWT_SECRET must be") && err.contains("\"exp\""),
        "{err}"
    );
}

#[test]
fn not_before_is_honoured_with_leeway() {
    let t = Tokens::new(settings()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let sign = |nbf: i64| {
        let claims = serde_json::json!({"sub": "1", "email": "a@b", "role": "user", "iat": now, "exp": now + 600, "nbf": nbf, "jti": "x", "purpose": "access"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret("a".repeat(32).as_bytes()),
        )
        .unwrap()
    };
    assert!(t.verify_access(&sign(now + 25), chrono::Utc::now()).is_ok());
    assert!(
        t.verify_access(&sign(now + 120), chrono::Utc::now())
            .is_err()
    );
}

// Asymmetric access tokens, `kid` selection and rotation (JWT_ALGORITHM, JWT_PREVIOUS_KEYS).

use authura_core::keys::{Algorithm, PreviousKey, PrivateKey, PublicKey, parse_previous_keys};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::KeyPair as _;

/// A fresh key pair for `alg`, generated with aws-lc-rs: (PKCS#8 PEM, SPKI public PEM).
pub fn key_pems(alg: Algorithm) -> (String, String) {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
    };
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let (private, public): (Vec<u8>, Vec<u8>) = match alg {
        Algorithm::RS256 => {
            let k = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let p8: Pkcs8V1Der = k.as_der().unwrap();
            let spki: PublicKeyX509Der = k.public_key().as_der().unwrap();
            (p8.as_ref().to_vec(), spki.as_ref().to_vec())
        }
        Algorithm::ES256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let k =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
            let spki: PublicKeyX509Der = k.public_key().as_der().unwrap();
            (doc.as_ref().to_vec(), spki.as_ref().to_vec())
        }
        Algorithm::EdDSA => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let k = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
            let spki: PublicKeyX509Der = k.public_key().as_der().unwrap();
            (doc.as_ref().to_vec(), spki.as_ref().to_vec())
        }
        Algorithm::HS256 => panic!("HS256 has no key pair"),
    };
    (pem("PRIVATE KEY", &private), pem("PUBLIC KEY", &public))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn private(pem: &str) -> AccessKey {
    AccessKey::Private(PrivateKey::from_pem(pem).unwrap())
}

fn public(pem: &str) -> PreviousKey {
    PreviousKey::Public(PublicKey::from_pem(pem).unwrap())
}

pub fn with_keys(access: AccessKey, previous: Vec<PreviousKey>) -> Tokens {
    tokens_with(|s| {
        s.access_key = access;
        s.previous_keys = previous;
    })
    .unwrap()
}

fn sample_user() -> authura_core::User {
    authura_core::User {
        id: authura_core::UserId::Int(7),
        email: authura_core::Email::parse("ann@example.com").unwrap(),
        role: authura_core::Role::parse("user").unwrap(),
        tenant: None,
        password_hash: authura_core::PasswordHash::new("$argon2id$v=19$x"),
        verified_at: Some(chrono::Utc::now()),
    }
}

fn access_token(t: &Tokens) -> String {
    t.issue_pair(&sample_user(), None, None, chrono::Utc::now())
        .unwrap()
        .access_token
}

fn accepted(t: &Tokens, token: &str) -> bool {
    let now = chrono::Utc::now();
    let full = t.verify_access(token, now).is_ok();
    let lean = t.verify_bearer(token, now).is_ok();
    assert_eq!(full, lean, "verify_access and verify_bearer disagree");
    full
}

/// A token with any header, signed by `sign` over the JWS signing input.
fn forge(
    header: serde_json::Value,
    claims: &serde_json::Value,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn hmac(key: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    move |m| aws_lc_rs::hmac::sign(&key, m).as_ref().to_vec()
}

fn access_claims() -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    serde_json::json!({"sub": "1", "email": "a@b", "role": "admin", "iat": now, "exp": now + 60, "jti": "x", "purpose": "access"})
}

#[test]
fn every_algorithm_round_trips_with_its_kid() {
    let hs = with_keys(AccessKey::Hs256(Secret::new("a".repeat(32))), Vec::new());
    let token = access_token(&hs);
    let header = decode_part(&token, 0);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(
        header["kid"],
        authura_core::keys::hs256_kid(&Secret::new("a".repeat(32)))
    );
    assert!(accepted(&hs, &token));
    // Secrets are never published.
    assert_eq!(hs.jwks(), serde_json::json!({"keys": []}));

    for (alg, kty) in [
        (Algorithm::RS256, "RSA"),
        (Algorithm::ES256, "EC"),
        (Algorithm::EdDSA, "OKP"),
    ] {
        let (private_pem, public_pem) = key_pems(alg);
        let key = PrivateKey::from_pem(&private_pem).unwrap();
        assert_eq!(key.algorithm(), alg);
        // The public PEM names the same key.
        assert_eq!(
            PublicKey::from_pem(&public_pem).unwrap().kid(),
            key.public_key().kid()
        );
        let t = with_keys(AccessKey::Private(key.clone()), Vec::new());
        let token = access_token(&t);
        let header = decode_part(&token, 0);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], key.public_key().kid());
        assert!(accepted(&t, &token), "{alg}");
        assert_eq!(decode_payload(&token)["purpose"], "access");
        let jwks = t.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kty"], kty);
        assert_eq!(keys[0]["kid"], key.public_key().kid());
        assert_eq!(keys[0]["alg"], alg.as_str());
        assert_eq!(keys[0]["use"], "sig");
        // Refresh and verification tokens stay HS256 under their own secrets.
        let pair = t
            .issue_pair(&sample_user(), None, None, chrono::Utc::now())
            .unwrap();
        assert_eq!(decode_part(&pair.refresh_token, 0)["alg"], "HS256");
        assert!(
            t.verify_refresh(&pair.refresh_token, chrono::Utc::now())
                .is_ok()
        );
        // An access token is not a refresh token, and the reverse.
        assert!(!accepted(&t, &pair.refresh_token));
        assert!(
            t.verify_refresh(&pair.access_token, chrono::Utc::now())
                .is_err()
        );
    }
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER version,
/// SEQUENCE algorithm, OCTET STRING privateKey }.
pub fn pkcs1_of_pkcs8(der: &[u8]) -> &[u8] {
    // One DER element at the start of `b`: (header length, content length).
    fn element(b: &[u8]) -> (usize, usize) {
        match b[1] {
            n if n < 0x80 => (2, usize::from(n)),
            0x81 => (3, usize::from(b[2])),
            0x82 => (4, usize::from(b[2]) << 8 | usize::from(b[3])),
            other => panic!("unexpected DER length byte {other:#x}"),
        }
    }
    let (outer, _) = element(der);
    let mut rest = &der[outer..];
    for _ in 0..2 {
        let (h, len) = element(rest);
        rest = &rest[h + len..];
    }
    assert_eq!(rest[0], 0x04, "an OCTET STRING");
    let (h, len) = element(rest);
    &rest[h..h + len]
}

/// Interoperability with an independent implementation (jsonwebtoken), both ways: tokens it
/// signs with our key and `kid` verify here, and ours verify there through our published JWK.
#[test]
fn asymmetric_tokens_interoperate_with_jsonwebtoken() {
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let (private_pem, _) = key_pems(alg);
        let key = PrivateKey::from_pem(&private_pem).unwrap();
        let t = with_keys(AccessKey::Private(key.clone()), Vec::new());
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                private_pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let (jwt_alg, encoding) = match alg {
            Algorithm::RS256 => (
                jsonwebtoken::Algorithm::RS256,
                EncodingKey::from_rsa_der(pkcs1_of_pkcs8(&der)),
            ),
            Algorithm::ES256 => (
                jsonwebtoken::Algorithm::ES256,
                EncodingKey::from_ec_der(&der),
            ),
            _ => (
                jsonwebtoken::Algorithm::EdDSA,
                EncodingKey::from_ed_der(&der),
            ),
        };
        let mut header = Header::new(jwt_alg);
        header.kid = Some(key.public_key().kid().to_owned());
        let theirs = jsonwebtoken::encode(&header, &access_claims(), &encoding)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert!(accepted(&t, &theirs), "{alg}: jsonwebtoken's token refused");
        // Without the kid it is refused.
        header.kid = None;
        let no_kid = jsonwebtoken::encode(&header, &access_claims(), &encoding).unwrap();
        assert!(!accepted(&t, &no_kid), "{alg}: accepted without a kid");

        check_with_jsonwebtoken(&t, &access_token(&t), jwt_alg);
    }
}

/// jsonwebtoken verifies `token` through the first key of `t`'s published JWKS.
fn check_with_jsonwebtoken(t: &Tokens, token: &str, alg: jsonwebtoken::Algorithm) {
    use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
    let jwk: Jwk = serde_json::from_value(t.jwks()["keys"][0].clone()).unwrap();
    let mut validation = Validation::new(alg);
    validation.validate_aud = false;
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap_or_else(|e| panic!("{alg:?}: jsonwebtoken refused our token: {e}"));
    assert_eq!(decoded.claims["purpose"], "access");
}

#[test]
fn the_rfc_7638_thumbprint_is_the_kid() {
    use base64::Engine as _;
    // RFC 7638 §3.1's example key, as PKCS#1 DER: SEQUENCE { INTEGER n, INTEGER e }.
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(concat!(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B",
            "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F",
            "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4",
            "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        ))
        .unwrap();
    assert_eq!(n.len(), 256);
    let mut der = vec![0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00];
    der.extend_from_slice(&n);
    der.extend_from_slice(&[0x02, 0x03, 0x01, 0x00, 0x01]);
    let key = PublicKey::from_pem(&pem("RSA PUBLIC KEY", &der)).unwrap();
    assert_eq!(key.kid(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_eq!(key.algorithm(), Algorithm::RS256);
    assert_eq!(key.jwk()["e"], "AQAB");
}

#[test]
fn previous_keys_verify_until_removed() {
    let (a_private, a_public) = key_pems(Algorithm::ES256);
    let (b_private, _) = key_pems(Algorithm::EdDSA);
    let a = with_keys(private(&a_private), Vec::new());
    let token = access_token(&a);
    // Restarted with B current and A's public key as a previous key: A's tokens still verify…
    let rotated = with_keys(private(&b_private), vec![public(&a_public)]);
    assert!(accepted(&rotated, &token));
    assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
    // …as they do with A's whole private key moved there (only its public half is used)…
    let moved = parse_previous_keys(&a_private).unwrap();
    assert!(accepted(&with_keys(private(&b_private), moved), &token));
    // …and once A is removed they are refused.
    assert!(!accepted(
        &with_keys(private(&b_private), Vec::new()),
        &token
    ));

    // HS256 → asymmetric: the old secret in JWT_PREVIOUS_KEYS keeps old tokens working, with
    // their kid and without one (tokens from before kids were set).
    let old = Secret::new("o".repeat(40));
    let hs = with_keys(AccessKey::Hs256(old.clone()), Vec::new());
    let with_kid = access_token(&hs);
    let without_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &access_claims(),
        &jsonwebtoken::EncodingKey::from_secret(old.expose().as_bytes()),
    )
    .unwrap();
    let previous = parse_previous_keys(&format!("{}\n{}", "p".repeat(33), old.expose())).unwrap();
    let rotated = with_keys(private(&a_private), previous);
    assert!(accepted(&rotated, &with_kid));
    assert!(accepted(&rotated, &without_kid));
    // Secrets are not published.
    assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 1);
    assert!(!accepted(
        &with_keys(private(&a_private), Vec::new()),
        &with_kid
    ));
}

#[test]
fn forged_access_tokens_are_refused() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
    let (es_private, es_public) = key_pems(Algorithm::ES256);
    let (rs_private, rs_public) = key_pems(Algorithm::RS256);
    let es = PrivateKey::from_pem(&es_private).unwrap();
    let es_kid = es.public_key().kid().to_owned();
    let rs_kid = PublicKey::from_pem(&rs_public).unwrap().kid().to_owned();
    // ES256 current, the RSA key a previous one.
    let t = with_keys(AccessKey::Private(es), vec![public(&rs_public)]);
    let claims = access_claims();
    let der = |p: &str| {
        use base64::Engine as _;
        let body: String = p.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    };
    let rsa = RsaKeyPair::from_pkcs8(&der(&rs_private)).unwrap();
    let rsa_sign = |m: &[u8]| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            m,
            &mut sig,
        )
        .unwrap();
        sig
    };
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der(&es_private)).unwrap();
    let ec_sign = |m: &[u8]| {
        ec.sign(&aws_lc_rs::rand::SystemRandom::new(), m)
            .unwrap()
            .as_ref()
            .to_vec()
    };
    let h = |alg: &str, kid: Option<&str>| match kid {
        Some(kid) => serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid}),
        None => serde_json::json!({"alg": alg, "typ": "JWT"}),
    };

    // The genuine ones, so the refusals below are about the forgery and nothing else.
    assert!(accepted(
        &t,
        &forge(h("ES256", Some(&es_kid)), &claims, ec_sign)
    ));
    assert!(accepted(
        &t,
        &forge(h("RS256", Some(&rs_kid)), &claims, rsa_sign)
    ));

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            forge(h("none", Some(&es_kid)), &claims, |_| Vec::new()),
        ),
        (
            "alg none, no kid",
            forge(h("none", None), &claims, |_| Vec::new()),
        ),
        (
            "HS256 keyed with the public PEM text",
            forge(
                h("HS256", Some(&rs_kid)),
                &claims,
                hmac(rs_public.as_bytes()),
            ),
        ),
        (
            "HS256 keyed with the public PEM text, no kid",
            forge(h("HS256", None), &claims, hmac(rs_public.as_bytes())),
        ),
        (
            "HS256 keyed with the public DER",
            forge(h("HS256", Some(&es_kid)), &claims, hmac(&der(&es_public))),
        ),
        (
            "HS256 keyed with the public DER, no kid",
            forge(h("HS256", None), &claims, hmac(&der(&rs_public))),
        ),
        (
            "RS256 token naming the ES256 key",
            forge(h("RS256", Some(&es_kid)), &claims, rsa_sign),
        ),
        (
            "ES256 token naming the RSA key",
            forge(h("ES256", Some(&rs_kid)), &claims, ec_sign),
        ),
        (
            "unknown kid",
            forge(h("ES256", Some("not-a-key")), &claims, ec_sign),
        ),
        (
            "asymmetric, no kid",
            forge(h("ES256", None), &claims, ec_sign),
        ),
        (
            "wrong purpose",
            forge(
                h("ES256", Some(&es_kid)),
                &serde_json::json!({"sub": "1", "email": "a@b", "iat": 1, "exp": chrono::Utc::now().timestamp() + 60, "jti": "x", "purpose": "refresh", "pwd": "p"}),
                ec_sign,
            ),
        ),
    ];
    for (name, token) in cases {
        assert!(!accepted(&t, &token), "{name} was accepted");
    }

    // Audience: required and exact when configured.
    let with_aud = |aud: &str| {
        tokens_with(|s| {
            s.access_key = private(&es_private);
            s.audience = Some(aud.into());
        })
        .unwrap()
    };
    let api = with_aud("api");
    let token = access_token(&api);
    assert!(accepted(&api, &token));
    assert!(!accepted(&with_aud("other"), &token));
    let no_aud = forge(h("ES256", Some(&es_kid)), &claims, ec_sign);
    assert!(!accepted(&api, &no_aud), "a token without aud");

    // Issuer: the same rules, for the public-key path as for HS256.
    let with_iss = |iss: &str| {
        tokens_with(|s| {
            s.access_key = private(&es_private);
            s.issuer = Some(iss.into());
        })
        .unwrap()
    };
    let ours = with_iss("https://auth.example.com");
    let token = access_token(&ours);
    assert!(accepted(&ours, &token));
    assert!(!accepted(&with_iss("https://other.example.com"), &token));
    let no_iss = forge(h("ES256", Some(&es_kid)), &claims, ec_sign);
    assert!(!accepted(&ours, &no_iss), "a token without iss");

    // A payload changed after signing.
    let genuine = forge(h("ES256", Some(&es_kid)), &claims, ec_sign);
    let mut admin = claims.clone();
    admin["sub"] = serde_json::json!("2");
    let other = forge(h("ES256", Some(&es_kid)), &admin, ec_sign);
    let parts = |t: &str| t.split('.').map(str::to_owned).collect::<Vec<_>>();
    let (g, o) = (parts(&genuine), parts(&other));
    let spliced = format!("{}.{}.{}", g[0], o[1], g[2]);
    assert!(
        !accepted(&t, &spliced),
        "a payload swapped under a signature"
    );
}

#[test]
fn key_problems_name_the_variable() {
    let (es_private, es_public) = key_pems(Algorithm::ES256);
    let check = |previous: &str, want: &str| {
        let err = match parse_previous_keys(previous) {
            Err(problems) => problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Ok(keys) => tokens_with(|s| {
                s.access_key = private(&es_private);
                s.previous_keys = keys;
            })
            .map(|_| String::new())
            .unwrap_or_else(|e| e),
        };
        assert!(err.contains(want), "{previous:?}: {err:?} lacks {want:?}");
    };
    check("short", "secret 1 is shorter than 32 bytes");
    check(
        &"r".repeat(32),
        "JWT_PREVIOUS_KEYS: key 1 is JWT_REFRESH_SECRET",
    );
    check(
        &es_public,
        "JWT_PREVIOUS_KEYS: key 1 is the same key as JWT_PRIVATE_KEY",
    );
    check(
        "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----",
        "a CERTIFICATE block is not a private key",
    );
    check(
        "-----BEGIN PUBLIC KEY-----\nAAEC\n",
        "has no -----END PUBLIC KEY----- line",
    );
    check(
        "-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----",
        "not an RSA, P-256 EC or Ed25519 key",
    );

    // Private keys: one block, a supported type and size.
    let err = |pem: &str| PrivateKey::from_pem(pem).unwrap_err().to_string();
    assert!(err("").contains("expected a PEM private key"));
    assert!(err(&es_public).contains("a PUBLIC KEY block is not a private key"));
    assert!(err(&format!("{es_private}{es_private}")).contains("several"));
    assert!(
        err("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAEC\n-----END ENCRYPTED PRIVATE KEY-----")
            .contains("encrypted")
    );

    // A current HS256 secret must not reappear among the previous keys either.
    let err = tokens_with(|s| {
        s.previous_keys = vec![PreviousKey::Hs256(Secret::new("a".repeat(32)))];
    })
    .unwrap_err();
    assert!(err.contains("key 1 is the same key as JWT_SECRET"), "{err}");
}

/// The keys the documented `openssl` commands make, in each PEM form, load as the right type and
/// the public forms name the same key as the private ones.
#[test]
fn openssl_keys_in_every_form() {
    let dir = tempfile_dir();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl must be installed (Debian: apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let cases: [(&[&str], Algorithm); 3] = [
        (
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Algorithm::RS256,
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Algorithm::ES256,
        ),
        (&["-algorithm", "ed25519"], Algorithm::EdDSA),
    ];
    for (gen_args, alg) in cases {
        let mut args = vec!["genpkey"];
        args.extend_from_slice(gen_args);
        args.extend_from_slice(&["-out", "key.pem"]);
        run(&args);
        run(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
        let key = PrivateKey::from_pem(&read("key.pem")).unwrap();
        assert_eq!(key.algorithm(), alg);
        let kid = key.public_key().kid().to_owned();
        assert_eq!(PublicKey::from_pem(&read("pub.pem")).unwrap().kid(), kid);
        let mut forms = Vec::new();
        match alg {
            Algorithm::RS256 => {
                run(&["rsa", "-in", "key.pem", "-traditional", "-out", "pkcs1.pem"]);
                run(&[
                    "rsa",
                    "-in",
                    "key.pem",
                    "-RSAPublicKey_out",
                    "-out",
                    "rsapub.pem",
                ]);
                assert!(read("pkcs1.pem").contains("BEGIN RSA PRIVATE KEY"));
                assert!(read("rsapub.pem").contains("BEGIN RSA PUBLIC KEY"));
                forms.push(
                    PrivateKey::from_pem(&read("pkcs1.pem"))
                        .unwrap()
                        .public_key()
                        .clone(),
                );
                forms.push(PublicKey::from_pem(&read("rsapub.pem")).unwrap());
            }
            Algorithm::ES256 => {
                run(&["ec", "-in", "key.pem", "-out", "sec1.pem"]);
                run(&[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-out",
                    "withparams.pem",
                ]);
                assert!(read("sec1.pem").contains("BEGIN EC PRIVATE KEY"));
                forms.push(
                    PrivateKey::from_pem(&read("sec1.pem"))
                        .unwrap()
                        .public_key()
                        .clone(),
                );
                // `openssl ecparam -genkey` writes an EC PARAMETERS block first.
                let with_params = PrivateKey::from_pem(&read("withparams.pem")).unwrap();
                assert_eq!(with_params.algorithm(), Algorithm::ES256);
            }
            _ => {}
        }
        for f in forms {
            assert_eq!(f.kid(), kid, "{alg}");
        }
    }
    // Too small or the wrong curve: a clear message.
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        "small.pem",
    ]);
    let e = PrivateKey::from_pem(&read("small.pem"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2048"), "{e}");
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "p384.pem",
    ]);
    let e = PrivateKey::from_pem(&read("p384.pem"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("P-384"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("authura-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Refresh and verification tokens are checked by Authura's own HS256 code: tokens another JWT
/// library signs under the right key are accepted (so tokens issued by earlier versions keep
/// working), and the RFC 8725 forgeries are refused.
#[test]
fn refresh_and_verification_tokens_follow_the_jws_rules() {
    let t = Tokens::new(settings()).unwrap();
    let now = chrono::Utc::now();
    let iat = now.timestamp();
    let refresh = serde_json::json!({"sub": "1", "email": "a@b", "iat": iat, "exp": iat + 60, "jti": "x", "purpose": "refresh", "pwd": "p"});
    let verify = serde_json::json!({"email": "a@b", "action": "verify", "state": "absent", "iat": iat, "exp": iat + 60, "jti": "x", "purpose": "verify"});
    let jwt = |header: jsonwebtoken::Header, claims: &serde_json::Value, key: &str| {
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let (r, v) = ("r".repeat(32), "v".repeat(32));
    let hs256 = jsonwebtoken::Header::default;

    // Genuine, from another library, with its header or one carrying a kid.
    assert!(t.verify_refresh(&jwt(hs256(), &refresh, &r), now).is_ok());
    assert!(t.verify_verify(&jwt(hs256(), &verify, &v), now).is_ok());
    let mut with_kid = hs256();
    with_kid.kid = Some("k".into());
    assert!(t.verify_refresh(&jwt(with_kid, &refresh, &r), now).is_ok());
    // Our own, round trip.
    let pair = t.issue_pair(&sample_user(), None, None, now).unwrap();
    assert!(t.verify_refresh(&pair.refresh_token, now).is_ok());
    assert_eq!(
        decode_part(&pair.refresh_token, 0),
        serde_json::json!({"typ": "JWT", "alg": "HS256"})
    );

    // Another token kind's key, or its purpose.
    assert!(t.verify_refresh(&jwt(hs256(), &refresh, &v), now).is_err());
    assert!(t.verify_verify(&jwt(hs256(), &verify, &r), now).is_err());
    assert!(t.verify_verify(&jwt(hs256(), &refresh, &v), now).is_err());
    assert!(t.verify_refresh(&pair.access_token, now).is_err());
    // Another algorithm under the right key.
    let hs512 = jwt(
        jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &refresh,
        &r,
    );
    assert!(t.verify_refresh(&hs512, now).is_err());
    // alg none, unsigned.
    let none = forge(serde_json::json!({"alg": "none"}), &refresh, |_| Vec::new());
    assert!(t.verify_refresh(&none, now).is_err());
    // A critical header extension nobody understands, correctly signed.
    let crit = forge(
        serde_json::json!({"alg": "HS256", "crit": ["x"], "x": 1}),
        &refresh,
        hmac(r.as_bytes()),
    );
    assert!(t.verify_refresh(&crit, now).is_err());
    // The same token correctly signed without `crit` is fine: only `crit` was at fault.
    let plain = forge(
        serde_json::json!({"alg": "HS256"}),
        &refresh,
        hmac(r.as_bytes()),
    );
    assert!(t.verify_refresh(&plain, now).is_ok());
    // Padding, a fourth part, a truncated or altered signature, an altered payload.
    let good = jwt(hs256(), &refresh, &r);
    let (input, sig) = good.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    for bad in [
        format!("{good}="),
        format!("{good}.x"),
        format!("{input}.{}", &sig[..sig.len() - 1]),
        format!("{input}.{flipped}{}", &sig[1..]),
        format!("{}.e30.{sig}", input.split('.').next().unwrap()),
        String::new(),
        "x".repeat(100_000),
    ] {
        assert!(t.verify_refresh(&bad, now).is_err(), "{bad:.80}");
    }
}

#[test]
fn configured_issuer_and_audience_bind_refresh_tokens_too() {
    let t = tokens_with(|s| {
        s.issuer = Some("https://auth.example".into());
        s.audience = Some("api".into());
    })
    .unwrap();
    let now = chrono::Utc::now();
    let pair = t.issue_pair(&sample_user(), None, None, now).unwrap();
    assert!(t.verify_refresh(&pair.refresh_token, now).is_ok());
    // Issued without iss/aud: refused once they are configured.
    let plain = Tokens::new(settings()).unwrap();
    let old = plain.issue_pair(&sample_user(), None, None, now).unwrap();
    assert!(t.verify_refresh(&old.refresh_token, now).is_err());
    assert!(t.verify_access(&old.access_token, now).is_err());
}

/// SPEC §4: `sid` and `gen` exist only when sessions are on; off, every token the flows issue
/// (sign-in, verification, refresh, impersonation) omits them, not as null.
#[tokio::test]
async fn tokens_carry_no_session_claims_when_sessions_are_off() {
    let mut w = world();
    w.ctx.settings.impersonation_enabled = true;
    let s = w.user(None, "ann@example.com", PW).await;
    let login = authura_core::flows::login(
        &w.ctx,
        None,
        &authura_core::Email::parse("ann@example.com").unwrap(),
        Secret::new(PW),
    )
    .await
    .unwrap();
    let refreshed = authura_core::flows::refresh(&w.ctx, None, &login.tokens.refresh_token)
        .await
        .unwrap();
    let admin = w.admin().await;
    let acting = authura_core::flows::impersonate(
        &w.ctx,
        None,
        &admin.tokens.access_token,
        &authura_core::Email::parse("ann@example.com").unwrap(),
    )
    .await
    .unwrap();
    for (name, pair) in [
        ("verify-email", &s.tokens),
        ("login", &login.tokens),
        ("refresh", &refreshed.tokens),
        ("impersonation", &acting.tokens),
    ] {
        for token in [&pair.access_token, &pair.refresh_token] {
            let payload = decode_payload(token);
            for absent in ["sid", "gen"] {
                assert!(
                    payload.get(absent).is_none(),
                    "{name}: {absent} in {payload}"
                );
            }
        }
        let claims = w
            .ctx
            .tokens
            .verify_refresh(
                &pair.refresh_token,
                authura_core::clock::Clock::now(&*w.clock),
            )
            .unwrap();
        assert_eq!((claims.sid, claims.generation), (None, None), "{name}");
    }
}

/// A pair bound to a session: `sid` in both tokens, `gen` in the refresh token only, and both
/// read back by the verifiers.
#[test]
fn a_bound_pair_names_its_session_and_generation() {
    use authura_core::token::SessionBinding;
    let t = Tokens::new(settings()).unwrap();
    let sid = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    let pair = t
        .issue_bound_pair(
            &sample_user(),
            None,
            None,
            now,
            &SessionBinding { sid, generation: 3 },
        )
        .unwrap();
    let access = decode_payload(&pair.access_token);
    let refresh = decode_payload(&pair.refresh_token);
    assert_eq!(access["sid"], sid.to_string());
    assert!(access.get("gen").is_none(), "{access}");
    assert_eq!(refresh["sid"], sid.to_string());
    assert_eq!(refresh["gen"], 3);
    let claims = t.verify_refresh(&pair.refresh_token, now).unwrap();
    assert_eq!(
        (claims.sid.as_deref(), claims.generation),
        (Some(sid.to_string().as_str()), Some(3))
    );
    let bearer = t.verify_bearer(&pair.access_token, now).unwrap();
    assert_eq!(bearer.sid, Some(sid.to_string()));
    assert_eq!(
        t.verify_access(&pair.access_token, now).unwrap().sid,
        Some(sid.to_string())
    );
}
