//! The policy parts of [`SqliteStateStore`]: account state and password history
//! (`AccountStore`, on `authura_account_state` and `authura_password_history`) and the audit
//! log (`AuditStore`, on `authura_audit`), SPEC §11.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sqlite::Sqlite;

use authura_core::StoreError;
use authura_core::state::audit::{read_tenant, read_user, stored_user};
use authura_core::state::{
    AccountChange, AccountState, AccountStore, AuditEvent, AuditQuery, AuditStore,
    StoredAuditEvent, stored_owner,
};
use authura_core::types::{PasswordHash, TenantId, UserId};

use crate::state::SqliteStateStore;

diesel::table! {
    /// Account state (SPEC §11); times in microseconds since the epoch.
    authura_account_state (tenant_id, user_id, user_id_numeric) {
        tenant_id -> Text,
        user_id -> Text,
        user_id_numeric -> Bool,
        locked_at -> Nullable<BigInt>,
        locked_until -> Nullable<BigInt>,
        archived_at -> Nullable<BigInt>,
        failed_logins -> Integer,
        password_changed_at -> Nullable<BigInt>,
        last_login_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Password history (SPEC §11).
    authura_password_history (id) {
        id -> BigInt,
        tenant_id -> Text,
        user_id -> Text,
        user_id_numeric -> Bool,
        password_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// The audit log (SPEC §11).
    authura_audit (id) {
        id -> BigInt,
        at -> BigInt,
        event -> Text,
        tenant_id -> Text,
        user_id -> Nullable<Text>,
        user_id_numeric -> Bool,
        actor_id -> Nullable<Text>,
        actor_id_numeric -> Bool,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Text,
    }
}

use authura_account_state::dsl as a;
use authura_audit::dsl as au;
use authura_password_history::dsl as h;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = authura_account_state, check_for_backend(Sqlite))]
struct AccountRow {
    tenant_id: String,
    user_id: String,
    user_id_numeric: bool,
    locked_at: Option<i64>,
    locked_until: Option<i64>,
    archived_at: Option<i64>,
    failed_logins: i32,
    password_changed_at: Option<i64>,
    last_login_at: Option<i64>,
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(value: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    value
        .map(|v| {
            DateTime::<Utc>::from_timestamp_micros(v)
                .ok_or_else(|| StoreError::Backend("a state row has an invalid time".into()))
        })
        .transpose()
}

impl AccountRow {
    fn new(owner: (String, String, bool), s: &AccountState) -> AccountRow {
        let (tenant_id, user_id, user_id_numeric) = owner;
        AccountRow {
            tenant_id,
            user_id,
            user_id_numeric,
            locked_at: s.locked_at.map(micros),
            locked_until: s.locked_until.map(micros),
            archived_at: s.archived_at.map(micros),
            failed_logins: i32::try_from(s.failed_logins).unwrap_or(i32::MAX),
            password_changed_at: s.password_changed_at.map(micros),
            last_login_at: s.last_login_at.map(micros),
        }
    }

    fn into_state(self) -> Result<AccountState, StoreError> {
        Ok(AccountState {
            locked_at: time(self.locked_at)?,
            locked_until: time(self.locked_until)?,
            archived_at: time(self.archived_at)?,
            failed_logins: u32::try_from(self.failed_logins).unwrap_or(0),
            password_changed_at: time(self.password_changed_at)?,
            last_login_at: time(self.last_login_at)?,
        })
    }
}

fn find_account(
    conn: &mut SqliteConnection,
    (tenant, user, numeric): &(String, String, bool),
) -> QueryResult<Option<AccountRow>> {
    a::authura_account_state
        .filter(a::tenant_id.eq(tenant))
        .filter(a::user_id.eq(user))
        .filter(a::user_id_numeric.eq(numeric))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

#[async_trait]
impl AccountStore for SqliteStateStore {
    async fn account_state(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<AccountState, StoreError> {
        let owner = stored_owner(tenant, user_id);
        match self.run(move |conn| find_account(conn, &owner)).await? {
            Some(row) => row.into_state(),
            None => Ok(AccountState::default()),
        }
    }

    async fn update_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        change: &AccountChange,
    ) -> Result<(AccountState, AccountState), StoreError> {
        let owner = stored_owner(tenant, user_id);
        let change = change.clone();
        self.run(move |conn| {
            // BEGIN IMMEDIATE: the read and the write are one step for every other writer.
            conn.immediate_transaction(|conn| {
                let before = match find_account(conn, &owner)?.map(AccountRow::into_state) {
                    None => AccountState::default(),
                    Some(Ok(state)) => state,
                    Some(Err(e)) => return Ok(Err(e)),
                };
                let after = change.apply(before.clone());
                diesel::replace_into(a::authura_account_state)
                    .values(AccountRow::new(owner, &after))
                    .execute(conn)?;
                Ok(Ok((before, after)))
            })
        })
        .await?
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
        let hash = hash.as_str().to_owned();
        self.run(move |conn| {
            conn.immediate_transaction(|conn| {
                diesel::insert_into(h::authura_password_history)
                    .values((
                        h::tenant_id.eq(&tenant),
                        h::user_id.eq(&user),
                        h::user_id_numeric.eq(numeric),
                        h::password_hash.eq(&hash),
                        h::created_at.eq(micros(at)),
                    ))
                    .execute(conn)?;
                let kept: Vec<i64> = h::authura_password_history
                    .filter(h::tenant_id.eq(&tenant))
                    .filter(h::user_id.eq(&user))
                    .filter(h::user_id_numeric.eq(numeric))
                    .order(h::id.desc())
                    .limit(i64::from(keep))
                    .select(h::id)
                    .load(conn)?;
                diesel::delete(
                    h::authura_password_history
                        .filter(h::tenant_id.eq(&tenant))
                        .filter(h::user_id.eq(&user))
                        .filter(h::user_id_numeric.eq(numeric))
                        .filter(h::id.ne_all(kept)),
                )
                .execute(conn)
                .map(drop)
            })
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
        let hashes: Vec<String> = self
            .run(move |conn| {
                h::authura_password_history
                    .filter(h::tenant_id.eq(tenant))
                    .filter(h::user_id.eq(user))
                    .filter(h::user_id_numeric.eq(numeric))
                    .order(h::id.desc())
                    .limit(i64::from(limit))
                    .select(h::password_hash)
                    .load(conn)
            })
            .await?;
        Ok(hashes.into_iter().map(PasswordHash::new).collect())
    }

    async fn forget_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        self.run(move |conn| {
            conn.immediate_transaction(|conn| {
                diesel::delete(
                    a::authura_account_state
                        .filter(a::tenant_id.eq(&tenant))
                        .filter(a::user_id.eq(&user))
                        .filter(a::user_id_numeric.eq(numeric)),
                )
                .execute(conn)?;
                diesel::delete(
                    h::authura_password_history
                        .filter(h::tenant_id.eq(&tenant))
                        .filter(h::user_id.eq(&user))
                        .filter(h::user_id_numeric.eq(numeric)),
                )
                .execute(conn)
                .map(drop)
            })
        })
        .await
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = authura_audit, check_for_backend(Sqlite))]
struct AuditRow {
    id: i64,
    at: i64,
    event: String,
    tenant_id: String,
    user_id: Option<String>,
    user_id_numeric: bool,
    actor_id: Option<String>,
    actor_id_numeric: bool,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = authura_audit, check_for_backend(Sqlite))]
struct NewAuditRow {
    at: i64,
    event: String,
    tenant_id: String,
    user_id: Option<String>,
    user_id_numeric: bool,
    actor_id: Option<String>,
    actor_id_numeric: bool,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: String,
}

impl NewAuditRow {
    fn new(e: &AuditEvent) -> NewAuditRow {
        let (user_id, user_id_numeric) = stored_user(e.user_id.as_ref());
        let (actor_id, actor_id_numeric) = stored_user(e.actor_id.as_ref());
        NewAuditRow {
            at: micros(e.at),
            event: e.event.clone(),
            tenant_id: e
                .tenant
                .as_ref()
                .map(TenantId::as_str)
                .unwrap_or_default()
                .to_owned(),
            user_id,
            user_id_numeric,
            actor_id,
            actor_id_numeric,
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            detail: e.detail.to_string(),
        }
    }
}

impl AuditRow {
    fn into_event(self) -> Result<StoredAuditEvent, StoreError> {
        let bad = || StoreError::Backend(format!("audit event {} is malformed", self.id));
        Ok(StoredAuditEvent {
            id: self.id,
            event: AuditEvent {
                at: time(Some(self.at))?.ok_or_else(bad)?,
                event: self.event,
                tenant: read_tenant(&self.tenant_id)?,
                user_id: read_user(self.user_id, self.user_id_numeric)?,
                actor_id: read_user(self.actor_id, self.actor_id_numeric)?,
                ip: self.ip,
                user_agent: self.user_agent,
                detail: serde_json::from_str(&self.detail).map_err(|_| {
                    StoreError::Backend(format!("audit event {} has invalid detail", self.id))
                })?,
            },
        })
    }
}

#[async_trait]
impl AuditStore for SqliteStateStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let rows: Vec<NewAuditRow> = events.iter().map(NewAuditRow::new).collect();
        self.run(move |conn| {
            conn.immediate_transaction(|conn| {
                for row in &rows {
                    diesel::insert_into(au::authura_audit)
                        .values(row)
                        .execute(conn)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let tenant = q
            .tenant
            .as_ref()
            .map(TenantId::as_str)
            .unwrap_or_default()
            .to_owned();
        let user = q.user_id.as_ref().map(|u| stored_user(Some(u)));
        let q = q.clone();
        let rows: Vec<AuditRow> = self
            .run(move |conn| {
                let mut query = au::authura_audit
                    .filter(au::tenant_id.eq(tenant))
                    .select(AuditRow::as_select())
                    .order(au::id.desc())
                    .limit(i64::from(q.limit))
                    .into_boxed();
                if let Some((user, numeric)) = user {
                    query = query
                        .filter(au::user_id.eq(user))
                        .filter(au::user_id_numeric.eq(numeric));
                }
                if let Some(event) = q.event {
                    query = query.filter(au::event.eq(event));
                }
                if let Some(since) = q.since {
                    query = query.filter(au::at.ge(micros(since)));
                }
                if let Some(until) = q.until {
                    query = query.filter(au::at.lt(micros(until)));
                }
                if let Some(before) = q.before_id {
                    query = query.filter(au::id.lt(before));
                }
                query.load(conn)
            })
            .await?;
        rows.into_iter().map(AuditRow::into_event).collect()
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let pruned = self
            .run(move |conn| {
                diesel::delete(au::authura_audit.filter(au::at.lt(micros(before)))).execute(conn)
            })
            .await?;
        Ok(pruned as u64)
    }
}
