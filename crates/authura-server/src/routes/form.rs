//! `GET /form`: the HTML form pages a browser uses to sign up, log in, or follow a mail link
//! (SPEC §7).

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::answer::Answer;
use crate::error::ApiError;
use crate::extract::State;
use crate::html::{self, FormAction};
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
pub async fn form(query: Result<web::Query<FormQuery>, actix_web::Error>, state: State) -> Answer {
    let query =
        query.map_err(|_| ApiError::invalid_action("the query string could not be read"))?;
    let action = query.action.as_deref().unwrap_or("");
    let Some(action) = FormAction::parse(action) else {
        return Err(ApiError::invalid_action(if action == "change-password" {
            "change-password needs a Bearer token, which a browser form cannot send"
        } else {
            "unknown form action (expected signup, login, verify-email, invite, reset-password, change-email or forgot-password)"
        }));
    };
    let widget = state.captcha().map(|t| html::Widget {
        script: t.settings().script.as_str(),
        site_key: &t.settings().site_key,
    });
    let page = html::form_page(action, query.token.as_deref().unwrap_or(""), widget);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .content_type("text/html; charset=utf-8")
        .body(page))
}
