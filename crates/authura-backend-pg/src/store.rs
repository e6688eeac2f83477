//! `PgStore`: the `UserStore` over a pool of PostgreSQL connections. The table's name is
//! configurable, so the queries are plain SQL with every value bound as a parameter.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool::Runtime;
use deadpool::managed::{Hook, HookError, HookResult};
use diesel::result::ConnectionResult;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz};
use diesel::{IntoSql, OptionalExtension, QueryableByName};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as ManagerError, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tokio_postgres_rustls::MakeRustlsConnect;

use authura_core::types::{
    Email, NewUser, PasswordHash, Role, TenantId, User, UserChanges, UserId,
};
use authura_core::{Secret, StoreError, UserPage, UserQuery, UserStore};

use crate::error;
use crate::migrate;
use crate::state::PgStateStore;
use crate::statement::Sql;
use crate::table::UsersTable;
use crate::tls::{self, Dsn, SslMode};

/// How long a caller waits for a pooled connection (or for a new one to open) before the store
/// reports itself unavailable.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection unused for this long is checked with a round trip before it is used.
const VERIFY_IDLE: Duration = Duration::from_secs(30);

/// What [`PgStore::connect`] needs: `POSTGRES_DSN`, `POSTGRES_POOL_SIZE`,
/// `POSTGRES_USERS_TABLE`, `POSTGRES_TIMEOUT` and `EXTRA_CA_FILE`'s contents.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// A libpq DSN, URL (`postgres://user:pw@host:5432/db?sslmode=require`) or key/value
    /// (`host=/run/postgresql dbname=app`) form. Holds a password, hence `Secret`.
    pub dsn: Secret,
    /// Most connections open at once (at least 1).
    pub pool_size: usize,
    /// The users table.
    pub table: UsersTable,
    /// PEM certificates trusted for TLS in addition to the system's roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// How long one statement may wait for PostgreSQL's answer before the call fails with
    /// `Unavailable` and the connection is closed ([`PgSettings::DEFAULT_QUERY_TIMEOUT`]).
    /// A write that timed out may still have been committed by the server.
    pub query_timeout: Duration,
}

impl PgSettings {
    /// `POSTGRES_TIMEOUT`'s default.
    pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
}

/// A `UserStore` over one PostgreSQL table. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
    queries: Arc<Queries>,
    table: UsersTable,
    ssl_mode: SslMode,
    query_timeout: Duration,
    /// Opens connections outside the pool (the state events' listener).
    opener: Arc<Opener>,
}

impl PgStore {
    /// Connects with up to `settings.pool_size` connections, applies the pending migrations
    /// (each once, recorded in `authura_schema_migrations` next to the users table; creating
    /// the seed's table if it is missing) and checks that the table can be used.
    ///
    /// Makes one attempt: a caller that wants to wait for a database that is starting retries
    /// on `Unavailable`. Once connected, the pool reconnects by itself after the database comes
    /// back; meanwhile every call fails with `Unavailable`.
    ///
    /// # Errors
    /// - `Unavailable` when PostgreSQL cannot be reached (refused, timed out, starting up).
    /// - `Backend` for what waiting will not fix: a DSN that does not parse, a wrong password
    ///   or database, an untrusted certificate under `verify-ca`/`verify-full`, a pool size of 0;
    ///   a schema newer than this build ("database schema is newer than this build: …"); an
    ///   existing table with duplicate (email, tenant) pairs, so the unique index cannot be
    ///   built (nothing is changed then); a table without the columns Authura needs, or with a
    ///   NOT NULL column Authura cannot fill.
    pub async fn connect(settings: &PgSettings) -> Result<PgStore, StoreError> {
        if settings.pool_size == 0 {
            return Err(StoreError::Backend(
                "the pool size must be at least 1".to_owned(),
            ));
        }
        let opener = Arc::new(Opener::new(settings)?);
        {
            let mut conn = opener.open().await.map_err(error::connection)?;
            // An existing table is checked first, so a table of another shape is reported as
            // such rather than as a failed migration.
            if migrate::exists(&mut conn, &settings.table.quoted()).await? {
                migrate::check_table(&mut conn, &settings.table).await?;
            }
            migrate::run(&mut conn, &settings.table).await?;
            migrate::check_table(&mut conn, &settings.table).await?;
        }

        let pool = build_pool(&opener, settings.pool_size)?;

        let store = PgStore {
            pool,
            queries: Arc::new(Queries::new(&settings.table)),
            table: settings.table.clone(),
            ssl_mode: opener.dsn.ssl_mode,
            query_timeout: settings.query_timeout,
            opener,
        };
        store.ping().await?;
        Ok(store)
    }

    /// The users table this store works on.
    pub fn table(&self) -> &UsersTable {
        &self.table
    }

    /// The state store in this database (SPEC §13), in the users table's schema and sharing
    /// this store's connection pool, after applying the state migrations (each once, recorded
    /// in `authura_schema_migrations` under `authura_state`; a database with state migrations
    /// this build does not know is refused). Call it only when a stateful feature is on:
    /// without it the database holds no table of Authura's but the migration record.
    ///
    /// # Errors
    /// `Unavailable` when PostgreSQL cannot be reached; `Backend` for a newer state schema or a
    /// failed migration.
    pub async fn state(&self) -> Result<PgStateStore, StoreError> {
        let mut conn = self.conn().await?;
        migrate::run_state(&mut conn, self.table.schema()).await?;
        drop(conn);
        Ok(PgStateStore::new(
            self.pool.clone(),
            Arc::clone(&self.opener),
            self.table.schema(),
            self.query_timeout,
        ))
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.pool.get().await.map_err(error::pool)
    }

    /// `query`'s answer, or `None` when PostgreSQL has not answered within the query timeout
    /// (a server that stopped answering, or a connection silently cut by the network, which TCP
    /// alone would notice only after many minutes).
    async fn within_deadline<F: Future>(&self, query: F) -> Option<F::Output> {
        tokio::time::timeout(self.query_timeout, query).await.ok()
    }

    /// Unwraps [`Self::within_deadline`]'s answer. A connection that did not answer is taken out
    /// of the pool and closed: given to the next caller, it would still have the old query
    /// pending.
    fn settle<T>(
        &self,
        conn: Object<AsyncPgConnection>,
        answer: Option<T>,
    ) -> Result<T, StoreError> {
        answer.ok_or_else(|| {
            drop(Object::take(conn));
            StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {} s",
                self.query_timeout.as_secs_f64()
            ))
        })
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the DSN: it may hold a password.
        f.debug_struct("PgStore")
            .field("table", &self.table)
            .field("ssl_mode", &self.ssl_mode)
            .field("pool", &self.pool.status())
            .finish()
    }
}

// Every query names the tenant: `coalesce(tenant_id, '') = $n` with '' for "no tenant" (tenant
// ids are never empty), which is also the unique index's expression, so lookups use it.
#[async_trait]
impl UserStore for PgStore {
    async fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let query = self
            .queries
            .find_by_email
            .bind::<Text, _>(email.as_str())
            .bind::<Text, _>(tenant_key(tenant));
        let answer = self
            .within_deadline(query.get_result::<UserRow>(&mut *conn))
            .await;
        self.settle(conn, answer)?
            .optional()
            .map_err(error::query)?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        let Some(id) = row_id(id) else {
            return Ok(None);
        };
        let mut conn = self.conn().await?;
        let query = self
            .queries
            .find_by_id
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(tenant_key(tenant));
        let answer = self
            .within_deadline(query.get_result::<UserRow>(&mut *conn))
            .await;
        self.settle(conn, answer)?
            .optional()
            .map_err(error::query)?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let mut conn = self.conn().await?;
        // One statement: the unique index rejects a taken (email, tenant) atomically, also
        // against concurrent creates, and RETURNING reads back exactly what was stored.
        let query = self
            .queries
            .create
            .bind::<Text, _>(user.email.as_str())
            .bind::<Text, _>(user.role.as_str())
            .bind::<Text, _>(user.password_hash.as_str())
            .bind::<Nullable<Text>, _>(user.tenant.as_ref().map(TenantId::as_str))
            .bind::<Nullable<Timestamptz>, _>(user.verified_at);
        let answer = self
            .within_deadline(query.get_result::<UserRow>(&mut *conn))
            .await;
        self.settle(conn, answer)?
            .map_err(error::query)?
            .into_user()
    }

    async fn create_with_id(&self, id: &UserId, user: NewUser) -> Result<User, StoreError> {
        let UserId::Int(id) = *id else {
            return Err(StoreError::Unsupported("textual user ids".to_owned()));
        };
        let mut conn = self.conn().await?;
        // One statement: the insert (a taken id or (email, tenant) is a unique violation,
        // `Conflict`) and, when the id column has a sequence, moving the sequence past the
        // largest id, so `create` never assigns this one again.
        let query = self
            .queries
            .create_with_id
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(user.email.as_str())
            .bind::<Text, _>(user.role.as_str())
            .bind::<Text, _>(user.password_hash.as_str())
            .bind::<Nullable<Text>, _>(user.tenant.as_ref().map(TenantId::as_str))
            .bind::<Nullable<Timestamptz>, _>(user.verified_at)
            .bind::<Text, _>(self.table.quoted());
        let answer = self
            .within_deadline(query.get_result::<UserRow>(&mut *conn))
            .await;
        self.settle(conn, answer)?
            .map_err(error::query)?
            .into_user()
    }

    async fn update(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let Some(id) = row_id(id) else {
            return Err(StoreError::NotFound);
        };
        let mut conn = self.conn().await?;
        // One statement, as for create: a conflicting email aborts it with nothing changed. An
        // absent change is NULL, and `coalesce` keeps the column's value.
        let query = self
            .queries
            .update
            .bind::<Nullable<Text>, _>(changes.email.as_ref().map(Email::as_str))
            .bind::<Nullable<Text>, _>(changes.role.as_ref().map(Role::as_str))
            .bind::<Nullable<Text>, _>(changes.password_hash.as_ref().map(PasswordHash::as_str))
            .bind::<Nullable<Timestamptz>, _>(changes.verified_at)
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(tenant_key(tenant));
        let answer = self
            .within_deadline(query.get_result::<UserRow>(&mut *conn))
            .await;
        self.settle(conn, answer)?
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
        let Some(id) = row_id(&expected.id) else {
            return Err(StoreError::NotFound);
        };
        let mut conn = self.conn().await?;
        // One conditional statement: under READ COMMITTED a racing UPDATE waits for the row
        // lock, then re-checks the condition against the row as the winner left it, so of
        // concurrent calls with the same expectation exactly one matches.
        let query = self
            .queries
            .update_if
            .bind::<Nullable<Text>, _>(changes.email.as_ref().map(Email::as_str))
            .bind::<Nullable<Text>, _>(changes.role.as_ref().map(Role::as_str))
            .bind::<Nullable<Text>, _>(changes.password_hash.as_ref().map(PasswordHash::as_str))
            .bind::<Nullable<Timestamptz>, _>(changes.verified_at)
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(tenant_key(tenant))
            .bind::<Text, _>(expected.email.as_str())
            .bind::<Text, _>(expected.password_hash.as_str());
        let answer = self
            .within_deadline(query.get_result::<UserRow>(&mut *conn))
            .await;
        let updated = self
            .settle(conn, answer)?
            .optional()
            .map_err(error::query)?;
        match updated {
            Some(row) => row.into_user(),
            None => match self.find_by_id(tenant, &expected.id).await? {
                Some(_) => Err(StoreError::Changed),
                None => Err(StoreError::NotFound),
            },
        }
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        // Ids are integers: a textual cursor that is no number sorts after every one.
        let after = match &query.after {
            None => i64::MIN,
            Some(after) => match row_id(after) {
                Some(after) => after,
                None => return Ok(UserPage::default()),
            },
        };
        let limit = i64::try_from(query.page_size() + 1).unwrap_or(i64::MAX);
        let tenant = tenant_key(query.tenant.as_ref());
        let mut conn = self.conn().await?;
        let answer = match query.filter() {
            None => {
                let statement = self
                    .queries
                    .list
                    .bind::<Text, _>(tenant)
                    .bind::<BigInt, _>(after)
                    .bind::<BigInt, _>(limit);
                self.within_deadline(statement.load::<UserRow>(&mut *conn))
                    .await
            }
            Some(text) => {
                let id = text.parse::<i64>().ok().filter(|n| n.to_string() == text);
                let statement = self
                    .queries
                    .list_filtered
                    .bind::<Text, _>(tenant)
                    .bind::<BigInt, _>(after)
                    .bind::<Text, _>(text)
                    .bind::<Nullable<BigInt>, _>(id)
                    .bind::<BigInt, _>(limit);
                self.within_deadline(statement.load::<UserRow>(&mut *conn))
                    .await
            }
        };
        let found = self
            .settle(conn, answer)?
            .map_err(error::query)?
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
        let query = self
            .queries
            .delete
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(tenant_key(tenant));
        let answer = self.within_deadline(query.execute(&mut *conn)).await;
        let deleted = self.settle(conn, answer)?.map_err(error::query)?;
        Ok(deleted > 0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        // Touches the users table, so a database without it is not "ready".
        let answer = self
            .within_deadline(self.queries.ping.statement().execute(&mut *conn))
            .await;
        self.settle(conn, answer)?.map(drop).map_err(error::query)
    }

    fn pool_status(&self) -> Option<authura_core::store::PoolStatus> {
        let status = self.pool.status();
        Some(authura_core::store::PoolStatus {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        })
    }
}

/// The statements, built once from the validated table name; values are always parameters.
#[derive(Debug)]
struct Queries {
    find_by_email: Sql,
    find_by_id: Sql,
    create: Sql,
    create_with_id: Sql,
    update: Sql,
    update_if: Sql,
    delete: Sql,
    list: Sql,
    list_filtered: Sql,
    ping: Sql,
}

impl Queries {
    fn new(table: &UsersTable) -> Self {
        let t = table.quoted();
        // Casts make any table that fits the seed's shape read the same: SERIAL or BIGINT ids,
        // VARCHAR or TEXT, TIMESTAMP with or without time zone.
        let columns = "id::bigint AS id, email::text AS email, role::text AS role, \
                       password::text AS password, tenant_id::text AS tenant_id, \
                       verified_at::timestamptz AS verified_at";
        let same_tenant = "coalesce(tenant_id, '') = ";
        Queries {
            find_by_email: Sql::new(&format!(
                "SELECT {columns} FROM {t} WHERE lower(email) = $1 AND {same_tenant}$2 LIMIT 1"
            )),
            find_by_id: Sql::new(&format!(
                "SELECT {columns} FROM {t} WHERE id = $1 AND {same_tenant}$2 LIMIT 1"
            )),
            create: Sql::new(&format!(
                "INSERT INTO {t} (email, role, password, tenant_id, verified_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {columns}"
            )),
            // The sequence (if the id column has one) is moved in the same statement: a CTE
            // that the final SELECT reads is always evaluated. `GREATEST` with the new id, as
            // the CTE's own insert is not visible to `max` in the same statement. A column
            // without a sequence gives `setval(NULL, …)`, NULL: nothing to move.
            create_with_id: Sql::new(&format!(
                "WITH inserted AS (INSERT INTO {t} (id, email, role, password, tenant_id, \
                 verified_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {columns}), \
                 moved AS (SELECT setval(pg_get_serial_sequence($7, 'id'), \
                 GREATEST(inserted.id, (SELECT coalesce(max(id), 0) FROM {t}))::bigint) AS at \
                 FROM inserted) \
                 SELECT inserted.*, moved.at FROM inserted CROSS JOIN moved"
            )),
            update: Sql::new(&format!(
                "UPDATE {t} SET email = coalesce($1, email), role = coalesce($2, role), \
                 password = coalesce($3, password), verified_at = coalesce($4, verified_at) \
                 WHERE id = $5 AND {same_tenant}$6 RETURNING {columns}"
            )),
            update_if: Sql::new(&format!(
                "UPDATE {t} SET email = coalesce($1, email), role = coalesce($2, role), \
                 password = coalesce($3, password), verified_at = coalesce($4, verified_at) \
                 WHERE id = $5 AND {same_tenant}$6 AND lower(email) = $7 AND password = $8 \
                 RETURNING {columns}"
            )),
            delete: Sql::new(&format!(
                "DELETE FROM {t} WHERE id = $1 AND {same_tenant}$2"
            )),
            // Keyset paging on the (tenant, id) index of migration 0003: one index descent per
            // page at any depth. `ORDER BY u.id`, the column: a bare `id` would name the output
            // column `id::bigint AS id`, an expression no index has, and PostgreSQL would read
            // and sort every later row (150 ms a page at a million users, `cargo xtask bench
            // million`).
            list: Sql::new(&format!(
                "SELECT {columns} FROM {t} AS u WHERE {same_tenant}$1 AND id > $2 \
                 ORDER BY u.id LIMIT $3"
            )),
            // `strpos`, not `LIKE`: no character of the filter is a wildcard.
            list_filtered: Sql::new(&format!(
                "SELECT {columns} FROM {t} AS u WHERE {same_tenant}$1 AND id > $2 \
                 AND (strpos(lower(email), $3) > 0 OR id = $4) ORDER BY u.id LIMIT $5"
            )),
            ping: Sql::new(&format!("SELECT 1 FROM {t} LIMIT 1")),
        }
    }
}

/// A stored row, as selected (and returned by `RETURNING`).
#[derive(Debug, QueryableByName)]
struct UserRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    password: String,
    #[diesel(sql_type = Nullable<Text>)]
    tenant_id: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    verified_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// Validates a stored row into a domain user. Rows written by other tools can be malformed;
    /// the error names the row and the column, never the password hash.
    fn into_user(self) -> Result<User, StoreError> {
        authura_core::store::StoredUser {
            id: UserId::Int(self.id),
            email: self.email,
            role: self.role,
            tenant_id: self.tenant_id,
            password: self.password,
            verified_at: self.verified_at,
        }
        .into_user()
    }
}

/// A pool of up to `size` connections opened by `opener`.
pub(crate) fn build_pool(
    opener: &Arc<Opener>,
    size: usize,
) -> Result<Pool<AsyncPgConnection>, StoreError> {
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    // A connection the server closed (restart, failover) is noticed by its reader and
    // discarded on checkout; one left unused for a while is also checked with a round
    // trip first (`verify_if_idle`), since a silently dropped one cannot be noticed
    // otherwise. Checking every checkout would add a round trip to every request.
    config.recycling_method = RecyclingMethod::Fast;
    let setup = Arc::clone(opener);
    config.custom_setup = Box::new(move |_url| {
        let opener = Arc::clone(&setup);
        Box::pin(async move { opener.open().await })
    });
    // The URL is unused: connections come from `Opener`, which holds the parsed DSN.
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config("postgres://", config);
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .pre_recycle(Hook::async_fn(|conn, metrics| {
            Box::pin(verify_if_idle(conn, metrics.last_used()))
        }))
        .build()
        .map_err(|err| StoreError::Backend(format!("cannot build the pool: {err}")))
}

/// Checks a connection that has not been checked out for [`VERIFY_IDLE`] with a round trip; a
/// failure makes the pool discard it and hand out (or open) another.
async fn verify_if_idle(
    conn: &mut AsyncPgConnection,
    unused_for: Duration,
) -> HookResult<ManagerError> {
    if unused_for < VERIFY_IDLE {
        return Ok(());
    }
    diesel::select(1_i32.into_sql::<Integer>())
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| HookError::Backend(ManagerError::QueryError(e)))
}

/// The numeric id a `UserId` names, if any: ids are integers, so a textual id that is not a
/// number matches no row.
fn row_id(id: &UserId) -> Option<i64> {
    match id {
        UserId::Int(n) => Some(*n),
        UserId::Text(s) => s.parse().ok(),
    }
}

/// The value compared with `coalesce(tenant_id, '')`.
fn tenant_key(tenant: Option<&TenantId>) -> &str {
    tenant.map_or("", TenantId::as_str)
}

/// Opens connections: the parsed DSN and the TLS connector for its `sslmode`.
pub(crate) struct Opener {
    pub(crate) dsn: Dsn,
    pub(crate) tls: MakeRustlsConnect,
}

impl Opener {
    fn new(settings: &PgSettings) -> Result<Self, StoreError> {
        Opener::from_dsn(&settings.dsn, settings.extra_ca_pem.as_deref())
    }

    /// Parses `dsn` and builds the TLS connector its `sslmode` asks for.
    pub(crate) fn from_dsn(dsn: &Secret, extra_ca_pem: Option<&[u8]>) -> Result<Self, StoreError> {
        let dsn = Dsn::parse(dsn.expose())?;
        let tls = tls::connector(dsn.ssl_mode, extra_ca_pem, dsn.root_pem.as_deref())?;
        Ok(Opener { dsn, tls })
    }

    pub(crate) async fn open(&self) -> ConnectionResult<AsyncPgConnection> {
        let (client, connection) = self
            .dsn
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| error::open_failed(&e))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await
    }
}

/// One connection outside any pool (for `status`).
pub(crate) async fn open_once(settings: &PgSettings) -> Result<AsyncPgConnection, StoreError> {
    Opener::new(settings)?
        .open()
        .await
        .map_err(error::connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textual_ids_match_only_numbers() {
        assert_eq!(row_id(&UserId::Int(7)), Some(7));
        assert_eq!(row_id(&UserId::Text("7".into())), Some(7));
        assert_eq!(row_id(&UserId::Text("abc".into())), None);
    }

    #[test]
    fn queries_quote_the_table_and_bind_every_value() {
        let q = Queries::new(&UsersTable::parse("auth.accounts").unwrap());
        assert!(
            q.create
                .text()
                .starts_with(r#"INSERT INTO "auth"."accounts" "#)
        );
        for sql in [
            &q.find_by_email,
            &q.find_by_id,
            &q.update,
            &q.update_if,
            &q.delete,
            &q.list,
            &q.list_filtered,
        ] {
            let text = sql.text();
            assert!(text.contains(r#""auth"."accounts""#), "{text}");
            assert!(text.contains("coalesce(tenant_id, '') = $"), "{text}");
        }
        let counts = [
            &q.find_by_email,
            &q.find_by_id,
            &q.create,
            &q.update,
            &q.update_if,
            &q.delete,
            &q.list,
            &q.list_filtered,
            &q.ping,
        ]
        .map(Sql::parameters);
        assert_eq!(counts, [2, 2, 5, 6, 8, 2, 3, 5, 0]);
        // A table name with `$` is part of the text, not a parameter.
        let q = Queries::new(&UsersTable::parse("a$1").unwrap());
        assert!(q.find_by_id.text().contains(r#"FROM "a$1" WHERE id = $1 "#));
    }
}
