//! The mail a flow asks to send, and the `Mailer` trait that sends it (`authura-mail`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::types::{Email, Role, TenantId};

/// The mails Authura sends: the four actions a mail link can carry, and the notice that an
/// account was locked (SPEC §11), whose link is a password reset's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
    Invite,
    /// Not an action of a link: `/verify-email` refuses a token naming it.
    AccountLocked,
}

impl Action {
    /// Every mail, each with its templates.
    pub const ALL: [Action; 5] = [
        Action::VerifyEmail,
        Action::ResetPassword,
        Action::ChangeEmail,
        Action::Invite,
        Action::AccountLocked,
    ];

    /// The wire name (`verify-email`, …), also the template name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::VerifyEmail => "verify-email",
            Action::ResetPassword => "reset-password",
            Action::ChangeEmail => "change-email",
            Action::Invite => "invite",
            Action::AccountLocked => "account-locked",
        }
    }

    /// Reads a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A mail to send. `Debug` hides the link: it carries a live token.
#[derive(Clone)]
pub struct Mail {
    pub to: Email,
    pub action: Action,
    /// The link with the verification token.
    pub link: String,
    pub tenant: Option<TenantId>,
    /// The invited role (invites only).
    pub role: Option<Role>,
    /// How long the link stays valid.
    pub expires_in: Duration,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("action", &self.action)
            .field("link", &"[redacted]")
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .finish()
    }
}

/// Where a flow posts mail that is not part of its answer (the `account-locked` notice, sent
/// while the flow answers a failed login): queued, never awaited, never failing the flow.
pub trait Outbox: Send + Sync + fmt::Debug + 'static {
    /// Queues one mail.
    fn post(&self, mail: Mail);
}

/// An outbox that drops every mail (embedders and tests without mail).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOutbox;

impl Outbox for NoOutbox {
    fn post(&self, mail: Mail) {
        tracing::debug!(action = mail.action.as_str(), "no outbox; mail dropped");
    }
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Delivers mail.
#[async_trait]
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    /// Renders and delivers one mail.
    ///
    /// # Errors
    /// `MailError` when rendering or delivery fails.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}
