//! The crypto boundary, in one place: the access-token keys ([`keys`]), the compact-JWS encoding
//! and checks (`jws`), and the signers and verifiers built once from the keys (`sign`).
//!
//! A recorded decision: `jws` verifies only tokens Authura signed itself (access, refresh and
//! verification tokens). Third-party tokens, such as OIDC ID tokens, go through jsonwebtoken,
//! never through this module.

pub(crate) mod jws;
pub mod keys;
pub(crate) mod sign;
