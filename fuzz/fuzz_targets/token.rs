//! Token parsing and verification, every purpose: arbitrary text, and a real token of each
//! purpose with one of its three parts replaced by the input, is verified as an access token
//! (both ways), a refresh token and a verification token. Nothing panics, and no text is
//! accepted for two purposes.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use authura_core::keys::AccessKey;
use authura_core::mail::Action;
use authura_core::token::{TokenSettings, Tokens, VerifyRequest};
use authura_core::types::{Email, PasswordHash, Role, Secret, User, UserId};
use chrono::{DateTime, TimeZone as _, Utc};
use libfuzzer_sys::fuzz_target;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

struct Fixture {
    tokens: Tokens,
    /// A valid access, refresh and verification token.
    valid: [String; 3],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let tokens = Tokens::new(TokenSettings {
        access_key: AccessKey::Hs256(Secret::new("access-secret-0123456789abcdefghijklmnop")),
        previous_keys: Vec::new(),
        refresh_secret: Secret::new("refresh-secret-0123456789abcdefghijklmn"),
        verify_secret: Secret::new("verify-secret-0123456789abcdefghijklmno"),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(86_400),
        verify_ttl: Duration::from_secs(3_600),
        issuer: Some("authura".into()),
        audience: None,
        extensions: Vec::new(),
    })
    .unwrap();
    let user = User {
        id: UserId::Int(7),
        email: Email::parse("ann@example.com").unwrap(),
        role: Role::parse("user").unwrap(),
        tenant: None,
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"),
        verified_at: Some(now()),
    };
    let pair = tokens.issue_pair(&user, None, None, now()).unwrap();
    let verify = tokens
        .issue_verify(
            &VerifyRequest {
                action: Action::ResetPassword,
                email: &user.email,
                tenant: None,
                user: Some(&user),
                role: None,
            },
            now(),
        )
        .unwrap();
    Fixture {
        tokens,
        valid: [pair.access_token, pair.refresh_token, verify],
    }
});

fn check(tokens: &Tokens, text: &str) {
    let at = now();
    let access = tokens.verify_access(text, at).is_ok();
    assert_eq!(access, tokens.verify_bearer(text, at).is_ok(), "{text:?}");
    let refresh = tokens.verify_refresh(text, at).is_ok();
    let verify = tokens.verify_verify(text, at).is_ok();
    assert!(
        u8::from(access) + u8::from(refresh) + u8::from(verify) <= 1,
        "accepted for two purposes: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let text = String::from_utf8_lossy(data);
    check(&fixture.tokens, &text);
    if let Some((&which, rest)) = data.split_first() {
        let valid = &fixture.valid[usize::from(which % 3)];
        let part = usize::from(which / 3 % 3);
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        parts[part] = String::from_utf8_lossy(rest).into_owned();
        check(&fixture.tokens, &parts.join("."));
    }
});
