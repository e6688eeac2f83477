//! The audit log (SPEC §11): the security events the flows report through an [`AuditSink`]
//! (which never blocks them), and the [`AuditStore`] in the state store that keeps them
//! (`authura_audit`) when `AUDIT_ENABLED=true`.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::store::StoreError;
use crate::types::{TenantId, UserId};

/// The event names of SPEC §11 that Authura writes.
pub mod kind {
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    pub const LOGIN_FAILED: &str = "login.failed";
    pub const ACCOUNT_LOCKED: &str = "account.locked";
    pub const ACCOUNT_UNLOCKED: &str = "account.unlocked";
    pub const SESSION_CREATED: &str = "session.created";
    pub const SESSION_ENDED: &str = "session.ended";
    pub const REFRESH_REUSE_DETECTED: &str = "refresh.reuse_detected";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    pub const PASSWORD_RESET: &str = "password.reset";
    pub const EMAIL_CHANGED: &str = "email.changed";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_DELETED: &str = "user.deleted";
    pub const USER_INVITED: &str = "user.invited";
    pub const USER_ARCHIVED: &str = "user.archived";
    pub const USER_RESTORED: &str = "user.restored";
    pub const IMPERSONATION_STARTED: &str = "impersonation.started";
    pub const PERMIT_CHANGED: &str = "permit.changed";
    pub const ROLEGROUP_CREATED: &str = "rolegroup.created";
    pub const ROLEGROUP_UPDATED: &str = "rolegroup.updated";
    pub const ROLEGROUP_DELETED: &str = "rolegroup.deleted";
}

/// One security event. `detail` never holds a secret (no password, hash, token or key).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its name ([`kind`]).
    pub event: String,
    /// The tenant it happened in.
    pub tenant: Option<TenantId>,
    /// The user it concerns, when known (a failed login for an unknown address names none).
    pub user_id: Option<UserId>,
    /// Who did it, when not the user themself (an admin).
    pub actor_id: Option<UserId>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// What else there is to say, as a JSON object.
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event of `kind` at `at` with everything else empty.
    pub fn new(kind: &str, at: DateTime<Utc>, tenant: Option<&TenantId>) -> Self {
        AuditEvent {
            at,
            event: kind.to_owned(),
            tenant: tenant.cloned(),
            user_id: None,
            actor_id: None,
            ip: None,
            user_agent: None,
            detail: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The event with `at` truncated to the microsecond, as stores keep it.
    pub fn truncated(mut self) -> Self {
        self.at = self.at.trunc_subsecs(6);
        self
    }

    /// Writes the event to the log at INFO under the target `authura::audit` (SPEC §11: logged
    /// whether or not the table is on).
    pub fn log(&self) {
        tracing::info!(
            target: "authura::audit",
            event = %self.event,
            tenant = self.tenant.as_ref().map(TenantId::as_str),
            user_id = self.user_id.as_ref().map(tracing::field::display),
            actor_id = self.actor_id.as_ref().map(tracing::field::display),
            ip = self.ip.as_deref(),
            user_agent = self.user_agent.as_deref(),
            detail = %self.detail,
            "audit"
        );
    }
}

/// A stored event with the id the store gave it (ids grow with insertion: the cursor).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAuditEvent {
    pub id: i64,
    pub event: AuditEvent,
}

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this tenant's (`None`: the events of no tenant).
    pub tenant: Option<TenantId>,
    /// Only this user's.
    pub user_id: Option<UserId>,
    /// Only events of this name.
    pub event: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only ids below this (the cursor: the last id of the page before).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Where flows report events: never blocks, never fails (a sink that cannot keep up drops and
/// counts).
pub trait AuditSink: Send + Sync + std::fmt::Debug + 'static {
    /// Records one event.
    fn record(&self, event: AuditEvent);
}

/// The sink of an embedder or a test without a table: each event goes to the log only.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogAudit;

impl AuditSink for LogAudit {
    fn record(&self, event: AuditEvent) {
        event.log();
    }
}

/// The `authura_audit` table.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends events, in order.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;

    /// The events `query` selects, newest (highest id) first.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// Deletes the events before `before`; returns how many.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

impl std::fmt::Debug for dyn AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditStore")
    }
}

/// The stored columns of an event's optional user (`user_id`, numeric flag): `("", false)` for
/// none.
pub fn stored_user(user: Option<&UserId>) -> (Option<String>, bool) {
    match user {
        None => (None, false),
        Some(UserId::Int(n)) => (Some(n.to_string()), true),
        Some(UserId::Text(s)) => (Some(s.clone()), false),
    }
}

/// Reads a stored optional user back.
///
/// # Errors
/// `Backend` for a numeric flag on text that is not a number.
pub fn read_user(text: Option<String>, numeric: bool) -> Result<Option<UserId>, StoreError> {
    match text {
        None => Ok(None),
        Some(t) if numeric => t
            .parse()
            .map(|n| Some(UserId::Int(n)))
            .map_err(|_| StoreError::Backend("an audit event has an invalid user id".into())),
        Some(t) => Ok(Some(UserId::Text(t))),
    }
}

/// Reads a stored tenant back (`""` = none).
///
/// # Errors
/// `Backend` for text that is no tenant id.
pub fn read_tenant(text: &str) -> Result<Option<TenantId>, StoreError> {
    match text {
        "" => Ok(None),
        t => TenantId::parse(t)
            .map(Some)
            .map_err(|_| StoreError::Backend("an audit event has an invalid tenant".into())),
    }
}
