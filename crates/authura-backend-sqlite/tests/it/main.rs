//! Integration tests of the SQLite store: the backend conformance suite on a fresh database file
//! per case, then what only SQLite has (existing tables, migrations, duplicates, delete).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod sqlite;
mod state;
