//! The hook client against a real local HTTP server answering 2xx, 4xx, 5xx, slowly, or not at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use authura_core::hook::{Hook, HookUser};
use authura_core::{CoreError, Email, Role, Secret, TenantId, UserId};
use authura_hooks::{HookSettings, HttpHook};
use authura_testkit::scripted::{Answer, Scripted};

fn hook(url: &str, timeout: Duration) -> HttpHook {
    HttpHook::new(HookSettings {
        url: url.parse().unwrap(),
        auth_header: Some(("Authorization".into(), Secret::new("Bearer hook-secret"))),
        timeout,
        extra_ca_pem: None,
    })
    .unwrap()
}

fn user() -> HookUser {
    HookUser {
        id: Some(UserId::Int(7)),
        email: Email::parse("ann@example.com").unwrap(),
        role: Role::parse("user").unwrap(),
        tenant: Some(TenantId::parse("acme").unwrap()),
        verified_at: None,
    }
}

async fn server(answer: Answer) -> (String, Scripted) {
    let s = Scripted::start("/authura/hook", answer).await.unwrap();
    (s.url.clone(), s)
}

fn answer(status: u16, body: &str) -> Answer {
    Answer::new(status, body)
}

#[tokio::test]
async fn a_2xx_object_becomes_hook_data_and_the_request_is_as_documented() {
    let (url, seen) = server(answer(200, r#"{"plan": "pro", "seats": 3}"#)).await;
    let data = hook(&url, Duration::from_secs(5))
        .get_user(&user())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(data),
        serde_json::json!({"plan": "pro", "seats": 3})
    );
    let seen = seen.seen()[0].clone();
    assert!(
        seen.head
            .starts_with("POST /authura/hook?action=get_user HTTP/1.1"),
        "{}",
        seen.head
    );
    assert!(
        seen.head
            .to_ascii_lowercase()
            .contains("authorization: bearer hook-secret")
    );
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"id": 7, "email": "ann@example.com", "role": "user", "tenant_id": "acme", "verified_at": null})
    );
    assert!(!seen.body.contains("password"));
}

#[tokio::test]
async fn creates_have_no_id_and_name_their_action() {
    let (url, seen) = server(answer(204, "")).await;
    let mut u = user();
    u.id = None;
    assert!(
        hook(&url, Duration::from_secs(5))
            .create_or_update_user(&u)
            .await
            .unwrap()
            .is_none()
    );
    let seen = seen.seen()[0].clone();
    assert!(
        seen.head
            .starts_with("POST /authura/hook?action=create_or_update_user ")
    );
    assert!(!seen.body.contains("\"id\""));
}

fn check_failure(
    got: Result<Option<authura_core::hook::HookData>, CoreError>,
    status: Option<u16>,
    body: &str,
) {
    match got {
        Err(CoreError::HookFailed { status: s, body: b }) => {
            assert_eq!(s, status);
            assert!(b.contains(body), "{b:?} should contain {body:?}");
        }
        other => panic!("expected a hook failure, got {other:?}"),
    }
}

#[tokio::test]
async fn failures_keep_the_hooks_status_and_body() {
    let (url, _) = server(answer(403, r#"{"reason": "suspended"}"#)).await;
    check_failure(
        hook(&url, Duration::from_secs(5)).get_user(&user()).await,
        Some(403),
        "suspended",
    );
    let (url, _) = server(answer(500, "")).await;
    check_failure(
        hook(&url, Duration::from_secs(5)).get_user(&user()).await,
        Some(500),
        "the hook answered 500",
    );
    let (url, _) = server(answer(200, "[1, 2]")).await;
    check_failure(
        hook(&url, Duration::from_secs(5)).get_user(&user()).await,
        None,
        "without a JSON object",
    );
}

#[tokio::test]
async fn slow_and_absent_hooks_fail_within_the_timeout() {
    let (url, _) = server(Answer {
        delay: Duration::from_secs(30),
        ..Answer::new(200, "{}")
    })
    .await;
    let started = std::time::Instant::now();
    check_failure(
        hook(&url, Duration::from_millis(300))
            .get_user(&user())
            .await,
        None,
        "did not answer in time",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    check_failure(
        hook(
            &format!("http://127.0.0.1:{port}/h"),
            Duration::from_secs(5),
        )
        .get_user(&user())
        .await,
        None,
        "could not be reached",
    );
}
