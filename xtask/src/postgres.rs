//! The throwaway PostgreSQL cluster `cargo xtask test` runs the suite against (and `bench`
//! measures with): the testkit's `cluster` module (the system's `initdb`/`pg_ctl`,
//! Debian's `postgresql` installed when missing and running as root), under
//! `target/authura-pg/`. Its superuser URL goes to the tests in `AUTHURA_TEST_PG_URL`; the testkit
//! gives each test its own database on it. It is stopped and deleted when the run ends, also
//! when a test fails, xtask returns an error or is killed (the testkit's watchdog).

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::services;
use cluster::{Watched, binaries, start_watched};

/// The testkit's cluster module, compiled into xtask from its source: one way to start a test
/// PostgreSQL, without making the test support crate a dependency of xtask (test support is never
/// a normal dependency; see the tidy invariants). It uses only `std`, `anyhow` and `tempfile`.
#[path = "../../crates/authura-testkit/src/cluster.rs"]
#[allow(dead_code)] // The testkit's tests use more of it than xtask does.
mod cluster;

/// The variable the tests read the cluster's URL from (the testkit's `URL_VAR`).
pub const URL_VAR: &str = "AUTHURA_TEST_PG_URL";

/// Makes `initdb` and `pg_ctl` available: installs `postgresql` when running as root, else
/// fails naming the package.
pub fn ensure_installed() -> Result<()> {
    if binaries().is_ok() {
        return Ok(());
    }
    services::install_debian(&["postgresql"])?;
    binaries()
        .map(drop)
        .context("initdb and pg_ctl are still missing after installing postgresql")
}

/// Initialises and starts a cluster under `target/authura-pg/`; dropping it stops it.
pub fn start() -> Result<Watched> {
    ensure_installed()?;
    let root = Path::new("target").join("authura-pg");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let started = std::time::Instant::now();
    let cluster = start_watched(&fs::canonicalize(&root)?)?;
    eprintln!(
        "xtask: PostgreSQL started at {} in {:.1}s",
        cluster.url(),
        started.elapsed().as_secs_f64()
    );
    Ok(cluster)
}
