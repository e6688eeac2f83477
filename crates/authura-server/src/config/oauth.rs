//! The OAuth section (SPEC §2, §9): which providers sign users in, their clients, and the
//! endpoint overrides tests (or unusual deployments) point at other servers.

use authura_oauth::{Kind, ProviderSettings};
use url::Url;

use crate::config::parse_http_url;
use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    OAUTH_PROVIDERS = Var::new(
        "oauth",
        "Comma list of the providers that sign users in (`google`, `github`, `microsoft`, \
         `oidc`): `GET /oauth/<provider>` and its callback `EXTERNAL_URL/oauth/<provider>/callback` \
         (docs/oauth.md). Each needs its client id and secret below.",
    )
    .unset("unset (off)");
    GOOGLE_CLIENT_ID = Var::new("oauth", "Google's OAuth client id.")
        .required("required with `google` in `OAUTH_PROVIDERS`")
        .when("`google` in `OAUTH_PROVIDERS`");
    GOOGLE_CLIENT_SECRET = Var::new("oauth", "Secret (`_FILE` works).")
        .required("required with `google` in `OAUTH_PROVIDERS`")
        .when("`google` in `OAUTH_PROVIDERS`")
        .secret();
    GITHUB_CLIENT_ID = Var::new("oauth", "The GitHub OAuth app's client id.")
        .required("required with `github` in `OAUTH_PROVIDERS`")
        .when("`github` in `OAUTH_PROVIDERS`");
    GITHUB_CLIENT_SECRET = Var::new("oauth", "Secret (`_FILE` works).")
        .required("required with `github` in `OAUTH_PROVIDERS`")
        .when("`github` in `OAUTH_PROVIDERS`")
        .secret();
    MICROSOFT_TENANT = Var::new(
        "oauth",
        "The Entra tenant: a tenant id (a single-tenant app: its users' addresses count as \
         verified) or `common`, `organizations`, `consumers` (multi-tenant: an address counts \
         only with the `xms_edov` claim true, see docs/oauth.md).",
    )
    .default("common")
    .when("`microsoft` in `OAUTH_PROVIDERS`")
    .new_variable();
    MICROSOFT_CLIENT_ID = Var::new("oauth", "The Entra app's client (application) id.")
        .required("required with `microsoft` in `OAUTH_PROVIDERS`")
        .when("`microsoft` in `OAUTH_PROVIDERS`")
        .new_variable();
    MICROSOFT_CLIENT_SECRET = Var::new("oauth", "Secret (`_FILE` works).")
        .required("required with `microsoft` in `OAUTH_PROVIDERS`")
        .when("`microsoft` in `OAUTH_PROVIDERS`")
        .secret()
        .new_variable();
    OIDC_ISSUER_URL = Var::new(
        "oauth",
        "Any OpenID provider's issuer: `<OIDC_ISSUER_URL>/.well-known/openid-configuration` is \
         read (kept an hour) and its `issuer` must equal this value exactly.",
    )
    .required("required with `oidc` in `OAUTH_PROVIDERS`")
        .when("`oidc` in `OAUTH_PROVIDERS`")
    .new_variable();
    OIDC_CLIENT_ID = Var::new("oauth", "The OpenID client id.")
        .required("required with `oidc` in `OAUTH_PROVIDERS`")
        .when("`oidc` in `OAUTH_PROVIDERS`")
        .new_variable();
    OIDC_CLIENT_SECRET = Var::new("oauth", "Secret (`_FILE` works).")
        .required("required with `oidc` in `OAUTH_PROVIDERS`")
        .when("`oidc` in `OAUTH_PROVIDERS`")
        .secret()
        .new_variable();
    GOOGLE_ISSUER_URL = Var::new(
        "oauth",
        "Google's issuer, whose discovery document names the endpoints and keys (tests point \
         it at a local provider).",
    )
    .default("https://accounts.google.com")
    .when("`google` in `OAUTH_PROVIDERS`")
    .new_variable();
    GOOGLE_AUTH_URL = Var::new("oauth", "Instead of the discovered authorization endpoint.")
        .unset("unset (discovered)")
        .when("`google` in `OAUTH_PROVIDERS`")
        .new_variable();
    GOOGLE_TOKEN_URL = Var::new("oauth", "Instead of the discovered token endpoint.")
        .unset("unset (discovered)")
        .when("`google` in `OAUTH_PROVIDERS`")
        .new_variable();
    GOOGLE_USERINFO_URL = Var::new("oauth", "Instead of the discovered userinfo endpoint.")
        .unset("unset (discovered)")
        .when("`google` in `OAUTH_PROVIDERS`")
        .new_variable();
    GITHUB_AUTH_URL = Var::new("oauth", "GitHub's authorization endpoint.")
        .default("https://github.com/login/oauth/authorize")
        .when("`github` in `OAUTH_PROVIDERS`")
        .new_variable();
    GITHUB_TOKEN_URL = Var::new("oauth", "GitHub's token endpoint.")
        .default("https://github.com/login/oauth/access_token")
        .when("`github` in `OAUTH_PROVIDERS`")
        .new_variable();
    GITHUB_USERINFO_URL = Var::new(
        "oauth",
        "GitHub's `/user`; the addresses are read from `/user/emails` beside it.",
    )
    .default("https://api.github.com/user")
    .when("`github` in `OAUTH_PROVIDERS`")
    .new_variable();
    MICROSOFT_ISSUER_URL = Var::new(
        "oauth",
        "The Entra issuer whose discovery document names the endpoints and keys (tests point \
         it at a local provider).",
    )
    .computed("`https://login.microsoftonline.com/<MICROSOFT_TENANT>/v2.0`")
    .when("`microsoft` in `OAUTH_PROVIDERS`")
    .new_variable();
    MICROSOFT_AUTH_URL = Var::new("oauth", "Instead of the discovered authorization endpoint.")
        .unset("unset (discovered)")
        .when("`microsoft` in `OAUTH_PROVIDERS`")
        .new_variable();
    MICROSOFT_TOKEN_URL = Var::new("oauth", "Instead of the discovered token endpoint.")
        .unset("unset (discovered)")
        .when("`microsoft` in `OAUTH_PROVIDERS`")
        .new_variable();
    MICROSOFT_USERINFO_URL = Var::new("oauth", "Instead of the discovered userinfo endpoint.")
        .unset("unset (discovered)")
        .when("`microsoft` in `OAUTH_PROVIDERS`")
        .new_variable();
    OIDC_AUTH_URL = Var::new("oauth", "Instead of the discovered authorization endpoint.")
        .unset("unset (discovered)")
        .when("`oidc` in `OAUTH_PROVIDERS`")
        .new_variable();
    OIDC_TOKEN_URL = Var::new("oauth", "Instead of the discovered token endpoint.")
        .unset("unset (discovered)")
        .when("`oidc` in `OAUTH_PROVIDERS`")
        .new_variable();
    OIDC_USERINFO_URL = Var::new("oauth", "Instead of the discovered userinfo endpoint.")
        .unset("unset (discovered)")
        .when("`oidc` in `OAUTH_PROVIDERS`")
        .new_variable();
}

/// Each provider's variables: (kind, client id, secret, issuer, auth, token, userinfo).
struct Vars {
    kind: Kind,
    id: &'static Var,
    secret: &'static Var,
    issuer: Option<&'static Var>,
    auth: &'static Var,
    token: &'static Var,
    userinfo: &'static Var,
}

const PROVIDERS: [Vars; 4] = [
    Vars {
        kind: Kind::Google,
        id: &GOOGLE_CLIENT_ID,
        secret: &GOOGLE_CLIENT_SECRET,
        issuer: Some(&GOOGLE_ISSUER_URL),
        auth: &GOOGLE_AUTH_URL,
        token: &GOOGLE_TOKEN_URL,
        userinfo: &GOOGLE_USERINFO_URL,
    },
    Vars {
        kind: Kind::Github,
        id: &GITHUB_CLIENT_ID,
        secret: &GITHUB_CLIENT_SECRET,
        issuer: None,
        auth: &GITHUB_AUTH_URL,
        token: &GITHUB_TOKEN_URL,
        userinfo: &GITHUB_USERINFO_URL,
    },
    Vars {
        kind: Kind::Microsoft,
        id: &MICROSOFT_CLIENT_ID,
        secret: &MICROSOFT_CLIENT_SECRET,
        issuer: Some(&MICROSOFT_ISSUER_URL),
        auth: &MICROSOFT_AUTH_URL,
        token: &MICROSOFT_TOKEN_URL,
        userinfo: &MICROSOFT_USERINFO_URL,
    },
    Vars {
        kind: Kind::Oidc,
        id: &OIDC_CLIENT_ID,
        secret: &OIDC_CLIENT_SECRET,
        issuer: Some(&OIDC_ISSUER_URL),
        auth: &OIDC_AUTH_URL,
        token: &OIDC_TOKEN_URL,
        userinfo: &OIDC_USERINFO_URL,
    },
];

/// `OAUTH_PROVIDERS` and each enabled provider's variables, in the order listed; a problem for
/// an unknown or repeated name, a missing client id or secret, a malformed URL, and (a warning)
/// a provider's variables set while it is not enabled.
pub fn read_oauth(r: &mut Reader, extra_ca_pem: Option<&Vec<u8>>) -> Vec<ProviderSettings> {
    let names = r.list(&OAUTH_PROVIDERS);
    let mut kinds = Vec::new();
    for name in &names {
        match Kind::parse(&name.to_ascii_lowercase()) {
            Some(kind) if kinds.contains(&kind) => {
                r.problem(format!("OAUTH_PROVIDERS: {name:?} is listed twice"));
            }
            Some(kind) => kinds.push(kind),
            None => r.problem(format!(
                "OAUTH_PROVIDERS: unknown provider {name:?} (expected google, github, microsoft or oidc)"
            )),
        }
    }
    for vars in &PROVIDERS {
        if kinds.contains(&vars.kind) {
            continue;
        }
        let mut all = vec![vars.id, vars.secret, vars.auth, vars.token, vars.userinfo];
        all.extend(vars.issuer);
        if vars.kind == Kind::Microsoft {
            all.push(&MICROSOFT_TENANT);
        }
        let set: Vec<&str> = all
            .into_iter()
            .filter(|v| r.is_set(v))
            .map(|v| v.name)
            .collect();
        if !set.is_empty() {
            r.warnings.push(format!(
                "{} set while {} is not in OAUTH_PROVIDERS; ignored",
                set.join(", "),
                vars.kind.name()
            ));
        }
    }
    let mut providers = Vec::new();
    for kind in kinds {
        let Some(vars) = PROVIDERS.iter().find(|v| v.kind == kind) else {
            continue;
        };
        let client_id = r.string(vars.id).filter(|s| !s.is_empty());
        let client_secret = r.secret(vars.secret).filter(|s| !s.is_empty());
        let tenant = (kind == Kind::Microsoft).then(|| r.text(&MICROSOFT_TENANT));
        let issuer = match (kind, vars.issuer) {
            (Kind::Oidc, Some(var)) => {
                let v = r.string(var);
                if v.is_none() {
                    r.problem("OAUTH_PROVIDERS has oidc: OIDC_ISSUER_URL is required".into());
                }
                v
            }
            (Kind::Microsoft, Some(var)) => Some(r.string(var).unwrap_or_else(|| {
                let computed =
                    ProviderSettings::default_issuer(kind, tenant.as_deref()).unwrap_or_default();
                r.default(var, &computed)
            })),
            (_, Some(var)) => Some(r.text(var)),
            (_, None) => None,
        };
        if let Some(issuer) = &issuer
            && let Err(e) = parse_http_url(issuer)
        {
            r.problem(format!("{}: {e}", vars.issuer.map_or("", |v| v.name)));
        }
        let mut url = |var: &'static Var| match r.string(var) {
            Some(v) => parse_http_url(&v)
                .map_err(|e| r.problem(format!("{}: {e}", var.name)))
                .ok(),
            None => {
                if let crate::config::var::IfUnset::Default(d) = var.unset {
                    r.default(var, d);
                    Url::parse(d).ok()
                } else {
                    None
                }
            }
        };
        let auth_url = url(vars.auth);
        let token_url = url(vars.token);
        let userinfo_url = url(vars.userinfo);
        if client_id.is_none() {
            r.problem(format!(
                "OAUTH_PROVIDERS has {}: {} is required",
                kind.name(),
                vars.id.name
            ));
        }
        if client_secret.is_none() {
            r.problem(format!(
                "OAUTH_PROVIDERS has {}: {} is required",
                kind.name(),
                vars.secret.name
            ));
        }
        let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
            continue;
        };
        providers.push(ProviderSettings {
            kind,
            client_id,
            client_secret,
            issuer,
            microsoft_tenant: tenant,
            auth_url,
            token_url,
            userinfo_url,
            extra_ca_pem: extra_ca_pem.cloned(),
        });
    }
    providers
}
