//! The edges: tenancy, redirects, rate limits, CORS, hosts, bodies, HTML answers, `/form`.

use serde_json::json;

use crate::harness::both_backends;
use crate::harness::{PW, ROOT, ROOT_PW, TestServer, s};

both_backends!(the_initial_user_is_created_in_its_tenant);
async fn the_initial_user_is_created_in_its_tenant() {
    let srv = TestServer::with(&[
        ("MULTI_TENANT_ENABLED", "true"),
        ("INITIAL_USER_TENANT", "acme"),
    ])
    .await;
    let login = |tenant: &'static str| {
        srv.client
            .post(srv.url("/token"))
            .header("X-Tenant-ID", tenant)
            .json(&json!({"email": ROOT, "password": ROOT_PW}))
    };
    let tokens = srv.send(login("acme")).await.ok().clone();
    let me = srv
        .send(
            srv.client
                .get(srv.url("/user"))
                .header("X-Tenant-ID", "acme")
                .bearer_auth(s(&tokens["access_token"])),
        )
        .await;
    assert_eq!(me.ok()["user"]["tenant_id"], "acme");
    assert_eq!(me.ok()["user"]["role"], "admin");
    // Nowhere else: the admin exists in its tenant only.
    srv.send(login("globex"))
        .await
        .expect(401, "invalid_credentials");
}

both_backends!(tenants_are_separate_and_required);
async fn tenants_are_separate_and_required() {
    let srv = TestServer::with(&[
        ("MULTI_TENANT_ENABLED", "true"),
        ("SQLITE_INITIAL_USER", ""),
        ("SQLITE_INITIAL_USER_PASSWORD", ""),
    ])
    .await;
    // No tenant header and no Host header to fall back on.
    let mut no_host = srv
        .client
        .post(srv.url("/signup"))
        .json(&json!({"email": "a@example.com"}));
    no_host = no_host.header("Host", "");
    srv.send(no_host).await.expect(400, "tenant_required");

    let in_tenant = |t: &'static str, path: &str, body: serde_json::Value| {
        srv.client
            .post(srv.url(path))
            .header("X-Tenant-ID", t)
            .json(&body)
    };
    for tenant in ["acme", "globex"] {
        srv.send(in_tenant(
            tenant,
            "/signup",
            json!({"email": "ann@example.com"}),
        ))
        .await
        .ok();
        let token = TestServer::token_in(&srv.mail_to("ann@example.com").await);
        // The link only works in its own tenant.
        let other = if tenant == "acme" { "globex" } else { "acme" };
        srv.send(in_tenant(
            other,
            "/verify-email",
            json!({"token": token, "password": PW}),
        ))
        .await
        .expect(400, "invalid_verification_token");
        let v = srv
            .send(in_tenant(
                tenant,
                "/verify-email",
                json!({"token": token, "password": PW}),
            ))
            .await;
        assert_eq!(v.ok()["user"]["tenant_id"], tenant);
    }
    let acme = srv
        .send(in_tenant(
            "acme",
            "/token",
            json!({"email": "ann@example.com", "password": PW}),
        ))
        .await
        .ok()
        .clone();
    let at = s(&acme["access_token"]);
    srv.send(
        srv.client
            .get(srv.url("/user"))
            .header("X-Tenant-ID", "globex")
            .bearer_auth(at),
    )
    .await
    .expect(401, "invalid_token");
    let me = srv
        .send(
            srv.client
                .get(srv.url("/user"))
                .header("X-Tenant-ID", "acme")
                .bearer_auth(at),
        )
        .await;
    assert_eq!(me.ok()["user"]["tenant_id"], "acme");
    srv.send(in_tenant(
        "globex",
        "/refresh",
        json!({"refresh_token": acme["refresh_token"]}),
    ))
    .await
    .expect(401, "invalid_token");

    // Without the header, the host (port dropped) is the tenant.
    let by_host = srv
        .client
        .post(srv.url("/signup"))
        .header("Host", "shop.example:8080")
        .json(&json!({"email": "h@example.com"}));
    srv.send(by_host).await.ok();
    let token = TestServer::token_in(&srv.mail_to("h@example.com").await);
    let v = srv
        .send(in_tenant(
            "shop.example",
            "/verify-email",
            json!({"token": token, "password": PW}),
        ))
        .await;
    assert_eq!(v.ok()["user"]["tenant_id"], "shop.example");
}

both_backends!(redirect_urls_are_validated_and_links_built_on_them);
async fn redirect_urls_are_validated_and_links_built_on_them() {
    let srv = TestServer::with(&[("ALLOWED_ORIGINS", "https://app.example.com")]).await;
    for bad in [
        "https://evil.example.com/x",
        "https://app.example.com.evil.io/",
        "javascript:alert(1)",
        "http://app.example.com/x",
    ] {
        srv.post(
            "/signup",
            json!({"email": "a@example.com", "redirect_url": bad}),
        )
        .await
        .expect(400, "invalid_redirect_url");
    }
    srv.post("/signup", json!({"email": "a@example.com", "redirect_url": "https://app.example.com/welcome?lang=en"})).await.ok();
    let link = srv.mail_to("a@example.com").await.link().unwrap();
    assert!(
        link.starts_with("https://app.example.com/welcome?lang=en&action=verify-email&token="),
        "{link}"
    );
    // Bad redirects are refused before anything else happens, so no mail is asked for.
    let before = srv.mails_requested();
    srv.post(
        "/reset-password",
        json!({"email": "a@example.com", "redirect_url": "https://evil.example.com"}),
    )
    .await
    .expect(400, "invalid_redirect_url");
    assert_eq!(srv.mails_requested(), before);
}

both_backends!(rate_limiting_per_client);
async fn rate_limiting_per_client() {
    let srv = TestServer::with(&[("RATE_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        srv.get("/user", None).await.expect(401, "invalid_token");
    }
    let limited = srv.get("/user", None).await;
    limited.expect(429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Health checks are exempt.
    for _ in 0..5 {
        srv.get("/healthz", None).await.ok();
    }
}

both_backends!(cors_allows_listed_origins_only);
async fn cors_allows_listed_origins_only() {
    let srv = TestServer::with(&[(
        "ALLOWED_ORIGINS",
        "app.example.com,https://admin.example.com",
    )])
    .await;
    let preflight = |origin: &str| {
        srv.client
            .request(reqwest::Method::OPTIONS, srv.url("/token"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
    };
    for allowed in [
        "http://app.example.com",
        "https://app.example.com",
        "https://admin.example.com",
    ] {
        let r = srv.send(preflight(allowed)).await;
        assert_eq!(r.status, 200, "{allowed}: {}", r.text);
        assert_eq!(r.headers["access-control-allow-origin"], allowed);
    }
    // Refused preflights answer in the API's error format, without CORS headers.
    let r = srv.send(preflight("https://evil.example.com")).await;
    r.expect(400, "cors_refused");
    assert!(r.headers.get("access-control-allow-origin").is_none());
    // A method no route takes is refused (DELETE is allowed, for the session endpoints).
    let method_preflight = |method: &str| {
        srv.client
            .request(reqwest::Method::OPTIONS, srv.url("/token"))
            .header("Origin", "https://app.example.com")
            .header("Access-Control-Request-Method", method)
    };
    let r = srv.send(method_preflight("PUT")).await;
    r.expect(400, "cors_refused");
    assert!(r.body["message"].as_str().unwrap().contains("not allowed"));
    assert_eq!(srv.send(method_preflight("DELETE")).await.status, 200);
    let simple = srv
        .send(
            srv.client
                .get(srv.url("/healthz"))
                .header("Origin", "https://app.example.com"),
        )
        .await;
    assert_eq!(
        simple.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let foreign = srv
        .send(
            srv.client
                .get(srv.url("/healthz"))
                .header("Origin", "https://evil.example.com"),
        )
        .await;
    assert_eq!(foreign.status, 200);
    assert!(foreign.headers.get("access-control-allow-origin").is_none());
}

both_backends!(allowed_hosts);
async fn allowed_hosts() {
    let srv = TestServer::with(&[("ALLOWED_HOSTS", "auth.example.com,localhost:9000")]).await;
    let with_host = |h: &str| {
        srv.client
            .post(srv.url("/signup"))
            .header("Host", h)
            .json(&json!({"email": "a@example.com"}))
    };
    srv.send(with_host("auth.example.com")).await.ok();
    srv.send(with_host("AUTH.example.com")).await.ok();
    srv.send(with_host("localhost:9000")).await.ok();
    srv.send(with_host("evil.example.com"))
        .await
        .expect(400, "host_not_allowed");
    srv.send(with_host("localhost:9001"))
        .await
        .expect(400, "host_not_allowed");
    // Probes are exempt.
    srv.send(
        srv.client
            .get(srv.url("/healthz"))
            .header("Host", "10.0.0.5"),
    )
    .await
    .ok();
}

/// Invisible and direction-changing characters (Unicode's format class) make an address that
/// looks like another one: refused as `invalid_email` wherever an address is taken, in JSON and
/// in forms, before any mail is sent or any account is looked up.
#[tokio::test]
async fn emails_with_format_class_characters_are_refused() {
    let srv = TestServer::start().await;
    srv.sign_up("ann@example.com", PW).await;
    let sent = srv.mails_requested();
    for c in [
        '\u{200B}', '\u{200D}', '\u{202E}', '\u{FEFF}', '\u{2066}', '\u{AD}',
    ] {
        for email in [format!("an{c}n@example.com"), format!("ann@exam{c}ple.com")] {
            for path in ["/signup", "/reset-password"] {
                srv.post(path, json!({"email": email}))
                    .await
                    .expect(400, "invalid_email");
            }
            srv.post("/token", json!({"email": email, "password": PW}))
                .await
                .expect(400, "invalid_email");
            let form = srv
                .client
                .post(srv.url("/signup"))
                .form(&[("email", email.as_str())]);
            srv.send(form).await.expect(400, "invalid_email");
        }
    }
    assert_eq!(srv.mails_requested(), sent, "no mail for a refused address");
    srv.login("ann@example.com", PW).await;
}

both_backends!(bodies_are_parsed_strictly);
async fn bodies_are_parsed_strictly() {
    let srv = TestServer::start().await;
    let raw = |ct: &str, body: &str| {
        srv.client
            .post(srv.url("/signup"))
            .header("Content-Type", ct)
            .body(body.to_owned())
    };
    srv.send(raw("application/json", "{not json"))
        .await
        .expect(400, "invalid_body");
    srv.send(raw("application/json", r#"{"email": 5}"#))
        .await
        .expect(400, "invalid_body");
    srv.send(raw("application/json", "{}"))
        .await
        .expect(400, "invalid_body");
    srv.send(raw("application/json", r#"{"email": "not-an-address"}"#))
        .await
        .expect(400, "invalid_email");
    srv.send(raw(
        "application/vnd.api+json",
        r#"{"email": "plus@example.com"}"#,
    ))
    .await
    .ok();
    srv.send(raw("text/plain", "email=plain%40example.com"))
        .await
        .ok();
    srv.send(raw("application/x-www-form-urlencoded", ""))
        .await
        .expect(400, "invalid_body");
    let long = format!("{}@example.com", "a".repeat(300));
    srv.post("/signup", json!({"email": long}))
        .await
        .expect(400, "invalid_email");
    let huge = format!(r#"{{"email": "{}"}}"#, "a".repeat(70 * 1024));
    srv.send(raw("application/json", &huge))
        .await
        .expect(413, "body_too_large");
    // Streamed without a length, it is cut off at the limit all the same.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b'a'; 1024])).collect();
    let streamed = srv
        .client
        .post(srv.url("/signup"))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )));
    srv.send(streamed).await.expect(413, "body_too_large");
    // The server keeps serving.
    srv.get("/healthz", None).await.ok();
}

both_backends!(unknown_routes_and_methods);
async fn unknown_routes_and_methods() {
    let srv = TestServer::start().await;
    srv.get("/nope", None).await.expect(404, "not_found");
    srv.get("/signup", None)
        .await
        .expect(405, "method_not_allowed");
    srv.post("/user", json!({}))
        .await
        .expect(405, "method_not_allowed");
}

both_backends!(browsers_get_html_answers);
async fn browsers_get_html_answers() {
    let srv = TestServer::start().await;
    let html = |path: &str, body: serde_json::Value| {
        srv.client
            .post(srv.url(path))
            .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .json(&body)
    };
    let ok = srv
        .send(html("/signup", json!({"email": "a@example.com"})))
        .await;
    assert_eq!(ok.status, 200);
    assert!(
        ok.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(ok.text.contains("Check your inbox"));
    let err = srv
        .send(html(
            "/token",
            json!({"email": "a@example.com", "password": "<b>x</b>"}),
        ))
        .await;
    assert_eq!(err.status, 401);
    assert!(
        err.text.contains("wrong email or password") && err.text.starts_with("<!doctype html>")
    );
    let weak = srv.send(html("/verify-email", json!({"token": TestServer::token_in(&srv.mail_to("a@example.com").await), "password": "x"}))).await;
    assert_eq!(weak.status, 400);
    assert!(weak.text.contains("too short"));
    // JSON clients are unaffected.
    srv.post("/token", json!({"email": "a@example.com", "password": "x"}))
        .await
        .expect(401, "invalid_credentials");
}

both_backends!(form_pages);
async fn form_pages() {
    let srv = TestServer::start().await;
    for (action, target) in [
        ("signup", "/signup"),
        ("login", "/token"),
        ("verify-email", "/verify-email"),
        ("invite", "/verify-email"),
        ("reset-password", "/verify-email"),
        ("change-email", "/verify-email"),
        ("forgot-password", "/reset-password"),
    ] {
        let page = srv
            .get(&format!("/form?action={action}&token=abc"), None)
            .await;
        assert_eq!(page.status, 200, "{action}");
        assert!(
            page.text.contains(&format!(r#"action="{target}""#)),
            "{action}: {}",
            page.text
        );
    }
    let evil = srv
        .get(
            "/form?action=verify-email&token=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            None,
        )
        .await;
    assert!(!evil.text.contains("<script>alert(1)"));
    assert!(evil.text.contains("&quot;&gt;&lt;script&gt;"));
    srv.get("/form?action=change-password", None)
        .await
        .expect(400, "invalid_action");
    srv.get("/form?action=%3Cb%3E", None)
        .await
        .expect(400, "invalid_action");
    srv.get("/form", None).await.expect(400, "invalid_action");
}

both_backends!(signup_disabled_still_allows_invites);
async fn signup_disabled_still_allows_invites() {
    let srv = TestServer::with(&[("SIGNUP_DISABLED", "true")]).await;
    srv.post("/signup", json!({"email": "a@example.com"}))
        .await
        .expect(403, "signup_disabled");
    let admin = srv.admin_token().await;
    srv.post_as(
        "/invite",
        &admin,
        json!({"email": "b@example.com", "role": "user"}),
    )
    .await
    .ok();
    let token = TestServer::token_in(&srv.mail_to("b@example.com").await);
    srv.post("/verify-email", json!({"token": token, "password": PW}))
        .await
        .ok();
}

both_backends!(impersonation_is_refused_while_off);
async fn impersonation_is_refused_while_off() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    srv.sign_up("ann@example.com", PW).await;
    srv.post_as(
        "/token",
        &admin,
        json!({"email": "ann@example.com", "password": ""}),
    )
    .await
    .expect(403, "forbidden");
    srv.post("/token", json!({"email": "ann@example.com"}))
        .await
        .expect(400, "invalid_body");
}

both_backends!(health_and_readiness);
async fn health_and_readiness() {
    let srv = TestServer::start().await;
    assert_eq!(srv.get("/healthz", None).await.ok()["status"], "ok");
    assert_eq!(srv.get("/readyz", None).await.ok()["status"], "ready");
}

both_backends!(head_works_where_get_does_and_cors_exposes_error_headers);
async fn head_works_where_get_does_and_cors_exposes_error_headers() {
    let srv = TestServer::with(&[
        ("ALLOWED_ORIGINS", "https://app.example.com"),
        ("RATE_PER_MINUTE", "1"),
    ])
    .await;
    let head = srv.send(srv.client.head(srv.url("/healthz"))).await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    let res = srv
        .send(
            srv.client
                .get(srv.url("/user"))
                .header("Origin", "https://app.example.com"),
        )
        .await;
    let exposed = res.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    // Exactly what docs/api.md lists, no more.
    let mut names: Vec<&str> = exposed.split(',').map(str::trim).collect();
    names.sort_unstable();
    assert_eq!(names, ["retry-after", "www-authenticate"], "{exposed}");
}

#[tokio::test]
async fn impersonation_when_enabled() {
    use base64::Engine as _;
    let srv = TestServer::with(&[("IMPERSONATION_ENABLED", "true")]).await;
    let admin = srv.admin_token().await;
    let ann = srv.sign_up("ann@example.com", PW).await;
    let ann_token = s(&ann["tokens"]["access_token"]).to_owned();
    // Not an admin: refused.
    srv.post_as(
        "/token",
        &ann_token,
        json!({"email": crate::harness::ROOT, "password": ""}),
    )
    .await
    .expect(403, "forbidden");
    // Unknown target: the same answer as a failed login.
    srv.post_as(
        "/token",
        &admin,
        json!({"email": "nobody@example.com", "password": ""}),
    )
    .await
    .expect(401, "invalid_credentials");
    let t = srv
        .post_as(
            "/token",
            &admin,
            json!({"email": "ann@example.com", "password": ""}),
        )
        .await
        .ok()
        .clone();
    let access = s(&t["access_token"]);
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let me = srv.get("/user", Some(access)).await;
    assert_eq!(me.ok()["user"]["email"], "ann@example.com");
    let admin_id = srv.get("/user", Some(&admin)).await.ok()["user"]["id"].to_string();
    assert_eq!(
        payload["act"]["sub"].to_string(),
        format!("\"{}\"", admin_id.trim_matches('"'))
    );
    assert_eq!(payload["sub"], ann["user"]["id"].to_string());
}

#[tokio::test]
async fn failed_logins_lock_the_account_whether_or_not_it_exists() {
    let srv = TestServer::with(&[("LOGIN_FAILURES_PER_ACCOUNT", "3")]).await;
    srv.sign_up("ann@example.com", PW).await;
    srv.sign_up("carol@example.com", PW).await;
    let login = |email: &str, password: &str| {
        srv.post("/token", json!({"email": email, "password": password}))
    };
    // A correct password before the limit starts the count over.
    login("ann@example.com", "Wr0ng!pass")
        .await
        .expect(401, "invalid_credentials");
    login("ann@example.com", "Wr0ng!pass")
        .await
        .expect(401, "invalid_credentials");
    login("ann@example.com", PW).await.ok();
    for email in ["ann@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            login(email, "Wr0ng!pass")
                .await
                .expect(401, "invalid_credentials");
        }
    }
    let dummies = srv
        .state
        .hash_pool()
        .stats()
        .verifications
        .load(std::sync::atomic::Ordering::Relaxed);
    let ann = login("ann@example.com", PW).await;
    let nobody = login("nobody@example.com", PW).await;
    // Locked, even with the right password, and no hashing was done for either.
    ann.expect(429, "rate_limited");
    nobody.expect(429, "rate_limited");
    assert_eq!(
        ann.text, nobody.text,
        "a lock must not reveal whether the account exists"
    );
    let retry: u64 = ann.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
    assert_eq!(
        srv.state
            .hash_pool()
            .stats()
            .verifications
            .load(std::sync::atomic::Ordering::Relaxed),
        dummies
    );
    // Other accounts are unaffected, and so are tokens already issued.
    login("carol@example.com", PW).await.ok();
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_trusted_proxies() {
    let from = |srv: &TestServer, xff: &str| {
        srv.client
            .get(srv.url("/user"))
            .header("X-Forwarded-For", xff.to_owned())
    };
    let srv =
        TestServer::with(&[("RATE_PER_MINUTE", "2"), ("TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    for _ in 0..2 {
        srv.send(from(&srv, "203.0.113.5"))
            .await
            .expect(401, "invalid_token");
    }
    srv.send(from(&srv, "203.0.113.5"))
        .await
        .expect(429, "rate_limited");
    // Another client behind the same proxy has its own bucket; a spoofed left entry is ignored.
    srv.send(from(&srv, "203.0.113.5, 198.51.100.7"))
        .await
        .expect(401, "invalid_token");
    srv.send(from(&srv, "198.51.100.8"))
        .await
        .expect(401, "invalid_token");

    // Without trusted proxies the header is ignored: every request is the peer's.
    let srv = TestServer::with(&[("RATE_PER_MINUTE", "2")]).await;
    srv.send(from(&srv, "203.0.113.1"))
        .await
        .expect(401, "invalid_token");
    srv.send(from(&srv, "203.0.113.2"))
        .await
        .expect(401, "invalid_token");
    srv.send(from(&srv, "203.0.113.3"))
        .await
        .expect(429, "rate_limited");
}
