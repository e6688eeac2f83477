//! Core flows through the in-memory store, the inline hasher and a manual clock: no I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod differential;
mod flows;
mod lockout;
mod tokens;
