//! Connections to the directory: TLS (`ldaps://` or StartTLS, the system's roots plus
//! `EXTRA_CA_FILE`), the time limit on every step, and a small pool of connections bound as the
//! service account. Users' binds get connections of their own, closed after the bind: a
//! connection bound as a user is never handed to the next caller.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authura_core::{Secret, StoreError};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use rustls::ClientConfig;
use tokio::sync::Semaphore;

use crate::settings::LdapSettings;

/// LDAP result codes this crate tells apart (RFC 4511 §4.1.9).
pub(crate) mod rc {
    pub const SUCCESS: u32 = 0;
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const OTHER: u32 = 80;
}

/// Opens connections to the directory.
pub(crate) struct Connector {
    url: String,
    starttls: bool,
    tls: Option<Arc<ClientConfig>>,
    pub(crate) timeout: Duration,
}

impl Connector {
    /// # Errors
    /// `Backend` when the TLS configuration cannot be built (an unreadable `EXTRA_CA_FILE`, no
    /// trust store at all).
    pub(crate) fn new(settings: &LdapSettings) -> Result<Self, StoreError> {
        let tls = if settings.is_ldaps() || settings.starttls {
            Some(Arc::new(client_config(settings.extra_ca_pem.as_deref())?))
        } else {
            None
        };
        Ok(Connector {
            url: settings.url.clone(),
            starttls: settings.starttls,
            tls,
            timeout: settings.timeout,
        })
    }

    /// A new connection (TLS negotiated), within the time limit.
    ///
    /// # Errors
    /// `Unavailable` when the directory cannot be reached, refuses TLS or does not answer in time.
    pub(crate) async fn connect(&self) -> Result<Ldap, StoreError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(Arc::clone(tls));
        }
        let connecting = LdapConnAsync::with_settings(settings, &self.url);
        let (conn, ldap) = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| timed_out("connecting"))?
            .map_err(|e| unavailable("cannot connect to the directory", &e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "an LDAP connection ended");
            }
        });
        Ok(ldap)
    }

    /// A simple bind on `ldap` within the time limit: `Ok(true)` when the directory accepted
    /// the password, `Ok(false)` when it answered "invalid credentials" or the password is
    /// empty (then nothing is sent: a simple bind with one is anonymous and "succeeds").
    ///
    /// # Errors
    /// `Unavailable` on a network failure, a timeout or a busy directory; `Backend` for any
    /// other refusal.
    pub(crate) async fn bind(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        password: &Secret,
    ) -> Result<bool, StoreError> {
        // A simple bind with an empty password is an anonymous bind, which directories accept:
        // never sent, whatever the caller checked.
        if password.is_empty() {
            return Ok(false);
        }
        let bound = tokio::time::timeout(
            self.timeout,
            ldap.with_timeout(self.timeout)
                .simple_bind(dn, password.expose()),
        )
        .await
        .map_err(|_| timed_out("binding"))?
        .map_err(|e| unavailable("the bind failed", &e))?;
        match bound.rc {
            rc::SUCCESS => Ok(true),
            rc::INVALID_CREDENTIALS => Ok(false),
            code => Err(result_error("the bind", code, &bound.text)),
        }
    }
}

/// The rustls configuration: the operating system's roots plus `extra_ca_pem`, aws-lc-rs.
fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut extra = Vec::new();
    if let Some(pem) = extra_ca_pem {
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            extra.push(cert.map_err(|e| {
                StoreError::Backend(format!("cannot read a CA certificate for LDAP: {e}"))
            })?);
        }
    }
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, Arc::clone(&provider))
            .map_err(|e| {
                StoreError::Backend(format!("cannot build the TLS verifier for LDAP: {e}"))
            })?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("cannot configure TLS for LDAP: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The service account's connections: at most `size` open, idle ones reused, a connection
/// that failed dropped.
pub(crate) struct Pool {
    connector: Connector,
    bind_dn: Option<String>,
    bind_password: Secret,
    idle: Mutex<Vec<Ldap>>,
    permits: Arc<Semaphore>,
    size: usize,
}

/// A pooled connection, bound as the service account.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    ldap: Option<Ldap>,
    /// Whether it came from the idle list (it may have died since).
    pub(crate) reused: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Pooled<'_> {
    pub(crate) fn ldap(&mut self) -> &mut Ldap {
        // Present until `keep` or drop.
        self.ldap
            .as_mut()
            .unwrap_or_else(|| unreachable!("used after keep"))
    }

    /// Puts the connection back for the next caller (after a successful operation).
    pub(crate) fn keep(mut self) {
        if let Some(ldap) = self.ldap.take()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(ldap);
        }
    }
}

impl Pool {
    pub(crate) fn new(connector: Connector, settings: &LdapSettings) -> Self {
        let size = settings.pool_size.max(1);
        Pool {
            connector,
            bind_dn: settings.bind_dn.clone(),
            bind_password: settings.bind_password.clone(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    /// A connection bound as the service account: an idle one, or a new one.
    ///
    /// # Errors
    /// `Unavailable` when none can be had in time; `Backend` when the directory refuses the
    /// service account (a configuration error, not the user's).
    pub(crate) async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = tokio::time::timeout(
            self.connector.timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| timed_out("waiting for a pooled connection"))?
        .map_err(|_| StoreError::Unavailable("the LDAP pool is closed".into()))?;
        loop {
            let next = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some(mut ldap) = next else { break };
            if !ldap.is_closed() {
                return Ok(Pooled {
                    pool: self,
                    ldap: Some(ldap),
                    reused: true,
                    _permit: permit,
                });
            }
        }
        let mut ldap = self.connector.connect().await?;
        if let Some(dn) = &self.bind_dn
            && !self
                .connector
                .bind(&mut ldap, dn, &self.bind_password)
                .await?
        {
            return Err(StoreError::Backend(
                "the directory refused the service account (LDAP_BIND_DN, LDAP_BIND_PASSWORD)"
                    .into(),
            ));
        }
        Ok(Pooled {
            pool: self,
            ldap: Some(ldap),
            reused: false,
            _permit: permit,
        })
    }

    /// (max, open, idle) for `/metrics`.
    pub(crate) fn status(&self) -> authura_core::store::PoolStatus {
        let idle = self.idle.lock().map(|i| i.len()).unwrap_or(0);
        let in_use = self.size - self.permits.available_permits();
        authura_core::store::PoolStatus {
            max: self.size,
            open: idle + in_use,
            idle,
            waiting: 0,
        }
    }
}

pub(crate) fn timed_out(step: &str) -> StoreError {
    StoreError::Unavailable(format!("the directory did not answer in time ({step})"))
}

/// A driver error: every one of them is the directory unreachable or gone mid-operation,
/// except a result code, which [`result_error`] sorts.
pub(crate) fn unavailable(what: &str, e: &LdapError) -> StoreError {
    match e {
        LdapError::LdapResult { result } => result_error(what, result.rc, &result.text),
        e => StoreError::Unavailable(authura_core::error::with_causes(
            format!("{what}: {e}"),
            std::error::Error::source(e),
        )),
    }
}

/// A result code other than success: busy or unavailable directories are `Unavailable` (503),
/// anything else `Backend` (502).
pub(crate) fn result_error(what: &str, code: u32, text: &str) -> StoreError {
    let message = format!("{what}: LDAP result {code} {text}");
    match code {
        rc::BUSY | rc::UNAVAILABLE | rc::OTHER => StoreError::Unavailable(message),
        _ => StoreError::Backend(message),
    }
}
