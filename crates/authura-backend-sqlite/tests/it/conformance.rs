//! The `UserStore` conformance suite on `SqliteStore`, one temporary database file per case: on
//! the table the migrations create, and on an existing table with columns Authura does not know.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

use authura_backend_sqlite::SqliteStore;
use authura_core::UserStore;

authura_testkit::conformance_tests!(
    async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("users.db"), 4)
            .await
            .unwrap();
        (Arc::new(store) as Arc<dyn UserStore>, dir)
    },
    extra_columns: async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        SqliteConnection::establish(path.to_str().unwrap())
            .unwrap()
            .batch_execute(
                "CREATE TABLE users (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    email TEXT NOT NULL,
                    role TEXT NOT NULL,
                    password TEXT NOT NULL,
                    tenant_id TEXT,
                    verified_at TEXT,
                    nickname TEXT,
                    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
                );",
            )
            .unwrap();
        let store = SqliteStore::open(&path, 4).await.unwrap();
        (Arc::new(store) as Arc<dyn UserStore>, dir)
    },
);
