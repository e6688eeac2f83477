//! The HTTP suite on `AUTH_BACKEND=hasura`: each server talks to its own Hasura stand-in (a
//! real GraphQL server over a real users table, `authura_standins::hasura`).

use authura_backend_hasura::{DEFAULT_TIMEOUT, HasuraSettings, HasuraStore};
use authura_core::{Secret, TenantId, UserId, UserStore as _};
use authura_standins::hasura::{Failure, HasuraStandin};
use serde_json::json;

use crate::harness::{PW, ROOT, ROOT_PW, TestServer};

/// A server on a fresh stand-in, with the test's variables on top.
pub async fn server(vars: &[(&str, &str)]) -> TestServer {
    let standin = HasuraStandin::start().expect("the Hasura stand-in must start");
    let (url, secret) = (standin.url().to_owned(), standin.admin_secret().to_owned());
    let mut all = vec![
        ("AUTH_BACKEND", "hasura"),
        ("HASURA_URL", url.as_str()),
        ("HASURA_GRAPHQL_ADMIN_SECRET", secret.as_str()),
        ("SQLITE_DB_PATH", ""),
    ];
    all.extend_from_slice(vars);
    let mut srv = TestServer::on(None, None, &all).await;
    srv.backend_service = Some(Box::new(standin));
    srv
}

/// Deletes a user through `HasuraStore::delete` when the server runs on a stand-in; `None`
/// when it does not.
pub async fn delete_user(srv: &TestServer, tenant: Option<&TenantId>, id: &UserId) -> Option<bool> {
    let standin = srv
        .backend_service
        .as_ref()?
        .downcast_ref::<HasuraStandin>()?;
    let store = HasuraStore::new(&HasuraSettings {
        url: standin.url().parse().unwrap(),
        admin_secret: Secret::new(standin.admin_secret()),
        timeout: DEFAULT_TIMEOUT,
        extra_ca_pem: None,
    })
    .unwrap();
    Some(store.delete(tenant, id).await.unwrap())
}

/// The stand-in a server from [`server`] talks to.
fn standin(srv: &TestServer) -> &HasuraStandin {
    srv.backend_service
        .as_ref()
        .and_then(|s| s.downcast_ref::<HasuraStandin>())
        .expect("a server on the Hasura stand-in")
}

/// Hasura failing (HTTP 500) or gone answers 503 `backend_unavailable`, `/readyz` included;
/// a verification that fails half-way writes nothing and can be repeated once Hasura is back.
#[tokio::test]
async fn hasura_failures_answer_503_and_write_nothing() {
    let srv = server(&[]).await;
    let users = standin(&srv).user_count().unwrap();
    srv.post("/signup", json!({"email": "ann@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("ann@example.com").await);
    let verify = json!({"token": token, "password": PW});

    standin(&srv).fail_with(Failure::ServerError);
    srv.post("/verify-email", verify.clone())
        .await
        .expect(503, "backend_unavailable");
    srv.post("/token", json!({"email": ROOT, "password": ROOT_PW}))
        .await
        .expect(503, "backend_unavailable");
    assert_eq!(srv.get("/readyz", None).await.status, 503);
    standin(&srv).fail_with(Failure::None);
    assert_eq!(standin(&srv).user_count().unwrap(), users);

    srv.post("/verify-email", verify).await.ok();
    assert_eq!(standin(&srv).user_count().unwrap(), users + 1);
    assert_eq!(srv.get("/readyz", None).await.status, 200);

    standin(&srv).stop().await;
    srv.post(
        "/token",
        json!({"email": "ann@example.com", "password": PW}),
    )
    .await
    .expect(503, "backend_unavailable");
    assert_eq!(srv.get("/readyz", None).await.status, 503);
}

/// Hasura answering with GraphQL errors (here: the admin secret is wrong) is 502
/// `backend_error`, and the secret appears nowhere in the answer.
#[tokio::test]
async fn hasura_errors_answer_502() {
    let srv = server(&[
        ("HASURA_GRAPHQL_ADMIN_SECRET", "not-the-admin-secret"),
        ("SQLITE_INITIAL_USER", ""),
        ("SQLITE_INITIAL_USER_PASSWORD", ""),
    ])
    .await;
    let answer = srv
        .post("/token", json!({"email": ROOT, "password": ROOT_PW}))
        .await;
    answer.expect(502, "backend_error");
    assert!(
        !answer.text.contains("not-the-admin-secret"),
        "{}",
        answer.text
    );
    assert!(!answer.text.contains("access-denied"), "{}", answer.text);
    srv.post("/signup", json!({"email": "ann@example.com"}))
        .await
        .expect(502, "backend_error");
    assert_eq!(standin(&srv).user_count().unwrap(), 0);
}
