//! An in-memory `UserStore`: a complete implementation (it passes the backend conformance
//! suite), for fast flow tests and for embedders that keep users elsewhere.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::{StoreError, UserPage, UserQuery, UserStore, id_order};
use crate::types::{Email, NewUser, TenantId, User, UserChanges, UserId};

pub use crate::state::memory::MemorySessionStore;
pub use crate::state::memory_policy::MemoryPolicyStore;

/// Users in a vector behind a lock; ids are sequential numbers from 1.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: Vec<User>,
    next_id: i64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        Ok(self
            .lock()
            .users
            .iter()
            .find(|u| &u.email == email && u.tenant.as_ref() == tenant)
            .cloned())
    }

    async fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        Ok(self
            .lock()
            .users
            .iter()
            .find(|u| &u.id == id && u.tenant.as_ref() == tenant)
            .cloned())
    }

    async fn create(&self, new: NewUser) -> Result<User, StoreError> {
        let mut state = self.lock();
        if state
            .users
            .iter()
            .any(|u| u.email == new.email && u.tenant == new.tenant)
        {
            return Err(StoreError::Conflict);
        }
        state.next_id += 1;
        let user = User {
            id: UserId::Int(state.next_id),
            email: new.email,
            role: new.role,
            tenant: new.tenant,
            password_hash: new.password_hash,
            verified_at: new.verified_at,
        };
        state.users.push(user.clone());
        Ok(user)
    }

    async fn create_with_id(&self, id: &UserId, new: NewUser) -> Result<User, StoreError> {
        let UserId::Int(n) = *id else {
            return Err(StoreError::Unsupported("textual user ids".to_owned()));
        };
        let mut state = self.lock();
        if state
            .users
            .iter()
            .any(|u| u.id == *id || (u.email == new.email && u.tenant == new.tenant))
        {
            return Err(StoreError::Conflict);
        }
        state.next_id = state.next_id.max(n);
        let user = User {
            id: id.clone(),
            email: new.email,
            role: new.role,
            tenant: new.tenant,
            password_hash: new.password_hash,
            verified_at: new.verified_at,
        };
        state.users.push(user.clone());
        Ok(user)
    }

    async fn update(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
        if let Some(email) = &changes.email
            && state
                .users
                .iter()
                .any(|u| &u.email == email && u.tenant.as_ref() == tenant && &u.id != id)
        {
            return Err(StoreError::Conflict);
        }
        let user = state
            .users
            .iter_mut()
            .find(|u| &u.id == id && u.tenant.as_ref() == tenant)
            .ok_or(StoreError::NotFound)?;
        changes.apply_to(user);
        Ok(user.clone())
    }

    async fn update_if(
        &self,
        tenant: Option<&TenantId>,
        expected: &User,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
        if let Some(email) = &changes.email
            && state
                .users
                .iter()
                .any(|u| &u.email == email && u.tenant.as_ref() == tenant && u.id != expected.id)
        {
            return Err(StoreError::Conflict);
        }
        let user = state
            .users
            .iter_mut()
            .find(|u| u.id == expected.id && u.tenant.as_ref() == tenant)
            .ok_or(StoreError::NotFound)?;
        if user.email != expected.email || user.password_hash != expected.password_hash {
            return Err(StoreError::Changed);
        }
        changes.apply_to(user);
        Ok(user.clone())
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let state = self.lock();
        let mut found: Vec<User> = state
            .users
            .iter()
            .filter(|u| u.tenant == query.tenant && query.matches(u))
            .filter(|u| {
                query
                    .after
                    .as_ref()
                    .is_none_or(|after| id_order(&u.id, after).is_gt())
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| id_order(&a.id, &b.id));
        found.truncate(query.page_size() + 1);
        Ok(query.page(found))
    }

    async fn delete(&self, tenant: Option<&TenantId>, id: &UserId) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let before = state.users.len();
        state
            .users
            .retain(|u| !(&u.id == id && u.tenant.as_ref() == tenant));
        Ok(state.users.len() < before)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
