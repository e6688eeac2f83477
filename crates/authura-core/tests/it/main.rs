//! Core flows through the in-memory store, the inline hasher and a manual clock: no I/O but
//! Python, which makes the Authaus hashes `authaus` checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authaus;
mod differential;
mod flows;
mod lockout;
mod nfc;
mod permits;
mod tokens;
