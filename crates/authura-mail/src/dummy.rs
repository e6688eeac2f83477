//! The development mailer (`MAIL_HOST=dummy`): renders each mail and writes it to the log, link
//! included, so a developer can follow the link without a mail server.

use async_trait::async_trait;
use authura_core::mail::{Mail, MailError, Mailer};

use crate::templates::Templates;

/// Renders mail and logs it at INFO instead of sending it. The log line carries the live link:
/// never use it in production.
#[derive(Debug)]
pub struct DummyMailer {
    templates: Templates,
}

impl DummyMailer {
    /// A mailer that logs what it would send.
    pub fn new(templates: Templates) -> DummyMailer {
        DummyMailer { templates }
    }
}

#[async_trait]
impl Mailer for DummyMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let rendered = self.templates.render(mail)?;
        tracing::info!(
            to = %mail.to,
            action = mail.action.as_str(),
            subject = %rendered.subject,
            link = %mail.link,
            "mail not sent (dummy mailer); follow the link to continue"
        );
        tracing::debug!(to = %mail.to, text = %rendered.text, "dummy mail text");
        Ok(())
    }
}
