//! The routes of SPEC §3, one module per area, each with an actix `configure` function that
//! registers its resources; [`app`] assembles them with the default 404, the 405 of each
//! resource, and the middleware in SPEC §3's order.
//!
//! The areas follow the SPEC's table: `health` (probes, metrics, the key set), `form` (the
//! browser pages), `auth` (what needs no Bearer token: signing up, verifying, logging in,
//! refreshing, resetting a password) and `account` (what a Bearer token does: reading the user,
//! changing the password or the email, inviting); and, registered only when
//! `SESSIONS_ENABLED=true` (off, their paths are unknown: 404), `session` (SPEC §8: signing in with
//! a session cookie or key, the current session, my sessions, logout), `check` (`/check` and
//! forward auth) and `permits` (SPEC §8a: role groups and permits). A new area is a new file here, its `mod` line and its entry in `AREAS` (or
//! `SESSION_AREAS`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, web};

use crate::error::ApiError;
use crate::middleware::{cors, html_results, limits, request_log};
use crate::state::AppState;

// `pub(crate)` so that `openapi::ApiDoc` can name the handlers.
pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod check;
pub(crate) mod form;
pub(crate) mod health;
pub(crate) mod oauth;
pub(crate) mod permits;
pub(crate) mod session;

/// Each area's `configure`, in the order they are registered. An area declared above and
/// missing here leaves its `configure` unused, which the build refuses (`dead_code`).
const AREAS: &[fn(&mut web::ServiceConfig)] = &[
    health::configure,
    form::configure,
    auth::configure,
    account::configure,
    oauth::configure,
    admin::configure,
];

/// The areas served only with sessions on (`SESSIONS_ENABLED=true`).
const SESSION_AREAS: &[fn(&mut web::ServiceConfig)] =
    &[session::configure, check::configure, permits::configure];

/// The application: every area's routes, the 404 for unknown paths, and the middleware
/// (outermost first: request log, HTML results, CORS, rate limit, host check).
pub fn app(
    data: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors = cors::cors(&data);
    let sessions = data.sessions().is_some();
    let mut app = App::new().app_data(data);
    for configure in AREAS {
        app = app.configure(configure);
    }
    if sessions {
        for configure in SESSION_AREAS {
            app = app.configure(configure);
        }
    }
    app.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::not_found())
    }))
    .wrap(from_fn(limits::host_check))
    .wrap(from_fn(limits::rate_limit))
    .wrap(cors)
    .wrap(from_fn(html_results::html_results))
    .wrap(from_fn(request_log::request_log))
}

/// A resource answering `method` (and HEAD, for GET) with `handler`, and 405
/// `method_not_allowed` with `Allow` (RFC 9110) for any other method.
fn resource<F, Args>(path: &str, method: Method, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let mut resource = web::resource(path);
    let allow = if method == Method::GET {
        // HEAD is GET without the body (actix drops it), as probes and HTTP expect.
        resource = resource.route(web::head().to(handler.clone()));
        "GET, HEAD".to_owned()
    } else {
        method.to_string()
    };
    resource
        .route(web::method(method).to(handler))
        .default_service(refuse_others(allow))
}

/// The default service of a resource: 405 `method_not_allowed`, with `Allow` listing `allow`.
fn refuse_others(allow: impl Into<String>) -> actix_web::Route {
    let allow = allow.into();
    web::to(move || {
        let refused = ApiError::method_not_allowed(&allow);
        async move { Err::<HttpResponse, _>(refused) }
    })
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use authura_core::CoreError;

    use crate::error::ApiError;

    #[test]
    fn status_is_chosen_once() {
        let e: ApiError = CoreError::EmailTaken.into();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::CONFLICT, "email_taken")
        );
    }
}
