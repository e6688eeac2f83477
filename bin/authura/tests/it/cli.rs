//! Configuration errors (exit 2), `check-config`, `--config` files, `*_FILE` secrets, `hash-password`.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

pub use authura_testkit::config::GOOD;

const BIN: &str = env!("CARGO_BIN_EXE_authura");

/// `GOOD` without the variable `name`.
pub fn good_without(name: &str) -> Vec<(&'static str, &'static str)> {
    GOOD.iter().copied().filter(|(k, _)| *k != name).collect()
}

/// Runs the binary in an empty directory with only `vars` set.
pub fn authura(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path) -> Output {
    authura_with_stdin(args, vars, dir, "")
}

/// [`authura`] with `stdin` on its standard input.
pub fn authura_with_stdin(
    args: &[&str],
    vars: &[(&str, &str)],
    dir: &std::path::Path,
    stdin: &str,
) -> Output {
    let mut child = Command::new(BIN)
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

/// Runs `check-config`, expects success, and returns what it printed.
fn check_config_ok(vars: &[(&str, &str)], dir: &std::path::Path) -> String {
    let out = authura(&["check-config"], vars, dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = GOOD
        .iter()
        .copied()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .collect();
    v.extend(overrides.iter().copied().filter(|(_, val)| !val.is_empty()));
    v
}

#[track_caller]
fn check_refused(overrides: &[(&'static str, &'static str)], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = authura(&["check-config"], &with(overrides), dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{overrides:?}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{overrides:?}: expected {expected:?} in {stderr}"
    );
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    // The configuration's own cases (every message, each variable) run in-process, in
    // crates/authura-server/src/config/tests.rs; these check the binary's exit code and output.
    check_refused(&[("JWT_SECRET", "")], "JWT_SECRET is required");
    check_refused(
        &[("AUTH_BACKEND", "ldap")],
        "LDAP_URL is required with AUTH_BACKEND=ldap",
    );
    check_refused(&[("OAUTH_PROVIDERS", "google")], "OAUTH_PROVIDERS");
}

#[test]
fn every_problem_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = authura(&["check-config"], &[("PORT", "x")], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for expected in [
        "JWT_SECRET is required",
        "JWT_REFRESH_SECRET is required",
        "JWT_VERIFY_SECRET is required",
        "MAIL_HOST is required",
        "PORT: expected",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
}

#[test]
fn check_config_redacts_secrets_and_reads_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("refresh");
    std::fs::write(&secret_file, "refresh-from-file-0123456789abcdefghijk\n").unwrap();
    std::fs::write(dir.path().join("authura.toml"), "port = 8123\njwt_expiration = \"10m\"\nallowed_origins = [\"app.example.com\", \"https://x.example\"]\n").unwrap();
    let mut vars: Vec<_> = good_without("JWT_REFRESH_SECRET");
    let file = secret_file.to_str().unwrap().to_owned();
    vars.push(("JWT_REFRESH_SECRET_FILE", &file));
    vars.push(("JWT_EXPIRATION", "15m"));
    let out = authura(
        &["--config", "authura.toml", "check-config"],
        &vars,
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PORT=8123"), "{stdout}");
    assert!(
        stdout.contains("JWT_EXPIRATION=15m"),
        "the environment wins over the file: {stdout}"
    );
    assert!(
        stdout.contains("ALLOWED_ORIGINS=app.example.com,https://x.example"),
        "{stdout}"
    );
    assert!(stdout.contains("JWT_SECRET=[redacted]"));
    assert!(stdout.contains(&format!("JWT_REFRESH_SECRET=[redacted, from {file}]")));
    for secret in GOOD
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.contains("secret"))
        .chain(["refresh-from-file"])
    {
        assert!(!stdout.contains(secret), "secret {secret} printed");
    }
    // A variable given both ways is refused, as is an unknown key in the file.
    vars.push((
        "JWT_REFRESH_SECRET",
        "refresh-secret-0123456789abcdefghijklmn",
    ));
    let out = authura(&["check-config"], &vars, dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("JWT_REFRESH_SECRET and JWT_REFRESH_SECRET_FILE are both set")
    );
    std::fs::write(dir.path().join("typo.toml"), "jwt_secert = \"x\"\n").unwrap();
    let out = authura(&["--config", "typo.toml", "check-config"], GOOD, dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting \"JWT_SECERT\""));
}

#[test]
fn dotenv_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "PORT=7001\nHOST=0.0.0.0\nCAPTCHA=\n",
    )
    .unwrap();
    let mut vars = GOOD.to_vec();
    vars.push(("PORT", "7002"));
    let stdout = check_config_ok(&vars, dir.path());
    assert!(
        stdout.contains("PORT=7002") && stdout.contains("HOST=0.0.0.0"),
        "{stdout}"
    );
}

#[test]
fn likely_typos_in_dotenv_are_warned_about_and_other_names_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "JWT_EXPIRATON=10m\nDATABASE_URL=postgres://app\nRATE_PER_MINUT=5\n",
    )
    .unwrap();
    let out = authura(&["check-config"], GOOD, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(r#"warning: .env: "JWT_EXPIRATON" is not a setting and is ignored; did you mean JWT_EXPIRATION?"#),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean RATE_PER_MINUTE?"), "{stderr}");
    // The app's own variables sharing the file are nobody's typo.
    assert!(!stderr.contains("DATABASE_URL"), "{stderr}");
    // The typo is not taken for the setting.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("JWT_EXPIRATION=5m"), "{stdout}");
}

#[test]
fn hash_password_prints_a_verifiable_argon2id_hash() {
    let dir = tempfile::tempdir().unwrap();
    let out = authura_with_stdin(&["hash-password"], &[], dir.path(), "Str0ng!pass\n");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = authura_core::PasswordHash::new(hash.trim());
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(authura_core::hash::verify_password("Str0ng!pass", &hash).valid);
    assert!(!authura_core::hash::verify_password("Str0ng!pass\n", &hash).valid);
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = authura(&["--version"], &[], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("authura "));
    let out = authura(&["--help"], &[], dir.path());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "check-config", "hash-password"] {
        assert!(help.contains(cmd), "{help}");
    }
    assert_eq!(
        authura(&["frobnicate"], &[], dir.path()).status.code(),
        Some(2)
    );
}

#[test]
fn migrate_creates_the_users_table_once() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = authura(&["migrate"], GOOD, dir.path());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("migrations applied"));
    }
    let db = std::fs::read(dir.path().join("authura.db")).unwrap();
    let text = String::from_utf8_lossy(&db);
    assert!(text.contains("CREATE TABLE") && text.contains("users_email_tenant_key"));
}

#[test]
fn migrate_needs_only_the_backend_variables() {
    let dir = tempfile::tempdir().unwrap();
    // No token secrets, no mail: `check-config` would refuse this, `migrate` does not need it.
    let vars = [("SQLITE_DB_PATH", "only-db.db")];
    assert_eq!(
        authura(&["check-config"], &vars, dir.path()).status.code(),
        Some(2)
    );
    let out = authura(&["migrate"], &vars, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("migrations applied"), "{stderr}");
    let db = std::fs::read(dir.path().join("only-db.db")).unwrap();
    assert!(String::from_utf8_lossy(&db).contains("users_email_tenant_key"));
    let out = authura(&["migrate", "status"], &vars, dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A `.env` typo is warned about here too.
    std::fs::write(dir.path().join(".env"), "SQLITE_DB_PAHT=typo.db\n").unwrap();
    let out = authura(&["migrate"], &vars, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("did you mean SQLITE_DB_PATH?"), "{stderr}");
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    // A problem with the backend's own variables is still refused, listed like check-config's.
    let out = authura(
        &["migrate"],
        &[("AUTH_BACKEND", "postgres"), ("POSTGRES_POOL_SIZE", "0")],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("POSTGRES_DSN is required"), "{stderr}");
    assert!(stderr.contains("POSTGRES_POOL_SIZE"), "{stderr}");
}

#[test]
fn flags_work_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--dev", "check-config"][..],
        &["check-config", "--dev"],
        &["--port", "8123", "check-config", "--dev"],
    ] {
        let out = authura(args, &[], dir.path());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("MAIL_HOST=dummy"), "{args:?}: {stdout}");
    }
    let out = authura(
        &["--port", "8123", "check-config", "--dev"],
        &[],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PORT=8123"));
    let out = authura(&["migrate", "--dev"], &[], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn migrate_status_then_migrate_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(authura_testkit::postgres::database());
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("AUTH_BACKEND", "postgres"),
        ("POSTGRES_DSN", db.url.as_str()),
    ]);
    let status = || {
        let out = authura(&["migrate", "status"], &vars, dir.path());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        status(),
        "0001_create_users  pending  (table users)\n\
         0002_unique_email_tenant  pending  (table users)\n\
         0003_tenant_id_index  pending  (table users)\n"
    );
    let out = authura(&["migrate"], &vars, dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let after = status();
    assert!(after.lines().all(|l| l.contains("  applied  ")), "{after}");
    drop(db);
}

#[test]
fn check_config_reports_the_hasura_backend_and_hides_its_admin_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hasura-admin");
    std::fs::write(&secret_file, "hasura-admin-from-file\n").unwrap();
    let file = secret_file.to_str().unwrap().to_owned();
    let mut vars = with(&[
        ("AUTH_BACKEND", "hasura"),
        ("HASURA_URL", "https://hasura.internal/v1/graphql"),
    ]);
    vars.push(("HASURA_GRAPHQL_ADMIN_SECRET_FILE", &file));
    let stdout = check_config_ok(&vars, dir.path());
    assert!(stdout.contains("AUTH_BACKEND=hasura"), "{stdout}");
    assert!(
        stdout.contains("HASURA_URL=https://hasura.internal/v1/graphql"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "HASURA_GRAPHQL_ADMIN_SECRET=[redacted, from {file}]"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("hasura-admin-from-file"), "{stdout}");
    // Without the secret, it is refused.
    let out = authura(
        &["check-config"],
        &with(&[
            ("AUTH_BACKEND", "hasura"),
            ("HASURA_URL", "http://hasura:8080"),
        ]),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("HASURA_GRAPHQL_ADMIN_SECRET is required with AUTH_BACKEND=hasura")
    );
}

#[test]
fn http_backend_credential_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let value_file = dir.path().join("http-credential");
    std::fs::write(&value_file, "Bearer from-file-0123456789\n").unwrap();
    let file = value_file.to_str().unwrap().to_owned();
    let mut vars = with(&[
        ("AUTH_BACKEND", "http"),
        ("HTTP_URL", "https://api.example.com/authura/users"),
        ("HTTP_AUTH_HEADER_KEY", "X-Api-Key"),
    ]);
    vars.push(("HTTP_AUTH_HEADER_VALUE_FILE", &file));
    let stdout = check_config_ok(&vars, dir.path());
    assert!(stdout.contains("AUTH_BACKEND=http"), "{stdout}");
    assert!(
        stdout.contains("HTTP_URL=https://api.example.com/authura/users"),
        "{stdout}"
    );
    assert!(
        stdout.contains("HTTP_AUTH_HEADER_KEY=X-Api-Key"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("HTTP_AUTH_HEADER_VALUE=[redacted, from {file}]")),
        "{stdout}"
    );
    assert!(!stdout.contains("from-file-0123"), "{stdout}");
}

/// Writes a key made with the documented `openssl genpkey` arguments into `dir`.
pub fn openssl_key(dir: &std::path::Path, name: &str, genpkey_args: &[&str]) -> String {
    let path = dir.join(name);
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(genpkey_args)
        .arg("-out")
        .arg(&path)
        .output()
        .expect("openssl must be installed (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.to_str().unwrap().to_owned()
}

pub const ED25519: &[&str] = &["-algorithm", "ed25519"];
pub const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
pub const RSA2048: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];

/// `JWT_ALGORITHM`, `JWT_PRIVATE_KEY(_FILE)` and `JWT_PREVIOUS_KEYS` through `check-config`:
/// each mistake is a problem naming its variable, all reported at once; a good key set is
/// accepted and never printed.
#[test]
fn asymmetric_keys_are_checked_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let ed = openssl_key(dir.path(), "ed.pem", ED25519);
    let ec = openssl_key(dir.path(), "ec.pem", P256);
    let refused = |vars: &[(&str, &str)], expected: &[&str]| {
        let out = authura(&["check-config"], vars, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {stderr}");
        for e in expected {
            assert!(stderr.contains(e), "{vars:?}: expected {e:?} in {stderr}");
        }
    };
    let mut vars: Vec<(&str, &str)> = GOOD.to_vec();
    vars.push(("JWT_ALGORITHM", "RS256"));
    vars.push(("JWT_PREVIOUS_KEYS", "too-short"));
    refused(
        &vars,
        &[
            "JWT_PRIVATE_KEY (or JWT_PRIVATE_KEY_FILE) is required with JWT_ALGORITHM=RS256",
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
            "JWT_SECRET is set, but JWT_ALGORITHM=RS256 signs access tokens with JWT_PRIVATE_KEY",
            "move it to JWT_PREVIOUS_KEYS",
            "JWT_PREVIOUS_KEYS: secret 1 is shorter than 32 bytes",
        ],
    );
    let without_secret: Vec<(&str, &str)> = good_without("JWT_SECRET");
    let mut vars = without_secret.clone();
    vars.extend([("JWT_ALGORITHM", "ES256"), ("JWT_PRIVATE_KEY_FILE", &ed)]);
    refused(
        &vars,
        &["JWT_PRIVATE_KEY is an Ed25519 key, but JWT_ALGORITHM=ES256 needs a P-256 EC key"],
    );
    let rsa = openssl_key(dir.path(), "rsa.pem", RSA2048);
    let mut vars = without_secret.clone();
    vars.extend([("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY_FILE", &rsa)]);
    refused(
        &vars,
        &[
            "JWT_PRIVATE_KEY is an RSA key, but JWT_ALGORITHM=EdDSA needs an Ed25519 key (or set JWT_ALGORITHM=RS256)",
        ],
    );
    let mut vars: Vec<(&str, &str)> = GOOD.to_vec();
    vars.push(("JWT_PRIVATE_KEY_FILE", &ed));
    refused(
        &vars,
        &["JWT_PRIVATE_KEY is set, but JWT_ALGORITHM is HS256"],
    );
    let mut vars = without_secret.clone();
    vars.extend([
        ("JWT_ALGORITHM", "EdDSA"),
        (
            "JWT_PRIVATE_KEY",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ),
    ]);
    refused(
        &vars,
        &["JWT_PRIVATE_KEY: the private key is not an RSA, P-256 EC or Ed25519 key"],
    );

    // A good set: EdDSA current, the EC key and an old HS256 secret as previous keys.
    let previous = format!(
        "{}\nold-access-secret-0123456789abcdefghijklmnop",
        std::fs::read_to_string(&ec).unwrap()
    );
    let mut vars = without_secret;
    vars.extend([
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", &ed),
        ("JWT_PREVIOUS_KEYS", &previous),
    ]);
    let stdout = check_config_ok(&vars, dir.path());
    assert!(stdout.contains("JWT_ALGORITHM=EdDSA"), "{stdout}");
    assert!(
        stdout.contains(&format!("JWT_PRIVATE_KEY=[redacted, from {ed}]")),
        "{stdout}"
    );
    assert!(stdout.contains("JWT_PREVIOUS_KEYS=[redacted]"), "{stdout}");
    assert!(
        !stdout.contains("BEGIN") && !stdout.contains("old-access-secret"),
        "{stdout}"
    );
}

#[test]
fn migrate_creates_the_sessions_table_only_with_sessions_on() {
    let dir = tempfile::tempdir().unwrap();
    let run = |db: &str, sessions: bool| {
        let mut vars = vec![("SQLITE_DB_PATH", db)];
        if sessions {
            vars.push(("SESSIONS_ENABLED", "true"));
        }
        let out = authura(&["migrate"], &vars, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let db = std::fs::read(dir.path().join(db)).unwrap();
        (
            stderr,
            String::from_utf8_lossy(&db).contains("authura_sessions"),
        )
    };
    let (stderr, has_sessions) = run("stateless.db", false);
    assert!(!has_sessions, "no state table without a stateful feature");
    assert!(stderr.contains("no authura_* table created"), "{stderr}");
    let (stderr, has_sessions) = run("sessions.db", true);
    assert!(
        has_sessions,
        "SESSIONS_ENABLED=true creates authura_sessions"
    );
    assert!(stderr.contains("authura_* tables migrated"), "{stderr}");
    // Turned on later, over an existing database: created then, beside the users table.
    let (_, has_sessions) = run("stateless.db", true);
    assert!(has_sessions);
}

/// `authura openapi` prints, without any configuration, exactly the document a running server
/// serves at `/openapi.json` (what `cargo xtask docs` puts into the operator guide).
#[tokio::test]
async fn openapi_prints_what_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let out = authura(&["openapi"], &[], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let proc = crate::run::spawn(&["serve"], GOOD, dir.path());
    let served: serde_json::Value = reqwest::get(proc.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(printed, served);
    assert!(printed["paths"]["/token"].is_object());
}
