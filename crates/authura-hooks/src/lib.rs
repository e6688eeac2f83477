//! The webhook client (SPEC §6): `POST <HOOK_URL>?action=get_user` after a user is read for a
//! response or a token, and `?action=create_or_update_user` before one is written. The body is
//! the user object, never the password hash. A 2xx answer with a JSON object becomes `hook_data`
//! on the user and in the access token; 4xx is relayed with the hook's status and body; 5xx, a
//! timeout or no answer is 502 `hook_failed`; a failed `create_or_update_user` aborts the write.

use std::time::Duration;

use async_trait::async_trait;
use authura_core::CoreError;
use authura_core::Secret;
use authura_core::error::with_causes;
use authura_core::hook::{Hook, HookData, HookUser};
use authura_core::types::format_time;
use serde_json::{Map, Value};
use url::Url;

/// Most of a hook's error body relayed as the error message.
const MAX_RELAYED_BODY: usize = 1024;

/// Why a hook client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HOOK_AUTH_HEADER_KEY: {0:?} is not a valid header name")]
    HeaderName(String),
    #[error("HOOK_AUTH_HEADER_VALUE is not a valid header value")]
    HeaderValue,
    #[error("EXTRA_CA_FILE: {0}")]
    Ca(String),
    #[error("HOOK_URL: cannot build the HTTP client: {0}")]
    Client(String),
}

/// How to reach the hook.
#[derive(Debug, Clone)]
pub struct HookSettings {
    pub url: Url,
    /// `HOOK_AUTH_HEADER_KEY` and `HOOK_AUTH_HEADER_VALUE`; no header when the value is unset.
    pub auth_header: Option<(String, Secret)>,
    /// The whole call, connection included (`HOOK_TIMEOUT`).
    pub timeout: Duration,
    /// PEM certificates trusted besides the system's roots (`EXTRA_CA_FILE`).
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// A `Hook` calling an HTTP endpoint.
#[derive(Debug, Clone)]
pub struct HttpHook {
    client: reqwest::Client,
    url: Url,
}

impl HttpHook {
    /// Builds the client once; every call reuses its connections.
    ///
    /// # Errors
    /// An invalid header, CA bundle or client setting.
    pub fn new(settings: HookSettings) -> Result<Self, Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some((name, value)) = &settings.auth_header {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::HeaderName(name.clone()))?;
            let mut value = reqwest::header::HeaderValue::from_str(value.expose())
                .map_err(|_| Error::HeaderValue)?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &settings.extra_ca_pem {
            for cert in
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Ca(e.to_string()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| {
            Error::Client(with_causes(e.to_string(), std::error::Error::source(&e)))
        })?;
        Ok(HttpHook {
            client,
            url: settings.url,
        })
    }

    async fn call(&self, action: &str, user: &HookUser) -> Result<Option<HookData>, CoreError> {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("action", action);
        let sent = self.client.post(url).json(&body(user)).send().await;
        let res = match sent {
            Ok(res) => res,
            Err(e) => {
                let what = if e.is_timeout() {
                    "did not answer in time"
                } else {
                    "could not be reached"
                };
                tracing::warn!(action, error = %e, "hook {what}");
                return Err(CoreError::HookFailed {
                    status: None,
                    body: format!("the hook {what}"),
                });
            }
        };
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            tracing::warn!(action, status = status.as_u16(), "hook refused");
            let mut body: String = text.chars().take(MAX_RELAYED_BODY).collect();
            if body.trim().is_empty() {
                body = format!("the hook answered {}", status.as_u16());
            }
            return Err(CoreError::HookFailed {
                status: Some(status.as_u16()),
                body,
            });
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => {
                tracing::warn!(action, "hook answered 2xx without a JSON object");
                Err(CoreError::HookFailed {
                    status: None,
                    body: "the hook answered without a JSON object".into(),
                })
            }
        }
    }
}

/// The user object a hook receives: never the password hash.
fn body(user: &HookUser) -> Value {
    let mut m = Map::new();
    if let Some(id) = &user.id {
        m.insert("id".into(), id.to_json());
    }
    m.insert("email".into(), user.email.as_str().into());
    m.insert("role".into(), user.role.as_str().into());
    m.insert(
        "tenant_id".into(),
        user.tenant.as_ref().map(|t| t.as_str()).into(),
    );
    m.insert(
        "verified_at".into(),
        user.verified_at.as_ref().map(format_time).into(),
    );
    Value::Object(m)
}

#[async_trait]
impl Hook for HttpHook {
    async fn get_user(&self, user: &HookUser) -> Result<Option<HookData>, CoreError> {
        self.call("get_user", user).await
    }

    async fn create_or_update_user(&self, user: &HookUser) -> Result<Option<HookData>, CoreError> {
        self.call("create_or_update_user", user).await
    }
}
