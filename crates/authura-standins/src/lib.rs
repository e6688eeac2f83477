//! Dev-only stand-ins for services the tests need but that cannot run here: Hasura's GraphQL
//! engine (not installable), reproduced faithfully enough for the Hasura backend's wire protocol,
//! and a reference implementation of the HTTP backend's REST contract. Both keep users in a real
//! table. Never published.

pub mod hasura;
pub mod http;
