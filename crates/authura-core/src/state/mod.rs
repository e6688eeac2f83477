//! The state store (SPEC §13): what Authura keeps itself, behind narrow traits beside
//! `UserStore`: sessions (SPEC §8, [`SessionStore`]), account state and password history
//! ([`AccountStore`]) and the audit log ([`AuditStore`]) (SPEC §11); groups, permits and
//! OAuth links join as traits of their own.
//!
//! The SQL backends implement these traits on Authura-owned `authura_*` tables in the users
//! table's database (or in `STATE_DSN`'s); the `memory` feature adds `MemorySessionStore`.
//! [`events`] carries state changes between instances, for their session caches.
//! Stores keep timestamps to the microsecond: a stored time reads back truncated to it.

pub mod account;
pub mod audit;
pub mod events;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "memory")]
pub mod memory_policy;
mod permits;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::StoreError;
use crate::types::{Secret, TenantId, UserId};

pub use account::{AccountChange, AccountState, AccountStore};
pub use audit::{AuditEvent, AuditQuery, AuditSink, AuditStore, LogAudit, StoredAuditEvent};
pub use events::{
    EventHub, LocalStateEvents, StateEvent, StateEvents, StateSignal, StateSubscription,
};
pub use permits::PermitStore;

/// Every part of the state store at once: what a backend's state store implements and the
/// server holds (`Arc<dyn StateStore>` upcasts to each part: sessions, permits, and the
/// policy parts, account state and audit).
pub trait StateStore: SessionStore + PermitStore + PolicyStore {}

impl<T: SessionStore + PermitStore + PolicyStore> StateStore for T {}

impl std::fmt::Debug for dyn StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateStore")
    }
}

/// The SHA-256 of a session key: all a store ever keeps of the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The hash of a key as presented (its base64url text's bytes, or any other byte string).
    pub fn of(key: &[u8]) -> Self {
        KeyHash(Sha256::digest(key).into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    // A prefix is enough to tell hashes apart in a test failure; the full hash stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// How a session was opened (SPEC §8's `method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMethod {
    /// Email and password (`/token`, `POST /session`).
    Password,
    /// OAuth sign-in with the named provider.
    OAuth(String),
    /// The link in a verification mail.
    VerifyEmail,
    /// An admin acting as the user.
    Impersonation,
}

impl SessionMethod {
    /// The stored and displayed form: `password`, `oauth:<provider>`, `verify-email`,
    /// `impersonation`.
    pub fn as_text(&self) -> String {
        match self {
            SessionMethod::Password => "password".to_owned(),
            SessionMethod::OAuth(provider) => format!("oauth:{provider}"),
            SessionMethod::VerifyEmail => "verify-email".to_owned(),
            SessionMethod::Impersonation => "impersonation".to_owned(),
        }
    }

    /// Reads the stored form back; `None` for anything else (including `oauth:` with no
    /// provider).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "password" => Some(SessionMethod::Password),
            "verify-email" => Some(SessionMethod::VerifyEmail),
            "impersonation" => Some(SessionMethod::Impersonation),
            _ => match text.strip_prefix("oauth:") {
                Some(p) if !p.is_empty() => Some(SessionMethod::OAuth(p.to_owned())),
                _ => None,
            },
        }
    }
}

impl fmt::Display for SessionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_text())
    }
}

/// A session as stored (SPEC §8). The key itself is never part of it, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The public id.
    pub id: Uuid,
    /// The SHA-256 of the key; unique across the store.
    pub key_hash: KeyHash,
    /// Whose session it is, within `tenant`.
    pub user_id: UserId,
    /// The user's tenant; `None` without multi-tenancy. A user id names a different user in
    /// each tenant.
    pub tenant: Option<TenantId>,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it was last used (written at most once a minute by the caller).
    pub last_seen_at: DateTime<Utc>,
    /// The absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// The client address it was opened from.
    pub ip: Option<String>,
    /// The client's `User-Agent` (the caller truncates it).
    pub user_agent: Option<String>,
    /// How it was opened.
    pub method: SessionMethod,
    /// The refresh generation (SPEC §8's `gen`; `gen` is a reserved word in Rust 2024).
    pub generation: i64,
    /// When `generation` last changed (its creation, at first): the start of the reuse grace.
    pub generation_changed_at: DateTime<Utc>,
}

impl Session {
    /// The session with every time truncated to the microsecond, as stores keep it.
    pub fn truncated(mut self) -> Self {
        self.created_at = self.created_at.trunc_subsecs(6);
        self.last_seen_at = self.last_seen_at.trunc_subsecs(6);
        self.expires_at = self.expires_at.trunc_subsecs(6);
        self.generation_changed_at = self.generation_changed_at.trunc_subsecs(6);
        self
    }
}

/// The outcome of a generation compare-and-set on a session that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Whether this call moved the generation (`false`: it was not the expected one, because
    /// another rotation got there first or the caller's token is older).
    pub won: bool,
    /// The session as it is now (after the increment when `won`).
    pub session: Session,
}

/// Where sessions live. Every lookup that names a user also names the tenant: `None` means "no
/// tenant", never "any tenant". The store does not judge expiry except in
/// `purge_expired` and in counting a user's sessions for `max_active`: lookups return a
/// session whatever its `expires_at`, and the caller decides.
///
/// A store's errors are `StoreError`s: `Conflict` for a unique violation (a key hash or an id
/// that exists), `Unavailable` when the database cannot be reached, `Backend` for the rest.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session. With `max_active` > 0 it then ends the oldest sessions (by
    /// `created_at`, then id) of the same user and tenant that are not yet expired at the new
    /// session's `created_at` beyond `max_active`, atomically with the insert, so racing creates
    /// never leave more than `max_active` live sessions. Returns the sessions it ended, oldest
    /// first (the new one among them when it is itself the oldest).
    ///
    /// # Errors
    /// `Conflict` when the id or the key hash exists; `Unavailable`, `Backend`.
    async fn create_session(
        &self,
        session: Session,
        max_active: u32,
    ) -> Result<Vec<Session>, StoreError>;

    /// The session whose key has this hash.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn find_session_by_key(&self, key_hash: &KeyHash) -> Result<Option<Session>, StoreError>;

    /// The session with this id.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn find_session(&self, id: Uuid) -> Result<Option<Session>, StoreError>;

    /// A user's sessions, newest first (by `created_at`, then id, descending).
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn list_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError>;

    /// Sets `last_seen_at`; `false` when there is no such session.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Moves the refresh generation from `expected` to `expected + 1` and sets
    /// `generation_changed_at` to `now`, as one compare-and-set: of several racing calls with
    /// the same `expected`, exactly one wins. `None` when there is no such session.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn rotate_generation(
        &self,
        id: Uuid,
        expected: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, StoreError>;

    /// Ends (deletes) one session and returns it; `None` when there was none.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn end_session(&self, id: Uuid) -> Result<Option<Session>, StoreError>;

    /// Ends every session of a user, except the one with id `except` if given, and returns the
    /// ended sessions.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn end_user_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        except: Option<Uuid>,
    ) -> Result<Vec<Session>, StoreError>;

    /// Deletes every session whose `expires_at` is at or before `now`; returns how many.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Whether the store answers (for `/readyz`). By default a lookup of the nil id, which
    /// reads the sessions table, so a database without it is not ready either.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn ping(&self) -> Result<(), StoreError> {
        self.find_session(Uuid::nil()).await.map(drop)
    }

    /// The OAuth identity links kept in the same store (SPEC §9, §13), when it keeps them.
    fn oauth_links(&self) -> Option<&dyn OAuthLinkStore> {
        None
    }
}

/// An OAuth identity link (SPEC §9): the provider's subject, in a tenant, is this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthLink {
    /// The provider's name (`google`, `github`, `microsoft`, `oidc`).
    pub provider: String,
    /// The provider's stable id for the user (`sub`, GitHub's `id`).
    pub subject: String,
    /// The tenant; `None` without multi-tenancy.
    pub tenant: Option<TenantId>,
    /// The user the subject signs into.
    pub user_id: UserId,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
}

/// Where (provider, subject) → user links live: the `authura_oauth_links` table. A subject is
/// linked to at most one user per tenant and provider, and a user to at most one subject per
/// provider; both are unique in the store, so racing first sign-ins cannot link twice.
#[async_trait]
pub trait OAuthLinkStore: Send + Sync {
    /// The link of a provider's subject in a tenant.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn find_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        subject: &str,
    ) -> Result<Option<OAuthLink>, StoreError>;

    /// The link of a user with a provider.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn find_user_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        user_id: &UserId,
    ) -> Result<Option<OAuthLink>, StoreError>;

    /// Stores a link.
    ///
    /// # Errors
    /// `Conflict` when the subject, or the user, is linked with that provider in that tenant
    /// already; `Unavailable`, `Backend`.
    async fn create_oauth_link(&self, link: OAuthLink) -> Result<(), StoreError>;
}

impl std::fmt::Debug for dyn OAuthLinkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OAuthLinkStore")
    }
}

/// A link's stored columns: (tenant id `""` for none, user id text, whether it is numeric).
pub fn stored_link_owner(link: &OAuthLink) -> (String, String, bool) {
    stored_owner(link.tenant.as_ref(), &link.user_id)
}

/// A link read back from its stored columns.
///
/// # Errors
/// `StoreError::Backend` naming the column at fault.
pub fn link_from_columns(
    provider: String,
    subject: String,
    tenant_id: &str,
    user_id: String,
    user_id_numeric: bool,
    created_at: DateTime<Utc>,
) -> Result<OAuthLink, StoreError> {
    let bad = |column: &str| StoreError::Backend(format!("an OAuth link has an invalid {column}"));
    let user_id = if user_id_numeric {
        UserId::Int(user_id.parse().map_err(|_| bad("user_id"))?)
    } else {
        UserId::Text(user_id)
    };
    let tenant = match tenant_id {
        "" => None,
        t => Some(TenantId::parse(t).map_err(|_| bad("tenant_id"))?),
    };
    Ok(OAuthLink {
        provider,
        subject,
        tenant,
        user_id,
        created_at,
    })
}

/// The policy parts of a state store together ([`AccountStore`] and [`AuditStore`]), as every
/// SQL store and the memory store implement them; hand out either part by upcasting.
pub trait PolicyStore: AccountStore + AuditStore {}

impl<T: AccountStore + AuditStore> PolicyStore for T {}

impl std::fmt::Debug for dyn PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyStore")
    }
}

impl std::fmt::Debug for dyn SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionStore")
    }
}

/// Where the state lives when the users backend has no database of its own (`STATE_DSN`, SPEC
/// §2): an SQLite file or a PostgreSQL database. Parsing only; the server opens it.
#[derive(Debug, Clone)]
pub enum StateDsn {
    /// `sqlite:<path>` (`sqlite:///abs/path` is read as `/abs/path`).
    Sqlite(String),
    /// A `postgres://` or `postgresql://` URL, handed whole to the PostgreSQL backend (it may
    /// hold a password).
    Postgres(Secret),
}

/// A `STATE_DSN` that is neither `sqlite:<path>` nor a `postgres://` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected sqlite:<path> or a postgres:// URL")]
pub struct InvalidStateDsn;

impl StateDsn {
    /// Reads a `STATE_DSN` value (surrounding whitespace ignored).
    ///
    /// # Errors
    /// `InvalidStateDsn` for another scheme or an empty path.
    pub fn parse(input: &str) -> Result<StateDsn, InvalidStateDsn> {
        let input = input.trim();
        if let Some(path) = input.strip_prefix("sqlite:") {
            // `sqlite:///abs` is the URL spelling of `sqlite:/abs`.
            let path = path.strip_prefix("//").unwrap_or(path);
            return match path {
                "" | ":memory:" => Err(InvalidStateDsn),
                path => Ok(StateDsn::Sqlite(path.to_owned())),
            };
        }
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| input.starts_with(scheme) && input.len() > scheme.len());
        if postgres {
            Ok(StateDsn::Postgres(Secret::new(input)))
        } else {
            Err(InvalidStateDsn)
        }
    }
}

/// A session as the SQL backends store it, in plain columns: the tenant as text (`""` for no
/// tenant, which no `TenantId` can be, so the column needs no NULL and indexes stay simple), the
/// user id as text with a flag saying whether it is a number (so `Int(5)` and `Text("5")` stay
/// two users). Rows written by other tools can be malformed, so reading one back is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// `Session::id`.
    pub id: Uuid,
    /// `Session::key_hash`'s 32 bytes.
    pub key_hash: Vec<u8>,
    /// The user id's text.
    pub user_id: String,
    /// Whether the user id is `UserId::Int`.
    pub user_id_numeric: bool,
    /// The tenant id, `""` for none.
    pub tenant_id: String,
    /// `Session::created_at`.
    pub created_at: DateTime<Utc>,
    /// `Session::last_seen_at`.
    pub last_seen_at: DateTime<Utc>,
    /// `Session::expires_at`.
    pub expires_at: DateTime<Utc>,
    /// `Session::ip`.
    pub ip: Option<String>,
    /// `Session::user_agent`.
    pub user_agent: Option<String>,
    /// `SessionMethod::as_text`.
    pub method: String,
    /// `Session::generation`.
    pub generation: i64,
    /// `Session::generation_changed_at`.
    pub generation_changed_at: DateTime<Utc>,
}

/// The stored columns that name a user: (tenant id, user id text, whether it is numeric).
pub fn stored_owner(tenant: Option<&TenantId>, user_id: &UserId) -> (String, String, bool) {
    let tenant = tenant.map(TenantId::as_str).unwrap_or_default().to_owned();
    match user_id {
        UserId::Int(n) => (tenant, n.to_string(), true),
        UserId::Text(s) => (tenant, s.clone(), false),
    }
}

impl StoredSession {
    /// The columns for a session.
    pub fn new(session: &Session) -> Self {
        let (tenant_id, user_id, user_id_numeric) =
            stored_owner(session.tenant.as_ref(), &session.user_id);
        StoredSession {
            id: session.id,
            key_hash: session.key_hash.0.to_vec(),
            user_id,
            user_id_numeric,
            tenant_id,
            created_at: session.created_at,
            last_seen_at: session.last_seen_at,
            expires_at: session.expires_at,
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
            method: session.method.as_text(),
            generation: session.generation,
            generation_changed_at: session.generation_changed_at,
        }
    }

    /// Validates the columns into a session.
    ///
    /// # Errors
    /// `StoreError::Backend` naming the session and the column at fault.
    pub fn into_session(self) -> Result<Session, StoreError> {
        let id = self.id;
        let bad =
            |column: &str| StoreError::Backend(format!("session {id} has an invalid {column}"));
        let key_hash = <[u8; 32]>::try_from(self.key_hash.as_slice())
            .map(KeyHash)
            .map_err(|_| bad("key_hash"))?;
        let user_id = if self.user_id_numeric {
            UserId::Int(self.user_id.parse().map_err(|_| bad("user_id"))?)
        } else {
            UserId::Text(self.user_id)
        };
        let tenant = match self.tenant_id.as_str() {
            "" => None,
            t => Some(TenantId::parse(t).map_err(|_| bad("tenant_id"))?),
        };
        Ok(Session {
            id,
            key_hash,
            user_id,
            tenant,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            ip: self.ip,
            user_agent: self.user_agent,
            method: SessionMethod::parse(&self.method).ok_or_else(|| bad("method"))?,
            generation: self.generation,
            generation_changed_at: self.generation_changed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected`: the scheme and what follows as parsed, `None` for a refusal.
    fn check_dsn(input: &str, expected: Option<(&str, &str)>) {
        let got = StateDsn::parse(input).ok();
        let got = got.as_ref().map(|dsn| match dsn {
            StateDsn::Sqlite(path) => ("sqlite", path.as_str()),
            StateDsn::Postgres(url) => ("postgres", url.expose()),
        });
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn state_dsns() {
        let sqlite = |p| Some(("sqlite", p));
        let pg = |u| Some(("postgres", u));
        check_dsn(
            "sqlite:/var/lib/authura/state.db",
            sqlite("/var/lib/authura/state.db"),
        );
        check_dsn("sqlite:///var/lib/state.db", sqlite("/var/lib/state.db"));
        check_dsn("sqlite:state.db", sqlite("state.db"));
        check_dsn("  sqlite:/x.db\n", sqlite("/x.db"));
        check_dsn(
            "postgres://a:pw@db/app?sslmode=require",
            pg("postgres://a:pw@db/app?sslmode=require"),
        );
        check_dsn("postgresql://db/app", pg("postgresql://db/app"));
        for bad in [
            "",
            "sqlite:",
            "sqlite://",
            "sqlite::memory:",
            "postgres://",
            "mysql://db/app",
            "/var/state.db",
            "host=db dbname=app",
        ] {
            check_dsn(bad, None);
        }
    }

    #[test]
    fn a_postgres_dsn_is_never_printed() {
        let dsn = StateDsn::parse("postgres://u:hunter2@db/app").unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{dsn:?}").contains("hunter2"));
    }

    #[test]
    fn session_methods_round_trip() {
        for m in [
            SessionMethod::Password,
            SessionMethod::OAuth("github".into()),
            SessionMethod::VerifyEmail,
            SessionMethod::Impersonation,
        ] {
            assert_eq!(SessionMethod::parse(&m.as_text()), Some(m));
        }
        for bad in ["", "oauth:", "Password", "token"] {
            assert_eq!(SessionMethod::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stored_sessions_keep_user_id_kinds_and_refuse_bad_columns() {
        let now = Utc::now().trunc_subsecs(6);
        let session = Session {
            id: Uuid::new_v4(),
            key_hash: KeyHash::of(b"key"),
            user_id: UserId::Text("5".into()),
            tenant: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now,
            ip: None,
            user_agent: None,
            method: SessionMethod::Password,
            generation: 0,
            generation_changed_at: now,
        };
        let stored = StoredSession::new(&session);
        assert_eq!(
            (
                stored.user_id.as_str(),
                stored.user_id_numeric,
                stored.tenant_id.as_str()
            ),
            ("5", false, "")
        );
        assert_eq!(stored.clone().into_session().ok(), Some(session));
        for broken in [
            StoredSession {
                key_hash: vec![0; 31],
                ..stored.clone()
            },
            StoredSession {
                user_id: "x".into(),
                user_id_numeric: true,
                ..stored.clone()
            },
            StoredSession {
                tenant_id: "\u{7}".into(),
                ..stored.clone()
            },
            StoredSession {
                method: "magic".into(),
                ..stored.clone()
            },
        ] {
            assert!(matches!(broken.into_session(), Err(StoreError::Backend(_))));
        }
    }
}
