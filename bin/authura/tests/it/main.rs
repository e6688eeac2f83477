//! The `authura` binary as an operator runs it: exit codes, `check-config`, `hash-password`,
//! `healthcheck`, `serve --dev`, logs, shutdown, asymmetric tokens checked by an independent JWT
//! library, the trust store every outgoing TLS client uses, and the binary as the Dockerfile
//! starts and health-checks it, and schemathesis fuzzing the live binary from its OpenAPI
//! document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account_cli;
mod admin_cli;
mod api_fuzz;
mod cli;
mod deploy;
mod dockerfile;
mod health;
mod import_cli;
mod jwks;
mod kill;
mod permit_cli;
mod readme;
mod run;
mod slow;
mod trust;
mod users_cli;
