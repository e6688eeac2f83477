//! `GET /metrics` (`METRICS_ENABLED=true`): counters in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Recording is a few relaxed atomic additions per request into fixed tables (no locks, no
//! allocation); labels come from closed sets — the routes Authura serves, `other` for any other
//! path, and the status code — so no request can grow the output. Nothing here reads a user,
//! a token or an address: the output holds counts and timings only.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::hashpool::PoolStats;
use crate::state::MailStats;

/// The routes counted by name; any other path is `other`.
pub const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known/jwks.json",
    "/form",
    "/signup",
    "/verify-email",
    "/token",
    "/refresh",
    "/user",
    "/change-password",
    "/change-email",
    "/invite",
    "/reset-password",
];

/// The label of paths that are not a route.
const OTHER: &str = "other";

/// Upper bounds of the duration buckets, in seconds (`+Inf` follows).
const BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status codes 100–599, one slot each.
const CODES: usize = 500;

/// One route's counters.
#[derive(Debug)]
struct Route {
    /// Requests by status code (index = code − 100).
    codes: Box<[AtomicU64]>,
    /// Requests by duration bucket (not cumulative; the last is `+Inf`).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Total duration in nanoseconds.
    nanos: AtomicU64,
}

impl Route {
    fn new() -> Self {
        Route {
            codes: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            nanos: AtomicU64::new(0),
        }
    }
}

/// The request counters, and the start time.
#[derive(Debug)]
pub struct Metrics {
    /// One per entry of [`ROUTES`], then `other`.
    routes: Box<[Route]>,
    started: SystemTime,
    backend: &'static str,
}

impl Metrics {
    /// Empty counters for a server on `backend`.
    pub fn new(backend: &'static str) -> Self {
        Metrics {
            routes: (0..=ROUTES.len()).map(|_| Route::new()).collect(),
            started: SystemTime::now(),
            backend,
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, path: &str, status: u16, elapsed: Duration) {
        let index = ROUTES
            .iter()
            .position(|r| *r == path)
            .unwrap_or(ROUTES.len());
        let route = &self.routes[index];
        if let Some(slot) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| route.codes.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(BUCKETS.len());
        route.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        route.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The exposition: request counters and durations, mail and hashing counters, build and
    /// process information.
    pub fn render(
        &self,
        mail: &MailStats,
        hashing: &PoolStats,
        backend_pool: Option<authura_core::store::PoolStatus>,
    ) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_requests(&mut out);
        render_counters(
            &mut out,
            "authura_mail_total",
            "Mails by outcome: sent, failed (the server refused or was unreachable), dropped (the send queue was full).",
            "result",
            &[
                ("sent", &mail.sent),
                ("failed", &mail.failed),
                ("dropped", &mail.dropped),
            ],
        );
        for (name, help, value) in [
            (
                "authura_password_verifications_total",
                "Password verifications run, including those against a dummy hash for unknown accounts.",
                &hashing.verifications,
            ),
            (
                "authura_password_hashes_total",
                "New password hashes made (signup, reset, change, and upgrades of older hashes).",
                &hashing.hashes,
            ),
            (
                "authura_password_jobs_rejected_total",
                "Hashing jobs refused because the queue was full (answered 503 overloaded).",
                &hashing.rejected,
            ),
        ] {
            single(
                &mut out,
                name,
                help,
                "counter",
                value.load(Ordering::Relaxed),
            );
        }
        if let Some(pool) = backend_pool {
            for (name, help, value) in [
                (
                    "authura_backend_connections_max",
                    "The most connections the backend's pool opens (POSTGRES_POOL_SIZE).",
                    pool.max,
                ),
                (
                    "authura_backend_connections_open",
                    "Connections to the backend open now, in use or idle.",
                    pool.open,
                ),
                (
                    "authura_backend_connections_idle",
                    "Open connections to the backend idle in the pool.",
                    pool.idle,
                ),
                (
                    "authura_backend_connections_waiting",
                    "Requests waiting for a connection to the backend (the pool is exhausted).",
                    pool.waiting,
                ),
            ] {
                single(&mut out, name, help, "gauge", value);
            }
        }
        header(
            &mut out,
            "authura_build_info",
            "Authura's version and the backend it serves from.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "authura_build_info{{version=\"{}\",backend=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            self.backend
        );
        self.render_process(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let label = |i: usize| ROUTES.get(i).copied().unwrap_or(OTHER);
        header(
            out,
            "authura_http_requests_total",
            "HTTP requests answered, by route and status code.",
            "counter",
        );
        for (i, route) in self.routes.iter().enumerate() {
            for (code, count) in route.codes.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "authura_http_requests_total{{route=\"{}\",code=\"{}\"}} {count}",
                        label(i),
                        code + 100
                    );
                }
            }
        }
        header(
            out,
            "authura_http_request_duration_seconds",
            "Time from receiving a request to its answer, by route.",
            "histogram",
        );
        for (i, route) in self.routes.iter().enumerate() {
            let counts: Vec<u64> = route
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let name = "authura_http_request_duration_seconds";
            let mut cumulative = 0;
            for (le, count) in BUCKETS.iter().zip(&counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{}\",le=\"{le}\"}} {cumulative}",
                    label(i)
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{}\",le=\"+Inf\"}} {total}",
                label(i)
            );
            let seconds = Duration::from_nanos(route.nanos.load(Ordering::Relaxed)).as_secs_f64();
            let _ = writeln!(out, "{name}_sum{{route=\"{}\"}} {seconds}", label(i));
            let _ = writeln!(out, "{name}_count{{route=\"{}\"}} {total}", label(i));
        }
    }

    /// The usual `process_*` metrics, from `/proc/self` (absent where it is not readable).
    fn render_process(&self, out: &mut String) {
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        single(
            out,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            "gauge",
            started,
        );
        let Some(proc_self) = ProcSelf::read() else {
            return;
        };
        for (name, help, kind, value) in [
            (
                "process_cpu_seconds_total",
                "User and system CPU time spent, in seconds.",
                "counter",
                proc_self.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes.",
                "gauge",
                proc_self.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes.",
                "gauge",
                proc_self.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors.",
                "gauge",
                proc_self.open_fds,
            ),
        ] {
            single(out, name, help, kind, value);
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric without labels: its header and its one sample.
fn single(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

fn render_counters(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, &AtomicU64)],
) {
    header(out, name, help, "counter");
    for (value, counter) in values {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{value}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
}

/// What `/proc/self` says about this process.
struct ProcSelf {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
}

impl ProcSelf {
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
    fn read() -> Option<ProcSelf> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces;
        // utime and stime are fields 14 and 15 of the whole line (12 and 13 here), in clock
        // ticks of USER_HZ, which Linux fixes at 100 for everything it shows user space.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |key: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(key))?;
            line[key.len()..]
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        };
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        Some(ProcSelf {
            cpu_seconds: ticks as f64 / 100.0,
            resident_bytes: (kib("VmRSS:")? * 1024) as f64,
            virtual_bytes: (kib("VmSize:")? * 1024) as f64,
            open_fds: open_fds as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_route_code_and_bucket() {
        let m = Metrics::new("sqlite");
        m.observe("/user", 200, Duration::from_micros(300));
        m.observe("/user", 200, Duration::from_millis(3));
        m.observe("/user", 401, Duration::from_secs(20));
        m.observe("/nope/../etc", 404, Duration::from_micros(1));
        let text = m.render(&MailStats::default(), &PoolStats::default(), None);
        for line in [
            "authura_http_requests_total{route=\"/user\",code=\"200\"} 2",
            "authura_http_requests_total{route=\"/user\",code=\"401\"} 1",
            "authura_http_requests_total{route=\"other\",code=\"404\"} 1",
            "authura_http_request_duration_seconds_bucket{route=\"/user\",le=\"0.0005\"} 1",
            "authura_http_request_duration_seconds_bucket{route=\"/user\",le=\"0.0025\"} 1",
            "authura_http_request_duration_seconds_bucket{route=\"/user\",le=\"0.005\"} 2",
            "authura_http_request_duration_seconds_bucket{route=\"/user\",le=\"10\"} 2",
            "authura_http_request_duration_seconds_bucket{route=\"/user\",le=\"+Inf\"} 3",
            "authura_http_request_duration_seconds_count{route=\"/user\"} 3",
            "authura_http_request_duration_seconds_sum{route=\"/user\"} 20.0033",
            "authura_build_info{version=\"0.1.0\",backend=\"sqlite\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        // Routes nobody asked for are left out; the path itself is never a label.
        assert!(!text.contains("route=\"/token\""));
        assert!(!text.contains("etc"));
    }

    #[test]
    fn process_figures_are_read() {
        let p = ProcSelf::read().unwrap();
        assert!(p.resident_bytes > 0.0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.open_fds >= 1.0);
    }
}
