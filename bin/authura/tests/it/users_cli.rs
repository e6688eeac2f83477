//! `authura user list|show|create|update|delete|end-sessions` (SPEC §11) against the PostgreSQL
//! database a running `authura` process serves: a user created on the command line signs in at
//! the server; a password changed there ends the server's sessions of that user (its `/check`
//! cache learns it through `NOTIFY`; the cache's TTL is an hour here); a deleted user's session
//! is refused; `--json` prints the API's answers and errors, with the API's codes and exit 1.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::GOOD;
use crate::run::spawn;

const BIN: &str = env!("CARGO_BIN_EXE_authura");
const ROOT: &str = "root@example.com";
const ROOT_PW: &str = "Initial-Adm1n-pw";
const ANN: &str = "ann@example.com";
const PW: &str = "Str0ng!pass";
const P2: &str = "Sec0nd!pass";

/// Runs `authura user <args>` with `vars`, `stdin` on its standard input.
fn user(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path, stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `authura user <args> --json`: its exit code and JSON.
fn user_json(
    args: &[&str],
    vars: &[(&str, &str)],
    dir: &std::path::Path,
    stdin: &str,
) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = user(&all, vars, dir, stdin);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: {e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn user_commands_reach_a_running_server_on_postgres() {
    let db = authura_testkit::postgres::database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut vars: Vec<(&str, &str)> = GOOD.to_vec();
    vars.extend([
        ("AUTH_BACKEND", "postgres"),
        ("POSTGRES_DSN", db.url.as_str()),
        ("POSTGRES_INITIAL_USER", ROOT),
        ("POSTGRES_INITIAL_USER_PASSWORD", ROOT_PW),
        ("SESSIONS_ENABLED", "true"),
        ("SESSION_CACHE_TTL", "1h"),
        ("AUDIT_ENABLED", "true"),
        ("RATE_PER_MINUTE", "0"),
    ]);
    let server = spawn(&[], &vars, dir.path());
    let http = reqwest::Client::new();
    let session = async |email: &str, password: &str| {
        http.post(server.url("/session"))
            .json(&json!({"email": email, "password": password, "return_key": true}))
            .send()
            .await
            .unwrap()
    };
    // PostgreSQL is connected, and the initial user created, after the listener: poll.
    let started = Instant::now();
    while session(ROOT, ROOT_PW).await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never signed in"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let check = async |key: &str| {
        http.get(server.url("/check"))
            .header("authorization", format!("Session {key}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let until_refused = async |key: &str, what: &str| {
        let started = Instant::now();
        while check(key).await != 401 {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // Created on the command line (the password from standard input): signs in at the server.
    let (code, ann) = user_json(
        &["create", ANN, "--role", "editor", "--password-stdin"],
        &vars,
        dir.path(),
        &format!("{PW}\n"),
    );
    assert_eq!(code, 0, "{ann}");
    assert_eq!(
        (&ann["email"], &ann["role"]),
        (&json!(ANN), &json!("editor"))
    );
    assert!(ann["verified_at"].is_string());
    let id = id_text(&ann["id"]);
    let res = session(ANN, PW).await;
    assert_eq!(res.status(), 200);
    let key = res.json::<Value>().await.unwrap()["session"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(check(&key).await, 200);

    // The API's errors, with exit 1.
    for (args, stdin, error) in [
        (vec!["create", ANN], "", "email_taken"),
        (
            vec!["create", "weak@example.com", "--password-stdin"],
            "weak\n",
            "weak_password",
        ),
        (vec!["show", "987654"], "", "not_found"),
        (vec!["delete", "987654"], "", "not_found"),
        (vec!["list", "--limit", "201"], "", "invalid_body"),
    ] {
        let (code, err) = user_json(&args, &vars, dir.path(), stdin);
        assert_eq!(
            (code, err["error"].as_str()),
            (1, Some(error)),
            "{args:?}: {err}"
        );
    }

    // Listed and shown as the API answers.
    let (code, page) = user_json(&["list", "--query", "ANN@"], &vars, dir.path(), "");
    assert_eq!(code, 0);
    assert_eq!(page["users"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["users"][0]["id"], ann["id"]);
    assert_eq!(page["next_cursor"], Value::Null);
    let (_, page) = user_json(&["list", "--limit", "1"], &vars, dir.path(), "");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = user_json(
        &["list", "--limit", "1", "--cursor", &cursor],
        &vars,
        dir.path(),
        "",
    );
    assert_ne!(page["users"][0]["id"], rest["users"][0]["id"]);
    let (_, shown) = user_json(&["show", &id], &vars, dir.path(), "");
    assert_eq!(shown["account"]["sessions"], json!(1), "{shown}");
    let out = user(&["list"], &vars, dir.path(), "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(ANN) && text.contains(ROOT), "{text}");

    // A new password on the command line: the old one fails at the server, the session ends.
    let (code, updated) = user_json(
        &["update", &id, "--password-stdin", "--role", "viewer"],
        &vars,
        dir.path(),
        &format!("{P2}\n"),
    );
    assert_eq!(code, 0, "{updated}");
    assert_eq!(updated["role"], json!("viewer"));
    until_refused(&key, "the session outlived a password change").await;
    assert_eq!(session(ANN, PW).await.status(), 401);
    let res = session(ANN, P2).await;
    assert_eq!(res.status(), 200);
    let key = res.json::<Value>().await.unwrap()["session"]["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Sessions ended on request.
    let (code, _) = user_json(&["end-sessions", &id], &vars, dir.path(), "");
    assert_eq!(code, 0);
    until_refused(&key, "the session outlived end-sessions").await;

    // Deleted: gone, and so is their new session.
    let key = session(ANN, P2).await.json::<Value>().await.unwrap()["session"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = user(&["delete", &id], &vars, dir.path(), "");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted"));
    until_refused(&key, "a deleted user's session still opens /check").await;
    let (code, err) = user_json(&["show", &id], &vars, dir.path(), "");
    assert_eq!((code, &err["error"]), (1, &json!("not_found")));
}
