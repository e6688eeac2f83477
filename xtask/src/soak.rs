//! `cargo xtask soak --minutes N`: the release server on SQLite under a mixed workload for N
//! minutes at about 80 % of the capacity measured first, reporting errors, the drift of the p99
//! latency (first minute against last) and of the resident memory; written to
//! docs/PERFORMANCE.md. The server, its HTTP exchange and the memory readings are `bench`'s.
//!
//! One journey, repeated by every worker with a new address each time: `/signup`, the link
//! from the dummy mailer's log, `/verify-email` with a password, `/token`, `/refresh`, `/user`
//! (several times), `/change-password`, `/token` with the new password. Every answer must be
//! 200; anything else is an error.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::bench::{self, Server};

const PASSWORD: &str = "Soak-Passw0rd!";
const NEW_PASSWORD: &str = "Soak-N3w-Passw0rd!";
/// Concurrent journeys.
const WORKERS: usize = 8;
/// `/user` reads per journey.
const READS: usize = 6;
/// How long the capacity is measured.
const CAPACITY_SECONDS: u64 = 30;

/// Links the dummy mailer logged, by address.
#[derive(Default)]
struct Links {
    map: Mutex<HashMap<String, String>>,
    arrived: Condvar,
}

impl Links {
    fn wait(&self, email: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut map = self.map.lock().ok()?;
        loop {
            if let Some(token) = map.remove(email) {
                return Some(token);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            map = self.arrived.wait_timeout(map, left).ok()?.0;
        }
    }
}

/// Follows the server's log, collecting `to=<address> … token=<token>`.
fn follow_log(path: &Path, links: Arc<Links>, stop: Arc<AtomicBool>) -> Result<()> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            // At the end for now (a partial line is read again whole).
            if !line.is_empty() {
                reader.seek_relative(-i64::try_from(line.len())?)?;
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let to = line
            .split_once("to=")
            .and_then(|(_, r)| r.split_whitespace().next());
        let token = line.split_once("token=").and_then(|(_, r)| {
            r.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                .next()
        });
        if let (Some(to), Some(token)) = (to, token) {
            if let Ok(mut map) = links.map.lock() {
                map.insert(to.to_owned(), token.to_owned());
            }
            links.arrived.notify_all();
        }
    }
    Ok(())
}

/// Latencies and errors, by the second since the start of a run.
#[derive(Default)]
struct Record {
    /// (second, latency in µs)
    latencies: Vec<(u64, u64)>,
    errors: Vec<String>,
}

struct Run {
    port: u16,
    links: Arc<Links>,
    record: Mutex<Record>,
    started: Instant,
    next_id: AtomicU64,
    journeys: AtomicU64,
}

impl Run {
    /// One request; `Some(body)` when it answered 200.
    fn call(&self, method: &str, path: &str, auth: Option<&str>, json: &str) -> Option<String> {
        let t = Instant::now();
        let res = bench::request(self.port, method, path, auth, json);
        let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        let second = self.started.elapsed().as_secs();
        let mut record = self.record.lock().ok()?;
        record.latencies.push((second, micros));
        match res {
            Ok(r) if r.starts_with("HTTP/1.1 200") => Some(r),
            Ok(r) => {
                let status = r.lines().next().unwrap_or("").to_owned();
                record.errors.push(format!("{method} {path}: {status}"));
                None
            }
            Err(e) => {
                record.errors.push(format!("{method} {path}: {e}"));
                None
            }
        }
    }

    /// The whole journey for a new address; `None` at the first failure.
    fn journey(&self) -> Option<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let email = format!("soak{id}@example.com");
        self.call(
            "POST",
            "/signup",
            None,
            &format!(r#"{{"email":"{email}"}}"#),
        )?;
        let Some(token) = self.links.wait(&email) else {
            if let Ok(mut r) = self.record.lock() {
                r.errors.push(format!("no link logged for {email}"));
            }
            return None;
        };
        self.call(
            "POST",
            "/verify-email",
            None,
            &format!(r#"{{"token":"{token}","password":"{PASSWORD}"}}"#),
        )?;
        let login = format!(r#"{{"email":"{email}","password":"{PASSWORD}"}}"#);
        let tokens = self.call("POST", "/token", None, &login)?;
        let refresh = bench::field(&tokens, "refresh_token").ok()?;
        let tokens = self.call(
            "POST",
            "/refresh",
            None,
            &format!(r#"{{"refresh_token":"{refresh}"}}"#),
        )?;
        let bearer = format!("Bearer {}", bench::field(&tokens, "access_token").ok()?);
        for _ in 0..READS {
            self.call("GET", "/user", Some(&bearer), "")?;
        }
        self.call(
            "POST",
            "/change-password",
            Some(&bearer),
            &format!(r#"{{"old_password":"{PASSWORD}","new_password":"{NEW_PASSWORD}"}}"#),
        )?;
        self.call(
            "POST",
            "/token",
            None,
            &format!(r#"{{"email":"{email}","password":"{NEW_PASSWORD}"}}"#),
        )?;
        self.journeys.fetch_add(1, Ordering::Relaxed);
        Some(())
    }
}

/// Runs `WORKERS` workers for `duration`; with `pace`, each starts a journey no more often
/// than that (open loop at a fixed rate), else back to back (the capacity). RSS is sampled
/// every 10 s into `rss`.
fn drive(run: &Arc<Run>, duration: Duration, pace: Option<Duration>, pid: u32) -> Vec<(u64, u64)> {
    let stop_at = run.started + duration;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let run = Arc::clone(run);
            std::thread::spawn(move || {
                // Spread the workers' first starts over one pace.
                let mut next = Instant::now()
                    + pace.map_or(Duration::ZERO, |p| p * u32::try_from(w).unwrap_or(0) / 8);
                while Instant::now() < stop_at {
                    if let Some(p) = pace {
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        next += p;
                    }
                    let _ = run.journey();
                }
            })
        })
        .collect();
    let mut rss = Vec::new();
    while Instant::now() < stop_at {
        rss.push((run.started.elapsed().as_secs(), bench::rss_kib(pid)));
        std::thread::sleep(Duration::from_secs(10).min(stop_at - Instant::now()));
    }
    for w in workers {
        let _ = w.join();
    }
    rss.push((run.started.elapsed().as_secs(), bench::rss_kib(pid)));
    rss
}

fn p99(mut v: Vec<u64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = (v.len() * 99).div_ceil(100).saturating_sub(1);
    v[i] as f64 / 1000.0
}

/// Runs the soak. `--minutes N` (default 10).
pub fn run(args: &[String]) -> Result<()> {
    let minutes: u64 = match args {
        [] => 10,
        [flag, n] if flag == "--minutes" => n
            .parse()
            .with_context(|| format!("--minutes takes a whole number, not {n:?}"))?,
        _ => bail!("usage: cargo xtask soak [--minutes N]"),
    };
    crate::run(Command::new("cargo").args(["build", "--release", "--package", "authura"]))?;
    let bin = bench::target_dir().join("release/authura");
    let log = bench::target_dir().join("soak-server.log");
    let server: Server =
        bench::start_logged(&bin, &[("RUST_LOG", "warn,authura_mail=info")], Some(&log))?;
    let pid = server.child.id();
    let links = Arc::new(Links::default());
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (links, stop, log) = (Arc::clone(&links), Arc::clone(&stop), log.clone());
        std::thread::spawn(move || follow_log(&log, links, stop))
    };
    let port = server.port;
    let new_run = |first_id: u64| {
        Arc::new(Run {
            port,
            links: Arc::clone(&links),
            record: Mutex::new(Record::default()),
            started: Instant::now(),
            next_id: AtomicU64::new(first_id),
            journeys: AtomicU64::new(0),
        })
    };

    eprintln!("soak: measuring capacity for {CAPACITY_SECONDS} s ({WORKERS} workers back to back)");
    let measure = new_run(0);
    drive(&measure, Duration::from_secs(CAPACITY_SECONDS), None, pid);
    let capacity = measure.journeys.load(Ordering::Relaxed) as f64 / CAPACITY_SECONDS as f64;
    let measure_errors = measure.record.lock().map_or(0, |r| r.errors.len());
    if capacity <= 0.0 {
        bail!("no journey completed while measuring the capacity");
    }
    let rate = capacity * 0.8;
    let pace = Duration::from_secs_f64(WORKERS as f64 / rate);
    eprintln!("soak: capacity {capacity:.2} journeys/s; soaking at {rate:.2}/s for {minutes} min");

    let soak = new_run(1_000_000);
    let rss = drive(&soak, Duration::from_secs(minutes * 60), Some(pace), pid);
    stop.store(true, Ordering::Relaxed);
    let _ = follower.join();
    drop(server);

    let record = soak
        .record
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let journeys = soak.journeys.load(Ordering::Relaxed);
    let requests = record.latencies.len();
    let last_minute = (minutes * 60).saturating_sub(60);
    let first = p99(record
        .latencies
        .iter()
        .filter(|(s, _)| *s < 60)
        .map(|(_, l)| *l)
        .collect());
    let last = p99(record
        .latencies
        .iter()
        .filter(|(s, _)| *s >= last_minute)
        .map(|(_, l)| *l)
        .collect());
    let all = p99(record.latencies.iter().map(|(_, l)| *l).collect());
    // RSS after the first minute (warm: caches and pools filled) against the end.
    let rss_warm = rss
        .iter()
        .find(|(s, _)| *s >= 60)
        .or(rss.first())
        .map_or(0, |r| r.1);
    let rss_end = rss.last().map_or(0, |r| r.1);
    let rss_peak = rss.iter().map(|r| r.1).max().unwrap_or(0);
    let mib = |k: u64| k as f64 / 1024.0;
    let mut errors_by_kind: HashMap<&str, usize> = HashMap::new();
    for e in &record.errors {
        *errors_by_kind.entry(e.as_str()).or_default() += 1;
    }
    let mut table = String::new();
    writeln!(table, "| measure | value |\n|---|---|")?;
    writeln!(
        table,
        "| capacity (journeys back to back, {WORKERS} workers, {CAPACITY_SECONDS} s) | {capacity:.2} journeys/s ({measure_errors} errors) |"
    )?;
    writeln!(
        table,
        "| soak rate (80 %) | {rate:.2} journeys/s, {:.1} requests/s |",
        requests as f64 / (minutes * 60) as f64
    )?;
    writeln!(table, "| journeys, requests | {journeys}, {requests} |")?;
    writeln!(
        table,
        "| errors (non-200 or failed exchange) | {} |",
        record.errors.len()
    )?;
    writeln!(
        table,
        "| p99, whole run | {all:.1} ms |\n| p99, first minute → last minute | {first:.1} ms → {last:.1} ms ({:+.0} %) |",
        (last / first - 1.0) * 100.0
    )?;
    writeln!(
        table,
        "| RSS after the first minute → end (peak) | {:.1} MiB → {:.1} MiB ({:+.1} MiB; peak {:.1} MiB) |",
        mib(rss_warm),
        mib(rss_end),
        mib(rss_end) - mib(rss_warm),
        mib(rss_peak)
    )?;
    let samples: Vec<String> = rss
        .iter()
        .map(|(s, k)| format!("{s} s: {:.1}", mib(*k)))
        .collect();
    let report = format!(
        "Run {} on {}, release build on SQLite, `cargo xtask soak --minutes {minutes}`. One journey: /signup, the link from the dummy mailer's log, /verify-email with a password, /token, /refresh, {READS} × /user, /change-password, /token with the new password (four Argon2id hashes or checks). The machine is shared with other builds, so absolute figures move; the drifts are the point.\n\n{table}\nRSS samples (MiB): {}.\n",
        bench::utc_now(),
        bench::machine(),
        samples.join(", ")
    );
    println!("{report}");
    for (kind, n) in &errors_by_kind {
        eprintln!("soak: error ×{n}: {kind}");
    }
    bench::write_section("soak", &report)?;
    if !record.errors.is_empty() {
        bail!("{} errors during the soak", record.errors.len());
    }
    Ok(())
}
