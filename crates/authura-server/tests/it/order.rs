//! SPEC §3's order of checks, after the middleware's rate limit and host check: tenant, body,
//! captcha, authentication, then the flow's own rules. Each request below fails two checks at
//! once and must be answered by the earlier one.

use authura_testkit::scripted::{Answer, Scripted};

use crate::harness::TestServer;

const NOT_JSON: &str = "{not json";

/// What a request carries; each field is one check it can fail.
struct Req {
    path: &'static str,
    /// Sends `X-Tenant-ID: acme` (else no tenant at all: no header and an empty `Host`).
    tenant: bool,
    body: &'static str,
    /// The `Authorization` header.
    authorization: Option<&'static str>,
}

impl Req {
    fn new(path: &'static str, body: &'static str) -> Self {
        Req {
            path,
            tenant: true,
            body,
            authorization: None,
        }
    }
    fn without_tenant(self) -> Self {
        Req {
            tenant: false,
            ..self
        }
    }
    fn authorization(self, value: &'static str) -> Self {
        Req {
            authorization: Some(value),
            ..self
        }
    }
}

async fn check(srv: &TestServer, req: Req, status: u16, code: &str) {
    let mut builder = srv
        .client
        .post(srv.url(req.path))
        .header("Content-Type", "application/json");
    builder = if req.tenant {
        builder.header("X-Tenant-ID", "acme")
    } else {
        builder.header("Host", "")
    };
    if let Some(value) = req.authorization {
        builder = builder.header("Authorization", value);
    }
    builder = builder.body(req.body);
    let res = srv.send(builder).await;
    assert_eq!(
        (res.status, res.code()),
        (status, code),
        "POST {} (tenant: {}, authorization: {:?}) {:?}: {}",
        req.path,
        req.tenant,
        req.authorization,
        req.body,
        res.text
    );
}

#[tokio::test]
async fn checks_run_in_the_contracts_order() {
    // Siteverify refuses every response: a captcha that is checked fails.
    let siteverify = Scripted::start("/siteverify", Answer::new(200, r#"{"success": false}"#))
        .await
        .unwrap();
    let mut vars = crate::captcha::captcha_vars(&siteverify);
    vars.extend([
        ("MULTI_TENANT_ENABLED", "true"),
        ("SQLITE_INITIAL_USER", ""),
        ("SQLITE_INITIAL_USER_PASSWORD", ""),
    ]);
    let srv = TestServer::with(&vars).await;
    // Not a Bearer token at all: refused as soon as authentication is checked.
    let bad = "Basic YW5uOnB3";

    // Tenant before body and authentication.
    for path in ["/signup", "/token", "/change-password", "/invite"] {
        let req = Req::new(path, NOT_JSON).without_tenant().authorization(bad);
        check(&srv, req, 400, "tenant_required").await;
    }
    // Body before authentication (actix starts every extractor at once: a Bearer check that
    // failed while extracting would answer before the body is read).
    for path in ["/change-password", "/change-email", "/invite"] {
        for body in [NOT_JSON, r#"{"unrelated": "field"}"#] {
            let req = Req::new(path, body).authorization(bad);
            check(&srv, req, 400, "invalid_body").await;
        }
    }
    // Body (the address included) before the captcha; the captcha before the flow.
    for path in ["/signup", "/reset-password", "/token"] {
        check(&srv, Req::new(path, NOT_JSON), 400, "invalid_body").await;
        let body = r#"{"email": "no-address", "password": "x", "captcha_token": "t"}"#;
        check(&srv, Req::new(path, body), 400, "invalid_email").await;
        let body = r#"{"email": "ann@example.com", "password": "x", "captcha_token": "t"}"#;
        let req = Req::new(path, body);
        check(&srv, req, 400, "captcha_failed").await;
    }
    // Siteverify was asked only by the three requests that reached the captcha.
    assert_eq!(siteverify.seen().len(), 3);
    // A missing Bearer token before the flow's own rules (an invalid address or role).
    let req = Req::new("/invite", r#"{"email": "no-address", "role": "no role"}"#);
    check(&srv, req, 401, "invalid_token").await;
    let req = Req::new("/change-email", r#"{"email": "no-address"}"#);
    check(&srv, req, 401, "invalid_token").await;
}
