//! `PgStateStore`: the state store (SPEC §13) on Authura's own `authura_*` tables in
//! PostgreSQL: beside the users table ([`PgStore::state`](crate::PgStore::state)) or in
//! `STATE_DSN`'s database ([`PgStateStore::connect`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text, Timestamptz};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use authura_core::state::{KeyHash, Rotation, Session, SessionStore, StoredSession, stored_owner};
use authura_core::types::{TenantId, UserId};
use authura_core::{Secret, StoreError};

use crate::error;
use crate::events::PgStateEvents;
use crate::migrate::{self, SESSIONS_TABLE};
use crate::policy::PolicyQueries;
use crate::statement::Sql;
use crate::store::{Opener, build_pool};

/// What [`PgStateStore::connect`] needs for a database of its own (`STATE_DSN`).
#[derive(Debug, Clone)]
pub struct PgStateSettings {
    /// A libpq DSN, URL or key/value form, `sslmode` included. Holds a password, hence `Secret`.
    pub dsn: Secret,
    /// Most connections open at once (at least 1).
    pub pool_size: usize,
    /// PEM certificates trusted for TLS in addition to the system's roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// How long one statement may wait for PostgreSQL's answer (as `PgSettings::query_timeout`).
    pub query_timeout: Duration,
}

/// A `SessionStore` over the `authura_sessions` table. Cloning is cheap and shares the pool.
///
/// Creating a session with a `max_active` limit takes a transaction-scoped advisory lock on the
/// (tenant, user) pair, so concurrent sign-ins of one user, in this process or another, apply
/// the limit one after the other; rotation is one conditional `UPDATE`.
#[derive(Clone)]
pub struct PgStateStore {
    pool: Pool<AsyncPgConnection>,
    queries: Arc<Queries>,
    /// The role groups' and permits' statements.
    pub(crate) permit_queries: Arc<crate::permits::Queries>,
    /// The account state, history and audit statements (`policy.rs`).
    pub(crate) policy: Arc<PolicyQueries>,
    /// The OAuth links' statements.
    pub(crate) oauth_link_queries: Arc<crate::oauth_links::Queries>,
    query_timeout: Duration,
    /// Opens the state events' dedicated listening connection.
    opener: Arc<Opener>,
}

impl PgStateStore {
    /// Connects to a database used only for state (`STATE_DSN=postgres://…`), applies the
    /// state migrations (in the first schema of the connection's `search_path`) and checks the
    /// pool with a round trip. Makes one attempt, as `PgStore::connect` does.
    ///
    /// # Errors
    /// `Unavailable` when PostgreSQL cannot be reached; `Backend` for a DSN that does not parse,
    /// a wrong password, an untrusted certificate, a pool size of 0, a newer state schema or a
    /// failed migration.
    pub async fn connect(settings: &PgStateSettings) -> Result<PgStateStore, StoreError> {
        if settings.pool_size == 0 {
            return Err(StoreError::Backend(
                "the pool size must be at least 1".to_owned(),
            ));
        }
        let opener = Arc::new(Opener::from_dsn(
            &settings.dsn,
            settings.extra_ca_pem.as_deref(),
        )?);
        {
            let mut conn = opener.open().await.map_err(error::connection)?;
            migrate::run_state(&mut conn, None).await?;
        }
        let pool = build_pool(&opener, settings.pool_size)?;
        let store = PgStateStore::new(pool, opener, None, settings.query_timeout);
        store.find_session(Uuid::nil()).await?;
        Ok(store)
    }

    /// The store over the sessions table in `schema`, on `pool`.
    pub(crate) fn new(
        pool: Pool<AsyncPgConnection>,
        opener: Arc<Opener>,
        schema: Option<&str>,
        query_timeout: Duration,
    ) -> PgStateStore {
        PgStateStore {
            pool,
            queries: Arc::new(Queries::new(&migrate::quoted_in(schema, SESSIONS_TABLE))),
            permit_queries: Arc::new(crate::permits::Queries::new(schema)),
            policy: Arc::new(PolicyQueries::new(schema)),
            oauth_link_queries: Arc::new(crate::oauth_links::Queries::new(schema)),
            query_timeout,
            opener,
        }
    }

    /// State events between the instances on this database (`LISTEN/NOTIFY` on
    /// `authura_state`): publishing through this store's pool, listening on a dedicated
    /// connection of its own. Starts the listener task, so call it within a Tokio runtime.
    pub fn events(&self) -> PgStateEvents {
        PgStateEvents::start(self.clone(), Arc::clone(&self.opener))
    }

    /// Sends `payload` on `channel` (`pg_notify`) through the pool.
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        let channel = channel.to_owned();
        let payload = payload.to_owned();
        self.run(async move |conn| {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<Text, _>(channel)
                .bind::<Text, _>(payload)
                .execute(conn)
                .await
                .map(drop)
        })
        .await
    }

    /// Runs `work` on a pooled connection within the query timeout; a connection that did not
    /// answer in time is closed rather than returned to the pool with a query pending.
    pub(crate) async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get().await.map_err(error::pool)?;
        match tokio::time::timeout(self.query_timeout, work(&mut conn)).await {
            Ok(answer) => answer.map_err(error::query),
            Err(_) => {
                drop(Object::take(conn));
                Err(StoreError::Unavailable(format!(
                    "PostgreSQL did not answer within {} s",
                    self.query_timeout.as_secs_f64()
                )))
            }
        }
    }
}

impl fmt::Debug for PgStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStateStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// The columns every statement returns, the id as text (no `uuid` feature in diesel needed).
const COLUMNS: &str = "id::text AS id_text, key_hash, tenant_id, user_id, user_id_numeric, \
    created_at, last_seen_at, expires_at, ip, user_agent, method, generation, \
    generation_changed_at";

/// The statements, built once from the quoted table name.
struct Queries {
    insert: Sql,
    lock_user: Sql,
    evict: Sql,
    find_by_key: Sql,
    find: Sql,
    list: Sql,
    touch: Sql,
    rotate: Sql,
    end: Sql,
    end_user: Sql,
    purge: Sql,
}

/// The first key of the advisory locks on a user's sessions ("auth"), in the two-key space,
/// which never meets the migrations' single-key lock.
const USER_LOCK_SPACE: i32 = 0x6175_7468;

impl Queries {
    fn new(t: &str) -> Queries {
        let owner = "tenant_id = $1 AND user_id = $2 AND user_id_numeric = $3";
        Queries {
            insert: Sql::new(&format!(
                "INSERT INTO {t} (id, key_hash, tenant_id, user_id, user_id_numeric, created_at, \
                 last_seen_at, expires_at, ip, user_agent, method, generation, \
                 generation_changed_at) \
                 VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            )),
            lock_user: Sql::new("SELECT pg_advisory_xact_lock($1, hashtext($2))"),
            evict: Sql::new(&format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE {owner} \
                 AND expires_at > $4 ORDER BY created_at DESC, id DESC OFFSET $5) \
                 RETURNING {COLUMNS}"
            )),
            find_by_key: Sql::new(&format!("SELECT {COLUMNS} FROM {t} WHERE key_hash = $1")),
            find: Sql::new(&format!("SELECT {COLUMNS} FROM {t} WHERE id = $1::uuid")),
            list: Sql::new(&format!(
                "SELECT {COLUMNS} FROM {t} WHERE {owner} ORDER BY created_at DESC, id DESC"
            )),
            touch: Sql::new(&format!(
                "UPDATE {t} SET last_seen_at = $1 WHERE id = $2::uuid"
            )),
            rotate: Sql::new(&format!(
                "UPDATE {t} SET generation = generation + 1, generation_changed_at = $1 \
                 WHERE id = $2::uuid AND generation = $3 RETURNING {COLUMNS}"
            )),
            end: Sql::new(&format!(
                "DELETE FROM {t} WHERE id = $1::uuid RETURNING {COLUMNS}"
            )),
            end_user: Sql::new(&format!(
                "DELETE FROM {t} WHERE {owner} AND id IS DISTINCT FROM $4::uuid \
                 RETURNING {COLUMNS}"
            )),
            purge: Sql::new(&format!("DELETE FROM {t} WHERE expires_at <= $1")),
        }
    }
}

/// A stored session row.
#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    id_text: String,
    #[diesel(sql_type = Binary)]
    key_hash: Vec<u8>,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Bool)]
    user_id_numeric: bool,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    last_seen_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    ip: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    user_agent: Option<String>,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = BigInt)]
    generation: i64,
    #[diesel(sql_type = Timestamptz)]
    generation_changed_at: DateTime<Utc>,
}

impl Row {
    fn into_session(self) -> Result<Session, StoreError> {
        let id = Uuid::parse_str(&self.id_text)
            .map_err(|_| StoreError::Backend("a session has an invalid id".to_owned()))?;
        StoredSession {
            id,
            key_hash: self.key_hash,
            user_id: self.user_id,
            user_id_numeric: self.user_id_numeric,
            tenant_id: self.tenant_id,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            ip: self.ip,
            user_agent: self.user_agent,
            method: self.method,
            generation: self.generation,
            generation_changed_at: self.generation_changed_at,
        }
        .into_session()
    }
}

fn sessions(rows: Vec<Row>) -> Result<Vec<Session>, StoreError> {
    rows.into_iter().map(Row::into_session).collect()
}

fn one(row: Option<Row>) -> Result<Option<Session>, StoreError> {
    row.map(Row::into_session).transpose()
}

#[async_trait]
impl SessionStore for PgStateStore {
    fn oauth_links(&self) -> Option<&dyn authura_core::state::OAuthLinkStore> {
        Some(self)
    }

    async fn create_session(
        &self,
        session: Session,
        max_active: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let c = StoredSession::new(&session);
        let id = c.id.to_string();
        let q = &self.queries;
        let insert = q
            .insert
            .bind::<Text, _>(&id)
            .bind::<Binary, _>(&c.key_hash)
            .bind::<Text, _>(&c.tenant_id)
            .bind::<Text, _>(&c.user_id)
            .bind::<Bool, _>(c.user_id_numeric)
            .bind::<Timestamptz, _>(c.created_at)
            .bind::<Timestamptz, _>(c.last_seen_at)
            .bind::<Timestamptz, _>(c.expires_at)
            .bind::<Nullable<Text>, _>(&c.ip)
            .bind::<Nullable<Text>, _>(&c.user_agent)
            .bind::<Text, _>(&c.method)
            .bind::<BigInt, _>(c.generation)
            .bind::<Timestamptz, _>(c.generation_changed_at);
        if max_active == 0 {
            self.run(async |conn| insert.execute(conn).await).await?;
            return Ok(Vec::new());
        }
        let lock_key = format!(
            "{}:{}:{}:{}",
            c.user_id_numeric,
            c.tenant_id.len(),
            c.tenant_id,
            c.user_id
        );
        let lock = q
            .lock_user
            .bind::<Integer, _>(USER_LOCK_SPACE)
            .bind::<Text, _>(&lock_key);
        let evict = q
            .evict
            .bind::<Text, _>(&c.tenant_id)
            .bind::<Text, _>(&c.user_id)
            .bind::<Bool, _>(c.user_id_numeric)
            .bind::<Timestamptz, _>(c.created_at)
            .bind::<BigInt, _>(i64::from(max_active));
        let rows = self
            .run(async |conn| {
                conn.batch_execute("BEGIN").await?;
                let result = async {
                    lock.execute(&mut *conn).await?;
                    insert.execute(&mut *conn).await?;
                    evict.load::<Row>(&mut *conn).await
                }
                .await;
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let ended = conn.batch_execute(end).await;
                let rows = result?;
                ended?;
                Ok(rows)
            })
            .await?;
        let mut ended = sessions(rows)?;
        ended.sort_by_key(|s| (s.created_at, s.id));
        Ok(ended)
    }

    async fn find_session_by_key(&self, key_hash: &KeyHash) -> Result<Option<Session>, StoreError> {
        let query = self.queries.find_by_key.bind::<Binary, _>(&key_hash.0[..]);
        one(self
            .run(async |conn| query.get_result::<Row>(conn).await.optional())
            .await?)
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        let id = id.to_string();
        let query = self.queries.find.bind::<Text, _>(&id);
        one(self
            .run(async |conn| query.get_result::<Row>(conn).await.optional())
            .await?)
    }

    async fn list_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let query = self
            .queries
            .list
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        sessions(self.run(async |conn| query.load::<Row>(conn).await).await?)
    }

    async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let id = id.to_string();
        let query = self
            .queries
            .touch
            .bind::<Timestamptz, _>(at)
            .bind::<Text, _>(&id);
        Ok(self.run(async |conn| query.execute(conn).await).await? > 0)
    }

    async fn rotate_generation(
        &self,
        id: Uuid,
        expected: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, StoreError> {
        let text = id.to_string();
        let query = self
            .queries
            .rotate
            .bind::<Timestamptz, _>(now)
            .bind::<Text, _>(&text)
            .bind::<BigInt, _>(expected);
        // One conditional UPDATE is the compare-and-set; only when it matched nothing is the
        // current state read, to tell "lost" from "gone".
        if let Some(session) = one(self
            .run(async |conn| query.get_result::<Row>(conn).await.optional())
            .await?)?
        {
            return Ok(Some(Rotation { won: true, session }));
        }
        Ok(self.find_session(id).await?.map(|session| Rotation {
            won: false,
            session,
        }))
    }

    async fn end_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        let id = id.to_string();
        let query = self.queries.end.bind::<Text, _>(&id);
        one(self
            .run(async |conn| query.get_result::<Row>(conn).await.optional())
            .await?)
    }

    async fn end_user_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        except: Option<Uuid>,
    ) -> Result<Vec<Session>, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let except = except.map(|id| id.to_string());
        let query = self
            .queries
            .end_user
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric)
            .bind::<Nullable<Text>, _>(&except);
        sessions(self.run(async |conn| query.load::<Row>(conn).await).await?)
    }

    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let query = self.queries.purge.bind::<Timestamptz, _>(now);
        let purged = self.run(async |conn| query.execute(conn).await).await?;
        Ok(purged as u64)
    }
}
