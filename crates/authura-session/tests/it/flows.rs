//! The core flows with sessions on (SPEC §8): every sign-in opens a session its tokens are
//! bound to, `/refresh` rotates, a reuse ends the session, and a password or address change
//! ends the user's sessions. Sessions off is core's own suite, which runs unchanged.

use std::sync::Arc;
use std::time::Duration;

use authura_core::clock::Clock;
use authura_core::flows::{self, Context, FlowSettings, SignedIn};
use authura_core::hash::InlineHasher;
use authura_core::hook::NoHook;
use authura_core::keys::AccessKey;
use authura_core::lockout::FailureLimiter;
use authura_core::mail::Mail;
use authura_core::memory::MemoryStore;
use authura_core::policy::PasswordPolicy;
use authura_core::redirect::RedirectPolicy;
use authura_core::state::{Session, SessionMethod};
use authura_core::token::{TokenPair, TokenSettings, Tokens};
use authura_core::{CoreError, Email, Role, Secret, UserId};
use url::Url;
use uuid::Uuid;

use crate::support::{Sessions, defaults};

const PW: &str = "Str0ng!pw";

struct World {
    ctx: Context,
    s: Sessions,
}

fn world() -> World {
    let s = Sessions::new(defaults());
    let form = Url::parse("http://localhost:9000/form").unwrap();
    let ctx = Context {
        store: Arc::new(MemoryStore::new()),
        hasher: Arc::new(InlineHasher),
        hook: Arc::new(NoHook),
        tokens: Tokens::new(TokenSettings {
            access_key: AccessKey::Hs256(Secret::new("a".repeat(32))),
            previous_keys: Vec::new(),
            refresh_secret: Secret::new("r".repeat(32)),
            verify_secret: Secret::new("v".repeat(32)),
            access_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(3600),
            verify_ttl: Duration::from_secs(3600),
            issuer: None,
            audience: None,
            extensions: Vec::new(),
        })
        .unwrap(),
        clock: s.clock.clone(),
        settings: FlowSettings {
            admin_role: Role::parse("admin").unwrap(),
            default_role: Role::parse("user").unwrap(),
            signup_disabled: false,
            impersonation_enabled: true,
            captcha: false,
            policy: PasswordPolicy::seed(),
            verify_redirect_url: form.clone(),
            redirects: RedirectPolicy::new(vec![form]),
        },
        login_failures: Arc::new(FailureLimiter::new(10, Duration::from_secs(900))),
        sessions: Some(s.policy.clone()),
        policies: authura_core::flows::Policies::off(),
    };
    World { ctx, s }
}

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

/// `sid` of both tokens (which must agree) and `gen` of the refresh token.
fn binding(w: &World, pair: &TokenPair) -> (Uuid, i64) {
    let now = w.s.clock.now();
    let access = w.ctx.tokens.verify_access(&pair.access_token, now).unwrap();
    let refresh = w
        .ctx
        .tokens
        .verify_refresh(&pair.refresh_token, now)
        .unwrap();
    assert_eq!(access.sid, refresh.sid, "both tokens name one session");
    let sid = Uuid::parse_str(&refresh.sid.expect("sid")).unwrap();
    (sid, refresh.generation.expect("gen"))
}

fn invalid_token<T: std::fmt::Debug>(what: &str, r: Result<T, CoreError>) {
    assert!(matches!(r, Err(CoreError::InvalidToken)), "{what}: {r:?}");
}

impl World {
    /// Signs up and verifies `address`: a verify-email session.
    async fn user(&self, address: &str) -> SignedIn {
        let mail = flows::signup(&self.ctx, None, &email(address), None)
            .await
            .unwrap()
            .unwrap();
        flows::verify_email(&self.ctx, None, &token_of(&mail), Some(Secret::new(PW)))
            .await
            .unwrap()
    }

    async fn login(&self, address: &str) -> SignedIn {
        flows::login(&self.ctx, None, &email(address), Secret::new(PW))
            .await
            .unwrap()
    }

    async fn refresh(&self, pair: &TokenPair) -> Result<SignedIn, CoreError> {
        flows::refresh(&self.ctx, None, &pair.refresh_token).await
    }

    async fn sessions_of(&self, id: &UserId) -> Vec<Session> {
        self.s.policy.list(None, id).await.unwrap()
    }
}

#[tokio::test]
async fn every_sign_in_opens_a_session_its_tokens_are_bound_to() {
    let w = world();
    let verified = w.user("ann@example.com").await;
    let login = w.login("ann@example.com").await;
    flows::create_verified_user(
        &w.ctx,
        None,
        &email("root@example.com"),
        Secret::new(PW),
        &Role::parse("admin").unwrap(),
    )
    .await
    .unwrap();
    let admin = w.login("root@example.com").await;
    let acting = flows::impersonate(
        &w.ctx,
        None,
        &admin.tokens.access_token,
        &email("ann@example.com"),
    )
    .await
    .unwrap();
    let ann = verified.user.user.id.clone();
    for (name, signed, method) in [
        ("verify-email", &verified, SessionMethod::VerifyEmail),
        ("password", &login, SessionMethod::Password),
        ("impersonation", &acting, SessionMethod::Impersonation),
    ] {
        let (sid, generation) = binding(&w, &signed.tokens);
        assert_eq!(generation, 0, "{name}");
        let session = w.s.policy.find(sid).await.unwrap();
        assert_eq!(session.method, method, "{name}");
        assert_eq!(
            session.user_id, ann,
            "{name}: the session is the signed-in user's"
        );
    }
    // Three sessions of ann's, newest first; the admin's own is the admin's.
    let methods: Vec<_> = w
        .sessions_of(&ann)
        .await
        .into_iter()
        .map(|s| s.method)
        .collect();
    assert_eq!(methods.len(), 3);
    assert_eq!(w.sessions_of(&admin.user.user.id).await.len(), 1);
    // The access token's `sid` reaches the bearer's claims.
    let me = flows::authenticate(&w.ctx, None, &login.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(
        me.claims.sid,
        Some(binding(&w, &login.tokens).0.to_string())
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_ends_the_session() {
    let w = world();
    w.user("ann@example.com").await;
    let first = w.login("ann@example.com").await;
    let (sid, _) = binding(&w, &first.tokens);

    let second = w.refresh(&first.tokens).await.unwrap();
    assert_eq!(binding(&w, &second.tokens), (sid, 1));
    // Another tab presents the same token within the interval: the current generation again.
    w.s.advance(9);
    let other_tab = w.refresh(&first.tokens).await.unwrap();
    assert_eq!(binding(&w, &other_tab.tokens), (sid, 1));
    let third = w.refresh(&second.tokens).await.unwrap();
    assert_eq!(binding(&w, &third.tokens), (sid, 2));

    // Generation 0 now is two behind: a reuse. The session ends, and every token bound to it
    // with it, the newest included.
    invalid_token("replayed", w.refresh(&first.tokens).await);
    assert!(w.s.policy.find(sid).await.is_err());
    invalid_token("newest after the reuse", w.refresh(&third.tokens).await);
    // The user's other sessions are not touched by it.
    assert_eq!(w.sessions_of(&first.user.user.id).await.len(), 1);
}

#[tokio::test]
async fn after_the_interval_the_previous_generation_is_a_reuse() {
    let w = world();
    w.user("ann@example.com").await;
    let first = w.login("ann@example.com").await;
    let second = w.refresh(&first.tokens).await.unwrap();
    w.s.advance(11);
    invalid_token("late replay", w.refresh(&first.tokens).await);
    invalid_token("the session is gone", w.refresh(&second.tokens).await);
}

#[tokio::test]
async fn two_concurrent_refreshes_of_one_token_both_succeed() {
    let w = world();
    w.user("ann@example.com").await;
    let first = w.login("ann@example.com").await;
    let (sid, _) = binding(&w, &first.tokens);
    let (a, b) = tokio::join!(w.refresh(&first.tokens), w.refresh(&first.tokens));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(binding(&w, &a.tokens), (sid, 1));
    assert_eq!(binding(&w, &b.tokens), (sid, 1));
    // Both go on refreshing: one rotates, the other is within the interval of that rotation.
    assert_eq!(
        binding(&w, &w.refresh(&a.tokens).await.unwrap().tokens),
        (sid, 2)
    );
    assert_eq!(
        binding(&w, &w.refresh(&b.tokens).await.unwrap().tokens),
        (sid, 2)
    );
}

#[tokio::test]
async fn refresh_needs_a_live_session() {
    let w = world();
    let signed = w.user("ann@example.com").await;
    let ann = signed.user.user.id.clone();

    // Ended (a logout).
    let login = w.login("ann@example.com").await;
    w.s.policy.end(binding(&w, &login.tokens).0).await.unwrap();
    invalid_token("ended", w.refresh(&login.tokens).await);

    // Idle, with an idle timeout: a world whose policy has one.
    let mut idle = world();
    let policy = authura_session::SessionPolicy::new(
        idle.s.store.clone(),
        idle.s.clock.clone(),
        authura_session::SessionSettings {
            idle_timeout: Duration::from_secs(600),
            ..defaults()
        },
    );
    idle.ctx.sessions = Some(Arc::new(policy));
    idle.user("bob@example.com").await;
    let bob = idle.login("bob@example.com").await;
    idle.s.advance(599);
    let bob = idle.refresh(&bob.tokens).await.unwrap();
    idle.s.advance(600);
    invalid_token("idle", idle.refresh(&bob.tokens).await);

    // Expired: past SESSION_EXPIRATION (the refresh token itself lives an hour, so one issued
    // just before the session's end is still valid as a token).
    let w2 = world();
    w2.user("cy@example.com").await;
    let mut cy = w2.login("cy@example.com").await;
    for _ in 0..719 {
        w2.s.advance(3600);
        cy = w2.refresh(&cy.tokens).await.unwrap();
    }
    w2.s.advance(3600);
    invalid_token("expired", w2.refresh(&cy.tokens).await);

    // A refresh token bound to no session (issued while sessions were off) shows no live
    // session.
    let mut off = world();
    off.ctx.sessions = None;
    off.ctx.store = w.ctx.store.clone();
    let unbound = off.login("ann@example.com").await;
    let payload = w
        .ctx
        .tokens
        .verify_refresh(&unbound.tokens.refresh_token, w.s.clock.now())
        .unwrap();
    assert_eq!((payload.sid, payload.generation), (None, None));
    invalid_token("unbound", w.refresh(&unbound.tokens).await);
    // Nothing above touched the live ones.
    assert_eq!(w.sessions_of(&ann).await.len(), 1);
}

#[tokio::test]
async fn a_password_change_ends_every_session() {
    let w = world();
    let signed = w.user("ann@example.com").await;
    let ann = signed.user.user.id.clone();
    let login = w.login("ann@example.com").await;
    let other = w.user("bob@example.com").await;
    assert_eq!(w.sessions_of(&ann).await.len(), 2);
    flows::change_password(
        &w.ctx,
        None,
        &login.tokens.access_token,
        Secret::new(PW),
        Secret::new("N3w!passw"),
    )
    .await
    .unwrap();
    assert!(w.sessions_of(&ann).await.is_empty());
    assert_eq!(w.sessions_of(&other.user.user.id).await.len(), 1);
    // A wrong old password changes nothing and ends nothing.
    let again = flows::login(
        &w.ctx,
        None,
        &email("ann@example.com"),
        Secret::new("N3w!passw"),
    )
    .await
    .unwrap();
    assert!(
        flows::change_password(
            &w.ctx,
            None,
            &again.tokens.access_token,
            Secret::new("wrong"),
            Secret::new("An0ther!pw"),
        )
        .await
        .is_err()
    );
    assert_eq!(w.sessions_of(&ann).await.len(), 1);
}

#[tokio::test]
async fn a_reset_or_an_address_change_ends_the_sessions_and_opens_one() {
    let w = world();
    let signed = w.user("ann@example.com").await;
    let ann = signed.user.user.id.clone();
    w.login("ann@example.com").await;

    let mail = flows::reset_password(&w.ctx, None, &email("ann@example.com"), None)
        .await
        .unwrap()
        .unwrap();
    let reset = flows::verify_email(
        &w.ctx,
        None,
        &token_of(&mail),
        Some(Secret::new("N3w!passw")),
    )
    .await
    .unwrap();
    let after = w.sessions_of(&ann).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].id, binding(&w, &reset.tokens).0);
    assert_eq!(after[0].method, SessionMethod::VerifyEmail);

    let mail = flows::change_email(
        &w.ctx,
        None,
        &reset.tokens.access_token,
        &email("ann@new.example"),
        None,
    )
    .await
    .unwrap()
    .unwrap();
    let changed = flows::verify_email(&w.ctx, None, &token_of(&mail), None)
        .await
        .unwrap();
    let after = w.sessions_of(&ann).await;
    assert_eq!(
        after.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![binding(&w, &changed.tokens).0]
    );
    invalid_token("the reset's refresh token", w.refresh(&reset.tokens).await);
}

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Until the audit log exists (issue 16), a reuse is a warning line naming the session and the
/// user, and no token.
#[tokio::test]
async fn a_reuse_is_logged_as_a_warning_naming_the_session_and_user() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // With exactly one dispatcher in the process, tracing-core computes a callsite's interest
    // from the default of whichever thread first reaches it: another test's thread (which
    // has none) reaching the reuse `warn!` first would cache "never" for every thread. A second
    // dispatcher, alive throughout, makes it ask every registered dispatcher instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _default = tracing::subscriber::set_default(subscriber);

    let w = world();
    w.user("ann@example.com").await;
    let first = w.login("ann@example.com").await;
    let (sid, _) = binding(&w, &first.tokens);
    let second = w.refresh(&first.tokens).await.unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.is_empty(), "a rotation logs nothing at WARN: {log}");
    w.refresh(&second.tokens).await.unwrap();
    invalid_token("replay", w.refresh(&first.tokens).await);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    for expected in [
        " WARN ",
        "refresh.reuse_detected",
        &format!("session_id={sid}"),
        &format!("user_id={}", first.user.user.id),
        "presented_generation=0",
        "current_generation=2",
    ] {
        assert!(log.contains(expected), "log {log:?} lacks {expected:?}");
    }
    for token in [&first.tokens.refresh_token, &second.tokens.refresh_token] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token reached the log: {log}");
    }
}
