//! Integration tests of the test kit: the conformance suite run on the in-memory store, which
//! keeps the suite itself honest (a case that fails on the reference store is a wrong case).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod memory;
