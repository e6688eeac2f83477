//! `authura user list|show|create|update|delete|end-sessions` (SPEC §11) against the PostgreSQL
//! database a running `authura` process serves: a user created on the command line signs in at
//! the server; a password changed there ends the server's sessions of that user (its `/check`
//! cache learns it through `NOTIFY`; the cache's TTL is an hour here); a deleted user's session
//! is refused; `--json` prints the API's answers and errors, with the API's codes and exit 1.

use std::process::Output;

use serde_json::{Value, json};

use crate::admin_cli::{PgServer, ROOT, command, json_answer};

const ANN: &str = "ann@example.com";
const PW: &str = "Str0ng!pass";
const P2: &str = "Sec0nd!pass";

/// Runs `authura user <args>` with `vars`, `stdin` on its standard input.
fn user(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path, stdin: &str) -> Output {
    command(&[&["user"], args].concat(), vars, dir, stdin)
}

/// `authura user <args> --json`: its exit code and JSON.
fn user_json(
    args: &[&str],
    vars: &[(&str, &str)],
    dir: &std::path::Path,
    stdin: &str,
) -> (i32, Value) {
    json_answer(&[&["user"], args].concat(), vars, dir, stdin)
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn user_commands_reach_a_running_server_on_postgres() {
    let pg = PgServer::start(&[]).await;
    let (vars, dir) = (pg.vars(), &pg.dir);
    let http = reqwest::Client::new();
    let session = async |email: &str, password: &str| {
        http.post(pg.server.url("/session"))
            .json(&json!({"email": email, "password": password, "return_key": true}))
            .send()
            .await
            .unwrap()
    };
    let check = async |key: &str| pg.check(key).await;
    let until_refused = async |key: &str, what: &str| pg.until_refused(key, what).await;

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
