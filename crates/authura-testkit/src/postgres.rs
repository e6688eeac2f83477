//! Throwaway PostgreSQL for tests: a fresh database per test on a shared cluster, and private
//! clusters for tests that stop the server or need TLS.
//!
//! The shared cluster is the one `cargo xtask test` starts, named by `AUTHURA_TEST_PG_URL`
//! (a superuser URL with trust authentication). When that variable is unset (plain
//! `cargo test -p authura-backend-pg`), the first [`database`] call starts a cluster for this
//! test process from the system's `initdb`/`pg_ctl` (Debian package `postgresql`), stopped and
//! deleted when the process exits. Under `AUTHURA_TEST_SERVICES=required` (what `cargo xtask
//! test` sets) a missing variable is an error instead. Either way a test that needs PostgreSQL
//! fails, loudly, when there is none: it never passes without it.
//!
//! As root, the server runs as the `postgres` user through `runuser` (PostgreSQL refuses to run
//! as root), with its directory under the target directory chowned to it.

// Test support: a failed expectation is a test failure, reported by the panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;

pub use crate::cluster::Cluster;
use crate::cluster::{Watched, chown_to_postgres, clusters_dir};

/// The variable naming the shared cluster (`postgres://postgres@127.0.0.1:PORT/postgres`).
pub const URL_VAR: &str = "AUTHURA_TEST_PG_URL";

/// A fresh, empty database on the shared cluster. Panics, naming what is missing, when there
/// is no cluster and none can be started.
pub async fn database() -> Database {
    Database::create(&shared_url()).await
}

/// One database, dropped (connections and all) when this value is dropped.
#[derive(Debug)]
pub struct Database {
    /// A superuser URL for this database, for the store under test.
    pub url: String,
    name: String,
    server_url: String,
}

impl Database {
    /// Creates a database with a unique name on the server at `server_url` (a superuser URL).
    pub async fn create(server_url: &str) -> Database {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "authura_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // FILE_COPY: with fsync off its checkpoints are free, and it is several times faster
        // than the default WAL_LOG strategy for a small template.
        execute_on(
            server_url,
            &format!("CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY"),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database on {server_url}: {e:#}"));
        Database {
            url: with_database(server_url, &name),
            name,
            server_url: server_url.to_owned(),
        }
    }

    /// Runs SQL statements (no results) in this database.
    pub async fn execute(&self, sql: &str) {
        execute_on(&self.url, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:#}"));
    }

    /// Runs a query whose first column of its one row is a number (`SELECT count(*) …`).
    pub async fn number(&self, sql: &str) -> i64 {
        let client = connect(&self.url).await.unwrap();
        let row = client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.try_get::<_, i64>(0)
            .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a query and returns every row's columns as text (NULL as `None`); cast non-text
    /// columns in the query (`id::text`).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let client = connect(&self.url).await.unwrap();
        client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.get::<_, Option<String>>(i))
                    .collect()
            })
            .collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Best effort, on a thread with its own runtime: Drop cannot await, and the test's
        // runtime may be single-threaded or shutting down.
        let server = self.server_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = runtime.block_on(execute_on(&server, &sql));
        });
        let _ = dropper.join();
    }
}

/// The shared cluster's superuser URL: `AUTHURA_TEST_PG_URL`, or a cluster started for this
/// process (see the module docs).
pub fn shared_url() -> String {
    if let Ok(url) = std::env::var(URL_VAR)
        && !url.is_empty()
    {
        return url;
    }
    if std::env::var("AUTHURA_TEST_SERVICES").as_deref() == Ok("required") {
        panic!(
            "{URL_VAR} is not set, and AUTHURA_TEST_SERVICES=required: run the suite with \
             `cargo xtask test`, which starts PostgreSQL"
        );
    }
    static OWN: OnceLock<Result<String, String>> = OnceLock::new();
    OWN.get_or_init(|| start_process_cluster().map_err(|e| format!("{e:#}")))
        .clone()
        .unwrap_or_else(|e| panic!("no PostgreSQL for the tests: {e}"))
}

impl Cluster {
    /// As [`Cluster::start`], with `ssl=on` and a certificate for `localhost` and `127.0.0.1`
    /// signed by a fresh CA; returns the CA's PEM (what `EXTRA_CA_FILE` would hold).
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub fn start_with_tls() -> anyhow::Result<(Cluster, String)> {
        let mut cluster = Cluster::init_in(&clusters_dir(), Vec::new())?;
        let certs = crate::tls::make_certificates("authura test postgres ca")?;
        let cert = cluster.dir.join("server.crt");
        let key = cluster.dir.join("server.key");
        fs::write(&cert, &certs.chain_pem)?;
        fs::write(&key, &certs.key_pem)?;
        set_mode(&key, 0o600)?;
        chown_to_postgres(&cert)?;
        chown_to_postgres(&key)?;
        // TLS only over TCP: a client that does not use it is refused.
        let hba = cluster.dir.join("data").join("pg_hba.conf");
        fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )?;
        cluster.settings = vec![
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", cert.display()),
            format!("ssl_key_file={}", key.display()),
        ];
        cluster.start_server()?;
        Ok((cluster, certs.ca_pem))
    }
}

/// Starts the per-process shared cluster; the watchdog stops and deletes it when this process
/// exits (the [`Watched`] is kept for the process's lifetime).
fn start_process_cluster() -> anyhow::Result<String> {
    static WATCHED: Mutex<Option<Watched>> = Mutex::new(None);
    let watched = crate::cluster::start_watched(&clusters_dir())?;
    let url = watched.url().to_owned();
    *WATCHED.lock().unwrap() = Some(watched);
    Ok(url)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match base.rfind('/') {
        Some(i) if i > base.find("//").map_or(0, |j| j + 1) => &base[..i],
        _ => base,
    };
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    )
    .await
    .context("timed out connecting")??;
    tokio::spawn(connection);
    Ok(client)
}

async fn execute_on(url: &str, sql: &str) -> anyhow::Result<()> {
    connect(url).await?.batch_execute(sql).await?;
    Ok(())
}

/// The PEM of a fresh CA that signed nothing a test server uses (to check that a certificate
/// is refused under the wrong roots).
///
/// # Errors
/// When rcgen fails.
pub fn unrelated_ca_pem() -> anyhow::Result<String> {
    Ok(crate::tls::make_certificates("authura test postgres ca")?.ca_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_replace_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5/t1"
        );
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5", "t1"),
            "postgres://u@h:5/t1"
        );
    }
}
