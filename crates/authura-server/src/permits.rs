//! Role groups and permits as the administrator changes them (SPEC §8a), shared by the admin
//! endpoints (`routes::permits`) and the `authura group` / `authura permit` commands: input
//! checked, the state store's `PermitStore` called, the audit event recorded
//! (`rolegroup.created|updated|deleted`, `permit.changed`), and the change announced so `/check`
//! sees it at once here and, on PostgreSQL, within a second on every other instance (a permit:
//! `StateEvent::UserChanged`; a group's change or deletion: `StateEvent::All`).

use std::collections::BTreeSet;
use std::sync::Arc;

use authura_core::permit::{Access, GroupId, GroupName, Permission, Permit, RoleGroup};
use authura_core::sessions::Client;
use authura_core::state::audit::{AuditEvent, kind};
use authura_core::state::{StateEvent, StateStore};
use authura_core::store::StoreError;
use authura_core::{CoreError, TenantId, User, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// What the session cache keeps for a session (SPEC §8 "The cache"): the user's record and
/// their permit resolved against the groups and rendered, so a hit answers `/check` without a
/// database and without serialising the groups again.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The user's current record.
    pub user: User,
    /// Their permit, resolved and rendered.
    pub access: Arc<Rendered>,
}

/// A permit resolved against the groups that exist, with what `/check` says of it rendered
/// once: a user holding 20 groups and 200 permissions costs a cache hit a copy of two strings,
/// not 20 objects and 200 numbers serialised (`cargo xtask bench permits`).
#[derive(Debug, Default)]
pub struct Rendered {
    /// The permit, resolved.
    pub access: Access,
    /// `/check`'s members for it, each after a comma: `,"groups":[…],"permissions":[…]`,
    /// `,"permission_names":[…]` with `PERMISSION_NAMES`, and `,"permit":"…"`.
    pub json: String,
    /// `X-Authura-Groups`: the group names, comma-joined.
    pub groups_header: String,
}

/// A role group as `/check` names it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupRef<'a> {
    /// The group's id.
    pub id: u32,
    /// The group's name.
    pub name: &'a str,
}

impl Rendered {
    /// Renders `access`, naming permissions by `names`.
    pub fn new(access: Access, names: &authura_core::permit::PermissionNames) -> Rendered {
        #[derive(Serialize)]
        struct Members<'a> {
            groups: Vec<GroupRef<'a>>,
            permissions: Vec<u16>,
            #[serde(skip_serializing_if = "Option::is_none")]
            permission_names: Option<Vec<&'a str>>,
            permit: String,
        }
        let members = Members {
            groups: access
                .groups
                .iter()
                .map(|(id, name)| GroupRef {
                    id: id.0,
                    name: name.as_str(),
                })
                .collect(),
            permissions: access.permissions.iter().map(|p| p.0).collect(),
            permission_names: (!names.is_empty()).then(|| names.names(&access.permissions)),
            permit: access.permit.to_base64(),
        };
        // Numbers and strings only: serialising cannot fail. `{…}` becomes `,…`.
        let mut json = serde_json::to_string(&members).unwrap_or_default();
        json.pop();
        if !json.is_empty() {
            json.replace_range(0..1, ",");
        }
        let groups_header = access
            .groups
            .iter()
            .map(|(_, name)| name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Rendered {
            access,
            json,
            groups_header,
        }
    }
}

/// Who makes a change: an administrator (their id) from a client, or the operator at the
/// command line (`None`; the audit event's detail says `"by": "cli"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor<'a> {
    /// The administrator, `None` for the command line.
    pub admin: Option<&'a UserId>,
    /// The client's address and agent.
    pub client: Client<'a>,
}

/// A permission as input: its number, or a name from `PERMISSION_NAMES`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PermissionIn {
    /// A number (0–65535).
    Number(i64),
    /// A name from `PERMISSION_NAMES`.
    Name(String),
}

/// A role group as input: `POST` needs `name`; `PUT` replaces what it gives.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    /// The group's name: non-empty, no white space around it, at most 128 characters, no
    /// control characters; unique, case-sensitive.
    #[serde(default)]
    pub name: Option<String>,
    /// What it grants: numbers (0–65535) or names from `PERMISSION_NAMES`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<PermissionIn>>)]
    pub permissions: Option<Vec<PermissionIn>>,
}

/// A group as a permit names it: its id, or its exact name.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum GroupSel {
    /// The group's id.
    Id(i64),
    /// The group's exact name.
    Name(String),
}

/// The body of `PUT /permits/{user_id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermitIn {
    /// The groups the user holds from now on (ids or names; `[]` clears the permit).
    pub groups: Vec<GroupSel>,
}

/// A role group as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupOut {
    /// Its number (u32).
    pub id: u32,
    /// Its name.
    pub name: String,
    /// What it grants, ascending.
    pub permissions: Vec<u16>,
    /// With `PERMISSION_NAMES`: the names of those that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_names: Option<Vec<String>>,
}

/// `GET /rolegroups`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupsOut {
    /// Every group, ascending by id.
    pub groups: Vec<GroupOut>,
}

/// A group as a permit names it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupRefOut {
    /// The group's id.
    pub id: u32,
    /// The group's name.
    pub name: String,
}

/// A user's permit as the API shows it (SPEC §8a).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PermitOut {
    /// The user's id, as stored (number or string).
    #[schema(value_type = crate::openapi::UserId)]
    pub user_id: Value,
    /// The permit's groups that exist, ascending by id.
    pub groups: Vec<GroupRefOut>,
    /// The union of their permissions, ascending.
    pub permissions: Vec<u16>,
    /// With `PERMISSION_NAMES`: the names of those that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_names: Option<Vec<String>>,
    /// The Authaus permit blob (group ids as big-endian u32s), standard base64.
    pub permit: String,
}

/// The state store, or 501 `not_supported` when none is open (no feature that needs one is on).
///
/// # Errors
/// 501 `not_supported`.
pub fn store(state: &AppState) -> Result<&Arc<dyn StateStore>, ApiError> {
    state.state_store().ok_or_else(|| {
        CoreError::Unsupported(
            "role groups and permits need the state store (SESSIONS_ENABLED=true)".into(),
        )
        .into()
    })
}

/// A store failure as the API answers it (`Conflict` is a group name that exists).
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError::name_taken(),
        e => CoreError::from(e).into(),
    }
}

/// `PERMISSION_NAMES`' names of `permissions`, when any is configured.
fn names_of<'a>(
    state: &AppState,
    permissions: impl IntoIterator<Item = &'a Permission>,
) -> Option<Vec<String>> {
    let names = state.permission_names();
    (!names.is_empty()).then(|| {
        names
            .names(permissions)
            .into_iter()
            .map(str::to_owned)
            .collect()
    })
}

/// `group` as the API shows it.
pub fn group_out(state: &AppState, group: &RoleGroup) -> GroupOut {
    GroupOut {
        id: group.id.0,
        name: group.name.as_str().to_owned(),
        permissions: group.permissions.iter().map(|p| p.0).collect(),
        permission_names: names_of(state, &group.permissions),
    }
}

/// `access` of `user_id` as the API shows it.
pub fn permit_out(state: &AppState, user_id: &UserId, access: &Access) -> PermitOut {
    PermitOut {
        user_id: user_id.to_json(),
        groups: access
            .groups
            .iter()
            .map(|(id, name)| GroupRefOut {
                id: id.0,
                name: name.as_str().to_owned(),
            })
            .collect(),
        permissions: access.permissions.iter().map(|p| p.0).collect(),
        permission_names: names_of(state, &access.permissions),
        permit: access.permit.to_base64(),
    }
}

/// Checks a group name.
///
/// # Errors
/// 400 `invalid_body` saying which rule failed.
fn parse_name(name: &str) -> Result<GroupName, ApiError> {
    GroupName::parse(name).map_err(|e| ApiError::invalid_body(format!("name: {e}")))
}

/// Reads permissions given as numbers or `PERMISSION_NAMES` names.
///
/// # Errors
/// 400 `invalid_body` for a number out of 0–65535 or an unknown name.
fn parse_permissions(
    state: &AppState,
    given: &[PermissionIn],
) -> Result<BTreeSet<Permission>, ApiError> {
    given
        .iter()
        .map(|p| match p {
            PermissionIn::Number(n) => u16::try_from(*n).map(Permission).map_err(|_| {
                ApiError::invalid_body(format!(
                    "permissions: {n} is not a permission number (0 to 65535)"
                ))
            }),
            PermissionIn::Name(name) => state.permission_names().number(name).ok_or_else(|| {
                let shown: String = name.chars().take(64).collect();
                ApiError::invalid_body(format!(
                    "permissions: {shown:?} is not a name in PERMISSION_NAMES"
                ))
            }),
        })
        .collect()
}

/// A group id from a path or the command line.
///
/// # Errors
/// 404 `not_found` for text that is not a u32 (no such group can exist).
pub fn parse_group_id(text: &str) -> Result<GroupId, ApiError> {
    text.trim()
        .parse::<u32>()
        .map(GroupId)
        .map_err(|_| ApiError::no_such("no such role group"))
}

/// Records an audit event.
fn audit(
    state: &AppState,
    event_kind: &str,
    tenant: Option<&TenantId>,
    user: Option<&UserId>,
    actor: Actor<'_>,
    mut detail: Value,
) {
    let ctx = state.ctx();
    let mut event = AuditEvent::new(event_kind, ctx.clock.now(), tenant);
    event.user_id = user.cloned();
    event.actor_id = actor.admin.cloned();
    event.ip = actor.client.ip.map(str::to_owned);
    event.user_agent = actor.client.user_agent.map(str::to_owned);
    if actor.admin.is_none()
        && let Some(obj) = detail.as_object_mut()
    {
        obj.insert("by".into(), "cli".into());
    }
    event.detail = detail;
    ctx.policies.audit.record(event);
}

/// Tells this instance's cache and, through the events transport, every other instance.
async fn announce(state: &AppState, event: StateEvent) {
    if let Some(sessions) = state.sessions() {
        sessions.policy().announce(event).await;
    }
}

/// Every group, ascending by id.
///
/// # Errors
/// 501 `not_supported` without the state store; store failures.
pub async fn list_groups(state: &AppState) -> Result<Vec<RoleGroup>, ApiError> {
    store(state)?.list_groups().await.map_err(store_error)
}

/// The group with `id`.
///
/// # Errors
/// 404 `not_found`; 501 `not_supported`; store failures.
pub async fn find_group(state: &AppState, id: GroupId) -> Result<RoleGroup, ApiError> {
    store(state)?
        .find_group(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::no_such(format!("no role group {id}")))
}

/// Creates a group.
///
/// # Errors
/// 400 `invalid_body` (no or a bad name, a bad permission); 409 `name_taken`; 501
/// `not_supported`; store failures.
pub async fn create_group(
    state: &AppState,
    input: &GroupIn,
    actor: Actor<'_>,
) -> Result<RoleGroup, ApiError> {
    let name = parse_name(
        input
            .name
            .as_deref()
            .ok_or_else(|| ApiError::invalid_body("name is required"))?,
    )?;
    let permissions = parse_permissions(state, input.permissions.as_deref().unwrap_or(&[]))?;
    let group = store(state)?
        .create_group(None, &name, &permissions)
        .await
        .map_err(store_error)?;
    audit(
        state,
        kind::ROLEGROUP_CREATED,
        None,
        None,
        actor,
        json!({"group_id": group.id.0, "name": group.name.as_str(),
               "permissions": group.permissions.iter().map(|p| p.0).collect::<Vec<_>>()}),
    );
    Ok(group)
}

/// Replaces a group's name and/or permissions (what `input` gives); every session holding it
/// sees the change at once.
///
/// # Errors
/// 400 `invalid_body`; 404 `not_found`; 409 `name_taken`; 501 `not_supported`; store failures.
pub async fn update_group(
    state: &AppState,
    id: GroupId,
    input: &GroupIn,
    actor: Actor<'_>,
) -> Result<RoleGroup, ApiError> {
    let name = input.name.as_deref().map(parse_name).transpose()?;
    let permissions = input
        .permissions
        .as_deref()
        .map(|p| parse_permissions(state, p))
        .transpose()?;
    let before = find_group(state, id).await?;
    let after = RoleGroup {
        id,
        name: name.unwrap_or_else(|| before.name.clone()),
        permissions: permissions.unwrap_or_else(|| before.permissions.clone()),
    };
    if !store(state)?
        .update_group(&after)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::no_such(format!("no role group {id}")));
    }
    announce(state, StateEvent::All).await;
    let mut detail = json!({"group_id": id.0});
    if before.name != after.name {
        detail["name"] = json!({"from": before.name.as_str(), "to": after.name.as_str()});
    }
    if before.permissions != after.permissions {
        let list = |s: &BTreeSet<Permission>| s.iter().map(|p| p.0).collect::<Vec<_>>();
        detail["permissions"] =
            json!({"from": list(&before.permissions), "to": list(&after.permissions)});
    }
    audit(state, kind::ROLEGROUP_UPDATED, None, None, actor, detail);
    Ok(after)
}

/// Deletes a group; it leaves every permit that held it.
///
/// # Errors
/// 404 `not_found`; 501 `not_supported`; store failures.
pub async fn delete_group(
    state: &AppState,
    id: GroupId,
    actor: Actor<'_>,
) -> Result<RoleGroup, ApiError> {
    let group = find_group(state, id).await?;
    let deleted = store(state)?.delete_group(id).await.map_err(store_error)?;
    // Announced even when another deletion won the race: permits lost the id either way.
    announce(state, StateEvent::All).await;
    if !deleted {
        return Err(ApiError::no_such(format!("no role group {id}")));
    }
    audit(
        state,
        kind::ROLEGROUP_DELETED,
        None,
        None,
        actor,
        json!({"group_id": id.0, "name": group.name.as_str()}),
    );
    Ok(group)
}

/// The user `id` of `tenant`.
///
/// # Errors
/// 404 `not_found`; backend failures.
async fn user(state: &AppState, tenant: Option<&TenantId>, id: &UserId) -> Result<User, ApiError> {
    state
        .ctx()
        .store
        .find_by_id(tenant, id)
        .await
        .map_err(|e| ApiError::from(CoreError::from(e)))?
        .ok_or_else(|| ApiError::no_such("no such user"))
}

/// A user's permit, resolved against the groups that exist.
///
/// # Errors
/// 404 `not_found` for an unknown user; 501 `not_supported`; store failures.
pub async fn show_permit(
    state: &AppState,
    tenant: Option<&TenantId>,
    id: &UserId,
) -> Result<(User, Access), ApiError> {
    let store = store(state)?;
    let user = user(state, tenant, id).await?;
    let access = store
        .access(user.tenant.as_ref(), &user.id)
        .await
        .map_err(store_error)?;
    Ok((user, access))
}

/// Replaces a user's permit with the groups `groups` names (ids or exact names); their live
/// sessions see it at once.
///
/// # Errors
/// 404 `not_found` for an unknown user or group; 501 `not_supported`; store failures.
pub async fn set_permit(
    state: &AppState,
    tenant: Option<&TenantId>,
    id: &UserId,
    groups: &[GroupSel],
    actor: Actor<'_>,
) -> Result<(User, Access), ApiError> {
    let store = store(state)?;
    let user = user(state, tenant, id).await?;
    let existing = store.list_groups().await.map_err(store_error)?;
    let mut ids = BTreeSet::new();
    for sel in groups {
        let found = match sel {
            GroupSel::Id(n) => existing.iter().find(|g| i64::from(g.id.0) == *n),
            GroupSel::Name(name) => existing.iter().find(|g| g.name.as_str() == name),
        };
        match (found, sel) {
            (Some(g), _) => {
                ids.insert(g.id);
            }
            (None, GroupSel::Id(n)) => {
                return Err(ApiError::no_such(format!("no role group {n}")));
            }
            (None, GroupSel::Name(name)) => {
                let shown: String = name.chars().take(64).collect();
                return Err(ApiError::no_such(format!("no role group named {shown:?}")));
            }
        }
    }
    let before = store
        .permit(user.tenant.as_ref(), &user.id)
        .await
        .map_err(store_error)?;
    let permit = Permit::new(ids);
    store
        .set_permit(user.tenant.as_ref(), &user.id, &permit)
        .await
        .map_err(store_error)?;
    announce(
        state,
        StateEvent::UserChanged {
            tenant: user.tenant.clone(),
            user_id: user.id.clone(),
        },
    )
    .await;
    let list = |p: &Permit| p.groups().map(|g| g.0).collect::<Vec<_>>();
    audit(
        state,
        kind::PERMIT_CHANGED,
        user.tenant.as_ref(),
        Some(&user.id),
        actor,
        json!({"groups": {"from": list(&before), "to": list(&permit)}}),
    );
    let access = Access::resolve(permit, &existing);
    Ok((user, access))
}
