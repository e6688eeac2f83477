//! The DSN and its TLS settings: libpq's `sslmode` values (tokio-postgres knows only three) and
//! `sslrootcert`, read off the DSN before tokio-postgres parses the rest, and the rustls
//! configuration (aws-lc-rs; the system's roots plus `EXTRA_CA_FILE` and `sslrootcert`) for each mode.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct};
use tokio_postgres_rustls::MakeRustlsConnect;

use authura_core::StoreError;

/// How long opening a connection may take when the DSN sets no `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// libpq's `sslmode`, with libpq's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate not verified (libpq's `allow` and `prefer`,
    /// the default: opportunistic encryption, no protection against an active attacker).
    Prefer,
    /// TLS required. Like libpq, the certificate is verified (its chain, not its host name)
    /// only when a root is given (`EXTRA_CA_FILE` or `sslrootcert`); otherwise not at all.
    Require,
    /// TLS required, the chain verified against the system's roots, `EXTRA_CA_FILE` and
    /// `sslrootcert`; the host name is not checked.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

/// Checks that `dsn` parses (form, `sslmode`, a readable `sslrootcert`) without connecting, for
/// configuration checks.
///
/// # Errors
/// `Backend` saying what is wrong, never repeating the DSN (it may hold a password).
pub fn check_dsn(dsn: &str) -> Result<(), StoreError> {
    Dsn::parse(dsn).map(drop)
}

/// A parsed DSN: tokio-postgres's configuration plus what Authura handles itself.
#[derive(Clone)]
pub(crate) struct Dsn {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) ssl_mode: SslMode,
    /// `sslrootcert`'s file, read.
    pub(crate) root_pem: Option<Vec<u8>>,
}

impl Dsn {
    /// Parses a libpq DSN (`postgres://…` or `host=… dbname=…`). Messages never repeat the DSN,
    /// which may hold a password.
    pub(crate) fn parse(dsn: &str) -> Result<Dsn, StoreError> {
        let bad = |why: String| StoreError::Backend(format!("POSTGRES_DSN: {why}"));
        let (rest, tls) = split_tls_params(dsn).map_err(bad)?;
        let mut ssl_mode = SslMode::Prefer;
        let mut root_pem = None;
        for (key, value) in tls {
            match key.as_str() {
                "sslmode" => {
                    ssl_mode = match value.as_str() {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(bad(format!(
                                "unknown sslmode {other:?} (expected disable, allow, prefer, \
                                 require, verify-ca or verify-full)"
                            )));
                        }
                    }
                }
                "sslrootcert" => {
                    let pem = std::fs::read(&value)
                        .map_err(|e| bad(format!("cannot read sslrootcert {value}: {e}")))?;
                    root_pem = Some(pem);
                }
                other => {
                    return Err(bad(format!(
                        "{other} is not supported (client certificates are not); remove it"
                    )));
                }
            }
        }
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| bad(format!("cannot parse it: {e}")))?;
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("authura");
        }
        Ok(Dsn {
            config,
            ssl_mode,
            root_pem,
        })
    }
}

/// The TLS connector for a mode: `extra_ca_pem` is `EXTRA_CA_FILE`, `root_pem` `sslrootcert`.
///
/// Certificates are verified against the operating system's trust store (as every other
/// outgoing TLS client of Authura does) plus those two bundles. The store is read only for the
/// modes that verify, so `prefer` still works on a machine that has none.
pub(crate) fn connector(
    mode: SslMode,
    extra_ca_pem: Option<&[u8]>,
    root_pem: Option<&[u8]>,
) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut extra = Vec::new();
    for pem in [extra_ca_pem, root_pem].into_iter().flatten() {
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            extra.push(cert.map_err(|e| {
                StoreError::Backend(format!("cannot read a CA certificate for PostgreSQL: {e}"))
            })?);
        }
    }
    let check = match mode {
        SslMode::Disable | SslMode::Prefer => Check::Nothing,
        SslMode::Require if extra.is_empty() => Check::Nothing,
        SslMode::Require | SslMode::VerifyCa => Check::Chain,
        SslMode::VerifyFull => Check::ChainAndName,
    };
    let chain = match check {
        Check::Nothing => None,
        Check::Chain | Check::ChainAndName => Some(
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, Arc::clone(&provider))
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "cannot build the TLS verifier for PostgreSQL: {e}"
                    ))
                })?,
        ),
    };
    let verifier = Arc::new(Verifier {
        chain,
        provider: Arc::clone(&provider),
        check,
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("cannot configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The platform verifier (webpki over the system's roots and the extra ones), relaxed as libpq's
/// modes are. The handshake signatures are always checked: the server must hold the key of the
/// certificate it shows.
#[derive(Debug)]
struct Verifier {
    /// `None` when nothing is checked (`check` is `Nothing`).
    chain: Option<rustls_platform_verifier::Verifier>,
    provider: Arc<CryptoProvider>,
    check: Check,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Splits `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslpassword` and `sslcrl` off a DSN
/// in URL or key/value form; returns the rest in the same form, and those pairs.
fn split_tls_params(dsn: &str) -> Result<(String, Vec<(String, String)>), String> {
    const OURS: &[&str] = &[
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
    ];
    let dsn = dsn.trim();
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let mut url =
            url::Url::parse(dsn).map_err(|e| format!("not a valid postgres:// URL: {e}"))?;
        let (tls, rest): (Vec<_>, Vec<_>) = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .partition(|(k, _)| OURS.contains(&k.as_str()));
        if rest.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(rest);
        }
        return Ok((url.to_string(), tls));
    }
    let mut rest = Vec::new();
    let mut tls = Vec::new();
    for (key, raw, value) in key_values(dsn)? {
        if OURS.contains(&key.as_str()) {
            tls.push((key, value));
        } else {
            rest.push(raw);
        }
    }
    Ok((rest.join(" "), tls))
}

/// libpq's `key = value` pairs: each key, the pair's text as written, and the unquoted value.
fn key_values(dsn: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut pairs = Vec::new();
    let mut s = dsn.trim_start();
    while !s.is_empty() {
        let eq = s
            .find('=')
            .ok_or_else(|| "expected key=value pairs".to_owned())?;
        let key = s[..eq].trim().to_owned();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err("expected key=value pairs".to_owned());
        }
        let after = s[eq + 1..].trim_start();
        let (value, len) = if let Some(quoted) = after.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        end = Some(i + 2);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (
                value,
                end.ok_or_else(|| "unterminated quoted value".to_owned())?,
            )
        } else {
            let len = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..len].to_owned(), len)
        };
        pairs.push((key.clone(), format!("{key}={}", &after[..len]), value));
        s = after[len..].trim_start();
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(dsn: &str, rest: &str, tls: &[(&str, &str)]) {
        let (got_rest, got_tls) = split_tls_params(dsn).unwrap();
        assert_eq!(got_rest, rest, "{dsn}");
        let tls: Vec<(String, String)> = tls
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got_tls, tls, "{dsn}");
    }

    #[test]
    fn tls_parameters_are_split_off_both_forms() {
        check(
            "postgres://u:p@db:5432/app?sslmode=verify-full&connect_timeout=3",
            "postgres://u:p@db:5432/app?connect_timeout=3",
            &[("sslmode", "verify-full")],
        );
        check(
            "postgresql://u@db/app?sslmode=require",
            "postgresql://u@db/app",
            &[("sslmode", "require")],
        );
        check("postgres://db/app", "postgres://db/app", &[]);
        check(
            "host=db dbname=app sslmode=verify-ca sslrootcert='/etc/my ca.pem' password='a\\'b c'",
            "host=db dbname=app password='a\\'b c'",
            &[("sslmode", "verify-ca"), ("sslrootcert", "/etc/my ca.pem")],
        );
        check(
            "host = db  sslmode = disable",
            "host=db",
            &[("sslmode", "disable")],
        );
    }

    #[test]
    fn modes_parse_and_bad_dsns_never_echo_the_password() {
        let mode = |dsn: &str| Dsn::parse(dsn).map(|d| d.ssl_mode);
        assert_eq!(mode("host=db").unwrap(), SslMode::Prefer);
        assert_eq!(mode("host=db sslmode=allow").unwrap(), SslMode::Prefer);
        assert_eq!(
            mode("postgres://db?sslmode=verify-full").unwrap(),
            SslMode::VerifyFull
        );
        for bad in [
            "host=db sslmode=sometimes password=hunter2",
            "host=db sslcert=/c.pem password=hunter2",
            "host=db bogus=1 password=hunter2",
            "host=db password='hunter2",
            "postgres://u:hunter2@db:notaport/app",
        ] {
            let Err(StoreError::Backend(message)) = mode(bad) else {
                panic!("{bad}: expected an error");
            };
            assert!(message.starts_with("POSTGRES_DSN: "), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
