//! Authura's Hasura user store: a [`authura_core::UserStore`] over the `users` table tracked in
//! the operator's Hasura, through Hasura's generated GraphQL API (`users`, `users_by_pk`,
//! `insert_users_one`, `update_users_by_pk`) with the `x-hasura-admin-secret` header.
//!
//! Every operation is a named GraphQL document with variables; no value is ever spliced into
//! the query text. Hasura's `errors` become domain errors: a `constraint-violation` is
//! `Conflict`, any other GraphQL error `Backend`; a timeout, a refused or dropped connection and
//! a 5xx answer are `Unavailable`. Each request is logged at DEBUG by operation name only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authura_core::StoreError> {
//! use std::time::Duration;
//!
//! use authura_backend_hasura::{HasuraSettings, HasuraStore};
//! use authura_core::{Secret, UserStore};
//!
//! let store = HasuraStore::new(&HasuraSettings {
//!     url: "https://hasura.internal/v1/graphql".parse().expect("a URL"),
//!     admin_secret: Secret::new("from HASURA_GRAPHQL_ADMIN_SECRET"),
//!     timeout: Duration::from_secs(10),
//!     extra_ca_pem: None,
//! })?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```

mod graphql;
mod store;

pub use store::{DEFAULT_TIMEOUT, HasuraSettings, HasuraStore};
