//! Integration tests of the HTTP store against the reference server of the contract
//! (`authura-standins`): the backend conformance suite, then the error mapping (credentials,
//! conflicts, a failing, hanging, cut-off or absent service) and that nothing is half-written;
//! and the conformance suite again against the Python reference implementation in the docs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod errors;
mod python_reference;

use std::sync::Arc;
use std::time::Duration;

use authura_backend_http::{HttpSettings, HttpStore};
use authura_core::{Secret, UserStore};
use authura_standins::http::HttpStandin;

/// A store on `standin` with its credential and a short timeout (hang tests wait for it).
pub fn store(standin: &HttpStandin) -> Arc<dyn UserStore> {
    let (key, value) = standin.auth();
    store_with(standin.url(), key, Some(value), Duration::from_secs(10))
}

pub fn store_with(
    url: &str,
    key: &str,
    value: Option<&str>,
    timeout: Duration,
) -> Arc<dyn UserStore> {
    Arc::new(
        HttpStore::new(&HttpSettings {
            url: url::Url::parse(url).unwrap(),
            auth_header_key: key.to_owned(),
            auth_header_value: value.map(Secret::new),
            timeout,
            extra_ca_pem: None,
        })
        .unwrap(),
    )
}
