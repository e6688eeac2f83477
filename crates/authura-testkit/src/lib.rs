//! Test support shared by the workspace's integration tests: the `UserStore` conformance suite
//! every backend runs, the state store's `SessionStore` suite, and harnesses that start real
//! services (an SMTP server catching mail, PostgreSQL clusters and per-test databases).
//! Dev-only; never published.

pub mod cluster;
pub mod config;
pub mod conformance;
pub mod oauth_link_conformance;
pub mod permit_conformance;
pub mod policy_conformance;
pub mod postgres;
pub mod python;
pub mod scripted;
pub mod smtp;
pub mod state_conformance;
pub mod tls;
