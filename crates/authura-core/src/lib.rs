//! Authura's domain, free of HTTP and SQL: users and their validated field types, the three token
//! kinds and their keys, claims extensions, the password policy and hashing, the `UserStore`, `Mailer`,
//! `PasswordHasher` and `Hook` traits, and the auth flows as plain async functions over them.
//!
//! A crate user can embed the flows with any `UserStore` (see `authura-backend-sqlite`) and
//! choose their own transport; `authura-server` is the HTTP one.

pub mod clock;
pub mod crypto;
pub mod duration;
pub mod error;
pub mod extension;
pub mod flows;
pub mod hash;
pub mod hook;
pub mod lockout;
pub mod mail;
#[cfg(feature = "memory")]
pub mod memory;
pub mod permit;
pub mod policy;
pub mod redirect;
pub mod sessions;
pub mod state;
pub mod store;
pub mod token;
pub mod types;

pub use crypto::keys;
pub use error::CoreError;
pub use state::SessionStore;
pub use store::{StoreError, UserPage, UserQuery, UserStore};
pub use types::{Email, NewUser, PasswordHash, Role, Secret, TenantId, User, UserChanges, UserId};
