//! `GET /form`: the HTML form pages a browser uses to sign up, log in, or follow a mail link
//! (SPEC §7), and, with sessions on, `action=session`: the sign-in page of forward auth (SPEC
//! §8), or who is signed in and a logout button.

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::answer::Answer;
use crate::error::ApiError;
use crate::extract::{State, Tenant};
use crate::html::{self, FormAction, SessionPage};
use crate::principal::SessionCredentials;
use crate::routes::resource;

/// Registers this area's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/form", Method::GET, form));
}

/// The query of `/form`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormQuery {
    #[param(value_type = Option<crate::html::FormAction>)]
    action: Option<String>,
    token: Option<String>,
    /// `action=session`: where to send the browser once signed in; must pass
    /// `ALLOWED_REDIRECT_URLS` (else 400 `invalid_redirect_url`).
    rd: Option<String>,
    /// `action=login`: the one-time code an OAuth sign-in handed back (SPEC §9); the page
    /// offers to trade it for tokens at `POST /oauth/token`.
    code: Option<String>,
    /// `action=login` or `session`: the error code a failed OAuth sign-in handed back.
    error: Option<String>,
}

/// `GET /form?action=…&token=…`: the page for `action`, with the captcha widget when one is
/// configured; 400 `invalid_action` for an unknown action or `change-password`.
#[utoipa::path(
    get,
    path = "/form",
    tag = crate::openapi::tag::FORM,
    summary = "An HTML form that posts to the right endpoint",
    params(FormQuery),
    responses(
        (status = 200, description = "The form page.", content((String = "text/html; charset=utf-8"))),
        crate::openapi::errors::Form,
    ),
)]
pub async fn form(
    query: Result<web::Query<FormQuery>, actix_web::Error>,
    state: State,
    tenant: Result<Tenant, ApiError>,
    credentials: SessionCredentials,
) -> Answer {
    let query =
        query.map_err(|_| ApiError::invalid_action("the query string could not be read"))?;
    let action = query.action.as_deref().unwrap_or("");
    let parsed = FormAction::parse(action).filter(|a| {
        // The session page exists only with sessions on.
        *a != FormAction::Session || state.sessions().is_some()
    });
    let Some(action) = parsed else {
        return Err(ApiError::invalid_action(if action == "change-password" {
            "change-password needs a Bearer token, which a browser form cannot send"
        } else {
            "unknown form action (expected signup, login, verify-email, invite, reset-password, change-email, forgot-password, or session when sessions are on)"
        }));
    };
    let widget = state.captcha().map(|t| html::Widget {
        script: t.settings().script.as_str(),
        site_key: &t.settings().site_key,
    });
    let form_base = state.sign_in_form();
    let panel = |session: bool, back: String| {
        state.oauth().map(|oauth| html::OAuthPanel {
            providers: oauth.buttons(),
            redirect_url: back,
            session,
            code: query.code.as_deref().filter(|_| !session),
            error: query.error.as_deref(),
        })
    };
    let (page, referrer) = if action == FormAction::Session {
        let rd = match query.rd.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(rd) => Some(state.ctx().settings.redirects.check(rd)?.to_string()),
            None => None,
        };
        // Signed in when the credential opens a live session of the request's tenant; a
        // request naming no valid tenant is simply not signed in (the form then posts to
        // `POST /session`, which answers `tenant_required`).
        let principal = match &tenant {
            Ok(tenant) if credentials.kind().is_some() => {
                credentials.resolve(tenant.get()).await.ok()
            }
            _ => None,
        };
        let which = match &principal {
            Some(p) => SessionPage::SignedIn {
                email: p.user.email.as_str(),
                rd: rd.as_deref(),
            },
            None => SessionPage::SignIn { rd: rd.as_deref() },
        };
        // A provider's sign-in comes back to this page (signed in, with the way on to `rd`).
        let mut back = form_url(form_base, "session");
        if let Some(rd) = &rd {
            back.query_pairs_mut().append_pair("rd", rd);
        }
        let oauth = panel(true, back.to_string()).filter(|_| state.sessions().is_some());
        (
            html::session_page(&which, widget, oauth.as_ref()),
            html::SESSION_REFERRER_POLICY,
        )
    } else {
        let token = query.token.as_deref().unwrap_or("");
        let oauth = panel(false, form_url(form_base, "login").to_string());
        (
            html::form_page(action, token, widget, oauth.as_ref()),
            "no-referrer",
        )
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Referrer-Policy", referrer))
        .content_type("text/html; charset=utf-8")
        .body(page))
}

/// `EXTERNAL_URL/form?action=<action>`, from `EXTERNAL_URL/form`.
fn form_url(form: &url::Url, action: &str) -> url::Url {
    let mut url = form.clone();
    url.set_query(None);
    url.query_pairs_mut().append_pair("action", action);
    url
}
