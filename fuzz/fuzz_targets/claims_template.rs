//! The env claims extension (`JWT_ENV_EXTENSION_CLAIMS`): arbitrary JSON of templates is parsed,
//! and what parses is rendered for a user with hook data.
#![no_main]

use authura_core::extension::{ClaimsExtension as _, ClaimsInput, EnvExtension};
use authura_core::types::{Email, PasswordHash, Role, TenantId, User, UserId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(extension) = EnvExtension::parse("custom", text) else {
        return;
    };
    let user = User {
        id: UserId::Text("u-1".into()),
        email: Email::parse("ann@example.com").unwrap(),
        role: Role::parse("admin").unwrap(),
        tenant: Some(TenantId::parse("acme").unwrap()),
        password_hash: PasswordHash::new("x"),
        verified_at: None,
    };
    let mut hook = serde_json::Map::new();
    hook.insert("plan".into(), serde_json::json!({"nested": [1, "two"]}));
    hook.insert("key".into(), serde_json::json!("value"));
    let claims = extension.claims(&ClaimsInput {
        user: &user,
        hook_data: Some(&hook),
        groups: None,
    });
    assert!(claims.is_object());
});
