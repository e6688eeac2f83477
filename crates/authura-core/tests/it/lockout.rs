//! The per-account failed-login limit of `flows::login` (SPEC §3), as data: each case is a script
//! of logins and clock moves on a fresh world (3 failures per 15 minutes) with the outcome of
//! every login. Every login also states whether a password was checked: never while locked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authura_core::hash::{InlineHasher, PasswordHasher, Verification};
use authura_core::lockout::FailureLimiter;
use authura_core::{CoreError, Email, NewUser, PasswordHash, Role, Secret, TenantId, UserStore};

use crate::flows::{PW, World, world};

const WRONG: &str = "Wr0ng!pass";
const WINDOW: Duration = Duration::from_secs(900);

/// The inline hasher, counting the passwords it checks.
#[derive(Debug, Default)]
struct CountingHasher {
    verifications: AtomicUsize,
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn hash(&self, password: Secret) -> Result<PasswordHash, CoreError> {
        InlineHasher.hash(password).await
    }

    async fn verify(
        &self,
        password: Secret,
        hash: Option<PasswordHash>,
    ) -> Result<Verification, CoreError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        InlineHasher.verify(password, hash).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// An error, by its wire code.
    Refused(&'static str),
    /// `TooManyAttempts`, with the seconds left.
    Locked(u64),
}

enum Step {
    /// A login: tenant, email as typed, password, and the outcome.
    Login(Option<&'static str>, &'static str, &'static str, Outcome),
    Advance(Duration),
}

use Outcome::{Locked, Ok as Signed, Refused};
use Step::{Advance, Login};

const BAD: Outcome = Refused("invalid_credentials");

async fn check(name: &str, steps: &[Step]) {
    let (w, hasher) = locked_world().await;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Advance(by) => w.clock.advance(*by),
            Login(tenant, address, password, want) => {
                let tenant = tenant.map(|t| TenantId::parse(t).unwrap());
                let before = hasher.verifications.load(Ordering::Relaxed);
                let got = authura_core::flows::login(
                    &w.ctx,
                    tenant.as_ref(),
                    &Email::parse(address).unwrap(),
                    Secret::new(*password),
                )
                .await;
                let got = match got {
                    Ok(_) => Signed,
                    Err(CoreError::TooManyAttempts { retry_after }) => {
                        Locked(retry_after.as_secs())
                    }
                    Err(CoreError::InvalidCredentials) => BAD,
                    Err(CoreError::EmailNotVerified) => Refused("email_not_verified"),
                    Err(e) => panic!("{name}, step {i}: unexpected {e:?}"),
                };
                assert_eq!(got, *want, "{name}, step {i}: {address} {password}");
                let hashed = hasher.verifications.load(Ordering::Relaxed) > before;
                assert_eq!(
                    hashed,
                    !matches!(want, Locked(_)),
                    "{name}, step {i}: a password is checked unless the account is locked"
                );
            }
        }
    }
}

/// A world whose limit is 3 failures per 15 minutes, with ann@example.com in no tenant and in
/// tenant `t`, and unv@example.com, who has not verified the address.
async fn locked_world() -> (World, Arc<CountingHasher>) {
    let mut w = world();
    w.user(None, "ann@example.com", PW).await;
    w.user(Some(&TenantId::parse("t").unwrap()), "ann@example.com", PW)
        .await;
    w.store
        .create(NewUser {
            email: Email::parse("unv@example.com").unwrap(),
            role: Role::parse("user").unwrap(),
            tenant: None,
            password_hash: authura_core::hash::hash_password(PW).unwrap(),
            verified_at: None,
        })
        .await
        .unwrap();
    let hasher = Arc::new(CountingHasher::default());
    w.ctx.hasher = hasher.clone();
    w.ctx.login_failures = Arc::new(FailureLimiter::new(3, WINDOW));
    (w, hasher)
}

#[tokio::test]
async fn failed_logins_lock_the_account() {
    check(
        "locks after 3 failures, even the right password",
        &[
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", PW, Locked(900)),
            Login(None, "ann@example.com", WRONG, Locked(900)),
            // Another account is not affected.
            Login(None, "bob@example.com", WRONG, BAD),
            Login(None, "unv@example.com", PW, Refused("email_not_verified")),
        ],
    )
    .await;
    check(
        "an account that does not exist locks the same way",
        &[
            Login(None, "nobody@example.com", PW, BAD),
            Login(None, "nobody@example.com", PW, BAD),
            Login(None, "nobody@example.com", PW, BAD),
            Login(None, "nobody@example.com", PW, Locked(900)),
        ],
    )
    .await;
    check(
        "the address counts as parsed (case and spaces do not make a new account)",
        &[
            Login(None, "ANN@example.com", WRONG, BAD),
            Login(None, " ann@EXAMPLE.com", WRONG, BAD),
            Login(None, "Ann@Example.Com", WRONG, BAD),
            Login(None, "ann@example.com", PW, Locked(900)),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_correct_password_clears_the_count() {
    check(
        "a correct password starts the count over",
        &[
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", PW, Signed),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", PW, Locked(900)),
        ],
    )
    .await;
    check(
        "a correct password of an unverified address clears it too",
        &[
            Login(None, "unv@example.com", WRONG, BAD),
            Login(None, "unv@example.com", WRONG, BAD),
            Login(None, "unv@example.com", PW, Refused("email_not_verified")),
            Login(None, "unv@example.com", WRONG, BAD),
            Login(None, "unv@example.com", WRONG, BAD),
            Login(None, "unv@example.com", PW, Refused("email_not_verified")),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_lock_ends_with_the_window() {
    check(
        "locked until the window of the first failure ends",
        &[
            Login(None, "ann@example.com", WRONG, BAD),
            Advance(Duration::from_secs(100)),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", PW, Locked(800)),
            Advance(Duration::from_secs(500)),
            Login(None, "ann@example.com", PW, Locked(300)),
            Advance(Duration::from_secs(300)),
            Login(None, "ann@example.com", PW, Signed),
        ],
    )
    .await;
    check(
        "failures in an old window do not count in a new one",
        &[
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Advance(WINDOW),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", PW, Signed),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_account_is_the_tenant_and_the_address() {
    check(
        "the same address in another tenant is another account",
        &[
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", WRONG, BAD),
            Login(Some("t"), "ann@example.com", PW, Signed),
            Login(Some("t"), "ann@example.com", WRONG, BAD),
            Login(None, "ann@example.com", PW, Locked(900)),
            Login(Some("u"), "ann@example.com", WRONG, BAD),
        ],
    )
    .await;
}
