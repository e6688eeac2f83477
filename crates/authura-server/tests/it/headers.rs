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

/// Browser security headers (issue 19, defect 5): every answer is `nosniff` and not frameable;
/// every HTML answer (a `/form` page, a result page, an HTML error) has a Content-Security-
/// Policy with no inline script, `frame-ancestors 'none'`, and with a captcha the widget's
/// origin only.
#[tokio::test]
async fn every_answer_has_the_browser_security_headers() {
    let srv = TestServer::with(&[
        ("CAPTCHA", "turnstile"),
        ("TURNSTILE_SECRET_KEY", "turnstile-secret"),
        ("TURNSTILE_SITE_KEY", "site-key"),
        (
            "TURNSTILE_SCRIPT",
            "https://widget.example.net/turnstile/v0/api.js",
        ),
    ])
    .await;
    let html = |path: &str| srv.client.get(srv.url(path)).header("Accept", "text/html");
    let answers = [
        (
            "form page",
            srv.send(html("/form?action=signup")).await,
            true,
        ),
        (
            "html error",
            srv.send(html("/form?action=nope")).await,
            true,
        ),
        (
            "html result",
            srv.send(
                srv.client
                    .post(srv.url("/token"))
                    .header("Accept", "text/html")
                    .form(&[("email", "a@example.com"), ("password", "x")]),
            )
            .await,
            true,
        ),
        ("json", srv.get("/healthz", None).await, false),
        ("json error", srv.get("/nowhere", None).await, false),
    ];
    for (what, res, is_html) in answers {
        let header = |name: &str| {
            res.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{what}");
        let csp = header("content-security-policy");
        if !is_html {
            assert_eq!(csp, None, "{what}");
            continue;
        }
        assert!(
            header("content-type").unwrap().starts_with("text/html"),
            "{what}: {res:?}"
        );
        let csp = csp.unwrap_or_else(|| panic!("{what}: no CSP"));
        for part in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "script-src https://widget.example.net",
            "frame-src https://widget.example.net",
        ] {
            assert!(csp.contains(part), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
        // The inline style sheet is allowed by its hash, and is the page's only inline code.
        let style = res
            .text
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(style, _)| style)
            .unwrap_or_else(|| panic!("{what}: no style sheet"));
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
        assert!(
            csp.contains(&format!("style-src 'sha256-{hash}'")),
            "{what}: {csp}"
        );
        assert!(!res.text.contains("<script>"), "{what}: inline script");
    }
}

/// A body in a content coding the service does not decode (issue 19, item 7) is 415
/// `invalid_body`, not a parse error; `identity` is no coding.
#[tokio::test]
async fn an_unknown_content_encoding_is_415() {
    let srv = TestServer::start().await;
    let signup = |encoding: &str| {
        srv.client
            .post(srv.url("/signup"))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", encoding)
            .body(r#"{"email": "enc@example.com"}"#)
    };
    for encoding in ["gzip", "br", "deflate", "x-unknown", "identity, gzip"] {
        let res = srv.send(signup(encoding)).await;
        assert_eq!(
            (res.status, res.code()),
            (415, "invalid_body"),
            "{encoding}"
        );
    }
    srv.send(signup("identity")).await.ok();
    assert_eq!(srv.mails_requested(), 1);
}
