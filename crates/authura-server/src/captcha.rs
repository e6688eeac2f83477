//! Turnstile captcha (SPEC §2–3): with `CAPTCHA=turnstile`, `/signup`, password `/token` and
//! `/reset-password` need a response token (`captcha_token`, or the widget's
//! `cf-turnstile-response` form field), checked against `TURNSTILE_VERIFY_URL` with the client's
//! address. Missing or rejected: 400 `captcha_failed`; siteverify unreachable or broken: 503
//! `captcha_unavailable` (never a silent pass).

use std::net::IpAddr;
use std::time::Duration;

use authura_core::Secret;
use url::Url;

use crate::error::ApiError;

/// The Turnstile settings.
#[derive(Debug, Clone)]
pub struct CaptchaSettings {
    pub secret: Secret,
    pub site_key: String,
    /// The widget's script, included by the `/form` pages.
    pub script: Url,
    pub verify_url: Url,
}

/// A siteverify client, built once.
#[derive(Debug, Clone)]
pub struct Turnstile {
    client: reqwest::Client,
    settings: CaptchaSettings,
}

/// Longest response token accepted (Turnstile's are about 2 KiB).
const MAX_RESPONSE_LEN: usize = 4096;

impl Turnstile {
    /// Builds the client, trusting `extra_ca_pem` besides the system's roots.
    ///
    /// # Errors
    /// A message when the CA bundle or the client cannot be set up.
    pub fn new(settings: CaptchaSettings, extra_ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("EXTRA_CA_FILE: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| {
            authura_core::error::with_causes(
                format!("cannot build the captcha client: {e}"),
                std::error::Error::source(&e),
            )
        })?;
        Ok(Turnstile { client, settings })
    }

    /// The settings (for the `/form` widget).
    pub fn settings(&self) -> &CaptchaSettings {
        &self.settings
    }

    /// Checks a response token for a client.
    ///
    /// # Errors
    /// `captcha_failed` when missing or rejected; `captcha_unavailable` when siteverify fails.
    pub async fn verify(
        &self,
        response: Option<&str>,
        remote_ip: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let Some(response) = response
            .map(str::trim)
            .filter(|r| !r.is_empty() && r.len() <= MAX_RESPONSE_LEN)
        else {
            return Err(ApiError::captcha_failed());
        };
        let mut form = vec![
            ("secret", self.settings.secret.expose().to_owned()),
            ("response", response.to_owned()),
        ];
        if let Some(ip) = remote_ip {
            form.push(("remoteip", ip.to_string()));
        }
        let answer = self
            .client
            .post(self.settings.verify_url.clone())
            .form(&form)
            .send()
            .await;
        let answer = match answer {
            Ok(a) if a.status().is_success() => a.json::<serde_json::Value>().await,
            Ok(a) => {
                tracing::warn!(status = a.status().as_u16(), "captcha siteverify failed");
                return Err(ApiError::captcha_unavailable());
            }
            Err(e) => {
                tracing::warn!(error = %e, "captcha siteverify unreachable");
                return Err(ApiError::captcha_unavailable());
            }
        };
        match answer
            .ok()
            .and_then(|v| v.get("success").and_then(serde_json::Value::as_bool))
        {
            Some(true) => Ok(()),
            Some(false) => Err(ApiError::captcha_failed()),
            None => {
                tracing::warn!("captcha siteverify answered without a success field");
                Err(ApiError::captcha_unavailable())
            }
        }
    }
}
