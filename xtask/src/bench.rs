//! `cargo xtask bench`: the whole server under a real load generator (wrk) over loopback, with
//! the physical limits measured in the same run, written to `docs/PERFORMANCE.md`.
//!
//! Targets are ratios within one run, so they hold on a noisy machine: `/token` against the raw
//! Argon2id rate on all cores, `/user` and `/refresh` against `/healthz` on the same server, and
//! `/user`'s p99 while `/token` is saturated against its p99 alone.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

mod million;
mod permits;

pub(crate) const PASSWORD: &str = "Bench-Passw0rd!";
pub(crate) const EMAIL: &str = "bench@example.com";

/// One wrk run's figures.
#[derive(Debug, Clone, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
    _dir: tempfile_lite::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmark. `--seconds N` sets each load run's length (default 10).
pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("permits") => return permits::run(&args[1..]),
        Some("million") => return million::run(&args[1..]),
        _ => {}
    }
    let seconds: u64 = args
        .windows(2)
        .find(|w| w[0] == "--seconds")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(10);
    if Command::new("wrk").arg("--version").output().is_err() {
        crate::services::install_debian(&["wrk"])?;
    }
    crate::run(Command::new("cargo").args(["build", "--release", "--package", "authura"]))?;
    crate::run(Command::new("cargo").args([
        "build",
        "--release",
        "--package",
        "authura-core",
        "--example",
        "argon2_rate",
    ]))?;
    let target = target_dir();
    let bin = target.join("release/authura");
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);

    eprintln!("bench: raw Argon2id rate on {cores} threads");
    let raw = Command::new(target.join("release/examples/argon2_rate"))
        .args([cores.to_string(), "5".into()])
        .output()?;
    let raw_rate: f64 = String::from_utf8_lossy(&raw.stdout)
        .trim()
        .parse()
        .context("argon2_rate output")?;

    let sqlite = measure(&bin, "sqlite", &[], seconds)?;
    let sqlite_check = check_loads(&bin, &[], seconds)?;
    let sqlite_sessions = session_loads(&bin, &[], seconds)?;
    let pg = crate::postgres::start()?;
    let dsn = pg.url().to_owned();
    let pg_env = [("AUTH_BACKEND", "postgres"), ("POSTGRES_DSN", dsn.as_str())];
    let postgres = measure(&bin, "postgres", &pg_env, seconds)?;
    let postgres_check = check_loads(&bin, &pg_env, seconds)?;
    let postgres_sessions = session_loads(&bin, &pg_env, seconds)?;
    drop(pg);

    let binary_mib = std::fs::metadata(&bin)?.len() as f64 / 1024.0 / 1024.0;
    let mut table = String::new();
    writeln!(
        table,
        "| measure | SQLite | PostgreSQL | target (on SQLite) | |"
    )?;
    writeln!(table, "|---|---|---|---|---|")?;
    let mut all_ok = true;
    let mut check = |t: &mut String, name: &str, a: String, b: String, target: &str, ok: bool| {
        all_ok &= ok;
        let _ = writeln!(
            t,
            "| {name} | {a} | {b} | {target} | {} |",
            if ok { "✅" } else { "❌" }
        );
    };
    let load = |l: &Load| {
        format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            l.rps, l.p50_ms, l.p99_ms
        )
    };
    for (name, a, b) in [
        ("GET /healthz", &sqlite.healthz, &postgres.healthz),
        ("GET /user", &sqlite.user, &postgres.user),
        ("POST /refresh", &sqlite.refresh, &postgres.refresh),
        ("POST /token", &sqlite.token, &postgres.token),
        (
            "GET /check, session key, cached (SESSIONS_ENABLED=true)",
            &sqlite_check.cached,
            &postgres_check.cached,
        ),
        (
            "GET /check, session key, cache off (SESSION_CACHE_SIZE=0)",
            &sqlite_check.off,
            &postgres_check.off,
        ),
    ] {
        let _ = writeln!(table, "| {name} | {} | {} | | |", load(a), load(b));
    }
    let _ = writeln!(
        table,
        "| raw Argon2id, {cores} threads | {raw_rate:.1} hashes/s | | | |"
    );
    for (name, a, b) in [
        (
            "POST /refresh, a token chain per connection, sessions off",
            &sqlite_sessions.refresh_stateless,
            &postgres_sessions.refresh_stateless,
        ),
        (
            "POST /refresh, a token chain per connection, sessions on (rotation)",
            &sqlite_sessions.refresh_rotating,
            &postgres_sessions.refresh_rotating,
        ),
        (
            "POST /session (a sign-in with a session)",
            &sqlite_sessions.session,
            &postgres_sessions.session,
        ),
    ] {
        let _ = writeln!(table, "| {name} | {} | {} | | |", load(a), load(b));
    }
    let ratio = |a: f64, b: f64| a / b;
    check(
        &mut table,
        "/check cached ÷ /healthz (same server, median of interleaved rounds)",
        pct(sqlite_check.ratio),
        pct(postgres_check.ratio),
        "≥ 70 %",
        sqlite_check.ratio >= 0.7,
    );
    check(
        &mut table,
        "POST /session ÷ raw Argon2id",
        pct(ratio(sqlite_sessions.session.rps, raw_rate)),
        pct(ratio(postgres_sessions.session.rps, raw_rate)),
        "≥ 85 %",
        ratio(sqlite_sessions.session.rps, raw_rate) >= 0.85,
    );
    check(
        &mut table,
        "/refresh with rotation ÷ without sessions",
        pct(ratio(
            sqlite_sessions.refresh_rotating.rps,
            sqlite_sessions.refresh_stateless.rps,
        )),
        pct(ratio(
            postgres_sessions.refresh_rotating.rps,
            postgres_sessions.refresh_stateless.rps,
        )),
        "(PostgreSQL: measured)",
        true,
    );
    let mib_of = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    check(
        &mut table,
        "idle RSS, sessions on, 10,000 sessions cached (before filling)",
        format!(
            "{} ({})",
            mib_of(sqlite_sessions.rss_cached),
            mib_of(sqlite_sessions.rss_empty)
        ),
        format!(
            "{} ({})",
            mib_of(postgres_sessions.rss_cached),
            mib_of(postgres_sessions.rss_empty)
        ),
        "≤ 20 MiB",
        sqlite_sessions.rss_cached <= 20 * 1024,
    );
    check(
        &mut table,
        "/token ÷ raw Argon2id",
        pct(ratio(sqlite.token.rps, raw_rate)),
        pct(ratio(postgres.token.rps, raw_rate)),
        "≥ 85 %",
        ratio(sqlite.token.rps, raw_rate) >= 0.85,
    );
    check(
        &mut table,
        "/user ÷ /healthz",
        pct(sqlite.user_ratio),
        pct(postgres.user_ratio),
        "≥ 50 %",
        sqlite.user_ratio >= 0.5,
    );
    check(
        &mut table,
        "/refresh ÷ /healthz",
        pct(sqlite.refresh_ratio),
        pct(postgres.refresh_ratio),
        "≥ 50 %",
        sqlite.refresh_ratio >= 0.5,
    );
    let iso = |f: &Figures| {
        (
            f.user_busy.p99_ms / f.user_alone.p99_ms,
            format!(
                "{:.2} ÷ {:.2} ms = {:.2}× (/token {:.0} req/s)",
                f.user_busy.p99_ms,
                f.user_alone.p99_ms,
                f.user_busy.p99_ms / f.user_alone.p99_ms,
                f.token_during.rps
            ),
        )
    };
    let (iso_sqlite, iso_text) = iso(&sqlite);
    check(
        &mut table,
        "/user p99, /token saturated ÷ alone",
        iso_text,
        iso(&postgres).1,
        "≤ 3×",
        iso_sqlite <= 3.0,
    );
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    check(
        &mut table,
        "idle RSS",
        mib(sqlite.idle_rss),
        mib(postgres.idle_rss),
        "≤ 20 MiB",
        sqlite.idle_rss <= 20 * 1024,
    );
    let _ = writeln!(
        table,
        "| RSS after load (peak) | {} ({}) | {} ({}) | | |",
        mib(sqlite.loaded_rss),
        mib(sqlite.peak_rss),
        mib(postgres.loaded_rss),
        mib(postgres.peak_rss)
    );
    check(
        &mut table,
        "start to first /healthz",
        format!("{:.0} ms", sqlite.ready_ms),
        format!("{:.0} ms", postgres.ready_ms),
        "≤ 200 ms",
        sqlite.ready_ms <= 200.0,
    );
    check(
        &mut table,
        "release binary",
        format!("{binary_mib:.1} MiB"),
        String::new(),
        "≤ 30 MiB",
        binary_mib <= 30.0,
    );
    let sqlite_errors = sqlite.errors
        + sqlite_check.cached.errors
        + sqlite_check.off.errors
        + sqlite_sessions.errors();
    let postgres_errors = postgres.errors
        + postgres_check.cached.errors
        + postgres_check.off.errors
        + postgres_sessions.errors();
    let errors = sqlite_errors + postgres_errors;
    check(
        &mut table,
        "non-2xx answers during the runs",
        sqlite_errors.to_string(),
        postgres_errors.to_string(),
        "0",
        errors == 0,
    );

    let report = format!(
        "Run {} on {}; wrk over loopback, {seconds} s per run (/healthz, /user and /refresh: {ROUNDS} interleaved rounds, median shown), Argon2id m=19 MiB t=2 p=1, RATE_PER_MINUTE=0, PostgreSQL {} on the same machine.\n\n{table}",
        utc_now(),
        machine(),
        postgres_version()
    );
    println!("{report}");
    write_report(&report)?;
    if !all_ok {
        eprintln!("bench: some targets were missed (see the table)");
    }
    Ok(())
}

/// Everything measured on one backend.
struct Figures {
    ready_ms: f64,
    idle_rss: u64,
    loaded_rss: u64,
    peak_rss: u64,
    healthz: Load,
    user: Load,
    refresh: Load,
    /// Median over the rounds of `/user` ÷ `/healthz` within a round.
    user_ratio: f64,
    /// Median over the rounds of `/refresh` ÷ `/healthz` within a round.
    refresh_ratio: f64,
    token: Load,
    user_alone: Load,
    user_busy: Load,
    token_during: Load,
    errors: u64,
}

/// Rounds of the `/healthz`, `/user`, `/refresh` runs.
const ROUNDS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A few `/user` clients alone, then the same while `/token` is saturated; and the logins per
/// second meanwhile.
fn isolation(base: &str, dir: &Path, seconds: u64) -> Result<(Load, Load, Load)> {
    let user_alone = wrk(base, "/user", Some(&dir.join("user.lua")), 1, 2, seconds)?;
    let saturate = {
        let (base, script) = (base.to_owned(), dir.join("token.lua"));
        std::thread::spawn(move || wrk(&base, "/token", Some(&script), 1, 16, seconds + 2))
    };
    std::thread::sleep(Duration::from_secs(1));
    let user_busy = wrk(base, "/user", Some(&dir.join("user.lua")), 1, 2, seconds)?;
    let token_during = saturate
        .join()
        .map_err(|_| anyhow::anyhow!("wrk thread panicked"))??;
    Ok((user_alone, user_busy, token_during))
}

/// Logs the seeded user in and writes the wrk scripts with its tokens; the server's base URL
/// and the scripts' directory.
fn logged_in(server: &Server) -> Result<(String, PathBuf)> {
    let tokens = login(server.port)?;
    let dir = scripts(
        &field(&tokens, "access_token")?,
        &field(&tokens, "refresh_token")?,
    )?;
    Ok((format!("http://127.0.0.1:{}", server.port), dir))
}

/// Starts the server on a backend and runs every load against it.
fn measure(bin: &Path, label: &str, env: &[(&str, &str)], seconds: u64) -> Result<Figures> {
    eprintln!("bench: {label}");
    let started = Instant::now();
    let server = start(bin, env)?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kib(server.child.id());
    let (base, dir) = logged_in(&server)?;

    // The floor and the two endpoints measured against it, in interleaved rounds: each ratio
    // is taken within a round, and the median round is reported, so a burst of noise from
    // the machine (or the VM's neighbours) during one run does not decide the result.
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let healthz = wrk(&base, "/healthz", None, 2, 32, seconds)?;
        let user = wrk(&base, "/user", Some(&dir.join("user.lua")), 2, 32, seconds)?;
        let refresh = wrk(
            &base,
            "/refresh",
            Some(&dir.join("refresh.lua")),
            2,
            32,
            seconds,
        )?;
        rounds.push([healthz, user, refresh]);
    }
    let user_ratio = median(rounds.iter().map(|[h, u, _]| u.rps / h.rps).collect());
    let refresh_ratio = median(rounds.iter().map(|[h, _, r]| r.rps / h.rps).collect());
    let median_load = |i: usize| {
        let mut loads: Vec<Load> = rounds.iter().map(|r| r[i].clone()).collect();
        loads.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        loads[loads.len() / 2].clone()
    };
    let (healthz, user, refresh_load) = (median_load(0), median_load(1), median_load(2));
    let round_errors: u64 = rounds.iter().flatten().map(|l| l.errors).sum();
    let token = wrk(
        &base,
        "/token",
        Some(&dir.join("token.lua")),
        1,
        16,
        seconds,
    )?;
    let loaded_rss = rss_kib(server.child.id());
    let (user_alone, user_busy, token_during) = isolation(&base, &dir, seconds)?;
    let peak_rss = peak_rss_kib(server.child.id());
    let errors = round_errors
        + [&token, &user_alone, &user_busy, &token_during]
            .iter()
            .map(|l| l.errors)
            .sum::<u64>();
    Ok(Figures {
        ready_ms,
        idle_rss,
        loaded_rss,
        peak_rss,
        healthz,
        user,
        refresh: refresh_load,
        user_ratio,
        refresh_ratio,
        token,
        user_alone,
        user_busy,
        token_during,
        errors,
    })
}

/// `GET /check` with a session key (`Authorization: Session`), with sessions on: answered from
/// the session cache, then with the cache off (every check reads the state store and the
/// users table).
/// `/check` by session key with the cache on and off; with the cache on, in [`ROUNDS`] rounds
/// interleaved with `/healthz` on the same server, and the median round's `/check` ÷ `/healthz`
/// (issue 14's target), as `measure` takes `/user`'s.
fn check_loads(bin: &Path, env: &[(&str, &str)], seconds: u64) -> Result<CheckFigures> {
    let mut loads = Vec::new();
    let mut ratio = f64::NAN;
    for cache_size in ["10000", "0"] {
        eprintln!("bench: /check with SESSION_CACHE_SIZE={cache_size}");
        let mut all = env.to_vec();
        all.extend([
            ("SESSIONS_ENABLED", "true"),
            ("SESSION_CACHE_SIZE", cache_size),
        ]);
        let server = start(bin, &all)?;
        let body = format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}","return_key":true}}"#);
        // PostgreSQL connects after the server listens: retry the sign-in for a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        let res = loop {
            let res = http(server.port, "POST", "/session", &body)?;
            if res.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
                break res;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if !res.starts_with("HTTP/1.1 200") {
            bail!("POST /session failed: {res}");
        }
        let key = field(&res, "key")?;
        let script = target_dir().join("bench/check.lua");
        std::fs::create_dir_all(script.parent().context("bench dir")?)?;
        std::fs::write(
            &script,
            format!("wrk.headers[\"Authorization\"] = \"Session {key}\"\n"),
        )?;
        let base = format!("http://127.0.0.1:{}", server.port);
        if cache_size == "0" {
            loads.push(wrk(&base, "/check", Some(&script), 2, 32, seconds)?);
            continue;
        }
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            let healthz = wrk(&base, "/healthz", None, 2, 32, seconds)?;
            let check = wrk(&base, "/check", Some(&script), 2, 32, seconds)?;
            rounds.push((healthz, check));
        }
        ratio = median(rounds.iter().map(|(h, c)| c.rps / h.rps).collect());
        let errors: u64 = rounds.iter().map(|(h, _)| h.errors).sum();
        rounds.sort_by(|a, b| a.1.rps.total_cmp(&b.1.rps));
        let mut median_check = rounds[rounds.len() / 2].1.clone();
        median_check.errors = errors + rounds.iter().map(|(_, c)| c.errors).sum::<u64>();
        loads.push(median_check);
    }
    let off = loads.pop().context("two loads")?;
    let cached = loads.pop().context("two loads")?;
    Ok(CheckFigures { cached, off, ratio })
}

/// `/check` by session key: cached (the median of the rounds, with every round's errors), with
/// the cache off, and the cached rate ÷ `/healthz`'s on the same server (median round).
struct CheckFigures {
    cached: Load,
    off: Load,
    ratio: f64,
}

/// What sessions cost (issue 14): signing in with a session, refreshing with rotation against
/// refreshing statelessly, and the memory 10,000 cached sessions take.
struct SessionFigures {
    session: Load,
    refresh_stateless: Load,
    refresh_rotating: Load,
    rss_empty: u64,
    rss_cached: u64,
}

impl SessionFigures {
    fn errors(&self) -> u64 {
        self.session.errors + self.refresh_stateless.errors + self.refresh_rotating.errors
    }
}

/// Connections (one wrk thread each) of the refresh-chain runs.
const CHAINS: usize = 4;

fn session_loads(bin: &Path, env: &[(&str, &str)], seconds: u64) -> Result<SessionFigures> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    // Each connection follows its own chain: it sends its refresh token and keeps the one the
    // answer carries (a rotated token is single-use: sending an older one again would end the
    // session). The same script runs without sessions, where tokens are stateless.
    let chain_script = |tokens: &[String]| -> Result<PathBuf> {
        let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
        let path = dir.join("refresh-chain.lua");
        std::fs::write(
            &path,
            format!(
                r#"local tokens = {{{}}}
local n = 0
function setup(thread)
  n = n + 1
  thread:set("token", tokens[n])
end
function request()
  return wrk.format("POST", "/refresh", {{["Content-Type"] = "application/json"}},
    '{{"refresh_token":"' .. token .. '"}}')
end
function response(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then token = t end
end
"#,
                list.join(", ")
            ),
        )?;
        Ok(path)
    };
    let chains = |server: &Server| -> Result<Load> {
        let mut tokens = Vec::new();
        for _ in 0..CHAINS {
            tokens.push(field(&login(server.port)?, "refresh_token")?);
        }
        let script = chain_script(&tokens)?;
        let base = format!("http://127.0.0.1:{}", server.port);
        wrk(
            &base,
            "/refresh",
            Some(&script),
            CHAINS as u32,
            CHAINS as u32,
            seconds,
        )
    };

    eprintln!("bench: /refresh chains, sessions off");
    let refresh_stateless = chains(&start(bin, env)?)?;

    let mut all = env.to_vec();
    all.extend([
        ("SESSIONS_ENABLED", "true"),
        ("SESSION_CACHE_SIZE", "20000"),
    ]);
    eprintln!("bench: /refresh chains and POST /session, sessions on");
    let server = start(bin, &all)?;
    let base = format!("http://127.0.0.1:{}", server.port);
    // PostgreSQL connects after the server listens: the first sign-in may wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while login(server.port).is_err() {
        if Instant::now() > deadline {
            bail!("no sign-in with sessions on");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let refresh_rotating = chains(&server)?;
    let session_script = dir.join("session.lua");
    std::fs::write(
        &session_script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{{\"email\":\"{EMAIL}\",\"password\":\"{PASSWORD}\",\"return_key\":true}}'\n"
        ),
    )?;
    let session = wrk(&base, "/session", Some(&session_script), 1, 16, seconds)?;
    drop(server);

    // Memory: a fresh server, then 10,000 sessions answered once each by /check (so cached).
    eprintln!("bench: RSS with 10,000 sessions cached");
    let server = start(bin, &all)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let res = http(
            server.port,
            "POST",
            "/session",
            &format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}","return_key":true}}"#),
        )?;
        if res.starts_with("HTTP/1.1 200") {
            break res;
        }
        if Instant::now() > deadline {
            bail!("POST /session failed: {res}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    field(&first, "key")?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_empty = rss_kib(server.child.id());
    // Opening 10,000 sessions through POST /session would take 10,000 Argon2id hashes (about
    // two minutes on two cores): they are written straight into the state table instead, as
    // the server writes them (the SHA-256 of a 43-character base64url key), then each is
    // presented once to /check, which caches it.
    let keys = insert_sessions(&server, env, 10_000)?;
    for key in &keys {
        let res = request(
            server.port,
            "GET",
            "/check",
            Some(&format!("Session {key}")),
            "",
        )?;
        if !res.starts_with("HTTP/1.1 200") {
            bail!("GET /check with a fresh session: {res}");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_cached = rss_kib(server.child.id());
    Ok(SessionFigures {
        session,
        refresh_stateless,
        refresh_rotating,
        rss_empty,
        rss_cached,
    })
}

/// Writes `n` live sessions of the bench user into the server's state table (SQLite: the
/// server's file; PostgreSQL: `POSTGRES_DSN` from `env`) and returns their keys.
fn insert_sessions(server: &Server, env: &[(&str, &str)], n: usize) -> Result<Vec<String>> {
    const SQLITE: &str = r#"
import base64, hashlib, os, sqlite3, sys, time, uuid
db, email, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(db, timeout=30)
(user_id,) = con.execute("SELECT CAST(id AS TEXT) FROM users WHERE email = ?", (email,)).fetchone()
now = int(time.time() * 1e6)
keys = [base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode() for _ in range(n)]
con.executemany(
    "INSERT INTO authura_sessions VALUES (?, ?, '', ?, 1, ?, ?, ?, NULL, NULL, 'password', 0, ?)",
    [(uuid.uuid4().bytes, hashlib.sha256(k.encode()).digest(), user_id, now, now, now + 86400 * 10**6, now) for k in keys],
)
con.commit()
print("\n".join(keys))
"#;
    const KEYS: &str = r#"
import base64, os, sys
print("\n".join(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode() for _ in range(int(sys.argv[1]))))
"#;
    let lines = |out: std::process::Output| -> Result<Vec<String>> {
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    };
    let dsn = env
        .iter()
        .find(|(k, _)| *k == "POSTGRES_DSN")
        .map(|(_, v)| *v);
    let Some(dsn) = dsn else {
        let db = server._dir.path().join("authura.db");
        return lines(
            Command::new("python3")
                .args(["-c", SQLITE])
                .arg(&db)
                .args([EMAIL, &n.to_string()])
                .output()?,
        );
    };
    let keys = lines(
        Command::new("python3")
            .args(["-c", KEYS, &n.to_string()])
            .output()?,
    )?;
    let list: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
    let sql = format!(
        "INSERT INTO authura_sessions SELECT gen_random_uuid(), sha256(convert_to(k, 'UTF8')), '', \
         u.id::text, true, now(), now(), now() + interval '1 day', NULL, NULL, 'password', 0, now() \
         FROM unnest(ARRAY[{}]) AS k, (SELECT id FROM users WHERE email = '{EMAIL}') AS u",
        list.join(",")
    );
    let psql = Command::new("sh")
        .args([
            "-c",
            "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql \"$0\" -q -v ON_ERROR_STOP=1",
            dsn,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut psql = psql;
    psql.stdin
        .take()
        .context("psql's stdin")?
        .write_all(sql.as_bytes())?;
    let out = psql.wait_with_output()?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(keys)
}

fn postgres_version() -> String {
    Command::new("sh")
        .args([
            "-c",
            "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres --version",
        ])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("postgres (PostgreSQL) ")
                .to_owned()
        })
        .unwrap_or_default()
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// The target directory, absolute (the server is started in a temp dir, where a relative path
/// would not resolve).
pub(crate) fn target_dir() -> PathBuf {
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    std::path::absolute(&dir).unwrap_or(dir)
}

fn start(bin: &Path, extra: &[(&str, &str)]) -> Result<Server> {
    start_logged(bin, extra, None)
}

/// [`start`], with the server's standard error written to `log` when given.
pub(crate) fn start_logged(
    bin: &Path,
    extra: &[(&str, &str)],
    log: Option<&Path>,
) -> Result<Server> {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    };
    let dir = tempfile_lite::TempDir::new()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("JWT_SECRET", "bench-access-secret-0123456789abcdefghij"),
            (
                "JWT_REFRESH_SECRET",
                "bench-refresh-secret-0123456789abcdefgh",
            ),
            (
                "JWT_VERIFY_SECRET",
                "bench-verify-secret-0123456789abcdefghi",
            ),
            ("MAIL_HOST", "dummy"),
            ("RATE_PER_MINUTE", "0"),
            ("SQLITE_INITIAL_USER", EMAIL),
            ("SQLITE_INITIAL_USER_PASSWORD", PASSWORD),
            ("RUST_LOG", "warn"),
            ("POSTGRES_INITIAL_USER", EMAIL),
            ("POSTGRES_INITIAL_USER_PASSWORD", PASSWORD),
        ])
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?;
    let server = Server {
        child,
        port,
        _dir: dir,
    };
    // Ready, not just live: the users backend (and the state store) open after the server
    // listens, and a sign-in before that answers 503 `backend_unavailable`.
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(port, "GET", "/readyz", "").map_or(true, |r| !r.starts_with("HTTP/1.1 200")) {
        if Instant::now() > deadline {
            bail!("the server did not become ready");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(server)
}

/// A minimal HTTP/1.1 exchange (enough for readiness and a login).
fn http(port: u16, method: &str, path: &str, json: &str) -> std::io::Result<String> {
    request(port, method, path, None, json)
}

/// [`http`] with an optional `Authorization` header.
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    json: &str,
) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let auth = authorization.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn login(port: u16) -> Result<String> {
    let res = http(
        port,
        "POST",
        "/token",
        &format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}"}}"#),
    )?;
    if !res.starts_with("HTTP/1.1 200") {
        bail!("login failed: {res}");
    }
    Ok(res)
}

pub(crate) fn field(body: &str, name: &str) -> Result<String> {
    let key = format!("\"{name}\":\"");
    let start = body.find(&key).context("field missing")? + key.len();
    Ok(body[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned())
}

fn scripts(access: &str, refresh: &str) -> Result<PathBuf> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("user.lua"),
        format!("wrk.headers[\"Authorization\"] = \"Bearer {access}\"\n"),
    )?;
    let post = |body: String| {
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{body}'\n"
        )
    };
    std::fs::write(
        dir.join("refresh.lua"),
        post(format!(r#"{{"refresh_token":"{refresh}"}}"#)),
    )?;
    std::fs::write(
        dir.join("token.lua"),
        post(format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}"}}"#)),
    )?;
    Ok(dir)
}

fn wrk(
    base: &str,
    path: &str,
    script: Option<&Path>,
    threads: u32,
    conns: u32,
    seconds: u64,
) -> Result<Load> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "--latency",
        "-t",
        &threads.to_string(),
        "-c",
        &conns.to_string(),
        "-d",
        &format!("{seconds}s"),
        // wrk's default (2 s) would count a login as failed when it is only queued: while
        // `/user` saturates the CPU, logins wait by design (the hashing threads run at idle
        // priority). The p99 in the table shows how long they waited.
        "--timeout",
        "10s",
    ]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .arg(format!("{base}{path}"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("Requests/sec:"), Some(v)) => load.rps = v.parse().unwrap_or(0.0),
            (Some("50%"), Some(v)) => load.p50_ms = millis(v),
            (Some("99%"), Some(v)) => load.p99_ms = millis(v),
            (Some("Non-2xx"), _) => {
                load.errors += line
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
            (Some("Socket"), _) => {
                load.errors += line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    eprintln!(
        "bench: {path} -t{threads} -c{conns}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
        load.rps, load.p50_ms, load.p99_ms, load.errors
    );
    if load.rps == 0.0 {
        bail!("wrk produced no figures for {path}:\n{text}");
    }
    Ok(load)
}

fn millis(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let mem = status_like("/proc/meminfo", "MemTotal:").map_or(String::new(), |k| {
        format!(", {:.0} GiB RAM", k as f64 / 1024.0 / 1024.0)
    });
    format!("{cores} × {cpu}{mem}")
}

fn status_like(path: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub(crate) fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map_or_else(
            |_| "now".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

/// Replaces the generated section of docs/PERFORMANCE.md, keeping the prose around it.
fn write_report(report: &str) -> Result<()> {
    write_section("bench", report)
}

/// Replaces docs/PERFORMANCE.md's section between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
pub(crate) fn write_section(name: &str, report: &str) -> Result<()> {
    let path = Path::new("docs/PERFORMANCE.md");
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let (begin, end) = (begin.as_str(), end.as_str());
    let doc = std::fs::read_to_string(path)
        .unwrap_or_else(|_| format!("# Performance\n\n{begin}\n{end}\n"));
    let (Some(b), Some(e)) = (doc.find(begin), doc.find(end)) else {
        bail!("docs/PERFORMANCE.md lacks the {begin} / {end} markers");
    };
    let updated = format!("{}{begin}\n{report}\n{}", &doc[..b], &doc[e..]);
    std::fs::write(path, updated)?;
    Ok(())
}

/// A temp dir removed on drop (xtask keeps its dependencies minimal).
mod tempfile_lite {
    use std::path::{Path, PathBuf};

    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "authura-bench-{}-{}",
                std::process::id(),
                super::utc_nanos()
            ));
            std::fs::create_dir_all(&path)?;
            Ok(TempDir(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn utc_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
