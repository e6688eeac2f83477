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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use authura_core::Email;
    use authura_core::mail::Action;

    use super::*;

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn logs_the_mail_with_its_link_at_info() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);

        let mail = Mail {
            to: Email::parse("dev@example.com").unwrap(),
            action: Action::VerifyEmail,
            link: "http://localhost:9000/form?action=verify-email&token=abc".into(),
            tenant: None,
            role: None,
            expires_in: Duration::from_secs(3600),
        };
        DummyMailer::new(Templates::builtin())
            .send(&mail)
            .await
            .unwrap();

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        for expected in [
            " INFO ",
            "to=dev@example.com",
            "action=\"verify-email\"",
            "subject=Verify your email address",
            "link=http://localhost:9000/form?action=verify-email&token=abc",
        ] {
            assert!(log.contains(expected), "log {log:?} lacks {expected:?}");
        }
    }
}
