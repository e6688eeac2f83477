//! The session cache (SPEC §8, "The cache"): freshness by TTL and by the session rules,
//! invalidation, races with fills, the bypass while events are lost, the bound; then the
//! policy and the events together, in one process on every store and as two instances on one
//! PostgreSQL database (`LISTEN/NOTIFY`, a killed listening connection).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authura_backend_pg::{PgStateEvents, PgStateSettings, PgStateStore};
use authura_core::clock::{Clock, ManualClock};
use authura_core::state::{
    KeyHash, LocalStateEvents, Session, SessionMethod, SessionStore, StateEvent, StateEvents,
    StateSignal,
};
use authura_core::{Secret, TenantId, UserId};
use authura_session::{
    CacheSettings, CacheStats, Opened, Opening, SessionCache, SessionError, SessionPolicy,
    SessionSettings, follow_events,
};
use proptest::prelude::*;
use uuid::Uuid;

use crate::on_every_store;
use crate::support::{Backend, Sessions, defaults, t0, user};

/// What tests store beside a session: the user's snapshot, as the server will.
type Snapshot = String;

fn settings(capacity: usize, ttl: u64) -> CacheSettings {
    CacheSettings {
        capacity,
        ttl: Duration::from_secs(ttl),
    }
}

fn cache_on(
    clock: &Arc<ManualClock>,
    cache: CacheSettings,
    sessions: SessionSettings,
) -> SessionCache<Snapshot> {
    SessionCache::new(cache, sessions, clock.clone())
}

/// A session record of `user_id` in `tenant`, opened now, with key `key`.
fn session(clock: &ManualClock, key: u32, tenant: Option<&str>, user_id: i64) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::new_v4(),
        key_hash: KeyHash::of(&key.to_le_bytes()),
        user_id: UserId::Int(user_id),
        tenant: tenant.map(|t| TenantId::parse(t).unwrap()),
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::hours(1),
        ip: None,
        user_agent: None,
        method: SessionMethod::Password,
        generation: 0,
        generation_changed_at: now,
    }
}

fn fill(cache: &SessionCache<Snapshot>, s: &Session) -> bool {
    let ticket = cache.ticket();
    cache.insert(ticket, s.clone(), format!("user {}", s.user_id))
}

fn hit(cache: &SessionCache<Snapshot>, s: &Session) -> bool {
    match cache.get(&s.key_hash) {
        Some(entry) => {
            assert_eq!(entry.session, *s);
            assert_eq!(entry.value, format!("user {}", s.user_id));
            true
        }
        None => false,
    }
}

#[test]
fn entries_are_trusted_for_the_ttl_and_by_the_session_rules() {
    // (name, idle timeout, session lifetime, steps: (seconds to advance, then a hit?)).
    type Case = (&'static str, u64, i64, &'static [(u64, bool)]);
    let cases: [Case; 3] = [
        ("the ttl", 0, 3600, &[(0, true), (59, true), (1, false)]),
        ("the absolute expiry", 0, 30, &[(29, true), (1, false)]),
        ("the idle timeout", 20, 3600, &[(19, true), (1, false)]),
    ];
    for (name, idle, lifetime, steps) in cases {
        let clock = Arc::new(ManualClock::new(t0()));
        let rules = SessionSettings {
            idle_timeout: Duration::from_secs(idle),
            ..defaults()
        };
        let cache = cache_on(&clock, settings(100, 60), rules);
        let mut s = session(&clock, 1, None, 1);
        s.expires_at = clock.now() + chrono::Duration::seconds(lifetime);
        assert!(fill(&cache, &s), "{name}");
        for (i, &(advance, want)) in steps.iter().enumerate() {
            clock.advance(Duration::from_secs(advance));
            assert_eq!(hit(&cache, &s), want, "{name}, step {i}");
        }
        // A miss for staleness drops the entry.
        assert_eq!(cache.len(), 0, "{name}");
    }
}

#[test]
fn invalidation_by_session_by_user_and_of_everything() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cache = cache_on(&clock, settings(100, 60), defaults());
    // User 1 with no tenant (two sessions), user 1 in tenant "a", user 2.
    let all = [
        session(&clock, 1, None, 1),
        session(&clock, 2, None, 1),
        session(&clock, 3, Some("a"), 1),
        session(&clock, 4, None, 2),
    ];
    let check = |event: Option<StateEvent>, want: [bool; 4]| {
        cache.clear();
        for s in &all {
            assert!(fill(&cache, s));
        }
        if let Some(event) = &event {
            cache.apply(&StateSignal::Event(event.clone()));
        }
        let got = all.each_ref().map(|s| hit(&cache, s));
        assert_eq!(got, want, "{event:?}");
    };
    check(None, [true; 4]);
    check(
        Some(StateEvent::SessionEnded(all[1].id)),
        [true, false, true, true],
    );
    check(
        Some(StateEvent::SessionEnded(Uuid::new_v4())),
        [true, true, true, true],
    );
    check(
        Some(StateEvent::UserChanged {
            tenant: None,
            user_id: user(1),
        }),
        [false, false, true, true],
    );
    check(
        Some(StateEvent::UserChanged {
            tenant: Some(TenantId::parse("a").unwrap()),
            user_id: user(1),
        }),
        [true, true, false, true],
    );
    // A textual "1" is another user than the number 1.
    check(
        Some(StateEvent::UserChanged {
            tenant: None,
            user_id: UserId::Text("1".into()),
        }),
        [true; 4],
    );
    check(Some(StateEvent::All), [false; 4]);
}

#[test]
fn a_fill_whose_read_raced_an_invalidation_is_refused() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cache = cache_on(&clock, settings(100, 60), defaults());
    let s = session(&clock, 1, None, 1);
    // The read began, then the session ended elsewhere: the read may predate the end.
    let ticket = cache.ticket();
    cache.remove_session(s.id);
    assert!(!cache.insert(ticket, s.clone(), "stale".into()));
    assert!(!hit(&cache, &s));
    // Any invalidation counts, even of another session: the cache cannot tell.
    let ticket = cache.ticket();
    cache.remove_user(None, &user(99));
    assert!(!cache.insert(ticket, s.clone(), "stale".into()));
    // A ticket taken after the invalidation is fine.
    assert!(fill(&cache, &s));
    assert!(hit(&cache, &s));
    let stats = cache.stats();
    assert_eq!((stats.refused_fills, stats.invalidations), (2, 2));
}

#[test]
fn while_events_are_lost_the_cache_is_empty_and_bypassed() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cache = cache_on(&clock, settings(100, 60), defaults());
    let s = session(&clock, 1, None, 1);
    assert!(fill(&cache, &s));
    let before_loss = cache.ticket();
    cache.apply(&StateSignal::Lost);
    assert!(cache.is_bypassed());
    assert!(cache.is_empty());
    assert!(!hit(&cache, &s));
    // Nothing is stored while events may be missed, not even with a ticket from the gap,
    // once the events are back: its read may have missed an event.
    let during = cache.ticket();
    assert!(!cache.insert(during, s.clone(), "x".into()));
    cache.apply(&StateSignal::Back);
    assert!(!cache.is_bypassed());
    assert!(!cache.insert(during, s.clone(), "x".into()));
    assert!(!cache.insert(before_loss, s.clone(), "x".into()));
    assert!(!hit(&cache, &s));
    assert!(fill(&cache, &s));
    assert!(hit(&cache, &s));
}

#[test]
fn the_cache_is_bounded_and_keeps_what_is_used() {
    let clock = Arc::new(ManualClock::new(t0()));
    // 1000 entries over several shards: the capacity is exact, whatever the split.
    let cache = cache_on(&clock, settings(1000, 60), defaults());
    assert_eq!(cache.capacity(), 1000);
    let hot: Vec<Session> = (0..50).map(|k| session(&clock, k, None, 1)).collect();
    for s in &hot {
        assert!(fill(&cache, s));
    }
    for k in 50..100_000 {
        assert!(fill(&cache, &session(&clock, k, None, 2)));
        assert!(cache.len() <= 1000);
        if k % 100 == 0 {
            for s in &hot {
                assert!(hit(&cache, s), "a hot entry was evicted at {k}");
            }
        }
    }
    let stats = cache.stats();
    assert_eq!(stats.entries, 1000);
    assert_eq!(stats.evictions, 100_000 - 1000);
    assert_eq!(stats.hits, 50 * 999);
    // A cache of 7 (one shard) is exact too.
    let small = cache_on(&clock, settings(7, 60), defaults());
    for k in 0..100 {
        fill(&small, &session(&clock, k, None, 1));
    }
    assert_eq!((small.capacity(), small.len()), (7, 7));
}

#[test]
fn a_zero_size_or_ttl_turns_the_cache_off() {
    let clock = Arc::new(ManualClock::new(t0()));
    for off in [settings(0, 60), settings(100, 0)] {
        let cache = cache_on(&clock, off.clone(), defaults());
        let s = session(&clock, 1, None, 1);
        assert!(!fill(&cache, &s), "{off:?}");
        assert!(!hit(&cache, &s), "{off:?}");
        assert_eq!(cache.stats().misses, 1, "{off:?}");
    }
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
enum Op {
    Fill(u8),
    Get(u8),
    EndSession(u8),
    EndUser(u8),
    Clear,
    Advance(u8),
    RacedFill(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..40u8).prop_map(Op::Fill),
        6 => (0..40u8).prop_map(Op::Get),
        1 => (0..40u8).prop_map(Op::EndSession),
        1 => (0..4u8).prop_map(Op::EndUser),
        1 => Just(Op::Clear),
        1 => (0..30u8).prop_map(Op::Advance),
        1 => (0..40u8).prop_map(Op::RacedFill),
    ]
}

proptest! {
    /// Against a model (a map without a bound): the cache never holds more than its capacity,
    /// never answers with an entry that was invalidated, is older than the TTL or belongs to
    /// another key, and a fill just made answers at once.
    #[test]
    fn the_cache_never_answers_what_it_should_not(ops in proptest::collection::vec(op(), 1..300)) {
        let clock = Arc::new(ManualClock::new(t0()));
        let cache = cache_on(&clock, settings(16, 60), defaults());
        // Key → (session, filled at, in seconds since t0).
        let sessions: Vec<Session> =
            (0..40u32).map(|k| session(&clock, k, None, i64::from(k % 4))).collect();
        let mut model: HashMap<u8, u64> = HashMap::new();
        let mut elapsed = 0u64;
        for op in ops {
            match op {
                Op::Fill(k) => {
                    prop_assert!(fill(&cache, &sessions[usize::from(k)]));
                    model.insert(k, elapsed);
                    prop_assert!(hit(&cache, &sessions[usize::from(k)]));
                }
                Op::Get(k) => {
                    if hit(&cache, &sessions[usize::from(k)]) {
                        let filled = model.get(&k).copied();
                        prop_assert!(filled.is_some_and(|at| elapsed - at < 60), "{k} {filled:?}");
                    }
                }
                Op::EndSession(k) => {
                    cache.remove_session(sessions[usize::from(k)].id);
                    model.remove(&k);
                }
                Op::EndUser(u) => {
                    cache.remove_user(None, &user(i64::from(u)));
                    model.retain(|k, _| u32::from(*k) % 4 != u32::from(u));
                }
                Op::Clear => {
                    cache.clear();
                    model.clear();
                }
                Op::Advance(secs) => {
                    clock.advance(Duration::from_secs(u64::from(secs)));
                    elapsed += u64::from(secs);
                }
                Op::RacedFill(k) => {
                    let ticket = cache.ticket();
                    cache.remove_session(Uuid::new_v4());
                    prop_assert!(!cache.insert(ticket, sessions[usize::from(k)].clone(), "x".into()));
                }
            }
            prop_assert!(cache.len() <= 16);
        }
    }
}

async fn open(policy: &SessionPolicy, user_id: &UserId) -> Opened {
    policy
        .open(Opening {
            user_id,
            tenant: None,
            method: SessionMethod::Password,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap()
}

/// What `/check` will do on a miss: authenticate against the store, then fill.
async fn check(
    policy: &SessionPolicy,
    cache: &SessionCache<Snapshot>,
    opened: &Opened,
) -> Option<Session> {
    let hash = opened.key.hash();
    if let Some(entry) = cache.get(&hash) {
        return Some(entry.session.clone());
    }
    let ticket = cache.ticket();
    match policy.authenticate(opened.key.expose()).await {
        Ok(session) => {
            cache.insert(ticket, session.clone(), "snapshot".into());
            Some(session)
        }
        Err(SessionError::NotFound) => None,
        Err(e) => panic!("{e}"),
    }
}

/// Polls `cached` until it is false, for at most `bound`; how long it took.
async fn until_gone(what: &str, bound: Duration, cached: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while cached() {
        assert!(
            start.elapsed() < bound,
            "{what}: still cached after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Polls until `ready` holds, for at most 20 s (reconnection backs off up to 5 s).
async fn until(what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: not after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn ending_sessions_reaches_this_cache_at_once_and_the_others_by_events(backend: Backend) {
    let s = Sessions::on(
        backend,
        SessionSettings {
            max_active: 3,
            ..defaults()
        },
    )
    .await;
    let events: Arc<dyn StateEvents> = Arc::new(LocalStateEvents::new());
    let here: Arc<SessionCache<Snapshot>> =
        Arc::new(cache_on(&s.clock, settings(100, 60), defaults()));
    let there: Arc<SessionCache<Snapshot>> =
        Arc::new(cache_on(&s.clock, settings(100, 60), defaults()));
    tokio::spawn(follow_events(Arc::clone(&here), events.subscribe()));
    tokio::spawn(follow_events(Arc::clone(&there), events.subscribe()));
    let store: Arc<dyn SessionStore> = s.store.clone();
    let policy = SessionPolicy::new(store, s.clock.clone(), s.policy.settings().clone())
        .with_events(Arc::clone(&events))
        .with_cache(here.clone());
    let bound = Duration::from_secs(5);

    let a1 = open(&policy, &user(1)).await;
    s.advance(1);
    let a2 = open(&policy, &user(1)).await;
    s.advance(1);
    let a3 = open(&policy, &user(1)).await;
    s.advance(1);
    let b1 = open(&policy, &user(2)).await;
    for o in [&a1, &a2, &a3, &b1] {
        assert!(check(&policy, &here, o).await.is_some());
        assert!(check(&policy, &there, o).await.is_some());
        assert!(here.get(&o.key.hash()).is_some() && there.get(&o.key.hash()).is_some());
    }

    // A logout: gone from this instance's cache before `end` returns.
    policy.end(a1.session.id).await.unwrap();
    assert!(here.get(&a1.key.hash()).is_none());
    until_gone("end", bound, || there.get(&a1.key.hash()).is_some()).await;
    assert!(check(&policy, &there, &a1).await.is_none());

    // The active-session limit ends the oldest (a2) when two more open (a second apart: the
    // oldest is by `created_at`).
    let a4 = open(&policy, &user(1)).await;
    s.advance(1);
    let a5 = open(&policy, &user(1)).await;
    s.advance(1);
    assert!(here.get(&a2.key.hash()).is_none());
    until_gone("max_active", bound, || there.get(&a2.key.hash()).is_some()).await;

    // "End all my other sessions" keeps the current one cached.
    policy
        .end_others(None, &user(1), a5.session.id)
        .await
        .unwrap();
    for gone in [&a3, &a4] {
        assert!(here.get(&gone.key.hash()).is_none());
        until_gone("end_others", bound, || {
            there.get(&gone.key.hash()).is_some()
        })
        .await;
    }
    assert!(check(&policy, &here, &a5).await.is_some());

    // A refresh token replayed: the session ends everywhere.
    let r = open(&policy, &user(3)).await;
    assert!(check(&policy, &there, &r).await.is_some());
    policy
        .rotate(None, &user(3), r.session.id, 0)
        .await
        .unwrap();
    s.advance(11);
    let replay = policy.rotate(None, &user(3), r.session.id, 0).await;
    assert!(
        matches!(replay, Err(SessionError::RefreshReused)),
        "{replay:?}"
    );
    until_gone("reuse", bound, || there.get(&r.key.hash()).is_some()).await;

    // Ending all of a user's sessions (a password change) drops the user everywhere.
    assert!(check(&policy, &there, &b1).await.is_some());
    policy.end_all(None, &user(2)).await.unwrap();
    assert!(here.get(&b1.key.hash()).is_none());
    until_gone("end_all", bound, || there.get(&b1.key.hash()).is_some()).await;

    // The server's own announcement (a role change, say).
    assert!(check(&policy, &there, &a5).await.is_some());
    policy
        .announce(StateEvent::UserChanged {
            tenant: None,
            user_id: user(1),
        })
        .await;
    until_gone("announce", bound, || there.get(&a5.key.hash()).is_some()).await;
    assert!(
        check(&policy, &there, &a5).await.is_some(),
        "the session itself lives on"
    );

    // The transport going away leaves the caches bypassed.
    drop(policy);
    drop(events);
    until("bypassed once the events end", || {
        here.is_bypassed() && there.is_bypassed()
    })
    .await;
}

on_every_store!(ending_sessions_reaches_this_cache_at_once_and_the_others_by_events);

/// One Authura instance on the shared PostgreSQL database: its own pool, events, cache and
/// policy.
struct Instance {
    events: PgStateEvents,
    cache: Arc<SessionCache<Snapshot>>,
    policy: SessionPolicy,
}

async fn instance(url: &str) -> Instance {
    let store = PgStateStore::connect(&PgStateSettings {
        dsn: Secret::new(url.to_owned()),
        pool_size: 2,
        extra_ca_pem: None,
        query_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap();
    let events = store.events();
    let clock: Arc<dyn Clock> = Arc::new(authura_core::clock::SystemClock);
    let cache = Arc::new(SessionCache::new(
        settings(1000, 60),
        defaults(),
        clock.clone(),
    ));
    // Subscribed before the first lookup: its first signal is `Lost` until it listens.
    tokio::spawn(follow_events(Arc::clone(&cache), events.subscribe()));
    let policy = SessionPolicy::new(Arc::new(store), clock, defaults())
        .with_events(Arc::new(events.clone()))
        .with_cache(cache.clone());
    Instance {
        events,
        cache,
        policy,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_share_ends_within_a_second_and_survive_a_killed_listener() {
    let db = authura_testkit::postgres::database().await;
    let a = instance(&db.url).await;
    let b = instance(&db.url).await;
    until("both listening", || {
        a.events.is_listening() && b.events.is_listening() && !b.cache.is_bypassed()
    })
    .await;

    // A logout on A is refused from B's cache within a second (SPEC §8).
    let s1 = open(&a.policy, &user(1)).await;
    assert!(check(&b.policy, &b.cache, &s1).await.is_some());
    assert!(
        b.cache.get(&s1.key.hash()).is_some(),
        "B answers from its cache"
    );
    a.policy.end(s1.session.id).await.unwrap();
    let took = until_gone(
        "a logout on A, in B's cache",
        Duration::from_secs(1),
        || b.cache.get(&s1.key.hash()).is_some(),
    )
    .await;
    eprintln!("an end on A left B's cache after {took:?}");
    assert!(check(&b.policy, &b.cache, &s1).await.is_none());

    // Kill B's listening connection, then end on A a session B has cached: whether or not B
    // noticed yet, its NOTIFY is never delivered to B.
    let s2 = open(&a.policy, &user(2)).await;
    assert!(check(&b.policy, &b.cache, &s2).await.is_some());
    assert!(b.cache.get(&s2.key.hash()).is_some());
    let old_pid = b.events.listener_pid().unwrap();
    db.execute(&format!("SELECT pg_terminate_backend({old_pid})"))
        .await;
    a.policy.end(s2.session.id).await.unwrap();
    until("B notices the loss", || {
        b.cache.is_bypassed() || b.events.listener_pid().is_some_and(|p| p != old_pid)
    })
    .await;
    assert!(b.cache.get(&s2.key.hash()).is_none(), "no stale entry");
    // While bypassed, B answers from the database (and refuses the ended session).
    assert!(check(&b.policy, &b.cache, &s2).await.is_none());

    // B listens again on a new connection, and caching resumes.
    until("B listens again", || {
        !b.cache.is_bypassed() && b.events.listener_pid().is_some_and(|p| p != old_pid)
    })
    .await;
    assert!(
        b.cache.get(&s2.key.hash()).is_none(),
        "no stale entry after Back"
    );
    assert!(check(&b.policy, &b.cache, &s2).await.is_none());
    let s3 = open(&a.policy, &user(3)).await;
    assert!(check(&b.policy, &b.cache, &s3).await.is_some());
    assert!(b.cache.get(&s3.key.hash()).is_some(), "caching resumed");
    // And events flow again.
    a.policy.end(s3.session.id).await.unwrap();
    until_gone("an end after reconnecting", Duration::from_secs(1), || {
        b.cache.get(&s3.key.hash()).is_some()
    })
    .await;
    let stats: CacheStats = b.cache.stats();
    assert!(stats.hits >= 3 && stats.misses >= 3, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_subscription_starts_lost_and_payloads_from_other_tools_are_read() {
    let db = authura_testkit::postgres::database().await;
    let a = instance(&db.url).await;
    // Taken before the listener could have connected: `Lost` first, then `Back`.
    let mut sub = a.events.subscribe();
    for want in [StateSignal::Lost, StateSignal::Back] {
        let next = tokio::time::timeout(Duration::from_secs(20), sub.next()).await;
        assert_eq!(next.ok().flatten(), Some(want));
    }
    until("listening", || !a.cache.is_bypassed()).await;
    // A NOTIFY from psql (an operator's script): a well-formed one is read, anything else
    // counts as "everything changed".
    db.execute(
        r#"SELECT pg_notify('authura_state', '{"e":"user","tenant":null,"user":7}');
           SELECT pg_notify('authura_state', 'garbage');
           SELECT pg_notify('other_channel', '{"e":"all"}')"#,
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("a notification within 5 s");
        got.push(next.unwrap());
    }
    assert_eq!(
        got,
        [
            StateSignal::Event(StateEvent::UserChanged {
                tenant: None,
                user_id: user(7)
            }),
            StateSignal::Event(StateEvent::All),
        ]
    );
    // The other channel is not ours.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err()
    );
}
