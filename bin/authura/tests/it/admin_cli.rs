//! What the administration commands' tests share (`authura user …`, `group …`, `permit …`):
//! running a command with `--json`, and an `authura` server on a fresh PostgreSQL database, with
//! sessions and the audit on, whose initial administrator has signed in.

use std::path::Path;
use std::time::{Duration, Instant};

use authura_testkit::postgres::Database;
use serde_json::{Value, json};

use crate::cli::GOOD;
pub(crate) use crate::cli::authura_with_stdin as command;
use crate::run::{Proc, spawn};

/// The initial administrator's address and password.
pub(crate) const ROOT: &str = "root@example.com";
pub(crate) const ROOT_PW: &str = "Initial-Adm1n-pw";

/// `authura <args> --json`: its exit code and the JSON it printed.
#[track_caller]
pub(crate) fn json_answer(
    args: &[&str],
    vars: &[(&str, &str)],
    dir: &Path,
    stdin: &str,
) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = command(&all, vars, dir, stdin);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: {e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

/// `authura <args> --json`, expected to succeed: its JSON.
#[track_caller]
pub(crate) fn json_ok(args: &[&str], vars: &[(&str, &str)], dir: &Path) -> Value {
    let (code, json) = json_answer(args, vars, dir, "");
    assert_eq!(code, 0, "{args:?}: {json}");
    json
}

/// `authura <args> --json`, expected to fail (exit 1) with the API's error `code`.
#[track_caller]
pub(crate) fn json_refused(args: &[&str], vars: &[(&str, &str)], dir: &Path, code: &str) {
    let (exit, json) = json_answer(args, vars, dir, "");
    assert_eq!(exit, 1, "{args:?}: {json}");
    assert_eq!(json["error"], code, "{args:?}: {json}");
}

/// An `authura` process serving a fresh PostgreSQL database (sessions, the audit, no rate
/// limit, the `/check` cache's TTL an hour, so only `NOTIFY` can tell it of a change), and its
/// initial administrator's `/session` answer (with the key).
pub(crate) struct PgServer {
    pub(crate) server: Proc,
    pub(crate) dir: tempfile::TempDir,
    /// The server's variables; the commands under test run with the same.
    vars: Vec<(&'static str, String)>,
    pub(crate) admin: Value,
    _db: Database,
}

impl PgServer {
    /// Starts it with `extra` variables besides the common ones, and waits until the
    /// administrator signs in (PostgreSQL is connected, and the initial user created, after the
    /// listener).
    pub(crate) async fn start(extra: &[(&'static str, &str)]) -> PgServer {
        let db = authura_testkit::postgres::database().await;
        let dir = tempfile::tempdir().unwrap();
        let mut vars: Vec<(&'static str, String)> =
            GOOD.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        vars.extend(
            [
                ("AUTH_BACKEND", "postgres"),
                ("POSTGRES_DSN", db.url.as_str()),
                ("POSTGRES_INITIAL_USER", ROOT),
                ("POSTGRES_INITIAL_USER_PASSWORD", ROOT_PW),
                ("SESSIONS_ENABLED", "true"),
                ("SESSION_CACHE_TTL", "1h"),
                ("AUDIT_ENABLED", "true"),
                ("RATE_PER_MINUTE", "0"),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| (*k, (*v).to_owned())),
        );
        let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server = spawn(&[], &borrowed, dir.path());
        let http = reqwest::Client::new();
        let started = Instant::now();
        let admin = loop {
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
                "never signed in:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        PgServer {
            server,
            dir,
            vars,
            admin,
            _db: db,
        }
    }

    /// The variables the server runs with.
    pub(crate) fn vars(&self) -> Vec<(&str, &str)> {
        self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// `/check`'s status for a session key.
    pub(crate) async fn check(&self, key: &str) -> u16 {
        reqwest::Client::new()
            .get(self.server.url("/check"))
            .header("authorization", format!("Session {key}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Waits until `/check` refuses `key` (a change reached the server's cache), failing with
    /// `what` after 10 s.
    pub(crate) async fn until_refused(&self, key: &str, what: &str) {
        let started = Instant::now();
        while self.check(key).await != 401 {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
