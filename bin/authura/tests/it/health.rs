//! `authura healthcheck`, against the binary serving: alive, ready, not ready, not there.

use std::process::Command;

use crate::cli::GOOD;
use crate::run::spawn;

const BIN: &str = env!("CARGO_BIN_EXE_authura");

/// Runs `authura healthcheck` with only `vars` set: (exit code, stdout, stderr).
fn healthcheck(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("healthcheck")
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn alive_and_ready_answer_0() {
    let dir = tempfile::tempdir().unwrap();
    let proc = spawn(&["serve"], GOOD, dir.path());
    let port = proc.port.to_string();
    // PORT from the environment, as in the container; HOST=0.0.0.0 means this machine.
    let vars = [("HOST", "0.0.0.0"), ("PORT", port.as_str())];
    assert_eq!(
        healthcheck(&[], &vars),
        (Some(0), "/healthz: 200\n".to_owned(), String::new())
    );
    assert_eq!(healthcheck(&["--ready"], &vars).0, Some(0));
    // Flags win over the environment.
    let (code, out, _) = healthcheck(&["--host", "127.0.0.1", "--port", &port], &[]);
    assert_eq!((code, out.as_str()), (Some(0), "/healthz: 200\n"));
}

#[test]
fn alive_but_not_ready_when_the_backend_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("AUTH_BACKEND", "http"),
        // Nothing listens on the discard port.
        ("HTTP_URL", "http://127.0.0.1:9/users"),
        ("HTTP_TIMEOUT", "1s"),
    ]);
    let proc = spawn(&["serve"], &vars, dir.path());
    let port = proc.port.to_string();
    assert_eq!(healthcheck(&["--port", &port], &[]).0, Some(0));
    let (code, _, err) = healthcheck(&["--ready", "--port", &port], &[]);
    assert_eq!((code, err.as_str()), (Some(1), "/readyz: 503\n"));
}

#[test]
fn nothing_listening_answers_1_and_a_bad_port_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (code, _, err) = healthcheck(&["--host", "127.0.0.1", "--port", &port], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot connect to 127.0.0.1"), "{err}");
    let (code, _, err) = healthcheck(&[], &[("PORT", "nine thousand")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("PORT"), "{err}");
}

#[test]
fn a_service_that_never_answers_fails_within_the_bound() {
    // Listening (the kernel completes the handshake) but never reading or answering: a hung
    // process.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // It gives up (after its 5 s bound) rather than waiting as long as the connection lasts.
    let (code, _, err) = healthcheck(&["--host", "127.0.0.1", "--port", &port], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no answer from 127.0.0.1"), "{err}");
    drop(listener);
}
