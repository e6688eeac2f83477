//! The throwaway PostgreSQL cluster `cargo xtask test` runs the suite against: the system's
//! `initdb`/`pg_ctl` (Debian's `postgresql`, installed when missing and running as root), a data
//! directory under `target/`, a free port on 127.0.0.1, the unix socket in the data directory,
//! `fsync=off`. Its superuser URL goes to the tests in `AUTHURA_TEST_PG_URL`; the testkit gives
//! each test its own database on it. It is stopped and deleted when the run ends, also when a
//! test fails, xtask returns an error or is killed: a watchdog shell does that when the pipe that
//! only xtask holds closes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::services;

/// The variable the tests read the cluster's URL from (the testkit's `URL_VAR`).
pub const URL_VAR: &str = "AUTHURA_TEST_PG_URL";

/// A running cluster; dropping it stops and deletes it.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
    watchdog: Child,
    /// Closing it tells the watchdog to stop the server.
    pipe: Option<ChildStdin>,
}

impl Cluster {
    /// The superuser URL (trust authentication on 127.0.0.1).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.pipe.take());
        let _ = self.watchdog.wait();
    }
}

/// Makes `initdb` and `pg_ctl` available: installs `postgresql` when running as root, else
/// fails naming the package.
pub fn ensure_installed() -> Result<()> {
    if bin_dir().is_some() {
        return Ok(());
    }
    services::install_debian(&["postgresql"])?;
    match bin_dir() {
        Some(_) => Ok(()),
        None => bail!("initdb and pg_ctl are still missing after installing postgresql"),
    }
}

/// Initialises and starts a cluster under `target/authura-pg/`.
pub fn start() -> Result<Cluster> {
    ensure_installed()?;
    let bin = bin_dir().context("the PostgreSQL binaries")?;
    let root = Path::new("target").join("authura-pg");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let dir = fs::canonicalize(&root)?.join(format!("xtask-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if is_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
    }
    let data = dir.join("data");
    let port = free_port()?;
    let pg_ctl = bin.join("pg_ctl");

    // The watchdog first, so that whatever happens next the directory is cleaned up.
    let stop = shell_words(&as_postgres(&[
        pg_ctl.to_str().context("pg_ctl's path")?,
        "-D",
        data.to_str().context("the data directory's path")?,
        "stop",
        "-m",
        "immediate",
        "-w",
    ]));
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf '{}'",
            dir.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the cluster's watchdog")?;
    let pipe = watchdog.stdin.take();
    let cluster = Cluster {
        port,
        watchdog,
        pipe,
    };

    let started = std::time::Instant::now();
    let initdb = bin.join("initdb");
    run(&mut command(&as_postgres(&[
        initdb.to_str().context("initdb's path")?,
        "-D",
        data.to_str().context("the data directory's path")?,
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale",
        "C",
        "--no-sync",
    ])))
    .context("initdb")?;
    let log = dir.join("server.log");
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c full_page_writes=off \
         -c max_connections=300",
        dir.display()
    );
    let start = run(&mut command(&as_postgres(&[
        pg_ctl.to_str().context("pg_ctl's path")?,
        "-D",
        data.to_str().context("the data directory's path")?,
        "-l",
        log.to_str().context("the log's path")?,
        "-o",
        &options,
        "-w",
        "-t",
        "30",
        "start",
    ])));
    if let Err(e) = start {
        bail!(
            "{e:#}\nPostgreSQL's log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    eprintln!(
        "xtask: PostgreSQL started at {} in {:.1}s",
        cluster.url(),
        started.elapsed().as_secs_f64()
    );
    Ok(cluster)
}

/// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`, if it has `initdb`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Some(dir);
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
    found.pop().map(|(_, bin)| bin)
}

/// The argument list that runs `args` as `postgres` when xtask is root (PostgreSQL refuses to
/// run as root).
fn as_postgres(args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    if is_root() {
        all.extend(["runuser", "-u", "postgres", "--"].map(String::from));
    }
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all
}

fn command(args: &[String]) -> Command {
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    cmd
}

/// Single-quoted for `sh`.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    // No inherited output: the server started by pg_ctl would keep cargo's pipes open.
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
