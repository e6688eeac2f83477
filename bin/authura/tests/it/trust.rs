//! Outgoing TLS trusts the operating system's store, for every client: PostgreSQL, hooks, SMTP.
//!
//! The store is pointed at a test bundle with `SSL_CERT_FILE`, which the system store honours
//! (as OpenSSL does), and `EXTRA_CA_FILE` is left unset: what connects, connects through it.

use std::path::Path;
use std::time::Duration;

use authura_testkit::postgres::{Cluster, unrelated_ca_pem};
use authura_testkit::scripted::{Answer, Scripted};
use authura_testkit::smtp::{SinkOptions, SinkTls, SmtpSink};
use serde_json::{Value, json};

use crate::cli::{GOOD, good_without};
use crate::run::{link_token, post, signup_mail, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_authura");

/// Writes `pems` into one bundle file in `dir`.
fn bundle(dir: &Path, name: &str, pems: &[&str]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pems.concat()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn postgres_hooks_and_smtp_trust_the_system_store() {
    let (cluster, pg_ca) = Cluster::start_with_tls().unwrap();
    let (hook, hook_ca) = Scripted::start_tls("/hook", Answer::new(200, r#"{"plan":"pro"}"#))
        .await
        .unwrap();
    let sink = SmtpSink::start_with(SinkOptions {
        tls: SinkTls::StartTls,
        auth: None,
    })
    .unwrap();
    let smtp_ca = String::from_utf8(sink.ca_pem().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = bundle(dir.path(), "system.pem", &[&pg_ca, &hook_ca, &smtp_ca]);
    let dsn = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full",
        cluster.port()
    );
    let smtp_port = sink.port().to_string();
    let mut vars = good_without("MAIL_HOST");
    vars.extend([
        ("SSL_CERT_FILE", store.as_str()),
        ("AUTH_BACKEND", "postgres"),
        ("POSTGRES_DSN", dsn.as_str()),
        ("HOOK_URL", hook.url.as_str()),
        ("MAIL_HOST", "localhost"),
        ("MAIL_PORT", smtp_port.as_str()),
        ("MAIL_TLS", "starttls"),
        ("MAIL_FROM", "auth@example.com"),
    ]);
    let proc = spawn(&["serve"], &vars, dir.path());
    let client = reqwest::Client::new();
    // PostgreSQL is the only store, reached with `verify-full`: ready means its certificate
    // was verified through the system store.
    // It connects in the background, so readiness may take a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client
        .get(proc.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The verification mail goes out over STARTTLS…
    let mail = signup_mail(&client, &proc, &sink, "ann@example.com").await;
    assert!(mail.tls);
    let token = link_token(&mail.link().unwrap());
    // …following it calls the hook over HTTPS, then writes the user to PostgreSQL…
    let signed_in = post(
        &client,
        proc.url("/verify-email"),
        json!({"token": token, "password": "User-Passw0rd!"}),
    )
    .await;
    assert_eq!(signed_in["user"]["hook_data"]["plan"], "pro");
    let seen = hook.seen();
    assert!(
        seen.iter()
            .any(|s| s.head.contains("action=create_or_update_user")),
        "{seen:?}"
    );
    // …which reads it back.
    post(
        &client,
        proc.url("/token"),
        json!({"email": "ann@example.com", "password": "User-Passw0rd!"}),
    )
    .await;
    drop(proc);

    // The same with a store that holds none of those CAs.
    let other = unrelated_ca_pem().unwrap();
    let unrelated = bundle(dir.path(), "other.pem", &[&other]);
    let vars = vars
        .iter()
        .map(|&(k, v)| match k {
            "SSL_CERT_FILE" => (k, unrelated.as_str()),
            // PostgreSQL would refuse the certificate at startup; the store is SQLite here.
            "AUTH_BACKEND" => (k, "sqlite"),
            _ => (k, v),
        })
        .collect::<Vec<_>>();
    let proc = spawn(&["serve"], &vars, dir.path());
    // The mail is refused (the answer does not tell: no account enumeration)…
    post(
        &client,
        proc.url("/signup"),
        json!({"email": "bob@example.com"}),
    )
    .await;
    proc.wait_for_log("mail not sent");
    assert!(
        sink.wait_for("bob@example.com", Duration::from_secs(2))
            .await
            .is_err()
    );
    // …and the hook is not trusted, so following a link fails with 502 and writes nothing.
    let res = client
        .post(proc.url("/verify-email"))
        .json(&json!({"token": token, "password": "User-Passw0rd!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "hook_failed");
    let login = client
        .post(proc.url("/token"))
        .json(&json!({"email": "ann@example.com", "password": "User-Passw0rd!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
}

#[test]
fn without_any_store_startup_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    for extra in [
        &[
            ("MAIL_HOST", "localhost"),
            ("MAIL_TLS", "starttls"),
            ("MAIL_FROM", "auth@example.com"),
        ][..],
        &[
            ("MAIL_HOST", "dummy"),
            ("HOOK_URL", "http://127.0.0.1:9/hook"),
        ][..],
        &[
            ("MAIL_HOST", "dummy"),
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "http://127.0.0.1:9/users"),
        ][..],
    ] {
        let mut vars = good_without("MAIL_HOST");
        vars.push(("SSL_CERT_FILE", missing));
        vars.extend_from_slice(extra);
        // `timeout`: a serve that wrongly starts fails the test instead of hanging it.
        let out = std::process::Command::new("timeout")
            .args(["20", BIN, "serve", "--port", "0"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{extra:?} started:\n{stderr}");
        assert!(
            stderr.contains("No CA certificates were loaded from the system"),
            "{extra:?}:\n{stderr}"
        );
    }
    // A CA in EXTRA_CA_FILE is enough to start.
    let ca = bundle(dir.path(), "extra.pem", &[&unrelated_ca_pem().unwrap()]);
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("SSL_CERT_FILE", missing),
        ("EXTRA_CA_FILE", ca.as_str()),
        ("HOOK_URL", "http://127.0.0.1:9/hook"),
    ]);
    drop(spawn(&["serve"], &vars, dir.path()));
}
