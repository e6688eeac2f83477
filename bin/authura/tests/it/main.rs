//! The `authura` binary as an operator runs it: exit codes, `check-config`, `hash-password`,
//! `serve --dev`, logs, shutdown, and asymmetric tokens checked by an independent JWT library.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod jwks;
mod readme;
mod run;
