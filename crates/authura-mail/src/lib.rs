//! Authura's mail: tera templates for the four link actions (verify-email, reset-password,
//! change-email, invite) and two `authura_core::mail::Mailer`s — [`SmtpMailer`] (lettre, real
//! TLS) and [`DummyMailer`] (writes each mail and its link to the log, for development).

mod dummy;
mod error;
mod smtp;
mod templates;

pub use dummy::DummyMailer;
pub use smtp::{MailTls, SmtpMailer, SmtpSettings};
pub use templates::{Rendered, Templates};
