//! Translation of diesel, SQLite and pool errors into the store's domain errors.

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::PoolError;

use authura_core::StoreError;

/// A failed query. SQLite's messages name constraints and indexes, never bound values, so no
/// email or password hash ends up in the text.
pub(crate) fn query(err: DieselError) -> StoreError {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Conflict,
        // diesel-async reports a blocking task that could not run (runtime shutting down) so.
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        DieselError::DatabaseError(_, info) if is_unavailable(info.message()) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

/// A connection that could not be opened or configured.
pub(crate) fn connection(err: ConnectionError) -> StoreError {
    match err {
        ConnectionError::CouldntSetupConfiguration(err) => match query(err) {
            StoreError::Backend(message) => {
                StoreError::Backend(format!("cannot configure the connection: {message}"))
            }
            other => other,
        },
        other => StoreError::Unavailable(format!("cannot open the database: {other}")),
    }
}

/// A connection that could not be taken from the pool.
pub(crate) fn pool(err: PoolError) -> StoreError {
    match err {
        PoolError::Timeout(_) => {
            StoreError::Unavailable("timed out waiting for a database connection".to_owned())
        }
        PoolError::Backend(ManagerError::ConnectionError(err)) => connection(err),
        PoolError::Backend(ManagerError::QueryError(err)) => query(err),
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".to_owned()),
        PoolError::PostCreateHook(err) => StoreError::Unavailable(err.to_string()),
        PoolError::NoRuntimeSpecified => {
            StoreError::Backend("the connection pool has no runtime for its timeouts".to_owned())
        }
    }
}

/// SQLite's messages for a database another connection holds locked past the busy timeout
/// (`SQLITE_BUSY`, `SQLITE_LOCKED`), for a file that cannot be opened (`SQLITE_CANTOPEN`), for
/// a full filesystem (`SQLITE_FULL`) and for a failed read or write of the file (`SQLITE_IOERR`):
/// conditions of the host, not of the request, that pass.
fn is_unavailable(message: &str) -> bool {
    [
        "database is locked",
        "database table is locked",
        "unable to open database file",
        "database or disk is full",
        "disk I/O error",
    ]
    .iter()
    .any(|m| message.contains(m))
}
