//! `GET /metrics` (`METRICS_ENABLED=true`): counters in the Prometheus text exposition format
//! (version 0.0.4), written by `prometheus-client`'s encoder.
//!
//! Recording is a few relaxed atomic additions per request into fixed tables (no locks, no
//! hashing, no allocation); labels come from closed sets — the routes Authura serves, `other`
//! for any other path, and the status code — so no request can grow the output. A scrape copies
//! the tables and the other figures into a [`Collector`] and lets the crate write the text
//! (names, `HELP`/`TYPE` lines, label escaping, cumulative buckets with Go-style `le` values).
//! The crate's own `Family` and `Histogram` are not used for recording: they take a lock and
//! hash the labels on every observation (docs/PERFORMANCE.md has the figures). Nothing here
//! reads a user, a token or an address: the output holds counts and timings only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::hashpool::PoolStats;
use crate::state::MailStats;

/// The routes counted by name (a `{…}` segment stands for any one segment); any other path is
/// `other`.
pub const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known/jwks.json",
    "/openapi.json",
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
    "/check",
    "/check/forward-auth",
    "/session",
    "/logout",
    "/sessions",
    "/sessions/{id}",
    "/oauth/token",
    "/oauth/{provider}",
    "/oauth/{provider}/callback",
    "/admin/users",
    "/admin/users/{id}",
    "/admin/users/{id}/sessions",
    "/admin/users/{id}/reset-password",
    "/admin/users/{id}/lock",
    "/admin/users/{id}/unlock",
    "/admin/users/{id}/archive",
    "/admin/users/{id}/restore",
    "/admin/audit",
    "/rolegroups",
    "/rolegroups/{id}",
    "/permits/{user_id}",
];

/// Whether `path` is `route`, a `{…}` segment of `route` matching any one non-empty segment.
fn route_matches(route: &str, path: &str) -> bool {
    if !route.contains('{') {
        return route == path;
    }
    let (mut r, mut p) = (route.split('/'), path.split('/'));
    loop {
        match (r.next(), p.next()) {
            (None, None) => return true,
            (Some(r), Some(p)) if r.starts_with('{') && r.ends_with('}') && !p.is_empty() => {}
            (Some(r), Some(p)) if r == p => {}
            _ => return false,
        }
    }
}

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
            .position(|r| route_matches(r, path))
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
        session_cache: Option<authura_session::CacheStats>,
        audit: Option<&crate::audit::AuditStats>,
        pacing: Option<&crate::pacing::PacingStats>,
    ) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let scrape = Scrape {
            requests: self.requests(),
            durations: self.durations(),
            mail: [load(&mail.sent), load(&mail.failed), load(&mail.dropped)],
            audit: audit.map(|a| [load(&a.written), load(&a.failed), load(&a.dropped)]),
            pacing: pacing.map(|p| [load(&p.malformed), load(&p.paced), load(&p.closed)]),
            hashing: [
                load(&hashing.verifications),
                load(&hashing.hashes),
                load(&hashing.rejected),
            ],
            backend_pool,
            session_cache,
            build: Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                backend: self.backend,
            }),
            started: self
                .started
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            process: ProcSelf::read(),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a `String` cannot fail, and `Scrape::encode` fails only when writing does.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }

    /// The request counts that are not zero, by route and code.
    fn requests(&self) -> Vec<(RequestLabels, u64)> {
        let mut counts = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            for (code, count) in (100..).zip(route.codes.iter()) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let route = route_label(i);
                    counts.push((RequestLabels { route, code }, count));
                }
            }
        }
        counts
    }

    /// The durations of the routes that were asked for: per-bucket counts and the sum.
    fn durations(&self) -> Vec<(RouteLabels, Durations)> {
        let mut durations = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            let counts = route.buckets.each_ref().map(|b| b.load(Ordering::Relaxed));
            let count = counts.iter().sum();
            if count == 0 {
                continue;
            }
            let nanos = route.nanos.load(Ordering::Relaxed);
            durations.push((
                RouteLabels {
                    route: route_label(i),
                },
                Durations {
                    buckets: std::array::from_fn(|b| (BUCKETS[b], counts[b])),
                    count,
                    seconds: Duration::from_nanos(nanos).as_secs_f64(),
                },
            ));
        }
        durations
    }
}

fn route_label(index: usize) -> &'static str {
    ROUTES.get(index).copied().unwrap_or(OTHER)
}

#[derive(Debug, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    code: u16,
}

#[derive(Debug, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    backend: &'static str,
}

/// One route's duration histogram: the finite buckets (not cumulative), the number of
/// requests (the `+Inf` bucket) and the total in seconds.
#[derive(Debug)]
struct Durations {
    buckets: [(f64, u64); BUCKETS.len()],
    count: u64,
    seconds: f64,
}

/// Everything one scrape shows, copied when it started; the registry asks it to encode itself.
#[derive(Debug)]
struct Scrape {
    requests: Vec<(RequestLabels, u64)>,
    durations: Vec<(RouteLabels, Durations)>,
    /// Sent, failed, dropped.
    mail: [u64; 3],
    /// Audit events written, failed, dropped (`AUDIT_ENABLED=true`).
    audit: Option<[u64; 3]>,
    /// Malformed-HTTP connections, paced, closed (with `RATE_PER_MINUTE` above 0).
    pacing: Option<[u64; 3]>,
    /// Verifications, hashes, rejected jobs.
    hashing: [u64; 3],
    backend_pool: Option<authura_core::store::PoolStatus>,
    /// The session cache's counters, with sessions on.
    session_cache: Option<authura_session::CacheStats>,
    build: Info<BuildLabels>,
    /// Seconds since the Unix epoch.
    started: f64,
    process: Option<ProcSelf>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Counters are named without `_total`: the encoder appends it.
        let mut requests = encoder.encode_descriptor(
            "authura_http_requests",
            "HTTP requests answered, by route and status code.",
            None,
            MetricType::Counter,
        )?;
        for (labels, count) in &self.requests {
            ConstCounter::new(*count).encode(requests.encode_family(labels)?)?;
        }
        let mut durations = encoder.encode_descriptor(
            "authura_http_request_duration_seconds",
            "Time from receiving a request to its answer, by route.",
            None,
            MetricType::Histogram,
        )?;
        for (labels, d) in &self.durations {
            durations
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(d.seconds, d.count, &d.buckets, None)?;
        }
        let mut mail = encoder.encode_descriptor(
            "authura_mail",
            "Mails by outcome: sent, failed (the server refused or was unreachable), dropped (the send queue was full).",
            None,
            MetricType::Counter,
        )?;
        for (result, count) in ["sent", "failed", "dropped"].into_iter().zip(self.mail) {
            ConstCounter::new(count).encode(mail.encode_family(&[("result", result)])?)?;
        }
        if let Some(audit) = self.audit {
            let mut events = encoder.encode_descriptor(
                "authura_audit_events",
                "Audit events for the table by outcome: written, failed (the database refused; they are in the log), dropped (the queue was full; they are in the log).",
                None,
                MetricType::Counter,
            )?;
            for (result, count) in ["written", "failed", "dropped"].into_iter().zip(audit) {
                ConstCounter::new(count).encode(events.encode_family(&[("result", result)])?)?;
            }
        }
        if let Some([malformed, paced, closed]) = self.pacing {
            for (name, help, count) in [
                (
                    "authura_malformed_http_connections",
                    "Connections whose first answer was the HTTP layer's own (a malformed or too large request head, a head timeout), each charged to its peer's budget (RATE_PER_MINUTE).",
                    malformed,
                ),
                (
                    "authura_malformed_http_paced",
                    "Connections held at accept until their peer's malformed-HTTP budget had refilled.",
                    paced,
                ),
                (
                    "authura_malformed_http_closed",
                    "Connections closed without an answer: their peer's malformed-HTTP budget and queue were used up.",
                    closed,
                ),
            ] {
                single(&mut encoder, name, help, &ConstCounter::new(count))?;
            }
        }
        for (name, help, count) in [
            (
                "authura_password_verifications",
                "Password verifications run, including those against a dummy hash for unknown accounts.",
                self.hashing[0],
            ),
            (
                "authura_password_hashes",
                "New password hashes made (signup, reset, change, and upgrades of older hashes).",
                self.hashing[1],
            ),
            (
                "authura_password_jobs_rejected",
                "Hashing jobs refused because the queue was full (answered 503 overloaded).",
                self.hashing[2],
            ),
        ] {
            single(&mut encoder, name, help, &ConstCounter::new(count))?;
        }
        if let Some(pool) = self.backend_pool {
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
                single(&mut encoder, name, help, &ConstGauge::new(value))?;
            }
        }
        if let Some(cache) = self.session_cache {
            for (name, help, count) in [
                (
                    "authura_session_cache_hits",
                    "Session lookups (/check with a session key) answered from this instance's cache.",
                    cache.hits,
                ),
                (
                    "authura_session_cache_misses",
                    "Session lookups that went to the state store (absent, too old, dead, or the cache bypassed).",
                    cache.misses,
                ),
                (
                    "authura_session_cache_evictions",
                    "Cached sessions pushed out to make room (SESSION_CACHE_SIZE).",
                    cache.evictions,
                ),
                (
                    "authura_session_cache_invalidations",
                    "State events and clears applied to the cache (logouts, user changes, lost events).",
                    cache.invalidations,
                ),
            ] {
                single(&mut encoder, name, help, &ConstCounter::new(count))?;
            }
            single(
                &mut encoder,
                "authura_session_cache_entries",
                "Sessions held in this instance's cache now.",
                &ConstGauge::new(cache.entries),
            )?;
        }
        // An info metric: `authura_build_info{…} 1`, typed gauge in this format.
        single(
            &mut encoder,
            "authura_build",
            "Authura's version and the backend it serves from.",
            &self.build,
        )?;
        self.encode_process(&mut encoder)
    }
}

impl Scrape {
    /// The usual `process_*` metrics, from `/proc/self` (absent where it is not readable).
    fn encode_process(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        single(
            encoder,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            &ConstGauge::new(self.started),
        )?;
        let Some(p) = &self.process else {
            return Ok(());
        };
        single(
            encoder,
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            &ConstCounter::new(p.cpu_seconds),
        )?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes.",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes.",
                p.virtual_bytes,
            ),
            ("process_open_fds", "Open file descriptors.", p.open_fds),
        ] {
            single(encoder, name, help, &ConstGauge::new(value))?;
        }
        Ok(())
    }
}

/// A metric without labels (or with constant ones): its header and its one sample.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// What `/proc/self` says about this process.
#[derive(Debug)]
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
    #[test]
    fn templated_routes_count_their_paths() {
        use super::route_matches;
        assert!(route_matches("/sessions/{id}", "/sessions/6b1c"));
        assert!(!route_matches("/sessions/{id}", "/sessions/"));
        assert!(!route_matches("/sessions/{id}", "/sessions/a/b"));
        assert!(!route_matches("/sessions/{id}", "/sessions"));
        assert!(route_matches("/token", "/token"));
        assert!(!route_matches("/token", "/token/x"));
    }

    use super::*;

    #[test]
    fn requests_land_in_their_route_code_and_bucket() {
        let m = Metrics::new("sqlite");
        m.observe("/user", 200, Duration::from_micros(300));
        m.observe("/user", 200, Duration::from_millis(3));
        m.observe("/user", 401, Duration::from_secs(20));
        m.observe("/nope/../etc", 404, Duration::from_micros(1));
        let pacing = crate::pacing::PacingStats::default();
        pacing.malformed.store(7, Ordering::Relaxed);
        pacing.paced.store(2, Ordering::Relaxed);
        pacing.closed.store(1, Ordering::Relaxed);
        let text = m.render(
            &MailStats::default(),
            &PoolStats::default(),
            None,
            None,
            None,
            Some(&pacing),
        );
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
            "authura_malformed_http_connections_total 7",
            "authura_malformed_http_paced_total 2",
            "authura_malformed_http_closed_total 1",
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
