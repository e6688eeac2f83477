//! Opening the configured backend: SQLite at once, PostgreSQL with retries while the database is
//! unreachable at startup (a container starting beside it), each attempt logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authura_backend_pg::{PgSettings, PgStore};
use authura_core::state::{LocalStateEvents, StateDsn};
use authura_core::{StoreError, UserStore};

use crate::config::BackendConfig;
use crate::config::sessions::StateConfig;
use crate::state::StartError;
use crate::state_store::{OpenedState, StateStoreSettings, open_state_store};

/// How long startup waits for an unreachable PostgreSQL before giving up (exit 1). Waiting
/// does not fix a wrong password, database or certificate: those fail at once.
pub const POSTGRES_STARTUP_WAIT: Duration = Duration::from_secs(60);

/// The first retry's delay; each next one doubles, up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The stores a configuration opens: the users table, and the state store when a feature
/// that needs it is on.
#[derive(Debug)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    /// The state store and the events between the instances sharing it.
    pub state: Option<OpenedState>,
}

/// How many connections a `STATE_DSN` store keeps at most.
const STATE_POOL_SIZE: usize = 10;

/// Opens the configured backend, applying its migrations, and the state store `state` names
/// (beside the users table, or in `STATE_DSN`), applying the state migrations.
///
/// # Errors
/// `StartError::Backend` naming the backend and what failed; `StartError::State` for the
/// state store.
pub async fn open(
    backend: &BackendConfig,
    state: Option<&StateConfig>,
    extra_ca_pem: Option<&[u8]>,
) -> Result<Stores, StartError> {
    match backend {
        BackendConfig::Sqlite { path, pool_size } => {
            let store = authura_backend_sqlite::SqliteStore::open(path, *pool_size)
                .await
                .map_err(|e| start_error("sqlite", &e))?;
            let state: Option<OpenedState> = match state {
                Some(_) => {
                    let state = Arc::new(store.state().await.map_err(state_error)?);
                    Some((state, Arc::new(LocalStateEvents::new())))
                }
                None => None,
            };
            Ok(Stores {
                users: Arc::new(store),
                state,
            })
        }
        BackendConfig::Postgres(settings) => {
            let store = connect_postgres(settings, POSTGRES_STARTUP_WAIT).await?;
            let state: Option<OpenedState> = match state {
                Some(_) => {
                    let state = store.state().await.map_err(state_error)?;
                    let events = Arc::new(state.events());
                    Some((Arc::new(state), events))
                }
                None => None,
            };
            Ok(Stores {
                users: Arc::new(store),
                state,
            })
        }
        // Nothing is sent until the first call: the service may start after us.
        BackendConfig::Http(settings) => {
            let store = authura_backend_http::HttpStore::new(settings)
                .map_err(|e| start_error("http", &e))?;
            Ok(Stores {
                users: Arc::new(store),
                state: open_state_dsn(state, extra_ca_pem).await?,
            })
        }
        // Nothing is sent until the first call: a directory that is down answers 503 per request
        // (and at `/readyz`) until it is back.
        BackendConfig::Ldap(settings) => {
            let store = authura_backend_ldap::LdapStore::new(settings.clone())
                .map_err(|e| start_error("ldap", &e))?;
            Ok(Stores {
                users: Arc::new(store),
                state: open_state_dsn(state, extra_ca_pem).await?,
            })
        }
        // Builds the HTTP client only: a Hasura that is down answers 503 per request (and at
        // `/readyz`) until it is back, with no startup wait.
        BackendConfig::Hasura(settings) => {
            let store = authura_backend_hasura::HasuraStore::new(settings)
                .map_err(|e| start_error("hasura", &e))?;
            Ok(Stores {
                users: Arc::new(store),
                state: open_state_dsn(state, extra_ca_pem).await?,
            })
        }
    }
}

/// The `STATE_DSN` store, migrated; a PostgreSQL one is waited for as the users database is
/// ([`POSTGRES_STARTUP_WAIT`]).
async fn open_state_dsn(
    state: Option<&StateConfig>,
    extra_ca_pem: Option<&[u8]>,
) -> Result<Option<OpenedState>, StartError> {
    let dsn = match state {
        None => return Ok(None),
        Some(StateConfig::Dsn(dsn)) => dsn,
        Some(StateConfig::Beside) => {
            return Err(StartError::State(
                "this backend has no database of its own for Authura's tables; set STATE_DSN"
                    .into(),
            ));
        }
    };
    let settings = StateStoreSettings {
        pool_size: STATE_POOL_SIZE,
        extra_ca_pem: extra_ca_pem.map(<[u8]>::to_vec),
        query_timeout: authura_backend_pg::PgSettings::DEFAULT_QUERY_TIMEOUT,
    };
    let started = Instant::now();
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match open_state_store(dsn, &settings).await {
            Ok(store) => return Ok(Some(store)),
            Err(StoreError::Unavailable(detail))
                if started.elapsed() + delay <= POSTGRES_STARTUP_WAIT =>
            {
                tracing::warn!(error = %detail, "the state store (STATE_DSN) is not reachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => return Err(state_error(e)),
        }
    }
}

fn state_error(e: StoreError) -> StartError {
    StartError::State(e.to_string())
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
pub async fn migrate(
    backend: &BackendConfig,
    state: Option<&StateConfig>,
    extra_ca_pem: Option<&[u8]>,
) -> Result<Vec<String>, StartError> {
    let mut lines = match backend {
        BackendConfig::Sqlite { path, .. } => {
            open(backend, state, extra_ca_pem).await?;
            vec![format!("sqlite: migrations applied to {}", path.display())]
        }
        BackendConfig::Postgres(settings) => {
            open(backend, state, extra_ca_pem).await?;
            vec![format!(
                "postgres: migrations applied (table {})",
                settings.table
            )]
        }
        // Neither has Authura-owned schema for users (see `migration_status`).
        BackendConfig::Http(_) | BackendConfig::Hasura(_) | BackendConfig::Ldap(_) => {
            open_state_dsn(state, extra_ca_pem).await?;
            migration_status(backend).await?
        }
    };
    lines.push(match state {
        None => "state store: no feature that needs it is on; no authura_* table created".into(),
        Some(StateConfig::Beside) => {
            "state store: authura_* tables migrated beside the users table".into()
        }
        Some(StateConfig::Dsn(StateDsn::Sqlite(path))) => {
            format!("state store: authura_* tables migrated in the SQLite file {path}")
        }
        // The DSN may hold a password: it is not printed.
        Some(StateConfig::Dsn(StateDsn::Postgres(_))) => {
            "state store: authura_* tables migrated in STATE_DSN's PostgreSQL database".into()
        }
    });
    Ok(lines)
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
        BackendConfig::Ldap(_) => Ok(vec![
            "ldap: the directory is read, never written; Authura has no migrations for it"
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

    async fn create_with_id(
        &self,
        id: &authura_core::UserId,
        user: authura_core::NewUser,
    ) -> Result<authura_core::User, StoreError> {
        self.get()?.create_with_id(id, user).await
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

    async fn list(
        &self,
        query: &authura_core::UserQuery,
    ) -> Result<authura_core::UserPage, StoreError> {
        self.get()?.list(query).await
    }

    async fn delete(
        &self,
        tenant: Option<&authura_core::TenantId>,
        id: &authura_core::UserId,
    ) -> Result<bool, StoreError> {
        self.get()?.delete(tenant, id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.get()?.ping().await
    }

    fn pool_status(&self) -> Option<authura_core::store::PoolStatus> {
        self.inner.get().and_then(|store| store.pool_status())
    }

    async fn authenticate(
        &self,
        tenant: Option<&authura_core::TenantId>,
        email: &authura_core::Email,
        password: &authura_core::Secret,
    ) -> Result<authura_core::store::PasswordCheck, StoreError> {
        self.get()?.authenticate(tenant, email, password).await
    }

    fn read_only(&self) -> bool {
        self.inner.get().is_some_and(|store| store.read_only())
    }
}
