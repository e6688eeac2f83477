//! `SqliteStateStore`: the state store (SPEC §13) on Authura's own `authura_*` tables in an
//! SQLite file: the users table's database, or `STATE_DSN`'s.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_async::pooled_connection::deadpool::Pool;
use uuid::Uuid;

use authura_core::StoreError;
use authura_core::state::{KeyHash, Rotation, Session, SessionStore, StoredSession, stored_owner};
use authura_core::types::{TenantId, UserId};

use crate::error;
use crate::migrate;
use crate::store::{Conn, build_pool, utf8_path};

diesel::table! {
    /// Sessions (SPEC §8). Times are microseconds since the Unix epoch; `tenant_id` is `''` for
    /// no tenant.
    authura_sessions (id) {
        id -> Binary,
        key_hash -> Binary,
        tenant_id -> Text,
        user_id -> Text,
        user_id_numeric -> Bool,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        method -> Text,
        generation -> BigInt,
        generation_changed_at -> BigInt,
    }
}

use authura_sessions::dsl as s;

/// A `SessionStore` over the `authura_sessions` table of one SQLite file. Cloning is cheap and
/// shares the pool. Every operation runs on Tokio's blocking threads; those that read and then
/// write run in one `BEGIN IMMEDIATE` transaction, which SQLite serialises with every other
/// writer.
#[derive(Clone)]
pub struct SqliteStateStore {
    pool: Pool<Conn>,
    path: Arc<str>,
}

impl SqliteStateStore {
    /// Opens (creating if missing) the database at `path` as a state store only (for
    /// `STATE_DSN=sqlite:…`): applies the state migrations, and creates no users table. Use
    /// [`SqliteStore::state`](crate::SqliteStore::state) for the users table's own database.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be opened or stays locked; `Backend` when `pool_size`
    /// is 0, the path is not UTF-8, the database has migrations this build does not know, or
    /// SQLite fails.
    pub async fn open(path: impl AsRef<Path>, pool_size: usize) -> Result<Self, StoreError> {
        let path = utf8_path(path.as_ref())?;
        let pool = build_pool(&path, pool_size)?;
        SqliteStateStore::migrated(path, pool).await
    }

    /// Applies the state migrations to the database at `path` and wraps `pool`.
    pub(crate) async fn migrated(path: Arc<str>, pool: Pool<Conn>) -> Result<Self, StoreError> {
        migrate::run_blocking(Arc::clone(&path), migrate::Set::State).await?;
        Ok(SqliteStateStore { pool, path })
    }

    /// Runs `task` on a pooled connection, on a blocking thread.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        task: impl FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let mut conn = self.pool.get().await.map_err(error::pool)?;
        conn.spawn_blocking(task).await.map_err(error::query)
    }
}

impl fmt::Debug for SqliteStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStateStore")
            .field("path", &self.path)
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// A stored session row.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = authura_sessions, check_for_backend(Sqlite))]
struct Row {
    id: Vec<u8>,
    key_hash: Vec<u8>,
    tenant_id: String,
    user_id: String,
    user_id_numeric: bool,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    ip: Option<String>,
    user_agent: Option<String>,
    method: String,
    generation: i64,
    generation_changed_at: i64,
}

impl Row {
    fn new(session: &Session) -> Row {
        let c = StoredSession::new(session);
        Row {
            id: c.id.as_bytes().to_vec(),
            key_hash: c.key_hash,
            tenant_id: c.tenant_id,
            user_id: c.user_id,
            user_id_numeric: c.user_id_numeric,
            created_at: micros(c.created_at),
            last_seen_at: micros(c.last_seen_at),
            expires_at: micros(c.expires_at),
            ip: c.ip,
            user_agent: c.user_agent,
            method: c.method,
            generation: c.generation,
            generation_changed_at: micros(c.generation_changed_at),
        }
    }

    fn into_session(self) -> Result<Session, StoreError> {
        let id = Uuid::from_slice(&self.id)
            .map_err(|_| StoreError::Backend("a session has an invalid id".to_owned()))?;
        let time = |column: &str, value: i64| {
            DateTime::<Utc>::from_timestamp_micros(value)
                .ok_or_else(|| StoreError::Backend(format!("session {id} has an invalid {column}")))
        };
        StoredSession {
            id,
            key_hash: self.key_hash,
            user_id: self.user_id,
            user_id_numeric: self.user_id_numeric,
            tenant_id: self.tenant_id,
            created_at: time("created_at", self.created_at)?,
            last_seen_at: time("last_seen_at", self.last_seen_at)?,
            expires_at: time("expires_at", self.expires_at)?,
            ip: self.ip,
            user_agent: self.user_agent,
            method: self.method,
            generation: self.generation,
            generation_changed_at: time("generation_changed_at", self.generation_changed_at)?,
        }
        .into_session()
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn sessions(rows: Vec<Row>) -> Result<Vec<Session>, StoreError> {
    rows.into_iter().map(Row::into_session).collect()
}

#[async_trait]
impl SessionStore for SqliteStateStore {
    fn oauth_links(&self) -> Option<&dyn authura_core::state::OAuthLinkStore> {
        Some(self)
    }

    async fn create_session(
        &self,
        session: Session,
        max_active: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let row = Row::new(&session);
        let rows = self
            .run(move |conn| {
                conn.immediate_transaction(|conn| {
                    diesel::insert_into(s::authura_sessions)
                        .values(&row)
                        .execute(conn)?;
                    if max_active == 0 {
                        return Ok(Vec::new());
                    }
                    let doomed: Vec<Vec<u8>> = s::authura_sessions
                        .filter(s::tenant_id.eq(&row.tenant_id))
                        .filter(s::user_id.eq(&row.user_id))
                        .filter(s::user_id_numeric.eq(row.user_id_numeric))
                        .filter(s::expires_at.gt(row.created_at))
                        .order((s::created_at.desc(), s::id.desc()))
                        .offset(i64::from(max_active))
                        .select(s::id)
                        .load(conn)?;
                    if doomed.is_empty() {
                        return Ok(Vec::new());
                    }
                    diesel::delete(s::authura_sessions.filter(s::id.eq_any(doomed)))
                        .returning(Row::as_returning())
                        .get_results(conn)
                })
            })
            .await?;
        let mut ended = sessions(rows)?;
        ended.sort_by_key(|s| (s.created_at, s.id));
        Ok(ended)
    }

    async fn find_session_by_key(&self, key_hash: &KeyHash) -> Result<Option<Session>, StoreError> {
        let key = key_hash.as_bytes().to_vec();
        self.run(move |conn| {
            s::authura_sessions
                .filter(s::key_hash.eq(key))
                .select(Row::as_select())
                .first(conn)
                .optional()
        })
        .await?
        .map(Row::into_session)
        .transpose()
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.run(move |conn| find(conn, id))
            .await?
            .map(Row::into_session)
            .transpose()
    }

    async fn list_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let rows = self
            .run(move |conn| {
                s::authura_sessions
                    .filter(s::tenant_id.eq(tenant))
                    .filter(s::user_id.eq(user))
                    .filter(s::user_id_numeric.eq(numeric))
                    .order((s::created_at.desc(), s::id.desc()))
                    .select(Row::as_select())
                    .load(conn)
            })
            .await?;
        sessions(rows)
    }

    async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let updated = self
            .run(move |conn| {
                diesel::update(s::authura_sessions.filter(s::id.eq(id.as_bytes().to_vec())))
                    .set(s::last_seen_at.eq(micros(at)))
                    .execute(conn)
            })
            .await?;
        Ok(updated > 0)
    }

    async fn rotate_generation(
        &self,
        id: Uuid,
        expected: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, StoreError> {
        // One conditional UPDATE is the compare-and-set; only when it matched nothing is the
        // current state read, to tell "lost" from "gone".
        let (won, row) = self
            .run(move |conn| {
                let rotated = diesel::update(
                    s::authura_sessions
                        .filter(s::id.eq(id.as_bytes().to_vec()))
                        .filter(s::generation.eq(expected)),
                )
                .set((
                    s::generation.eq(s::generation + 1),
                    s::generation_changed_at.eq(micros(now)),
                ))
                .returning(Row::as_returning())
                .get_result(conn)
                .optional()?;
                match rotated {
                    Some(row) => Ok((true, Some(row))),
                    None => Ok((false, find(conn, id)?)),
                }
            })
            .await?;
        row.map(|row| {
            Ok(Rotation {
                won,
                session: row.into_session()?,
            })
        })
        .transpose()
    }

    async fn end_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.run(move |conn| {
            diesel::delete(s::authura_sessions.filter(s::id.eq(id.as_bytes().to_vec())))
                .returning(Row::as_returning())
                .get_result(conn)
                .optional()
        })
        .await?
        .map(Row::into_session)
        .transpose()
    }

    async fn end_user_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        except: Option<Uuid>,
    ) -> Result<Vec<Session>, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        // An empty blob is no session's id, so "except nothing" needs no second statement.
        let except = except.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
        let rows = self
            .run(move |conn| {
                diesel::delete(
                    s::authura_sessions
                        .filter(s::tenant_id.eq(tenant))
                        .filter(s::user_id.eq(user))
                        .filter(s::user_id_numeric.eq(numeric))
                        .filter(s::id.ne(except)),
                )
                .returning(Row::as_returning())
                .get_results(conn)
            })
            .await?;
        sessions(rows)
    }

    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let purged = self
            .run(move |conn| {
                diesel::delete(s::authura_sessions.filter(s::expires_at.le(micros(now))))
                    .execute(conn)
            })
            .await?;
        Ok(purged as u64)
    }
}

fn find(conn: &mut SqliteConnection, id: Uuid) -> QueryResult<Option<Row>> {
    s::authura_sessions
        .filter(s::id.eq(id.as_bytes().to_vec()))
        .select(Row::as_select())
        .first(conn)
        .optional()
}
