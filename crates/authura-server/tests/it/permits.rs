//! Role groups and permits over real HTTP (SPEC §8a), on every users backend (sqlite, postgres,
//! and hasura and http with their state in `STATE_DSN`): the admin endpoints with every
//! documented refusal (bad and duplicate names, out-of-range permissions, unknown ids and users,
//! non-admin callers), `/check`'s groups, permissions, permit blob and
//! `X-Authura-Groups`, `?permission=` by number and by `PERMISSION_NAMES` name, the audit
//! events, and the live effect: a permit or group change reaches `/check` at once on this
//! instance (the cache is invalidated) and within a second on another instance on the same
//! PostgreSQL (`LISTEN/NOTIFY`).

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::check::{Server, server};
use crate::harness::{PW, Resp, TestServer, both_backends};

/// How long a change may take to reach another instance before the test gives up (SPEC: 1 s;
/// generous for a loaded machine, far below the cache's 60 s TTL, so only events pass it).
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);

/// `method path` with a Bearer token and an optional JSON body.
async fn call(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = srv.client.request(method, srv.url(path));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    srv.send(req).await
}

async fn post(srv: &TestServer, path: &str, bearer: &str, body: Value) -> Resp {
    call(srv, reqwest::Method::POST, path, Some(bearer), Some(body)).await
}

async fn put(srv: &TestServer, path: &str, bearer: &str, body: Value) -> Resp {
    call(srv, reqwest::Method::PUT, path, Some(bearer), Some(body)).await
}

async fn delete(srv: &TestServer, path: &str, bearer: &str) -> Resp {
    call(srv, reqwest::Method::DELETE, path, Some(bearer), None).await
}

/// `GET /check` with `Authorization: Session <key>` and `query`.
async fn check(srv: &TestServer, key: &str, query: &str) -> Resp {
    srv.send(
        srv.client
            .get(srv.url(&format!("/check{query}")))
            .header("authorization", format!("Session {key}")),
    )
    .await
}

/// Signs `email` up (a `user`), opens a session; returns (user id as text, session key).
async fn member(srv: &Server, email: &str) -> (String, String) {
    srv.sign_up(email, PW).await;
    let user = srv.user(None, email).await;
    let (_, key) = srv.open(None, email).await;
    (user.id.to_string(), key)
}

/// The base64 permit blob of `ids`, as Python's `struct.pack(">I…")` and `base64` make it.
fn blob(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_be_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn id_of(v: &Value) -> u32 {
    u32::try_from(v["id"].as_u64().unwrap()).unwrap()
}

async fn groups_and_permits_answer_as_documented() {
    let srv = server(&[("AUDIT_ENABLED", "true")]).await;
    let admin = srv.admin_token().await;
    let (user_id, key) = member(&srv, "ann@example.com").await;
    let user_token = srv.login("ann@example.com", PW).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Create.
    let res = post(
        &srv,
        "/rolegroups",
        &admin,
        json!({"name": "readers", "permissions": [2, 1, 2]}),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.headers["cache-control"], "no-store");
    let readers = id_of(&res.body);
    assert_eq!(
        res.body,
        json!({"id": readers, "name": "readers", "permissions": [1, 2]})
    );
    let writers = id_of(
        &post(
            &srv,
            "/rolegroups",
            &admin,
            json!({"name": "writers", "permissions": [3, 65535]}),
        )
        .await
        .body,
    );
    assert!(writers > readers, "ids grow");
    let empty = post(&srv, "/rolegroups", &admin, json!({"name": "Readers"})).await;
    assert_eq!(
        empty.status, 201,
        "names are case-sensitive: {}",
        empty.text
    );
    assert_eq!(empty.body["permissions"], json!([]));
    let empty = id_of(&empty.body);

    // Refusals of input.
    post(&srv, "/rolegroups", &admin, json!({"name": "readers"}))
        .await
        .expect(409, "name_taken");
    for bad in [
        json!({"name": ""}),
        json!({"name": " readers"}),
        json!({"name": "readers\t"}),
        json!({"name": "a\nb"}),
        json!({"name": "x".repeat(129)}),
        json!({"permissions": [1]}),
        json!({"name": "n", "permissions": [65536]}),
        json!({"name": "n", "permissions": [-1]}),
        json!({"name": "n", "permissions": ["read"]}),
        json!({"name": "n", "permissions": [1.5]}),
        json!({"name": "n", "extra": 1}),
        json!({"name": 7}),
    ] {
        post(&srv, "/rolegroups", &admin, bad.clone())
            .await
            .expect(400, "invalid_body");
    }
    let long = "é".repeat(128);
    assert_eq!(
        post(&srv, "/rolegroups", &admin, json!({"name": long}))
            .await
            .status,
        201
    );

    // Read.
    let list = srv.get("/rolegroups", Some(&admin)).await;
    let names: Vec<&str> = list.ok()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["readers", "writers", "Readers", long.as_str()]);
    let one = srv
        .get(&format!("/rolegroups/{writers}"), Some(&admin))
        .await;
    assert_eq!(
        one.ok(),
        &json!({"id": writers, "name": "writers", "permissions": [3, 65535]})
    );
    for path in [
        "/rolegroups/999999",
        "/rolegroups/abc",
        "/rolegroups/-1",
        "/rolegroups/4294967296",
    ] {
        srv.get(path, Some(&admin)).await.expect(404, "not_found");
    }

    // Update: what is given is replaced, the rest stays.
    let res = put(
        &srv,
        &format!("/rolegroups/{empty}"),
        &admin,
        json!({"permissions": [9]}),
    )
    .await;
    assert_eq!(
        res.ok(),
        &json!({"id": empty, "name": "Readers", "permissions": [9]})
    );
    let res = put(
        &srv,
        &format!("/rolegroups/{empty}"),
        &admin,
        json!({"name": "spare"}),
    )
    .await;
    assert_eq!(
        res.ok(),
        &json!({"id": empty, "name": "spare", "permissions": [9]})
    );
    put(
        &srv,
        &format!("/rolegroups/{empty}"),
        &admin,
        json!({"name": "writers"}),
    )
    .await
    .expect(409, "name_taken");
    put(
        &srv,
        &format!("/rolegroups/{empty}"),
        &admin,
        json!({"name": " x"}),
    )
    .await
    .expect(400, "invalid_body");
    put(&srv, "/rolegroups/999999", &admin, json!({"name": "x"}))
        .await
        .expect(404, "not_found");

    // Permits.
    let permit = |groups: Value| json!({"groups": groups});
    let empty_permit = srv.get(&format!("/permits/{user_id}"), Some(&admin)).await;
    assert_eq!(empty_permit.ok()["groups"], json!([]));
    assert_eq!(empty_permit.ok()["permit"], "");
    let res = put(
        &srv,
        &format!("/permits/{user_id}"),
        &admin,
        permit(json!([readers, "writers"])),
    )
    .await;
    let body = res.ok();
    assert_eq!(body["user_id"].to_string().trim_matches('"'), user_id);
    assert_eq!(
        body["groups"],
        json!([{"id": readers, "name": "readers"}, {"id": writers, "name": "writers"}])
    );
    assert_eq!(body["permissions"], json!([1, 2, 3, 65535]));
    assert_eq!(body["permit"], blob(&[readers, writers]));
    assert_eq!(
        &srv.get(&format!("/permits/{user_id}"), Some(&admin))
            .await
            .ok()
            .clone(),
        body
    );
    // Unknown groups (by id, by name, a name in another case) and a body of the wrong shape.
    for (refused, status, code) in [
        (permit(json!([999999])), 404, "not_found"),
        (permit(json!(["nobody"])), 404, "not_found"),
        (permit(json!(["Writers"])), 404, "not_found"),
        (json!({"groups": "readers"}), 400, "invalid_body"),
    ] {
        put(&srv, &format!("/permits/{user_id}"), &admin, refused)
            .await
            .expect(status, code);
    }
    put(&srv, "/permits/987654", &admin, permit(json!([readers])))
        .await
        .expect(404, "not_found");
    srv.get("/permits/987654", Some(&admin))
        .await
        .expect(404, "not_found");
    srv.get("/permits/no-such-user", Some(&admin))
        .await
        .expect(404, "not_found");
    // The refused changes left it as it was.
    assert_eq!(
        &srv.get(&format!("/permits/{user_id}"), Some(&admin))
            .await
            .ok()
            .clone(),
        body
    );

    // /check answers the permit, and `?permission=` checks it.
    let res = check(&srv, &key, "").await;
    let got = res.ok();
    assert_eq!(got["groups"], body["groups"]);
    assert_eq!(got["permissions"], json!([1, 2, 3, 65535]));
    assert_eq!(got["permit"], blob(&[readers, writers]));
    assert!(
        got.get("permission_names").is_none(),
        "no PERMISSION_NAMES: {got}"
    );
    assert_eq!(res.headers["x-authura-groups"], "readers,writers");
    check(&srv, &key, "?permission=3&permission=1").await.ok();
    check(&srv, &key, "?permission=3&permission=9")
        .await
        .expect(403, "forbidden");
    check(&srv, &key, "?permission=read")
        .await
        .expect(400, "invalid_permission");

    // Not an administrator, or no credentials.
    for (method, path, body) in [
        (reqwest::Method::GET, "/rolegroups".to_owned(), None),
        (
            reqwest::Method::POST,
            "/rolegroups".to_owned(),
            Some(json!({"name": "mine"})),
        ),
        (reqwest::Method::GET, format!("/rolegroups/{readers}"), None),
        (
            reqwest::Method::PUT,
            format!("/rolegroups/{readers}"),
            Some(json!({"permissions": [1]})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/rolegroups/{readers}"),
            None,
        ),
        (reqwest::Method::GET, format!("/permits/{user_id}"), None),
        (
            reqwest::Method::PUT,
            format!("/permits/{user_id}"),
            Some(json!({"groups": []})),
        ),
    ] {
        call(&srv, method.clone(), &path, Some(&user_token), body.clone())
            .await
            .expect(403, "forbidden");
        call(&srv, method, &path, None, body)
            .await
            .expect(401, "invalid_token");
    }
    let res = call(
        &srv,
        reqwest::Method::PATCH,
        "/rolegroups",
        Some(&admin),
        None,
    )
    .await;
    res.expect(405, "method_not_allowed");

    // Live: a cached session sees a group's change and a permit's change at once.
    check(&srv, &key, "").await.ok();
    put(
        &srv,
        &format!("/rolegroups/{readers}"),
        &admin,
        json!({"permissions": [1, 2, 4]}),
    )
    .await
    .ok();
    check(&srv, &key, "?permission=4").await.ok();
    put(
        &srv,
        &format!("/permits/{user_id}"),
        &admin,
        permit(json!(["readers"])),
    )
    .await
    .ok();
    let res = check(&srv, &key, "").await;
    assert_eq!(res.ok()["permissions"], json!([1, 2, 4]));
    assert_eq!(res.headers["x-authura-groups"], "readers");
    check(&srv, &key, "?permission=3")
        .await
        .expect(403, "forbidden");

    // Deleting a group takes it out of every permit.
    put(
        &srv,
        &format!("/permits/{user_id}"),
        &admin,
        permit(json!([readers, writers])),
    )
    .await
    .ok();
    check(&srv, &key, "").await.ok();
    let res = delete(&srv, &format!("/rolegroups/{readers}"), &admin).await;
    assert_eq!(res.ok(), &json!({}));
    delete(&srv, &format!("/rolegroups/{readers}"), &admin)
        .await
        .expect(404, "not_found");
    srv.get(&format!("/rolegroups/{readers}"), Some(&admin))
        .await
        .expect(404, "not_found");
    let res = check(&srv, &key, "").await;
    assert_eq!(
        res.ok()["groups"],
        json!([{"id": writers, "name": "writers"}])
    );
    assert_eq!(res.ok()["permit"], blob(&[writers]));
    assert_eq!(res.headers["x-authura-groups"], "writers");
    let after = srv.get(&format!("/permits/{user_id}"), Some(&admin)).await;
    assert_eq!(after.ok()["permit"], blob(&[writers]));
    // A new group never takes the deleted one's id.
    let next = id_of(
        &post(&srv, "/rolegroups", &admin, json!({"name": "readers"}))
            .await
            .body,
    );
    assert!(next > readers);
    // The empty permit.
    let res = put(
        &srv,
        &format!("/permits/{user_id}"),
        &admin,
        permit(json!([])),
    )
    .await;
    assert_eq!(res.ok()["permit"], "");
    let res = check(&srv, &key, "").await;
    assert_eq!(res.ok()["groups"], json!([]));
    assert_eq!(res.headers["x-authura-groups"], "");

    // The audit log has each change, by the administrator.
    let events = audit_events(&srv, &admin, |events| {
        count(events, "permit.changed") >= 4 && count(events, "rolegroup.deleted") >= 1
    })
    .await;
    assert_eq!(count(&events, "rolegroup.created"), 5);
    assert_eq!(count(&events, "rolegroup.updated"), 3);
    assert_eq!(count(&events, "permit.changed"), 4);
    let changed = events
        .iter()
        .find(|e| e["event"] == "permit.changed")
        .unwrap();
    assert_eq!(changed["user_id"].to_string().trim_matches('"'), user_id);
    assert!(!changed["actor_id"].is_null(), "{changed}");
    assert_eq!(changed["detail"]["groups"]["to"], json!([]));
}
both_backends!(groups_and_permits_answer_as_documented);

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// The audit log's events once `done` accepts them (the writer is off the request's path).
async fn audit_events(
    srv: &TestServer,
    admin: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page = srv.get("/admin/audit?limit=200", Some(admin)).await;
        let events = page.ok()["events"].as_array().unwrap().clone();
        if done(&events) {
            return events;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the audit log never got there: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn permission_names_are_answered_and_accepted() {
    let srv = server(&[(
        "PERMISSION_NAMES",
        r#"{"read": 1, "write": 2, "also-read": 1, "admin": 900}"#,
    )])
    .await;
    let admin = srv.admin_token().await;
    let (user_id, key) = member(&srv, "bob@example.com").await;
    let res = post(
        &srv,
        "/rolegroups",
        &admin,
        json!({"name": "editors", "permissions": ["write", 1, 7]}),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.body["permissions"], json!([1, 2, 7]));
    assert_eq!(res.body["permission_names"], json!(["also-read", "write"]));
    post(
        &srv,
        "/rolegroups",
        &admin,
        json!({"name": "x", "permissions": ["Write"]}),
    )
    .await
    .expect(400, "invalid_body");
    let res = put(
        &srv,
        &format!("/permits/{user_id}"),
        &admin,
        json!({"groups": ["editors"]}),
    )
    .await;
    assert_eq!(res.ok()["permission_names"], json!(["also-read", "write"]));
    let res = check(&srv, &key, "").await;
    assert_eq!(res.ok()["permission_names"], json!(["also-read", "write"]));
    assert_eq!(res.ok()["permissions"], json!([1, 2, 7]));
    check(&srv, &key, "?permission=write&permission=read&permission=7")
        .await
        .ok();
    check(&srv, &key, "?permission=admin")
        .await
        .expect(403, "forbidden");
    check(&srv, &key, "?permission=Write")
        .await
        .expect(400, "invalid_permission");
    check(&srv, &key, "?permission=900")
        .await
        .expect(403, "forbidden");
    // The name is refused before the credentials are looked at.
    check(&srv, "not-a-key", "?permission=nope")
        .await
        .expect(400, "invalid_permission");
}

#[tokio::test]
async fn without_sessions_the_paths_are_unknown() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    srv.get("/rolegroups", Some(&admin))
        .await
        .expect(404, "not_found");
    srv.get("/permits/1", Some(&admin))
        .await
        .expect(404, "not_found");
}

#[tokio::test]
async fn permission_names_are_checked_at_startup() {
    for bad in [
        r#"{"12": 1}"#,
        r#"{"read": 70000}"#,
        "[1]",
        r#"{" read": 1}"#,
    ] {
        let err = authura_server::config::load(&authura_server::config::Sources {
            env: crate::harness::base_vars("/tmp/unused.db", 8080, 25)
                .into_iter()
                .chain([
                    ("SESSIONS_ENABLED".to_owned(), "true".to_owned()),
                    ("PERMISSION_NAMES".to_owned(), bad.to_owned()),
                ])
                .collect(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.starts_with("PERMISSION_NAMES: ")),
            "{bad}: {err}"
        );
    }
}

/// Polls `/check` on `srv` until `done` accepts its answer; returns how long that took.
async fn until(srv: &TestServer, key: &str, done: impl Fn(&Resp) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let res = check(srv, key, "").await;
        assert_eq!(res.status, 200, "{}", res.text);
        if done(&res) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PROPAGATION_BOUND,
            "the other instance still answers the old permit: {}",
            res.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_reaches_the_others_cache() {
    let db = authura_testkit::postgres::database().await;
    let vars = [("SESSIONS_ENABLED", "true"), ("METRICS_ENABLED", "true")];
    let a = TestServer::with_postgres(&db.url, &vars).await;
    let b = TestServer::with_postgres(&db.url, &vars).await;
    let admin = a.admin_token().await;
    a.sign_up("cat@example.com", PW).await;
    let key = a
        .post(
            "/session",
            json!({"email": "cat@example.com", "password": PW, "return_key": true}),
        )
        .await
        .ok()["session"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_id = check(&a, &key, "").await.ok()["user_id"]
        .to_string()
        .trim_matches('"')
        .to_owned();
    let ops = id_of(
        &post(
            &a,
            "/rolegroups",
            &admin,
            json!({"name": "ops", "permissions": [5]}),
        )
        .await
        .body,
    );
    // B answers the session from its cache.
    check(&b, &key, "").await.ok();
    check(&b, &key, "").await.ok();

    put(
        &a,
        &format!("/permits/{user_id}"),
        &admin,
        json!({"groups": [ops]}),
    )
    .await
    .ok();
    let took = until(&b, &key, |r| r.body["permissions"] == json!([5])).await;
    eprintln!("a permit change reached the other instance in {took:?}");
    assert_eq!(check(&b, &key, "").await.headers["x-authura-groups"], "ops");

    put(
        &a,
        &format!("/rolegroups/{ops}"),
        &admin,
        json!({"name": "operations", "permissions": [5, 6]}),
    )
    .await
    .ok();
    let took = until(&b, &key, |r| r.body["permissions"] == json!([5, 6])).await;
    eprintln!("a group change reached the other instance in {took:?}");
    check(&b, &key, "?permission=6").await.ok();

    delete(&a, &format!("/rolegroups/{ops}"), &admin).await.ok();
    let took = until(&b, &key, |r| r.body["groups"] == json!([])).await;
    eprintln!("a group deletion reached the other instance in {took:?}");
    check(&b, &key, "?permission=5")
        .await
        .expect(403, "forbidden");
}

/// The claims of a JWT, decoded without checking it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn hasura_roles_follow_groups_when_asked() {
    let srv = server(&[
        ("JWT_EXTENSIONS", "hasura"),
        ("HASURA_ROLES_FROM_GROUPS", "true"),
    ])
    .await;
    let admin = srv.admin_token().await;
    let (user_id, _) = member(&srv, "dan@example.com").await;
    let hasura = |t: &Value| {
        claims(t["access_token"].as_str().unwrap())["https://hasura.io/jwt/claims"].clone()
    };
    let t = srv.login("dan@example.com", PW).await;
    assert_eq!(hasura(&t)["x-hasura-allowed-roles"], json!(["user"]));
    let ops = id_of(
        &post(&srv, "/rolegroups", &admin, json!({"name": "ops"}))
            .await
            .body,
    );
    post(&srv, "/rolegroups", &admin, json!({"name": "billing"})).await;
    put(
        &srv,
        &format!("/permits/{user_id}"),
        &admin,
        json!({"groups": ["billing", ops]}),
    )
    .await
    .ok();
    let t = srv.login("dan@example.com", PW).await;
    let claims_now = hasura(&t);
    assert_eq!(claims_now["x-hasura-default-role"], "user");
    assert_eq!(
        claims_now["x-hasura-allowed-roles"],
        json!(["user", "ops", "billing"])
    );
    // A refresh reads the groups again.
    put(
        &srv,
        &format!("/permits/{user_id}"),
        &admin,
        json!({"groups": ["billing"]}),
    )
    .await
    .ok();
    let refreshed = srv
        .post("/refresh", json!({"refresh_token": t["refresh_token"]}))
        .await;
    assert_eq!(
        hasura(refreshed.ok())["x-hasura-allowed-roles"],
        json!(["user", "billing"])
    );
}

#[tokio::test]
async fn hasura_roles_from_groups_needs_sessions_and_the_extension() {
    let load = |extra: &[(&str, &str)]| {
        authura_server::config::load(&authura_server::config::Sources {
            env: crate::harness::base_vars("/tmp/unused.db", 8080, 25)
                .into_iter()
                .chain(
                    extra
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                )
                .collect(),
            ..Default::default()
        })
    };
    let err = load(&[
        ("HASURA_ROLES_FROM_GROUPS", "true"),
        ("JWT_EXTENSIONS", "hasura"),
    ])
    .unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.contains("SESSIONS_ENABLED=true")),
        "{err}"
    );
    let err = load(&[
        ("HASURA_ROLES_FROM_GROUPS", "true"),
        ("SESSIONS_ENABLED", "true"),
    ])
    .unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.contains("JWT_EXTENSIONS=hasura")),
        "{err}"
    );
    let ok = load(&[
        ("HASURA_ROLES_FROM_GROUPS", "true"),
        ("SESSIONS_ENABLED", "true"),
        ("JWT_EXTENSIONS", "hasura"),
    ]);
    assert!(ok.unwrap().hasura_roles_from_groups);
}

#[tokio::test]
async fn an_administrators_session_works_under_the_csrf_rule() {
    let srv = server(&[]).await;
    let (user_id, _) = member(&srv, "eve@example.com").await;
    let (_, admin_key) = srv.open(None, crate::harness::ROOT).await;
    let cookie = Server::cookie(&admin_key);
    let put_permit = |origin: Option<&str>| {
        let mut req = srv
            .client
            .put(srv.url(&format!("/permits/{user_id}")))
            .header("cookie", &cookie)
            .json(&json!({"groups": []}));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        srv.send(req)
    };
    // The cookie alone, from no trusted origin: refused.
    put_permit(None).await.expect(403, "forbidden");
    put_permit(Some("https://evil.example"))
        .await
        .expect(403, "forbidden");
    put_permit(Some(&srv.base)).await.ok();
    // As under /admin, the cookie is trusted from a trusted origin only; `Authorization:
    // Session` is no cookie.
    let res = srv
        .get_with(
            &format!("/permits/{user_id}"),
            &[("cookie", &cookie), ("origin", &srv.base)],
        )
        .await;
    assert_eq!(res.ok()["groups"], json!([]));
    let res = srv
        .send(
            srv.client
                .post(srv.url("/rolegroups"))
                .header("authorization", format!("Session {admin_key}"))
                .json(&json!({"name": "by-session"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
}

#[tokio::test]
async fn a_permit_belongs_to_a_user_of_the_requests_tenant() {
    use authura_core::{Email, Role, Secret, TenantId, flows};
    let srv = server(&[
        ("MULTI_TENANT_ENABLED", "true"),
        ("INITIAL_USER_TENANT", "acme"),
    ])
    .await;
    let (acme, globex) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    );
    let ctx = srv.state.ctx();
    for (tenant, email) in [(&acme, "ann@acme.test"), (&globex, "boss@globex.test")] {
        let role = if email.starts_with("boss") {
            Role::parse("admin").unwrap()
        } else {
            Role::parse("user").unwrap()
        };
        flows::create_verified_user(
            ctx,
            Some(tenant),
            &Email::parse(email).unwrap(),
            Secret::new(PW),
            &role,
        )
        .await
        .unwrap();
    }
    let ann = srv.user(Some(&acme), "ann@acme.test").await.id.to_string();
    let token_in = async |tenant: &str, email: &str, password: &str| {
        let res = srv
            .send(
                srv.client
                    .post(srv.url("/token"))
                    .header("x-tenant-id", tenant)
                    .json(&json!({"email": email, "password": password})),
            )
            .await;
        res.ok()["access_token"].as_str().unwrap().to_owned()
    };
    let acme_admin = token_in("acme", crate::harness::ROOT, crate::harness::ROOT_PW).await;
    let globex_admin = token_in("globex", "boss@globex.test", PW).await;
    let in_tenant = |method: reqwest::Method, path: &str, tenant: &str, token: &str| {
        srv.client
            .request(method, srv.url(path))
            .header("x-tenant-id", tenant)
            .bearer_auth(token)
    };
    // Groups are global: globex's administrator creates one, acme's uses it.
    let res = srv
        .send(
            in_tenant(
                reqwest::Method::POST,
                "/rolegroups",
                "globex",
                &globex_admin,
            )
            .json(&json!({"name": "shared", "permissions": [4]})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let path = format!("/permits/{ann}");
    let res = srv
        .send(
            in_tenant(reqwest::Method::PUT, &path, "acme", &acme_admin)
                .json(&json!({"groups": ["shared"]})),
        )
        .await;
    assert_eq!(res.ok()["permissions"], json!([4]));
    // Ann is not a user of globex: its administrator finds no such user.
    srv.send(in_tenant(
        reqwest::Method::GET,
        &path,
        "globex",
        &globex_admin,
    ))
    .await
    .expect(404, "not_found");
    srv.send(
        in_tenant(reqwest::Method::PUT, &path, "globex", &globex_admin)
            .json(&json!({"groups": []})),
    )
    .await
    .expect(404, "not_found");
    let res = srv
        .send(in_tenant(reqwest::Method::GET, &path, "acme", &acme_admin))
        .await;
    assert_eq!(res.ok()["groups"][0]["name"], "shared");
    let (_, key) = srv.open(Some(&acme), "ann@acme.test").await;
    let res = srv
        .get_with(
            "/check?permission=4",
            &[
                ("authorization", &format!("Session {key}")),
                ("x-tenant-id", "acme"),
            ],
        )
        .await;
    assert_eq!(res.ok()["tenant_id"], "acme");
    assert_eq!(res.headers["x-authura-groups"], "shared");
}
