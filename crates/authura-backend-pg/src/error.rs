//! Translation of diesel, tokio-postgres and pool errors into the store's domain errors.

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::PoolError;
use tokio_postgres::error::SqlState;

use authura_core::StoreError;

/// A failed query. PostgreSQL's messages name constraints and columns; a unique violation's
/// detail (which repeats the key, an email) is never used.
pub(crate) fn query(err: DieselError) -> StoreError {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Conflict,
        // diesel-async's name for an error without an SQLSTATE: the connection broke (reset,
        // closed, the server went away).
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
            StoreError::Unavailable(format!("lost the connection: {}", info.message()))
        }
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            StoreError::Unavailable(format!("lost the connection: {}", info.message()))
        }
        DieselError::DatabaseError(_, info) if is_unavailable(info.message()) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

/// A connection that could not be opened: the database is unavailable, unless the failure is
/// one that waiting will not fix (see [`open_failed`]).
pub(crate) fn connection(err: ConnectionError) -> StoreError {
    match err {
        ConnectionError::InvalidConnectionUrl(message) => StoreError::Backend(message),
        ConnectionError::CouldntSetupConfiguration(err) => match query(err) {
            StoreError::Backend(message) => {
                StoreError::Backend(format!("cannot configure the connection: {message}"))
            }
            other => other,
        },
        other => StoreError::Unavailable(format!("cannot connect to PostgreSQL: {other}")),
    }
}

/// A connection that could not be taken from the pool.
pub(crate) fn pool(err: PoolError) -> StoreError {
    match err {
        PoolError::Timeout(_) => {
            StoreError::Unavailable("timed out waiting for a database connection".to_owned())
        }
        PoolError::Backend(ManagerError::ConnectionError(err)) => connection(err),
        PoolError::Backend(ManagerError::QueryError(err)) => match query(err) {
            // The pool's health check failed: the connection is gone.
            StoreError::Backend(message) => StoreError::Unavailable(message),
            other => other,
        },
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".to_owned()),
        PoolError::PostCreateHook(err) => StoreError::Unavailable(err.to_string()),
        PoolError::NoRuntimeSpecified => {
            StoreError::Backend("the connection pool has no runtime for its timeouts".to_owned())
        }
    }
}

/// tokio-postgres's error when opening a connection, as diesel's: a wrong password, an
/// unknown database or role, or a TLS certificate that is not trusted will not go away by
/// waiting (`InvalidConnectionUrl`, reported as `Backend`); anything else (refused, timed out,
/// the server starting up or shutting down, too many clients) is `BadConnection`.
pub(crate) fn open_failed(err: &tokio_postgres::Error) -> ConnectionError {
    let permanent = err.code().is_some_and(|code| {
        code.code().starts_with("28")
            || [
                SqlState::INVALID_CATALOG_NAME,
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                SqlState::INVALID_PASSWORD,
            ]
            .contains(code)
    }) || is_certificate_error(err);
    let message = format!("cannot connect to PostgreSQL: {}", describe(err));
    if permanent {
        ConnectionError::InvalidConnectionUrl(message)
    } else {
        ConnectionError::BadConnection(message)
    }
}

/// The error and its causes, which carry the useful part ("connection refused", "invalid
/// peer certificate: UnknownIssuer"). tokio-postgres never puts the password in them.
fn describe(err: &tokio_postgres::Error) -> String {
    authura_core::error::with_causes(err.to_string(), std::error::Error::source(err))
}

fn is_certificate_error(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return matches!(tls, rustls::Error::InvalidCertificate(_));
        }
        source = cause.source();
    }
    false
}

/// Messages of errors that mean "the server is going away or not there yet" (SQLSTATE classes
/// 57P and 08, and too many clients), which diesel-async reports without their code.
fn is_unavailable(message: &str) -> bool {
    [
        "terminating connection",
        "the database system is",
        "server closed the connection",
        "connection to server",
        "sorry, too many clients",
    ]
    .iter()
    .any(|m| message.contains(m))
}
