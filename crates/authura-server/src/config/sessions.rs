//! The sessions section (SPEC §8, §13): server-side sessions, their cookie, `/check`'s Basic
//! credentials, the cache, and `STATE_DSN`, where the state store lives for the backends that
//! have no database of their own.

use std::time::Duration;

use authura_core::state::StateDsn;
use authura_session::SessionSettings;

use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    SESSIONS_ENABLED = Var::new(
        "sessions",
        "`true` keeps a server-side session for every sign-in (`/token`, `/verify-email`, `POST \
         /session`) in the state store, binds the tokens to it (`sid`, `gen`), rotates refresh \
         tokens with reuse detection, and serves `/session`, `/sessions`, `/logout` and \
         `/check`. `false`: tokens stay stateless and no state table is created.",
    )
    .default("false")
    .new_variable();
    STATE_DSN = Var::new(
        "sessions",
        "Where Authura keeps its own `authura_*` tables when the users backend is `hasura` or \
         `http`: `sqlite:/path/to/file.db` or a `postgres://` DSN. Required with sessions on \
         those backends; refused with `sqlite` and `postgres` (the state lives beside the users \
         table: one database, one truth). Secret (`_FILE` works).",
    )
    .unset("unset")
    .secret()
    .new_variable();
    SESSION_EXPIRATION = Var::new(
        "sessions",
        "A session's absolute lifetime from sign-in, as a Go duration.",
    )
    .default("720h")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    SESSION_IDLE_TIMEOUT = Var::new(
        "sessions",
        "A session not seen for this long ends (`0s` = off).",
    )
    .default("0s")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    MAX_ACTIVE_SESSIONS = Var::new(
        "sessions",
        "The most live sessions a user keeps; opening one more ends their oldest (`0` = \
         unlimited).",
    )
    .default("0")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    REFRESH_REUSE_INTERVAL = Var::new(
        "sessions",
        "How long after a rotation the refresh token just before still gets a pair (two tabs \
         refreshing at once); an older one is a reuse and ends the session.",
    )
    .default("10s")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    SESSION_COOKIE_NAME = Var::new(
        "sessions",
        "The session cookie's name (`HttpOnly; SameSite=Lax; Path=/`).",
    )
    .default("authura_session")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    SESSION_COOKIE_SECURE = Var::new(
        "sessions",
        "`Secure` on the cookie (browsers then send it over https only). `serve --dev` defaults \
         it to `false`.",
    )
    .computed("`true` (`false` with `serve --dev`)")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    SESSION_COOKIE_DOMAIN = Var::new(
        "sessions",
        "The cookie's `Domain` (one sign-in for every app under a parent domain); unset, the \
         cookie is for this host only.",
    )
    .unset("unset (this host)")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    CHECK_BASIC_ENABLED = Var::new(
        "sessions",
        "`true` lets `GET /check` take `Authorization: Basic base64(email:password)` (Authaus \
         clients): a once-off check, no session, hashed on the pool, counted by the per-IP and \
         per-account limits.",
    )
    .default("false")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    SESSION_CACHE_SIZE = Var::new(
        "sessions",
        "Sessions each instance keeps in memory to answer `/check` without a database round \
         trip.",
    )
    .default("10000")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    SESSION_CACHE_TTL = Var::new(
        "sessions",
        "How long a cached session is trusted before it is checked against the database again \
         (bounds what a change made outside Authura can leave stale).",
    )
    .default("60s")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
}

/// Server-side sessions as configured (`SESSIONS_ENABLED=true`).
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// The policy's settings (expiry, idleness, max active, the reuse interval).
    pub settings: SessionSettings,
    /// The cookie.
    pub cookie: CookieSettings,
    /// `CHECK_BASIC_ENABLED`.
    pub check_basic: bool,
    /// `SESSION_CACHE_SIZE`.
    pub cache_size: usize,
    /// `SESSION_CACHE_TTL`.
    pub cache_ttl: Duration,
}

/// The session cookie (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    /// `SESSION_COOKIE_NAME`.
    pub name: String,
    /// `SESSION_COOKIE_SECURE`.
    pub secure: bool,
    /// `SESSION_COOKIE_DOMAIN`.
    pub domain: Option<String>,
}

/// Where the state store is, once a stateful feature is on.
#[derive(Debug, Clone)]
pub enum StateConfig {
    /// Beside the users table, in the backend's own database (sqlite, postgres).
    Beside,
    /// In `STATE_DSN` (hasura, http).
    Dsn(StateDsn),
}

/// The backends whose database holds the state store.
const OWN_DATABASE: &[&str] = &["sqlite", "postgres"];

/// `SESSIONS_ENABLED` and the `SESSION_*` variables; a problem for each malformed one.
/// Variables of sessions set while sessions are off are ignored with a warning.
pub fn read_sessions(r: &mut Reader, dev: bool) -> Option<SessionsConfig> {
    let enabled = r.bool(&SESSIONS_ENABLED);
    if !enabled {
        let set: Vec<&str> = VARS
            .iter()
            .filter(|var| var.name != SESSIONS_ENABLED.name && var.name != STATE_DSN.name)
            .filter(|var| r.is_set(var))
            .map(|var| var.name)
            .collect();
        if !set.is_empty() {
            r.warnings.push(format!(
                "{} set while SESSIONS_ENABLED is not true; ignored",
                set.join(", ")
            ));
        }
        return None;
    }
    let expiration = r.positive_duration(&SESSION_EXPIRATION);
    let idle_timeout = r.duration(&SESSION_IDLE_TIMEOUT);
    let max_active = r.number::<u32>(&MAX_ACTIVE_SESSIONS);
    let reuse_interval = r.duration(&REFRESH_REUSE_INTERVAL);
    let name = r.text(&SESSION_COOKIE_NAME);
    if !is_cookie_name(&name) {
        r.problem(format!(
            "SESSION_COOKIE_NAME: {name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    let secure = match r.string(&SESSION_COOKIE_SECURE) {
        None => r.default(&SESSION_COOKIE_SECURE, if dev { "false" } else { "true" }) == "true",
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                r.problem(format!(
                    "SESSION_COOKIE_SECURE: expected true or false, got {v:?}"
                ));
                true
            }
        },
    };
    let domain = r.string(&SESSION_COOKIE_DOMAIN).filter(|d| !d.is_empty());
    if let Some(d) = &domain
        && !is_cookie_domain(d)
    {
        r.problem(format!(
            "SESSION_COOKIE_DOMAIN: {d:?} is not a domain name (like example.com)"
        ));
    }
    let check_basic = r.bool(&CHECK_BASIC_ENABLED);
    let cache_size = r.number::<usize>(&SESSION_CACHE_SIZE);
    let cache_ttl = r.duration(&SESSION_CACHE_TTL);
    Some(SessionsConfig {
        settings: SessionSettings {
            expiration: expiration?,
            idle_timeout: idle_timeout?,
            max_active,
            reuse_interval: reuse_interval?,
        },
        cookie: CookieSettings {
            name,
            secure,
            domain,
        },
        check_basic,
        cache_size,
        cache_ttl: cache_ttl?,
    })
}

/// `STATE_DSN` for `backend`: where the state store is when a feature that needs it is on
/// (`stateful` names them, as `NAME=value`), `None` when none is. A DSN beside an own-database
/// backend is refused; a missing one with hasura or http is a problem naming `STATE_DSN`.
pub fn read_state(r: &mut Reader, backend: &str, features: &[String]) -> Option<StateConfig> {
    let stateful = !features.is_empty();
    let dsn = r.secret(&STATE_DSN);
    let own = OWN_DATABASE.contains(&backend);
    match dsn {
        Some(_) if own => {
            r.problem(format!(
                "STATE_DSN is set, but the {backend} backend keeps Authura's tables beside the \
                 users table (one database, one truth); unset it"
            ));
            None
        }
        Some(_) if !stateful => {
            r.warnings.push(
                "STATE_DSN is set but no feature that needs the state store is on \
                 (SESSIONS_ENABLED, LOCKOUT_THRESHOLD, PASSWORD_HISTORY, PASSWORD_MAX_AGE, \
                 AUDIT_ENABLED); ignored"
                    .into(),
            );
            None
        }
        Some(dsn) => match StateDsn::parse(dsn.expose()) {
            Ok(dsn) => Some(StateConfig::Dsn(dsn)),
            Err(e) => {
                r.problem(format!("STATE_DSN: {e}"));
                None
            }
        },
        None if !stateful => None,
        None if own => Some(StateConfig::Beside),
        None => {
            r.problem(format!(
                "{} with the {backend} backend needs STATE_DSN (sqlite:/path or postgres://…) \
                 for Authura's own tables",
                features.join(", ")
            ));
            None
        }
    }
}

/// RFC 6265's cookie-name token.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A host name a cookie's `Domain` can hold (a leading dot is tolerated, as browsers do).
fn is_cookie_domain(domain: &str) -> bool {
    let domain = domain.strip_prefix('.').unwrap_or(domain);
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
