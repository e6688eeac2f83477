//! The administration API of SPEC §11, under `/admin`: a Bearer access token or a session of an
//! `ADMIN_ROLE` user ([`SessionCredentials::admin`](crate::principal::SessionCredentials::admin)),
//! whose current record is read on every request. One module per resource: `account` (lock,
//! unlock, archive, restore) and `audit` (the audit log).

use actix_web::web;

pub(crate) mod account;
pub(crate) mod audit;

/// Registers every `/admin` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    account::configure(cfg);
    audit::configure(cfg);
}
