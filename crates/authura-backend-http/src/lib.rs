//! Authura's HTTP user store: a [`authura_core::UserStore`] over an operator's own REST service
//! that implements the contract in `docs/backends/http.md` (SPEC §5), through reqwest and rustls.
//!
//! Every call is one request to `HTTP_URL` (or `HTTP_URL/{id}`) carrying the configured auth
//! header; the service's answer is mapped to the store's domain errors: 404 is "no such user",
//! 409 a conflict, 5xx, timeouts and connection failures `Unavailable`, anything else `Backend`.
//! Nothing is retried: a create that fails is not repeated behind the caller's back.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authura_core::StoreError> {
//! use authura_backend_http::{HttpSettings, HttpStore};
//! use authura_core::{Secret, UserStore};
//!
//! let settings = HttpSettings {
//!     url: url::Url::parse("https://api.example.com/authura/users").expect("a URL"),
//!     auth_header_key: "Authorization".to_owned(),
//!     auth_header_value: Some(Secret::new("Bearer 0123456789")),
//!     timeout: HttpSettings::DEFAULT_TIMEOUT,
//!     extra_ca_pem: None,
//! };
//! let store = HttpStore::new(&settings)?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```

mod store;
mod wire;

pub use store::{HttpSettings, HttpStore};
