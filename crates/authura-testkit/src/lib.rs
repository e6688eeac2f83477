//! Test support shared by the workspace's integration tests: the `UserStore` conformance suite
//! every backend runs, and harnesses that start real services (an SMTP server catching mail,
//! PostgreSQL clusters and per-test databases). Dev-only; never published.
//!
//! Without its default `services` feature only [`cluster`] is built (`std` and `anyhow`), which
//! is what `xtask` uses to start the suite's PostgreSQL.

pub mod cluster;
#[cfg(feature = "services")]
pub mod conformance;
#[cfg(feature = "services")]
pub mod postgres;
#[cfg(feature = "services")]
pub mod python;
#[cfg(feature = "services")]
pub mod scripted;
#[cfg(feature = "services")]
pub mod smtp;
#[cfg(feature = "services")]
pub mod tls;
