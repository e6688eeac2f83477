//! `authura group list|create|update|delete` (SPEC §11, §8a): role groups changed from the
//! command line through the same code as `/rolegroups` ([`crate::permits`]), as the operator
//! (no admin account; the audit event's detail says `"by": "cli"`). A change or deletion is
//! announced to running instances on PostgreSQL by `NOTIFY`, so their `/check` answers follow
//! within a second.

use std::time::Duration;

use authura_core::permit::GroupId;

use super::{Failure, open};
use crate::config::Config;
use crate::permits::{self, Actor, GroupIn, GroupOut, GroupsOut, PermissionIn, group_out};
use crate::state::AppState;

/// How long the command waits for its audit events to be written before it exits.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

/// What to do.
#[derive(Debug, Clone)]
pub enum GroupCommand {
    /// Every group.
    List,
    /// A new group.
    Create {
        /// Its name.
        name: String,
        /// Its permissions: numbers, or names from `PERMISSION_NAMES`.
        permissions: Vec<String>,
    },
    /// Replace a group's name and/or permissions.
    Update {
        /// The group: its id, or its exact name.
        group: String,
        /// The new name.
        name: Option<String>,
        /// The new permissions (`Some(vec![])` clears them).
        permissions: Option<Vec<String>>,
    },
    /// Delete a group (it leaves every permit).
    Delete {
        /// The group: its id, or its exact name.
        group: String,
    },
}

/// Reads permissions given on the command line: digits are numbers, anything else a name.
pub fn permission_args(given: &[String]) -> Vec<PermissionIn> {
    given
        .iter()
        .flat_map(|g| g.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<i64>() {
            Ok(n) if p.bytes().all(|b| b.is_ascii_digit() || b == b'-') => PermissionIn::Number(n),
            _ => PermissionIn::Name(p.to_owned()),
        })
        .collect()
}

/// The group named by `given`: its id when it is all digits, else its exact name.
async fn resolve(state: &AppState, given: &str) -> Result<GroupId, Failure> {
    if !given.is_empty() && given.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(permits::parse_group_id(given)?);
    }
    permits::list_groups(state)
        .await?
        .into_iter()
        .find(|g| g.name.as_str() == given)
        .map(|g| g.id)
        .ok_or_else(|| Failure {
            code: "not_found",
            message: format!("no role group named {given:?}"),
        })
}

/// Runs the command on the configured stores; returns what to print.
///
/// # Errors
/// A [`Failure`] with the API's code: `invalid_body`, `name_taken`, `not_found`,
/// `not_supported` (no state store), `start` when the stores cannot be opened.
pub async fn run(config: &Config, command: GroupCommand, json: bool) -> Result<String, Failure> {
    let opened = open(config).await?;
    let state = &opened.state;
    let actor = Actor::default();
    let out = match command {
        GroupCommand::List => {
            let groups = permits::list_groups(state).await?;
            let out = GroupsOut {
                groups: groups.iter().map(|g| group_out(state, g)).collect(),
            };
            if json {
                return to_json(&out);
            }
            if out.groups.is_empty() {
                return Ok("no role groups".into());
            }
            return Ok(out
                .groups
                .iter()
                .map(describe)
                .collect::<Vec<_>>()
                .join("\n"));
        }
        GroupCommand::Create { name, permissions } => {
            let input = GroupIn {
                name: Some(name),
                permissions: Some(permission_args(&permissions)),
            };
            let group = permits::create_group(state, &input, actor).await?;
            (group_out(state, &group), "created")
        }
        GroupCommand::Update {
            group,
            name,
            permissions,
        } => {
            let id = resolve(state, &group).await?;
            let input = GroupIn {
                name,
                permissions: permissions.as_deref().map(permission_args),
            };
            let group = permits::update_group(state, id, &input, actor).await?;
            (group_out(state, &group), "updated")
        }
        GroupCommand::Delete { group } => {
            let id = resolve(state, &group).await?;
            let group = permits::delete_group(state, id, actor).await?;
            (group_out(state, &group), "deleted")
        }
    };
    if !state.audit().drain(AUDIT_DRAIN).await {
        tracing::warn!("some audit events were not written before the command ended");
    }
    let (group, what) = out;
    if json {
        return to_json(&group);
    }
    Ok(format!("{what}: {}", describe(&group)))
}

/// One line for a group: `7 "ops": permissions 1, 2`.
fn describe(group: &GroupOut) -> String {
    let permissions = if group.permissions.is_empty() {
        "no permissions".to_owned()
    } else {
        format!(
            "permissions {}",
            group
                .permissions
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{} {:?}: {permissions}", group.id, group.name)
}

/// `value` as one line of JSON.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|e| Failure {
        code: "internal_error",
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_numbers_or_names() {
        let got = permission_args(&["1,read".into(), " 70000 ".into(), "".into()]);
        let shown: Vec<String> = got
            .iter()
            .map(|p| match p {
                PermissionIn::Number(n) => format!("#{n}"),
                PermissionIn::Name(s) => s.clone(),
            })
            .collect();
        assert_eq!(shown, vec!["#1", "read", "#70000"]);
    }
}
