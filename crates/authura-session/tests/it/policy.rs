//! The session policy's rules (SPEC §8), as tables: expiry, the `last_seen_at` throttle, the
//! active-session limit, key parsing, listing and ending, and refresh rotation.

use std::time::Duration;

use authura_core::state::SessionMethod;
use authura_core::{TenantId, UserId};
use authura_session::{Opened, Opening, SessionError, SessionKey, SessionSettings};

use crate::on_every_store;
use crate::support::{Backend, Sessions, defaults, t0, user};

async fn open(s: &Sessions, user_id: &UserId, tenant: Option<&TenantId>) -> Opened {
    s.policy
        .open(Opening {
            user_id,
            tenant,
            method: SessionMethod::Password,
            ip: Some("192.0.2.1"),
            user_agent: Some("test"),
        })
        .await
        .unwrap()
}

/// What a step expects of authenticating the key.
fn alive(r: &Result<authura_core::state::Session, SessionError>) -> bool {
    match r {
        Ok(_) => true,
        Err(SessionError::NotFound) => false,
        Err(e) => panic!("unexpected {e:?}"),
    }
}

async fn sessions_expire_absolutely_and_when_idle(backend: Backend) {
    const MIN: u64 = 60;
    // (name, expiration, idle timeout, steps: (seconds to advance, then alive?)).
    type Case = (&'static str, u64, u64, &'static [(u64, bool)]);
    let cases: [Case; 5] = [
        (
            "absolute, idle off",
            60 * MIN,
            0,
            &[(59 * MIN, true), (MIN - 1, true), (1, false)],
        ),
        (
            "absolute, never used in between",
            720 * 60 * MIN,
            0,
            &[(720 * 60 * MIN - 1, true), (1, false)],
        ),
        (
            "idle: use keeps it alive",
            720 * 60 * MIN,
            10 * MIN,
            &[
                (9 * MIN, true),
                (9 * MIN, true),
                (10 * MIN - 1, true),
                (10 * MIN, false),
            ],
        ),
        (
            "idle, never used",
            720 * 60 * MIN,
            10 * MIN,
            &[(10 * MIN, false)],
        ),
        (
            "use does not outlive the absolute expiry",
            30 * MIN,
            10 * MIN,
            &[
                (9 * MIN, true),
                (9 * MIN, true),
                (9 * MIN, true),
                (3 * MIN, false),
            ],
        ),
    ];
    for (name, expiration, idle, steps) in cases {
        let s = Sessions::on(
            backend,
            SessionSettings {
                expiration: Duration::from_secs(expiration),
                idle_timeout: Duration::from_secs(idle),
                ..defaults()
            },
        )
        .await;
        let opened = open(&s, &user(1), None).await;
        assert_eq!(
            opened.session.expires_at,
            t0() + chrono::Duration::seconds(expiration as i64),
            "{name}"
        );
        for (i, &(advance, want)) in steps.iter().enumerate() {
            s.advance(advance);
            let got = s.policy.authenticate(opened.key.expose()).await;
            assert_eq!(alive(&got), want, "{name}: step {i}: {got:?}");
            // A dead session is also gone from the list, and by id.
            let listed = s.policy.list(None, &user(1)).await.unwrap();
            assert_eq!(listed.len(), usize::from(want), "{name}: step {i}");
            assert_eq!(
                s.policy.find(opened.session.id).await.is_ok(),
                want,
                "{name}: step {i}"
            );
        }
        // A session found dead is ended in the store, not merely refused.
        assert!(s.stored(opened.session.id).await.is_none(), "{name}");
    }
}

async fn last_seen_is_written_at_most_once_a_minute(backend: Backend) {
    let s = Sessions::on(backend, defaults()).await;
    let opened = open(&s, &user(1), None).await;
    assert_eq!(opened.session.last_seen_at, t0());
    // (seconds to advance, then the stored last_seen_at in seconds after t0).
    let steps = [(30, 0), (29, 0), (1, 60), (59, 60), (1, 120), (600, 720)];
    for (advance, want) in steps {
        s.advance(advance);
        let got = s.policy.authenticate(opened.key.expose()).await.unwrap();
        let stored = s.stored(opened.session.id).await.unwrap();
        let want = t0() + chrono::Duration::seconds(want);
        assert_eq!(stored.last_seen_at, want, "stored, at {}", s.now());
        assert_eq!(got.last_seen_at, want, "answered, at {}", s.now());
    }
}

async fn max_active_sessions_ends_the_oldest(backend: Backend) {
    // (max_active, sessions opened one second apart, the indices still alive).
    let cases: [(u32, usize, &[usize]); 4] = [
        (0, 5, &[0, 1, 2, 3, 4]),
        (1, 3, &[2]),
        (2, 4, &[2, 3]),
        (3, 2, &[0, 1]),
    ];
    for (max, n, alive_want) in cases {
        let s = Sessions::on(
            backend,
            SessionSettings {
                max_active: max,
                ..defaults()
            },
        )
        .await;
        // Another user's and another tenant's sessions of the same user id never count.
        let other = open(&s, &user(2), None).await;
        let tenant = TenantId::parse("t.example").unwrap();
        let elsewhere = open(&s, &user(1), Some(&tenant)).await;
        let mut opened = Vec::new();
        for _ in 0..n {
            s.advance(1);
            opened.push(open(&s, &user(1), None).await);
        }
        for (i, o) in opened.iter().enumerate() {
            let want = alive_want.contains(&i);
            let got = s.policy.authenticate(o.key.expose()).await;
            assert_eq!(alive(&got), want, "max {max}: session {i}");
        }
        let listed: Vec<_> = s
            .policy
            .list(None, &user(1))
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        let newest_first: Vec<_> = alive_want
            .iter()
            .rev()
            .map(|&i| opened[i].session.id)
            .collect();
        assert_eq!(listed, newest_first, "max {max}");
        // What opening ended, it said.
        let ended: usize = opened.iter().map(|o| o.ended.len()).sum();
        assert_eq!(ended, n - alive_want.len(), "max {max}");
        for o in [&other, &elsewhere] {
            assert!(
                s.policy.authenticate(o.key.expose()).await.is_ok(),
                "max {max}"
            );
        }
    }
}

async fn presented_keys_are_parsed_strictly(backend: Backend) {
    let s = Sessions::on(backend, defaults()).await;
    let opened = open(&s, &user(1), None).await;
    let key = opened.key.expose().to_owned();
    let forged = SessionKey::generate().unwrap().expose().to_owned();
    let mut flipped = key.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let cases: Vec<(&str, String, bool)> = vec![
        ("the key", key.clone(), true),
        ("forged", forged, false),
        (
            "one character changed",
            String::from_utf8(flipped).unwrap(),
            false,
        ),
        ("truncated", key[..42].to_owned(), false),
        ("over-long", format!("{key}A"), false),
        ("doubled", format!("{key}{key}"), false),
        ("padded", format!("{key}="), false),
        ("not base64", format!("{}!", &key[..42]), false),
        ("standard base64", format!("{}+", &key[..42]), false),
        ("surrounded by spaces", format!(" {key} "), false),
        ("empty", String::new(), false),
        (
            "its hash in hex",
            opened
                .session
                .key_hash
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            false,
        ),
    ];
    for (name, presented, want) in cases {
        let got = s.policy.authenticate(&presented).await;
        assert_eq!(alive(&got), want, "{name}: {got:?}");
    }
    // Refusals end nothing.
    assert!(s.policy.authenticate(&key).await.is_ok());
}

async fn opening_records_the_sign_in(backend: Backend) {
    let s = Sessions::on(backend, defaults()).await;
    let tenant = TenantId::parse("t.example").unwrap();
    let long_agent = "é".repeat(300);
    let opened = s
        .policy
        .open(Opening {
            user_id: &user(7),
            tenant: Some(&tenant),
            method: SessionMethod::OAuth("github".into()),
            ip: Some("2001:db8::1"),
            user_agent: Some(&long_agent),
        })
        .await
        .unwrap();
    let stored = s.stored(opened.session.id).await.unwrap();
    assert_eq!(stored, opened.session);
    assert_eq!(stored.key_hash, opened.key.hash());
    assert_eq!(stored.user_id, user(7));
    assert_eq!(stored.tenant.as_ref(), Some(&tenant));
    assert_eq!(stored.method.as_text(), "oauth:github");
    assert_eq!(stored.ip.as_deref(), Some("2001:db8::1"));
    assert_eq!(stored.user_agent, Some("é".repeat(256)));
    assert_eq!((stored.created_at, stored.last_seen_at), (t0(), t0()));
    assert_eq!(stored.expires_at, t0() + chrono::Duration::hours(720));
    assert_eq!(stored.generation, 0);
    // A session of another tenant is not found by its key in the user's listing elsewhere.
    assert!(s.policy.list(None, &user(7)).await.unwrap().is_empty());
}

async fn listing_and_ending(backend: Backend) {
    let s = Sessions::on(backend, defaults()).await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        s.advance(1);
        mine.push(open(&s, &user(1), None).await);
    }
    let theirs = open(&s, &user(2), None).await;
    let tenant = TenantId::parse("t.example").unwrap();
    let namesake = open(&s, &user(1), Some(&tenant)).await;
    let ids =
        |v: Vec<authura_core::state::Session>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();

    let listed = ids(s.policy.list(None, &user(1)).await.unwrap());
    assert_eq!(
        listed,
        mine.iter().rev().map(|o| o.session.id).collect::<Vec<_>>()
    );

    // Another user's session is not mine to end, whoever asks; it stays alive.
    assert!(matches!(
        s.policy.end_own(None, &user(1), theirs.session.id).await,
        Err(SessionError::NotFound)
    ));
    assert!(matches!(
        s.policy.end_own(None, &user(1), namesake.session.id).await,
        Err(SessionError::NotFound)
    ));
    assert!(s.policy.authenticate(theirs.key.expose()).await.is_ok());
    let ended = s
        .policy
        .end_own(None, &user(1), mine[0].session.id)
        .await
        .unwrap();
    assert_eq!(ended.id, mine[0].session.id);
    assert!(s.policy.authenticate(mine[0].key.expose()).await.is_err());
    assert!(matches!(
        s.policy.end(mine[0].session.id).await,
        Err(SessionError::NotFound)
    ));

    // All but the current one.
    let ended = s
        .policy
        .end_others(None, &user(1), mine[2].session.id)
        .await
        .unwrap();
    assert_eq!(ids(ended), vec![mine[1].session.id]);
    assert_eq!(
        ids(s.policy.list(None, &user(1)).await.unwrap()),
        vec![mine[2].session.id]
    );

    // All of them; nobody else's.
    s.advance(1);
    let again = open(&s, &user(1), None).await;
    let mut ended = ids(s.policy.end_all(None, &user(1)).await.unwrap());
    ended.sort();
    let mut want = vec![mine[2].session.id, again.session.id];
    want.sort();
    assert_eq!(ended, want);
    assert!(s.policy.list(None, &user(1)).await.unwrap().is_empty());
    for o in [&theirs, &namesake] {
        assert!(s.policy.authenticate(o.key.expose()).await.is_ok());
    }
}

async fn purging_removes_only_expired_sessions(backend: Backend) {
    let s = Sessions::on(
        backend,
        SessionSettings {
            expiration: Duration::from_secs(3600),
            ..defaults()
        },
    )
    .await;
    let old = open(&s, &user(1), None).await;
    s.advance(1800);
    let young = open(&s, &user(1), None).await;
    assert_eq!(s.policy.purge_expired().await.unwrap(), 0);
    s.advance(1800);
    assert_eq!(s.policy.purge_expired().await.unwrap(), 1);
    assert!(s.stored(old.session.id).await.is_none());
    assert!(s.policy.authenticate(young.key.expose()).await.is_ok());
}

/// One step of a rotation case: advance the clock, present a refresh token of a generation,
/// and expect a pair at a generation or a refusal.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Pair(i64),
    Reused,
    NotFound,
}

async fn refresh_rotation_and_reuse_detection(backend: Backend) {
    use Expect::{NotFound, Pair, Reused};
    // (name, steps: (seconds to advance, generation presented, expected)).
    type Case = (&'static str, &'static [(u64, i64, Expect)]);
    let cases: [Case; 9] = [
        (
            "the current generation rotates",
            &[(0, 0, Pair(1)), (0, 1, Pair(2)), (5, 2, Pair(3))],
        ),
        (
            "the generation just before, within the interval, gets the current one again",
            &[
                (0, 0, Pair(1)),
                (9, 0, Pair(1)),
                (1, 0, Pair(1)),
                (0, 1, Pair(2)),
            ],
        ),
        (
            "the grace runs from the rotation, not from the token",
            &[(3600, 0, Pair(1)), (10, 0, Pair(1))],
        ),
        (
            "after the interval, the generation before is a reuse",
            &[(0, 0, Pair(1)), (11, 0, Reused), (0, 1, NotFound)],
        ),
        (
            "an older generation is a reuse at once, and ends every token",
            &[
                (0, 0, Pair(1)),
                (0, 1, Pair(2)),
                (0, 0, Reused),
                (0, 2, NotFound),
            ],
        ),
        (
            "the grace does not stack",
            &[(0, 0, Pair(1)), (1, 1, Pair(2)), (1, 0, Reused)],
        ),
        (
            "a generation never issued is a reuse",
            &[(0, 5, Reused), (0, 0, NotFound)],
        ),
        ("a negative one too", &[(0, -1, Reused)]),
        (
            "an expired session refreshes nothing",
            &[(720 * 3600, 0, NotFound)],
        ),
    ];
    for (name, steps) in cases {
        let s = Sessions::on(backend, defaults()).await;
        let opened = open(&s, &user(1), None).await;
        let sid = opened.session.id;
        for (i, &(advance, presented, want)) in steps.iter().enumerate() {
            s.advance(advance);
            let got = s.policy.rotate(None, &user(1), sid, presented).await;
            match (&got, want) {
                (Ok(b), Pair(g)) => {
                    assert_eq!((b.sid, b.generation), (sid, g), "{name}: step {i}");
                    assert_eq!(
                        s.stored(sid).await.unwrap().generation,
                        g,
                        "{name}: step {i}"
                    );
                }
                (Err(SessionError::RefreshReused), Reused) => {
                    assert!(s.stored(sid).await.is_none(), "{name}: step {i}: not ended");
                    assert!(
                        s.policy.authenticate(opened.key.expose()).await.is_err(),
                        "{name}: step {i}: the key still works"
                    );
                }
                (Err(SessionError::NotFound), NotFound) => {}
                _ => panic!("{name}: step {i}: got {got:?}, expected {want:?}"),
            }
        }
    }
}

async fn a_refresh_names_the_sessions_own_user(backend: Backend) {
    let s = Sessions::on(backend, defaults()).await;
    let opened = open(&s, &user(1), None).await;
    let tenant = TenantId::parse("t.example").unwrap();
    let sid = opened.session.id;
    for (tenant, who) in [(None, user(2)), (Some(&tenant), user(1))] {
        assert!(matches!(
            s.policy.rotate(tenant, &who, sid, 0).await,
            Err(SessionError::NotFound)
        ));
    }
    // Refused without harm: the owner still rotates.
    assert_eq!(
        s.policy
            .rotate(None, &user(1), sid, 0)
            .await
            .unwrap()
            .generation,
        1
    );
}

/// Two (or more) refreshes of the same token at once all succeed, whichever wins the
/// compare-and-set, and the generation moves by one. The store yields before each operation, so
/// on one thread the refreshes interleave deterministically: every one reads generation 0, one
/// wins the compare-and-set, the rest lose it and fall into the grace rule.
async fn concurrent_refreshes_of_one_token_all_succeed(backend: Backend) {
    for n in [2, 5] {
        let s = Sessions::on(backend, defaults()).await;
        let opened = open(&s, &user(1), None).await;
        let sid = opened.session.id;
        let uid = user(1);
        let refreshes = (0..n).map(|_| s.policy.rotate(None, &uid, sid, 0));
        let results = futures_util::future::join_all(refreshes).await;
        for r in &results {
            let b = r.as_ref().unwrap();
            assert_eq!((b.sid, b.generation), (sid, 1), "{n}: {results:?}");
        }
        assert_eq!(s.stored(sid).await.unwrap().generation, 1);
    }
}

/// The same on a multi-threaded runtime, the refreshes racing on real threads.
async fn concurrent_refreshes_on_threads_all_succeed(backend: Backend) {
    for _ in 0..10 {
        let s = Sessions::on(backend, defaults()).await;
        let opened = open(&s, &user(1), None).await;
        let sid = opened.session.id;
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let policy = s.policy.clone();
                tokio::spawn(async move { policy.rotate(None, &user(1), sid, 0).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().generation, 1);
        }
        assert_eq!(s.stored(sid).await.unwrap().generation, 1);
    }
}

on_every_store!(
    purging_removes_only_expired_sessions,
    sessions_expire_absolutely_and_when_idle,
    last_seen_is_written_at_most_once_a_minute,
    max_active_sessions_ends_the_oldest,
    presented_keys_are_parsed_strictly,
    opening_records_the_sign_in,
    listing_and_ending,
    refresh_rotation_and_reuse_detection,
    a_refresh_names_the_sessions_own_user,
    concurrent_refreshes_of_one_token_all_succeed,
    concurrent_refreshes_on_threads_all_succeed,
);
