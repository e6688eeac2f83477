//! The session policy, the flows with sessions on and the session cache, over core's in-memory
//! stores, SQLite and PostgreSQL, with a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod flows;
mod policy;
mod support;
