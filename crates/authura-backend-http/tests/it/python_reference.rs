//! The reference implementation in `docs/backends/http.md`, run as written: its Python block is
//! extracted from the document and started with `python3`, and the conformance suite runs
//! against it (string ids, where the Rust reference server has numeric ones).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authura_core::UserStore;

/// The document's ```python block.
fn script() -> String {
    let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/backends/http.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let start = text.find("```python\n").expect("a python block") + "```python\n".len();
    let len = text[start..].find("\n```").expect("the block's end");
    text[start..start + len + 1].to_owned()
}

/// The running script; killed on drop.
pub struct PythonReference {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for PythonReference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CREDENTIAL: &str = "Bearer python-reference-0123456789";

impl PythonReference {
    pub fn start() -> PythonReference {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authura_users.py");
        std::fs::write(&path, script()).unwrap();
        let mut child = Command::new("python3")
            .arg(&path)
            .arg("0")
            .arg(dir.path().join("users.db"))
            .env("AUTH_HEADER_VALUE", CREDENTIAL)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the script printed {line:?}, not its port"));
        PythonReference {
            child,
            url: format!("http://127.0.0.1:{port}/authura/users"),
            _dir: dir,
        }
    }

    pub fn store(&self) -> Arc<dyn UserStore> {
        crate::store_with(
            &self.url,
            "Authorization",
            Some(CREDENTIAL),
            Duration::from_secs(10),
        )
    }
}

authura_testkit::conformance_tests!(async {
    let reference = PythonReference::start();
    (reference.store(), reference)
});

#[tokio::test]
async fn the_script_refuses_a_wrong_credential_and_ids_are_strings() {
    let reference = PythonReference::start();
    let wrong = crate::store_with(
        &reference.url,
        "Authorization",
        Some("Bearer nope"),
        Duration::from_secs(10),
    );
    let refused = wrong.ping().await;
    assert!(
        matches!(&refused, Err(authura_core::StoreError::Backend(m)) if m.contains("401")),
        "{refused:?}"
    );
    let store = reference.store();
    let user = store
        .create(authura_core::NewUser {
            email: authura_core::Email::parse("py@example.com").unwrap(),
            role: authura_core::Role::parse("user").unwrap(),
            tenant: None,
            password_hash: authura_core::PasswordHash::new("$argon2id$x"),
            verified_at: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(user.id, authura_core::UserId::Text(_)),
        "{:?}",
        user.id
    );
}
