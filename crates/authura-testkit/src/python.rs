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

/// Whitespace as Go's `strings.TrimSpace` (Authaus) sees it: Unicode's `White_Space`. Python's
/// own `str.strip()` also strips U+001C–U+001F, which Go keeps.
const GO_SPACE: &str = r"'\t\n\v\f\r \x85\xa0\u1680' + ''.join(map(chr, range(0x2000, 0x200b))) + '\u2028\u2029\u202f\u205f\u3000'";

/// Authaus password hashes of `passwords`, made as Authaus makes them by an implementation
/// independent of Authura's (Python's `hashlib.scrypt`): the password trimmed, a random 32-byte
/// salt, scrypt N=256 r=8 p=1 of 32 bytes, behind a version byte 1, in padded standard base64.
///
/// # Panics
/// When Python fails.
pub fn authaus_hashes(passwords: &[&str]) -> Vec<String> {
    let script = format!(
        "import base64, hashlib, json, os, sys\n\
         space = {GO_SPACE}\n\
         out = []\n\
         for pw in json.load(sys.stdin):\n\
         \x20   salt = os.urandom(32)\n\
         \x20   key = hashlib.scrypt(pw.strip(space).encode(), salt=salt, n=256, r=8, p=1, dklen=32)\n\
         \x20   out.append(base64.b64encode(bytes([1]) + salt + key).decode())\n\
         print(json.dumps(out))\n"
    );
    let input = serde_json::to_vec(passwords).unwrap_or_else(|e| panic!("{e}"));
    run_json(&script, &[], &input).unwrap_or_else(|e| panic!("Python's hashlib.scrypt: {e}"))
}
