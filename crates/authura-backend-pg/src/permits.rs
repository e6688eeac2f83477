//! Role groups and permits (SPEC §8a) on `authura_role_groups` and `authura_permits`: the
//! `PermitStore` of [`PgStateStore`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use diesel::sql_types::{Array, BigInt, Binary, Bool, Integer, Nullable, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use authura_core::StoreError;
use authura_core::permit::{
    Access, GroupId, GroupName, Permission, Permit, RoleGroup, decode_permissions,
    encode_permissions,
};
use authura_core::state::{PermitStore, stored_owner};
use authura_core::types::{TenantId, UserId};

use crate::migrate::{PERMITS_TABLE, ROLE_GROUP_IDS, ROLE_GROUPS_TABLE, quoted_in};
use crate::state::PgStateStore;
use crate::statement::Sql;

/// The first key of the advisory locks on a user's permit ("prmt"), in the two-key space.
const PERMIT_LOCK_SPACE: i32 = 0x7072_6d74;

/// The statements, built once from the quoted names.
pub(crate) struct Queries {
    list: Sql,
    find: Sql,
    insert_assigned: Sql,
    insert_given: Sql,
    move_sequence: Sql,
    update: Sql,
    delete: Sql,
    permit: Sql,
    lock_user: Sql,
    clear_permit: Sql,
    insert_permit: Sql,
    access: Sql,
}

impl Queries {
    pub(crate) fn new(schema: Option<&str>) -> Queries {
        let g = quoted_in(schema, ROLE_GROUPS_TABLE);
        let p = quoted_in(schema, PERMITS_TABLE);
        let seq = quoted_in(schema, ROLE_GROUP_IDS);
        let columns = "id::bigint AS id, name::text AS name, permissions::bytea AS permissions";
        let owner = "tenant_id = $1 AND user_id = $2 AND user_id_numeric = $3";
        Queries {
            // `ORDER BY r.id`, the column: a bare `id` names the output `id::bigint`, which no index
            // has (the trap `store.rs`'s list fell into).
            list: Sql::new(&format!("SELECT {columns} FROM {g} AS r ORDER BY r.id")),
            find: Sql::new(&format!("SELECT {columns} FROM {g} WHERE id = $1")),
            insert_assigned: Sql::new(&format!(
                "INSERT INTO {g} (id, name, permissions) VALUES (nextval('{seq}'), $1, $2) \
                 RETURNING id::bigint AS id"
            )),
            insert_given: Sql::new(&format!(
                "INSERT INTO {g} (id, name, permissions) VALUES ($1, $2, $3) \
                 RETURNING id::bigint AS id"
            )),
            move_sequence: Sql::new(&format!(
                "SELECT setval('{seq}', greatest($1, (SELECT last_value FROM {seq})))"
            )),
            update: Sql::new(&format!(
                "UPDATE {g} SET name = $1, permissions = $2 WHERE id = $3"
            )),
            // One statement, so the group and its permit rows go together.
            delete: Sql::new(&format!(
                "WITH gone AS (DELETE FROM {p} WHERE group_id = $1) \
                 DELETE FROM {g} WHERE id = $2"
            )),
            permit: Sql::new(&format!(
                "SELECT group_id::bigint AS group_id FROM {p} WHERE {owner}"
            )),
            lock_user: Sql::new("SELECT pg_advisory_xact_lock($1, hashtext($2))"),
            clear_permit: Sql::new(&format!("DELETE FROM {p} WHERE {owner}")),
            insert_permit: Sql::new(&format!(
                "INSERT INTO {p} (tenant_id, user_id, user_id_numeric, group_id) \
                 SELECT $1, $2, $3, unnest($4::bigint[])"
            )),
            access: Sql::new(&format!(
                "SELECT p.group_id::bigint AS group_id, g.name::text AS name, \
                 g.permissions::bytea AS permissions \
                 FROM {p} p LEFT JOIN {g} g ON g.id = p.group_id \
                 WHERE p.tenant_id = $1 AND p.user_id = $2 AND p.user_id_numeric = $3"
            )),
        }
    }
}

#[derive(QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Binary)]
    permissions: Vec<u8>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct PermitRow {
    #[diesel(sql_type = BigInt)]
    group_id: i64,
}

#[derive(QueryableByName)]
struct AccessRow {
    #[diesel(sql_type = BigInt)]
    group_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    permissions: Option<Vec<u8>>,
}

/// A stored group row, checked when read (another tool may have written it).
fn group(row: GroupRow) -> Result<RoleGroup, StoreError> {
    let id = row.id;
    let bad =
        |column: &str| StoreError::Backend(format!("role group {id} has an invalid {column}"));
    Ok(RoleGroup {
        id: GroupId(u32::try_from(id).map_err(|_| bad("id"))?),
        name: GroupName::parse(&row.name).map_err(|_| bad("name"))?,
        permissions: decode_permissions(&row.permissions).map_err(|_| bad("permissions"))?,
    })
}

fn group_id(id: i64) -> Result<GroupId, StoreError> {
    u32::try_from(id)
        .map(GroupId)
        .map_err(|_| StoreError::Backend(format!("a permit names an invalid group id {id}")))
}

#[async_trait]
impl PermitStore for PgStateStore {
    async fn list_groups(&self) -> Result<Vec<RoleGroup>, StoreError> {
        let query = self.permit_queries.list.statement();
        let rows = self
            .run(async |conn| query.load::<GroupRow>(conn).await)
            .await?;
        rows.into_iter().map(group).collect()
    }

    async fn find_group(&self, id: GroupId) -> Result<Option<RoleGroup>, StoreError> {
        let query = self.permit_queries.find.bind::<BigInt, _>(i64::from(id.0));
        self.run(async |conn| query.get_result::<GroupRow>(conn).await.optional())
            .await?
            .map(group)
            .transpose()
    }

    async fn create_group(
        &self,
        id: Option<GroupId>,
        name: &GroupName,
        permissions: &BTreeSet<Permission>,
    ) -> Result<RoleGroup, StoreError> {
        let q = &self.permit_queries;
        let list = encode_permissions(permissions);
        let assigned = match id {
            None => {
                let insert = q
                    .insert_assigned
                    .bind::<Text, _>(name.as_str())
                    .bind::<Binary, _>(&list);
                self.run(async |conn| insert.get_result::<IdRow>(conn).await)
                    .await?
                    .id
            }
            Some(id) => {
                let id = i64::from(id.0);
                let insert = q
                    .insert_given
                    .bind::<BigInt, _>(id)
                    .bind::<Text, _>(name.as_str())
                    .bind::<Binary, _>(&list);
                let moved = q.move_sequence.bind::<BigInt, _>(id);
                self.run(async |conn| {
                    let row = insert.get_result::<IdRow>(&mut *conn).await?;
                    moved.execute(&mut *conn).await?;
                    Ok(row)
                })
                .await?
                .id
            }
        };
        Ok(RoleGroup {
            id: group_id(assigned)?,
            name: name.clone(),
            permissions: permissions.clone(),
        })
    }

    async fn update_group(&self, group: &RoleGroup) -> Result<bool, StoreError> {
        let list = encode_permissions(&group.permissions);
        let query = self
            .permit_queries
            .update
            .bind::<Text, _>(group.name.as_str())
            .bind::<Binary, _>(&list)
            .bind::<BigInt, _>(i64::from(group.id.0));
        Ok(self.run(async |conn| query.execute(conn).await).await? > 0)
    }

    async fn delete_group(&self, id: GroupId) -> Result<bool, StoreError> {
        let id = i64::from(id.0);
        let query = self
            .permit_queries
            .delete
            .bind::<BigInt, _>(id)
            .bind::<BigInt, _>(id);
        Ok(self.run(async |conn| query.execute(conn).await).await? > 0)
    }

    async fn permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Permit, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let query = self
            .permit_queries
            .permit
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        let rows = self
            .run(async |conn| query.load::<PermitRow>(conn).await)
            .await?;
        Ok(Permit::new(
            rows.into_iter()
                .map(|r| group_id(r.group_id))
                .collect::<Result<Vec<_>, _>>()?,
        ))
    }

    async fn set_permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        permit: &Permit,
    ) -> Result<(), StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let groups: Vec<i64> = permit.groups().map(|g| i64::from(g.0)).collect();
        let q = &self.permit_queries;
        let lock_key = format!("{numeric}:{}:{tenant}:{user}", tenant.len());
        let lock = q
            .lock_user
            .bind::<Integer, _>(PERMIT_LOCK_SPACE)
            .bind::<Text, _>(&lock_key);
        let clear = q
            .clear_permit
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        let insert = q
            .insert_permit
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric)
            .bind::<Array<BigInt>, _>(&groups);
        self.run(async |conn| {
            conn.batch_execute("BEGIN").await?;
            let result = async {
                // Two replacements of one permit apply one after the other.
                lock.execute(&mut *conn).await?;
                clear.execute(&mut *conn).await?;
                insert.execute(&mut *conn).await
            }
            .await;
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = conn.batch_execute(end).await;
            result?;
            ended
        })
        .await
    }

    async fn access(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Access, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let query = self
            .permit_queries
            .access
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        let rows = self
            .run(async |conn| query.load::<AccessRow>(conn).await)
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut groups = Vec::new();
        for row in rows {
            ids.push(group_id(row.group_id)?);
            if let (Some(name), Some(permissions)) = (row.name, row.permissions) {
                groups.push(group(GroupRow {
                    id: row.group_id,
                    name,
                    permissions,
                })?);
            }
        }
        Ok(Access::resolve(Permit::new(ids), &groups))
    }
}
