#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests: `SmtpMailer` against a real SMTP server (aiosmtpd, started by
//! `authura_testkit::smtp::SmtpSink`) over plain TCP, STARTTLS and implicit TLS.

mod smtp;
