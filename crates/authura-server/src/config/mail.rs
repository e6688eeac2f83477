//! The mail section: the SMTP relay (or `dummy`), its TLS and credentials, the sender, and the
//! template overrides.

use std::path::PathBuf;
use std::time::Duration;

use authura_mail::{MailTls, SmtpSettings};

use crate::config::reader::Reader;
use crate::config::var::{Var, declare};
use crate::config::{MailConfig, Sources};

declare! {
    MAIL_HOST = Var::new(
        "mail",
        "The SMTP relay's host name or IP, also the name its certificate must carry. `dummy` \
         writes each mail to the log at INFO, with its link, instead of sending it; never use it \
         in production. With `dummy`, `MAIL_TLS`, `MAIL_PORT`, `MAIL_USER`, `MAIL_PASS` and \
         `MAIL_FROM` are not read (nor checked). Missing: `MAIL_HOST is required (an SMTP relay, \
         or dummy to write mail to the log)`.",
    )
    .required("required (`dummy` with `--dev`)");
    MAIL_TLS = Var::new(
        "mail",
        "`starttls` (plain connection upgraded with STARTTLS, which the server must offer), \
         `tls` (TLS from the first byte) or `none` (plain, for a local relay; credentials over a \
         non-loopback plain connection draw a warning). Any case.",
    )
    .default("starttls")
    .when("a real `MAIL_HOST`")
    .new_variable();
    MAIL_PORT = Var::new(
        "mail",
        "By `MAIL_TLS`: `starttls` 587, `tls` 465, `none` 25. A number.",
    )
    .computed("`587`, `465` or `25`")
    .when("a real `MAIL_HOST`");
    MAIL_USER = Var::new(
        "mail",
        "SMTP AUTH user. With `MAIL_PASS`, both or neither (`MAIL_USER and MAIL_PASS go \
         together`); neither means no AUTH.",
    )
    .when("a real `MAIL_HOST`");
    MAIL_PASS = Var::new(
        "mail",
        "SMTP AUTH password. Secret.",
    )
    .when("a real `MAIL_HOST`")
    .secret();
    MAIL_FROM = Var::new(
        "mail",
        "The `From` mailbox: `no-reply@example.com` or `Example <no-reply@example.com>`. \
         Missing: `MAIL_FROM is required with a real MAIL_HOST`; its syntax is checked by \
         `check-config` and at startup (exit 2).",
    )
    .required("required with a real `MAIL_HOST`")
    .when("a real `MAIL_HOST`");
    MAIL_TEMPLATES_DIR = Var::new(
        "mail",
        "A directory of template overrides named `<action>.subject`, `<action>.txt`, \
         `<action>.html` for the actions `verify-email`, `reset-password`, `change-email`, \
         `invite`; a missing file falls back to the built-in one. Must be a directory \
         (`MAIL_TEMPLATES_DIR: /x is not a directory`); every template is parsed and \
         test-rendered by `check-config` and at startup (exit 2 naming the file on failure): a \
         subject must render to one non-empty line, and each text and HTML part must contain `{{ \
         link }}`. Variables: `link`, `email`, `action`, `tenant_id`, `expires_in`, `role`.",
    )
    .new_variable();
}

/// `MAIL_*` but the templates: how mail is delivered, checked as the mailer would.
pub fn read_mail(
    r: &mut Reader,
    sources: &Sources,
    extra_ca_pem: Option<Vec<u8>>,
) -> Option<MailConfig> {
    let host = match r.string(&MAIL_HOST) {
        Some(h) => h,
        None if sources.dev => r.default(&MAIL_HOST, "dummy"),
        None => {
            r.problem(
                "MAIL_HOST is required (an SMTP relay, or dummy to write mail to the log)".into(),
            );
            return None;
        }
    };
    if host == "dummy" {
        return Some(MailConfig::Dummy);
    }
    // Every mail variable is read even when one is wrong, so all problems are listed at once.
    let tls_name = r.text(&MAIL_TLS);
    let tls = MailTls::parse(&tls_name);
    if tls.is_none() {
        r.problem(format!(
            "MAIL_TLS: expected starttls, tls or none, got {tls_name:?}"
        ));
    }
    let port = r.number_or::<u16>(&MAIL_PORT, tls.unwrap_or(MailTls::StartTls).default_port());
    let user = r.string(&MAIL_USER);
    let password = r.secret(&MAIL_PASS);
    if user.is_some() != password.is_some() {
        r.problem("MAIL_USER and MAIL_PASS go together".into());
    }
    let from = r.string(&MAIL_FROM);
    if from.is_none() {
        r.problem("MAIL_FROM is required with a real MAIL_HOST".into());
    }
    let settings = SmtpSettings {
        host,
        port,
        tls: tls?,
        user,
        password,
        from: from?,
        extra_ca_pem,
        timeout: Duration::from_secs(10),
    };
    // The mailer's own checks (the From mailbox, the CA bundle), without connecting.
    if let Err(e) =
        authura_mail::SmtpMailer::new(settings.clone(), authura_mail::Templates::builtin())
    {
        r.problem(format!("MAIL_*: {e}"));
        return None;
    }
    Some(MailConfig::Smtp(settings))
}

/// `MAIL_TEMPLATES_DIR`: a directory whose templates parse and render.
pub fn read_templates_dir(r: &mut Reader) -> Option<PathBuf> {
    let mail_templates_dir = r.string(&MAIL_TEMPLATES_DIR).map(PathBuf::from);
    if let Some(dir) = &mail_templates_dir {
        if !dir.is_dir() {
            r.problem(format!(
                "MAIL_TEMPLATES_DIR: {} is not a directory",
                dir.display()
            ));
        } else if let Err(e) = authura_mail::Templates::load(dir) {
            r.problem(format!("MAIL_TEMPLATES_DIR: {e}"));
        }
    }
    mail_templates_dir
}
