//! The account policies and the audit log of SPEC §11 over HTTP, on SQLite and PostgreSQL (the
//! state store beside the users table): lockout (answered like a wrong password, the
//! `account-locked` mail caught by the real SMTP sink, lifted by a reset or an admin, kept
//! across a restart and shared by two instances), password history in every flow that sets a
//! password, expiry (`password_expired` with a `reset_token`, the clock from first sight,
//! sessions capped), archive and restore, the captcha over the per-account limit, the admin's
//! account endpoints and `GET /admin/audit`.

use std::time::{Duration, Instant};

use authura_core::UserId;
use authura_core::state::{AccountChange, AuditEvent, StateStore};
use authura_testkit::scripted::{Answer, Scripted};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::harness::{Backend, PW, ROOT, ROOT_PW, Resp, TestServer, sql_backends};

const ANN: &str = "ann@example.com";
const WRONG: &str = "Wr0ng!guess";
const P2: &str = "Sec0nd!pass";
const P3: &str = "Th1rd!pass";
const P4: &str = "F0urth!pass";

/// A server on the same database as `srv`, with `vars`: a restart once `srv` stops, or a second
/// instance while it runs.
async fn same_database(srv: &TestServer, vars: &[(&str, &str)]) -> TestServer {
    match &srv.dsn {
        Some(dsn) => TestServer::with_postgres(dsn, vars).await,
        None => {
            let path = srv.db_path.to_str().unwrap().to_owned();
            let mut vars = vars.to_vec();
            vars.push(("SQLITE_DB_PATH", &path));
            TestServer::with(&vars).await
        }
    }
}

async fn token(srv: &TestServer, email: &str, password: &str) -> Resp {
    srv.post("/token", json!({"email": email, "password": password}))
        .await
}

/// The id of the user an access token is for, as text (a path segment, a token's `sub`).
async fn id_of(srv: &TestServer, access: &str) -> String {
    match &srv.get("/user", Some(access)).await.ok()["user"]["id"] {
        Value::String(id) => id.clone(),
        id => id.to_string(),
    }
}

/// Signs ANN up with `PW`; returns her id and `T`.
async fn ann(srv: &TestServer) -> (String, Value) {
    let t = srv.sign_up(ANN, PW).await["tokens"].clone();
    let id = id_of(srv, t["access_token"].as_str().unwrap()).await;
    (id, t)
}

/// `POST /admin/users/{id}/{operation}` with `bearer`.
async fn admin_op(srv: &TestServer, bearer: &str, id: &str, operation: &str) -> Resp {
    srv.post_as(&format!("/admin/users/{id}/{operation}"), bearer, json!({}))
        .await
}

fn store(srv: &TestServer) -> &std::sync::Arc<dyn StateStore> {
    srv.state.state_store().expect("the state store is open")
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn lockout_answers_like_a_wrong_password_mails_the_owner_and_a_reset_lifts_it() {
    let srv = TestServer::with(&[("LOCKOUT_THRESHOLD", "3")]).await;
    ann(&srv).await;
    let wrong = token(&srv, ANN, WRONG).await;
    wrong.expect(401, "invalid_credentials");
    for _ in 0..2 {
        token(&srv, ANN, WRONG)
            .await
            .expect(401, "invalid_credentials");
    }
    // Locked: the right password gets exactly the wrong one's answer.
    let right = token(&srv, ANN, PW).await;
    assert_eq!((right.status, &right.body), (wrong.status, &wrong.body));
    assert_eq!(
        right.headers.get("www-authenticate"),
        wrong.headers.get("www-authenticate")
    );
    // The owner is told, with a reset link; completing it lifts the lock.
    let mail = srv.mail_to(ANN).await;
    assert_eq!(mail.subject, "Your account has been locked");
    let reset = TestServer::token_in(&mail);
    srv.post("/verify-email", json!({"token": reset, "password": P2}))
        .await
        .ok();
    srv.login(ANN, P2).await;
}
sql_backends!(lockout_answers_like_a_wrong_password_mails_the_owner_and_a_reset_lifts_it);

async fn lockout_survives_a_restart_until_an_admin_unlocks() {
    let vars = [("LOCKOUT_THRESHOLD", "3"), ("LOCKOUT_DURATION", "0")];
    let first = TestServer::with(&vars).await;
    let (id, _) = ann(&first).await;
    for _ in 0..3 {
        token(&first, ANN, WRONG)
            .await
            .expect(401, "invalid_credentials");
    }
    first.stop().await;
    // A new process: nothing of the lock is in its memory.
    let second = same_database(&first, &vars).await;
    token(&second, ANN, PW)
        .await
        .expect(401, "invalid_credentials");
    let admin = second.admin_token().await;
    let state = admin_op(&second, &admin, &id, "unlock").await;
    let state = state.ok();
    assert_eq!(
        (&state["user_id"], &state["locked"], &state["failed_logins"]),
        (&json!(id), &json!(false), &json!(0))
    );
    second.login(ANN, PW).await;
}
sql_backends!(lockout_survives_a_restart_until_an_admin_unlocks);

/// Two instances on one PostgreSQL count one account's failures together; the instance that
/// locks it sends the mail.
#[tokio::test]
async fn lockout_is_shared_by_two_instances_on_one_postgres() {
    let vars = [("LOCKOUT_THRESHOLD", "3")];
    let a = crate::harness::on(Backend::Postgres, TestServer::with(&vars)).await;
    let b = same_database(&a, &vars).await;
    ann(&a).await;
    for srv in [&a, &b, &a] {
        token(srv, ANN, WRONG)
            .await
            .expect(401, "invalid_credentials");
    }
    token(&b, ANN, PW).await.expect(401, "invalid_credentials");
    token(&a, ANN, PW).await.expect(401, "invalid_credentials");
    assert_eq!(a.mail_to(ANN).await.subject, "Your account has been locked");
}

async fn history_refuses_recent_passwords_in_change_reset_and_verify_email() {
    let srv = TestServer::with(&[("PASSWORD_HISTORY", "3")]).await;
    let (_, t) = ann(&srv).await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let change = |old: &'static str, new: &'static str| {
        let (srv, access) = (&srv, access.clone());
        async move {
            srv.post_as(
                "/change-password",
                &access,
                json!({"old_password": old, "new_password": new}),
            )
            .await
        }
    };
    // N = 3: the current password and the two before it.
    change(PW, PW).await.expect(400, "password_reused");
    change(PW, P2).await.ok();
    change(P2, PW).await.expect(400, "password_reused");
    // A reset link (`/verify-email`) is held to the same history.
    srv.post("/reset-password", json!({"email": ANN}))
        .await
        .ok();
    let reset = TestServer::token_in(&srv.mail_to(ANN).await);
    for used in [P2, PW] {
        srv.post("/verify-email", json!({"token": reset, "password": used}))
            .await
            .expect(400, "password_reused");
    }
    srv.post("/verify-email", json!({"token": reset, "password": P3}))
        .await
        .ok();
    let access = srv.login(ANN, P3).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = srv
        .post_as(
            "/change-password",
            &access,
            json!({"old_password": P3, "new_password": P4}),
        )
        .await;
    res.ok();
    // P4, P3, P2 are the last three: the first password is allowed again.
    let res = srv
        .post_as(
            "/change-password",
            &access,
            json!({"old_password": P4, "new_password": PW}),
        )
        .await;
    res.ok();
    srv.login(ANN, PW).await;
}
sql_backends!(history_refuses_recent_passwords_in_change_reset_and_verify_email);

async fn expiry_starts_at_first_sight_caps_sessions_and_answers_a_reset_token() {
    let srv =
        TestServer::with(&[("PASSWORD_MAX_AGE", "2160h"), ("SESSIONS_ENABLED", "true")]).await;
    let (id, _) = ann(&srv).await;
    let id = UserId::from_subject(&id);
    let store = store(&srv);
    // A password written before the policy was on: its clock starts when it is first seen.
    store.forget_account(None, &id).await.unwrap();
    let before = Utc::now().trunc_subsecs(6);
    srv.login(ANN, PW).await;
    let seen = store.account_state(None, &id).await.unwrap();
    assert!(seen.password_changed_at.unwrap() >= before, "{seen:?}");
    // A session ends no later than the password does.
    let changed =
        Utc::now().trunc_subsecs(6) - chrono::Duration::days(90) + chrono::Duration::hours(1);
    store
        .update_account(
            None,
            &id,
            &AccountChange::PasswordChanged {
                at: changed,
                unlock: false,
            },
        )
        .await
        .unwrap();
    let res = srv
        .post(
            "/session",
            json!({"email": ANN, "password": PW, "return_key": true}),
        )
        .await;
    let expires_at = time(&res.ok()["session"]["expires_at"]);
    assert!(
        expires_at <= changed + chrono::Duration::days(90),
        "{expires_at} is after the password's expiry"
    );
    // Expired: 403 with a reset token that /verify-email completes.
    let old = Utc::now() - chrono::Duration::days(91);
    store
        .update_account(
            None,
            &id,
            &AccountChange::PasswordChanged {
                at: old,
                unlock: false,
            },
        )
        .await
        .unwrap();
    let res = token(&srv, ANN, PW).await;
    res.expect(403, "password_expired");
    let reset = res.body["reset_token"].as_str().unwrap().to_owned();
    // A wrong password still answers as one.
    token(&srv, ANN, WRONG)
        .await
        .expect(401, "invalid_credentials");
    srv.post("/verify-email", json!({"token": reset, "password": P2}))
        .await
        .ok();
    srv.login(ANN, P2).await;
}
sql_backends!(expiry_starts_at_first_sight_caps_sessions_and_answers_a_reset_token);

async fn archive_stops_sign_in_refresh_reset_and_invite_ends_sessions_and_restore_undoes_it() {
    let srv = TestServer::with(&[("SESSIONS_ENABLED", "true"), ("AUDIT_ENABLED", "true")]).await;
    let (id, _) = ann(&srv).await;
    let t = srv.login(ANN, PW).await;
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let key = srv
        .post(
            "/session",
            json!({"email": ANN, "password": PW, "return_key": true}),
        )
        .await
        .ok()["session"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = srv.admin_token().await;
    let state = admin_op(&srv, &admin, &id, "archive").await;
    assert_eq!(state.ok()["archived"], json!(true));
    token(&srv, ANN, PW)
        .await
        .expect(401, "invalid_credentials");
    srv.post("/refresh", json!({"refresh_token": refresh}))
        .await
        .expect(401, "invalid_token");
    let session = srv
        .send(
            srv.client
                .get(srv.url("/session"))
                .header("authorization", format!("Session {key}")),
        )
        .await;
    session.expect(401, "invalid_session");
    // A reset answers as for anyone, and sends nothing.
    let mails = srv.mails_requested();
    srv.post("/reset-password", json!({"email": ANN}))
        .await
        .ok();
    assert_eq!(srv.mails_requested(), mails);
    srv.post_as("/invite", &admin, json!({"email": ANN, "role": "user"}))
        .await
        .expect(409, "email_taken");
    assert_eq!(srv.mails_requested(), mails);
    // Restored as they were: the same password signs in.
    let state = admin_op(&srv, &admin, &id, "restore").await;
    assert_eq!(state.ok()["archived"], json!(false));
    srv.login(ANN, PW).await;
}
sql_backends!(archive_stops_sign_in_refresh_reset_and_invite_ends_sessions_and_restore_undoes_it);

async fn admin_account_operations_refuse_self_others_and_a_missing_state_store() {
    let srv = TestServer::with(&[("LOCKOUT_THRESHOLD", "5")]).await;
    let (id, t) = ann(&srv).await;
    let admin = srv.admin_token().await;
    let root = id_of(&srv, &admin).await;
    for op in ["lock", "archive"] {
        admin_op(&srv, &admin, &root, op)
            .await
            .expect(409, "self_modification");
    }
    let ann_token = t["access_token"].as_str().unwrap();
    admin_op(&srv, ann_token, &root, "lock")
        .await
        .expect(403, "forbidden");
    srv.send(srv.client.post(srv.url(&format!("/admin/users/{id}/lock"))))
        .await
        .expect(401, "invalid_token");
    admin_op(&srv, &admin, "987654", "lock")
        .await
        .expect(404, "not_found");
    let state = admin_op(&srv, &admin, &id, "lock").await;
    let state = state.ok();
    assert_eq!(
        (&state["locked"], &state["locked_until"]),
        (&json!(true), &Value::Null)
    );
    token(&srv, ANN, PW)
        .await
        .expect(401, "invalid_credentials");
    let res = srv
        .send(srv.client.get(srv.url(&format!("/admin/users/{id}/lock"))))
        .await;
    res.expect(405, "method_not_allowed");
    // No feature that keeps account state: no state store, nothing to lock.
    let plain = TestServer::start().await;
    let (id, _) = ann(&plain).await;
    let admin = plain.admin_token().await;
    admin_op(&plain, &admin, &id, "lock")
        .await
        .expect(501, "not_supported");
    plain
        .get("/admin/audit", Some(&admin))
        .await
        .expect(501, "not_supported");
}
sql_backends!(admin_account_operations_refuse_self_others_and_a_missing_state_store);

/// Polls `GET /admin/audit{query}` until `done` accepts the events (the writer is off the
/// request's path); gives up after 15 s.
async fn audit_until(
    srv: &TestServer,
    admin: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page = srv.get(&format!("/admin/audit{query}"), Some(admin)).await;
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

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

async fn audit_records_each_event_once_with_actor_user_and_ip_and_pages_newest_first() {
    let srv = TestServer::with(&[("AUDIT_ENABLED", "true"), ("LOCKOUT_THRESHOLD", "5")]).await;
    let (id, t) = ann(&srv).await;
    token(&srv, ANN, WRONG)
        .await
        .expect(401, "invalid_credentials");
    srv.login(ANN, PW).await;
    let access = t["access_token"].as_str().unwrap();
    srv.post_as(
        "/change-password",
        access,
        json!({"old_password": PW, "new_password": P2}),
    )
    .await
    .ok();
    let admin = srv.admin_token().await;
    let root = id_of(&srv, &admin).await;
    admin_op(&srv, &admin, &id, "lock").await.ok();
    admin_op(&srv, &admin, &id, "unlock").await.ok();
    let kinds = [
        "login.failed",
        "login.succeeded",
        "password.changed",
        "account.locked",
        "account.unlocked",
    ];
    let query = format!("?user_id={id}&limit=200");
    let events = audit_until(&srv, &admin, &query, |events| {
        kinds.iter().all(|k| count(events, k) > 0)
    })
    .await;
    for kind in kinds {
        assert_eq!(count(&events, kind), 1, "{kind}: {events:#?}");
    }
    for event in &events {
        assert_eq!(event["user_id"], json!(id), "{event}");
        assert_eq!(event["ip"], json!("127.0.0.1"), "{event}");
        assert_eq!(event["tenant_id"], Value::Null, "{event}");
        let actor = if event["event"] == "account.locked" || event["event"] == "account.unlocked" {
            json!(root)
        } else {
            Value::Null
        };
        assert_eq!(event["actor_id"], actor, "{event}");
    }
    // No secret in any event: no password, no hash, no token.
    let text = srv.get("/admin/audit?limit=200", Some(&admin)).await.text;
    for secret in [PW, P2, WRONG, ROOT_PW, access, "$2b$", "$argon2"] {
        assert!(
            !text.contains(secret),
            "{secret} is in the audit log: {text}"
        );
    }
    // Newest first, and the cursor walks the same events one page at a time.
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = srv
            .get(
                &format!("/admin/audit?user_id={id}&limit=2&cursor={cursor}"),
                Some(&admin),
            )
            .await;
        let page = page.ok();
        for e in page["events"].as_array().unwrap() {
            paged.push(e["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(paged, ids);
    // The filters.
    let failed = srv
        .get("/admin/audit?event=login.failed", Some(&admin))
        .await;
    let failed = failed.ok()["events"].as_array().unwrap().clone();
    assert!(!failed.is_empty() && failed.iter().all(|e| e["event"] == "login.failed"));
    let future = srv
        .get("/admin/audit?since=2999-01-01T00:00:00Z", Some(&admin))
        .await;
    assert_eq!(future.ok()["events"], json!([]));
    srv.get("/admin/audit?since=yesterday", Some(&admin))
        .await
        .expect(400, "invalid_body");
    srv.get("/admin/audit?limit=201", Some(&admin))
        .await
        .expect(400, "invalid_body");
    srv.get("/admin/audit", Some(access))
        .await
        .expect(403, "forbidden");
}
sql_backends!(audit_records_each_event_once_with_actor_user_and_ip_and_pages_newest_first);

async fn audit_retention_prunes_old_events() {
    let first = TestServer::with(&[("AUDIT_ENABLED", "true")]).await;
    let old = AuditEvent::new(
        "login.failed",
        Utc::now() - chrono::Duration::days(200),
        None,
    );
    let mut recent = AuditEvent::new("login.failed", Utc::now(), None);
    recent.detail = json!({"reason": "recent"});
    store(&first).append_audit(&[old, recent]).await.unwrap();
    first.stop().await;
    // Pruned at start, then hourly: everything older than AUDIT_RETENTION goes.
    let second = same_database(
        &first,
        &[("AUDIT_ENABLED", "true"), ("AUDIT_RETENTION", "2160h")],
    )
    .await;
    let admin = second.admin_token().await;
    let events = audit_until(&second, &admin, "?event=login.failed&limit=200", |events| {
        events.len() == 1
    })
    .await;
    assert_eq!(events[0]["detail"], json!({"reason": "recent"}));
}
sql_backends!(audit_retention_prunes_old_events);

/// With a captcha configured, ten wrong guesses by someone else do not keep the owner out: over
/// the per-account limit, a sign-in with a solved captcha is still checked.
async fn an_attackers_ten_wrong_guesses_do_not_stop_the_owner_with_a_captcha() {
    let siteverify = Scripted::start("/siteverify", Answer::new(200, r#"{"success": true}"#))
        .await
        .unwrap();
    let srv = TestServer::with(&crate::captcha::captcha_vars(&siteverify)).await;
    for _ in 0..10 {
        srv.post(
            "/token",
            json!({"email": ROOT, "password": WRONG, "captcha_token": "tok"}),
        )
        .await
        .expect(401, "invalid_credentials");
    }
    srv.post(
        "/token",
        json!({"email": ROOT, "password": ROOT_PW, "captcha_token": "tok"}),
    )
    .await
    .ok();
    srv.post("/token", json!({"email": ROOT, "password": ROOT_PW}))
        .await
        .expect(400, "captcha_failed");
}
sql_backends!(an_attackers_ten_wrong_guesses_do_not_stop_the_owner_with_a_captcha);

/// Without a captcha the per-account limit stays (SPEC §3): the eleventh try is refused.
async fn without_a_captcha_the_per_account_limit_stays() {
    let srv = TestServer::start().await;
    for _ in 0..10 {
        token(&srv, ROOT, WRONG)
            .await
            .expect(401, "invalid_credentials");
    }
    token(&srv, ROOT, ROOT_PW).await.expect(429, "rate_limited");
}
sql_backends!(without_a_captcha_the_per_account_limit_stays);

/// The counter `authura_audit_events_total{result="<result>"}` in `srv`'s `/metrics`.
async fn audit_metric(srv: &TestServer, result: &str) -> u64 {
    let text = srv.get("/metrics", None).await.text;
    let name = format!("authura_audit_events_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&name)?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
}

/// A table that cannot keep up never holds a request: with the audit table locked by another
/// session (`psql` holding `LOCK TABLE`), a queue of one keeps one event, drops the rest and
/// counts them; every request is answered; once the lock goes, what was kept is written.
#[tokio::test]
async fn a_full_audit_queue_drops_and_counts_and_never_blocks_a_request() {
    use std::io::{BufRead as _, Write as _};

    let srv = crate::harness::on(
        Backend::Postgres,
        TestServer::with(&[
            ("AUDIT_ENABLED", "true"),
            ("AUDIT_QUEUE_SIZE", "1"),
            ("METRICS_ENABLED", "true"),
        ]),
    )
    .await;
    let mut psql = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            srv.dsn.as_deref().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("psql runs");
    let mut stdin = psql.stdin.take().unwrap();
    writeln!(
        stdin,
        "BEGIN; LOCK TABLE authura_audit IN ACCESS EXCLUSIVE MODE; SELECT 'locked';"
    )
    .unwrap();
    let mut stdout = std::io::BufReader::new(psql.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("locked") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "psql ended");
    }
    // Five events: the writer waits on the lock with at most one, the queue holds one.
    for _ in 0..5 {
        token(&srv, ANN, WRONG)
            .await
            .expect(401, "invalid_credentials");
    }
    let dropped = audit_metric(&srv, "dropped").await;
    assert!((3..=4).contains(&dropped), "dropped {dropped}");
    assert_eq!(audit_metric(&srv, "written").await, 0);
    writeln!(stdin, "COMMIT;").unwrap();
    drop(stdin);
    assert!(psql.wait().unwrap().success());
    let started = Instant::now();
    while audit_metric(&srv, "written").await < 5 - dropped {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the kept events were never written"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let admin = srv.admin_token().await;
    let events = audit_until(&srv, &admin, "?event=login.failed&limit=200", |events| {
        events.len() as u64 >= 5 - dropped
    })
    .await;
    assert_eq!(events.len() as u64, 5 - dropped);
}
