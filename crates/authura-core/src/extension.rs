//! Claims extensions (SPEC §4): each adds one namespaced object to the access token.
//! `hasura` and `env` are built in; a crate user can implement [`ClaimsExtension`] for their own.

use serde_json::{Map, Value};

use crate::hook::HookData;
use crate::types::{User, format_time};

/// What an extension may read to build its claims.
#[derive(Clone, Copy, Debug)]
pub struct ClaimsInput<'a> {
    pub user: &'a User,
    pub hook_data: Option<&'a HookData>,
    /// The names of the user's role groups (SPEC §8a), when `HASURA_ROLES_FROM_GROUPS=true`
    /// asked for them; `None` otherwise.
    pub groups: Option<&'a [String]>,
}

/// Adds a namespaced object to access tokens.
pub trait ClaimsExtension: Send + Sync + std::fmt::Debug + 'static {
    /// The claim name the object is put under.
    fn namespace(&self) -> &str;

    /// The object for this user.
    fn claims(&self, input: &ClaimsInput<'_>) -> Value;
}

/// Hasura's claims: every value a string, as Hasura requires. `x-hasura-allowed-roles` is the
/// user's role, followed by their role groups' names when the input carries them
/// (`HASURA_ROLES_FROM_GROUPS=true`, SPEC §8a); the default role stays the user's role.
#[derive(Debug, Clone, Copy, Default)]
pub struct HasuraExtension;

impl HasuraExtension {
    /// The namespace Hasura reads by default.
    pub const NAMESPACE: &'static str = "https://hasura.io/jwt/claims";
}

impl ClaimsExtension for HasuraExtension {
    fn namespace(&self) -> &str {
        Self::NAMESPACE
    }

    fn claims(&self, input: &ClaimsInput<'_>) -> Value {
        let user = input.user;
        let mut m = Map::new();
        m.insert("x-hasura-default-role".into(), user.role.as_str().into());
        let mut allowed = vec![user.role.as_str()];
        for group in input.groups.unwrap_or(&[]) {
            if !allowed.contains(&group.as_str()) {
                allowed.push(group);
            }
        }
        m.insert("x-hasura-allowed-roles".into(), Value::from(allowed));
        m.insert("x-hasura-user-id".into(), user.id.to_string().into());
        if let Some(t) = &user.tenant {
            m.insert("x-hasura-tenant-id".into(), t.as_str().into());
        }
        Value::Object(m)
    }
}

/// Claims configured by `JWT_ENV_EXTENSION_NAMESPACE` / `JWT_ENV_EXTENSION_CLAIMS`: a JSON object
/// whose string values are Go-style templates (`{{.ID}}`, `{{.HookData.key}}`, …).
#[derive(Debug, Clone)]
pub struct EnvExtension {
    namespace: String,
    claims: Vec<(String, Template)>,
}

impl EnvExtension {
    /// Parses the configuration.
    ///
    /// # Errors
    /// A message when the JSON is not an object of strings or a template names an unknown field.
    pub fn parse(namespace: &str, claims_json: &str) -> Result<Self, String> {
        if namespace.trim().is_empty() {
            return Err("the namespace must not be empty".into());
        }
        let map: Map<String, Value> = serde_json::from_str(claims_json)
            .map_err(|e| format!("expected a JSON object of string templates: {e}"))?;
        let claims = map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Template::parse(&s).map(|t| (k, t)),
                _ => Err(format!("claim {k:?} must be a string template")),
            })
            .collect::<Result<_, _>>()?;
        Ok(EnvExtension {
            namespace: namespace.trim().to_owned(),
            claims,
        })
    }
}

impl ClaimsExtension for EnvExtension {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn claims(&self, input: &ClaimsInput<'_>) -> Value {
        Value::Object(
            self.claims
                .iter()
                .map(|(k, t)| (k.clone(), t.render(input).into()))
                .collect(),
        )
    }
}

/// A parsed template: literal text and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Id,
    Email,
    Role,
    TenantId,
    VerifiedAt,
    HookData(String),
}

impl Template {
    fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {s:?}"))?;
            let field = after[..end].trim();
            pieces.push(match field {
                ".ID" => Piece::Id,
                ".Email" => Piece::Email,
                ".Role" => Piece::Role,
                ".TenantID" => Piece::TenantId,
                ".VerifiedAt" => Piece::VerifiedAt,
                f => match f.strip_prefix(".HookData.") {
                    Some(key) if !key.is_empty() => Piece::HookData(key.to_owned()),
                    _ => {
                        return Err(format!(
                            "unknown template field {field:?} (known: .ID, .Email, .Role, .TenantID, .VerifiedAt, .HookData.key)"
                        ));
                    }
                },
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    fn render(&self, input: &ClaimsInput<'_>) -> String {
        let user = input.user;
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Id => out.push_str(&user.id.to_string()),
                Piece::Email => out.push_str(user.email.as_str()),
                Piece::Role => out.push_str(user.role.as_str()),
                Piece::TenantId => out.push_str(user.tenant.as_ref().map_or("", |t| t.as_str())),
                Piece::VerifiedAt => out.push_str(
                    &user
                        .verified_at
                        .as_ref()
                        .map(format_time)
                        .unwrap_or_default(),
                ),
                Piece::HookData(key) => match input.hook_data.and_then(|d| d.get(key)) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::types::{Email, PasswordHash, Role, TenantId, UserId};

    fn user(tenant: Option<&str>) -> User {
        User {
            id: UserId::Int(7),
            email: Email::parse("ann@example.com").unwrap_or_else(|e| panic!("{e}")),
            role: Role::parse("editor").unwrap_or_else(|e| panic!("{e}")),
            tenant: tenant.map(|t| TenantId::parse(t).unwrap_or_else(|e| panic!("{e}"))),
            password_hash: PasswordHash::new("x"),
            verified_at: chrono::Utc
                .with_ymd_and_hms(2025, 2, 5, 16, 48, 18)
                .single(),
        }
    }

    #[test]
    fn hasura_claims_are_strings() {
        let u = user(None);
        let got = HasuraExtension.claims(&ClaimsInput {
            user: &u,
            hook_data: None,
            groups: None,
        });
        assert_eq!(
            got,
            json!({"x-hasura-default-role": "editor", "x-hasura-allowed-roles": ["editor"], "x-hasura-user-id": "7"})
        );
        let u = user(Some("acme"));
        let got = HasuraExtension.claims(&ClaimsInput {
            user: &u,
            hook_data: None,
            groups: None,
        });
        assert_eq!(got["x-hasura-tenant-id"], json!("acme"));
        let groups = ["ops".to_owned(), "editor".to_owned(), "Ops".to_owned()];
        let got = HasuraExtension.claims(&ClaimsInput {
            user: &u,
            hook_data: None,
            groups: Some(&groups),
        });
        assert_eq!(got["x-hasura-default-role"], json!("editor"));
        assert_eq!(
            got["x-hasura-allowed-roles"],
            json!(["editor", "ops", "Ops"]),
            "the role first, then each group once"
        );
    }

    fn check_env(claims: &str, hook: Option<Value>, expected: Result<Value, &str>) {
        let u = user(Some("acme"));
        let hook = hook.and_then(|v| v.as_object().cloned());
        let got = EnvExtension::parse("custom", claims).map(|e| {
            e.claims(&ClaimsInput {
                user: &u,
                hook_data: hook.as_ref(),
                groups: None,
            })
        });
        match (got, expected) {
            (Ok(v), Ok(e)) => assert_eq!(v, e),
            (Err(m), Err(e)) => assert!(m.contains(e), "{m:?} should contain {e:?}"),
            (got, expected) => panic!("{claims}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn env_templates() {
        check_env(r#"{"x-id": "{{.ID}}"}"#, None, Ok(json!({"x-id": "7"})));
        check_env(
            r#"{"a": "{{ .Email }}/{{.Role}}", "t": "t={{.TenantID}}", "v": "{{.VerifiedAt}}"}"#,
            None,
            Ok(
                json!({"a": "ann@example.com/editor", "t": "t=acme", "v": "2025-02-05T16:48:18.000000+00:00"}),
            ),
        );
        check_env(
            r#"{"plan": "{{.HookData.plan}}", "n": "{{.HookData.n}}", "gone": "{{.HookData.none}}"}"#,
            Some(json!({"plan": "pro", "n": 3})),
            Ok(json!({"plan": "pro", "n": "3", "gone": ""})),
        );
        check_env(
            r#"{"x": "{{.Password}}"}"#,
            None,
            Err("unknown template field"),
        );
        check_env(r#"{"x": "{{.ID"}"#, None, Err("unclosed"));
        check_env(r#"{"x": 5}"#, None, Err("must be a string"));
        check_env(r#"["x"]"#, None, Err("JSON object"));
    }
}
