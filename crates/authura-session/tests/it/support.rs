//! What the tests share: a session store (in memory, SQLite in a temporary file, or a fresh
//! database on the test PostgreSQL cluster), a manual
//! clock at a whole second (stores keep microseconds, so boundaries are exact), and a wrapper
//! that yields before every store operation so that concurrent calls interleave as they do on
//! separate database connections.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use authura_backend_pg::{PgStateSettings, PgStateStore};
use authura_backend_sqlite::SqliteStateStore;
use authura_core::clock::{Clock, ManualClock};
use authura_core::memory::MemorySessionStore;
use authura_core::state::{KeyHash, Rotation, Session, SessionStore};
use authura_core::{Secret, StoreError, TenantId, UserId};
use authura_session::{SessionPolicy, SessionSettings};
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

/// Where every test's clock starts.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// The SPEC's defaults.
pub fn defaults() -> SessionSettings {
    SessionSettings {
        expiration: SessionSettings::DEFAULT_EXPIRATION,
        idle_timeout: SessionSettings::DEFAULT_IDLE_TIMEOUT,
        max_active: SessionSettings::DEFAULT_MAX_ACTIVE,
        reuse_interval: SessionSettings::DEFAULT_REUSE_INTERVAL,
    }
}

/// Which store a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` of the enclosing module as two tests,
/// `name::memory`, `name::sqlite` and `name::postgres`, each on a runtime with two worker threads (so spawned
/// tasks race on real threads; futures joined in one task still interleave deterministically).
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::support::Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await;
            }
        }
    )*};
}

/// A policy over a (yielding) store.
pub struct Sessions {
    pub policy: Arc<SessionPolicy>,
    pub store: Arc<YieldingStore>,
    pub clock: Arc<ManualClock>,
    /// Keeps the SQLite file or the PostgreSQL database while the test runs.
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Sessions {
    /// Over the in-memory store.
    pub fn new(settings: SessionSettings) -> Self {
        Sessions::over(Arc::new(MemorySessionStore::new()), settings, None)
    }

    /// Over `backend`'s store, new and empty.
    pub async fn on(backend: Backend, settings: SessionSettings) -> Self {
        match backend {
            Backend::Memory => Sessions::new(settings),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStateStore::open(dir.path().join("state.db"), 4)
                    .await
                    .unwrap();
                Sessions::over(Arc::new(store), settings, Some(Box::new(dir)))
            }
            Backend::Postgres => {
                let db = authura_testkit::postgres::database().await;
                let store = PgStateStore::connect(&PgStateSettings {
                    dsn: Secret::new(db.url.clone()),
                    pool_size: 4,
                    extra_ca_pem: None,
                    query_timeout: Duration::from_secs(10),
                })
                .await
                .unwrap();
                Sessions::over(Arc::new(store), settings, Some(Box::new(db)))
            }
        }
    }

    fn over(
        inner: Arc<dyn SessionStore>,
        settings: SessionSettings,
        keep: Option<Box<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        let store = Arc::new(YieldingStore(inner));
        let clock = Arc::new(ManualClock::new(t0()));
        let policy = Arc::new(SessionPolicy::new(store.clone(), clock.clone(), settings));
        Sessions {
            policy,
            store,
            clock,
            _keep: keep,
        }
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The stored record, bypassing the policy.
    pub async fn stored(&self, id: Uuid) -> Option<Session> {
        self.store.find_session(id).await.unwrap()
    }
}

pub fn user(n: i64) -> UserId {
    UserId::Int(n)
}

/// A store, yielding to the runtime before each operation. Every operation stays atomic; only
/// the points between them are where another task can run, as between two statements on two
/// connections.
pub struct YieldingStore(pub Arc<dyn SessionStore>);

impl std::fmt::Debug for YieldingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("YieldingStore")
    }
}

#[async_trait]
impl SessionStore for YieldingStore {
    async fn create_session(
        &self,
        session: Session,
        max_active: u32,
    ) -> Result<Vec<Session>, StoreError> {
        tokio::task::yield_now().await;
        self.0.create_session(session, max_active).await
    }

    async fn find_session_by_key(&self, key_hash: &KeyHash) -> Result<Option<Session>, StoreError> {
        tokio::task::yield_now().await;
        self.0.find_session_by_key(key_hash).await
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        tokio::task::yield_now().await;
        self.0.find_session(id).await
    }

    async fn list_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        tokio::task::yield_now().await;
        self.0.list_sessions(tenant, user_id).await
    }

    async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        tokio::task::yield_now().await;
        self.0.touch_session(id, at).await
    }

    async fn rotate_generation(
        &self,
        id: Uuid,
        expected: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, StoreError> {
        tokio::task::yield_now().await;
        self.0.rotate_generation(id, expected, now).await
    }

    async fn end_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        tokio::task::yield_now().await;
        self.0.end_session(id).await
    }

    async fn end_user_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        except: Option<Uuid>,
    ) -> Result<Vec<Session>, StoreError> {
        tokio::task::yield_now().await;
        self.0.end_user_sessions(tenant, user_id, except).await
    }

    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        tokio::task::yield_now().await;
        self.0.purge_expired_sessions(now).await
    }
}
