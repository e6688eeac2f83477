//! Token rules (SPEC §4): purposes, keys, expiry leeway, claim shapes.

use std::time::Duration;

use authura_core::Secret;
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
    let short = tokens_with(|s| s.access_secret = Secret::new("short")).unwrap_err();
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
        s.access_secret = Secret::new("short");
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
