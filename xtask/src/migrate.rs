//! `cargo xtask migrate`: apply (`migrate`) or list (`migrate status`) the configured backend's
//! migrations through the `authura` binary and your `.env`, or add a new one to every dialect
//! (`migrate new NAME`; `migrate new --state NAME` for the state tables' migrations).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Where each dialect's migrations live.
const PG_DIR: &str = "crates/authura-backend-pg/migrations";
const SQLITE_DIR: &str = "crates/authura-backend-sqlite/migrations";

/// Where each dialect's state-table migrations live (SPEC §13).
const PG_STATE_DIR: &str = "crates/authura-backend-pg/state_migrations";
const SQLITE_STATE_DIR: &str = "crates/authura-backend-sqlite/state_migrations";

/// One set of migrations: its directories and what a new PostgreSQL file says it may use.
struct Set {
    pg: &'static str,
    sqlite: &'static str,
    placeholders: &'static str,
}

const USERS: Set = Set {
    pg: PG_DIR,
    sqlite: SQLITE_DIR,
    placeholders: "{{table}} is the quoted users table (POSTGRES_USERS_TABLE), {{table_name}} its \
                   bare name.\n-- Runs once per users table",
};

const STATE: Set = Set {
    pg: PG_STATE_DIR,
    sqlite: SQLITE_STATE_DIR,
    placeholders: "{{sessions}} is the quoted, schema-qualified sessions table.\n-- Runs once per \
                   database, only when a stateful feature is on",
};

/// Runs `cargo xtask migrate ARGS`.
pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        None => {
            crate::run(Command::new("cargo").args(["run", "-q", "-p", "authura", "--", "migrate"]))
        }
        Some("status") => crate::run(
            Command::new("cargo").args(["run", "-q", "-p", "authura", "--", "migrate", "status"]),
        ),
        Some("new") => match (args.get(1).map(String::as_str), args.get(2)) {
            (Some("--state"), Some(name)) => new_in(Path::new("."), name, &STATE),
            (Some(name), None) if name != "--state" => new(Path::new("."), name),
            _ => bail!("usage: cargo xtask migrate new [--state] NAME"),
        },
        Some(other) => bail!("unknown migrate action {other:?} (expected status or new NAME)"),
    }
}

/// Adds `NNNN_NAME.sql` (the next number) for PostgreSQL and a dated diesel migration
/// directory for SQLite under `root`, each with a comment saying what goes in it.
fn new(root: &Path, name: &str) -> Result<()> {
    new_in(root, name, &USERS)
}

/// [`new`] for one set of migrations.
fn new_in(root: &Path, name: &str, set: &Set) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("a migration name is lower-case letters, digits and _ (got {name:?})");
    }
    let pg_dir = root.join(set.pg);
    let next = fs::read_dir(&pg_dir)
        .with_context(|| format!("reading {}", pg_dir.display()))?
        .filter_map(|e| {
            let file = e.ok()?.file_name().into_string().ok()?;
            file.split_once('_')?.0.parse::<u32>().ok()
        })
        .max()
        .unwrap_or(0)
        + 1;
    let pg_file = pg_dir.join(format!("{next:04}_{name}.sql"));
    fs::write(
        &pg_file,
        format!(
            "-- {name}. {}, inside one transaction with the other pending migrations.\n",
            set.placeholders
        ),
    )?;
    let stamp = Command::new("date")
        .args(["-u", "+%Y-%m-%d-%H%M%S"])
        .output()
        .context("running date")?;
    let stamp = String::from_utf8_lossy(&stamp.stdout).trim().to_owned();
    let sqlite_dir = root.join(set.sqlite).join(format!("{stamp}_{name}"));
    fs::create_dir_all(&sqlite_dir)?;
    fs::write(
        sqlite_dir.join("up.sql"),
        format!("-- {name}: SQLite's dialect.\n"),
    )?;
    fs::write(sqlite_dir.join("down.sql"), format!("-- Reverts {name}.\n"))?;
    eprintln!(
        "xtask: created {} and {}/{{up,down}}.sql",
        pg_file.display(),
        sqlite_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_numbers_after_the_last_and_dates_sqlite() {
        let root = tempfile_dir("users");
        fs::create_dir_all(root.join(PG_DIR)).unwrap();
        fs::create_dir_all(root.join(SQLITE_DIR)).unwrap();
        fs::write(root.join(PG_DIR).join("0001_create_users.sql"), "").unwrap();
        fs::write(root.join(PG_DIR).join("0007_later.sql"), "").unwrap();
        new(&root, "add_names").unwrap();
        assert!(root.join(PG_DIR).join("0008_add_names.sql").is_file());
        let dated: Vec<_> = fs::read_dir(root.join(SQLITE_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(dated.len(), 1);
        assert!(dated[0].ends_with("_add_names"), "{dated:?}");
        assert!(new(&root, "Bad Name").is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn new_state_migrations_go_to_the_state_directories() {
        let root = tempfile_dir("state");
        for dir in [PG_DIR, SQLITE_DIR, PG_STATE_DIR, SQLITE_STATE_DIR] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        fs::write(root.join(PG_DIR).join("0002_users_side.sql"), "").unwrap();
        fs::write(root.join(PG_STATE_DIR).join("0001_create_sessions.sql"), "").unwrap();
        new_in(&root, "add_devices", &STATE).unwrap();
        let pg = root.join(PG_STATE_DIR).join("0002_add_devices.sql");
        assert!(fs::read_to_string(pg).unwrap().contains("{{sessions}}"));
        assert_eq!(
            fs::read_dir(root.join(SQLITE_STATE_DIR)).unwrap().count(),
            1
        );
        assert_eq!(fs::read_dir(root.join(PG_DIR)).unwrap().count(), 1);
        assert_eq!(fs::read_dir(root.join(SQLITE_DIR)).unwrap().count(), 0);
        fs::remove_dir_all(&root).unwrap();
    }

    /// A fresh directory of this test's own: the tests run at once, in one process, so the
    /// name is the test's too (removing a shared one removed the other test's files).
    fn tempfile_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-migrate-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }
}
