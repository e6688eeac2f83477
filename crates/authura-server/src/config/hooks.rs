//! The hooks section: the webhook called around user reads and writes.

use authura_hooks::HookSettings;

use crate::config::parse_http_url;
use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    HOOK_URL = Var::new(
        "hooks",
        "An http(s) URL. Authura `POST`s `<HOOK_URL>?action=get_user` after it reads a user for \
         a response or a token, and `?action=create_or_update_user` before it creates or updates \
         one (verification, reset, change of email or password, and the Argon2id upgrade of a \
         legacy or weaker hash at login: there a refusal or failure only keeps the old hash, the \
         login goes on). The body is the user object `{\"id\", \"email\", \"role\", \
         \"tenant_id\", \"verified_at\"}` (no `id` before a create), never the password hash. A \
         2xx answer with a JSON object becomes `hook_data` on the user object and in the access \
         token (and `{{.HookData.key}}` in `JWT_ENV_EXTENSION_CLAIMS`); an empty 2xx answer adds \
         nothing. A 4xx answer fails the request with the hook's status, error code \
         `hook_failed` and the hook's body (first 1 KiB) as `message`; a 5xx answer, a 2xx \
         answer that is not a JSON object, a timeout or no answer fail it with 502 \
         `hook_failed`. A failed `create_or_update_user` writes nothing.",
    )
    .unset("unset (no hook)");
    HOOK_AUTH_HEADER_KEY = Var::new(
        "hooks",
        "The header carrying `HOOK_AUTH_HEADER_VALUE`; must be a valid header name.",
    )
    .default("Authorization");
    HOOK_AUTH_HEADER_VALUE = Var::new(
        "hooks",
        "Secret (`_FILE` works; never logged).",
    )
    .unset("unset (no header)")
    .secret();
    HOOK_TIMEOUT = Var::new(
        "hooks",
        "The whole call, connection included, as a Go duration.",
    )
    .default("5s")
    .new_variable();
}

/// `HOOK_*`: the webhook, when `HOOK_URL` is set, checked as its client would.
pub fn read_hook(r: &mut Reader, extra_ca_pem: Option<Vec<u8>>) -> Option<HookSettings> {
    let url = r.string(&HOOK_URL);
    let key = r.string(&HOOK_AUTH_HEADER_KEY);
    let value = r.secret(&HOOK_AUTH_HEADER_VALUE);
    let timeout = r.positive_duration(&HOOK_TIMEOUT);
    let Some(url) = url else {
        if key.is_some() || value.is_some() {
            r.problem(
                "HOOK_AUTH_HEADER_KEY / HOOK_AUTH_HEADER_VALUE are set without HOOK_URL".into(),
            );
        }
        return None;
    };
    let url = parse_http_url(&url)
        .map_err(|e| r.problem(format!("HOOK_URL: {e}")))
        .ok()?;
    let settings = HookSettings {
        url,
        auth_header: value.map(|v| {
            (
                key.unwrap_or_else(|| HOOK_AUTH_HEADER_KEY.default_value().to_owned()),
                v,
            )
        }),
        timeout: timeout?,
        extra_ca_pem,
    };
    // The client's own checks (header name and value, CA bundle), without calling the hook.
    if let Err(e) = authura_hooks::HttpHook::new(settings.clone()) {
        r.problem(e.to_string());
        return None;
    }
    Some(settings)
}
