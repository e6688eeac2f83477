//! SQLite-specific behaviour: opening databases an operator already has, the migration record,
//! refusing newer schemas and duplicate rows, unopenable files, and `delete`.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use authura_backend_sqlite::SqliteStore;
use authura_core::types::{Email, NewUser, PasswordHash, Role, TenantId, UserChanges, UserId};
use authura_core::{StoreError, UserStore};

/// The seed's table as an operator may have it: no unique index, plus a column of their own.
const SEED_TABLE: &str = "CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    tenant_id TEXT,
    verified_at TEXT,
    nickname TEXT
);";

#[tokio::test]
async fn existing_table_with_an_extra_column_is_used_without_loss() {
    let db = TempDb::new();
    db.sql(SEED_TABLE);
    db.sql(
        "INSERT INTO users (email, role, password, tenant_id, verified_at, nickname)
         VALUES ('Old.User@Example.com', 'admin', '$2b$10$legacy', NULL,
                 '2024-05-01T10:00:00.25+02:00', 'oldie');",
    );

    let store = SqliteStore::open(&db.path, 2).await.unwrap();

    // The operator's mixed-case row is found, its time converted to UTC.
    let old = store
        .find_by_email(None, &email("old.user@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.id, UserId::Int(1));
    assert_eq!(old.email.as_str(), "old.user@example.com");
    assert_eq!(old.role.as_str(), "admin");
    assert_eq!(old.password_hash, PasswordHash::new("$2b$10$legacy"));
    assert_eq!(
        old.verified_at,
        Some(
            Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap()
                + chrono::Duration::milliseconds(250)
        )
    );

    // The unique index now covers it: the same address in another spelling is taken.
    let clash = store.create(new_user("OLD.USER@example.com", None)).await;
    assert!(matches!(clash, Err(StoreError::Conflict)), "got {clash:?}");

    // Updating and creating leave the unknown column alone.
    let change = UserChanges {
        role: Some(Role::parse("user").unwrap()),
        ..UserChanges::default()
    };
    store.update(None, &old.id, change).await.unwrap();
    let created = store
        .create(new_user("new@example.com", None))
        .await
        .unwrap();
    assert_eq!(created.id, UserId::Int(2));

    let rows = db.rows();
    assert_eq!(
        rows,
        vec![
            Row::new(1, "Old.User@Example.com", "user", Some("oldie")),
            Row::new(2, "new@example.com", "user", None),
        ]
    );
}

#[tokio::test]
async fn reopening_runs_no_migration_twice() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.path, 2).await.unwrap();
    let user = store
        .create(new_user("keep@example.com", Some("acme")))
        .await
        .unwrap();
    let recorded = db.migrations();
    // The users table's two migrations: the table, and its (tenant_id, id) index.
    assert_eq!(recorded.len(), 2, "recorded {recorded:?}");
    drop(store);

    for _ in 0..2 {
        let store = SqliteStore::open(&db.path, 2).await.unwrap();
        let found = store
            .find_by_id(Some(&tenant("acme")), &user.id)
            .await
            .unwrap();
        assert_eq!(found, Some(user.clone()));
    }
    assert_eq!(db.migrations(), recorded);
}

#[tokio::test]
async fn concurrent_opens_of_one_file_migrate_once() {
    let db = TempDb::new();
    let opens = (0..4).map(|_| SqliteStore::open(&db.path, 2));
    for store in futures_util::future::join_all(opens).await {
        store.unwrap().ping().await.unwrap();
    }
    assert_eq!(db.migrations().len(), 2);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = TempDb::new();
    drop(SqliteStore::open(&db.path, 1).await.unwrap());
    db.sql("INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231235959');");

    let err = SqliteStore::open(&db.path, 1).await.unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    assert!(
        message.starts_with("database schema is newer than this build: "),
        "{message}"
    );
    assert!(message.contains("99991231235959"), "{message}");
}

#[tokio::test]
async fn duplicates_in_an_existing_table_are_reported_and_kept() {
    let db = TempDb::new();
    db.sql(SEED_TABLE);
    db.sql(
        "INSERT INTO users (email, role, password, tenant_id) VALUES
            ('dup@example.com', 'user', '$argon2id$secret-one', NULL),
            ('DUP@example.com', 'user', '$argon2id$secret-two', NULL),
            ('dup@example.com', 'user', '$argon2id$secret-three', 'acme');",
    );

    let err = SqliteStore::open(&db.path, 1).await.unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    assert!(message.contains("users_email_tenant_key"), "{message}");
    assert!(
        message.contains("1 (email, tenant) pairs that occur more than once"),
        "{message}"
    );
    assert!(
        !message.contains("secret"),
        "a password hash leaked: {message}"
    );

    assert_eq!(db.rows().len(), 3);
    assert_eq!(db.migrations(), Vec::<String>::new());
    let indexes =
        db.count("SELECT count(*) AS n FROM sqlite_master WHERE name = 'users_email_tenant_key'");
    assert_eq!(indexes, 0);

    // Once the operator resolves the duplicate, the store opens.
    db.sql("DELETE FROM users WHERE email = 'DUP@example.com';");
    let store = SqliteStore::open(&db.path, 1).await.unwrap();
    assert!(
        store
            .find_by_email(None, &email("dup@example.com"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn an_unopenable_file_is_unavailable() {
    let db = TempDb::new();
    let path = db.path.join("no-such-directory").join("users.db");
    let err = SqliteStore::open(&path, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "got {err:?}");
}

#[tokio::test]
async fn a_database_locked_past_the_busy_timeout_is_unavailable() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.path, 1).await.unwrap();
    // Another writer holds the write lock for longer than the 5 s busy timeout; reads go on (WAL).
    let mut writer = db.connect();
    writer.batch_execute("BEGIN IMMEDIATE;").unwrap();

    let err = store
        .create(new_user("late@example.com", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "got {err:?}");
    store
        .find_by_email(None, &email("late@example.com"))
        .await
        .unwrap();

    writer.batch_execute("ROLLBACK;").unwrap();
    store
        .create(new_user("late@example.com", None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_zero_pool_is_refused() {
    let db = TempDb::new();
    let err = SqliteStore::open(&db.path, 0).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "got {err:?}");
}

#[tokio::test]
async fn open_creates_the_file_in_wal_mode() {
    let db = TempDb::new();
    assert!(!db.path.exists());
    let store = SqliteStore::open(&db.path, 1).await.unwrap();
    store.ping().await.unwrap();
    assert!(db.path.exists());
    let mut conn = db.connect();
    let mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result::<JournalMode>(&mut conn)
        .unwrap();
    assert_eq!(mode.journal_mode, "wal");
}

#[tokio::test]
async fn delete_removes_only_the_named_user_in_its_tenant() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.path, 2).await.unwrap();
    let acme = tenant("acme");
    let gone = store
        .create(new_user("gone@example.com", Some("acme")))
        .await
        .unwrap();
    let stays = store
        .create(new_user("stays@example.com", Some("acme")))
        .await
        .unwrap();

    assert!(
        !store.delete(None, &gone.id).await.unwrap(),
        "deleted across tenants"
    );
    assert!(
        !store
            .delete(Some(&tenant("globex")), &gone.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete(Some(&acme), &UserId::Text("not-a-number".into()))
            .await
            .unwrap()
    );
    assert!(store.delete(Some(&acme), &gone.id).await.unwrap());
    assert!(
        !store.delete(Some(&acme), &gone.id).await.unwrap(),
        "deleted twice"
    );

    assert_eq!(store.find_by_id(Some(&acme), &gone.id).await.unwrap(), None);
    assert_eq!(
        store.find_by_id(Some(&acme), &stays.id).await.unwrap(),
        Some(stays)
    );
    // The address is free again.
    store
        .create(new_user("gone@example.com", Some("acme")))
        .await
        .unwrap();
}

#[tokio::test]
async fn numeric_text_ids_name_the_same_user() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.path, 1).await.unwrap();
    let user = store.create(new_user("n@example.com", None)).await.unwrap();
    let text = UserId::Text(user.id.to_string());
    assert_eq!(store.find_by_id(None, &text).await.unwrap(), Some(user));
}

#[tokio::test]
async fn verified_at_is_stored_as_rfc3339_utc_with_microseconds() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.path, 1).await.unwrap();
    let mut new = new_user("t@example.com", None);
    new.verified_at = Some(Utc.timestamp_opt(1_767_225_600, 123_456_000).unwrap());
    store.create(new).await.unwrap();
    let mut conn = db.connect();
    let stored = diesel::sql_query("SELECT verified_at FROM users")
        .get_result::<Verified>(&mut conn)
        .unwrap();
    assert_eq!(
        stored.verified_at.as_deref(),
        Some("2026-01-01T00:00:00.123456+00:00")
    );
}

#[tokio::test]
async fn malformed_rows_are_backend_errors_without_secrets() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.path, 1).await.unwrap();
    db.sql(
        "INSERT INTO users (email, role, password, verified_at)
         VALUES ('bad@example.com', 'user', '$argon2id$very-secret', 'last tuesday');",
    );
    let err = store
        .find_by_email(None, &email("bad@example.com"))
        .await
        .unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    assert!(message.contains("verified_at"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

// Helpers.

/// A database path in its own temporary directory, plus a plain diesel connection to look at
/// the file the way an operator would.
pub(crate) struct TempDb {
    pub(crate) path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TempDb {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        TempDb {
            path: dir.path().join("users.db"),
            _dir: dir,
        }
    }

    pub(crate) fn connect(&self) -> SqliteConnection {
        let mut conn = SqliteConnection::establish(path_str(&self.path)).unwrap();
        conn.batch_execute("PRAGMA busy_timeout = 5000;").unwrap();
        conn
    }

    pub(crate) fn sql(&self, sql: &str) {
        self.connect().batch_execute(sql).unwrap();
    }

    fn rows(&self) -> Vec<Row> {
        diesel::sql_query("SELECT id, email, role, nickname FROM users ORDER BY id")
            .load(&mut self.connect())
            .or_else(|_| {
                diesel::sql_query("SELECT id, email, role, NULL AS nickname FROM users ORDER BY id")
                    .load(&mut self.connect())
            })
            .unwrap()
    }

    pub(crate) fn migrations(&self) -> Vec<String> {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version")
            .load::<Version>(&mut self.connect())
            .map(|rows| rows.into_iter().map(|r| r.version).collect())
            .unwrap_or_default()
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        diesel::sql_query(sql)
            .get_result::<Count>(&mut self.connect())
            .unwrap()
            .n
    }
}

/// Reads run on a connection per thread and per store: two stores on one thread read their own
/// files, a write is seen by the next read on every thread, and a dropped store's read
/// connections are closed, on this thread at once and on another at its next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_connections_are_per_thread_and_closed_with_their_store() {
    let (a, b) = (TempDb::new(), TempDb::new());
    let store_a = SqliteStore::open(&a.path, 1).await.unwrap();
    let store_b = SqliteStore::open(&b.path, 1).await.unwrap();
    let ann = store_a
        .create(new_user("ann@example.com", None))
        .await
        .unwrap();
    store_b
        .create(new_user("bob@example.com", None))
        .await
        .unwrap();
    let find = |s: &SqliteStore, address: &str| {
        let s = s.clone();
        let address = address.to_owned();
        async move { s.find_by_email(None, &email(&address)).await.unwrap() }
    };
    assert!(find(&store_a, "ann@example.com").await.is_some());
    assert!(find(&store_a, "bob@example.com").await.is_none());
    assert!(find(&store_b, "bob@example.com").await.is_some());
    assert!(find(&store_b, "ann@example.com").await.is_none());

    // Another thread reads through store A (given a handle for each read, which it drops), then
    // sees a change made after its first read.
    let (tx, rx) = std::sync::mpsc::channel::<Option<SqliteStore>>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Option<String>>();
    let b_path = b.path.clone();
    let other = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        while let Ok(store) = rx.recv() {
            let answer = rt.block_on(async {
                match store {
                    Some(a) => a
                        .find_by_id(None, &UserId::from_subject("1"))
                        .await
                        .unwrap()
                        .map(|u| u.role.as_str().to_owned()),
                    // Any read through another store sweeps the dropped ones.
                    None => {
                        let b = SqliteStore::open(&b_path, 1).await.unwrap();
                        b.ping().await.unwrap();
                        None
                    }
                }
            });
            done_tx.send(answer).unwrap();
        }
    });
    tx.send(Some(store_a.clone())).unwrap();
    assert_eq!(done_rx.recv().unwrap().as_deref(), Some("user"));
    let changes = UserChanges {
        role: Some(Role::parse("admin").unwrap()),
        ..UserChanges::default()
    };
    store_a.update(None, &ann.id, changes).await.unwrap();
    tx.send(Some(store_a.clone())).unwrap();
    assert_eq!(done_rx.recv().unwrap().as_deref(), Some("admin"));
    assert!(open_fds(&a.path) >= 2, "this thread's and the other's");

    // Dropped: this thread's connection closes with it, the other thread's at its next read.
    drop(store_a);
    tx.send(None).unwrap();
    done_rx.recv().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while open_fds(&a.path) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} descriptors of a dropped store's database still open",
            open_fds(&a.path)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(tx);
    other.join().unwrap();
}

/// How many of this process's file descriptors are open on `db` (its WAL and shm included).
fn open_fds(db: &Path) -> usize {
    let db = std::fs::canonicalize(db).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            target
                .to_str()
                .is_some_and(|t| t.starts_with(db.to_str().unwrap()))
        })
        .count()
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[derive(Debug, PartialEq, QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Nullable<Text>)]
    nickname: Option<String>,
}

impl Row {
    fn new(id: i64, email: &str, role: &str, nickname: Option<&str>) -> Self {
        Row {
            id,
            email: email.into(),
            role: role.into(),
            nickname: nickname.map(Into::into),
        }
    }
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

#[derive(QueryableByName)]
struct Verified {
    #[diesel(sql_type = Nullable<Text>)]
    verified_at: Option<String>,
}

fn new_user(address: &str, tenant_id: Option<&str>) -> NewUser {
    NewUser {
        email: email(address),
        role: Role::parse("user").unwrap(),
        tenant: tenant_id.map(tenant),
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$test"),
        verified_at: None,
    }
}

fn email(address: &str) -> Email {
    Email::parse(address).unwrap()
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}
