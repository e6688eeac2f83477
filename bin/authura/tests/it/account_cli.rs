//! `authura user lock|unlock|archive|restore` (SPEC §11) against the PostgreSQL database a
//! running `authura` process serves: the server sees each change at once; archiving ends the
//! user's sessions in the server's `/check` cache through `NOTIFY` (the cache's TTL is an hour
//! here); each change is in the audit log, done "by" the command line.

use std::process::Output;

use serde_json::{Value, json};

use crate::admin_cli::{PgServer, ROOT, ROOT_PW, command, json_ok};

/// Runs `authura user <args>` with `vars`.
fn user(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path) -> Output {
    command(&[&["user"], args].concat(), vars, dir, "")
}

/// `authura user <args> --json`, expected to succeed; its JSON.
#[track_caller]
fn user_json(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path) -> Value {
    json_ok(&[&["user"], args].concat(), vars, dir)
}

#[tokio::test]
async fn account_commands_reach_a_running_server_on_postgres() {
    let pg = PgServer::start(&[("LOCKOUT_THRESHOLD", "5")]).await;
    let (vars, dir, server) = (pg.vars(), &pg.dir, &pg.server);
    let http = reqwest::Client::new();
    let login = async || {
        http.post(server.url("/token"))
            .json(&json!({"email": ROOT, "password": ROOT_PW}))
            .send()
            .await
            .unwrap()
    };
    let id = pg.admin["user"]["id"].to_string();

    // Locked on the command line: the server answers the right password as a wrong one.
    let state = user_json(&["lock", &id], &vars, dir.path());
    assert_eq!(
        (&state["user_id"], &state["locked"]),
        (&json!(id), &json!(true))
    );
    assert_eq!(login().await.status(), 401);
    let out = user(&["unlock", &id], &vars, dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unlocked"));
    assert_eq!(login().await.status(), 200);

    // Archived: the session the server has cached ends there too.
    let signed_in: Value = http
        .post(server.url("/session"))
        .json(&json!({"email": ROOT, "password": ROOT_PW, "return_key": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = signed_in["session"]["key"].as_str().unwrap().to_owned();
    let check = async || pg.check(&key).await;
    assert_eq!(check().await, 200);
    let state = user_json(&["archive", &id], &vars, dir.path());
    assert_eq!(state["archived"], json!(true));
    pg.until_refused(
        &key,
        "the archived user's cached session still opens /check",
    )
    .await;
    assert_eq!(login().await.status(), 401);
    let state = user_json(&["restore", &id], &vars, dir.path());
    assert_eq!(state["archived"], json!(false));
    let access = login().await.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // In the audit log, written before each command returned, by the command line.
    let audit: Value = http
        .get(server.url(&format!("/admin/audit?user_id={id}")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    for kind in [
        "account.locked",
        "account.unlocked",
        "user.archived",
        "user.restored",
    ] {
        let found: Vec<&Value> = events.iter().filter(|e| e["event"] == kind).collect();
        assert_eq!(found.len(), 1, "{kind}: {audit:#}");
        assert_eq!(found[0]["detail"], json!({"by": "cli"}));
        assert_eq!(found[0]["actor_id"], Value::Null);
    }

    // An unknown user: exit 1, the API's error as JSON.
    let out = user(&["lock", "987654", "--json"], &vars, dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"], "not_found");
}
