//! The user administration API of SPEC §11 (`/admin/users…`) over HTTP: paging by cursor across
//! more than one full page while users are created between pages, the query filter, creating
//! and inviting (the invite mail caught by the real SMTP sink and its link followed), changing
//! email, role and password (the old password and the user's sessions stop working), deleting
//! (the user's session is refused at `/check`), an administrator's own account, non-admins, and
//! a backend that cannot list or delete. The CRUD test runs on every backend (SQLite,
//! PostgreSQL, the Hasura stand-in, the HTTP reference server); the session tests on the two
//! that keep the state store beside the users table.

use authura_core::{Email, NewUser, Role, TenantId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Backend, PW, ROOT, ROOT_PW, Resp, TestServer, both_backends, sql_backends};

const ANN: &str = "ann@example.com";
const P2: &str = "Sec0nd!pass";
const COOKIE: &str = "authura_session";

/// `method path` with `bearer` and, when given, a JSON body.
async fn call(
    srv: &TestServer,
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = srv
        .client
        .request(method, srv.url(path))
        .bearer_auth(bearer);
    if let Some(body) = body {
        req = req.json(&body);
    }
    srv.send(req).await
}

/// A user id as a path segment.
fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The users of every page of `GET /admin/users{query}` (`limit` per page), in order; checks
/// each page's size and that only the last has no cursor.
async fn all_pages(srv: &TestServer, admin: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut users = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/users?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = srv.get(&path, Some(admin)).await;
        let body = page.ok();
        let got = body["users"].as_array().unwrap();
        assert!(got.len() <= limit, "{path}: {} users", got.len());
        users.extend(got.iter().cloned());
        match &body["next_cursor"] {
            Value::Null => return users,
            Value::String(next) => {
                assert_eq!(got.len(), limit, "a page before the last is full");
                cursor = Some(next.clone());
            }
            other => panic!("next_cursor: {other}"),
        }
    }
}

async fn crud_on_every_backend() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let me = srv.get("/user", Some(&admin)).await.ok()["user"].clone();
    let root = id_text(&me["id"]);

    // Create: 201 U, verified by default, the password works.
    let created = call(
        &srv,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": " Ann@Example.com ", "password": PW, "role": "editor"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let ann = created.body.clone();
    assert_eq!(
        (&ann["email"], &ann["role"]),
        (&json!(ANN), &json!("editor"))
    );
    assert!(ann["verified_at"].is_string(), "{ann}");
    let id = id_text(&ann["id"]);
    srv.login(ANN, PW).await;
    for (body, status, code) in [
        (json!({"email": ANN, "password": PW}), 409, "email_taken"),
        (
            json!({"email": "weak@example.com", "password": "short"}),
            400,
            "weak_password",
        ),
        (json!({"email": "not an address"}), 400, "invalid_email"),
        (
            json!({"email": "x@example.com", "invite": true, "password": PW}),
            400,
            "invalid_body",
        ),
        (json!({"password": PW}), 400, "invalid_body"),
    ] {
        call(&srv, Method::POST, "/admin/users", &admin, Some(body))
            .await
            .expect(status, code);
    }
    let unverified = call(
        &srv,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": "unverified@example.com", "password": PW, "verified": false})),
    )
    .await;
    assert_eq!(unverified.status, 201, "{}", unverified.text);
    assert_eq!(unverified.body["verified_at"], Value::Null);
    assert_eq!(unverified.body["role"], json!("user"));
    srv.post(
        "/token",
        json!({"email": "unverified@example.com", "password": PW}),
    )
    .await
    .expect(403, "email_not_verified");

    // Show: U plus the account.
    let shown = srv.get(&format!("/admin/users/{id}"), Some(&admin)).await;
    let shown = shown.ok();
    assert_eq!(shown["email"], json!(ANN));
    assert_eq!(shown["account"]["locked"], json!(false));
    assert_eq!(shown["account"]["archived"], json!(false));
    assert_eq!(shown["account"]["sessions"], json!(0));
    srv.get("/admin/users/987654321", Some(&admin))
        .await
        .expect(404, "not_found");

    // The query filter: a part of the email in any case, or the id exactly.
    let found = srv
        .get("/admin/users?query=ANN%40EXAMPLE", Some(&admin))
        .await;
    let found = found.ok()["users"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], ann["id"]);
    let by_id = srv
        .get(&format!("/admin/users?query={id}"), Some(&admin))
        .await;
    assert!(
        by_id.ok()["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == ann["id"])
    );

    // Update: email, role, password; the old password stops working.
    let updated = call(
        &srv,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        &admin,
        Some(json!({"email": "ann2@example.com", "role": "viewer", "password": P2})),
    )
    .await;
    let updated = updated.ok();
    assert_eq!(
        (&updated["email"], &updated["role"]),
        (&json!("ann2@example.com"), &json!("viewer"))
    );
    srv.post(
        "/token",
        json!({"email": "ann2@example.com", "password": PW}),
    )
    .await
    .expect(401, "invalid_credentials");
    let ann_tokens = srv.login("ann2@example.com", P2).await;
    let ann_access = ann_tokens["access_token"].as_str().unwrap().to_owned();
    for (refused, status, code) in [
        (json!({"password": "weak"}), 400, "weak_password"),
        (json!({"email": ROOT}), 409, "email_taken"),
        (json!({"verified": false}), 400, "invalid_body"),
    ] {
        let path = format!("/admin/users/{id}");
        call(&srv, Method::PATCH, &path, &admin, Some(refused))
            .await
            .expect(status, code);
    }

    // Not an administrator, or no credentials.
    srv.get("/admin/users", Some(&ann_access))
        .await
        .expect(403, "forbidden");
    call(
        &srv,
        Method::DELETE,
        &format!("/admin/users/{root}"),
        &ann_access,
        None,
    )
    .await
    .expect(403, "forbidden");
    srv.get("/admin/users", None)
        .await
        .expect(401, "invalid_token");
    // Who asks comes before what they ask for.
    srv.post("/admin/users", json!({"email": "not an address"}))
        .await
        .expect(401, "invalid_token");
    srv.get("/admin/users?tenant_id=elsewhere", Some(&admin))
        .await
        .expect(403, "forbidden");
    let head = srv
        .send(srv.client.head(srv.url("/admin/users")).bearer_auth(&admin))
        .await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));

    // An administrator's own account: no delete, no demotion; keeping the role is fine.
    call(
        &srv,
        Method::DELETE,
        &format!("/admin/users/{root}"),
        &admin,
        None,
    )
    .await
    .expect(409, "self_modification");
    call(
        &srv,
        Method::PATCH,
        &format!("/admin/users/{root}"),
        &admin,
        Some(json!({"role": "user"})),
    )
    .await
    .expect(409, "self_modification");
    call(
        &srv,
        Method::PATCH,
        &format!("/admin/users/{root}"),
        &admin,
        Some(json!({"role": "admin"})),
    )
    .await
    .ok();

    // Delete: 204, then gone, and their token with them.
    let res = call(
        &srv,
        Method::DELETE,
        &format!("/admin/users/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text);
    srv.get(&format!("/admin/users/{id}"), Some(&admin))
        .await
        .expect(404, "not_found");
    call(
        &srv,
        Method::DELETE,
        &format!("/admin/users/{id}"),
        &admin,
        None,
    )
    .await
    .expect(404, "not_found");
    srv.get("/user", Some(&ann_access))
        .await
        .expect(401, "invalid_token");

    // Reset mail for a user.
    let mailed = call(
        &srv,
        Method::POST,
        &format!(
            "/admin/users/{}/reset-password",
            id_text(&unverified.body["id"])
        ),
        &admin,
        None,
    )
    .await;
    mailed.ok();
    let mail = srv.mail_to("unverified@example.com").await;
    let token = TestServer::token_in(&mail);
    srv.post("/verify-email", json!({"token": token, "password": P2}))
        .await
        .ok();
    srv.login("unverified@example.com", P2).await;
}
both_backends!(crud_on_every_backend);

/// More users than the largest page, listed by cursor while more are created between pages:
/// each user once, in id order; the limits.
async fn list_pages_by_cursor_across_more_than_a_page() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let ctx = srv.state.ctx();
    let hash = ctx
        .hasher
        .hash(authura_core::Secret::new(PW))
        .await
        .unwrap();
    for n in 0..260 {
        ctx.store
            .create(NewUser {
                email: Email::parse(&format!("user{n:03}@example.com")).unwrap(),
                role: Role::parse("user").unwrap(),
                tenant: None::<TenantId>,
                password_hash: hash.clone(),
                verified_at: None,
            })
            .await
            .unwrap();
    }
    // Default 50 per page; at most 200.
    let first = srv.get("/admin/users", Some(&admin)).await;
    assert_eq!(first.ok()["users"].as_array().unwrap().len(), 50);
    assert_eq!(first.headers["cache-control"], "no-store");
    for bad in ["limit=0", "limit=201", "limit=x", "cursor=nope"] {
        srv.get(&format!("/admin/users?{bad}"), Some(&admin))
            .await
            .expect(400, "invalid_body");
    }
    let all = all_pages(&srv, &admin, "", 200).await;
    assert_eq!(all.len(), 261);
    let emails: std::collections::BTreeSet<_> = all
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails.len(), 261, "no user twice");

    // Users created between pages: nobody skipped or repeated.
    let page = srv.get("/admin/users?limit=200", Some(&admin)).await;
    let page = page.ok().clone();
    for n in 0..3 {
        ctx.store
            .create(NewUser {
                email: Email::parse(&format!("late{n}@example.com")).unwrap(),
                role: Role::parse("user").unwrap(),
                tenant: None,
                password_hash: hash.clone(),
                verified_at: None,
            })
            .await
            .unwrap();
    }
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = srv
        .get(
            &format!("/admin/users?limit=200&cursor={cursor}"),
            Some(&admin),
        )
        .await;
    let rest = rest.ok()["users"].as_array().unwrap().clone();
    let mut seen: Vec<Value> = page["users"].as_array().unwrap().clone();
    seen.extend(rest);
    let emails: std::collections::BTreeSet<_> = seen
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails.len(), seen.len(), "no user twice");
    assert!(emails.len() >= 261, "nobody skipped: {}", emails.len());

    // The filter pages too.
    let filtered = all_pages(&srv, &admin, "&query=USER1", 20).await;
    assert_eq!(filtered.len(), 100);
    assert!(
        filtered
            .iter()
            .all(|u| u["email"].as_str().unwrap().starts_with("user1"))
    );
}
sql_backends!(list_pages_by_cursor_across_more_than_a_page);

/// With sessions on: `/check` with a session key.
async fn check(srv: &TestServer, key: &str) -> u16 {
    srv.send(
        srv.client
            .get(srv.url("/check"))
            .header("authorization", format!("Session {key}")),
    )
    .await
    .status
}

/// Signs in a session; its key.
async fn session_key(srv: &TestServer, email: &str, password: &str) -> String {
    let res = srv
        .post(
            "/session",
            json!({"email": email, "password": password, "return_key": true}),
        )
        .await;
    res.ok()["session"]["key"].as_str().unwrap().to_owned()
}

async fn sessions_end_with_a_password_change_a_delete_and_on_request() {
    let srv = TestServer::with(&[("SESSIONS_ENABLED", "true"), ("AUDIT_ENABLED", "true")]).await;
    let admin = srv.admin_token().await;
    let created = call(
        &srv,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": ANN, "password": PW})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = id_text(&created.body["id"]);

    // A password change ends every session.
    let key = session_key(&srv, ANN, PW).await;
    assert_eq!(check(&srv, &key).await, 200);
    let shown = srv.get(&format!("/admin/users/{id}"), Some(&admin)).await;
    assert_eq!(shown.ok()["account"]["sessions"], json!(1));
    call(
        &srv,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        &admin,
        Some(json!({"password": P2})),
    )
    .await
    .ok();
    assert_eq!(check(&srv, &key).await, 401);
    let shown = srv.get(&format!("/admin/users/{id}"), Some(&admin)).await;
    let shown = shown.ok();
    assert_eq!(shown["account"]["sessions"], json!(0));
    assert!(
        shown["account"]["password_changed_at"].is_string(),
        "{shown}"
    );

    // A role change is seen by /check at once; the session lives on.
    let key = session_key(&srv, ANN, P2).await;
    let res = srv
        .send(
            srv.client
                .get(srv.url("/check"))
                .header("authorization", format!("Session {key}")),
        )
        .await;
    assert_eq!(res.ok()["role"], json!("user"));
    call(
        &srv,
        Method::PATCH,
        &format!("/admin/users/{id}"),
        &admin,
        Some(json!({"role": "editor"})),
    )
    .await
    .ok();
    let res = srv
        .send(
            srv.client
                .get(srv.url("/check"))
                .header("authorization", format!("Session {key}")),
        )
        .await;
    assert_eq!(res.ok()["role"], json!("editor"));

    // Ended on request.
    let res = call(
        &srv,
        Method::DELETE,
        &format!("/admin/users/{id}/sessions"),
        &admin,
        None,
    )
    .await;
    res.ok();
    assert_eq!(check(&srv, &key).await, 401);
    call(
        &srv,
        Method::DELETE,
        "/admin/users/987654321/sessions",
        &admin,
        None,
    )
    .await
    .expect(404, "not_found");

    // A lock ends them too (SPEC §8); an unlock lets the user sign in again.
    let key = session_key(&srv, ANN, P2).await;
    assert_eq!(check(&srv, &key).await, 200);
    call(
        &srv,
        Method::POST,
        &format!("/admin/users/{id}/lock"),
        &admin,
        None,
    )
    .await
    .ok();
    assert_eq!(check(&srv, &key).await, 401);
    call(
        &srv,
        Method::POST,
        &format!("/admin/users/{id}/unlock"),
        &admin,
        None,
    )
    .await
    .ok();

    // Deleted: their session is refused at /check, their permit is gone.
    let group = call(
        &srv,
        Method::POST,
        "/rolegroups",
        &admin,
        Some(json!({"name": "readers", "permissions": [1]})),
    )
    .await;
    assert_eq!(group.status, 201, "{}", group.text);
    call(
        &srv,
        Method::PUT,
        &format!("/permits/{id}"),
        &admin,
        Some(json!({"groups": ["readers"]})),
    )
    .await
    .ok();
    let store = srv.state.state_store().unwrap();
    let user_id = authura_core::UserId::from_subject(&id);
    assert!(!store.permit(None, &user_id).await.unwrap().is_empty());
    let key = session_key(&srv, ANN, P2).await;
    assert_eq!(check(&srv, &key).await, 200);
    let res = call(
        &srv,
        Method::DELETE,
        &format!("/admin/users/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(check(&srv, &key).await, 401);
    assert!(store.permit(None, &user_id).await.unwrap().is_empty());

    // The audit log: created, updated (a diff without a hash), ended, deleted, by the admin.
    let root = id_text(&srv.get("/user", Some(&admin)).await.ok()["user"]["id"]);
    let started = std::time::Instant::now();
    let events = loop {
        let page = srv
            .get(
                &format!("/admin/audit?user_id={id}&limit=200"),
                Some(&admin),
            )
            .await;
        let events = page.ok()["events"].as_array().unwrap().clone();
        if events.iter().any(|e| e["event"] == "user.deleted") {
            break events;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{events:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == kind).collect() };
    assert_eq!(of("user.created").len(), 1);
    assert_eq!(of("user.deleted").len(), 1);
    let updates = of("user.updated");
    assert_eq!(updates.len(), 2, "{events:#?}");
    let by_admin = [
        "user.created",
        "user.updated",
        "session.ended",
        "user.deleted",
    ];
    for e in events
        .iter()
        .filter(|e| by_admin.contains(&e["event"].as_str().unwrap()))
    {
        assert_eq!(id_text(&e["actor_id"]), root, "{e}");
    }
    let password_update = updates
        .iter()
        .find(|e| e["detail"].get("password").is_some())
        .unwrap();
    assert_eq!(password_update["detail"]["password"], json!(true));
    assert!(!password_update["detail"].to_string().contains("argon2"));
    let role_update = updates
        .iter()
        .find(|e| e["detail"].get("role").is_some())
        .unwrap();
    assert_eq!(
        role_update["detail"]["role"],
        json!({"from": "user", "to": "editor"})
    );
    assert!(of("session.ended").len() >= 3);
}
sql_backends!(sessions_end_with_a_password_change_a_delete_and_on_request);

async fn invite_mails_a_link_that_sets_the_password() {
    let srv = TestServer::with(&[("AUDIT_ENABLED", "true")]).await;
    let admin = srv.admin_token().await;
    let created = call(
        &srv,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": ANN, "invite": true, "role": "editor", "verified": false})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["role"], json!("editor"));
    let mail = srv.mail_to(ANN).await;
    assert!(
        mail.subject.to_lowercase().contains("invite"),
        "{}",
        mail.subject
    );
    let token = TestServer::token_in(&mail);
    let done = srv
        .post("/verify-email", json!({"token": token, "password": PW}))
        .await;
    let done = done.ok();
    assert_eq!(done["user"]["role"], json!("editor"));
    assert!(done["user"]["verified_at"].is_string());
    srv.login(ANN, PW).await;
    // Audited as created and invited, by the administrator.
    let root = id_text(&srv.get("/user", Some(&admin)).await.ok()["user"]["id"]);
    let started = std::time::Instant::now();
    let invited = loop {
        let page = srv
            .get("/admin/audit?event=user.invited", Some(&admin))
            .await;
        let events = page.ok()["events"].as_array().unwrap().clone();
        if !events.is_empty() {
            break events;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15));
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(invited.len(), 1);
    assert_eq!(id_text(&invited[0]["actor_id"]), root);
    assert_eq!(
        id_text(&invited[0]["user_id"]),
        id_text(&created.body["id"])
    );
    // The link is single-use.
    srv.post("/verify-email", json!({"token": token, "password": P2}))
        .await
        .expect(400, "token_used");
}
sql_backends!(invite_mails_a_link_that_sets_the_password);

/// A session cookie: reads need no Origin; writes follow the CSRF rule.
async fn a_cookie_reads_freely_and_writes_with_an_allowed_origin() {
    let srv = TestServer::with(&[("SESSIONS_ENABLED", "true")]).await;
    let key = session_key(&srv, ROOT, ROOT_PW).await;
    let by_cookie = |method: Method, path: &str, origin: Option<&str>| {
        let mut req = srv
            .client
            .request(method, srv.url(path))
            .header("cookie", format!("{COOKIE}={key}"));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req
    };
    srv.send(by_cookie(Method::GET, "/admin/users", None))
        .await
        .ok();
    let body = json!({"email": ANN, "password": PW});
    srv.send(by_cookie(Method::POST, "/admin/users", None).json(&body))
        .await
        .expect(403, "forbidden");
    srv.send(by_cookie(Method::POST, "/admin/users", Some("https://evil.example")).json(&body))
        .await
        .expect(403, "forbidden");
    let res = srv
        .send(by_cookie(Method::POST, "/admin/users", Some(&srv.base)).json(&body))
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
}
sql_backends!(a_cookie_reads_freely_and_writes_with_an_allowed_origin);

/// An HTTP backend without the contract's optional list and delete: 501 `not_supported`.
#[tokio::test]
async fn a_backend_that_cannot_list_or_delete_answers_501() {
    let srv = crate::harness::on(Backend::Http, TestServer::start()).await;
    let admin = srv.admin_token().await;
    let created = call(
        &srv,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": ANN, "password": PW})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = id_text(&created.body["id"]);
    crate::http_backend::standin(&srv)
        .unwrap()
        .serve_optional_calls(false);
    srv.get("/admin/users", Some(&admin))
        .await
        .expect(501, "not_supported");
    call(
        &srv,
        Method::DELETE,
        &format!("/admin/users/{id}"),
        &admin,
        None,
    )
    .await
    .expect(501, "not_supported");
    // What the contract requires still works.
    srv.get(&format!("/admin/users/{id}"), Some(&admin))
        .await
        .ok();
    srv.login(ANN, PW).await;
}
