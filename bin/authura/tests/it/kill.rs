//! The process killed with SIGKILL in the middle of signups (issue 19): after a restart on the
//! same SQLite file nothing is half-written. Every user row is whole (an Argon2id hash, a
//! verification time), no address is there twice, every signup answered 200 before the kill is
//! there, and every other link either made its user (and is used) or made nothing (and still
//! works).

use std::collections::BTreeMap;
use std::time::Duration;

use authura_testkit::smtp::SmtpSink;
use serde_json::{Value, json};

use crate::cli::good_without;
use crate::run::{link_token, spawn};

const PASSWORD: &str = "Kill-Passw0rd!";
/// Signups in flight at the kill (within the hashing queue's 32, so none is `overloaded`).
const SIGNUPS: usize = 30;
/// Answered signups before the kill.
const ANSWERED_BEFORE_KILL: usize = 10;

/// The users table's rows (email, password hash, verification time) and `PRAGMA
/// integrity_check` of the SQLite file at `db`, read by Python's own `sqlite3`.
fn read_users(db: &std::path::Path) -> (Vec<Value>, String) {
    const SCRIPT: &str = r"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = [dict(email=e, password_hash=h, verified_at=v)
        for (e, h, v) in db.execute('SELECT email, password, verified_at FROM users')]
check = db.execute('PRAGMA integrity_check').fetchone()[0]
print(json.dumps([rows, check]))
";
    authura_testkit::python::run_json(SCRIPT, &[db.to_str().unwrap()], b"")
        .unwrap_or_else(|e| panic!("reading {}: {e}", db.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_signup_leaves_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let sink = SmtpSink::start().unwrap();
    let smtp_port = sink.port().to_string();
    let mut vars = good_without("MAIL_HOST");
    vars.extend([
        ("MAIL_HOST", "127.0.0.1"),
        ("MAIL_PORT", smtp_port.as_str()),
        ("MAIL_TLS", "none"),
        ("MAIL_FROM", "auth@example.com"),
        ("SQLITE_DB_PATH", db.to_str().unwrap()),
        ("RATE_PER_MINUTE", "0"),
    ]);
    let mut first = spawn(&["serve"], &vars, dir.path());
    let client = reqwest::Client::new();

    let mut links = BTreeMap::new();
    for i in 0..SIGNUPS {
        let email = format!("kill{i}@example.com");
        let res = client
            .post(first.url("/signup"))
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mail = sink
            .wait_for(&email, Duration::from_secs(15))
            .await
            .unwrap();
        links.insert(email, link_token(&mail.link().unwrap()));
    }

    // Every link used at once; the process is killed once a few have answered.
    let (done, mut answered) = tokio::sync::mpsc::unbounded_channel();
    for (email, token) in &links {
        let (client, url, done) = (client.clone(), first.url("/verify-email"), done.clone());
        let (email, token) = (email.clone(), token.clone());
        tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&json!({"token": token, "password": PASSWORD}))
                .send()
                .await;
            let status = res.map(|r| r.status().as_u16()).ok();
            let _ = done.send((email, status));
        });
    }
    drop(done);
    let mut confirmed = Vec::new();
    while confirmed.len() < ANSWERED_BEFORE_KILL {
        let (email, status) = answered.recv().await.expect("signups answered");
        assert_eq!(status, Some(200), "{email} before the kill");
        confirmed.push(email);
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    // Answers that raced the kill: a 200 counts, anything else is a cut connection.
    while let Some((email, status)) = answered.recv().await {
        match status {
            Some(200) => confirmed.push(email),
            None => {}
            Some(other) => panic!("{email}: {other} around the kill"),
        }
    }
    let cut = SIGNUPS - confirmed.len();
    assert!(
        cut > 0,
        "every signup finished before the kill: nothing was cut"
    );

    // The file as the killed process left it.
    let (rows, integrity) = read_users(&db);
    assert_eq!(integrity, "ok");
    let mut seen = BTreeMap::new();
    for row in &rows {
        let email = row["email"].as_str().unwrap_or("").to_lowercase();
        *seen.entry(email.clone()).or_insert(0) += 1;
        let hash = row["password_hash"].as_str().unwrap_or("");
        assert!(
            hash.starts_with("$argon2id$") && hash.len() > 60,
            "{email}: a half-written hash {hash:?}"
        );
        assert!(!row["verified_at"].is_null(), "{email}: not verified");
    }
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
    for email in &confirmed {
        assert!(seen.contains_key(email), "{email} answered 200 but is gone");
    }

    // The restarted process: a user that exists signs in and its link is used; a link whose
    // user was never written still works.
    let second = spawn(&["serve"], &vars, dir.path());
    for (email, token) in &links {
        let verify = client
            .post(second.url("/verify-email"))
            .json(&json!({"token": token, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let status = verify.status().as_u16();
        let body: Value = verify.json().await.unwrap();
        if seen.contains_key(email) {
            assert_eq!(
                (status, &body["error"]),
                (400, &json!("token_used")),
                "{email}"
            );
        } else {
            assert_eq!(status, 200, "{email}: {body}");
        }
        let login = client
            .post(second.url("/token"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200, "{email}");
    }
    let (rows, _) = read_users(&db);
    assert_eq!(rows.len(), SIGNUPS);
    eprintln!(
        "sigkill: {} signups answered 200, {} in the file at the kill, {cut} cut",
        confirmed.len(),
        seen.len()
    );
}
