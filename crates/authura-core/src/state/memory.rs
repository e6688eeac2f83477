//! An in-memory `SessionStore`, `PermitStore`, `AccountStore` and `AuditStore` (so a whole
//! [`StateStore`](crate::state::StateStore)): complete implementations (they pass the state,
//! permit and policy conformance suites), for fast flow tests and for embedders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::permit::{GroupId, GroupName, Permission, Permit, RoleGroup};
use crate::state::memory_policy::MemoryPolicyStore;
use crate::state::{
    AccountChange, AccountState, AccountStore, AuditEvent, AuditQuery, AuditStore, KeyHash,
    OAuthLink, OAuthLinkStore, PermitStore, Rotation, Session, SessionStore, StoredAuditEvent,
    stored_owner,
};
use crate::store::StoreError;
use crate::types::{PasswordHash, TenantId, UserId};

/// Sessions in a vector, groups and permits in maps, each behind one lock, so every operation
/// is atomic.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    sessions: Mutex<Vec<Session>>,
    permits: Mutex<Permits>,
    links: Mutex<Vec<OAuthLink>>,
    /// Account state, password history and audit events.
    policy: MemoryPolicyStore,
}

/// Groups by id, permits by owner (`stored_owner`'s columns), and the highest id ever used.
#[derive(Debug, Default)]
struct Permits {
    groups: BTreeMap<GroupId, RoleGroup>,
    permits: BTreeMap<(String, String, bool), Permit>,
    highest: Option<u32>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        MemorySessionStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_permits(&self) -> MutexGuard<'_, Permits> {
        self.permits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn owned_by(s: &Session, tenant: Option<&TenantId>, user_id: &UserId) -> bool {
    &s.user_id == user_id && s.tenant.as_ref() == tenant
}

/// Oldest first: by `created_at`, then id.
fn oldest_first(a: &Session, b: &Session) -> std::cmp::Ordering {
    (a.created_at, a.id).cmp(&(b.created_at, b.id))
}

/// Removes and returns the sessions `pred` selects, keeping the others in place.
fn take(sessions: &mut Vec<Session>, pred: impl Fn(&Session) -> bool) -> Vec<Session> {
    let (taken, kept) = std::mem::take(sessions).into_iter().partition(pred);
    *sessions = kept;
    taken
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create_session(
        &self,
        session: Session,
        max_active: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let session = session.truncated();
        let mut sessions = self.lock();
        if sessions
            .iter()
            .any(|s| s.id == session.id || s.key_hash == session.key_hash)
        {
            return Err(StoreError::Conflict);
        }
        let now = session.created_at;
        let (tenant, user_id) = (session.tenant.clone(), session.user_id.clone());
        sessions.push(session);
        if max_active == 0 {
            return Ok(Vec::new());
        }
        let mut live: Vec<&Session> = sessions
            .iter()
            .filter(|s| owned_by(s, tenant.as_ref(), &user_id) && s.expires_at > now)
            .collect();
        live.sort_by(|a, b| oldest_first(a, b));
        let excess = live.len().saturating_sub(max_active as usize);
        let doomed: Vec<Uuid> = live.iter().take(excess).map(|s| s.id).collect();
        let mut ended = take(&mut sessions, |s| doomed.contains(&s.id));
        ended.sort_by(oldest_first);
        Ok(ended)
    }

    async fn find_session_by_key(&self, key_hash: &KeyHash) -> Result<Option<Session>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .find(|s| &s.key_hash == key_hash)
            .cloned())
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().iter().find(|s| s.id == id).cloned())
    }

    async fn list_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        let mut list: Vec<Session> = self
            .lock()
            .iter()
            .filter(|s| owned_by(s, tenant, user_id))
            .cloned()
            .collect();
        list.sort_by(|a, b| oldest_first(b, a));
        Ok(list)
    }

    async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut sessions = self.lock();
        match sessions.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.last_seen_at = at.trunc_subsecs(6);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn rotate_generation(
        &self,
        id: Uuid,
        expected: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, StoreError> {
        let mut sessions = self.lock();
        let Some(s) = sessions.iter_mut().find(|s| s.id == id) else {
            return Ok(None);
        };
        let won = s.generation == expected;
        if won {
            s.generation += 1;
            s.generation_changed_at = now.trunc_subsecs(6);
        }
        Ok(Some(Rotation {
            won,
            session: s.clone(),
        }))
    }

    async fn end_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        Ok(take(&mut self.lock(), |s| s.id == id).pop())
    }

    async fn end_user_sessions(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        except: Option<Uuid>,
    ) -> Result<Vec<Session>, StoreError> {
        Ok(take(&mut self.lock(), |s| {
            owned_by(s, tenant, user_id) && Some(s.id) != except
        }))
    }

    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let purged = take(&mut self.lock(), |s| s.expires_at <= now);
        Ok(purged.len() as u64)
    }

    fn oauth_links(&self) -> Option<&dyn OAuthLinkStore> {
        Some(self)
    }
}

impl MemorySessionStore {
    fn links(&self) -> MutexGuard<'_, Vec<OAuthLink>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl OAuthLinkStore for MemorySessionStore {
    async fn find_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        subject: &str,
    ) -> Result<Option<OAuthLink>, StoreError> {
        Ok(self
            .links()
            .iter()
            .find(|l| l.tenant.as_ref() == tenant && l.provider == provider && l.subject == subject)
            .cloned())
    }

    async fn find_user_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        user_id: &UserId,
    ) -> Result<Option<OAuthLink>, StoreError> {
        Ok(self
            .links()
            .iter()
            .find(|l| {
                l.tenant.as_ref() == tenant && l.provider == provider && &l.user_id == user_id
            })
            .cloned())
    }

    async fn create_oauth_link(&self, link: OAuthLink) -> Result<(), StoreError> {
        let mut links = self.links();
        let taken = links.iter().any(|l| {
            l.tenant == link.tenant
                && l.provider == link.provider
                && (l.subject == link.subject || l.user_id == link.user_id)
        });
        if taken {
            return Err(StoreError::Conflict);
        }
        links.push(OAuthLink {
            created_at: link.created_at.trunc_subsecs(6),
            ..link
        });
        Ok(())
    }
}

#[async_trait]
impl PermitStore for MemorySessionStore {
    async fn list_groups(&self) -> Result<Vec<RoleGroup>, StoreError> {
        Ok(self.lock_permits().groups.values().cloned().collect())
    }

    async fn create_group(
        &self,
        id: Option<GroupId>,
        name: &GroupName,
        permissions: &BTreeSet<Permission>,
    ) -> Result<RoleGroup, StoreError> {
        let mut p = self.lock_permits();
        if p.groups.values().any(|g| &g.name == name)
            || id.is_some_and(|id| p.groups.contains_key(&id))
        {
            return Err(StoreError::Conflict);
        }
        let id = match id {
            Some(id) => id,
            None => GroupId(match p.highest {
                None => 1,
                Some(h) => h.checked_add(1).ok_or_else(|| {
                    StoreError::Backend("every group id has been used".to_owned())
                })?,
            }),
        };
        p.highest = Some(p.highest.map_or(id.0, |h| h.max(id.0)));
        let group = RoleGroup {
            id,
            name: name.clone(),
            permissions: permissions.clone(),
        };
        p.groups.insert(id, group.clone());
        Ok(group)
    }

    async fn update_group(&self, group: &RoleGroup) -> Result<bool, StoreError> {
        let mut p = self.lock_permits();
        if !p.groups.contains_key(&group.id) {
            return Ok(false);
        }
        if p.groups
            .values()
            .any(|g| g.name == group.name && g.id != group.id)
        {
            return Err(StoreError::Conflict);
        }
        p.groups.insert(group.id, group.clone());
        Ok(true)
    }

    async fn delete_group(&self, id: GroupId) -> Result<bool, StoreError> {
        let mut p = self.lock_permits();
        let existed = p.groups.remove(&id).is_some();
        for permit in p.permits.values_mut() {
            if permit.holds(id) {
                *permit = Permit::new(permit.groups().filter(|g| *g != id));
            }
        }
        p.permits.retain(|_, permit| !permit.is_empty());
        Ok(existed)
    }

    async fn permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Permit, StoreError> {
        Ok(self
            .lock_permits()
            .permits
            .get(&stored_owner(tenant, user_id))
            .cloned()
            .unwrap_or_default())
    }

    async fn set_permit(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        permit: &Permit,
    ) -> Result<(), StoreError> {
        let mut p = self.lock_permits();
        let owner = stored_owner(tenant, user_id);
        if permit.is_empty() {
            p.permits.remove(&owner);
        } else {
            p.permits.insert(owner, permit.clone());
        }
        Ok(())
    }
}

/// Account state and audit live in the [`MemoryPolicyStore`] the store holds.
#[async_trait]
impl AccountStore for MemorySessionStore {
    async fn account_state(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<AccountState, StoreError> {
        self.policy.account_state(tenant, user_id).await
    }

    async fn update_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        change: &AccountChange,
    ) -> Result<(AccountState, AccountState), StoreError> {
        self.policy.update_account(tenant, user_id, change).await
    }

    async fn push_password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        hash: &PasswordHash,
        at: DateTime<Utc>,
        keep: u32,
    ) -> Result<(), StoreError> {
        self.policy
            .push_password_history(tenant, user_id, hash, at, keep)
            .await
    }

    async fn password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        limit: u32,
    ) -> Result<Vec<PasswordHash>, StoreError> {
        self.policy.password_history(tenant, user_id, limit).await
    }

    async fn forget_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        self.policy.forget_account(tenant, user_id).await
    }
}

#[async_trait]
impl AuditStore for MemorySessionStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.policy.append_audit(events).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>, StoreError> {
        self.policy.list_audit(query).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.policy.prune_audit(before).await
    }
}
