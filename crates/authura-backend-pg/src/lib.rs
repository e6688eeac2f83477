//! Authura's PostgreSQL user store: a [`authura_core::UserStore`] over the seed's `users` table
//! (or the table `POSTGRES_USERS_TABLE` names), through diesel-async, a deadpool connection pool
//! and rustls.
//!
//! [`PgStore::connect`] parses the DSN (libpq's key/value or URL form, `sslmode` included),
//! builds the pool, applies the numbered migrations under `migrations/` that the table has not
//! had yet (each once, recorded in `authura_schema_migrations`), and checks that the table has
//! the columns Authura needs and no other column that an insert would have to fill. An
//! operator's existing table may carry extra nullable columns; the store names only its own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authura_core::StoreError> {
//! use authura_backend_pg::{PgSettings, PgStore, UsersTable};
//! use authura_core::{Secret, UserStore};
//!
//! let settings = PgSettings {
//!     dsn: Secret::new("postgres://authura:secret@db.internal/app?sslmode=verify-full"),
//!     pool_size: 10,
//!     table: UsersTable::parse("users").expect("a valid table name"),
//!     extra_ca_pem: None,
//!     query_timeout: PgSettings::DEFAULT_QUERY_TIMEOUT,
//! };
//! let store = PgStore::connect(&settings).await?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```

pub mod authaus;
mod error;
mod events;
mod migrate;
mod oauth_links;
mod permits;
mod policy;
mod state;
mod statement;
mod store;
mod table;
mod tls;

pub use events::{CHANNEL, PgStateEvents};
pub use migrate::{MigrationState, status};
pub use state::{PgStateSettings, PgStateStore};
pub use store::{PgSettings, PgStore};
pub use table::UsersTable;
pub use tls::{SslMode, check_dsn};
