//! Schema-driven fuzzing: schemathesis reads the live binary's `/openapi.json` and sends what
//! the document allows and what it does not, checking every answer against it: no 5xx, no
//! status, content type, header or body the document does not declare, invalid input refused,
//! Bearer routes refusing a missing or broken token, undeclared methods answered 405 with
//! `Allow`. A fixed seed and number of examples keep it short and repeatable in the suite;
//! `cargo xtask fuzz-api --minutes N` runs it for N minutes instead (`AUTHURA_FUZZ_MINUTES`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::GOOD;
use crate::run::spawn;

/// The variable `cargo xtask fuzz-api` sets: fuzz for this many minutes instead of the suite's
/// fixed number of examples.
const MINUTES_VAR: &str = "AUTHURA_FUZZ_MINUTES";

/// schemathesis's checks that hold for Authura whatever the data: not `positive_data_acceptance`
/// (well-formed data still meets wrong passwords and unknown tokens) and not the stateful ones
/// (the document declares no links between operations).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,negative_data_rejection,\
    ignored_auth,unsupported_method,allow_header_conformance";

/// Examples per operation in the suite's run, and its seed.
const EXAMPLES: u32 = 100;
const SEED: &str = "20261205";

const ADMIN: &str = "root@example.com";
const ADMIN_PW: &str = "R00t!passw0rd";

#[tokio::test]
async fn schemathesis_finds_nothing_the_document_does_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("authura.db");
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("SQLITE_DB_PATH", db.to_str().unwrap()),
        ("SQLITE_INITIAL_USER", ADMIN),
        ("SQLITE_INITIAL_USER_PASSWORD", ADMIN_PW),
        // Every route reachable: no 429s from the fuzzer's own pace, impersonation, /metrics
        // and the session routes on, and the admin's token valid for the whole run.
        ("RATE_PER_MINUTE", "0"),
        ("IMPERSONATION_ENABLED", "true"),
        ("METRICS_ENABLED", "true"),
        ("SESSIONS_ENABLED", "true"),
        ("JWT_EXPIRATION", "24h"),
    ]);
    let proc = spawn(&["serve"], &vars, dir.path());
    // Bearer routes are fuzzed signed in as the admin, so /user and /invite answer with their
    // success shapes too, and `ignored_auth` checks that a missing or altered token is refused.
    let tokens: Value = reqwest::Client::new()
        .post(proc.url("/token"))
        .json(&json!({"email": ADMIN, "password": ADMIN_PW}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    let python = authura_testkit::python::python();
    let has_schemathesis = std::process::Command::new(&python)
        .args(["-c", "import schemathesis"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_schemathesis,
        "schemathesis is required: run `cargo xtask test`, or `{python} -m pip install \
         'schemathesis>=4.32,<5'`"
    );
    let minutes: Option<u64> = std::env::var(MINUTES_VAR).ok().map(|m| {
        m.parse()
            .expect("AUTHURA_FUZZ_MINUTES is a number of minutes")
    });
    let budget = match minutes {
        // Fuzzing repeats until the time is spent.
        Some(m) => vec!["--max-time".to_owned(), (m * 60).to_string()],
        None => vec!["--max-examples".to_owned(), EXAMPLES.to_string()],
    };
    // A hard stop well past the budget: a hung run fails rather than blocking the suite.
    let limit = Duration::from_secs(minutes.map_or(600, |m| m * 60 + 300));
    let output = dir.path().join("schemathesis.txt");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&python)
        .args(["-m", "schemathesis.cli", "run", &proc.url("/openapi.json")])
        .args(["--checks", CHECKS, "--seed", SEED, "--workers", "2"])
        .args([
            "--request-timeout",
            "10",
            "--suppress-health-check",
            "too_slow",
        ])
        .args(["--header", &format!("Authorization: Bearer {access}")])
        .args(&budget)
        // Its example database and reports stay in the temporary directory.
        .current_dir(dir.path())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(limit, child.wait())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran for more than {limit:?}"))
        .unwrap();
    let report = std::fs::read_to_string(&output).unwrap();
    assert!(
        status.success(),
        "schemathesis found answers the OpenAPI document does not allow:\n{report}"
    );
    // The figures docs/api.md records for a long run.
    let cases = report
        .lines()
        .skip_while(|l| !l.contains("Test cases:"))
        .nth(1)
        .unwrap_or("")
        .trim();
    assert!(cases.contains("generated"), "no summary in:\n{report}");
    eprintln!(
        "schemathesis: {cases} in {:.0} s (seed {SEED}, {})",
        started.elapsed().as_secs_f64(),
        budget.join(" ")
    );
}
