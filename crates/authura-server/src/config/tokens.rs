//! The tokens section: the JWT secrets, keys, lifetimes, claims and extensions, the `--dev`
//! secrets file, and the password policy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use authura_core::Secret;
use authura_core::extension::{ClaimsExtension, EnvExtension, HasuraExtension};
use authura_core::keys::{AccessKey, Algorithm, PrivateKey};
use authura_core::policy::PasswordPolicy;
use authura_core::token::TokenSettings;

use crate::config::Sources;
use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    JWT_SECRET = Var::new(
        "tokens",
        "Signs access tokens when `JWT_ALGORITHM` is `HS256`. Secret. Refused with any other \
         algorithm (see [Asymmetric access tokens](#asymmetric-access-tokens-and-key-rotation)).",
    )
    .required("required with `HS256`")
    .secret();
    JWT_REFRESH_SECRET = Var::new(
        "tokens",
        "Signs refresh tokens. Secret.",
    )
    .required("required")
    .secret();
    JWT_VERIFY_SECRET = Var::new(
        "tokens",
        "Signs the tokens in mail links. Secret.",
    )
    .required("required")
    .secret();
    JWT_EXPIRATION = Var::new(
        "tokens",
        "Access token lifetime. A duration, above zero.",
    )
    .default("5m");
    JWT_REFRESH_EXPIRATION = Var::new(
        "tokens",
        "Refresh token lifetime. A duration, above zero.",
    )
    .default("720h");
    JWT_VERIFY_EXPIRATION = Var::new(
        "tokens",
        "Mail link lifetime. A duration, above zero.",
    )
    .default("1h");
    JWT_EXTENSIONS = Var::new(
        "tokens",
        "A list of `hasura` and `env`: namespaced claims added to access tokens (see \
         `docs/api.md`). Else `JWT_EXTENSIONS: unknown extension \"foo\" (expected hasura, \
         env)`.",
    );
    JWT_ENV_EXTENSION_NAMESPACE = Var::new(
        "tokens",
        "The claim name of the `env` extension's object. Required, with the next one, when \
         `JWT_EXTENSIONS` includes `env`; ignored otherwise.",
    )
    .when("`JWT_EXTENSIONS` includes `env`");
    JWT_ENV_EXTENSION_CLAIMS = Var::new(
        "tokens",
        "A JSON object whose values are string templates: `{{.ID}}`, `{{.Email}}`, `{{.Role}}`, \
         `{{.TenantID}}`, `{{.VerifiedAt}}`, `{{.HookData.key}}`, with literal text around them. \
         A non-object, a non-string value or an unknown field is an error naming the field.",
    )
    .when("`JWT_EXTENSIONS` includes `env`");
    JWT_ISSUER = Var::new(
        "tokens",
        "Sets `iss` on every token and requires it on every token presented.",
    )
    .new_variable();
    JWT_AUDIENCE = Var::new(
        "tokens",
        "Sets `aud` on every token and requires it on every token presented.",
    )
    .new_variable();
    JWT_ALGORITHM = Var::new(
        "tokens",
        "How access tokens are signed: `HS256` (with `JWT_SECRET`), `RS256`, `ES256` or `EdDSA` \
         (with `JWT_PRIVATE_KEY`). Written exactly so; else `JWT_ALGORITHM: expected HS256, \
         RS256, ES256 or EdDSA, got \"HS512\"`. Refresh and mail-link tokens are always HS256 \
         with their own secrets: only Authura reads them.",
    )
    .default("HS256")
    .new_variable();
    JWT_PRIVATE_KEY = Var::new(
        "tokens",
        "The PEM private key that signs access tokens with `RS256`, `ES256` or `EdDSA`. Secret \
         (`JWT_PRIVATE_KEY_FILE` is the usual form). See below.",
    )
    .secret()
    .new_variable();
    JWT_PREVIOUS_KEYS = Var::new(
        "tokens",
        "Keys that no longer sign but still verify access tokens, for rotation without logging \
         anyone out. Secret (`_FILE` works). See below.",
    )
    .secret()
    .new_variable();
    PASSWORD_MIN_LENGTH = Var::new(
        "password-policy",
        "Fewest characters (not bytes) in a new password.",
    )
    .default("8")
    .new_variable();
    PASSWORD_MAX_LENGTH = Var::new(
        "password-policy",
        "Most characters in a new password.",
    )
    .default("128")
    .new_variable();
    PASSWORD_REQUIRE_CLASSES = Var::new(
        "password-policy",
        "A boolean. Require an upper-case letter, a lower-case letter, a digit and a character \
         that is neither a letter nor a digit.",
    )
    .default("true")
    .new_variable();
}

/// `JWT_*`: the token settings, checked as `Tokens::new` would.
pub fn read_tokens(r: &mut Reader, sources: &Sources) -> Option<TokenSettings> {
    let algorithm = r
        .text(&JWT_ALGORITHM)
        .parse::<Algorithm>()
        .map_err(|e| r.problem(format!("JWT_ALGORITHM: {e}")))
        .ok();
    // With an asymmetric algorithm JWT_SECRET signs nothing.
    let asymmetric = algorithm.is_some_and(Algorithm::is_asymmetric);
    let mut secrets = [
        r.secret(&JWT_SECRET),
        r.secret(&JWT_REFRESH_SECRET),
        r.secret(&JWT_VERIFY_SECRET),
    ];
    let vars: [&'static Var; 3] = [&JWT_SECRET, &JWT_REFRESH_SECRET, &JWT_VERIFY_SECRET];
    let needed = |i: usize| i > 0 || !asymmetric;
    if sources.dev
        && secrets
            .iter()
            .enumerate()
            .any(|(i, s)| s.is_none() && needed(i))
    {
        let path = sources
            .dev_secrets
            .clone()
            .unwrap_or_else(|| PathBuf::from(".authura-dev-secrets"));
        match dev_secrets(&path) {
            Ok(generated) => {
                for (i, slot) in secrets.iter_mut().enumerate() {
                    if slot.is_none() && needed(i) {
                        *slot = Some(generated[i].clone());
                        r.record(vars[i], &format!("[redacted, from {}]", path.display()));
                    }
                }
            }
            Err(e) => r.problem(format!(
                "--dev: cannot keep secrets in {}: {e}",
                path.display()
            )),
        }
    }
    for (i, s) in secrets.iter().enumerate() {
        if s.is_none() && !sources.dev && needed(i) {
            r.problem(format!(
                "{} is required (at least 32 random bytes; generate one with: openssl rand -base64 48)",
                vars[i].name
            ));
        }
    }
    let private_key = r.secret(&JWT_PRIVATE_KEY);
    let access_key = match algorithm {
        Some(Algorithm::HS256) => {
            if private_key.is_some() {
                r.problem(
                    "JWT_PRIVATE_KEY is set, but JWT_ALGORITHM is HS256 (the default), which signs with JWT_SECRET; set JWT_ALGORITHM to the key's algorithm (RS256, ES256 or EdDSA), or unset JWT_PRIVATE_KEY".into(),
                );
            }
            secrets[0].clone().map(AccessKey::Hs256)
        }
        Some(alg) => {
            if secrets[0].is_some() {
                r.problem(format!(
                    "JWT_SECRET is set, but JWT_ALGORITHM={alg} signs access tokens with JWT_PRIVATE_KEY; unset JWT_SECRET, or move it to JWT_PREVIOUS_KEYS if access tokens signed with it must keep verifying until they expire"
                ));
            }
            match private_key {
                None => {
                    r.problem(format!(
                        "JWT_PRIVATE_KEY (or JWT_PRIVATE_KEY_FILE) is required with JWT_ALGORITHM={alg}: {} in PEM (generate one with: {})",
                        alg.key_kind(),
                        openssl_command(alg)
                    ));
                    None
                }
                Some(pem) => match PrivateKey::from_pem(pem.expose()) {
                    Ok(key) if key.algorithm() == alg => Some(AccessKey::Private(key)),
                    Ok(key) => {
                        r.problem(format!(
                            "JWT_PRIVATE_KEY is {}, but JWT_ALGORITHM={alg} needs {} (or set JWT_ALGORITHM={})",
                            key.algorithm().key_kind(),
                            alg.key_kind(),
                            key.algorithm()
                        ));
                        None
                    }
                    Err(e) => {
                        r.problem(format!("JWT_PRIVATE_KEY: {e}"));
                        None
                    }
                },
            }
        }
        None => None,
    };
    let previous_keys = match r.secret(&JWT_PREVIOUS_KEYS) {
        None => Vec::new(),
        Some(text) => {
            authura_core::keys::parse_previous_keys(text.expose()).unwrap_or_else(|problems| {
                for p in problems {
                    r.problem(format!("JWT_PREVIOUS_KEYS: {p}"));
                }
                Vec::new()
            })
        }
    };
    let access_ttl = r.duration(&JWT_EXPIRATION);
    let refresh_ttl = r.duration(&JWT_REFRESH_EXPIRATION);
    let verify_ttl = r.duration(&JWT_VERIFY_EXPIRATION);
    let mut extensions: Vec<Arc<dyn ClaimsExtension>> = Vec::new();
    for name in r.list(&JWT_EXTENSIONS) {
        match name.as_str() {
            "hasura" => extensions.push(Arc::new(HasuraExtension)),
            "env" => {
                let ns = r.string(&JWT_ENV_EXTENSION_NAMESPACE);
                let claims = r.string(&JWT_ENV_EXTENSION_CLAIMS);
                match (ns, claims) {
                    (Some(ns), Some(claims)) => match EnvExtension::parse(&ns, &claims) {
                        Ok(ext) => extensions.push(Arc::new(ext)),
                        Err(e) => r.problem(format!("JWT_ENV_EXTENSION_CLAIMS: {e}")),
                    },
                    _ => r.problem(
                        "JWT_EXTENSIONS includes env: JWT_ENV_EXTENSION_NAMESPACE and JWT_ENV_EXTENSION_CLAIMS are required".into(),
                    ),
                }
            }
            other => r.problem(format!(
                "JWT_EXTENSIONS: unknown extension {other:?} (expected hasura, env)"
            )),
        }
    }
    let issuer = r.string(&JWT_ISSUER);
    let audience = r.string(&JWT_AUDIENCE);
    // Checked whatever else is wrong, so every problem is reported at once.
    let [_, refresh_secret, verify_secret] = secrets;
    match (&access_key, &refresh_secret, &verify_secret) {
        (Some(access), Some(refresh), Some(verify)) => {
            for p in authura_core::token::key_problems(access, &previous_keys, refresh, verify) {
                r.problem(p);
            }
        }
        (access, refresh, verify) => {
            let named: Vec<(&str, &Secret)> = [
                (
                    "JWT_SECRET",
                    match access {
                        Some(AccessKey::Hs256(s)) => Some(s),
                        _ => None,
                    },
                ),
                ("JWT_REFRESH_SECRET", refresh.as_ref()),
                ("JWT_VERIFY_SECRET", verify.as_ref()),
            ]
            .into_iter()
            .filter_map(|(name, s)| s.map(|s| (name, s)))
            .collect();
            for p in authura_core::token::secret_problems(&named) {
                r.problem(p);
            }
        }
    }
    for p in authura_core::token::extension_problems(&extensions) {
        r.problem(format!("JWT_EXTENSIONS: {p}"));
    }
    let (Some(access_key), Some(refresh_secret), Some(verify_secret)) =
        (access_key, refresh_secret, verify_secret)
    else {
        return None;
    };
    let settings = TokenSettings {
        access_key,
        previous_keys,
        refresh_secret,
        verify_secret,
        access_ttl: access_ttl?,
        refresh_ttl: refresh_ttl?,
        verify_ttl: verify_ttl?,
        issuer,
        audience,
        extensions,
    };
    for (name, ttl) in [
        ("JWT_EXPIRATION", settings.access_ttl),
        ("JWT_REFRESH_EXPIRATION", settings.refresh_ttl),
        ("JWT_VERIFY_EXPIRATION", settings.verify_ttl),
    ] {
        if ttl.is_zero() {
            r.problem(format!("{name} must be longer than zero"));
        }
    }
    // Everything `Tokens::new` checks was reported above; this only guards against drift.
    match authura_core::token::Tokens::new(settings.clone()) {
        Ok(_) => Some(settings),
        Err(e) => {
            if r.problems.is_empty() {
                r.problem(e);
            }
            None
        }
    }
}

/// `PASSWORD_*`: the policy for new passwords.
pub fn read_policy(r: &mut Reader) -> PasswordPolicy {
    let policy = PasswordPolicy {
        min_length: r.number::<usize>(&PASSWORD_MIN_LENGTH),
        max_length: r.number::<usize>(&PASSWORD_MAX_LENGTH),
        require_classes: r.bool(&PASSWORD_REQUIRE_CLASSES),
    };
    if policy.min_length == 0 || policy.min_length > policy.max_length || policy.max_length > 4096 {
        r.problem(
            "PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH: expected 1 ≤ min ≤ max ≤ 4096".into(),
        );
    }
    policy
}

/// The command that makes a private key for `alg`, for messages and the documentation.
fn openssl_command(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
        Algorithm::ES256 => "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",
        Algorithm::EdDSA | Algorithm::HS256 => "openssl genpkey -algorithm ed25519",
    }
}

/// Reads (or creates, mode 0600) the three dev secrets.
fn dev_secrets(path: &Path) -> std::io::Result<[Secret; 3]> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if let [a, b, c] = lines[..]
            && [a, b, c]
                .iter()
                .all(|s| s.len() >= authura_core::token::MIN_SECRET_BYTES)
        {
            return Ok([Secret::new(a), Secret::new(b), Secret::new(c)]);
        }
    }
    let fresh = [0, 1, 2].map(|_| authura_core::hash::random_token(32));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, format!("{}\n", fresh.join("\n")).as_bytes())?;
    Ok(fresh.map(Secret::new))
}
