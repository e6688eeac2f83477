//! Opening the state store (SPEC §13) from a `STATE_DSN`, for the users backends that have no
//! database of their own (hasura, http, ldap), and [`DeferredStateStore`], the stand-in that
//! answers `Unavailable` while PostgreSQL is still connecting at startup.

use std::sync::Arc;
use std::time::Duration;

use authura_backend_pg::{PgStateSettings, PgStateStore};
use authura_backend_sqlite::SqliteStateStore;
use std::collections::BTreeSet;

use authura_core::permit::{Access, GroupId, GroupName, Permission, Permit, RoleGroup};
use authura_core::state::{
    AccountChange, AccountState, AccountStore, AuditEvent, AuditQuery, AuditStore, EventHub,
    KeyHash, LocalStateEvents, OAuthLinkStore, PermitStore, Rotation, Session, StateDsn,
    StateEvent, StateEvents, StateSignal, StateStore, StateSubscription, StoredAuditEvent,
};
use authura_core::types::PasswordHash;
use authura_core::{SessionStore, StoreError, TenantId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How to open a `STATE_DSN`'s store beyond the DSN itself.
#[derive(Debug, Clone)]
pub struct StateStoreSettings {
    /// Most connections open at once (at least 1).
    pub pool_size: usize,
    /// PEM certificates trusted for PostgreSQL's TLS besides the system's roots
    /// (`EXTRA_CA_FILE`'s contents).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// How long one PostgreSQL statement may wait for an answer.
    pub query_timeout: Duration,
}

/// A state store (every part: sessions, permits, account state and audit, as one
/// `Arc<dyn StateStore>`) and the events between the instances sharing it.
pub type OpenedState = (Arc<dyn StateStore>, Arc<dyn StateEvents>);

/// Opens the state store `dsn` names and applies its state migrations: an SQLite file (created
/// if missing, holding no users table; events stay in this process, SQLite being one instance)
/// or a PostgreSQL database (events by `LISTEN/NOTIFY`), through the same openers, pool and TLS
/// settings as the users backends.
///
/// # Errors
/// `Unavailable` when the database cannot be reached; `Backend` for a bad PostgreSQL DSN, a
/// newer state schema, a pool size of 0 or a failed migration.
pub async fn open_state_store(
    dsn: &StateDsn,
    settings: &StateStoreSettings,
) -> Result<OpenedState, StoreError> {
    Ok(match dsn {
        StateDsn::Sqlite(path) => (
            Arc::new(SqliteStateStore::open(path, settings.pool_size).await?),
            Arc::new(LocalStateEvents::new()),
        ),
        StateDsn::Postgres(url) => {
            let store = PgStateStore::connect(&PgStateSettings {
                dsn: url.clone(),
                pool_size: settings.pool_size,
                extra_ca_pem: settings.extra_ca_pem.clone(),
                query_timeout: settings.query_timeout,
            })
            .await?;
            let events = Arc::new(store.events());
            (Arc::new(store), events)
        }
    })
}

/// State events before the PostgreSQL they travel through is connected (`serve` listens
/// first): subscriptions start `Lost` (a session cache stays bypassed) and follow the real
/// transport's signals once [`DeferredStateEvents::set`] hands it over; publishing answers
/// `Unavailable` until then.
#[derive(Default)]
pub struct DeferredStateEvents {
    hub: Arc<EventHub>,
    inner: std::sync::OnceLock<Arc<dyn StateEvents>>,
}

impl std::fmt::Debug for DeferredStateEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredStateEvents")
            .field("connected", &self.inner.get().is_some())
            .finish()
    }
}

impl DeferredStateEvents {
    /// Connects the real transport: its signals are forwarded to every subscription made here.
    pub fn set(&self, events: Arc<dyn StateEvents>) {
        let mut subscription = events.subscribe();
        if self.inner.set(events).is_ok() {
            let hub = Arc::clone(&self.hub);
            tokio::spawn(async move {
                while let Some(signal) = subscription.next().await {
                    hub.send(signal);
                }
                hub.send(StateSignal::Lost);
            });
        }
    }
}

#[async_trait::async_trait]
impl StateEvents for DeferredStateEvents {
    async fn publish(&self, event: StateEvent) -> Result<(), StoreError> {
        match self.inner.get() {
            Some(events) => events.publish(event).await,
            None => Err(StoreError::Unavailable(
                "the state store is still connecting".into(),
            )),
        }
    }

    fn subscribe(&self) -> StateSubscription {
        self.hub.subscribe()
    }
}

/// A state store that is not connected yet: every call of every part (sessions, permits,
/// account state, audit) answers `Unavailable` (503, and `/readyz` 503) until [`DeferredStateStore::set`] hands it the real one, as
/// `backend::DeferredStore` does for the users table.
#[derive(Default)]
pub struct DeferredStateStore {
    inner: std::sync::OnceLock<Arc<dyn StateStore>>,
}

impl std::fmt::Debug for DeferredStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredStateStore")
            .field("connected", &self.inner.get().is_some())
            .finish()
    }
}

impl DeferredStateStore {
    /// Connects the real store; later calls go to it.
    pub fn set(&self, store: Arc<dyn StateStore>) {
        let _ = self.inner.set(store);
    }

    fn get(&self) -> Result<&Arc<dyn StateStore>, StoreError> {
        self.inner
            .get()
            .ok_or_else(|| StoreError::Unavailable("the state store is still connecting".into()))
    }
}

#[async_trait::async_trait]
impl SessionStore for DeferredStateStore {
    async fn create_session(
        &self,
        session: Session,
        max_active: u32,
    ) -> Result<Vec<Session>, StoreError> {
        self.get()?.create_session(session, max_active).await
    }

    async fn find_session_by_key(&self, key_hash: &KeyHash) -> Result<Option<Session>, StoreError> {
        self.get()?.find_session_by_key(key_hash).await
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.get()?.find_session(id).await
    }

    async fn list_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        self.get()?.list_sessions(tenant, user_id).await
    }

    async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.get()?.touch_session(id, at).await
    }

    async fn rotate_generation(
        &self,
        id: Uuid,
        expected: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, StoreError> {
        self.get()?.rotate_generation(id, expected, now).await
    }

    async fn end_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.get()?.end_session(id).await
    }

    async fn end_user_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        except: Option<Uuid>,
    ) -> Result<Vec<Session>, StoreError> {
        self.get()?.end_user_sessions(tenant, user_id, except).await
    }

    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.get()?.purge_expired_sessions(now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.get()?.ping().await
    }

    fn oauth_links(&self) -> Option<&dyn OAuthLinkStore> {
        self.inner.get().and_then(|store| store.oauth_links())
    }
}

#[async_trait::async_trait]
impl PermitStore for DeferredStateStore {
    async fn list_groups(&self) -> Result<Vec<RoleGroup>, StoreError> {
        self.get()?.list_groups().await
    }

    async fn find_group(&self, id: GroupId) -> Result<Option<RoleGroup>, StoreError> {
        self.get()?.find_group(id).await
    }

    async fn create_group(
        &self,
        id: Option<GroupId>,
        name: &GroupName,
        permissions: &BTreeSet<Permission>,
    ) -> Result<RoleGroup, StoreError> {
        self.get()?.create_group(id, name, permissions).await
    }

    async fn update_group(&self, group: &RoleGroup) -> Result<bool, StoreError> {
        self.get()?.update_group(group).await
    }

    async fn delete_group(&self, id: GroupId) -> Result<bool, StoreError> {
        self.get()?.delete_group(id).await
    }

    async fn permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Permit, StoreError> {
        self.get()?.permit(tenant, user_id).await
    }

    async fn set_permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        permit: &Permit,
    ) -> Result<(), StoreError> {
        self.get()?.set_permit(tenant, user_id, permit).await
    }

    async fn access(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Access, StoreError> {
        self.get()?.access(tenant, user_id).await
    }
}

#[async_trait::async_trait]
impl AccountStore for DeferredStateStore {
    async fn account_state(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<AccountState, StoreError> {
        self.get()?.account_state(tenant, user_id).await
    }

    async fn update_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        change: &AccountChange,
    ) -> Result<(AccountState, AccountState), StoreError> {
        self.get()?.update_account(tenant, user_id, change).await
    }

    async fn push_password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        hash: &PasswordHash,
        at: DateTime<Utc>,
        keep: u32,
    ) -> Result<(), StoreError> {
        self.get()?
            .push_password_history(tenant, user_id, hash, at, keep)
            .await
    }

    async fn password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        limit: u32,
    ) -> Result<Vec<PasswordHash>, StoreError> {
        self.get()?.password_history(tenant, user_id, limit).await
    }

    async fn forget_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        self.get()?.forget_account(tenant, user_id).await
    }
}

#[async_trait::async_trait]
impl AuditStore for DeferredStateStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.get()?.append_audit(events).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        self.get()?.list_audit(query).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.get()?.prune_audit(before).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::Duration as Days;

    use authura_core::state::SessionMethod;

    use super::*;

    const SETTINGS: StateStoreSettings = StateStoreSettings {
        pool_size: 2,
        extra_ca_pem: None,
        query_timeout: Duration::from_secs(10),
    };

    /// A session written through one opening of the DSN is read through another.
    async fn check_round_trip(dsn: &str) {
        let dsn = StateDsn::parse(dsn).unwrap();
        let now = Utc::now();
        let session = Session {
            id: Uuid::new_v4(),
            key_hash: KeyHash::of(b"key"),
            user_id: UserId::Int(7),
            tenant: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Days::hours(1),
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            method: SessionMethod::Password,
            generation: 0,
            generation_changed_at: now,
        };
        let (first, _) = open_state_store(&dsn, &SETTINGS).await.unwrap();
        first.create_session(session.clone(), 0).await.unwrap();
        drop(first);
        let (second, _) = open_state_store(&dsn, &SETTINGS).await.unwrap();
        assert_eq!(
            second.find_session_by_key(&session.key_hash).await.unwrap(),
            Some(session.truncated())
        );
    }

    #[tokio::test]
    async fn a_sqlite_state_dsn_opens_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        check_round_trip(&format!("sqlite:{}", path.display())).await;
    }

    #[tokio::test]
    async fn a_postgres_state_dsn_opens_a_state_database() {
        let db = authura_testkit::postgres::database().await;
        check_round_trip(&db.url).await;
    }

    #[tokio::test]
    async fn an_unreachable_postgres_is_unavailable() {
        let dsn = StateDsn::parse("postgres://authura@127.0.0.1:1/none").unwrap();
        let err = open_state_store(&dsn, &SETTINGS).await.err().unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
