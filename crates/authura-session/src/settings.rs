//! The session settings, a plain struct the caller builds (the server's configuration will).

use std::time::Duration;

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
}

/// `last_seen_at` is written at most this often per session (SPEC §8), so authenticating a busy
/// session is a read, not a write.
pub const LAST_SEEN_GRANULARITY: Duration = Duration::from_secs(60);

/// The longest `user_agent` kept, in characters.
pub const USER_AGENT_CHARS: usize = 256;
