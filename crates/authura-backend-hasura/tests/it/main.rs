//! Integration tests of the Hasura store against the Hasura-shaped stand-in (a real GraphQL
//! server over a real users table): the backend conformance suite, then how Hasura's errors
//! and failures map to domain errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod errors;

use std::sync::Arc;
use std::time::Duration;

use authura_backend_hasura::{HasuraSettings, HasuraStore};
use authura_core::Secret;
use authura_standins::hasura::HasuraStandin;

/// A store on `standin` with this admin secret and request timeout.
pub fn store_with(standin: &HasuraStandin, secret: &str, timeout: Duration) -> HasuraStore {
    HasuraStore::new(&HasuraSettings {
        url: standin.url().parse().unwrap(),
        admin_secret: Secret::new(secret),
        timeout,
        extra_ca_pem: None,
    })
    .unwrap()
}

/// A fresh stand-in and a store on it.
pub fn fresh() -> (Arc<HasuraStore>, HasuraStandin) {
    let standin = HasuraStandin::start().unwrap();
    let store = store_with(&standin, standin.admin_secret(), Duration::from_secs(10));
    (Arc::new(store), standin)
}
