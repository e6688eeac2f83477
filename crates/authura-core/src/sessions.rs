//! What the flows ask of server-side sessions (SPEC §8) when they are on: open one for every
//! sign-in, apply the rotation rule to a refresh, end a user's sessions when their password or
//! address changes. `authura-session` implements [`Sessions`]; core only calls it, through
//! `Context::sessions`, which is `None` when sessions are off (tokens then stay stateless).

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::CoreError;
use crate::state::SessionMethod;
use crate::token::SessionBinding;
use crate::types::{TenantId, User, UserId};

/// The client signing in, as the transport sees it; recorded on the session a sign-in opens.
/// `Client::default()` knows neither.
#[derive(Clone, Copy, Debug, Default)]
pub struct Client<'a> {
    /// The client's address (the peer, or what a trusted proxy says).
    pub ip: Option<&'a str>,
    /// The client's `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// Whether the request carried a captcha the transport checked and accepted (an account
    /// over its per-account failure limit may then still sign in, SPEC §3).
    pub captcha_passed: bool,
}

/// A sign-in that opens a session.
#[derive(Clone, Debug)]
pub struct SignIn<'a> {
    /// Who signed in (the session is theirs, in their tenant).
    pub user: &'a User,
    /// How.
    pub method: SessionMethod,
    /// The client's address, when the transport knows it.
    pub ip: Option<&'a str>,
    /// The client's `User-Agent`, when it sent one (the implementation truncates it).
    pub user_agent: Option<&'a str>,
    /// The latest the session may end: when the password expires (SPEC §11), if it does.
    pub expires_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Sessions as the flows need them.
#[async_trait]
pub trait Sessions: Send + Sync + std::fmt::Debug + 'static {
    /// Opens a session for a sign-in; the tokens issued are bound to what it returns.
    ///
    /// # Errors
    /// Store errors.
    async fn open_for_sign_in(&self, sign_in: SignIn<'_>) -> Result<SessionBinding, CoreError>;

    /// Applies the rotation rule (SPEC §8) to a refresh token's session `sid` and generation:
    /// the current generation rotates, the one just before within the reuse interval gets the
    /// current one again, anything else ends the session as a reuse.
    ///
    /// # Errors
    /// `InvalidToken` when the session is gone, expired, idle or not `user`'s; `RefreshReused`
    /// when the token is a reuse (the session is then ended); store errors.
    async fn rotate_for_refresh(
        &self,
        user: &User,
        sid: Uuid,
        generation: i64,
    ) -> Result<SessionBinding, CoreError>;

    /// Ends every session of a user (a password change or reset, an email change).
    ///
    /// # Errors
    /// Store errors.
    async fn end_all(&self, tenant: Option<&TenantId>, user_id: &UserId) -> Result<(), CoreError>;

    /// How many live sessions a user has (the admin API's account view).
    ///
    /// # Errors
    /// Store errors.
    async fn count(&self, tenant: Option<&TenantId>, user_id: &UserId) -> Result<usize, CoreError>;

    /// Tells every instance's session cache that the user's record changed (an administrator
    /// changed their role), so `/check` answers with the new one at once.
    async fn user_changed(&self, tenant: Option<&TenantId>, user_id: &UserId);
}
