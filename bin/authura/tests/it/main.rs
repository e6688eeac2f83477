//! The `authura` binary as an operator runs it: exit codes, `check-config`, `hash-password`,
//! `serve --dev`, logs, and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod readme;
mod run;
