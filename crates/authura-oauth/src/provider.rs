//! One configured provider: where its endpoints are, how to send a browser there, and how to
//! turn the code it sends back into an [`Identity`].

use std::fmt;
use std::time::Duration;

use authura_core::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use url::Url;

use crate::http::HttpClient;
use crate::jwks::JwksCache;

/// How long a provider's discovery document is trusted before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The most an ID token's times may be off (clock skew between Authura and the provider).
const LEEWAY_SECS: u64 = 30;
/// What Authura asks OpenID providers for.
const OIDC_SCOPES: [&str; 3] = ["openid", "email", "profile"];
/// What Authura asks GitHub for: the addresses, with their `verified` and `primary` flags.
const GITHUB_SCOPES: [&str; 2] = ["read:user", "user:email"];
/// The asymmetric algorithms an ID token may be signed with. Never `none`, never HS*: an HMAC
/// "signature" keyed with our client secret proves nothing about who made the token.
const ID_TOKEN_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The provider kinds of SPEC §9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Google,
    Github,
    Microsoft,
    Oidc,
}

impl Kind {
    /// Every kind, in `OAUTH_PROVIDERS`' spelling.
    pub const ALL: [Kind; 4] = [Kind::Google, Kind::Github, Kind::Microsoft, Kind::Oidc];

    /// The name in `OAUTH_PROVIDERS` and in the paths (`/oauth/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Google => "google",
            Kind::Github => "github",
            Kind::Microsoft => "microsoft",
            Kind::Oidc => "oidc",
        }
    }

    /// The kind a name stands for.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether it signs users in with OpenID Connect (an ID token); GitHub is plain OAuth.
    pub fn is_oidc(self) -> bool {
        self != Kind::Github
    }

    /// The label on the sign-in button.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Google => "Google",
            Kind::Github => "GitHub",
            Kind::Microsoft => "Microsoft",
            Kind::Oidc => "single sign-on",
        }
    }
}

/// A provider as configured (SPEC §2's variables).
#[derive(Clone)]
pub struct ProviderSettings {
    pub kind: Kind,
    pub client_id: String,
    pub client_secret: Secret,
    /// The issuer (OpenID kinds): `OIDC_ISSUER_URL`, or `GOOGLE_ISSUER_URL` /
    /// `MICROSOFT_ISSUER_URL` when overridden; the discovery document is read below it and its
    /// `issuer` must equal it exactly (for a multi-tenant Microsoft app: with the tenant segment
    /// as `{tenantid}`).
    pub issuer: Option<String>,
    /// `MICROSOFT_TENANT` (`common`, `organizations`, `consumers` or a tenant id).
    pub microsoft_tenant: Option<String>,
    /// `<P>_AUTH_URL`: instead of the discovered (or GitHub's) authorization endpoint.
    pub auth_url: Option<Url>,
    /// `<P>_TOKEN_URL`.
    pub token_url: Option<Url>,
    /// `<P>_USERINFO_URL` (GitHub: the `/user` URL; `/user/emails` is read beside it).
    pub userinfo_url: Option<Url>,
    /// PEM roots trusted in addition to the system's (`EXTRA_CA_FILE`).
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("issuer", &self.issuer)
            .field("microsoft_tenant", &self.microsoft_tenant)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("userinfo_url", &self.userinfo_url)
            .finish_non_exhaustive()
    }
}

impl ProviderSettings {
    /// The issuer used when none is configured (Google, Microsoft).
    pub fn default_issuer(kind: Kind, microsoft_tenant: Option<&str>) -> Option<String> {
        match kind {
            Kind::Google => Some("https://accounts.google.com".into()),
            Kind::Microsoft => Some(format!(
                "https://login.microsoftonline.com/{}/v2.0",
                microsoft_tenant.unwrap_or("common")
            )),
            Kind::Github | Kind::Oidc => None,
        }
    }

    /// Whether a Microsoft app is single-tenant: `MICROSOFT_TENANT` names one tenant, not
    /// `common`, `organizations` or `consumers`. Only then do its `email` claims come from one
    /// directory whose admins the operator trusts.
    pub fn single_tenant(&self) -> bool {
        self.microsoft_tenant.as_deref().is_some_and(|t| {
            !matches!(
                t.to_ascii_lowercase().as_str(),
                "common" | "organizations" | "consumers"
            )
        })
    }
}

/// Who the provider says signed in.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's stable id for the user (`sub`; GitHub's numeric `id`).
    pub subject: String,
    /// The address, as the provider gives it (not yet validated as an `Email`).
    pub email: Option<String>,
    /// Whether the address counts as verified under the provider's rule (crate docs).
    pub email_verified: bool,
}

impl fmt::Debug for Identity {
    // An address is personal data: out of logs unless asked for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("email_verified", &self.email_verified)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in with a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider could not be reached, or answered with an error or something unreadable
    /// (a code it refused: replayed, expired, or for another client).
    #[error("the provider failed: {0}")]
    Provider(String),
    /// The ID token does not hold: signature, algorithm, `iss`, `aud`, `exp`, `nonce`.
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
    /// The provider's configuration is wrong (a discovery document for another issuer).
    #[error("the provider is misconfigured: {0}")]
    Misconfigured(String),
}

/// The OpenID discovery document's fields Authura reads.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    #[serde(default)]
    userinfo_endpoint: Option<Url>,
    jwks_uri: Url,
}

/// The endpoints in use.
#[derive(Debug, Clone)]
struct Endpoints {
    auth: Url,
    token: Url,
    userinfo: Option<Url>,
    /// OpenID kinds: the issuer's `issuer` value (possibly with `{tenantid}`).
    issuer: Option<String>,
}

/// The state of an OpenID provider: discovery read lazily and kept for an hour, and its keys.
#[derive(Debug)]
struct Oidc {
    discovered: Mutex<Option<(std::time::Instant, Discovery, std::sync::Arc<JwksCache>)>>,
}

/// The token endpoint's answer: an access token and, for OpenID, the ID token.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;

type Client = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A configured provider, ready to send browsers to and read identities from.
#[derive(Debug)]
pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    oidc: Option<Oidc>,
}

impl Provider {
    /// Builds the HTTP client (10 s per call, no redirects, `EXTRA_CA_FILE` trusted).
    ///
    /// # Errors
    /// `Misconfigured` when the CA bundle or client cannot be built, or an OpenID kind has no
    /// issuer.
    pub fn new(mut settings: ProviderSettings) -> Result<Self, OAuthError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &settings.extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| OAuthError::Misconfigured(format!("EXTRA_CA_FILE: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| OAuthError::Misconfigured(e.to_string()))?;
        if settings.kind.is_oidc() && settings.issuer.is_none() {
            settings.issuer = ProviderSettings::default_issuer(
                settings.kind,
                settings.microsoft_tenant.as_deref(),
            );
        }
        if settings.kind.is_oidc() && settings.issuer.is_none() {
            return Err(OAuthError::Misconfigured("no issuer".into()));
        }
        let oidc = settings.kind.is_oidc().then(|| Oidc {
            discovered: Mutex::new(None),
        });
        Ok(Provider {
            settings,
            http,
            oidc,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.settings.kind
    }

    /// The provider's authorization URL for a browser: the code flow, PKCE S256 from
    /// `pkce_verifier`, our `state`, and (OpenID kinds) `nonce`.
    ///
    /// # Errors
    /// `Provider` / `Misconfigured` when the discovery document cannot be read or is for
    /// another issuer.
    pub async fn authorize_url(
        &self,
        redirect_uri: &Url,
        state: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<Url, OAuthError> {
        let (endpoints, _) = self.endpoints().await?;
        let client = self.client(&endpoints, redirect_uri)?;
        let verifier = PkceCodeVerifier::new(pkce_verifier.to_owned());
        let state = state.to_owned();
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
        let scopes: &[&str] = if self.settings.kind.is_oidc() {
            &OIDC_SCOPES
        } else {
            &GITHUB_SCOPES
        };
        for scope in scopes {
            request = request.add_scope(Scope::new((*scope).to_owned()));
        }
        if self.settings.kind.is_oidc() {
            request = request.add_extra_param("nonce", nonce);
        }
        Ok(request.url().0)
    }

    /// Exchanges `code` (with the PKCE verifier) and reads who signed in: the ID token checked
    /// against the provider's keys and `nonce`, then userinfo; for GitHub, `/user` and
    /// `/user/emails`.
    ///
    /// # Errors
    /// `Provider` when the exchange or a read fails; `InvalidIdToken` when the ID token does not
    /// hold.
    pub async fn identify(
        &self,
        code: &str,
        redirect_uri: &Url,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, OAuthError> {
        let (endpoints, jwks) = self.endpoints().await?;
        let client = self.client(&endpoints, redirect_uri)?;
        let http = HttpClient(self.http.clone());
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&http)
            .await
            .map_err(|e| OAuthError::Provider(token_error(&e)))?;
        let access_token = answer.access_token().secret().clone();
        match (self.settings.kind, jwks) {
            (Kind::Github, _) => self.github_identity(&endpoints, &access_token).await,
            (_, Some(jwks)) => {
                let id_token = answer.extra_fields().id_token.as_deref().ok_or_else(|| {
                    OAuthError::InvalidIdToken("the token answer has no id_token".into())
                })?;
                let claims = self
                    .check_id_token(id_token, &endpoints, &jwks, nonce)
                    .await?;
                self.oidc_identity(claims, &endpoints, &access_token).await
            }
            (_, None) => Err(OAuthError::Misconfigured("no JWKS".into())),
        }
    }

    fn client(&self, endpoints: &Endpoints, redirect_uri: &Url) -> Result<Client, OAuthError> {
        let bad = |e: url::ParseError| OAuthError::Misconfigured(e.to_string());
        Ok(
            oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    self.settings.client_secret.expose().to_owned(),
                ))
                // In the body: what Google, GitHub, Microsoft and most providers all take.
                .set_auth_type(AuthType::RequestBody)
                .set_auth_uri(AuthUrl::from_url(endpoints.auth.clone()))
                .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
                .set_redirect_uri(RedirectUrl::new(redirect_uri.to_string()).map_err(bad)?),
        )
    }

    /// The endpoints in use, with the JWKS of an OpenID kind: the discovery document's (read
    /// when older than an hour), each replaced by its override when one is configured.
    async fn endpoints(
        &self,
    ) -> Result<(Endpoints, Option<std::sync::Arc<JwksCache>>), OAuthError> {
        let s = &self.settings;
        let Some(oidc) = &self.oidc else {
            let github =
                |u: &str| Url::parse(u).map_err(|e| OAuthError::Misconfigured(e.to_string()));
            return Ok((
                Endpoints {
                    auth: match &s.auth_url {
                        Some(u) => u.clone(),
                        None => github("https://github.com/login/oauth/authorize")?,
                    },
                    token: match &s.token_url {
                        Some(u) => u.clone(),
                        None => github("https://github.com/login/oauth/access_token")?,
                    },
                    userinfo: Some(match &s.userinfo_url {
                        Some(u) => u.clone(),
                        None => github("https://api.github.com/user")?,
                    }),
                    issuer: None,
                },
                None,
            ));
        };
        let mut discovered = oidc.discovered.lock().await;
        let fresh = discovered
            .as_ref()
            .is_some_and(|(at, _, _)| at.elapsed() < DISCOVERY_TTL);
        if !fresh {
            let issuer = s.issuer.as_deref().unwrap_or_default();
            let url = Url::parse(&format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ))
            .map_err(|e| OAuthError::Misconfigured(format!("issuer {issuer:?}: {e}")))?;
            let doc: Discovery = get_json(&self.http, &url, None).await?;
            if !self.issuer_matches(&doc.issuer) {
                return Err(OAuthError::Misconfigured(format!(
                    "the discovery document's issuer {:?} is not the configured {issuer:?}",
                    doc.issuer
                )));
            }
            // A new document keeps the cached keys when its JWKS URL did not change.
            let jwks = match discovered.take() {
                Some((_, old, jwks)) if old.jwks_uri == doc.jwks_uri => jwks,
                _ => std::sync::Arc::new(JwksCache::new(doc.jwks_uri.clone())),
            };
            *discovered = Some((std::time::Instant::now(), doc, jwks));
        }
        let Some((_, doc, jwks)) = discovered.as_ref() else {
            return Err(OAuthError::Misconfigured("no discovery document".into()));
        };
        Ok((
            Endpoints {
                auth: s
                    .auth_url
                    .clone()
                    .unwrap_or_else(|| doc.authorization_endpoint.clone()),
                token: s
                    .token_url
                    .clone()
                    .unwrap_or_else(|| doc.token_endpoint.clone()),
                userinfo: s
                    .userinfo_url
                    .clone()
                    .or_else(|| doc.userinfo_endpoint.clone()),
                issuer: Some(doc.issuer.clone()),
            },
            Some(std::sync::Arc::clone(jwks)),
        ))
    }

    /// Whether a discovery document's `issuer` is the configured one: exactly; for a
    /// multi-tenant Microsoft app, also Entra's `{tenantid}` template of it.
    fn issuer_matches(&self, discovered: &str) -> bool {
        let configured = self.settings.issuer.as_deref().unwrap_or_default();
        if discovered == configured {
            return true;
        }
        match (&self.settings.kind, &self.settings.microsoft_tenant) {
            (Kind::Microsoft, Some(tenant)) if !self.settings.single_tenant() => {
                configured.replace(&format!("/{tenant}/"), "/{tenantid}/") == discovered
            }
            _ => false,
        }
    }

    /// Checks an ID token: an asymmetric algorithm, a key of the provider's JWKS, the
    /// signature, `exp` (30 s leeway), `aud` our client id (and `azp` when several audiences),
    /// `iss` exactly, and our `nonce`.
    async fn check_id_token(
        &self,
        token: &str,
        endpoints: &Endpoints,
        jwks: &JwksCache,
        nonce: &str,
    ) -> Result<serde_json::Map<String, Value>, OAuthError> {
        let invalid = |what: String| OAuthError::InvalidIdToken(what);
        // `alg: none` has no `Algorithm`, so the header itself does not parse: refused here.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("unreadable header: {e}")))?;
        if !ID_TOKEN_ALGORITHMS.contains(&header.alg) {
            return Err(invalid(format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        }
        let jwk = jwks.key(&self.http, header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(format!("key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[self.settings.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let expected = self.expected_iss(endpoints, &claims);
        let google_short = self.settings.kind == Kind::Google
            && expected.as_deref() == Some("https://accounts.google.com")
            && iss == "accounts.google.com";
        if expected.as_deref() != Some(iss) && !google_short {
            return Err(invalid(format!("iss {iss:?} is not {expected:?}")));
        }
        if let Some(Value::Array(auds)) = claims.get("aud")
            && auds.len() > 1
            && claims.get("azp").and_then(Value::as_str) != Some(self.settings.client_id.as_str())
        {
            return Err(invalid("several audiences and azp is not us".into()));
        }
        let sent = claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), nonce.as_bytes()) {
            return Err(invalid("nonce mismatch".into()));
        }
        Ok(claims)
    }

    /// The `iss` an ID token must carry: the discovered issuer, with a multi-tenant Microsoft
    /// app's `{tenantid}` replaced by the token's `tid`.
    fn expected_iss(
        &self,
        endpoints: &Endpoints,
        claims: &serde_json::Map<String, Value>,
    ) -> Option<String> {
        let issuer = endpoints.issuer.clone()?;
        if self.settings.kind == Kind::Microsoft && issuer.contains("{tenantid}") {
            let tid = claims.get("tid").and_then(Value::as_str)?;
            return Some(issuer.replace("{tenantid}", tid));
        }
        Some(issuer)
    }

    /// An OpenID identity: `sub` from the ID token; the address and its verified flag from the
    /// ID token, else from userinfo (whose `sub` must be the same).
    async fn oidc_identity(
        &self,
        mut claims: serde_json::Map<String, Value>,
        endpoints: &Endpoints,
        access_token: &str,
    ) -> Result<Identity, OAuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OAuthError::InvalidIdToken("no sub".into()))?
            .to_owned();
        if !claims.contains_key("email")
            && let Some(userinfo) = &endpoints.userinfo
        {
            let info: serde_json::Map<String, Value> =
                get_json(&self.http, userinfo, Some(access_token)).await?;
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(OAuthError::Provider(
                    "userinfo is for another subject than the ID token".into(),
                ));
            }
            for key in ["email", "email_verified", "xms_edov"] {
                if let Some(v) = info.get(key) {
                    claims.insert(key.to_owned(), v.clone());
                }
            }
        }
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let email_verified = match self.settings.kind {
            Kind::Microsoft => self.settings.single_tenant() || truthy(claims.get("xms_edov")),
            _ => truthy(claims.get("email_verified")),
        };
        Ok(Identity {
            subject,
            email,
            email_verified,
        })
    }

    /// GitHub: `id` from `/user`, and the primary address from `/user/emails` (verified only
    /// when GitHub says so).
    async fn github_identity(
        &self,
        endpoints: &Endpoints,
        access_token: &str,
    ) -> Result<Identity, OAuthError> {
        #[derive(Deserialize)]
        struct User {
            id: Value,
        }
        #[derive(Deserialize)]
        struct Address {
            email: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            verified: bool,
        }
        let Some(user_url) = &endpoints.userinfo else {
            return Err(OAuthError::Misconfigured("no /user URL".into()));
        };
        let user: User = get_json(&self.http, user_url, Some(access_token)).await?;
        let subject = match user.id {
            Value::Number(n) => n.to_string(),
            Value::String(s) if !s.is_empty() => s,
            _ => return Err(OAuthError::Provider("GitHub's /user has no id".into())),
        };
        let mut emails_url = user_url.clone();
        emails_url.set_path(&format!("{}/emails", user_url.path().trim_end_matches('/')));
        let addresses: Vec<Address> = get_json(&self.http, &emails_url, Some(access_token)).await?;
        let primary = addresses.into_iter().find(|a| a.primary);
        Ok(Identity {
            subject,
            email_verified: primary.as_ref().is_some_and(|a| a.verified),
            email: primary.map(|a| a.email),
        })
    }
}

/// `true`, or the text `"true"` (some providers send strings).
fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle_free::ct_eq;
    ct_eq(a, b)
}

/// A constant-time comparison without another dependency: the hashes are compared, so the time
/// depends on neither input's content.
mod subtle_free {
    use sha2::{Digest, Sha256};

    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        let (a, b) = (Sha256::digest(a), Sha256::digest(b));
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// A GET of JSON, with a Bearer token when given, `Accept: application/json` and GitHub's
/// required `User-Agent`.
pub(crate) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
    bearer: Option<&str>,
) -> Result<T, OAuthError> {
    let mut request = http
        .get(url.clone())
        .header("Accept", "application/json")
        .header("User-Agent", "authura");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| OAuthError::Provider(format!("GET {url}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(OAuthError::Provider(format!("GET {url}: status {status}")));
    }
    response
        .json()
        .await
        .map_err(|e| OAuthError::Provider(format!("GET {url}: unreadable answer: {e}")))
}

/// What a failed exchange says, without the answer's body (it may echo a secret).
fn token_error<E: std::error::Error>(
    e: &RequestTokenError<E, oauth2::StandardErrorResponse<oauth2::basic::BasicErrorResponseType>>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => {
            format!("the token endpoint refused: {}", r.error())
        }
        RequestTokenError::Request(e) => format!("the token endpoint is unreachable: {e}"),
        RequestTokenError::Parse(_, _) => "the token endpoint's answer is unreadable".into(),
        RequestTokenError::Other(s) => format!("the token endpoint failed: {s}"),
    }
}

/// 32 random bytes as base64url (43 characters): a PKCE verifier, a nonce, a one-time code.
///
/// # Panics
/// When the operating system has no randomness to give (nothing can be done safely then).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 PKCE challenge of a verifier (RFC 7636 §4.2).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}
