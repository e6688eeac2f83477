//! `authura group …` and `authura permit …` (SPEC §8a, §11) against the PostgreSQL database a
//! running `authura` process serves: the commands create, rename and delete groups and set a
//! permit, and the server's `/check` (its cache's TTL an hour here) follows each change within
//! the propagation bound, through `NOTIFY`; refusals exit 1 with the API's error code.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admin_cli::{
    PgServer, ROOT, ROOT_PW, command, json_ok as json_of, json_refused as refused,
};

#[tokio::test]
async fn group_and_permit_commands_reach_a_running_server_on_postgres() {
    let pg = PgServer::start(&[("PERMISSION_NAMES", r#"{"read": 1, "write": 2}"#)]).await;
    let (vars, dir, server) = (pg.vars(), &pg.dir, &pg.server);
    let http = reqwest::Client::new();
    let signed_in = &pg.admin;
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
    let text = command(&["permit", "show", &id], &vars, dir.path(), "");
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
