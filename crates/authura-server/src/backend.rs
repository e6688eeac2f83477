//! Opening the configured backend: SQLite at once, PostgreSQL with retries while the database is
//! unreachable at startup (a container starting beside it), each attempt logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authura_backend_pg::{PgSettings, PgStore};
use authura_core::{StoreError, UserStore};

use crate::config::BackendConfig;
use crate::state::StartError;

/// How long startup waits for an unreachable PostgreSQL before giving up (exit 1). Waiting
/// does not fix a wrong password, database or certificate: those fail at once.
pub const POSTGRES_STARTUP_WAIT: Duration = Duration::from_secs(60);

/// The first retry's delay; each next one doubles, up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Opens the configured backend, applying its migrations.
///
/// # Errors
/// `StartError::Backend` naming the backend and what failed.
pub async fn open(backend: &BackendConfig) -> Result<Arc<dyn UserStore>, StartError> {
    match backend {
        BackendConfig::Sqlite { path, pool_size } => {
            let store = authura_backend_sqlite::SqliteStore::open(path, *pool_size)
                .await
                .map_err(|e| start_error("sqlite", &e))?;
            Ok(Arc::new(store))
        }
        BackendConfig::Postgres(settings) => {
            let store = connect_postgres(settings, POSTGRES_STARTUP_WAIT).await?;
            Ok(Arc::new(store))
        }
        // Nothing is sent until the first call: the service may start after us.
        BackendConfig::Http(settings) => {
            let store = authura_backend_http::HttpStore::new(settings)
                .map_err(|e| start_error("http", &e))?;
            Ok(Arc::new(store))
        }
        // Builds the HTTP client only: a Hasura that is down answers 503 per request (and at
        // `/readyz`) until it is back, with no startup wait.
        BackendConfig::Hasura(settings) => {
            let store = authura_backend_hasura::HasuraStore::new(settings)
                .map_err(|e| start_error("hasura", &e))?;
            Ok(Arc::new(store))
        }
    }
}

/// Connects to PostgreSQL, retrying with backoff for up to `wait` while it is unreachable.
///
/// # Errors
/// `StartError::Backend` when it stays unreachable for `wait`, or at once for a failure that
/// waiting does not fix.
pub async fn connect_postgres(
    settings: &PgSettings,
    wait: Duration,
) -> Result<PgStore, StartError> {
    let started = Instant::now();
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 1u32;
    loop {
        match PgStore::connect(settings).await {
            Ok(store) => {
                if attempt > 1 {
                    tracing::info!(attempt, table = %settings.table, "postgres is reachable");
                }
                return Ok(store);
            }
            Err(StoreError::Unavailable(detail)) if started.elapsed() + delay <= wait => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    gives_up_in_s = wait.saturating_sub(started.elapsed()).as_secs(),
                    error = %detail,
                    "postgres is not reachable; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
                attempt += 1;
            }
            Err(StoreError::Unavailable(detail)) => {
                return Err(StartError::Backend {
                    backend: "postgres",
                    detail: format!(
                        "still unreachable after {attempt} attempts over {}s: {detail}",
                        started.elapsed().as_secs()
                    ),
                });
            }
            Err(e) => return Err(start_error("postgres", &e)),
        }
    }
}

/// `authura migrate`: applies the configured backend's pending migrations (by opening it, which
/// is also what startup does) and says what was done, as lines. Creates no user.
///
/// # Errors
/// `StartError::Backend` when the backend cannot be opened or a migration fails.
pub async fn migrate(backend: &BackendConfig) -> Result<Vec<String>, StartError> {
    match backend {
        BackendConfig::Sqlite { path, .. } => {
            open(backend).await?;
            Ok(vec![format!(
                "sqlite: migrations applied to {}",
                path.display()
            )])
        }
        BackendConfig::Postgres(settings) => {
            open(backend).await?;
            Ok(vec![format!(
                "postgres: migrations applied (table {})",
                settings.table
            )])
        }
        // Neither has Authura-owned schema (see `migration_status`).
        BackendConfig::Http(_) | BackendConfig::Hasura(_) => migration_status(backend).await,
    }
}

/// The migrations the configured backend knows and whether each is applied, as lines for
/// `authura migrate status`. Changes nothing.
///
/// # Errors
/// `StartError::Backend` when the backend cannot be read.
pub async fn migration_status(backend: &BackendConfig) -> Result<Vec<String>, StartError> {
    match backend {
        BackendConfig::Sqlite { .. } => Ok(vec![
            "sqlite: migrations are embedded and applied when the database is opened (authura \
             migrate); diesel records them in __diesel_schema_migrations"
                .to_owned(),
        ]),
        BackendConfig::Http(_) => Ok(vec![
            "http: the service owns its users table; Authura has no migrations for it".to_owned(),
        ]),
        BackendConfig::Postgres(settings) => {
            let states = authura_backend_pg::status(settings)
                .await
                .map_err(|e| start_error("postgres", &e))?;
            Ok(states
                .iter()
                .map(|s| {
                    let state = match (s.applied, s.known) {
                        (true, true) => "applied",
                        (false, _) => "pending",
                        (true, false) => "applied, unknown to this build (newer)",
                    };
                    format!(
                        "{:04}_{}  {state}  (table {})",
                        s.version, s.name, settings.table
                    )
                })
                .collect())
        }
        BackendConfig::Hasura(_) => Ok(vec![
            "hasura: Authura applies no migrations; the users table is created and tracked in \
             Hasura by the operator (docs/backends/hasura.md)"
                .to_owned(),
        ]),
    }
}

fn start_error(backend: &'static str, err: &StoreError) -> StartError {
    StartError::Backend {
        backend,
        detail: err.to_string(),
    }
}

/// A store that is not connected yet: every call answers `Unavailable` (so requests get 503
/// `backend_unavailable` and `/readyz` 503) until [`DeferredStore::set`] hands it the real one.
/// It lets the service listen while PostgreSQL is still starting.
#[derive(Debug, Default)]
pub struct DeferredStore {
    inner: std::sync::OnceLock<Arc<dyn UserStore>>,
}

impl DeferredStore {
    /// Connects the real store; later calls go to it.
    pub fn set(&self, store: Arc<dyn UserStore>) {
        let _ = self.inner.set(store);
    }

    fn get(&self) -> Result<&Arc<dyn UserStore>, StoreError> {
        self.inner
            .get()
            .ok_or_else(|| StoreError::Unavailable("the backend is still connecting".into()))
    }
}

#[async_trait::async_trait]
impl UserStore for DeferredStore {
    async fn find_by_email(
        &self,
        tenant: Option<&authura_core::TenantId>,
        email: &authura_core::Email,
    ) -> Result<Option<authura_core::User>, StoreError> {
        self.get()?.find_by_email(tenant, email).await
    }

    async fn find_by_id(
        &self,
        tenant: Option<&authura_core::TenantId>,
        id: &authura_core::UserId,
    ) -> Result<Option<authura_core::User>, StoreError> {
        self.get()?.find_by_id(tenant, id).await
    }

    async fn create(&self, user: authura_core::NewUser) -> Result<authura_core::User, StoreError> {
        self.get()?.create(user).await
    }

    async fn update(
        &self,
        tenant: Option<&authura_core::TenantId>,
        id: &authura_core::UserId,
        changes: authura_core::UserChanges,
    ) -> Result<authura_core::User, StoreError> {
        self.get()?.update(tenant, id, changes).await
    }

    async fn update_if(
        &self,
        tenant: Option<&authura_core::TenantId>,
        expected: &authura_core::User,
        changes: authura_core::UserChanges,
    ) -> Result<authura_core::User, StoreError> {
        self.get()?.update_if(tenant, expected, changes).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.get()?.ping().await
    }

    fn pool_status(&self) -> Option<authura_core::store::PoolStatus> {
        self.inner.get().and_then(|store| store.pool_status())
    }
}
