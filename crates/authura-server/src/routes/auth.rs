//! What needs no Bearer token: `POST /signup`, `/verify-email`, `/token` (a password login, or
//! impersonation with an admin's token), `/refresh` and `/reset-password`.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use authura_core::flows::{self, Context, SignedIn};
use authura_core::mail::Mail;
use authura_core::{CoreError, Email, Secret, TenantId};
use serde::Deserialize;

use crate::answer::{self, Answer, SignedInAnswer, UserOut};
use crate::error::ApiError;
use crate::extract::{Bearer, Body, Captcha, CaptchaFields, ClientInfo, State, Tenant};
use crate::routes::resource;
use crate::state::AppState;

/// Registers this area's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/signup", Method::POST, signup))
        .service(resource("/verify-email", Method::POST, verify_email))
        .service(resource("/token", Method::POST, token))
        .service(resource("/refresh", Method::POST, refresh))
        .service(resource("/reset-password", Method::POST, reset_password));
}

/// The body of `/signup`, `/reset-password` and `/change-email`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmailBody {
    #[schema(format = Email)]
    pub(crate) email: String,
    pub(crate) redirect_url: Option<String>,
    #[serde(flatten)]
    pub(crate) captcha: CaptchaFields,
}

/// `POST /signup`: mails a verification link (the user is created when it is followed).
#[utoipa::path(
    post,
    path = "/signup",
    tag = crate::openapi::tag::AUTH,
    summary = "Sign up: mails a verification link",
    description = "Creates nobody: following the link does. A taken address gets the same answer and no mail.",
    request_body = EmailBody,
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty),
        crate::openapi::errors::Signup,
    ),
)]
pub async fn signup(
    state: State,
    tenant: Tenant,
    body: Body<EmailBody>,
    captcha: Captcha,
) -> Answer {
    link_by_mail(&state, &tenant, &body, &captcha, flows::signup).await
}

/// `POST /reset-password`: mails a reset link if the user exists (the same answer either way).
#[utoipa::path(
    post,
    path = "/reset-password",
    tag = crate::openapi::tag::AUTH,
    summary = "Mail a password-reset link, if the address has a user",
    request_body = EmailBody,
    responses(
        (status = 200, description = "`{}`, whether or not the address has a user.", body = crate::openapi::Empty),
        crate::openapi::errors::ResetPassword,
    ),
)]
pub async fn reset_password(
    state: State,
    tenant: Tenant,
    body: Body<EmailBody>,
    captcha: Captcha,
) -> Answer {
    link_by_mail(&state, &tenant, &body, &captcha, flows::reset_password).await
}

/// A captcha-protected request for a link by mail: the address, the captcha, then `flow`.
async fn link_by_mail(
    state: &AppState,
    tenant: &Tenant,
    body: &EmailBody,
    captcha: &Captcha,
    flow: impl AsyncFn(
        &Context,
        Option<&TenantId>,
        &Email,
        Option<&str>,
    ) -> Result<Option<Mail>, CoreError>,
) -> Answer {
    let email = Email::parse(&body.email)?;
    captcha.check(&body.captcha).await?;
    let mail = flow(
        state.ctx(),
        tenant.get(),
        &email,
        body.redirect_url.as_deref(),
    )
    .await;
    answer::mailed(state, mail)
}

/// The body of `/verify-email`.
// No `Debug`: it carries a token and a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyBody {
    token: String,
    password: Option<String>,
}

/// `POST /verify-email`: follows a mail link; answers the user and a token pair.
#[utoipa::path(
    post,
    path = "/verify-email",
    tag = crate::openapi::tag::AUTH,
    summary = "Complete a mail link: create, reset or change the user",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The resulting user, signed in.", body = SignedInAnswer,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::VerifyEmail,
    ),
)]
pub async fn verify_email(
    state: State,
    tenant: Tenant,
    Body(body): Body<VerifyBody>,
    client: ClientInfo,
) -> Answer {
    let password = body.password.map(Secret::new);
    let signed = flows::verify_email_from(
        state.ctx(),
        tenant.get(),
        &body.token,
        password,
        client.client(),
    )
    .await?;
    Ok(answer::no_store(HttpResponse::Ok().json(SignedInAnswer {
        tokens: &signed.tokens,
        user: UserOut::new(&state, &signed.user),
    })))
}

/// The body of `/token`.
// No `Debug`: it carries a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenBody {
    #[schema(format = Email)]
    email: String,
    password: Option<String>,
    #[serde(flatten)]
    captcha: CaptchaFields,
}

/// `POST /token`: a password login (behind the captcha), or, with an empty password and an
/// admin's Bearer token, impersonation.
#[utoipa::path(
    post,
    path = "/token",
    tag = crate::openapi::tag::AUTH,
    summary = "Log in; or, with an admin's Bearer token and no password, impersonate",
    request_body = TokenBody,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "`T`.", body = crate::openapi::TokenPair,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::Token,
    ),
)]
pub async fn token(
    state: State,
    tenant: Tenant,
    Body(body): Body<TokenBody>,
    captcha: Captcha,
    bearer: Bearer,
    client: ClientInfo,
) -> Answer {
    let email = Email::parse(&body.email)?;
    let signed: SignedIn = match body.password {
        Some(p) if !p.is_empty() || !bearer.is_present() => {
            // Password logins need the captcha; impersonation (an admin's token) does not.
            captcha.check(&body.captcha).await?;
            let password = Secret::new(p);
            let client = client.client_after_captcha(&captcha);
            flows::login_from(state.ctx(), tenant.get(), &email, password, client).await?
        }
        // An empty password with a Bearer token asks for impersonation.
        _ if bearer.is_present() => {
            let bearer = bearer.token()?;
            flows::impersonate_from(state.ctx(), tenant.get(), bearer, &email, client.client())
                .await?
        }
        _ => return Err(ApiError::invalid_body("missing field `password`")),
    };
    Ok(answer::token_pair_answer(&signed.tokens))
}

/// The body of `/refresh`.
// No `Debug`: it carries a token.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    refresh_token: String,
}

/// `POST /refresh`: a new token pair for a refresh token, the user read again.
#[utoipa::path(
    post,
    path = "/refresh",
    tag = crate::openapi::tag::AUTH,
    summary = "Trade a refresh token for a new pair",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "`T`.", body = crate::openapi::TokenPair,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::Refresh,
    ),
)]
pub async fn refresh(
    state: State,
    tenant: Tenant,
    body: Body<RefreshBody>,
    client: ClientInfo,
) -> Answer {
    let signed = flows::refresh_from(
        state.ctx(),
        tenant.get(),
        &body.refresh_token,
        client.client(),
    )
    .await?;
    Ok(answer::token_pair_answer(&signed.tokens))
}
