//! `deploy/Dockerfile`, as far as it can be checked without Docker (no engine can run here): the
//! binary it contains, started the way the image starts it (its `ENTRYPOINT`, `CMD` and `ENV`),
//! answers its `HEALTHCHECK`, and the port it `EXPOSE`s is the one its `ENV` listens on.

use std::process::Command;

use serde_json::Value;

use crate::cli::GOOD;
use crate::run::{free_port, spawn_exactly};

const BIN: &str = env!("CARGO_BIN_EXE_authura");

/// The Dockerfile's instructions, continuation lines joined: (instruction, rest).
fn instructions() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(i, rest)| (i.to_uppercase(), rest.trim().to_owned()))
        .collect()
}

/// The instructions named `name` after the last `FROM` (the runtime stage).
fn runtime(name: &str) -> Vec<String> {
    let all = instructions();
    let last_from = all.iter().rposition(|(i, _)| i == "FROM").unwrap();
    all[last_from..]
        .iter()
        .filter(|(i, _)| i == name)
        .map(|(_, rest)| rest.clone())
        .collect()
}

/// A JSON exec-form array (`["authura", "serve"]`).
fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<Value>>(text)
        .unwrap_or_else(|e| panic!("{text:?} is not an exec-form array: {e}"))
        .into_iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_image_starts_the_binary_and_its_healthcheck_passes() {
    // ENV HOST=0.0.0.0 PORT=9000 …
    let env: Vec<(String, String)> = runtime("ENV")
        .iter()
        .flat_map(|rest| {
            rest.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("ENV in key=value form");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no ENV {key}"))
    };
    assert_eq!(runtime("EXPOSE"), vec![get("PORT")]);
    assert_eq!(get("HOST"), "0.0.0.0");

    let entrypoint = exec_form(&runtime("ENTRYPOINT")[0]);
    assert_eq!(entrypoint, ["authura"]);
    let cmd = exec_form(&runtime("CMD")[0]);
    let healthcheck = runtime("HEALTHCHECK");
    let check = exec_form(
        healthcheck[0]
            .split_once("CMD ")
            .expect("HEALTHCHECK … CMD [...]")
            .1,
    );
    assert_eq!(check[0], "authura");

    // The image's environment, with its paths and port moved somewhere free here, plus the
    // secrets an operator passes with --env-file.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (port_text, db) = (
        port.to_string(),
        dir.path().join("authura.db").to_str().unwrap().to_owned(),
    );
    let mut vars: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| match k.as_str() {
            "PORT" => (k.as_str(), port_text.as_str()),
            "SQLITE_DB_PATH" => (k.as_str(), db.as_str()),
            _ => (k.as_str(), v.as_str()),
        })
        .collect();
    vars.extend_from_slice(GOOD);
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let proc = spawn_exactly(&args, &vars, dir.path(), port);
    assert!(std::path::Path::new(&db).is_file());

    // The HEALTHCHECK's command, in the image's environment.
    let check_now = || {
        Command::new(BIN)
            .args(&check[1..])
            .current_dir(dir.path())
            .env_clear()
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    };
    let out = check_now();
    assert!(
        out.status.success(),
        "the HEALTHCHECK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(proc);
    // And fails once the service is gone.
    assert_eq!(check_now().status.code(), Some(1));
}
