//! Integration tests of the PostgreSQL store against a real server: the backend conformance
//! suite on a fresh database per case, then what only PostgreSQL has (existing tables, other
//! table names, migrations, duplicates, TLS, losing and regaining the server, delete).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod postgres;
mod state;
