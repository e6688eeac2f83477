//! The captcha section: Cloudflare Turnstile on signup, login and password reset.

use crate::captcha::CaptchaSettings;
use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    CAPTCHA = Var::new(
        "captcha",
        "`turnstile` turns Cloudflare Turnstile on for `POST /signup`, password logins on `POST \
         /token` (not impersonation) and `POST /reset-password`. Any other value is refused \
         (`CAPTCHA: unknown provider \"x\" (expected turnstile)`).",
    )
    .unset("unset (off)");
    TURNSTILE_SECRET_KEY = Var::new(
        "captcha",
        "Secret (`_FILE` works). Sent to siteverify with the client's response token and address \
         (the peer, or per `TRUSTED_PROXIES`).",
    )
    .required("required with `CAPTCHA`")
    .secret();
    TURNSTILE_SITE_KEY = Var::new(
        "captcha",
        "The widget's site key, put in the `/form` pages for signup, login and forgot-password.",
    )
    .required("required with `CAPTCHA`");
    TURNSTILE_SCRIPT = Var::new(
        "captcha",
        "The widget's script, included by those pages.",
    )
    .default("https://challenges.cloudflare.com/turnstile/v0/api.js");
    TURNSTILE_VERIFY_URL = Var::new(
        "captcha",
        "Where responses are checked (tests point it at a local server).",
    )
    .default("https://challenges.cloudflare.com/turnstile/v0/siteverify")
    .new_variable();
}

/// `CAPTCHA` and `TURNSTILE_*`: the settings when it is on; keys without `CAPTCHA` are refused.
pub fn read_captcha(r: &mut Reader) -> Option<CaptchaSettings> {
    let provider = r.string(&CAPTCHA);
    let secret = r.secret(&TURNSTILE_SECRET_KEY);
    let site_key = r.string(&TURNSTILE_SITE_KEY);
    let script = r.url(&TURNSTILE_SCRIPT);
    let verify_url = r.url(&TURNSTILE_VERIFY_URL);
    match provider.as_deref() {
        None => {
            if secret.is_some() || site_key.is_some() {
                r.problem("TURNSTILE_SECRET_KEY / TURNSTILE_SITE_KEY are set but CAPTCHA is not (set CAPTCHA=turnstile)".into());
            }
            None
        }
        Some("turnstile") => {
            if secret.is_none() {
                r.problem("CAPTCHA=turnstile: TURNSTILE_SECRET_KEY is required".into());
            }
            if site_key.is_none() {
                r.problem("CAPTCHA=turnstile: TURNSTILE_SITE_KEY is required (the /form pages show the widget)".into());
            }
            Some(CaptchaSettings {
                secret: secret?,
                site_key: site_key?,
                script: script?,
                verify_url: verify_url?,
            })
        }
        Some(other) => {
            r.problem(format!(
                "CAPTCHA: unknown provider {other:?} (expected turnstile)"
            ));
            None
        }
    }
}
