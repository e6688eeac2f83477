//! Reads run inline on the calling thread, from a small pool of synchronous connections.
//!
//! A lookup by primary key or by the unique email index takes a few microseconds in SQLite,
//! less than handing the query to a blocking thread and back (two context switches, which were
//! most of `GET /user`'s cost). In WAL mode readers never wait for writers, so an inline read
//! does not stall the async worker; the read connections still get a short busy timeout, so an
//! exclusive lock taken by some other process (a `VACUUM`, a migration) makes a read fail with
//! `Unavailable` quickly instead of blocking a worker for long. Writes, which can wait for the
//! write lock, stay on the blocking pool.

use std::sync::Mutex;

use diesel::RunQueryDsl;
use diesel::prelude::*;

use authura_core::StoreError;
use authura_core::types::{Email, TenantId, User};

use crate::error;
use crate::schema::{UserRow, lower, users};

/// Settings of a read connection: WAL (already set on the file by migration), a short busy
/// timeout, read-only queries.
const READ_SETUP: &str = "PRAGMA busy_timeout = 250; PRAGMA query_only = ON;";

/// Idle synchronous read connections; more are opened on demand and at most `keep` are kept.
pub(crate) struct Readers {
    path: String,
    keep: usize,
    idle: Mutex<Vec<SqliteConnection>>,
}

impl Readers {
    pub(crate) fn new(path: &str, keep: usize) -> Self {
        Readers {
            path: path.to_owned(),
            keep: keep.max(1),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `query` on an idle read connection (opening one if none is idle).
    fn with<T>(
        &self,
        query: impl FnOnce(&mut SqliteConnection) -> QueryResult<T>,
    ) -> Result<T, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let mut conn =
                    SqliteConnection::establish(&self.path).map_err(error::connection)?;
                diesel::connection::SimpleConnection::batch_execute(&mut conn, READ_SETUP)
                    .map_err(error::query)?;
                conn
            }
        };
        let result = query(&mut conn).map_err(error::query);
        // A connection that failed is dropped rather than reused, in case it is broken.
        if result.is_ok() {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < self.keep {
                idle.push(conn);
            }
        }
        result
    }

    pub(crate) fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        self.with(|conn| {
            users::table
                // `lower(email)`: rows an operator wrote may not be lower-case; it is also the
                // unique index's expression, so the lookup uses the index.
                .filter(lower(users::email).eq(email.as_str()))
                .filter(users::tenant_id.is(tenant.map(TenantId::as_str)))
                .select(UserRow::as_select())
                // At most one row matches (a primary key, or the unique index's expressions).
                // `load` rather than `first`: diesel does not reuse `first`'s prepared statement
                // on SQLite (its bound LIMIT), and preparing was most of a read's cost.
                .load::<UserRow>(conn)
                .map(|rows| rows.into_iter().next())
        })?
        .map(UserRow::into_user)
        .transpose()
    }

    pub(crate) fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: i64,
    ) -> Result<Option<User>, StoreError> {
        self.with(|conn| {
            users::table
                .filter(users::id.eq(id))
                .filter(users::tenant_id.is(tenant.map(TenantId::as_str)))
                .select(UserRow::as_select())
                // At most one row matches (a primary key, or the unique index's expressions).
                // `load` rather than `first`: diesel does not reuse `first`'s prepared statement
                // on SQLite (its bound LIMIT), and preparing was most of a read's cost.
                .load::<UserRow>(conn)
                .map(|rows| rows.into_iter().next())
        })?
        .map(UserRow::into_user)
        .transpose()
    }

    /// Touches the users table, so a database without the schema is not "ready".
    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            users::table
                .select(users::id)
                .limit(1)
                .load::<i64>(conn)
                .map(drop)
        })
    }
}
