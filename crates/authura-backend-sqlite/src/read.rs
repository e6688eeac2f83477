//! Reads run inline on the calling thread, each thread on a read connection of its own.
//!
//! A lookup by primary key or by the unique email index takes a few microseconds in SQLite,
//! less than handing the query to a blocking thread and back (two context switches, which were
//! most of `GET /user`'s cost). In WAL mode readers never wait for writers, so an inline read
//! does not stall the async worker; the read connections still get a short busy timeout, so an
//! exclusive lock taken by some other process (a `VACUUM`, a migration) makes a read fail with
//! `Unavailable` quickly instead of blocking a worker for long. Writes, which can wait for the
//! write lock, stay on the blocking pool.
//!
//! Each thread keeps its own connection (the request workers are a fixed set of threads), so
//! no lock is taken to get one and a connection's prepared statements and page cache stay in
//! the cache of the core that uses them. A shared pool made `/refresh` about 8 % slower
//! (docs/PERFORMANCE.md). Every read is still a fresh read transaction: nothing is cached
//! between requests but SQLite's own pages, which it revalidates against the WAL each time.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use diesel::RunQueryDsl;
use diesel::prelude::*;

use authura_core::StoreError;
use authura_core::types::{Email, TenantId, User};

use crate::error;
use crate::schema::{UserRow, lower, users};

/// Settings of a read connection: WAL (already set on the file by migration), a short busy
/// timeout, read-only queries.
const READ_SETUP: &str = "PRAGMA busy_timeout = 250; PRAGMA query_only = ON;";

thread_local! {
    /// This thread's read connections, one per live [`Readers`] it has read through.
    static CONNECTIONS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// One thread's connection for one [`Readers`].
struct Slot {
    readers: u64,
    /// Cleared when the `Readers` is dropped: the slot is then removed at this thread's next read.
    alive: Arc<AtomicBool>,
    /// `None` while a query runs on it.
    conn: Option<SqliteConnection>,
}

/// The read side of one store: per-thread connections to one database file.
pub(crate) struct Readers {
    id: u64,
    path: String,
    alive: Arc<AtomicBool>,
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        // This thread's connection goes at once; other threads' at their next read or exit.
        let _ = CONNECTIONS.try_with(|c| {
            if let Ok(mut slots) = c.try_borrow_mut() {
                slots.retain(|s| s.readers != self.id);
            }
        });
    }
}

impl Readers {
    pub(crate) fn new(path: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Readers {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            path: path.to_owned(),
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Runs `query` on this thread's connection (opening it on the thread's first read).
    fn with<T>(
        &self,
        query: impl FnOnce(&mut SqliteConnection) -> QueryResult<T>,
    ) -> Result<T, StoreError> {
        // Taken out of the slot while the query runs, so that nothing is borrowed across it.
        let taken = CONNECTIONS.with(|c| {
            let mut slots = c.borrow_mut();
            slots.retain(|s| s.alive.load(Ordering::Relaxed));
            slots
                .iter_mut()
                .find(|s| s.readers == self.id)
                .and_then(|s| s.conn.take())
        });
        let mut conn = match taken {
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
            CONNECTIONS.with(|c| {
                let mut slots = c.borrow_mut();
                match slots.iter_mut().find(|s| s.readers == self.id) {
                    Some(slot) => slot.conn = Some(conn),
                    None => slots.push(Slot {
                        readers: self.id,
                        alive: Arc::clone(&self.alive),
                        conn: Some(conn),
                    }),
                }
            });
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
