//! Opening the state store (SPEC §13) from a `STATE_DSN`, for the users backends that have no
//! database of their own (hasura, http, ldap). Not wired into `Config` yet: `STATE_DSN` stays
//! refused until a stateful feature exists.

use std::sync::Arc;
use std::time::Duration;

use authura_backend_pg::{PgStateSettings, PgStateStore};
use authura_backend_sqlite::SqliteStateStore;
use authura_core::state::StateDsn;
use authura_core::{SessionStore, StoreError};

/// How to open a `STATE_DSN`'s store beyond the DSN itself.
#[derive(Debug, Clone)]
pub struct StateStoreSettings {
    /// Most connections open at once (at least 1).
    pub pool_size: usize,
    /// PEM certificates trusted for PostgreSQL's TLS besides the system's roots
    /// (`EXTRA_CA_FILE`'s contents).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// How long one PostgreSQL statement may wait for an answer.
    pub query_timeout: Duration,
}

/// Opens the state store `dsn` names and applies its state migrations: an SQLite file (created
/// if missing, holding no users table) or a PostgreSQL database, through the same openers, pool
/// and TLS settings as the users backends.
///
/// # Errors
/// `Unavailable` when the database cannot be reached; `Backend` for a bad PostgreSQL DSN, a
/// newer state schema, a pool size of 0 or a failed migration.
pub async fn open_state_store(
    dsn: &StateDsn,
    settings: &StateStoreSettings,
) -> Result<Arc<dyn SessionStore>, StoreError> {
    Ok(match dsn {
        StateDsn::Sqlite(path) => Arc::new(SqliteStateStore::open(path, settings.pool_size).await?),
        StateDsn::Postgres(url) => Arc::new(
            PgStateStore::connect(&PgStateSettings {
                dsn: url.clone(),
                pool_size: settings.pool_size,
                extra_ca_pem: settings.extra_ca_pem.clone(),
                query_timeout: settings.query_timeout,
            })
            .await?,
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::{Duration as Days, Utc};
    use uuid::Uuid;

    use authura_core::state::{KeyHash, Session, SessionMethod};
    use authura_core::types::UserId;

    use super::*;

    const SETTINGS: StateStoreSettings = StateStoreSettings {
        pool_size: 2,
        extra_ca_pem: None,
        query_timeout: Duration::from_secs(10),
    };

    /// A session written through one opening of the DSN is read through another.
    async fn check_round_trip(dsn: &str) {
        let dsn = StateDsn::parse(dsn).unwrap();
        let now = Utc::now();
        let session = Session {
            id: Uuid::new_v4(),
            key_hash: KeyHash::of(b"key"),
            user_id: UserId::Int(7),
            tenant: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Days::hours(1),
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            method: SessionMethod::Password,
            generation: 0,
            generation_changed_at: now,
        };
        let first = open_state_store(&dsn, &SETTINGS).await.unwrap();
        first.create_session(session.clone(), 0).await.unwrap();
        drop(first);
        let second = open_state_store(&dsn, &SETTINGS).await.unwrap();
        assert_eq!(
            second.find_session_by_key(&session.key_hash).await.unwrap(),
            Some(session.truncated())
        );
    }

    #[tokio::test]
    async fn a_sqlite_state_dsn_opens_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        check_round_trip(&format!("sqlite:{}", path.display())).await;
    }

    #[tokio::test]
    async fn a_postgres_state_dsn_opens_a_state_database() {
        let db = authura_testkit::postgres::database().await;
        check_round_trip(&db.url).await;
    }

    #[tokio::test]
    async fn an_unreachable_postgres_is_unavailable() {
        let dsn = StateDsn::parse("postgres://authura@127.0.0.1:1/none").unwrap();
        let err = open_state_store(&dsn, &SETTINGS).await.err().unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
