//! `authura import authaus` (SPEC §12) end to end: an Authaus database at schema version 16
//! built on the real PostgreSQL from its schema (`fixtures/authaus_v16.sql`, the triggers
//! included), with hashes made by Python's `hashlib.scrypt`, imported into an SQLite and into a
//! PostgreSQL users backend; then a real `authura` serves the result: old passwords sign in (and
//! are rewritten as Argon2id), a carried Authaus session key opens `/check` as the `session`
//! cookie, groups and permits are stored with Authaus's ids and encodings, expired sessions and
//! archived or locked users' sessions did not come over, the archived user cannot sign in, the
//! locked one is locked, the history refuses an old password. A dry run writes nothing and a
//! second run changes nothing; into the http backend, ids are mapped and printed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use authura_testkit::postgres::Database;
use serde_json::{Value, json};

use crate::cli::GOOD;
use crate::run::spawn;

const BIN: &str = env!("CARGO_BIN_EXE_authura");
const SCHEMA: &str = include_str!("fixtures/authaus_v16.sql");

/// Authaus session keys: 30 letters and digits.
const ALICE_KEY: &str = "AliceLiveSessionKey0123456789a";
const ALICE_EXPIRED_KEY: &str = "AliceOldSessionKey0123456789ab";
const CAROL_KEY: &str = "CarolLiveSessionKey0123456789c";
const FRANK_KEY: &str = "FrankLiveSessionKey0123456789f";
const DAVE_KEY: &str = "DaveLiveSessionKey0123456789dd";

/// Builds the Authaus database: users 1 alice (groups 1 and 2, two archived passwords, a last
/// login, a live and an expired session), 2 without an email, 3 carol (archived, a live
/// session), 4 dave (locked, a live session), 5 erin (LDAP: no password), 7 frank (mixed-case address with
/// spaces, an empty permit, a live session); groups 1 admin, 2 viewer, 5 empty.
async fn authaus_database() -> Database {
    let db = authura_testkit::postgres::database().await;
    db.execute(SCHEMA).await;
    let hashes = authura_testkit::python::authaus_hashes(&[
        "Alice-Current-Pa55word!",
        "Alice-Old-Pa55word-1!",
        "Alice-Old-Pa55word-2!",
        "nobody-pw",
        "carol-pw",
        "dave-pw",
        "frank-pw",
    ]);
    let permit = |groups: &[u32]| {
        use base64::Engine as _;
        let blob: Vec<u8> = groups.iter().flat_map(|g| g.to_be_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(blob)
    };
    let perms = |list: &[u16]| {
        use base64::Engine as _;
        let blob: Vec<u8> = list.iter().flat_map(|p| p.to_be_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(blob)
    };
    let sql = format!(
        "INSERT INTO authgroup (id, name, permlist) VALUES \
           (1, 'admin', '{admin}'), (2, 'viewer', '{viewer}'), (5, 'empty', '');
         SELECT setval('authgroup_id_seq', 5);
         INSERT INTO authuserstore (userid, email, username, authusertype, archived, createdby, archive_date) VALUES
           (1, 'Alice@Example.com', 'alice', 0, false, 0, NULL),
           (2, NULL, 'nobody', 0, false, 0, NULL),
           (3, 'carol@example.com', 'carol', 0, true, 0, '2025-01-02 03:04:05'),
           (4, 'dave@example.com', 'dave', 0, false, 0, NULL),
           (5, 'erin@example.com', 'erin', 1, false, -2, NULL),
           (7, '  Frank@Example.COM ', 'frank', 0, false, 0, NULL);
         INSERT INTO authuserpwd (userid, password, permit, accountlocked) VALUES
           (1, '{h_alice}', '{p_alice}', false),
           (2, '{h_nobody}', '{p_viewer}', false),
           (3, '{h_carol}', '{p_viewer}', false),
           (4, '{h_dave}', '{p_viewer}', true),
           (5, NULL, '{p_viewer}', false),
           (7, '{h_frank}', '', false);
         INSERT INTO authpwdarchive (userid, password, created) VALUES
           (1, '{h_old1}', '2024-01-01 00:00:00'), (1, '{h_old2}', '2024-06-01 00:00:00');
         INSERT INTO authuserstats (user_id, last_login_date) VALUES (1, '2025-11-30 10:00:00');
         INSERT INTO authsession (sessionkey, permit, expires, userid) VALUES
           ('{ALICE_KEY}', '{p_alice}', (now() AT TIME ZONE 'UTC') + interval '2 days', 1),
           ('{ALICE_EXPIRED_KEY}', '{p_alice}', (now() AT TIME ZONE 'UTC') - interval '1 hour', 1),
           ('{CAROL_KEY}', '{p_viewer}', (now() AT TIME ZONE 'UTC') + interval '2 days', 3),
           ('{FRANK_KEY}', '', (now() AT TIME ZONE 'UTC') + interval '2 days', 7),
           ('{DAVE_KEY}', '{p_viewer}', (now() AT TIME ZONE 'UTC') + interval '2 days', 4);",
        admin = perms(&[1, 2, 300]),
        viewer = perms(&[2]),
        h_alice = hashes[0],
        h_old1 = hashes[1],
        h_old2 = hashes[2],
        h_nobody = hashes[3],
        h_carol = hashes[4],
        h_dave = hashes[5],
        h_frank = hashes[6],
        p_alice = permit(&[1, 2]),
        p_viewer = permit(&[2]),
    );
    db.execute(&sql).await;
    db
}

/// Runs `authura import authaus <args>` with `vars`.
fn import(args: &[&str], vars: &[(&str, &str)], dir: &Path) -> Output {
    Command::new(BIN)
        .args(["import", "authaus"])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

/// The import with `--json`, expected to succeed: its summary.
#[track_caller]
fn import_json(args: &[&str], vars: &[(&str, &str)], dir: &Path) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = import(&all, vars, dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Where the import wrote, to read it back with SQL.
enum Target {
    Sqlite(std::path::PathBuf),
    Postgres(Database),
}

impl Target {
    /// Every role group's stored permission list, in hex, by id.
    async fn permissions_hex(&self) -> Vec<String> {
        let sql = match self {
            Target::Postgres(_) => {
                "SELECT encode(permissions, 'hex') FROM authura_role_groups ORDER BY id"
            }
            Target::Sqlite(_) => {
                "SELECT lower(hex(permissions)) FROM authura_role_groups ORDER BY id"
            }
        };
        self.rows(sql)
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    }

    /// The rows of `sql`, each column as text (NULL as "").
    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self {
            Target::Postgres(db) => db
                .rows(sql)
                .await
                .into_iter()
                .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
                .collect(),
            Target::Sqlite(path) => {
                let script = "import json, sqlite3, sys\n\
                              c = sqlite3.connect(sys.argv[1])\n\
                              rows = c.execute(sys.argv[2]).fetchall()\n\
                              print(json.dumps([['' if v is None else str(v) for v in r] for r in rows]))\n";
                let out = Command::new(authura_testkit::python::python())
                    .args(["-c", script])
                    .arg(path)
                    .arg(sql)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{sql}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice(&out.stdout).unwrap()
            }
        }
    }
}

async fn imports_into(target: &Target, vars: &[(&str, &str)], dir: &Path) {
    let authaus = authaus_database().await;
    let dsn = authaus.url.as_str();

    // A dry run says what it would do; the real run then does all of it, so nothing was
    // written before.
    let dry = import_json(&["--dsn", dsn, "--sessions", "--dry-run"], vars, dir);
    assert_eq!(dry["dry_run"], json!(true));
    let done = import_json(&["--dsn", dsn, "--sessions"], vars, dir);
    for part in [
        "users", "groups", "permits", "accounts", "sessions", "changes",
    ] {
        assert_eq!(dry[part], done[part], "{part}: dry {dry:#} real {done:#}");
    }
    assert_eq!(done["schema_version"], json!(16));
    assert_eq!(done["user_ids"], json!("kept"));
    assert_eq!(
        done["users"],
        json!({"created": 5, "updated": 0, "unchanged": 0, "skipped": 1}),
        "{done:#}"
    );
    assert_eq!(
        done["groups"],
        json!({"created": 3, "updated": 0, "unchanged": 0, "skipped": 0})
    );
    // alice, carol, dave, erin hold groups; frank's permit is empty (nothing to write).
    assert_eq!(
        done["permits"],
        json!({"created": 4, "updated": 0, "unchanged": 1, "skipped": 0}),
        "{done:#}"
    );
    assert_eq!(
        done["accounts"],
        json!({"archived": 1, "locked": 1, "last_login": 1, "history_added": 2})
    );
    assert_eq!(
        done["sessions"],
        json!({"created": 2, "unchanged": 0, "skipped": 2, "expired": 1}),
        "{done:#}"
    );
    assert_eq!(done["without_password"], json!(1));
    let skipped = done["skipped"].as_array().unwrap();
    assert!(
        skipped.iter().any(|s| s["kind"] == "user"
            && s["authaus_id"] == 2
            && s["reason"] == "no email address"),
        "{done:#}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s["kind"] == "session" && s["authaus_id"] == 3),
        "{done:#}"
    );

    // A second run changes nothing, and says so.
    let again = import_json(&["--dsn", dsn, "--sessions"], vars, dir);
    assert_eq!(again["changes"], json!(0), "{again:#}");
    assert_eq!(again["users"]["unchanged"], json!(5));
    let text = import(&["--dsn", dsn, "--sessions"], vars, dir);
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("nothing to change"), "{text}");
    assert!(text.contains("skipped user 2: no email address"), "{text}");

    // Ids, addresses and groups as Authaus had them.
    assert_eq!(
        target
            .rows("SELECT CAST(id AS TEXT), email FROM users ORDER BY id")
            .await,
        vec![
            vec!["1".to_owned(), "alice@example.com".to_owned()],
            vec!["3".to_owned(), "carol@example.com".to_owned()],
            vec!["4".to_owned(), "dave@example.com".to_owned()],
            vec!["5".to_owned(), "erin@example.com".to_owned()],
            vec!["7".to_owned(), "frank@example.com".to_owned()],
        ]
    );
    assert_eq!(
        target
            .rows("SELECT CAST(id AS TEXT), name FROM authura_role_groups ORDER BY id")
            .await,
        vec![
            vec!["1".to_owned(), "admin".to_owned()],
            vec!["2".to_owned(), "viewer".to_owned()],
            vec!["5".to_owned(), "empty".to_owned()],
        ]
    );

    // Permits as Authaus had them (group ids kept), and each group's permissions as
    // Authaus's big-endian u16 list.
    assert_eq!(
        target
            .rows(
                "SELECT user_id, CAST(group_id AS TEXT) FROM authura_permits \
                 ORDER BY user_id, group_id"
            )
            .await,
        [("1", "1"), ("1", "2"), ("3", "2"), ("4", "2"), ("5", "2")]
            .map(|(u, g)| vec![u.to_owned(), g.to_owned()])
            .to_vec()
    );
    assert_eq!(
        target.permissions_hex().await,
        vec![
            "0001".to_owned() + "0002" + "012c",
            "0002".to_owned(),
            String::new()
        ]
    );

    // The server over what was imported.
    let server = spawn(&[], vars, dir);
    let http = reqwest::Client::new();
    let token = async |email: &str, password: &str| {
        http.post(server.url("/token"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    };
    let started = Instant::now();
    let alice = loop {
        let res = token("alice@example.com", "Alice-Current-Pa55word!").await;
        if res.status() == 200 {
            break res.json::<Value>().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "alice never signed in: {} {}",
            res.status(),
            res.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let access = alice["access_token"].as_str().unwrap().to_owned();
    // Her Authaus hash was rewritten as Argon2id at that login.
    let hash = target.rows("SELECT password FROM users WHERE id = 1").await;
    assert!(hash[0][0].starts_with("$argon2id$"), "{hash:?}");
    // Frank's address was trimmed and lower-cased, his id kept.
    let frank = token("frank@example.com", "frank-pw").await;
    assert_eq!(frank.status(), 200);
    let me: Value = http
        .get(server.url("/user"))
        .bearer_auth(
            frank.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"].to_string().trim_matches('"'), "7", "{me}");

    // Alice's Authaus session key, as Authaus's cookie, opens /check with her groups.
    let check = async |key: &str| {
        http.get(server.url("/check"))
            .header("cookie", format!("session={key}"))
            .send()
            .await
            .unwrap()
    };
    let res = check(ALICE_KEY).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_id"].to_string().trim_matches('"'), "1", "{body}");
    assert_eq!(body["email"], json!("alice@example.com"));
    assert_eq!(
        body["groups"],
        json!([{"id": 1, "name": "admin"}, {"id": 2, "name": "viewer"}])
    );
    assert_eq!(body["permissions"], json!([1, 2, 300]));
    let permitted = http
        .get(server.url("/check?permission=300"))
        .header("cookie", format!("session={ALICE_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(permitted.status(), 200);
    assert_eq!(check(FRANK_KEY).await.status(), 200);
    // The expired session and the archived user's did not come over.
    assert_eq!(check(ALICE_EXPIRED_KEY).await.status(), 401);
    assert_eq!(check(CAROL_KEY).await.status(), 401);
    assert_eq!(check(DAVE_KEY).await.status(), 401);

    // Archived carol cannot sign in; locked dave is locked (his right password answers as a
    // wrong one); erin has no password.
    assert_eq!(token("carol@example.com", "carol-pw").await.status(), 401);
    assert_eq!(token("dave@example.com", "dave-pw").await.status(), 401);
    let admin_view = target
        .rows("SELECT user_id, CAST((locked_at IS NOT NULL) AS TEXT), CAST((archived_at IS NOT NULL) AS TEXT) FROM authura_account_state ORDER BY user_id")
        .await;
    let flags: Vec<(String, String, String)> = admin_view
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    let truthy = |v: &str| v == "true" || v == "1" || v == "t";
    assert!(
        flags
            .iter()
            .any(|(id, locked, _)| id == "4" && truthy(locked)),
        "{flags:?}"
    );
    assert!(
        flags
            .iter()
            .any(|(id, _, archived)| id == "3" && truthy(archived)),
        "{flags:?}"
    );

    // The history refuses an archived Authaus password.
    let change = async |old: &str, new: &str| {
        http.post(server.url("/change-password"))
            .bearer_auth(&access)
            .json(&json!({"old_password": old, "new_password": new}))
            .send()
            .await
            .unwrap()
    };
    let res = change("Alice-Current-Pa55word!", "Alice-Old-Pa55word-1!").await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        json!("password_reused")
    );
    drop(server);

    // After Authura rewrote alice's hash, a re-run still changes nothing (Authura's is newer).
    let after = import_json(&["--dsn", dsn, "--sessions"], vars, dir);
    assert_eq!(after["changes"], json!(0), "{after:#}");
}

/// What every target's server runs with: sessions under Authaus's cookie name, the history
/// and lockout policies on.
fn server_vars() -> Vec<(&'static str, &'static str)> {
    let mut vars: Vec<(&str, &str)> = GOOD.to_vec();
    vars.extend([
        ("SESSIONS_ENABLED", "true"),
        ("SESSION_COOKIE_NAME", "session"),
        ("PASSWORD_HISTORY", "5"),
        ("LOCKOUT_THRESHOLD", "5"),
        ("RATE_PER_MINUTE", "0"),
    ]);
    vars
}

#[tokio::test]
async fn authaus_imports_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authura.db");
    let path_text = path.to_str().unwrap().to_owned();
    let mut vars = server_vars();
    vars.extend([
        ("AUTH_BACKEND", "sqlite"),
        ("SQLITE_DB_PATH", path_text.as_str()),
    ]);
    imports_into(&Target::Sqlite(path.clone()), &vars, dir.path()).await;
}

#[tokio::test]
async fn authaus_imports_into_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = authura_testkit::postgres::database().await;
    let url = db.url.clone();
    let mut vars = server_vars();
    vars.extend([("AUTH_BACKEND", "postgres"), ("POSTGRES_DSN", url.as_str())]);
    imports_into(&Target::Postgres(db), &vars, dir.path()).await;
}

#[tokio::test]
async fn not_an_authaus_database_fails_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = authura_testkit::postgres::database().await;
    let path = dir.path().join("authura.db");
    let path_text = path.to_str().unwrap().to_owned();
    let mut vars = server_vars();
    vars.extend([
        ("AUTH_BACKEND", "sqlite"),
        ("SQLITE_DB_PATH", path_text.as_str()),
    ]);
    let out = import(&["--dsn", &empty.url, "--json"], &vars, dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"], json!("authaus"), "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("does not look like an Authaus database"),
        "{err}"
    );
    // An older schema is refused, naming its version.
    empty
        .execute("CREATE TABLE migration_version (version INTEGER); INSERT INTO migration_version VALUES (12);")
        .await;
    let out = import(&["--dsn", &empty.url], &vars, dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("version 12"), "{stderr}");
}

/// The http backend stores ids it assigns itself: users are matched by email, the mapping is
/// printed, and the state (permits, sessions) goes to `STATE_DSN` under the mapped ids. A second
/// run finds every user by address and changes nothing.
#[tokio::test]
async fn authaus_imports_into_an_http_backend_with_mapped_ids() {
    let authaus = authaus_database().await;
    let standin = authura_standins::http::HttpStandin::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = format!("sqlite:{}", dir.path().join("state.db").display());
    let (auth_key, auth_value) = standin.auth();
    let mut vars = server_vars();
    vars.extend([
        ("AUTH_BACKEND", "http"),
        ("HTTP_URL", standin.url()),
        ("HTTP_AUTH_HEADER_KEY", auth_key),
        ("HTTP_AUTH_HEADER_VALUE", auth_value),
        ("STATE_DSN", state.as_str()),
    ]);
    let done = import_json(&["--dsn", &authaus.url, "--sessions"], &vars, dir.path());
    assert_eq!(done["user_ids"], json!("mapped"), "{done:#}");
    assert_eq!(done["users"]["created"], json!(5), "{done:#}");
    assert_eq!(done["permits"]["created"], json!(4), "{done:#}");
    assert_eq!(done["sessions"]["created"], json!(2), "{done:#}");
    let map = done["id_map"].as_array().unwrap();
    let authaus_ids: Vec<i64> = map
        .iter()
        .map(|m| m["authaus_id"].as_i64().unwrap())
        .collect();
    assert_eq!(authaus_ids, vec![1, 3, 4, 5, 7], "{done:#}");
    let text = import(&["--dsn", &authaus.url, "--sessions"], &vars, dir.path());
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("nothing to change"), "{text}");
    let first = map[0]["user_id"].as_str().unwrap();
    assert!(
        text.contains(&format!("authaus user 1 is user {first}")),
        "{text}"
    );
}
