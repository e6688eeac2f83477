//! Differential property tests of the compact-JWS path against an independent implementation,
//! jsonwebtoken, for every access-token algorithm: random claims signed by Authura verify there
//! to the same claims, random claims it signs (same key, same `kid`) verify here to the same
//! claims, and a token with any one byte changed is refused by both.

use authura_core::keys::{AccessKey, Algorithm, PrivateKey};
use authura_core::token::Tokens;
use authura_core::{Email, PasswordHash, Role, Secret, TenantId, User, UserId};
use chrono::{TimeZone as _, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};

use crate::tokens::{key_pems, pkcs1_of_pkcs8, with_keys};

/// Cases per algorithm and direction: enough to vary every claim, few enough for a debug build.
const CASES: u32 = 64;

/// One algorithm's key, as Authura and as jsonwebtoken hold it.
struct Keys {
    alg: Algorithm,
    tokens: Tokens,
    kid: String,
    header: Header,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

fn keys(alg: Algorithm) -> Keys {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
    };
    use base64::Engine as _;
    let (access, encoding, decoding) = if alg == Algorithm::HS256 {
        let secret = "k".repeat(40);
        (
            AccessKey::Hs256(Secret::new(secret.clone())),
            EncodingKey::from_secret(secret.as_bytes()),
            DecodingKey::from_secret(secret.as_bytes()),
        )
    } else {
        let (pem, _) = key_pems(alg);
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        // jsonwebtoken takes the private key as DER and the public key as aws-lc-rs gives it
        // (RSAPublicKey DER, the uncompressed P-256 point, the raw Ed25519 key): nothing of
        // Authura's own key handling (its JWK, its kid) is on jsonwebtoken's side.
        let (encoding, public) = match alg {
            Algorithm::RS256 => (
                EncodingKey::from_rsa_der(pkcs1_of_pkcs8(&der)),
                DecodingKey::from_rsa_der(
                    RsaKeyPair::from_pkcs8(&der).unwrap().public_key().as_ref(),
                ),
            ),
            Algorithm::ES256 => (
                EncodingKey::from_ec_der(&der),
                DecodingKey::from_ec_der(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .unwrap()
                        .public_key()
                        .as_ref(),
                ),
            ),
            _ => (
                EncodingKey::from_ed_der(&der),
                DecodingKey::from_ed_der(
                    Ed25519KeyPair::from_pkcs8(&der)
                        .unwrap()
                        .public_key()
                        .as_ref(),
                ),
            ),
        };
        (
            AccessKey::Private(PrivateKey::from_pem(&pem).unwrap()),
            encoding,
            public,
        )
    };
    let kid = access.kid();
    let mut header = Header::new(jwt_algorithm(alg));
    header.kid = Some(kid.clone());
    Keys {
        alg,
        tokens: with_keys(access, Vec::new()),
        kid,
        header,
        encoding,
        decoding,
    }
}

fn jwt_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
    }
}

impl Keys {
    /// jsonwebtoken's reading of `token`, with the header it carried.
    fn jsonwebtoken_decode(&self, token: &str) -> Option<(Header, Value)> {
        let validation = Validation::new(jwt_algorithm(self.alg));
        jsonwebtoken::decode::<Value>(token, &self.decoding, &validation)
            .ok()
            .map(|d| (d.header, d.claims))
    }

    /// Authura's reading of `token`, as JSON.
    fn authura_decode(&self, token: &str) -> Option<Value> {
        let claims = self.tokens.verify_access(token, Utc::now()).ok()?;
        serde_json::to_value(claims).ok()
    }
}

/// Runs `property` on `CASES` random values of `strategy` for every algorithm.
fn for_every_algorithm<S: Strategy>(
    strategy: S,
    property: impl Fn(&Keys, S::Value) -> Result<(), TestCaseError>,
) {
    for alg in Algorithm::ALL {
        let keys = keys(alg);
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, |value| property(&keys, value)) {
            panic!("{alg}: {e}");
        }
    }
}

/// Any one byte of `token` changed (kept ASCII, so the result is still text).
fn tampered(token: &str, at: prop::sample::Index, flip: u8) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = at.index(bytes.len());
    bytes[i] ^= flip;
    String::from_utf8(bytes).unwrap()
}

/// Refused by both implementations.
fn refused_by_both(keys: &Keys, token: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        keys.authura_decode(token).is_none(),
        "Authura accepted {token}"
    );
    prop_assert!(
        keys.jsonwebtoken_decode(token).is_none(),
        "jsonwebtoken accepted {token}"
    );
    Ok(())
}

/// Text from characters of `chars`.
fn text(chars: &'static str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(chars.chars().collect::<Vec<_>>()), len)
        .prop_map(String::from_iter)
}

/// Any Unicode text, including what JSON must escape.
fn unicode(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), len).prop_map(String::from_iter)
}

/// JSON values without floats (whose text form two serializers may legitimately differ on).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        unicode(0..12).prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(unicode(0..8), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(unicode(0..8), json_value(), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const LOCAL: &str = "abcdefghijklmnopqrstuvwxyz0123456789._+-";

/// A user as a store would hand it to the flows, with what a hook added.
fn user() -> impl Strategy<Value = (User, Option<Map<String, Value>>)> {
    let id = prop_oneof![
        any::<i64>().prop_map(UserId::Int),
        unicode(1..16).prop_map(UserId::Text),
    ];
    let email = (text(LOCAL, 1..20), text(LOWER, 1..12), text(LOWER, 2..6))
        .prop_filter_map("a valid address", |(local, domain, tld)| {
            Email::parse(&format!("{local}@{domain}.{tld}")).ok()
        });
    let role = unicode(1..16).prop_filter_map("a valid role", |r| Role::parse(&r).ok());
    let tenant = prop::option::of(
        unicode(1..16).prop_filter_map("a valid tenant", |t| TenantId::parse(&t).ok()),
    );
    let verified_at = prop::option::of(0_i64..4_000_000_000);
    (
        id,
        email,
        role,
        tenant,
        verified_at,
        prop::option::of(json_object()),
    )
        .prop_map(|(id, email, role, tenant, verified_at, hook_data)| {
            let user = User {
                id,
                email,
                role,
                tenant,
                password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$x$y"),
                verified_at: verified_at.and_then(|s| Utc.timestamp_opt(s, 0).single()),
            };
            (user, hook_data)
        })
}

/// Access-token claims as another issuer might write them: every field Authura reads, with any
/// text, and namespaced extension claims.
fn claims() -> impl Strategy<Value = Value> {
    let now = Utc::now().timestamp();
    (
        (unicode(0..16), unicode(0..24), unicode(0..12)),
        (
            prop::option::of(unicode(0..12)),
            prop::option::of(unicode(0..30)),
            prop::option::of(unicode(0..12)),
        ),
        (
            60_i64..86_400,
            prop::option::of(0_i64..3_600),
            unicode(0..36),
        ),
        (
            prop::option::of(json_object()),
            prop::collection::btree_map(text(LOWER, 1..10), json_value(), 0..3),
        ),
    )
        .prop_map(
            move |((sub, email, role), (tid, verified_at, act), (ttl, age, jti), (hook, ext))| {
                let mut c = Map::new();
                c.insert("sub".into(), sub.into());
                c.insert("email".into(), email.into());
                c.insert("role".into(), role.into());
                c.insert("iat".into(), (now - 10).into());
                c.insert("exp".into(), (now + ttl).into());
                c.insert("jti".into(), jti.into());
                c.insert("purpose".into(), "access".into());
                let optional = [
                    ("tid", tid.map(Value::from)),
                    ("verified_at", verified_at.map(Value::from)),
                    ("act", act.map(|sub| serde_json::json!({ "sub": sub }))),
                    ("hook_data", hook.map(Value::Object)),
                    ("nbf", age.map(|a| Value::from(now - a))),
                ];
                for (name, value) in optional {
                    if let Some(v) = value {
                        c.insert(name.into(), v);
                    }
                }
                for (namespace, value) in ext {
                    c.insert(format!("https://example.com/{namespace}"), value);
                }
                Value::Object(c)
            },
        )
}

#[test]
fn tokens_authura_signs_verify_with_jsonwebtoken() {
    let cases = (user(), any::<prop::sample::Index>(), 1_u8..128);
    for_every_algorithm(cases, |keys, ((user, hook_data), at, flip)| {
        let token = keys
            .tokens
            .issue_pair(&user, hook_data.as_ref(), None, Utc::now())
            .unwrap()
            .access_token;
        let Some((header, theirs)) = keys.jsonwebtoken_decode(&token) else {
            return Err(TestCaseError::fail(format!("jsonwebtoken refused {token}")));
        };
        prop_assert_eq!(header.kid.as_deref(), Some(keys.kid.as_str()));
        let ours = keys.authura_decode(&token);
        prop_assert_eq!(Some(&theirs), ours.as_ref());
        prop_assert_eq!(&theirs["sub"], &Value::from(user.id.to_string()));
        prop_assert_eq!(&theirs["email"], &Value::from(user.email.as_str()));
        prop_assert_eq!(&theirs["role"], &Value::from(user.role.as_str()));
        let tid = user.tenant.as_ref().map(|t| Value::from(t.as_str()));
        prop_assert_eq!(theirs.get("tid"), tid.as_ref());
        let hook_data = hook_data.map(Value::Object);
        prop_assert_eq!(theirs.get("hook_data"), hook_data.as_ref());
        refused_by_both(keys, &tampered(&token, at, flip))
    });
}

#[test]
fn tokens_jsonwebtoken_signs_verify_with_authura() {
    let cases = (claims(), any::<prop::sample::Index>(), 1_u8..128);
    for_every_algorithm(cases, |keys, (claims, at, flip)| {
        let token = jsonwebtoken::encode(&keys.header, &claims, &keys.encoding).unwrap();
        let ours = keys.authura_decode(&token);
        prop_assert_eq!(ours.as_ref(), Some(&claims), "{}", token);
        prop_assert!(keys.jsonwebtoken_decode(&token).is_some());
        refused_by_both(keys, &tampered(&token, at, flip))
    });
}
