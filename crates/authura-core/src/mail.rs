//! The mail a flow asks to send, and the `Mailer` trait that sends it (`authura-mail`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::types::{Email, Role, TenantId};

/// The four actions a mail link can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
    Invite,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [
        Action::VerifyEmail,
        Action::ResetPassword,
        Action::ChangeEmail,
        Action::Invite,
    ];

    /// The wire name (`verify-email`, …), also the template name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::VerifyEmail => "verify-email",
            Action::ResetPassword => "reset-password",
            Action::ChangeEmail => "change-email",
            Action::Invite => "invite",
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
