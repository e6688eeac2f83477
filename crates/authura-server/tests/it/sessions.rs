//! Server-side sessions over HTTP (SPEC §8): `POST/GET/DELETE /session`, `POST /logout`,
//! `GET/DELETE /sessions`, `DELETE /sessions/{id}`, the cookie, the CSRF rule, the tokens bound
//! to sessions (`sid`, rotation and reuse), what ends sessions, expiry, tenants, and the
//! `/form?action=session` pages. The `both_backends!` tests run on SQLite and PostgreSQL (the
//! state beside the users table), on the Hasura stand-in with `STATE_DSN=sqlite:` and on the
//! HTTP reference server with `STATE_DSN=postgres://`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use authura_testkit::scripted::{Answer, Scripted};
use reqwest::RequestBuilder;
use serde_json::{Value, json};

use crate::harness::{PW, ROOT, ROOT_PW, Resp, TestServer, both_backends, s};

const UA: &str = "authura-sessions-test/1.0 (+https://example.com)";
const APP: &str = "https://app.example.com";
const ANN: &str = "ann@example.com";
const COOKIE: &str = "authura_session";

/// The sessions-on server of the test's backend (one helper for every sessions test file).
use crate::check::{Server as Srv, server};

impl Srv {
    /// `POST /session` with a password, from [`UA`].
    async fn post_session(&self, email: &str, password: &str, extra: Value) -> Resp {
        let mut body = json!({"email": email, "password": password});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.send(
            self.client
                .post(self.url("/session"))
                .header("user-agent", UA)
                .json(&body),
        )
        .await
    }

    /// Signs in with the cookie; returns the answer and the cookie's value (the key).
    async fn cookie_session(&self, email: &str, password: &str) -> (Value, String) {
        let res = self.post_session(email, password, json!({})).await;
        let body = res.ok().clone();
        let cookie = set_cookie(&res);
        assert_eq!(cookie.name, COOKIE);
        (body, cookie.value)
    }

    /// Signs in with `return_key`; returns the answer and `session.key`.
    async fn key_session(&self, email: &str, password: &str) -> (Value, String) {
        let res = self
            .post_session(email, password, json!({"return_key": true}))
            .await;
        let body = res.ok().clone();
        assert!(
            !res.headers.contains_key("set-cookie"),
            "return_key sets no cookie"
        );
        let key = s(&body["session"]["key"]).to_owned();
        (body, key)
    }

    /// `method path` with the session cookie `key` and, when given, `Origin`.
    fn by_cookie(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        origin: Option<&str>,
    ) -> RequestBuilder {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("cookie", format!("{COOKIE}={key}"));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req
    }

    /// `method path` with `Authorization: Session <key>`.
    fn by_key(&self, method: reqwest::Method, path: &str, key: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("authorization", format!("Session {key}"))
    }

    /// `method path` with a Bearer token.
    fn by_bearer(&self, method: reqwest::Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// `/token` from [`UA`]; returns `T`.
    async fn tokens(&self, email: &str, password: &str) -> Value {
        self.send(
            self.client
                .post(self.url("/token"))
                .header("user-agent", UA)
                .json(&json!({"email": email, "password": password})),
        )
        .await
        .ok()
        .clone()
    }

    async fn refresh(&self, refresh_token: &Value) -> Resp {
        self.post("/refresh", json!({"refresh_token": refresh_token}))
            .await
    }
}

use reqwest::Method as M;

/// A `Set-Cookie` header, read apart.
#[derive(Debug)]
struct SetCookie {
    name: String,
    value: String,
    /// The attributes but `Max-Age` and `Expires`, as written.
    attributes: BTreeSet<String>,
    max_age: Option<i64>,
    expires: bool,
}

/// The one `Set-Cookie` of an answer.
#[track_caller]
fn set_cookie(res: &Resp) -> SetCookie {
    let all: Vec<_> = res.headers.get_all("set-cookie").iter().collect();
    assert_eq!(all.len(), 1, "one Set-Cookie: {all:?}");
    let text = all[0].to_str().unwrap();
    let mut parts = text.split(';').map(str::trim);
    let (name, value) = parts.next().unwrap().split_once('=').unwrap();
    let (mut attributes, mut max_age, mut expires) = (BTreeSet::new(), None, false);
    for part in parts {
        if let Some(age) = part.strip_prefix("Max-Age=") {
            max_age = Some(age.parse().unwrap());
        } else if part.starts_with("Expires=") {
            expires = true;
        } else {
            attributes.insert(part.to_owned());
        }
    }
    SetCookie {
        name: name.to_owned(),
        value: value.to_owned(),
        attributes,
        max_age,
        expires,
    }
}

fn attrs(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

/// A JWT's payload.
fn payload(token: &Value) -> Value {
    use base64::Engine as _;
    let part = s(token).split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// The fields of `S`, in order.
const S_FIELDS: [&str; 7] = [
    "created_at",
    "expires_at",
    "id",
    "ip",
    "last_seen_at",
    "method",
    "user_agent",
];

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// Polls `check` every 200 ms until it holds, for at most `limit`.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn every_endpoint() {
    let srv = server(&[]).await;
    let ann = srv.sign_up(ANN, PW).await;
    let ann_access = &ann["tokens"]["access_token"];
    let ann_sid = s(&payload(ann_access)["sid"]).to_owned();

    // Signing in with the cookie: {"user", "session"} and the cookie, exactly.
    let res = srv.post_session(ROOT, ROOT_PW, json!({})).await;
    let signed = res.ok().clone();
    assert_eq!(res.headers["cache-control"], "no-store");
    assert_eq!(keys(&signed), ["session", "user"]);
    assert_eq!(signed["user"]["email"], ROOT);
    assert_eq!(signed["user"]["role"], "admin");
    let session = &signed["session"];
    assert_eq!(keys(session), S_FIELDS, "{session}");
    assert_eq!(session["method"], "password");
    assert_eq!(session["ip"], "127.0.0.1");
    assert_eq!(session["user_agent"], UA);
    assert!(s(&session["expires_at"]).ends_with("+00:00"), "{session}");
    let cookie = set_cookie(&res);
    assert_eq!(cookie.name, COOKIE);
    assert_eq!(cookie.value.len(), 43);
    assert_eq!(
        cookie.attributes,
        attrs(&["HttpOnly", "SameSite=Lax", "Secure", "Path=/"])
    );
    let max_age = cookie.max_age.unwrap();
    assert!(
        (720 * 3600 - 5..=720 * 3600).contains(&max_age),
        "{max_age}"
    );
    let cookie_key = cookie.value;
    let cookie_sid = s(&session["id"]).to_owned();

    // The current session, by the cookie: the same user object `/user` answers.
    let me = srv
        .send(srv.by_cookie(M::GET, "/session", &cookie_key, None))
        .await;
    assert_eq!(me.headers["cache-control"], "no-store");
    let me = me.ok();
    assert_eq!(me["session"]["id"], cookie_sid.as_str());
    assert_eq!(me["user"], signed["user"]);

    // `return_key`: the key in the body, no cookie; it works as `Authorization: Session`.
    let (keyed, key) = srv.key_session(ROOT, ROOT_PW).await;
    assert_eq!(key.len(), 43);
    let mut with_key = S_FIELDS.to_vec();
    with_key.push("key");
    with_key.sort_unstable();
    assert_eq!(keys(&keyed["session"]), with_key);
    let by_key = srv.send(srv.by_key(M::GET, "/session", &key)).await;
    assert_eq!(by_key.ok()["session"]["id"], keyed["session"]["id"]);
    assert!(by_key.body["session"].get("key").is_none(), "shown once");
    let key_sid = s(&keyed["session"]["id"]).to_owned();

    // `/token` opens one too: `sid` in both tokens, `gen` in the refresh token.
    let tokens = srv.tokens(ROOT, ROOT_PW).await;
    let (access, refresh) = (&tokens["access_token"], &tokens["refresh_token"]);
    let token_sid = s(&payload(access)["sid"]).to_owned();
    assert_eq!(payload(refresh)["sid"], token_sid.as_str());
    assert_eq!(payload(refresh)["gen"], 0);
    let user = srv.get("/user", Some(s(access))).await;
    assert_eq!(user.ok()["user"], signed["user"]);

    // My sessions, newest first, `current` on the Bearer's, with address and user agent.
    let listed = srv
        .send(srv.by_bearer(M::GET, "/sessions", s(access)))
        .await;
    assert_eq!(listed.headers["cache-control"], "no-store");
    let listed = listed.ok()["sessions"].as_array().unwrap().clone();
    let ids: Vec<&str> = listed.iter().map(|x| s(&x["id"])).collect();
    assert_eq!(ids, [&token_sid, &key_sid, &cookie_sid]);
    let current: Vec<bool> = listed.iter().map(|x| x["current"] == true).collect();
    assert_eq!(current, [true, false, false]);
    for x in &listed {
        assert_eq!(x["ip"], "127.0.0.1");
        assert_eq!(x["user_agent"], UA);
        assert_eq!(x["method"], "password");
        assert!(x.get("key").is_none());
    }
    let created: Vec<&str> = listed.iter().map(|x| s(&x["created_at"])).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    // Ann's sessions are hers alone.
    let anns = srv
        .send(srv.by_bearer(M::GET, "/sessions", s(ann_access)))
        .await;
    let anns = anns.ok()["sessions"].as_array().unwrap().clone();
    assert_eq!(anns.len(), 1);
    assert_eq!(anns[0]["id"], ann_sid.as_str());
    assert_eq!(anns[0]["method"], "verify-email");

    // Another user's session, an unknown one, a malformed id: 404, and nothing ends.
    for id in [
        ann_sid.as_str(),
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
    ] {
        srv.send(srv.by_key(M::DELETE, &format!("/sessions/{id}"), &key))
            .await
            .expect(404, "not_found");
    }
    srv.get("/session", Some(s(ann_access))).await.ok();

    // Ending one of mine by id (the key's, with the cookie from this origin).
    let ended = srv
        .send(srv.by_cookie(
            M::DELETE,
            &format!("/sessions/{key_sid}"),
            &cookie_key,
            Some(&srv.base),
        ))
        .await;
    assert_eq!(ended.ok(), &json!({}));
    assert!(
        !ended.headers.contains_key("set-cookie"),
        "not the cookie's"
    );
    let gone = srv.send(srv.by_key(M::GET, "/session", &key)).await;
    gone.expect(401, "invalid_session");
    assert_eq!(gone.headers["www-authenticate"], "Session");

    // All mine but the current one: the token's session ends, and its refresh token with it.
    srv.send(srv.by_cookie(M::DELETE, "/sessions", &cookie_key, Some(&srv.base)))
        .await
        .ok();
    srv.send(srv.by_bearer(M::GET, "/session", s(access)))
        .await
        .expect(401, "invalid_session");
    srv.refresh(refresh).await.expect(401, "invalid_token");
    let left = srv
        .send(srv.by_cookie(M::GET, "/sessions", &cookie_key, None))
        .await;
    let left = left.ok()["sessions"].as_array().unwrap().clone();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], cookie_sid.as_str());
    assert_eq!(left[0]["current"], true);
    // Ann's was not touched.
    srv.get("/session", Some(s(ann_access))).await.ok();

    // Logout: `{}`, the cookie cleared with the same attributes, the session gone.
    let out = srv
        .send(srv.by_cookie(M::POST, "/logout", &cookie_key, Some(&srv.base)))
        .await;
    assert_eq!(out.ok(), &json!({}));
    let cleared = set_cookie(&out);
    assert_eq!(
        (cleared.name.as_str(), cleared.value.as_str()),
        (COOKIE, "")
    );
    assert_eq!(cleared.max_age, Some(0));
    assert!(cleared.expires);
    assert_eq!(
        cleared.attributes,
        attrs(&["HttpOnly", "SameSite=Lax", "Secure", "Path=/"])
    );
    srv.send(srv.by_cookie(M::GET, "/session", &cookie_key, None))
        .await
        .expect(401, "invalid_session");
    srv.send(srv.by_cookie(M::POST, "/logout", &cookie_key, Some(&srv.base)))
        .await
        .expect(401, "invalid_session");

    // `DELETE /session` with a Bearer token ends its session: its refresh token stops working.
    let deleted = srv
        .send(srv.by_bearer(M::DELETE, "/session", s(ann_access)))
        .await;
    assert_eq!(deleted.ok(), &json!({}));
    srv.refresh(&ann["tokens"]["refresh_token"])
        .await
        .expect(401, "invalid_token");
    srv.get("/session", Some(s(ann_access)))
        .await
        .expect(401, "invalid_session");
    // No credentials at all.
    srv.get("/sessions", None)
        .await
        .expect(401, "invalid_session");
}
both_backends!(every_endpoint);

async fn refresh_rotation_and_reuse() {
    let srv = server(&[]).await;
    let t0 = srv.tokens(ROOT, ROOT_PW).await;
    let sid = payload(&t0["access_token"])["sid"].clone();
    // Rotation: a new pair at the next generation, on the same session.
    let t1 = srv.refresh(&t0["refresh_token"]).await.ok().clone();
    assert_eq!(payload(&t1["refresh_token"])["gen"], 1);
    assert_eq!(payload(&t1["refresh_token"])["sid"], sid);
    // The token just before, again within REFRESH_REUSE_INTERVAL (two tabs): a pair at the
    // current generation, no increment.
    let again = srv.refresh(&t0["refresh_token"]).await.ok().clone();
    assert_eq!(payload(&again["refresh_token"])["gen"], 1);
    let t2 = srv.refresh(&t1["refresh_token"]).await.ok().clone();
    assert_eq!(payload(&t2["refresh_token"])["gen"], 2);
    // An older generation is a reuse: 401, and the session ends with every token of it.
    srv.refresh(&t0["refresh_token"])
        .await
        .expect(401, "invalid_token");
    srv.refresh(&t2["refresh_token"])
        .await
        .expect(401, "invalid_token");
    srv.get("/session", Some(s(&t2["access_token"])))
        .await
        .expect(401, "invalid_session");
    let mine = srv.tokens(ROOT, ROOT_PW).await;
    let listed = srv
        .get("/sessions", Some(s(&mine["access_token"])))
        .await
        .ok()
        .clone();
    let ids: Vec<&Value> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| &x["id"])
        .collect();
    assert!(!ids.contains(&&sid), "the reused session is gone: {listed}");
}
both_backends!(refresh_rotation_and_reuse);

async fn a_password_change_ends_every_session() {
    let srv = server(&[]).await;
    srv.sign_up(ANN, PW).await;
    let (_, cookie) = srv.cookie_session(ANN, PW).await;
    let (_, key) = srv.key_session(ANN, PW).await;
    let tokens = srv.tokens(ANN, PW).await;
    srv.post_as(
        "/change-password",
        s(&tokens["access_token"]),
        json!({"old_password": PW, "new_password": "N3w!passw0rd"}),
    )
    .await
    .ok();
    srv.send(srv.by_cookie(M::GET, "/session", &cookie, None))
        .await
        .expect(401, "invalid_session");
    srv.send(srv.by_key(M::GET, "/session", &key))
        .await
        .expect(401, "invalid_session");
    srv.get("/session", Some(s(&tokens["access_token"])))
        .await
        .expect(401, "invalid_session");
    srv.refresh(&tokens["refresh_token"])
        .await
        .expect(401, "invalid_token");
    // The new password opens a new one.
    srv.cookie_session(ANN, "N3w!passw0rd").await;
}
both_backends!(a_password_change_ends_every_session);

async fn max_active_sessions_ends_the_oldest() {
    let srv = server(&[("MAX_ACTIVE_SESSIONS", "2")]).await;
    let (_, first) = srv.key_session(ROOT, ROOT_PW).await;
    let (_, second) = srv.cookie_session(ROOT, ROOT_PW).await;
    let third = srv.tokens(ROOT, ROOT_PW).await;
    srv.send(srv.by_key(M::GET, "/session", &first))
        .await
        .expect(401, "invalid_session");
    srv.send(srv.by_cookie(M::GET, "/session", &second, None))
        .await
        .ok();
    let listed = srv
        .get("/sessions", Some(s(&third["access_token"])))
        .await
        .ok()
        .clone();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 2, "{listed}");
}
both_backends!(max_active_sessions_ends_the_oldest);

async fn sessions_expire_absolutely_and_when_idle() {
    // Absolute: the cookie lives as long as the session.
    let srv = server(&[("SESSION_EXPIRATION", "3s")]).await;
    let res = srv.post_session(ROOT, ROOT_PW, json!({})).await;
    res.ok();
    let cookie = set_cookie(&res);
    assert!(
        (2..=3).contains(&cookie.max_age.unwrap()),
        "{:?}",
        cookie.max_age
    );
    let (_, key) = srv.key_session(ROOT, ROOT_PW).await;
    let tokens = srv.tokens(ROOT, ROOT_PW).await;
    srv.send(srv.by_key(M::GET, "/session", &key)).await.ok();
    // The tokens' session opened last: once it is dead, so are the others.
    let access = s(&tokens["access_token"]).to_owned();
    let expired = eventually(Duration::from_secs(10), async || {
        srv.get("/session", Some(&access)).await.status == 401
    })
    .await;
    assert!(expired, "the session outlived SESSION_EXPIRATION");
    srv.send(srv.by_key(M::GET, "/session", &key))
        .await
        .expect(401, "invalid_session");
    srv.send(srv.by_cookie(M::GET, "/session", &cookie.value, None))
        .await
        .expect(401, "invalid_session");
    srv.refresh(&tokens["refresh_token"])
        .await
        .expect(401, "invalid_token");

    // Idle: not seen for SESSION_IDLE_TIMEOUT ends it, long before its expiry.
    let srv = server(&[("SESSION_EXPIRATION", "1h"), ("SESSION_IDLE_TIMEOUT", "2s")]).await;
    let (_, key) = srv.key_session(ROOT, ROOT_PW).await;
    srv.send(srv.by_key(M::GET, "/session", &key)).await.ok();
    let idled = eventually(Duration::from_secs(10), async || {
        srv.send(srv.by_key(M::GET, "/session", &key)).await.status == 401
    })
    .await;
    assert!(idled, "the session outlived SESSION_IDLE_TIMEOUT");
}
both_backends!(sessions_expire_absolutely_and_when_idle);

#[tokio::test]
async fn cookie_authenticated_writes_need_a_trusted_origin() {
    let srv = server(&[(
        "ALLOWED_ORIGINS",
        "https://app.example.com, partner.example.org",
    )])
    .await;
    let (_, key) = srv.cookie_session(ROOT, ROOT_PW).await;
    let refused = |res: Resp| {
        res.expect(403, "forbidden");
    };
    // No Origin and no Referer; a foreign Origin; an opaque one; a foreign Referer; a look-alike.
    refused(
        srv.send(srv.by_cookie(M::DELETE, "/session", &key, None))
            .await,
    );
    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.com.evil.example",
        "http://app.example.com",
    ] {
        refused(
            srv.send(srv.by_cookie(M::POST, "/logout", &key, Some(origin)))
                .await,
        );
        refused(
            srv.send(srv.by_cookie(M::DELETE, "/sessions", &key, Some(origin)))
                .await,
        );
    }
    refused(
        srv.send(
            srv.by_cookie(M::DELETE, "/session", &key, None)
                .header("referer", "https://evil.example/page"),
        )
        .await,
    );
    refused(
        srv.send(srv.by_cookie(
            M::DELETE,
            "/sessions/00000000-0000-4000-8000-000000000000",
            &key,
            None,
        ))
        .await,
    );
    // None of that ended anything; reads need no Origin.
    srv.send(srv.by_cookie(M::GET, "/session", &key, Some("https://evil.example")))
        .await
        .ok();
    // Trusted: ALLOWED_ORIGINS (with or without a scheme), EXTERNAL_URL, or a Referer of one.
    for origin in [
        APP,
        "https://partner.example.org",
        "http://partner.example.org",
    ] {
        srv.send(srv.by_cookie(M::DELETE, "/sessions", &key, Some(origin)))
            .await
            .ok();
    }
    srv.send(srv.by_cookie(M::DELETE, "/sessions", &key, Some(&srv.base)))
        .await
        .ok();
    srv.send(
        srv.by_cookie(M::POST, "/logout", &key, None)
            .header("referer", format!("{APP}/settings?tab=1")),
    )
    .await
    .ok();
    srv.send(srv.by_cookie(M::GET, "/session", &key, None))
        .await
        .expect(401, "invalid_session");
    // The Session header and Bearer tokens need no Origin: a page cannot send them cross-site.
    let (_, key) = srv.key_session(ROOT, ROOT_PW).await;
    srv.send(srv.by_key(M::DELETE, "/session", &key)).await.ok();
    let tokens = srv.tokens(ROOT, ROOT_PW).await;
    srv.send(srv.by_bearer(M::POST, "/logout", s(&tokens["access_token"])))
        .await
        .ok();

    // `*` in ALLOWED_ORIGINS opens CORS reads, never cookie-authenticated writes.
    let srv = server(&[("ALLOWED_ORIGINS", "*")]).await;
    let (_, key) = srv.cookie_session(ROOT, ROOT_PW).await;
    srv.send(srv.by_cookie(M::DELETE, "/session", &key, Some("https://evil.example")))
        .await
        .expect(403, "forbidden");
    srv.send(srv.by_cookie(M::DELETE, "/session", &key, Some(&srv.base)))
        .await
        .ok();
}

#[tokio::test]
async fn with_sessions_off_the_paths_are_unknown_and_tokens_name_no_session() {
    let srv = TestServer::start().await;
    for (method, path) in [
        (M::POST, "/session"),
        (M::GET, "/session"),
        (M::DELETE, "/session"),
        (M::POST, "/logout"),
        (M::GET, "/sessions"),
        (M::DELETE, "/sessions"),
        (M::DELETE, "/sessions/00000000-0000-4000-8000-000000000000"),
    ] {
        srv.send(srv.client.request(method, srv.url(path)))
            .await
            .expect(404, "not_found");
    }
    let tokens = srv.login(ROOT, ROOT_PW).await;
    assert!(payload(&tokens["access_token"]).get("sid").is_none());
    assert!(payload(&tokens["refresh_token"]).get("sid").is_none());
    assert!(payload(&tokens["refresh_token"]).get("gen").is_none());
    srv.get("/form?action=session", None)
        .await
        .expect(400, "invalid_action");
}

#[tokio::test]
async fn a_session_of_one_tenant_is_invalid_in_another() {
    let srv = server(&[
        ("MULTI_TENANT_ENABLED", "true"),
        ("INITIAL_USER_TENANT", "acme"),
    ])
    .await;
    let opened = srv
        .send(
            srv.client
                .post(srv.url("/session"))
                .header("x-tenant-id", "acme")
                .json(&json!({"email": ROOT, "password": ROOT_PW, "return_key": true})),
        )
        .await;
    assert_eq!(opened.ok()["user"]["tenant_id"], "acme");
    let key = s(&opened.body["session"]["key"]).to_owned();
    let id = opened.body["session"]["id"].clone();
    let me = srv
        .send(
            srv.by_key(M::GET, "/session", &key)
                .header("x-tenant-id", "acme"),
        )
        .await;
    assert_eq!(me.ok()["session"]["id"], id);
    srv.send(
        srv.by_key(M::GET, "/session", &key)
            .header("x-tenant-id", "beta"),
    )
    .await
    .expect(401, "invalid_session");
    srv.send(
        srv.by_key(M::DELETE, &format!("/sessions/{}", s(&id)), &key)
            .header("x-tenant-id", "beta"),
    )
    .await
    .expect(401, "invalid_session");
    // A Bearer token of acme names no session in beta either.
    let tokens = srv
        .send(
            srv.client
                .post(srv.url("/token"))
                .header("x-tenant-id", "acme")
                .json(&json!({"email": ROOT, "password": ROOT_PW})),
        )
        .await
        .ok()
        .clone();
    srv.send(
        srv.by_bearer(M::GET, "/sessions", s(&tokens["access_token"]))
            .header("x-tenant-id", "beta"),
    )
    .await
    .expect(401, "invalid_session");
}

#[tokio::test]
async fn signing_in_answers_as_token_does_and_redirects_browsers() {
    let srv = server(&[
        ("ALLOWED_REDIRECT_URLS", "https://app.example.com/"),
        ("LOGIN_FAILURES_PER_ACCOUNT", "3"),
    ])
    .await;
    // Wrong password and unknown address alike; a malformed address; a missing field.
    srv.post_session(ROOT, "Wr0ng!password", json!({}))
        .await
        .expect(401, "invalid_credentials");
    srv.post_session("nobody@example.com", ROOT_PW, json!({}))
        .await
        .expect(401, "invalid_credentials");
    srv.post_session("not an address", ROOT_PW, json!({}))
        .await
        .expect(400, "invalid_email");
    srv.post("/session", json!({"email": ROOT}))
        .await
        .expect(400, "invalid_body");
    srv.post(
        "/session",
        json!({"email": ROOT, "password": ROOT_PW, "return_key": "maybe"}),
    )
    .await
    .expect(400, "invalid_body");

    // `rd` must be allowed; then a 303 to it, with the cookie.
    srv.post_session(ROOT, ROOT_PW, json!({"rd": "https://evil.example/x"}))
        .await
        .expect(400, "invalid_redirect_url");
    let rd = "https://app.example.com/private/page?x=1";
    let res = srv.post_session(ROOT, ROOT_PW, json!({"rd": rd})).await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(res.headers["location"], rd);
    assert_eq!(res.headers["cache-control"], "no-store");
    let key = set_cookie(&res).value;
    srv.send(srv.by_cookie(M::GET, "/session", &key, None))
        .await
        .ok();

    // A browser's form post: form-encoded, HTML preferred. Without `rd`, to the session page.
    let form = |fields: &[(&str, &str)]| {
        srv.client
            .post(srv.url("/session"))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .form(fields)
    };
    let res = srv
        .send(form(&[("email", ROOT), ("password", ROOT_PW)]))
        .await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(
        res.headers["location"],
        format!("{}/form?action=session", srv.base).as_str()
    );
    let key = set_cookie(&res).value;
    let res = srv
        .send(form(&[("email", ROOT), ("password", ROOT_PW), ("rd", rd)]))
        .await;
    assert_eq!(res.headers["location"], rd);
    // A form's `return_key=true` is read as JSON's `true`.
    let keyed = srv
        .send(srv.client.post(srv.url("/session")).form(&[
            ("email", ROOT),
            ("password", ROOT_PW),
            ("return_key", "true"),
        ]))
        .await;
    assert_eq!(s(&keyed.ok()["session"]["key"]).len(), 43);

    // The session page: signed in, who and a logout button; it carries a valid `rd` only.
    let page = srv
        .send(srv.by_cookie(M::GET, "/form?action=session", &key, None))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    assert!(
        page.text.contains("You are signed in as root@example.com."),
        "{}",
        page.text
    );
    assert!(page.text.contains(r#"action="/logout""#));
    let anonymous = srv
        .get(
            "/form?action=session&rd=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3D1%26c%3D%22",
            None,
        )
        .await;
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.text.contains(r#"action="/session""#));
    assert!(
        anonymous
            .text
            .contains(r#"name="rd" value="https://app.example.com/a?b=1&amp;c=%22""#),
        "{}",
        anonymous.text
    );
    srv.get(
        "/form?action=session&rd=https%3A%2F%2Fevil.example%2F",
        None,
    )
    .await
    .expect(400, "invalid_redirect_url");

    // Logging out from the page: back to it, the cookie cleared.
    let out = srv
        .send(
            srv.by_cookie(M::POST, "/logout", &key, Some(&srv.base))
                .header("accept", "text/html")
                .header("content-type", "application/x-www-form-urlencoded"),
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.text);
    assert_eq!(
        out.headers["location"],
        format!("{}/form?action=session", srv.base).as_str()
    );
    assert_eq!(set_cookie(&out).max_age, Some(0));
    srv.send(srv.by_cookie(M::GET, "/session", &key, None))
        .await
        .expect(401, "invalid_session");

    // The per-account limit is the one `/token` counts: three failures, then refused.
    srv.post_session(ROOT, "Wr0ng!password", json!({}))
        .await
        .expect(401, "invalid_credentials");
    srv.post_session(ROOT, "Wr0ng!password", json!({}))
        .await
        .expect(401, "invalid_credentials");
    srv.post(
        "/token",
        json!({"email": ROOT, "password": "Wr0ng!password"}),
    )
    .await
    .expect(401, "invalid_credentials");
    let limited = srv.post_session(ROOT, ROOT_PW, json!({})).await;
    limited.expect(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn signing_in_needs_the_captcha_as_token_does() {
    let siteverify = Scripted::start("/siteverify", Answer::new(200, r#"{"success": true}"#))
        .await
        .unwrap();
    let mut vars = crate::captcha::captcha_vars(&siteverify);
    vars.push(("SESSIONS_ENABLED", "true"));
    let srv = TestServer::with(&vars).await;
    srv.post("/session", json!({"email": ROOT, "password": ROOT_PW}))
        .await
        .expect(400, "captcha_failed");
    assert!(siteverify.seen().is_empty());
    srv.post(
        "/session",
        json!({"email": ROOT, "password": ROOT_PW, "captcha_token": "tok"}),
    )
    .await
    .ok();
    assert_eq!(siteverify.seen().len(), 1);
    // The session page shows the widget.
    let page = srv.get("/form?action=session", None).await;
    assert!(
        page.text.contains(r#"data-sitekey="site-key-123""#),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn cookie_settings_are_applied() {
    let srv = server(&[
        ("SESSION_COOKIE_NAME", "sid_cookie"),
        ("SESSION_COOKIE_SECURE", "false"),
        ("SESSION_COOKIE_DOMAIN", "example.com"),
    ])
    .await;
    let res = srv.post_session(ROOT, ROOT_PW, json!({})).await;
    res.ok();
    let cookie = set_cookie(&res);
    assert_eq!(cookie.name, "sid_cookie");
    assert_eq!(
        cookie.attributes,
        attrs(&["HttpOnly", "SameSite=Lax", "Path=/", "Domain=example.com"])
    );
    let me = srv
        .send(
            srv.client
                .get(srv.url("/session"))
                .header("cookie", format!("sid_cookie={}", cookie.value)),
        )
        .await;
    me.ok();
    // The default name is not this server's cookie.
    srv.send(srv.by_cookie(M::GET, "/session", &cookie.value, None))
        .await
        .expect(401, "invalid_session");
    let out = srv
        .send(
            srv.client
                .post(srv.url("/logout"))
                .header("cookie", format!("sid_cookie={}", cookie.value))
                .header("origin", &srv.base),
        )
        .await;
    out.ok();
    let cleared = set_cookie(&out);
    assert_eq!(
        cleared.attributes,
        attrs(&["HttpOnly", "SameSite=Lax", "Path=/", "Domain=example.com"])
    );
}
