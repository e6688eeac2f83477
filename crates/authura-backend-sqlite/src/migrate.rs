//! The embedded schema migrations, applied once at open on a plain synchronous connection, and
//! the settings every connection gets.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use authura_core::StoreError;

use crate::error;

/// The migrations under `migrations/`, compiled into the crate: the users table's.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The state store's migrations under `state_migrations/` (Authura's own `authura_*` tables),
/// applied only when a stateful feature asks for them. Both sets share diesel's
/// `__diesel_schema_migrations` table; their versions never overlap.
const STATE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("state_migrations");

/// Which migrations to apply.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Set {
    /// The users table's.
    Users,
    /// The state store's.
    State,
}

/// Run on every new connection. `busy_timeout` comes first so that switching to WAL waits for
/// other connections instead of failing; `journal_mode` is persistent, so after the first
/// connection it is a no-op.
pub(crate) const CONNECTION_SETUP: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;";

/// Opens (creating if missing) the database at `path` and applies the pending migrations of
/// `set`, refusing a database with migrations of either set applied that this build does not
/// know.
///
/// Everything runs in one `BEGIN IMMEDIATE` transaction, so two processes opening the same file
/// at once apply each migration once, and a failed migration leaves the file as it was.
pub(crate) fn run(path: &str, set: Set) -> Result<(), StoreError> {
    let mut conn = SqliteConnection::establish(path).map_err(error::connection)?;
    // Switching a new file to WAL needs an exclusive lock, and when several connections race
    // for it SQLite answers "database is locked" at once instead of waiting (the busy handler is
    // skipped to avoid a deadlock). Retry briefly; this runs on a blocking thread.
    let mut attempt = 0u64;
    loop {
        match conn.batch_execute(CONNECTION_SETUP) {
            Ok(()) => break,
            Err(e) if attempt < 50 && e.to_string().contains("database is locked") => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5 * attempt));
            }
            Err(e) => return Err(error::query(e)),
        }
    }
    conn.immediate_transaction(|conn| migrate(conn, set))
        .map_err(|err| match err {
            Failure::Store(err) => err,
            Failure::Query(err) => error::query(err),
        })
}

/// [`run`] on a blocking thread.
pub(crate) async fn run_blocking(path: Arc<str>, set: Set) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || run(&path, set))
        .await
        .map_err(|err| StoreError::Backend(format!("the migration task failed: {err}")))?
}

fn migrate(conn: &mut SqliteConnection, set: Set) -> Result<(), Failure> {
    let mut known = Vec::new();
    for source in [MIGRATIONS, STATE_MIGRATIONS] {
        let migrations = MigrationSource::<Sqlite>::migrations(&source)
            .map_err(|err| backend(format!("cannot read the embedded migrations: {err}")))?;
        known.extend(migrations.iter().map(|m| m.name().version().to_string()));
    }
    let applied = conn
        .applied_migrations()
        .map_err(|err| backend(format!("cannot read the applied migrations: {err}")))?;
    let unknown = applied
        .iter()
        .map(ToString::to_string)
        .filter(|version| !known.contains(version))
        .collect::<Vec<_>>();
    if !unknown.is_empty() {
        return Err(backend(format!(
            "database schema is newer than this build: it has migrations {} applied that this \
             build does not know; run a newer authura",
            unknown.join(", ")
        )));
    }
    let source = match set {
        Set::Users => MIGRATIONS,
        Set::State => STATE_MIGRATIONS,
    };
    let Err(err) = conn.run_pending_migrations(source) else {
        return Ok(());
    };
    if let Set::State = set {
        return Err(backend(format!("cannot migrate the state tables: {err}")));
    }
    // diesel_migrations does not export its error type, so the cause cannot be matched on; a
    // failed migration over a table that breaks the unique index is taken to be that.
    if let Ok(pairs @ 1..) = duplicate_pairs(conn) {
        return Err(backend(format!(
            "cannot create the unique index users_email_tenant_key: the users table has {pairs} \
             (email, tenant) pairs that occur more than once when emails are compared \
             case-insensitively; nothing was changed; merge or remove the duplicates (find them \
             with: SELECT lower(email), tenant_id, count(*) FROM users GROUP BY lower(email), \
             coalesce(tenant_id, '') HAVING count(*) > 1) and start again"
        )));
    }
    Err(backend(format!("cannot migrate the database: {err}")))
}

/// How many (email, tenant) pairs the unique index would reject.
fn duplicate_pairs(conn: &mut SqliteConnection) -> Result<i64, Failure> {
    diesel::sql_query(
        "SELECT count(*) AS pairs FROM (SELECT 1 FROM users \
         GROUP BY lower(email), coalesce(tenant_id, '') HAVING count(*) > 1)",
    )
    .get_result::<PairCount>(conn)
    .map(|row| row.pairs)
    .map_err(Failure::Query)
}

#[derive(QueryableByName)]
struct PairCount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pairs: i64,
}

fn backend(message: String) -> Failure {
    Failure::Store(StoreError::Backend(message))
}

/// What the migration transaction fails with: diesel's transaction needs an error it can build
/// from a query error (for `BEGIN`/`COMMIT` failures).
enum Failure {
    Store(StoreError),
    Query(DieselError),
}

impl From<DieselError> for Failure {
    fn from(err: DieselError) -> Self {
        Failure::Query(err)
    }
}
