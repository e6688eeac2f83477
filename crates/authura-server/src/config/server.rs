//! The server section: listening, CORS and host checks, rate limits, proxies, password hashing
//! threads, the extra trust store, metrics and logging.

use std::time::Duration;

use crate::config::LogFormat;
use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    HOST = Var::new(
        "server",
        "Listen address. Flag `--host`.",
    )
    .default("localhost");
    PORT = Var::new(
        "server",
        "Listen port, a number. Flag `--port`.",
    )
    .default("9000");
    ALLOWED_ORIGINS = Var::new(
        "server",
        "CORS origins, a list. An entry with a scheme (`https://app.example.com`) matches that \
         origin exactly; an entry without one (`app.example.com`, `localhost:3000`) matches it \
         over http and https; `*` matches any origin. Compared case-insensitively. The origin of \
         `EXTERNAL_URL` is always allowed. Also feeds the default of `ALLOWED_REDIRECT_URLS`.",
    );
    ALLOWED_HOSTS = Var::new(
        "server",
        "A list of `host[:port]` values, lower-cased. When set, a request whose host (the header \
         named by `HOST_HEADER`, trimmed and lower-cased, port kept) is not listed exactly gets \
         400 `host_not_allowed`. `/healthz`, `/readyz` and `/metrics` are exempt. List the host \
         as clients send it: `auth.example.com` for the default port, `localhost:9000` \
         otherwise.",
    )
    .unset("unset (no check)");
    HOST_HEADER = Var::new(
        "server",
        "The header the host is read from (for `ALLOWED_HOSTS` and the tenant fallback), for \
         example `X-Forwarded-Host` behind a proxy. A header name.",
    )
    .default("Host");
    RATE_PER_MINUTE = Var::new(
        "server",
        "Requests per minute per client IP; `0` turns rate limiting off. A token bucket with a \
         burst of the same size; see `docs/api.md`. The client IP is the TCP peer, or, behind a \
         trusted proxy, what it says in `X-Forwarded-For`. The same rate, per TCP peer, paces \
         malformed HTTP (requests the HTTP layer answers itself: a bad or too large head, a \
         head timeout), which the limiter never sees; see `docs/api.md`, \"Rate limiting\".",
    )
    .default("60");
    TRUSTED_PROXIES = Var::new(
        "server",
        "A list of addresses or CIDR networks (`10.0.0.0/8,::1`). When the TCP peer is in one, \
         the client is the right-most `X-Forwarded-For` entry that is not itself a trusted proxy \
         (entries a client prepends are never believed); it is used for rate limiting and in the \
         request log. Malformed: `TRUSTED_PROXIES: \"x\" is not an address or CIDR network`.",
    )
    .unset("unset (none)")
    .new_variable();
    LOGIN_FAILURES_PER_ACCOUNT = Var::new(
        "server",
        "Failed password logins per account (the submitted email and tenant, whether or not such \
         a user exists) within `LOGIN_FAILURE_WINDOW`; at the limit, further logins on that \
         account get 429 `rate_limited` with `Retry-After` until the window ends, before any \
         password is checked. A correct password clears the count. `0` turns it off.",
    )
    .default("10")
    .new_variable();
    LOGIN_FAILURE_WINDOW = Var::new(
        "server",
        "The window for `LOGIN_FAILURES_PER_ACCOUNT`, a Go duration.",
    )
    .default("15m")
    .new_variable();
    HASH_THREADS = Var::new(
        "server",
        "Threads that hash and verify passwords (Argon2id, at the lowest OS priority, \
         `SCHED_IDLE`, and yielding the CPU every millisecond while they hash), each with a \
         queue of 32 waiting logins; past that, logins get 503 `overloaded`. Logins per second \
         cannot exceed what these threads hash. Within Authura, requests always come first: \
         under a login flood `/user` keeps its idle latency, and logins wait while other \
         requests use the CPU. *Across processes* that priority holds only inside one scheduling \
         group: with autogroup (most desktop and VM kernels) or per-service cgroups (systemd), \
         the kernel first shares the CPU between groups, so a database or app on the same \
         machine sees a login flood as a normal-priority competitor (measured in \
         `docs/PERFORMANCE.md`: PostgreSQL on the same two cores). On a shared machine, set this \
         below the core count, or give Authura's cgroup a lower `cpu.weight` (systemd \
         `CPUWeight=`). `0` is refused.",
    )
    .computed("one per core")
    .new_variable();
    EXTRA_CA_FILE = Var::new(
        "server",
        "A PEM file of CA certificates trusted in addition to the operating system's trust store \
         (see *Trusted roots* below) by every outgoing TLS connection: SMTP, hooks, PostgreSQL, \
         Hasura and the HTTP backend. Must be readable and hold at least one `-----BEGIN \
         CERTIFICATE-----` block, else `EXTRA_CA_FILE: ca.pem holds no PEM certificate` or \
         `EXTRA_CA_FILE: cannot read …`.",
    )
    .new_variable();
    METRICS_ENABLED = Var::new(
        "server",
        "A boolean. `true` serves `GET /metrics` in Prometheus's text format: request counts by \
         route and status, durations, mail and hashing counters, process figures \
         (`docs/api.md`). Counts only, no addresses or accounts; it is not rate limited or \
         host-checked, so keep it off the public internet (a network policy, or your proxy not \
         forwarding `/metrics`). Off: `/metrics` answers 404 like any unknown path, and nothing \
         is counted.",
    )
    .default("false")
    .new_variable();
    HEADER_TIMEOUT = Var::new(
        "server",
        "How long a client may take to send a request's head (request line and headers) once \
         it has connected, a Go duration. Past it, the connection gets a bare 408 and is \
         closed (a slow-head, \"slowloris\", client holds nothing longer than this). It also \
         bounds how long a connection is held at accept while its peer's malformed-HTTP budget \
         refills (`RATE_PER_MINUTE`).",
    )
    .default("10s")
    .new_variable();
    REQUEST_TIMEOUT = Var::new(
        "server",
        "How long a request's body may take to arrive once its head has, a Go duration. Past \
         it (a `Content-Length` body that stops short, a chunked body that never ends), the \
         request is answered 408 `invalid_body` and the connection closed. So no request takes \
         longer than `HEADER_TIMEOUT` + `REQUEST_TIMEOUT` to arrive. At shutdown, a body still \
         arriving gets at most 2 more seconds.",
    )
    .default("20s")
    .new_variable();
    LOG_FORMAT = Var::new(
        "server",
        "`pretty` or `json`. Logs go to standard error.",
    )
    .default("pretty")
    .new_variable();
}

/// `HOST` (localhost) and `PORT` (9000).
pub fn read_listen(r: &mut Reader) -> (String, u16) {
    let host = r.text(&HOST);
    (host, r.number::<u16>(&PORT))
}

/// `ALLOWED_HOSTS`, lower-cased; `None` when the host check is off.
pub fn read_allowed_hosts(r: &mut Reader) -> Option<Vec<String>> {
    r.string(&ALLOWED_HOSTS).map(|_| {
        r.list(&ALLOWED_HOSTS)
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect()
    })
}

/// `TRUSTED_PROXIES`: networks, a bare address being a one-host network.
pub fn read_trusted_proxies(r: &mut Reader) -> Vec<ipnet::IpNet> {
    r.list(&TRUSTED_PROXIES)
        .into_iter()
        .filter_map(|entry| {
            let parsed = entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| {
                    r.problem(format!(
                        "TRUSTED_PROXIES: {entry:?} is not an address or CIDR network"
                    ))
                })
                .ok()
        })
        .collect()
}

/// `HASH_THREADS`: at least 1, one per core by default.
pub fn read_hash_threads(r: &mut Reader) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let hash_threads = r.number_or::<usize>(&HASH_THREADS, cores);
    if hash_threads == 0 {
        r.problem("HASH_THREADS must be at least 1".into());
    }
    hash_threads
}

/// `EXTRA_CA_FILE`: the PEM bundle, checked to hold a certificate.
pub fn read_extra_ca(r: &mut Reader) -> Option<Vec<u8>> {
    r.string(&EXTRA_CA_FILE)
        .and_then(|p| match std::fs::read(&p) {
            Ok(pem) if String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") => {
                Some(pem)
            }
            Ok(_) => {
                r.problem(format!("EXTRA_CA_FILE: {p} holds no PEM certificate"));
                None
            }
            Err(e) => {
                r.problem(format!("EXTRA_CA_FILE: cannot read {p}: {e}"));
                None
            }
        })
}

/// `HEADER_TIMEOUT` and `REQUEST_TIMEOUT`, each longer than zero.
pub fn read_timeouts(r: &mut Reader) -> Option<(Duration, Duration)> {
    let header = r.positive_duration(&HEADER_TIMEOUT);
    let request = r.positive_duration(&REQUEST_TIMEOUT);
    Some((header?, request?))
}

/// `LOG_FORMAT`: pretty (the default) or json.
pub fn read_log_format(r: &mut Reader) -> LogFormat {
    match r.text(&LOG_FORMAT).as_str() {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            r.problem(format!(
                "LOG_FORMAT: expected json or pretty, got {other:?}"
            ));
            LogFormat::Pretty
        }
    }
}
