//! The crate's failures in mail terms; at the API they become `authura_core::mail::MailError`,
//! the one error type the `Mailer` trait speaks. None of them ever carries the SMTP password.

use authura_core::mail::MailError;

/// Why templates did not load or render, or a mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A template file is unreadable, does not parse, or does not render.
    #[error("template {file}: {reason}")]
    Template { file: String, reason: String },
    /// The override directory itself is unusable.
    #[error("mail templates directory {dir}: {reason}")]
    TemplateDir { dir: String, reason: String },
    /// The SMTP settings are inconsistent.
    #[error("invalid smtp settings: {0}")]
    Settings(String),
    /// The recipient cannot be put on an envelope.
    #[error("invalid recipient address {address}: {reason}")]
    Recipient { address: String, reason: String },
    /// The message could not be assembled.
    #[error("building the message: {0}")]
    Message(String),
    /// Sending needs a Tokio runtime (lettre's connection pool lives in one).
    #[error("the smtp mailer must send from within a tokio runtime")]
    NoRuntime,
    /// The server could not be reached or refused the mail.
    #[error("smtp delivery via {host}:{port} failed: {reason}")]
    Delivery {
        host: String,
        port: u16,
        reason: String,
    },
}

impl From<Error> for MailError {
    fn from(e: Error) -> MailError {
        MailError(e.to_string())
    }
}

/// An error and its sources on one line, skipping sources the error already prints.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let text = authura_core::error::with_causes(error.to_string(), error.source());
    // lettre wraps some errors in a kind that prints the same words ("Connection error: Connection
    // error: ..."); say them once.
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}
