//! Several instances on one PostgreSQL database (SPEC §8 "The cache"): `/check` answers cached
//! sessions without touching the database; a logout, or an administrator ending a user's
//! sessions or deleting the user, on one instance reaches the others' caches through
//! `LISTEN/NOTIFY`; an instance whose listening connection is killed stops trusting its cache
//! until it listens again.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{ROOT, ROOT_PW, Resp, TestServer};

/// How long a change may take to reach another instance before the test gives up. SPEC §8 says
/// 1 s; the bound is generous so a loaded machine does not fail the test, while the cache's TTL
/// (60 s) is far above it, so only the events can make it pass.
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);

async fn instance(dsn: &str) -> TestServer {
    TestServer::with_postgres(
        dsn,
        &[("SESSIONS_ENABLED", "true"), ("METRICS_ENABLED", "true")],
    )
    .await
}

/// Signs ROOT in on `srv`; returns the session key.
async fn sign_in(srv: &TestServer) -> String {
    let res = srv
        .post(
            "/session",
            json!({"email": ROOT, "password": ROOT_PW, "return_key": true}),
        )
        .await;
    res.ok()["session"]["key"].as_str().unwrap().to_owned()
}

async fn check(srv: &TestServer, key: &str) -> Resp {
    srv.send(
        srv.client
            .get(srv.url("/check"))
            .header("authorization", format!("Session {key}")),
    )
    .await
}

/// The value of the counter or gauge `name` in `srv`'s `/metrics`.
async fn metric(srv: &TestServer, name: &str) -> u64 {
    let text = srv
        .client
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
}

/// Polls `/check` with `key` on `srv` until it is refused; returns how long that took.
async fn until_refused(srv: &TestServer, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let res = check(srv, key).await;
        if res.status == 401 {
            res.expect(401, "invalid_session");
            return started.elapsed();
        }
        assert_eq!(res.status, 200, "{:?}", res.body);
        assert!(
            started.elapsed() < PROPAGATION_BOUND,
            "the other instance still answers the ended session from its cache"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_session_is_answered_without_the_database() {
    let db = authura_testkit::postgres::database().await;
    let srv = instance(&db.url).await;
    let (cached, uncached) = (sign_in(&srv).await, sign_in(&srv).await);
    check(&srv, &cached).await.ok();
    let hits = metric(&srv, "authura_session_cache_hits_total").await;
    // Neither the sessions nor the users can be read now.
    db.execute("ALTER TABLE authura_sessions RENAME TO authura_sessions_away")
        .await;
    db.execute("ALTER TABLE users RENAME TO users_away").await;
    let res = check(&srv, &cached).await;
    assert_eq!(res.ok()["email"], ROOT);
    assert_eq!(
        metric(&srv, "authura_session_cache_hits_total").await,
        hits + 1
    );
    let res = check(&srv, &uncached).await;
    assert_eq!(
        res.status / 100,
        5,
        "a miss reads the database: {:?}",
        res.body
    );
    db.execute("ALTER TABLE authura_sessions_away RENAME TO authura_sessions")
        .await;
    db.execute("ALTER TABLE users_away RENAME TO users").await;
    check(&srv, &uncached).await.ok();
    assert!(metric(&srv, "authura_session_cache_entries").await >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_reaches_the_others_cache() {
    let db = authura_testkit::postgres::database().await;
    let (a, b) = (instance(&db.url).await, instance(&db.url).await);
    let key = sign_in(&a).await;
    // B caches it, and answers it from the cache.
    check(&b, &key).await.ok();
    let hits = metric(&b, "authura_session_cache_hits_total").await;
    check(&b, &key).await.ok();
    assert_eq!(
        metric(&b, "authura_session_cache_hits_total").await,
        hits + 1
    );

    a.send(
        a.client
            .delete(a.url("/session"))
            .header("authorization", format!("Session {key}")),
    )
    .await
    .ok();
    check(&a, &key).await.expect(401, "invalid_session");
    let took = until_refused(&b, &key).await;
    eprintln!("the logout reached the other instance in {took:?}");

    // A password change on B ends A's cached sessions too.
    let key = sign_in(&a).await;
    check(&a, &key).await.ok();
    check(&a, &key).await.ok();
    let token = b.login(ROOT, ROOT_PW).await;
    b.post_as(
        "/change-password",
        token["access_token"].as_str().unwrap(),
        json!({"old_password": ROOT_PW, "new_password": "N3w!passw0rd"}),
    )
    .await
    .ok();
    until_refused(&a, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_stops_listening_stops_trusting_its_cache() {
    let db = authura_testkit::postgres::database().await;
    let (a, b) = (instance(&db.url).await, instance(&db.url).await);
    let key = sign_in(&a).await;
    check(&b, &key).await.ok();
    check(&b, &key).await.ok();
    // Every listening connection on this database (A's and B's), named by the listener.
    let killed = db
        .number(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'authura listener'",
        )
        .await;
    assert_eq!(killed, 2);
    // The logout's NOTIFY may find nobody listening: B must not answer from its cache anyway.
    a.send(
        a.client
            .delete(a.url("/session"))
            .header("authorization", format!("Session {key}")),
    )
    .await
    .ok();
    until_refused(&b, &key).await;
    // Once listening again, B caches and hears of logouts as before.
    let key = sign_in(&a).await;
    let started = Instant::now();
    loop {
        check(&b, &key).await.ok();
        let hits = metric(&b, "authura_session_cache_hits_total").await;
        check(&b, &key).await.ok();
        if metric(&b, "authura_session_cache_hits_total").await > hits {
            break;
        }
        assert!(
            started.elapsed() < PROPAGATION_BOUND,
            "B never caches again after reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.send(
        a.client
            .delete(a.url("/session"))
            .header("authorization", format!("Session {key}")),
    )
    .await
    .ok();
    until_refused(&b, &key).await;
}

/// Signs `email` in with `password` on `srv`; returns the session key and the user's id.
async fn session_of(srv: &TestServer, email: &str, password: &str) -> (String, String) {
    let res = srv
        .post(
            "/session",
            json!({"email": email, "password": password, "return_key": true}),
        )
        .await;
    let body = res.ok();
    let id = match &body["user"]["id"] {
        serde_json::Value::String(id) => id.clone(),
        id => id.to_string(),
    };
    (body["session"]["key"].as_str().unwrap().to_owned(), id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_ending_sessions_or_deleting_a_user_reaches_the_others_cache() {
    const ANN: &str = "ann@example.com";
    let db = authura_testkit::postgres::database().await;
    let (a, b) = (instance(&db.url).await, instance(&db.url).await);
    a.sign_up(ANN, crate::harness::PW).await;
    let admin = a.admin_token().await;
    for ending in ["sessions", "user"] {
        let (key, id) = session_of(&a, ANN, crate::harness::PW).await;
        // B caches the session and answers it from the cache.
        check(&b, &key).await.ok();
        let hits = metric(&b, "authura_session_cache_hits_total").await;
        check(&b, &key).await.ok();
        assert_eq!(
            metric(&b, "authura_session_cache_hits_total").await,
            hits + 1
        );
        let path = match ending {
            "sessions" => format!("/admin/users/{id}/sessions"),
            _ => format!("/admin/users/{id}"),
        };
        let res = a
            .send(
                a.client
                    .delete(a.url(&path))
                    .header("authorization", format!("Bearer {admin}")),
            )
            .await;
        assert!(
            res.status == 200 || res.status == 204,
            "{ending}: {:?}",
            res.body
        );
        check(&a, &key).await.expect(401, "invalid_session");
        let took = until_refused(&b, &key).await;
        eprintln!("the admin's end of the {ending} reached the other instance in {took:?}");
    }
}
