//! The `UserStore` contract every backend implements (SPEC §5).

use async_trait::async_trait;

use crate::types::{Email, NewUser, TenantId, User, UserChanges, UserId};

/// What a backend can fail with, translated from its driver's errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No user matched (on update: the user is gone).
    #[error("no such user")]
    NotFound,
    /// A uniqueness rule was violated: (email, tenant) is taken.
    #[error("conflict: the email address is taken")]
    Conflict,
    /// The backend could not be reached (connection refused, timeout, pool exhausted).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("backend error: {0}")]
    Backend(String),
    /// The backend does not accept writes (a directory).
    #[error("the backend is read-only")]
    ReadOnly,
}

/// A source of user records. Every call names the tenant: `None` means "no tenant"
/// (multi-tenancy off, `tenant_id IS NULL`), never "any tenant".
///
/// Emails are stored and compared lower-case; (email, tenant) is unique, also for a `None` tenant.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// The user with this email in this tenant.
    ///
    /// # Errors
    /// `Unavailable` or `Backend` when the backend fails.
    async fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError>;

    /// The user with this id in this tenant (a user of another tenant is not found).
    ///
    /// # Errors
    /// `Unavailable` or `Backend` when the backend fails.
    async fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> Result<Option<User>, StoreError>;

    /// Creates a user and returns it as stored.
    ///
    /// # Errors
    /// `Conflict` when (email, tenant) exists; `Unavailable`, `Backend`, `ReadOnly`.
    async fn create(&self, user: NewUser) -> Result<User, StoreError>;

    /// Updates a user and returns it as stored.
    ///
    /// # Errors
    /// `NotFound` when the user is gone; `Conflict` when the new email is taken.
    async fn update(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
        changes: UserChanges,
    ) -> Result<User, StoreError>;

    /// Whether the backend is reachable (`/readyz`).
    ///
    /// # Errors
    /// `Unavailable` when it is not.
    async fn ping(&self) -> Result<(), StoreError>;
}
