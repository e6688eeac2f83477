//! Delivery over SMTP with lettre: implicit TLS, required STARTTLS or plain (a local relay),
//! rustls with the operating system's roots plus an optional extra CA bundle, optional AUTH.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use authura_core::Secret;
use authura_core::mail::{Mail, MailError, Mailer};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::runtime::Handle;

use crate::error::{Error, chain};
use crate::templates::Templates;

/// How the connection to the SMTP server is secured (`MAIL_TLS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailTls {
    /// Plain SMTP, for a relay on the local host or network. Never upgraded.
    None,
    /// Plain SMTP upgraded with `STARTTLS`, which the server must offer (submission, port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl MailTls {
    /// Reads `none`, `starttls` or `tls` (any case).
    pub fn parse(s: &str) -> Option<MailTls> {
        [MailTls::None, MailTls::StartTls, MailTls::Tls]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The configuration name (`none`, `starttls`, `tls`).
    pub fn as_str(self) -> &'static str {
        match self {
            MailTls::None => "none",
            MailTls::StartTls => "starttls",
            MailTls::Tls => "tls",
        }
    }

    /// The usual port: 25, 587 or 465.
    pub fn default_port(self) -> u16 {
        match self {
            MailTls::None => 25,
            MailTls::StartTls => 587,
            MailTls::Tls => 465,
        }
    }
}

/// Where and how to deliver mail. `Debug` never prints the password.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Server host name or IP address; also the name its certificate must carry.
    pub host: String,
    pub port: u16,
    pub tls: MailTls,
    /// Log in with this user (and `password`); no AUTH when `None`.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// The `From` mailbox: `no-reply@example.com` or `Example <no-reply@example.com>`.
    pub from: String,
    /// PEM certificates (`EXTRA_CA_FILE`) trusted in addition to the system's roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Bound on one delivery: connecting, TLS, login and the SMTP exchange.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("from", &self.from)
            .field(
                "extra_ca_pem",
                &self
                    .extra_ca_pem
                    .as_ref()
                    .map(|pem| format!("{} bytes", pem.len())),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends mail through an SMTP server, reusing connections (lettre's pool).
///
/// The pool is created at the first send, inside the Tokio runtime that sends (lettre's pool
/// panics when created or dropped outside one), so `new` works anywhere; dropping the mailer
/// re-enters that runtime. A delivery that times out discards the pool: the connection it was
/// cancelled on would otherwise go back to the pool in the middle of an SMTP exchange.
pub struct SmtpMailer {
    host: String,
    port: u16,
    tls: MailTls,
    from: Mailbox,
    timeout: Duration,
    templates: Templates,
    builder: AsyncSmtpTransportBuilder,
    pool: Mutex<Option<Arc<Pooled>>>,
}

/// A pooled transport and the runtime its pool lives in.
struct Pooled {
    /// `Some` until dropped.
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    runtime: Handle,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(smtp) = self.smtp.take() {
            // lettre's pool spawns its clean-up on drop, which panics outside a runtime context.
            // Entering a runtime that has already shut down is fine: the task is just dropped.
            let _context = self.runtime.enter();
            drop(smtp);
        }
    }
}

impl SmtpMailer {
    /// Checks the settings and prepares the transport; connects only when sending.
    ///
    /// # Errors
    /// When `from` is not a mailbox, the CA bundle holds no usable certificate, the timeout is
    /// zero, or only one of user and password is given.
    pub fn new(settings: SmtpSettings, templates: Templates) -> Result<SmtpMailer, MailError> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            Error::Settings(format!("invalid from address {:?}: {e}", settings.from))
        })?;
        if settings.timeout.is_zero() {
            return Err(Error::Settings("the timeout must be positive".into()).into());
        }
        let credentials = credentials(&settings)?;
        if credentials.is_some() && settings.tls == MailTls::None && !is_loopback(&settings.host) {
            tracing::warn!(
                host = %settings.host,
                "smtp credentials will cross the network in clear text (tls = none)"
            );
        }

        let tls = match settings.tls {
            MailTls::None => Tls::None,
            MailTls::StartTls => Tls::Required(tls_parameters(&settings)?),
            MailTls::Tls => Tls::Wrapper(tls_parameters(&settings)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(settings.timeout));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        Ok(SmtpMailer {
            host: settings.host,
            port: settings.port,
            tls: settings.tls,
            from,
            timeout: settings.timeout,
            templates,
            builder,
            pool: Mutex::new(None),
        })
    }

    /// The current pool, created on first use.
    fn pool(&self) -> Result<Arc<Pooled>, Error> {
        // Nothing panics while the lock is held, and the slot is valid in any state.
        let mut slot = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pooled) = slot.as_ref() {
            return Ok(Arc::clone(pooled));
        }
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let pooled = Arc::new(Pooled {
            smtp: Some(self.builder.clone().build()),
            runtime,
        });
        *slot = Some(Arc::clone(&pooled));
        Ok(pooled)
    }

    /// Forgets `pooled` (unless another send already replaced it); the next send starts afresh.
    fn discard(&self, pooled: &Arc<Pooled>) {
        let mut slot = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, pooled))
        {
            *slot = None;
        }
    }

    async fn deliver(&self, message: Message) -> Result<(), Error> {
        let pooled = self.pool()?;
        let Some(smtp) = pooled.smtp.as_ref() else {
            return Err(self.delivery_error("the transport is shut down".into()));
        };
        // lettre bounds only the TCP connect; TLS and SMTP replies could otherwise stall forever.
        match tokio::time::timeout(self.timeout, smtp.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.delivery_error(chain(&e))),
            Err(_) => {
                self.discard(&pooled);
                Err(self.delivery_error(format!("timed out after {:?}", self.timeout)))
            }
        }
    }

    fn delivery_error(&self, reason: String) -> Error {
        Error::Delivery {
            host: self.host.clone(),
            port: self.port,
            reason,
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let rendered = self.templates.render(mail)?;
        let to = mail
            .to
            .as_str()
            .parse::<Address>()
            .map_err(|e| Error::Recipient {
                address: mail.to.to_string(),
                reason: e.to_string(),
            })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| Error::Message(e.to_string()))?;
        self.deliver(message).await?;
        tracing::debug!(to = %mail.to, action = mail.action.as_str(), "mail sent");
        Ok(())
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

fn credentials(settings: &SmtpSettings) -> Result<Option<Credentials>, Error> {
    let user = settings.user.as_deref().filter(|u| !u.is_empty());
    let password = settings.password.as_ref().filter(|p| !p.is_empty());
    match (user, password) {
        (Some(user), Some(password)) => Ok(Some(Credentials::new(
            user.to_owned(),
            password.expose().to_owned(),
        ))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::Settings("a user is given without a password".into())),
        (None, Some(_)) => Err(Error::Settings("a password is given without a user".into())),
    }
}

fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, Error> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(pem) = &settings.extra_ca_pem {
        // lettre reads a bundle without complaint when it holds no certificate at all.
        if !pem.windows(CERT_BEGIN.len()).any(|w| w == CERT_BEGIN) {
            return Err(Error::Settings(
                "the extra ca bundle holds no pem certificate".into(),
            ));
        }
        let certificate = Certificate::from_pem(pem)
            .map_err(|e| Error::Settings(format!("the extra ca bundle: {}", chain(&e))))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| Error::Settings(format!("tls configuration: {}", chain(&e))))
}

const CERT_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "smtp.example.com".into(),
            port: 587,
            tls: MailTls::StartTls,
            user: Some("mailer".into()),
            password: Some(Secret::new("hunter2-smtp")),
            from: "Authura <no-reply@example.com>".into(),
            extra_ca_pem: None,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn tls_modes_parse_and_have_ports() {
        for (name, tls, port) in [
            ("none", MailTls::None, 25),
            ("starttls", MailTls::StartTls, 587),
            ("tls", MailTls::Tls, 465),
        ] {
            assert_eq!(MailTls::parse(name), Some(tls));
            assert_eq!(MailTls::parse(&name.to_uppercase()), Some(tls));
            assert_eq!(tls.as_str(), name);
            assert_eq!(tls.default_port(), port);
        }
        assert_eq!(MailTls::parse("ssl"), None);
        assert_eq!(MailTls::parse(""), None);
    }

    #[test]
    fn debug_never_prints_the_password() {
        let s = settings();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        let mailer = SmtpMailer::new(s, Templates::builtin()).unwrap();
        let printed = format!("{mailer:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    /// `SmtpMailer::new` with `change` applied to valid settings must fail mentioning `expected`.
    fn check_invalid(change: impl FnOnce(&mut SmtpSettings), expected: &str) {
        let mut s = settings();
        change(&mut s);
        let err = SmtpMailer::new(s, Templates::builtin())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        check_invalid(|s| s.from = "not a mailbox".into(), "invalid from address");
        check_invalid(|s| s.timeout = Duration::ZERO, "timeout");
        check_invalid(|s| s.password = None, "without a password");
        check_invalid(|s| s.user = None, "without a user");
        check_invalid(
            |s| s.extra_ca_pem = Some(b"garbage".to_vec()),
            "no pem certificate",
        );
        check_invalid(
            |s| {
                s.extra_ca_pem =
                    Some(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n".to_vec())
            },
            "extra ca bundle",
        );
    }

    #[test]
    fn new_needs_no_runtime_and_dropping_outside_one_is_safe() {
        // No Tokio runtime here: creating and dropping an unused mailer must not panic.
        let mailer = SmtpMailer::new(settings(), Templates::builtin()).unwrap();
        drop(mailer);

        // A mailer whose pool started in a runtime that is gone by the time it is dropped.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mailer = runtime.block_on(async {
            let mailer = SmtpMailer::new(settings(), Templates::builtin()).unwrap();
            mailer.pool().unwrap();
            mailer
        });
        drop(runtime);
        drop(mailer);
    }

    #[test]
    fn loopback_hosts() {
        for (host, loopback) in [
            ("localhost", true),
            ("127.0.0.1", true),
            ("::1", true),
            ("smtp.example.com", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(host), loopback, "{host}");
        }
    }
}
