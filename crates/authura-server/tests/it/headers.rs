//! Header games (issue 19, defect 4), over real HTTP: a tenant header that is not a valid
//! tenant, or is sent twice, is 400 `tenant_required` and never falls back to the host's
//! tenant; two `Authorization` headers are 400 `invalid_body`.

use reqwest::header::HeaderValue;
use serde_json::json;

use crate::harness::{PW, TestServer, both_backends, s};

async fn multi_tenant() -> TestServer {
    TestServer::with(&[
        ("MULTI_TENANT_ENABLED", "true"),
        ("SQLITE_INITIAL_USER", ""),
        ("SQLITE_INITIAL_USER_PASSWORD", ""),
    ])
    .await
}

async fn an_invalid_or_repeated_tenant_header_is_refused_not_replaced_by_the_host() {
    let srv = multi_tenant().await;
    let signup = || {
        srv.client
            .post(srv.url("/signup"))
            .json(&json!({"email": "ann@example.com"}))
    };
    let refused = [
        // Not ASCII: `été` as UTF-8 bytes, which HTTP carries as opaque octets.
        vec![HeaderValue::from_bytes("été".as_bytes()).unwrap()],
        vec![HeaderValue::from_static("")],
        vec![HeaderValue::from_static("   ")],
        vec![HeaderValue::from_str(&"t".repeat(256)).unwrap()],
        // Twice, even the same value: which one counts is what a proxy and we may disagree on.
        vec![
            HeaderValue::from_static("acme"),
            HeaderValue::from_static("globex"),
        ],
        vec![
            HeaderValue::from_static("acme"),
            HeaderValue::from_static("acme"),
        ],
    ];
    for values in refused {
        let mut req = signup();
        for v in &values {
            req = req.header("X-Tenant-ID", v.clone());
        }
        srv.send(req).await.expect(400, "tenant_required");
    }
    // Nothing was signed up anywhere: no mail was asked for.
    assert_eq!(srv.mails_requested(), 0);

    // The fallback still works when there is no tenant header at all, and one valid header
    // works.
    srv.send(signup()).await.ok();
    srv.send(signup().header("X-Tenant-ID", "acme")).await.ok();
    assert_eq!(srv.mails_requested(), 2);
}
both_backends!(an_invalid_or_repeated_tenant_header_is_refused_not_replaced_by_the_host);

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let srv = TestServer::start().await;
    let tokens = srv.sign_up("two@example.com", PW).await;
    let access = s(&tokens["tokens"]["access_token"]).to_owned();
    let bearer = format!("Bearer {access}");
    let me = |headers: &[&str]| {
        let mut req = srv.client.get(srv.url("/user"));
        for h in headers {
            req = req.header("Authorization", *h);
        }
        req
    };
    srv.send(me(&[&bearer])).await.ok();
    srv.send(me(&[&bearer, &bearer]))
        .await
        .expect(400, "invalid_body");
    srv.send(me(&[&bearer, "Bearer forged"]))
        .await
        .expect(400, "invalid_body");
    srv.send(me(&["Bearer forged", &bearer]))
        .await
        .expect(400, "invalid_body");
    // A change of password too: nothing is changed.
    let change = srv
        .client
        .post(srv.url("/change-password"))
        .header("Authorization", &bearer)
        .header("Authorization", &bearer)
        .json(&json!({"old_password": PW, "new_password": "Chang3d!pass"}));
    srv.send(change).await.expect(400, "invalid_body");
    srv.login("two@example.com", PW).await;
}
