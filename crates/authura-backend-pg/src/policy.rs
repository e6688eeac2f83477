//! The policy parts of [`PgStateStore`]: account state and password history (`AccountStore`,
//! on `authura_account_state` and `authura_password_history`) and the audit log
//! (`AuditStore`, on `authura_audit`), SPEC §11.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use authura_core::StoreError;
use authura_core::state::audit::{read_tenant, read_user, stored_user};
use authura_core::state::{
    AccountChange, AccountState, AccountStore, AuditEvent, AuditQuery, AuditStore,
    StoredAuditEvent, stored_owner,
};
use authura_core::types::{PasswordHash, TenantId, UserId};

use crate::migrate::{ACCOUNT_STATE_TABLE, AUDIT_TABLE, PASSWORD_HISTORY_TABLE, quoted_in};
use crate::state::PgStateStore;
use crate::statement::Sql;

/// The statements, built once from the quoted table names.
pub(crate) struct PolicyQueries {
    ensure: Sql,
    lock_account: Sql,
    find_account: Sql,
    write_account: Sql,
    push_history: Sql,
    trim_history: Sql,
    history: Sql,
    forget_account: Sql,
    forget_history: Sql,
    append: Sql,
    list: String,
    prune: Sql,
}

const ACCOUNT_COLUMNS: &str =
    "locked_at, locked_until, archived_at, failed_logins, password_changed_at, last_login_at";

const AUDIT_COLUMNS: &str = "id, at, event, tenant_id, user_id, user_id_numeric, actor_id, \
    actor_id_numeric, ip, user_agent, detail::text AS detail";

impl PolicyQueries {
    pub(crate) fn new(schema: Option<&str>) -> PolicyQueries {
        let a = quoted_in(schema, ACCOUNT_STATE_TABLE);
        let h = quoted_in(schema, PASSWORD_HISTORY_TABLE);
        let au = quoted_in(schema, AUDIT_TABLE);
        let owner = "tenant_id = $1 AND user_id = $2 AND user_id_numeric = $3";
        PolicyQueries {
            ensure: Sql::new(&format!(
                "INSERT INTO {a} (tenant_id, user_id, user_id_numeric) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING"
            )),
            lock_account: Sql::new(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM {a} WHERE {owner} FOR UPDATE"
            )),
            find_account: Sql::new(&format!("SELECT {ACCOUNT_COLUMNS} FROM {a} WHERE {owner}")),
            write_account: Sql::new(&format!(
                "UPDATE {a} SET locked_at = $1, locked_until = $2, archived_at = $3, \
                 failed_logins = $4, password_changed_at = $5, last_login_at = $6 \
                 WHERE tenant_id = $7 AND user_id = $8 AND user_id_numeric = $9"
            )),
            push_history: Sql::new(&format!(
                "INSERT INTO {h} (tenant_id, user_id, user_id_numeric, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5)"
            )),
            trim_history: Sql::new(&format!(
                "DELETE FROM {h} WHERE id IN (SELECT id FROM {h} WHERE {owner} \
                 ORDER BY id DESC OFFSET $4)"
            )),
            history: Sql::new(&format!(
                "SELECT password_hash FROM {h} WHERE {owner} ORDER BY id DESC LIMIT $4"
            )),
            forget_account: Sql::new(&format!("DELETE FROM {a} WHERE {owner}")),
            forget_history: Sql::new(&format!("DELETE FROM {h} WHERE {owner}")),
            append: Sql::new(&format!(
                "INSERT INTO {au} (at, event, tenant_id, user_id, user_id_numeric, actor_id, \
                 actor_id_numeric, ip, user_agent, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)"
            )),
            // One statement for every combination of filters, prepared once.
            list: format!(
                "SELECT {AUDIT_COLUMNS} FROM {au} WHERE tenant_id = $1 \
                 AND ($2::text IS NULL OR (user_id = $2 AND user_id_numeric = $3)) \
                 AND ($4::text IS NULL OR event = $4) \
                 AND ($5::timestamptz IS NULL OR at >= $5) \
                 AND ($6::timestamptz IS NULL OR at < $6) \
                 AND ($7::bigint IS NULL OR id < $7) \
                 ORDER BY id DESC LIMIT $8"
            ),
            prune: Sql::new(&format!("DELETE FROM {au} WHERE at < $1")),
        }
    }
}

#[derive(QueryableByName)]
struct AccountRow {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    archived_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Integer)]
    failed_logins: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    password_changed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_login_at: Option<DateTime<Utc>>,
}

impl AccountRow {
    fn into_state(self) -> AccountState {
        AccountState {
            locked_at: self.locked_at,
            locked_until: self.locked_until,
            archived_at: self.archived_at,
            failed_logins: u32::try_from(self.failed_logins).unwrap_or(0),
            password_changed_at: self.password_changed_at,
            last_login_at: self.last_login_at,
        }
    }
}

#[derive(QueryableByName)]
struct HashRow {
    #[diesel(sql_type = Text)]
    password_hash: String,
}

#[async_trait]
impl AccountStore for PgStateStore {
    async fn account_state(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<AccountState, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let query = self
            .policy
            .find_account
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        let row = self
            .run(async |conn| {
                diesel::OptionalExtension::optional(query.get_result::<AccountRow>(conn).await)
            })
            .await?;
        Ok(row.map(AccountRow::into_state).unwrap_or_default())
    }

    async fn update_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        change: &AccountChange,
    ) -> Result<(AccountState, AccountState), StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let q = &self.policy;
        let ensure = q
            .ensure
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        let lock = q
            .lock_account
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        self.run(async |conn| {
            conn.batch_execute("BEGIN").await?;
            let result = async {
                ensure.execute(&mut *conn).await?;
                // The row lock makes the read, the change and the write one step for every
                // other instance.
                let before = lock
                    .get_result::<AccountRow>(&mut *conn)
                    .await?
                    .into_state();
                let after = change.apply(before.clone());
                q.write_account
                    .bind::<Nullable<Timestamptz>, _>(after.locked_at)
                    .bind::<Nullable<Timestamptz>, _>(after.locked_until)
                    .bind::<Nullable<Timestamptz>, _>(after.archived_at)
                    .bind::<Integer, _>(i32::try_from(after.failed_logins).unwrap_or(i32::MAX))
                    .bind::<Nullable<Timestamptz>, _>(after.password_changed_at)
                    .bind::<Nullable<Timestamptz>, _>(after.last_login_at)
                    .bind::<Text, _>(&tenant)
                    .bind::<Text, _>(&user)
                    .bind::<Bool, _>(numeric)
                    .execute(&mut *conn)
                    .await?;
                Ok::<_, diesel::result::Error>((before, after))
            }
            .await;
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = conn.batch_execute(end).await;
            let states = result?;
            ended?;
            Ok(states)
        })
        .await
    }

    async fn push_password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        hash: &PasswordHash,
        at: DateTime<Utc>,
        keep: u32,
    ) -> Result<(), StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let q = &self.policy;
        let push = q
            .push_history
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric)
            .bind::<Text, _>(hash.as_str())
            .bind::<Timestamptz, _>(at);
        let trim = q
            .trim_history
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric)
            .bind::<BigInt, _>(i64::from(keep));
        self.run(async |conn| {
            push.execute(&mut *conn).await?;
            trim.execute(&mut *conn).await.map(drop)
        })
        .await
    }

    async fn password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        limit: u32,
    ) -> Result<Vec<PasswordHash>, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let query = self
            .policy
            .history
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric)
            .bind::<BigInt, _>(i64::from(limit));
        let rows = self
            .run(async |conn| query.load::<HashRow>(conn).await)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| PasswordHash::new(r.password_hash))
            .collect())
    }

    async fn forget_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let q = &self.policy;
        let account = q
            .forget_account
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        let history = q
            .forget_history
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        self.run(async |conn| {
            account.execute(&mut *conn).await?;
            history.execute(&mut *conn).await.map(drop)
        })
        .await
    }
}

#[derive(QueryableByName)]
struct AuditRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    event: String,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    user_id: Option<String>,
    #[diesel(sql_type = Bool)]
    user_id_numeric: bool,
    #[diesel(sql_type = Nullable<Text>)]
    actor_id: Option<String>,
    #[diesel(sql_type = Bool)]
    actor_id_numeric: bool,
    #[diesel(sql_type = Nullable<Text>)]
    ip: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    user_agent: Option<String>,
    #[diesel(sql_type = Text)]
    detail: String,
}

impl AuditRow {
    fn into_event(self) -> Result<StoredAuditEvent, StoreError> {
        let id = self.id;
        Ok(StoredAuditEvent {
            id,
            event: AuditEvent {
                at: self.at,
                event: self.event,
                tenant: read_tenant(&self.tenant_id)?,
                user_id: read_user(self.user_id, self.user_id_numeric)?,
                actor_id: read_user(self.actor_id, self.actor_id_numeric)?,
                ip: self.ip,
                user_agent: self.user_agent,
                detail: serde_json::from_str(&self.detail).map_err(|_| {
                    StoreError::Backend(format!("audit event {id} has invalid detail"))
                })?,
            },
        })
    }
}

fn tenant_text(tenant: Option<&TenantId>) -> String {
    tenant.map(TenantId::as_str).unwrap_or_default().to_owned()
}

#[async_trait]
impl AuditStore for PgStateStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        struct Columns {
            tenant: String,
            user: (Option<String>, bool),
            actor: (Option<String>, bool),
            detail: String,
        }
        let columns: Vec<Columns> = events
            .iter()
            .map(|e| Columns {
                tenant: tenant_text(e.tenant.as_ref()),
                user: stored_user(e.user_id.as_ref()),
                actor: stored_user(e.actor_id.as_ref()),
                detail: e.detail.to_string(),
            })
            .collect();
        let q = &self.policy;
        let statements: Vec<_> = events
            .iter()
            .zip(&columns)
            .map(|(e, c)| {
                q.append
                    .bind::<Timestamptz, _>(e.at)
                    .bind::<Text, _>(&e.event)
                    .bind::<Text, _>(&c.tenant)
                    .bind::<Nullable<Text>, _>(&c.user.0)
                    .bind::<Bool, _>(c.user.1)
                    .bind::<Nullable<Text>, _>(&c.actor.0)
                    .bind::<Bool, _>(c.actor.1)
                    .bind::<Nullable<Text>, _>(&e.ip)
                    .bind::<Nullable<Text>, _>(&e.user_agent)
                    .bind::<Text, _>(&c.detail)
            })
            .collect();
        self.run(async |conn| {
            conn.batch_execute("BEGIN").await?;
            let result = async {
                for statement in statements {
                    statement.execute(&mut *conn).await?;
                }
                Ok::<_, diesel::result::Error>(())
            }
            .await;
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = conn.batch_execute(end).await;
            result?;
            ended
        })
        .await
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let tenant = tenant_text(q.tenant.as_ref());
        let (user, numeric) = stored_user(q.user_id.as_ref());
        // Parameters are used twice, which `Sql` does not allow: a plain query.
        let query = diesel::sql_query(self.policy.list.clone())
            .bind::<Text, _>(&tenant)
            .bind::<Nullable<Text>, _>(&user)
            .bind::<Bool, _>(numeric)
            .bind::<Nullable<Text>, _>(&q.event)
            .bind::<Nullable<Timestamptz>, _>(q.since)
            .bind::<Nullable<Timestamptz>, _>(q.until)
            .bind::<Nullable<BigInt>, _>(q.before_id)
            .bind::<BigInt, _>(i64::from(q.limit));
        let rows = self
            .run(async |conn| query.load::<AuditRow>(conn).await)
            .await?;
        rows.into_iter().map(AuditRow::into_event).collect()
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let query = self.policy.prune.bind::<Timestamptz, _>(before);
        let pruned = self.run(async |conn| query.execute(conn).await).await?;
        Ok(pruned as u64)
    }
}
