//! The session policy and the flows with sessions on, over core's in-memory stores and a manual
//! clock: no I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flows;
mod policy;
mod support;
