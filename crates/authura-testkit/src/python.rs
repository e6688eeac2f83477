//! The Python interpreter with the independent libraries some tests check Authura against:
//! PyJWT with cryptography (tokens through the published JWKS) and the Prometheus client's parser
//! (the `/metrics` text format).

use std::process::Command;

/// The variable `cargo xtask test` sets to the interpreter it installed those libraries for.
pub const PYTHON_VAR: &str = "AUTHURA_TEST_PYTHON";

/// The modules the tests import.
pub const MODULES: &str = "jwt, cryptography, prometheus_client";

/// `AUTHURA_TEST_PYTHON`, else the first of `python3` and Debian's `/usr/bin/python3` that
/// imports [`MODULES`]. Panics, naming the packages, when there is none: a missing library is a
/// failure, never a skip.
pub fn python() -> String {
    if let Ok(p) = std::env::var(PYTHON_VAR)
        && !p.is_empty()
    {
        return p;
    }
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", &format!("import {MODULES}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "Python with PyJWT, cryptography and prometheus_client is required: run `cargo \
                 xtask test`, or apt-get install python3-jwt python3-cryptography \
                 python3-prometheus-client"
            )
        })
        .to_owned()
}

/// Runs `script` (with `args`, and `stdin` on its standard input) under [`python`] and reads
/// its standard output as JSON; `Err` holds its standard error when it fails.
///
/// # Panics
/// When Python cannot be started or its output is not the JSON `T` expects.
pub fn run_json<T: serde::de::DeserializeOwned>(
    script: &str,
    args: &[&str],
    stdin: &[u8],
) -> Result<T, String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(python())
        .args(["-c", script])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start Python: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin)
            .unwrap_or_else(|e| panic!("cannot write to Python: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("Python did not finish: {e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("Python's output is not the expected JSON: {e}")))
}
