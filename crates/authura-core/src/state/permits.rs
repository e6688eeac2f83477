//! Role groups and permits in the state store (SPEC §8a): the narrow [`PermitStore`] trait.

use async_trait::async_trait;

use crate::permit::{Access, GroupId, GroupName, Permission, Permit, RoleGroup};
use crate::store::StoreError;
use crate::types::{TenantId, UserId};

/// Where role groups and permits live. Groups are global (one set for every tenant, as
/// Authaus has one); a permit belongs to a user of a tenant (`None`: no tenant).
///
/// A store's errors are `StoreError`s: `Conflict` for a name (or, on import, an id) that
/// exists, `Unavailable` when the database cannot be reached, `Backend` for the rest.
#[async_trait]
pub trait PermitStore: Send + Sync + 'static {
    /// Every group, ascending by id.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn list_groups(&self) -> Result<Vec<RoleGroup>, StoreError>;

    /// The group with this id.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn find_group(&self, id: GroupId) -> Result<Option<RoleGroup>, StoreError> {
        Ok(self.list_groups().await?.into_iter().find(|g| g.id == id))
    }

    /// Creates a group. `id: None` assigns one above every id ever assigned or given (an id is
    /// never reused, so a permit still naming a deleted group never gains a new one); `Some`
    /// keeps the given id (the Authaus import).
    ///
    /// # Errors
    /// `Conflict` when the name or the given id exists; `Unavailable`, `Backend`.
    async fn create_group(
        &self,
        id: Option<GroupId>,
        name: &GroupName,
        permissions: &std::collections::BTreeSet<Permission>,
    ) -> Result<RoleGroup, StoreError>;

    /// Replaces a group's name and permissions; `false` when there is no such group.
    ///
    /// # Errors
    /// `Conflict` when another group has the name; `Unavailable`, `Backend`.
    async fn update_group(&self, group: &RoleGroup) -> Result<bool, StoreError>;

    /// Deletes a group and removes it from every permit, atomically; `false` when there was no
    /// such group (every permit still loses the id: one left by an import is cleaned up too).
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn delete_group(&self, id: GroupId) -> Result<bool, StoreError>;

    /// A user's permit (empty when none was ever set).
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Permit, StoreError>;

    /// Replaces a user's permit (the empty permit removes it).
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn set_permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        permit: &Permit,
    ) -> Result<(), StoreError>;

    /// A user's permit resolved against the groups that exist (see [`Access::resolve`]). By
    /// default two reads; a store may do it in one.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn access(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Access, StoreError> {
        let permit = self.permit(tenant, user_id).await?;
        if permit.is_empty() {
            return Ok(Access::default());
        }
        Ok(Access::resolve(permit, &self.list_groups().await?))
    }
}

impl std::fmt::Debug for dyn PermitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PermitStore")
    }
}
