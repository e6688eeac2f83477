//! A Rust developer's view of the library crates: a program of its own (outside this
//! workspace) that depends on `authura-core` and `authura-backend-sqlite` only, built and run.
//! Its dependency tree must hold no web framework: embedding needs no actix.

use std::path::Path;
use std::process::Command;

const MAIN: &str = r#"
use std::sync::Arc;
use std::time::Duration;

use authura_backend_sqlite::SqliteStore;
use authura_core::clock::SystemClock;
use authura_core::flows::{self, Context, FlowSettings};
use authura_core::hash::InlineHasher;
use authura_core::hook::NoHook;
use authura_core::keys::AccessKey;
use authura_core::lockout::FailureLimiter;
use authura_core::policy::PasswordPolicy;
use authura_core::redirect::RedirectPolicy;
use authura_core::token::{TokenSettings, Tokens};
use authura_core::{Email, Role, Secret};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: embed DB")?;
    let form = url::Url::parse("https://app.example.com/verify")?;
    let ctx = Context {
        store: Arc::new(SqliteStore::open(&path, 2).await?),
        hasher: Arc::new(InlineHasher),
        hook: Arc::new(NoHook),
        tokens: Tokens::new(TokenSettings {
            access_key: AccessKey::Hs256(Secret::new("an-access-token-secret-of-32-bytes!")),
            previous_keys: Vec::new(),
            refresh_secret: Secret::new("a-refresh-token-secret-of-32-bytes"),
            verify_secret: Secret::new("a-mail-link-token-secret-of-32-bytes"),
            access_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(3600),
            verify_ttl: Duration::from_secs(3600),
            issuer: None,
            audience: None,
            extensions: Vec::new(),
        })?,
        clock: Arc::new(SystemClock),
        settings: FlowSettings {
            admin_role: Role::parse("admin")?,
            default_role: Role::parse("user")?,
            signup_disabled: false,
            impersonation_enabled: false,
            captcha: false,
            policy: PasswordPolicy::seed(),
            verify_redirect_url: form.clone(),
            redirects: RedirectPolicy::new(vec![form]),
        },
        login_failures: Arc::new(FailureLimiter::new(10, Duration::from_secs(900))),
        sessions: None,
        policies: flows::Policies::off(),
    };
    let email = Email::parse("ann@example.com")?;
    let ann = flows::create_verified_user(&ctx, None, &email, Secret::new("Str0ng!pass"), &Role::parse("user")?).await?;
    let signed_in = flows::login(&ctx, None, &email, Secret::new("Str0ng!pass")).await?;
    let claims = ctx.tokens.verify_bearer(&signed_in.tokens.access_token, ctx.clock.now())?;
    assert_eq!(claims.sub, ann.id.to_string());
    println!("signed in as {}", claims.sub);
    Ok(())
}
"#;

#[test]
fn a_program_embeds_core_and_the_sqlite_store_without_a_web_framework() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("embed");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            r#"[package]
name = "embed"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
authura-core = {{ path = "{root}/crates/authura-core" }}
authura-backend-sqlite = {{ path = "{root}/crates/authura-backend-sqlite" }}
tokio = {{ version = "1", features = ["rt", "macros"] }}
url = "2"

[workspace]
"#,
            root = root.display()
        ),
    )
    .unwrap();
    std::fs::write(project.join("src/main.rs"), MAIN).unwrap();
    // The workspace's resolved versions, so nothing new is fetched and compiled artefacts are
    // shared with the workspace's own target directory.
    std::fs::copy(root.join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("embed");
    let cargo = || {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&project).env("CARGO_TARGET_DIR", &target);
        cmd
    };
    let tree = cargo()
        .args(["tree", "--edges", "normal", "--prefix", "none"])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("authura-backend-sqlite"), "{tree}");
    for framework in [
        "actix",
        "hyper ",
        "axum",
        "reqwest",
        "lettre",
        "authura-server",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(framework)),
            "embedding pulls in {framework}"
        );
    }
    let db = dir.path().join("users.db");
    let out = cargo()
        .args(["run", "--quiet", "--"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the embedding program failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("signed in as "));
}
