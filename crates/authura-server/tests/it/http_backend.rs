//! The server on `AUTH_BACKEND=http` against the contract's reference server (the setup that
//! `both_backends!` uses for its `http` tests), and what a failing service means to clients:
//! 502 `backend_error` for answers outside the contract, 503 `backend_unavailable` for none, and
//! nothing half-written.

use authura_core::{TenantId, UserId};
use authura_standins::http::{Failure, HttpStandin};
use serde_json::json;

use crate::harness::{PW, ROOT, ROOT_PW, TestServer};

/// Starts a reference server and a test server on it, with `vars` on top. The initial user
/// (`SQLITE_INITIAL_USER`, which the http backend also reads) is created through the service.
pub async fn start(vars: &[(&str, &str)]) -> TestServer {
    let standin = HttpStandin::start().expect("the HTTP reference server must start");
    let (key, value) = standin.auth();
    let mut all = vec![
        ("AUTH_BACKEND", "http"),
        ("HTTP_URL", standin.url()),
        ("HTTP_AUTH_HEADER_KEY", key),
        ("HTTP_AUTH_HEADER_VALUE", value),
        ("SQLITE_DB_PATH", ""),
    ];
    all.extend_from_slice(vars);
    let mut server = TestServer::on(None, None, &all).await;
    server.backend_service = Some(Box::new(standin));
    server
}

/// The reference server under `srv`, when it runs on the http backend.
pub fn standin(srv: &TestServer) -> Option<&HttpStandin> {
    srv.backend_service.as_ref()?.downcast_ref::<HttpStandin>()
}

/// `DELETE {HTTP_URL}/{id}?tenant_id=`, the contract's optional, test-only call.
pub async fn delete_user(standin: &HttpStandin, tenant: Option<&TenantId>, id: &UserId) -> bool {
    let mut url = url::Url::parse(standin.url()).unwrap();
    url.path_segments_mut().unwrap().push(&id.to_string());
    if let Some(t) = tenant {
        url.query_pairs_mut().append_pair("tenant_id", t.as_str());
    }
    let (key, value) = standin.auth();
    let res = reqwest::Client::new()
        .delete(url)
        .header(key, value)
        .send()
        .await
        .unwrap();
    match res.status().as_u16() {
        204 => true,
        404 => false,
        other => panic!("DELETE answered {other}"),
    }
}

#[tokio::test]
async fn a_failing_service_is_503_and_a_refusing_one_502_with_nothing_half_written() {
    let srv = start(&[]).await;
    let service = standin(&srv).unwrap();
    let admin = srv.admin_token().await;
    srv.post("/signup", json!({"email": "ann@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("ann@example.com").await);

    for failure in [Failure::Status500, Failure::CutConnection] {
        service.fail(failure);
        srv.post("/token", json!({"email": ROOT, "password": ROOT_PW}))
            .await
            .expect(503, "backend_unavailable");
        srv.get("/user", Some(&admin))
            .await
            .expect(503, "backend_unavailable");
        srv.post("/verify-email", json!({"token": token, "password": PW}))
            .await
            .expect(503, "backend_unavailable");
        srv.get("/readyz", None)
            .await
            .expect(503, "backend_unavailable");
        service.fail(Failure::None);
        // The verification that failed created nobody: it still works, once.
        srv.post(
            "/token",
            json!({"email": "ann@example.com", "password": PW}),
        )
        .await
        .expect(401, "invalid_credentials");
    }
    srv.get("/readyz", None).await.ok();
    srv.post("/verify-email", json!({"token": token, "password": PW}))
        .await
        .ok();
    srv.login("ann@example.com", PW).await;
}

#[tokio::test]
async fn a_wrong_credential_is_502_backend_error() {
    let srv = start(&[
        ("HTTP_AUTH_HEADER_VALUE", "Bearer not-the-right-one"),
        ("SQLITE_INITIAL_USER", ""),
        ("SQLITE_INITIAL_USER_PASSWORD", ""),
    ])
    .await;
    let res = srv
        .post("/token", json!({"email": ROOT, "password": ROOT_PW}))
        .await;
    res.expect(502, "backend_error");
    assert!(!res.text.contains("not-the-right-one"), "{}", res.text);
    assert!(
        !res.text.contains("401"),
        "internal detail leaked: {}",
        res.text
    );
}

#[tokio::test]
async fn a_hanging_service_times_out_as_503_after_http_timeout() {
    let srv = start(&[("HTTP_TIMEOUT", "300ms")]).await;
    let service = standin(&srv).unwrap();
    service.fail(Failure::Hang);
    let started = std::time::Instant::now();
    srv.get("/readyz", None)
        .await
        .expect(503, "backend_unavailable");
    // HTTP_TIMEOUT, not the 10 s default (the bound is loose on purpose: a busy machine).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The server keeps serving, and the service is used again once it answers.
    service.fail(Failure::None);
    srv.get("/readyz", None).await.ok();
}
