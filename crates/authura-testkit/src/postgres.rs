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
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};

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

/// A cluster of this test's own, stopped and deleted on drop. For tests that stop and start
/// the server, or need it to speak TLS.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Extra `-c name=value` settings (TLS).
    settings: Vec<String>,
}

impl Cluster {
    /// Initialises and starts a cluster on a free port.
    ///
    /// # Errors
    /// When the PostgreSQL binaries are missing (the message names the package) or the server
    /// does not start (the message includes its log).
    pub fn start() -> anyhow::Result<Cluster> {
        let cluster = Cluster::init(Vec::new())?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// As [`Cluster::start`], with `ssl=on` and a certificate for `localhost` and `127.0.0.1`
    /// signed by a fresh CA; returns the CA's PEM (what `EXTRA_CA_FILE` would hold).
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub fn start_with_tls() -> anyhow::Result<(Cluster, String)> {
        let mut cluster = Cluster::init(Vec::new())?;
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

    /// The superuser URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub fn stop(&self) -> anyhow::Result<()> {
        run(&mut self.pg_ctl(&["stop", "-m", "immediate", "-w"]))
    }

    /// Freezes the server (SIGSTOP to the postmaster and every backend): connections stay
    /// open and the kernel still accepts bytes and new connections, but nothing answers, as
    /// with a hung host or a network that silently drops traffic.
    ///
    /// # Errors
    /// When the server's processes cannot be found or signalled.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Lets a [`Cluster::pause`]d server run again.
    ///
    /// # Errors
    /// As [`Cluster::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let text = fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        let postmaster = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .with_context(|| format!("no pid in {}", pid_file.display()))?;
        let mut pids = vec![postmaster.to_string()];
        for entry in fs::read_dir("/proc")?.flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: the command may hold spaces and parentheses.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if parent == Some(postmaster) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        run(Command::new("kill").arg(format!("-{signal}")).args(&pids))
    }

    /// Starts the server again on the same port and data.
    ///
    /// # Errors
    /// When it does not start.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.start_server()
    }

    fn init(settings: Vec<String>) -> anyhow::Result<Cluster> {
        let bin = bin_dir()?;
        let root = clusters_dir();
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("pg-")
            .tempdir_in(&root)
            .context("creating the cluster's directory")?
            .keep();
        chown_to_postgres(&dir)?;
        let data = dir.join("data");
        let mut initdb = as_postgres(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale", "C"]);
        run(&mut initdb).context("initdb")?;
        Ok(Cluster {
            bin,
            dir,
            port: free_port()?,
            settings,
        })
    }

    fn start_server(&self) -> anyhow::Result<()> {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.dir.display()
        );
        for setting in &self.settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = self.dir.join("server.log");
        let mut start = self.pg_ctl(&["start", "-w", "-t", "30"]);
        start.arg("-l").arg(&log).arg("-o").arg(options);
        run(&mut start).with_context(|| {
            format!(
                "starting PostgreSQL; its log says:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.dir.join("data")).args(args);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Starts the per-process shared cluster, with a watchdog that stops and deletes it when this
/// process exits: a shell waits for end of file on a pipe only this process holds.
fn start_process_cluster() -> anyhow::Result<String> {
    static WATCHDOG: Mutex<Option<(Child, ChildStdin)>> = Mutex::new(None);
    let cluster = Cluster::start()?;
    let stop = format!(
        "{} -D {} stop -m immediate -w",
        cluster.bin.join("pg_ctl").display(),
        cluster.dir.join("data").display()
    );
    let stop = if is_root() {
        format!("runuser -u postgres -- {stop}")
    } else {
        stop
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf {}",
            cluster.dir.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the cluster's watchdog")?;
    let mut stdin = child.stdin.take().context("the watchdog's stdin")?;
    let _ = stdin.flush();
    let url = cluster.url();
    // The watchdog owns the cluster's end now.
    std::mem::forget(cluster);
    *WATCHDOG.lock().unwrap() = Some((child, stdin));
    Ok(url)
}

/// Where clusters live: `<target>/authura-pg`, next to the test binaries.
fn clusters_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("authura-pg")
}

/// The directory of `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL's initdb and pg_ctl were not found (pg_config --bindir, \
             /usr/lib/postgresql/*/bin): install the Debian package postgresql \
             (`apt-get install -y postgresql`), or run `cargo xtask test`, which does"
        ),
    }
}

/// A command for `program` that runs as `postgres` when this process is root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn chown_to_postgres(path: &Path) -> anyhow::Result<()> {
    if is_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(path))?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    })
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A free port *below* the kernel's ephemeral range. A port from `bind(0)` is in that range, so
/// while a cluster is stopped (the restart tests), the kernel could hand the same port to any
/// other socket, as a listener's or a connection's local port; `start_again` then failed with
/// "Address already in use" (seen in CI). Below the range, only another explicit pick can take
/// it, and picks within this process never repeat.
fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u32, ephemeral_low.max(10_500));
    let span = to - from;
    // Different processes start at different places; within one, picks walk on.
    let base = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let offset = (base + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let Ok(port) = u16::try_from(from + offset) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
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
