//! What handlers take from a request: the [`Tenant`], the [`Body`], the [`Bearer`] token and the
//! [`Captcha`] check.
//!
//! SPEC §3 checks a request in this order: rate limit, host (middleware), then tenant, body,
//! captcha, authentication, and the flow's own rules. actix-web starts every argument's extractor
//! at once and polls them in argument order, so a check that fails at once would overtake a body
//! still arriving. Hence only [`Tenant`] (synchronous, always the first argument) and [`Body`]
//! fail while extracting; [`Captcha`] and [`Bearer`] are checked by the handler, after the body,
//! with [`Captcha::check`] and [`Bearer::token`].

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, web};
use authura_core::sessions::Client;
use authura_core::{CoreError, TenantId};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The shared state, as handlers take it.
pub type State = web::Data<AppState>;

/// The state of a request (always there: [`crate::routes::app`] installs it).
fn state_of(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<State>()
        .map(|data| &***data)
        .ok_or_else(|| ApiError::internal("the application state is missing"))
}

/// The request's tenant: `TENANT_ID_HEADER`, else the host read from `HOST_HEADER` (port
/// dropped); `None` when multi-tenancy is off. Neither, an invalid tenant, or the tenant header
/// sent twice: 400 `tenant_required`.
#[derive(Debug)]
pub struct Tenant(pub Option<TenantId>);

impl Tenant {
    /// The tenant, as the flows take it.
    pub fn get(&self) -> Option<&TenantId> {
        self.0.as_ref()
    }

    fn resolve(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = state_of(req)?;
        if !state.multi_tenant() {
            return Ok(Tenant(None));
        }
        let required = || ApiError::tenant_required(state.tenant_header());
        let invalid = || ApiError::tenant_invalid(state.tenant_header());
        // A tenant header that is there decides, whatever it holds: one that is not a valid
        // tenant (not visible ASCII, empty, too long) or is sent more than once is refused,
        // never replaced by the host's tenant.
        let mut sent = req.headers().get_all(state.tenant_header());
        let tenant = match (sent.next(), sent.next()) {
            (Some(_), Some(_)) => return Err(invalid()),
            (Some(value), None) => value.to_str().map_err(|_| invalid())?.to_owned(),
            (None, _) => match req
                .headers()
                .get(state.host_header())
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
            {
                Some(host) => strip_port(host).to_ascii_lowercase(),
                None => return Err(required()),
            },
        };
        TenantId::parse(&tenant)
            .map(|t| Tenant(Some(t)))
            .map_err(|_| invalid())
    }
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::resolve(req))
    }
}

/// A body of at most [`BODY_LIMIT`] bytes, parsed as JSON when `Content-Type` is
/// `application/json` or `+json`, else as a form: 400 `invalid_body` when it cannot be read or
/// parsed, 413 `body_too_large` when it is (or says it is) larger than the limit.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T> std::ops::Deref for Body<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let json = is_json(req);
        let encoded = req
            .headers()
            .get_all(header::CONTENT_ENCODING)
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
        if encoded {
            // This service decodes no content coding: read as it is, a compressed body would
            // be refused as unparsable, which misleads the client about what to fix.
            return Box::pin(std::future::ready(Err(ApiError::unsupported_encoding())));
        }
        let mut payload = payload.take();
        let timing = state_of(req).map(|s| (s.request_timeout(), s.stopping()));
        Box::pin(async move {
            let (timeout, stopping) = timing?;
            let read = read_in_time(read_limited(&mut payload, declared), timeout, stopping).await;
            let bytes = read.inspect_err(|_| keep_until_closed(payload))?;
            parse_body(json, &bytes).map(Body)
        })
    }
}

/// Parses a body that has been read: JSON when `json`, else a form; 400 `invalid_body` when it
/// does not parse as a `T`. The fuzz targets call it through [`crate::fuzzing`].
pub(crate) fn parse_body<T: DeserializeOwned>(json: bool, bytes: &[u8]) -> Result<T, ApiError> {
    if json {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::invalid_body(format!("invalid JSON body: {e}")))
    } else {
        serde_urlencoded::from_bytes(bytes)
            .map_err(|e| ApiError::invalid_body(format!("invalid form body: {e}")))
    }
}

/// Whether the request's `Content-Type` is JSON (`application/json` or `…+json`).
fn is_json(req: &HttpRequest) -> bool {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    content_type == "application/json" || content_type.ends_with("+json")
}

/// How long a body still arriving when the server begins to stop may take to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `read` until `timeout` has passed, or [`SHUTDOWN_GRACE`] after the server began to stop
/// if that is sooner: 408 then. A body that stops arriving (a `Content-Length` body cut short, a
/// chunked body that never ends) so holds its connection no longer than `REQUEST_TIMEOUT`, and
/// never holds up a shutdown.
async fn read_in_time<T>(
    read: impl std::future::Future<Output = Result<T, ApiError>>,
    timeout: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<T, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let stopped = async move {
        // A closed channel (the state dropped) never stops anything.
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + SHUTDOWN_GRACE)).await;
    };
    tokio::select! {
        result = read => result,
        () = tokio::time::sleep_until(deadline) => Err(ApiError::request_timeout()),
        () = stopped => Err(ApiError::request_timeout()),
    }
}

/// Keeps the unread rest of a refused body from being dropped while the answer is written.
///
/// actix-web drains a chunked body whose reader was dropped, to keep the connection: for a
/// chunked body that never ends, that would hold the connection for ever. A body still held
/// when the answer is written makes it close the connection instead (after a short linger), so
/// the payload is held a little longer than that takes.
fn keep_until_closed(payload: Payload) {
    actix_web::rt::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        drop(payload);
    });
}

/// Reads the whole payload, refusing a declared or actual length over [`BODY_LIMIT`] without
/// reading further.
async fn read_limited(
    payload: &mut Payload,
    declared: Option<usize>,
) -> Result<web::BytesMut, ApiError> {
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ApiError::body_too_large(BODY_LIMIT));
    }
    let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid_body("the body could not be read"))?;
        if bytes.len() + chunk.len() > BODY_LIMIT {
            return Err(ApiError::body_too_large(BODY_LIMIT));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The `Authorization` header, checked as a Bearer token by [`Bearer::token`] (after the body:
/// see the module's notes). Extracting it never fails.
pub struct Bearer {
    value: Option<HeaderValue>,
    /// More than one `Authorization` header was sent.
    repeated: bool,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([redacted])")
    }
}

impl Bearer {
    /// Whether the request has an `Authorization` header at all.
    pub fn is_present(&self) -> bool {
        self.value.is_some()
    }

    /// The token.
    ///
    /// # Errors
    /// 401 `invalid_token` (with `WWW-Authenticate: Bearer`) when the header is missing, is not
    /// `Bearer <token>`, or the token is empty; 400 `invalid_body` when the request has more
    /// than one `Authorization` header (a malformed request: which one would count is exactly
    /// what two parties in its path may disagree on).
    pub fn token(&self) -> Result<&str, ApiError> {
        if self.repeated {
            return Err(ApiError::invalid_body(
                "the request has more than one Authorization header",
            ));
        }
        self.value
            .as_ref()
            // UTF-8 rather than `HeaderValue::to_str`'s byte-by-byte check for visible ASCII:
            // the token is checked strictly by its verifier, and this runs on every authorized
            // request.
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CoreError::InvalidToken.into())
    }
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // A header value shares the request's buffer: cloning it copies no bytes.
        let mut sent = req.headers().get_all(header::AUTHORIZATION);
        let value = sent.next().cloned();
        ready(Ok(Bearer {
            value,
            repeated: sent.next().is_some(),
        }))
    }
}

/// Who sent the request, as far as the transport knows: the client's address (the peer, or
/// what a trusted proxy says) and its `User-Agent`. Recorded on the sessions sign-ins open and
/// in the audit events. Extracting it never fails.
#[derive(Debug, Default)]
pub struct ClientInfo {
    ip: Option<String>,
    user_agent: Option<String>,
}

impl ClientInfo {
    /// As the flows take it.
    pub fn client(&self) -> Client<'_> {
        Client {
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            captcha_passed: false,
        }
    }

    /// [`ClientInfo::client`] for a request whose captcha [`Captcha::check`] accepted:
    /// `captcha_passed` when a captcha is configured (an account over its per-account limit
    /// may then still sign in).
    pub fn client_after_captcha(&self, captcha: &Captcha) -> Client<'_> {
        Client {
            captcha_passed: captcha.check.is_some(),
            ..self.client()
        }
    }
}

impl FromRequest for ClientInfo {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<State>() else {
            return ready(Ok(ClientInfo::default()));
        };
        // A User-Agent that is not visible ASCII is kept as far as it is readable.
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        ready(Ok(ClientInfo {
            ip: state.client_ip(req).map(|ip| ip.to_string()),
            user_agent,
        }))
    }
}

/// The captcha check of a request, done by [`Captcha::check`] once the body is read. Nothing is
/// looked up when no captcha is configured. Extracting it never fails.
pub struct Captcha {
    /// The state and the client's address, when a captcha is configured.
    check: Option<(State, Option<IpAddr>)>,
}

impl std::fmt::Debug for Captcha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captcha")
            .field("configured", &self.check.is_some())
            .finish()
    }
}

impl Captcha {
    /// Checks the captcha response in `fields` when a captcha is configured.
    ///
    /// # Errors
    /// 400 `captcha_failed` when missing or rejected; 503 `captcha_unavailable` when it cannot
    /// be checked.
    pub async fn check(&self, fields: &CaptchaFields) -> Result<(), ApiError> {
        let Some((state, client)) = &self.check else {
            return Ok(());
        };
        match state.captcha() {
            Some(turnstile) => turnstile.verify(fields.response(), *client).await,
            None => Ok(()),
        }
    }
}

impl FromRequest for Captcha {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let check = req
            .app_data::<State>()
            .filter(|state| state.captcha().is_some())
            .map(|state| (state.clone(), state.client_ip(req)));
        ready(Ok(Captcha { check }))
    }
}

/// The captcha response in a body, under either of its names (`captcha_token`, or the widget's
/// `cf-turnstile-response` form field).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CaptchaFields {
    captcha_token: Option<String>,
    #[serde(rename = "cf-turnstile-response")]
    cf_turnstile_response: Option<String>,
}

impl CaptchaFields {
    /// The response, whichever name it came under.
    pub fn response(&self) -> Option<&str> {
        self.captcha_token
            .as_deref()
            .or(self.cf_turnstile_response.as_deref())
    }
}

/// A host without its port (`[::1]:9000` is `::1`).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| h.trim_start_matches('['));
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_tenant_hosts() {
        assert_eq!(strip_port("example.com:9000"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:9000"), "::1");
    }
}
