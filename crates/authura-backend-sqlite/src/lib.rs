//! Authura's SQLite user store: a [`authura_core::UserStore`] over an embedded SQLite database
//! (bundled SQLite, diesel + diesel-async, a deadpool connection pool).
//!
//! [`SqliteStore::open`] creates the database file if it is missing, configures every connection
//! (WAL, a 5 s busy timeout, foreign keys) and applies the embedded schema migrations, which
//! create the seed's `users` table if it is not there yet. An existing `users` table may carry
//! extra nullable columns; the store reads and writes only the columns it knows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authura_core::StoreError> {
//! use authura_backend_sqlite::SqliteStore;
//! use authura_core::UserStore;
//!
//! let store = SqliteStore::open("./authura.db", 4).await?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```
#![doc = ""]
#![doc = "## Embedding it with authura-core"]
#![doc = ""]
#![doc = include_str!("../README.md")]

mod error;
mod migrate;
mod oauth_links;
mod permits;
mod policy;
mod read;
mod schema;
mod space;
mod state;
mod store;

pub use state::SqliteStateStore;
pub use store::SqliteStore;
