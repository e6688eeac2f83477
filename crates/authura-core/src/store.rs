//! The `UserStore` contract every backend implements (SPEC §5).

use async_trait::async_trait;

use crate::types::{Email, NewUser, Secret, TenantId, User, UserChanges, UserId};

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
    /// A conditional update ([`UserStore::update_if`]) found the user changed since it was read:
    /// nothing was written.
    #[error("the user changed since it was read")]
    Changed,
    /// The backend cannot do this operation at all (an optional part of its contract it lacks),
    /// named in the text.
    #[error("the backend does not support {0}")]
    Unsupported(String),
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

    /// Creates a user under a given id (the Authaus import keeps Authaus's user ids) and
    /// returns it as stored. Ids that [`UserStore::create`] assigns afterwards never collide
    /// with it. Optional: by default `Unsupported`, and the caller assigns ids with `create`.
    ///
    /// # Errors
    /// `Conflict` when the id or (email, tenant) exists; `Unsupported` when the backend cannot
    /// store an id it did not assign (or not this kind of id); `Unavailable`, `Backend`,
    /// `ReadOnly`.
    async fn create_with_id(&self, id: &UserId, user: NewUser) -> Result<User, StoreError> {
        let _ = (id, user);
        Err(StoreError::Unsupported(
            "creating a user with a given id".to_owned(),
        ))
    }

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

    /// Updates `expected.id` only if its stored email and password hash are still `expected`'s,
    /// in one atomic step (a compare-and-set): of concurrent calls made with the same `expected`
    /// record and changing either, exactly one succeeds. This is what makes mail links and
    /// `/change-password` single-use under concurrency: every token-driven write changes the
    /// email or the password hash, the state the token (or the old password) was checked
    /// against.
    ///
    /// # Errors
    /// `Changed` when the user's email or password hash differs from `expected`'s (nothing is
    /// written); `NotFound` when the user is gone; `Conflict` when the new email is taken.
    async fn update_if(
        &self,
        tenant: Option<&TenantId>,
        expected: &User,
        changes: UserChanges,
    ) -> Result<User, StoreError>;

    /// One page of the users of `query.tenant`, in ascending id order, after `query.after`
    /// (exclusive), at most `query.limit` of them (clamped to 1..=[`UserQuery::MAX_LIMIT`]),
    /// only those `query.text` matches ([`UserQuery`]). The order is by id, a key that never
    /// changes, so paging with `after` = the last id of the previous page neither skips nor
    /// repeats a user, also while users are created between pages (a new user comes on a later
    /// page, or not at all if its id sorts before the cursor).
    ///
    /// # Errors
    /// `Unsupported` when the backend cannot list (an HTTP backend without the optional list
    /// endpoint); `ReadOnly` never; `Unavailable` or `Backend` when the backend fails.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, StoreError>;

    /// Deletes the user with this id in this tenant; whether there was one.
    ///
    /// # Errors
    /// `Unsupported` when the backend cannot delete (an HTTP backend without the optional
    /// delete endpoint); `ReadOnly` for a directory; `Unavailable` or `Backend` when it fails.
    async fn delete(&self, tenant: Option<&TenantId>, id: &UserId) -> Result<bool, StoreError>;

    /// Whether the backend is reachable (`/readyz`).
    ///
    /// # Errors
    /// `Unavailable` when it is not.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The backend's connection pool, for monitoring (`/metrics`); `None` for a backend without
    /// one of its own to report (the default).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Checks a password for a sign-in (SPEC §10). A store that keeps password hashes answers
    /// [`PasswordCheck::ByHash`] (the default) and the login flow verifies the stored hash; a
    /// directory checks the password itself (an LDAP bind) and answers
    /// [`PasswordCheck::Checked`].
    ///
    /// # Errors
    /// `Unavailable` when the directory cannot be reached or does not answer in time (never a
    /// refusal), `Backend` when it answers an error.
    async fn authenticate(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
        password: &Secret,
    ) -> Result<PasswordCheck, StoreError> {
        let _ = (tenant, email, password);
        Ok(PasswordCheck::ByHash)
    }

    /// Whether the users belong to a directory that Authura only reads (LDAP): the flows that
    /// would create a user or change an address or a password answer `ManagedByDirectory`
    /// before doing anything. `false` by default.
    fn read_only(&self) -> bool {
        false
    }
}

/// What [`UserStore::authenticate`] found.
#[derive(Debug, Clone)]
pub enum PasswordCheck {
    /// The store keeps password hashes: the caller verifies the stored one.
    ByHash,
    /// The store checked the password itself.
    Checked {
        /// The user the address names, `None` when there is none (or not exactly one).
        user: Option<User>,
        /// Whether the password was the user's.
        valid: bool,
    },
}

/// What [`UserStore::list`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// The tenant whose users are listed (`None`: the users without a tenant).
    pub tenant: Option<TenantId>,
    /// A filter: a user matches when their email contains this text, compared
    /// case-insensitively, or when their id's text is exactly this text. `None` (or empty):
    /// every user matches.
    pub text: Option<String>,
    /// The cursor: only users whose id sorts after this one (the last id of the previous
    /// page). Numeric ids sort as numbers, textual ids as text.
    pub after: Option<UserId>,
    /// The most users on the page; clamped to 1..=[`UserQuery::MAX_LIMIT`].
    pub limit: usize,
}

impl UserQuery {
    /// The largest page (SPEC §11).
    pub const MAX_LIMIT: usize = 200;
    /// The page size when a caller names none.
    pub const DEFAULT_LIMIT: usize = 50;

    /// `limit` clamped to 1..=[`UserQuery::MAX_LIMIT`]: what every store returns at most.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }

    /// The filter text, lower-cased and trimmed; `None` when there is none.
    pub fn filter(&self) -> Option<String> {
        self.text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
    }

    /// Whether `user` passes the filter (for stores that filter in memory).
    pub fn matches(&self, user: &User) -> bool {
        match self.filter() {
            None => true,
            Some(text) => user.email.as_str().contains(&text) || user.id.to_string() == text,
        }
    }

    /// The page from `found`, the matching users after the cursor in id order, of which the
    /// store read at most one more than [`UserQuery::page_size`]: that extra one only tells
    /// that there is a next page.
    pub fn page(&self, mut found: Vec<User>) -> UserPage {
        let size = self.page_size();
        let more = found.len() > size;
        found.truncate(size);
        let next = if more {
            found.last().map(|u| u.id.clone())
        } else {
            None
        };
        UserPage { users: found, next }
    }
}

/// One page of [`UserStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPage {
    /// The users, in ascending id order.
    pub users: Vec<User>,
    /// The cursor of the next page (the last user's id), `None` on the last page.
    pub next: Option<UserId>,
}

/// Orders user ids as every store lists them: numbers by value, before texts, texts by their
/// bytes.
pub fn id_order(a: &UserId, b: &UserId) -> std::cmp::Ordering {
    match (a, b) {
        (UserId::Int(a), UserId::Int(b)) => a.cmp(b),
        (UserId::Int(_), UserId::Text(_)) => std::cmp::Ordering::Less,
        (UserId::Text(_), UserId::Int(_)) => std::cmp::Ordering::Greater,
        (UserId::Text(a), UserId::Text(b)) => a.cmp(b),
    }
}

/// A snapshot of a backend's connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max: usize,
    /// Connections open now, in use or idle.
    pub open: usize,
    /// Open connections idle in the pool.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// A user record as a backend read it, before validation: each backend turns its row into one.
/// Rows written by other tools can be malformed, so every field is checked once, here.
pub struct StoredUser {
    pub id: crate::types::UserId,
    pub email: String,
    pub role: String,
    pub tenant_id: Option<String>,
    /// The password hash, as stored.
    pub password: String,
    pub verified_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("tenant_id", &self.tenant_id)
            .field("verified_at", &self.verified_at)
            .finish_non_exhaustive()
    }
}

impl StoredUser {
    /// Validates the record into a domain user.
    ///
    /// # Errors
    /// `StoreError::Backend` naming the user and the field at fault, never the password hash.
    pub fn into_user(self) -> Result<User, StoreError> {
        let id = self.id;
        let bad = |field: &str| StoreError::Backend(format!("user {id} has an invalid {field}"));
        Ok(User {
            email: crate::types::Email::parse(&self.email).map_err(|_| bad("email"))?,
            role: crate::types::Role::parse(&self.role).map_err(|_| bad("role"))?,
            tenant: self
                .tenant_id
                .as_deref()
                .map(TenantId::parse)
                .transpose()
                .map_err(|_| bad("tenant_id"))?,
            password_hash: crate::types::PasswordHash::new(self.password),
            verified_at: self.verified_at,
            id,
        })
    }
}
