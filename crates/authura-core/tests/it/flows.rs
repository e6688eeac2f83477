//! Every flow of SPEC §3 at the core level, as data: each case runs steps on a fresh world and
//! states the outcome it expects by error code.

use std::sync::Arc;
use std::time::Duration;

use authura_core::clock::ManualClock;
use authura_core::extension::HasuraExtension;
use authura_core::flows::{self, Context, FlowSettings, SignedIn};
use authura_core::hash::InlineHasher;
use authura_core::hook::NoHook;
use authura_core::keys::AccessKey;
use authura_core::lockout::FailureLimiter;
use authura_core::mail::{Action, Mail};
use authura_core::memory::MemoryStore;
use authura_core::policy::PasswordPolicy;
use authura_core::redirect::RedirectPolicy;
use authura_core::token::{TokenSettings, Tokens};
use authura_core::{CoreError, Email, Role, Secret, TenantId, UserChanges, UserStore};
use url::Url;

pub struct World {
    pub ctx: Context,
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
}

pub fn settings() -> TokenSettings {
    TokenSettings {
        access_key: AccessKey::Hs256(Secret::new("a".repeat(32))),
        previous_keys: Vec::new(),
        refresh_secret: Secret::new("r".repeat(32)),
        verify_secret: Secret::new("v".repeat(32)),
        access_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(3600),
        verify_ttl: Duration::from_secs(3600),
        issuer: None,
        audience: None,
        extensions: vec![Arc::new(HasuraExtension)],
    }
}

pub fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let form = Url::parse("http://localhost:9000/form").unwrap();
    let ctx = Context {
        store: store.clone(),
        hasher: Arc::new(InlineHasher),
        hook: Arc::new(NoHook),
        tokens: Tokens::new(settings()).unwrap(),
        clock: clock.clone(),
        settings: FlowSettings {
            admin_role: Role::parse("admin").unwrap(),
            default_role: Role::parse("user").unwrap(),
            signup_disabled: false,
            impersonation_enabled: false,
            captcha: false,
            policy: PasswordPolicy::seed(),
            verify_redirect_url: form.clone(),
            redirects: RedirectPolicy::new(vec![
                form,
                Url::parse("https://app.example.com").unwrap(),
            ]),
        },
        // The server's defaults: 10 failures per 15 minutes.
        login_failures: Arc::new(FailureLimiter::new(10, Duration::from_secs(900))),
        sessions: None,
        policies: authura_core::flows::Policies::off(),
    };
    World { ctx, store, clock }
}

pub const PW: &str = "Str0ng!pw";

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn token_of(mail: &Mail) -> String {
    let url = Url::parse(&mail.link).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned()
}

/// The wire code of an error, as the server would answer.
fn code(e: &CoreError) -> &'static str {
    match e {
        CoreError::InvalidBody(_) => "invalid_body",
        CoreError::InvalidEmail => "invalid_email",
        CoreError::WeakPassword(_) => "weak_password",
        CoreError::InvalidRedirectUrl => "invalid_redirect_url",
        CoreError::TokenUsed => "token_used",
        CoreError::InvalidVerificationToken => "invalid_verification_token",
        CoreError::InvalidCredentials => "invalid_credentials",
        CoreError::InvalidToken => "invalid_token",
        CoreError::Forbidden => "forbidden",
        CoreError::SignupDisabled => "signup_disabled",
        CoreError::EmailNotVerified => "email_not_verified",
        CoreError::EmailTaken => "email_taken",
        _ => "other",
    }
}

fn check<T: std::fmt::Debug>(
    name: &str,
    got: Result<T, CoreError>,
    expected: Result<(), &str>,
) -> Option<T> {
    match (got, expected) {
        (Ok(v), Ok(())) => Some(v),
        (Err(e), Err(want)) => {
            assert_eq!(code(&e), want, "{name}: wrong error {e:?}");
            None
        }
        (got, want) => panic!("{name}: got {got:?}, expected {want:?}"),
    }
}

impl World {
    pub async fn signup_mail(&self, tenant: Option<&TenantId>, address: &str) -> Mail {
        flows::signup(&self.ctx, tenant, &email(address), None)
            .await
            .unwrap()
            .expect("a mail")
    }

    pub async fn user(&self, tenant: Option<&TenantId>, address: &str, password: &str) -> SignedIn {
        let mail = self.signup_mail(tenant, address).await;
        flows::verify_email(
            &self.ctx,
            tenant,
            &token_of(&mail),
            Some(Secret::new(password)),
        )
        .await
        .unwrap()
    }

    pub async fn admin(&self) -> SignedIn {
        flows::create_verified_user(
            &self.ctx,
            None,
            &email("root@example.com"),
            Secret::new(PW),
            &Role::parse("admin").unwrap(),
        )
        .await
        .unwrap();
        flows::login(&self.ctx, None, &email("root@example.com"), Secret::new(PW))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn signup_verify_login_refresh_user() {
    let w = world();
    let mail = w.signup_mail(None, " Ann@Example.com ").await;
    assert_eq!(
        (mail.to.as_str(), mail.action),
        ("ann@example.com", Action::VerifyEmail)
    );
    assert!(
        mail.link
            .starts_with("http://localhost:9000/form?action=verify-email&token=")
    );
    // Signup created nobody.
    assert!(
        w.store
            .find_by_email(None, &email("ann@example.com"))
            .await
            .unwrap()
            .is_none()
    );

    let signed = flows::verify_email(&w.ctx, None, &token_of(&mail), Some(Secret::new(PW)))
        .await
        .unwrap();
    assert_eq!(signed.user.user.role.as_str(), "user");
    assert!(signed.user.user.verified_at.is_some());
    assert_eq!(signed.tokens.token_type, "Bearer");
    assert_eq!(signed.tokens.expires_in, 300);

    let login = flows::login(&w.ctx, None, &email("ANN@example.com"), Secret::new(PW))
        .await
        .unwrap();
    let me = flows::current_user(&w.ctx, None, &login.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(me.user.email.as_str(), "ann@example.com");
    let again = flows::refresh(&w.ctx, None, &login.tokens.refresh_token)
        .await
        .unwrap();
    assert_ne!(again.tokens.refresh_token, login.tokens.refresh_token);
    flows::current_user(&w.ctx, None, &again.tokens.access_token)
        .await
        .unwrap();
    // The refresh token a refresh issues refreshes in turn: it carries the password fingerprint
    // computed (once) to check the token it replaces.
    let claims = |t: &str| {
        w.ctx
            .tokens
            .verify_refresh(t, chrono::Utc::now())
            .unwrap()
            .pwd
    };
    assert_eq!(
        claims(&again.tokens.refresh_token),
        claims(&login.tokens.refresh_token)
    );
    flows::refresh(&w.ctx, None, &again.tokens.refresh_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn verification_rules() {
    // (case, what to do with a fresh signup token, expected outcome)
    type Step = fn(
        &World,
        String,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), CoreError>> + '_>,
    >;
    let cases: Vec<(&str, Step, Result<(), &str>)> = vec![
        (
            "weak password",
            |w, t| {
                Box::pin(async move {
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new("weak")))
                        .await
                        .map(drop)
                })
            },
            Err("weak_password"),
        ),
        (
            "no password: random one",
            |w, t| {
                Box::pin(async move { flows::verify_email(&w.ctx, None, &t, None).await.map(drop) })
            },
            Ok(()),
        ),
        (
            "empty password: random one",
            |w, t| {
                Box::pin(async move {
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new("")))
                        .await
                        .map(drop)
                })
            },
            Ok(()),
        ),
        (
            "used twice",
            |w, t| {
                Box::pin(async move {
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new(PW))).await?;
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new(PW)))
                        .await
                        .map(drop)
                })
            },
            Err("token_used"),
        ),
        (
            "expired",
            |w, t| {
                Box::pin(async move {
                    w.clock.advance(Duration::from_secs(3600 + 31));
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new(PW)))
                        .await
                        .map(drop)
                })
            },
            Err("invalid_verification_token"),
        ),
        (
            "within leeway",
            |w, t| {
                Box::pin(async move {
                    w.clock.advance(Duration::from_secs(3600 + 29));
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new(PW)))
                        .await
                        .map(drop)
                })
            },
            Ok(()),
        ),
        (
            "tampered",
            |w, t| {
                Box::pin(async move {
                    // Flip one character of the signature's first byte (never a padding position).
                    let (head, sig) = t.rsplit_once('.').unwrap();
                    let first = if sig.starts_with('A') { 'B' } else { 'A' };
                    let t = format!("{head}.{first}{}", &sig[1..]);
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new(PW)))
                        .await
                        .map(drop)
                })
            },
            Err("invalid_verification_token"),
        ),
        (
            "as a bearer",
            |w, t| Box::pin(async move { flows::current_user(&w.ctx, None, &t).await.map(drop) }),
            Err("invalid_token"),
        ),
        (
            "as a refresh token",
            |w, t| Box::pin(async move { flows::refresh(&w.ctx, None, &t).await.map(drop) }),
            Err("invalid_token"),
        ),
        (
            "in another tenant",
            |w, t| {
                Box::pin(async move {
                    flows::verify_email(
                        &w.ctx,
                        Some(&TenantId::parse("acme").unwrap()),
                        &t,
                        Some(Secret::new(PW)),
                    )
                    .await
                    .map(drop)
                })
            },
            Err("invalid_verification_token"),
        ),
        (
            "address registered since (by invite)",
            |w, t| {
                Box::pin(async move {
                    let admin = w.admin().await;
                    let inv = flows::invite(
                        &w.ctx,
                        None,
                        &admin.tokens.access_token,
                        &email("new@example.com"),
                        &Role::parse("user").unwrap(),
                        None,
                    )
                    .await?;
                    flows::verify_email(&w.ctx, None, &token_of(&inv), Some(Secret::new(PW)))
                        .await?;
                    flows::verify_email(&w.ctx, None, &t, Some(Secret::new(PW)))
                        .await
                        .map(drop)
                })
            },
            Err("token_used"),
        ),
    ];
    for (name, step, expected) in cases {
        let w = world();
        let token = token_of(&w.signup_mail(None, "new@example.com").await);
        check(name, step(&w, token).await, expected);
    }
}

#[tokio::test]
async fn verify_tokens_are_not_access_tokens_nor_the_reverse() {
    let w = world();
    let s = w.user(None, "ann@example.com", PW).await;
    check(
        "access as verify",
        flows::verify_email(&w.ctx, None, &s.tokens.access_token, None).await,
        Err("invalid_verification_token"),
    );
    check(
        "refresh as verify",
        flows::verify_email(&w.ctx, None, &s.tokens.refresh_token, None).await,
        Err("invalid_verification_token"),
    );
    check(
        "refresh as bearer",
        flows::current_user(&w.ctx, None, &s.tokens.refresh_token).await,
        Err("invalid_token"),
    );
    check(
        "access as refresh",
        flows::refresh(&w.ctx, None, &s.tokens.access_token).await,
        Err("invalid_token"),
    );
}

#[tokio::test]
async fn login_rules() {
    let w = world();
    w.user(None, "ann@example.com", PW).await;
    check(
        "wrong password",
        flows::login(
            &w.ctx,
            None,
            &email("ann@example.com"),
            Secret::new("Wr0ng!pw"),
        )
        .await,
        Err("invalid_credentials"),
    );
    check(
        "unknown user",
        flows::login(&w.ctx, None, &email("bob@example.com"), Secret::new(PW)).await,
        Err("invalid_credentials"),
    );
    check(
        "other tenant",
        flows::login(
            &w.ctx,
            Some(&TenantId::parse("t").unwrap()),
            &email("ann@example.com"),
            Secret::new(PW),
        )
        .await,
        Err("invalid_credentials"),
    );

    // An unverified user is told so only after a correct password.
    let hash = authura_core::hash::hash_password(PW).unwrap();
    w.store
        .create(authura_core::NewUser {
            email: email("unv@example.com"),
            role: Role::parse("user").unwrap(),
            tenant: None,
            password_hash: hash,
            verified_at: None,
        })
        .await
        .unwrap();
    check(
        "unverified, wrong password",
        flows::login(&w.ctx, None, &email("unv@example.com"), Secret::new("nope")).await,
        Err("invalid_credentials"),
    );
    check(
        "unverified, right password",
        flows::login(&w.ctx, None, &email("unv@example.com"), Secret::new(PW)).await,
        Err("email_not_verified"),
    );
}

#[tokio::test]
async fn legacy_bcrypt_hashes_are_upgraded_on_login() {
    let w = world();
    let bcrypt_hash = authura_core::PasswordHash::new(bcrypt::hash(PW, 4).unwrap());
    let user = w
        .store
        .create(authura_core::NewUser {
            email: email("go@example.com"),
            role: Role::parse("user").unwrap(),
            tenant: None,
            password_hash: bcrypt_hash,
            verified_at: Some(chrono::Utc::now()),
        })
        .await
        .unwrap();
    flows::login(&w.ctx, None, &email("go@example.com"), Secret::new(PW))
        .await
        .unwrap();
    let after = w.store.find_by_id(None, &user.id).await.unwrap().unwrap();
    assert!(after.password_hash.as_str().starts_with("$argon2id$"));
    flows::login(&w.ctx, None, &email("go@example.com"), Secret::new(PW))
        .await
        .unwrap();
}

#[tokio::test]
async fn password_change_revokes_refresh_tokens() {
    let w = world();
    let s = w.user(None, "ann@example.com", PW).await;
    check(
        "wrong old",
        flows::change_password(
            &w.ctx,
            None,
            &s.tokens.access_token,
            Secret::new("x"),
            Secret::new("N3w!passw"),
        )
        .await,
        Err("invalid_credentials"),
    );
    check(
        "weak new",
        flows::change_password(
            &w.ctx,
            None,
            &s.tokens.access_token,
            Secret::new(PW),
            Secret::new("weak"),
        )
        .await,
        Err("weak_password"),
    );
    flows::change_password(
        &w.ctx,
        None,
        &s.tokens.access_token,
        Secret::new(PW),
        Secret::new("N3w!passw"),
    )
    .await
    .unwrap();
    check(
        "old refresh",
        flows::refresh(&w.ctx, None, &s.tokens.refresh_token).await,
        Err("invalid_token"),
    );
    check(
        "old password",
        flows::login(&w.ctx, None, &email("ann@example.com"), Secret::new(PW)).await,
        Err("invalid_credentials"),
    );
    flows::login(
        &w.ctx,
        None,
        &email("ann@example.com"),
        Secret::new("N3w!passw"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn deleted_users_tokens_fail() {
    let w = world();
    let s = w.user(None, "ann@example.com", PW).await;
    assert!(w.store.delete(None, &s.user.user.id).await.unwrap());
    check(
        "bearer",
        flows::current_user(&w.ctx, None, &s.tokens.access_token).await,
        Err("invalid_token"),
    );
    check(
        "refresh",
        flows::refresh(&w.ctx, None, &s.tokens.refresh_token).await,
        Err("invalid_token"),
    );
}

#[tokio::test]
async fn roles_are_read_from_the_backend_not_the_token() {
    let w = world();
    let admin = w.admin().await;
    let invitee = email("new@example.com");
    let role = Role::parse("editor").unwrap();
    flows::invite(
        &w.ctx,
        None,
        &admin.tokens.access_token,
        &invitee,
        &role,
        None,
    )
    .await
    .unwrap();
    // Demoted in the backend: the same token no longer invites.
    let id = admin_id(&w).await;
    w.store
        .update(
            None,
            &id,
            UserChanges {
                role: Some(Role::parse("user").unwrap()),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    check(
        "demoted",
        flows::invite(
            &w.ctx,
            None,
            &admin.tokens.access_token,
            &email("x@example.com"),
            &role,
            None,
        )
        .await,
        Err("forbidden"),
    );
}

async fn admin_id(w: &World) -> authura_core::UserId {
    w.store
        .find_by_email(None, &email("root@example.com"))
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn invites() {
    let w = world();
    let admin = w.admin().await;
    let user = w.user(None, "ann@example.com", PW).await;
    let editor = Role::parse("editor").unwrap();
    check(
        "not admin",
        flows::invite(
            &w.ctx,
            None,
            &user.tokens.access_token,
            &email("x@example.com"),
            &editor,
            None,
        )
        .await,
        Err("forbidden"),
    );
    check(
        "existing",
        flows::invite(
            &w.ctx,
            None,
            &admin.tokens.access_token,
            &email("ann@example.com"),
            &editor,
            None,
        )
        .await,
        Err("email_taken"),
    );
    check(
        "bad redirect",
        flows::invite(
            &w.ctx,
            None,
            &admin.tokens.access_token,
            &email("x@example.com"),
            &editor,
            Some("https://evil.example"),
        )
        .await,
        Err("invalid_redirect_url"),
    );
    let mail = flows::invite(
        &w.ctx,
        None,
        &admin.tokens.access_token,
        &email("x@example.com"),
        &editor,
        Some("https://app.example.com/join?x=1"),
    )
    .await
    .unwrap();
    assert!(
        mail.link
            .starts_with("https://app.example.com/join?x=1&action=invite&token=")
    );
    assert_eq!(mail.role, Some(editor.clone()));
    let signed = flows::verify_email(&w.ctx, None, &token_of(&mail), None)
        .await
        .unwrap();
    assert_eq!(signed.user.user.role, editor);
    check(
        "used",
        flows::verify_email(&w.ctx, None, &token_of(&mail), None).await,
        Err("token_used"),
    );
}

#[tokio::test]
async fn signup_rules() {
    let w = world();
    w.user(None, "ann@example.com", PW).await;
    // An existing address gets the same answer and no mail.
    assert!(
        flows::signup(&w.ctx, None, &email("ann@example.com"), None)
            .await
            .unwrap()
            .is_none()
    );
    check(
        "bad redirect",
        flows::signup(
            &w.ctx,
            None,
            &email("b@example.com"),
            Some("http://localhost:9000/formx"),
        )
        .await,
        Err("invalid_redirect_url"),
    );
    let mut w2 = world();
    w2.ctx.settings.signup_disabled = true;
    check(
        "disabled",
        flows::signup(&w2.ctx, None, &email("b@example.com"), None).await,
        Err("signup_disabled"),
    );
}

#[tokio::test]
async fn reset_password() {
    let w = world();
    w.user(None, "ann@example.com", PW).await;
    assert!(
        flows::reset_password(&w.ctx, None, &email("nobody@example.com"), None)
            .await
            .unwrap()
            .is_none()
    );
    let mail = flows::reset_password(&w.ctx, None, &email("ann@example.com"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mail.action, Action::ResetPassword);
    let t = token_of(&mail);
    check(
        "no password",
        flows::verify_email(&w.ctx, None, &t, None).await,
        Err("invalid_body"),
    );
    check(
        "weak",
        flows::verify_email(&w.ctx, None, &t, Some(Secret::new("weak"))).await,
        Err("weak_password"),
    );
    flows::verify_email(&w.ctx, None, &t, Some(Secret::new("N3w!passw")))
        .await
        .unwrap();
    check(
        "used",
        flows::verify_email(&w.ctx, None, &t, Some(Secret::new("An0ther!pw"))).await,
        Err("token_used"),
    );
    flows::login(
        &w.ctx,
        None,
        &email("ann@example.com"),
        Secret::new("N3w!passw"),
    )
    .await
    .unwrap();
    // A reset link dies when the password changes another way.
    let s = flows::login(
        &w.ctx,
        None,
        &email("ann@example.com"),
        Secret::new("N3w!passw"),
    )
    .await
    .unwrap();
    let t2 = token_of(
        &flows::reset_password(&w.ctx, None, &email("ann@example.com"), None)
            .await
            .unwrap()
            .unwrap(),
    );
    flows::change_password(
        &w.ctx,
        None,
        &s.tokens.access_token,
        Secret::new("N3w!passw"),
        Secret::new("Th1rd!pw"),
    )
    .await
    .unwrap();
    check(
        "stale",
        flows::verify_email(&w.ctx, None, &t2, Some(Secret::new("F0urth!pw"))).await,
        Err("token_used"),
    );
}

#[tokio::test]
async fn change_email() {
    let w = world();
    let s = w.user(None, "ann@example.com", PW).await;
    w.user(None, "taken@example.com", PW).await;
    assert!(
        flows::change_email(
            &w.ctx,
            None,
            &s.tokens.access_token,
            &email("taken@example.com"),
            None
        )
        .await
        .unwrap()
        .is_none()
    );
    let mail = flows::change_email(
        &w.ctx,
        None,
        &s.tokens.access_token,
        &email("new@example.com"),
        None,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(mail.to.as_str(), "new@example.com");
    let mail2 = flows::change_email(
        &w.ctx,
        None,
        &s.tokens.access_token,
        &email("other@example.com"),
        None,
    )
    .await
    .unwrap()
    .unwrap();
    let signed = flows::verify_email(&w.ctx, None, &token_of(&mail), Some(Secret::new("ignored")))
        .await
        .unwrap();
    assert_eq!(signed.user.user.email.as_str(), "new@example.com");
    // The password was not touched (change-email ignores it).
    flows::login(&w.ctx, None, &email("new@example.com"), Secret::new(PW))
        .await
        .unwrap();
    check(
        "used",
        flows::verify_email(&w.ctx, None, &token_of(&mail), None).await,
        Err("token_used"),
    );
    check(
        "sibling link is stale",
        flows::verify_email(&w.ctx, None, &token_of(&mail2), None).await,
        Err("token_used"),
    );

    // Taken since the link was sent: 409.
    let mail3 = flows::change_email(
        &w.ctx,
        None,
        &signed.tokens.access_token,
        &email("late@example.com"),
        None,
    )
    .await
    .unwrap()
    .unwrap();
    w.user(None, "late@example.com", PW).await;
    check(
        "taken since",
        flows::verify_email(&w.ctx, None, &token_of(&mail3), None).await,
        Err("email_taken"),
    );
}

#[tokio::test]
async fn tenants_are_separate() {
    let w = world();
    let (a, b) = (
        TenantId::parse("a.example").unwrap(),
        TenantId::parse("b.example").unwrap(),
    );
    let in_a = w.user(Some(&a), "ann@example.com", PW).await;
    let in_b = w.user(Some(&b), "ann@example.com", "Other!pw1").await;
    assert_ne!(in_a.user.user.id, in_b.user.user.id);
    w.user(None, "ann@example.com", PW).await;
    check(
        "token of a in b",
        flows::current_user(&w.ctx, Some(&b), &in_a.tokens.access_token).await,
        Err("invalid_token"),
    );
    check(
        "token of a without tenant",
        flows::current_user(&w.ctx, None, &in_a.tokens.access_token).await,
        Err("invalid_token"),
    );
    check(
        "refresh of a in b",
        flows::refresh(&w.ctx, Some(&b), &in_a.tokens.refresh_token).await,
        Err("invalid_token"),
    );
    check(
        "password of a in b",
        flows::login(&w.ctx, Some(&b), &email("ann@example.com"), Secret::new(PW)).await,
        Err("invalid_credentials"),
    );
    let claims = w
        .ctx
        .tokens
        .verify_access(&in_a.tokens.access_token, w.clock.now_for_test())
        .unwrap();
    assert_eq!(claims.tid.as_deref(), Some("a.example"));
    assert_eq!(
        claims.extensions["https://hasura.io/jwt/claims"]["x-hasura-tenant-id"],
        "a.example"
    );
}

#[tokio::test]
async fn impersonation_is_off_in_this_build() {
    let w = world();
    let admin = w.admin().await;
    w.user(None, "ann@example.com", PW).await;
    check(
        "disabled",
        flows::impersonate(
            &w.ctx,
            None,
            &admin.tokens.access_token,
            &email("ann@example.com"),
        )
        .await,
        Err("forbidden"),
    );
    let mut w2 = world();
    w2.ctx.settings.impersonation_enabled = true;
    let admin = w2.admin().await;
    let user = w2.user(None, "ann@example.com", PW).await;
    check(
        "not admin",
        flows::impersonate(
            &w2.ctx,
            None,
            &user.tokens.access_token,
            &email("root@example.com"),
        )
        .await,
        Err("forbidden"),
    );
    let s = flows::impersonate(
        &w2.ctx,
        None,
        &admin.tokens.access_token,
        &email("ann@example.com"),
    )
    .await
    .unwrap();
    let claims = w2
        .ctx
        .tokens
        .verify_access(&s.tokens.access_token, w2.clock.now_for_test())
        .unwrap();
    assert_eq!(claims.sub, user.user.user.id.to_string());
    assert_eq!(claims.act.unwrap().sub, admin_id(&w2).await.to_string());
}

trait NowForTest {
    fn now_for_test(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowForTest for Arc<ManualClock> {
    fn now_for_test(&self) -> chrono::DateTime<chrono::Utc> {
        authura_core::clock::Clock::now(self.as_ref())
    }
}
