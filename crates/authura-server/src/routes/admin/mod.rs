//! The administration API of SPEC §11, under `/admin`: a Bearer access token or a session of an
//! `ADMIN_ROLE` user ([`SessionCredentials::admin`](crate::principal::SessionCredentials::admin)),
//! whose current record is read on every request. One module per resource: `users` (list,
//! create, show, update, delete, end sessions, reset mail), `account` (lock, unlock, archive,
//! restore) and `audit` (the audit log).

use actix_web::web;

pub(crate) mod account;
pub(crate) mod audit;
pub(crate) mod users;

/// Registers every `/admin` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    users::configure(cfg);
    account::configure(cfg);
    audit::configure(cfg);
}
