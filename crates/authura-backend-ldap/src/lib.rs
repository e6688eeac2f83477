//! Authura's LDAP user store (SPEC §10): a read-only [`authura_core::UserStore`] over a
//! directory (OpenLDAP, Active Directory) through ldap3 and rustls, that signs users in by
//! binding as them.
//!
//! A sign-in is a service bind (a pooled connection), a search with the address escaped per RFC
//! 4515 that must find exactly one entry, and a simple bind as that entry on a connection of its
//! own. An empty password is refused before anything is sent (a simple bind with one is
//! anonymous). Roles come from the entry's groups (`memberOf`, or a group search) through
//! [`RoleMap`]. The directory unreachable or slow is `StoreError::Unavailable`, never a wrong
//! password; writes are `StoreError::ReadOnly`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authura_core::StoreError> {
//! use authura_backend_ldap::{LdapSettings, LdapStore, RoleMap};
//! use authura_core::{Role, Secret, UserStore};
//!
//! let settings = LdapSettings {
//!     url: "ldaps://ldap.example.com".into(),
//!     starttls: false,
//!     bind_dn: Some("cn=authura,ou=services,dc=example,dc=com".into()),
//!     bind_password: Secret::new("service password"),
//!     base_dn: "ou=people,dc=example,dc=com".into(),
//!     user_filter: LdapSettings::DEFAULT_USER_FILTER.into(),
//!     id_attribute: LdapSettings::DEFAULT_ID_ATTRIBUTE.into(),
//!     email_attribute: LdapSettings::DEFAULT_EMAIL_ATTRIBUTE.into(),
//!     group_base_dn: "ou=groups,dc=example,dc=com".into(),
//!     group_filter: LdapSettings::DEFAULT_GROUP_FILTER.into(),
//!     role_map: RoleMap::parse(r#"{"cn=admins,ou=groups,dc=example,dc=com": "admin"}"#)
//!         .expect("a role map"),
//!     admin_role: Role::parse("admin").expect("a role"),
//!     default_role: Role::parse("user").expect("a role"),
//!     timeout: LdapSettings::DEFAULT_TIMEOUT,
//!     extra_ca_pem: None,
//!     pool_size: LdapSettings::DEFAULT_POOL_SIZE,
//! };
//! let store = LdapStore::new(settings)?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```

mod conn;
mod settings;
mod store;

pub use settings::{LdapSettings, RoleMap};
pub use store::LdapStore;
