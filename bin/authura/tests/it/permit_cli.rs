//! `authura group …` and `authura permit …` (SPEC §8a, §11) against the PostgreSQL database a
//! running `authura` process serves: the commands create, rename and delete groups and set a
//! permit, and the server's `/check` (its cache's TTL an hour here) follows each change within
//! the propagation bound, through `NOTIFY`; refusals exit 1 with the API's error code.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::GOOD;
use crate::run::spawn;

const BIN: &str = env!("CARGO_BIN_EXE_authura");
const ROOT: &str = "root@example.com";
const ROOT_PW: &str = "Initial-Adm1n-pw";

/// Runs `authura <args>` with `vars`.
fn authura(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

/// `authura <args> --json`, expected to succeed; its JSON.
#[track_caller]
fn json_of(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = authura(&all, vars, dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `authura <args> --json`, expected to fail with `code`.
#[track_caller]
fn refused(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path, code: &str) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = authura(&all, vars, dir);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"], code, "{args:?}: {err}");
}

#[tokio::test]
async fn group_and_permit_commands_reach_a_running_server_on_postgres() {
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
        ("PERMISSION_NAMES", r#"{"read": 1, "write": 2}"#),
    ]);
    let server = spawn(&[], &vars, dir.path());
    let http = reqwest::Client::new();
    // PostgreSQL is connected, and the initial user created, after the listener: poll.
    let started = Instant::now();
    let signed_in = loop {
        let res = http
            .post(server.url("/session"))
            .json(&json!({"email": ROOT, "password": ROOT_PW, "return_key": true}))
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            break res.json::<Value>().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never signed in"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let key = signed_in["session"]["key"].as_str().unwrap().to_owned();
    let id = signed_in["user"]["id"].to_string();
    let check = async || -> Value {
        let res = http
            .get(server.url("/check"))
            .header("authorization", format!("Session {key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    };
    // Polls /check until `done` accepts it.
    let until = async |done: &dyn Fn(&Value) -> bool| {
        let started = Instant::now();
        loop {
            let got = check().await;
            if done(&got) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the server's /check never followed the command: {got}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(check().await["groups"], json!([]));
    // Cached now.
    check().await;

    let ops = json_of(
        &["group", "create", "ops", "--permissions", "1,write,7"],
        &vars,
        dir.path(),
    );
    assert_eq!(ops["permissions"], json!([1, 2, 7]));
    assert_eq!(ops["permission_names"], json!(["read", "write"]));
    let ops_id = ops["id"].as_u64().unwrap().to_string();
    refused(&["group", "create", "ops"], &vars, dir.path(), "name_taken");
    refused(
        &["group", "create", " ops"],
        &vars,
        dir.path(),
        "invalid_body",
    );
    refused(
        &["group", "create", "x", "--permissions", "70000"],
        &vars,
        dir.path(),
        "invalid_body",
    );
    let list = json_of(&["group", "list"], &vars, dir.path());
    assert_eq!(list["groups"].as_array().unwrap().len(), 1);

    let permit = json_of(&["permit", "set", &id, "ops"], &vars, dir.path());
    assert_eq!(permit["groups"], json!([{"id": ops["id"], "name": "ops"}]));
    assert_eq!(permit["permit"], ops_permit(&ops));
    until(&|c| c["permissions"] == json!([1, 2, 7])).await;
    let shown = json_of(&["permit", "show", &id], &vars, dir.path());
    assert_eq!(shown, permit);
    let text = authura(&["permit", "show", &id], &vars, dir.path());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("groups: "),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // A group's change reaches the cached session too.
    json_of(
        &[
            "group",
            "update",
            "ops",
            "--name",
            "operations",
            "--permissions",
            "9",
        ],
        &vars,
        dir.path(),
    );
    until(&|c| c["permissions"] == json!([9]) && c["groups"][0]["name"] == "operations").await;
    json_of(&["group", "delete", &ops_id], &vars, dir.path());
    until(&|c| c["groups"] == json!([])).await;

    refused(
        &["permit", "set", &id, "nobody"],
        &vars,
        dir.path(),
        "not_found",
    );
    refused(
        &["permit", "show", "987654"],
        &vars,
        dir.path(),
        "not_found",
    );
    refused(
        &["group", "delete", &ops_id],
        &vars,
        dir.path(),
        "not_found",
    );

    // Audited, by the command line.
    let token: Value = http
        .post(server.url("/token"))
        .json(&json!({"email": ROOT, "password": ROOT_PW}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit: Value = http
        .get(server.url("/admin/audit?event=permit.changed"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit:#}");
    assert_eq!(events[0]["detail"]["by"], "cli");
    assert_eq!(events[0]["actor_id"], Value::Null);
}

/// The permit blob of the one group `group`, base64.
fn ops_permit(group: &Value) -> String {
    use base64::Engine as _;
    let id = u32::try_from(group["id"].as_u64().unwrap()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(id.to_be_bytes())
}
