//! `HasuraStore`: the `UserStore` over Hasura's generated GraphQL API for the `users` table.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use authura_core::error::with_causes;
use authura_core::types::{Email, NewUser, TenantId, User, UserChanges, UserId};
use authura_core::{Secret, StoreError, UserPage, UserQuery, UserStore};

use crate::graphql::execute;

/// The request timeout when `HASURA_TIMEOUT`-like tuning is not needed: long enough for a busy
/// Hasura, short enough that a hung one answers 503 before a client gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`HasuraStore::new`] needs: `HASURA_URL`, `HASURA_GRAPHQL_ADMIN_SECRET` and
/// `EXTRA_CA_FILE`'s contents.
#[derive(Debug, Clone)]
pub struct HasuraSettings {
    /// Hasura's GraphQL endpoint (`https://hasura.internal/v1/graphql`). A URL without a path
    /// (`http://hasura:8080`) means its `/v1/graphql`.
    pub url: url::Url,
    /// The admin secret, sent as `x-hasura-admin-secret`; never logged.
    pub admin_secret: Secret,
    /// How long one request may take, connecting included.
    pub timeout: Duration,
    /// PEM certificates trusted for TLS in addition to the system's roots.
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// A `UserStore` over Hasura. Cloning is cheap and shares the HTTP connection pool.
#[derive(Clone)]
pub struct HasuraStore {
    client: reqwest::Client,
    url: url::Url,
    admin_secret: Secret,
}

impl HasuraStore {
    /// Builds the HTTP client. Connects to nothing: call [`UserStore::ping`] to check Hasura.
    ///
    /// # Errors
    /// `Backend` when the URL is not http(s) or the extra CA bundle does not parse.
    pub fn new(settings: &HasuraSettings) -> Result<HasuraStore, StoreError> {
        let url = endpoint(&settings.url)?;
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &settings.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                StoreError::Backend(format!("cannot read the extra CA certificates: {e}"))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| {
            StoreError::Backend(with_causes(
                format!("cannot build the HTTP client: {e}"),
                std::error::Error::source(&e),
            ))
        })?;
        Ok(HasuraStore {
            client,
            url,
            admin_secret: settings.admin_secret.clone(),
        })
    }

    /// The GraphQL endpoint requests go to.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    async fn run<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        query: &'static str,
        variables: Value,
    ) -> Result<T, StoreError> {
        execute(
            &self.client,
            &self.url,
            self.admin_secret.expose(),
            operation,
            query,
            variables,
        )
        .await
    }
}

impl fmt::Debug for HasuraStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the admin secret.
        f.debug_struct("HasuraStore")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

const FIND_BY_EMAIL: &str = "query AuthuraFindUserByEmail($where: users_bool_exp!) { \
     users(where: $where, limit: 1) { id email role password tenant_id verified_at } }";
const FIND_BY_ID: &str = "query AuthuraFindUserById($id: Int!) { \
     users_by_pk(id: $id) { id email role password tenant_id verified_at } }";
const CREATE: &str = "mutation AuthuraCreateUser($object: users_insert_input!) { \
     insert_users_one(object: $object) { id email role password tenant_id verified_at } }";
const UPDATE: &str = "mutation AuthuraUpdateUser($id: Int!, $set: users_set_input!) { \
     update_users_by_pk(pk_columns: {id: $id}, _set: $set) \
     { id email role password tenant_id verified_at } }";
const UPDATE_IF: &str = "mutation AuthuraUpdateUserIf($where: users_bool_exp!, $set: users_set_input!) { \
     update_users(where: $where, _set: $set) \
     { affected_rows returning { id email role password tenant_id verified_at } } }";
const DELETE: &str = "mutation AuthuraDeleteUser($id: Int!) { \
     delete_users_by_pk(id: $id) { id } }";
const LIST: &str = "query AuthuraListUsers($where: users_bool_exp!, $limit: Int!) { \
     users(where: $where, order_by: {id: asc}, limit: $limit) \
     { id email role password tenant_id verified_at } }";
const PING: &str = "query AuthuraPing { users(limit: 1) { id } }";

#[async_trait]
impl UserStore for HasuraStore {
    async fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        // `Email` is already lower-case, as stored.
        let variables = json!({
            "where": {
                "email": { "_eq": email.as_str() },
                "tenant_id": tenant_filter(tenant),
            }
        });
        let data: UsersData = self
            .run("AuthuraFindUserByEmail", FIND_BY_EMAIL, variables)
            .await?;
        data.users
            .into_iter()
            .next()
            .map(UserRow::into_user)
            .transpose()
    }

    async fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        let Some(id) = row_id(id) else {
            return Ok(None);
        };
        let data: ByPkData = self
            .run("AuthuraFindUserById", FIND_BY_ID, json!({ "id": id }))
            .await?;
        match data.users_by_pk {
            Some(row) if row.tenant_id.as_deref() == tenant.map(TenantId::as_str) => {
                row.into_user().map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let object = json!({
            "email": user.email.as_str(),
            "role": user.role.as_str(),
            "password": user.password_hash.as_str(),
            "tenant_id": user.tenant.as_ref().map(TenantId::as_str),
            "verified_at": user.verified_at.as_ref().map(timestamp),
        });
        let data: InsertData = self
            .run("AuthuraCreateUser", CREATE, json!({ "object": object }))
            .await?;
        data.insert_users_one
            .ok_or_else(|| StoreError::Backend("hasura inserted no user".to_owned()))?
            .into_user()
    }

    async fn update(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        // `update_users_by_pk` cannot also filter on the tenant: check it first. The id is the
        // primary key and never changes, so the user found is the one updated.
        let Some(current) = self.find_by_id(tenant, id).await? else {
            return Err(StoreError::NotFound);
        };
        let set = set_input(&changes);
        if set.is_empty() {
            return Ok(current);
        }
        let Some(id) = row_id(id) else {
            return Err(StoreError::NotFound);
        };
        let data: UpdateData = self
            .run(
                "AuthuraUpdateUser",
                UPDATE,
                json!({ "id": id, "set": Value::Object(set) }),
            )
            .await?;
        data.update_users_by_pk
            .ok_or(StoreError::NotFound)?
            .into_user()
    }

    async fn update_if(
        &self,
        tenant: Option<&TenantId>,
        expected: &User,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        let set = set_input(&changes);
        let Some(id) = row_id(&expected.id) else {
            return Err(StoreError::NotFound);
        };
        let gone_or_changed = || async {
            match self.find_by_id(tenant, &expected.id).await? {
                Some(_) => Err(StoreError::Changed),
                None => Err(StoreError::NotFound),
            }
        };
        if set.is_empty() {
            return match self.find_by_id(tenant, &expected.id).await? {
                Some(u)
                    if u.email == expected.email && u.password_hash == expected.password_hash =>
                {
                    Ok(u)
                }
                _ => gone_or_changed().await,
            };
        }
        // `update_users` with the expected state in `where`: Hasura runs it as one conditional
        // UPDATE, so of racing calls with the same expectation exactly one changes a row. The
        // tenant is in the condition too.
        let filter = json!({
            "id": { "_eq": id },
            "tenant_id": tenant_filter(tenant),
            "email": { "_eq": expected.email.as_str() },
            "password": { "_eq": expected.password_hash.as_str() },
        });
        let data: UpdateIfData = self
            .run(
                "AuthuraUpdateUserIf",
                UPDATE_IF,
                json!({ "where": filter, "set": Value::Object(set) }),
            )
            .await?;
        match data
            .update_users
            .and_then(|r| r.returning.into_iter().next())
        {
            Some(row) => row.into_user(),
            None => gone_or_changed().await,
        }
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let mut all = vec![json!({ "tenant_id": tenant_filter(query.tenant.as_ref()) })];
        if let Some(after) = &query.after {
            // The id is an `Int`: a cursor beyond it (or not a number) sorts after every row.
            match row_id(after) {
                Some(after) => all.push(json!({ "id": { "_gt": after } })),
                None => return Ok(UserPage::default()),
            }
        }
        if let Some(text) = query.filter() {
            let mut any =
                vec![json!({ "email": { "_ilike": format!("%{}%", like_escaped(&text)) } })];
            if let Some(id) = row_id(&UserId::from_subject(&text))
                && id.to_string() == text
            {
                any.push(json!({ "id": { "_eq": id } }));
            }
            all.push(json!({ "_or": any }));
        }
        let limit = i32::try_from(query.page_size() + 1).unwrap_or(i32::MAX);
        let data: UsersData = self
            .run(
                "AuthuraListUsers",
                LIST,
                json!({ "where": { "_and": all }, "limit": limit }),
            )
            .await?;
        let found = data
            .users
            .into_iter()
            .map(UserRow::into_user)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(query.page(found))
    }

    async fn delete(&self, tenant: Option<&TenantId>, id: &UserId) -> Result<bool, StoreError> {
        // `delete_users_by_pk` cannot also filter on the tenant: check it first (the id is the
        // primary key and never changes, so the user found is the one deleted).
        if self.find_by_id(tenant, id).await?.is_none() {
            return Ok(false);
        }
        let Some(id) = row_id(id) else {
            return Ok(false);
        };
        let data: DeleteData = self
            .run("AuthuraDeleteUser", DELETE, json!({ "id": id }))
            .await?;
        Ok(data.delete_users_by_pk.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: PingData = self.run("AuthuraPing", PING, json!({})).await?;
        Ok(())
    }
}

/// The changes as a `users_set_input`.
fn set_input(changes: &UserChanges) -> Map<String, Value> {
    let mut set = Map::new();
    if let Some(email) = &changes.email {
        set.insert("email".into(), email.as_str().into());
    }
    if let Some(role) = &changes.role {
        set.insert("role".into(), role.as_str().into());
    }
    if let Some(hash) = &changes.password_hash {
        set.insert("password".into(), hash.as_str().into());
    }
    if let Some(at) = &changes.verified_at {
        set.insert("verified_at".into(), timestamp(at).into());
    }
    set
}

/// The tenant as a `String_comparison_exp`: `_eq` a tenant, or `_is_null` for none.
fn tenant_filter(tenant: Option<&TenantId>) -> Value {
    match tenant {
        Some(t) => json!({ "_eq": t.as_str() }),
        None => json!({ "_is_null": true }),
    }
}

/// The `integer` primary key a `UserId` names, if any: the seed's `id` is a SERIAL (GraphQL
/// `Int`, 32 bits), so anything else matches no row and is not sent.
fn row_id(id: &UserId) -> Option<i32> {
    match id {
        UserId::Int(n) => i32::try_from(*n).ok(),
        UserId::Text(s) => s.parse().ok(),
    }
}

/// `text` with `ILIKE`'s wildcards (`%`, `_`) and its escape character (`\\`) escaped, so it
/// matches only itself.
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A `timestamptz` literal, microseconds kept.
fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

#[derive(Debug, Deserialize)]
struct UsersData {
    users: Vec<UserRow>,
}

#[derive(Debug, Deserialize)]
struct ByPkData {
    users_by_pk: Option<UserRow>,
}

#[derive(Debug, Deserialize)]
struct InsertData {
    insert_users_one: Option<UserRow>,
}

#[derive(Debug, Deserialize)]
struct UpdateData {
    update_users_by_pk: Option<UserRow>,
}

#[derive(Debug, Deserialize)]
struct UpdateIfData {
    update_users: Option<MutationResponse>,
}

#[derive(Debug, Deserialize)]
struct MutationResponse {
    returning: Vec<UserRow>,
}

#[derive(Debug, Deserialize)]
struct DeleteData {
    delete_users_by_pk: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct PingData {
    #[serde(rename = "users")]
    _users: Vec<Value>,
}

/// A row of `users` as Hasura returns it. `Debug` leaves out the password hash.
#[derive(Deserialize)]
struct UserRow {
    id: i64,
    email: String,
    role: String,
    password: String,
    tenant_id: Option<String>,
    verified_at: Option<String>,
}

impl fmt::Debug for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("tenant_id", &self.tenant_id)
            .field("verified_at", &self.verified_at)
            .finish_non_exhaustive()
    }
}

impl UserRow {
    /// Validates a returned row into a domain user; the error names the row and the field,
    /// never the password hash.
    fn into_user(self) -> Result<User, StoreError> {
        let id = self.id;
        let verified_at = self
            .verified_at
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        StoreError::Backend(format!("user {id} has an invalid verified_at"))
                    })
            })
            .transpose()?;
        authura_core::store::StoredUser {
            id: UserId::Int(id),
            email: self.email,
            role: self.role,
            tenant_id: self.tenant_id,
            password: self.password,
            verified_at,
        }
        .into_user()
    }
}

/// `HASURA_URL` as the endpoint to post to: http(s) only; an empty path means `/v1/graphql`.
fn endpoint(url: &url::Url) -> Result<url::Url, StoreError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(StoreError::Backend(format!(
            "the Hasura URL must be http or https, not {}",
            url.scheme()
        )));
    }
    let mut url = url.clone();
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/v1/graphql");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_outside_the_integer_range_match_nothing() {
        assert_eq!(row_id(&UserId::Int(7)), Some(7));
        assert_eq!(row_id(&UserId::Text("7".into())), Some(7));
        assert_eq!(row_id(&UserId::Int(i64::MAX)), None);
        assert_eq!(row_id(&UserId::Text("no-such-user".into())), None);
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escaped("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(like_escaped("plain@example.com"), "plain@example.com");
    }

    #[test]
    fn a_url_without_a_path_means_v1_graphql() {
        let check = |input: &str, expected: &str| {
            let url = endpoint(&input.parse().unwrap()).unwrap();
            assert_eq!(url.as_str(), expected);
        };
        check("http://hasura:8080", "http://hasura:8080/v1/graphql");
        check(
            "https://h.example/v1/graphql",
            "https://h.example/v1/graphql",
        );
        check(
            "https://h.example/custom/path",
            "https://h.example/custom/path",
        );
        assert!(endpoint(&"ftp://h.example".parse().unwrap()).is_err());
    }
}
