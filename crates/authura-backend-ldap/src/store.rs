//! `LdapStore`: the read-only `UserStore` over a directory, and the sign-in by bind.

use std::collections::HashMap;

use async_trait::async_trait;
use authura_core::store::{PasswordCheck, PoolStatus};
use authura_core::{
    Email, NewUser, PasswordHash, Role, Secret, StoreError, TenantId, User, UserChanges, UserId,
    UserPage, UserQuery, UserStore,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, Scope, SearchEntry, SearchOptions, ldap_escape};

use crate::conn::{Connector, Pool, rc, result_error, timed_out, unavailable};
use crate::settings::{LdapSettings, RoleMap};

/// The password column of a directory user: no hash, so nothing verifies against it (the
/// directory checks passwords), and constant, so a refresh token's fingerprint holds.
const NO_HASH: &str = "!ldap";

/// How many entries one page of a paged search asks for.
const PAGE: i32 = 500;

/// A directory as the users backend (SPEC §10). Reads users by search, checks passwords by
/// binding as the user, never writes.
pub struct LdapStore {
    settings: LdapSettings,
    pool: Pool,
    /// `user_filter` with `{email}` as `*`: every user.
    any_user: String,
}

impl std::fmt::Debug for LdapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One user entry as read.
struct Entry {
    dn: String,
    user: User,
    /// `memberOf`, when the entry has it.
    member_of: Option<Vec<String>>,
}

impl LdapStore {
    /// Builds the store. Nothing is sent until the first call: the directory may start after
    /// Authura, and `/readyz` tells when it is reachable.
    ///
    /// # Errors
    /// `Backend` when the settings are inconsistent ([`LdapSettings::check`]) or the TLS
    /// configuration cannot be built.
    pub fn new(settings: LdapSettings) -> Result<Self, StoreError> {
        settings.check()?;
        for (name, filter) in [
            (
                "LDAP_USER_FILTER",
                settings.user_filter.replace("{email}", "a@example.com"),
            ),
            (
                "LDAP_GROUP_FILTER",
                settings.group_filter.replace("{dn}", "cn=a,dc=example"),
            ),
        ] {
            if ldap3::parse_filter(&filter).is_err() {
                return Err(StoreError::Backend(format!(
                    "{name}: {filter:?} is not an LDAP filter"
                )));
            }
        }
        let pool = Pool::new(Connector::new(&settings)?, &settings);
        let any_user = settings.user_filter.replace("{email}", "*");
        Ok(LdapStore {
            settings,
            pool,
            any_user,
        })
    }

    /// The role map, for diagnostics.
    pub fn role_map(&self) -> &RoleMap {
        &self.settings.role_map
    }

    fn attributes(&self) -> Vec<&str> {
        vec![
            self.settings.id_attribute.as_str(),
            self.settings.email_attribute.as_str(),
            "memberOf",
            "createTimestamp",
        ]
    }

    /// Runs `op` on a service-account connection; a reused connection that fails with the
    /// directory unreachable is replaced once (it may have died while idle).
    async fn with_service<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> Fn(
            &'c Self,
            &'c mut Ldap,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>,
    {
        let mut conn = self.pool.get().await?;
        match op(self, conn.ldap()).await {
            Ok(v) => {
                conn.keep();
                Ok(v)
            }
            Err(StoreError::Unavailable(_)) if conn.reused => {
                drop(conn);
                let mut conn = self.pool.get().await?;
                let v = op(self, conn.ldap()).await?;
                conn.keep();
                Ok(v)
            }
            Err(e) => Err(e),
        }
    }

    /// The entries `filter` finds under the base DN, at most two (enough to tell "not exactly
    /// one"), and how many the directory sent (entries without an id or address included).
    async fn search_few(
        &self,
        ldap: &mut Ldap,
        filter: &str,
    ) -> Result<(Vec<Entry>, usize), StoreError> {
        let timeout = self.pool.connector().timeout;
        let searching = ldap
            .with_timeout(timeout)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(
                &self.settings.base_dn,
                Scope::Subtree,
                filter,
                self.attributes(),
            );
        let result = tokio::time::timeout(timeout, searching)
            .await
            .map_err(|_| timed_out("searching"))?
            .map_err(|e| unavailable("the search failed", &e))?;
        let mut sent = result.0.len();
        match result.1.rc {
            rc::SUCCESS | rc::NO_SUCH_OBJECT => {}
            // More matched than the two asked for.
            rc::SIZE_LIMIT_EXCEEDED => sent = sent.max(2),
            code => return Err(result_error("the search", code, &result.1.text)),
        }
        let mut entries = Vec::new();
        for raw in result.0 {
            if let Some(entry) = self.entry(SearchEntry::construct(raw))? {
                entries.push(entry);
            }
        }
        Ok((entries, sent))
    }

    /// The one user `filter` finds, with their role; `None` when there is none or more than
    /// one (two entries claiming one address sign nobody in).
    async fn find_one(&self, ldap: &mut Ldap, filter: &str) -> Result<Option<Entry>, StoreError> {
        let (mut entries, sent) = self.search_few(ldap, filter).await?;
        if sent > 1 {
            tracing::warn!(
                "more than one directory entry matches one user filter: nobody is signed in with it"
            );
            return Ok(None);
        }
        let Some(mut entry) = entries.pop() else {
            return Ok(None);
        };
        entry.user.role = self.role(ldap, &entry).await?;
        Ok(Some(entry))
    }

    /// The user's role from their groups: `memberOf` when the entry has it, else a group search.
    async fn role(&self, ldap: &mut Ldap, entry: &Entry) -> Result<Role, StoreError> {
        let s = &self.settings;
        if s.role_map.is_empty() {
            return Ok(s.default_role.clone());
        }
        let groups = match &entry.member_of {
            Some(groups) => groups.clone(),
            None => self.groups(ldap, &entry.dn).await?,
        };
        Ok(s.role_map
            .role_of(
                groups.iter().map(String::as_str),
                &s.admin_role,
                &s.default_role,
            )
            .clone())
    }

    /// The DNs of the groups the group filter finds for `dn`.
    async fn groups(&self, ldap: &mut Ldap, dn: &str) -> Result<Vec<String>, StoreError> {
        let timeout = self.pool.connector().timeout;
        let filter = self.settings.group_filter.replace("{dn}", &ldap_escape(dn));
        let searching = ldap.with_timeout(timeout).search(
            &self.settings.group_base_dn,
            Scope::Subtree,
            &filter,
            vec!["1.1"],
        );
        let result = tokio::time::timeout(timeout, searching)
            .await
            .map_err(|_| timed_out("searching groups"))?
            .map_err(|e| unavailable("the group search failed", &e))?;
        match result.1.rc {
            rc::SUCCESS | rc::NO_SUCH_OBJECT => {}
            code => return Err(result_error("the group search", code, &result.1.text)),
        }
        Ok(result
            .0
            .into_iter()
            .map(|raw| SearchEntry::construct(raw).dn)
            .collect())
    }

    /// Reads a search entry into a user (role still the default); `None` for an entry without
    /// an id or a usable address (blank attributes never match).
    fn entry(&self, entry: SearchEntry) -> Result<Option<Entry>, StoreError> {
        let s = &self.settings;
        let Some(id) = id_of(&entry, &s.id_attribute) else {
            tracing::debug!(dn = %entry.dn, "a directory entry without an id is skipped");
            return Ok(None);
        };
        let Some(email) = first(&entry.attrs, &s.email_attribute)
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .and_then(|e| Email::parse(e).ok())
        else {
            tracing::debug!(dn = %entry.dn, "a directory entry without a valid address is skipped");
            return Ok(None);
        };
        let verified_at = first(&entry.attrs, "createTimestamp")
            .and_then(generalized_time)
            .unwrap_or_else(Utc::now);
        let member_of = get(&entry.attrs, "memberOf").cloned();
        Ok(Some(Entry {
            user: User {
                id: UserId::Text(id),
                email,
                role: s.default_role.clone(),
                tenant: None,
                password_hash: PasswordHash::new(NO_HASH),
                verified_at: Some(verified_at),
            },
            member_of,
            dn: entry.dn,
        }))
    }

    fn email_filter(&self, email: &Email) -> String {
        self.settings
            .user_filter
            .replace("{email}", &ldap_escape(email.as_str()))
    }

    fn id_filter(&self, id: &UserId) -> Option<String> {
        let attr = &self.settings.id_attribute;
        let value = match id {
            UserId::Text(text) if attr.eq_ignore_ascii_case("objectGUID") => {
                // Active Directory stores the GUID as 16 bytes, the first three fields little
                // endian; the filter takes them escaped byte by byte.
                let uuid = uuid::Uuid::parse_str(text).ok()?;
                uuid.to_bytes_le()
                    .iter()
                    .map(|b| format!("\\{b:02x}"))
                    .collect()
            }
            other => ldap_escape(other.to_string()).into_owned(),
        };
        Some(format!("(&{}({attr}={value}))", self.any_user))
    }

    /// Every user entry, by paged search (roles not resolved yet).
    async fn all(&self, ldap: &mut Ldap) -> Result<Vec<Entry>, StoreError> {
        let timeout = self.pool.connector().timeout;
        let adapters: Vec<Box<dyn Adapter<'static, String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE)),
        ];
        let attributes: Vec<String> = self.attributes().into_iter().map(str::to_owned).collect();
        let mut stream = tokio::time::timeout(
            timeout,
            ldap.with_timeout(timeout).streaming_search_with(
                adapters,
                &self.settings.base_dn,
                Scope::Subtree,
                &self.any_user,
                attributes,
            ),
        )
        .await
        .map_err(|_| timed_out("listing"))?
        .map_err(|e| unavailable("the search failed", &e))?;
        let mut entries = Vec::new();
        loop {
            let next = tokio::time::timeout(timeout, stream.next())
                .await
                .map_err(|_| timed_out("listing"))?
                .map_err(|e| unavailable("the search failed", &e))?;
            let Some(raw) = next else { break };
            if let Some(entry) = self.entry(SearchEntry::construct(raw))? {
                entries.push(entry);
            }
        }
        let done = stream.finish().await;
        match done.rc {
            rc::SUCCESS | rc::NO_SUCH_OBJECT => Ok(entries),
            code => Err(result_error("the search", code, &done.text)),
        }
    }
}

#[async_trait]
impl UserStore for LdapStore {
    async fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        if tenant.is_some() {
            return Ok(None);
        }
        let filter = self.email_filter(email);
        let found = self
            .with_service(|s, ldap| {
                let filter = filter.clone();
                Box::pin(async move { s.find_one(ldap, &filter).await })
            })
            .await?;
        Ok(found.map(|e| e.user))
    }

    async fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        let (None, Some(filter)) = (tenant, self.id_filter(id)) else {
            return Ok(None);
        };
        let found = self
            .with_service(|s, ldap| {
                let filter = filter.clone();
                Box::pin(async move { s.find_one(ldap, &filter).await })
            })
            .await?;
        Ok(found.map(|e| e.user))
    }

    async fn create(&self, _user: NewUser) -> Result<User, StoreError> {
        Err(StoreError::ReadOnly)
    }

    async fn update(
        &self,
        _tenant: Option<&TenantId>,
        _id: &UserId,
        _changes: UserChanges,
    ) -> Result<User, StoreError> {
        Err(StoreError::ReadOnly)
    }

    async fn update_if(
        &self,
        _tenant: Option<&TenantId>,
        _expected: &User,
        _changes: UserChanges,
    ) -> Result<User, StoreError> {
        Err(StoreError::ReadOnly)
    }

    /// Reads every user entry (paged), then filters, orders and pages by id in memory: a
    /// directory has no order of its own to page by. The roles of the page's users only are
    /// resolved.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        if query.tenant.is_some() {
            return Ok(UserPage::default());
        }
        let query = query.clone();
        self.with_service(|s, ldap| {
            let query = query.clone();
            Box::pin(async move {
                let mut entries: Vec<Entry> = s
                    .all(ldap)
                    .await?
                    .into_iter()
                    .filter(|e| query.matches(&e.user))
                    .filter(|e| {
                        query.after.as_ref().is_none_or(|after| {
                            authura_core::store::id_order(&e.user.id, after).is_gt()
                        })
                    })
                    .collect();
                entries.sort_by(|a, b| authura_core::store::id_order(&a.user.id, &b.user.id));
                entries.truncate(query.page_size() + 1);
                let mut users = Vec::with_capacity(entries.len());
                for mut entry in entries {
                    entry.user.role = s.role(ldap, &entry).await?;
                    users.push(entry.user);
                }
                Ok(query.page(users))
            })
        })
        .await
    }

    async fn delete(&self, _tenant: Option<&TenantId>, _id: &UserId) -> Result<bool, StoreError> {
        Err(StoreError::ReadOnly)
    }

    /// A service bind and a base-object read of the base DN.
    async fn ping(&self) -> Result<(), StoreError> {
        self.with_service(|s, ldap| {
            Box::pin(async move {
                let timeout = s.pool.connector().timeout;
                let searching = ldap.with_timeout(timeout).search(
                    &s.settings.base_dn,
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["1.1"],
                );
                let result = tokio::time::timeout(timeout, searching)
                    .await
                    .map_err(|_| timed_out("ping"))?
                    .map_err(|e| unavailable("the directory did not answer", &e))?;
                match result.1.rc {
                    rc::SUCCESS => Ok(()),
                    code => Err(result_error("reading LDAP_BASE_DN", code, &result.1.text)),
                }
            })
        })
        .await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(self.pool.status())
    }

    /// Service bind, search (exactly one entry), bind as that entry. An empty password is
    /// refused before anything is sent: a simple bind with one is an anonymous bind, which
    /// directories accept.
    async fn authenticate(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
        password: &Secret,
    ) -> Result<PasswordCheck, StoreError> {
        if password.is_empty() || tenant.is_some() {
            return Ok(PasswordCheck::Checked {
                user: None,
                valid: false,
            });
        }
        let Some(entry) = ({
            let filter = self.email_filter(email);
            self.with_service(|s, ldap| {
                let filter = filter.clone();
                Box::pin(async move { s.find_one(ldap, &filter).await })
            })
            .await?
        }) else {
            return Ok(PasswordCheck::Checked {
                user: None,
                valid: false,
            });
        };
        let connector = self.pool.connector();
        let mut ldap = connector.connect().await?;
        let valid = connector.bind(&mut ldap, &entry.dn, password).await;
        // Best effort: the connection is closed either way when `ldap` is dropped.
        let _ = tokio::time::timeout(connector.timeout, ldap.unbind()).await;
        match valid {
            Ok(valid) => Ok(PasswordCheck::Checked {
                user: Some(entry.user),
                valid,
            }),
            // A policy refusal of the user's bind (a disabled or locked account: Active
            // Directory answers 49 with a sub-code, OpenLDAP's ppolicy 53) is a wrong password
            // to the client.
            Err(StoreError::Backend(m)) => {
                tracing::info!(reason = %m, "the directory refused a user's bind");
                Ok(PasswordCheck::Checked {
                    user: Some(entry.user),
                    valid: false,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn read_only(&self) -> bool {
        true
    }
}

/// The attribute's values, by name compared case-insensitively (servers answer in their
/// schema's spelling).
fn get<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a Vec<String>> {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn first<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    get(attrs, name).and_then(|v| v.first()).map(String::as_str)
}

/// The entry's id: a text attribute as is; a 16-byte binary one (`objectGUID`) as a UUID.
fn id_of(entry: &SearchEntry, attribute: &str) -> Option<String> {
    if let Some(bytes) = entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .and_then(|(_, v)| v.first())
    {
        let bytes: [u8; 16] = bytes.as_slice().try_into().ok()?;
        return Some(uuid::Uuid::from_bytes_le(bytes).to_string());
    }
    let id = first(&entry.attrs, attribute)?.trim();
    if attribute.eq_ignore_ascii_case("objectGUID") && id.len() == 16 {
        // A GUID whose 16 bytes happen to be valid UTF-8 lands among the text attributes.
        let bytes: [u8; 16] = id.as_bytes().try_into().ok()?;
        return Some(uuid::Uuid::from_bytes_le(bytes).to_string());
    }
    (!id.is_empty()).then(|| id.to_owned())
}

/// An LDAP GeneralizedTime (`20261206024700Z`, `20261206024700.0Z`) in UTC.
fn generalized_time(text: &str) -> Option<DateTime<Utc>> {
    let digits = text.get(..14)?;
    NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use authura_core::{Role, Secret, UserId};
    use ldap3::SearchEntry;

    use super::{LdapStore, generalized_time, id_of};
    use crate::{LdapSettings, RoleMap};

    fn store(id_attribute: &str, user_filter: &str) -> LdapStore {
        LdapStore::new(LdapSettings {
            url: "ldap://127.0.0.1:1".into(),
            starttls: false,
            bind_dn: None,
            bind_password: Secret::new(""),
            base_dn: "dc=example,dc=com".into(),
            user_filter: user_filter.into(),
            id_attribute: id_attribute.into(),
            email_attribute: "mail".into(),
            group_base_dn: "dc=example,dc=com".into(),
            group_filter: LdapSettings::DEFAULT_GROUP_FILTER.into(),
            role_map: RoleMap::default(),
            admin_role: Role::parse("admin").unwrap(),
            default_role: Role::parse("user").unwrap(),
            timeout: LdapSettings::DEFAULT_TIMEOUT,
            extra_ca_pem: None,
            pool_size: 1,
        })
        .unwrap()
    }

    /// Active Directory's `objectGUID`: 16 bytes, the first three fields little-endian, shown
    /// as the UUID Windows shows; the id filter takes the same bytes escaped one by one.
    #[test]
    fn object_guids_are_uuids_both_ways() {
        let bytes: Vec<u8> = vec![
            0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34,
            0x56, 0x78,
        ];
        let entry = SearchEntry {
            dn: "CN=a,DC=example,DC=com".into(),
            attrs: HashMap::new(),
            bin_attrs: HashMap::from([("objectGUID".to_owned(), vec![bytes])]),
        };
        let id = id_of(&entry, "objectGUID").unwrap();
        assert_eq!(id, "12345678-1234-5678-9abc-def012345678");
        let store = store("objectGUID", "(userPrincipalName={email})");
        assert_eq!(
            store.id_filter(&UserId::Text(id)).unwrap(),
            "(&(userPrincipalName=*)(objectGUID=\\78\\56\\34\\12\\34\\12\\78\\56\\9a\\bc\\de\\f0\\12\\34\\56\\78))"
        );
        // Not a UUID: no filter at all (no user), never a malformed one.
        assert_eq!(store.id_filter(&UserId::Text("x)(cn=*".into())), None);
    }

    #[test]
    fn text_ids_are_escaped_in_the_id_filter() {
        let store = store("entryUUID", "(&(objectClass=person)(mail={email}))");
        assert_eq!(
            store.id_filter(&UserId::Text("a*)(cn=b".into())).unwrap(),
            "(&(&(objectClass=person)(mail=*))(entryUUID=a\\2a\\29\\28cn=b))"
        );
        let email = authura_core::Email::parse("al*ce@example.com").unwrap();
        assert_eq!(
            store.email_filter(&email),
            "(&(objectClass=person)(mail=al\\2ace@example.com))"
        );
    }

    #[test]
    fn an_entry_without_an_id_or_address_is_nobody() {
        let store = store("entryUUID", "(mail={email})");
        let entry = |attrs: &[(&str, &str)]| SearchEntry {
            dn: "uid=a,dc=example,dc=com".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            bin_attrs: HashMap::new(),
        };
        let id = ("entryUUID", "0e4674f8-8572-1041-93be-0f70114e819c");
        assert!(store.entry(entry(&[id])).unwrap().is_none());
        assert!(store.entry(entry(&[id, ("mail", "  ")])).unwrap().is_none());
        assert!(
            store
                .entry(entry(&[("mail", "a@example.com")]))
                .unwrap()
                .is_none()
        );
        let found = store
            .entry(entry(&[
                id,
                ("MAIL", "A@Example.com"),
                ("createTimestamp", "20250102030405Z"),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(found.user.email.as_str(), "a@example.com");
        assert_eq!(
            found.user.verified_at.unwrap().to_rfc3339(),
            "2025-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn generalized_times_are_read_in_utc() {
        let t = generalized_time("20261206024700Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-06T02:47:00+00:00");
        assert_eq!(generalized_time("20261206024700.0Z"), Some(t));
        assert_eq!(generalized_time("yesterday"), None);
    }
}
