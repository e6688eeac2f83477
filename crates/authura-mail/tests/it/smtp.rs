//! Delivery through a real SMTP server: what arrives, over which security, with which login, and
//! what is refused (an untrusted certificate, a missing STARTTLS, bad credentials, no server).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authura_core::mail::{Action, Mail, Mailer};
use authura_core::{Email, Role, Secret, TenantId};
use authura_mail::{MailTls, SmtpMailer, SmtpSettings, Templates};
use authura_testkit::smtp::{ReceivedMail, SinkOptions, SinkTls, SmtpSink};

const WAIT: Duration = Duration::from_secs(10);
const FROM: &str = "Authura <no-reply@authura.test>";
const PASSWORD: &str = "pa55-w0rd-never-printed";

fn sink(tls: SinkTls, auth: Option<(&str, &str)>) -> SmtpSink {
    let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    SmtpSink::start_with(SinkOptions { tls, auth }).unwrap()
}

/// Settings for `sink` reached as `host` over `tls`, trusting the sink's CA, without AUTH.
fn settings(sink: &SmtpSink, host: &str, tls: MailTls) -> SmtpSettings {
    SmtpSettings {
        host: host.to_owned(),
        port: sink.port(),
        tls,
        user: None,
        password: None,
        from: FROM.to_owned(),
        extra_ca_pem: sink.ca_pem(),
        timeout: Duration::from_secs(10),
    }
}

fn with_login(mut settings: SmtpSettings, user: &str, password: &str) -> SmtpSettings {
    settings.user = Some(user.to_owned());
    settings.password = Some(Secret::new(password));
    settings
}

fn mailer(settings: SmtpSettings) -> SmtpMailer {
    SmtpMailer::new(settings, Templates::builtin()).unwrap()
}

fn mail(to: &str, action: Action) -> Mail {
    Mail {
        to: Email::parse(to).unwrap(),
        action,
        link: format!(
            "http://localhost:9000/form?action={}&token=eyJhbGciOi.J9-x_Y&tenant=acme",
            action.as_str()
        ),
        tenant: Some(TenantId::parse("acme").unwrap()),
        role: Some(Role::parse("editor").unwrap()),
        expires_in: Duration::from_secs(30 * 60),
    }
}

/// Sends one mail through `settings` and checks everything about what `sink` received.
async fn check_delivery(
    sink: &SmtpSink,
    settings: SmtpSettings,
    expect_tls: bool,
    user: Option<&str>,
) {
    let mailer = mailer(settings);
    let sent = mail("alice@example.com", Action::ResetPassword);
    mailer.send(&sent).await.unwrap();
    let got = sink.wait_for("alice@example.com", WAIT).await.unwrap();
    check_received(&got, &sent, "Reset your password");
    assert_eq!(got.tls, expect_tls, "tls");
    assert_eq!(got.auth_user.as_deref(), user, "auth user");
    assert_eq!(sink.messages().len(), 1);
}

fn check_received(got: &ReceivedMail, sent: &Mail, subject: &str) {
    assert_eq!(got.to, [sent.to.as_str()]);
    assert_eq!(got.mail_from, "no-reply@authura.test");
    assert_eq!(got.from, FROM);
    assert_eq!(got.subject, subject);
    assert_eq!(got.link().as_deref(), Some(sent.link.as_str()));
    assert!(got.text.contains(&sent.link), "text: {}", got.text);
    assert!(got.text.contains("30 minutes"), "text: {}", got.text);
    // The link sits in an attribute, `&` and `/` escaped as HTML requires.
    let escaped = sent.link.replace('&', "&amp;").replace('/', "&#x2F;");
    assert!(
        got.html.contains(&format!("href=\"{escaped}\"")),
        "html: {}",
        got.html
    );
    assert!(got.html.contains("<!DOCTYPE html>"), "html: {}", got.html);
    assert!(
        got.raw.contains("multipart/alternative"),
        "raw: {}",
        got.raw
    );
    assert!(!got.raw.contains(PASSWORD));
}

/// The mail must not have been sent, with an error that explains why and keeps the password.
async fn check_refused(sink: &SmtpSink, settings: SmtpSettings, expected: &[&str]) {
    let mailer = mailer(settings);
    let err = mailer
        .send(&mail("bob@example.com", Action::VerifyEmail))
        .await
        .unwrap_err();
    let err = err.to_string();
    for e in expected {
        assert!(err.to_lowercase().contains(e), "error {err:?} lacks {e:?}");
    }
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(!err.ends_with('.'), "{err}");
    assert_eq!(sink.messages(), [], "nothing may be delivered");
}

#[tokio::test]
async fn plain_relay() {
    let sink = sink(SinkTls::None, None);
    check_delivery(
        &sink,
        settings(&sink, "127.0.0.1", MailTls::None),
        false,
        None,
    )
    .await;
}

#[tokio::test]
async fn starttls_with_the_extra_ca() {
    let sink = sink(SinkTls::StartTls, None);
    check_delivery(
        &sink,
        settings(&sink, "localhost", MailTls::StartTls),
        true,
        None,
    )
    .await;
}

#[tokio::test]
async fn implicit_tls_with_the_extra_ca() {
    let sink = sink(SinkTls::Implicit, None);
    // By IP address: the certificate must name 127.0.0.1 and rustls must check it as an IP.
    check_delivery(
        &sink,
        settings(&sink, "127.0.0.1", MailTls::Tls),
        true,
        None,
    )
    .await;
}

#[tokio::test]
async fn auth_over_starttls() {
    let sink = sink(SinkTls::StartTls, Some(("mailer", PASSWORD)));
    let s = with_login(
        settings(&sink, "localhost", MailTls::StartTls),
        "mailer",
        PASSWORD,
    );
    check_delivery(&sink, s, true, Some("mailer")).await;
}

#[tokio::test]
async fn auth_over_implicit_tls() {
    let sink = sink(SinkTls::Implicit, Some(("mailer", PASSWORD)));
    let s = with_login(
        settings(&sink, "localhost", MailTls::Tls),
        "mailer",
        PASSWORD,
    );
    check_delivery(&sink, s, true, Some("mailer")).await;
}

#[tokio::test]
async fn auth_to_a_local_relay_without_tls() {
    let sink = sink(SinkTls::None, Some(("mailer", PASSWORD)));
    let s = with_login(
        settings(&sink, "127.0.0.1", MailTls::None),
        "mailer",
        PASSWORD,
    );
    check_delivery(&sink, s, false, Some("mailer")).await;
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused() {
    let sink = sink(SinkTls::StartTls, Some(("mailer", "the-right-one")));
    let s = with_login(
        settings(&sink, "localhost", MailTls::StartTls),
        "mailer",
        PASSWORD,
    );
    check_refused(&sink, s, &["smtp delivery via localhost", "535"]).await;
    // The server requires AUTH; without credentials it refuses the mail.
    check_refused(
        &sink,
        settings(&sink, "localhost", MailTls::StartTls),
        &["530"],
    )
    .await;
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let other = sink(SinkTls::Implicit, None);
    for (tls, mode) in [
        (SinkTls::Implicit, MailTls::Tls),
        (SinkTls::StartTls, MailTls::StartTls),
    ] {
        let sink = sink(tls, Some(("mailer", "the-right-one")));
        let mut s = with_login(settings(&sink, "localhost", mode), "mailer", PASSWORD);
        // Only the system's roots.
        s.extra_ca_pem = None;
        check_refused(&sink, s.clone(), &["certificate"]).await;
        // Another CA is no better than none.
        s.extra_ca_pem = other.ca_pem();
        check_refused(&sink, s, &["certificate"]).await;
    }
}

#[tokio::test]
async fn starttls_is_required_not_opportunistic() {
    // A server (or an attacker stripping the capability) that does not offer STARTTLS.
    let sink = sink(SinkTls::None, None);
    let s = with_login(
        settings(&sink, "127.0.0.1", MailTls::StartTls),
        "mailer",
        PASSWORD,
    );
    check_refused(&sink, s, &["smtp delivery via 127.0.0.1"]).await;
}

#[tokio::test]
async fn implicit_tls_to_a_plain_server_fails() {
    let sink = sink(SinkTls::None, None);
    check_refused(
        &sink,
        settings(&sink, "127.0.0.1", MailTls::Tls),
        &["smtp delivery"],
    )
    .await;
}

#[tokio::test]
async fn a_closed_port_fails_at_once() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut s = settings_for_port(port);
    s.timeout = Duration::from_secs(5);
    let started = Instant::now();
    let err = mailer(s)
        .send(&mail("carol@example.com", Action::Invite))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_silent_server_fails_within_the_timeout() {
    // Accepts TCP connections (the kernel completes the handshake) but never says a word: lettre
    // itself only bounds the connect, so this checks the mailer's own deadline.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    for tls in [MailTls::None, MailTls::StartTls, MailTls::Tls] {
        let mut s = settings_for_port(listener.local_addr().unwrap().port());
        s.tls = tls;
        s.timeout = Duration::from_millis(500);
        let mailer = mailer(s);
        for attempt in 0..2 {
            let started = Instant::now();
            let err = mailer
                .send(&mail("carol@example.com", Action::Invite))
                .await
                .unwrap_err();
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(500),
                "{tls:?} #{attempt}: gave up early: {took:?}"
            );
            assert!(
                took < Duration::from_secs(3),
                "{tls:?} #{attempt}: took {took:?}: {err}"
            );
            assert!(err.to_string().contains("timed out after 500ms"), "{err}");
        }
    }
}

fn settings_for_port(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".to_owned(),
        port,
        tls: MailTls::None,
        user: None,
        password: None,
        from: FROM.to_owned(),
        extra_ca_pem: None,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mailer_sends_many_mails_over_its_pool() {
    let sink = sink(SinkTls::StartTls, Some(("mailer", PASSWORD)));
    let s = with_login(
        settings(&sink, "localhost", MailTls::StartTls),
        "mailer",
        PASSWORD,
    );
    let mailer: Arc<dyn Mailer> = Arc::new(mailer(s));

    // One after the other (the second reuses the pooled connection) ...
    let subjects = [
        (Action::VerifyEmail, "Verify your email address"),
        (Action::ChangeEmail, "Confirm your new email address"),
        (Action::Invite, "You're invited to acme"),
    ];
    for (action, subject) in subjects {
        let sent = mail("dave@example.com", action);
        mailer.send(&sent).await.unwrap();
        let got = sink.wait_for("dave@example.com", WAIT).await.unwrap();
        check_received(&got, &sent, subject);
        assert_eq!(got.auth_user.as_deref(), Some("mailer"));
    }

    // ... and concurrently.
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let mailer = Arc::clone(&mailer);
            tokio::spawn(async move {
                mailer
                    .send(&mail(&format!("user{i}@example.com"), Action::VerifyEmail))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for i in 0..6 {
        let got = sink
            .wait_for(&format!("user{i}@example.com"), WAIT)
            .await
            .unwrap();
        assert!(got.tls);
    }
    assert_eq!(sink.messages().len(), 9);
}
