//! Single use under concurrency (issue 19, defects 2 and 3), over real HTTP on every backend:
//! one mail link, or one old password, sent 50 times at once, works exactly once.

use serde_json::{Value, json};

use crate::harness::{PW, Resp, TestServer, both_backends};

const TIMES: usize = 50;

/// Posts `body` to `path` `TIMES` times at once (each on its own connection), with `bearer`.
async fn all_at_once(srv: &TestServer, path: &str, bearer: Option<&str>, body: Value) -> Vec<Resp> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TIMES));
    let requests = (0..TIMES).map(|_| {
        // A client each: no request waits for another's pooled connection.
        let client = reqwest::Client::new();
        let mut req = client.post(srv.url(path)).json(&body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let barrier = std::sync::Arc::clone(&barrier);
        async move {
            barrier.wait().await;
            srv.send(req).await
        }
    });
    futures_util::future::join_all(requests).await
}

/// The statuses and codes of the answers that are not 200, counted.
fn losers(answers: &[Resp]) -> std::collections::BTreeMap<(u16, String), usize> {
    let mut seen = std::collections::BTreeMap::new();
    for a in answers.iter().filter(|a| a.status != 200) {
        *seen.entry((a.status, a.code().to_owned())).or_insert(0) += 1;
    }
    seen
}

#[track_caller]
fn one_winner(answers: &[Resp], allowed: &[(u16, &str)]) {
    let winners = answers.iter().filter(|a| a.status == 200).count();
    let losers = losers(answers);
    assert_eq!(winners, 1, "winners: {winners}, the others: {losers:?}");
    for (status, code) in losers.keys() {
        assert!(
            allowed.contains(&(*status, code.as_str())),
            "unexpected answer {status} {code}: {losers:?}"
        );
    }
}

async fn one_reset_link_used_50_times_at_once_works_once() {
    let srv = TestServer::start().await;
    srv.sign_up("race@example.com", PW).await;
    srv.post("/reset-password", json!({"email": "race@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("race@example.com").await);
    let answers = all_at_once(
        &srv,
        "/verify-email",
        None,
        json!({"token": token, "password": "N3w!password"}),
    )
    .await;
    one_winner(&answers, &[(400, "token_used")]);
    // The password the winner set is the one that works.
    srv.login("race@example.com", "N3w!password").await;
}
both_backends!(one_reset_link_used_50_times_at_once_works_once);

async fn one_change_email_link_used_50_times_at_once_works_once() {
    let srv = TestServer::start().await;
    let tokens = srv.sign_up("move@example.com", PW).await;
    let access = tokens["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    srv.post_as(
        "/change-email",
        &access,
        json!({"email": "moved@example.com"}),
    )
    .await
    .ok();
    let token = TestServer::token_in(&srv.mail_to("moved@example.com").await);
    let answers = all_at_once(&srv, "/verify-email", None, json!({"token": token})).await;
    one_winner(&answers, &[(400, "token_used")]);
    srv.login("moved@example.com", PW).await;
}
both_backends!(one_change_email_link_used_50_times_at_once_works_once);

/// A signup link creates the user once. SPEC §3 names the answer of a verification that loses
/// the create itself: 409 `email_taken`; a use that comes after the user exists is 400
/// `token_used`.
async fn one_signup_link_used_50_times_at_once_creates_one_user() {
    let srv = TestServer::start().await;
    srv.post("/signup", json!({"email": "new@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("new@example.com").await);
    let answers = all_at_once(
        &srv,
        "/verify-email",
        None,
        json!({"token": token, "password": PW}),
    )
    .await;
    one_winner(&answers, &[(400, "token_used"), (409, "email_taken")]);
    srv.login("new@example.com", PW).await;
}
both_backends!(one_signup_link_used_50_times_at_once_creates_one_user);

/// `/change-password` with one old password 50 times at once: one change wins; for the others
/// the old password is no longer the password, so they are 401 `invalid_credentials`, exactly as
/// if they had come after it.
async fn one_old_password_changed_50_times_at_once_works_once() {
    let srv = TestServer::start().await;
    let tokens = srv.sign_up("pw@example.com", PW).await;
    let access = tokens["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers = all_at_once(
        &srv,
        "/change-password",
        Some(&access),
        json!({"old_password": PW, "new_password": "Chang3d!pass"}),
    )
    .await;
    one_winner(&answers, &[(401, "invalid_credentials")]);
    srv.login("pw@example.com", "Chang3d!pass").await;
}
both_backends!(one_old_password_changed_50_times_at_once_works_once);
