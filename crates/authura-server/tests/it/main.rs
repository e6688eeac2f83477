//! The server as a client sees it: real HTTP against the service bound in-process, on a temp
//! SQLite file and on a fresh PostgreSQL database (`both_backends!`), with every mail caught by
//! a real SMTP server and its link followed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod browser;
mod captcha;
mod check;
mod edges;
mod faults;
mod flows;
mod harness;
mod hasura_backend;
mod headers;
mod hooks;
mod http_backend;
mod instances;
mod ldap;
mod legacy;
mod metrics;
mod nfc;
mod oauth;
mod openapi;
mod order;
mod permits;
mod policies;
mod postgres;
mod races;
mod sessions;
