//! The session settings, a plain struct the caller builds (the server's configuration will).

use std::time::Duration;

use authura_core::state::Session;
use chrono::{DateTime, Utc};

/// How sessions behave (SPEC §8). Built by the caller; there is no `Default`, but the SPEC's
/// defaults are named constants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session's absolute lifetime from when it opens (`SESSION_EXPIRATION`).
    pub expiration: Duration,
    /// A session not seen for this long ends (`SESSION_IDLE_TIMEOUT`); zero turns it off.
    pub idle_timeout: Duration,
    /// The most live sessions a user keeps (`MAX_ACTIVE_SESSIONS`); opening one more ends the
    /// oldest. Zero is unlimited.
    pub max_active: u32,
    /// How long after a rotation the refresh token of the generation just before still gets a
    /// pair, without a new rotation (`REFRESH_REUSE_INTERVAL`: two tabs refreshing at once).
    pub reuse_interval: Duration,
}

impl SessionSettings {
    /// `SESSION_EXPIRATION`'s default: 720 hours.
    pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(720 * 3600);
    /// `SESSION_IDLE_TIMEOUT`'s default: off.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::ZERO;
    /// `MAX_ACTIVE_SESSIONS`'s default: unlimited.
    pub const DEFAULT_MAX_ACTIVE: u32 = 0;
    /// `REFRESH_REUSE_INTERVAL`'s default: 10 seconds.
    pub const DEFAULT_REUSE_INTERVAL: Duration = Duration::from_secs(10);

    /// Whether `session` is alive at `now` by the expiry rules: before its absolute
    /// `expires_at` and, with an idle timeout, seen less than that long ago. The one place the
    /// rule is written; the policy and the cache both ask it.
    pub fn is_alive(&self, session: &Session, now: DateTime<Utc>) -> bool {
        let idle = self.idle_timeout;
        now < session.expires_at
            && (idle.is_zero() || now - session.last_seen_at < chrono_duration(idle))
    }
}

/// A std duration as chrono's, saturating (a configured duration is never near the limit).
pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `last_seen_at` is written at most this often per session (SPEC §8), so authenticating a busy
/// session is a read, not a write.
pub const LAST_SEEN_GRANULARITY: Duration = Duration::from_secs(60);

/// The longest `user_agent` kept, in characters.
pub const USER_AGENT_CHARS: usize = 256;
