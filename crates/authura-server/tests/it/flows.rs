//! Every seed endpoint's success path and the §3 rules this build owns, over HTTP, with each mail
//! caught by the SMTP server and its link followed.

use std::sync::atomic::Ordering;

use authura_core::{NewUser, Role};
use serde_json::json;

use crate::harness::both_backends;
use crate::harness::{PW, ROOT, TestServer, s};

both_backends!(signup_mail_link_form_verify_token_refresh_user);
async fn signup_mail_link_form_verify_token_refresh_user() {
    let srv = TestServer::start().await;
    srv.post("/signup", json!({"email": "Ann@Example.com"}))
        .await
        .ok();
    let mail = srv.mail_to("ann@example.com").await;
    assert_eq!(mail.from, "Authura <auth@example.com>");
    assert!(!mail.subject.is_empty() && !mail.html.is_empty());
    let link = mail.link().unwrap();
    assert!(
        link.starts_with(&format!("{}/form?action=verify-email&token=", srv.base)),
        "{link}"
    );

    // Following the link shows a form carrying the token, posting to /verify-email.
    let page = srv.send(srv.client.get(&link)).await;
    assert_eq!(page.status, 200);
    let token = TestServer::token_in(&mail);
    assert!(
        page.text.contains(&format!(r#"value="{token}""#))
            && page.text.contains(r#"action="/verify-email""#)
    );

    let verified = srv
        .post("/verify-email", json!({"token": token, "password": PW}))
        .await;
    let body = verified.ok();
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["role"], "user");
    assert!(body["user"]["id"].is_number());
    assert!(body["user"].get("tenant_id").is_none());
    assert!(chrono::DateTime::parse_from_rfc3339(s(&body["user"]["verified_at"])).is_ok());
    assert_eq!(body["tokens"]["token_type"], "Bearer");
    assert_eq!(body["tokens"]["expires_in"], 300);
    assert_eq!(verified.headers["cache-control"], "no-store");

    let t = srv.login("ANN@example.com", PW).await;
    let me = srv.get("/user", Some(s(&t["access_token"]))).await;
    assert_eq!(me.ok()["user"], body["user"]);
    let t2 = srv
        .post("/refresh", json!({"refresh_token": t["refresh_token"]}))
        .await
        .ok()
        .clone();
    assert_ne!(t2["access_token"], t["access_token"]);
    srv.get("/user", Some(s(&t2["access_token"]))).await.ok();
    // Refresh tokens stay usable until the password changes: the older one still refreshes.
    srv.post("/refresh", json!({"refresh_token": t["refresh_token"]}))
        .await
        .ok();
}

both_backends!(form_urlencoded_bodies_work_like_json);
async fn form_urlencoded_bodies_work_like_json() {
    let srv = TestServer::start().await;
    let res = srv
        .send(
            srv.client
                .post(srv.url("/signup"))
                .form(&[("email", "form@example.com")]),
        )
        .await;
    res.ok();
    let token = TestServer::token_in(&srv.mail_to("form@example.com").await);
    srv.send(
        srv.client
            .post(srv.url("/verify-email"))
            .form(&[("token", token.as_str()), ("password", PW)]),
    )
    .await
    .ok();
    let t = srv
        .send(
            srv.client
                .post(srv.url("/token"))
                .form(&[("email", "form@example.com"), ("password", PW)]),
        )
        .await;
    assert!(t.ok()["access_token"].is_string());
}

both_backends!(verification_links_are_single_use);
async fn verification_links_are_single_use() {
    let srv = TestServer::start().await;
    srv.post("/signup", json!({"email": "ann@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("ann@example.com").await);
    srv.post("/verify-email", json!({"token": token, "password": PW}))
        .await
        .ok();
    srv.post("/verify-email", json!({"token": token, "password": PW}))
        .await
        .expect(400, "token_used");
    srv.post(
        "/verify-email",
        json!({"token": "not.a.token", "password": PW}),
    )
    .await
    .expect(400, "invalid_verification_token");
}

both_backends!(no_enumeration_on_signup_and_reset);
async fn no_enumeration_on_signup_and_reset() {
    let srv = TestServer::start().await;
    srv.sign_up("ann@example.com", PW).await;
    let before = srv.mails_requested();
    let existing = srv
        .post("/signup", json!({"email": "ann@example.com"}))
        .await;
    let unknown_reset = srv
        .post("/reset-password", json!({"email": "nobody@example.com"}))
        .await;
    // Same answers as for a new address / an existing account, and no mail was even asked for.
    assert_eq!((existing.status, existing.text.as_str()), (200, "{}"));
    assert_eq!(
        (unknown_reset.status, unknown_reset.text.as_str()),
        (200, "{}")
    );
    assert_eq!(srv.mails_requested(), before);
    let known_reset = srv
        .post("/reset-password", json!({"email": "ann@example.com"}))
        .await;
    assert_eq!((known_reset.status, known_reset.text.as_str()), (200, "{}"));
    assert_eq!(srv.mails_requested(), before + 1);
}

both_backends!(wrong_password_and_unknown_user_look_the_same_and_cost_a_hash);
async fn wrong_password_and_unknown_user_look_the_same_and_cost_a_hash() {
    let srv = TestServer::start().await;
    srv.sign_up("ann@example.com", PW).await;
    let stats = srv.state.hash_pool().stats();
    let dummies = stats.dummy_verifications.load(Ordering::Relaxed);
    let wrong = srv
        .post(
            "/token",
            json!({"email": "ann@example.com", "password": "Wr0ng!pass"}),
        )
        .await;
    assert_eq!(stats.dummy_verifications.load(Ordering::Relaxed), dummies);
    let unknown = srv
        .post(
            "/token",
            json!({"email": "bob@example.com", "password": "Wr0ng!pass"}),
        )
        .await;
    // The unknown user was checked against the dummy hash: the same work as a real one.
    assert_eq!(
        stats.dummy_verifications.load(Ordering::Relaxed),
        dummies + 1
    );
    wrong.expect(401, "invalid_credentials");
    unknown.expect(401, "invalid_credentials");
    assert_eq!(wrong.text, unknown.text);
}

both_backends!(unverified_users_are_told_only_after_a_correct_password);
async fn unverified_users_are_told_only_after_a_correct_password() {
    let srv = TestServer::start().await;
    let hash = authura_core::hash::hash_password(PW).unwrap();
    srv.state
        .ctx()
        .store
        .create(NewUser {
            email: authura_core::Email::parse("unv@example.com").unwrap(),
            role: Role::parse("user").unwrap(),
            tenant: None,
            password_hash: hash,
            verified_at: None,
        })
        .await
        .unwrap();
    srv.post(
        "/token",
        json!({"email": "unv@example.com", "password": "nope"}),
    )
    .await
    .expect(401, "invalid_credentials");
    srv.post(
        "/token",
        json!({"email": "unv@example.com", "password": PW}),
    )
    .await
    .expect(403, "email_not_verified");
    // A password reset proves the address and verifies the account.
    srv.post("/reset-password", json!({"email": "unv@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("unv@example.com").await);
    srv.post(
        "/verify-email",
        json!({"token": token, "password": "N3w!passw0rd"}),
    )
    .await
    .ok();
    srv.login("unv@example.com", "N3w!passw0rd").await;
}

both_backends!(change_password_revokes_refresh_tokens);
async fn change_password_revokes_refresh_tokens() {
    let srv = TestServer::start().await;
    srv.sign_up("ann@example.com", PW).await;
    let t = srv.login("ann@example.com", PW).await;
    let at = s(&t["access_token"]);
    srv.post_as(
        "/change-password",
        at,
        json!({"old_password": "Wr0ng!pass", "new_password": "N3w!passw0rd"}),
    )
    .await
    .expect(401, "invalid_credentials");
    let weak = srv
        .post_as(
            "/change-password",
            at,
            json!({"old_password": PW, "new_password": "short"}),
        )
        .await;
    weak.expect(400, "weak_password");
    assert_eq!(
        weak.body["rules"],
        json!(["min_length", "uppercase", "digit", "special"])
    );
    srv.post_as(
        "/change-password",
        at,
        json!({"old_password": PW, "new_password": "N3w!passw0rd"}),
    )
    .await
    .ok();
    srv.post("/refresh", json!({"refresh_token": t["refresh_token"]}))
        .await
        .expect(401, "invalid_token");
    srv.post(
        "/token",
        json!({"email": "ann@example.com", "password": PW}),
    )
    .await
    .expect(401, "invalid_credentials");
    srv.login("ann@example.com", "N3w!passw0rd").await;
}

both_backends!(change_email_through_the_link);
async fn change_email_through_the_link() {
    let srv = TestServer::start().await;
    srv.sign_up("ann@example.com", PW).await;
    srv.sign_up("taken@example.com", PW).await;
    let t = srv.login("ann@example.com", PW).await;
    let at = s(&t["access_token"]);

    let before = srv.mails_requested();
    srv.post_as("/change-email", at, json!({"email": "taken@example.com"}))
        .await
        .ok();
    assert_eq!(
        srv.mails_requested(),
        before,
        "no mail for an address in use"
    );

    srv.post_as("/change-email", at, json!({"email": "New@Example.com"}))
        .await
        .ok();
    let mail = srv.mail_to("new@example.com").await;
    assert!(mail.link().unwrap().contains("action=change-email"));
    let token = TestServer::token_in(&mail);
    let done = srv.post("/verify-email", json!({"token": token})).await;
    assert_eq!(done.ok()["user"]["email"], "new@example.com");
    srv.post("/verify-email", json!({"token": token}))
        .await
        .expect(400, "token_used");
    srv.login("new@example.com", PW).await;
    srv.post(
        "/token",
        json!({"email": "ann@example.com", "password": PW}),
    )
    .await
    .expect(401, "invalid_credentials");

    // Taken between the mail and the click: 409.
    let t = srv.login("new@example.com", PW).await;
    srv.post_as(
        "/change-email",
        s(&t["access_token"]),
        json!({"email": "late@example.com"}),
    )
    .await
    .ok();
    let late = TestServer::token_in(&srv.mail_to("late@example.com").await);
    srv.sign_up("late@example.com", PW).await;
    srv.post("/verify-email", json!({"token": late}))
        .await
        .expect(409, "email_taken");
}

both_backends!(invites_carry_their_role_and_need_an_admin);
async fn invites_carry_their_role_and_need_an_admin() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    srv.sign_up("ann@example.com", PW).await;
    let user = srv.login("ann@example.com", PW).await;

    srv.post_as(
        "/invite",
        s(&user["access_token"]),
        json!({"email": "x@example.com", "role": "editor"}),
    )
    .await
    .expect(403, "forbidden");
    srv.post(
        "/invite",
        json!({"email": "x@example.com", "role": "editor"}),
    )
    .await
    .expect(401, "invalid_token");
    srv.post_as(
        "/invite",
        &admin,
        json!({"email": "ann@example.com", "role": "editor"}),
    )
    .await
    .expect(409, "email_taken");
    srv.post_as("/invite", &admin, json!({"email": "x@example.com"}))
        .await
        .expect(400, "invalid_body");

    srv.post_as(
        "/invite",
        &admin,
        json!({"email": "Ed@Example.com", "role": "editor"}),
    )
    .await
    .ok();
    let mail = srv.mail_to("ed@example.com").await;
    assert!(mail.link().unwrap().contains("action=invite"));
    let accepted = srv
        .post(
            "/verify-email",
            json!({"token": TestServer::token_in(&mail), "password": PW}),
        )
        .await;
    assert_eq!(accepted.ok()["user"]["role"], "editor");
    let t = srv.login("ed@example.com", PW).await;
    assert_eq!(
        srv.get("/user", Some(s(&t["access_token"]))).await.ok()["user"]["role"],
        "editor"
    );
}

both_backends!(reset_password_through_the_link);
async fn reset_password_through_the_link() {
    let srv = TestServer::start().await;
    srv.sign_up("ann@example.com", PW).await;
    let t = srv.login("ann@example.com", PW).await;
    srv.post("/reset-password", json!({"email": "ANN@example.com"}))
        .await
        .ok();
    let mail = srv.mail_to("ann@example.com").await;
    assert!(mail.link().unwrap().contains("action=reset-password"));
    let token = TestServer::token_in(&mail);
    srv.post("/verify-email", json!({"token": token}))
        .await
        .expect(400, "invalid_body");
    srv.post("/verify-email", json!({"token": token, "password": "weak"}))
        .await
        .expect(400, "weak_password");
    srv.post(
        "/verify-email",
        json!({"token": token, "password": "N3w!passw0rd"}),
    )
    .await
    .ok();
    srv.post(
        "/verify-email",
        json!({"token": token, "password": "Th1rd!passw0rd"}),
    )
    .await
    .expect(400, "token_used");
    srv.login("ann@example.com", "N3w!passw0rd").await;
    // The reset revoked the refresh tokens issued before it.
    srv.post("/refresh", json!({"refresh_token": t["refresh_token"]}))
        .await
        .expect(401, "invalid_token");
}

both_backends!(deleted_users_tokens_fail);
async fn deleted_users_tokens_fail() {
    let srv = TestServer::start().await;
    let v = srv.sign_up("ann@example.com", PW).await;
    let id = authura_core::UserId::Int(v["user"]["id"].as_i64().unwrap());
    assert!(srv.delete_user(None, &id).await);
    srv.get("/user", Some(s(&v["tokens"]["access_token"])))
        .await
        .expect(401, "invalid_token");
    srv.post(
        "/refresh",
        json!({"refresh_token": v["tokens"]["refresh_token"]}),
    )
    .await
    .expect(401, "invalid_token");
}

both_backends!(tokens_of_one_purpose_are_refused_for_another);
async fn tokens_of_one_purpose_are_refused_for_another() {
    let srv = TestServer::start().await;
    let v = srv.sign_up("ann@example.com", PW).await;
    let (at, rt) = (
        s(&v["tokens"]["access_token"]),
        s(&v["tokens"]["refresh_token"]),
    );
    let unauthorized = srv.get("/user", Some(rt)).await;
    unauthorized.expect(401, "invalid_token");
    assert_eq!(unauthorized.headers["www-authenticate"], "Bearer");
    srv.post("/refresh", json!({"refresh_token": at}))
        .await
        .expect(401, "invalid_token");
    srv.post("/verify-email", json!({"token": at}))
        .await
        .expect(400, "invalid_verification_token");
    srv.get("/user", None).await.expect(401, "invalid_token");
    srv.send(
        srv.client
            .get(srv.url("/user"))
            .header("Authorization", "Basic abc"),
    )
    .await
    .expect(401, "invalid_token");
}

both_backends!(concurrent_verifications_of_one_address_make_one_user);
async fn concurrent_verifications_of_one_address_make_one_user() {
    let srv = TestServer::start().await;
    // Several sign-ups before any verification: each gets its own valid link.
    let mut tokens = vec![];
    for _ in 0..6 {
        srv.post("/signup", json!({"email": "race@example.com"}))
            .await
            .ok();
        tokens.push(TestServer::token_in(&srv.mail_to("race@example.com").await));
    }
    let results = futures_util::future::join_all(
        tokens
            .iter()
            .map(|t| srv.post("/verify-email", json!({"token": t, "password": PW}))),
    )
    .await;
    let winners = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(winners, 1, "{results:?}");
    for r in results.iter().filter(|r| r.status != 200) {
        // The loser of a true race gets 409; one that starts after the winner finished, token_used.
        assert!(
            matches!(
                (r.status, r.code()),
                (409, "email_taken") | (400, "token_used")
            ),
            "{r:?}"
        );
    }
    srv.login("race@example.com", PW).await;
}

both_backends!(the_initial_user_is_an_admin_and_created_once);
async fn the_initial_user_is_an_admin_and_created_once() {
    let srv = TestServer::start().await;
    let t = srv.admin_token().await;
    assert_eq!(
        srv.get("/user", Some(&t)).await.ok()["user"]["role"],
        "admin"
    );
    assert_eq!(srv.get("/user", Some(&t)).await.ok()["user"]["email"], ROOT);
}
