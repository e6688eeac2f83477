//! Webhooks over HTTP (SPEC §6): hook data on the user and in the token, and every failure mode.

use std::time::Duration;

use authura_testkit::scripted::{Answer, Scripted, Seen};
use serde_json::json;

use crate::harness::{PW, TestServer, s};

fn payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// The request target (path and query) of each call the hook saw.
fn targets(seen: &[Seen]) -> Vec<&str> {
    seen.iter()
        .map(|r| r.head.split_whitespace().nth(1).unwrap_or(""))
        .collect()
}

#[tokio::test]
async fn hook_data_reaches_the_user_the_token_and_the_env_claims() {
    let hook = Scripted::start("/authura/hook", Answer::new(200, r#"{"plan": "pro"}"#))
        .await
        .unwrap();
    let srv = TestServer::with(&[
        ("HOOK_URL", hook.url.as_str()),
        ("HOOK_AUTH_HEADER_VALUE", "Bearer hook-secret"),
        ("JWT_EXTENSIONS", "env"),
        ("JWT_ENV_EXTENSION_NAMESPACE", "custom"),
        (
            "JWT_ENV_EXTENSION_CLAIMS",
            r#"{"plan": "{{.HookData.plan}}"}"#,
        ),
    ])
    .await;
    let v = srv.sign_up("ann@example.com", PW).await;
    assert_eq!(v["user"]["hook_data"], json!({"plan": "pro"}));
    let claims = payload(s(&v["tokens"]["access_token"]));
    assert_eq!(
        (&claims["hook_data"], &claims["custom"]["plan"]),
        (&json!({"plan": "pro"}), &json!("pro"))
    );
    let me = srv
        .get("/user", Some(s(&v["tokens"]["access_token"])))
        .await;
    assert_eq!(me.ok()["user"]["hook_data"], json!({"plan": "pro"}));
    let seen = hook.seen();
    assert_eq!(
        targets(&seen),
        [
            "/authura/hook?action=create_or_update_user",
            "/authura/hook?action=get_user",
            "/authura/hook?action=get_user"
        ]
    );
    for r in &seen {
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("authorization: bearer hook-secret")
        );
        assert!(
            !r.body.contains("password") && !r.body.contains("$argon2"),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn hook_failures_answer_their_status_and_write_nothing() {
    let hook = Scripted::start("/hook", Answer::new(200, "{}"))
        .await
        .unwrap();
    let srv = TestServer::with(&[("HOOK_URL", hook.url.as_str()), ("HOOK_TIMEOUT", "300ms")]).await;
    let v = srv.sign_up("ann@example.com", PW).await;
    let access = s(&v["tokens"]["access_token"]).to_owned();

    // A 4xx is relayed with the hook's status and body.
    hook.answer(Answer::new(403, r#"{"reason": "suspended"}"#));
    let r = srv.get("/user", Some(&access)).await;
    r.expect(403, "hook_failed");
    assert!(r.body["message"].as_str().unwrap().contains("suspended"));
    // 5xx, a slow hook, and no hook at all are 502.
    hook.answer(Answer::new(500, ""));
    srv.get("/user", Some(&access))
        .await
        .expect(502, "hook_failed");
    hook.answer(Answer {
        delay: Duration::from_secs(30),
        ..Answer::new(200, "{}")
    });
    srv.get("/user", Some(&access))
        .await
        .expect(502, "hook_failed");

    // A refused create_or_update_user writes nothing: the link still works once the hook agrees.
    hook.answer(Answer::new(422, r#"{"reason": "domain not allowed"}"#));
    srv.post("/signup", json!({"email": "bob@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("bob@example.com").await);
    let refused = srv
        .post("/verify-email", json!({"token": token, "password": PW}))
        .await;
    refused.expect(422, "hook_failed");
    srv.post(
        "/token",
        json!({"email": "bob@example.com", "password": PW}),
    )
    .await
    .expect(401, "invalid_credentials");
    hook.answer(Answer::new(200, "{}"));
    srv.post("/verify-email", json!({"token": token, "password": PW}))
        .await
        .ok();
}

/// Upgrading a legacy hash at login is a write like any other: the hook hears of it first.
#[tokio::test]
async fn a_legacy_hash_upgraded_at_login_goes_through_the_hook() {
    use authura_core::types::{PasswordHash, UserChanges};
    use authura_testkit::python::authaus_hashes;

    let hook = Scripted::start("/hook", Answer::new(200, "{}"))
        .await
        .unwrap();
    let srv = TestServer::with(&[("HOOK_URL", hook.url.as_str())]).await;
    let [authaus] = <[String; 1]>::try_from(authaus_hashes(&[PW])).unwrap();
    // bcrypt, as Go services store it, and Authaus's scrypt format.
    for (address, legacy) in [
        ("go@example.com", bcrypt::hash(PW, 4).unwrap()),
        ("authaus@example.com", authaus),
    ] {
        srv.sign_up(address, PW).await;
        let store = &srv.state.ctx().store;
        let email = authura_core::Email::parse(address).unwrap();
        let user = store.find_by_email(None, &email).await.unwrap().unwrap();
        let changes = UserChanges {
            password_hash: Some(PasswordHash::new(legacy)),
            ..UserChanges::default()
        };
        store.update(None, &user.id, changes).await.unwrap();
        let before = hook.seen().len();

        srv.login(address, PW).await;
        assert_eq!(
            targets(&hook.seen()[before..]),
            [
                "/hook?action=create_or_update_user",
                "/hook?action=get_user"
            ]
        );
        let after = store.find_by_id(None, &user.id).await.unwrap().unwrap();
        assert!(after.password_hash.as_str().starts_with("$argon2id$"));
    }
}

#[tokio::test]
async fn https_hooks_are_trusted_through_extra_ca_file_only() {
    let (hook, ca_pem) = Scripted::start_tls("/hook", Answer::new(200, r#"{"tls": true}"#))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    assert!(hook.url.starts_with("https://localhost:"));
    let trusted = TestServer::with(&[
        ("HOOK_URL", hook.url.as_str()),
        ("EXTRA_CA_FILE", ca.to_str().unwrap()),
    ])
    .await;
    let v = trusted.sign_up("ann@example.com", PW).await;
    assert_eq!(v["user"]["hook_data"], json!({"tls": true}));
    // Without the CA the certificate is refused: the hook cannot be reached safely, 502.
    let untrusted = TestServer::with(&[("HOOK_URL", hook.url.as_str())]).await;
    untrusted
        .post("/signup", json!({"email": "bob@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&untrusted.mail_to("bob@example.com").await);
    untrusted
        .post("/verify-email", json!({"token": token, "password": PW}))
        .await
        .expect(502, "hook_failed");
}
