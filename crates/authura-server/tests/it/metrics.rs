//! `GET /metrics`: off by default; when on, counts that match what was asked, in a text format
//! the Prometheus client's own parser reads.

use serde_json::{Value, json};

use crate::harness::{Backend, PW, ROOT, ROOT_PW, TestServer};

/// Every sample of a scrape, parsed by `prometheus_client.parser`: `[name, labels, value]`.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value, family.type])
print(json.dumps(out))
"#;

struct Scrape(Vec<(String, Value, f64, String)>);

impl Scrape {
    async fn of(server: &TestServer) -> Scrape {
        let res = server.get("/metrics", None).await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(
            res.headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(res.headers["cache-control"], "no-store");
        let samples = authura_testkit::python::run_json(PARSE, &[], res.text.as_bytes())
            .unwrap_or_else(|e| {
                panic!(
                    "the Prometheus parser refused the scrape: {e}\n{}",
                    res.text
                )
            });
        Scrape(samples)
    }

    /// The value of the one sample `name` with exactly `labels`; 0 when there is none.
    fn value(&self, name: &str, labels: Value) -> f64 {
        let found: Vec<f64> = self
            .0
            .iter()
            .filter(|(n, l, _, _)| n == name && *l == labels)
            .map(|(_, _, v, _)| *v)
            .collect();
        assert!(found.len() <= 1, "{name} {labels} appears {found:?}");
        found.first().copied().unwrap_or(0.0)
    }

    fn type_of(&self, name: &str) -> &str {
        &self
            .0
            .iter()
            .find(|(n, ..)| n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .3
    }
}

#[tokio::test]
async fn metrics_are_off_unless_enabled() {
    let server = TestServer::start().await;
    let res = server.get("/metrics", None).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body["error"], "not_found");
}

#[tokio::test]
async fn metrics_count_requests_mail_and_hashing() {
    let server = TestServer::with(&[("METRICS_ENABLED", "true")]).await;
    let before = Scrape::of(&server).await;
    let user = "mia@example.com";
    server.sign_up(user, PW).await;
    let access = server.login(user, PW).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = server
        .post(
            "/token",
            json!({"email": ROOT, "password": "Wr0ng!password"}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    server.get("/user", Some(&access)).await.ok();
    assert_eq!(server.get("/no/such/path", None).await.status, 404);

    // The mail was caught; its counter moves once the SMTP exchange has ended.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server
        .state
        .mail_stats()
        .sent
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the mail was never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let after = Scrape::of(&server).await;
    let requests = |s: &Scrape, route: &str, code: &str| {
        s.value(
            "authura_http_requests_total",
            json!({"route": route, "code": code}),
        )
    };
    let delta =
        |route: &str, code: &str| requests(&after, route, code) - requests(&before, route, code);
    assert_eq!(after.type_of("authura_http_requests_total"), "counter");
    assert_eq!(delta("/signup", "200"), 1.0);
    assert_eq!(delta("/verify-email", "200"), 1.0);
    assert_eq!(delta("/token", "200"), 1.0);
    assert_eq!(delta("/token", "401"), 1.0);
    assert_eq!(delta("/user", "200"), 1.0);
    // Unknown paths share one label; the path itself never becomes one.
    assert_eq!(delta("other", "404"), 1.0);
    assert!(
        after
            .0
            .iter()
            .all(|(_, l, _, _)| l["route"] != "/no/such/path")
    );
    // The scrape before this one was counted once it was answered.
    assert_eq!(requests(&after, "/metrics", "200"), 1.0);

    // Durations: one histogram per route, cumulative buckets ending at +Inf = count.
    let hist = "authura_http_request_duration_seconds";
    assert_eq!(after.type_of(&format!("{hist}_bucket")), "histogram");
    let token_buckets: Vec<(f64, f64)> = after
        .0
        .iter()
        .filter(|(n, l, _, _)| *n == format!("{hist}_bucket") && l["route"] == "/token")
        .map(|(_, l, v, _)| {
            let le = l["le"].as_str().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, *v)
        })
        .collect();
    assert!(
        token_buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    let count = after.value(&format!("{hist}_count"), json!({"route": "/token"}));
    assert_eq!(token_buckets.last().unwrap(), &(f64::INFINITY, count));
    assert_eq!(count, 2.0);
    // Two Argon2id verifications take longer than nothing, and less than a minute.
    let sum = after.value(&format!("{hist}_sum"), json!({"route": "/token"}));
    assert!(sum > 0.0 && sum < 60.0, "{sum}");

    // Mail and hashing.
    let mail = |s: &Scrape| s.value("authura_mail_total", json!({"result": "sent"}));
    assert_eq!(mail(&after) - mail(&before), 1.0);
    let verifications = |s: &Scrape| s.value("authura_password_verifications_total", json!({}));
    assert_eq!(verifications(&after) - verifications(&before), 2.0);
    let hashes = |s: &Scrape| s.value("authura_password_hashes_total", json!({}));
    assert_eq!(hashes(&after) - hashes(&before), 1.0);

    // SQLite reports no connection pool of its own.
    assert!(
        after
            .0
            .iter()
            .all(|(n, ..)| !n.starts_with("authura_backend_connections"))
    );

    // Build and process.
    assert_eq!(
        after.value(
            "authura_build_info",
            json!({"version": env!("CARGO_PKG_VERSION"), "backend": "sqlite"})
        ),
        1.0
    );
    assert!(after.value("process_resident_memory_bytes", json!({})) > 1e6);
    assert!(after.value("process_open_fds", json!({})) >= 3.0);
    let started = after.value("process_start_time_seconds", json!({}));
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(started <= now && started > now - 600.0, "{started}");

    // Counts only: no address, email or token.
    let text = server.get("/metrics", None).await.text;
    for secret in [user, ROOT, access.as_str(), "127.0.0.1"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test]
async fn scrapes_are_not_rate_limited() {
    let server = TestServer::with(&[("METRICS_ENABLED", "true"), ("RATE_PER_MINUTE", "1")]).await;
    // The one request a minute this client may make, then a refusal.
    assert_eq!(server.get("/no/such/path", None).await.status, 404);
    assert_eq!(server.get("/no/such/path", None).await.status, 429);
    for _ in 0..3 {
        let scrape = Scrape::of(&server).await;
        assert_eq!(
            scrape.value(
                "authura_http_requests_total",
                json!({"route": "other", "code": "429"})
            ),
            1.0
        );
    }
}

#[tokio::test]
async fn the_postgres_pool_is_reported() {
    crate::harness::on(Backend::Postgres, async {
        let server = TestServer::with(&[("METRICS_ENABLED", "true")]).await;
        server.login(ROOT, ROOT_PW).await;
        let scrape = Scrape::of(&server).await;
        let gauge = |name: &str| {
            assert_eq!(scrape.type_of(name), "gauge");
            scrape.value(name, json!({}))
        };
        // The harness's POSTGRES_POOL_SIZE.
        assert_eq!(gauge("authura_backend_connections_max"), 4.0);
        let (open, idle) = (
            gauge("authura_backend_connections_open"),
            gauge("authura_backend_connections_idle"),
        );
        // The login used a connection, which went back to the pool.
        assert!((1.0..=4.0).contains(&open), "{open}");
        assert!(idle >= 1.0 && idle <= open, "{idle} of {open}");
        assert_eq!(gauge("authura_backend_connections_waiting"), 0.0);
        assert_eq!(
            scrape.value(
                "authura_build_info",
                json!({"version": env!("CARGO_PKG_VERSION"), "backend": "postgres"})
            ),
            1.0
        );
    })
    .await;
}
