//! The flows section: roles, the public URL and the links built from it, the redirects a client
//! may ask for, signup, impersonation and multi-tenancy.

use url::Url;

use crate::config::parse_http_url;
use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    ADMIN_ROLE = Var::new(
        "flows",
        "The role allowed to `/invite`; also the role of the initial user. A role.",
    )
    .default("admin");
    DEFAULT_ROLE = Var::new(
        "flows",
        "The role of users created by signup. A role.",
    )
    .default("user");
    EXTERNAL_URL = Var::new(
        "flows",
        "The public base URL of this service. A URL. It is the base of the default \
         `VERIFY_REDIRECT_URL`, its origin is always allowed by CORS, and `serve --dev` prints \
         the signup form's address from it. Links are never built from a request's `Host` \
         header.",
    )
    .computed("`http://localhost:<PORT>`");
    VERIFY_REDIRECT_URL = Var::new(
        "flows",
        "Where mail links point when a request gives no `redirect_url`. The link is \
         `<url>?action=<action>&token=<token>` (`&` when the URL has a query). A URL.",
    )
    .computed("`EXTERNAL_URL` + `/form`");
    ALLOWED_REDIRECT_URLS = Var::new(
        "flows",
        "URL prefixes a request's `redirect_url` may start with; anything else is 400 \
         `invalid_redirect_url`. A list of URLs. Compared as parsed URLs: same scheme, host and \
         port, and the path a prefix on a `/` boundary. By default each `ALLOWED_ORIGINS` entry \
         without a scheme contributes both `http://` and `https://`, and `*` contributes \
         nothing. When set, it replaces the default entirely.",
    )
    .computed("`VERIFY_REDIRECT_URL` plus each `ALLOWED_ORIGINS` entry")
    .new_variable();
    SIGNUP_DISABLED = Var::new(
        "flows",
        "A boolean. `true`: `/signup` answers 403 `signup_disabled`; invites still work.",
    )
    .default("false");
    IMPERSONATION_ENABLED = Var::new(
        "flows",
        "A boolean. When `true`, `POST /token` with an empty `password` and the Bearer token of \
         a user whose current role is `ADMIN_ROLE` returns tokens for `email`; the access token \
         carries `\"act\": {\"sub\": \"<admin id>\"}` and every impersonation is logged at INFO \
         with both ids (`impersonation: tokens issued admin_id=… user_id=…`).",
    )
    .default("false");
    MULTI_TENANT_ENABLED = Var::new(
        "multi-tenancy",
        "A boolean. On: every request names a tenant, users are unique per (email, tenant), \
         tokens carry `tid`. Off: every user has no tenant.",
    )
    .default("false");
    TENANT_ID_HEADER = Var::new(
        "multi-tenancy",
        "The header that names the tenant; when it is absent, the host from `HOST_HEADER` \
         without its port is the tenant. A header name.",
    )
    .default("X-Tenant-ID");
}

/// `EXTERNAL_URL`, whose default follows `port`, and `VERIFY_REDIRECT_URL`, whose default
/// follows `EXTERNAL_URL`.
pub fn read_urls(r: &mut Reader, port: u16) -> (Option<Url>, Option<Url>) {
    // The default follows the port, so `serve --dev --port 8080` links to itself.
    let external_url = r.url_or(&EXTERNAL_URL, &format!("http://localhost:{port}"));
    let default_verify = external_url
        .as_ref()
        .map(|u| format!("{}/form", u.as_str().trim_end_matches('/')));
    let verify_redirect_url = match default_verify {
        Some(d) => r.url_or(&VERIFY_REDIRECT_URL, &d),
        None => r.url_or(&VERIFY_REDIRECT_URL, "http://localhost:9000/form"),
    };
    (external_url, verify_redirect_url)
}

/// `ALLOWED_REDIRECT_URLS`: explicit, or `VERIFY_REDIRECT_URL` plus the CORS origins (never
/// `*`).
pub fn read_redirect_urls(
    r: &mut Reader,
    verify_redirect_url: Option<&Url>,
    allowed_origins: &[String],
) -> Vec<Url> {
    match r.string(&ALLOWED_REDIRECT_URLS) {
        Some(_) => r
            .list(&ALLOWED_REDIRECT_URLS)
            .into_iter()
            .filter_map(|u| {
                parse_http_url(&u)
                    .map_err(|e| r.problem(format!("ALLOWED_REDIRECT_URLS: {e}")))
                    .ok()
            })
            .collect(),
        None => {
            let mut v: Vec<Url> = verify_redirect_url.into_iter().cloned().collect();
            for origin in allowed_origins {
                if origin == "*" {
                    continue;
                }
                if origin.contains("://") {
                    v.extend(Url::parse(origin).ok());
                } else {
                    v.extend(Url::parse(&format!("http://{origin}")).ok());
                    v.extend(Url::parse(&format!("https://{origin}")).ok());
                }
            }
            let shown = v.iter().map(Url::as_str).collect::<Vec<_>>().join(",");
            r.record(&ALLOWED_REDIRECT_URLS, &shown);
            v
        }
    }
}
