//! `SqliteStore`: the `UserStore` over a pool of SQLite connections.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool::Runtime;
use diesel::prelude::*;
use diesel::result::ConnectionResult;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

use authura_core::types::{Email, NewUser, TenantId, User, UserChanges, UserId};
use authura_core::{StoreError, UserPage, UserQuery, UserStore};

use crate::error;
use crate::migrate;
use crate::read::Readers;
use crate::schema::{ChangeRow, NewRow, UserRow, instr, lower, row_id, users};
use crate::space;
use crate::state::SqliteStateStore;

/// A pooled async connection: diesel's synchronous SQLite connection run on Tokio's blocking
/// threads.
pub(crate) type Conn = SyncConnectionWrapper<SqliteConnection>;

/// How long a caller waits for a pooled connection (or for a new one to open) before the store
/// reports itself unavailable.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// A `UserStore` over one SQLite database file. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct SqliteStore {
    /// Writes (and `list`) on Tokio's blocking threads.
    pool: Pool<Conn>,
    /// Reads, inline (see `read.rs`).
    readers: Arc<Readers>,
    path: Arc<str>,
}

impl SqliteStore {
    /// Opens the database at `path` with up to `pool_size` connections: creates the file if it
    /// is missing, applies the embedded migrations (each once, recorded in diesel's
    /// `__diesel_schema_migrations` table), and sets WAL mode, a 5 s busy timeout and foreign
    /// keys on every connection.
    ///
    /// `path` is a file path (or an SQLite `file:` URI). `:memory:` does not work: each pooled
    /// connection would see its own empty database.
    ///
    /// # Errors
    /// - `Unavailable` when the file cannot be opened or created, or stays locked.
    /// - `Backend` when `pool_size` is 0 or the path is not UTF-8; when the database has
    ///   migrations applied that this build does not know ("database schema is newer than this
    ///   build: …"); when an existing `users` table holds duplicate (email, tenant) pairs, so the
    ///   unique index cannot be created (nothing is changed then); or on any other SQLite error.
    pub async fn open(path: impl AsRef<Path>, pool_size: usize) -> Result<SqliteStore, StoreError> {
        let path = utf8_path(path.as_ref())?;
        // Building the pool opens no connection; it checks `pool_size` before anything is done.
        let pool = build_pool(&path, pool_size)?;
        migrate::run_blocking(Arc::clone(&path), migrate::Set::Users).await?;

        let readers = Arc::new(Readers::new(&path));
        let store = SqliteStore {
            pool,
            readers,
            path,
        };
        // Through the pool (5 s busy timeout), not the inline readers (250 ms): another process
        // may be migrating the same file right now.
        let mut conn = store.conn().await?;
        users::table
            .select(users::id)
            .limit(1)
            .load::<i64>(&mut *conn)
            .await
            .map_err(error::query)?;
        drop(conn);
        Ok(store)
    }

    /// The state store in this database (SPEC §13), sharing this store's connection pool,
    /// after applying the state migrations (idempotent: each is applied once and recorded, and
    /// a database with state migrations this build does not know is refused). Call it only when
    /// a stateful feature is on: without it the database holds no table but the users table.
    ///
    /// # Errors
    /// As [`SqliteStore::open`], for the state tables.
    pub async fn state(&self) -> Result<SqliteStateStore, StoreError> {
        SqliteStateStore::migrated(Arc::clone(&self.path), self.pool.clone()).await
    }

    async fn conn(&self) -> Result<Object<Conn>, StoreError> {
        self.pool.get().await.map_err(error::pool)
    }
}

/// The path as the UTF-8 text SQLite takes.
pub(crate) fn utf8_path(path: &Path) -> Result<Arc<str>, StoreError> {
    match path.to_str() {
        Some(path) => Ok(Arc::from(path)),
        None => Err(StoreError::Backend(format!(
            "the database path {} is not valid UTF-8",
            path.display()
        ))),
    }
}

/// A pool of up to `pool_size` write connections to the database at `path`.
pub(crate) fn build_pool(path: &str, pool_size: usize) -> Result<Pool<Conn>, StoreError> {
    if pool_size == 0 {
        return Err(StoreError::Backend(
            "the pool size must be at least 1".to_owned(),
        ));
    }
    let mut config = ManagerConfig::<Conn>::default();
    // A SQLite connection does not go stale the way a network connection does; `Fast`
    // still refuses a connection left inside a transaction.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(|url| Box::pin(connect(url.to_owned())));
    let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(path, config);
    Pool::builder(manager)
        .max_size(pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|err| StoreError::Backend(format!("cannot build the pool: {err}")))
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("pool", &self.pool.status())
            .finish()
    }
}

// Every query names the tenant: `tenant_id IS ?` is `tenant_id IS NULL` for no tenant and
// `tenant_id = ?` for a tenant, never "any tenant".
#[async_trait]
impl UserStore for SqliteStore {
    async fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        self.readers.find_by_email(tenant, email)
    }

    async fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        let Some(id) = row_id(id) else {
            return Ok(None);
        };
        self.readers.find_by_id(tenant, id)
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let mut conn = self.conn().await?;
        // One statement: the unique index rejects a taken (email, tenant) atomically, also
        // against concurrent creates, and RETURNING reads back exactly what was stored.
        diesel::insert_into(users::table)
            .values(NewRow::new(&user))
            .returning(UserRow::as_returning())
            .get_result(&mut *conn)
            .await
            .map_err(error::query)?
            .into_user()
    }

    async fn create_with_id(&self, id: &UserId, user: NewUser) -> Result<User, StoreError> {
        let UserId::Int(id) = *id else {
            return Err(StoreError::Unsupported("textual user ids".to_owned()));
        };
        let mut conn = self.conn().await?;
        // The primary key rejects a taken id, the unique index a taken (email, tenant), both as
        // `Conflict`. AUTOINCREMENT's counter moves past an explicit id, so `create` never
        // assigns it again.
        diesel::insert_into(users::table)
            .values((users::id.eq(id), NewRow::new(&user)))
            .returning(UserRow::as_returning())
            .get_result(&mut *conn)
            .await
            .map_err(error::query)?
            .into_user()
    }

    async fn update(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let Some(changes) = ChangeRow::new(&changes) else {
            return self
                .find_by_id(tenant, id)
                .await?
                .ok_or(StoreError::NotFound);
        };
        let Some(id) = row_id(id) else {
            return Err(StoreError::NotFound);
        };
        let mut conn = self.conn().await?;
        // One statement, as for create: a conflicting email aborts it with nothing changed.
        diesel::update(
            users::table
                .filter(users::id.eq(id))
                .filter(users::tenant_id.is(tenant.map(TenantId::as_str))),
        )
        .set(changes)
        .returning(UserRow::as_returning())
        .get_result(&mut *conn)
        .await
        .optional()
        .map_err(error::query)?
        .ok_or(StoreError::NotFound)?
        .into_user()
    }

    async fn update_if(
        &self,
        tenant: Option<&TenantId>,
        expected: &User,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let changed = || async {
            match self.find_by_id(tenant, &expected.id).await? {
                Some(_) => Err(StoreError::Changed),
                None => Err(StoreError::NotFound),
            }
        };
        let Some(changes) = ChangeRow::new(&changes) else {
            return match self.find_by_id(tenant, &expected.id).await? {
                Some(u)
                    if u.email == expected.email && u.password_hash == expected.password_hash =>
                {
                    Ok(u)
                }
                _ => changed().await,
            };
        };
        let Some(id) = row_id(&expected.id) else {
            return Err(StoreError::NotFound);
        };
        let mut conn = self.conn().await?;
        // One statement: SQLite evaluates the condition and writes under its write lock, so
        // of two racing calls the second finds the row changed.
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(id))
                .filter(users::tenant_id.is(tenant.map(TenantId::as_str)))
                .filter(lower(users::email).eq(expected.email.as_str()))
                .filter(users::password.eq(expected.password_hash.as_str())),
        )
        .set(changes)
        .returning(UserRow::as_returning())
        .get_result(&mut *conn)
        .await
        .optional()
        .map_err(error::query)?;
        drop(conn);
        match updated {
            Some(row) => row.into_user(),
            None => changed().await,
        }
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let mut select = users::table
            .filter(users::tenant_id.is(query.tenant.as_ref().map(TenantId::as_str)))
            .select(UserRow::as_select())
            .order(users::id.asc())
            .limit(i64::try_from(query.page_size() + 1).unwrap_or(i64::MAX))
            .into_boxed();
        if let Some(after) = &query.after {
            // Ids are integers: a textual cursor that is no number sorts after every one.
            match row_id(after) {
                Some(after) => select = select.filter(users::id.gt(after)),
                None => return Ok(UserPage::default()),
            }
        }
        if let Some(text) = query.filter() {
            let in_email = instr(lower(users::email), text.clone()).gt(0);
            select = match text.parse::<i64>() {
                Ok(id) if id.to_string() == text => select.filter(in_email.or(users::id.eq(id))),
                _ => select.filter(in_email),
            };
        }
        // On the pool's blocking threads, not inline: a filter that matches few rows of a large
        // table reads many of them.
        let mut conn = self.conn().await?;
        let rows = select
            .load::<UserRow>(&mut *conn)
            .await
            .map_err(error::query)?;
        drop(conn);
        let found = rows
            .into_iter()
            .map(UserRow::into_user)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(query.page(found))
    }

    async fn delete(&self, tenant: Option<&TenantId>, id: &UserId) -> Result<bool, StoreError> {
        let Some(id) = row_id(id) else {
            return Ok(false);
        };
        let mut conn = self.conn().await?;
        let deleted = diesel::delete(
            users::table
                .filter(users::id.eq(id))
                .filter(users::tenant_id.is(tenant.map(TenantId::as_str))),
        )
        .execute(&mut *conn)
        .await
        .map_err(error::query)?;
        Ok(deleted > 0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers.ping()?;
        space::check(&self.path)
    }
}

/// Opens a pooled connection and applies the per-connection settings.
async fn connect(url: String) -> ConnectionResult<Conn> {
    let mut conn = Conn::establish(&url).await?;
    conn.batch_execute(migrate::CONNECTION_SETUP)
        .await
        .map_err(diesel::result::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}
