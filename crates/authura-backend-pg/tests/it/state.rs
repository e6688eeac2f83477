//! The state store on PostgreSQL: the state conformance suite beside the users table and in a
//! database of its own, and the state migrations (applied only on request, once, in the users
//! table's schema, never touching the users table, refusing a newer schema).

use std::sync::Arc;

use authura_backend_pg::{PgSettings, PgStateSettings, PgStateStore, PgStore, status};
use authura_core::state::{KeyHash, Session, SessionMethod};
use authura_core::types::UserId;
use authura_core::{Secret, SessionStore, StoreError};
use authura_testkit::postgres::{Database, database};

use crate::postgres::{connect, settings};

/// The suite on the state tables beside the users table, sharing its pool.
mod beside_users {
    use super::*;

    authura_testkit::state_conformance_tests!(async {
        let db = database().await;
        let users = users_store(&db, "users").await;
        let state = users.state().await.unwrap();
        (Arc::new(state) as Arc<dyn SessionStore>, (users, db))
    });
}

/// The suite on a database used only for state (`STATE_DSN=postgres://…`).
mod state_only {
    use super::*;

    authura_testkit::state_conformance_tests!(async {
        let db = database().await;
        let state = state_store(&db).await.unwrap();
        (Arc::new(state) as Arc<dyn SessionStore>, db)
    });
}

/// The permit store's suite, beside the users table and in a database of its own.
mod permits {
    use super::*;
    use authura_core::state::PermitStore;

    mod beside_users {
        use super::*;

        authura_testkit::permit_conformance_tests!(async {
            let db = database().await;
            let users = users_store(&db, "users").await;
            let state = users.state().await.unwrap();
            (Arc::new(state) as Arc<dyn PermitStore>, (users, db))
        });
    }

    mod state_only {
        use super::*;

        authura_testkit::permit_conformance_tests!(async {
            let db = database().await;
            let state = state_store(&db).await.unwrap();
            (Arc::new(state) as Arc<dyn PermitStore>, db)
        });
    }
}

/// The policy stores' suite (account state, history, audit), beside the users table and in a
/// database of its own.
mod policy {
    use super::*;
    use authura_core::state::PolicyStore;

    mod beside_users {
        use super::*;

        authura_testkit::policy_conformance_tests!(async {
            let db = database().await;
            let users = users_store(&db, "users").await;
            let state = users.state().await.unwrap();
            (Arc::new(state) as Arc<dyn PolicyStore>, (users, db))
        });
    }

    mod state_only {
        use super::*;

        authura_testkit::policy_conformance_tests!(async {
            let db = database().await;
            let state = state_store(&db).await.unwrap();
            (Arc::new(state) as Arc<dyn PolicyStore>, db)
        });
    }
}

/// The OAuth link store's suite, beside the users table and in a database of its own.
mod oauth_links {
    use super::*;
    use authura_core::state::OAuthLinkStore;

    mod beside_users {
        use super::*;

        authura_testkit::oauth_link_conformance_tests!(async {
            let db = database().await;
            let users = users_store(&db, "users").await;
            let state = users.state().await.unwrap();
            (Arc::new(state) as Arc<dyn OAuthLinkStore>, (users, db))
        });
    }

    mod state_only {
        use super::*;

        authura_testkit::oauth_link_conformance_tests!(async {
            let db = database().await;
            let state = state_store(&db).await.unwrap();
            (Arc::new(state) as Arc<dyn OAuthLinkStore>, db)
        });
    }
}

/// Connecting the users store creates no state table; asking for the state store creates it,
/// once even when asked concurrently, leaves the users table's columns, indexes and migration
/// record as they were, and the users store still connects after it.
#[tokio::test]
async fn state_tables_appear_only_on_request_and_leave_users_alone() {
    let db = database().await;
    let users = users_store(&db, "users").await;
    assert_eq!(sessions_tables(&db, "public").await, 0);
    let shape = users_shape(&db).await;
    let users_migrations = status(&settings(&db, "users")).await.unwrap();

    let opens = (0..4).map(|_| users.state());
    for state in futures_util::future::join_all(opens).await {
        state.unwrap();
    }
    assert_eq!(sessions_tables(&db, "public").await, 1);
    assert_eq!(users_shape(&db).await, shape);
    assert_eq!(
        status(&settings(&db, "users")).await.unwrap(),
        users_migrations
    );
    // Every state migration, once.
    assert_eq!(
        db.number(
            "SELECT count(*) FROM authura_schema_migrations WHERE users_table = 'authura_state'"
        )
        .await,
        state_migrations()
    );
    drop(users.state().await.unwrap());
    drop(state_store(&db).await.unwrap());
    drop(users);
    drop(users_store(&db, "users").await);
    // The users table's three and every state migration.
    assert_eq!(
        db.number("SELECT count(*) FROM authura_schema_migrations")
            .await,
        3 + state_migrations()
    );
}

/// How many state migrations this build has.
fn state_migrations() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/state_migrations"))
        .unwrap()
        .count() as i64
}

/// A users table in another schema gets its state tables in that schema.
#[tokio::test]
async fn state_tables_follow_the_users_tables_schema() {
    let db = database().await;
    db.execute("CREATE SCHEMA auth").await;
    let users = users_store(&db, "auth.accounts").await;
    let state = users.state().await.unwrap();
    assert_eq!(sessions_tables(&db, "auth").await, 1);
    assert_eq!(sessions_tables(&db, "public").await, 0);
    let s = session();
    state.create_session(s.clone(), 0).await.unwrap();
    assert_eq!(
        db.number("SELECT count(*) FROM auth.authura_sessions")
            .await,
        1
    );
    assert_eq!(state.find_session(s.id).await.unwrap(), Some(s.truncated()));
}

/// A database with a state migration this build does not know is refused, by both openers;
/// the users store, whose own record is untouched, still connects.
#[tokio::test]
async fn a_newer_state_schema_is_refused() {
    let db = database().await;
    let users = users_store(&db, "users").await;
    drop(users.state().await.unwrap());
    db.execute(
        "INSERT INTO authura_schema_migrations (users_table, version, name) \
         VALUES ('authura_state', 9999, 'from_the_future')",
    )
    .await;
    for err in [
        users.state().await.unwrap_err(),
        state_store(&db).await.unwrap_err(),
    ] {
        let StoreError::Backend(message) = err else {
            panic!("expected Backend, got {err:?}")
        };
        assert!(
            message.starts_with(
                "database schema is newer than this build: the state tables have migrations "
            ),
            "{message}"
        );
        assert!(message.contains("9999_from_the_future"), "{message}");
    }
    drop(users_store(&db, "users").await);
}

/// The key is never stored: a session row holds the 32-byte hash, and no column holds the
/// key's text.
#[tokio::test]
async fn only_the_keys_hash_is_stored() {
    let db = database().await;
    let state = state_store(&db).await.unwrap();
    let key = "k3y-0f-43-characters-base64url-xxxxxxxxxxxx";
    let mut s = session();
    s.key_hash = KeyHash::of(key.as_bytes());
    state.create_session(s, 0).await.unwrap();
    assert_eq!(
        db.number("SELECT octet_length(key_hash) FROM authura_sessions")
            .await,
        32
    );
    assert_eq!(
        db.number(&format!(
            "SELECT count(*) FROM authura_sessions AS s \
             WHERE position('{key}' IN s::text) > 0 \
             OR position(convert_to('{key}', 'UTF8') IN key_hash) > 0"
        ))
        .await,
        0
    );
}

/// A zero pool is refused.
#[tokio::test]
async fn a_zero_state_pool_is_refused() {
    let db = database().await;
    let err = PgStateStore::connect(&PgStateSettings {
        pool_size: 0,
        ..state_settings(&db)
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

// Helpers.

fn state_settings(db: &Database) -> PgStateSettings {
    PgStateSettings {
        dsn: Secret::new(db.url.clone()),
        pool_size: 8,
        extra_ca_pem: None,
        query_timeout: PgSettings::DEFAULT_QUERY_TIMEOUT,
    }
}

async fn users_store(db: &Database, table: &str) -> PgStore {
    connect(db, table).await.unwrap()
}

async fn state_store(db: &Database) -> Result<PgStateStore, StoreError> {
    PgStateStore::connect(&state_settings(db)).await
}

async fn sessions_tables(db: &Database, schema: &str) -> i64 {
    db.number(&format!(
        "SELECT count(*) FROM pg_tables WHERE tablename = 'authura_sessions' \
         AND schemaname = '{schema}'"
    ))
    .await
}

/// The users table's columns and indexes, as the catalog describes them.
async fn users_shape(db: &Database) -> Vec<Vec<Option<String>>> {
    let mut shape = db
        .rows(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
             FROM information_schema.columns WHERE table_name = 'users' ORDER BY column_name",
        )
        .await;
    shape.extend(
        db.rows("SELECT indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY indexname")
            .await,
    );
    shape
}

fn session() -> Session {
    let now = chrono::Utc::now();
    Session {
        id: uuid::Uuid::new_v4(),
        key_hash: KeyHash::of(b"a key"),
        user_id: UserId::Int(1),
        tenant: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::hours(1),
        ip: None,
        user_agent: None,
        method: SessionMethod::Password,
        generation: 0,
        generation_changed_at: now,
    }
}
