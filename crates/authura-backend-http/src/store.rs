//! `HttpStore`: the `UserStore` over the REST contract, and the mapping of the service's answers
//! (and of its silence) to the store's domain errors.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use authura_core::error::with_causes;
use authura_core::types::{Email, NewUser, TenantId, User, UserChanges, UserId};
use authura_core::{Secret, StoreError, UserPage, UserQuery, UserStore};

use crate::wire::{CreateBody, PatchBody, WirePage, WireUser};

/// How to reach the service (`HTTP_URL`, `HTTP_AUTH_HEADER_KEY`, `HTTP_AUTH_HEADER_VALUE`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The users collection, e.g. `https://api.example.com/authura/users` (http or https).
    pub url: Url,
    /// The name of the header that carries the credential (`Authorization` by default).
    pub auth_header_key: String,
    /// The credential; `None` sends no auth header.
    pub auth_header_value: Option<Secret>,
    /// How long one request may take, from connecting to the end of the body.
    pub timeout: Duration,
    /// A PEM bundle trusted in addition to the system roots (`EXTRA_CA_FILE`).
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl HttpSettings {
    /// The request timeout the service is documented to get: 10 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Checks the settings without connecting: an http(s) URL without query or fragment, a
    /// valid header name, a header value that can be sent, a readable CA bundle.
    ///
    /// # Errors
    /// `Backend` naming the variable at fault; never repeating the header's value.
    pub fn check(&self) -> Result<(), StoreError> {
        Prepared::new(self).map(drop)
    }
}

/// A [`UserStore`] over an operator's REST service (`docs/backends/http.md`).
#[derive(Clone)]
pub struct HttpStore {
    client: reqwest::Client,
    base: Url,
}

impl fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's default headers hold the credential; only the URL is shown.
        f.debug_struct("HttpStore")
            .field("url", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// The validated parts of the settings.
struct Prepared {
    base: Url,
    header: Option<(HeaderName, HeaderValue)>,
    roots: Vec<reqwest::Certificate>,
}

impl Prepared {
    fn new(settings: &HttpSettings) -> Result<Prepared, StoreError> {
        let bad = |why: String| StoreError::Backend(why);
        let url = &settings.url;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("HTTP_URL: expected an http or https URL".into()));
        }
        if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
            return Err(bad(
                "HTTP_URL: expected the users collection's URL, without query or fragment".into(),
            ));
        }
        let mut base = url.clone();
        // `https://api/users/` and `https://api/users` are the same collection.
        if base.path().len() > 1 && base.path().ends_with('/') {
            let trimmed = base.path().trim_end_matches('/').to_owned();
            base.set_path(&trimmed);
        }
        let header = match &settings.auth_header_value {
            None => None,
            Some(value) => {
                let name =
                    HeaderName::from_bytes(settings.auth_header_key.as_bytes()).map_err(|_| {
                        bad(format!(
                            "HTTP_AUTH_HEADER_KEY: {:?} is not a valid header name",
                            settings.auth_header_key
                        ))
                    })?;
                let mut value =
                    HeaderValue::from_str(value.expose()).map_err(|_| {
                        bad("HTTP_AUTH_HEADER_VALUE: not a valid header value (control characters?)"
                        .into())
                    })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        let roots = match &settings.extra_ca_pem {
            None => Vec::new(),
            Some(pem) => reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(format!("EXTRA_CA_FILE: cannot read it for HTTP_URL: {e}")))?,
        };
        Ok(Prepared {
            base,
            header,
            roots,
        })
    }
}

impl HttpStore {
    /// Builds the client. Nothing is sent until the first call.
    ///
    /// # Errors
    /// `Backend` when the settings are invalid (see [`HttpSettings::check`]).
    pub fn new(settings: &HttpSettings) -> Result<HttpStore, StoreError> {
        let prepared = Prepared::new(settings)?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        if let Some((name, value)) = prepared.header {
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("authura/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            // A redirect would carry the credential somewhere else: not followed, an error.
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(prepared.roots)
            .build()
            .map_err(|e| {
                StoreError::Backend(with_causes(
                    format!("cannot build the HTTP client: {e}"),
                    std::error::Error::source(&e),
                ))
            })?;
        Ok(HttpStore {
            client,
            base: prepared.base,
        })
    }

    /// `HTTP_URL/{id}`, the id percent-encoded as one path segment.
    fn item(&self, id: &UserId) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&id.to_string());
        }
        url
    }

    fn with_tenant(mut url: Url, tenant: Option<&TenantId>) -> Url {
        if let Some(t) = tenant {
            url.query_pairs_mut().append_pair("tenant_id", t.as_str());
        }
        url
    }

    /// Sends one request; `op` names it in logs and errors (never the URL's query, which holds
    /// an email, nor any header).
    async fn send(
        &self,
        op: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, String), StoreError> {
        let response = request.send().await.map_err(|e| transport(op, &e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| transport(op, &e))?;
        tracing::debug!(op, status = status.as_u16(), "http backend answered");
        Ok((status, body))
    }

    async fn lookup(&self, op: &'static str, url: Url) -> Result<Option<User>, StoreError> {
        let (status, body) = self.send(op, self.client.get(url)).await?;
        match status {
            StatusCode::OK => user(op, &body).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(unexpected(op, other, &body)),
        }
    }
}

#[async_trait]
impl UserStore for HttpStore {
    async fn find_by_email(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        let mut url = self.base.clone();
        url.query_pairs_mut().append_pair("email", email.as_str());
        let found = self
            .lookup("find_by_email", Self::with_tenant(url, tenant))
            .await?;
        match found {
            Some(user) if user.email != *email || user.tenant.as_ref() != tenant => {
                Err(StoreError::Backend(
                    "find_by_email: the service answered with another user (email or tenant_id \
                     differs)"
                        .into(),
                ))
            }
            found => Ok(found),
        }
    }

    async fn find_by_id(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        let url = Self::with_tenant(self.item(id), tenant);
        match self.lookup("find_by_id", url).await? {
            Some(user)
                if user.id.to_string() != id.to_string() || user.tenant.as_ref() != tenant =>
            {
                Err(StoreError::Backend(
                    "find_by_id: the service answered with another user (id or tenant_id differs)"
                        .into(),
                ))
            }
            found => Ok(found),
        }
    }

    async fn create(&self, new: NewUser) -> Result<User, StoreError> {
        const OP: &str = "create";
        let request = self
            .client
            .post(self.base.clone())
            .json(&CreateBody::new(&new));
        let (status, body) = self.send(OP, request).await?;
        match status {
            StatusCode::OK | StatusCode::CREATED => user(OP, &body),
            StatusCode::CONFLICT => Err(StoreError::Conflict),
            other => Err(unexpected(OP, other, &body)),
        }
    }

    async fn update(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        const OP: &str = "update";
        let url = Self::with_tenant(self.item(id), tenant);
        let request = self
            .client
            .request(Method::PATCH, url)
            .json(&PatchBody::new(&changes));
        let (status, body) = self.send(OP, request).await?;
        match status {
            StatusCode::OK => user(OP, &body),
            StatusCode::NOT_FOUND => Err(StoreError::NotFound),
            StatusCode::CONFLICT => Err(StoreError::Conflict),
            other => Err(unexpected(OP, other, &body)),
        }
    }

    /// `PATCH` with `expected`: the service answers 412 when the stored email or password
    /// hash differs (and writes nothing).
    async fn update_if(
        &self,
        tenant: Option<&TenantId>,
        expected: &User,
        changes: UserChanges,
    ) -> Result<User, StoreError> {
        const OP: &str = "update_if";
        let url = Self::with_tenant(self.item(&expected.id), tenant);
        let request = self
            .client
            .request(Method::PATCH, url)
            .json(&PatchBody::conditional(&changes, expected));
        let (status, body) = self.send(OP, request).await?;
        match status {
            StatusCode::OK => user(OP, &body),
            StatusCode::NOT_FOUND => Err(StoreError::NotFound),
            StatusCode::CONFLICT => Err(StoreError::Conflict),
            StatusCode::PRECONDITION_FAILED => Err(StoreError::Changed),
            other => Err(unexpected(OP, other, &body)),
        }
    }

    /// `GET ?query=&after=&limit=&tenant_id=` (optional in the contract): 404, 405 or 501 mean
    /// the service does not list.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        const OP: &str = "list";
        let limit = query.page_size();
        let mut url = self.base.clone();
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(text) = query.filter() {
                pairs.append_pair("query", &text);
            }
            if let Some(after) = &query.after {
                pairs.append_pair("after", &after.to_string());
            }
            pairs.append_pair("limit", &limit.to_string());
        }
        let url = Self::with_tenant(url, query.tenant.as_ref());
        let (status, body) = self.send(OP, self.client.get(url)).await?;
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => {
                return Err(StoreError::Unsupported("listing users".into()));
            }
            other => return Err(unexpected(OP, other, &body)),
        }
        let page: WirePage = serde_json::from_str(&body).map_err(|e| {
            StoreError::Backend(format!("{OP}: the service's answer is not a page: {e}"))
        })?;
        let page = page.into_page()?;
        if page.users.len() > limit
            || page
                .users
                .iter()
                .any(|u| u.tenant != query.tenant || !query.matches(u))
        {
            return Err(StoreError::Backend(format!(
                "{OP}: the service answered more users than asked for, or users the query does \
                 not match"
            )));
        }
        Ok(page)
    }

    /// `DELETE /{id}?tenant_id=` (optional in the contract). 404 is both "no such user" and
    /// what a service without the call answers, so a 404 is followed by a lookup: a user who is
    /// still there means the service does not delete.
    async fn delete(&self, tenant: Option<&TenantId>, id: &UserId) -> Result<bool, StoreError> {
        const OP: &str = "delete";
        let url = Self::with_tenant(self.item(id), tenant);
        let (status, body) = self.send(OP, self.client.delete(url)).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => match self.find_by_id(tenant, id).await? {
                None => Ok(false),
                Some(_) => Err(StoreError::Unsupported("deleting users".into())),
            },
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                Err(StoreError::Unsupported("deleting users".into()))
            }
            other => Err(unexpected(OP, other, &body)),
        }
    }

    /// A lookup of an address that cannot exist (`readiness-probe@authura.invalid`): any 200 or
    /// 404 means the service is there and accepts our credential.
    async fn ping(&self) -> Result<(), StoreError> {
        const OP: &str = "ping";
        let mut url = self.base.clone();
        url.query_pairs_mut()
            .append_pair("email", "readiness-probe@authura.invalid");
        let (status, body) = self.send(OP, self.client.get(url)).await?;
        match status {
            StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            other => Err(unexpected(OP, other, &body)),
        }
    }
}

/// Reads the user object of a 200 or 201 answer.
fn user(op: &str, body: &str) -> Result<User, StoreError> {
    let wire: WireUser = serde_json::from_str(body).map_err(|e| {
        StoreError::Backend(format!(
            "{op}: the service's answer is not a user object: {e}"
        ))
    })?;
    wire.into_user().map_err(|e| {
        StoreError::Backend(format!(
            "{op}: {}",
            e.to_string().replace("backend error: ", "")
        ))
    })
}

/// A status the contract does not give for this call: 5xx and 429 are the service being
/// unavailable (503 to our clients), anything else its error (502). The message carries the
/// service's `error` code when its body has one, never the rest of the body.
fn unexpected(op: &str, status: StatusCode, body: &str) -> StoreError {
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .filter(|c| c.len() <= 64 && c.chars().all(|c| c.is_ascii_graphic()));
    let detail = match code {
        Some(code) => format!("{op}: the service answered {status} ({code})"),
        None => format!("{op}: the service answered {status}"),
    };
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Backend(detail)
    }
}

/// A request that got no answer: refused, reset, timed out, TLS failed. All are `Unavailable`
/// except an answer we could not read as HTTP, and a request we could not build.
fn transport(op: &str, err: &reqwest::Error) -> StoreError {
    let detail = with_causes(
        format!("{op}: {}", without_url(err)),
        std::error::Error::source(err),
    );
    if err.is_builder() {
        StoreError::Backend(detail)
    } else {
        StoreError::Unavailable(detail)
    }
}

/// reqwest's message names the URL, whose query may hold an email; the kind is enough.
fn without_url(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else if err.is_body() || err.is_decode() {
        "the answer's body broke off".to_owned()
    } else if err.is_builder() {
        "cannot build the request".to_owned()
    } else {
        "the request failed".to_owned()
    }
}
