//! The hook seam (SPEC §6): called after a user is read and before one is written. The HTTP
//! implementation lives in `authura-hooks`; without a `HOOK_URL` the server uses [`NoHook`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::CoreError;
use crate::types::{Email, Role, TenantId, User, UserId};

/// The user as a hook sees it: never the password hash. `id` is absent before a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookUser {
    pub id: Option<UserId>,
    pub email: Email,
    pub role: Role,
    pub tenant: Option<TenantId>,
    pub verified_at: Option<DateTime<Utc>>,
}

impl From<&User> for HookUser {
    fn from(u: &User) -> Self {
        HookUser {
            id: Some(u.id.clone()),
            email: u.email.clone(),
            role: u.role.clone(),
            tenant: u.tenant.clone(),
            verified_at: u.verified_at,
        }
    }
}

/// Hook data: a JSON object a hook answered with.
pub type HookData = serde_json::Map<String, serde_json::Value>;

/// Called around user reads and writes.
#[async_trait]
pub trait Hook: Send + Sync + std::fmt::Debug + 'static {
    /// After a user is read for a response or a token; its answer becomes `hook_data`.
    ///
    /// # Errors
    /// `CoreError::HookFailed` fails the request.
    async fn get_user(&self, user: &HookUser) -> Result<Option<HookData>, CoreError>;

    /// Before a user is created or updated; an error aborts the write.
    ///
    /// # Errors
    /// `CoreError::HookFailed` aborts the write.
    async fn create_or_update_user(&self, user: &HookUser) -> Result<Option<HookData>, CoreError>;

    /// Whether calls do anything. A hook that always answers `Ok(None)` says `false`, and reads
    /// on the hot path (`/user`, `/refresh`) skip building its [`HookUser`].
    fn is_active(&self) -> bool {
        true
    }
}

/// No hook configured: every call succeeds with no data.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHook;

#[async_trait]
impl Hook for NoHook {
    async fn get_user(&self, _user: &HookUser) -> Result<Option<HookData>, CoreError> {
        Ok(None)
    }

    async fn create_or_update_user(&self, _user: &HookUser) -> Result<Option<HookData>, CoreError> {
        Ok(None)
    }

    fn is_active(&self) -> bool {
        false
    }
}
