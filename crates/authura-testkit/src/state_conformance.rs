//! The state store's conformance suite (SPEC §13): the cases every `SessionStore` must pass
//! (the in-memory store, SQLite, PostgreSQL).
//!
//! As with the `UserStore` suite, one macro call says how to make a fresh, empty store, and each
//! case becomes its own `#[tokio::test]`:
//!
//! ```no_run
//! authura_testkit::state_conformance_tests!(async {
//!     std::sync::Arc::new(authura_core::memory::MemorySessionStore::new())
//!         as std::sync::Arc<dyn authura_core::SessionStore>
//! });
//! ```
//!
//! Return `(store, guard)` when something must outlive the case (see
//! [`Fixture`](crate::conformance::Fixture)).

// Test support: a failed expectation is a test failure, reported by the panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use authura_core::state::{KeyHash, Session, SessionMethod};
use authura_core::types::{TenantId, UserId};
use authura_core::{SessionStore, StoreError};

/// Expands to one `#[tokio::test]` per state conformance case. The argument is an expression,
/// usually an `async` block, evaluated once per case, that yields a fresh, empty store: an
/// `Arc<dyn SessionStore>` or a tuple `(Arc<dyn SessionStore>, guard)`.
#[macro_export]
macro_rules! state_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::state_conformance_tests!(@cases ($make)
            create_then_find_round_trips_every_field,
            find_misses_are_none,
            an_existing_id_or_key_hash_conflicts,
            lists_are_per_user_and_tenant_newest_first,
            one_user_id_in_two_tenants_is_two_users,
            touch_sets_last_seen_only,
            rotation_is_a_compare_and_set,
            racing_rotations_have_one_winner,
            end_session_ends_exactly_one,
            end_user_sessions_spares_the_exception_and_other_users,
            max_active_ends_the_oldest_live_sessions,
            racing_creates_respect_max_active,
            purge_removes_exactly_the_expired,
        );
    };
    (@cases ($make:expr) $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture<dyn authura_core::SessionStore> =
                    $crate::conformance::Fixture::from($make.await);
                $crate::state_conformance::$case(fixture.store()).await;
            }
        )*
    };
}

/// A created session reads back identically (times truncated to the microsecond) by key hash
/// and by id: every field set, and every optional field empty, with numeric and textual user ids.
pub async fn create_then_find_round_trips_every_field(store: Arc<dyn SessionStore>) {
    let mut full = session(
        UserId::Int(42),
        Some("acme"),
        at(1_767_225_600, 123_456_789),
    );
    full.ip = Some("2001:db8::1".into());
    full.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) ünïcode".into());
    full.method = SessionMethod::OAuth("github".into());
    full.generation = 7;
    full.generation_changed_at = at(1_767_225_700, 999_999_999);
    full.last_seen_at = at(1_767_225_650, 1_000);
    let mut bare = session(UserId::Text("u-7f3a".into()), None, at(1_767_225_601, 0));
    bare.method = SessionMethod::VerifyEmail;
    let mut imp = session(UserId::Int(-3), Some("globex"), at(1_767_225_602, 0));
    imp.method = SessionMethod::Impersonation;

    for s in [full, bare, imp] {
        let ended = store.create_session(s.clone(), 0).await.expect("create");
        assert!(ended.is_empty(), "nothing to end: {ended:?}");
        let stored = s.truncated();
        assert_eq!(stored.created_at.timestamp_subsec_nanos() % 1000, 0);
        let by_key = store
            .find_session_by_key(&stored.key_hash)
            .await
            .expect("find");
        assert_eq!(by_key.as_ref(), Some(&stored));
        let by_id = store.find_session(stored.id).await.expect("find");
        assert_eq!(by_id.as_ref(), Some(&stored));
    }
}

/// Lookups of what is not there find nothing, and lists of unknown users are empty.
pub async fn find_misses_are_none(store: Arc<dyn SessionStore>) {
    let s = create(&*store, session(UserId::Int(1), None, t(0))).await;
    assert_eq!(
        store.find_session(Uuid::new_v4()).await.expect("find"),
        None
    );
    assert_eq!(
        store
            .find_session_by_key(&KeyHash::of(b"no such key"))
            .await
            .expect("find"),
        None
    );
    assert!(
        store
            .list_sessions(None, &UserId::Int(2))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store.find_session(s.id).await.expect("find").as_ref(),
        Some(&s)
    );
}

/// A second session with an existing id, or with an existing key hash, is a `Conflict`, and
/// the first one is untouched.
pub async fn an_existing_id_or_key_hash_conflicts(store: Arc<dyn SessionStore>) {
    let first = create(&*store, session(UserId::Int(1), Some("acme"), t(0))).await;
    let mut same_id = session(UserId::Int(2), None, t(1));
    same_id.id = first.id;
    let mut same_key = session(UserId::Int(3), None, t(2));
    same_key.key_hash = first.key_hash;
    for dup in [same_id, same_key] {
        match store.create_session(dup.clone(), 0).await {
            Err(StoreError::Conflict) => {}
            other => panic!("expected Conflict for {dup:?}, got {other:?}"),
        }
    }
    assert_eq!(
        store.find_session(first.id).await.expect("find").as_ref(),
        Some(&first)
    );
    assert_eq!(
        store
            .find_session_by_key(&first.key_hash)
            .await
            .expect("find")
            .as_ref(),
        Some(&first)
    );
    for user in [2, 3] {
        let list = store
            .list_sessions(None, &UserId::Int(user))
            .await
            .expect("list");
        assert!(list.is_empty(), "user {user}: {list:?}");
    }
}

/// A user's list holds exactly their sessions in their tenant, newest first, whatever the order
/// of creation; sessions with the same `created_at` come in descending id order.
pub async fn lists_are_per_user_and_tenant_newest_first(store: Arc<dyn SessionStore>) {
    let user = UserId::Int(5);
    let mut mine = Vec::new();
    for secs in [30, 10, 50, 20] {
        mine.push(create(&*store, session(user.clone(), Some("acme"), t(secs))).await);
    }
    for _ in 0..2 {
        mine.push(create(&*store, session(user.clone(), Some("acme"), t(40))).await);
    }
    create(&*store, session(UserId::Int(6), Some("acme"), t(60))).await;
    create(&*store, session(user.clone(), Some("globex"), t(70))).await;
    create(&*store, session(user.clone(), None, t(80))).await;
    create(
        &*store,
        session(UserId::Text("5".into()), Some("acme"), t(90)),
    )
    .await;

    mine.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
    let listed = store
        .list_sessions(Some(&tenant("acme")), &user)
        .await
        .expect("list");
    assert_eq!(listed, mine);
}

/// The same user id in tenant A, in tenant B and in no tenant names three users: lists and
/// `end_user_sessions` never cross tenants.
pub async fn one_user_id_in_two_tenants_is_two_users(store: Arc<dyn SessionStore>) {
    let user = UserId::Text("shared".into());
    let tenants = [Some("a"), Some("b"), None];
    let mut by_tenant = Vec::new();
    for (i, tn) in tenants.into_iter().enumerate() {
        by_tenant.push(create(&*store, session(user.clone(), tn, t(i as i64))).await);
    }
    for (i, tn) in tenants.into_iter().enumerate() {
        let tid = tn.map(tenant);
        let listed = store
            .list_sessions(tid.as_ref(), &user)
            .await
            .expect("list");
        assert_eq!(listed, vec![by_tenant[i].clone()], "tenant {tn:?}");
    }
    let ended = store
        .end_user_sessions(Some(&tenant("a")), &user, None)
        .await
        .expect("end");
    assert_eq!(ended, vec![by_tenant[0].clone()]);
    for s in &by_tenant[1..] {
        assert_eq!(
            store.find_session(s.id).await.expect("find").as_ref(),
            Some(s)
        );
    }
}

/// `touch_session` sets `last_seen_at` of that session and nothing else; an unknown id is
/// `false`.
pub async fn touch_sets_last_seen_only(store: Arc<dyn SessionStore>) {
    let s = create(&*store, session(UserId::Int(1), None, t(0))).await;
    let other = create(&*store, session(UserId::Int(1), None, t(1))).await;
    let seen = at(1_767_225_600 + 600, 654_321_987);
    assert!(store.touch_session(s.id, seen).await.expect("touch"));
    let mut expected = s.clone();
    expected.last_seen_at = seen;
    let expected = expected.truncated();
    assert_eq!(
        store.find_session(s.id).await.expect("find").as_ref(),
        Some(&expected)
    );
    assert_eq!(
        store.find_session(other.id).await.expect("find").as_ref(),
        Some(&other)
    );
    assert!(
        !store
            .touch_session(Uuid::new_v4(), seen)
            .await
            .expect("touch")
    );
}

/// Rotation moves the generation from the expected one to the next and stamps the time; a
/// stale expectation loses and reports the current state unchanged; an unknown id is `None`.
pub async fn rotation_is_a_compare_and_set(store: Arc<dyn SessionStore>) {
    let s = create(&*store, session(UserId::Int(1), None, t(0))).await;
    let now = at(1_767_225_600 + 30, 500_000_999);

    let won = store
        .rotate_generation(s.id, 0, now)
        .await
        .expect("rotate")
        .expect("session exists");
    let mut after = s.clone();
    after.generation = 1;
    after.generation_changed_at = now;
    let after = after.truncated();
    assert!(won.won);
    assert_eq!(won.session, after);

    for stale in [0, 2, -1] {
        let lost = store
            .rotate_generation(s.id, stale, t(99))
            .await
            .expect("rotate")
            .expect("session exists");
        assert!(!lost.won, "expected {stale}");
        assert_eq!(lost.session, after, "expected {stale}");
    }
    assert_eq!(
        store.find_session(s.id).await.expect("find").as_ref(),
        Some(&after)
    );
    let again = store
        .rotate_generation(s.id, 1, t(100))
        .await
        .expect("rotate")
        .expect("session exists");
    assert!(again.won);
    assert_eq!(again.session.generation, 2);
    assert_eq!(
        store
            .rotate_generation(Uuid::new_v4(), 0, now)
            .await
            .expect("rotate"),
        None
    );
}

/// Sixteen rotations of one generation at once: exactly one wins, every loser sees the
/// winner's generation, and the session moved by exactly one.
pub async fn racing_rotations_have_one_winner(store: Arc<dyn SessionStore>) {
    const TASKS: usize = 16;
    let s = create(&*store, session(UserId::Int(1), None, t(0))).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks = (0..TASKS)
        .map(|i| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.rotate_generation(s.id, 0, t(10 + i as i64)).await
            })
        })
        .collect::<Vec<_>>();
    let mut winners = 0;
    for task in futures_util::future::join_all(tasks).await {
        let rotation = task
            .expect("task panicked")
            .expect("rotate")
            .expect("session exists");
        assert_eq!(rotation.session.generation, 1);
        winners += usize::from(rotation.won);
    }
    assert_eq!(winners, 1);
    let now = store
        .find_session(s.id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(now.generation, 1);
}

/// Ending a session returns it and removes it (by id and by key); ending it again is `None`,
/// and the user's other session stays.
pub async fn end_session_ends_exactly_one(store: Arc<dyn SessionStore>) {
    let s = create(&*store, session(UserId::Int(1), None, t(0))).await;
    let other = create(&*store, session(UserId::Int(1), None, t(1))).await;
    assert_eq!(
        store.end_session(s.id).await.expect("end").as_ref(),
        Some(&s)
    );
    assert_eq!(store.find_session(s.id).await.expect("find"), None);
    assert_eq!(
        store.find_session_by_key(&s.key_hash).await.expect("find"),
        None
    );
    assert_eq!(store.end_session(s.id).await.expect("end"), None);
    assert_eq!(
        store
            .list_sessions(None, &UserId::Int(1))
            .await
            .expect("list"),
        vec![other]
    );
}

/// Ending a user's sessions ends all of them but the exception, and nobody else's.
pub async fn end_user_sessions_spares_the_exception_and_other_users(store: Arc<dyn SessionStore>) {
    let user = UserId::Int(1);
    let mut mine = Vec::new();
    for secs in 0..4 {
        mine.push(create(&*store, session(user.clone(), None, t(secs))).await);
    }
    let theirs = create(&*store, session(UserId::Int(2), None, t(9))).await;
    let keep = mine[2].clone();

    let ended = store
        .end_user_sessions(None, &user, Some(keep.id))
        .await
        .expect("end");
    assert_eq!(ids(&ended), ids(&[&mine[..2], &mine[3..]].concat()));
    assert_eq!(
        store.list_sessions(None, &user).await.expect("list"),
        vec![keep.clone()]
    );
    let ended = store
        .end_user_sessions(None, &user, None)
        .await
        .expect("end");
    assert_eq!(ended, vec![keep]);
    assert!(
        store
            .list_sessions(None, &user)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store.find_session(theirs.id).await.expect("find").as_ref(),
        Some(&theirs)
    );
    assert!(
        store
            .end_user_sessions(None, &user, None)
            .await
            .expect("end")
            .is_empty()
    );
}

/// With `max_active` = N, opening one more ends the user's oldest live sessions so N remain,
/// and returns them; expired sessions neither count nor get ended here; other users and
/// tenants are untouched; 0 is unlimited.
pub async fn max_active_ends_the_oldest_live_sessions(store: Arc<dyn SessionStore>) {
    let user = UserId::Int(1);
    let acme = Some(tenant("acme"));
    let mut expired = session(user.clone(), Some("acme"), t(0));
    expired.expires_at = t(5);
    let expired = create(&*store, expired).await;
    let a = create(&*store, session(user.clone(), Some("acme"), t(10))).await;
    let b = create(&*store, session(user.clone(), Some("acme"), t(20))).await;
    let elsewhere = create(&*store, session(user.clone(), Some("globex"), t(1))).await;
    let other_user = create(&*store, session(UserId::Int(2), Some("acme"), t(2))).await;

    let c = session(user.clone(), Some("acme"), t(30));
    let ended = store.create_session(c.clone(), 2).await.expect("create");
    assert_eq!(ended, vec![a.clone()]);
    let c = c.truncated();
    assert_eq!(
        store
            .list_sessions(acme.as_ref(), &user)
            .await
            .expect("list"),
        vec![c.clone(), b.clone(), expired.clone()]
    );

    let d = session(user.clone(), Some("acme"), t(40));
    let ended = store.create_session(d.clone(), 1).await.expect("create");
    assert_eq!(ended, vec![b, c]);

    let e = session(user.clone(), Some("acme"), t(50));
    assert!(
        store
            .create_session(e.clone(), 0)
            .await
            .expect("create")
            .is_empty()
    );
    assert_eq!(
        store
            .list_sessions(acme.as_ref(), &user)
            .await
            .expect("list"),
        vec![e.truncated(), d.truncated(), expired]
    );
    for s in [elsewhere, other_user] {
        assert_eq!(
            store.find_session(s.id).await.expect("find").as_ref(),
            Some(&s)
        );
    }
}

/// Sixteen sign-ins of one user at once with `max_active` = 2, in several rounds (a race is
/// not lost every time): two sessions remain, and every other session was reported ended
/// exactly once.
pub async fn racing_creates_respect_max_active(store: Arc<dyn SessionStore>) {
    const TASKS: usize = 16;
    for round in 0..6 {
        let user = UserId::Int(round);
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let sessions: Vec<Session> = (0..TASKS)
            .map(|i| session(user.clone(), Some("acme"), t(i as i64 % 3)))
            .collect();
        let tasks = sessions
            .iter()
            .cloned()
            .map(|s| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.create_session(s, 2).await
                })
            })
            .collect::<Vec<_>>();
        let mut ended = Vec::new();
        for task in futures_util::future::join_all(tasks).await {
            ended.extend(task.expect("task panicked").expect("create"));
        }
        let left = store
            .list_sessions(Some(&tenant("acme")), &user)
            .await
            .expect("list");
        assert_eq!(left.len(), 2, "round {round}, left: {left:?}");
        let ended_ids = ids(&ended);
        assert_eq!(
            ended_ids.len(),
            ended.len(),
            "round {round}: a session ended twice"
        );
        assert_eq!(ended.len(), TASKS - 2, "round {round}");
        let mut all = ended_ids;
        all.extend(ids(&left));
        assert_eq!(all, ids(&sessions), "round {round}");
    }
}

/// Purging removes the sessions expired at `now` (expiry at `now` included) and only those.
pub async fn purge_removes_exactly_the_expired(store: Arc<dyn SessionStore>) {
    let mut stale = Vec::new();
    for (i, expiry) in [-100, -1, 0].into_iter().enumerate() {
        let mut s = session(UserId::Int(i as i64), None, t(-1000));
        s.expires_at = t(expiry);
        stale.push(create(&*store, s).await);
    }
    let mut fresh = session(UserId::Int(9), Some("acme"), t(-1000));
    fresh.expires_at = t(0) + Duration::microseconds(1);
    let fresh = create(&*store, fresh).await;

    assert_eq!(store.purge_expired_sessions(t(0)).await.expect("purge"), 3);
    for s in stale {
        assert_eq!(store.find_session(s.id).await.expect("find"), None);
    }
    assert_eq!(
        store.find_session(fresh.id).await.expect("find").as_ref(),
        Some(&fresh)
    );
    assert_eq!(store.purge_expired_sessions(t(0)).await.expect("purge"), 0);
}

/// A fresh session for `user` in `tenant_id`, created at `created`, expiring 30 days later, with
/// a random id and key.
fn session(user: UserId, tenant_id: Option<&str>, created: DateTime<Utc>) -> Session {
    Session {
        id: Uuid::new_v4(),
        key_hash: KeyHash::of(Uuid::new_v4().as_bytes()),
        user_id: user,
        tenant: tenant_id.map(tenant),
        created_at: created,
        last_seen_at: created,
        expires_at: created + Duration::days(30),
        ip: None,
        user_agent: None,
        method: SessionMethod::Password,
        generation: 0,
        generation_changed_at: created,
    }
}

/// Creates a session with no limit and returns it as stored.
async fn create(store: &dyn SessionStore, s: Session) -> Session {
    let ended = store.create_session(s.clone(), 0).await.expect("create");
    assert!(ended.is_empty(), "max_active 0 ended {ended:?}");
    s.truncated()
}

fn ids(sessions: &[Session]) -> HashSet<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("valid tenant")
}

/// A base time plus `secs` seconds.
fn t(secs: i64) -> DateTime<Utc> {
    at(1_767_225_600 + secs, 0)
}

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, nanos).single().expect("valid time")
}
