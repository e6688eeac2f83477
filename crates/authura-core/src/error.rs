//! The core's error type, in domain terms. Only `authura-server` turns these into status codes.

use crate::policy::Rule;

/// Everything a flow can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("not a valid email address")]
    InvalidEmail,
    #[error("not a valid tenant id")]
    InvalidTenant,
    #[error("the password does not meet the policy")]
    WeakPassword(Vec<Rule>),
    #[error("redirect_url is not an allowed redirect target")]
    InvalidRedirectUrl,
    #[error("this link has already been used")]
    TokenUsed,
    #[error("the verification token is invalid or expired")]
    InvalidVerificationToken,
    /// An OAuth sign-in's `state` is tampered with, expired, or not this browser's (SPEC §9).
    #[error("the sign-in state is invalid or expired")]
    InvalidState,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("the token is missing, invalid or expired")]
    InvalidToken,
    /// No live session: a missing, malformed, unknown, expired, idle or ended session key or
    /// session-bound token (SPEC §8).
    #[error("the session is missing, unknown, expired or ended")]
    InvalidSession,
    #[error("not allowed")]
    Forbidden,
    #[error("signup is disabled")]
    SignupDisabled,
    #[error("the email address is not verified")]
    EmailNotVerified,
    #[error("users are managed by the directory")]
    ManagedByDirectory,
    #[error("the email address is already in use")]
    EmailTaken,
    #[error("the user backend is unavailable: {0}")]
    BackendUnavailable(String),
    #[error("the user backend failed: {0}")]
    Backend(String),
    #[error("the hook failed (status {status:?})")]
    HookFailed {
        /// The hook's status, relayed when it is a 4xx; `None` for 5xx, timeouts and I/O.
        status: Option<u16>,
        /// The hook's body, relayed as the error message.
        body: String,
    },
    #[error("the password hashing queue is full")]
    Overloaded,
    /// Too many failed logins on this account: refused, before any password is checked, until
    /// `retry_after` has passed.
    #[error("too many failed logins; try again later")]
    TooManyAttempts { retry_after: std::time::Duration },
    /// A refresh token of an older generation was presented and its session ended (SPEC §8):
    /// what `Sessions::rotate_for_refresh` reports so the refresh flow can audit it; the flow
    /// answers `InvalidToken`.
    #[error("a refresh token was reused; its session is ended")]
    RefreshReused,
    /// The new password is one of the last `PASSWORD_HISTORY` (SPEC §11).
    #[error("the password was used recently; choose another")]
    PasswordReused,
    /// A correct password older than `PASSWORD_MAX_AGE` (SPEC §11): no sign-in, but a short-lived
    /// `reset-password` verification token that `/verify-email` accepts with a new password.
    #[error("the password has expired; choose a new one")]
    PasswordExpired { reset_token: crate::types::Secret },
    /// The account is over its per-account failure limit and captcha is configured: this sign-in
    /// must carry a solved captcha (SPEC §3).
    #[error("this account needs a captcha to sign in")]
    CaptchaRequired,
    /// An admin tried to delete, archive, lock or demote their own account (SPEC §11).
    #[error("an admin cannot do this to their own account")]
    SelfModification,
    /// What the request names does not exist (an admin asking for a missing user).
    #[error("not found")]
    NotFound,
    /// The configured backend cannot do this (the operation is named).
    #[error("the user backend does not support {0}")]
    Unsupported(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for CoreError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            // A conflict on write means the address is taken (a unique violation).
            StoreError::Conflict => CoreError::EmailTaken,
            // Flows that act for a token's user say `InvalidToken` instead, at the call site
            // (`flows::user_gone`): there a missing user means the token no longer holds.
            StoreError::NotFound => CoreError::NotFound,
            StoreError::Unsupported(what) => CoreError::Unsupported(what),
            StoreError::Unavailable(m) => CoreError::BackendUnavailable(m),
            StoreError::Backend(m) => CoreError::Backend(m),
            StoreError::ReadOnly => CoreError::ManagedByDirectory,
            // A mail link's conditional write lost to another use of the same state; flows
            // where it means something else (`/change-password`) map it at the call site.
            StoreError::Changed => CoreError::TokenUsed,
        }
    }
}

/// `text` followed by the messages of `source` and its own sources, each after `": "`, skipping
/// those `text` already contains. Errors of HTTP, TLS and database clients keep the useful part
/// ("connection refused", "No CA certificates were loaded from the system") in their sources,
/// while their own message says only "builder error" or "error connecting".
#[must_use]
pub fn with_causes(mut text: String, source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut source = source;
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{CoreError, with_causes};
    use crate::store::StoreError;

    /// Whether a `CoreError` is the one expected.
    type Expect = fn(&CoreError) -> bool;

    #[test]
    fn store_errors_become_core_errors_of_the_same_meaning() {
        let cases: [(StoreError, Expect); 6] = [
            (StoreError::NotFound, |e| matches!(e, CoreError::NotFound)),
            (StoreError::Conflict, |e| matches!(e, CoreError::EmailTaken)),
            (
                StoreError::Unavailable("down".into()),
                |e| matches!(e, CoreError::BackendUnavailable(m) if m == "down"),
            ),
            (
                StoreError::Backend("bad".into()),
                |e| matches!(e, CoreError::Backend(m) if m == "bad"),
            ),
            (StoreError::ReadOnly, |e| {
                matches!(e, CoreError::ManagedByDirectory)
            }),
            (
                StoreError::Unsupported("listing users".into()),
                |e| matches!(e, CoreError::Unsupported(m) if m == "listing users"),
            ),
        ];
        for (store, want) in cases {
            let text = store.to_string();
            let core = CoreError::from(store);
            assert!(want(&core), "{text} became {core:?}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        inner: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |inner, &text| {
                Some(Layer {
                    text,
                    inner: inner.map(Box::new),
                })
            })
            .unwrap()
    }

    #[test]
    fn causes_follow_the_message_once_each() {
        let e = layers(&["builder error", "unexpected error", "no CA certificates"]);
        assert_eq!(
            with_causes(e.to_string(), std::error::Error::source(&e)),
            "builder error: unexpected error: no CA certificates"
        );
        // A cause the message already carries is not repeated.
        let e = layers(&["error connecting: refused", "refused"]);
        assert_eq!(
            with_causes(e.to_string(), std::error::Error::source(&e)),
            "error connecting: refused"
        );
        assert_eq!(with_causes("alone".into(), None), "alone");
    }
}
