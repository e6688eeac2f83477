//! The state store on SQLite: the state conformance suite, in the users table's database and in
//! a state-only file, and the state migrations (applied only on request, once, never touching
//! the users table, refusing a newer schema).

use std::sync::Arc;

use authura_backend_sqlite::{SqliteStateStore, SqliteStore};
use authura_core::{SessionStore, StoreError, UserStore};

use crate::sqlite::TempDb;

/// The suite on the state tables beside the users table, sharing its pool.
mod beside_users {
    use super::*;

    authura_testkit::state_conformance_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let users = SqliteStore::open(dir.path().join("users.db"), 4)
            .await
            .unwrap();
        let state = users.state().await.unwrap();
        (Arc::new(state) as Arc<dyn SessionStore>, (users, dir))
    });
}

/// The suite on a state-only file (`STATE_DSN=sqlite:…`).
mod state_only {
    use super::*;

    authura_testkit::state_conformance_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let state = SqliteStateStore::open(dir.path().join("state.db"), 4)
            .await
            .unwrap();
        (Arc::new(state) as Arc<dyn SessionStore>, dir)
    });
}

/// The permit store's suite, beside the users table and in a state-only file.
mod permits {
    use super::*;
    use authura_core::state::PermitStore;

    mod beside_users {
        use super::*;

        authura_testkit::permit_conformance_tests!(async {
            let dir = tempfile::tempdir().unwrap();
            let users = SqliteStore::open(dir.path().join("users.db"), 4)
                .await
                .unwrap();
            let state = users.state().await.unwrap();
            (Arc::new(state) as Arc<dyn PermitStore>, (users, dir))
        });
    }

    mod state_only {
        use super::*;

        authura_testkit::permit_conformance_tests!(async {
            let dir = tempfile::tempdir().unwrap();
            let state = SqliteStateStore::open(dir.path().join("state.db"), 4)
                .await
                .unwrap();
            (Arc::new(state) as Arc<dyn PermitStore>, dir)
        });
    }
}

/// The policy stores' suite (account state, history, audit), beside the users table and in a
/// state-only file.
mod policy {
    use super::*;
    use authura_core::state::PolicyStore;

    mod beside_users {
        use super::*;

        authura_testkit::policy_conformance_tests!(async {
            let dir = tempfile::tempdir().unwrap();
            let users = SqliteStore::open(dir.path().join("users.db"), 4)
                .await
                .unwrap();
            let state = users.state().await.unwrap();
            (Arc::new(state) as Arc<dyn PolicyStore>, (users, dir))
        });
    }

    mod state_only {
        use super::*;

        authura_testkit::policy_conformance_tests!(async {
            let dir = tempfile::tempdir().unwrap();
            let state = SqliteStateStore::open(dir.path().join("state.db"), 4)
                .await
                .unwrap();
            (Arc::new(state) as Arc<dyn PolicyStore>, dir)
        });
    }
}

/// The OAuth link store's suite, beside the users table and in a state-only file.
mod oauth_links {
    use super::*;
    use authura_core::state::OAuthLinkStore;

    mod beside_users {
        use super::*;

        authura_testkit::oauth_link_conformance_tests!(async {
            let dir = tempfile::tempdir().unwrap();
            let users = SqliteStore::open(dir.path().join("users.db"), 4)
                .await
                .unwrap();
            let state = users.state().await.unwrap();
            (Arc::new(state) as Arc<dyn OAuthLinkStore>, (users, dir))
        });
    }

    mod state_only {
        use super::*;

        authura_testkit::oauth_link_conformance_tests!(async {
            let dir = tempfile::tempdir().unwrap();
            let state = SqliteStateStore::open(dir.path().join("state.db"), 4)
                .await
                .unwrap();
            (Arc::new(state) as Arc<dyn OAuthLinkStore>, dir)
        });
    }
}

const STATE_TABLE: &str = "SELECT count(*) AS n FROM sqlite_master WHERE name = 'authura_sessions'";

/// Opening the users store creates no state table; asking for the state store creates it, once,
/// leaves the users table's definition as it was, and the users store still opens after it.
#[tokio::test]
async fn state_tables_appear_only_on_request_and_leave_users_alone() {
    let db = TempDb::new();
    let users = SqliteStore::open(&db.path, 2).await.unwrap();
    assert_eq!(db.count(STATE_TABLE), 0);
    let users_sql = users_table_sql(&db);
    let before = db.migrations();

    let opens = (0..4).map(|_| users.state());
    for state in futures_util::future::join_all(opens).await {
        state.unwrap();
    }
    assert_eq!(db.count(STATE_TABLE), 1);
    assert_eq!(users_table_sql(&db), users_sql);
    let after = db.migrations();
    // Every state migration, once.
    let state_migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/state_migrations"))
            .unwrap()
            .count();
    assert_eq!(
        after.len(),
        before.len() + state_migrations,
        "recorded {after:?}"
    );
    drop(users.state().await.unwrap());
    drop(users);

    let users = SqliteStore::open(&db.path, 2).await.unwrap();
    users.ping().await.unwrap();
    drop(users.state().await.unwrap());
    assert_eq!(db.migrations(), after);
}

/// A state-only file holds the state table and no users table.
#[tokio::test]
async fn a_state_only_file_has_no_users_table() {
    let db = TempDb::new();
    drop(SqliteStateStore::open(&db.path, 1).await.unwrap());
    assert_eq!(db.count(STATE_TABLE), 1);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM sqlite_master WHERE name = 'users'"),
        0
    );
}

/// A database with a migration this build does not know is refused by the state store as by
/// the users store.
#[tokio::test]
async fn a_newer_state_schema_is_refused() {
    let db = TempDb::new();
    drop(SqliteStateStore::open(&db.path, 1).await.unwrap());
    db.sql("INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231235959');");
    for err in [
        SqliteStateStore::open(&db.path, 1).await.unwrap_err(),
        SqliteStore::open(&db.path, 1).await.unwrap_err(),
    ] {
        let StoreError::Backend(message) = err else {
            panic!("expected Backend, got {err:?}")
        };
        assert!(
            message.starts_with("database schema is newer than this build: "),
            "{message}"
        );
    }
}

/// A zero pool is refused before the file is touched.
#[tokio::test]
async fn a_zero_state_pool_is_refused() {
    let db = TempDb::new();
    let err = SqliteStateStore::open(&db.path, 0).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(!db.path.exists());
}

fn users_table_sql(db: &TempDb) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Sql {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }
    diesel::sql_query(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'users' AND sql IS NOT NULL ORDER BY name",
    )
    .load::<Sql>(&mut db.connect())
    .unwrap()
    .into_iter()
    .map(|r| r.sql)
    .collect()
}
