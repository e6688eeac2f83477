//! The README's curl walk-through, run as written against `authura serve --dev`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_authura");

/// The first ```sh block after the walk-through marker.
fn walkthrough() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let after = &readme[readme
        .find("<!-- walkthrough")
        .expect("the README marks its walk-through")..];
    let start = after.find("```sh\n").unwrap() + 6;
    let end = after[start..].find("```").unwrap();
    after[start..start + end].to_owned()
}

#[test]
fn the_readme_walkthrough_works_as_pasted() {
    assert!(
        Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "curl is needed"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // As the README says: `serve --dev 2>&1 | tee authura.log`.
    let log = std::fs::File::create(dir.path().join("authura.log")).unwrap();
    let mut server = Command::new(BIN)
        .args(["serve", "--dev", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let script = walkthrough().replace("localhost:9000", &format!("localhost:{port}"));
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The last answer is `/user`'s.
    let at = stdout
        .rfind(r#"{"user":"#)
        .unwrap_or_else(|| panic!("no /user answer in {stdout}"));
    let user: serde_json::Value = serde_json::from_str(stdout[at..].trim()).unwrap();
    assert_eq!(
        (
            user["user"]["email"].as_str(),
            user["user"]["role"].as_str()
        ),
        (Some("ann@example.com"), Some("user"))
    );
    assert!(stdout.starts_with("{}"), "signup answers {{}}: {stdout}");
}
