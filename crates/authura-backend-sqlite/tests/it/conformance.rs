//! The `UserStore` conformance suite on `SqliteStore`, one temporary database file per case.

use std::sync::Arc;

use authura_backend_sqlite::SqliteStore;
use authura_core::UserStore;

authura_testkit::conformance_tests!(async {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("users.db"), 4)
        .await
        .unwrap();
    (Arc::new(store) as Arc<dyn UserStore>, dir)
});
