//! PostgreSQL-specific behaviour: the seed's table as an operator has it (extra columns, mixed
//! case), other table names, the migration record, newer schemas and duplicates refused, TLS
//! modes, losing and regaining the server, and `delete`.

use std::time::Duration;

use chrono::{TimeZone, Utc};

use authura_backend_pg::{MigrationState, PgSettings, PgStore, UsersTable, status};
use authura_core::types::{Email, NewUser, PasswordHash, Role, TenantId, UserChanges, UserId};
use authura_core::{Secret, StoreError, UserStore};
use authura_testkit::postgres::{Cluster, Database, database};

/// The seed's schema, verbatim from the Go Authura's README: SERIAL id, VARCHAR columns, and a
/// unique index that lets NULL-tenant rows share an email.
const SEED_TABLE: &str = r#"CREATE TABLE "public"."users" (
"id" SERIAL NOT NULL PRIMARY KEY,
"email" VARCHAR NOT NULL,
"role" VARCHAR NOT NULL,
"password" VARCHAR NOT NULL,
"tenant_id" VARCHAR,
"verified_at" TIMESTAMP WITH TIME ZONE
);
CREATE UNIQUE INDEX ON "public"."users" ("email", "tenant_id");"#;

#[tokio::test]
async fn the_seed_table_with_extra_columns_is_used_without_loss() {
    let db = database().await;
    db.execute(SEED_TABLE).await;
    db.execute(
        "ALTER TABLE users ADD COLUMN nickname TEXT, \
         ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();
         INSERT INTO users (email, role, password, tenant_id, verified_at, nickname)
         VALUES ('Old.User@Example.com', 'admin', '$2b$10$legacy', NULL,
                 '2024-05-01T10:00:00.25+02:00', 'oldie');",
    )
    .await;

    let store = connect(&db, "users").await.unwrap();

    // The operator's mixed-case row is found, its time in UTC.
    let old = store
        .find_by_email(None, &email("old.user@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.id, UserId::Int(1));
    assert_eq!(old.email.as_str(), "old.user@example.com");
    assert_eq!(old.password_hash, PasswordHash::new("$2b$10$legacy"));
    assert_eq!(
        old.verified_at,
        Some(
            Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap()
                + chrono::Duration::milliseconds(250)
        )
    );

    // The new index covers it, whatever the spelling, also without a tenant.
    let clash = store.create(new_user("OLD.USER@example.com", None)).await;
    assert!(matches!(clash, Err(StoreError::Conflict)), "got {clash:?}");

    // Updating and creating leave the unknown columns alone.
    let change = UserChanges {
        role: Some(Role::parse("user").unwrap()),
        ..UserChanges::default()
    };
    store.update(None, &old.id, change).await.unwrap();
    let created = store
        .create(new_user("new@example.com", None))
        .await
        .unwrap();
    // A failed insert used up a sequence value, as in PostgreSQL it does.
    assert_eq!(created.id, UserId::Int(3));
    assert_eq!(
        db.rows(
            "SELECT id::text, email, role, nickname, (created_at IS NOT NULL)::text \
             FROM users ORDER BY id"
        )
        .await,
        vec![
            row(&["1", "Old.User@Example.com", "user", "oldie", "true"]),
            vec![
                Some("3".into()),
                Some("new@example.com".into()),
                Some("user".into()),
                None,
                Some("true".into())
            ],
        ]
    );
    // The seed's own index is kept; ours (the unique one, and the listing's (tenant, id)) are
    // added beside it.
    assert_eq!(
        db.number("SELECT count(*) FROM pg_indexes WHERE tablename = 'users'")
            .await,
        4
    );
}

#[tokio::test]
async fn a_table_authura_cannot_insert_into_is_refused_clearly() {
    let db = database().await;
    db.execute(SEED_TABLE).await;
    db.execute("ALTER TABLE users ADD COLUMN department TEXT NOT NULL")
        .await;
    let err = connect(&db, "users").await.unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    assert!(
        message.contains("column department is NOT NULL without a default"),
        "{message}"
    );

    let db = database().await;
    db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL)")
        .await;
    let err = connect(&db, "users").await.unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    for part in [
        "column id is text, expected smallint or integer or bigint",
        "it has no column role",
        "it has no column verified_at",
    ] {
        assert!(message.contains(part), "{message}");
    }
}

#[tokio::test]
async fn another_table_in_another_schema_is_separate() {
    let db = database().await;
    db.execute("CREATE SCHEMA auth").await;
    let accounts = connect(&db, "auth.accounts").await.unwrap();
    let users = connect(&db, "users").await.unwrap();
    let a = accounts
        .create(new_user("same@example.com", None))
        .await
        .unwrap();
    let u = users
        .create(new_user("same@example.com", None))
        .await
        .unwrap();
    assert_eq!(
        (a.id.clone(), u.id.clone()),
        (UserId::Int(1), UserId::Int(1))
    );
    assert!(accounts.delete(None, &a.id).await.unwrap());
    assert_eq!(users.find_by_id(None, &u.id).await.unwrap(), Some(u));
    assert_eq!(
        db.number("SELECT count(*) FROM auth.authura_schema_migrations WHERE users_table = 'auth.accounts'")
            .await,
        3
    );
    assert_eq!(
        db.number("SELECT count(*) FROM pg_indexes WHERE indexname = 'accounts_email_tenant_key' AND schemaname = 'auth'")
            .await,
        1
    );
}

#[tokio::test]
async fn migrations_are_recorded_once_and_reported() {
    let db = database().await;
    let before = status(&settings(&db, "users")).await.unwrap();
    assert_eq!(
        before,
        vec![
            state(1, "create_users", false),
            state(2, "unique_email_tenant", false),
            state(3, "tenant_id_index", false)
        ]
    );
    let store = connect(&db, "users").await.unwrap();
    let user = store
        .create(new_user("keep@example.com", Some("acme")))
        .await
        .unwrap();
    drop(store);

    // Reconnecting, also several at once, applies nothing again.
    let opens = (0..4).map(|_| connect(&db, "users"));
    for store in futures_util::future::join_all(opens).await {
        let store = store.unwrap();
        assert_eq!(
            store
                .find_by_id(Some(&tenant("acme")), &user.id)
                .await
                .unwrap(),
            Some(user.clone())
        );
    }
    assert_eq!(
        db.number("SELECT count(*) FROM authura_schema_migrations")
            .await,
        3
    );
    let after = status(&settings(&db, "users")).await.unwrap();
    assert_eq!(
        after,
        vec![
            state(1, "create_users", true),
            state(2, "unique_email_tenant", true),
            state(3, "tenant_id_index", true)
        ]
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = database().await;
    drop(connect(&db, "users").await.unwrap());
    db.execute(
        "INSERT INTO authura_schema_migrations (users_table, version, name) \
         VALUES ('users', 9999, 'from_the_future')",
    )
    .await;
    let err = connect(&db, "users").await.unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    assert!(
        message.starts_with("database schema is newer than this build: "),
        "{message}"
    );
    assert!(message.contains("9999_from_the_future"), "{message}");
    let states = status(&settings(&db, "users")).await.unwrap();
    assert_eq!(
        states.last(),
        Some(&MigrationState {
            version: 9999,
            name: "from_the_future".into(),
            applied: true,
            known: false,
        })
    );
}

#[tokio::test]
async fn duplicates_in_an_existing_table_are_reported_and_kept() {
    let db = database().await;
    db.execute(SEED_TABLE).await;
    // The seed's index allows all three: two differ in case, and NULLs are distinct.
    db.execute(
        "INSERT INTO users (email, role, password, tenant_id) VALUES
            ('dup@example.com', 'user', '$argon2id$secret-one', NULL),
            ('dup@example.com', 'user', '$argon2id$secret-two', NULL),
            ('DUP@example.com', 'user', '$argon2id$secret-three', 'acme'),
            ('dup@example.com', 'user', '$argon2id$secret-four', 'acme');",
    )
    .await;

    let err = connect(&db, "users").await.unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    assert!(
        message.contains("cannot apply migration 0002_unique_email_tenant"),
        "{message}"
    );
    assert!(
        message.contains("has 2 (email, tenant) pairs that occur more than once"),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
    assert!(!message.contains("dup@"), "an address leaked: {message}");

    // Nothing changed: the rows, no new index, no record of either migration.
    assert_eq!(db.number("SELECT count(*) FROM users").await, 4);
    assert_eq!(
        db.number("SELECT count(*) FROM pg_indexes WHERE indexname = 'users_email_tenant_key'")
            .await,
        0
    );
    assert_eq!(
        db.number("SELECT count(*) FROM pg_tables WHERE tablename = 'authura_schema_migrations'")
            .await,
        0
    );

    // Once the operator resolves them, it connects.
    db.execute("DELETE FROM users WHERE password LIKE '%two' OR password LIKE '%four'")
        .await;
    let store = connect(&db, "users").await.unwrap();
    assert!(
        store
            .find_by_email(Some(&tenant("acme")), &email("dup@example.com"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn delete_removes_only_the_named_user_in_its_tenant() {
    let db = database().await;
    let store = connect(&db, "users").await.unwrap();
    let acme = tenant("acme");
    let gone = store
        .create(new_user("gone@example.com", Some("acme")))
        .await
        .unwrap();
    let stays = store
        .create(new_user("stays@example.com", Some("acme")))
        .await
        .unwrap();
    assert!(!store.delete(None, &gone.id).await.unwrap());
    assert!(
        !store
            .delete(Some(&tenant("globex")), &gone.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete(Some(&acme), &UserId::Text("x".into()))
            .await
            .unwrap()
    );
    assert!(store.delete(Some(&acme), &gone.id).await.unwrap());
    assert!(!store.delete(Some(&acme), &gone.id).await.unwrap());
    assert_eq!(store.find_by_id(Some(&acme), &gone.id).await.unwrap(), None);
    assert_eq!(
        store.find_by_id(Some(&acme), &stays.id).await.unwrap(),
        Some(stays)
    );
    store
        .create(new_user("gone@example.com", Some("acme")))
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_rows_are_backend_errors_without_secrets() {
    let db = database().await;
    let store = connect(&db, "users").await.unwrap();
    db.execute(
        "INSERT INTO users (email, role, password) \
         VALUES ('not an address', 'user', '$argon2id$very-secret')",
    )
    .await;
    let err = store.find_by_id(None, &UserId::Int(1)).await.unwrap_err();
    let StoreError::Backend(message) = err else {
        panic!("expected Backend, got {err:?}")
    };
    assert!(message.contains("email"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn what_waiting_cannot_fix_is_a_backend_error_and_the_rest_unavailable() {
    let db = database().await;
    let zero = PgStore::connect(&PgSettings {
        pool_size: 0,
        ..settings(&db, "users")
    })
    .await;
    assert!(matches!(zero, Err(StoreError::Backend(_))), "{zero:?}");

    let missing_db = db.url.replace("authura_test_", "no_such_db_");
    let err = connect_url(&missing_db, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = connect_url(&format!("postgres://postgres@127.0.0.1:{port}/x"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// Stopping the server under a connected store makes every call `Unavailable` (never a hang,
/// never a `Backend` error); starting it again brings the same store back, data intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_is_unavailable_until_it_returns() {
    let cluster = Cluster::start().unwrap();
    let store = connect_url(&cluster.url(), None).await.unwrap();
    let user = store
        .create(new_user("kept@example.com", None))
        .await
        .unwrap();

    cluster.stop().unwrap();
    let ping = store.ping().await;
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    let create = store.create(new_user("lost@example.com", None)).await;
    assert!(
        matches!(create, Err(StoreError::Unavailable(_))),
        "{create:?}"
    );
    let find = store.find_by_id(None, &user.id).await;
    assert!(matches!(find, Err(StoreError::Unavailable(_))), "{find:?}");

    cluster.start_again().unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.find_by_id(None, &user.id).await.unwrap(), Some(user));
    store
        .create(new_user("after@example.com", None))
        .await
        .unwrap();
}

/// A server that stops answering (a hung host, a network that silently drops traffic) makes a
/// call `Unavailable` after `query_timeout`, never a hang; the connection that did not answer
/// is closed, and the same store works again once the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_unavailable_after_the_query_timeout() {
    let cluster = Cluster::start().unwrap();
    let store = PgStore::connect(&PgSettings {
        pool_size: 1,
        query_timeout: Duration::from_millis(500),
        ..url_settings(&cluster.url(), None)
    })
    .await
    .unwrap();
    let user = store
        .create(new_user("frozen@example.com", None))
        .await
        .unwrap();

    cluster.pause().unwrap();
    // The outer limit only tells a hang from an answer; the store's own deadline is 500 ms.
    let limit = Duration::from_secs(60);
    let find = tokio::time::timeout(limit, store.find_by_id(None, &user.id))
        .await
        .expect("find_by_id hung on a server that stopped answering");
    match find {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("did not answer"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // The pool's only connection was closed; a new one cannot be opened while the server is
    // frozen, and that is `Unavailable` too.
    let create = tokio::time::timeout(limit, store.create(new_user("thaw@example.com", None)))
        .await
        .expect("create hung on a server that stopped answering");
    assert!(
        matches!(create, Err(StoreError::Unavailable(_))),
        "{create:?}"
    );

    cluster.resume().unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.find_by_id(None, &user.id).await.unwrap(), Some(user));
}

/// libpq's sslmode values against a server that accepts only TLS, with a certificate for
/// 127.0.0.1 and localhost signed by a CA that is not in the system's roots.
#[tokio::test]
async fn tls_modes_verify_as_libpq_does() {
    let (cluster, ca_pem) = Cluster::start_with_tls().unwrap();
    let other_ca = authura_testkit::postgres::unrelated_ca_pem().unwrap();
    let url = |mode: &str, host: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?sslmode={mode}",
            cluster.port()
        )
    };
    let ca = Some(ca_pem.as_bytes());
    let wrong = Some(other_ca.as_bytes());

    // Verified: the chain (verify-ca, or require once a root is given), and the name too.
    for (mode, host) in [
        ("verify-full", "127.0.0.1"),
        ("verify-full", "localhost"),
        ("verify-ca", "127.0.0.1"),
        ("require", "127.0.0.1"),
    ] {
        let store = connect_url(&url(mode, host), ca)
            .await
            .unwrap_or_else(|e| panic!("{mode} {host}: {e}"));
        store.ping().await.unwrap();
    }
    // Unverified, as libpq: prefer (the default) and require without a root.
    for mode in ["prefer", "require"] {
        connect_url(&url(mode, "127.0.0.1"), None)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
    // Refused: an untrusted certificate when it is checked. Waiting will not fix that.
    for (mode, roots) in [
        ("verify-full", None),
        ("verify-ca", wrong),
        ("require", wrong),
    ] {
        let err = connect_url(&url(mode, "127.0.0.1"), roots)
            .await
            .unwrap_err();
        let StoreError::Backend(message) = &err else {
            panic!("{mode}: expected Backend, got {err:?}")
        };
        assert!(message.contains("certificate"), "{mode}: {message}");
    }
    // The server accepts only TLS: disable cannot connect.
    let err = connect_url(&url("disable", "127.0.0.1"), ca)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

// Helpers.

pub(crate) fn settings(db: &Database, table: &str) -> PgSettings {
    PgSettings {
        dsn: Secret::new(db.url.clone()),
        pool_size: 4,
        table: UsersTable::parse(table).unwrap(),
        extra_ca_pem: None,
        query_timeout: PgSettings::DEFAULT_QUERY_TIMEOUT,
    }
}

pub(crate) async fn connect(db: &Database, table: &str) -> Result<PgStore, StoreError> {
    PgStore::connect(&settings(db, table)).await
}

async fn connect_url(url: &str, extra_ca: Option<&[u8]>) -> Result<PgStore, StoreError> {
    PgStore::connect(&url_settings(url, extra_ca)).await
}

fn url_settings(url: &str, extra_ca: Option<&[u8]>) -> PgSettings {
    PgSettings {
        dsn: Secret::new(url),
        pool_size: 2,
        table: UsersTable::parse("users").unwrap(),
        extra_ca_pem: extra_ca.map(<[u8]>::to_vec),
        query_timeout: PgSettings::DEFAULT_QUERY_TIMEOUT,
    }
}

fn state(version: u32, name: &str, applied: bool) -> MigrationState {
    MigrationState {
        version,
        name: name.into(),
        applied,
        known: true,
    }
}

fn row(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some((*v).to_owned())).collect()
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
