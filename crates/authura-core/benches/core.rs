//! Micro-benchmarks of the core's hot paths: token signing and verification per kind and per
//! access-token algorithm, claims building with extensions, and the password policy.
//! `cargo bench -p authura-core`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authura_core::extension::{ClaimsExtension, ClaimsInput, EnvExtension, HasuraExtension};
use authura_core::keys::{AccessKey, Algorithm, PrivateKey};
use authura_core::policy::PasswordPolicy;
use authura_core::token::{TokenSettings, Tokens, VerifyRequest};
use authura_core::{Email, PasswordHash, Role, Secret, User, UserId};
use criterion::{Criterion, criterion_group, criterion_main};

fn user() -> User {
    User {
        id: UserId::Int(42),
        email: Email::parse("ann@example.com").unwrap_or_else(|e| panic!("{e}")),
        role: Role::parse("user").unwrap_or_else(|e| panic!("{e}")),
        tenant: None,
        password_hash: PasswordHash::new(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ),
        verified_at: Some(chrono::Utc::now()),
    }
}

fn tokens() -> Tokens {
    tokens_with(AccessKey::Hs256(Secret::new("a".repeat(48))))
}

fn tokens_with(access_key: AccessKey) -> Tokens {
    let env = EnvExtension::parse("custom", r#"{"x-id": "{{.ID}}", "x-email": "{{.Email}}"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    Tokens::new(TokenSettings {
        access_key,
        previous_keys: Vec::new(),
        refresh_secret: Secret::new("r".repeat(48)),
        verify_secret: Secret::new("v".repeat(48)),
        access_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(3600),
        verify_ttl: Duration::from_secs(3600),
        issuer: None,
        audience: None,
        extensions: vec![Arc::new(HasuraExtension), Arc::new(env)],
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn bench(c: &mut Criterion) {
    let t = tokens();
    let u = user();
    let now = chrono::Utc::now();
    let pair = t
        .issue_pair(&u, None, None, now)
        .unwrap_or_else(|e| panic!("{e}"));
    let verify = t
        .issue_verify(
            &VerifyRequest {
                action: authura_core::mail::Action::VerifyEmail,
                email: &u.email,
                tenant: None,
                user: None,
                role: None,
            },
            now,
        )
        .unwrap_or_else(|e| panic!("{e}"));

    let mut g = c.benchmark_group("hs256");
    g.bench_function("issue access+refresh pair", |b| {
        b.iter(|| t.issue_pair(black_box(&u), None, None, now))
    });
    g.bench_function("verify access", |b| {
        b.iter(|| t.verify_access(black_box(&pair.access_token), now))
    });
    g.bench_function("verify bearer (lean)", |b| {
        b.iter(|| t.verify_bearer(black_box(&pair.access_token), now))
    });
    g.bench_function("verify refresh", |b| {
        b.iter(|| t.verify_refresh(black_box(&pair.refresh_token), now))
    });
    g.bench_function("verify verification token", |b| {
        b.iter(|| t.verify_verify(black_box(&verify), now))
    });
    g.bench_function("password fingerprint", |b| {
        b.iter(|| t.password_fingerprint(black_box(&u.password_hash)))
    });
    g.finish();

    // Access tokens per algorithm (JWT_ALGORITHM); the pair includes the HS256 refresh token.
    let mut g = c.benchmark_group("access");
    for alg in Algorithm::ALL {
        let t = match alg {
            Algorithm::HS256 => tokens(),
            _ => tokens_with(AccessKey::Private(generated_key(alg))),
        };
        let pair = t
            .issue_pair(&u, None, None, now)
            .unwrap_or_else(|e| panic!("{e}"));
        g.bench_function(format!("{alg} issue pair"), |b| {
            b.iter(|| t.issue_pair(black_box(&u), None, None, now))
        });
        g.bench_function(format!("{alg} verify bearer"), |b| {
            b.iter(|| t.verify_bearer(black_box(&pair.access_token), now))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("claims");
    let input = ClaimsInput {
        user: &u,
        hook_data: None,
        groups: None,
    };
    g.bench_function("hasura extension", |b| {
        b.iter(|| HasuraExtension.claims(black_box(&input)))
    });
    let env = EnvExtension::parse(
        "custom",
        r#"{"x-id": "{{.ID}}", "x-email": "{{.Email}}", "x-role": "{{.Role}}"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("env extension, 3 templates", |b| {
        b.iter(|| env.claims(black_box(&input)))
    });
    g.finish();

    let policy = PasswordPolicy::seed();
    c.bench_function("policy/check 12 chars", |b| {
        b.iter(|| policy.unmet(black_box("Str0ng!pass1")))
    });
}

/// A fresh private key for `alg`, made with aws-lc-rs and loaded from PEM as an operator's would be.
fn generated_key(alg: Algorithm) -> PrivateKey {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
    };
    use base64::Engine as _;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der: Vec<u8> = match alg {
        Algorithm::RS256 => {
            let k = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .unwrap_or_else(|e| panic!("{e}"));
            let der: Pkcs8V1Der = k.as_der().unwrap_or_else(|e| panic!("{e}"));
            der.as_ref().to_vec()
        }
        Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"))
            .as_ref()
            .to_vec(),
        Algorithm::EdDSA | Algorithm::HS256 => Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap_or_else(|e| panic!("{e}"))
            .as_ref()
            .to_vec(),
    };
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    PrivateKey::from_pem(&pem).unwrap_or_else(|e| panic!("{e}"))
}

criterion_group!(benches, bench);
criterion_main!(benches);
