//! Role groups and permits (SPEC §8a) on `authura_role_groups` and `authura_permits`: the
//! `PermitStore` of [`SqliteStateStore`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use diesel::prelude::*;

use authura_core::StoreError;
use authura_core::permit::{
    Access, GroupId, GroupName, Permission, Permit, RoleGroup, decode_permissions,
    encode_permissions,
};
use authura_core::state::{PermitStore, stored_owner};
use authura_core::types::{TenantId, UserId};

use crate::state::SqliteStateStore;

diesel::table! {
    /// Role groups: `permissions` is Authaus's permission list.
    authura_role_groups (id) {
        id -> BigInt,
        name -> Text,
        permissions -> Binary,
    }
}

diesel::table! {
    /// Permits, one row per (user, group).
    authura_permits (tenant_id, user_id, user_id_numeric, group_id) {
        tenant_id -> Text,
        user_id -> Text,
        user_id_numeric -> Bool,
        group_id -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(authura_role_groups, authura_permits);

use authura_permits::dsl as p;
use authura_role_groups::dsl as g;

/// A stored group row, checked when read (another tool may have written it).
fn group((id, name, permissions): (i64, String, Vec<u8>)) -> Result<RoleGroup, StoreError> {
    let bad =
        |column: &str| StoreError::Backend(format!("role group {id} has an invalid {column}"));
    Ok(RoleGroup {
        id: GroupId(u32::try_from(id).map_err(|_| bad("id"))?),
        name: GroupName::parse(&name).map_err(|_| bad("name"))?,
        permissions: decode_permissions(&permissions).map_err(|_| bad("permissions"))?,
    })
}

fn group_id(id: i64) -> Result<GroupId, StoreError> {
    u32::try_from(id)
        .map(GroupId)
        .map_err(|_| StoreError::Backend(format!("a permit names an invalid group id {id}")))
}

#[async_trait]
impl PermitStore for SqliteStateStore {
    async fn list_groups(&self) -> Result<Vec<RoleGroup>, StoreError> {
        let rows: Vec<(i64, String, Vec<u8>)> = self
            .run(|conn| {
                g::authura_role_groups
                    .order(g::id)
                    .select((g::id, g::name, g::permissions))
                    .load(conn)
            })
            .await?;
        rows.into_iter().map(group).collect()
    }

    async fn find_group(&self, id: GroupId) -> Result<Option<RoleGroup>, StoreError> {
        let row: Option<(i64, String, Vec<u8>)> = self
            .run(move |conn| {
                g::authura_role_groups
                    .filter(g::id.eq(i64::from(id.0)))
                    .select((g::id, g::name, g::permissions))
                    .first(conn)
                    .optional()
            })
            .await?;
        row.map(group).transpose()
    }

    async fn create_group(
        &self,
        id: Option<GroupId>,
        name: &GroupName,
        permissions: &BTreeSet<Permission>,
    ) -> Result<RoleGroup, StoreError> {
        let text = name.as_str().to_owned();
        let list = encode_permissions(permissions);
        let assigned: i64 = self
            .run(move |conn| match id {
                Some(id) => diesel::insert_into(g::authura_role_groups)
                    .values((
                        g::id.eq(i64::from(id.0)),
                        g::name.eq(text),
                        g::permissions.eq(list),
                    ))
                    .returning(g::id)
                    .get_result(conn),
                None => diesel::insert_into(g::authura_role_groups)
                    .values((g::name.eq(text), g::permissions.eq(list)))
                    .returning(g::id)
                    .get_result(conn),
            })
            .await?;
        Ok(RoleGroup {
            id: group_id(assigned)?,
            name: name.clone(),
            permissions: permissions.clone(),
        })
    }

    async fn update_group(&self, group: &RoleGroup) -> Result<bool, StoreError> {
        let id = i64::from(group.id.0);
        let name = group.name.as_str().to_owned();
        let list = encode_permissions(&group.permissions);
        let updated = self
            .run(move |conn| {
                diesel::update(g::authura_role_groups.filter(g::id.eq(id)))
                    .set((g::name.eq(name), g::permissions.eq(list)))
                    .execute(conn)
            })
            .await?;
        Ok(updated > 0)
    }

    async fn delete_group(&self, id: GroupId) -> Result<bool, StoreError> {
        let id = i64::from(id.0);
        let deleted = self
            .run(move |conn| {
                conn.immediate_transaction(|conn| {
                    diesel::delete(p::authura_permits.filter(p::group_id.eq(id))).execute(conn)?;
                    diesel::delete(g::authura_role_groups.filter(g::id.eq(id))).execute(conn)
                })
            })
            .await?;
        Ok(deleted > 0)
    }

    async fn permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Permit, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let ids: Vec<i64> = self
            .run(move |conn| {
                p::authura_permits
                    .filter(p::tenant_id.eq(tenant))
                    .filter(p::user_id.eq(user))
                    .filter(p::user_id_numeric.eq(numeric))
                    .select(p::group_id)
                    .load(conn)
            })
            .await?;
        Ok(Permit::new(
            ids.into_iter()
                .map(group_id)
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
        self.run(move |conn| {
            conn.immediate_transaction(|conn| {
                diesel::delete(
                    p::authura_permits
                        .filter(p::tenant_id.eq(&tenant))
                        .filter(p::user_id.eq(&user))
                        .filter(p::user_id_numeric.eq(numeric)),
                )
                .execute(conn)?;
                let rows: Vec<_> = groups
                    .iter()
                    .map(|&group| {
                        (
                            p::tenant_id.eq(&tenant),
                            p::user_id.eq(&user),
                            p::user_id_numeric.eq(numeric),
                            p::group_id.eq(group),
                        )
                    })
                    .collect();
                if !rows.is_empty() {
                    diesel::insert_into(p::authura_permits)
                        .values(rows)
                        .execute(conn)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn access(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Access, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        // One read: the permit's ids, each with its group when it exists.
        let rows: Vec<(i64, Option<String>, Option<Vec<u8>>)> = self
            .run(move |conn| {
                p::authura_permits
                    .left_join(g::authura_role_groups.on(g::id.eq(p::group_id)))
                    .filter(p::tenant_id.eq(tenant))
                    .filter(p::user_id.eq(user))
                    .filter(p::user_id_numeric.eq(numeric))
                    .select((p::group_id, g::name.nullable(), g::permissions.nullable()))
                    .load(conn)
            })
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut groups = Vec::new();
        for (id, name, permissions) in rows {
            ids.push(group_id(id)?);
            if let (Some(name), Some(permissions)) = (name, permissions) {
                groups.push(group((id, name, permissions))?);
            }
        }
        Ok(Access::resolve(Permit::new(ids), &groups))
    }
}
