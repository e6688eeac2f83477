//! Authura's server-side sessions (SPEC §8): the policy over core's `SessionStore` and `Clock`
//! (keys, absolute and idle expiry, the active-session limit, refresh rotation with reuse
//! detection), core's `Sessions` trait for the flows, and the bounded [`SessionCache`] kept
//! fresh across instances by core's `StateEvents` ([`follow_events`]). Library level: the HTTP endpoints,
//! the cookie and `SESSIONS_ENABLED` arrive with the rest of issue 14.

mod cache;
mod error;
mod key;
mod policy;
mod settings;

pub use cache::{
    CacheSettings, CacheStats, Cached, Invalidate, MAX_SHARDS, SessionCache, Ticket, follow_events,
};
pub use error::SessionError;
pub use key::{AUTHAUS_KEY_CHARS, KEY_BYTES, KEY_CHARS, SessionKey};
pub use policy::{Opened, Opening, SessionPolicy};
pub use settings::{LAST_SEEN_GRANULARITY, SessionSettings, USER_AGENT_CHARS};
