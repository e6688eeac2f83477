//! `authura import authaus --dsn <DSN> [--dry-run] [--sessions] [--json] [--tenant <id>]`
//! (SPEC §12): an Authaus database carried over into the configured users backend and state
//! store, idempotently. The reading is `authura_backend_pg::authaus` (one read-only,
//! repeatable-read transaction); this module decides what each row becomes and writes it.
//!
//! What it writes, and when a second run changes nothing:
//! - users: email trimmed and lower-cased (none, or not a valid address: skipped, reported);
//!   Authaus's `userid` kept as the id where the backend stores explicit numeric ids (sqlite,
//!   postgres: `UserStore::create_with_id`), else the user is matched by email and the mapping
//!   printed; the hash as it is (Authaus's format verifies, and the next login rewrites it as
//!   Argon2id); `DEFAULT_ROLE`; verified (Authaus has no verification) at `created`. A user
//!   already there keeps what Authura changed since: their hash is rewritten only while it is
//!   still an Authaus hash that differs (a password changed in Authaus in between); a user found
//!   under the id with another email is someone else, and is skipped, not overwritten.
//! - users without a password (LDAP, OAuth, MSAAD, or a NULL hash): an Argon2id hash of random
//!   bytes nobody holds, written once; they sign in by their provider or a password reset.
//! - account state: `archived` → archived at `archive_date`, `accountlocked` → locked until an
//!   admin unlocks, `last_login_date` → last login (only moved forward).
//! - `authpwdarchive` → password history (a hash already in it is not added twice).
//! - every role group with its id, name and permissions; every permit (a NULL permit, which
//!   Authaus refused to log in, and one that does not decode are reported, not written).
//! - with `--sessions`, every session alive now, by the SHA-256 of its key (its user imported,
//!   neither archived nor locked; one already there is left alone).
//!
//! Tenants: Authaus has none. Without multi-tenancy everything goes to "no tenant"; with it,
//! `--tenant` names the one tenant the users join. Role groups are global, as in Authaus.
//!
//! `--dry-run` reads and compares but writes nothing (the stores are opened, and so migrated,
//! as by any command). Running instances hear of the import by one `NOTIFY` (PostgreSQL).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use authura_backend_pg::authaus::{AuthausData, AuthausOldPassword, AuthausUser, read_authaus};
use authura_core::hash::{hash_password, is_authaus_hash, random_token};
use authura_core::permit::{GroupId, GroupName, Permit, RoleGroup, permissions_from_base64};
use authura_core::state::{AccountChange, KeyHash, Session, SessionMethod, StateEvent, StateStore};
use authura_core::{
    Email, NewUser, PasswordHash, Secret, StoreError, TenantId, User, UserChanges, UserId,
    UserStore,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Failure;
use crate::config::sessions::StateConfig;
use crate::config::{BackendConfig, Config};

/// The most history entries a user keeps after the import (Authaus never prunes its archive);
/// `PASSWORD_HISTORY` decides how many are checked.
const HISTORY_KEEP: u32 = 10_000;

/// What to import, and how to say it.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// Authaus's PostgreSQL DSN.
    pub dsn: Secret,
    /// Compare and report only.
    pub dry_run: bool,
    /// Carry live sessions over too.
    pub sessions: bool,
    /// Print the summary as JSON.
    pub json: bool,
    /// The tenant the users join (only with multi-tenancy).
    pub tenant: Option<String>,
}

/// How many of a kind were created, updated, left as they were, or skipped.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

/// Account state written.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct AccountCounts {
    /// Users archived.
    pub archived: u64,
    /// Users locked.
    pub locked: u64,
    /// Last logins set.
    pub last_login: u64,
    /// Password history entries added.
    pub history_added: u64,
}

/// Sessions carried over.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SessionCounts {
    pub created: u64,
    pub unchanged: u64,
    pub skipped: u64,
    /// Sessions that had expired: not read.
    pub expired: u64,
}

/// One thing not imported, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// `user`, `group`, `permit`, `password_history` or `session`.
    pub kind: &'static str,
    /// The Authaus id (user id, group id; a session's user id).
    pub authaus_id: Option<i64>,
    /// Why.
    pub reason: String,
}

/// An Authaus user id and the Authura id it became (printed when ids are not kept).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mapped {
    pub authaus_id: i64,
    pub user_id: String,
}

/// What the import did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    /// Authaus's schema version.
    pub schema_version: i32,
    /// `kept` (Authaus's user ids are Authura's) or `mapped` (see `id_map`).
    pub user_ids: &'static str,
    /// The tenant the users went to (`null`: none).
    pub tenant_id: Option<String>,
    pub users: Counts,
    pub groups: Counts,
    pub permits: Counts,
    pub accounts: AccountCounts,
    /// Present with `--sessions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionCounts>,
    /// Users that have no password in Authaus (they sign in by their provider or a reset).
    pub without_password: u64,
    /// Everything written (0: the stores already held all of it).
    pub changes: u64,
    pub skipped: Vec<Skipped>,
    /// With `user_ids` = `mapped`: every imported user's ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub id_map: Vec<Mapped>,
}

impl Summary {
    fn skip(&mut self, kind: &'static str, authaus_id: Option<i64>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            kind,
            authaus_id,
            reason: reason.into(),
        });
    }

    /// The summary as lines for an operator.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let verb = if self.dry_run { "would be" } else { "were" };
        out.push_str(&format!(
            "Authaus schema version {}{}\n",
            self.schema_version,
            if self.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        ));
        let counts = |name: &str, c: &Counts| {
            format!(
                "{name}: {} created, {} updated, {} unchanged, {} skipped ({verb} so)\n",
                c.created, c.updated, c.unchanged, c.skipped
            )
        };
        out.push_str(&counts("users", &self.users));
        out.push_str(&format!(
            "user ids: {}{}\n",
            self.user_ids,
            match &self.tenant_id {
                Some(t) => format!(", tenant {t}"),
                None => String::new(),
            }
        ));
        out.push_str(&counts("role groups", &self.groups));
        out.push_str(&counts("permits", &self.permits));
        out.push_str(&format!(
            "accounts: {} archived, {} locked, {} last logins, {} password history entries ({verb} written)\n",
            self.accounts.archived,
            self.accounts.locked,
            self.accounts.last_login,
            self.accounts.history_added
        ));
        if let Some(s) = &self.sessions {
            out.push_str(&format!(
                "sessions: {} created, {} unchanged, {} skipped, {} expired (not carried over)\n",
                s.created, s.unchanged, s.skipped, s.expired
            ));
        }
        if self.without_password > 0 {
            out.push_str(&format!(
                "{} users have no password in Authaus: they sign in by their provider or a password reset\n",
                self.without_password
            ));
        }
        for s in &self.skipped {
            match s.authaus_id {
                Some(id) => out.push_str(&format!("skipped {} {id}: {}\n", s.kind, s.reason)),
                None => out.push_str(&format!("skipped {}: {}\n", s.kind, s.reason)),
            }
        }
        for m in &self.id_map {
            out.push_str(&format!(
                "authaus user {} is user {}\n",
                m.authaus_id, m.user_id
            ));
        }
        if self.changes == 0 {
            out.push_str("nothing to change: the stores already hold this Authaus database\n");
        } else if self.dry_run {
            out.push_str(&format!("{} changes would be written\n", self.changes));
        } else {
            out.push_str(&format!("{} changes written\n", self.changes));
        }
        out
    }
}

fn failure(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn store_failure(what: &str, e: &StoreError) -> Failure {
    let code = match e {
        StoreError::Unavailable(_) => "unavailable",
        _ => "internal_error",
    };
    failure(code, format!("{what}: {e}"))
}

/// Runs the import; returns what to print (the summary, as text or JSON).
///
/// # Errors
/// A [`Failure`]: `start` when the stores cannot be opened, `authaus` when the Authaus
/// database cannot be read (unreachable, not Authaus's, an older schema), `tenant_required`,
/// `invalid_body` for `--tenant` without multi-tenancy, `managed_by_directory` for the ldap
/// backend, `unavailable`/`internal_error` when a
/// write fails (what was written before stays: running the import again completes it).
pub async fn run(config: &Config, args: ImportArgs) -> Result<String, Failure> {
    let tenant = match (&args.tenant, config.multi_tenant) {
        (Some(t), true) => Some(
            TenantId::parse(t)
                .map_err(|_| failure("tenant_required", format!("{t:?} is not a tenant id")))?,
        ),
        (None, true) => {
            return Err(failure(
                "tenant_required",
                "multi-tenancy is on: name the tenant the Authaus users join with --tenant",
            ));
        }
        (Some(_), false) => {
            return Err(failure(
                "invalid_body",
                "--tenant is only for MULTI_TENANT_ENABLED=true",
            ));
        }
        (None, false) => None,
    };
    if matches!(config.backend, BackendConfig::Ldap(_)) {
        return Err(failure(
            "managed_by_directory",
            "the ldap backend is a read-only directory: users come from it, not from an import \
             (import into sqlite, postgres, hasura or http)",
        ));
    }
    // Groups, permits, account state and sessions need the state store even when no feature
    // that uses them is on yet: beside the users table, or in STATE_DSN.
    let state_config = config.state.clone().unwrap_or(StateConfig::Beside);
    let stores = crate::backend::open(
        &config.backend,
        Some(&state_config),
        config.extra_ca_pem.as_deref(),
    )
    .await
    .map_err(Failure::from)?;
    let Some((state, events)) = stores.state else {
        return Err(failure("start", "no state store could be opened"));
    };
    let now = Utc::now();
    let data = read_authaus(
        &args.dsn,
        config.extra_ca_pem.as_deref(),
        args.sessions.then_some(now),
    )
    .await
    .map_err(|e| failure("authaus", format!("cannot read the Authaus database: {e}")))?;
    let keep_ids = matches!(
        config.backend,
        BackendConfig::Sqlite { .. } | BackendConfig::Postgres(_)
    );
    let mut importer = Importer {
        users: stores.users,
        state,
        tenant,
        role: config.default_role.clone(),
        dry_run: args.dry_run,
        keep_ids,
        now,
        no_password_hash: None,
        summary: Summary {
            dry_run: args.dry_run,
            schema_version: data.schema_version,
            user_ids: if keep_ids { "kept" } else { "mapped" },
            tenant_id: args.tenant.clone(),
            sessions: args.sessions.then(SessionCounts::default),
            ..Summary::default()
        },
    };
    importer.import(&data).await?;
    let summary = importer.summary;
    if !summary.dry_run
        && summary.changes > 0
        && let Err(e) = events.publish(StateEvent::All).await
    {
        tracing::warn!(error = %e, "running instances were not told of the import; their caches catch up within SESSION_CACHE_TTL");
    }
    if args.json {
        serde_json::to_string(&summary).map_err(|e| failure("internal_error", e.to_string()))
    } else {
        Ok(summary.text())
    }
}

struct Importer {
    users: Arc<dyn UserStore>,
    state: Arc<dyn StateStore>,
    tenant: Option<TenantId>,
    role: authura_core::Role,
    dry_run: bool,
    keep_ids: bool,
    now: DateTime<Utc>,
    /// The hash given to users without a password: Argon2id of random bytes, made once.
    no_password_hash: Option<PasswordHash>,
    summary: Summary,
}

/// What became of one Authaus user.
struct Imported<'a> {
    authaus: &'a AuthausUser,
    /// The Authura id; `None` in a dry run for a user not created yet.
    id: Option<UserId>,
}

impl Importer {
    async fn import(&mut self, data: &AuthausData) -> Result<(), Failure> {
        self.import_groups(data).await?;
        let imported = self.import_users(data).await?;
        self.import_accounts(data, &imported).await?;
        self.import_permits(&imported).await?;
        if self.summary.sessions.is_some() {
            self.import_sessions(data, &imported).await?;
        }
        Ok(())
    }

    async fn import_groups(&mut self, data: &AuthausData) -> Result<(), Failure> {
        for g in &data.groups {
            let Some(id) = u32::try_from(g.id).ok().map(GroupId) else {
                self.summary.groups.skipped += 1;
                self.summary
                    .skip("group", Some(g.id), "the id is not a 32-bit group id");
                continue;
            };
            let name = match GroupName::parse(g.name.as_deref().unwrap_or_default()) {
                Ok(name) => name,
                Err(e) => {
                    self.summary.groups.skipped += 1;
                    self.summary
                        .skip("group", Some(g.id), format!("its name is invalid: {e}"));
                    continue;
                }
            };
            let permissions = match permissions_from_base64(g.permlist.as_deref().unwrap_or("")) {
                Ok(p) => p,
                Err(e) => {
                    self.summary.groups.skipped += 1;
                    self.summary.skip(
                        "group",
                        Some(g.id),
                        format!("its permission list does not decode: {e}"),
                    );
                    continue;
                }
            };
            let group = RoleGroup {
                id,
                name,
                permissions,
            };
            let existing = self
                .state
                .find_group(id)
                .await
                .map_err(|e| store_failure("reading role groups", &e))?;
            match existing {
                Some(existing) if existing == group => self.summary.groups.unchanged += 1,
                Some(_) => {
                    if !self.dry_run {
                        match self.state.update_group(&group).await {
                            Ok(_) => {}
                            Err(StoreError::Conflict) => {
                                self.summary.groups.skipped += 1;
                                self.summary.skip(
                                    "group",
                                    Some(g.id),
                                    format!("another group is named {:?}", group.name.as_str()),
                                );
                                continue;
                            }
                            Err(e) => return Err(store_failure("updating a role group", &e)),
                        }
                    }
                    self.summary.groups.updated += 1;
                    self.summary.changes += 1;
                }
                None => {
                    let taken = self
                        .state
                        .list_groups()
                        .await
                        .map_err(|e| store_failure("reading role groups", &e))?
                        .into_iter()
                        .find(|other| other.name == group.name);
                    if let Some(other) = taken {
                        self.summary.groups.skipped += 1;
                        self.summary.skip(
                            "group",
                            Some(g.id),
                            format!(
                                "group {} already has the name {:?}",
                                other.id,
                                group.name.as_str()
                            ),
                        );
                        continue;
                    }
                    if !self.dry_run {
                        self.state
                            .create_group(Some(id), &group.name, &group.permissions)
                            .await
                            .map_err(|e| store_failure("creating a role group", &e))?;
                    }
                    self.summary.groups.created += 1;
                    self.summary.changes += 1;
                }
            }
        }
        Ok(())
    }

    /// The users, each with the Authura id it has (or gets).
    async fn import_users<'a>(
        &mut self,
        data: &'a AuthausData,
    ) -> Result<Vec<Imported<'a>>, Failure> {
        // Authaus lets archived users share an address with one another and with one active
        // user; Authura's addresses are unique. Per address: the active user, else the newest.
        let mut chosen: HashMap<String, &AuthausUser> = HashMap::new();
        let mut emails: BTreeMap<i64, Email> = BTreeMap::new();
        for u in &data.users {
            let raw = u.email.as_deref().unwrap_or("").trim().to_lowercase();
            if raw.is_empty() {
                self.summary.users.skipped += 1;
                self.summary
                    .skip("user", Some(u.userid), "no email address");
                continue;
            }
            let Ok(email) = Email::parse(&raw) else {
                self.summary.users.skipped += 1;
                self.summary.skip(
                    "user",
                    Some(u.userid),
                    format!("{raw:?} is not a valid email address"),
                );
                continue;
            };
            emails.insert(u.userid, email.clone());
            let better =
                |other: &AuthausUser| (!u.archived, u.userid) > (!other.archived, other.userid);
            match chosen.get(email.as_str()) {
                Some(other) if !better(other) => {}
                _ => {
                    chosen.insert(email.as_str().to_owned(), u);
                }
            }
        }
        let mut imported = Vec::new();
        for u in &data.users {
            let Some(email) = emails.get(&u.userid) else {
                continue;
            };
            let winner = chosen.get(email.as_str()).map(|w| w.userid);
            if winner != Some(u.userid) {
                self.summary.users.skipped += 1;
                self.summary.skip(
                    "user",
                    Some(u.userid),
                    format!(
                        "Authaus user {} has the same address (an archived duplicate)",
                        winner.unwrap_or_default()
                    ),
                );
                continue;
            }
            if u.password.is_none() {
                self.summary.without_password += 1;
            }
            if let Some(id) = self.import_user(u, email.clone()).await? {
                if !self.keep_ids {
                    self.summary.id_map.push(Mapped {
                        authaus_id: u.userid,
                        user_id: id
                            .as_ref()
                            .map_or_else(|| "(new)".to_owned(), UserId::to_string),
                    });
                }
                imported.push(Imported { authaus: u, id });
            }
        }
        Ok(imported)
    }

    /// One user: `None` when skipped, `Some(None)` when a dry run would create it.
    async fn import_user(
        &mut self,
        u: &AuthausUser,
        email: Email,
    ) -> Result<Option<Option<UserId>>, Failure> {
        let tenant = self.tenant.as_ref();
        let by_email = self
            .users
            .find_by_email(tenant, &email)
            .await
            .map_err(|e| store_failure("reading users", &e))?;
        let existing = if self.keep_ids {
            let id = UserId::Int(u.userid);
            let by_id = self
                .users
                .find_by_id(tenant, &id)
                .await
                .map_err(|e| store_failure("reading users", &e))?;
            match (by_id, by_email) {
                (Some(user), _) if user.email != email => {
                    self.summary.users.skipped += 1;
                    self.summary.skip(
                        "user",
                        Some(u.userid),
                        format!(
                            "user {} exists with another address ({}); it is left alone",
                            user.id,
                            user.email.as_str()
                        ),
                    );
                    return Ok(None);
                }
                (Some(user), _) => Some(user),
                (None, Some(other)) => {
                    self.summary.users.skipped += 1;
                    self.summary.skip(
                        "user",
                        Some(u.userid),
                        format!("the address {} is user {}'s", email.as_str(), other.id),
                    );
                    return Ok(None);
                }
                (None, None) => None,
            }
        } else {
            by_email
        };
        let authaus_hash = u.password.as_deref().map(PasswordHash::new);
        match existing {
            Some(user) => {
                // A hash Authura rewrote (a login, a reset) is newer than Authaus's.
                let rehash = authaus_hash.filter(|h| {
                    h.as_str() != user.password_hash.as_str()
                        && is_authaus_hash(user.password_hash.as_str())
                });
                match rehash {
                    None => self.summary.users.unchanged += 1,
                    Some(hash) => {
                        if !self.dry_run {
                            let changes = UserChanges {
                                password_hash: Some(hash),
                                ..UserChanges::default()
                            };
                            self.users
                                .update_if(tenant, &user, changes)
                                .await
                                .map_err(|e| store_failure("updating a user", &e))?;
                        }
                        self.summary.users.updated += 1;
                        self.summary.changes += 1;
                    }
                }
                Ok(Some(Some(user.id)))
            }
            None => {
                let password_hash = match authaus_hash {
                    Some(hash) => hash,
                    None => self.no_password_hash()?,
                };
                let new = NewUser {
                    email,
                    role: self.role.clone(),
                    tenant: self.tenant.clone(),
                    password_hash,
                    verified_at: Some(u.created.unwrap_or(self.now)),
                };
                self.summary.users.created += 1;
                self.summary.changes += 1;
                if self.dry_run {
                    return Ok(Some(None));
                }
                let created: User = if self.keep_ids {
                    self.users.create_with_id(&UserId::Int(u.userid), new).await
                } else {
                    self.users.create(new).await
                }
                .map_err(|e| store_failure("creating a user", &e))?;
                Ok(Some(Some(created.id)))
            }
        }
    }

    fn no_password_hash(&mut self) -> Result<PasswordHash, Failure> {
        if let Some(hash) = &self.no_password_hash {
            return Ok(hash.clone());
        }
        let hash = hash_password(&random_token(32))
            .map_err(|e| failure("internal_error", format!("cannot hash: {e}")))?;
        self.no_password_hash = Some(hash.clone());
        Ok(hash)
    }

    async fn import_accounts(
        &mut self,
        data: &AuthausData,
        imported: &[Imported<'_>],
    ) -> Result<(), Failure> {
        let mut history: BTreeMap<i64, Vec<&AuthausOldPassword>> = BTreeMap::new();
        for old in &data.old_passwords {
            history.entry(old.userid).or_default().push(old);
        }
        let tenant = self.tenant.clone();
        let tenant = tenant.as_ref();
        for user in imported {
            let u = user.authaus;
            let state = match &user.id {
                Some(id) => Some(
                    self.state
                        .account_state(tenant, id)
                        .await
                        .map_err(|e| store_failure("reading account state", &e))?,
                ),
                None => None,
            };
            let mut changes = Vec::new();
            let current = state.clone().unwrap_or_default();
            if let Some(at) = u.last_login
                && current
                    .last_login_at
                    .is_none_or(|seen| seen < at.trunc_micros())
            {
                changes.push(AccountChange::LoginSucceeded { at });
                self.summary.accounts.last_login += 1;
            }
            if u.archived && !current.is_archived() {
                changes.push(AccountChange::Archive {
                    at: u.archive_date.unwrap_or(self.now),
                });
                self.summary.accounts.archived += 1;
            }
            if u.locked && !current.is_locked(self.now) {
                changes.push(AccountChange::Lock {
                    at: self.now,
                    until: None,
                });
                self.summary.accounts.locked += 1;
            }
            self.summary.changes += changes.len() as u64;
            if let Some(id) = &user.id
                && !self.dry_run
            {
                for change in &changes {
                    self.state
                        .update_account(tenant, id, change)
                        .await
                        .map_err(|e| store_failure("writing account state", &e))?;
                }
            }
            let Some(old) = history.get(&u.userid) else {
                continue;
            };
            let have: BTreeSet<String> = match &user.id {
                Some(id) => self
                    .state
                    .password_history(tenant, id, HISTORY_KEEP)
                    .await
                    .map_err(|e| store_failure("reading password history", &e))?
                    .into_iter()
                    .map(|h| h.as_str().to_owned())
                    .collect(),
                None => BTreeSet::new(),
            };
            for entry in old {
                let (hash, at) = (entry.password.as_str(), entry.created);
                if hash.is_empty() {
                    self.summary.skip(
                        "password_history",
                        Some(u.userid),
                        "an empty archived password",
                    );
                    continue;
                }
                if have.contains(hash) {
                    continue;
                }
                self.summary.accounts.history_added += 1;
                self.summary.changes += 1;
                if let Some(id) = &user.id
                    && !self.dry_run
                {
                    self.state
                        .push_password_history(
                            tenant,
                            id,
                            &PasswordHash::new(hash),
                            at.unwrap_or(self.now),
                            HISTORY_KEEP,
                        )
                        .await
                        .map_err(|e| store_failure("writing password history", &e))?;
                }
            }
        }
        Ok(())
    }

    async fn import_permits(&mut self, imported: &[Imported<'_>]) -> Result<(), Failure> {
        let tenant = self.tenant.clone();
        let tenant = tenant.as_ref();
        for user in imported {
            let u = user.authaus;
            let Some(text) = u.permit.as_deref() else {
                if u.password.is_some() {
                    self.summary.permits.skipped += 1;
                    self.summary.skip(
                        "permit",
                        Some(u.userid),
                        "the permit is NULL (Authaus refused this user's logins); no groups given",
                    );
                }
                continue;
            };
            let permit = match Permit::from_base64(text) {
                Ok(p) => p,
                Err(e) => {
                    self.summary.permits.skipped += 1;
                    self.summary.skip(
                        "permit",
                        Some(u.userid),
                        format!("the permit does not decode: {e}"),
                    );
                    continue;
                }
            };
            let current = match &user.id {
                Some(id) => self
                    .state
                    .permit(tenant, id)
                    .await
                    .map_err(|e| store_failure("reading permits", &e))?,
                None => Permit::default(),
            };
            if current == permit {
                self.summary.permits.unchanged += 1;
                continue;
            }
            if let Some(id) = &user.id
                && !self.dry_run
            {
                self.state
                    .set_permit(tenant, id, &permit)
                    .await
                    .map_err(|e| store_failure("writing a permit", &e))?;
            }
            if current.is_empty() {
                self.summary.permits.created += 1;
            } else {
                self.summary.permits.updated += 1;
            }
            self.summary.changes += 1;
        }
        Ok(())
    }

    async fn import_sessions(
        &mut self,
        data: &AuthausData,
        imported: &[Imported<'_>],
    ) -> Result<(), Failure> {
        let by_authaus: HashMap<i64, &Imported<'_>> =
            imported.iter().map(|i| (i.authaus.userid, i)).collect();
        let mut counts = SessionCounts {
            expired: u64::try_from(data.expired_sessions).unwrap_or_default(),
            ..SessionCounts::default()
        };
        for s in &data.sessions {
            let authaus_id = s.userid;
            let Some(user) = authaus_id.and_then(|id| by_authaus.get(&id)) else {
                counts.skipped += 1;
                self.summary
                    .skip("session", authaus_id, "its user was not imported");
                continue;
            };
            // Authura ends the sessions of an archived or locked account (SPEC §8).
            if user.authaus.archived || user.authaus.locked {
                counts.skipped += 1;
                self.summary
                    .skip("session", authaus_id, "its user is archived or locked");
                continue;
            }
            let key = s.key.as_deref().unwrap_or("");
            if key.len() != authura_session::AUTHAUS_KEY_CHARS
                || !key.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                counts.skipped += 1;
                self.summary.skip(
                    "session",
                    authaus_id,
                    "its key is not an Authaus key (30 letters and digits)",
                );
                continue;
            }
            let key_hash = KeyHash::of(key.as_bytes());
            let existing = self
                .state
                .find_session_by_key(&key_hash)
                .await
                .map_err(|e| store_failure("reading sessions", &e))?;
            if existing.is_some() {
                counts.unchanged += 1;
                continue;
            }
            counts.created += 1;
            self.summary.changes += 1;
            let Some(user_id) = user.id.clone() else {
                continue;
            };
            if self.dry_run {
                continue;
            }
            let session = Session {
                id: Uuid::new_v4(),
                key_hash,
                user_id,
                tenant: self.tenant.clone(),
                created_at: self.now,
                last_seen_at: self.now,
                expires_at: s.expires,
                ip: None,
                user_agent: None,
                method: SessionMethod::Password,
                generation: 0,
                generation_changed_at: self.now,
            }
            .truncated();
            match self.state.create_session(session, 0).await {
                Ok(_) => {}
                // Another import (or a re-run) got there first: the same key, kept once.
                Err(StoreError::Conflict) => {
                    counts.created -= 1;
                    counts.unchanged += 1;
                    self.summary.changes -= 1;
                }
                Err(e) => return Err(store_failure("writing a session", &e)),
            }
        }
        self.summary.sessions = Some(counts);
        Ok(())
    }
}

/// Truncation to the microsecond, as stores keep times.
trait TruncMicros {
    fn trunc_micros(self) -> Self;
}

impl TruncMicros for DateTime<Utc> {
    fn trunc_micros(self) -> Self {
        chrono::SubsecRound::trunc_subsecs(self, 6)
    }
}
