//! `cargo xtask bench million [--users N] [--seconds S]` (issue 16's scale targets): on SQLite
//! and on PostgreSQL, the users table grown from 1,000 to N (1,000,000) users by bulk SQL
//! (`sqlite3`, `psql`; every row a verified `user` with the admin's hash):
//!
//! - `GET /admin/users?limit=50` by cursor at the first, middle and last page: the median of 21
//!   sequential requests per depth, each on a new connection, under 20 ms;
//! - `/token` and `/user` throughput with N users within 10 % of the 1,000-user figure;
//!
//! and on SQLite with 1,000 users, `/token` with `AUDIT_ENABLED=true` against off (both with the
//! state store open, by `PASSWORD_HISTORY=1`, so the account's last-login write is on both
//! sides), in alternating rounds: an audit write costs the login path less than 5 % of its
//! throughput. Writes the `million` section of docs/PERFORMANCE.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use super::{Load, Server, field, login, median, request, scripts, start, target_dir, wrk};

/// The small table's size, the baseline.
const SMALL: u64 = 1_000;
/// Sequential list requests per depth.
const LIST_SAMPLES: usize = 21;

/// Where the users table is.
enum Db<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

impl Db<'_> {
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Db::Sqlite(path) => vec![("SQLITE_DB_PATH", path.display().to_string())],
            Db::Postgres(dsn) => vec![
                ("AUTH_BACKEND", "postgres".to_owned()),
                ("POSTGRES_DSN", (*dsn).to_owned()),
            ],
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    /// Adds users until the table has `total` rows (the admin's hash for all, never used).
    fn grow_to(&self, total: u64) -> Result<()> {
        let started = Instant::now();
        let sql = format!(
            "INSERT INTO users (email, role, password, tenant_id, verified_at) \
             SELECT 'user' || i || '@bench.example', 'user', \
                    (SELECT password FROM users ORDER BY id LIMIT 1), NULL, {now} \
             FROM {series} \
             WHERE i > (SELECT count(*) FROM users) - 1;",
            now = match self {
                Db::Sqlite(_) => "'2026-12-01T00:00:00.000000+00:00'",
                Db::Postgres(_) => "now()",
            },
            series = match self {
                Db::Sqlite(_) => format!(
                    "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                     WHERE i < {last}) SELECT i FROM n)",
                    last = total - 1
                ),
                Db::Postgres(_) => format!("generate_series(1, {}) AS s(i)", total - 1),
            },
        );
        let status = match self {
            Db::Sqlite(path) => Command::new("sqlite3").arg(path).arg(&sql).status()?,
            Db::Postgres(dsn) => Command::new("psql")
                .args([
                    dsn,
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    &sql,
                    "-c",
                    "ANALYZE users;",
                ])
                .status()?,
        };
        if !status.success() {
            bail!("growing the {} users table failed", self.label());
        }
        eprintln!(
            "bench: {} users table at {total} rows in {:.1} s",
            self.label(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// One table size's figures.
struct Size {
    list_ms: Vec<(String, f64)>,
    token: Load,
    user: Load,
}

fn serve(bin: &Path, db: &Db, extra: &[(&str, &str)]) -> Result<Server> {
    let env = db.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    start(bin, &all)
}

/// The opaque cursor of the page after user `id` (core's `flows::admin::encode_cursor`).
fn cursor(id: u64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = format!("i:{id}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Measures one table size on a running server.
fn measure(server: &Server, users: u64, seconds: u64) -> Result<Size> {
    let tokens = login(server.port)?;
    let access = field(&tokens, "access_token")?;
    let dir = scripts(&access, &field(&tokens, "refresh_token")?)?;
    let bearer = format!("Bearer {access}");
    let mut list_ms = Vec::new();
    for (depth, after) in [
        ("first page", None),
        ("middle", Some(users / 2)),
        ("last page", Some(users - 20)),
    ] {
        let path = match after {
            None => "/admin/users?limit=50".to_owned(),
            Some(id) => format!("/admin/users?limit=50&cursor={}", cursor(id)),
        };
        let mut samples = Vec::new();
        for _ in 0..LIST_SAMPLES {
            let started = Instant::now();
            let res = request(server.port, "GET", &path, Some(&bearer), "")?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            if !res.starts_with("HTTP/1.1 200") || !res.contains("\"users\":[{") {
                bail!("GET {path}: {res}");
            }
        }
        list_ms.push((depth.to_owned(), median(samples)));
    }
    let base = format!("http://127.0.0.1:{}", server.port);
    let user = wrk(&base, "/user", Some(&dir.join("user.lua")), 2, 32, seconds)?;
    let token = wrk(
        &base,
        "/token",
        Some(&dir.join("token.lua")),
        1,
        16,
        seconds,
    )?;
    Ok(Size {
        list_ms,
        token,
        user,
    })
}

/// Both sizes on one backend.
fn sizes(bin: &Path, db: &Db, users: u64, seconds: u64) -> Result<(Size, Size)> {
    eprintln!("bench: {} with {SMALL} users", db.label());
    // Created (migrated, the admin inserted) by a first start.
    drop(serve(bin, db, &[])?);
    db.grow_to(SMALL)?;
    let small = {
        let server = serve(bin, db, &[])?;
        measure(&server, SMALL, seconds)?
    };
    db.grow_to(users)?;
    eprintln!("bench: {} with {users} users", db.label());
    let server = serve(bin, db, &[])?;
    let large = measure(&server, users, seconds)?;
    Ok((small, large))
}

/// `/token` with the audit table on and off, alternating; (off, on) medians.
fn audit_cost(bin: &Path, seconds: u64) -> Result<(f64, f64, u64)> {
    let dir = tempdir()?;
    let path = dir.join("audit.db");
    let db = Db::Sqlite(&path);
    drop(serve(bin, &db, &[])?);
    db.grow_to(SMALL)?;
    let (mut off, mut on, mut errors) = (Vec::new(), Vec::new(), 0);
    for round in 0..3 {
        for (audit, out) in [("false", &mut off), ("true", &mut on)] {
            eprintln!(
                "bench: round {}, /token with AUDIT_ENABLED={audit}",
                round + 1
            );
            // The state store open on both sides (a policy that costs a login nothing more than
            // the account's last-login write, which any policy brings): only the audit differs.
            let server = serve(
                bin,
                &db,
                &[("AUDIT_ENABLED", audit), ("PASSWORD_HISTORY", "1")],
            )?;
            let tokens = login(server.port)?;
            let dir = scripts(
                &field(&tokens, "access_token")?,
                &field(&tokens, "refresh_token")?,
            )?;
            let base = format!("http://127.0.0.1:{}", server.port);
            let load = wrk(
                &base,
                "/token",
                Some(&dir.join("token.lua")),
                1,
                16,
                seconds,
            )?;
            errors += load.errors;
            out.push(load.rps);
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok((median(off), median(on), errors))
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = target_dir().join(format!(
        "bench/million-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub fn run(args: &[String]) -> Result<()> {
    let arg = |name: &str, default: u64| {
        args.windows(2)
            .find(|w| w[0] == name)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(default)
    };
    let (users, seconds) = (arg("--users", 1_000_000), arg("--seconds", 10));
    if users <= SMALL {
        bail!("--users must be over {SMALL}");
    }
    for (tool, package) in [("wrk", "wrk"), ("sqlite3", "sqlite3")] {
        if Command::new(tool).arg("--version").output().is_err() {
            crate::services::install_debian(&[package])?;
        }
    }
    crate::run(Command::new("cargo").args(["build", "--release", "--package", "authura"]))?;
    let bin = target_dir().join("release/authura");

    let dir = tempdir()?;
    let sqlite_path = dir.join("users.db");
    let sqlite = sizes(&bin, &Db::Sqlite(&sqlite_path), users, seconds)?;
    std::fs::remove_dir_all(&dir)?;
    let pg = crate::postgres::start()?;
    let postgres = sizes(&bin, &Db::Postgres(pg.url()), users, seconds)?;
    drop(pg);
    let (audit_off, audit_on, audit_errors) = audit_cost(&bin, seconds)?;

    let mut t = String::new();
    let mut all_ok = true;
    writeln!(
        t,
        "Run {} on {}, release build, `cargo xtask bench million --users {users}`: wrk over \
         loopback, {seconds} s per load; list latencies are the median of {LIST_SAMPLES} \
         sequential requests on new connections.\n",
        super::utc_now(),
        super::machine()
    )?;
    writeln!(t, "| measure | SQLite | PostgreSQL | target | |")?;
    writeln!(t, "|---|---|---|---|---|")?;
    let mark = |ok: bool| if ok { "✅" } else { "❌" };
    for i in 0..3 {
        let (depth, a) = &sqlite.1.list_ms[i];
        let b = postgres.1.list_ms[i].1;
        let ok = *a < 20.0 && b < 20.0;
        all_ok &= ok;
        writeln!(
            t,
            "| `GET /admin/users?limit=50`, {users} users, {depth} | {a:.2} ms | {b:.2} ms | < 20 ms | {} |",
            mark(ok)
        )?;
    }
    for (name, pick) in [
        ("POST /token", (|s: &Size| s.token.rps) as fn(&Size) -> f64),
        ("GET /user", |s: &Size| s.user.rps),
    ] {
        let (a_small, a_large) = (pick(&sqlite.0), pick(&sqlite.1));
        let (b_small, b_large) = (pick(&postgres.0), pick(&postgres.1));
        let (ra, rb) = (a_large / a_small, b_large / b_small);
        let ok = ra >= 0.9 && rb >= 0.9;
        all_ok &= ok;
        writeln!(
            t,
            "| {name}: {users} users ÷ {SMALL} users | {a_large:.0} ÷ {a_small:.0} req/s = {:.1} % | {b_large:.0} ÷ {b_small:.0} req/s = {:.1} % | ≥ 90 % | {} |",
            ra * 100.0,
            rb * 100.0,
            mark(ok)
        )?;
    }
    let audit_ratio = audit_on / audit_off;
    let ok = audit_ratio >= 0.95;
    all_ok &= ok;
    writeln!(
        t,
        "| POST /token, `AUDIT_ENABLED=true` ÷ off, both with the state store (`PASSWORD_HISTORY=1`; {SMALL} users, 3 alternating rounds, medians) | {audit_on:.0} ÷ {audit_off:.0} req/s = {:.1} % | | ≥ 95 % | {} |",
        audit_ratio * 100.0,
        mark(ok)
    )?;
    let errors: u64 = [&sqlite.0, &sqlite.1, &postgres.0, &postgres.1]
        .iter()
        .map(|s| s.token.errors + s.user.errors)
        .sum::<u64>()
        + audit_errors;
    all_ok &= errors == 0;
    writeln!(t, "\nErrors (non-2xx or socket): {errors}.")?;
    print!("{t}");
    super::write_section("million", &t)?;
    if !all_ok {
        bail!("a target was missed (see docs/PERFORMANCE.md)");
    }
    Ok(())
}
