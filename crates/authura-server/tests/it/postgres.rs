//! The service over a PostgreSQL that goes away: killed under traffic with concurrent writers
//! racing on the same links (503s, `/readyz` 503, then recovery without restarting Authura, no
//! user lost or duplicated, no link used twice), and down at startup (the
//! service waits for it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use authura_testkit::postgres::{Cluster, Database};

use crate::harness::{PW, TestServer};

/// Addresses signed up before the outage and verified during it.
const ADDRESSES: usize = 12;

/// Concurrent writers verifying every address's link.
const WRITERS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_postgres_under_traffic_gives_503s_then_recovery_without_restart() {
    let cluster = Arc::new(Cluster::start().unwrap());
    let db = Database::create(&cluster.url()).await;
    let srv = Arc::new(TestServer::with_postgres(&db.url, &[]).await);
    let admin = srv.admin_token().await;

    // Verification links for new addresses, to create users while the database comes and goes.
    let mut tokens = Vec::new();
    for i in 0..ADDRESSES {
        let address = format!("traffic{i}@example.com");
        srv.post("/signup", json!({"email": address})).await.ok();
        tokens.push(TestServer::token_in(&srv.mail_to(&address).await));
    }

    // Traffic: readers on /user, and one writer verifying the links in order, each until it
    // gets a final answer (a 503 is retried with the same link).
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut traffic = Vec::new();
    for _ in 0..2 {
        let (srv, stop, seen, admin) = (
            Arc::clone(&srv),
            Arc::clone(&stop),
            Arc::clone(&seen),
            admin.clone(),
        );
        traffic.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = srv.get("/user", Some(&admin)).await;
                seen.lock().await.record(r.status, r.code());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    // Three writers verify every link, each starting at another place in the list, so two or
    // three race on the same link at times: concurrent writes across the outage, each counted
    // once.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (srv, seen, tokens) = (Arc::clone(&srv), Arc::clone(&seen), tokens.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for k in 0..tokens.len() {
                    let i = (k + w * tokens.len() / WRITERS) % tokens.len();
                    loop {
                        let r = srv
                            .post("/verify-email", json!({"token": tokens[i], "password": PW}))
                            .await;
                        seen.lock().await.record(r.status, r.code());
                        if r.status != 503 {
                            answers.push((i, r.status, r.code().to_owned()));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                answers
            })
        })
        .collect();

    // Let some traffic through, then kill the database.
    wait_until("traffic succeeds", || async { seen.lock().await.ok >= 5 }).await;
    blocking(&cluster, |c| c.stop()).await;
    let down_at = Instant::now();
    wait_until("503 backend_unavailable under traffic", || async {
        seen.lock().await.unavailable >= 3
    })
    .await;
    srv.get("/readyz", None)
        .await
        .expect(503, "backend_unavailable");
    srv.get("/healthz", None).await.ok();
    let ok_while_down = seen.lock().await.ok;

    // Bring it back: the same process recovers.
    blocking(&cluster, |c| c.start_again()).await;
    let up_at = Instant::now();
    wait_until("/readyz recovers", || async {
        srv.get("/readyz", None).await.status == 200
    })
    .await;
    let recovered_in = up_at.elapsed();
    wait_until("traffic succeeds again", || async {
        seen.lock().await.ok > ok_while_down + 5
    })
    .await;
    let mut answers = Vec::new();
    for writer in writers {
        answers.extend(writer.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.await.unwrap();
    }

    let seen = seen.lock().await.clone();
    assert!(
        seen.other.is_empty(),
        "answers other than 200 and 503 backend_unavailable: {:?}",
        seen.other
    );
    // Each link made its user once: every writer got a final answer for every link; at most
    // one of them a 200 (a write that committed as the database died answers token_used, or
    // email_taken, when retried), never a second user.
    assert_eq!(answers.len(), WRITERS * ADDRESSES);
    for (_, status, code) in &answers {
        assert!(
            matches!(
                (*status, code.as_str()),
                (200, _) | (400, "token_used") | (409, "email_taken")
            ),
            "{answers:?}"
        );
    }
    for i in 0..ADDRESSES {
        let wins = answers
            .iter()
            .filter(|(t, status, _)| *t == i && *status == 200)
            .count();
        assert!(wins <= 1, "link {i} was used {wins} times: {answers:?}");
    }
    assert_eq!(
        db.number("SELECT count(*) FROM users").await,
        1 + i64::try_from(ADDRESSES).unwrap(),
        "the initial user and one per address"
    );
    assert_eq!(
        db.number(
            "SELECT count(*) FROM (SELECT lower(email) FROM users GROUP BY 1 \
             HAVING count(*) > 1) AS d"
        )
        .await,
        0
    );
    for i in 0..ADDRESSES {
        srv.login(&format!("traffic{i}@example.com"), PW).await;
    }
    eprintln!(
        "outage: {} ok before, {} answers 503 while down for {:?}; ready {:?} after restart",
        ok_while_down,
        seen.unavailable,
        up_at - down_at,
        recovered_in
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_startup_is_waited_for() {
    let cluster = Arc::new(Cluster::start().unwrap());
    let db = Database::create(&cluster.url()).await;
    blocking(&cluster, |c| c.stop()).await;
    let dsn = db.url.clone();
    let starting = tokio::spawn(async move { TestServer::with_postgres(&dsn, &[]).await });
    // The service retries (500 ms, then 1 s, 2 s, …); the database comes up meanwhile.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!starting.is_finished(), "started without its database");
    blocking(&cluster, |c| c.start_again()).await;
    let srv = tokio::time::timeout(Duration::from_secs(20), starting)
        .await
        .expect("the service gave up waiting")
        .unwrap();
    srv.get("/readyz", None).await.ok();
    srv.admin_token().await;
    drop(db);
}

/// Answers seen by the traffic.
#[derive(Clone, Debug, Default)]
struct Seen {
    ok: usize,
    unavailable: usize,
    other: Vec<(u16, String)>,
}

impl Seen {
    fn record(&mut self, status: u16, code: &str) {
        match (status, code) {
            (200, _) => self.ok += 1,
            (503, "backend_unavailable") => self.unavailable += 1,
            // The writer's final answers are checked on their own.
            (400, "token_used") | (409, "email_taken") => {}
            _ => self.other.push((status, code.to_owned())),
        }
    }
}

async fn blocking(cluster: &Arc<Cluster>, f: fn(&Cluster) -> anyhow::Result<()>) {
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || f(&cluster))
        .await
        .unwrap()
        .unwrap();
}

/// Polls `check` every 20 ms for up to 20 s.
async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
