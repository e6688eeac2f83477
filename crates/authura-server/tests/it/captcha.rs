//! Turnstile over HTTP: the protected endpoints, every siteverify answer, and the form widget.

use std::time::Duration;

use authura_testkit::scripted::{Answer, Scripted};
use serde_json::json;

use crate::harness::{PW, TestServer};

/// The variables that turn Turnstile on, checked against `siteverify`.
pub fn captcha_vars(siteverify: &Scripted) -> Vec<(&'static str, &str)> {
    vec![
        ("CAPTCHA", "turnstile"),
        ("TURNSTILE_SECRET_KEY", "turnstile-secret"),
        ("TURNSTILE_SITE_KEY", "site-key-123"),
        ("TURNSTILE_SCRIPT", "http://127.0.0.1:9/turnstile.js"),
        ("TURNSTILE_VERIFY_URL", siteverify.url.as_str()),
    ]
}

async fn with_captcha(siteverify: &Scripted) -> TestServer {
    TestServer::with(&captcha_vars(siteverify)).await
}

#[tokio::test]
async fn protected_endpoints_need_a_solved_captcha() {
    let siteverify = Scripted::start("/siteverify", Answer::new(200, r#"{"success": true}"#))
        .await
        .unwrap();
    let srv = with_captcha(&siteverify).await;
    // Missing: refused before siteverify is asked.
    srv.post("/signup", json!({"email": "ann@example.com"}))
        .await
        .expect(400, "captcha_failed");
    srv.post("/reset-password", json!({"email": "ann@example.com"}))
        .await
        .expect(400, "captcha_failed");
    srv.post(
        "/token",
        json!({"email": "ann@example.com", "password": PW}),
    )
    .await
    .expect(400, "captcha_failed");
    assert!(siteverify.seen().is_empty());
    // Solved, under either name (the widget posts `cf-turnstile-response`).
    srv.post(
        "/signup",
        json!({"email": "ann@example.com", "captcha_token": "tok-1"}),
    )
    .await
    .ok();
    let form = srv.client.post(srv.url("/reset-password")).form(&[
        ("email", "ann@example.com"),
        ("cf-turnstile-response", "tok-2"),
    ]);
    srv.send(form).await.ok();
    let seen = siteverify.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].head.starts_with("POST /siteverify "));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(seen[0].body.as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("secret".into(), "turnstile-secret".into())));
    assert!(form.contains(&("response".into(), "tok-1".into())));
    assert!(form.contains(&("remoteip".into(), "127.0.0.1".into())));
    // Endpoints without a captcha are unaffected.
    srv.post("/refresh", json!({"refresh_token": "x"}))
        .await
        .expect(401, "invalid_token");
}

#[tokio::test]
async fn every_siteverify_answer_has_its_status() {
    let siteverify = Scripted::start(
        "/siteverify",
        Answer::new(
            200,
            r#"{"success": false, "error-codes": ["invalid-input-response"]}"#,
        ),
    )
    .await
    .unwrap();
    let srv = with_captcha(&siteverify).await;
    let signup = || {
        srv.post(
            "/signup",
            json!({"email": "ann@example.com", "captcha_token": "tok"}),
        )
    };
    signup().await.expect(400, "captcha_failed");
    siteverify.answer(Answer::new(500, ""));
    signup().await.expect(503, "captcha_unavailable");
    siteverify.answer(Answer::new(200, "not json"));
    signup().await.expect(503, "captcha_unavailable");
    siteverify.answer(Answer {
        delay: Duration::from_secs(30),
        ..Answer::new(200, r#"{"success": true}"#)
    });
    signup().await.expect(503, "captcha_unavailable");
    assert_eq!(
        srv.mails_requested(),
        0,
        "nothing may be sent when the captcha is not passed"
    );
}

#[tokio::test]
async fn the_forms_show_the_widget_where_it_is_needed() {
    let siteverify = Scripted::start("/siteverify", Answer::new(200, r#"{"success": true}"#))
        .await
        .unwrap();
    let srv = with_captcha(&siteverify).await;
    for action in ["signup", "login", "forgot-password"] {
        let page = srv.get(&format!("/form?action={action}"), None).await;
        assert!(
            page.text
                .contains(r#"<script src="http://127.0.0.1:9/turnstile.js" async defer></script>"#),
            "{action}"
        );
        assert!(
            page.text.contains(r#"data-sitekey="site-key-123""#),
            "{action}"
        );
    }
    let page = srv.get("/form?action=verify-email&token=t", None).await;
    assert!(!page.text.contains("cf-turnstile"));
}

#[tokio::test]
async fn impersonation_needs_no_captcha() {
    let siteverify = Scripted::start("/siteverify", Answer::new(200, r#"{"success": true}"#))
        .await
        .unwrap();
    let srv = TestServer::with(&[
        ("CAPTCHA", "turnstile"),
        ("TURNSTILE_SECRET_KEY", "turnstile-secret"),
        ("TURNSTILE_SITE_KEY", "site-key-123"),
        ("TURNSTILE_VERIFY_URL", siteverify.url.as_str()),
        ("IMPERSONATION_ENABLED", "true"),
    ])
    .await;
    let admin = srv.post("/token", json!({"email": crate::harness::ROOT, "password": crate::harness::ROOT_PW, "captcha_token": "t"})).await.ok().clone();
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    srv.post_as(
        "/token",
        &admin,
        json!({"email": crate::harness::ROOT, "password": ""}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn https_siteverify_is_trusted_through_extra_ca_file_only() {
    let (siteverify, ca_pem) =
        Scripted::start_tls("/siteverify", Answer::new(200, r#"{"success": true}"#))
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let vars = |extra_ca: Option<&str>| {
        let mut v = vec![
            ("CAPTCHA", "turnstile".to_owned()),
            ("TURNSTILE_SECRET_KEY", "turnstile-secret".to_owned()),
            ("TURNSTILE_SITE_KEY", "site-key-123".to_owned()),
            ("TURNSTILE_VERIFY_URL", siteverify.url.clone()),
        ];
        if let Some(ca) = extra_ca {
            v.push(("EXTRA_CA_FILE", ca.to_owned()));
        }
        v
    };
    let trusted_vars = vars(Some(ca.to_str().unwrap()));
    let trusted: Vec<(&str, &str)> = trusted_vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = TestServer::with(&trusted).await;
    srv.post(
        "/signup",
        json!({"email": "ann@example.com", "captcha_token": "t"}),
    )
    .await
    .ok();
    let untrusted_vars = vars(None);
    let untrusted: Vec<(&str, &str)> = untrusted_vars
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let srv = TestServer::with(&untrusted).await;
    srv.post(
        "/signup",
        json!({"email": "ann@example.com", "captcha_token": "t"}),
    )
    .await
    .expect(503, "captcha_unavailable");
}
