//! Reading an Authaus database (SPEC §12): what `authura import authaus` carries over, read
//! in one read-only, repeatable-read transaction so every table is seen at the same moment.
//! Nothing is written to it. The rows are returned as they are stored; judging them (which user
//! has no email, which permit does not decode) is the importer's work.
//!
//! Authaus keeps its times as `TIMESTAMP` without a time zone; they are read as UTC.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use authura_core::{Secret, StoreError};

use crate::error;
use crate::store::Opener;

/// The Authaus schema version this reader knows (its `migration_version`).
pub const AUTHAUS_SCHEMA_VERSION: i32 = 16;

/// One Authaus user: `authuserstore` with its `authuserpwd` and `authuserstats` rows.
#[derive(Clone, QueryableByName)]
pub struct AuthausUser {
    /// `userid`.
    #[diesel(sql_type = BigInt)]
    pub userid: i64,
    /// `email`, as stored (may be missing, empty or mixed-case).
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    /// `username`.
    #[diesel(sql_type = Nullable<Text>)]
    pub username: Option<String>,
    /// `authusertype`: 0 default, 1 LDAP, 2 OAuth, 3 MSAAD.
    #[diesel(sql_type = SmallInt)]
    pub user_type: i16,
    /// `archived`.
    #[diesel(sql_type = Bool)]
    pub archived: bool,
    /// `archive_date`.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub archive_date: Option<DateTime<Utc>>,
    /// `created`.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub created: Option<DateTime<Utc>>,
    /// `authuserpwd.password`: the Authaus hash (None: no row, or NULL).
    #[diesel(sql_type = Nullable<Text>)]
    pub password: Option<String>,
    /// `authuserpwd.permit`: standard base64 of the permit blob (None: NULL or no row).
    #[diesel(sql_type = Nullable<Text>)]
    pub permit: Option<String>,
    /// `authuserpwd.updated`: the password's last change.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub password_updated: Option<DateTime<Utc>>,
    /// `authuserpwd.accountlocked`.
    #[diesel(sql_type = Bool)]
    pub locked: bool,
    /// `authuserstats.last_login_date`.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_login: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for AuthausUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthausUser")
            .field("userid", &self.userid)
            .field("email", &self.email)
            .field("user_type", &self.user_type)
            .field("archived", &self.archived)
            .field("locked", &self.locked)
            .finish_non_exhaustive()
    }
}

/// One `authpwdarchive` row: an earlier password hash of a user.
#[derive(Clone, QueryableByName)]
pub struct AuthausOldPassword {
    /// `userid`.
    #[diesel(sql_type = BigInt)]
    pub userid: i64,
    /// `password`, the earlier hash.
    #[diesel(sql_type = Text)]
    pub password: String,
    /// `created`: when it was archived.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub created: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for AuthausOldPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthausOldPassword")
            .field("userid", &self.userid)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// One `authgroup` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct AuthausGroup {
    /// `id`.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// `name`.
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    /// `permlist`: standard base64 of big-endian u16 permission numbers.
    #[diesel(sql_type = Nullable<Text>)]
    pub permlist: Option<String>,
}

/// One live `authsession` row (its `expires` after the moment the import asked about).
#[derive(Clone, QueryableByName)]
pub struct AuthausSession {
    /// `sessionkey`, the key in plain text (Authaus stores it so). Never logged.
    #[diesel(sql_type = Nullable<Text>)]
    pub key: Option<String>,
    /// `userid`.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub userid: Option<i64>,
    /// `expires`.
    #[diesel(sql_type = Timestamptz)]
    pub expires: DateTime<Utc>,
}

impl std::fmt::Debug for AuthausSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthausSession")
            .field("userid", &self.userid)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Everything the import reads, as of one moment.
#[derive(Debug, Clone, Default)]
pub struct AuthausData {
    /// `max(migration_version.version)`.
    pub schema_version: i32,
    /// Every user, by id.
    pub users: Vec<AuthausUser>,
    /// Every archived password, by user, oldest first.
    pub old_passwords: Vec<AuthausOldPassword>,
    /// Every group, by id.
    pub groups: Vec<AuthausGroup>,
    /// The sessions alive at the moment asked about (only when asked for), oldest first.
    pub sessions: Vec<AuthausSession>,
    /// How many sessions had expired at that moment (not read).
    pub expired_sessions: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Nullable<Integer>)]
    version: Option<i32>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

const USERS: &str = "SELECT u.userid::bigint AS userid, u.email::text AS email, \
     u.username::text AS username, coalesce(u.authusertype, 0)::smallint AS user_type, \
     coalesce(u.archived, false) AS archived, \
     u.archive_date AT TIME ZONE 'UTC' AS archive_date, u.created AT TIME ZONE 'UTC' AS created, \
     p.password::text AS password, p.permit::text AS permit, \
     p.updated AT TIME ZONE 'UTC' AS password_updated, \
     coalesce(p.accountlocked, false) AS locked, \
     s.last_login_date AT TIME ZONE 'UTC' AS last_login \
     FROM authuserstore u \
     LEFT JOIN authuserpwd p ON p.userid = u.userid \
     LEFT JOIN authuserstats s ON s.user_id = u.userid \
     ORDER BY u.userid";

const OLD_PASSWORDS: &str = "SELECT userid::bigint AS userid, password::text AS password, \
     created AT TIME ZONE 'UTC' AS created FROM authpwdarchive ORDER BY userid, created, id";

const GROUPS: &str = "SELECT id::bigint AS id, name::text AS name, permlist::text AS permlist \
     FROM authgroup ORDER BY id";

const LIVE_SESSIONS: &str = "SELECT sessionkey::text AS key, userid::bigint AS userid, \
     expires AT TIME ZONE 'UTC' AS expires FROM authsession \
     WHERE expires AT TIME ZONE 'UTC' > $1 ORDER BY id";

const EXPIRED_SESSIONS: &str = "SELECT count(*) AS count FROM authsession \
     WHERE expires IS NULL OR expires AT TIME ZONE 'UTC' <= $1";

/// Reads an Authaus database: its users, archived passwords, groups and, with
/// `sessions_alive_at`, the sessions alive at that moment. One connection, one read-only
/// repeatable-read transaction, nothing written.
///
/// # Errors
/// `Unavailable` when PostgreSQL cannot be reached; `Backend` for a DSN that does not parse, a
/// database that is not Authaus's (no `migration_version`, or a missing table) or whose schema
/// is older than version 16.
pub async fn read_authaus(
    dsn: &Secret,
    extra_ca_pem: Option<&[u8]>,
    sessions_alive_at: Option<DateTime<Utc>>,
) -> Result<AuthausData, StoreError> {
    let opener = Opener::from_dsn(dsn, extra_ca_pem)?;
    let mut conn = opener.open().await.map_err(error::connection)?;
    conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(error::query)?;
    let read = read_all(&mut conn, sessions_alive_at).await;
    // Read-only: ending the transaction either way changes nothing.
    let _ = conn.batch_execute("ROLLBACK").await;
    read
}

async fn read_all(
    conn: &mut AsyncPgConnection,
    sessions_alive_at: Option<DateTime<Utc>>,
) -> Result<AuthausData, StoreError> {
    let not_authaus = |what: &str, e: diesel::result::Error| {
        StoreError::Backend(format!(
            "this does not look like an Authaus database ({what}): {e}"
        ))
    };
    let version = diesel::sql_query("SELECT max(version) AS version FROM migration_version")
        .get_result::<Version>(conn)
        .await
        .map_err(|e| not_authaus("reading migration_version", e))?
        .version
        .unwrap_or(0);
    if version < AUTHAUS_SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the Authaus schema is at version {version}; the import reads version \
             {AUTHAUS_SCHEMA_VERSION}: upgrade Authaus first (start it once with its migrations)"
        )));
    }
    let users = diesel::sql_query(USERS)
        .load::<AuthausUser>(conn)
        .await
        .map_err(|e| not_authaus("reading users", e))?;
    let old_passwords = diesel::sql_query(OLD_PASSWORDS)
        .load::<AuthausOldPassword>(conn)
        .await
        .map_err(|e| not_authaus("reading authpwdarchive", e))?;
    let groups = diesel::sql_query(GROUPS)
        .load::<AuthausGroup>(conn)
        .await
        .map_err(|e| not_authaus("reading authgroup", e))?;
    let (sessions, expired_sessions) = match sessions_alive_at {
        None => (Vec::new(), 0),
        Some(at) => {
            let live = diesel::sql_query(LIVE_SESSIONS)
                .bind::<Timestamptz, _>(at)
                .load::<AuthausSession>(conn)
                .await
                .map_err(|e| not_authaus("reading authsession", e))?;
            let expired = diesel::sql_query(EXPIRED_SESSIONS)
                .bind::<Timestamptz, _>(at)
                .get_result::<Count>(conn)
                .await
                .map_err(|e| not_authaus("reading authsession", e))?
                .count;
            (live, expired)
        }
    };
    Ok(AuthausData {
        schema_version: version,
        users,
        old_passwords,
        groups,
        sessions,
        expired_sessions,
    })
}
