//! PostgreSQL clusters from the system's `initdb`/`pg_ctl` (Debian package `postgresql`), on a
//! free port of 127.0.0.1 with `fsync=off`: a cluster of a test's own (`Cluster`), and one
//! that a watchdog stops whatever happens to this process (`start_watched`), which both the
//! tests' shared cluster and `cargo xtask` use. Only `std`, `anyhow` and `tempfile`: `xtask`
//! compiles this file into itself (`#[path]`), since test support is never a normal dependency.
//!
//! As root, the server runs as the `postgres` user through `runuser` (PostgreSQL refuses to run
//! as root), with its directory chowned to it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

/// A cluster of this test's own, stopped and deleted on drop. For tests that stop and start
/// the server, or need it to speak TLS.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    pub(crate) dir: PathBuf,
    port: u16,
    /// Extra `-c name=value` settings (TLS).
    pub(crate) settings: Vec<String>,
}

impl Cluster {
    /// Initialises and starts a cluster on a free port.
    ///
    /// # Errors
    /// When the PostgreSQL binaries are missing (the message names the package) or the server
    /// does not start (the message includes its log).
    pub fn start() -> anyhow::Result<Cluster> {
        Cluster::start_in(&clusters_dir())
    }

    /// As [`Cluster::start`], with its directory under `root`.
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub fn start_in(root: &Path) -> anyhow::Result<Cluster> {
        let cluster = Cluster::init_in(root, Vec::new())?;
        cluster.start_server()?;
        Ok(cluster)
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

    pub(crate) fn init_in(root: &Path, settings: Vec<String>) -> anyhow::Result<Cluster> {
        let bin = binaries()?;
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("pg-")
            .tempdir_in(root)
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

    pub(crate) fn start_server(&self) -> anyhow::Result<()> {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=300",
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

/// A cluster whose stopping does not depend on this process ending well: a watchdog shell
/// waits for end of file on a pipe only this process holds, then stops the server and deletes
/// its directory. Dropping this value closes the pipe (and waits for the watchdog); so does this
/// process's exit, however it happens (a failed test, a panic, `kill`).
#[derive(Debug)]
pub struct Watched {
    url: String,
    watchdog: Child,
    /// Closing it tells the watchdog to stop the server.
    pipe: Option<ChildStdin>,
}

impl Watched {
    /// The superuser URL (trust authentication on 127.0.0.1).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        drop(self.pipe.take());
        let _ = self.watchdog.wait();
    }
}

/// Starts a cluster under `root` with a watchdog (see [`Watched`]).
///
/// # Errors
/// As [`Cluster::start`], or when the watchdog cannot be started (the cluster is then stopped).
pub fn start_watched(root: &Path) -> anyhow::Result<Watched> {
    let cluster = Cluster::start_in(root)?;
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
    let mut watchdog = Command::new("sh")
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
    let mut pipe = watchdog.stdin.take().context("the watchdog's stdin")?;
    let _ = pipe.flush();
    let url = cluster.url();
    // The watchdog owns the cluster's end now.
    std::mem::forget(cluster);
    Ok(Watched {
        url,
        watchdog,
        pipe: Some(pipe),
    })
}

/// Where clusters live: `<target>/authura-pg`, next to the test binaries.
pub(crate) fn clusters_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("authura-pg")
}

/// The directory of `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
///
/// # Errors
/// When neither has them; the message names the Debian package.
pub fn binaries() -> anyhow::Result<PathBuf> {
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

pub(crate) fn chown_to_postgres(path: &Path) -> anyhow::Result<()> {
    if is_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(path))?;
    }
    Ok(())
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
