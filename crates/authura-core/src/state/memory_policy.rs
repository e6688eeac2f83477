//! An in-memory `AccountStore` and `AuditStore`: complete implementations (they pass the policy
//! conformance suite), for fast flow tests and for embedders.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::state::account::{AccountChange, AccountState, AccountStore};
use crate::state::audit::{AuditEvent, AuditQuery, AuditStore, StoredAuditEvent};
use crate::state::stored_owner;
use crate::store::StoreError;
use crate::types::{PasswordHash, TenantId, UserId};

type Owner = (String, String, bool);

/// Account state, history and audit events behind one lock, so every operation is atomic.
#[derive(Debug, Default)]
pub struct MemoryPolicyStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    accounts: HashMap<Owner, AccountState>,
    /// Oldest first.
    history: HashMap<Owner, Vec<(DateTime<Utc>, PasswordHash)>>,
    audit: Vec<StoredAuditEvent>,
    next_audit_id: i64,
}

impl MemoryPolicyStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryPolicyStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AccountStore for MemoryPolicyStore {
    async fn account_state(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<AccountState, StoreError> {
        let key = stored_owner(tenant, user_id);
        Ok(self.lock().accounts.get(&key).cloned().unwrap_or_default())
    }

    async fn update_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        change: &AccountChange,
    ) -> Result<(AccountState, AccountState), StoreError> {
        let key = stored_owner(tenant, user_id);
        let mut inner = self.lock();
        let before = inner.accounts.get(&key).cloned().unwrap_or_default();
        let after = change.apply(before.clone());
        inner.accounts.insert(key, after.clone());
        Ok((before, after))
    }

    async fn push_password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        hash: &PasswordHash,
        at: DateTime<Utc>,
        keep: u32,
    ) -> Result<(), StoreError> {
        let key = stored_owner(tenant, user_id);
        let mut inner = self.lock();
        let list = inner.history.entry(key).or_default();
        list.push((at.trunc_subsecs(6), hash.clone()));
        let excess = list.len().saturating_sub(keep as usize);
        list.drain(..excess);
        Ok(())
    }

    async fn password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        limit: u32,
    ) -> Result<Vec<PasswordHash>, StoreError> {
        let key = stored_owner(tenant, user_id);
        Ok(self
            .lock()
            .history
            .get(&key)
            .map(|list| {
                list.iter()
                    .rev()
                    .take(limit as usize)
                    .map(|(_, h)| h.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn forget_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        let key = stored_owner(tenant, user_id);
        let mut inner = self.lock();
        inner.accounts.remove(&key);
        inner.history.remove(&key);
        Ok(())
    }
}

#[async_trait]
impl AuditStore for MemoryPolicyStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for event in events {
            inner.next_audit_id += 1;
            let id = inner.next_audit_id;
            inner.audit.push(StoredAuditEvent {
                id,
                event: event.clone().truncated(),
            });
        }
        Ok(())
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        Ok(self
            .lock()
            .audit
            .iter()
            .rev()
            .filter(|s| {
                let e = &s.event;
                e.tenant == q.tenant
                    && q.user_id
                        .as_ref()
                        .is_none_or(|u| e.user_id.as_ref() == Some(u))
                    && q.event.as_ref().is_none_or(|k| &e.event == k)
                    && q.since.is_none_or(|t| e.at >= t)
                    && q.until.is_none_or(|t| e.at < t)
                    && q.before_id.is_none_or(|id| s.id < id)
            })
            .take(q.limit as usize)
            .cloned()
            .collect())
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let was = inner.audit.len();
        inner.audit.retain(|s| s.event.at >= before);
        Ok((was - inner.audit.len()) as u64)
    }
}
