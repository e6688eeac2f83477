//! Times `find_by_id` and `find_by_email` on a temp database: `cargo run --release -p
//! authura-backend-sqlite --example read_rate`. A read should cost microseconds; if SQLite's
//! parser shows up in a profile, prepared statements are not being reused.

use std::time::Instant;

use authura_backend_sqlite::SqliteStore;
use authura_core::{Email, NewUser, PasswordHash, Role, UserStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("authura-read-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(dir.join("a.db"), 4).await?;
    let email = Email::parse("bench@example.com")?;
    let user = store
        .create(NewUser {
            email: email.clone(),
            role: Role::parse("user")?,
            tenant: None,
            password_hash: PasswordHash::new("x"),
            verified_at: None,
        })
        .await?;
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        store.find_by_id(None, &user.id).await?;
    }
    println!(
        "find_by_id: {:.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let t = Instant::now();
    for _ in 0..n {
        store.find_by_email(None, &email).await?;
    }
    println!(
        "find_by_email: {:.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
