//! The session crate's error type.

use authura_core::{CoreError, StoreError};

/// What a session operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No live session: an unknown, malformed, expired, idle or ended key or id, or one of
    /// another user. The transport answers `invalid_session` (or `not_found` for an id).
    #[error("no such session")]
    NotFound,
    /// A refresh token of an older generation was presented (RFC 9700 §4.14.2): its session
    /// has been ended.
    #[error("a refresh token was reused; its session is ended")]
    RefreshReused,
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operating system's random source failed, so no key could be made.
    #[error("no random source for a session key: {0}")]
    Random(String),
}

impl From<SessionError> for CoreError {
    /// For the token flows: a dead session or a reuse makes the refresh token invalid.
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotFound | SessionError::RefreshReused => CoreError::InvalidToken,
            SessionError::Store(e) => e.into(),
            SessionError::Random(m) => CoreError::Internal(m),
        }
    }
}
