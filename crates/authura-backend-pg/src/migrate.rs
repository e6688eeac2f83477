//! The numbered migrations under `migrations/` (embedded by `build.rs`), applied in one
//! transaction under an advisory lock and recorded per users table in
//! `authura_schema_migrations`; and the check that the table can be used.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use authura_core::StoreError;

use crate::error;
use crate::store::{self, PgSettings};
use crate::table::UsersTable;

/// One embedded migration.
struct Migration {
    version: u32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration of the users table this build knows, in version order.
const MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Every migration of the state tables (`state_migrations/`) this build knows, in version
/// order. Applied only when a stateful feature asks for them, and recorded apart from the users
/// table's, under [`STATE_RECORD`].
const STATE_MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/state_migrations.rs"));

/// The `users_table` value under which the state migrations are recorded (no users table can
/// be called so: it would be quoted with its schema or be `authura_state` itself, which the
/// state tables' names never are).
pub(crate) const STATE_RECORD: &str = "authura_state";

/// The sessions table's name.
pub(crate) const SESSIONS_TABLE: &str = "authura_sessions";

/// The role groups' table (SPEC §8a).
pub(crate) const ROLE_GROUPS_TABLE: &str = "authura_role_groups";

/// The sequence role group ids come from.
pub(crate) const ROLE_GROUP_IDS: &str = "authura_role_group_ids";

/// The permits' table, one row per (user, group).
pub(crate) const PERMITS_TABLE: &str = "authura_permits";

/// The account state table's name (SPEC §11).
pub(crate) const ACCOUNT_STATE_TABLE: &str = "authura_account_state";

/// The password history table's name (SPEC §11).
pub(crate) const PASSWORD_HISTORY_TABLE: &str = "authura_password_history";

/// The audit log table's name (SPEC §11).
pub(crate) const AUDIT_TABLE: &str = "authura_audit";

/// The OAuth identity links' table (SPEC §9).
pub(crate) const OAUTH_LINKS_TABLE: &str = "authura_oauth_links";

/// What one run of migrations works on.
struct Plan<'a> {
    migrations: &'static [Migration],
    /// The quoted `authura_schema_migrations` table.
    versions: String,
    /// The `users_table` column's value for these migrations.
    key: String,
    /// For messages: "table \"users\"" or "the state tables".
    label: String,
    /// Placeholders and their values.
    substitutions: Vec<(&'static str, String)>,
    /// The users table, when a unique violation means duplicate users.
    users: Option<&'a UsersTable>,
}

/// The table that records applied migrations, next to the users table.
const VERSION_TABLE: &str = "authura_schema_migrations";

/// Serialises migrations across processes (any constant; this one spells "authura").
const LOCK_KEY: i64 = 0x0061_7574_6875_7261;

/// One migration and whether the users table has had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Its number (the file's `NNNN`).
    pub version: u32,
    /// Its name (the rest of the file name).
    pub name: String,
    /// Recorded as applied.
    pub applied: bool,
    /// Known to this build (false for a migration a newer build applied).
    pub known: bool,
}

/// Every known migration and whether it is applied, plus any applied one this build does not
/// know, for `authura migrate status`. Changes nothing.
///
/// # Errors
/// `Unavailable` when PostgreSQL cannot be reached; `Backend` for a bad DSN or a query error.
pub async fn status(settings: &PgSettings) -> Result<Vec<MigrationState>, StoreError> {
    let mut conn = store::open_once(settings).await?;
    let applied = applied(
        &mut conn,
        &settings.table.sibling(VERSION_TABLE),
        &settings.table.to_string(),
    )
    .await?;
    let mut states: Vec<MigrationState> = MIGRATIONS
        .iter()
        .map(|m| MigrationState {
            version: m.version,
            name: m.name.to_owned(),
            applied: applied.iter().any(|(v, _)| *v == m.version),
            known: true,
        })
        .collect();
    for (version, name) in applied {
        if !MIGRATIONS.iter().any(|m| m.version == version) {
            states.push(MigrationState {
                version,
                name,
                applied: true,
                known: false,
            });
        }
    }
    states.sort_by_key(|s| s.version);
    Ok(states)
}

/// Applies the pending migrations to `table`, all in one transaction, and returns their
/// versions. Refuses a table that has migrations applied that this build does not know.
pub(crate) async fn run(
    conn: &mut AsyncPgConnection,
    table: &UsersTable,
) -> Result<Vec<u32>, StoreError> {
    let plan = Plan {
        migrations: MIGRATIONS,
        versions: table.sibling(VERSION_TABLE),
        key: table.to_string(),
        label: format!("table {table}"),
        substitutions: vec![
            ("{{table}}", table.quoted()),
            ("{{table_name}}", table.name().to_owned()),
        ],
        users: Some(table),
    };
    in_transaction(conn, &plan).await
}

/// Applies the pending state migrations, creating the state tables in `schema` (the users
/// table's; `None`: the first schema of the connection's `search_path`), all in one
/// transaction, and returns their versions. Refuses a database whose state tables have
/// migrations applied that this build does not know.
pub(crate) async fn run_state(
    conn: &mut AsyncPgConnection,
    schema: Option<&str>,
) -> Result<Vec<u32>, StoreError> {
    let plan = Plan {
        migrations: STATE_MIGRATIONS,
        versions: quoted_in(schema, VERSION_TABLE),
        key: STATE_RECORD.to_owned(),
        label: "the state tables".to_owned(),
        substitutions: vec![
            ("{{sessions}}", quoted_in(schema, SESSIONS_TABLE)),
            ("{{role_groups}}", quoted_in(schema, ROLE_GROUPS_TABLE)),
            ("{{role_group_ids}}", quoted_in(schema, ROLE_GROUP_IDS)),
            ("{{permits}}", quoted_in(schema, PERMITS_TABLE)),
            ("{{account_state}}", quoted_in(schema, ACCOUNT_STATE_TABLE)),
            (
                "{{password_history}}",
                quoted_in(schema, PASSWORD_HISTORY_TABLE),
            ),
            ("{{audit}}", quoted_in(schema, AUDIT_TABLE)),
            ("{{oauth_links}}", quoted_in(schema, OAUTH_LINKS_TABLE)),
        ],
        users: None,
    };
    in_transaction(conn, &plan).await
}

/// `name` quoted, in `schema` when given.
pub(crate) fn quoted_in(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) => format!("\"{schema}\".\"{name}\""),
        None => format!("\"{name}\""),
    }
}

async fn in_transaction(
    conn: &mut AsyncPgConnection,
    plan: &Plan<'_>,
) -> Result<Vec<u32>, StoreError> {
    conn.batch_execute("BEGIN").await.map_err(error::query)?;
    let result = run_in_transaction(conn, plan).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.batch_execute(end).await.map_err(error::query);
    let applied = result?;
    ended?;
    Ok(applied)
}

async fn run_in_transaction(
    conn: &mut AsyncPgConnection,
    plan: &Plan<'_>,
) -> Result<Vec<u32>, StoreError> {
    // Two instances starting together: the second waits here, then finds nothing to do.
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(LOCK_KEY)
        .execute(conn)
        .await
        .map_err(error::query)?;
    let versions = &plan.versions;
    let label = &plan.label;
    if !exists(conn, versions).await? {
        conn.batch_execute(&format!(
            "CREATE TABLE {versions} (
                users_table TEXT NOT NULL,
                version INTEGER NOT NULL,
                name TEXT NOT NULL,
                applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
                PRIMARY KEY (users_table, version)
            )"
        ))
        .await
        .map_err(|e| migration_error(e, "create the migration record", label))?;
    }
    let applied = applied(conn, versions, &plan.key).await?;
    let unknown: Vec<String> = applied
        .iter()
        .filter(|(v, _)| !plan.migrations.iter().any(|m| m.version == *v))
        .map(|(v, name)| format!("{v:04}_{name}"))
        .collect();
    if !unknown.is_empty() {
        let has = if plan.users.is_some() { "has" } else { "have" };
        return Err(StoreError::Backend(format!(
            "database schema is newer than this build: {label} {has} migrations {} applied \
             that this build does not know; run a newer authura",
            unknown.join(", ")
        )));
    }
    let mut done = Vec::new();
    for m in plan.migrations {
        if applied.iter().any(|(v, _)| *v == m.version) {
            continue;
        }
        let sql = plan
            .substitutions
            .iter()
            .fold(m.sql.to_owned(), |sql, (from, to)| sql.replace(from, to));
        let what = format!("apply migration {:04}_{}", m.version, m.name);
        if let Err(err) = conn.batch_execute(&sql).await {
            return Err(match (error::query(err), plan.users) {
                (StoreError::Conflict, Some(table)) => duplicates(conn, table, &what).await,
                (other, _) => prefix(other, &what),
            });
        }
        diesel::sql_query(format!(
            "INSERT INTO {versions} (users_table, version, name) VALUES ($1, $2, $3)"
        ))
        .bind::<Text, _>(&plan.key)
        .bind::<Integer, _>(i32::try_from(m.version).unwrap_or(i32::MAX))
        .bind::<Text, _>(m.name)
        .execute(conn)
        .await
        .map_err(|e| migration_error(e, "record a migration", label))?;
        tracing::info!(table = %plan.key, migration = %format!("{:04}_{}", m.version, m.name), "migration applied");
        done.push(m.version);
    }
    Ok(done)
}

/// The versions (and names) recorded under `key` in the (quoted) record table `versions`;
/// none when there is no record yet.
async fn applied(
    conn: &mut AsyncPgConnection,
    versions: &str,
    key: &str,
) -> Result<Vec<(u32, String)>, StoreError> {
    if !exists(conn, versions).await? {
        return Ok(Vec::new());
    }
    let rows: Vec<Applied> = diesel::sql_query(format!(
        "SELECT version, name FROM {versions} WHERE users_table = $1 ORDER BY version"
    ))
    .bind::<Text, _>(key)
    .load(conn)
    .await
    .map_err(error::query)?;
    Ok(rows
        .into_iter()
        .map(|r| (u32::try_from(r.version).unwrap_or(0), r.name))
        .collect())
}

/// Whether a (quoted) relation exists, without needing the right to create it.
pub(crate) async fn exists(conn: &mut AsyncPgConnection, quoted: &str) -> Result<bool, StoreError> {
    diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS present")
        .bind::<Text, _>(quoted)
        .get_result::<Present>(conn)
        .await
        .map(|r| r.present)
        .map_err(error::query)
}

/// A unique index could not be built: counts the offending pairs (never showing them: they are
/// email addresses) once the failed transaction is rolled back.
async fn duplicates(conn: &mut AsyncPgConnection, table: &UsersTable, what: &str) -> StoreError {
    let t = table.quoted();
    let count = async {
        conn.batch_execute("ROLLBACK; BEGIN").await?;
        diesel::sql_query(format!(
            "SELECT count(*) AS pairs FROM (SELECT 1 FROM {t} \
             GROUP BY lower(email), coalesce(tenant_id, '') HAVING count(*) > 1) AS d"
        ))
        .get_result::<Pairs>(conn)
        .await
    }
    .await;
    let pairs = match count {
        Ok(row) => row.pairs.to_string(),
        Err(_) => "some".to_owned(),
    };
    StoreError::Backend(format!(
        "cannot {what}: the table {table} has {pairs} (email, tenant) pairs that occur more than \
         once when emails are compared case-insensitively; nothing was changed; merge or remove \
         the duplicates (find them with: SELECT lower(email), tenant_id, count(*) FROM {t} \
         GROUP BY lower(email), tenant_id HAVING count(*) > 1) and start again"
    ))
}

fn migration_error(err: diesel::result::Error, what: &str, label: &str) -> StoreError {
    prefix(error::query(err), &format!("{what} for {label}"))
}

fn prefix(err: StoreError, what: &str) -> StoreError {
    match err {
        StoreError::Backend(message) => StoreError::Backend(format!("cannot {what}: {message}")),
        other => other,
    }
}

/// One column of the users table, as the catalog describes it.
#[derive(Debug, QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Bool)]
    has_default: bool,
}

/// Checks that `table` exists with the columns Authura reads and writes, of usable types, and
/// that every other column can be left out of an insert (nullable, or with a default).
pub(crate) async fn check_table(
    conn: &mut AsyncPgConnection,
    table: &UsersTable,
) -> Result<(), StoreError> {
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type_name, \
         a.attnotnull AS not_null, \
         (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default \
         FROM pg_attribute a \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind::<Text, _>(table.quoted())
    .load(conn)
    .await
    .map_err(error::query)?;
    if columns.is_empty() {
        return Err(StoreError::Backend(format!(
            "the users table {table} does not exist; run authura migrate"
        )));
    }
    let mut problems = Vec::new();
    let type_of = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.type_name.as_str())
    };
    for (name, accepted) in [
        ("id", &["smallint", "integer", "bigint"][..]),
        ("email", &["character varying", "text"][..]),
        ("role", &["character varying", "text"][..]),
        ("password", &["character varying", "text"][..]),
        ("tenant_id", &["character varying", "text"][..]),
        ("verified_at", &["timestamp"][..]),
    ] {
        match type_of(name) {
            None => problems.push(format!("it has no column {name}")),
            Some(t) if !accepted.iter().any(|a| t.starts_with(a)) => problems.push(format!(
                "column {name} is {t}, expected {}",
                accepted.join(" or ")
            )),
            Some(_) => {}
        }
    }
    for c in &columns {
        let written = ["email", "role", "password"].contains(&c.name.as_str());
        if c.not_null && !c.has_default && !written && c.name != "id" {
            problems.push(format!(
                "column {} is NOT NULL without a default, so Authura cannot insert users (extra \
                 columns must be nullable or have a default)",
                c.name
            ));
        }
    }
    if let Some(id) = columns.iter().find(|c| c.name == "id")
        && !id.has_default
    {
        problems.push("column id has no default (use SERIAL or an identity column)".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "the users table {table} cannot be used: {}",
            problems.join("; ")
        )))
    }
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Bool)]
    present: bool,
}

#[derive(QueryableByName)]
struct Pairs {
    #[diesel(sql_type = BigInt)]
    pairs: i64,
}
