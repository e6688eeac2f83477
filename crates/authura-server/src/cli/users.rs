//! `authura user list|show|create|update|delete|end-sessions` (SPEC §11): the `/admin/users`
//! operations from the command line, through the same `flows::admin` functions, as the operator
//! (no admin account: the audit events say `"by": "cli"`). `--json` prints what the API
//! answers. A created user's invite mail and a reset mail are sent before the command returns;
//! on PostgreSQL, sessions ended here leave running instances' caches through `NOTIFY`.

use std::time::Duration;

use authura_core::flows::UserView;
use authura_core::flows::admin::{self, Actor, CreateUser, ListUsers, UpdateUser};
use authura_core::mail::Mail;
use authura_core::{Email, Role, Secret, TenantId, UserId};
use serde::Serialize;

use super::{Failure, Opened, open};
use crate::answer::UserOut;
use crate::config::Config;
use crate::routes::admin::users::{UserAccountOut, UsersOut};

/// How long the command waits for its audit events to be written before it exits.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

/// What to do (a password's `Debug` is redacted).
#[derive(Debug)]
pub enum UserOperation {
    /// A page of users.
    List {
        query: Option<String>,
        cursor: Option<String>,
        limit: Option<usize>,
    },
    /// One user with their account.
    Show { id: String },
    /// A new user (`password` `None`: a random one, or the invite link's).
    Create {
        email: String,
        role: Option<String>,
        password: Option<Secret>,
        verified: bool,
        invite: bool,
    },
    /// Changes to a user.
    Update {
        id: String,
        email: Option<String>,
        role: Option<String>,
        verified: Option<bool>,
        password: Option<Secret>,
    },
    /// Delete a user with their sessions, permit and account state.
    Delete { id: String },
    /// End every session of a user.
    EndSessions { id: String },
    /// Mail a user a reset link.
    ResetPassword { id: String },
}

/// The operation and how to print it.
#[derive(Debug)]
pub struct UsersArgs {
    /// The users' tenant (required with multi-tenancy on).
    pub tenant: Option<String>,
    /// Print JSON (the API's answer) instead of sentences.
    pub json: bool,
    pub operation: UserOperation,
}

/// The tenant the command names, checked against `MULTI_TENANT_ENABLED`.
///
/// # Errors
/// `tenant_required` (none with multi-tenancy on, or not a tenant id), `invalid_body` (one
/// without multi-tenancy).
pub fn tenant(config: &Config, arg: Option<&str>) -> Result<Option<TenantId>, Failure> {
    match (arg, config.multi_tenant) {
        (Some(t), true) => TenantId::parse(t).map(Some).map_err(|_| Failure {
            code: "tenant_required",
            message: format!("{t:?} is not a tenant id"),
        }),
        (None, true) => Err(Failure {
            code: "tenant_required",
            message: "multi-tenancy is on: name the tenant with --tenant".into(),
        }),
        (Some(_), false) => Err(Failure {
            code: "invalid_body",
            message: "--tenant is only for MULTI_TENANT_ENABLED=true".into(),
        }),
        (None, false) => Ok(None),
    }
}

/// Runs the operation on the configured stores; returns what to print.
///
/// # Errors
/// A [`Failure`] with the API's code (`not_found`, `email_taken`, `weak_password`,
/// `not_supported`, …), or `start` when the stores cannot be opened.
pub async fn run(config: &Config, args: UsersArgs) -> Result<String, Failure> {
    let tenant = tenant(config, args.tenant.as_deref())?;
    let opened = open(config).await?;
    let out = operate(&opened, tenant.as_ref(), args.json, args.operation).await;
    if !opened.state.audit().drain(AUDIT_DRAIN).await {
        tracing::warn!("some audit events were not written before the command ended");
    }
    out
}

async fn operate(
    opened: &Opened,
    tenant: Option<&TenantId>,
    json: bool,
    operation: UserOperation,
) -> Result<String, Failure> {
    let state = &opened.state;
    let ctx = state.ctx();
    let actor = Actor::default();
    match operation {
        UserOperation::List {
            query,
            cursor,
            limit,
        } => {
            let list = ListUsers {
                query: query.as_deref(),
                cursor: cursor.as_deref(),
                limit,
            };
            let page = admin::list_users(ctx, tenant, &list).await?;
            let views: Vec<UserView> = page
                .users
                .into_iter()
                .map(|user| UserView {
                    user,
                    hook_data: None,
                })
                .collect();
            if json {
                return to_json(&UsersOut {
                    users: views.iter().map(|v| UserOut::new(state, v)).collect(),
                    next_cursor: page.next_cursor.as_deref(),
                });
            }
            let mut lines: Vec<String> = views.iter().map(|v| line(&v.user)).collect();
            if let Some(next) = page.next_cursor {
                lines.push(format!("next page: --cursor {next}"));
            }
            Ok(lines.join("\n"))
        }
        UserOperation::Show { id } => {
            let account = admin::show_user(ctx, tenant, &UserId::from_subject(&id)).await?;
            let out = UserAccountOut::new(state, &account);
            if json {
                return to_json(&out);
            }
            let a = &out.account;
            Ok(format!(
                "{}\nlocked: {}\narchived: {}\nlast login: {}\npassword changed: {}\nsessions: {}",
                line(&account.user.user),
                a.locked,
                a.archived,
                a.last_login_at.as_deref().unwrap_or("-"),
                a.password_changed_at.as_deref().unwrap_or("-"),
                a.sessions
            ))
        }
        UserOperation::Create {
            email,
            role,
            password,
            verified,
            invite,
        } => {
            let new = CreateUser {
                email: Email::parse(&email).map_err(crate::error::ApiError::from)?,
                role: role.as_deref().map(parse_role).transpose()?,
                password,
                verified,
                invite,
                redirect_url: None,
            };
            let (view, mail) = admin::create_user(ctx, tenant, actor, new).await?;
            if let Some(mail) = mail {
                send(opened, &mail).await?;
            }
            if json {
                return to_json(&UserOut::new(state, &view));
            }
            let how = if invite {
                "; the invite mail is sent"
            } else {
                ""
            };
            Ok(format!("created {}{how}", line(&view.user)))
        }
        UserOperation::Update {
            id,
            email,
            role,
            verified,
            password,
        } => {
            let update = UpdateUser {
                email: email
                    .as_deref()
                    .map(Email::parse)
                    .transpose()
                    .map_err(crate::error::ApiError::from)?,
                role: role.as_deref().map(parse_role).transpose()?,
                verified,
                password,
            };
            let id = UserId::from_subject(&id);
            let view = admin::update_user(ctx, tenant, actor, &id, update).await?;
            if json {
                return to_json(&UserOut::new(state, &view));
            }
            Ok(format!("updated {}", line(&view.user)))
        }
        UserOperation::Delete { id } => {
            let id = UserId::from_subject(&id);
            let permits = state.state_store().map(|s| &**s);
            admin::delete_user(ctx, tenant, actor, &id, permits).await?;
            if json {
                return Ok("{}".into());
            }
            Ok(format!("user {id} deleted"))
        }
        UserOperation::EndSessions { id } => {
            let id = UserId::from_subject(&id);
            admin::end_user_sessions(ctx, tenant, actor, &id).await?;
            if json {
                return Ok("{}".into());
            }
            Ok(format!("user {id}: every session ended"))
        }
        UserOperation::ResetPassword { id } => {
            let id = UserId::from_subject(&id);
            let mail = admin::send_reset(ctx, tenant, &id, None).await?;
            send(opened, &mail).await?;
            if json {
                return Ok("{}".into());
            }
            Ok(format!("user {id}: the reset mail is sent"))
        }
    }
}

fn parse_role(role: &str) -> Result<Role, Failure> {
    Role::parse(role).map_err(|e| crate::error::ApiError::from(e).into())
}

/// One user on one line: id, email, role, verified.
fn line(user: &authura_core::User) -> String {
    let verified = if user.verified_at.is_some() {
        "verified"
    } else {
        "unverified"
    };
    format!(
        "{}\t{}\t{}\t{verified}",
        user.id,
        user.email.as_str(),
        user.role.as_str()
    )
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|e| Failure {
        code: "internal_error",
        message: e.to_string(),
    })
}

/// Sends a mail now (the command waits for the relay).
async fn send(opened: &Opened, mail: &Mail) -> Result<(), Failure> {
    opened.mailer.send(mail).await.map_err(|e| Failure {
        code: "mail_failed",
        message: format!("the mail to {} was not sent: {e}", mail.to.as_str()),
    })
}
