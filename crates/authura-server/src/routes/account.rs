//! What a Bearer token does: `GET /user`, `POST /change-password`, `/change-email` and (for an
//! admin) `/invite`.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use authura_core::flows;
use authura_core::{Email, Role, Secret};
use serde::Deserialize;

use crate::answer::{self, Answer, UserAnswer, UserOut};
use crate::extract::{Bearer, Body, ClientInfo, State, Tenant};
use crate::routes::auth::EmailBody;
use crate::routes::resource;

/// Registers this area's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/user", Method::GET, user))
        .service(resource("/change-password", Method::POST, change_password))
        .service(resource("/change-email", Method::POST, change_email))
        .service(resource("/invite", Method::POST, invite));
}

/// `GET /user`: the token's user, read from the backend.
#[utoipa::path(
    get,
    path = "/user",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "The signed-in user, read from the backend",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"user\": U}`.", body = UserAnswer,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::User,
    ),
)]
pub async fn user(state: State, tenant: Tenant, bearer: Bearer) -> Answer {
    let view = flows::current_user(state.ctx(), tenant.get(), bearer.token()?).await?;
    Ok(answer::no_store(HttpResponse::Ok().json(UserAnswer {
        user: UserOut::new(&state, &view),
    })))
}

/// The body of `/change-password`.
// No `Debug`: it carries passwords.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordBody {
    old_password: String,
    new_password: String,
}

/// `POST /change-password`: checks the old password; every earlier refresh token stops working.
#[utoipa::path(
    post,
    path = "/change-password",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "Change the password; earlier refresh tokens stop working",
    request_body = ChangePasswordBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty),
        crate::openapi::errors::ChangePassword,
    ),
)]
pub async fn change_password(
    state: State,
    tenant: Tenant,
    Body(body): Body<ChangePasswordBody>,
    bearer: Bearer,
    client: ClientInfo,
) -> Answer {
    let (old, new) = (
        Secret::new(body.old_password),
        Secret::new(body.new_password),
    );
    flows::change_password_from(
        state.ctx(),
        tenant.get(),
        bearer.token()?,
        old,
        new,
        client.client(),
    )
    .await?;
    Ok(answer::empty())
}

/// `POST /change-email`: mails a confirmation link to the new address, unless it is in use
/// (the same answer either way).
#[utoipa::path(
    post,
    path = "/change-email",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "Mail a link that changes the email to a new address",
    request_body = EmailBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{}`, also when the address is taken (then no mail).", body = crate::openapi::Empty),
        crate::openapi::errors::ChangeEmail,
    ),
)]
pub async fn change_email(
    state: State,
    tenant: Tenant,
    body: Body<EmailBody>,
    bearer: Bearer,
) -> Answer {
    let token = bearer.token()?;
    let email = Email::parse(&body.email)?;
    let redirect_url = body.redirect_url.as_deref();
    let mail = flows::change_email(state.ctx(), tenant.get(), token, &email, redirect_url).await;
    answer::mailed(&state, mail)
}

/// The body of `/invite`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InviteBody {
    #[schema(format = Email)]
    email: String,
    role: String,
    redirect_url: Option<String>,
}

/// `POST /invite`: an admin invites an address with a role; the link creates the user.
#[utoipa::path(
    post,
    path = "/invite",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "Invite an address with a role (ADMIN_ROLE only)",
    request_body = InviteBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{}`; an invite mail is sent.", body = crate::openapi::Empty),
        crate::openapi::errors::Invite,
    ),
)]
pub async fn invite(
    state: State,
    tenant: Tenant,
    body: Body<InviteBody>,
    bearer: Bearer,
) -> Answer {
    let token = bearer.token()?;
    let (email, role) = (Email::parse(&body.email)?, Role::parse(&body.role)?);
    let redirect_url = body.redirect_url.as_deref();
    let mail = flows::invite(
        state.ctx(),
        tenant.get(),
        token,
        &email,
        &role,
        redirect_url,
    )
    .await;
    answer::mailed(&state, mail.map(Some))
}
