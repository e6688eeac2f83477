//! The `authura` binary as an operator runs it: exit codes, `check-config`, `hash-password`,
//! `serve --dev`, logs, shutdown, asymmetric tokens checked by an independent JWT library, and the
//! trust store every outgoing TLS client uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod health;
mod jwks;
mod readme;
mod run;
mod trust;
